"""What a SEN world model costs an agent: the wrapper's overhead per env step, and planning speed.

    python -m benchmarks.agent_speed                    # cpu-preset models, torch on 1 and on 2 threads
    python -m benchmarks.agent_speed --threads 1 --steps 100 --decisions 5

Side by side, in one run, for every ``--threads`` value:

- the overhead of :class:`~sen_rl.wrappers.SENWorldModel` per env step at batch 1: the median
  time of ``SENWorldModel.step`` minus the median time of the bare env's ``step`` on the same
  actions (SEN-Reacher-v0 with the preset's 64x64 frames), and the encode alone beside it;
- the same for :class:`~sen_rl.wrappers.SENWorldModelVec` over a ``SyncVectorEnv`` of 16
  sub-envs (all encoded in one forward pass), per sub-env step;
- planning decisions per second of :class:`sen_rl.agents.LatentMPC` (``act(observation,
  goal_observation)``: encode both, search, return the first action) on Reacher (a box: CEM)
  and on 2D Shapes (discrete: exhaustive search or beam search, by the horizon).

The models are freshly built ``sen`` models of the preset (the weights do not change the
cost); ``--checkpoint`` times a trained Reacher model instead. Medians are used because the
machine may be shared: a busy core stretches single steps, not the typical one.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np
import torch

from sen_rl.domains import domain_of
from sen_rl.fileio import atomic_write_text
from sen_rl.hardware import cpu_info

REACHER = "SEN-Reacher-v0"
SHAPES = "SEN-Shapes-v0"
#: the wrapper's overhead target on 2 cores (ms per env step, batch 1)
TARGET_MS = 2.0


def _step_times(env, actions) -> np.ndarray:
    """Seconds of each ``env.step`` (single or vector env) on ``actions``; resets are not timed."""
    times = np.empty(len(actions))
    env.reset(seed=0)
    for i, a in enumerate(actions):
        t = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(a)
        times[i] = time.perf_counter() - t
        if not isinstance(env, gym.vector.VectorEnv) and (terminated or truncated):
            env.reset()
    return times


def _paired_medians(bare, wrapped, actions, rounds: int = 3) -> tuple[float, float]:
    """Median step times of both envs, measured in alternating rounds so that load hits both alike."""
    chunks = np.array_split(np.arange(len(actions)), rounds)
    b, w = [], []
    for idx in chunks:
        b.append(_step_times(bare, [actions[i] for i in idx]))
        w.append(_step_times(wrapped, [actions[i] for i in idx]))
    return float(np.median(np.concatenate(b))), float(np.median(np.concatenate(w)))


def wrapper_overhead(model, preset: str, steps: int, num_envs: int, vector_steps: int) -> dict:
    """Overhead of SENWorldModel (batch 1) and of SENWorldModelVec (per sub-env), in seconds."""
    from sen_rl.wrappers import SENWorldModel, SENWorldModelVec

    kwargs = domain_of(REACHER).env_kwargs(preset)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(steps, 2)).astype(np.float32)
    bare, wrapped = gym.make(REACHER, **kwargs), SENWorldModel(gym.make(REACHER, **kwargs), model)
    _step_times(bare, actions[:5])  # first renders, allocations
    _step_times(wrapped, actions[:5])
    bare_s, wrapped_s = _paired_medians(bare, wrapped, actions)
    obs, _ = bare.reset(seed=0)
    wrapped.encode(obs)
    enc = []
    for _ in range(max(10, steps // 3)):
        t = time.perf_counter()
        wrapped.encode(obs)
        enc.append(time.perf_counter() - t)
    layout = "channels_last" if wrapped.memory_format == torch.channels_last else "contiguous"
    bare.close()
    wrapped.close()

    def vec():
        return gym.vector.SyncVectorEnv([lambda: gym.make(REACHER, **kwargs) for _ in range(num_envs)])

    vactions = rng.uniform(-1, 1, size=(vector_steps, num_envs, 2)).astype(np.float32)
    vbare, vwrapped = vec(), SENWorldModelVec(vec(), model)
    _step_times(vbare, vactions[:2])
    _step_times(vwrapped, vactions[:2])
    vbare_s, vwrapped_s = _paired_medians(vbare, vwrapped, vactions)
    vbare.close()
    vwrapped.close()
    return {
        "bare_step": bare_s,
        "wrapped_step": wrapped_s,
        "overhead": wrapped_s - bare_s,
        "encode": float(np.median(enc)),
        "layout": layout,
        "num_envs": num_envs,
        "vec_bare_step": vbare_s,
        "vec_wrapped_step": vwrapped_s,
        "vec_overhead_per_env": (vwrapped_s - vbare_s) / num_envs,
    }


def planning_speed(model, env_kwargs: dict, horizon: int, decisions: int, seed: int = 0) -> dict:
    """Decisions per second of LatentMPC(model, horizon=horizon, method="auto") on observations of the model's env."""
    from sen_rl.agents import LatentMPC

    env = gym.make(model.config.env_id, **env_kwargs)
    goal, _ = env.reset(seed=seed + 1)
    obs_list = []
    obs, _ = env.reset(seed=seed)
    for _ in range(decisions + 1):
        obs_list.append(obs)
        obs, *_ = env.step(env.action_space.sample())
    env.close()
    planner = LatentMPC(model, horizon=horizon, method="auto", seed=seed)
    planner.act(obs_list[0], goal)  # warm-up: the first search allocates
    t = time.perf_counter()
    for obs in obs_list[1:]:
        planner.act(obs, goal)
    seconds = time.perf_counter() - t
    return {
        "planner": repr(planner),
        "decisions_per_second": decisions / seconds,
        "transitions_per_decision": int(planner.last_plan.evaluated),
    }


def format_table(rows: list[dict], cpu: str, cores: int) -> str:
    lines = [
        f"CPU: {cpu}, capability {torch.backends.cpu.get_cpu_capability()}, {cores} cores, torch {torch.__version__}",
        "",
        "| measurement | torch threads | result | detail |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['what']} | {r['threads']} | {r['result']} | {r['detail']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=("smoke", "cpu"), help="model size (and Reacher frames)")
    p.add_argument("--checkpoint", help="a trained Reacher checkpoint to time instead of a freshly built model")
    p.add_argument("--steps", type=int, default=300, help="env steps timed at batch 1 (each env)")
    p.add_argument("--num-envs", type=int, default=16, help="sub-envs of the vector env")
    p.add_argument("--vector-steps", type=int, default=30, help="vector steps timed (each vector env)")
    p.add_argument("--decisions", type=int, default=20, help="planning decisions timed per planner")
    p.add_argument("--horizons", type=int, nargs="+", default=[5, 3], help="planning horizons (default: 5, 3)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    p.add_argument("--json", help="also write the measurements to this JSON file")
    args = p.parse_args(argv)
    for name in ("steps", "num_envs", "vector_steps", "decisions"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    import sen_rl  # noqa: F401  (registers the envs)
    from sen_rl.model import build_model, load_model

    torch.manual_seed(0)
    if args.checkpoint:
        reacher = load_model(args.checkpoint, export=True)
    else:
        reacher = build_model(REACHER, "sen", args.preset, env_kwargs=domain_of(REACHER).env_kwargs(args.preset))
    shapes = build_model(SHAPES, "sen", args.preset)
    reacher, shapes = reacher.export(), shapes.export()  # what the wrappers and the planner run
    reacher_kwargs = dict(reacher.config.env_kwargs)
    cpu, cores = cpu_info().model, os.cpu_count()
    rows, raw = [], []
    t_all = time.perf_counter()
    for threads in args.threads:
        torch.set_num_threads(threads)
        w = wrapper_overhead(reacher, args.preset, args.steps, args.num_envs, args.vector_steps)
        ok = "meets" if w["overhead"] * 1e3 < TARGET_MS else "misses"
        rows.append(
            {
                "what": f"SENWorldModel overhead per env step, batch 1 ({REACHER} {reacher_kwargs})",
                "threads": threads,
                "result": f"{w['overhead'] * 1e3:.2f} ms",
                "detail": f"bare step {w['bare_step'] * 1e3:.2f} ms, wrapped {w['wrapped_step'] * 1e3:.2f} ms, "
                f"encode alone {w['encode'] * 1e3:.2f} ms, encoder weights {w['layout']}; "
                f"{ok} the < {TARGET_MS:g} ms target",
            }
        )
        rows.append(
            {
                "what": f"SENWorldModelVec overhead per sub-env step, SyncVectorEnv of {args.num_envs}",
                "threads": threads,
                "result": f"{w['vec_overhead_per_env'] * 1e3:.2f} ms",
                "detail": f"vector step bare {w['vec_bare_step'] * 1e3:.1f} ms, "
                f"wrapped {w['vec_wrapped_step'] * 1e3:.1f} ms",
            }
        )
        raw.append({"threads": threads, "wrapper": w, "planning": []})
        for name, model, kwargs in (("Reacher", reacher, reacher_kwargs), ("2D Shapes", shapes, {})):
            for h in args.horizons:
                r = planning_speed(model, kwargs, h, args.decisions)
                raw[-1]["planning"].append({"domain": name, "horizon": h, **r})
                rows.append(
                    {
                        "what": f"LatentMPC decisions per second, {name}",
                        "threads": threads,
                        "result": f"{r['decisions_per_second']:.1f} /s",
                        "detail": f"{r['planner']}, {r['transitions_per_decision']:,} latent transitions a decision",
                    }
                )
    text = format_table(rows, cpu, cores)
    print(text)
    source = f"checkpoint {args.checkpoint}" if args.checkpoint else f"freshly built `sen` {args.preset} model"
    seconds = time.perf_counter() - t_all
    print(f"\n(Reacher: {source}; 2D Shapes: freshly built `sen` {args.preset} model; {seconds:.0f} s)")
    if args.json:
        payload = {"cpu": cpu, "cores": cores, "preset": args.preset, "args": vars(args), "measurements": raw}
        atomic_write_text(args.json, json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
