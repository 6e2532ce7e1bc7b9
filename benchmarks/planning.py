"""Goal reaching on the grid domains by model predictive control in SEN latents, with unseen actions.

    python -m benchmarks.planning --preset cpu --seeds 0 1 2                      # 2D Shapes, about 25 min on 2 cores
    python -m benchmarks.planning --env SEN-Cubes-v0 --preset cpu --seeds 0 1 2   # 3D Blocks
    python -m benchmarks.planning --preset smoke --seeds 0                         # a minute; checks the pipeline

For every seed, ``sen`` and ``none`` world models of the domain (``--env``: 2D Shapes or 3D
Blocks) are trained (like ``benchmarks/demo.py``: one-step episodes from random states,
``sen_rl.data.collect`` and ``sen_rl.train.train``) on (a) moves in all four directions and
(b) the moves of the paper's unseen-action split only (:data:`SPLITS`: 2D Shapes "up", 3D
Blocks "up", "right" and "down", as ``benchmarks/reproduce.py``'s ``shapes_up`` and
``cubes_urd``). Then each plays the same goals with :class:`sen_rl.agents.LatentMPC` (goals
drawn 5 random moves away, 20 steps budget: the domain table's ``GoalTask``), beside
uniformly random actions.

The headline is the goals that need a direction the restricted models never saw: some
object ends displaced along an unseen direction (2D Shapes: down, left or right; 3D Blocks:
left). The equivariant model plans moves it was never shown; the plain one cannot. The
planner's transition memory (``LatentMPC(memory=...)``: the transitions the agent made
replace the model's predictions of them) is on, with rows of the restricted models without
it beside.

The table goes to ``WORKDIR/planning.md`` and to stdout. Datasets, runs and evaluations are
cached under the workdir (default ``runs/planning/PRESET`` for 2D Shapes,
``runs/planning/cubes/PRESET`` for 3D Blocks): a rerun only redoes what is missing or was
made with other settings.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.reproduce import EXPERIMENTS as _PAPER_SPLITS


@dataclass(frozen=True)
class Split:
    """The unseen-action split of one domain: the directions its restricted models are trained on.

    :param seen: the directions of the restricted dataset (``sen_rl.groups.GRID_DIRECTIONS`` names).
    :param data: the restricted dataset's name in file and run names.
    :param column: how agent names and table headers write ``seen``.
    :param workdir: the default workdir, ``{preset}`` filled in.
    """

    seen: tuple[str, ...]
    data: str
    column: str
    workdir: str

    @property
    def datasets(self) -> dict[str, list[str] | None]:
        """The datasets: name -> direction restriction of collect (None: every action)."""
        return {"all": None, self.data: list(self.seen)}


#: env id -> its split: the paper's (benchmarks/reproduce.py's shapes_up and cubes_urd experiments).
#: 2D Shapes keeps the workdir and names it had when it was the only domain, so its cache stays valid.
SPLITS = {
    "SEN-Shapes-v0": Split(tuple(_PAPER_SPLITS["shapes_up"].train_actions), "up", "up", "runs/planning/{preset}"),
    "SEN-Cubes-v0": Split(
        tuple(_PAPER_SPLITS["cubes_urd"].train_actions), "urd", "u,r,d", "runs/planning/cubes/{preset}"
    ),
}
DEFAULT_ENV = "SEN-Shapes-v0"


@dataclass(frozen=True)
class Preset:
    """Sizes of one preset of the benchmark.

    :param transitions: training transitions (one-step episodes) of each dataset.
    :param epochs: training epochs of each model.
    :param model_preset: network sizes (``sen_rl.domains.PRESETS``).
    :param goals: goal episodes per seed and agent.
    """

    transitions: int
    epochs: int
    model_preset: str
    goals: int


PRESETS = {
    "smoke": Preset(transitions=1000, epochs=2, model_preset="smoke", goals=10),
    # The transitions sit on a plateau (predicting hardly any move) for a seed-dependent number of
    # updates: at batch 256, 5 to 11 epochs on 2D Shapes, and 10 epochs left one seed in three on it.
    # The batch is now the domain's cpu batch (64 on both grids, Domain.preset_batch_size): 10 epochs
    # are twice the updates of 20 at 256, and every `sen` seed of both grids left the plateau within
    # 5 (docs/RESULTS_findings.md, "Multi-step drift"); docs/agents.md has the runs at this preset
    "cpu": Preset(transitions=20000, epochs=10, model_preset="cpu", goals=100),
}


@dataclass(frozen=True)
class Agent:
    """One column of the table: random actions, or LatentMPC on one trained model."""

    name: str
    data: str | None = None  # a dataset of Split.datasets; None: random actions
    variant: str | None = None
    memory: bool = True


def agents(split: Split) -> tuple[Agent, ...]:
    """The columns of the table: random actions, then each model on all moves and on the split's."""
    data, col = split.data, split.column
    return (
        Agent("random"),
        Agent("none (all)", "all", "none"),
        Agent("sen (all)", "all", "sen"),
        Agent(f"none ({col})", data, "none"),
        Agent(f"sen ({col})", data, "sen"),
        Agent(f"none ({col}), no memory", data, "none", memory=False),
        Agent(f"sen ({col}), no memory", data, "sen", memory=False),
    )


def headline(split: Split) -> tuple[str, ...]:
    """The columns of the headline table: random actions and the models that never saw some moves."""
    return tuple(a.name for a in agents(split) if a.data != "all")


#: the share of the unseen-direction goals that ``sen`` trained on the split's moves should reach
TARGET = 0.8


def needs_unseen_direction(state: np.ndarray, goal_state: np.ndarray, seen=SPLITS[DEFAULT_ENV].seen) -> bool:
    """Whether some object's net displacement from ``state`` to ``goal_state`` has a component
    along a direction outside ``seen`` (for ``("up",)``: down, left or right).

    States are the grid domains' ``[objects, (row, col)]`` cells, row 0 at the top (2D Shapes)
    or farthest from the camera (3D Blocks): the layout of ``sen_rl.groups.GRID_DELTAS``.
    """
    from sen_rl.groups import GRID_DELTAS, GRID_DIRECTIONS

    unknown = set(seen) - set(GRID_DIRECTIONS)
    if unknown:
        raise ValueError(f"seen directions {sorted(unknown)} are not grid directions; use {GRID_DIRECTIONS}")
    displacement = np.asarray(goal_state) - np.asarray(state)  # [objects, (row, col)]
    unseen = [d for name, d in zip(GRID_DIRECTIONS, GRID_DELTAS, strict=True) if name not in seen]
    return bool(any((displacement @ d > 0).any() for d in unseen))


# -- models ------------------------------------------------------------------------------------


def dataset(workdir: Path, env_id: str, name: str, preset: Preset, seed: int, progress: bool) -> Path:
    """The training set ``name`` (of ``SPLITS[env_id].datasets``) of ``seed``, collected unless cached."""
    from sen_rl.data import CollectConfig, collect
    from sen_rl.domains import domain_of

    datasets = SPLITS[env_id].datasets
    path = workdir / "data" / f"{domain_of(env_id).name}_{name}_{preset.transitions}_seed{seed}.h5"
    if not path.exists():  # collect writes atomically: a file that exists is complete
        data_seed = 100 * seed + 1 + list(datasets).index(name)
        cfg = CollectConfig(env_id, preset.transitions, 1, seed=data_seed, actions=datasets[name])
        collect(cfg, path, progress=progress)
    return path


def trained_model(
    workdir: Path,
    env_id: str,
    name: str,
    variant: str,
    preset: Preset,
    seed: int,
    threads: int,
    progress: bool,
    verbose: bool,
):
    """The checkpoint of ``variant`` on the dataset ``name``, trained unless a finished run is cached,
    and the seconds its collection and training took (when they were done, cached or not)."""
    from sen_rl.fileio import atomic_write_text
    from sen_rl.model import read_checkpoint
    from sen_rl.train import TrainConfig, default_batch_size, train

    run = workdir / "runs" / f"{name}_{variant}_seed{seed}"
    last, best, timing = run / "last.pt", run / "best.pt", run / "seconds.json"
    if last.exists():
        payload = read_checkpoint(last)
        # run names carry no domain (2D Shapes' cache predates the others): never retrain over another's
        if payload["config"]["env_id"] != env_id:
            raise ValueError(
                f"{last} is a model of {payload['config']['env_id']}, not {env_id}: give each domain its own "
                "--workdir (the default does)"
            )
    if last.exists() and best.exists() and timing.exists():
        done = payload.get("train_config", {})
        # a model trained at other sizes (an older preset, or before the domain's batch changed) is retrained
        wanted = {"epochs": preset.epochs, "batch_size": default_batch_size(env_id, preset.model_preset)}
        if payload.get("epoch", -1) + 1 >= preset.epochs and all(done.get(k) == v for k, v in wanted.items()):
            return best, json.loads(timing.read_text())["seconds"]
    t0 = time.perf_counter()
    data = dataset(workdir, env_id, name, preset, seed, progress)
    size = f"{preset.transitions} transitions, {preset.epochs} epochs"
    print(f"seed {seed}: training {variant!r} on {name} moves ({size})")
    cfg = TrainConfig(
        data=str(data),
        out=str(run),
        variant=variant,
        preset=preset.model_preset,
        epochs=preset.epochs,
        seed=seed,
        device="cpu",
        threads=threads,
    )
    result = train(cfg, progress=progress, verbose=verbose, overwrite=True)
    seconds = time.perf_counter() - t0  # collection (when this run made the dataset) and training
    atomic_write_text(timing, json.dumps({"seconds": seconds}) + "\n")
    return Path(result["best"]), seconds


# -- evaluation --------------------------------------------------------------------------------


def evaluate_agent(
    workdir: Path, env_id: str, agent: Agent, checkpoint: Path | None, settings: dict, seed: int, progress: bool
):
    """The goal episodes of one agent and seed on ``env_id``'s goal task, the one-step check of its
    model (None for random actions) and the seconds they took; cached in ``WORKDIR/eval``."""
    import gymnasium as gym

    from sen_rl.agents.planning import LatentMPC, RandomAgent, run_goal_episodes
    from sen_rl.domains import domain_of
    from sen_rl.fileio import atomic_write_text
    from sen_rl.model import load_model

    slug = agent.name.replace(" ", "").replace("(", "_").replace(")", "").replace(",", "_")
    path = workdir / "eval" / f"seed{seed}" / f"{slug}.json"
    key = {**settings, "agent": agent.name, "seed": seed}
    if checkpoint is not None:
        key["checkpoint_mtime_ns"] = checkpoint.stat().st_mtime_ns
    if path.exists():
        cached = json.loads(path.read_text())
        # the env sits beside the key, not in it, so that 2D Shapes' evaluations made before the
        # benchmark had other domains (without it) still match
        if cached.get("key") == key and cached.get("env", DEFAULT_ENV) == env_id:
            return cached["episodes"], cached["check"], cached["seconds"]
    t0 = time.perf_counter()
    domain = domain_of(env_id)
    seen = SPLITS[env_id].seen
    env = gym.make(domain.goal_env_id, goal_steps=settings["goal_steps"])
    check = None
    if checkpoint is None:
        policy = RandomAgent(env.action_space, seed=seed)
    else:
        model = load_model(checkpoint, export=True)
        policy = LatentMPC(model, env.action_space, horizon=settings["horizon"], memory=agent.memory, seed=seed)
        check = one_step_check(model, env_id, seed)
    try:
        episodes = run_goal_episodes(env, policy, settings["goals"], seed=seed, progress=progress)
    finally:
        env.close()
    rows = [
        {
            "success": e.success,
            "steps": e.steps,
            "decisions": e.decisions,
            "decision_seconds": e.decision_seconds,
            "unseen": needs_unseen_direction(e.reset_info["state"], e.reset_info["goal_state"], seen),
        }
        for e in episodes
    ]
    seconds = time.perf_counter() - t0
    cache = {"key": key, "env": env_id, "episodes": rows, "check": check, "seconds": seconds}
    atomic_write_text(path, json.dumps(cache) + "\n")
    return rows, check, seconds


def one_step_check(model, env_id: str, seed: int, moves: int = 400) -> dict[str, float]:
    """How much of a real move the model predicts, per direction group: ``d(predicted, next) / d(current, next)``.

    ``moves`` random moves that change the state (from random states), encoded before and after;
    0 is a perfect prediction, 1 as far off as predicting that nothing moves. Returned for the
    directions of ``SPLITS[env_id].seen`` (``"seen"``) and the others (``"unseen"``).
    """
    import torch

    from sen_rl.domains import domain_of

    domain = domain_of(env_id)
    names = domain.direction_names  # a grid action is object * len(names) + direction
    env = domain.make_env()
    rng = np.random.default_rng([seed, 7])
    obs, nxt, actions = [], [], []
    while len(actions) < moves:
        o, info = env.reset(seed=int(rng.integers(2**31)))
        a = int(rng.integers(env.action_space.n))
        o2, *_ = env.step(a)
        if not np.array_equal(o, o2):  # a move that does something
            obs.append(o)
            nxt.append(o2)
            actions.append(a)
    env.close()
    actions = np.array(actions)
    with torch.inference_mode():
        z, z_next = model.encode(np.stack(obs)), model.encode(np.stack(nxt))
        pred = model.predict(z, actions)
        err, move = model.energy(pred, z_next).numpy(), model.energy(z, z_next).numpy()
    seen = np.isin(actions % len(names), [names.index(d) for d in SPLITS[env_id].seen])
    return {
        "seen": float(err[seen].mean() / move[seen].mean()),
        "unseen": float(err[~seen].mean() / move[~seen].mean()),
    }


# -- the table ---------------------------------------------------------------------------------


def _summary(rows: list[dict]) -> dict:
    from sen_rl.agents.planning import GoalEpisode, summarize

    return summarize([GoalEpisode(r["success"], r["steps"], r["decisions"], r["decision_seconds"]) for r in rows])


def _cell(s: dict) -> str:
    if not s["episodes"]:
        return "-"
    return f"{s['success_rate']:.0%} ({s['ci_low']:.0%}-{s['ci_high']:.0%})"


def _mean_cell(per_seed: list[dict], pooled: dict) -> str:
    rates = [s["success_rate"] for s in per_seed if s["episodes"]]
    if not rates:
        return "-"
    return f"**{np.mean(rates):.0%}** (pooled {pooled['ci_low']:.0%}-{pooled['ci_high']:.0%})"


def success_table(results: dict, seeds: list[int], agents: list[str], subset) -> list[str]:
    """Markdown rows: one per seed and the mean, one column per agent, success (95% CI)."""
    lines = [
        "| seed | goals | " + " | ".join(agents) + " |",
        "|---|---|" + "---|" * len(agents),
    ]
    for seed in seeds:
        chosen = {a: [r for r in results[seed][a] if subset(r)] for a in agents}
        n = len(chosen[agents[0]])
        lines.append(f"| {seed} | {n} | " + " | ".join(_cell(_summary(chosen[a])) for a in agents) + " |")
    cells = []
    for a in agents:
        per_seed = [_summary([r for r in results[s][a] if subset(r)]) for s in seeds]
        pooled = _summary([r for s in seeds for r in results[s][a] if subset(r)])
        cells.append(_mean_cell(per_seed, pooled))
    total = sum(1 for s in seeds for r in results[s][agents[0]] if subset(r))
    lines.append(f"| mean | {total} | " + " | ".join(cells) + " |")
    return lines


def steps_table(results: dict, seeds: list[int], agents: list[str]) -> list[str]:
    """Markdown rows: mean steps to success per seed and pooled, and milliseconds per decision."""
    lines = [
        "| agent | " + " | ".join(f"steps, seed {s}" for s in seeds) + " | steps, all | ms per decision |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]

    def fmt(x):
        return "-" if x is None else f"{x:.2f}"

    for a in agents:
        per = [_summary(results[s][a])["mean_steps_to_success"] for s in seeds]
        pooled = _summary([r for s in seeds for r in results[s][a]])
        ms = pooled["seconds_per_decision"]
        ms_cell = "-" if ms is None else f"{ms * 1e3:.2f}"
        steps = " | ".join(fmt(x) for x in [*per, pooled["mean_steps_to_success"]])
        lines.append(f"| {a} | {steps} | {ms_cell} |")
    return lines


def machine() -> str:
    from sen_rl.hardware import describe_machine

    return describe_machine()


def check_table(checks: dict, seeds: list[int], agents: list[str], seen: tuple[str, ...]) -> list[str]:
    """Markdown rows: each model's one-step check (:func:`one_step_check`), per seed and mean."""
    models = [a for a in agents if "memory" not in a and checks[seeds[0]].get(a) is not None]
    per_seed = " / ".join(str(s) for s in seeds)
    moves = "/".join(seen)
    lines = [
        f"| model | {moves} moves, seeds {per_seed} | {moves}, mean | other directions, seeds {per_seed} "
        "| other, mean |",
        "|---|---|---|---|---|",
    ]
    for a in models:
        cells = []
        for k in ("seen", "unseen"):
            values = [checks[s][a][k] for s in seeds]
            cells += [" / ".join(f"{v:.2f}" for v in values), f"{np.mean(values):.2f}"]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines


def _either(words: list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b or c"``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def report(
    results: dict, checks: dict, args, preset: Preset, settings: dict, times: dict, spent: dict, command: str
) -> str:
    from sen_rl.domains import domain_of
    from sen_rl.train import default_batch_size

    seeds = args.seeds
    domain, split = domain_of(args.env), SPLITS[args.env]
    names = [a.name for a in agents(split)]
    headline_agents = list(headline(split))
    unseen = [d for d in domain.direction_names if d not in split.seen]
    wall = times["wall"]
    lines = [
        f"# Goal reaching on {domain.title}: LatentMPC in SEN latents, unseen actions",
        "",
        f"Command: `{command}`  ",
        f"Preset: `{args.preset}`: each model trained on {preset.transitions} one-step transitions for "
        f"{preset.epochs} epochs at batch {default_batch_size(args.env, preset.model_preset)} "
        f"(`{preset.model_preset}` networks); a seed seeds its data, training and goals.  ",
        f"Goals: {settings['goals']} per seed, {settings['goal_steps']} random moves from the start "
        f"(`{domain.goal_env_id}`), budget {settings['max_steps']} steps; the same goals for every agent.  ",
        f"Planner: `LatentMPC(horizon={settings['horizon']})` ({settings['method']} search, cost = min over the "
        "steps of the model's energy to the encoded goal), transition memory on unless the column says otherwise.  ",
        f"Machine: {machine()}.  ",
        f"Wall time of this command: {wall / 60:.1f} min (collection and training {times['train'] / 60:.1f} min, "
        f"evaluation {times['eval'] / 60:.1f} min). Every part, cached ones included, took "
        f"{spent['train'] / 60:.1f} min of collection and training and {spent['eval'] / 60:.1f} min of evaluation.",
        "",
        f"## Headline: goals that need a direction the models trained on {{{', '.join(split.seen)}}} never saw",
        "",
        f"Some object's net displacement from the start to the goal points {_either(unseen)}. "
        "Success rate (95% Wilson interval); mean: the mean over seeds (pooled interval over all goals).",
        "",
        *success_table(results, seeds, headline_agents, lambda r: r["unseen"]),
        "",
        "## All goals",
        "",
        *success_table(results, seeds, names, lambda r: True),
        "",
        "## Mean steps to success and time per decision",
        "",
        *steps_table(results, seeds, names),
        "",
        "## One-step check of the models",
        "",
        "How far each model's prediction of a real move lands from the encoded next observation, relative "
        "to the move itself: `d(predicted, next) / d(current, next)` over 400 random moves that change the "
        "state (0: exact; 1: as far off as predicting no move). Training's one-step Hits@1 cannot tell these "
        "apart: against random other states of the batch even a no-move prediction ranks first.",
        "",
        *check_table(checks, seeds, names, split.seen),
        "",
    ]
    sen_name, none_name = f"sen ({split.column})", f"none ({split.column})"
    pooled = {a: _summary([r for s in seeds for r in results[s][a] if r["unseen"]]) for a in headline_agents}
    sen, none, rnd = pooled[sen_name], pooled[none_name], pooled["random"]
    verdict = "met" if sen["success_rate"] >= TARGET else "MISSED"
    per_seed = [_summary([r for r in results[s][sen_name] if r["unseen"]])["success_rate"] for s in seeds]
    lines += [
        f"Target, {sen_name} >= {TARGET:.0%} on the unseen-direction goals: {verdict} ({sen['success_rate']:.1%} of "
        f"{sen['episodes']}; per seed {', '.join(f'{x:.0%}' for x in per_seed)}); {none_name} "
        f"{none['success_rate']:.1%}, random {rnd['success_rate']:.1%}.",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.planning",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--env", choices=tuple(SPLITS), default=DEFAULT_ENV, help="the grid domain (its unseen-action split: SPLITS)"
    )
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="sizes (see PRESETS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of data, training and goals")
    parser.add_argument(
        "--workdir",
        help="cache and output folder (default: runs/planning/PRESET for 2D Shapes, runs/planning/cubes/PRESET "
        "for 3D Blocks)",
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=1,
        help="planning horizon: on these models 1 did as well as 2 and 3, at a fraction of the cost",
    )
    parser.add_argument("--goals", type=int, help="goals per seed and agent (default: the preset's)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for training and planning: on 2 shared cores, more threads than free cores "
        "made training 10x slower",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines")
    return parser


def main(argv=None) -> int:
    import torch

    from sen_rl.agents.planning import LatentMPC
    from sen_rl.cli import show_progress
    from sen_rl.domains import domain_of
    from sen_rl.fileio import atomic_write_text

    args = build_parser().parse_args(argv)
    command = "python -m benchmarks.planning " + shlex.join(sys.argv[1:] if argv is None else argv)
    preset = PRESETS[args.preset]
    split = SPLITS[args.env]
    workdir = Path(args.workdir or split.workdir.format(preset=args.preset))
    progress = show_progress(args.quiet)
    task = domain_of(args.env).goal
    settings = {
        "goals": args.goals or preset.goals,
        "goal_steps": task.goal_steps,
        "max_steps": task.max_steps,
        "horizon": args.horizon,
        "transitions": preset.transitions,
        "epochs": preset.epochs,
    }
    t_start = time.perf_counter()
    times = {"train": 0.0, "eval": 0.0}  # of this invocation
    spent = {"train": 0.0, "eval": 0.0}  # of every part, also those cached by earlier invocations
    results: dict[int, dict[str, list]] = {}
    checks: dict[int, dict[str, dict | None]] = {}
    columns = agents(split)
    width = max(len(a.name) for a in columns)
    for seed in args.seeds:
        t0 = time.perf_counter()
        checkpoints = {}
        checks[seed] = {}
        for agent in columns:
            if agent.data is not None and (agent.data, agent.variant) not in checkpoints:
                path, seconds = trained_model(
                    workdir, args.env, agent.data, agent.variant, preset, seed, args.threads, progress, not args.quiet
                )
                checkpoints[agent.data, agent.variant] = path
                spent["train"] += seconds
        times["train"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        try:
            results[seed] = {}
            for agent in columns:
                ckpt = None if agent.data is None else checkpoints[agent.data, agent.variant]
                rows, check, seconds = evaluate_agent(workdir, args.env, agent, ckpt, settings, seed, progress)
                results[seed][agent.name] = rows
                checks[seed][agent.name] = check
                spent["eval"] += seconds
                print(f"seed {seed}: {agent.name:{width}s} success {np.mean([r['success'] for r in rows]):.0%}")
        finally:
            torch.set_num_threads(threads)
        times["eval"] += time.perf_counter() - t0
    times["wall"] = time.perf_counter() - t_start
    method = LatentMPC(_SpaceOnly(args.env), horizon=args.horizon).method
    text = report(results, checks, args, preset, {**settings, "method": method}, times, spent, command)
    out = atomic_write_text(workdir / "planning.md", text)
    print()
    print(text)
    print(f"written to {out}")
    return 0


class _SpaceOnly:
    """Enough of a model for LatentMPC to say which search it would choose on ``env_id``."""

    def __init__(self, env_id: str):
        from sen_rl.domains import domain_of

        env = domain_of(env_id).make_env()
        self.action_space = env.action_space
        env.close()

    def encode(self, obs):  # pragma: no cover - never called
        raise NotImplementedError

    predict = energy = encode


if __name__ == "__main__":
    sys.exit(main())
