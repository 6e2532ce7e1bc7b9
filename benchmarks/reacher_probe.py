"""What a Reacher world model's latent carries: linear read-outs of the arm's two joint angles and
of each joint's motion between the two stacked frames, from the latent of each checkpoint,
scored by cross-validated R^2 on the first frames of an evaluation set.

    python -m benchmarks.reacher_probe runs/A/best.pt runs/B/best.pt --data data/reproduce/cpu/reacher_eval.h5
    python -m benchmarks.reacher_probe SNAPSHOTS/ --data ... --plot docs/img/reacher_probe.png

A folder stands for every ``*.pt`` in it, ordered by the epoch each checkpoint holds (copies of a
run's ``last.pt`` taken as it trained): one curve per folder, the read-outs beside the run's
validation MRR at that epoch, from the checkpoint's history. A read-out's R^2 is 1 when the latent
carries the quantity linearly, about 0 (or below) when it does not; a nonlinear code would need a
richer probe, which this one is not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: read-outs of the arm, from a Reacher state (sen_rl.groups.REACHER_STATE_LAYOUT): the joint angles as
#: (cos, sin), the motion between the previous and the current frame as an angle difference in (-pi, pi]
READOUTS = ("joint 1 angle", "joint 2 angle", "joint 1 motion", "joint 2 motion")


def arm_readouts(states: np.ndarray) -> dict[str, np.ndarray]:
    """``[N, 12]`` Reacher states -> each read-out's targets ``[N, k]``."""
    s = np.asarray(states, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 12:
        raise ValueError(f"Reacher states are [N, 12] (sen_rl.groups.REACHER_STATE_LAYOUT), got shape {s.shape}")
    prev, cur = s[:, 0:2], s[:, 4:6]
    motion = np.angle(np.exp(1j * (cur - prev)))  # wrapped, so a joint crossing +-pi moves a little
    return {
        "joint 1 angle": np.stack([np.cos(cur[:, 0]), np.sin(cur[:, 0])], 1),
        "joint 2 angle": np.stack([np.cos(cur[:, 1]), np.sin(cur[:, 1])], 1),
        "joint 1 motion": motion[:, :1],
        "joint 2 motion": motion[:, 1:],
    }


def cv_r2(x: np.ndarray, y: np.ndarray, folds: int = 5, ridge: float = 1e-3) -> float:
    """R^2 of a ridge read-out ``x -> y`` on held-out folds (every ``folds``-th sample), averaged over folds.

    The residual is pooled over ``y``'s columns, so (cos, sin) of an angle is one score.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if len(x) != len(y) or len(x) < 2 * folds:
        raise ValueError(f"need as many inputs as targets and at least {2 * folds} of each, got {len(x)}, {len(y)}")
    scores = []
    for k in range(folds):
        test = np.zeros(len(x), dtype=bool)
        test[k::folds] = True
        a = np.c_[x[~test], np.ones((~test).sum())]
        w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y[~test])
        pred = np.c_[x[test], np.ones(test.sum())] @ w
        sst = ((y[test] - y[test].mean(0)) ** 2).sum()
        scores.append(1 - ((pred - y[test]) ** 2).sum() / sst)
    return float(np.mean(scores))


def probe(model, obs: np.ndarray, states: np.ndarray, batch: int = 100) -> dict[str, float]:
    """Each read-out's cross-validated R^2 from ``model``'s latents of ``obs`` (env format)."""
    import torch

    with torch.no_grad():
        z = torch.cat([model.encode(obs[i : i + batch]).flatten(1) for i in range(0, len(obs), batch)])
    z = z.double().cpu().numpy()
    return {name: cv_r2(z, y) for name, y in arm_readouts(states).items()}


def checkpoints(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(path.glob("*.pt"))
        if not found:
            raise ValueError(f"{path} holds no *.pt checkpoints")
        return found
    if not path.exists():
        raise ValueError(f"{path} does not exist: give checkpoints (.pt) or folders of them")
    return [path]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("paths", nargs="+", type=Path, help="checkpoints, or folders of one run's checkpoints")
    p.add_argument("--data", required=True, type=Path, help="a Reacher rollout file (its first frames are probed)")
    p.add_argument("--samples", type=int, default=500, help="episodes read (default 500)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--plot", type=Path, help="curves over epochs of the folders given (PNG)")
    args = p.parse_args(argv)

    import torch

    from sen_rl.data import RolloutDataset
    from sen_rl.model import load_model, read_checkpoint

    torch.set_num_threads(max(1, args.threads))
    with RolloutDataset(args.data) as ds:
        if ds.states.shape[-1] != 12:
            p.error(f"{args.data} is not a Reacher rollout file (states of {ds.states.shape[-1]} numbers, not 12)")
        n = min(args.samples, ds.episodes)
        obs, states = ds.obs[:n, 0], ds.states[:n, 0]

    rows = []
    print("| run | checkpoint | epoch | val MRR (%) | " + " | ".join(f"R^2 {r}" for r in READOUTS) + " |")
    print("|---" * (4 + len(READOUTS)) + "|")
    for path in args.paths:
        for ckpt in checkpoints(path):
            info = read_checkpoint(ckpt)
            epoch = int(info.get("epoch", -1)) + 1  # the checkpoint's epoch counts from 0
            hist = {int(h["epoch"]): h for h in info.get("history", [])}
            val_mrr = hist.get(epoch, {}).get("val_mrr")
            scores = probe(load_model(ckpt).eval(), obs, states)
            run = str(path if path.is_dir() else ckpt.parent)
            rows.append({"run": run, "checkpoint": str(ckpt), "epoch": epoch, "val_mrr": val_mrr, **scores})
            mrr = "" if val_mrr is None else f"{100 * val_mrr:.1f}"
            print(
                f"| {run} | {ckpt.name} | {epoch} | {mrr} | " + " | ".join(f"{scores[r]:.2f}" for r in READOUTS) + " |"
            )
    if args.json:
        args.json.write_text(json.dumps({"data": str(args.data), "samples": n, "rows": rows}, indent=1))
    if args.plot:
        plot(rows, [str(x) for x in args.paths if x.is_dir()], args.plot)


def plot(rows: list[dict], runs: list[str], out: Path) -> None:
    """Per folder: R^2 of each joint's motion and the validation MRR, over epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, run in enumerate(runs):
        r = sorted((x for x in rows if x["run"] == run), key=lambda x: x["epoch"])
        ep = [x["epoch"] for x in r]
        colour = f"C{i % 10}"
        axes[0].plot(ep, [x["joint 1 motion"] for x in r], color=colour, label=Path(run).name)
        axes[0].plot(ep, [x["joint 1 angle"] for x in r], color=colour, ls=":")
        axes[1].plot(ep, [100 * (x["val_mrr"] or np.nan) for x in r], color=colour, label=Path(run).name)
    axes[0].set(
        xlabel="epoch",
        ylabel="R^2 (held out)",
        ylim=(-0.1, 1.0),
        title="read-out: joint 1 motion (solid), angle (dotted)",
    )
    axes[1].set(xlabel="epoch", ylabel="validation MRR (%)", title="ranking")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)


if __name__ == "__main__":
    main()
