"""Reacher networks (D4): exact equivariance for all 8 elements, escnn conventions, export.

Conventions under test (see :mod:`sen_rl.nets.reacher`, implemented in :mod:`sen_rl.groups`):
``g = (f, k) = r^k m^f``; ``rho_V(g)`` flips the rows ``f`` times then
``rot90(., k, dims=(-2, -1))``; ``rho_Z(g)`` is escnn's regular representation of the element
``((f, k), "int")`` of ``flipRot2dOnR2(N=4, axis=0)``, per field of ``z.view(B, 4, 8)``;
``rho_A(g) a = (-1)^f a``. escnn is the oracle here only: the library computes its tables itself.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from sen_rl.domains import domain_of
from sen_rl.groups import (
    D4_ELEMENTS,
    d4_act_on_action,
    d4_act_on_embedding,
    d4_act_on_latent,
    d4_compose,
    d4_regular_permutations,
    reacher_symmetry,
)
from sen_rl.nets import reacher
from sen_rl.nets.base import export_module, to_float_image
from sen_rl.nets.escnn_utils import d4_gspace, dilated_basis, escnn_element, he_variances, import_escnn, r2conv
from tests.nets._util import eval_nets, rel_err

SIZE = 32  # smoke observations: 32 x 32 x 6 -> embedding 8 x 8 x 8
OBS = gym.spaces.Box(0, 255, (SIZE, SIZE, 6), np.uint8)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
VARIANTS = ("sen", "none", "full")


@pytest.fixture(scope="module")
def built():
    """One smoke-size model per variant, float32, eval mode (escnn is slow to build)."""
    torch.manual_seed(0)
    return {v: eval_nets(reacher.build(v, "smoke", OBS, ACT)) for v in VARIANTS}


@pytest.fixture(scope="module")
def built64(built):
    return {v: eval_nets(copy.deepcopy(n), torch.float64) for v, n in built.items()}


def _batch(dtype=torch.float64, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 6, SIZE, SIZE, generator=g, dtype=dtype)
    v = torch.randn(batch, 8, SIZE // 4, SIZE // 4, generator=g, dtype=dtype)
    z = torch.randn(batch, 32, generator=g, dtype=dtype)
    a = torch.rand(batch, 2, generator=g, dtype=dtype) * 2 - 1
    return x, v, z, a


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_contract(built, variant):
    nets = built[variant]
    obs = torch.randint(0, 256, (3, SIZE, SIZE, 6), dtype=torch.uint8)
    with torch.no_grad():
        v = nets.embedding(to_float_image(obs))
        z = nets.encoder(v)
        dz = nets.transition(z, torch.zeros(3, 2))
    assert v.shape == (3, 8, SIZE // 4, SIZE // 4)
    assert z.shape == dz.shape == (3, 32)
    assert nets.predicts_delta and nets.object_axis is None
    assert nets.info["embedding_shape"] == (8, SIZE // 4, SIZE // 4)
    want = variant != "none"
    assert nets.equivariant == {"embedding": variant == "full", "encoder": want, "transition": want}


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_mode_backward(variant):
    torch.manual_seed(1)
    nets = reacher.build(variant, "smoke", OBS, ACT)
    x, _, _, a = _batch(torch.float32, batch=8)
    z = nets.encoder(nets.embedding(x))
    loss = (z + nets.transition(z, a)).square().mean()
    loss.backward()
    params = [p for m in (nets.embedding, nets.encoder, nets.transition) for p in m.parameters()]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert sum(float(p.grad.abs().sum()) for p in params) > 0


def test_input_validation():
    with pytest.raises(ValueError, match="preset 'cpu' takes 64..128 x 64..128"):
        reacher.build("sen", "cpu", OBS, ACT)
    with pytest.raises(ValueError, match="preset 'paper' takes 128 x 128"):
        reacher.build("sen", "paper", gym.spaces.Box(0, 255, (64, 64, 6), np.uint8), ACT)
    with pytest.raises(ValueError, match="preset 'smoke'"):
        reacher.build("sen", "smoke", gym.spaces.Box(0, 255, (128, 128, 6), np.uint8), ACT)
    with pytest.raises(ValueError, match="multiple of 4"):
        reacher.build("sen", "smoke", gym.spaces.Box(0, 255, (30, 30, 6), np.uint8), ACT)
    with pytest.raises(ValueError, match="two stacked RGB"):
        reacher.build("sen", "smoke", gym.spaces.Box(0, 255, (32, 32, 3), np.uint8), ACT)
    with pytest.raises(ValueError, match="shape"):
        reacher.build("sen", "smoke", OBS, gym.spaces.Box(-1, 1, (3,), np.float32))
    with pytest.raises(ValueError, match="variant"):
        reacher.build("ours", "smoke", OBS, ACT)
    with pytest.raises(ValueError, match="preset"):
        reacher.build("sen", "gpu", OBS, ACT)
    with pytest.raises(ValueError, match="not a D4 element"):
        d4_act_on_latent((0, 4), torch.zeros(1, 32))


# --------------------------------------------------------------------------- conventions


def test_pixel_action_matches_world_convention():
    """World +x is image right, +y image up: a quarter turn takes +x to +y, the reflection +y to -y."""
    img = torch.zeros(1, 9, 9)
    img[0, 4, 6] = 1.0  # two pixels right of the centre: world +x
    turned = d4_act_on_embedding((0, 1), img)
    assert turned[0, 2, 4] == 1.0  # two pixels above the centre: world +y
    flipped = d4_act_on_embedding((1, 0), turned)
    assert flipped[0, 6, 4] == 1.0  # world -y
    # (1, 1): reflect first, then turn: +x -> +x -> +y
    assert d4_act_on_embedding((1, 1), img)[0, 2, 4] == 1.0


def test_escnn_element_mapping():
    """escnn's field transforms, for element ((f, k), "int") at axis 0, are exactly our actions."""
    enn = import_escnn().nn
    gs = d4_gspace()
    group = gs.fibergroup
    scalar = enn.FieldType(gs, 3 * [gs.trivial_repr])
    regular = enn.FieldType(gs, 4 * [gs.regular_repr])
    x = torch.randn(2, 3, 7, 7)
    z = torch.randn(2, 32, 1, 1)
    for g in D4_ELEMENTS:
        e = escnn_element(g)
        assert torch.equal(enn.GeometricTensor(x, scalar).transform(e).tensor, d4_act_on_embedding(g, x))
        want = d4_act_on_latent(g, z[..., 0, 0])
        got = enn.GeometricTensor(z, regular).transform(e).tensor[..., 0, 0]
        assert torch.allclose(got, want, atol=1e-6)
        assert group.irrep(1, 0)(e)[0, 0] == (-1 if g[0] else 1)
        for h in D4_ELEMENTS:  # the mapping is a group isomorphism
            assert e @ escnn_element(h) == escnn_element(d4_compose(g, h))
    # and our element order is escnn's, which fixes the basis of a regular field
    assert [tuple(e.to("int")) for e in group.elements] == list(D4_ELEMENTS)


def test_regular_permutations_match_escnn():
    """``sen_rl.groups`` derives the regular representation from ``d4_compose``; escnn's, entry by entry."""
    rep = d4_gspace().regular_repr
    perms = d4_regular_permutations()
    assert perms.shape == (8, 8)
    for i, g in enumerate(D4_ELEMENTS):
        ours = np.zeros((8, 8))
        ours[np.arange(8), perms[i]] = 1.0  # (rho(g) x)[a] = x[perm[a]]
        np.testing.assert_allclose(rep(escnn_element(g)), ours, rtol=0, atol=1e-9, err_msg=str(g))


def test_act_on_latent_is_a_representation():
    z = torch.randn(5, 32, dtype=torch.float64)
    for g1 in D4_ELEMENTS:
        for g2 in D4_ELEMENTS:
            lhs = d4_act_on_latent(g1, d4_act_on_latent(g2, z))
            assert torch.equal(lhs, d4_act_on_latent(d4_compose(g1, g2), z))
    assert torch.equal(d4_act_on_latent((0, 0), z), z)
    # permutes numbers inside each of the 4 fields only
    zf = torch.arange(32.0).view(1, 32)
    for g in D4_ELEMENTS:
        out = d4_act_on_latent(g, zf).view(4, 8)
        assert all(set(out[i].tolist()) == set(range(8 * i, 8 * i + 8)) for i in range(4))


def test_torch_action_matches_the_env_symmetry():
    """The torch form the networks are tested with is the env's ``symmetry.act_on_action``."""
    sym = reacher_symmetry()  # what ReacherEnv.symmetry is
    a = np.random.default_rng(0).uniform(-1, 1, (6, 2)).astype(np.float32)
    for g in D4_ELEMENTS:
        got = d4_act_on_action(g, torch.from_numpy(a))
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), sym.act_on_action(g, a))
        assert torch.equal(sym.act_on_action(g, torch.from_numpy(a)), got)  # the env's symmetry takes tensors too


def test_domain_table_declares_the_d4_rules_these_nets_are_tested_with():
    d = domain_of("SEN-Reacher-v0")
    assert d.act_on_embedding is d4_act_on_embedding and d.act_on_latent is d4_act_on_latent


def test_act_on_embedding_is_a_representation():
    v = torch.randn(2, 8, 6, 6)
    for g1 in D4_ELEMENTS:
        for g2 in D4_ELEMENTS:
            lhs = d4_act_on_embedding(g1, d4_act_on_embedding(g2, v))
            assert torch.equal(lhs, d4_act_on_embedding(d4_compose(g1, g2), v))


# --------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("variant", ["sen", "full"])
def test_encoder_equivariant(built64, variant):
    enc = built64[variant].encoder
    _, v, _, _ = _batch()
    with torch.no_grad():
        z = enc(v)
        assert z.abs().max() > 0
        for g in D4_ELEMENTS:
            err = rel_err(enc(d4_act_on_embedding(g, v)), d4_act_on_latent(g, z))
            assert err < 1e-4, (g, err)


@pytest.mark.parametrize("variant", ["sen", "full"])
def test_transition_equivariant(built64, variant):
    trans = built64[variant].transition
    _, _, z, a = _batch()
    with torch.no_grad():
        dz = trans(z, a)
        for g in D4_ELEMENTS:
            got = trans(d4_act_on_latent(g, z), d4_act_on_action(g, a))
            err = rel_err(got, d4_act_on_latent(g, dz))
            assert err < 1e-4, (g, err)


def test_full_pipeline_equivariant_on_pixels(built64):
    nets = built64["full"]
    x, _, _, _ = _batch()
    with torch.no_grad():
        v = nets.embedding(x)
        z = nets.encoder(v)
        for g in D4_ELEMENTS:
            vg = nets.embedding(d4_act_on_embedding(g, x))
            assert rel_err(vg, d4_act_on_embedding(g, v)) < 1e-4, g
            assert rel_err(nets.encoder(vg), d4_act_on_latent(g, z)) < 1e-4, g


def test_none_is_not_equivariant(built64):
    nets = built64["none"]
    _, v, z, a = _batch()
    with torch.no_grad():
        zv, dz = nets.encoder(v), nets.transition(z, a)
        enc_err = [rel_err(nets.encoder(d4_act_on_embedding(g, v)), d4_act_on_latent(g, zv)) for g in D4_ELEMENTS[1:]]
        trans_err = [
            rel_err(nets.transition(d4_act_on_latent(g, z), d4_act_on_action(g, a)), d4_act_on_latent(g, dz))
            for g in D4_ELEMENTS[1:]
        ]
    assert min(enc_err) > 1e-2 and min(trans_err) > 1e-2


def test_large_dilation_stays_exact():
    """escnn's default basis at dilation 16 is numerically broken; ours is exact."""
    enn = import_escnn().nn
    gs = d4_gspace()
    t = enn.FieldType(gs, [gs.regular_repr])
    conv = r2conv(t, t, 3, padding=16, dilation=16, **dilated_basis(16)).double().eval()
    x = torch.randn(2, 8, 34, 34, dtype=torch.float64)
    with torch.no_grad():
        y = conv(enn.GeometricTensor(x, t))
        for g in D4_ELEMENTS:
            e = escnn_element(g)
            got = conv(enn.GeometricTensor(x, t).transform(e)).tensor
            assert rel_err(got, y.transform(e).tensor) < 1e-5, g


def test_sampling_grids():
    assert reacher.is_centred(16, 4, 2, 1) and reacher.is_centred(15, 3, 2, 1)
    assert reacher.is_centred(16, 2, 2, 0) and reacher.is_centred(32, 3, 1, 8, 8)
    assert not reacher.is_centred(16, 3, 2, 1)  # the authors' stride-2 conv on an even map
    for n in range(1, 70):
        assert reacher.is_centred(n, *reacher.down_conv(n))
        if n > 1:
            assert reacher.is_centred(n, *reacher.down_pool(n))


def test_he_variances_match_escnn(built):
    enn = import_escnn().nn  # escnn's own import would warn about py3nj
    from escnn.nn.init import _generalized_he_init_variances

    layers = [
        m
        for v in ("sen", "full")
        for net in (built[v].embedding, built[v].encoder, built[v].transition)
        for m in net.modules()
        if isinstance(m, enn.R2Conv | enn.Linear)
    ]
    assert len(layers) > 10
    for m in layers:
        assert torch.equal(he_variances(m.basisexpansion), _generalized_he_init_variances(m.basisexpansion))


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_equal(built, variant):
    nets = built[variant]
    x, _, _, a = _batch(torch.float32)
    exported = [export_module(m) for m in (nets.embedding, nets.encoder, nets.transition)]
    for m in exported:
        escnn_left = [type(s).__module__ for s in m.modules() if type(s).__module__.startswith("escnn")]
        assert not escnn_left, escnn_left
    with torch.no_grad():
        v, ve = nets.embedding(x), exported[0](x)
        z, ze = nets.encoder(v), exported[1](v)
        dz, dze = nets.transition(z, a), exported[2](z, a)
    for want, got in ((v, ve), (z, ze), (dz, dze)):
        assert float((want - got).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


def test_models_share_no_escnn_buffers():
    """escnn shares basis buffers between equal layers of all models; each of ours owns its copy."""
    torch.manual_seed(5)
    a, b = (reacher.build("sen", "smoke", OBS, ACT) for _ in range(2))
    a.encoder.double()  # would turn b's shared basis buffers to float64 too
    _, v, _, _ = _batch(torch.float32)
    with torch.no_grad():
        assert b.encoder(v).dtype == torch.float32
    ptrs = {t.data_ptr() for t in a.encoder.buffers() if t.numel()}
    assert not ptrs & {t.data_ptr() for t in b.encoder.buffers() if t.numel()}


def test_escnn_label_indexing_patch_gives_escnn_s_result():
    """The linear-time indexes_from_labels returns exactly what escnn's own computes."""
    escnn = import_escnn()
    from escnn.nn.modules import utils

    gs = d4_gspace()
    reps = [gs.regular_repr] * 5 + [gs.trivial_repr] * 3 + [gs.regular_repr] * 2
    ftype = escnn.nn.FieldType(gs, reps)
    for labels in (["regular"] * 5 + ["trivial"] * 3 + ["regular"] * 2, [r.name for r in reps], list("abcdefghij")):
        assert utils.indexes_from_labels(ftype, labels) == utils.indexes_from_labels.escnn_original(ftype, labels)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # escnn hands np.matrix to the SVD
def test_escnn_solves_kernel_bases_without_scikit_learn(monkeypatch):
    """With scikit-learn importable, escnn would solve kernel constraints with its unseeded
    randomized SVD, which recent releases refuse (np.matrix) and which makes a layer's basis, so
    a checkpoint's weights, depend on the draw. import_escnn switches it back to scipy's SVD."""
    escnn = import_escnn()
    from escnn.group import _numerical

    from sen_rl.nets.escnn_utils import _deterministic_null_spaces

    def refusing_svd(*args, **kwargs):  # what recent scikit-learn does with escnn's np.matrix
        raise TypeError("np.matrix is not supported")

    monkeypatch.setattr(_numerical, "randomized_svd", refusing_svd)
    rng = np.random.default_rng(0)
    a = np.asmatrix(rng.normal(size=(5, 2)) @ rng.normal(size=(2, 3)))  # rank 2: a 1-dim kernel
    with pytest.raises(TypeError):
        _numerical.null(a, use_sparse=False)
    _deterministic_null_spaces(escnn)
    basis = _numerical.null(a, use_sparse=False)
    assert basis.shape == (3, 1)
    np.testing.assert_allclose(np.asarray(a) @ basis, 0, atol=1e-12)
    np.testing.assert_array_equal(basis, _numerical.null(a, use_sparse=False))  # the same basis every time


def test_widths_override_the_preset_and_stay_equivariant():
    torch.manual_seed(0)
    nets = reacher.build("sen", "smoke", OBS, ACT, enc_fields=6, sen_channels=4)
    assert nets.info["sizes"]["enc_fields"] == 6 and nets.info["sizes"]["sen_channels"] == 4
    assert nets.embedding.net[0].out_channels == 4  # the plain SEN's width
    wide = sum(p.numel() for p in nets.encoder.parameters())
    base = sum(p.numel() for p in reacher.build("sen", "smoke", OBS, ACT).encoder.parameters())
    assert wide > base  # 6 regular fields against the preset's 4
    enc = eval_nets(nets, torch.float64).encoder
    _, v, _, _ = _batch()
    with torch.no_grad():
        z = enc(v)
        for g in D4_ELEMENTS:
            assert rel_err(enc(d4_act_on_embedding(g, v)), d4_act_on_latent(g, z)) < 1e-4, g


def test_plain_widths_override_the_none_networks():
    nets = reacher.build("none", "smoke", OBS, ACT, plain_enc_channels=24, plain_trans_hidden=40)
    assert nets.info["sizes"]["plain_enc_channels"] == 24 and nets.info["sizes"]["plain_trans_hidden"] == 40
    convs = [m for m in nets.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.out_channels == 24 for c in convs[:-1]) and convs[-1].out_channels == 32  # the latent stays 32
    assert nets.transition.net[0].out_features == 40 and nets.transition.net[-1].out_features == 32
    _, v, _, _ = _batch()
    with torch.no_grad():
        assert eval_nets(nets, torch.float64).encoder(v).shape == (v.shape[0], 32)


def test_full_fields_widen_the_equivariant_sen_and_keep_it_equivariant():
    torch.manual_seed(0)
    nets = eval_nets(reacher.build("full", "smoke", OBS, ACT, full_fields=3), torch.float64)
    assert nets.info["sizes"]["full_fields"] == 3
    base = sum(p.numel() for p in reacher.build("full", "smoke", OBS, ACT).embedding.parameters())
    assert sum(p.numel() for p in nets.embedding.parameters()) > base  # 3 regular fields against the preset's 2
    x, _, _, _ = _batch()
    with torch.no_grad():
        v = nets.embedding(x)
        for g in D4_ELEMENTS:
            assert rel_err(nets.embedding(d4_act_on_embedding(g, x)), d4_act_on_embedding(g, v)) < 1e-4, g


@pytest.mark.parametrize(
    "kwargs",
    [{"enc_field": 8}, {"enc_fields": 0}, {"sen_channels": 2.5}, {"trans_fields": True}, {"plain_trans_hidden": -1}],
)
def test_widths_refuse_unknown_keys_and_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        reacher.build("sen", "smoke", OBS, ACT, **kwargs)


@pytest.mark.parametrize("part", ["encoder", "transition"])
def test_plain_parts_swap_one_equivariant_network_for_the_plain_one(part):
    """sen with one plain network: that network is none's (not equivariant), the other stays equivariant."""
    torch.manual_seed(0)
    nets = eval_nets(reacher.build("sen", "smoke", OBS, ACT, plain_parts=[part]), torch.float64)
    plain = {"encoder": reacher.PlainEncoder, "transition": reacher.PlainTransition}
    kept = "transition" if part == "encoder" else "encoder"
    assert isinstance(getattr(nets, part), plain[part]) and not isinstance(getattr(nets, kept), plain[kept])
    assert nets.equivariant == {"embedding": False, part: False, kept: True}
    assert nets.info["plain_parts"] == [part]
    _, v, z, a = _batch()
    with torch.no_grad():
        enc = [
            rel_err(nets.encoder(d4_act_on_embedding(g, v)), d4_act_on_latent(g, nets.encoder(v))) for g in D4_ELEMENTS
        ]
        dz = nets.transition(z, a)
        trans = [
            rel_err(nets.transition(d4_act_on_latent(g, z), d4_act_on_action(g, a)), d4_act_on_latent(g, dz))
            for g in D4_ELEMENTS
        ]
    swapped, exact = (enc, trans) if part == "encoder" else (trans, enc)
    assert max(exact) < 1e-4 and min(swapped[1:]) > 1e-2


@pytest.mark.parametrize(
    ("variant", "parts", "match"),
    [
        ("none", ["encoder"], "variant 'none' has none to swap"),
        ("sen", ["embedding"], "plain part"),
        ("sen", "encoder", "a list of network names"),
    ],
)
def test_plain_parts_refuse_what_they_cannot_swap(variant, parts, match):
    with pytest.raises(ValueError, match=match):
        reacher.build(variant, "smoke", OBS, ACT, plain_parts=parts)
