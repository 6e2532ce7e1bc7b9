"""Reinforcement learning on a Gymnasium env nobody here wrote: pixels, SEN latents, the true state.

    python -m benchmarks.rl_custom --env InvertedPendulum-v5 \\
        --symmetry sen_rl.example_symmetries:INVERTED_PENDULUM --env-kwargs '{"frames": 2}' \\
        --world-model sen=runs/pendulum/sen_s0/best.pt --world-model none=runs/pendulum/none_s0/best.pt \\
        --train-data data/custom/pendulum_train.h5 --eval-data data/custom/pendulum_eval.h5 \\
        --preset cpu --seeds 0 1 2

The env is ``SEN-Custom-v0`` around ``--env`` (its pixels through Gymnasium's own wrappers, see
``envs/custom.py``) with ``terminate=True``, so the wrapped env's own reward, terminations and
time limit make the task. The world models are checkpoints trained beforehand with ``sen-rl train``
on that env's data (``docs/custom_environments.md``), one per ``--world-model VARIANT=PATH``.
The same SB3 algorithm (SAC, :data:`benchmarks.rl_reacher.SAC_CPU`: only the policy's input
differs), for the same number of environment steps, on:

- ``pixels``: the stacked frames through SB3's ``CnnPolicy`` (NatureCNN, trained from scratch);
- ``<variant>_frozen``: each world model's latent through :class:`~sen_rl.wrappers.SENWorldModel`
  (frozen), with ``MlpPolicy``: ``sen_frozen`` and, as the baseline representation, ``none_frozen``;
- ``state``: the wrapped env's world state (``concat(qpos, qvel)`` of each stacked frame) with
  ``MlpPolicy``: the ceiling;
- ``random``: uniformly random actions, the floor, and for continuous actions ``zero``, no
  action at all, a reference (both evaluated only).

Each world model is scored first: one step ahead on ``--eval-data`` (Hits@1, MRR and, where the
set has twins, EE(S)), and by a linear probe from its latent to the world state of the current
frame (held-out R^2 per state coordinate; fitted on ``--train-data``, scored on ``--eval-data``),
beside an untrained network of the same architecture: how much of what a policy needs the frozen
latent holds. Evaluation, caching (per run, keyed by its settings), the table in rl-zoo's layout,
the learning curves and TensorBoard logs are those of :mod:`benchmarks.rl_reacher`. Outputs in
the workdir (default ``runs/rl_custom/<env>/<preset>``): ``rl_custom.md``, ``rl_custom.json``,
``tb/``; the learning curves in ``--figure`` (default: the workdir's ``rl_custom.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import gymnasium as gym
import numpy as np

from benchmarks import rl_reacher as rl
from sen_rl.fileio import atomic_write_text

CUSTOM_ID = "SEN-Custom-v0"


@dataclass(frozen=True)
class Preset:
    """Sizes of one preset; ``sac`` is shared by every condition (the buffer holds every step)."""

    name: str
    steps: int  # env steps of every SAC run
    eval_every: int
    eval_episodes: int  # per point of the learning curves
    final_eval_episodes: int  # per seed, for the table
    max_episode_steps: int | None  # a TimeLimit on top of the wrapped env's own (None: only its own)
    sac: dict = field(default_factory=dict)

    def sac_kwargs(self, steps: int) -> dict:
        return {"buffer_size": steps, **self.sac}


# cpu: benchmarks.rl_reacher's SAC with one update per env step instead of one per 4, calibrated on
# InvertedPendulum's state (docs/custom_environments.md): with one update per 4 steps the state
# policy never holds the pole long (final returns 90 and 71 of 1,000 after 20,000 steps, seeds 0
# and 1); with one per step it holds it for the whole 1,000 steps on every seed by 10,000 steps,
# which then cost a pixel policy about 13 minutes. Evaluations of 1,000-step episodes render every
# frame, hence every 2,000 steps.
PRESETS = {
    "smoke": Preset("smoke", 48, 24, 1, 2, 8, {**rl.SAC_CPU, "batch_size": 8, "learning_starts": 24}),
    "cpu": Preset("cpu", 10_000, 2_000, 5, 10, None, {**rl.SAC_CPU, "train_freq": 1}),
}
#: evaluated only; "zero" (no action at all) for continuous actions, where it is what a policy
#: that has learned nothing but to save control costs scores
BASELINES = ("random", "zero")


def labels(conditions) -> dict[str, str]:
    """What each condition's policy reads, as the table shows it."""
    fixed = {
        "pixels": "pixels, CnnPolicy (NatureCNN)",
        "state": "true state, MlpPolicy: ceiling",
        "random": "uniform random actions: floor",
        "zero": "zero action (reference)",
    }
    return {
        c: fixed.get(c) or f"frozen {c.removesuffix('_frozen')} latent (SENWorldModel), MlpPolicy" for c in conditions
    }


def make_env_fn(env_id: str, symmetry: str, env_kwargs: dict, checkpoints: dict[str, Path]):
    """``env_fn(condition, preset, _)`` for :func:`benchmarks.rl_reacher.run_one`."""

    def env_fn(condition: str, preset: Preset, _checkpoint=None) -> gym.Env:
        import sen_rl  # noqa: F401  (registers the envs)

        limit = {} if preset.max_episode_steps is None else {"max_episode_steps": preset.max_episode_steps}
        env = gym.make(CUSTOM_ID, env=env_id, symmetry=symmetry, terminate=True, **env_kwargs, **limit)
        if condition == "state":
            return rl.StateObservation(env)
        if condition.endswith("_frozen"):
            from sen_rl.wrappers import SENWorldModel

            return SENWorldModel(env, checkpoints[condition.removesuffix("_frozen")])
        return env

    return env_fn


def agent_fn(condition: str, env: gym.Env, preset: Preset, steps: int, seed: int, _checkpoint, tb_dir):
    """SAC on ``env``: the preset's settings; ``CnnPolicy`` for pixels, ``MlpPolicy`` otherwise."""
    from stable_baselines3 import SAC

    return SAC(
        "CnnPolicy" if condition == "pixels" else "MlpPolicy",
        env,
        seed=seed,
        device="cpu",
        verbose=0,
        tensorboard_log=None if tb_dir is None else str(tb_dir),
        **preset.sac_kwargs(steps),
    )


# --------------------------------------------------------------------------- the world models


def state_probe(model, train_path: Path, eval_path: Path, ridge: float = 1e-2) -> list[float]:
    """Held-out R^2 of a ridge regression from the latent to each coordinate of the current world state.

    Fitted on every frame of ``train_path``, scored on the first frame of each episode of
    ``eval_path``; the current state is the last of the stacked frames' states. Raw coordinates:
    an unbounded joint angle (Reacher-v5's first joint) is not linear in any picture's features.
    """
    z, s = rl.latents_and_states(model, train_path, first_only=False)
    z_eval, s_eval = rl.latents_and_states(model, eval_path, first_only=True)
    # a coordinate that never varies (Reacher-v5's target velocity) has no R^2: nan
    return [float(v) for v in rl.ridge_r2(z, s[:, -1], z_eval, s_eval[:, -1], ridge)]


def score_world_model(checkpoint: Path, train_path: Path | None, eval_path: Path | None) -> dict:
    """One-step ranking on ``eval_path`` and the state probe (trained and untrained network)."""
    import torch

    from sen_rl.evaluate import evaluate
    from sen_rl.model import build_model, load_model

    model = load_model(checkpoint, export=True)
    out: dict = {"checkpoint": str(checkpoint), "variant": model.config.variant, "preset": model.config.preset}
    if eval_path is not None:
        ev = evaluate(model, eval_path, horizon=1, hh_samples=0, th_starts=0)
        out.update({k: ev[k] for k in ("hits@1", "hits@10", "mrr", "samples") if k in ev})
        if "ee_mean" in ev:
            out["ee_mean"] = ev["ee_mean"]
    if train_path is not None and eval_path is not None:
        torch.manual_seed(0)  # the untrained twin's weights
        c = model.config
        untrained = build_model(c.env_id, c.variant, c.preset, env_kwargs=c.env_kwargs, net_kwargs=c.net_kwargs)
        out["probe"] = {
            "trained": state_probe(model, train_path, eval_path),
            "untrained": state_probe(untrained.export(), train_path, eval_path),
        }
    return out


# --------------------------------------------------------------------------- report


def write_report(rows, scores, preset: Preset, steps, seeds, command, machine, wall, workdir, plot, env_id) -> str:
    repo = rl.IMG_DIR.parents[1]
    shown_plot = plot.resolve().relative_to(repo) if plot.resolve().is_relative_to(repo) else plot
    sac = ", ".join(f"{k}={v}" for k, v in preset.sac_kwargs(steps).items())
    lines = [
        f"# RL on {env_id}'s reward through {CUSTOM_ID}: pixels, SEN latents, state",
        "",
        f"Command: `{command}`  ",
        f"Preset: `{preset.name}`, seeds {seeds}.  ",
        f"Machine: {machine['processor']}, CPU capability {machine['cpu_capability']}, "
        f"{machine['cores']} cores, torch {machine['torch']} on {machine['torch_threads']} thread(s).  ",
        f"Wall time of this command: {rl._duration(wall)}; the table's runs took "
        f"{rl._duration(sum(r['seconds'] for r in rows))} when made.  ",
        f"SAC, identical for every condition except the policy's input: {sac}.  ",
        f"Evaluation: {preset.final_eval_episodes} deterministic episodes per seed (reset seeds "
        f"{rl.FINAL_EVAL_SEED}+), pooled over seeds; learning curves: {preset.eval_episodes} episodes every "
        f"{preset.eval_every} env steps (`{shown_plot}`).",
        "",
        rl.format_table(rows, env_id=env_id),
        "",
        "Fraction of the state ceiling's gain over random: (R - R_random) / (R_state - R_random).",
        "",
        "| condition | final mean return per seed | gradient steps per run | train time (all seeds) |",
        "|---|---|---|---|",
        *(
            f"| {r['condition']} | {', '.join(f'{m:.1f}' for m in r['seed_means'])} | {r['gradient_steps']} "
            f"| {rl._duration(r['train_seconds'])} |"
            for r in rows
        ),
    ]
    if scores:
        lines += [
            "",
            "World models (one step ahead on the held-out set; probe: held-out R^2 of a ridge regression "
            "from the latent to each coordinate of the current world state, trained and untrained network):",
            "",
            "| variant | checkpoint | Hits@1 | Hits@10 | MRR | EE(S) | probe R^2, trained | probe R^2, untrained |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for s in scores.values():
        probe = s.get("probe", {})

        def cell(key, s=s):
            return f"{s[key]:.1%}" if key in s else "n/a"

        lines.append(
            f"| {s['variant']} | `{s['checkpoint']}` | {cell('hits@1')} | {cell('hits@10')} | {cell('mrr')} "
            f"| {s.get('ee_mean', float('nan')):.3f} "
            f"| {', '.join(f'{v:.2f}' for v in probe.get('trained', []))} "
            f"| {', '.join(f'{v:.2f}' for v in probe.get('untrained', []))} |"
        )
    text = "\n".join([*lines, ""])
    atomic_write_text(workdir / "rl_custom.md", text)
    return text


# --------------------------------------------------------------------------- main


def _world_models(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        variant, sep, path = item.partition("=")
        if not sep or not variant or not path:
            raise SystemExit(f"--world-model takes VARIANT=PATH (e.g. sen=runs/pendulum/sen_s0/best.pt), got {item!r}")
        if not Path(path).is_file():
            raise SystemExit(f"--world-model {item}: {path} does not exist; train it with `sen-rl train` first")
        out[variant] = Path(path)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, help="the Gymnasium id, e.g. InvertedPendulum-v5")
    p.add_argument("--symmetry", required=True, help="module:NAME of its sen_rl.symmetry.Symmetry")
    p.add_argument("--env-kwargs", default="{}", help="SEN-Custom-v0 keywords as JSON, e.g. '{\"frames\": 2}'")
    p.add_argument("--world-model", action="append", default=[], metavar="VARIANT=PATH", help="repeatable")
    p.add_argument("--train-data", type=Path, help="the world models' training set (for the state probe)")
    p.add_argument("--eval-data", type=Path, help="a held-out set of the same env (one-step scores, probe)")
    p.add_argument("--preset", default="cpu", choices=tuple(PRESETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, help="env steps of every SAC run (default: the preset's)")
    p.add_argument("--sac", default="{}", help="SAC keywords over the preset's, as JSON, for every condition alike")
    p.add_argument("--conditions", nargs="+", help="a subset (default: pixels, every VARIANT_frozen, state, random)")
    p.add_argument("--workdir", help="runs, logs and table (default: runs/rl_custom/ENV/PRESET)")
    p.add_argument("--figure", type=Path, help="where the learning curves go (default: WORKDIR/rl_custom.png)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see benchmarks.rl_reacher)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    env_kwargs = json.loads(args.env_kwargs)
    if not isinstance(env_kwargs, dict) or {"env", "symmetry", "terminate"} & set(env_kwargs):
        raise SystemExit("--env-kwargs is a JSON object of SEN-Custom-v0 keywords other than env, symmetry, terminate")
    checkpoints = _world_models(args.world_model)
    if args.train_data is not None and args.eval_data is None:
        raise SystemExit("--train-data feeds the state probe, which is scored on --eval-data: give both")
    sac = json.loads(args.sac)
    if not isinstance(sac, dict) or "buffer_size" in sac:
        raise SystemExit(
            "--sac is a JSON object of SAC keywords, e.g. '{\"train_freq\": 4}' (the buffer holds every step)"
        )
    preset = replace(PRESETS[args.preset], sac={**PRESETS[args.preset].sac, **sac})
    steps = args.steps or preset.steps
    learned = ["pixels", *(f"{v}_frozen" for v in checkpoints), "state"]
    env_fn = make_env_fn(args.env, args.symmetry, env_kwargs, checkpoints)
    probe_env = env_fn("pixels", preset)
    continuous = isinstance(probe_env.action_space, gym.spaces.Box)
    probe_env.close()
    baselines = list(BASELINES if continuous else BASELINES[:1])
    conditions = args.conditions or [*learned, *baselines]
    unknown = set(conditions) - {*learned, *baselines}
    if unknown:
        raise SystemExit(f"unknown conditions {sorted(unknown)}; choose from {', '.join([*learned, *baselines])}")
    workdir = Path(args.workdir or f"runs/rl_custom/{args.env}/{preset.name}")
    given = argv if argv is not None else sys.argv[1:]
    command = ("python -m benchmarks.rl_custom " + " ".join(given)).strip()
    machine = rl._machine()
    t0 = time.perf_counter()

    for variant in checkpoints:  # refused here, not after an hour of other runs, if it does not fit
        env_fn(f"{variant}_frozen", preset).close()
    scores = {v: score_world_model(c, args.train_data, args.eval_data) for v, c in checkpoints.items()}
    for v, s in scores.items():
        print(f"world model {v}: " + ", ".join(f"{k} {s[k]:.3f}" for k in ("hits@1", "mrr") if k in s), flush=True)
    # a run's cache key holds each world model's file and its modification time
    wm_key = {v: [str(c), Path(c).stat().st_mtime_ns] for v, c in checkpoints.items()}
    wm_key["env"] = [args.env, args.symmetry, env_kwargs]

    names = labels(conditions)
    order = [c for c in ("state", "random", "zero", *(f"{v}_frozen" for v in checkpoints), "pixels") if c in conditions]
    results: dict[str, list[dict]] = {c: [] for c in conditions}
    plot = args.figure or workdir / "rl_custom.png"
    text = ""
    for i, seed in enumerate(args.seeds):
        for condition in order:
            r = rl.run_one(condition, preset, steps, seed, None, wm_key, workdir, env_fn=env_fn, agent_fn=agent_fn)
            results[condition].append(r)
            print(
                f"{condition} seed {seed}: final mean return {np.mean(r['final_returns']):.1f} "
                f"({rl._duration(r['seconds'])})",
                flush=True,
            )
        done, wall = args.seeds[: i + 1], time.perf_counter() - t0
        rows = rl.summarize(results, steps, labels=names)
        rl.plot_curves(results, preset, done, plot, env_id=args.env, labels=names)
        text = write_report(rows, scores, preset, steps, done, command, machine, wall, workdir, plot, args.env)
        payload = {
            "command": command,
            "preset": asdict(preset),
            "steps": steps,
            "seeds": done,
            "machine": machine,
            "wall_seconds": wall,
            "world_models": scores,
            "rows": rows,
            "curves": {c: [r["curve"] for r in runs] for c, runs in results.items()},
        }
        atomic_write_text(workdir / "rl_custom.json", json.dumps(payload, indent=1))
    print(text)
    print(f"table written to {workdir / 'rl_custom.md'}, learning curves to {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
