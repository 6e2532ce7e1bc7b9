"""Grid-domain networks (C4 x S_K): exact equivariance of every piece, conventions, export.

Conventions under test (see :mod:`sen_rl.nets.grid`, implemented in :mod:`sen_rl.groups`):
``rho_V(k) = rot90(., k)`` on maps, ``rho_Z(k)`` = roll by ``-k`` of the rotation axis (last
axis of ``[B, K, c, 4]``), actions ``d -> (d - k) mod 4`` with the action one-hot placed at
rotation index ``d``.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sen_rl.domains import domain_of
from sen_rl.groups import (
    C4_ELEMENTS,
    c4_act_on_embedding,
    c4_act_on_latent,
    c4_compose,
    c4_rotate_cells,
    c4_rotate_grid_action,
)
from sen_rl.nets import grid
from sen_rl.nets.base import PRESETS, export_module
from sen_rl.nets.escnn_utils import c4_gspace, he_variances, import_escnn
from tests.nets._util import eval_nets, rel_err

OBS = gym.spaces.Box(0, 255, (50, 50, 3), np.uint8)
ACT = gym.spaces.Discrete(20)
K_OBJ = 5


@pytest.fixture(scope="module")
def built():
    """One smoke-size model per variant in float64 (built once: escnn is slow to build)."""
    torch.manual_seed(0)
    return {v: eval_nets(grid.build(v, "smoke", OBS, ACT), torch.float64) for v in ("sen", "none", "full")}


def orbit(v: torch.Tensor) -> torch.Tensor:
    """``[B, K, H, W]`` -> ``[B, K, 4, H*W]``, entry ``r`` = ``rot90(v, r)`` flattened: the orbit, stacked literally."""
    return torch.stack([torch.rot90(v, r, dims=(-2, -1)) for r in range(4)], dim=2).flatten(-2)


def orbit_encoder_stacked(enc: grid.OrbitEncoder, v: torch.Tensor) -> torch.Tensor:
    """Reference implementation of ``OrbitEncoder.forward`` that stacks the orbit literally (slower)."""
    h = F.relu(enc.first(orbit(v)))  # [B, K, 4, m]
    return enc.rest(h.transpose(-1, -2).flatten(-2))


def _batch(dtype=torch.float64, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 50, 50, generator=g, dtype=dtype)
    side = 50 // grid.PRESET_SIZES["smoke"]["pool"]  # the embedding's map size
    v = torch.rand(batch, K_OBJ, side, side, generator=g, dtype=dtype)
    z = torch.randn(batch, K_OBJ, 8, generator=g, dtype=dtype)
    a = torch.randint(0, 4 * K_OBJ, (batch,), generator=g)
    return x, v, z, a


# --------------------------------------------------------------------------- build / contract


@pytest.mark.parametrize("variant", ["sen", "none", "full"])
def test_shapes_and_contract(built, variant):
    nets = built[variant]
    x, _, _, a = _batch()
    with torch.no_grad():
        v = nets.embedding(x)
        z = nets.encoder(v)
        dz = nets.transition(z, a)
    side = 50 // grid.PRESET_SIZES["smoke"]["pool"]
    assert v.shape == (4, K_OBJ, side, side) and 0 <= v.min() and v.max() <= 1
    assert z.shape == (4, K_OBJ, 8) and dz.shape == z.shape
    assert nets.predicts_delta and nets.object_axis == 1
    eq = variant != "none"
    assert nets.equivariant == {"embedding": variant == "full", "encoder": eq, "transition": eq}
    assert nets.info["latent_shape"] == (K_OBJ, 8) and nets.info["multiplicity"] == 2
    assert "rotation index last" in nets.info["latent_layout"]


def test_sizes_derived_from_spaces_and_presets():
    nets = grid.build("sen", "smoke", gym.spaces.Box(0, 255, (30, 30, 3), np.uint8), gym.spaces.Discrete(12))
    with torch.no_grad():
        z = nets.encoder(nets.embedding(torch.rand(2, 3, 30, 30)))
        assert nets.transition(z, torch.tensor([0, 11])).shape == (2, 3, 8)
    assert set(grid.PRESET_SIZES) == set(PRESETS)
    assert grid.PRESET_SIZES["paper"] == {"cnn": 32, "mlp": 512, "hidden": 512, "c": 2, "pool": 1}
    assert nets.info["embedding_shape"] == (3, 15, 15)  # smoke pools 2x2 before the CNN
    with pytest.raises(ValueError, match="divisible"):
        grid.build("sen", "smoke", gym.spaces.Box(0, 255, (31, 31, 3), np.uint8), gym.spaces.Discrete(12))
    paper = grid.build("sen", "paper", OBS, ACT)
    assert paper.encoder.first.out_features == 128 and paper.info["latent_shape"] == (5, 8)


@pytest.mark.parametrize("kwargs", [{"variant": "bogus"}, {"preset": "huge"}])
def test_unknown_choices(kwargs):
    args = {"variant": "sen", "preset": "smoke", **kwargs}
    with pytest.raises(ValueError, match="choose one of"):
        grid.build(args["variant"], args["preset"], OBS, ACT)


# --------------------------------------------------------------------------- group actions


def test_group_composition():
    _, v, z, _ = _batch()
    a = torch.arange(20)
    for k1 in C4_ELEMENTS:
        for k2 in C4_ELEMENTS:
            k = c4_compose(k1, k2)
            assert torch.equal(c4_act_on_latent(k1, c4_act_on_latent(k2, z)), c4_act_on_latent(k, z))
            assert torch.equal(c4_act_on_embedding(k1, c4_act_on_embedding(k2, v)), c4_act_on_embedding(k, v))
            assert torch.equal(c4_rotate_grid_action(k1, c4_rotate_grid_action(k2, a)), c4_rotate_grid_action(k, a))
    assert torch.equal(c4_act_on_latent(1, c4_act_on_latent(1, z)), c4_act_on_latent(2, z))
    assert torch.equal(c4_act_on_latent(4, z), z) and torch.equal(c4_act_on_latent(0, z), z)
    # the layout: field i, rotation r is number 4 i + r; rho_Z(k) reads rotation r + k
    zz = torch.arange(8.0).reshape(1, 1, 8)
    assert c4_act_on_latent(1, zz).flatten().tolist() == [1, 2, 3, 0, 5, 6, 7, 4]


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_torch_action_matches_the_env_symmetry(k):
    """The torch form the networks are tested with is the env's ``symmetry.act_on_action``."""
    from sen_rl.envs.shapes import ShapesEnv

    sym = ShapesEnv().symmetry
    a = np.arange(20)
    got = c4_rotate_grid_action(k, torch.as_tensor(a))
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), sym.act_on_action(k, a))
    assert got.tolist() == [sym.act_on_action(k, int(i)) for i in a]
    assert torch.equal(sym.act_on_action(k, torch.as_tensor(a)), got)  # the env's symmetry takes tensors too


def test_domain_table_declares_the_c4_rules_these_nets_are_tested_with():
    for env_id in ("SEN-Shapes-v0", "SEN-Cubes-v0"):
        assert domain_of(env_id).act_on_latent is c4_act_on_latent
        assert domain_of(env_id).act_on_embedding is c4_act_on_embedding


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_act_on_embedding_is_np_rot90(built, k):
    _, v, _, _ = _batch()
    assert np.array_equal(c4_act_on_embedding(k, v).numpy(), np.rot90(v.numpy(), k, axes=(-2, -1)))


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_action_one_hot_shifts_like_the_latent(k):
    """The one-hot of rho_A(k) a is rho_Z(k) of the one-hot of a: the action placement matches."""
    a = torch.arange(20)
    onehot = grid.action_one_hot(a, K_OBJ)  # [20, K, 4]
    assert onehot[7, 1].tolist() == [0, 0, 0, 1] and onehot[7].sum() == 1  # object 1, direction left
    assert torch.equal(grid.action_one_hot(c4_rotate_grid_action(k, a), K_OBJ), c4_act_on_latent(k, onehot))


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_orbit_stacking_shifts(k):
    """Stacking rot90(v, r), r = 0..3: rotating v by k shifts the stacked axis by -k (rho_Z)."""
    _, v, _, _ = _batch()
    assert torch.equal(orbit(c4_act_on_embedding(k, v)), torch.roll(orbit(v), -k, dims=2))


def test_orbit_encoder_weight_trick_equals_literal_stacking(built):
    _, v, _, _ = _batch()
    enc = built["sen"].encoder
    with torch.no_grad():
        assert rel_err(enc(v), orbit_encoder_stacked(enc, v)) < 1e-12


# --------------------------------------------------------------------------- C4 layers


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_c4_layers(k):
    torch.manual_seed(0)
    lin, norm = grid.C4Linear(3, 5).double(), grid.C4LayerNorm(5).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(6, 12, dtype=torch.float64)
    # the defining formula, written out
    w, b, xs = lin.weight, lin.bias, x.reshape(6, 3, 4)
    ref = torch.stack(
        [
            torch.stack(
                [sum(w[o, i, (s - r) % 4] * xs[:, i, s] for i in range(3) for s in range(4)) + b[o] for r in range(4)],
                -1,
            )
            for o in range(5)
        ],
        1,
    ).reshape(6, 20)
    with torch.no_grad():
        assert rel_err(lin(x), ref) < 1e-12
        y = lin(x)
        assert rel_err(lin(c4_act_on_latent(k, x)), c4_act_on_latent(k, y)) < 1e-12
        assert rel_err(norm(c4_act_on_latent(k, y)), c4_act_on_latent(k, norm(y))) < 1e-12


# --------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("k", C4_ELEMENTS)
@pytest.mark.parametrize("variant", ["sen", "full"])
def test_encoder_equivariant(built, variant, k):
    nets = built[variant]
    _, v, _, _ = _batch()
    with torch.no_grad():
        err = rel_err(nets.encoder(c4_act_on_embedding(k, v)), c4_act_on_latent(k, nets.encoder(v)))
    assert err < 1e-4


@pytest.mark.parametrize("k", C4_ELEMENTS)
@pytest.mark.parametrize("variant", ["sen", "full"])
def test_transition_equivariant(built, variant, k):
    nets = built[variant]
    _, _, z, a = _batch()
    with torch.no_grad():
        lhs = nets.transition(c4_act_on_latent(k, z), c4_rotate_grid_action(k, a))
        rhs = c4_act_on_latent(k, nets.transition(z, a))
    assert rel_err(lhs, rhs) < 1e-4


@pytest.mark.parametrize("variant", ["sen", "full", "none"])
def test_transition_permutation_equivariant(built, variant):
    nets = built[variant]
    _, _, z, a = _batch()
    for seed in range(3):
        perm = torch.randperm(K_OBJ, generator=torch.Generator().manual_seed(seed))
        inv = torch.argsort(perm)  # object o of z sits at position inv[o] of z[:, perm]
        a_perm = inv[a // 4] * 4 + a % 4
        with torch.no_grad():
            assert rel_err(nets.transition(z[:, perm], a_perm), nets.transition(z, a)[:, perm]) < 1e-10


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_transition_with_action_on_the_edges_is_c4_and_permutation_equivariant(k):
    """``edge_action=True`` (the edges read the acting object's action, one regular field more)
    keeps both symmetries."""
    torch.manual_seed(1)
    t = grid.GraphTransition(K_OBJ, 8, 32, equivariant=True, edge_action=True).double().eval()
    plain = grid.GraphTransition(K_OBJ, 8, 32, equivariant=True).double().eval()
    assert t.edge_mlp[0].in_mult * 4 == plain.edge_mlp[0].in_mult * 4 + 4  # one regular field more
    _, _, z, a = _batch()
    with torch.no_grad():
        lhs = t(c4_act_on_latent(k, z), c4_rotate_grid_action(k, a))
        assert rel_err(lhs, c4_act_on_latent(k, t(z, a))) < 1e-10
        perm = torch.randperm(K_OBJ, generator=torch.Generator().manual_seed(k))
        inv = torch.argsort(perm)
        assert rel_err(t(z[:, perm], inv[a // 4] * 4 + a % 4), t(z, a)[:, perm]) < 1e-10


def test_grid_builder_passes_edge_action_on():
    nets = grid.build("sen", "smoke", OBS, ACT, edge_action=True)
    assert nets.transition.edge_action and not grid.build("sen", "smoke", OBS, ACT).transition.edge_action


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_full_whole_encoder_equivariant_on_pixels(k):
    """float32, random pixels: E(S(rot90(x, k))) == rho_Z(k) E(S(x)) through the escnn CNN."""
    torch.manual_seed(1)
    nets = grid.build("full", "smoke", OBS, ACT)
    x = torch.rand(3, 3, 50, 50)
    nets.embedding.train()
    with torch.no_grad():  # also in train mode: InnerBatchNorm statistics are rotation invariant
        err_train = rel_err(
            nets.embedding(torch.rot90(x, k, dims=(-2, -1))), torch.rot90(nets.embedding(x), k, dims=(-2, -1))
        )
    eval_nets(nets)
    with torch.no_grad():
        v = nets.embedding(x)
        v_rot = nets.embedding(torch.rot90(x, k, dims=(-2, -1)))
        z, z_rot = nets.encoder(v), nets.encoder(v_rot)
    assert err_train < 1e-4
    assert rel_err(v_rot, c4_act_on_embedding(k, v)) < 1e-4
    assert rel_err(z_rot, c4_act_on_latent(k, z)) < 1e-4


def test_full_on_rendered_shapes_world(built):
    """End to end on the real domain: rotate the world state, re-render, encode, step."""
    from sen_rl.envs.shapes import ShapesEnv

    env = ShapesEnv()
    _, info = env.reset(seed=3)
    state = info["state"] if "state" in info else env.get_state()
    nets = built["full"]
    a = torch.tensor([6])  # object 1, down
    for k in C4_ELEMENTS:
        imgs = [env.render_state(s) for s in (state, c4_rotate_cells(k, state, 5))]
        x = torch.as_tensor(np.stack(imgs)).permute(0, 3, 1, 2).double() / 255
        with torch.no_grad():
            z = nets.encoder(nets.embedding(x))
            z_next = z + nets.transition(z, torch.cat([a, c4_rotate_grid_action(k, a)]))
        assert rel_err(z[1:], c4_act_on_latent(k, z[:1])) < 1e-4
        assert rel_err(z_next[1:], c4_act_on_latent(k, z_next[:1])) < 1e-4


@pytest.mark.parametrize("k", C4_ELEMENTS)
def test_escnn_rotation_direction_is_torch_rot90(k):
    enn = import_escnn().nn
    gs = c4_gspace()
    x = torch.randn(1, 2, 7, 7)
    y = enn.GeometricTensor(x, enn.FieldType(gs, 2 * [gs.trivial_repr])).transform(gs.fibergroup.element(k))
    assert torch.equal(y.tensor, torch.rot90(x, k, dims=(-2, -1)))


def test_none_is_not_equivariant(built):
    nets = built["none"]
    _, v, z, a = _batch()
    with torch.no_grad():
        e_err = rel_err(nets.encoder(c4_act_on_embedding(1, v)), c4_act_on_latent(1, nets.encoder(v)))
        t_err = rel_err(
            nets.transition(c4_act_on_latent(1, z), c4_rotate_grid_action(1, a)),
            c4_act_on_latent(1, nets.transition(z, a)),
        )
    assert e_err > 1e-2 and t_err > 1e-2


# --------------------------------------------------------------------------- export / modes


def test_full_export_plain_torch_and_modes():
    enn = import_escnn().nn
    torch.manual_seed(2)
    nets = grid.build("full", "smoke", OBS, ACT)
    x = torch.rand(4, 3, 50, 50)
    emb = nets.embedding.train()
    train_keys = set(emb.state_dict())
    opt = torch.optim.SGD(emb.parameters(), lr=0.1)
    for _ in range(2):  # move the weights and the BatchNorm running statistics off their init
        opt.zero_grad()
        emb(x).square().mean().backward()
        opt.step()
    emb.eval()
    assert set(emb.state_dict()) == train_keys  # no mode-dependent escnn filter buffers
    copy.deepcopy(emb)  # works in eval mode too
    with torch.no_grad():
        ref = emb(x)
        exported = export_module(emb)
        assert not any(isinstance(m, enn.EquivariantModule) for m in exported.modules())
        assert (exported(x) - ref).abs().max() < 1e-5
        assert (emb(x) - ref).abs().max() == 0  # export left the original untouched
    # a state dict saved in eval mode loads into a fresh model in train mode
    fresh = grid.build("full", "smoke", OBS, ACT).embedding
    fresh.load_state_dict(emb.state_dict())
    with torch.no_grad():
        assert (fresh.eval()(x) - ref).abs().max() < 1e-6


def test_full_init_matches_escnn(built):
    """The "full" CNN's R2Convs get escnn's own generalized He scales (computed the fast way)."""
    enn = import_escnn().nn  # escnn's own import would warn about py3nj
    from escnn.nn.init import _generalized_he_init_variances

    convs = [m for m in built["full"].embedding.modules() if isinstance(m, enn.R2Conv)]
    assert len(convs) == 5
    for m in convs:
        assert torch.equal(he_variances(m.basisexpansion), _generalized_he_init_variances(m.basisexpansion))


def test_gradients_reach_every_parameter():
    torch.manual_seed(3)
    for variant in ("sen", "none", "full"):
        nets = grid.build(variant, "smoke", OBS, ACT)
        x, _, _, a = _batch(torch.float32, batch=2)
        z = nets.encoder(nets.embedding(x))
        (z + nets.transition(z, a)).square().sum().backward()
        for m in (nets.embedding, nets.encoder, nets.transition):
            for name, p in m.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, (variant, name)


# --------------------------------------------------------------------------- cell-aligned SEN (2D Shapes)


@pytest.mark.parametrize("variant", ["sen", "none"])
def test_cell_embedding_exactly_equivariant_on_shapes_worlds(variant):
    """2D Shapes' SEN reads one 10-pixel cell per map entry: with random, unconstrained weights it
    is exactly equivariant on rendered worlds, for every quarter turn (the sprites are symmetric)."""
    from sen_rl.envs.shapes import ShapesEnv

    torch.manual_seed(4)
    nets = eval_nets(grid.build(variant, "smoke", OBS, ACT, cell=10), torch.float64)
    assert isinstance(nets.embedding, grid.CellCNN) and nets.info["embedding_shape"] == (K_OBJ, 5, 5)
    env = ShapesEnv()
    for seed in range(3):
        _, info = env.reset(seed=seed)
        states = [c4_rotate_cells(k, info["state"], 5) for k in C4_ELEMENTS]
        x = torch.as_tensor(np.stack([env.render_state(s) for s in states])).permute(0, 3, 1, 2).double() / 255
        with torch.no_grad():
            v = nets.embedding(x)
        assert v.shape == (4, K_OBJ, 5, 5)
        for k in C4_ELEMENTS:
            assert torch.equal(v[k], c4_act_on_embedding(k, v[0]))
    # but it is no equivariant network: on unstructured pixels quarter turns change its output
    x = torch.rand(2, 3, 50, 50, dtype=torch.float64)
    with torch.no_grad():
        assert (
            rel_err(nets.embedding(torch.rot90(x, 1, dims=(-2, -1))), torch.rot90(nets.embedding(x), 1, dims=(-2, -1)))
            > 1e-2
        )


def test_cell_embedding_needs_whole_cells():
    with pytest.raises(ValueError, match="divisible by 10"):
        grid.build("sen", "smoke", gym.spaces.Box(0, 255, (45, 45, 3), np.uint8), ACT, cell=10)
    full = grid.build("full", "smoke", OBS, ACT, cell=10)  # "full" keeps its escnn CNN
    assert isinstance(full.embedding, grid.C4EquivariantCNN)


def test_shapes_models_default_to_the_cell_embedding_and_old_checkpoints_load(tmp_path):
    from sen_rl.model import build_model, load_model

    m = build_model("SEN-Shapes-v0", "sen", "smoke")
    assert m.config.net_kwargs == {"cell": 10} and isinstance(m.embedding, grid.CellCNN)
    assert build_model("SEN-Cubes-v0", "sen", "smoke").config.net_kwargs == {}
    # a checkpoint written before net_kwargs existed holds a 3x3-stack Shapes model
    old = build_model("SEN-Shapes-v0", "sen", "smoke", net_kwargs={})
    assert isinstance(old.embedding, grid.ObjectCNN)
    old.save(tmp_path / "old.pt")
    payload = torch.load(tmp_path / "old.pt", weights_only=False)
    del payload["config"]["net_kwargs"]
    torch.save(payload, tmp_path / "old.pt")
    assert isinstance(load_model(tmp_path / "old.pt").embedding, grid.ObjectCNN)
