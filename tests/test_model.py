"""The world model of every domain and variant: loss, save/load, export, equivariance via the public API."""

import os
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import sen_rl
from sen_rl.model import build_model, load_model, read_checkpoint

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
    z = model.encode(np.zeros((50, 50, 3), np.uint8))  # a single observation gives a single latent
    assert z.shape == model.latent_shape
    rollout = model.rollout(model.encode(np.zeros((2, 50, 50, 3), np.uint8)), np.array([[0, 1, 2], [3, 4, 5]]))
    assert rollout.shape == (2, 3, *model.latent_shape)
    env = gym.make("SEN-Shapes-v0")
    assert model.symmetry.elements == env.unwrapped.symmetry.elements


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_single_and_batched_inputs_follow_one_rule(models, case):
    """One sample in, one out (no batch axis); a batch in, the same numbers per sample out."""
    model = models[case].eval()
    obs, act = _batch(model, n=3)
    k_act = np.stack([act, act[::-1]], axis=1)  # [B, K=2, ...]
    with torch.no_grad():
        z = model.encode(obs)
        assert z.shape == (3, *model.latent_shape) and model.latent_space.shape == model.latent_shape
        assert model.latent_space.dtype == np.float32
        pred, traj = model.predict(z, act), model.rollout(z, k_act)
        assert traj.shape == (3, 2, *model.latent_shape)
        for i in range(3):
            zi = model.encode(obs[i])
            assert zi.shape == model.latent_shape
            torch.testing.assert_close(zi, z[i], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(model.predict(zi, act[i]), pred[i], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(model.rollout(zi, k_act[i]), traj[i], rtol=1e-5, atol=1e-6)
        # numpy latents are accepted as well as tensors
        torch.testing.assert_close(model.predict(z.numpy(), act), pred)
    with pytest.raises(ValueError, match="shape"):
        model.predict(z, act[:2])  # one action short


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[6]], ids=lambda c: "-".join(c))
def test_sb3_layout_is_explicit_and_matches_the_env_layout(models, case):
    """SB3 hands a features extractor float channels-first pixels in [0, 1]: the same latent."""
    model = models[case].eval()
    obs, _ = _batch(model, n=2)
    chw = torch.as_tensor(obs).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        # the same numbers up to float round-off (the two layouts reach the convolutions in other memory orders)
        torch.testing.assert_close(model.encode(chw, obs_format="sb3"), model.encode(obs), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.encode(chw[0], obs_format="sb3"), model.encode(obs[0]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="obs_format='sb3'"):
        model.encode(chw)  # floats are never taken for env frames
    with pytest.raises(ValueError, match="floats"):
        model.encode(torch.as_tensor(obs).permute(0, 3, 1, 2).contiguous(), obs_format="sb3")
    with pytest.raises(ValueError, match="obs_format"):
        model.encode(obs, obs_format="chw")


def test_model_makes_the_env_it_was_trained_on():
    model = build_model("SEN-Reacher-v0", "sen", "smoke")  # the smoke and cpu presets read 64x64 frames
    env = model.make_env()
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == model.obs_shape == (64, 64, 6)
        assert model.encode(obs).shape == model.latent_shape
    finally:
        env.close()
    assert model.make_env(goal=None).unwrapped.goal is None


def test_crafted_pickle_in_a_checkpoint_does_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    torch.save({"format": "sen-rl-checkpoint", "config": {}, "model_state": {}, "x": Payload()}, bad)
    with pytest.raises(ValueError, match="other than tensors and plain data"):
        load_model(bad)
    assert not marker.exists()


OLD = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["shapes", "teapot", "reacher"])
def test_checkpoints_of_version_0_1_0_still_load(name):
    """Tiny checkpoints written by sen-rl 0.1.0, with the outputs that version computed."""
    ref = np.load(OLD / "v0_1_0_reference.npz")
    for export in (False, True):
        model = load_model(OLD / f"v0_1_0_{name}_sen_smoke.pt", export=export)
        with torch.no_grad():
            z = model.encode(ref[f"{name}_obs"])
            z_next = model.predict(z, ref[f"{name}_action"])
        # float round-off only: the networks are the same, some ops now run in another order
        np.testing.assert_allclose(z.numpy(), ref[f"{name}_z"][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(z_next.numpy(), ref[f"{name}_z_next"][0], rtol=1e-5, atol=1e-6)
        assert not export or not any(type(m).__module__.startswith("escnn") for m in model.modules())


def test_checkpoints_leave_out_escnn_s_expanded_filters(models, tmp_path):
    """A checkpoint holds the weights, not the filters escnn derives from them in eval mode
    (92% of a paper-size Reacher checkpoint); loading rebuilds those exactly."""
    model = models[("SEN-Reacher-v0", "sen")].eval()
    derived = set(model.state_dict()) - set(model.train().state_dict())
    assert derived  # escnn's eval-mode buffers exist, so something is left out
    model.eval()
    path = model.save(tmp_path / "m.pt")
    saved = torch.load(path, weights_only=True)["model_state"]
    assert not derived & set(saved)
    loaded = load_model(path)
    for key in derived:
        torch.testing.assert_close(loaded.state_dict()[key], model.state_dict()[key], rtol=0, atol=0)


def test_a_state_with_unknown_entries_is_refused(models, tmp_path):
    model = models[("SEN-Shapes-v0", "sen")]
    path = model.save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["model_state"]["encoder.not_a_layer.weight"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(ValueError, match="not_a_layer"):
        load_model(path)


def test_numpy_arrays_in_checkpoints_load_whichever_numpy_wrote_them():
    """A pickled ndarray names its builder by the writing numpy's module: ``numpy.core`` (1.x, the
    v0.1.0 fixtures) or ``numpy._core`` (2.x: ``numpy2_rng_state.pt``, written by numpy 2.4.6 with a
    legacy RNG state inside). Both load."""
    import pickletools

    names = {}
    for path in (OLD / "v0_1_0_shapes_sen_smoke.pt", OLD / "numpy2_rng_state.pt"):
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        names[path.name] = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL" and "numpy" in arg}
        read_checkpoint(path)  # no refusal
    assert "numpy.core.multiarray _reconstruct" in names["v0_1_0_shapes_sen_smoke.pt"]
    assert "numpy._core.multiarray _reconstruct" in names["numpy2_rng_state.pt"]
    state = read_checkpoint(OLD / "numpy2_rng_state.pt")["rng"]["numpy"]
    assert state[0] == "MT19937" and np.array_equal(state[1], np.random.RandomState(0).get_state()[1])
