"""The paper's four domains as Gymnasium environments (installed as ``sen_rl.envs``).

Importing ``sen_rl`` registers them; ``gym.make("sen_rl:SEN-Reacher-v0")`` works too.
"""

from __future__ import annotations

import gymnasium as gym

#: id -> (entry point, max_episode_steps)
ENV_SPECS = {
    "SEN-Shapes-v0": ("sen_rl.envs.shapes:ShapesEnv", 100),
    "SEN-Cubes-v0": ("sen_rl.envs.cubes:CubesEnv", 100),
    "SEN-Teapot-v0": ("sen_rl.envs.teapot:TeapotEnv", 100),
    "SEN-Reacher-v0": ("sen_rl.envs.reacher:ReacherEnv", 50),
}


def register_envs() -> None:
    """Register every SEN environment with Gymnasium (idempotent)."""
    for env_id, (entry_point, steps) in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)


__all__ = ["ENV_SPECS", "register_envs"]
