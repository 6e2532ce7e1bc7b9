"""Pictures: the contact sheet of every domain's frames beside their re-rendered twins."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sen_rl.data import RolloutDataset
from sen_rl.domains import domain_of
from sen_rl.envs.base import displayable  # the pictures show what the env renders
from sen_rl.fileio import atomic_write
from sen_rl.groups import element_label


def stacked_frames(env_id: str) -> int:
    """Frames stacked on the channel axis of ``env_id``'s observations (its env class's ``stacked_frames``)."""
    return int(domain_of(env_id).env_class().stacked_frames)


def contact_sheet(datasets: Iterable[RolloutDataset], out: str | os.PathLike, per_row: int = 12) -> Path:
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
        k = stacked_frames(ds.env_id)
        frame = ds.obs[0, 0]
        twins = ds.twin_obs[0, 0]
        elements = ds.twin_elements[:]
        items = [(displayable(frame, k), "observation")]
        items += [(displayable(t, k), element_label(g)) for t, g in zip(twins, elements, strict=True)]
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
    try:
        with atomic_write(out, suffix=".png") as tmp:  # savefig picks the format by the suffix
            fig.savefig(tmp, dpi=130)
    finally:
        plt.close(fig)
    return out
