"""The world model of every domain and variant: loss, save/load, export, equivariance via the public API."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import sen_rl
from sen_rl.model import build_model, load_model

CASES = [
    ("SEN-Shapes-v0", "sen"),
    ("SEN-Shapes-v0", "none"),
    ("SEN-Shapes-v0", "full"),
    ("SEN-Cubes-v0", "sen"),
    ("SEN-Teapot-v0", "sen"),
    ("SEN-Teapot-v0", "none"),
    ("SEN-Reacher-v0", "sen"),
    ("SEN-Reacher-v0", "none"),
    ("SEN-Reacher-v0", "full"),
]


def _batch(model, n=6, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 256, size=(n, *model.obs_shape), dtype=np.uint8)
    space = model.action_space
    space.seed(seed)
    act = np.stack([space.sample() for _ in range(n)])
    return obs, act


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {case: build_model(case[0], case[1], "smoke") for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_loss_trains_and_checkpoint_round_trips(models, case, tmp_path):
    model = models[case]
    obs, act = _batch(model)
    nxt, _ = _batch(model, seed=1)
    model.train()
    parts = model.loss(obs, act, nxt, generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in parts.values())
    parts["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.zero_grad()

    model.eval()
    path = model.save(tmp_path / "m.pt")
    loaded = load_model(path)
    with torch.no_grad():
        z, z2 = model.encode(obs), loaded.encode(obs)
        torch.testing.assert_close(z, z2, rtol=0, atol=0)
        torch.testing.assert_close(model.predict(z, act), loaded.predict(z2, act), rtol=0, atol=0)
        exported = model.export()
        ze = exported.encode(obs)
        assert (ze - z).abs().max() <= 1e-5 * max(1.0, z.abs().max())
        pe, p = exported.predict(ze, act), model.predict(z, act)
        assert (pe - p).abs().max() <= 1e-5 * max(1.0, p.abs().max())
    assert not any(type(m).__module__.startswith("escnn") for m in exported.modules())


@pytest.mark.parametrize("case", [c for c in CASES if c[1] != "none"], ids=lambda c: "-".join(c))
def test_transition_equivariant_for_every_element(models, case):
    """predict(rho_Z(g) z, rho_A(g) a) == rho_Z(g) predict(z, a), with the env's own rho_A."""
    model = models[case].eval()
    obs, act = _batch(model, n=8)
    sym = model.symmetry
    with torch.no_grad():
        z = model.encode(obs).double()
        model.double()
        try:
            pred = model.predict(z, act)
            for g in sym.elements:
                g_act = np.stack([np.asarray(sym.act_on_action(g, a)) for a in act])
                lhs = model.predict(sym.act_on_latent(g, z), g_act)
                rhs = sym.act_on_latent(g, pred)
                err = (lhs - rhs).norm() / rhs.norm()
                assert err < 1e-4, (g, float(err))
        finally:
            model.float()


def test_public_api_and_errors(models):
    assert sen_rl.build_model is build_model and sen_rl.load_model is load_model
    with pytest.raises(ValueError, match="variant"):
        build_model("SEN-Shapes-v0", "equivariant", "smoke")
    with pytest.raises(ValueError, match="preset"):
        build_model("SEN-Shapes-v0", "sen", "huge")
    with pytest.raises(ValueError, match="no world model"):
        build_model("CartPole-v1")
    with pytest.raises(ValueError, match="full"):
        build_model("SEN-Teapot-v0", "full", "smoke")
    model = models[("SEN-Shapes-v0", "sen")]
    z = model.encode(np.zeros((50, 50, 3), np.uint8))  # a single observation gets a batch axis
    assert z.shape[0] == 1
    rollout = model.rollout(model.encode(np.zeros((2, 50, 50, 3), np.uint8)), np.array([[0, 1, 2], [3, 4, 5]]))
    assert rollout.shape == (2, 3, *z.shape[1:])
    env = gym.make("SEN-Shapes-v0")
    assert model.symmetry.elements == env.unwrapped.symmetry.elements
