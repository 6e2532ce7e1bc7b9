"""Rollout datasets: collection with Gymnasium vector envs, and the HDF5 file that holds them.

One file per dataset. Observations are stored once per time step as uint8
(``obs[e, t + 1]`` is the observation after ``actions[e, t]``), chunked and compressed, with
ground-truth states, rewards and, on request, the *twins*: for every group element ``g``
the observation re-rendered from ``g * state`` and the transformed action ``g * a``. The
file is written under a temporary name and renamed only when complete, so an interrupted
collection never leaves a file that looks finished and never clobbers an existing one.

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

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from sen_rl.groups import GRID_DIRECTIONS

FORMAT = "sen-rl-rollouts"
FORMAT_VERSION = 1


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

    def validate(self) -> None:
        import sen_rl  # noqa: F401  (registers the ids)

        if self.env_id not in gym.registry:
            known = ", ".join(k for k in gym.registry if k.startswith("SEN-"))
            raise ValueError(f"unknown env id {self.env_id!r}; sen-rl provides {known}")
        for name in ("episodes", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.vectorization not in ("async", "sync"):
            raise ValueError(f"vectorization={self.vectorization!r}: use 'async' or 'sync'")


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of one episode; the same whatever the number of parallel envs."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def allowed_actions(action_space: gym.Space, restriction: Sequence | None) -> np.ndarray | None:
    """Indices of the discrete actions a restriction allows (None: all of them).

    For the grid domains a restriction may name directions (``up``, ``right``, ``down``,
    ``left``): every object may then move in those directions only.
    """
    if restriction is None or len(restriction) == 0:
        return None
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError("--actions restricts discrete action spaces only; for Reacher use --positive-torque")
    n = int(action_space.n)
    out: set[int] = set()
    for item in restriction:
        text = str(item).strip().lower()
        if text in GRID_DIRECTIONS:
            if n % 4:
                raise ValueError(f"direction {text!r} only applies to the grid domains (object * 4 + direction)")
            d = GRID_DIRECTIONS.index(text)
            out.update(range(d, n, 4))
        elif text.lstrip("-").isdigit() and 0 <= int(text) < n:
            out.add(int(text))
        else:
            raise ValueError(
                f"action {item!r} is not allowed here: use indices in [0, {n - 1}]"
                + (f" or directions {', '.join(GRID_DIRECTIONS)}" if n % 4 == 0 else "")
            )
    return np.array(sorted(out), dtype=np.int64)


class ActionSampler:
    """Uniform random actions, optionally restricted, from a per-episode generator."""

    def __init__(self, space: gym.Space, allowed: np.ndarray | None, positive_torque: bool):
        if positive_torque and not (isinstance(space, gym.spaces.Box) and space.shape == (2,)):
            raise ValueError("positive_torque applies to Reacher's Box(2) torques only")
        self.space, self.allowed, self.positive_torque = space, allowed, positive_torque

    def __call__(self, rng: np.random.Generator):
        if isinstance(self.space, gym.spaces.Discrete):
            if self.allowed is None:
                return int(self.space.start + rng.integers(self.space.n))
            return int(self.allowed[rng.integers(len(self.allowed))])
        a = rng.uniform(self.space.low, self.space.high).astype(self.space.dtype)
        if self.positive_torque:
            a[1] = abs(a[1])
        return a


def _make_env_fn(env_id: str, env_kwargs: dict, steps: int):
    def make():
        import sen_rl  # noqa: F401  (workers start fresh: register the ids there too)

        return gym.make(env_id, max_episode_steps=steps + 1, **env_kwargs)

    return make


def _atomic_target(out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it")
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; give a file name such as {out / 'data.h5'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.with_name(f".{out.name}.tmp-{os.getpid()}")


def collect(config: CollectConfig, out: str | os.PathLike, overwrite: bool = False, progress: bool = True) -> Path:
    """Collect ``config.episodes`` rollouts into the HDF5 file ``out`` and return its path."""
    from tqdm.auto import tqdm

    import sen_rl

    config.validate()
    out = Path(out)
    tmp = _atomic_target(out, overwrite)

    probe = gym.make(config.env_id, **config.env_kwargs)
    obs_space, act_space = probe.observation_space, probe.action_space
    symmetry = probe.unwrapped.symmetry
    _, info0 = probe.reset(seed=0)
    state0 = np.asarray(info0["state"])
    probe.close()
    sampler = ActionSampler(act_space, allowed_actions(act_space, config.actions), config.positive_torque)

    n_envs = config.num_envs or min(8, os.cpu_count() or 1)
    n_envs = max(1, min(n_envs, config.episodes))
    fns = [_make_env_fn(config.env_id, config.env_kwargs, config.steps) for _ in range(n_envs)]
    if config.vectorization == "async" and n_envs > 1:
        # forkserver/spawn: a fork after a GL context exists in the parent can hang
        envs = gym.vector.AsyncVectorEnv(fns, context="forkserver")
    else:
        envs = gym.vector.SyncVectorEnv(fns)

    E, T, G = config.episodes, config.steps, len(symmetry.elements)
    act_shape, act_dtype = (act_space.shape, np.float32) if isinstance(act_space, gym.spaces.Box) else ((), np.int64)
    frame_chunk = (1, min(T + 1, 32), *obs_space.shape)
    try:
        with h5py.File(tmp, "w") as f:
            d_obs = f.create_dataset(
                "obs", (E, T + 1, *obs_space.shape), np.uint8, chunks=frame_chunk, compression="lzf"
            )
            d_act = f.create_dataset("actions", (E, T, *act_shape), act_dtype)
            d_state = f.create_dataset("states", (E, T + 1, *state0.shape), state0.dtype)
            d_rew = f.create_dataset("rewards", (E, T), np.float32)
            if config.twins:
                tw = f.create_group("twins")
                t_obs = tw.create_dataset(
                    "obs",
                    (E, T + 1, G, *obs_space.shape),
                    np.uint8,
                    chunks=(1, 1, G, *obs_space.shape),
                    compression="lzf",
                )
                t_act = tw.create_dataset("actions", (E, T, G, *act_shape), act_dtype)
                tw.create_dataset("elements", data=np.array(symmetry.elements, dtype=np.float64))
            attrs = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "sen_rl_version": sen_rl.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "symmetry": symmetry.name,
                "complete": False,
            }
            cfg = asdict(config)
            cfg["env_kwargs"] = json.dumps(cfg["env_kwargs"])
            cfg["actions"] = json.dumps(cfg["actions"])
            f.attrs.update({**cfg, **attrs})

            bar = tqdm(total=E, desc=f"collect {config.env_id}", unit="ep", disable=not progress)
            for start in range(0, E, n_envs):
                count = min(n_envs, E - start)
                eps = list(range(start, start + count))
                seeds = [episode_seed(config.seed, e) for e in eps] + [0] * (n_envs - count)
                rngs = [np.random.default_rng([config.seed, e, 1]) for e in eps]
                obs, info = envs.reset(seed=seeds, options={"warmup": config.warmup})
                ep_obs = np.empty((n_envs, T + 1, *obs_space.shape), np.uint8)
                ep_states = np.empty((n_envs, T + 1, *state0.shape), state0.dtype)
                ep_act = np.empty((n_envs, T, *act_shape), act_dtype)
                ep_rew = np.empty((n_envs, T), np.float32)
                ep_twins = np.empty((n_envs, T + 1, G, *obs_space.shape), np.uint8) if config.twins else None
                ep_obs[:, 0], ep_states[:, 0] = obs, info["state"]
                if config.twins:
                    ep_twins[:, 0] = np.stack(envs.call("render_twins"))
                for t in range(T):
                    acts = [sampler(r) for r in rngs]
                    acts += [acts[0]] * (n_envs - count)  # idle envs of the last batch: not recorded
                    action = np.array(acts, dtype=act_dtype)
                    obs, rew, _, _, info = envs.step(action)
                    ep_act[:, t], ep_obs[:, t + 1], ep_rew[:, t] = action, obs, rew
                    ep_states[:, t + 1] = info["state"]
                    if config.twins:
                        ep_twins[:, t + 1] = np.stack(envs.call("render_twins"))
                sl = slice(start, start + count)
                d_obs[sl], d_state[sl] = ep_obs[:count], ep_states[:count]
                d_act[sl], d_rew[sl] = ep_act[:count], ep_rew[:count]
                if config.twins:
                    t_obs[sl] = ep_twins[:count]
                    t_act[sl] = np.stack(
                        [np.asarray(symmetry.act_on_action(g, ep_act[:count])) for g in symmetry.elements],
                        axis=2,
                    ).astype(act_dtype)
                bar.update(count)
            bar.close()
            f.attrs["complete"] = True
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        envs.close()
    return out


class RolloutDataset:
    """Read-only view of a rollout file, validated on open.

    >>> ds = RolloutDataset("data/shapes.h5")       # doctest: +SKIP
    >>> ds.env_id, ds.episodes, ds.steps, ds.obs_shape
    """

    REQUIRED = ("obs", "actions", "states", "rewards")

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
        E, T1 = f["obs"].shape[:2]
        checks = {
            "actions": f["actions"].shape[:2] == (E, T1 - 1),
            "states": f["states"].shape[:2] == (E, T1),
            "rewards": f["rewards"].shape == (E, T1 - 1),
            "obs dtype uint8": f["obs"].dtype == np.uint8,
        }
        if "twins" in f:
            checks["twins/obs"] = f["twins/obs"].shape[:2] == (E, T1)
            checks["twins/actions"] = f["twins/actions"].shape[:2] == (E, T1 - 1)
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
        return int(self.file["obs"].shape[0])

    @property
    def steps(self) -> int:
        return int(self.file["obs"].shape[1]) - 1

    @property
    def obs_shape(self) -> tuple:
        return tuple(self.file["obs"].shape[2:])

    @property
    def has_twins(self) -> bool:
        return "twins" in self.file

    @property
    def attrs(self) -> dict:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.file.attrs.items()}

    def __getitem__(self, key: str) -> h5py.Dataset:
        return self.file[key]

    def make_env(self, **overrides) -> gym.Env:
        """An environment like the one that produced this dataset."""
        import sen_rl  # noqa: F401

        return gym.make(self.env_id, **{**self.env_kwargs, **overrides})

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        twins = ", twins" if self.has_twins else ""
        return f"RolloutDataset({self.path}, {self.env_id}, {self.episodes}x{self.steps}, obs {self.obs_shape}{twins})"
