"""How a world model's ranking grows with its training budget: validation MRR per epoch and
per update of finished (or stopped) `sen-rl train` runs, one curve per run, and each run's
best checkpoint scored on an evaluation set.

    python -m benchmarks.budget_curve "cpu, 64px, 10k, batch 64=runs/budget/b64_n1000" \\
        "paper, 128px, 20k, batch 256, H200=docs/results/reacher_paper_h200_sen_seed0.json" \\
        --eval data/reacher_eval_64.h5 data/reacher_eval_128.h5 --plot docs/img/reacher_budget.png

A run is ``LABEL=PATH``: a run folder of ``sen-rl train`` (its ``last.pt`` holds the history,
``best.pt`` is evaluated), or a JSON file with ``train_history``, ``train_transitions`` and
``eval_best`` (a run made elsewhere, e.g. on a GPU, whose checkpoint is not here). The
validation MRR is the trainer's: a fixed set of held-out training episodes, every transition
of them, so states of one episode compete; the evaluation set has one transition per episode.
Runs trained on other frame sizes need their own evaluation set: each run folder is scored on
the ``--eval`` file whose observations match its own, and a JSON run brings its own figures.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    label: str
    history: list[dict]
    batch_size: int
    train_transitions: int
    checkpoint: Path | None = None
    scores: dict | None = None  # of the best checkpoint on an evaluation set

    @property
    def updates_per_epoch(self) -> int:
        return math.ceil(self.train_transitions / self.batch_size)

    def minutes(self) -> float:
        """Training time from the per-epoch throughput (validation excluded)."""
        return sum(self.train_transitions / r["samples_per_sec"] for r in self.history) / 60


def load_run(spec: str) -> Run:
    """``LABEL=PATH`` -> a :class:`Run`; a ValueError names a malformed spec or a file without a history."""
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise ValueError(f"{spec!r}: give runs as LABEL=PATH (a run folder or a JSON file)")
    p = Path(path)
    if p.suffix == ".json":
        data = json.loads(p.read_text())
        missing = [k for k in ("train_history", "train_transitions", "batch_size") if k not in data]
        if missing:
            raise ValueError(f"{p} lacks {missing}: not a budget-curve run file")
        return Run(
            label, data["train_history"], data["batch_size"], data["train_transitions"], None, data.get("eval_best")
        )
    from sen_rl.data import open_rollouts, split_episodes
    from sen_rl.model import read_checkpoint

    last = p / "last.pt"
    if not last.exists():
        raise ValueError(f"{p} has no last.pt: not a sen-rl train run folder")
    payload = read_checkpoint(last)
    cfg = payload["train_config"]
    with open_rollouts(cfg["data"]) as ds:
        train_eps, _ = split_episodes(ds.episodes, cfg["val_fraction"], cfg["seed"])
        n = len(train_eps) * ds.steps
    if cfg.get("max_transitions"):
        n = min(n, cfg["max_transitions"])
    return Run(label, payload["history"], cfg["batch_size"], n, p / "best.pt")


def evaluate_runs(runs: list[Run], eval_sets: list[str] | None, seed: int = 0) -> None:
    """Score the best checkpoint of every run folder on the first of ``eval_sets`` whose
    observations have the run's shape (frame sizes differ between runs)."""
    if not eval_sets:
        return
    from sen_rl.data import open_rollouts
    from sen_rl.evaluate import evaluate
    from sen_rl.model import load_model

    shapes = {}
    for path in eval_sets:
        with open_rollouts(path) as ds:
            shapes[path] = tuple(ds.obs_shape)
    for run in runs:
        if run.checkpoint is None or run.scores is not None:
            continue
        model = load_model(run.checkpoint)
        match = [path for path, shape in shapes.items() if shape == tuple(model.obs_shape)]
        if not match:
            print(f"{run.label}: no evaluation set has its observations {tuple(model.obs_shape)}: not scored")
            continue
        run.scores = evaluate(model, match[0], seed=seed, hh_samples=0)


def table(runs: list[Run]) -> list[str]:
    lines = [
        "| run | epochs | updates | train min | val MRR, last epoch (%) | best epoch "
        "| eval H@1 (%) | eval H@10 (%) | eval MRR (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        best = min(r.history, key=lambda h: h["val_loss"])
        s = r.scores or {}

        def pct(key, s=s):
            return f"{100 * s[key]:.1f}" if key in s else ""

        lines.append(
            f"| {r.label} | {len(r.history)} | {len(r.history) * r.updates_per_epoch} | {r.minutes():.1f} "
            f"| {100 * r.history[-1]['val_mrr']:.1f} | {best['epoch']} | {pct('hits@1')} | {pct('hits@10')} "
            f"| {pct('mrr')} |"
        )
    return lines


def plot(runs: list[Run], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sen_rl.fileio import atomic_write

    rows = math.ceil(len(runs) / 2)  # of the legend below the panels
    fig, axes = plt.subplots(1, 2, figsize=(11, 4 + 0.2 * rows), sharey=True)
    # the default cycle has 10 colours: past 10 runs two curves would share one
    colors = plt.cm.tab20.colors if len(runs) > 10 else plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(runs):
        color = colors[i % len(colors)]
        epochs = [h["epoch"] for h in r.history]
        mrr = [100 * h["val_mrr"] for h in r.history]
        axes[0].plot(epochs, mrr, marker=".", color=color, label=r.label)
        axes[1].plot([e * r.updates_per_epoch for e in epochs], mrr, marker=".", color=color, label=r.label)
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("optimiser updates")
    axes[0].set_ylabel("validation MRR (%)")
    for ax in axes:
        ax.axhline(85, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    # below both panels: inside one it hides the curves once there are more than a few runs
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.05 * rows, 1, 1))
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+", help="LABEL=PATH: a sen-rl train run folder or a JSON run file")
    p.add_argument(
        "--eval", nargs="+", help="evaluation set(s) (.h5) for the run folders' best checkpoints, one per frame size"
    )
    p.add_argument("--plot", help="PNG of validation MRR against epochs and against updates")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        runs = [load_run(s) for s in args.runs]
    except ValueError as exc:
        p.error(str(exc))
    evaluate_runs(runs, args.eval, args.seed)
    print("\n".join(table(runs)))
    if args.plot:
        plot(runs, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
