"""Goal-reaching tasks on the SEN domains, for planners and RL agents.

:class:`GoalReaching` wraps one SEN env: each ``reset`` draws a goal world state a few
random steps away from the start state, and the episode ends when the world gets close
enough to it. Observations stay the env's pixels; the goal's picture is in ``info``.
The domain table (:class:`sen_rl.domains.GoalTask`) says what "close enough" is:

============  ==============================================  =========  ==========  =====
domain        ``goal_distance`` (units)                       tolerance  goal steps  steps
============  ==============================================  =========  ==========  =====
Shapes/Cubes  sum of the objects' Manhattan distances (cells)  0          5           20
Teapot        geodesic angle between orientations (radians)   2 pi / 30  5           30
Reacher       distance between the fingertips (metres)        0.02       10          50
============  ==============================================  =========  ==========  =====

A goal is reached when ``goal_distance(state, goal_state) <= tolerance``. Every domain is
registered as a goal task too (``Domain.goal_env_id``):

>>> import gymnasium as gym, sen_rl                                      # doctest: +SKIP
>>> env = gym.make("SEN-Reacher-Goal-v0", size=64, reward="shaped")
>>> obs, info = env.reset(seed=0)
>>> info["goal_observation"].shape == obs.shape
True

This module imports neither torch nor MuJoCo (the env's module may import MuJoCo).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from sen_rl.domains import DOMAINS, GoalTask, check_choice, domain_of
from sen_rl.envs.base import SymmetricEnv

REWARDS = ("sparse", "shaped")
"""``"sparse"``: 1.0 on the step that reaches the goal, else 0.0; ``"shaped"``: ``-goal_distance`` after the step."""
GOAL_TRIES = 100
"""Goals drawn per reset before giving up when every one is already reached at the start."""


def _positive_int(name: str, value, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 (or None for the domain's {default}), got {value!r}")
    return int(value)


class GoalReaching(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One SEN env as a goal-reaching task: reach a world state drawn a few random steps away.

    :param env: a SEN env (``env.unwrapped`` a :class:`~sen_rl.envs.base.SymmetricEnv`), from
        ``gym.make`` or built directly.
    :param goal_steps: random actions from the start state to the goal (default: the domain's
        ``goal.goal_steps``).
    :param reward: ``"sparse"`` (1.0 on a step that ends at the goal, else 0.0) or ``"shaped"``
        (``-goal_distance`` after the step: cells, radians or metres). The inner env's own
        reward is dropped.
    :param max_steps: step budget of an episode (default: the domain's ``goal.max_steps``);
        counted here, so it holds with or without a ``TimeLimit`` around or inside.
    :param task: the :class:`~sen_rl.domains.GoalTask`; needed when the env has no spec that
        names a sen-rl domain (an env built without ``gym.make``), otherwise it overrides it.

    ``reset(seed=..., options=...)`` resets the inner env (options passed on, so ``"state"``
    and ``"warmup"`` work), then takes ``goal_steps`` actions of ``env.unwrapped.random_action()``
    (the env's own seeded ``np_random``) from the start state, without rendering, and puts the
    env back at the start state; a goal already reached at the start is redrawn (up to
    :data:`GOAL_TRIES` times). ``options={"goal_state": g}`` sets the goal instead of drawing one.

    ``info`` of ``reset``: ``"state"``, ``"goal_state"``, ``"goal_observation"`` (uint8, the
    observation the env shows in the goal state: ``render_state(goal_state)``),
    ``"distance"`` and ``"is_success"``. ``info`` of ``step``: the inner env's ``info`` with
    ``"distance"`` and ``"is_success"`` added. ``terminated`` is ``is_success``; ``truncated``
    comes when ``max_steps`` steps are used (or the inner env truncates).
    """

    def __init__(
        self,
        env: gym.Env,
        goal_steps: int | None = None,
        reward: str = "sparse",
        max_steps: int | None = None,
        task: GoalTask | None = None,
    ):
        # recorded, so that ``env.spec.make()`` rebuilds the wrapper
        gym.utils.RecordConstructorArgs.__init__(
            self, goal_steps=goal_steps, reward=reward, max_steps=max_steps, task=task
        )
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.unwrapped, SymmetricEnv):
            raise TypeError(f"GoalReaching wraps a sen-rl env (a SymmetricEnv), got {type(env.unwrapped).__name__}")
        if task is None:
            spec = env.unwrapped.spec
            try:
                domain = domain_of(spec.id) if spec is not None else None
            except ValueError:
                domain = None
            if domain is None:
                known = ", ".join(DOMAINS)
                found = f"spec id {spec.id!r}" if spec is not None else "no spec (not made by gym.make)"
                raise ValueError(
                    f"GoalReaching cannot tell the domain of {type(env.unwrapped).__name__}: it has {found}, "
                    f"not one of {known}; pass task=domain_of(env_id).goal"
                )
            task = domain.goal
        if not isinstance(task, GoalTask):
            raise TypeError(f"task must be a sen_rl.domains.GoalTask, got {type(task).__name__}")
        self.task = task
        self.goal_steps = _positive_int("goal_steps", goal_steps, task.goal_steps)
        self.reward_mode = check_choice("reward", reward, REWARDS)
        self.max_steps = _positive_int("max_steps", max_steps, task.max_steps)
        self.elapsed_steps = 0
        self._goal_state: np.ndarray | None = None
        self._goal_observation: np.ndarray | None = None

    # -- the task ------------------------------------------------------------------------
    @property
    def goal_state(self) -> np.ndarray | None:
        """The goal world state of the episode (a copy; None before the first reset)."""
        return None if self._goal_state is None else self._goal_state.copy()

    @property
    def goal_observation(self) -> np.ndarray | None:
        """The observation the env shows in the goal state (a copy; None before the first reset)."""
        return None if self._goal_observation is None else self._goal_observation.copy()

    def distance_to_goal(self, state=None) -> float:
        """``env.unwrapped.goal_distance`` of ``state`` (default: the current state) to the episode's goal."""
        self._check_reset()
        env = self.env.unwrapped
        return env.goal_distance(env.get_state() if state is None else state, self._goal_state)

    def is_success(self, distance: float) -> bool:
        """Whether a goal distance counts as reached: ``distance <= task.tolerance``."""
        return bool(distance <= self.task.tolerance)

    def _check_reset(self) -> None:
        if self._goal_state is None:
            raise RuntimeError("GoalReaching has no goal yet: call reset() first")

    def _draw_goal(self, env: SymmetricEnv, start: np.ndarray) -> np.ndarray:
        for _ in range(GOAL_TRIES):
            env.set_state(start)  # the goal depends only on the start state and the draws
            for _ in range(self.goal_steps):
                env._advance(env.random_action())
            goal = env.get_state()
            if not self.is_success(env.goal_distance(start, goal)):
                return goal
        raise RuntimeError(
            f"{GOAL_TRIES} goals drawn {self.goal_steps} random steps from the start state were all already "
            f"reached there (goal_distance <= {self.task.tolerance}); the start state may be stuck, "
            "or goal_steps too small: raise goal_steps or reset from another state"
        )

    # -- Gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        goal = options.pop("goal_state", None)
        obs, info = self.env.reset(seed=seed, options=options)
        env = self.env.unwrapped
        start = env.get_state()
        if goal is None:
            try:
                goal = self._draw_goal(env, start)
            finally:
                env.set_state(start)  # the episode starts at the start state
        self._goal_observation = env.render_state(goal)  # also validates a given goal_state
        self._goal_state = np.array(goal, copy=True)
        self.elapsed_steps = 0
        distance = env.goal_distance(start, self._goal_state)
        info = dict(info)
        info.update(
            state=start,
            goal_state=self._goal_state.copy(),
            goal_observation=self._goal_observation.copy(),
            distance=distance,
            is_success=self.is_success(distance),
        )
        return obs, info

    def step(self, action):
        self._check_reset()
        obs, _, terminated, truncated, info = self.env.step(action)
        self.elapsed_steps += 1
        distance = self.distance_to_goal()
        success = self.is_success(distance)
        reward = (1.0 if success else 0.0) if self.reward_mode == "sparse" else -distance
        info = dict(info)
        info.update(distance=distance, is_success=success)
        terminated = bool(terminated) or success
        truncated = bool(truncated) or self.elapsed_steps >= self.max_steps
        return obs, float(reward), terminated, truncated, info


def make_goal_env(
    env_id: str,
    goal_steps: int | None = None,
    reward: str = "sparse",
    max_steps: int | None = None,
    **env_kwargs: Any,
) -> GoalReaching:
    """The entry point of the goal ids: ``GoalReaching`` around ``gym.make(env_id, **env_kwargs).unwrapped``.

    ``gym.make("SEN-Reacher-Goal-v0", size=64, reward="shaped")`` lands here with
    ``env_id="SEN-Reacher-v0"``. The goal id's ``TimeLimit`` is the domain's ``goal.max_steps``;
    a different ``max_steps`` needs ``max_episode_steps`` of ``gym.make`` set to match.
    """
    domain = domain_of(env_id)
    if env_id.split(":")[-1] != domain.env_id:
        raise ValueError(f"env_id={env_id!r} is not a sen-rl domain; choose one of {', '.join(DOMAINS)}")
    env = gym.make(domain.env_id, **env_kwargs).unwrapped
    return GoalReaching(env, goal_steps=goal_steps, reward=reward, max_steps=max_steps, task=domain.goal)


__all__ = ["GOAL_TRIES", "REWARDS", "GoalReaching", "make_goal_env"]
