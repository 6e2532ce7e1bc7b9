"""The poster's illustrative example: an unconstrained first layer learns to be shift-equivariant
when shift-equivariant layers follow it.

    python -m benchmarks.illustrative --preset cpu --seeds 0 1 2   # about a minute on one thread
    python -m benchmarks.illustrative --preset smoke --seeds 0     # seconds; runs/illustrative/smoke/

**Task.** Sequences of ``length`` tokens from a vocabulary of ``vocab``; the label at position
``i`` is the input token at position ``(i - shift) mod length``: the labels are the input
shifted circularly, a map that commutes with the cyclic shift. Inputs are one-hot, ``vocab``
channels by ``length`` positions.

**Models.** All three start with the same layer, :class:`PositionMixing`: a fully connected
``length x length`` matrix ``W`` over positions, without bias, applied to every token channel
alike (so it can be drawn: the paper's Figure 3). With the same seed the three start from the
same ``W``.

- ``fc``: that layer alone; its outputs are the logits.
- ``fc+fc``: that layer, then two dense layers (``vocab*length -> hidden*length -> vocab*length``,
  ReLU between): a network of fully connected layers, the paper's "None" in one dimension.
- ``fc+conv``: that layer, then two circular 1D convolutions of the same widths (``vocab ->
  hidden -> vocab`` channels, ReLU between): the SEN idea, an unconstrained layer followed by
  equivariant ones, trained end to end.

**Why the conv model's ``W`` becomes circulant.** Let ``P`` be the cyclic shift and ``C`` the
conv layers, so ``C(P h) = P C(h)``. If the model fits both ``x`` and ``P x``, then
``C(W P x) = P^s P x = P C(W x) = C(P W x)``; where ``C`` is injective this gives
``W P x = P W x``, and over inputs that span every position ``W P = P W``: ``W`` commutes
with the shift, which is exactly what a circulant matrix is. ``C`` need not be injective:
ReLU layers can read two different codes as the same labels, and from a random start
training sometimes ends with ``W`` using one code on part of the sequence and another on
the rest. Weight decay removes what the loss does not need, and with it those mixtures
(``--weight-decay 0`` shows them; docs/illustrative.md has the counts). The dense layers of
``fc+fc`` can undo any invertible ``W``, so nothing pulls its ``W`` away from the random
start. A single layer is its own composite: to fit the shift it has to become the shift, a
circulant matrix; ``fc`` is there to show that the contrast needs layers after ``W``.

**What the training set leaves out.** The "rare" token 0 never appears in the right half of
a training sequence (its place is taken by another token). Every position still occurs in
the training inputs of ``W`` (other tokens fill it): a linear layer's gradient lies in the
span of its inputs, so a position never seen at all would stay untrained in every model.
What is never seen is the rare token's channel at those positions, which only the layers
after ``W`` could tell apart. Test sets, drawn apart from the training set:

- ``held-out``: new sequences from the training distribution;
- ``all``: uniform sequences, the rare token anywhere (most of them have it in the right half);
- ``unseen``: in ``all``, only the labels that are the rare token read from the right half.

**Circulant score** of a square ``W``: the share of its energy in its projection onto the
circulant matrices, ``||Pi(W)||^2 / ||W||^2``, where ``Pi`` replaces every entry by the mean
of its wrapped diagonal (the entries with the same ``(i - j) mod n``). ``Pi`` is an orthogonal
projection, so the score lies in [0, 1] and is 1 exactly for circulant matrices. For a matrix
of independent zero-mean entries it is about ``1/n`` (``n`` of the ``n^2`` dimensions are
circulant); a single nonzero entry gives exactly ``1/n``. A nonzero mean raises it (the
constant matrix is circulant).

The table (every seed, and the mean) is printed and written to ``OUT/illustrative.md``; the
first seed's three first layers are drawn to ``illustrative.png``. Without ``--out``, the
``cpu`` preset draws to ``docs/img/illustrative.png`` and writes the table to
``runs/illustrative/cpu/``; the ``smoke`` preset, or any run with ``--weight-decay``, writes
both to ``runs/illustrative/PRESET/``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sen_rl.hardware import describe_machine

#: where the ``cpu`` preset draws its picture when no ``--out`` is given
TRACKED_PICTURE = Path(__file__).resolve().parents[1] / "docs" / "img" / "illustrative.png"
#: the token that training sequences never hold in their right half
RARE_TOKEN = 0
#: the models, in table order
MODELS = ("fc", "fc+fc", "fc+conv")


@dataclass(frozen=True)
class Preset:
    """Sizes of one preset of the experiment.

    :param length: positions of a sequence (``W`` is ``length x length``).
    :param vocab: tokens (one-hot channels).
    :param shift: the label at ``i`` is the input at ``(i - shift) mod length``.
    :param train: training sequences.
    :param test: sequences of each test set.
    :param epochs: passes over the training set.
    :param batch: sequences per optimiser step.
    :param lr: AdamW learning rate.
    :param weight_decay: AdamW (decoupled) weight decay, the same for every parameter.
    :param hidden: channels of the middle layer (``fc+fc``: ``hidden * length`` units).
    :param kernel: width of the convolutions (odd).
    """

    length: int
    vocab: int
    shift: int
    train: int
    test: int
    epochs: int
    batch: int
    lr: float
    weight_decay: float
    hidden: int
    kernel: int


PRESETS = {
    "smoke": Preset(
        length=16, vocab=4, shift=3, train=1000, test=500, epochs=10, batch=128, lr=1e-2, weight_decay=1.0, hidden=16,
        kernel=5,
    ),
    "cpu": Preset(
        length=24, vocab=4, shift=3, train=3000, test=2000, epochs=40, batch=128, lr=3e-3, weight_decay=1.0,
        hidden=16, kernel=5,
    ),
}  # fmt: skip


def circulant_projection(w: torch.Tensor) -> torch.Tensor:
    """The nearest circulant matrix to a square ``w`` (Frobenius norm): each wrapped diagonal's mean."""
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"a circulant projection needs a square matrix, got shape {tuple(w.shape)}")
    n = w.shape[0]
    idx = torch.arange(n, device=w.device)
    diagonal = (idx[:, None] - idx[None, :]) % n  # entries with the same (i - j) mod n share a value
    means = torch.zeros(n, dtype=w.dtype, device=w.device).index_add_(0, diagonal.flatten(), w.flatten()) / n
    return means[diagonal]


def circulant_score(w: torch.Tensor) -> float:
    """Share of the energy of a square ``w`` in its circulant projection: 1 for a circulant matrix,
    about ``1/n`` for independent zero-mean entries (the module docstring has the definition)."""
    w = torch.as_tensor(w, dtype=torch.float64).detach()
    energy = float((w**2).sum())
    if energy == 0.0:
        raise ValueError("the circulant score of an all-zero matrix is undefined (0/0)")
    return float((circulant_projection(w) ** 2).sum()) / energy


def sample_tokens(rng: np.random.Generator, count: int, preset: Preset, restricted: bool) -> torch.Tensor:
    """``count`` uniform token sequences; ``restricted`` replaces the rare token in the right half
    by one of the others (the training distribution)."""
    tokens = rng.integers(0, preset.vocab, size=(count, preset.length))
    if restricted:
        hidden = (tokens == RARE_TOKEN) & (np.arange(preset.length) >= preset.length // 2)
        others = np.delete(np.arange(preset.vocab), RARE_TOKEN)
        tokens[hidden] = rng.choice(others, size=int(hidden.sum()))
    return torch.as_tensor(tokens)


def shifted_labels(tokens: torch.Tensor, shift: int) -> torch.Tensor:
    """The labels: ``labels[:, i] = tokens[:, (i - shift) mod length]``."""
    return torch.roll(tokens, shift, dims=1)


def one_hot(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """(batch, length) tokens as (batch, vocab, length) floats: channels first, as Conv1d wants."""
    return nn.functional.one_hot(tokens, vocab).permute(0, 2, 1).float()


class PositionMixing(nn.Module):
    """The unconstrained first layer: one ``length x length`` matrix mixing positions, applied to
    every channel alike; ``out[:, c, i] = sum_j weight[i, j] * x[:, c, j]``."""

    def __init__(self, length: int):
        super().__init__()
        self.linear = nn.Linear(length, length, bias=False)  # nn.Linear's default (random) initialisation

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def build_model(kind: str, preset: Preset) -> nn.Sequential:
    """One of :data:`MODELS`: (batch, vocab, length) one-hot in, logits of the same shape out;
    ``model[0]`` is the first layer."""
    n, v, h, k = preset.length, preset.vocab, preset.hidden, preset.kernel
    first = PositionMixing(n)  # built first, so one seed gives the three models the same W
    if kind == "fc":
        return nn.Sequential(first)
    if kind == "fc+fc":
        return nn.Sequential(
            first, nn.Flatten(), nn.Linear(v * n, h * n), nn.ReLU(), nn.Linear(h * n, v * n), nn.Unflatten(1, (v, n))
        )
    if kind == "fc+conv":
        if k % 2 != 1:
            raise ValueError(f"kernel must be odd so a circular convolution keeps positions in place, got {k}")
        conv = dict(kernel_size=k, padding=k // 2, padding_mode="circular")  # circular: commutes with the shift
        return nn.Sequential(first, nn.Conv1d(v, h, **conv), nn.ReLU(), nn.Conv1d(h, v, **conv))
    raise ValueError(f"unknown model {kind!r}; choose from {', '.join(MODELS)}")


def accuracy(model: nn.Module, tokens: torch.Tensor, preset: Preset) -> torch.Tensor:
    """Per-label correctness (batch, length) of the model's predictions, as floats."""
    with torch.no_grad():
        predicted = model(one_hot(tokens, preset.vocab)).argmax(dim=1)
    return (predicted == shifted_labels(tokens, preset.shift)).float()


def unseen_labels(tokens: torch.Tensor, preset: Preset) -> torch.Tensor:
    """(batch, length) bool, at label positions: labels that are the rare token read from the right
    half, pairs that no training sequence holds."""
    read = (tokens == RARE_TOKEN) & (torch.arange(preset.length) >= preset.length // 2)
    return shifted_labels(read, preset.shift)


def evaluate(model: nn.Module, tests: dict[str, torch.Tensor], preset: Preset) -> dict[str, float]:
    """Accuracy on the held-out sequences, on uniform ones, and on the unseen (token, position) pairs."""
    uniform = tests["all"]
    correct = accuracy(model, uniform, preset)
    unseen = unseen_labels(uniform, preset)
    return {
        "held_out": float(accuracy(model, tests["held_out"], preset).mean()),
        "all": float(correct.mean()),
        "unseen": float(correct[unseen].mean()),
        "unseen_labels": int(unseen.sum()),
    }


def train_model(kind: str, preset: Preset, seed: int, tokens: torch.Tensor) -> tuple[nn.Sequential, dict]:
    """Train one model on ``tokens`` with AdamW and cross-entropy over every label; seeded."""
    torch.manual_seed(seed)
    model = build_model(kind, preset)
    start = model[0].weight.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    x, y = one_hot(tokens, preset.vocab), shifted_labels(tokens, preset.shift)
    order = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    losses = []
    for _ in range(preset.epochs):
        losses = []
        for idx in torch.randperm(len(tokens), generator=order).split(preset.batch):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    # loss: the mean over the last epoch's batches
    info = {"seconds": time.perf_counter() - t0, "loss": float(np.mean(losses)), "start": start}
    return model, info


def run_seed(preset: Preset, seed: int) -> dict:
    """Data, the three models and their evaluation for one seed; weights of every first layer."""
    rng = np.random.default_rng(seed)
    train = sample_tokens(rng, preset.train, preset, restricted=True)
    tests = {
        "held_out": sample_tokens(rng, preset.test, preset, restricted=True),
        "all": sample_tokens(rng, preset.test, preset, restricted=False),
    }
    rows, weights = {}, {}
    for kind in MODELS:
        model, info = train_model(kind, preset, seed, train)
        start = info.pop("start")  # the same for every model of the seed
        weights[kind] = model[0].weight.detach().clone()
        rows[kind] = {**evaluate(model, tests, preset), "circulant": circulant_score(weights[kind]), **info}
    return {"rows": rows, "weights": weights, "start_score": circulant_score(start)}


def run(preset: str | Preset, seeds: list[int], threads: int = 1) -> dict[int, dict]:
    """Every seed of :func:`run_seed` on ``threads`` torch threads (restored afterwards)."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return {seed: run_seed(preset, seed) for seed in seeds}
    finally:
        torch.set_num_threads(previous)


def report(results: dict[int, dict], preset_name: str, preset: Preset, command: str, wall: float, threads: int) -> str:
    """The markdown table: one row per seed and model, then the mean of every model."""
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        "# Illustrative example: a shifted copy of the input",
        "",
        f"Command: `{command}`  ",
        f"Preset `{preset_name}`: {asdict(preset)}  ",
        f"Machine: {describe_machine()}; {threads} torch thread(s); "
        f"load average at the end {os.getloadavg()[0]:.1f} (other jobs share the machine). "
        f"Training and evaluation took {wall:.1f} s.",
        "",
        "Accuracy (%) of the labels: held-out sequences of the training distribution, uniform sequences "
        "(the rare token anywhere), and only the labels that are the rare token read from the right half "
        "(never in training). Circulant score of the first layer: 1 = circulant, about "
        f"1/{preset.length} = {1 / preset.length:.3f} for a random matrix.",
        "",
        "| seed | model | held-out | all | unseen pairs | circulant score | train loss | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, res in results.items():
        for kind in MODELS:
            r = res["rows"][kind]
            lines.append(
                f"| {seed} | {kind} | {pct(r['held_out'])} | {pct(r['all'])} | {pct(r['unseen'])} | "
                f"{r['circulant']:.3f} | {r['loss']:.3f} | {r['seconds']:.1f} |"
            )
    if len(results) > 1:
        for kind in MODELS:
            rs = [res["rows"][kind] for res in results.values()]
            mean = {key: float(np.mean([r[key] for r in rs])) for key in ("held_out", "all", "unseen", "circulant")}
            lines.append(
                f"| mean | {kind} | {pct(mean['held_out'])} | {pct(mean['all'])} | {pct(mean['unseen'])} | "
                f"{mean['circulant']:.3f} | | |"
            )
    starts = ", ".join(f"{res['start_score']:.3f}" for res in results.values())
    unseen = ", ".join(str(res["rows"][MODELS[0]]["unseen_labels"]) for res in results.values())
    lines += [
        "",
        f"First layer at initialisation (the same for the three models of a seed), circulant score per seed: "
        f"{starts}. Unseen-pair labels per seed: {unseen} of {preset.test * preset.length}.",
        "",
    ]
    return "\n".join(lines)


def draw(result: dict, seed: int, preset: Preset, out: Path) -> Path:
    """The three first layers of one seed side by side (the paper's Figure 3), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sen_rl.fileio import atomic_write

    fig, axes = plt.subplots(1, len(MODELS), figsize=(4 * len(MODELS), 4.9), layout="constrained")
    for ax, kind in zip(axes, MODELS, strict=True):
        w = result["weights"][kind].numpy()
        limit = float(np.abs(w).max())
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"{kind}\ncirculant score {result['rows'][kind]['circulant']:.2f}")
        ax.set_xlabel("input position j")
        ax.set_ylabel("output position i")
    fig.suptitle(
        f"First layer W after training (seed {seed}): labels = input shifted by {preset.shift}, length {preset.length}"
    )
    try:
        with atomic_write(out, suffix=".png") as tmp:  # savefig picks the format by the suffix
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.illustrative",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="sizes (see PRESETS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of data and training")
    parser.add_argument(
        "--out",
        help="folder for illustrative.md and illustrative.png (default: runs/illustrative/PRESET; the cpu "
        "preset draws to docs/img/illustrative.png)",
    )
    parser.add_argument("--weight-decay", type=float, help="override the preset's AdamW weight decay")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    from sen_rl.fileio import atomic_write_text

    parser = build_parser()
    args = parser.parse_args(argv)
    if any(seed < 0 for seed in args.seeds):
        parser.error(f"--seeds must be non-negative integers, got {args.seeds}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    preset = PRESETS[args.preset]
    if args.weight_decay is not None:
        if args.weight_decay < 0:
            parser.error(f"--weight-decay must be >= 0, got {args.weight_decay}")
        preset = replace(preset, weight_decay=args.weight_decay)
    command = "python -m benchmarks.illustrative " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.out is not None:
        table_path = Path(args.out) / "illustrative.md"
        picture_path = Path(args.out) / "illustrative.png"
    else:
        table_path = Path("runs/illustrative") / args.preset / "illustrative.md"
        # only the cpu preset as published replaces the documentation's picture
        tracked = args.preset == "cpu" and args.weight_decay is None
        picture_path = TRACKED_PICTURE if tracked else table_path.with_suffix(".png")

    t0 = time.perf_counter()
    results = run(preset, args.seeds, args.threads)
    text = report(results, args.preset, preset, command, time.perf_counter() - t0, args.threads)
    print(text)
    atomic_write_text(table_path, text)
    draw(results[args.seeds[0]], args.seeds[0], preset, picture_path)
    print(f"table written to {table_path}, picture to {picture_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
