"""The metric functions on hand-made cases whose answers are known exactly."""

import math

import pytest
import torch

from sen_rl.metrics import (
    distance_invariance_error,
    equivariance_error,
    hard_hits_at_1,
    nearest_is_target,
    ranking_metrics,
    ranks,
    traversal_hits_at_1,
)

# --------------------------------------------------------------------------- Hits@k, MRR


def test_perfect_predictions_score_one():
    target = torch.randn(20, 3, 4)
    m = ranking_metrics(target.clone(), target)
    assert m == {"hits@1": 1.0, "hits@5": 1.0, "hits@10": 1.0, "mrr": 1.0}


def test_ties_count_in_favour_of_the_own_prediction():
    # every prediction is the same point: all tie, all rank 1
    target = torch.randn(5, 2)
    pred = torch.zeros(5, 2)
    assert ranks(pred, target).tolist() == [1, 1, 1, 1, 1]
    # target 0 is as far from prediction 1 as from its own: still rank 1
    target = torch.tensor([[0.0], [10.0]])
    pred = torch.tensor([[1.0], [-1.0]])
    assert ranks(pred, target).tolist() == [1, 2]


def test_cyclic_shift_of_predictions():
    # targets at 0, 1, 2, 3 on a line; prediction i is target i + 1 (mod 4)
    target = torch.arange(4.0)[:, None]
    pred = target.roll(-1, dims=0)
    # target 0: pred 3 (at 0) is strictly nearer than its own (at 1) -> rank 2
    # target 1: pred 0 (at 1) nearer; pred 3 (at 0) ties with its own (at 2) -> rank 2
    # target 2: pred 1 (at 2) nearer; pred 0 (at 1) ties -> rank 2
    # target 3: its own is at 0, all three others nearer -> rank 4
    assert ranks(pred, target).tolist() == [2, 2, 2, 4]
    m = ranking_metrics(pred, target, ks=(1, 2, 4))
    assert m["hits@1"] == 0.0
    assert m["hits@2"] == 0.75
    assert m["hits@4"] == 1.0
    assert m["mrr"] == pytest.approx((0.5 * 3 + 0.25) / 4)


def test_ranks_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        ranks(torch.zeros(3, 2), torch.zeros(3, 3))


# --------------------------------------------------------------------------- EE(S)


def test_ee_is_zero_for_an_equivariant_map():
    # S = identity on images [N, C, H, W], rho_V(k) = rot90 on the pixel axes, g x = rot90(x)
    x = torch.rand(8, 3, 6, 6)
    for k in range(4):
        gx = torch.rot90(x, k, dims=(-2, -1))
        rho_s = torch.rot90(x, k, dims=(-2, -1))
        assert equivariance_error(gx, rho_s, x) == pytest.approx(0.0, abs=1e-12)


def test_ee_known_value():
    # an image that a quarter turn negates: rot90(x) = -x; with the wrong rho (identity)
    # ||rho S(x) - S(gx)|| = ||x + x|| = 2 ||x||, so EE = 2
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).expand(4, 1, 2, 2) * torch.arange(1.0, 5.0)[:, None, None, None]
    gx = torch.rot90(x, 1, dims=(-2, -1))
    assert torch.equal(gx, -x)
    assert equivariance_error(gx, x, x) == pytest.approx(2.0)
    # EE(S) = ratio of means, not mean of ratios
    s_of_x = torch.tensor([[1.0], [3.0]])
    assert equivariance_error(torch.tensor([[0.0], [0.0]]), torch.tensor([[2.0], [0.0]]), s_of_x) == 0.5


def test_ee_degenerate_normaliser():
    z = torch.zeros(3, 2)
    assert equivariance_error(z, z, z) == 0.0
    assert math.isinf(equivariance_error(z, torch.ones(3, 2), z))
    with pytest.raises(ValueError, match="same shape"):
        equivariance_error(z, z, torch.zeros(3, 3))


# --------------------------------------------------------------------------- DIE


def test_die_is_zero_for_an_isometry():
    torch.manual_seed(0)
    pred, target, z = torch.randn(16, 5), torch.randn(16, 5), torch.randn(16, 5)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    perm = torch.randperm(16)
    pred_g, target_g = pred.double() @ q.T, target.double() @ q.T
    assert distance_invariance_error(pred.double(), target.double(), pred_g, target_g, z, perm) < 1e-12
    # a permutation of the latent's coordinates is an isometry too
    p = torch.randperm(5)
    assert distance_invariance_error(pred, target, pred[:, p], target[:, p], z, perm) < 1e-6


def test_die_known_value():
    # doubling every latent doubles every distance: |d - 2d| = d
    pred = torch.tensor([[0.0], [1.0]])
    target = torch.tensor([[3.0], [5.0]])
    z = torch.tensor([[2.0], [-2.0]])
    perm = torch.tensor([1, 0])  # d = |0 - 5|, |1 - 3| = 5, 2
    die = distance_invariance_error(pred, target, 2 * pred, 2 * target, z, perm)
    assert die == pytest.approx((5 + 2) / 2 / 2)
    # the identity pairing: d = 3, 4
    assert distance_invariance_error(pred, target, 2 * pred, 2 * target, z, torch.arange(2)) == pytest.approx(1.75)
    with pytest.raises(ValueError, match="perm"):
        distance_invariance_error(pred, target, pred, target, z, torch.arange(3))


# --------------------------------------------------------------------------- HH@1


def _hh_case():
    pred = torch.zeros(3, 2)
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    negs = torch.tensor(
        [
            [[2.0, 0.0], [0.0, 3.0]],  # both farther than the target: hit
            [[0.0, 1.0], [5.0, 5.0]],  # a tie with the target: miss
            [[1.0, 0.0], [3.0, 3.0]],  # a negative nearer than the target: miss
        ]
    )
    return pred, target, negs


def test_hard_hits_known_values():
    pred, target, negs = _hh_case()
    assert hard_hits_at_1(pred, target, negs) == pytest.approx(1 / 3)
    # masking out the tie and the nearer negative leaves only far ones: all hits
    mask = torch.tensor([[True, True], [False, True], [False, True]])
    assert hard_hits_at_1(pred, target, negs, mask) == 1.0


def test_hard_hits_collapsed_model_scores_zero():
    z = torch.ones(4, 3)
    assert hard_hits_at_1(z, z, z[:, None].repeat(1, 5, 1)) == 0.0


def test_hard_hits_errors():
    pred, target, negs = _hh_case()
    with pytest.raises(ValueError, match="at least one valid"):
        hard_hits_at_1(pred, target, negs, torch.tensor([[True, True], [False, False], [True, True]]))
    with pytest.raises(ValueError, match=r"\[N, M"):
        hard_hits_at_1(pred, target, negs[:2])


# --------------------------------------------------------------------------- TH@1


def _circle(n=30):
    angles = torch.arange(n) * 2 * math.pi / n
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def test_traversal_hits_perfect_and_frozen():
    frames = _circle()[None].repeat(2, 1, 1)  # [2 traversals, 30 frames, 2]
    idx = torch.arange(1, 31) % 30
    perfect = frames[:, idx]  # prediction after k steps = frame k mod 30
    assert traversal_hits_at_1(perfect, frames, idx) == 1.0
    # a model that never moves predicts frame 0 every time: only the full turn (k = 30) hits
    frozen = frames[:, :1].repeat(1, 30, 1)
    assert traversal_hits_at_1(frozen, frames, idx) == pytest.approx(1 / 30)
    # half a step off, exactly between two frames (on a line, so exactly): a tie, so a miss
    line = torch.arange(30.0)[None, :, None]
    assert traversal_hits_at_1(line[:, :29] + 0.5, line, torch.arange(29)) == 0.0
    assert traversal_hits_at_1(line[:, :29] + 0.4, line, torch.arange(29)) == 1.0


def test_nearest_is_target_rows_and_errors():
    q = torch.tensor([[0.0], [0.0]])
    c = torch.tensor([[[1.0], [2.0], [-3.0]], [[1.0], [-1.0], [0.5]]])
    assert nearest_is_target(q, c, torch.tensor([0, 2])).tolist() == [True, True]
    assert nearest_is_target(q, c, torch.tensor([1, 0])).tolist() == [False, False]
    assert nearest_is_target(q, c, 0, mask=torch.tensor([[True, True, True], [True, True, False]])).tolist() == [
        True,
        False,  # 1 and -1 tie
    ]
    with pytest.raises(ValueError, match="target_index"):
        nearest_is_target(q, c, 3)
    with pytest.raises(ValueError, match="candidates"):
        nearest_is_target(q, c[:, :, None], 0)
