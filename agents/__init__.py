"""Agents that use SEN world models (installed as ``sen_rl.agents``).

- :mod:`sen_rl.agents.goals`: goal-reaching tasks on every domain (``SEN-Shapes-Goal-v0``...).
- :mod:`sen_rl.agents.planning`: :class:`LatentMPC`, model predictive control toward a goal
  observation in a world model's latent space, and the goal-episode loop of ``sen-rl plan``.

The torch-backed names load on first use (``from sen_rl.agents import LatentMPC``), so that
making a goal env, which imports :mod:`sen_rl.agents.goals`, stays free of torch.
"""

from __future__ import annotations

# name -> module that defines it; imported on first attribute access
_LAZY = {
    "LatentMPC": "sen_rl.agents.planning",
    "RandomAgent": "sen_rl.agents.planning",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sen_rl.agents' has no attribute {name!r}")


__all__ = [*_LAZY]
