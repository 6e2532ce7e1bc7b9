"""Every agent benchmark of one preset, in parallel lanes, with each part's wall time.

    python -m benchmarks.agent_suite --preset cpu               # two single-threaded lanes, about an hour
    python -m benchmarks.agent_suite --preset cpu --lanes 1     # one after another
    python -m benchmarks.agent_suite --preset smoke             # a few minutes; checks the pipeline

The parts are the benchmarks' own commands (``docs/agents.md`` has their tables), split where a
benchmark's seeds are independent: each grid planning seed and each RL seed is a process of its
own, and a last, cached invocation over all seeds writes the benchmark's table. Parts start in
order of the longest chain of work behind them, as soon as a lane is free and what they build
on has finished; the speed benchmark runs last, alone, so that no other part shares its cores.

The Teapot and Reacher planning rows play the reproduction's models (``benchmarks.reproduce``,
whose training is timed in ``docs/scaling.md``); without those checkpoints the two parts are
listed as not run, with the command that trains them.

Each part's output goes to ``WORKDIR/logs/PART.log``; ``WORKDIR/suite.md`` and ``suite.json``
hold the lanes, start and end of every part and the total wall time, rewritten after every part.
A rerun skips the parts that finished with the same command (the benchmarks cache their own
work too), so time a fresh ``--workdir``. Interrupted, the suite stops the parts it started and
records them as interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sen_rl.fileio import atomic_write_text
from sen_rl.hardware import describe_machine

SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Part:
    """One command of the suite.

    :param name: its name in the logs and the table.
    :param argv: the arguments after the Python interpreter.
    :param minutes: expected minutes on one thread of an idle machine, to start the longest chains first.
    :param after: parts that must finish (successfully) before this one starts.
    :param alone: run with no other part beside it (a timing benchmark).
    :param needs: files that must exist, else the part is not run.
    :param needs_hint: the command that makes ``needs``.
    """

    name: str
    argv: tuple[str, ...]
    minutes: float
    after: tuple[str, ...] = ()
    alone: bool = False
    needs: tuple[str, ...] = ()
    needs_hint: str = ""


@dataclass
class Outcome:
    """What happened to one part in this or an earlier invocation."""

    status: str  # "ok", "failed", "not run", "skipped"
    lane: int | None = None
    start: float | None = None  # seconds after the suite started
    end: float | None = None
    returncode: int | None = None
    why: str = ""
    earlier: bool = False  # finished in an earlier invocation
    argv: list = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start


def _per_seed(name: str, module: str, args: list[str], minutes: float, workdir: str, first=None) -> list[Part]:
    """A benchmark split into one part per seed plus a cached run over all seeds that writes its table.

    ``first``: the first seed's minutes, when it builds a cache the other seeds share and wait for.
    """
    common = ("--workdir", workdir, "--threads", "1") + (("--quiet",) if module == "benchmarks.planning" else ())
    parts = []
    for seed in SEEDS:
        after = (f"{name}-seed0",) if first is not None and seed else ()
        cost = first if first is not None and not seed else minutes
        parts.append(Part(f"{name}-seed{seed}", ("-m", module, *args, "--seeds", str(seed), *common), cost, after))
    seeds = tuple(str(s) for s in SEEDS)
    parts.append(
        Part(f"{name}-table", ("-m", module, *args, "--seeds", *seeds, *common), 0.5, tuple(p.name for p in parts))
    )
    return parts


def _checkpoints(root: str, variants: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``--agent`` arguments of ``plan_checkpoints`` for ``root/VARIANT/seedK/best.pt``, and the files."""
    agents, files = [], []
    for v in variants:
        paths = [f"{root}/{v}/seed{s}/best.pt" for s in SEEDS]
        agents += ["--agent", f"{v}=" + ",".join(paths)]
        files += paths
    return agents, files


def parts(preset: str, workdir: Path, models: Path) -> list[Part]:
    """The suite's parts for ``preset``; ``models`` is the reproduction's run folder."""
    w = str(workdir)
    if preset == "smoke":
        return [
            *_per_seed("planning-shapes", "benchmarks.planning", ["--preset", "smoke"], 1, f"{w}/planning_shapes"),
            Part("rl-reacher", ("-m", "benchmarks.rl_reacher", "--preset", "smoke", "--seeds", "0", "--workdir",
                                f"{w}/rl_reacher"), 1),
            Part("speed", ("-m", "benchmarks.agent_speed", "--preset", "smoke", "--steps", "20", "--vector-steps",
                           "3", "--decisions", "2", "--threads", "1", "--json", f"{w}/agent_speed.json"), 0.2,
                 alone=True),
        ]  # fmt: skip
    if preset != "cpu":
        raise ValueError(f"unknown preset {preset!r}: choose smoke or cpu")
    # the reproduction writes WORKDIR/runs/reproduce/cpu: name that WORKDIR when --models is such a folder
    root = models.parents[2] if models.parts[-3:-1] == ("runs", "reproduce") else None
    reproduce = "python -m benchmarks.reproduce --preset cpu --seeds 0 1 2 --jobs 2" + (
        f" --workdir {root}" if root is not None and str(root) != "." else ""
    )
    where = "" if root is not None else " (it writes runs/reproduce/cpu: pass that folder as --models)"
    teapot, teapot_files = _checkpoints(f"{models}/teapot", ("sen", "none"))
    reacher, reacher_files = _checkpoints(f"{models}/reacher", ("sen", "none", "full"))
    plan = ("-m", "benchmarks.plan_checkpoints", "--goals", "100", "--threads", "1", "--quiet")
    rl_world_model = f"{w}/rl_reacher/world_model_cpu/best.pt"
    # minutes: each part's wall time in the suite's run on an idle 2-core Xeon (docs/agents.md)
    return [
        *_per_seed("planning-shapes", "benchmarks.planning", ["--preset", "cpu"], 4.5, f"{w}/planning_shapes"),
        *_per_seed(
            "planning-cubes",
            "benchmarks.planning",
            ["--env", "SEN-Cubes-v0", "--preset", "cpu"],
            18,
            f"{w}/planning_cubes",
        ),
        Part(
            "planning-teapot",
            (*plan, *teapot, "--out", f"{w}/plan_teapot.md", "--json", f"{w}/plan_teapot.json"),
            2,
            needs=tuple(teapot_files),
            needs_hint=f"{reproduce} --only teapot{where}",
        ),
        Part(
            "planning-reacher",
            (*plan, *reacher, "--horizon", "3", "--out", f"{w}/plan_reacher.md", "--json", f"{w}/plan_reacher.json"),
            8,
            needs=tuple(reacher_files),
            needs_hint=f"{reproduce} --only reacher{where}",
        ),
        # seed 0 trains the world model the other seeds share; its minutes include that training
        *_per_seed("rl-reacher", "benchmarks.rl_reacher", ["--preset", "cpu"], 15, f"{w}/rl_reacher", first=23),
        Part(
            "speed",
            ("-m", "benchmarks.agent_speed", "--checkpoint", rl_world_model, "--json", f"{w}/agent_speed.json"),
            1,
            after=("rl-reacher-seed0",),
            alone=True,
        ),
    ]


def chain_minutes(todo: list[Part]) -> dict[str, float]:
    """Each part's minutes plus the longest chain of parts that wait on it: the start order."""
    children: dict[str, list[Part]] = {p.name: [] for p in todo}
    for p in todo:
        for a in p.after:
            if a in children:
                children[a].append(p)
    memo: dict[str, float] = {}

    def chain(p: Part) -> float:
        if p.name not in memo:
            memo[p.name] = p.minutes + max((chain(c) for c in children[p.name]), default=0.0)
        return memo[p.name]

    return {p.name: chain(p) for p in todo}


def check_parts(todo: list[Part]) -> None:
    """Refuse unknown or circular ``after`` names before anything runs."""
    names = {p.name for p in todo}
    if len(names) != len(todo):
        raise ValueError("two parts share a name")
    for p in todo:
        missing = [a for a in p.after if a not in names]
        if missing:
            raise ValueError(f"part {p.name!r} waits on unknown parts {missing}")
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    by_name = {p.name: p for p in todo}

    def visit(name: str) -> None:
        if seen.get(name) == 1:
            raise ValueError(f"parts wait on each other in a circle through {name!r}")
        if seen.get(name) != 2:
            seen[name] = 1
            for a in by_name[name].after:
                visit(a)
            seen[name] = 2

    for p in todo:
        visit(p.name)


def run_suite(todo: list[Part], workdir: Path, lanes: int, python: str = sys.executable, poll: float = 0.5) -> dict:
    """Run ``todo`` in ``lanes`` processes at a time; the outcome of every part, also written to ``workdir``."""
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, got {lanes}")
    check_parts(todo)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    record = workdir / "suite.json"
    before = json.loads(record.read_text()).get("parts", {}) if record.exists() else {}
    outcomes: dict[str, Outcome] = {}
    for p in todo:
        old = before.get(p.name)
        if old and old.get("status") == "ok" and old.get("argv") == list(p.argv):
            outcomes[p.name] = Outcome(**{**old, "earlier": True})
        else:
            missing = [f for f in p.needs if not Path(f).exists()]
            if missing:
                why = f"missing {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                outcomes[p.name] = Outcome("not run", why=f"{why}: make them with `{p.needs_hint}`")
    order = chain_minutes(todo)
    pending = sorted((p for p in todo if p.name not in outcomes), key=lambda p: -order[p.name])
    running: dict[int, tuple[Part, subprocess.Popen, float, object]] = {}  # lane -> part, process, start, log
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def write() -> None:
        save(outcomes, todo, workdir, lanes, time.perf_counter() - t0)

    try:
        while pending or running:
            for p in list(pending):  # parts that can no longer run
                bad = [a for a in p.after if a in outcomes and outcomes[a].status != "ok"]
                if bad:
                    pending.remove(p)
                    outcomes[p.name] = Outcome("skipped", why=f"{bad[0]} did not finish")
            free = [lane for lane in range(lanes) if lane not in running]
            for p in list(pending):
                if not free:
                    break
                ready = all(a in outcomes and outcomes[a].status == "ok" for a in p.after)
                # a part that must run alone waits for every other part to finish
                others = [q for q in pending if q is not p and not q.alone]
                if not ready or (p.alone and (running or others)) or any(r[0].alone for r in running.values()):
                    continue
                lane = free.pop(0)
                log = open(workdir / "logs" / f"{p.name}.log", "w")
                log.write(f"$ python {shlex.join(p.argv)}\n")
                log.flush()
                proc = subprocess.Popen([python, *p.argv], stdout=log, stderr=subprocess.STDOUT, env=env)
                running[lane] = (p, proc, time.perf_counter() - t0, log)
                pending.remove(p)
                print(f"[{_clock(time.perf_counter() - t0)}] lane {lane}: start {p.name}", flush=True)
            time.sleep(poll)
            for lane, (p, proc, start, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                end = time.perf_counter() - t0
                status = "ok" if proc.returncode == 0 else "failed"
                why = "" if status == "ok" else f"exit code {proc.returncode}: see logs/{p.name}.log"
                outcomes[p.name] = Outcome(status, lane, start, end, proc.returncode, why, argv=list(p.argv))
                del running[lane]
                print(f"[{_clock(end)}] lane {lane}: {status} {p.name} ({_clock(end - start)})", flush=True)
                write()
    except BaseException:
        # interrupted (Ctrl-C, an error here): stop the parts still running rather than leave
        # them behind, and record them, so that a rerun starts them again
        for lane, (p, proc, start, log) in running.items():
            proc.terminate()
            proc.wait()
            log.close()
            end = time.perf_counter() - t0
            outcomes[p.name] = Outcome("failed", lane, start, end, proc.returncode, "interrupted", argv=list(p.argv))
        write()
        raise
    write()
    return outcomes


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def save(outcomes: dict[str, Outcome], todo: list[Part], workdir: Path, lanes: int, wall: float) -> None:
    """``suite.json`` (every outcome, to resume) and ``suite.md`` (the table)."""
    entries = {p.name: vars(outcomes[p.name]) for p in todo if p.name in outcomes}
    payload = {"lanes": lanes, "wall_seconds": wall, "machine": describe_machine(), "parts": entries}
    atomic_write_text(workdir / "suite.json", json.dumps(payload, indent=1))
    atomic_write_text(workdir / "suite.md", table(outcomes, todo, lanes, wall))


def table(outcomes: dict[str, Outcome], todo: list[Part], lanes: int, wall: float) -> str:
    lines = [
        f"Agent benchmark suite: {lanes} lane(s) of one torch thread each, {describe_machine()}.",
        "",
        "| part | lane | start | end | wall time | status |",
        "|---|---|---|---|---|---|",
    ]
    fresh = []
    for p in todo:
        o = outcomes.get(p.name)
        if o is None:
            lines.append(f"| {p.name} | | | | | pending |")
            continue
        times = ["", "", ""]
        if o.seconds is not None:
            times = [_clock(o.start), _clock(o.end), _clock(o.seconds)]
            if not o.earlier:
                fresh.append(o)
        status = o.status + (" (an earlier invocation)" if o.earlier else "") + (f": {o.why}" if o.why else "")
        lane = "" if o.lane is None else str(o.lane)
        lines.append(f"| {p.name} | {lane} | {' | '.join(times)} | {status} |")
    busy = sum(o.seconds for o in fresh)
    lines += [
        "",
        f"Wall time of this invocation: {_clock(wall)} ({wall / 60:.1f} min); the parts it ran add up to "
        f"{busy / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.agent_suite",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", default="cpu", choices=("smoke", "cpu"))
    p.add_argument("--lanes", type=int, default=2, help="parts at once, each a single-threaded process")
    p.add_argument(
        "--workdir", help="every part's output, logs and the timing table (default: runs/agent_suite/PRESET)"
    )
    p.add_argument(
        "--models",
        default="runs/reproduce/cpu",
        help="the reproduction's run folder, whose Teapot and Reacher checkpoints the planning parts play",
    )
    args = p.parse_args(argv)
    if args.lanes < 1:
        p.error(f"--lanes must be at least 1, got {args.lanes}")
    workdir = Path(args.workdir or f"runs/agent_suite/{args.preset}")
    todo = parts(args.preset, workdir, Path(args.models))
    outcomes = run_suite(todo, workdir, args.lanes)
    print()
    print((workdir / "suite.md").read_text())
    return 0 if all(o.status == "ok" for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
