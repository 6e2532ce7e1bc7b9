"""Goal reaching with LatentMPC on already-trained checkpoints of any domain, beside random actions.

    S=runs/teapot_b64_150 N=runs/teapot_none_v2    # SEN-Teapot-v0: sen and none models, seeds 0 to 2
    python -m benchmarks.plan_checkpoints --agent sen=$S/seed0/best.pt,$S/seed1/best.pt,$S/seed2/best.pt \\
        --agent none=$N/seed0/best.pt,$N/seed1/best.pt,$N/seed2/best.pt --goals 100 \\
        --out runs/teapot_plan.md --json runs/teapot_plan.json
    python -m benchmarks.plan_checkpoints --agent sen=A.pt,B.pt,C.pt --goals 100   # e.g. SEN-Reacher-v0 (cem)
    python -m benchmarks.plan_checkpoints --agent sen=$S/seed0/best.pt,$S/seed1/best.pt --goals 10   # a quick look

Each ``--agent LABEL=PATHS`` is one row of the table: :class:`sen_rl.agents.LatentMPC` on its
comma-separated checkpoints, which are seeds 0, 1, 2, ... in that order. Checkpoint ``i``
plays the goals of seed ``i`` (``run_goal_episodes(env, planner, goals, seed=i)``, planner
seeded with ``i`` too), so every agent, and the ``random`` row (uniformly random actions,
always added), plays the same goals for a seed. All checkpoints must be models of the same env
with the same env keywords; the goal task is that domain's (``sen_rl.domains``, ``goal``).
Nothing is trained here: the models come from other commands (``sen-rl train``).

The markdown table (per-seed success, pooled success with its 95% Wilson interval over all
episodes, mean steps to success, ms per decision) goes to stdout and to ``--out``; ``--json``
keeps the per-seed summaries, the pooled ones, every episode's start and goal states, the
settings, the command and the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.planning import _cell, machine

RANDOM = "random"


def parse_agent(text: str) -> tuple[str, list[Path]]:
    """``LABEL=P0,P1,...`` -> ``(label, [P0, P1, ...])``: an argparse ``type``."""
    label, sep, paths = text.partition("=")
    label = label.strip()
    parts = [p.strip() for p in paths.split(",")]
    if not sep or not label or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=CKPT_SEED0,CKPT_SEED1,...")
    if label == RANDOM:
        raise argparse.ArgumentTypeError(f"the label {RANDOM!r} is taken by the row of random actions, always added")
    return label, [Path(p) for p in parts]


def check_checkpoints(agents: dict[str, list[Path]]) -> tuple[str, dict]:
    """The env id and env keywords shared by every checkpoint of ``agents`` (label -> one checkpoint per seed).

    :raises FileNotFoundError: a checkpoint does not exist (checked for all before any is read).
    :raises ValueError: the agents give different numbers of checkpoints, or two checkpoints
        are models of different envs or env keywords.
    """
    from sen_rl.model import read_checkpoint

    if not agents:
        raise ValueError("no agent: give at least one --agent LABEL=CKPT_SEED0,CKPT_SEED1,...")
    counts = {label: len(paths) for label, paths in agents.items()}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{label!r} {n}" for label, n in counts.items())
        raise ValueError(f"every agent needs one checkpoint per seed, the same number each; got {shown}")
    # all missing files at once: a typo in one path should not cost a run that loaded the others
    missing = [
        f"{path} (agent {label!r}, seed {seed})"
        for label, paths in agents.items()
        for seed, path in enumerate(paths)
        if not path.is_file()
    ]
    if missing:
        raise FileNotFoundError(f"checkpoint not found: {', '.join(missing)}")
    first = None
    for label, paths in agents.items():
        for seed, path in enumerate(paths):
            config = read_checkpoint(path)["config"]
            env = (config["env_id"], config.get("env_kwargs", {}))
            if first is None:
                first, first_path = env, path
                continue
            where = f"checkpoint {path} (agent {label!r}, seed {seed})"
            if env[0] != first[0]:
                raise ValueError(
                    f"{where} is a model of {env[0]}, but {first_path} is one of {first[0]}: "
                    "every checkpoint must be of the same env"
                )
            if env[1] != first[1]:
                raise ValueError(
                    f"{where} reads env_kwargs {json.dumps(env[1])}, but {first_path} reads "
                    f"{json.dumps(first[1])}: every checkpoint must see the same env"
                )
    return first


def _jsonable(value: Any) -> Any:
    """Reset infos hold numpy arrays and scalars: as JSON lists and numbers."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, float) and value != value:  # nan: JSON has no such number
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when either side is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def goal_views(env, goals: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The start and goal observations and goal distances of a seed's episodes (the same resets
    as ``run_goal_episodes``): rendered once per seed, read by every agent's :func:`goal_metric_check`."""
    from sen_rl.agents.planning import _episode_seeds

    obs, goal_obs, distance = [], [], []
    for i in range(goals):
        o, info = env.reset(seed=_episode_seeds(seed, i)[0])
        obs.append(o)
        goal_obs.append(info["goal_observation"])
        distance.append(info["distance"])
    return np.stack(obs), np.stack(goal_obs), np.asarray(distance, dtype=np.float64)


def goal_metric_check(model, views: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    """Does the model's energy to the goal latent order starts as the task's goal distance does?

    On a seed's starts and goals (:func:`goal_views`): the rank correlation of
    ``model.energy(E(start), E(goal))`` with ``goal_distance(start, goal)`` over all of them
    (``all``) and over the nearer half (``near``), where the planner finishes. A planner can only
    home in as finely as this ordering allows.
    """
    import torch

    obs, goal_obs, distance = views
    with torch.inference_mode():
        energy = model.energy(model.encode(obs), model.encode(goal_obs)).cpu().numpy()
    near = distance <= np.median(distance)
    return {
        "all": rank_correlation(energy, distance),
        "near": rank_correlation(energy[near], distance[near]),
        "median_distance": float(np.median(distance)),
    }


def play(
    agents: dict[str, list[Path]],
    goals: int,
    goal_steps: int | None = None,
    planner: dict | None = None,
    progress: bool = False,
    log=print,
) -> dict:
    """Every agent (and random actions) on ``goals`` goals per seed; seed ``i`` is checkpoint ``i``'s.

    :param agents: label -> checkpoints, one per seed (:func:`check_checkpoints` checks them).
    :param goals: goal episodes per agent and seed.
    :param goal_steps: random steps from the start to the goal (None: the domain's).
    :param planner: keywords of :class:`LatentMPC` (horizon, method).
    :param log: called with a line after each agent and seed (None: silent).
    :returns: ``env_id``, ``env_kwargs``, ``goal_steps``, ``planner`` (the LatentMPC's repr) and
        ``episodes``: label -> per seed, the :class:`GoalEpisode` list; ``random`` last;
        ``metric_check``: label -> per seed, :func:`goal_metric_check` (not for ``random``).
    """
    import gymnasium as gym

    from sen_rl.agents.planning import LatentMPC, RandomAgent, run_goal_episodes
    from sen_rl.domains import domain_of
    from sen_rl.model import load_model

    env_id, env_kwargs = check_checkpoints(agents)
    domain = domain_of(env_id)
    goal_steps = goal_steps or domain.goal.goal_steps
    seeds = len(next(iter(agents.values())))
    episodes: dict[str, list] = {label: [] for label in [*agents, RANDOM]}
    checks: dict[str, list] = {label: [] for label in agents}
    shown = None
    # one env for all: every episode resets it with a seed of its own, so goals do not depend on order
    env = gym.make(domain.goal_env_id, goal_steps=goal_steps, **env_kwargs)
    try:
        for seed in range(seeds):
            views = goal_views(env, goals, seed)  # the same starts and goals for every agent
            for label in [*agents, RANDOM]:
                if label == RANDOM:
                    agent = RandomAgent(env.action_space, seed=seed)
                else:
                    model = load_model(agents[label][seed], export=True)
                    agent = LatentMPC(model, env.action_space, seed=seed, **(planner or {}))
                    checks[label].append(goal_metric_check(model, views))
                    shown = shown or repr(agent)
                played = run_goal_episodes(env, agent, goals, seed=seed, progress=progress)
                episodes[label].append(played)
                if log is not None:
                    rate = np.mean([e.success for e in played])
                    log(f"seed {seed}: {label} success {rate:.0%}")
    finally:
        env.close()
    return {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "goal_steps": goal_steps,
        "planner": shown,
        "episodes": episodes,
        "metric_check": checks,
    }


def summaries(episodes: dict[str, list]) -> dict[str, dict]:
    """label -> ``per_seed`` (a :func:`summarize` dict per seed) and ``pooled`` (over all its episodes)."""
    from sen_rl.agents.planning import summarize

    return {
        label: {"per_seed": [summarize(e) for e in per_seed], "pooled": summarize([e for s in per_seed for e in s])}
        for label, per_seed in episodes.items()
    }


def success_table(summary: dict[str, dict]) -> list[str]:
    """Markdown rows: one per agent; success per seed, pooled (95% CI), steps to success, ms per decision."""
    seeds = len(next(iter(summary.values()))["per_seed"])
    lines = [
        "| agent | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | all seeds (95% CI) "
        "| mean steps to success | ms per decision |",
        "|---|" + "---|" * (seeds + 3),
    ]
    for label, s in summary.items():
        pooled = s["pooled"]
        per_seed = " | ".join(f"{x['success_rate']:.0%}" for x in s["per_seed"])
        steps = pooled["mean_steps_to_success"]
        ms = pooled["seconds_per_decision"]
        lines.append(
            f"| {label} | {per_seed} | {_cell(pooled)} | {'-' if steps is None else f'{steps:.2f}'} "
            f"| {'-' if ms is None else f'{ms * 1e3:.2f}'} |"
        )
    return lines


def metric_table(checks: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: per agent, the mean over seeds of :func:`goal_metric_check`'s correlations."""
    lines = ["| agent | rank correlation, all starts | nearer half | median goal distance |", "|---|---|---|---|"]
    for label, per_seed in checks.items():
        mean = {k: float(np.mean([c[k] for c in per_seed])) for k in ("all", "near", "median_distance")}
        lines.append(f"| {label} | {mean['all']:.2f} | {mean['near']:.2f} | {mean['median_distance']:.3g} |")
    return lines


def report(result: dict, summary: dict, agents: dict[str, list[Path]], settings: dict) -> str:
    from sen_rl.domains import domain_of

    domain = domain_of(result["env_id"])
    task = domain.goal
    seeds = len(next(iter(agents.values())))
    kwargs = f" {json.dumps(result['env_kwargs'])}" if result["env_kwargs"] else ""
    seconds = settings["seconds"]
    wall = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"  # quick looks take seconds
    lines = [
        f"# Goal reaching on {domain.title} with LatentMPC on trained checkpoints",
        "",
        f"Command: `{settings['command']}`  ",
        f"Machine: {settings['machine']}.  ",
        f"Date: {settings['date']}; wall time {wall}.",
        "",
        f"Success rate: per seed ({settings['goals']} goals each; seed i is each agent's checkpoint i, the same "
        f"goals for every agent), and over all {settings['goals'] * seeds} episodes with its 95% Wilson interval.",
        "",
        *success_table(summary),
        "",
        "Does the model's energy to the goal latent order the starts as the goal distance does? Spearman's "
        "rank correlation over each seed's starts and goals, all of them and the nearer half (goal distance at "
        "most the median), where the planner must home in; mean over seeds (per seed in the JSON).",
        "",
        *metric_table(result["metric_check"]),
        "",
        f"Goal task: `{domain.goal_env_id}`{kwargs}, goals {result['goal_steps']} random steps from the start, "
        f"success {task.success} (goal distance <= {task.tolerance:g}), budget {task.max_steps} steps.  ",
        f"Planner: `{result['planner']}`, seeded with the seed index like the goals; `{RANDOM}`: uniformly "
        "random actions.",
        "",
        "Checkpoints:",
        "",
        *(f"- {label}: {', '.join(f'`{p}`' for p in paths)}" for label, paths in agents.items()),
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from sen_rl.agents.planning import METHODS, LatentMPC

    mpc = {k: v.default for k, v in inspect.signature(LatentMPC).parameters.items()}
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plan_checkpoints",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--agent",
        type=parse_agent,
        action="append",
        required=True,
        metavar="LABEL=CKPT_SEED0,CKPT_SEED1,...",
        help="one row of the table: LatentMPC on these checkpoints, seed i on checkpoint i (repeat for more rows)",
    )
    parser.add_argument("--goals", type=int, default=100, help="goal episodes per agent and seed")
    parser.add_argument("--horizon", type=int, default=mpc["horizon"], help="steps of each planned action sequence")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=mpc["method"],
        help="search: exhaustive or beam for discrete actions, cem for boxes; auto picks by the action space",
    )
    parser.add_argument(
        "--goal-steps", type=int, help="random steps from the start to the goal (default: the domain's)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads: more than the free cores slows a shared machine"
    )
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--json", help="also write the summaries, episodes and settings to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no per-seed lines")
    return parser


def main(argv=None) -> int:
    import torch

    from sen_rl.cli import show_progress
    from sen_rl.fileio import atomic_write_text

    parser = build_parser()
    args = parser.parse_args(argv)
    command = "python -m benchmarks.plan_checkpoints " + shlex.join(sys.argv[1:] if argv is None else argv)
    labels = [label for label, _ in args.agent]
    if len(set(labels)) < len(labels):
        parser.error(f"--agent labels must differ; got {', '.join(labels)}")
    for name in ("goals", "horizon", "goal_steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    agents = dict(args.agent)
    try:  # a usage message, not a traceback, for a wrong or missing checkpoint
        check_checkpoints(agents)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = play(
            agents,
            args.goals,
            args.goal_steps,
            {"horizon": args.horizon, "method": args.method},
            progress=show_progress(args.quiet),
            log=None if args.quiet else print,
        )
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests) keep their own setting
    summary = summaries(result["episodes"])
    settings = {
        "command": command,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "seconds": time.perf_counter() - t0,
        "goals": args.goals,
        "horizon": args.horizon,
        "method": args.method,
        "threads": args.threads,
    }
    text = report(result, summary, agents, settings)
    print(text)
    if args.out:
        print(f"written to {atomic_write_text(args.out, text)}")
    if args.json:
        from sen_rl.domains import domain_of

        task = domain_of(result["env_id"]).goal
        data = {
            **settings,
            "env_id": result["env_id"],
            "env_kwargs": result["env_kwargs"],
            "goal_task": {**dataclasses.asdict(task), "goal_steps": result["goal_steps"]},
            "planner": result["planner"],
            "checkpoints": {label: [str(p) for p in paths] for label, paths in agents.items()},
            "agents": summary,
            "metric_check": _jsonable(result["metric_check"]),
            # start and goal of every episode: what makes the rows comparable, checkable afterwards
            "episodes": {
                label: [
                    [
                        {"success": e.success, "steps": e.steps}
                        | {k: _jsonable(e.reset_info.get(k)) for k in ("state", "goal_state", "distance")}
                        for e in per_seed
                    ]
                    for per_seed in runs
                ]
                for label, runs in result["episodes"].items()
            },
        }
        out = atomic_write_text(args.json, json.dumps(data, indent=1) + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
