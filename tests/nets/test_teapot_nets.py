"""Teapot networks: Gram-Schmidt, the MatMul transition's exact equivariance, group actions, build."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sen_rl.domains import domain_of
from sen_rl.groups import (
    TEAPOT_SMALL_ANGLE,
    TEAPOT_SMALL_AXES,
    TEAPOT_SMALL_ROTATIONS,
    axis_angle_to_matrix,
    octahedral_group,
    random_rotation,
    so3_act_on_matrix,
    teapot_act_on_large_action,
    teapot_act_on_small_action,
    teapot_symmetry,
)
from sen_rl.nets.base import export_module, to_float_image
from sen_rl.nets.teapot import MatMulTransition, build, gram_schmidt

OBS = gym.spaces.Box(0, 255, (64, 64, 1), np.uint8)
SMALL = gym.spaces.Discrete(6)
LARGE = gym.spaces.Box(-np.pi, np.pi, (3,), np.float32)
GROUP = octahedral_group()


def assert_rotation(z: torch.Tensor, atol: float):
    assert torch.isfinite(z).all()
    eye = torch.eye(3, dtype=z.dtype).expand(z.shape)
    torch.testing.assert_close(z @ z.transpose(-1, -2), eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(z), torch.ones(z.shape[:-2], dtype=z.dtype), atol=atol, rtol=0)


def rel_err(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x - y).norm() / y.norm())


def random_latents(n: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.as_tensor(np.stack([random_rotation(rng) for _ in range(n)]))


# --------------------------------------------------------------------------- Gram-Schmidt


def degenerate_pairs(dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(64, 3, generator=g, dtype=dtype)
    v = torch.randn(64, 3, generator=g, dtype=dtype)
    cases_u = [u, u, u, u, u * 1e-12, torch.zeros_like(u), u, torch.zeros_like(u), u * 1e6, u]
    cases_v = [
        v,
        u.clone(),  # parallel
        -3 * u,  # antiparallel
        u + 1e-9 * v,  # nearly parallel
        v,  # tiny u
        v,  # zero u
        torch.zeros_like(v),  # zero v
        torch.zeros_like(v),  # both zero
        v * 1e-6,  # wildly different scales
        u + 1e-3 * v,  # close but fine
    ]
    return torch.cat(cases_u), torch.cat(cases_v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_schmidt_is_a_rotation_even_when_degenerate(dtype):
    u, v = degenerate_pairs(dtype)
    z = gram_schmidt(u, v)
    assert z.shape == (u.shape[0], 3, 3)
    assert_rotation(z, atol=1e-5 if dtype == torch.float32 else 1e-12)
    # ordinary inputs: the first column is u / |u|, the second lies in span(u, v) on v's side
    z0 = z[:64]
    torch.testing.assert_close(z0[..., 0], u[:64] / u[:64].norm(dim=-1, keepdim=True))
    assert ((z0[..., 1] * v[:64]).sum(-1) > 0).all()


def test_gram_schmidt_is_equivariant_columns_layout():
    g = torch.Generator().manual_seed(1)
    u = torch.randn(50, 3, generator=g, dtype=torch.float64)
    v = torch.randn(50, 3, generator=g, dtype=torch.float64)
    rng = np.random.default_rng(0)
    for rot in list(GROUP) + [random_rotation(rng) for _ in range(5)]:
        r = torch.as_tensor(rot)
        assert rel_err(gram_schmidt(u @ r.T, v @ r.T), r @ gram_schmidt(u, v)) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_schmidt_gradients_are_finite(dtype):
    u, v = degenerate_pairs(dtype)
    u.requires_grad_(True)
    v.requires_grad_(True)
    w = torch.randn(u.shape[0], 3, 3, dtype=dtype, generator=torch.Generator().manual_seed(2))
    (gram_schmidt(u, v) * w).sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(v.grad).all()
    assert u.grad[:64].abs().sum() > 0 and v.grad[:64].abs().sum() > 0


def test_gram_schmidt_gradcheck():
    g = torch.Generator().manual_seed(3)
    u = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_schmidt, (u, v))


# --------------------------------------------------------------------------- rotations and actions


def test_small_action_matrices_match_groups():
    t = MatMulTransition("small")
    expected = axis_angle_to_matrix(TEAPOT_SMALL_ANGLE * TEAPOT_SMALL_AXES)
    got = t.action_matrix(torch.arange(6), torch.float64).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-15)
    np.testing.assert_array_equal(TEAPOT_SMALL_ROTATIONS, expected)


def test_rodrigues_torch_matches_numpy():
    rng = np.random.default_rng(0)
    vecs = np.concatenate(
        [
            rng.uniform(-np.pi, np.pi, (100, 3)),
            rng.normal(size=(5, 3)) * 1e-5,
            np.zeros((1, 3)),
            [[np.pi, 0, 0]],
        ]
    )
    got = axis_angle_to_matrix(torch.as_tensor(vecs))
    assert got.dtype == torch.float64
    got = got.numpy()
    np.testing.assert_allclose(got, axis_angle_to_matrix(vecs), atol=1e-13)
    got32 = axis_angle_to_matrix(torch.as_tensor(vecs, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got32, axis_angle_to_matrix(vecs), atol=2e-6)
    # differentiable at zero
    v = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(v).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_torch_actions_match_the_env_symmetry():
    """The torch forms the networks are tested with are the env's ``symmetry.act_on_action``."""
    small, large = teapot_symmetry("small"), teapot_symmetry("large")  # what TeapotEnv.symmetry is
    a_small = np.arange(6)
    a_large = np.random.default_rng(0).uniform(-np.pi, np.pi, (20, 3)).astype(np.float32)
    for g in GROUP:
        got_small = teapot_act_on_small_action(g, torch.as_tensor(a_small))
        assert got_small.dtype == torch.int64
        np.testing.assert_array_equal(got_small.numpy(), small.act_on_action(g, a_small))
        got_large = teapot_act_on_large_action(g, torch.as_tensor(a_large))
        assert got_large.dtype == torch.float32
        np.testing.assert_allclose(got_large.numpy(), large.act_on_action(g, a_large), atol=1e-6)
        # the env's symmetry takes tensors too
        assert torch.equal(small.act_on_action(g, torch.as_tensor(a_small)), got_small)
        assert torch.equal(large.act_on_action(g, torch.as_tensor(a_large)), got_large)
    # batched group elements and torch input
    gb = torch.as_tensor(GROUP)
    idx = torch.arange(24) % 6
    expected = [small.act_on_action(GROUP[i], int(idx[i])) for i in range(24)]
    np.testing.assert_array_equal(teapot_act_on_small_action(gb, idx).numpy(), expected)
    with pytest.raises(ValueError, match="cube rotation"):
        teapot_act_on_small_action(random_rotation(np.random.default_rng(1)), torch.arange(6))


def test_so3_act_on_matrix():
    rng = np.random.default_rng(2)
    z = random_latents(4, rng)
    gb = torch.as_tensor(GROUP[:4])
    torch.testing.assert_close(so3_act_on_matrix(gb, z), gb @ z)  # batched elements
    torch.testing.assert_close(so3_act_on_matrix(GROUP[7], z.float()), torch.as_tensor(GROUP[7]).float() @ z.float())
    with pytest.raises(ValueError, match="3, 3"):
        so3_act_on_matrix(GROUP[1], z.reshape(4, 9))
    # numpy in, numpy out: the same rule acts on the env's orientations
    np.testing.assert_array_equal(so3_act_on_matrix(GROUP[7], z.numpy()), GROUP[7] @ z.numpy())


def test_act_on_small_action_is_conjugation():
    t = MatMulTransition("small")
    mats = t.action_matrix(torch.arange(6), torch.float64)
    for g in GROUP:
        gt = torch.as_tensor(g)
        moved = t.action_matrix(teapot_act_on_small_action(g, torch.arange(6)), torch.float64)
        torch.testing.assert_close(moved, gt @ mats @ gt.T, atol=1e-14, rtol=0)


# --------------------------------------------------------------------------- MatMul transition


@pytest.mark.parametrize("mode", ["small", "large"])
def test_matmul_transition_is_exactly_equivariant(mode):
    nets = build("sen", "smoke", OBS, SMALL if mode == "small" else LARGE)
    assert not nets.predicts_delta
    rng = np.random.default_rng(0)
    if mode == "small":
        a = torch.arange(6).repeat(4)
    else:
        a = torch.as_tensor(rng.uniform(-np.pi, np.pi, (24, 3)))
    z = random_latents(a.shape[0], rng)
    t = nets.transition.double()
    base = t(z, a)
    assert_rotation(base, atol=1e-12)
    for g in GROUP:
        act = teapot_act_on_small_action if mode == "small" else teapot_act_on_large_action
        lhs = t(so3_act_on_matrix(g, z), act(g, a))
        rhs = so3_act_on_matrix(g, base)
        assert rel_err(lhs, rhs) < 1e-6
        assert rel_err(lhs, rhs) < 1e-13  # in fact exact to rounding


def test_matmul_transition_steps_like_the_env():
    """T(z, a) = A(a) z, with A the action's rotation, as the env's new_state = A @ state."""
    rng = np.random.default_rng(1)
    z = random_latents(6, rng)
    t = MatMulTransition("small")
    expected = axis_angle_to_matrix(TEAPOT_SMALL_ANGLE * TEAPOT_SMALL_AXES) @ z.numpy()
    np.testing.assert_allclose(t(z, torch.arange(6)).numpy(), expected, atol=1e-14)
    vec = rng.uniform(-np.pi, np.pi, (6, 3))
    t = MatMulTransition("large")
    expected = axis_angle_to_matrix(vec) @ z.numpy()
    np.testing.assert_allclose(t(z, torch.as_tensor(vec)).numpy(), expected, atol=1e-13)
    # float32 latents with float32 actions (what the model feeds)
    out = t(z.float(), torch.as_tensor(vec, dtype=torch.float32))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


# --------------------------------------------------------------------------- build


@pytest.mark.parametrize("variant", ["sen", "none"])
@pytest.mark.parametrize("action_space", [SMALL, LARGE], ids=["small", "large"])
def test_build_shapes_and_export(variant, action_space):
    torch.manual_seed(0)
    nets = build(variant, "smoke", OBS, action_space)
    obs = torch.randint(0, 256, (5, 64, 64, 1), dtype=torch.uint8)
    x = to_float_image(obs)
    if isinstance(action_space, gym.spaces.Discrete):
        a = torch.randint(0, 6, (5,))
    else:
        a = torch.rand(5, 3) * 2 - 1
    v = nets.embedding(x)
    z = nets.encoder(v)
    assert v.shape == z.shape == (5, 3, 3)
    out = nets.transition(z, a)
    assert out.shape == (5, 3, 3)
    assert nets.predicts_delta == (variant == "none")
    assert nets.info["latent_shape"] == (3, 3)
    if variant == "sen":
        assert_rotation(z, atol=1e-5)
        assert_rotation(out, atol=1e-5)
    # the group actions are defined on both variants' spaces
    d = domain_of("SEN-Teapot-v0")
    assert d.act_on_embedding is so3_act_on_matrix and d.act_on_latent is so3_act_on_matrix
    g = GROUP[5]
    torch.testing.assert_close(so3_act_on_matrix(g, v), torch.as_tensor(g, dtype=v.dtype) @ v)
    torch.testing.assert_close(so3_act_on_matrix(g, z), torch.as_tensor(g, dtype=z.dtype) @ z)
    # gradients reach every parameter
    next_z = z + out if nets.predicts_delta else out
    next_z.square().sum().backward()
    params = [p for m in (nets.embedding, nets.encoder, nets.transition) for p in m.parameters()]
    assert params and all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    # export gives identical outputs
    with torch.no_grad():
        emb, enc, tr = (export_module(m) for m in (nets.embedding, nets.encoder, nets.transition))
        for m in (nets.embedding, nets.encoder, nets.transition):
            m.eval()
        torch.testing.assert_close(emb(x), nets.embedding(x), atol=0, rtol=0)
        torch.testing.assert_close(enc(v), nets.encoder(v), atol=0, rtol=0)
        torch.testing.assert_close(tr(z, a), nets.transition(z, a), atol=0, rtol=0)


def test_presets_sizes():
    x = torch.rand(2, 1, 64, 64)
    counts = {}
    for preset in ("smoke", "cpu", "paper"):
        nets = build("sen", preset, OBS, SMALL)
        assert nets.embedding(x).shape == (2, 3, 3)
        counts[preset] = sum(p.numel() for p in nets.embedding.parameters())
    assert counts["smoke"] < counts["cpu"] < counts["paper"]
    # other input sizes work too
    nets = build("none", "smoke", gym.spaces.Box(0, 255, (32, 48, 1), np.uint8), SMALL)
    assert nets.embedding(torch.rand(2, 1, 32, 48)).shape == (2, 3, 3)


def test_none_hidden_widens_only_the_none_transition():
    nets = build("none", "cpu", OBS, LARGE, none_action="matrix", none_hidden=512)
    widths = [m.out_features for m in nets.transition.net if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 512, 9] and nets.info["sizes"]["hidden"] == 512
    base = build("none", "cpu", OBS, LARGE, none_action="matrix")
    # the CNN is the preset's, unchanged
    assert [p.shape for p in nets.embedding.parameters()] == [p.shape for p in base.embedding.parameters()]
    z, a = torch.randn(4, 3, 3), torch.randn(4, 3)
    assert nets.transition(z, a).shape == (4, 3, 3)
    for bad in (0, -3, 2.5, True, "512"):
        with pytest.raises(ValueError, match="none_hidden"):
            build("none", "cpu", OBS, LARGE, none_hidden=bad)


def test_bad_choices_raise():
    with pytest.raises(ValueError, match="no 'full' variant") as err:
        build("full", "smoke", OBS, SMALL)
    assert "sen" in str(err.value) and "none" in str(err.value)
    with pytest.raises(ValueError, match="variant"):
        build("fancy", "smoke", OBS, SMALL)
    with pytest.raises(ValueError, match="preset"):
        build("sen", "huge", OBS, SMALL)
    with pytest.raises(ValueError, match="Discrete"):
        build("sen", "smoke", OBS, gym.spaces.Discrete(4))
    with pytest.raises(ValueError, match="Box"):
        build("sen", "smoke", OBS, gym.spaces.Box(-1, 1, (2,), np.float32))


def test_none_with_a_rotation_latent():
    """``none_latent="rotation"``: the "none" embedding ends in the SEN's Gram-Schmidt head (a
    rotation matrix), its transition stays the unconstrained MLP; anything else is refused."""
    torch.manual_seed(0)
    nets = build("none", "smoke", OBS, LARGE, none_latent="rotation")
    x = to_float_image(torch.randint(0, 256, (4, 64, 64, 1), dtype=torch.uint8))
    z = nets.encoder(nets.embedding(x))
    assert_rotation(z, atol=1e-5)
    assert nets.predicts_delta and not nets.equivariant["transition"]
    plain = build("none", "smoke", OBS, LARGE).embedding(x)
    assert not torch.allclose(plain.transpose(-1, -2) @ plain, torch.eye(3).expand(4, 3, 3), atol=1e-2)
    with pytest.raises(ValueError, match="none_latent"):
        build("none", "smoke", OBS, LARGE, none_latent="sphere")


def _relative_spread(z: torch.Tensor) -> float:
    """Mean distance of the latents from their mean, over their mean norm."""
    z = z.detach().reshape(z.shape[0], -1)
    return float((z - z.mean(0)).norm(dim=1).mean() / z.norm(dim=1).mean())


def test_none_latents_start_apart_with_batch_norm():
    """The "none" embedding's BatchNorm keeps 16 teapot frames' latents apart at initialisation.

    Without it they start within 1% of their mean (0.06-0.6% here), where the hinge's gradient
    vanishes and training sat at a constant latent on every seed; with it they are 20-56% apart.
    """
    env = gym.make("SEN-Teapot-v0", actions="large")
    x = to_float_image(torch.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(16)])))
    env.close()
    for seed in range(5):
        torch.manual_seed(seed)
        assert _relative_spread(build("none", "cpu", OBS, LARGE, none_batch_norm=True).embedding(x)) > 0.1
        torch.manual_seed(seed)
        assert _relative_spread(build("none", "cpu", OBS, LARGE).embedding(x)) < 0.01


@pytest.mark.parametrize("action_space", [SMALL, LARGE], ids=["small", "large"])
def test_none_transition_sees_the_action_as_its_rotation(action_space):
    """With ``none_action="matrix"`` the "none" MLP reads ``A(a)``: two rotation vectors of one
    rotation predict alike, the env's own encoding (the builder's default, ``"vector"``) tells
    them apart; small actions read their rotations too."""
    torch.manual_seed(0)
    nets = build("none", "smoke", OBS, action_space, none_action="matrix")
    vector = build("none", "smoke", OBS, action_space)
    z = torch.randn(2, 3, 3)
    if action_space is SMALL:
        a = torch.tensor([0, 5])
        expected = torch.tensor(np.array(TEAPOT_SMALL_ROTATIONS), dtype=torch.float32)[a].reshape(2, 9)
        assert torch.allclose(nets.transition.encode_action(a, torch.float32), expected)
        assert vector.transition.encode_action(a, torch.float32).shape == (2, 6)
        return
    axis = torch.tensor([0.6, 0.0, 0.8])
    a1 = (1.0 * axis).expand(2, 3)
    a2 = ((1.0 - 2 * np.pi) * axis).expand(2, 3)  # the same rotation, the other way round
    assert torch.allclose(nets.transition(z, a1), nets.transition(z, a2), atol=1e-5)
    assert not torch.allclose(vector.transition(z, a1), vector.transition(z, a2), atol=1e-3)
    with pytest.raises(ValueError, match="none_action"):
        build("none", "smoke", OBS, LARGE, none_action="quaternion")


def test_the_domain_tables_none_is_the_baseline_and_old_checkpoints_load(tmp_path):
    """``build_model`` builds the baseline (BatchNorm, action matrix) and stores its keywords; a
    "none" checkpoint stored without them (written before) rebuilds the networks it was made with."""
    from sen_rl.model import build_model, load_model

    model = build_model("SEN-Teapot-v0", "none", "smoke", env_kwargs={"actions": "large"})
    assert model.config.net_kwargs == {"none_batch_norm": True, "none_action": "matrix", "none_hidden": 512}
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.nets.transition.action_input == "matrix"
    assert model.nets.transition.net[0].out_features == 512

    old = build_model("SEN-Teapot-v0", "none", "smoke", env_kwargs={"actions": "large"}, net_kwargs={})
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in old.modules())
    old.save(tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.nets.transition.action_input == "vector"
    assert loaded.nets.transition.net[0].out_features == 32  # the smoke preset's width, as it was built
    for (name, a), b in zip(old.saved_state().items(), loaded.saved_state().values(), strict=True):
        assert torch.equal(a, b), name
