"""Evaluation metrics of the paper: Hits@k and MRR (more land with the evaluation issue)."""

from __future__ import annotations

import torch


def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` squared L2 distances between flattened rows of ``a [N, ...]`` and ``b [M, ...]``."""
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)[None]).clamp_min_(0)


def ranks(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of each sample's own prediction among all predictions, seen from its target.

    Rows are targets and columns predictions, as in the authors' and C-SWM's code. A tie
    counts in favour of the sample's own prediction (their stable sort puts it first), so
    the rank is one plus the number of predictions *strictly* closer to the target.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    d = pairwise_sq_distances(target, pred)
    own = d.diagonal()[:, None]
    return 1 + (d < own).sum(dim=1)


def ranking_metrics(pred: torch.Tensor, target: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """``{"hits@k": ..., "mrr": ...}`` as fractions, for predictions and targets ``[N, ...]``."""
    r = ranks(pred, target).double()
    out = {f"hits@{k}": float((r <= k).double().mean()) for k in ks}
    out["mrr"] = float((1.0 / r).mean())
    return out
