"""Evaluation metrics of the paper, as pure functions on tensors (definitions in docs/metrics.md).

Every function takes batches whose first axis indexes samples; distances and norms are taken
over all the other axes (flattened), in float64. Summary:

- :func:`ranking_metrics` -- Hits@k and MRR. Rows are targets, columns predictions (the
  authors' and C-SWM's orientation); a tie counts in favour of the sample's own prediction.
- :func:`equivariance_error` -- EE(S) = mean_i ||rho_V(g) S(x_i) - S(g x_i)|| / mean_i ||S(x_i)||.
- :func:`distance_invariance_error` -- DIE = mean_i | ||p_i - t_pi(i)|| - ||p^g_i - t^g_pi(i)|| | /
  mean_i ||z_i||.
- :func:`hard_hits_at_1` -- HH@1: the prediction is *strictly* nearer the true next latent
  than every hard negative (a tie is a miss).
- :func:`traversal_hits_at_1` -- TH@1: the prediction after ``k`` steps of a traversal is
  *strictly* nearest to the traversal's frame ``k`` among all its frames.
- :func:`nearest_is_target` -- the strict nearest-candidate test both of the last two use.
"""

from __future__ import annotations

import torch


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).double()


def row_norms(x: torch.Tensor) -> torch.Tensor:
    """``[N]`` L2 norms of each sample of ``x [N, ...]`` over all its non-batch axes (float64)."""
    return _flat(x).norm(dim=1)


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"these tensors must have the same shape: {shapes}")


def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` squared L2 distances between flattened rows of ``a [N, ...]`` and ``b [M, ...]``."""
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)[None]).clamp_min_(0)


# --------------------------------------------------------------------------- Hits@k, MRR


def ranks(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of each sample's own prediction among all predictions, seen from its target.

    Rows are targets and columns predictions, as in the authors' and C-SWM's code. A tie
    counts in favour of the sample's own prediction (their stable sort puts it first), so
    the rank is one plus the number of predictions *strictly* closer to the target.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    d = pairwise_sq_distances(target, pred)
    own = d.diagonal()[:, None]
    return 1 + (d < own).sum(dim=1)


def ranking_metrics(pred: torch.Tensor, target: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """``{"hits@k": ..., "mrr": ...}`` as fractions, for predictions and targets ``[N, ...]``."""
    return rank_metrics(ranks(pred, target), ks)


def rank_metrics(r: torch.Tensor, ks=(1, 5, 10), suffix: str = "") -> dict[str, float]:
    """``{"hits@k<suffix>": ..., "mrr<suffix>": ...}`` of given ranks (e.g. a subset of :func:`ranks`)."""
    if r.numel() == 0:
        raise ValueError("no ranks to score: the subset is empty")
    r = r.double()
    out = {f"hits@{k}{suffix}": float((r <= k).double().mean()) for k in ks}
    out[f"mrr{suffix}"] = float((1.0 / r).mean())
    return out


# --------------------------------------------------------------------------- EE(S), DIE


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    """``num / den`` for non-negative scalars; 0/0 is 0 (nothing to compare), x/0 is inf."""
    num, den = float(num), float(den)
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def equivariance_error(s_of_gx: torch.Tensor, rho_g_s_of_x: torch.Tensor, s_of_x: torch.Tensor) -> float:
    """EE(S) for one group element ``g``: ``mean_i ||rho_V(g) S(x_i) - S(g x_i)|| / mean_i ||S(x_i)||``.

    :param s_of_gx: ``S(g x_i)``, the embedding of the re-rendered transformed state ``[N, ...]``.
    :param rho_g_s_of_x: ``rho_V(g) S(x_i)``, the group acting on the embedding ``[N, ...]``.
    :param s_of_x: ``S(x_i)`` ``[N, ...]`` (the normaliser).

    0 for an exactly equivariant ``S``; about 1 or more when ``S`` ignores the symmetry.
    """
    _check_same_shape(s_of_gx=s_of_gx, rho_g_s_of_x=rho_g_s_of_x, s_of_x=s_of_x)
    return safe_ratio(row_norms(rho_g_s_of_x - s_of_gx).mean(), row_norms(s_of_x).mean())


def distance_invariance_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    pred_g: torch.Tensor,
    target_g: torch.Tensor,
    z: torch.Tensor,
    perm: torch.Tensor,
) -> float:
    """DIE for one group element ``g``.

    ``mean_i | ||pred_i - target_perm(i)|| - ||pred^g_i - target^g_perm(i)|| | / mean_i ||z_i||``

    :param pred: the model's predictions ``[N, ...]`` from the original samples.
    :param target: the encodings of the true outcomes ``[N, ...]``.
    :param pred_g: the predictions from the transformed samples (``g x_i`` with actions ``g a_i``).
    :param target_g: the encodings of the transformed true outcomes.
    :param z: latents ``[N, ...]`` whose mean norm normalises the error (the encoded start states).
    :param perm: ``[N]`` integer permutation (or any index vector) pairing prediction ``i`` with
        target ``perm[i]``.

    0 whenever the latent action is an isometry that maps ``pred -> pred_g`` and
    ``target -> target_g``, whether or not ``S`` is equivariant.
    """
    _check_same_shape(pred=pred, target=target, pred_g=pred_g, target_g=target_g)
    perm = torch.as_tensor(perm, dtype=torch.long, device=target.device)
    if perm.shape != (pred.shape[0],):
        raise ValueError(f"perm must have shape ({pred.shape[0]},), got {tuple(perm.shape)}")
    d = row_norms(pred - target[perm])
    d_g = row_norms(pred_g - target_g[perm])
    return safe_ratio((d - d_g).abs().mean(), row_norms(z).mean())


# --------------------------------------------------------------------------- HH@1, TH@1


def nearest_is_target(query: torch.Tensor, candidates: torch.Tensor, target_index, mask=None) -> torch.Tensor:
    """``[N]`` bool: candidate ``target_index[i]`` is *strictly* nearer ``query[i]`` than every other one.

    :param query: ``[N, ...]``.
    :param candidates: ``[N, M, ...]`` (the same trailing shape as ``query``).
    :param target_index: ``[N]`` integers in ``[0, M)`` (or one int for all rows).
    :param mask: optional ``[N, M]`` bool, False for padding candidates to ignore (the target
        itself must be valid).

    A tie between the target and another candidate is a miss: a model that maps everything
    to one point scores 0, not 1.
    """
    n, m = candidates.shape[:2]
    if query.shape[0] != n or tuple(candidates.shape[2:]) != tuple(query.shape[1:]):
        raise ValueError(
            f"candidates {tuple(candidates.shape)} must be [N, M, *query.shape[1:]] for query {tuple(query.shape)}"
        )
    if m < 1:
        raise ValueError("need at least one candidate per query")
    idx = torch.as_tensor(target_index, dtype=torch.long, device=candidates.device).expand(n)
    if bool(((idx < 0) | (idx >= m)).any()):
        raise ValueError(f"target_index must lie in [0, {m - 1}]")
    q = query.reshape(n, 1, -1).double()
    c = candidates.reshape(n, m, -1).double()
    d = (c - q).pow(2).sum(-1)  # [N, M]
    own = d.gather(1, idx[:, None])
    others = torch.ones_like(d, dtype=torch.bool)
    others.scatter_(1, idx[:, None], False)
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool, device=d.device)
        if mask.shape != (n, m):
            raise ValueError(f"mask must have shape ({n}, {m}), got {tuple(mask.shape)}")
        if not bool(mask.gather(1, idx[:, None]).all()):
            raise ValueError("the target candidate of every row must be valid in mask")
        others &= mask
    return ~((d <= own) & others).any(dim=1)


def hard_hits_at_1(pred: torch.Tensor, target: torch.Tensor, hard_negatives: torch.Tensor, mask=None) -> float:
    """HH@1: fraction of samples whose prediction is strictly nearer the true next latent than every hard negative.

    :param pred: predicted latents ``[N, ...]``.
    :param target: encodings of the true next observations ``[N, ...]``.
    :param hard_negatives: encodings of observations of states close to the true next state
        ``[N, M, ...]``.
    :param mask: optional ``[N, M]`` bool, False for padding negatives (rows may have fewer
        than ``M`` real negatives); every row needs at least one valid negative.

    Squared L2 distance; a tie with a negative is a miss.
    """
    _check_same_shape(pred=pred, target=target)
    if hard_negatives.ndim != pred.ndim + 1 or hard_negatives.shape[0] != pred.shape[0]:
        raise ValueError(
            f"hard_negatives must be [N, M, ...] with N = {pred.shape[0]}, got {tuple(hard_negatives.shape)}"
        )
    cands = torch.cat([target[:, None].to(hard_negatives.dtype), hard_negatives], dim=1)
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool, device=cands.device)
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every sample needs at least one valid hard negative in mask")
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
    return float(nearest_is_target(pred, cands, 0, mask).double().mean())


def traversal_hits_at_1(preds: torch.Tensor, frames: torch.Tensor, frame_index) -> float:
    """TH@1: fraction of traversal predictions whose strictly nearest traversal frame is the true one.

    :param preds: ``[N, K, ...]``: for each of ``N`` traversals, the model's latent after
        ``k = 1..K`` steps from the encoding of frame 0.
    :param frames: ``[N, F, ...]``: the encoded frames of each traversal.
    :param frame_index: ``[K]`` integers: the frame that prediction ``k`` should match
        (for a closed traversal of ``F`` steps, ``k mod F``).

    Each prediction is compared with the ``F`` frames of its own traversal only.
    """
    n, k = preds.shape[:2]
    f = frames.shape[1]
    if frames.shape[0] != n or tuple(frames.shape[2:]) != tuple(preds.shape[2:]):
        raise ValueError(f"frames {tuple(frames.shape)} must be [N, F, ...] for preds {tuple(preds.shape)}")
    idx = torch.as_tensor(frame_index, dtype=torch.long, device=frames.device)
    if idx.shape != (k,):
        raise ValueError(f"frame_index must have shape ({k},), got {tuple(idx.shape)}")
    query = preds.reshape(n * k, *preds.shape[2:])
    cands = frames[:, None].expand(n, k, *frames.shape[1:]).reshape(n * k, f, *frames.shape[2:])
    return float(nearest_is_target(query, cands, idx.repeat(n)).double().mean())
