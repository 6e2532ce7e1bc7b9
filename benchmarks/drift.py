"""Where multi-step predictions go wrong: per-step accuracy of a latent rollout against the
same model fed the true latent at every step, and how far the rollout leaves the encodings.

    python -m benchmarks.drift runs/reproduce/cpu/shapes_up/sen/seed0/best.pt \\
        data/reproduce/cpu/shapes_up_eval.h5 [more checkpoints...] [--json out.json]

For every step ``k`` of the evaluation episodes (all of them, ``E`` the encoder):

- ``rollout``: Hits@1 of ``T^k(E(x_0))`` (the model's own rollout, what the 10-step metric
  scores) among the encodings ``E(x_k)`` of all episodes;
- ``teacher``: Hits@1 of ``T(E(x_{k-1}), a_{k-1})``, one step from the true latent: the model's
  one-step accuracy on the states visited at step ``k``;
- ``error``: mean ``||z_hat_k - E(x_k)||`` of the rollout, in units of the mean distance from
  an encoding to its nearest encoding of a different state (``gap``): above 0.5 a prediction
  can sit nearer another state than its own;
- ``move``: over the free moves of step ``k``, how much of the true latent move the one-step
  prediction makes: ``<T(z) - z, z' - z> / ||z' - z||^2`` from the true latent (1: all of it,
  0: it predicts that nothing moves); a model that undershoots every move by the same share
  lags a little further behind at every step of a rollout;
- ``blocked``: the share of the step's moves that left the state unchanged (walls, other
  objects), and ``rollout|blocked`` / ``rollout|free``: the rollout's Hits@1 at that step over
  the episodes whose step-``k`` move was blocked or free.

A second table pools every step by kind of move, from the true latent: ``free`` moves (how
much of the move the prediction makes, as ``move``), and blocked ones (the state does not
change; ``ghost``: the predicted move's length over the mean length of a free move, 0 is
right), split on the grid domains into moves off the board and moves onto another object.

A rollout that falls while ``teacher`` stays near 100% fails by compounding: each step is
right from a true latent, but the predicted latent it starts from is not one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sen_rl.data import RolloutDataset
from sen_rl.domains import domain_of
from sen_rl.fileio import atomic_write_text
from sen_rl.metrics import ranks
from sen_rl.model import load_model


def _hits(pred: torch.Tensor, target: torch.Tensor, idx: np.ndarray | None = None) -> float:
    r = ranks(pred, target)
    if idx is not None:
        if len(idx) == 0:
            return float("nan")
        r = r[torch.as_tensor(idx)]
    return float((r <= 1).double().mean())


def _nearest_other(z: torch.Tensor, states: np.ndarray) -> torch.Tensor:
    """Distance from each encoding to the nearest encoding of a different state."""
    flat = z.reshape(z.shape[0], -1).double()
    d = torch.cdist(flat, flat)
    key = states.reshape(states.shape[0], -1)
    same = torch.as_tensor((key[:, None, :] == key[None, :, :]).all(-1))
    d[same] = float("inf")
    return d.min(dim=1).values


@torch.no_grad()
def drift(checkpoint: str, data: str, max_samples: int | None = None) -> dict:
    """Per-step rollout / teacher-forced Hits@1, rollout error and blocked-move statistics."""
    model = load_model(checkpoint, export=True)
    with RolloutDataset(data) as ds:
        n = ds.episodes if max_samples is None else min(ds.episodes, max_samples)
        obs, acts, states = ds.obs[:n], ds.actions[:n], ds.states[:n]
        directions = domain_of(ds.env_id).direction_names  # None unless a grid board
        env = ds.make_env()
        width = getattr(env.unwrapped, "width", None)
        env.close()
    z = torch.stack([model.encode(obs[:, k]) for k in range(acts.shape[1] + 1)], dim=1)  # [N, K+1, ...]
    result = measure(model, z, acts, states, directions, width)
    return {"checkpoint": checkpoint, "data": data, "samples": n, **result}


def measure(model, z: torch.Tensor, acts: np.ndarray, states: np.ndarray, directions=None, width=None) -> dict:
    """The per-step rows and the kinds of moves, from the encodings ``z [N, K+1, ...]`` of the
    episodes' observations, their actions ``[N, K, ...]`` and states ``[N, K+1, ...]``.

    ``model`` needs only ``predict(z, actions)``; the rollout is ``predict`` applied ``K`` times,
    as ``WorldModel.rollout`` does.
    """
    n, horizon = acts.shape[:2]
    roll, zt = [], z[:, 0]
    for k in range(horizon):
        zt = model.predict(zt, acts[:, k])
        roll.append(zt)
    # one step from every true latent, all steps in one call: [N, K, ...]
    flat_acts = acts.reshape(n * horizon, *acts.shape[2:])
    teachers = model.predict(z[:, :-1].reshape(n * horizon, *z.shape[2:]), flat_acts).reshape(n, horizon, *z.shape[2:])
    rows = []
    for k in range(1, horizon + 1):
        target, pred, teacher = z[:, k], roll[k - 1], teachers[:, k - 1]
        gap = _nearest_other(target, states[:, k]).mean()
        err = (pred - target).reshape(n, -1).norm(dim=1).double()
        moved = (states[:, k] != states[:, k - 1]).reshape(n, -1).any(-1)
        step_true = (target - z[:, k - 1]).reshape(n, -1)[moved].double()
        step_pred = (teacher - z[:, k - 1]).reshape(n, -1)[moved].double()
        rows.append(
            {
                "step": k,
                "rollout": _hits(pred, target),
                "teacher": _hits(teacher, target),
                "error": float(err.mean() / gap),
                "error_p90": float(err.quantile(0.9) / gap),
                "move": _move_share(step_pred, step_true),
                "blocked": float(1.0 - moved.mean()),
                "rollout|blocked": _hits(pred, target, np.where(~moved)[0]),
                "rollout|free": _hits(pred, target, np.where(moved)[0]),
            }
        )
    return {"steps": rows, "kinds": _kinds_of_moves(z, teachers, flat_acts, states, directions, width)}


def _move_share(step_pred: torch.Tensor, step_true: torch.Tensor) -> float:
    """Mean ``<p, t> / ||t||^2`` over rows: the share of each true latent move the prediction makes.
    A move the encoder does not see (the same latent before and after) has no share to score."""
    seen = step_true.pow(2).sum(1) > 0
    return float(((step_pred * step_true).sum(1)[seen] / step_true.pow(2).sum(1)[seen]).mean())


def _kinds_of_moves(z, teachers, a, states, directions, width) -> dict:
    """One-step predictions from the true latent (``teachers``), pooled over steps, by kind of move."""
    n, horizon = teachers.shape[:2]
    flat = lambda t: t.reshape(n * horizon, -1).double()  # noqa: E731
    before, after, pred = flat(z[:, :-1]), flat(z[:, 1:]), flat(teachers)
    s0 = states[:, :-1].reshape(n * horizon, *states.shape[2:])
    s1 = states[:, 1:].reshape(n * horizon, *states.shape[2:])
    moved = (s0 != s1).reshape(n * horizon, -1).any(-1)
    true_step, pred_step = after - before, pred - before
    typical = true_step[torch.as_tensor(moved)].norm(dim=1).mean()
    kinds = {"free": moved, "blocked": ~moved}
    if directions is not None:  # a grid board (the domain table names its directions): the env's own rule
        from sen_rl.envs.grid import off_board

        edge = np.array([off_board(cells, action, width) for cells, action in zip(s0, a, strict=True)])
        kinds.update({"blocked: board edge": ~moved & edge, "blocked: other object": ~moved & ~edge})
    out = {}
    for name, mask in kinds.items():
        idx = torch.as_tensor(np.where(mask)[0])
        if len(idx) == 0:
            continue
        if name == "free":
            value = _move_share(pred_step[idx], true_step[idx])
        else:
            value = float(pred_step[idx].norm(dim=1).mean() / typical)
        out[name] = {"share": float(mask.mean()), "value": value}
    return out


def training_curve(checkpoint: str) -> list[float]:
    """The positive (prediction) term per epoch, from the run's ``last.pt`` beside ``checkpoint``."""
    from sen_rl.model import read_checkpoint

    last = Path(checkpoint).with_name("last.pt")
    if not last.exists():
        return []
    # a variant with its own objective (hvae) has no positive term: no curve
    return [row["positive"] for row in read_checkpoint(last).get("history", []) if "positive" in row]


def plot(results: list[dict], labels: list[str], out: str) -> None:
    """Rollout Hits@1 per step and the training curves (positive term per epoch), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sen_rl.fileio import atomic_write

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = {}
    for res, label in zip(results, labels, strict=True):
        colour = colours.setdefault(label, f"C{len(colours)}")
        steps = [r["step"] for r in res["steps"]]
        ax1.plot(steps, [100 * r["rollout"] for r in res["steps"]], color=colour, alpha=0.8, label=label)
        curve = training_curve(res["checkpoint"])
        ax2.plot(range(1, len(curve) + 1), curve, color=colour, alpha=0.8, label=label)
    for ax in (ax1, ax2):  # one legend entry per label
        handles, names = ax.get_legend_handles_labels()
        keep = {n: h for h, n in zip(handles, names, strict=True)}
        ax.legend(keep.values(), keep.keys(), fontsize=8)
    ax1.set(xlabel="rollout step", ylabel="Hits@1 (%)", title="rollout accuracy per step (one line per seed)")
    ax2.set(xlabel="epoch", ylabel="positive term", yscale="log", title="training: prediction error")
    fig.tight_layout()
    with atomic_write(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def format_rows(result: dict) -> str:
    cols = ["step", "rollout", "teacher", "error", "error_p90", "move", "blocked", "rollout|blocked", "rollout|free"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in result["steps"]:
        cells = [str(r["step"])] + [f"{r[c]:.3f}" for c in cols[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(results: list[dict], labels: list[str]) -> str:
    """One row per checkpoint: rollout Hits@1 at the first and last step, the last step's error, and
    the one-step kinds of moves (the share of a free move made, the ghost move where blocked)."""
    kinds = sorted({k for r in results for k in r["kinds"]} - {"free", "blocked"}) or ["blocked"]
    head = ["run", "checkpoint", "Hits@1 step 1", "Hits@1 last step", "error last step", "free move made"]
    lines = ["| " + " | ".join(head + [f"ghost, {k}" for k in kinds]) + " |", "|" + "---|" * (len(head) + len(kinds))]
    for res, label in zip(results, labels, strict=True):
        first, last = res["steps"][0], res["steps"][-1]
        cells = [label, res["checkpoint"], f"{100 * first['rollout']:.1f}%", f"{100 * last['rollout']:.1f}%"]
        cells += [f"{last['error']:.2f}", f"{res['kinds']['free']['value']:.2f}"]
        cells += [f"{res['kinds'][k]['value']:.2f}" if k in res["kinds"] else "-" for k in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="one or more best.pt files")
    p.add_argument("data", help="evaluation dataset (episodes of the evaluation horizon)")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--json", default=None, help="also write every result to this JSON file")
    p.add_argument("--plot", default=None, help="also draw the per-step accuracy and training curves (PNG)")
    p.add_argument(
        "--labels",
        nargs="+",
        default=None,
        help="one legend label per checkpoint (default: the folder above its run folder: seeds share a colour)",
    )
    args = p.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.checkpoints):
        p.error(f"--labels needs one label per checkpoint ({len(args.checkpoints)}), got {len(args.labels)}")
    results = []
    for ckpt in args.checkpoints:
        res = drift(ckpt, args.data, args.max_samples)
        results.append(res)
        print(f"\n{ckpt} ({res['samples']} episodes)\n")
        print(format_rows(res))
        print("\n| kind of move (one step, true latent) | share | move (free) / ghost (blocked) |\n|---|---|---|")
        for name, k in res["kinds"].items():
            print(f"| {name} | {k['share']:.3f} | {k['value']:.3f} |")
    labels = args.labels or [Path(c).parent.parent.name for c in args.checkpoints]
    if len(results) > 1:
        print("\n" + summary(results, labels))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))
    if args.plot:
        plot(results, labels, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
