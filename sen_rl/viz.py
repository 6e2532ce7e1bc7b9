"""Pictures: the contact sheet of every domain's frames beside their re-rendered twins."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sen_rl.groups import element_label


def displayable(frame: np.ndarray) -> np.ndarray:
    """An observation as an RGB image: grayscale repeated, Reacher's stacked frames -> current."""
    frame = np.asarray(frame)
    if frame.shape[-1] == 1:
        return np.repeat(frame, 3, axis=-1)
    if frame.shape[-1] == 6:
        return frame[..., 3:]
    return frame


def contact_sheet(datasets, out: str | os.PathLike, per_row: int = 12) -> Path:
    """Write a PNG: for each dataset with twins, frame 0 of episode 0 and its twin for every element.

    The twin under the identity is the frame itself, re-rendered; the others show what the
    world looks like after each group element acts on its *state*.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []  # (title, [(image, label)])
    for ds in datasets:
        if not ds.has_twins:
            raise ValueError(f"{ds.path} has no twins; collect it with --twins")
        frame = ds["obs"][0, 0]
        twins = ds["twins/obs"][0, 0]
        elements = ds["twins/elements"][:]
        items = [(displayable(frame), "observation")]
        items += [(displayable(t), element_label(g)) for t, g in zip(twins, elements, strict=True)]
        for start in range(0, len(items), per_row):
            rows.append((ds.env_id if start == 0 else "", items[start : start + per_row]))
    cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols, 1.55 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (title, items) in enumerate(rows):
        for c, (img, label) in enumerate(items):
            axes[r, c].imshow(img, interpolation="nearest")
            axes[r, c].set_title(label, fontsize=5.5)
        if title:
            axes[r, 0].text(
                -0.15,
                0.5,
                title,
                transform=axes[r, 0].transAxes,
                rotation=90,
                va="center",
                ha="right",
                fontsize=7,
            )
    fig.suptitle("sen-rl: each observation beside its twin re-rendered for every group element", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, out)
    return out
