"""The paper's four domains as Gymnasium environments (installed as ``sen_rl.envs``).

Importing ``sen_rl`` registers them (the ids and entry points are in :mod:`sen_rl.domains`);
``gym.make("sen_rl:SEN-Reacher-v0")`` works too.
"""

from __future__ import annotations


def register_envs() -> None:
    """Register every SEN environment with Gymnasium (idempotent)."""
    from sen_rl.domains import register_envs as _register

    _register()


__all__ = ["register_envs"]
