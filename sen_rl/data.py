"""Rollout datasets: collection with Gymnasium vector envs, and the HDF5 file that holds them.

One file per dataset. Observations are stored once per time step as uint8
(``obs[e, t + 1]`` is the observation after ``actions[e, t]``), chunked and compressed, with
ground-truth states, rewards and, on request, the *twins*: for every group element ``g``
the observation re-rendered from ``g * state`` and the transformed action ``g * a``. The
file is written under a temporary name and renamed only when complete, so an interrupted
collection never leaves a file that looks finished and never clobbers an existing one
(:func:`sen_rl.fileio.atomic_write`; the next collection removes the temporary it left).

This module is the only one that names the file's HDF5 keys: readers go through the
:class:`RolloutDataset` accessors (``ds.obs``, ``ds.actions``, ``ds.twin_obs``...). It also
holds the training data plumbing: :class:`TransitionStream`, :func:`split_episodes` and
:func:`distinct_targets`.

Layout (``E`` episodes, ``T`` steps, ``G`` group elements)::

    obs            uint8   [E, T+1, H, W, C]
    actions        int64 or float32 [E, T, ...]
    states         float64 or int64 [E, T+1, ...]
    rewards        float32 [E, T]
    twins/obs      uint8   [E, T+1, G, H, W, C]     (only with twins)
    twins/actions          [E, T, G, ...]           (only with twins)
    twins/elements         [G, ...]                 the group elements, in env.symmetry order
    attrs: format, format_version, env_id, env_kwargs, episodes, steps, seed, warmup,
           actions (restriction), positive_torque, twins, sen_rl_version, complete
"""

from __future__ import annotations

import glob
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from sen_rl.domains import DOMAINS, ENV_IDS, domain_of
from sen_rl.fileio import atomic_write

FORMAT = "sen-rl-rollouts"
FORMAT_VERSION = 1

# -- the file's HDF5 keys: named here and nowhere else ---------------------------------------
OBS_KEY = "obs"
ACTIONS_KEY = "actions"
STATES_KEY = "states"
REWARDS_KEY = "rewards"
TWINS_GROUP = "twins"
TWIN_OBS_KEY = f"{TWINS_GROUP}/obs"
TWIN_ACTIONS_KEY = f"{TWINS_GROUP}/actions"
TWIN_ELEMENTS_KEY = f"{TWINS_GROUP}/elements"

# -- fixed numbers (changing one changes the datasets or the training runs they feed) --------
OBS_CHUNK_STEPS = 32
"""HDF5 chunk of ``obs``: one episode, this many consecutive frames (reads go episode by episode)."""
ACTION_SEED_TAG = 1
"""Episode ``e``'s random actions come from ``default_rng([seed, e, ACTION_SEED_TAG])``."""
SPLIT_SEED_TAG = 7
"""The train/validation split is ``default_rng([seed, SPLIT_SEED_TAG])``'s permutation of the episodes."""
STREAM_BLOCK_BYTES = 256 << 20
"""Observation bytes a :class:`TransitionStream` reads and shuffles at once: its memory bound."""
MAX_AUTO_ENVS = 8
"""``num_envs=0`` starts one env per CPU core, at most this many (more rarely pays: rendering is the cost)."""

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(obs, action, next_obs)`` of a batch of transitions, uint8 observations."""


class DatasetError(ValueError):
    """A dataset file that is missing, truncated, foreign or of the wrong kind."""


@dataclass
class CollectConfig:
    """What to collect. Every field is stored in the file's attributes."""

    env_id: str
    """Registered id, e.g. ``SEN-Shapes-v0``."""
    episodes: int
    """Number of recorded episodes."""
    steps: int
    """Recorded steps per episode (``steps + 1`` observations)."""
    seed: int = 0
    """Episode ``e`` is reset with a seed derived from ``(seed, e)``: independent of ``num_envs``."""
    warmup: int = 0
    """Random, unrecorded steps after each reset (the paper uses 50 for Reacher)."""
    actions: list | None = None
    """Restrict discrete actions: direction names (grid domains) or action indices."""
    positive_torque: bool = False
    """Reacher: only non-negative second-joint torques (the paper's limited-action set)."""
    twins: bool = False
    """Also store every group element's re-rendered observations and transformed actions."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for ``gym.make``, e.g. ``{"size": 64}``."""
    num_envs: int = 0
    """Parallel environments (0: one per CPU core, at most 8)."""
    vectorization: str = "async"
    """``async`` (subprocesses) or ``sync`` (one process)."""
    shard: str | None = None
    """``K/N``: write only part K (1..N) of the dataset, the same episodes, seeds and bytes as that slice of the
    whole collection (its episodes split into N contiguous runs); train and eval read the parts together."""
    symmetry: str | None = None
    """For a registered Gymnasium env that is not a sen-rl domain: ``module:NAME`` of its declared
    ``sen_rl.symmetry.Symmetry``; its pixels are collected as ``SEN-Custom-v0`` (whose keywords
    ``size``, ``frames``, ``env_kwargs`` the ``--env-kwargs`` then give)."""

    def resolve(self) -> CollectConfig:
        """This config with ``env_id`` + ``symmetry`` turned into ``SEN-Custom-v0`` and its keywords."""
        if self.symmetry is None:
            return self
        from dataclasses import replace

        from sen_rl.domains import CUSTOM

        kwargs = {"env": self.env_id, "symmetry": self.symmetry, **self.env_kwargs}
        return replace(self, env_id=CUSTOM.env_id, env_kwargs=kwargs, symmetry=None)

    def validate(self) -> None:
        from sen_rl.domains import CUSTOM

        if self.env_id not in (*ENV_IDS, CUSTOM.env_id):
            raise ValueError(
                f"unknown env id {self.env_id!r}; sen-rl provides {', '.join(ENV_IDS)}; for another registered "
                "Gymnasium env, declare its symmetry and pass --symmetry module:NAME (docs/custom_environments.md)"
            )
        for name in ("episodes", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.vectorization not in ("async", "sync"):
            raise ValueError(f"vectorization={self.vectorization!r}: use 'async' or 'sync'")
        self.episode_range()

    def episode_range(self) -> tuple[int, int]:
        """``(first, count)``: the episodes of the whole collection this file holds (all of them without a shard)."""
        if self.shard is None:
            return 0, int(self.episodes)
        k, n = parse_shard(self.shard)
        if n > self.episodes:
            raise ValueError(f"--shard {self.shard}: {n} parts of {self.episodes} episodes leave some parts empty")
        return (k - 1) * self.episodes // n, k * self.episodes // n - (k - 1) * self.episodes // n


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``, with ``1 <= K <= N``."""
    k, sep, n = str(text).partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit()) or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard {text!r}: write K/N with 1 <= K <= N, e.g. 1/4 for the first of four parts")
    return int(k), int(n)


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of one episode; the same whatever the number of parallel envs."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


# every direction name of the domain table: naming one where the domain has none is an error of its own
_ALL_DIRECTION_NAMES = frozenset(n for d in DOMAINS.values() for n in (d.direction_names or ()))


def allowed_actions(
    action_space: gym.Space, restriction: Sequence | None, direction_names: Sequence[str] | None = None
) -> np.ndarray | None:
    """Indices of the discrete actions a restriction allows (None: all of them).

    ``direction_names`` are the domain's move directions (``Domain.direction_names``: the
    grid domains' ``up``, ``right``, ``down``, ``left``), whose actions are
    ``object * len(direction_names) + direction``; a restriction may then name directions,
    and every object moves in those directions only.
    """
    if restriction is None or len(restriction) == 0:
        return None
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError("--actions restricts discrete action spaces only; for Reacher use --positive-torque")
    n = int(action_space.n)
    names = tuple(direction_names or ())
    if names and n % len(names):
        raise ValueError(f"{n} actions are not object * {len(names)} + direction for directions {names}")
    out: set[int] = set()
    for item in restriction:
        text = str(item).strip().lower()
        if text in names:
            d = names.index(text)
            out.update(range(d, n, len(names)))
        elif text in _ALL_DIRECTION_NAMES:
            raise ValueError(f"direction {text!r} only applies to the grid domains (object * 4 + direction)")
        elif text.lstrip("-").isdigit() and 0 <= int(text) < n:
            out.add(int(text))
        else:
            raise ValueError(
                f"action {item!r} is not allowed here: use indices in [0, {n - 1}]"
                + (f" or directions {', '.join(names)}" if names else "")
            )
    return np.array(sorted(out), dtype=np.int64)


class ActionSampler:
    """Uniform random actions, optionally restricted, from a per-episode generator."""

    def __init__(self, space: gym.Space, allowed: np.ndarray | None, positive_torque: bool):
        if positive_torque and not (isinstance(space, gym.spaces.Box) and space.shape == (2,)):
            raise ValueError("positive_torque applies to Reacher's Box(2) torques only")
        self.space, self.allowed, self.positive_torque = space, allowed, positive_torque

    def __call__(self, rng: np.random.Generator) -> int | np.ndarray:
        if isinstance(self.space, gym.spaces.Discrete):
            if self.allowed is None:
                return int(self.space.start + rng.integers(self.space.n))
            return int(self.allowed[rng.integers(len(self.allowed))])
        a = rng.uniform(self.space.low, self.space.high).astype(self.space.dtype)
        if self.positive_torque:
            a[1] = abs(a[1])
        return a

    def can_draw(self, actions) -> np.ndarray:
        """Whether each of ``actions`` (``[..., *space.shape]``) is one this sampler draws: with a
        restricted training set's sampler, the evaluation's unseen actions are the others."""
        a = np.asarray(actions)
        if isinstance(self.space, gym.spaces.Discrete):
            return np.ones(a.shape, dtype=bool) if self.allowed is None else np.isin(a, self.allowed)
        lead = a.shape[: a.ndim - len(self.space.shape)]
        if a.shape[len(lead) :] != self.space.shape:
            raise ValueError(f"actions of shape {a.shape} do not end in the action shape {self.space.shape}")
        return a[..., 1] >= 0 if self.positive_torque else np.ones(lead, dtype=bool)


# --------------------------------------------------------------------------- collection


def _make_env_fn(env_id: str, env_kwargs: dict, steps: int) -> Callable[[], gym.Env]:
    def make():
        import sen_rl  # noqa: F401  (workers start fresh: register the ids there too)

        return gym.make(env_id, max_episode_steps=steps + 1, **env_kwargs)

    return make


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse to write a rollout file over an existing one (unless ``overwrite``) or onto a folder."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it")
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; give a file name such as {out / 'data.h5'}")


@dataclass
class _Layout:
    """Shapes and dtypes of one collection's datasets, read from a probe env."""

    obs_shape: tuple
    act_shape: tuple
    act_dtype: type
    state0: np.ndarray
    symmetry: Any

    @classmethod
    def probe(cls, config: CollectConfig) -> tuple[_Layout, gym.Space]:
        probe = gym.make(config.env_id, **config.env_kwargs)
        try:
            obs_space, act_space = probe.observation_space, probe.action_space
            symmetry = probe.unwrapped.symmetry
            _, info0 = probe.reset(seed=0)
            state0 = np.asarray(info0["state"])
        finally:
            probe.close()
        if isinstance(act_space, gym.spaces.Box):
            act_shape, act_dtype = act_space.shape, np.float32
        else:
            act_shape, act_dtype = (), np.int64
        return cls(tuple(obs_space.shape), tuple(act_shape), act_dtype, state0, symmetry), act_space


def _vector_env(config: CollectConfig, n_envs: int) -> gym.vector.VectorEnv:
    fns = [_make_env_fn(config.env_id, config.env_kwargs, config.steps) for _ in range(n_envs)]
    if config.vectorization == "async" and n_envs > 1:
        # forkserver/spawn: a fork after a GL context exists in the parent can hang
        return gym.vector.AsyncVectorEnv(fns, context="forkserver")
    return gym.vector.SyncVectorEnv(fns)


def _create_datasets(f: h5py.File, config: CollectConfig, lay: _Layout) -> dict[str, h5py.Dataset]:
    E, T, G = config.episode_range()[1], config.steps, len(lay.symmetry.elements)
    frame_chunk = (1, min(T + 1, OBS_CHUNK_STEPS), *lay.obs_shape)
    d = {
        OBS_KEY: f.create_dataset(OBS_KEY, (E, T + 1, *lay.obs_shape), np.uint8, chunks=frame_chunk, compression="lzf"),
        ACTIONS_KEY: f.create_dataset(ACTIONS_KEY, (E, T, *lay.act_shape), lay.act_dtype),
        STATES_KEY: f.create_dataset(STATES_KEY, (E, T + 1, *lay.state0.shape), lay.state0.dtype),
        REWARDS_KEY: f.create_dataset(REWARDS_KEY, (E, T), np.float32),
    }
    if config.twins:
        # one chunk per time step holds all G twins: evaluation reads every element's twin of a frame
        d[TWIN_OBS_KEY] = f.create_dataset(
            TWIN_OBS_KEY,
            (E, T + 1, G, *lay.obs_shape),
            np.uint8,
            chunks=(1, 1, G, *lay.obs_shape),
            compression="lzf",
        )
        d[TWIN_ACTIONS_KEY] = f.create_dataset(TWIN_ACTIONS_KEY, (E, T, G, *lay.act_shape), lay.act_dtype)
        f.create_dataset(TWIN_ELEMENTS_KEY, data=np.array(lay.symmetry.elements, dtype=np.float64))
    return d


def _attributes(config: CollectConfig, lay: _Layout) -> dict[str, Any]:
    import sen_rl

    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sen_rl_version": sen_rl.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "symmetry": lay.symmetry.name,
        "complete": False,
    }
    cfg = asdict(config)
    cfg["env_kwargs"] = json.dumps(cfg["env_kwargs"])
    cfg["actions"] = json.dumps(cfg["actions"])
    cfg.pop("symmetry")  # resolved into env_kwargs by CollectConfig.resolve
    # a shard's ``episodes`` are the ones it holds; the whole collection's count and its place in it beside
    first, count = config.episode_range()
    cfg.update(episodes=count, total_episodes=config.episodes, first_episode=first, shard=config.shard or "")
    return {**cfg, **attrs}


def _collect_batch(
    envs: gym.vector.VectorEnv,
    config: CollectConfig,
    lay: _Layout,
    sampler: ActionSampler,
    d: dict[str, h5py.Dataset],
    start: int,
    count: int,
    first: int = 0,
) -> None:
    """Roll out episodes ``start .. start + count - 1`` in parallel and write them from row ``start - first``."""
    n_envs, T, G = envs.num_envs, config.steps, len(lay.symmetry.elements)
    eps = list(range(start, start + count))
    seeds = [episode_seed(config.seed, e) for e in eps] + [0] * (n_envs - count)
    rngs = [np.random.default_rng([config.seed, e, ACTION_SEED_TAG]) for e in eps]
    obs, info = envs.reset(seed=seeds, options={"warmup": config.warmup})
    ep_obs = np.empty((n_envs, T + 1, *lay.obs_shape), np.uint8)
    ep_states = np.empty((n_envs, T + 1, *lay.state0.shape), lay.state0.dtype)
    ep_act = np.empty((n_envs, T, *lay.act_shape), lay.act_dtype)
    ep_rew = np.empty((n_envs, T), np.float32)
    ep_twins = np.empty((n_envs, T + 1, G, *lay.obs_shape), np.uint8) if config.twins else None
    ep_obs[:, 0], ep_states[:, 0] = obs, info["state"]
    if config.twins:
        ep_twins[:, 0] = np.stack(envs.call("render_twins"))
    for t in range(T):
        acts = [sampler(r) for r in rngs]
        acts += [acts[0]] * (n_envs - count)  # idle envs of the last batch: not recorded
        action = np.array(acts, dtype=lay.act_dtype)
        obs, rew, _, _, info = envs.step(action)
        ep_act[:, t], ep_obs[:, t + 1], ep_rew[:, t] = action, obs, rew
        ep_states[:, t + 1] = info["state"]
        if config.twins:
            ep_twins[:, t + 1] = np.stack(envs.call("render_twins"))
    sl = slice(start - first, start - first + count)
    d[OBS_KEY][sl], d[STATES_KEY][sl] = ep_obs[:count], ep_states[:count]
    d[ACTIONS_KEY][sl], d[REWARDS_KEY][sl] = ep_act[:count], ep_rew[:count]
    if config.twins:
        d[TWIN_OBS_KEY][sl] = ep_twins[:count]
        d[TWIN_ACTIONS_KEY][sl] = np.stack(
            [np.asarray(lay.symmetry.act_on_action(g, ep_act[:count])) for g in lay.symmetry.elements],
            axis=2,
        ).astype(lay.act_dtype)


def collect(config: CollectConfig, out: str | os.PathLike, overwrite: bool = False, progress: bool = True) -> Path:
    """Collect ``config.episodes`` rollouts (or the part ``config.shard`` of them) into ``out``; returns its path.

    The file appears only when complete: it is written as a hidden temporary beside ``out``
    and renamed (:func:`sen_rl.fileio.atomic_write`, which also removes the temporaries that
    killed collections left behind).
    """
    from tqdm.auto import tqdm

    config = config.resolve()
    config.validate()
    out = Path(out)
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)

    lay, act_space = _Layout.probe(config)
    directions = domain_of(config.env_id).direction_names
    sampler = ActionSampler(act_space, allowed_actions(act_space, config.actions, directions), config.positive_torque)

    first, total = config.episode_range()
    n_envs = config.num_envs or min(MAX_AUTO_ENVS, os.cpu_count() or 1)
    n_envs = max(1, min(n_envs, total))
    envs = _vector_env(config, n_envs)
    try:
        with atomic_write(out) as tmp, h5py.File(tmp, "w") as f:
            d = _create_datasets(f, config, lay)
            f.attrs.update(_attributes(config, lay))
            part = f" part {config.shard}" if config.shard else ""
            with tqdm(total=total, desc=f"collect {config.env_id}{part}", unit="ep", disable=not progress) as bar:
                for start in range(first, first + total, n_envs):
                    count = min(n_envs, first + total - start)
                    _collect_batch(envs, config, lay, sampler, d, start, count, first)
                    bar.update(count)
            f.attrs["complete"] = True
    finally:
        envs.close()
    return out


# --------------------------------------------------------------------------- reading


class RolloutDataset:
    """Read-only view of a rollout file, validated on open.

    >>> ds = RolloutDataset("data/shapes.h5")       # doctest: +SKIP
    >>> ds.env_id, ds.episodes, ds.steps, ds.obs_shape
    >>> ds.obs[0, :5]                               # the first 5 frames of episode 0

    The datasets are read through :attr:`obs`, :attr:`actions`, :attr:`states`,
    :attr:`rewards` and, with twins, :attr:`twin_obs`, :attr:`twin_actions` and
    :attr:`twin_elements` (h5py datasets: index them to read). Use it as a context manager,
    or :meth:`close` it.
    """

    REQUIRED = (OBS_KEY, ACTIONS_KEY, STATES_KEY, REWARDS_KEY)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"dataset {self.path} does not exist; create one with `sen-rl collect`")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise DatasetError(
                f"{self.path} is not a readable HDF5 file (truncated or foreign: {exc}); "
                "collect it again with `sen-rl collect`"
            ) from None
        try:
            self._validate()
        except Exception:
            self.file.close()
            raise

    def _validate(self) -> None:
        f, p = self.file, self.path
        if f.attrs.get("format") != FORMAT:
            raise DatasetError(f"{p} is not a sen-rl rollout file (no format={FORMAT!r} attribute)")
        if int(f.attrs.get("format_version", -1)) > FORMAT_VERSION:
            raise DatasetError(f"{p} has format version {f.attrs['format_version']}; upgrade sen-rl to read it")
        if not bool(f.attrs.get("complete", False)):
            raise DatasetError(f"{p} is incomplete (its collection was interrupted); collect it again")
        missing = [k for k in self.REQUIRED if k not in f]
        if missing:
            raise DatasetError(f"{p} lacks the datasets {missing}; it is truncated or was not written by sen-rl")
        E, T1 = f[OBS_KEY].shape[:2]
        checks = {
            ACTIONS_KEY: f[ACTIONS_KEY].shape[:2] == (E, T1 - 1),
            STATES_KEY: f[STATES_KEY].shape[:2] == (E, T1),
            REWARDS_KEY: f[REWARDS_KEY].shape == (E, T1 - 1),
            f"{OBS_KEY} dtype uint8": f[OBS_KEY].dtype == np.uint8,
        }
        if TWINS_GROUP in f:
            checks[TWIN_OBS_KEY] = f[TWIN_OBS_KEY].shape[:2] == (E, T1)
            checks[TWIN_ACTIONS_KEY] = f[TWIN_ACTIONS_KEY].shape[:2] == (E, T1 - 1)
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise DatasetError(f"{p} has inconsistent shapes in {bad}; it is corrupt")
        if (E, T1 - 1) != (int(f.attrs["episodes"]), int(f.attrs["steps"])):
            raise DatasetError(f"{p}: shapes disagree with its episodes/steps attributes; it is corrupt")

    # -- metadata ---------------------------------------------------------------------------
    @property
    def env_id(self) -> str:
        return str(self.file.attrs["env_id"])

    @property
    def env_kwargs(self) -> dict:
        return json.loads(self.file.attrs["env_kwargs"])

    @property
    def episodes(self) -> int:
        return int(self.obs.shape[0])

    @property
    def steps(self) -> int:
        return int(self.obs.shape[1]) - 1

    @property
    def obs_shape(self) -> tuple:
        return tuple(self.obs.shape[2:])

    @property
    def has_twins(self) -> bool:
        return TWINS_GROUP in self.file

    @property
    def attrs(self) -> dict:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.file.attrs.items()}

    # -- datasets ---------------------------------------------------------------------------
    @property
    def obs(self) -> h5py.Dataset:
        """uint8 ``[E, T+1, H, W, C]``: ``obs[e, t + 1]`` is the observation after ``actions[e, t]``."""
        return self.file[OBS_KEY]

    @property
    def actions(self) -> h5py.Dataset:
        """``[E, T, ...]``: int64 indices (discrete) or float32 vectors (Box)."""
        return self.file[ACTIONS_KEY]

    @property
    def states(self) -> h5py.Dataset:
        """``[E, T+1, ...]``: the ground-truth world state of every observation."""
        return self.file[STATES_KEY]

    @property
    def rewards(self) -> h5py.Dataset:
        """float32 ``[E, T]``."""
        return self.file[REWARDS_KEY]

    def _twins(self, key: str) -> h5py.Dataset:
        if not self.has_twins:
            raise DatasetError(f"{self.path} has no twins; collect it with `sen-rl collect --twins`")
        return self.file[key]

    @property
    def twin_obs(self) -> h5py.Dataset:
        """uint8 ``[E, T+1, G, H, W, C]``: ``obs[e, t]`` re-rendered from every ``g * state``."""
        return self._twins(TWIN_OBS_KEY)

    @property
    def twin_actions(self) -> h5py.Dataset:
        """``[E, T, G, ...]``: ``g * actions[e, t]`` for every element ``g``."""
        return self._twins(TWIN_ACTIONS_KEY)

    @property
    def twin_elements(self) -> h5py.Dataset:
        """float64 ``[G, ...]``: the group elements of the twins, in ``env.symmetry`` order."""
        return self._twins(TWIN_ELEMENTS_KEY)

    def __getitem__(self, key: str) -> h5py.Dataset:
        """The raw HDF5 object under ``key``; kept for old callers, use the accessors above."""
        return self.file[key]

    def make_env(self, **overrides: Any) -> gym.Env:
        """An environment like the one that produced this dataset."""
        import sen_rl  # noqa: F401

        return gym.make(self.env_id, **{**self.env_kwargs, **overrides})

    def action_sampler(self) -> ActionSampler:
        """A sampler with the restriction this file's actions were drawn under (its ``actions`` and
        ``positive_torque`` attributes): :meth:`ActionSampler.can_draw` tells which actions it holds."""
        env = self.make_env()
        try:
            space = env.action_space
        finally:
            env.close()
        restriction = json.loads(self.file.attrs.get("actions", "null"))
        directions = domain_of(self.env_id).direction_names
        return ActionSampler(
            space, allowed_actions(space, restriction, directions), bool(self.file.attrs.get("positive_torque", False))
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has released the file."""
        return not self.file.id.valid

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> RolloutDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        twins = ", twins" if self.has_twins else ""
        return f"RolloutDataset({self.path}, {self.env_id}, {self.episodes}x{self.steps}, obs {self.obs_shape}{twins})"


class _ConcatArray:
    """Read-only arrays of several files joined along the episode axis, indexed like an h5py dataset.

    The first index is an episode, a slice of episodes (step 1) or absent; the others go to
    each file as they are. Only the files a read touches are read.
    """

    def __init__(self, parts: Sequence[h5py.Dataset]):
        self.parts = list(parts)
        self.bounds = np.cumsum([0] + [len(d) for d in self.parts])
        self.shape = (int(self.bounds[-1]), *self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        head, rest = (key[0], key[1:]) if key else (slice(None), ())
        if head is Ellipsis:
            head, rest = slice(None), key
        if isinstance(head, int | np.integer):
            e = int(head) + (len(self) if head < 0 else 0)
            if not 0 <= e < len(self):
                raise IndexError(f"episode {head} out of range for {len(self)} episodes")
            i = int(np.searchsorted(self.bounds, e, side="right")) - 1
            return self.parts[i][(e - int(self.bounds[i]), *rest)]
        if not isinstance(head, slice) or head.step not in (None, 1):
            raise TypeError(f"episodes of several files are read by index or by a step-1 slice, not {head!r}")
        lo, hi, _ = head.indices(len(self))
        out = []
        for i, d in enumerate(self.parts):
            a, b = max(lo, int(self.bounds[i])), min(hi, int(self.bounds[i + 1]))
            if a < b:
                out.append(d[(slice(a - int(self.bounds[i]), b - int(self.bounds[i])), *rest)])
        if not out:  # an empty range: the right shape and dtype, from the first file
            return self.parts[0][(slice(0, 0), *rest)]
        return np.concatenate(out) if len(out) > 1 else out[0]


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Dataset paths: each item a file or a glob (``data/part*.h5``, matches sorted by name)."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[Path] = []
    for item in items:
        text = str(item)
        if any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"no dataset matches {text!r}; check the pattern or collect them first")
            out += matches
        else:
            out.append(Path(text))
    if not out:
        raise ValueError("no dataset given: pass one or more .h5 files or a glob")
    if len(set(out)) < len(out):
        raise ValueError(f"a dataset is given twice among {[str(p) for p in out]}; each file counts once")
    return out


class ConcatRolloutDataset:
    """Several rollout files read as one dataset: their episodes one after another.

    The files must agree on everything a batch mixes (env id and keywords, steps, observation,
    action and state layouts, twins); a file that does not is named in the error. Shards of one
    collection (``sen-rl collect --shard K/N``) are put in episode order whatever order they are
    given in, so that their union reads exactly like the unsharded file; the same shard twice is
    refused. Same accessors as :class:`RolloutDataset`.
    """

    AGREE = ("env_id", "env_kwargs", "steps", "obs_shape", "action layout", "state layout", "has_twins")

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self.files: list[RolloutDataset] = []
        try:
            for path in paths:
                self.files.append(RolloutDataset(path))
            self._order_shards()
            self._check_agree()
        except Exception:
            self.close()
            raise
        self.path = " + ".join(str(f.path) for f in self.files)
        self._arrays: dict[str, _ConcatArray] = {}

    @staticmethod
    def _settings(ds: RolloutDataset) -> dict[str, Any]:
        return {
            "env_id": ds.env_id,
            "env_kwargs": ds.env_kwargs,
            "steps": ds.steps,
            "obs_shape": ds.obs_shape,
            "action layout": (tuple(ds.actions.shape[2:]), str(ds.actions.dtype)),
            "state layout": (tuple(ds.states.shape[2:]), str(ds.states.dtype)),
            "has_twins": ds.has_twins,
        }

    def _check_agree(self) -> None:
        ref = self._settings(self.files[0])
        for ds in self.files[1:]:
            mine = self._settings(ds)
            bad = [k for k in self.AGREE if mine[k] != ref[k]]
            if bad:
                diffs = "; ".join(f"{k} {mine[k]!r} against {ref[k]!r}" for k in bad)
                raise DatasetError(
                    f"{ds.path} cannot be read as one dataset with {self.files[0].path}: {diffs}. "
                    "Train on files of the same environment, size and layout (e.g. shards of one collection)"
                )
        if ref["has_twins"]:
            elements = [np.asarray(ds.twin_elements[()]) for ds in self.files]
            if any(not np.array_equal(e, elements[0]) for e in elements[1:]):
                raise DatasetError(f"the twins of {self.path} were made for different group elements")

    def _order_shards(self) -> None:
        """Shards of one collection in episode order; the same episodes twice refused."""
        keys = ("env_id", "env_kwargs", "seed", "total_episodes", "steps", "warmup", "actions", "positive_torque")
        attrs = [f.attrs for f in self.files]
        if not all(a.get("shard") for a in attrs) or any(any(a.get(k) != attrs[0].get(k) for k in keys) for a in attrs):
            return  # not shards of one collection: the order given
        self.files.sort(key=lambda f: int(f.attrs["first_episode"]))
        for prev, nxt in zip(self.files, self.files[1:], strict=False):
            if int(nxt.attrs["first_episode"]) < int(prev.attrs["first_episode"]) + prev.episodes:
                raise DatasetError(
                    f"{prev.path} (shard {prev.attrs['shard']}) and {nxt.path} (shard {nxt.attrs['shard']}) hold "
                    "the same episodes; give each shard once"
                )

    def _array(self, name: str) -> _ConcatArray:
        if name not in self._arrays:
            self._arrays[name] = _ConcatArray([getattr(f, name) for f in self.files])
        return self._arrays[name]

    # -- the RolloutDataset interface ----------------------------------------------------------
    env_id = property(lambda self: self.files[0].env_id)
    env_kwargs = property(lambda self: self.files[0].env_kwargs)
    steps = property(lambda self: self.files[0].steps)
    obs_shape = property(lambda self: self.files[0].obs_shape)
    has_twins = property(lambda self: self.files[0].has_twins)
    episodes = property(lambda self: sum(f.episodes for f in self.files))
    obs = property(lambda self: self._array("obs"))
    actions = property(lambda self: self._array("actions"))
    states = property(lambda self: self._array("states"))
    rewards = property(lambda self: self._array("rewards"))
    twin_obs = property(lambda self: self._array("twin_obs"))
    twin_actions = property(lambda self: self._array("twin_actions"))
    twin_elements = property(lambda self: self.files[0].twin_elements)

    @property
    def attrs(self) -> dict:
        """The first file's attributes, with ``episodes`` the total."""
        return {**self.files[0].attrs, "episodes": self.episodes}

    def make_env(self, **overrides: Any) -> gym.Env:
        return self.files[0].make_env(**overrides)

    @property
    def closed(self) -> bool:
        return all(f.closed for f in self.files)

    def close(self) -> None:
        for f in self.files:
            if not f.closed:
                f.close()

    def __enter__(self) -> ConcatRolloutDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConcatRolloutDataset({len(self.files)} files, {self.env_id}, {self.episodes}x{self.steps})"


def open_rollouts(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
) -> RolloutDataset | ConcatRolloutDataset:
    """One dataset from a file, several files or globs: a :class:`RolloutDataset` for one file."""
    files = expand_paths(paths)
    return RolloutDataset(files[0]) if len(files) == 1 else ConcatRolloutDataset(files)


# --------------------------------------------------------------------------- training data


class TransitionStream:
    """Batches ``(obs, action, next_obs)`` of uint8 numpy arrays from a subset of episodes.

    Episodes are read in contiguous blocks of about ``block_bytes`` of observations; the
    transitions of a block are shuffled and gathered batch by batch, so memory holds one
    block plus one batch whatever the dataset's size. ``ds`` needs ``obs``, ``actions``,
    ``steps`` and ``obs_shape`` (a :class:`RolloutDataset`).
    """

    def __init__(
        self, ds: RolloutDataset, episodes: np.ndarray, batch_size: int, block_bytes: int = STREAM_BLOCK_BYTES
    ):
        self.ds, self.episodes, self.batch_size = ds, np.sort(episodes), batch_size
        self.T = ds.steps
        episode_bytes = (self.T + 1) * int(np.prod(ds.obs_shape))
        self.block_eps = max(1, block_bytes // episode_bytes, -(-batch_size // self.T))

    def __len__(self) -> int:
        return max(1, len(self.episodes) * self.T // self.batch_size)

    def _read(self, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(eps[0]), int(eps[-1]) + 1
        keep = eps - lo
        if len(keep) == hi - lo:  # a contiguous run: one slice, no copy
            return self.ds.obs[lo:hi], self.ds.actions[lo:hi]
        return self.ds.obs[lo:hi][keep], self.ds.actions[lo:hi][keep]

    def epoch(self, rng: np.random.Generator, max_transitions: int | None = None) -> Iterator[Batch]:
        """One pass over the episodes' transitions (at most ``max_transitions``), in ``rng``'s order."""
        B, T = self.batch_size, self.T
        blocks = [self.episodes[i : i + self.block_eps] for i in range(0, len(self.episodes), self.block_eps)]
        budget = max_transitions if max_transitions is not None else math.inf
        carry = None  # fewer than B transitions left over from the previous block
        for b in rng.permutation(len(blocks)):
            if budget < B:
                break
            obs, act = self._read(blocks[b])
            e, t = np.divmod(rng.permutation(len(obs) * T), T)
            pos = 0
            if carry is not None:
                need = B - len(carry[0])
                part = (obs[e[:need], t[:need]], act[e[:need], t[:need]], obs[e[:need], t[:need] + 1])
                carry = tuple(np.concatenate([c, x]) for c, x in zip(carry, part, strict=True))
                pos = need
                if len(carry[0]) == B:
                    budget -= B
                    yield carry
                    carry = None
            while pos + B <= len(e) and budget >= B:
                ei, ti = e[pos : pos + B], t[pos : pos + B]
                budget -= B
                yield obs[ei, ti], act[ei, ti], obs[ei, ti + 1]
                pos += B
            if pos < len(e) and budget >= B:
                ei, ti = e[pos:], t[pos:]
                carry = (obs[ei, ti], act[ei, ti], obs[ei, ti + 1])
        if carry is not None and len(carry[0]) >= 2 and budget >= len(carry[0]):
            yield carry


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation episode indices, split by whole episodes."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng([seed, SPLIT_SEED_TAG]).permutation(n_episodes)
    n_val = int(round(n_episodes * val_fraction))
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n_episodes - n_val < 1:
        raise ValueError(f"dataset has {n_episodes} episodes: too few to hold out {n_val} for validation")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def group_augment(
    batch: Batch,
    elements: Sequence[Any],
    act_on_observation: Callable[[Any, np.ndarray], np.ndarray],
    act_on_action: Callable[[Any, np.ndarray], np.ndarray],
    rng: np.random.Generator,
) -> Batch:
    """Each transition moved by a group element of its own, drawn uniformly from ``elements`` by ``rng``.

    Both of its observations go through ``act_on_observation(g, .)`` and its action through
    ``act_on_action(g, .)``: for an equivariant world, the transition the env would have given
    from the moved state. Rows keep their order; the input is not changed.
    """
    obs, act, nxt = batch
    act = np.asarray(act)
    which = rng.integers(len(elements), size=len(obs))
    out_obs, out_act, out_nxt = np.empty_like(obs), np.empty_like(act), np.empty_like(nxt)
    for i, g in enumerate(elements):
        rows = np.flatnonzero(which == i)
        if rows.size:
            out_obs[rows] = act_on_observation(g, obs[rows])
            out_nxt[rows] = act_on_observation(g, nxt[rows])
            out_act[rows] = act_on_action(g, act[rows])
    return out_obs, out_act, out_nxt


def distinct_targets(batch: Batch) -> Batch:
    """Keep one transition per distinct next observation.

    Blocked moves repeat a state, so transitions of the same episode often share their next
    observation; each of them then has a rival prediction of the very same target and Hits@1
    scores about half of them as misses however good the model is (6% of a 2D Shapes
    validation batch). The paper's evaluation uses one transition per episode, which avoids
    this; here, duplicates are dropped.
    """
    obs, act, nxt = batch
    _, first = np.unique(nxt.reshape(len(nxt), -1), axis=0, return_index=True)
    keep = np.sort(first)
    return obs[keep], act[keep], nxt[keep]
