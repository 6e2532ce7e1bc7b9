"""Reinforcement learning on SEN-Reacher-v0's own reward: pixels, SEN latents, the true state.

    python -m benchmarks.rl_reacher --preset cpu --seeds 0 1 2       # the measured run (about an hour)
    python -m benchmarks.rl_reacher --preset smoke --seeds 0          # seconds, for the tests
    python -m benchmarks.rl_reacher --preset cpu --measure            # per-step costs and the projected total

The same SB3 algorithm (SAC), with the same hyper-parameters (:data:`PRESETS`: only the policy's
input differs), for the same number of environment steps, on the preset's Reacher (64x64 frames,
the default goal (0.2, 0.2), episodes of 50 steps):

- ``pixels``: the stacked frames through SB3's ``CnnPolicy`` (NatureCNN, trained from scratch);
- ``sen_frozen``: the SEN latent (32 floats) of a frozen world model through
  :class:`~sen_rl.wrappers.SENWorldModel`, with ``MlpPolicy``;
- ``sen_finetune``: the pixels through ``CnnPolicy`` with the same SEN as its features extractor
  (:class:`~sen_rl.agents.sb3.SENFeaturesExtractor`, ``fine_tune=True``);
- ``state``: the env's 12-float world state (``get_state()``, :class:`StateObservation`) with
  ``MlpPolicy``: the ceiling;
- ``random``: uniformly random torques, the floor (evaluated only); and ``zero``: no torque at
  all (evaluated only), a reference that shows how much of the return the control cost alone
  decides (uniform torques cost ``E|a|^2 = 2/3`` a step).

First it collects a Reacher dataset and trains a ``sen`` world model at the preset's model size
(the paper's Reacher sets: episodes of 10 recorded steps after 50 random warm-up steps), and
scores it one step ahead (Hits@1, MRR, HH@1) on a held-out set, and probes its latent
linearly for the joint angles and velocities (:func:`latent_probe`, beside an untrained SEN's),
so that the report says how good the latents the agents read are. The datasets, the world
model and every run's result are cached in the workdir (default ``runs/rl_reacher/<preset>``):
an interrupted run continues where it stopped, and a run made with other settings is redone.

Evaluation: every ``eval_every`` env steps, the mean return of ``eval_episodes`` deterministic
episodes (the policy's mean action) from fixed reset seeds, the same for every condition; at
the end, ``final_eval_episodes`` more from other fixed seeds, which make the table. Outputs:

- ``<workdir>/rl_reacher.md``: the table, in the layout of rl-baselines3-zoo's benchmark
  (algo, env, obs, mean_reward, std_reward over all final episodes of all seeds, n_timesteps,
  eval_episodes, wall time), plus each row's fraction of the state ceiling's gain over random,
  ``(R - R_random) / (R_state - R_random)``, the command, preset, machine and timings;
  also printed, and its numbers in ``rl_reacher.json``;
- the learning curves (mean and 95% t-interval over seeds, x = env steps):
  ``docs/img/rl_reacher_cpu.png`` for the cpu preset, ``<workdir>/rl_reacher_<preset>.png`` else;
- TensorBoard logs of every SAC run under ``<workdir>/tb`` (``eval/mean_return`` included).

Torch runs on ``--threads`` threads (default 1): on the shared 2-core machine, two threads made
a batch-1 encode 50x slower (spin-waiting threads on busy cores) and no gradient step faster.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sen_rl.domains import domain_of
from sen_rl.fileio import atomic_write, atomic_write_text

ENV_ID = "SEN-Reacher-v0"
#: the repository's figures; only the cpu preset writes there
IMG_DIR = Path(__file__).resolve().parents[1] / "docs" / "img"
#: the learned conditions (SAC), in table order; "state" is the ceiling
CONDITIONS = ("pixels", "sen_frozen", "sen_finetune", "state")
#: policies that are evaluated only
BASELINES = ("random", "zero")
#: the order runs are made in, each seed in turn: cheapest first
RUN_ORDER = ("state", "random", "zero", "sen_frozen", "pixels", "sen_finetune")
OBS_LABELS = {
    "pixels": "pixels, CnnPolicy (NatureCNN)",
    "sen_frozen": "frozen SEN latent (SENWorldModel), MlpPolicy",
    "sen_finetune": "pixels, CnnPolicy with the SEN fine-tuned (SENFeaturesExtractor)",
    "state": "true state (12 floats), MlpPolicy: ceiling",
    "random": "uniform random torques: floor",
    "zero": "zero torque (reference)",
}
#: reset seeds of the evaluation episodes: the learning curves', and the final table's
CURVE_EVAL_SEED = 10_000
FINAL_EVAL_SEED = 20_000


@dataclass(frozen=True)
class Preset:
    """Sizes of one preset. ``sac`` is shared by every condition (the buffer holds every step)."""

    name: str
    model_preset: str  # sen-rl model size of the world model (its env kwargs come from the domain)
    wm_episodes: int  # training set: episodes of the domain's episode_steps after its warmup
    wm_eval_episodes: int  # held-out set for the one-step Hits@1 / MRR
    wm_epochs: int
    wm_batch: int
    steps: int  # env steps of every SAC run
    eval_every: int
    eval_episodes: int  # per point of the learning curves
    final_eval_episodes: int  # per seed, for the table
    max_episode_steps: int  # TimeLimit of the env (50: the env's own)
    collect_envs: int  # parallel collection envs (0: one per core)
    sac: dict = field(default_factory=dict)

    def sac_kwargs(self, steps: int) -> dict:
        return {"buffer_size": steps, **self.sac}


#: SAC's settings, fixed before any run and shared by all conditions: SB3's defaults, with
#: rl-baselines3-zoo's PyBullet SAC values for learning rate, gamma and tau, an initial entropy
#: coefficient of 0.1 (the default 1.0 is not tuned down in a thousand updates), and a small
#: batch and one update every 4 steps, which is what 2 CPU cores afford for the pixel policies
SAC_CPU = dict(
    learning_rate=7.3e-4,
    batch_size=32,
    learning_starts=500,
    train_freq=4,
    gradient_steps=1,
    gamma=0.98,
    tau=0.02,
    ent_coef="auto_0.1",
)

# The cpu budget comes from `--measure` on the shared 2-core machine (Intel Xeon, AVX512, torch on
# 1 thread, load average about 3 from other jobs), per env step / per gradient step (batch 32) /
# per evaluation step: pixels 2.1 / 67 / 3.4 ms, sen_frozen 4.2 / 6 / 4.4 ms, sen_finetune
# 3.5 / 247 / 10.5 ms, state 2.1 / 5 / 2.4 ms; the world model took 6.2 min (collect 27 s,
# train 5.7 min). 8,000 steps with one update every 4 steps after 500 are 1,875 updates a run:
# projected 13 min a seed for the four conditions with their evaluations, 45 min in all for 3
# seeds, which leaves a third of the hour for a busier machine.
PRESETS = {
    "smoke": Preset(
        name="smoke",
        model_preset="smoke",
        wm_episodes=20,
        wm_eval_episodes=10,
        wm_epochs=1,
        wm_batch=32,
        steps=48,
        eval_every=24,
        eval_episodes=1,
        final_eval_episodes=2,
        max_episode_steps=8,
        collect_envs=1,
        sac={**SAC_CPU, "batch_size": 8, "learning_starts": 24},
    ),
    "cpu": Preset(
        name="cpu",
        model_preset="cpu",
        wm_episodes=1000,  # the cpu preset of benchmarks/reproduce.py's "reacher"
        wm_eval_episodes=500,
        wm_epochs=10,
        wm_batch=256,
        steps=8000,
        eval_every=800,
        eval_episodes=5,
        final_eval_episodes=10,
        max_episode_steps=50,
        collect_envs=0,
        sac=SAC_CPU,
    ),
}


class StateObservation(gym.ObservationWrapper):
    """Observations become the env's world state: ``unwrapped.get_state()``, flattened, as float32.

    For Reacher, 12 floats: previous ``qpos`` (joint0, joint1, target x, y), current ``qpos``,
    current ``qvel``; for ``SEN-Custom-v0``, the wrapped env's ``concat(qpos, qvel)`` of each stacked frame.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        # SEN-Custom-v0 states its shape: its state stack is empty until the first reset
        shape = getattr(env.unwrapped, "state_shape", None) or np.shape(env.unwrapped.get_state())
        n = int(np.prod(shape))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(self.env.unwrapped.get_state(), dtype=np.float32).ravel()


# --------------------------------------------------------------------------- the world model


def _machine() -> dict:
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = f"{line.split(':', 1)[1].strip()} ({platform.processor() or platform.machine()})"
                break
    except OSError:
        pass
    return {
        "processor": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def world_model(preset: Preset, workdir: Path, threads: int) -> tuple[Path, dict]:
    """Collect the datasets, train the ``sen`` world model and score it (each cached); checkpoint and scores."""
    key = {k: getattr(preset, k) for k in ("model_preset", "wm_episodes", "wm_eval_episodes", "wm_epochs", "wm_batch")}
    data, out = workdir / "data", workdir / f"world_model_{preset.model_preset}"
    scores_path = out / "scores.json"
    train_path = data / f"reacher_train_{preset.wm_episodes}.h5"
    eval_path = data / f"reacher_eval_{preset.wm_eval_episodes}.h5"
    scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}
    if scores.get("key") != key or not (out / "best.pt").exists():
        scores = _train_world_model(preset, key, train_path, eval_path, out, threads)
    if "probe" not in scores:  # the diagnosis of the latent; added to a world model cached without it
        import torch

        from sen_rl.evaluate import evaluate
        from sen_rl.model import build_model, load_model

        model = load_model(out / "best.pt", export=True)
        scores["hh@1"] = evaluate(model, eval_path, horizon=1).get("hh@1", float("nan"))
        torch.manual_seed(0)  # the untrained twin's weights
        untrained = build_model(ENV_ID, "sen", preset.model_preset, env_kwargs=model.config.env_kwargs).export()
        scores["probe"] = {
            "trained": latent_probe(model, train_path, eval_path),
            "untrained": latent_probe(untrained, train_path, eval_path),
        }
        atomic_write_text(scores_path, json.dumps(scores, indent=1))
    return out / "best.pt", scores


def _train_world_model(preset: Preset, key: dict, train_path: Path, eval_path: Path, out: Path, threads: int) -> dict:
    from sen_rl.data import CollectConfig, collect

    domain = domain_of(ENV_ID)
    t0 = time.perf_counter()
    common = dict(warmup=domain.warmup, env_kwargs=domain.env_kwargs(preset.model_preset), num_envs=preset.collect_envs)
    if preset.collect_envs == 1:
        common["vectorization"] = "sync"  # no worker processes to start for a tiny set
    if not train_path.exists():
        cfg = CollectConfig(ENV_ID, preset.wm_episodes, domain.episode_steps, seed=1, **common)
        collect(cfg, train_path, progress=False)
    if not eval_path.exists():
        collect(CollectConfig(ENV_ID, preset.wm_eval_episodes, 1, seed=2, **common), eval_path, progress=False)
    collect_s = time.perf_counter() - t0

    from sen_rl.evaluate import evaluate
    from sen_rl.model import load_model
    from sen_rl.train import TrainConfig, train

    t1 = time.perf_counter()
    cfg = TrainConfig(
        data=str(train_path),
        out=str(out),
        variant="sen",
        preset=preset.model_preset,
        epochs=preset.wm_epochs,
        batch_size=preset.wm_batch,
        seed=0,
        device="cpu",
        threads=threads,
    )
    res = train(cfg, resume=(out / "last.pt").exists(), progress=False, verbose=False)
    train_s = time.perf_counter() - t1
    ev = evaluate(load_model(res["best"]), eval_path, horizon=1, hh_samples=0)
    return {
        "key": key,
        "hits@1": ev["hits@1"],
        "hits@10": ev["hits@10"],
        "mrr": ev["mrr"],
        "samples": ev["samples"],
        "transitions": preset.wm_episodes * domain.episode_steps,
        "collect_seconds": collect_s,
        "train_seconds": train_s,
    }


#: what :func:`latent_probe` predicts from the latent: the current joint angles and velocities
PROBE_TARGETS = ("sin q0", "cos q0", "sin q1", "cos q1", "qvel0", "qvel1")


def _probe_targets(states: np.ndarray) -> np.ndarray:
    q0, q1, v0, v1 = states[:, 4], states[:, 5], states[:, 8], states[:, 9]  # REACHER_STATE_LAYOUT
    return np.stack([np.sin(q0), np.cos(q0), np.sin(q1), np.cos(q1), v0, v1], 1)


def latents_and_states(model, path: Path, first_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """The latents ``[N, L]`` (float64) of a dataset's frames and their world states ``[N, *state shape]``.

    Every frame of every episode, or with ``first_only`` the first frame of each.
    """
    import torch

    from sen_rl.data import RolloutDataset

    zs, states = [], []
    with RolloutDataset(path) as ds, torch.inference_mode():
        for lo in range(0, ds.episodes, 64):
            obs = ds.obs[lo : lo + 64, :1] if first_only else ds.obs[lo : lo + 64]
            st = ds.states[lo : lo + 64, :1] if first_only else ds.states[lo : lo + 64]
            obs = obs.reshape(-1, *obs.shape[2:])
            zs.append(model.encode(obs).reshape(len(obs), -1).cpu().numpy())
            states.append(st.reshape(-1, *st.shape[2:]))
    return np.concatenate(zs).astype(np.float64), np.concatenate(states)


def ridge_r2(z, y, z_eval, y_eval, ridge: float = 1e-2) -> np.ndarray:
    """Held-out R^2 per column of ``y`` of a ridge regression on the standardised ``z``.

    A column that does not vary in ``y_eval`` has no R^2: nan, not a perfect score.
    """
    mu, sd = z.mean(0), z.std(0) + 1e-6
    x = np.c_[(z - mu) / sd, np.ones(len(z))]
    x_eval = np.c_[(z_eval - mu) / sd, np.ones(len(z_eval))]
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    resid = ((x_eval @ w - y_eval) ** 2).sum(0)
    spread = ((y_eval - y_eval.mean(0)) ** 2).sum(0)
    return np.where(spread > 1e-12, 1 - resid / np.maximum(spread, 1e-12), np.nan)


def latent_probe(model, train_path: Path, eval_path: Path, ridge: float = 1e-2) -> dict[str, float]:
    """Held-out R^2 of a linear (ridge) probe from the latent to the joint angles and velocities.

    Fitted on every frame of the training set, scored on the first frame of each held-out episode:
    how much of what a policy needs the frozen latent holds in a form an affine map reads.
    """
    z, s = latents_and_states(model, train_path, first_only=False)
    z_eval, s_eval = latents_and_states(model, eval_path, first_only=True)
    r2 = ridge_r2(z, _probe_targets(s), z_eval, _probe_targets(s_eval), ridge)
    return {name: float(v) for name, v in zip(PROBE_TARGETS, r2, strict=True)}


# --------------------------------------------------------------------------- the agents


def make_env(condition: str, preset: Preset, checkpoint: Path | None) -> gym.Env:
    """The env one condition's agent sees (the preset's Reacher, under the condition's wrapper)."""
    import sen_rl  # noqa: F401  (registers the envs)

    env = gym.make(
        ENV_ID,
        max_episode_steps=preset.max_episode_steps,
        **domain_of(ENV_ID).env_kwargs(preset.model_preset),
    )
    if condition == "sen_frozen":
        from sen_rl.wrappers import SENWorldModel

        return SENWorldModel(env, checkpoint)
    if condition == "state":
        return StateObservation(env)
    return env


def make_agent(condition: str, env: gym.Env, preset: Preset, steps: int, seed: int, checkpoint, tb_dir):
    """SAC on ``env``: the preset's settings, the condition's policy."""
    from stable_baselines3 import SAC

    policy_kwargs = None
    policy = "MlpPolicy"
    if condition == "pixels":
        policy = "CnnPolicy"
    elif condition == "sen_finetune":
        from sen_rl.agents.sb3 import SENFeaturesExtractor

        policy = "CnnPolicy"
        policy_kwargs = dict(
            features_extractor_class=SENFeaturesExtractor,
            features_extractor_kwargs=dict(checkpoint=str(checkpoint), fine_tune=True),
        )
    elif condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")
    return SAC(
        policy,
        env,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        verbose=0,
        tensorboard_log=None if tb_dir is None else str(tb_dir),
        **preset.sac_kwargs(steps),
    )


def episode_returns(env: gym.Env, act, seeds) -> list[float]:
    """Undiscounted return of one episode per reset seed, actions from ``act(observation)``."""
    out = []
    for s in seeds:
        obs, _ = env.reset(seed=int(s))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        out.append(total)
    return out


def _callback(evaluate, every: int, total: int):
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        """Evaluates at step 0, every ``every`` env steps and at the last step."""

        def __init__(self):
            super().__init__()
            self.curve: list[list] = []
            self.eval_seconds = 0.0

        def _record(self):
            t = time.perf_counter()
            returns = evaluate(self.model)
            self.eval_seconds += time.perf_counter() - t
            self.curve.append([int(self.num_timesteps), float(np.mean(returns))])
            self.logger.record("eval/mean_return", float(np.mean(returns)))

        def _on_training_start(self):
            self._record()

        def _on_step(self) -> bool:
            if self.num_timesteps % every == 0 or self.num_timesteps == total:
                self._record()
            return True

    return Curve()


def _run_key(condition: str, preset: Preset, steps: int, seed: int, world_model_key: dict) -> dict:
    return {
        "condition": condition,
        "preset": asdict(preset),
        "steps": steps,
        "seed": seed,
        "world_model": world_model_key,
    }


def run_one(
    condition,
    preset,
    steps: int,
    seed: int,
    checkpoint,
    wm_key: dict,
    workdir: Path,
    env_fn=None,
    agent_fn=None,
) -> dict:
    """Train (SAC) or play (random, zero) one condition at one seed and evaluate it; cached in result.json.

    The cache is keyed by the condition, the preset, the steps, the seed and the world model's settings.
    ``env_fn`` / ``agent_fn`` replace :func:`make_env` / :func:`make_agent` (same signatures) for
    other environments (``benchmarks.rl_custom``); ``preset`` is then any dataclass with this
    module's evaluation fields and ``sac_kwargs``.
    """
    env_fn, agent_fn = env_fn or make_env, agent_fn or make_agent
    path = workdir / "runs" / condition / f"seed{seed}" / "result.json"
    key = _run_key(condition, preset, steps, seed, wm_key)
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    curve_seeds = [CURVE_EVAL_SEED + i for i in range(preset.eval_episodes)]
    final_seeds = [FINAL_EVAL_SEED + i for i in range(preset.final_eval_episodes)]
    t0 = time.perf_counter()
    env = env_fn(condition, preset, checkpoint)
    if condition in BASELINES:
        # a copy of the space, seeded once: an env may reseed its own space on every reset
        # (SEN-Custom-v0 does, from the reset seed), which would give every seed the same actions
        space = copy.deepcopy(env.action_space)
        space.seed(seed)
        if condition == "random":
            act = lambda obs: space.sample()  # noqa: E731
        else:
            zero = np.zeros(env.action_space.shape, env.action_space.dtype)
            act = lambda obs: zero  # noqa: E731
        curve_mean = float(np.mean(episode_returns(env, act, curve_seeds)))
        curve = [[0, curve_mean], [steps, curve_mean]]
        final = episode_returns(env, act, final_seeds)
        env.close()
        seconds = time.perf_counter() - t0
        result = {"curve": curve, "final_returns": final, "train_seconds": 0.0, "eval_seconds": seconds}
    else:
        eval_env = env_fn(condition, preset, checkpoint)

        def evaluate(agent, seeds=curve_seeds):
            return episode_returns(eval_env, lambda obs: agent.predict(obs, deterministic=True)[0], seeds)

        agent = agent_fn(condition, env, preset, steps, seed, checkpoint, workdir / "tb")
        cb = _callback(evaluate, preset.eval_every, steps)
        agent.learn(steps, callback=cb, tb_log_name=f"{condition}_seed{seed}")
        t1 = time.perf_counter()
        final = evaluate(agent, final_seeds)
        final_s = time.perf_counter() - t1
        total = time.perf_counter() - t0
        result = {
            "curve": cb.curve,
            "final_returns": final,
            "train_seconds": total - cb.eval_seconds - final_s,
            "eval_seconds": cb.eval_seconds + final_s,
            "gradient_steps": int(agent._n_updates),
        }
        env.close()
        eval_env.close()
    result["key"] = key
    result["seconds"] = time.perf_counter() - t0
    atomic_write_text(path, json.dumps(result, indent=1))
    return result


# --------------------------------------------------------------------------- measuring


def measure(preset: Preset, checkpoint: Path, seeds: int, wm_seconds: float, env_steps: int = 200) -> str:
    """Per env step and per gradient step cost of each condition, and the projected total of a run."""
    sac = preset.sac
    lines = [
        f"| condition | ms / env step | ms / gradient step (batch {sac['batch_size']}) | ms / eval step |",
        "|---|---|---|---|",
    ]
    total = wm_seconds
    updates = max(0, preset.steps - sac["learning_starts"]) // sac["train_freq"] * sac["gradient_steps"]
    eval_steps = (
        (preset.steps // preset.eval_every + 1) * preset.eval_episodes + preset.final_eval_episodes
    ) * preset.max_episode_steps
    for condition in CONDITIONS:
        env = make_env(condition, preset, checkpoint)
        no_updates = replace(preset, sac={**sac, "learning_starts": 10**9})  # agent.train is called by hand
        agent = make_agent(condition, env, no_updates, 2 * env_steps, 0, checkpoint, None)
        agent.learn(sac["batch_size"])  # start-up: first resets, allocations
        t = time.perf_counter()
        agent.learn(env_steps, reset_num_timesteps=False)
        step_s = (time.perf_counter() - t) / env_steps
        agent.train(gradient_steps=2, batch_size=sac["batch_size"])
        n = 5 if condition == "sen_finetune" else 20
        t = time.perf_counter()
        agent.train(gradient_steps=n, batch_size=sac["batch_size"])
        grad_s = (time.perf_counter() - t) / n
        t = time.perf_counter()
        returns = episode_returns(env, lambda obs, a=agent: a.predict(obs, deterministic=True)[0], [0])
        del returns
        eval_s = (time.perf_counter() - t) / preset.max_episode_steps
        env.close()
        lines.append(f"| {condition} | {step_s * 1e3:.1f} | {grad_s * 1e3:.0f} | {eval_s * 1e3:.1f} |")
        total += seeds * (preset.steps * step_s + updates * grad_s + eval_steps * eval_s)
    lines += [
        "",
        f"{preset.name}: {preset.steps} env steps and {updates} gradient steps per run, {eval_steps} evaluation steps; "
        f"projected total for {seeds} seeds with the world model ({wm_seconds / 60:.1f} min): {total / 60:.1f} min",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- tables and plots


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def ceiling_fraction(r: float, r_random: float, r_state: float) -> float:
    """``(R - R_random) / (R_state - R_random)``: 0 for random, 1 for the state ceiling (nan if they tie)."""
    gap = r_state - r_random
    return float("nan") if gap == 0 else float((r - r_random) / gap)


def summarize(results: dict[str, list[dict]], steps: int, labels: dict[str, str] | None = None) -> list[dict]:
    """One row per condition: pooled final returns of all seeds, timings and the ceiling fraction.

    ``labels``: each condition's observation, as the table shows it (default :data:`OBS_LABELS`).
    """
    labels = labels or OBS_LABELS
    rows = []
    for condition, runs in results.items():
        if not runs:
            continue
        pooled = np.concatenate([r["final_returns"] for r in runs])
        rows.append(
            {
                "condition": condition,
                "algo": condition if condition in BASELINES else "SAC",
                "obs": labels[condition],
                "mean_reward": float(pooled.mean()),
                "std_reward": float(pooled.std()),
                "seed_means": [float(np.mean(r["final_returns"])) for r in runs],
                "n_timesteps": 0 if condition in BASELINES else steps,
                "eval_episodes": int(pooled.size),
                "seeds": len(runs),
                "seconds": float(sum(r["seconds"] for r in runs)),
                "train_seconds": float(sum(r["train_seconds"] for r in runs)),
                "gradient_steps": runs[0].get("gradient_steps", 0),
            }
        )
    by = {r["condition"]: r for r in rows}
    for row in rows:
        if "random" in by and "state" in by:
            row["ceiling_fraction"] = ceiling_fraction(
                row["mean_reward"], by["random"]["mean_reward"], by["state"]["mean_reward"]
            )
        else:
            row["ceiling_fraction"] = float("nan")
    return rows


def format_table(rows: list[dict], env_id: str = ENV_ID) -> str:
    lines = [
        "| algo | env_id | obs | mean_reward | std_reward | n_timesteps | eval_episodes | wall time "
        "| fraction of the state ceiling's gain over random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        frac = "n/a" if np.isnan(r["ceiling_fraction"]) else f"{r['ceiling_fraction']:.2f}"
        steps = f"{r['n_timesteps']:,}" if r["n_timesteps"] else "-"
        lines.append(
            f"| {r['algo']} | {env_id} | {r['obs']} | {r['mean_reward']:.2f} | {r['std_reward']:.2f} | {steps} "
            f"| {r['eval_episodes']} | {_duration(r['seconds'])} | {frac} |"
        )
    return "\n".join(lines)


def write_report(rows, wm_scores, preset: Preset, steps, seeds, command, machine, wall, workdir, plot_path) -> str:
    sac = ", ".join(f"{k}={v}" for k, v in preset.sac_kwargs(steps).items())
    repo = IMG_DIR.parents[1]
    shown_plot = plot_path.resolve().relative_to(repo) if plot_path.resolve().is_relative_to(repo) else plot_path
    run_seconds = sum(r["seconds"] for r in rows)
    wm_seconds = wm_scores["collect_seconds"] + wm_scores["train_seconds"]
    per_seed = ["| condition | final mean return per seed | gradient steps per run | train time (all seeds) |"]
    per_seed.append("|---|---|---|---|")
    for r in rows:
        means = ", ".join(f"{m:.2f}" for m in r["seed_means"])
        per_seed.append(f"| {r['condition']} | {means} | {r['gradient_steps']} | {_duration(r['train_seconds'])} |")
    wm = (
        f"World model: `sen`, model preset `{preset.model_preset}`, {wm_scores['transitions']:,} transitions "
        f"x {preset.wm_epochs} epochs; one step ahead on {wm_scores['samples']} held-out transitions: "
        f"Hits@1 {wm_scores['hits@1']:.1%}, Hits@10 {wm_scores['hits@10']:.1%}, MRR {wm_scores['mrr']:.1%}, "
        f"HH@1 {wm_scores['hh@1']:.1%} (a joint moved 0.1 rad as the negative); "
        f"collection {_duration(wm_scores['collect_seconds'])}, training {_duration(wm_scores['train_seconds'])} "
        "(when it was made)."
    )
    probe = wm_scores["probe"]
    probe_lines = [
        "Linear probe (`latent_probe`): held-out R^2 of a ridge regression from the 32-float latent "
        "to the joint angles and velocities, fitted on every frame of the training set:",
        "",
        "| latent | " + " | ".join(PROBE_TARGETS) + " |",
        "|---|" + "---|" * len(PROBE_TARGETS),
        *(
            f"| {label} SEN | " + " | ".join(f"{probe[name][t]:.2f}" for t in PROBE_TARGETS) + " |"
            for label, name in (("trained", "trained"), ("untrained", "untrained"))
        ),
    ]
    text = "\n".join(
        [
            f"# RL on {ENV_ID}'s reward: pixels, SEN latents, state",
            "",
            f"Command: `{command}`  ",
            f"Preset: `{preset.name}` ({preset.max_episode_steps}-step episodes, 64x64 frames), seeds {seeds}.  ",
            f"Machine: {machine['processor']}, CPU capability {machine['cpu_capability']}, "
            f"{machine['cores']} cores, torch {machine['torch']} on {machine['torch_threads']} thread(s).  ",
            f"Wall time of this command: {_duration(wall)}; time the table's runs took when made: "
            f"{_duration(run_seconds)} for the agents, {_duration(wm_seconds)} for the world model.  ",
            f"SAC, identical for every condition except the policy's input: {sac}.  ",
            f"Evaluation: {preset.final_eval_episodes} deterministic episodes per seed (reset seeds "
            f"{FINAL_EVAL_SEED}+), pooled over seeds; learning curves: {preset.eval_episodes} episodes every "
            f"{preset.eval_every} env steps (`{shown_plot}`).",
            "",
            format_table(rows),
            "",
            "Fraction of the state ceiling's gain over random: (R - R_random) / (R_state - R_random). "
            "Wall time: all seeds of the condition, training and evaluation.",
            "",
            *per_seed,
            "",
            wm,
            "",
            *probe_lines,
            "",
        ]
    )
    atomic_write_text(workdir / "rl_reacher.md", text)
    return text


def _t95(n: int) -> float:
    if n < 2:
        return 0.0
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, n - 1))
    except ImportError:  # pragma: no cover - scipy comes with escnn
        return 1.96


def plot_curves(
    results: dict[str, list[dict]],
    preset,
    seeds: list[int],
    out: Path,
    env_id: str = ENV_ID,
    labels: dict[str, str] | None = None,
) -> Path:
    """Learning curves, mean and 95% t-interval over seeds, to ``out`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = labels or OBS_LABELS
    colors = {"pixels": "C0", "sen_frozen": "C1", "sen_finetune": "C2", "state": "C3", "random": "0.4", "zero": "0.7"}
    spare = iter(f"C{i}" for i in range(4, 10))  # conditions of other benchmarks
    for condition, runs in results.items():
        color = colors.get(condition) or colors.setdefault(condition, next(spare))
        if not runs:
            continue
        x = np.asarray([p[0] for p in runs[0]["curve"]], dtype=float)
        y = np.asarray([[p[1] for p in r["curve"]] for r in runs], dtype=float)
        mean = y.mean(0)
        half = _t95(len(runs)) * y.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
        style = "--" if condition in BASELINES else "-"
        ax.plot(x, mean, style, color=color, label=labels[condition])
        ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.2, linewidth=0)
    # the means set the view; a wide interval (3 seeds: t = 4.3) may run off it
    means = [np.mean([[p[1] for p in r["curve"]] for r in runs], 0) for runs in results.values() if runs]
    if means:
        lo, hi = min(m.min() for m in means), max(m.max() for m in means)
        pad = 0.15 * (hi - lo) + 1.0
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"mean return ({preset.eval_episodes} deterministic episodes)")
    ax.set_title(f"SAC on {env_id} ({preset.name} preset, {len(seeds)} seeds, mean and 95% interval)")
    ax.legend(fontsize=7, loc="center right", framealpha=0.9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_write(out, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return out


def report(results, wm_scores, preset: Preset, steps, seeds, command, machine, wall, workdir: Path, plot: Path) -> str:
    """Table (markdown), numbers (JSON) and learning curves of the runs so far; returns the table."""
    rows = summarize(results, steps)
    plot_curves(results, preset, seeds, plot)
    text = write_report(rows, wm_scores, preset, steps, seeds, command, machine, wall, workdir, plot)
    payload = {
        "command": command,
        "preset": asdict(preset),
        "steps": steps,
        "seeds": seeds,
        "machine": machine,
        "wall_seconds": wall,
        "world_model": wm_scores,
        "rows": rows,
        "curves": {c: [r["curve"] for r in runs] for c, runs in results.items()},
    }
    atomic_write_text(workdir / "rl_reacher.json", json.dumps(payload, indent=1))
    return text


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=tuple(PRESETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--workdir", help="datasets, world model, runs, logs and table (default: runs/rl_reacher/PRESET)")
    p.add_argument("--steps", type=int, help="env steps of every SAC run (default: the preset's)")
    p.add_argument(
        "--conditions",
        nargs="+",
        choices=CONDITIONS + BASELINES,
        default=list(CONDITIONS + BASELINES),
        help="a subset of the conditions (the ceiling fraction needs state and random)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see the module docstring)")
    p.add_argument("--measure", action="store_true", help="only time each condition and project the run's total")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    steps = args.steps or preset.steps
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    workdir = Path(args.workdir or f"runs/rl_reacher/{preset.name}")
    given = argv if argv is not None else sys.argv[1:]
    command = ("python -m benchmarks.rl_reacher " + " ".join(given)).strip()
    machine = _machine()
    t0 = time.perf_counter()

    checkpoint, wm_scores = world_model(preset, workdir, args.threads)
    print(
        f"world model: {checkpoint}, one-step Hits@1 {wm_scores['hits@1']:.1%}, MRR {wm_scores['mrr']:.1%} "
        f"(collect {_duration(wm_scores['collect_seconds'])}, train {_duration(wm_scores['train_seconds'])})",
        flush=True,
    )
    if args.measure:
        wm_s = wm_scores["collect_seconds"] + wm_scores["train_seconds"]
        print(f"machine: {machine}")
        print(measure(replace(preset, steps=steps), checkpoint, len(args.seeds), wm_s))
        return 0

    # table order: the learned conditions, then the baselines; run order: seed by seed, the cheap
    # ceiling and floor first, so that an interrupted run has every condition of its first seeds
    results: dict[str, list[dict]] = {c: [] for c in CONDITIONS + BASELINES if c in args.conditions}
    run_order = [c for c in RUN_ORDER if c in results]
    plot = IMG_DIR / "rl_reacher_cpu.png" if preset.name == "cpu" else workdir / f"rl_reacher_{preset.name}.png"
    for i, seed in enumerate(args.seeds):
        for condition in run_order:
            r = run_one(condition, preset, steps, seed, checkpoint, wm_scores["key"], workdir)
            results[condition].append(r)
            print(
                f"{condition} seed {seed}: final mean return {np.mean(r['final_returns']):.2f} "
                f"({_duration(r['seconds'])})",
                flush=True,
            )
        # the table so far, after every seed: nothing finished is lost if the run is stopped
        done, wall = args.seeds[: i + 1], time.perf_counter() - t0
        text = report(results, wm_scores, preset, steps, done, command, machine, wall, workdir, plot)
    print(text)
    print(f"table written to {workdir / 'rl_reacher.md'}, learning curves to {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
