"""Model predictive control in the latent space of a SEN world model.

:class:`LatentMPC` encodes the current observation and the goal observation, searches action
sequences of ``horizon`` steps through the model's latent transition and executes the first
action of the best one; it replans at every step. A sequence costs

    cost(a_1..a_h) = min_t  model.energy(z_t, z_goal),   z_t = T(z_{t-1}, a_t),  z_0 = E(S(obs))

(the minimum over the steps, so a sequence that reaches the goal early and then drifts away
still counts as reaching it), and between sequences of equal cost the one that reaches its
minimum in fewer steps wins. The search depends on the action space:

- ``Discrete``: ``"exhaustive"`` expands every one of the ``|A|^h`` sequences as a tree,
  depth by depth (each prefix is predicted once, in batches of ``batch_size``); ``"beam"``
  keeps only the ``beam_width`` best partial sequences of each depth, ranked by their
  best-so-far cost. ``"auto"`` takes exhaustive search when ``|A|^h <= exhaustive_limit``.
- ``Box``: the cross-entropy method (``"cem"``): ``iterations`` rounds of ``samples``
  Gaussian sequences clipped to the box, refitted to the ``elites`` best; warm-started
  from the previous plan shifted by one step.

The remaining exact ties (the same cost and the same step) are broken at random by the
planner's seeded generator, so the same seed gives the same actions.

**Transition memory** (discrete actions, ``memory=True``): a learned model can believe that
an action moves the world when it does not (a move into a wall or onto another object); a
planner that trusts it repeats that action for ever, since the observation, and so the
plan, never changes. :meth:`LatentMPC.observe` records the transitions the agent really
made (the encoded observation, the action, the encoded next observation), and the search
uses a recorded outcome instead of the model's prediction wherever it expands that action
from a latent equal (to float precision) to a recorded one, at any depth. Nothing but the
agent's own observations enters: no world state, no reward. :func:`run_goal_episodes` calls
``observe`` after every step; :meth:`LatentMPC.reset` forgets the memory.

:func:`run_goal_episodes` plays a policy (a planner or :class:`RandomAgent`) on a goal task of
:mod:`sen_rl.agents.goals`, and :func:`summarize` turns the episodes into a success rate
with its 95% Wilson interval, the mean steps to success and the time per decision;
``sen-rl plan`` and ``benchmarks/planning.py`` are built on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

METHODS: tuple[str, ...] = ("auto", "exhaustive", "beam", "cem")
"""Search methods of :class:`LatentMPC`: ``auto`` (exhaustive or beam for discrete actions,
cem for boxes), ``exhaustive``, ``beam`` (discrete actions) and ``cem`` (boxes)."""


@dataclass
class Plan:
    """The result of one search of :class:`LatentMPC`.

    :param actions: the best action sequence, ``[horizon]`` ints for discrete action spaces
        (environment actions) or ``[horizon, *shape]`` floats for boxes.
    :param cost: its cost, the minimum over its steps of the energy to the goal latent.
    :param steps: the step (1-based) at which that minimum is reached.
    :param evaluated: latent transitions predicted by the search.
    """

    actions: np.ndarray
    cost: float
    steps: int
    evaluated: int


def _has_escnn_modules(model: Any) -> bool:
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return False
    return any(type(m).__module__.startswith("escnn") for m in modules())


def _inference_model(model: Any) -> Any:
    """``model`` ready for inference: exported (a copy) when it holds escnn modules or is training."""
    if hasattr(model, "export") and (_has_escnn_modules(model) or getattr(model, "training", False)):
        return model.export()  # a copy in eval mode: the caller's model is left as it is
    return model


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class LatentMPC:
    """Goal-reaching model predictive control over a world model's latent dynamics.

    >>> from sen_rl.model import load_model                      # doctest: +SKIP
    >>> planner = LatentMPC(load_model("runs/shapes_sen/best.pt"), horizon=3, seed=0)
    >>> obs, info = env.reset(seed=0)
    >>> action = planner.act(obs, info["goal_observation"])

    :param model: a world model (:class:`sen_rl.model.WorldModel`, or any object with its
        ``encode``, ``predict``, ``energy`` and ``action_space``). A model that holds escnn
        modules or is in training mode is exported (:meth:`WorldModel.export`, a copy in eval
        mode); the caller's model is not changed.
    :param action_space: the action space to plan in; it must equal the model's (default).
    :param horizon: steps of each candidate sequence (>= 1).
    :param method: one of :data:`METHODS`; ``"auto"`` chooses ``"exhaustive"`` for discrete
        actions when ``|A|^horizon <= exhaustive_limit``, else ``"beam"``, and ``"cem"`` for boxes.
    :param beam_width: partial sequences kept per depth by beam search.
    :param exhaustive_limit: the most sequences (``|A|^horizon``) exhaustive search expands.
    :param batch_size: latent transitions predicted per forward pass of the model.
    :param samples: sequences sampled per CEM iteration.
    :param elites: best sequences a CEM iteration refits its Gaussian to.
    :param iterations: CEM iterations per decision.
    :param init_std: the initial CEM standard deviation, as a fraction of the box's half width.
    :param min_std: the floor of the CEM standard deviation, as a fraction of the half width.
    :param tie_tolerance: costs within this much of the best count as ties, which go to the
        sequence that reaches its minimum in fewer steps (0: exact ties only; the default
        absorbs float rounding, e.g. of a remembered outcome against a predicted one).
    :param memory: correct the model with the transitions recorded by :meth:`observe`
        (discrete action spaces; ignored for boxes, where actions do not repeat exactly).
    :param seed: seeds the generator that samples CEM sequences and breaks exact ties.
    """

    def __init__(
        self,
        model: Any,
        action_space: gym.Space | None = None,
        horizon: int = 2,
        method: str = "auto",
        *,
        beam_width: int = 200,
        exhaustive_limit: int = 20_000,
        batch_size: int = 8192,
        samples: int = 300,
        elites: int = 30,
        iterations: int = 5,
        init_std: float = 0.5,
        min_std: float = 0.02,
        tie_tolerance: float = 1e-5,
        memory: bool = True,
        seed: int | None = None,
    ):
        model_space = getattr(model, "action_space", None)
        if model_space is None:
            raise ValueError(f"the model must have an action_space; got {type(model).__name__}")
        for attr in ("encode", "predict", "energy"):
            if not callable(getattr(model, attr, None)):
                raise ValueError(f"the model must have a method {attr}(); {type(model).__name__} has none")
        if action_space is None:
            action_space = model_space
        elif action_space != model_space:
            raise ValueError(f"action_space {action_space} does not match the model's action space {model_space}")
        self.horizon = _check_int("horizon", horizon, 1)
        self.beam_width = _check_int("beam_width", beam_width, 1)
        self.exhaustive_limit = _check_int("exhaustive_limit", exhaustive_limit, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.samples = _check_int("samples", samples, 2)
        self.elites = _check_int("elites", elites, 1)
        if self.elites > self.samples:
            raise ValueError(f"elites ({elites}) must not exceed samples ({samples})")
        self.iterations = _check_int("iterations", iterations, 1)
        for name, value in (("init_std", init_std), ("min_std", min_std), ("tie_tolerance", tie_tolerance)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {init_std!r}")
        self.init_std, self.min_std, self.tie_tolerance = float(init_std), float(min_std), float(tie_tolerance)
        self.action_space = action_space
        self.requested_method = method
        self.method = self._resolve_method(method)
        self.model = _inference_model(model)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.memory = bool(memory) and isinstance(action_space, gym.spaces.Discrete)
        self.last_plan: Plan | None = None
        self._warm: np.ndarray | None = None
        self._keys: torch.Tensor | None = None  # [K, *latent]: latents of recorded observations
        self._outcomes: list[dict[int, torch.Tensor]] = []  # per key: action index -> next latent

    # -- set-up -----------------------------------------------------------------------------
    def _resolve_method(self, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}")
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            sequences = int(space.n) ** self.horizon
            if method == "auto":
                return "exhaustive" if sequences <= self.exhaustive_limit else "beam"
            if method == "cem":
                raise ValueError(f"method='cem' plans in Box action spaces; {space} is discrete: use beam")
            if method == "exhaustive" and sequences > self.exhaustive_limit:
                raise ValueError(
                    f"exhaustive search of {space.n}^{self.horizon} = {sequences} sequences exceeds "
                    f"exhaustive_limit={self.exhaustive_limit}; use method='beam', a shorter horizon or a larger limit"
                )
            return method
        if isinstance(space, gym.spaces.Box):
            if method in ("exhaustive", "beam"):
                raise ValueError(f"method={method!r} plans in Discrete action spaces; {space} is a box: use cem")
            if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                raise ValueError(f"CEM samples inside the action box; {space} has infinite bounds")
            return "cem"
        raise ValueError(f"LatentMPC plans in Discrete or Box action spaces, not {space}")

    def __repr__(self) -> str:
        detail = {"beam": f", beam_width={self.beam_width}", "cem": f", samples={self.samples}"}.get(self.method, "")
        off = ", memory=False" if isinstance(self.action_space, gym.spaces.Discrete) and not self.memory else ""
        return f"LatentMPC(method={self.method!r}, horizon={self.horizon}{detail}{off})"

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: forget the previous plan (CEM's warm start) and the recorded transitions.

        :param seed: reseeds the generator (None: keep the current stream).
        """
        self._warm = None
        self.last_plan = None
        self._keys, self._outcomes = None, []
        if seed is not None:
            self.seed = seed
            self.rng = np.random.default_rng(seed)

    # -- acting -----------------------------------------------------------------------------
    def act(self, observation: Any, goal_observation: Any) -> int | np.ndarray:
        """The first action of the best plan from ``observation`` toward ``goal_observation``.

        :param observation: one environment observation (uint8 pixels, as the env emits it).
        :param goal_observation: the goal's observation, in the same format.
        :returns: an int for discrete action spaces, a float array of the box's shape otherwise.
        """
        plan = self.plan(observation, goal_observation)
        first = plan.actions[0]
        if isinstance(self.action_space, gym.spaces.Discrete):
            return int(first)
        return np.asarray(first, dtype=self.action_space.dtype)

    @torch.inference_mode()
    def plan(self, observation: Any, goal_observation: Any) -> Plan:
        """Search the best action sequence from ``observation`` toward ``goal_observation``.

        :param observation: one environment observation (uint8 pixels, as the env emits it).
        :param goal_observation: the goal's observation, in the same format.
        :returns: the :class:`Plan` (also kept as ``last_plan``).
        """
        obs, goal = np.asarray(observation), np.asarray(goal_observation)
        if obs.shape != goal.shape:
            raise ValueError(f"observation {obs.shape} and goal_observation {goal.shape} must have the same shape")
        z = self.model.encode(np.stack([obs, goal]))
        z0, z_goal = z[0], z[1]
        if self.method == "cem":
            plan = self._cem(z0, z_goal)
        else:
            plan = self._tree_search(z0, z_goal, None if self.method == "exhaustive" else self.beam_width)
        self.last_plan = plan
        return plan

    @torch.inference_mode()
    def observe(self, observation: Any, action: Any, next_observation: Any) -> None:
        """Record a transition the agent made, which the search then trusts over the model.

        Only with ``memory=True`` and a discrete action space (otherwise it does nothing).

        :param observation: the observation the action was taken in.
        :param action: the action taken (an environment action).
        :param next_observation: the observation that followed.
        """
        if not self.memory:
            return
        z = self.model.encode(np.stack([np.asarray(observation), np.asarray(next_observation)]))
        index = int(action) - int(self.action_space.start)
        match = self._match(z[:1])
        if match[0] >= 0:
            self._outcomes[int(match[0])][index] = z[1]
            return
        self._keys = z[:1] if self._keys is None else torch.cat([self._keys, z[:1]])
        self._outcomes.append({index: z[1]})

    def _match(self, z: torch.Tensor) -> np.ndarray:
        """For each latent of ``z [M, *latent]``, the recorded key it equals (to float precision), or -1."""
        if self._keys is None:
            return np.full(z.shape[0], -1)
        a, b = z.reshape(z.shape[0], 1, -1), self._keys.reshape(1, self._keys.shape[0], -1)
        close = ((a - b).abs() <= 1e-5 + 1e-4 * b.abs()).all(-1)  # [M, K]
        found = close.any(-1)
        return torch.where(found, close.float().argmax(-1), -1).cpu().numpy()

    # -- discrete: exhaustive and beam search -----------------------------------------------
    def _predict_energy(self, z: torch.Tensor, actions: torch.Tensor, z_goal: torch.Tensor, fix=None):
        """Next latents and their energies to the goal, in batches of ``batch_size``.

        ``fix``: ``(rows, latents)`` that replace the predictions of those rows (recorded outcomes).
        """
        nexts = [
            self.model.predict(z[i : i + self.batch_size], actions[i : i + self.batch_size])
            for i in range(0, z.shape[0], self.batch_size)
        ]
        zn = torch.cat(nexts)
        if fix is not None:
            zn[fix[0]] = fix[1].to(zn.dtype)
        costs = [
            self.model.energy(zn[i : i + self.batch_size], z_goal.expand_as(zn[i : i + self.batch_size]))
            for i in range(0, zn.shape[0], self.batch_size)
        ]
        return zn, torch.cat(costs).float().cpu().numpy().astype(np.float64)

    def _recorded(self, z: torch.Tensor, n: int):
        """``(rows, latents)`` of the children of ``z [M, *latent]`` whose outcome is recorded, or None."""
        if self._keys is None:
            return None
        match = self._match(z)
        rows, values = [], []
        for parent in np.flatnonzero(match >= 0):
            for index, outcome in self._outcomes[match[parent]].items():
                rows.append(parent * n + index)
                values.append(outcome)
        if not rows:
            return None
        return torch.as_tensor(rows, device=z.device), torch.stack(values)

    def _update_best(self, best: np.ndarray, step: np.ndarray, cost: np.ndarray, depth: int):
        improved = cost < best - self.tie_tolerance
        return np.minimum(best, cost), np.where(improved, depth, step)

    def _choose(self, best: np.ndarray, step: np.ndarray) -> int:
        """Index of the winner: the lowest cost, within ``tie_tolerance`` fewer steps, exact ties at random."""
        ok = np.flatnonzero(best <= best.min() + self.tie_tolerance)
        order = np.lexsort((self.rng.random(ok.size), best[ok], step[ok]))
        return int(ok[order[0]])

    def _tree_search(self, z0: torch.Tensor, z_goal: torch.Tensor, width: int | None) -> Plan:
        space = self.action_space
        n = int(space.n)
        env_actions = torch.arange(n, dtype=torch.int64) + int(space.start)
        z = z0[None]
        best = np.full(1, np.inf)
        step = np.zeros(1, dtype=np.int64)
        seqs = np.zeros((1, 0), dtype=np.int64)
        evaluated = 0
        for depth in range(1, self.horizon + 1):
            m = z.shape[0]
            parent = np.repeat(np.arange(m), n)
            index = np.tile(np.arange(n), m)
            fix = self._recorded(z, n)
            z, cost = self._predict_energy(
                z[torch.from_numpy(parent).to(z.device)], env_actions[torch.from_numpy(index)], z_goal, fix
            )
            evaluated += cost.size
            best, step = self._update_best(best[parent], step[parent], cost, depth)
            seqs = np.concatenate([seqs[parent], index[:, None]], axis=1)
            if width is not None and best.size > width and depth < self.horizon:
                keep = np.lexsort((self.rng.random(best.size), step, best))[:width]
                keep.sort()  # keep the enumeration order: deterministic given the kept set
                z, best, step, seqs = z[torch.from_numpy(keep).to(z.device)], best[keep], step[keep], seqs[keep]
        i = self._choose(best, step)
        return Plan(seqs[i] + int(space.start), float(best[i]), int(step[i]), evaluated)

    # -- boxes: the cross-entropy method ----------------------------------------------------
    def _sequence_costs(self, z0: torch.Tensor, z_goal: torch.Tensor, actions: np.ndarray):
        """Best-so-far cost and its step of each sequence ``actions [N, horizon, *shape]``."""
        n = actions.shape[0]
        best, step = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
        a = torch.as_tensor(actions, dtype=torch.float32)
        z = z0[None].expand(n, *z0.shape)
        for t in range(self.horizon):
            z, cost = self._predict_energy(z, a[:, t], z_goal)
            best, step = self._update_best(best, step, cost, t + 1)
        return best, step

    def _cem(self, z0: torch.Tensor, z_goal: torch.Tensor) -> Plan:
        space = self.action_space
        low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape)
        high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape)
        half = (high - low) / 2
        shape = (self.horizon, *space.shape)
        mean = np.broadcast_to((low + high) / 2, shape).copy() if self._warm is None else self._warm
        std = np.broadcast_to(self.init_std * half, shape).copy()
        floor = self.min_std * half
        best_seq, best_cost, best_step = None, np.inf, 0
        for _ in range(self.iterations):
            draws = mean + std * self.rng.standard_normal((self.samples, *shape))
            draws = np.clip(draws, low, high)
            if best_seq is not None:  # the best sequence so far competes again (elitism)
                draws[0] = best_seq
            cost, step = self._sequence_costs(z0, z_goal, draws)
            order = np.lexsort((step, cost))
            elite = draws[order[: self.elites]]
            mean = elite.mean(axis=0)
            std = np.maximum(elite.std(axis=0), floor)
            i = self._choose(cost, step)
            if best_seq is None or (cost[i], step[i]) < (best_cost, best_step):
                best_seq, best_cost, best_step = draws[i].copy(), float(cost[i]), int(step[i])
        # warm start of the next decision: this plan shifted by one step, its last step repeated
        self._warm = np.concatenate([best_seq[1:], best_seq[-1:]], axis=0)
        return Plan(best_seq.astype(space.dtype), best_cost, best_step, self.samples * self.iterations * self.horizon)


class RandomAgent:
    """Uniformly random actions, the baseline of the planners (same interface as :class:`LatentMPC`).

    :param action_space: a Discrete or Box space.
    :param seed: seeds the generator.
    """

    def __init__(self, action_space: gym.Space, seed: int | None = None):
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ValueError(f"RandomAgent draws from Discrete or Box action spaces, not {action_space}")
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return "RandomAgent()"

    def reset(self, seed: int | None = None) -> None:
        """Reseed the generator when ``seed`` is given.

        :param seed: a new seed (None: keep the current stream).
        """
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: Any = None, goal_observation: Any = None) -> int | np.ndarray:
        """A uniformly random action; the observations are ignored.

        :param observation: ignored.
        :param goal_observation: ignored.
        """
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return int(space.start + self.rng.integers(space.n))
        return self.rng.uniform(space.low, space.high).astype(space.dtype)


# -- goal episodes ----------------------------------------------------------------------------


@dataclass
class GoalEpisode:
    """One goal-reaching episode.

    :param success: whether the goal was reached within the budget.
    :param steps: environment steps taken.
    :param decisions: actions the agent chose.
    :param decision_seconds: wall time of those decisions (``act`` and ``observe``), in total.
    :param reset_info: the ``info`` of the episode's reset (start and goal states, distance).
    """

    success: bool
    steps: int
    decisions: int
    decision_seconds: float
    reset_info: dict = field(default_factory=dict)


def _episode_seeds(seed: int, episode: int) -> tuple[int, int]:
    env_seed, agent_seed = np.random.SeedSequence([seed, episode]).generate_state(2)
    return int(env_seed), int(agent_seed)


def run_goal_episodes(
    env: gym.Env,
    agent: Any,
    episodes: int,
    seed: int = 0,
    progress: bool = False,
    on_episode: Callable[[int, GoalEpisode], None] | None = None,
) -> list[GoalEpisode]:
    """Play ``episodes`` goal episodes of ``env`` (a goal task of :mod:`sen_rl.agents.goals`).

    Episode ``i`` resets the env and the agent with seeds derived from ``(seed, i)``, so an
    episode's goal does not depend on the agent or on the other episodes. An episode ends when
    the env terminates (the goal is reached) or truncates (the budget is spent).

    :param env: the goal env: its reset ``info`` holds ``"goal_observation"``, its step ``info``
        ``"is_success"``.
    :param agent: an object with ``act(observation, goal_observation)`` and ``reset(seed=...)``
        (:class:`LatentMPC`, :class:`RandomAgent`); its ``observe(observation, action,
        next_observation)``, if it has one, is called after every step (and timed with ``act``).
    :param episodes: number of episodes (>= 1).
    :param seed: seeds the episodes.
    :param progress: show a progress bar.
    :param on_episode: called with ``(index, episode)`` after each episode.
    """
    episodes = _check_int("episodes", episodes, 1)
    from tqdm.auto import tqdm

    results = []
    for i in tqdm(range(episodes), desc="goal episodes", disable=not progress, leave=False):
        env_seed, agent_seed = _episode_seeds(seed, i)
        obs, info = env.reset(seed=env_seed)
        agent.reset(seed=agent_seed)
        goal = info["goal_observation"]
        reset_info = {k: v for k, v in info.items() if k != "goal_observation"}
        success = bool(info.get("is_success", False))
        steps = decisions = 0
        spent = 0.0
        done = success
        observe = getattr(agent, "observe", None)
        while not done:
            t0 = time.perf_counter()
            action = agent.act(obs, goal)
            spent += time.perf_counter() - t0
            decisions += 1
            next_obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            if observe is not None:
                t0 = time.perf_counter()
                observe(obs, action, next_obs)
                spent += time.perf_counter() - t0
            obs = next_obs
            success = bool(info.get("is_success", terminated))
            done = terminated or truncated
            if steps > 100_000:
                raise RuntimeError("the goal env neither terminated nor truncated after 100000 steps")
        episode = GoalEpisode(success, steps, decisions, spent, reset_info)
        results.append(episode)
        if on_episode is not None:
            on_episode(i, episode)
    return results


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% for ``z = 1.96``).

    :param successes: successful trials.
    :param trials: all trials (0 gives ``(0, 1)``).
    :param z: the standard normal quantile of the confidence level.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    den = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(episodes: Sequence[GoalEpisode]) -> dict[str, Any]:
    """Success rate with its 95% Wilson interval, mean steps to success and time per decision.

    :param episodes: the episodes of :func:`run_goal_episodes` (or a subset of them).
    :returns: ``episodes``, ``successes``, ``success_rate``, ``ci_low``, ``ci_high``,
        ``mean_steps_to_success`` (None without a success), ``decisions``, ``seconds_per_decision``.
    """
    n = len(episodes)
    wins = [e for e in episodes if e.success]
    low, high = wilson_interval(len(wins), n)
    decisions = sum(e.decisions for e in episodes)
    return {
        "episodes": n,
        "successes": len(wins),
        "success_rate": len(wins) / n if n else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "mean_steps_to_success": float(np.mean([e.steps for e in wins])) if wins else None,
        "decisions": decisions,
        "seconds_per_decision": sum(e.decision_seconds for e in episodes) / decisions if decisions else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """One line: ``success 87/100 = 87.0% (95% CI 79.0-92.2%), mean steps to success 5.8, 12.3 ms/decision``.

    :param summary: a dict of :func:`summarize`.
    """
    steps = summary["mean_steps_to_success"]
    per = summary["seconds_per_decision"]
    return (
        f"success {summary['successes']}/{summary['episodes']} = {summary['success_rate']:.1%} "
        f"(95% CI {summary['ci_low']:.1%}-{summary['ci_high']:.1%}), "
        f"mean steps to success {'-' if steps is None else f'{steps:.2f}'}, "
        f"{'-' if per is None else f'{per * 1e3:.2f} ms'} per decision"
    )


__all__ = [
    "METHODS",
    "GoalEpisode",
    "LatentMPC",
    "Plan",
    "RandomAgent",
    "format_summary",
    "run_goal_episodes",
    "summarize",
    "wilson_interval",
]
