"""What every SEN environment shares: ground-truth state, the symmetry API, warm-up resets."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from sen_rl.groups import Symmetry


class SymmetricEnv(gym.Env):
    """A Gymnasium env whose world state can be read, set, transformed by a group and rendered.

    Subclasses implement :meth:`get_state`, :meth:`set_state`, :meth:`render_state`,
    :meth:`_sample_initial_state`, :meth:`_advance` (one step of the dynamics without
    rendering) and :meth:`_reward`. ``info["state"]`` always carries :meth:`get_state`.

    ``reset(options={"warmup": W})`` takes ``W`` uniformly random actions before the first
    observation, without rendering them (the paper records Reacher after 50 such steps);
    ``reset(options={"state": s})`` starts from a given world state.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    symmetry: Symmetry
    #: frames stacked on the channel axis of an observation (the last one is the current frame)
    stacked_frames: int = 1

    def __init__(self, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use None or 'rgb_array'")
        self.render_mode = render_mode

    # -- to implement -------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        raise NotImplementedError

    def set_state(self, state) -> None:
        raise NotImplementedError

    def render_state(self, state) -> np.ndarray:
        """The observation an agent would see in world state ``state`` (env state untouched)."""
        raise NotImplementedError

    def _sample_initial_state(self) -> np.ndarray:
        raise NotImplementedError

    def render_twins(self) -> np.ndarray:
        """``[G, *obs_shape]``: the current state transformed by every group element, re-rendered."""
        s = self.get_state()
        return np.stack([self.render_state(self.symmetry.act_on_state(g, s)) for g in self.symmetry.elements])

    def _advance(self, action) -> None:
        raise NotImplementedError

    def hard_negative_states(self, state) -> list[np.ndarray]:
        """World states one small move away from ``state`` that a good model must tell apart from it (HH@1)."""
        raise NotImplementedError(f"{type(self).__name__} defines no hard negatives")

    def goal_distance(self, state, goal_state) -> float:
        """How far world state ``state`` is from ``goal_state`` (0 when it is there), in the domain's units.

        The goal tasks (:mod:`sen_rl.agents.goals`) count a goal as reached when this is at most
        the domain's ``GoalTask.tolerance``.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no goal distance")

    def _reward(self, action) -> float:
        return 0.0

    def random_action(self):
        """A uniformly random action drawn from the env's own seeded ``np_random``."""
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return int(space.start + self.np_random.integers(space.n))
        return self.np_random.uniform(space.low, space.high).astype(space.dtype)

    def _observe(self) -> np.ndarray:
        return self.render_state(self.get_state())

    # -- Gymnasium API ------------------------------------------------------------------
    def _check_action(self, action):
        if not self.action_space.contains(action):
            arr = np.asarray(action)
            if (
                isinstance(self.action_space, gym.spaces.Discrete)
                and arr.shape == ()
                and (np.issubdtype(arr.dtype, np.integer))
            ):
                raise ValueError(
                    f"action {action!r} is outside Discrete({self.action_space.n}); "
                    f"use an integer in [0, {self.action_space.n - 1}]"
                )
            raise ValueError(
                f"action {action!r} (dtype {arr.dtype}, shape {arr.shape}) is not in {self.action_space}; "
                "sample one with env.action_space.sample()"
            )
        return action

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        warmup = int(options.pop("warmup", 0))
        state = options.pop("state", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: 'warmup', 'state'")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        if state is None:
            state = self._sample_initial_state()
        self.set_state(state)
        for _ in range(warmup):
            self._advance(self.random_action())
        return self._observe(), {"state": self.get_state()}

    def step(self, action):
        action = self._check_action(action)
        self._advance(action)
        reward = float(self._reward(action))
        return self._observe(), reward, False, False, {"state": self.get_state()}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return displayable(self._observe(), self.stacked_frames)


def displayable(obs: np.ndarray, stacked_frames: int = 1) -> np.ndarray:
    """An observation as an RGB picture: the current frame of a stack, grayscale repeated."""
    obs = np.asarray(obs)
    frame = obs[..., -(obs.shape[-1] // stacked_frames) :]
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame
