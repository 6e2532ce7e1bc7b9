"""The README's demo (``make demo``): every domain's twins, then the paper's central result.

    python -m benchmarks.demo                      # out/demo/, about 3 minutes on a laptop
    python -m benchmarks.demo --out out/demo --episodes 20000 --epochs 10 --seed 0

First a contact sheet (``OUT/contact_sheet.png``) of a small twin dataset of every domain
of the domain table: each frame beside its re-renders under every group element. Then 2D
Shapes: ``sen`` and ``none`` are trained on "up" moves only and evaluated on all four
directions at the domain's horizon (10 steps). The equivariant model generalises to the
moves it never saw, the plain one cannot; the table, with the paper's figures beside ours,
is printed and written to ``OUT/unseen_actions.txt``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

#: the domain of the unseen-action experiment
SHAPES = "SEN-Shapes-v0"

#: the paper's unseen-action result on 2D Shapes trained on {up} (ICML Table 2): Hits@1, MRR (%), EE(S)
PAPER_SHAPES_UP = {"none": ("2.8 +- 0.6", "5.3 +- 0.4", "0.00"), "sen": ("100", "99.9", "0.00")}

#: the contact sheet's datasets: episodes of this many recorded steps (1 where a domain records 1)
TWIN_STEPS = 10


def twin_datasets(out: Path, seed: int, progress: bool) -> list[Path]:
    """Collect a small twin dataset of every domain of the table into ``out``; returns the files."""
    from sen_rl.data import CollectConfig, collect
    from sen_rl.domains import DOMAINS

    paths = []
    for domain in DOMAINS.values():
        cfg = CollectConfig(
            domain.env_id,
            # warm-up steps are simulated too: fewer episodes where each one starts with them
            episodes=8 if domain.warmup == 0 else 4,
            steps=1 if domain.episode_steps == 1 else TWIN_STEPS,
            seed=seed,
            warmup=domain.warmup,
            twins=True,
            env_kwargs=domain.env_kwargs("smoke"),
        )
        path = out / f"{domain.env_id}.h5"
        collect(cfg, path, overwrite=True, progress=progress)
        paths.append(path)
    return paths


def unseen_actions(args, out: Path, progress: bool, t_start: float) -> str:
    """Train ``none`` and ``sen`` on 2D Shapes "up" moves, evaluate on every direction; the table."""
    from sen_rl.data import CollectConfig, collect
    from sen_rl.domains import domain_of
    from sen_rl.evaluate import evaluate
    from sen_rl.model import load_model
    from sen_rl.train import TrainConfig, train

    horizon = domain_of(SHAPES).eval_horizon
    train_data, eval_data = out / "shapes_up_train.h5", out / "shapes_eval.h5"
    collect(
        CollectConfig(SHAPES, args.episodes, 1, seed=args.seed + 1, actions=["up"]),
        train_data,
        overwrite=True,
        progress=progress,
    )
    collect(
        CollectConfig(SHAPES, args.eval_episodes, horizon, seed=args.seed + 2, twins=True),
        eval_data,
        overwrite=True,
        progress=progress,
    )
    results = {}
    for variant in ("none", "sen"):
        print(f"training {variant!r} on 2D Shapes, 'up' moves only ({args.episodes} transitions, {args.epochs} epochs)")
        cfg = TrainConfig(
            data=str(train_data),
            out=str(out / f"shapes_up_{variant}"),
            variant=variant,
            preset="cpu",
            epochs=args.epochs,
            seed=args.seed,
        )
        result = train(cfg, progress=progress, verbose=not args.quiet, overwrite=True)
        model = load_model(result["best"])
        results[variant] = evaluate(model, eval_data, horizon=horizon, seed=args.seed, hh_samples=0)

    lines = [
        "",
        f"Unseen actions, 2D Shapes: trained on 'up' only, evaluated on all four directions, {horizon} steps",
        f"{'model':6s} {'Hits@1':>8s} {'MRR':>8s} {'EE(S)':>7s}   paper: Hits@1, MRR, EE(S)",
    ]
    for variant, r in results.items():
        paper = ", ".join(PAPER_SHAPES_UP[variant])
        lines.append(f"{variant:6s} {r['hits@1']:8.1%} {r['mrr']:8.1%} {r['ee_quarter']:7.2f}   {paper}")
    minutes = (time.perf_counter() - t_start) / 60
    lines.append(
        f"({results['sen']['samples']} evaluation episodes of {eval_data}; the paper's 'none' row is its CNN "
        f"baseline; demo time {minutes:.1f} min)"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seeds the datasets and the training")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each Shapes model (0: skip training)")
    parser.add_argument("--episodes", type=int, default=20000, help="Shapes training transitions ('up' moves)")
    parser.add_argument(
        "--eval-episodes", type=int, default=1000, help="Shapes evaluation episodes of the domain's horizon"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars and no per-epoch lines (bars show only when stderr is a terminal)",
    )
    return parser


def main(argv=None) -> int:
    from sen_rl.cli import show_progress
    from sen_rl.data import RolloutDataset
    from sen_rl.fileio import atomic_write_text
    from sen_rl.viz import contact_sheet

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    progress = show_progress(args.quiet)
    t_start = time.perf_counter()

    datasets = [RolloutDataset(p) for p in twin_datasets(out, args.seed, progress)]
    try:
        sheet = contact_sheet(datasets, out / "contact_sheet.png")
        for ds in datasets:
            print(f"  {ds}")
    finally:
        for ds in datasets:
            ds.close()
    print(f"contact sheet: {sheet}")
    if args.epochs <= 0:
        return 0

    table = unseen_actions(args, out, progress, t_start)
    print(table)
    atomic_write_text(out / "unseen_actions.txt", table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
