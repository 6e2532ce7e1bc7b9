"""Generic SEN networks (sen_rl.nets.generic): exact equivariance for every element of every declared group.

Random weights, float64, every element: ``E(rho_V(g) v) = rho_Z(g) E(v)`` and
``T(rho_Z(g) z, rho_A(g) a) = rho_Z(g) T(z, a)``, with ``rho_V``/``rho_Z`` D4's actions on
pictures and regular fields (:mod:`sen_rl.groups`) and ``rho_A`` the declared rule.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from sen_rl.groups import PLANE_GROUPS, d4_act_on_embedding, d4_act_on_latent
from sen_rl.nets import generic
from sen_rl.nets.base import export_module
from sen_rl.symmetry import Symmetry
from tests.nets._util import eval_nets, rel_err

ROT90 = np.array([[0.0, -1.0], [1.0, 0.0]])
PLANE = {"flip": np.diag([-1.0, 1.0]), "turn": ROT90, "half_turn": -np.eye(2)}
OBS = gym.spaces.Box(0, 255, (20, 20, 3), np.uint8)  # 20 -> embedding 5 x 5: odd maps on the way too
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
TOL = 1e-4


def _symmetry(group: str) -> Symmetry:
    rules = {n: PLANE[n] for n in PLANE_GROUPS[group].generator_names}
    if group == "D1-ud":
        rules["flip"] = np.diag([1.0, -1.0])
    return Symmetry(group=group, action=rules)


def _check(nets, sym: Symmetry, v_shape, a: torch.Tensor) -> tuple[float, float]:
    """The largest E and T equivariance errors over the group's elements."""
    g = torch.Generator().manual_seed(1)
    v = torch.randn(3, *v_shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = nets.encoder(v)
        dz = nets.transition(z, a)
        e_err = t_err = 0.0
        for el in sym.elements:
            e_err = max(e_err, rel_err(nets.encoder(d4_act_on_embedding(el, v)), d4_act_on_latent(el, z)))
            moved = nets.transition(d4_act_on_latent(el, z), sym.act_on_action(el, a))
            t_err = max(t_err, rel_err(moved, d4_act_on_latent(el, dz)))
    return e_err, t_err


@pytest.mark.parametrize("group", list(PLANE_GROUPS))
def test_sen_is_exactly_equivariant_for_every_element(group):
    sym = _symmetry(group)
    torch.manual_seed(0)
    nets = eval_nets(generic.build("sen", "smoke", OBS, BOX, symmetry=sym), torch.float64)
    assert nets.info["latent_shape"] == (16,) and nets.info["embedding_shape"] == (8, 5, 5)
    a = torch.rand(3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    e_err, t_err = _check(nets, sym, (8, 5, 5), a)
    assert e_err < TOL and t_err < TOL, (group, e_err, t_err)


def test_none_is_not_equivariant():
    sym = _symmetry("D4")
    torch.manual_seed(0)
    nets = eval_nets(generic.build("none", "smoke", OBS, BOX, symmetry=sym), torch.float64)
    a = torch.rand(3, 2, dtype=torch.float64)
    e_err, t_err = _check(nets, sym, (8, 5, 5), a)
    assert e_err > 1e-2 and t_err > 1e-2


def test_discrete_actions_and_function_rules_enter_through_the_lift():
    """A permutation rule on Discrete(4) (C4 turning four push directions) and a function rule (D1)."""
    torch.manual_seed(0)
    c4 = Symmetry(group="C4", action={"turn": [1, 2, 3, 0]})
    nets = eval_nets(generic.build("sen", "smoke", OBS, gym.spaces.Discrete(4), symmetry=c4), torch.float64)
    e_err, t_err = _check(nets, c4, (8, 5, 5), torch.tensor([0, 1, 3]))
    assert e_err < TOL and t_err < TOL
    d1 = Symmetry(group="D1", action={"flip": lambda a: a[..., [1, 0]]})  # two motors swap places
    nets = eval_nets(generic.build("sen", "smoke", OBS, BOX, symmetry=d1), torch.float64)
    e_err, t_err = _check(nets, d1, (8, 5, 5), torch.tensor([[0.3, -0.7], [1.0, 0.2], [0.0, 0.5]], dtype=torch.float64))
    assert e_err < TOL and t_err < TOL


def test_mirrors_take_rectangles_turns_need_squares():
    rect = gym.spaces.Box(0, 255, (32, 64, 4), np.uint8)  # any channel count
    torch.manual_seed(0)
    sym = _symmetry("D2")
    nets = eval_nets(generic.build("sen", "smoke", rect, BOX, symmetry=sym), torch.float64)
    assert nets.info["embedding_shape"] == (8, 8, 16)
    e_err, t_err = _check(nets, sym, (8, 8, 16), torch.rand(3, 2, dtype=torch.float64))
    assert e_err < TOL and t_err < TOL
    with pytest.raises(ValueError, match="needs square ones"):
        generic.build("sen", "smoke", rect, BOX, symmetry=_symmetry("C4"))
    with pytest.raises(ValueError, match="one side even, one odd"):
        generic.build("sen", "smoke", gym.spaces.Box(0, 255, (20, 21, 3), np.uint8), BOX, symmetry=sym)


def test_the_whole_path_runs_on_pixels_exports_and_refuses_bad_input():
    torch.manual_seed(0)
    sym = _symmetry("D1")
    nets = eval_nets(generic.build("sen", "smoke", OBS, BOX, symmetry=sym))
    x = torch.rand(2, 3, 20, 20)
    with torch.no_grad():
        v = nets.embedding(x)
        z = nets.encoder(v)
        out = nets.transition(z, torch.zeros(2, 2))
        plain = [export_module(m) for m in (nets.embedding, nets.encoder, nets.transition)]
        np.testing.assert_allclose(plain[1](v).numpy(), z.numpy(), atol=1e-5)
        np.testing.assert_allclose(plain[2](z, torch.zeros(2, 2)).numpy(), out.numpy(), atol=1e-5)
    assert z.shape == (2, 16) and copy.deepcopy(nets.transition) is not None
    with pytest.raises(ValueError, match="need the declared symmetry"):
        generic.build("sen", "smoke", OBS, BOX)
    with pytest.raises(ValueError, match="act on 2 numbers"):
        generic.build("sen", "smoke", OBS, gym.spaces.Box(-1, 1, (3,), np.float32), symmetry=sym)
    with pytest.raises(ValueError, match="variant='full' is not known"):
        generic.build("full", "smoke", OBS, BOX, symmetry=sym)
