"""SEN-Custom-v0 (envs/custom.py) on the worked example InvertedPendulum-v5 with its declared mirror."""

import importlib.resources

import gymnasium as gym
import numpy as np
import pytest

import sen_rl  # noqa: F401  (registers SEN-Custom-v0)
from sen_rl.data import CollectConfig, RolloutDataset, collect
from sen_rl.domains import CUSTOM, domain_of

SYMMETRY = "sen_rl.example_symmetries:INVERTED_PENDULUM"
MIRROR = (1, 2)  # the D1 mirror, left <-> right


def _make(**kwargs) -> gym.Env:
    return gym.make(CUSTOM.env_id, **{"env": "InvertedPendulum-v5", "symmetry": SYMMETRY, **kwargs})


@pytest.fixture(scope="module")
def env():
    e = _make(frames=2)
    e.reset(seed=0)
    yield e
    e.close()


def _commute_errors(env: gym.Env, n: int = 12) -> tuple[float, float]:
    """Largest |step(g s, g a) - g step(s, a)| over random states, and the typical size of a step."""
    u, sym = env.unwrapped, env.unwrapped.symmetry
    rng = np.random.default_rng(0)
    errs, moves = [], []
    for _ in range(n):
        s = rng.uniform([-0.8, -1, -2, -2], [0.8, 1, 2, 2])[None]  # (x, angle, x', angle'), one frame
        a = rng.uniform(-3, 3, (1,)).astype(np.float32)
        u.set_state(s)
        s1 = env.step(a)[4]["state"]
        u.set_state(sym.act_on_state(MIRROR, s))
        s2 = env.step(sym.act_on_action(MIRROR, a))[4]["state"]
        errs.append(np.abs(s2 - sym.act_on_state(MIRROR, s1)).max())
        moves.append(np.abs(s1 - s).max())
    return float(max(errs)), float(np.median(moves))


def test_the_dynamics_commute_with_the_declared_mirror(tmp_path):
    """step(g s, g a) = g step(s, a): exactly for a mirror-symmetric pole, to 1% for the stock model.

    Gymnasium's inverted_pendulum.xml draws the pole from (0, 0, 0) to (0.001, 0, 0.6): its tip
    sits 1 mm off the hinge's axis, which is the whole error (removing the millimetre gives 0).
    """
    stock = _make()
    stock.reset(seed=0)
    err, move = _commute_errors(stock)
    stock.close()
    assert err < 0.01 * move and err > 0, (err, move)
    xml = importlib.resources.files("gymnasium") / "envs" / "mujoco" / "assets" / "inverted_pendulum.xml"
    text = xml.read_text()
    assert 'fromto="0 0 0 0.001 0 0.6"' in text
    path = tmp_path / "symmetric_pendulum.xml"
    path.write_text(text.replace('fromto="0 0 0 0.001 0 0.6"', 'fromto="0 0 0 0 0 0.6"'))
    exact = _make(env_kwargs={"xml_file": str(path)})
    exact.reset(seed=0)
    err, move = _commute_errors(exact)
    exact.close()
    assert err < 1e-9 < move


def test_observations_are_the_renders_and_the_mirror_flips_the_picture(env):
    u = env.unwrapped
    assert env.observation_space.shape == (64, 64, 6) and env.action_space.shape == (1,)
    obs, info = env.reset(seed=3, options={"warmup": 5})
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not (terminated or truncated)  # collection mode keeps simulating
    state = info["state"]
    assert state.shape == (2, 4)
    twins = u.render_twins()
    assert np.array_equal(twins[0], obs)  # the identity's twin is the observation itself
    assert np.array_equal(u.render_state(state), obs)
    assert np.array_equal(obs[..., :3], u.render_state(state[[0, 0]])[..., :3])  # oldest frame first
    # the camera sits on the mirror's plane: the mirrored world is the left-right flipped picture,
    # up to rasterisation and shading at edges (measured about 2% of the pixels)
    assert np.mean(twins[1] != obs[:, ::-1]) < 0.05
    tilted = np.array([[0.5, 0.4, 0.0, 0.0], [0.5, 0.4, 0.0, 0.0]])  # far from its own mirror image
    picture, mirrored = u.render_state(tilted), u.render_state(u.symmetry.act_on_state(MIRROR, tilted))
    assert np.mean(mirrored != picture[:, ::-1]) < 0.05 < 2 * np.mean(mirrored != picture)


def test_state_resets_and_terminations(env):
    s = np.array([[0.1, 0.05, 0.0, 0.0], [0.2, 0.1, 1.0, 0.5]])
    obs, info = env.reset(seed=0, options={"state": s})
    np.testing.assert_allclose(info["state"], s)
    assert np.array_equal(obs, env.unwrapped.render_state(s))
    with pytest.raises(ValueError, match=r"\[frames, D\] = \(2, 4\)"):
        env.unwrapped.set_state(np.zeros(4))
    agent = _make(terminate=True)
    agent.reset(seed=0, options={"state": np.array([[0.0, 0.3, 0.0, 0.0]])})  # past the 0.2 rad limit
    assert agent.step(np.zeros(1, np.float32))[2] is True
    agent.close()


def test_bad_keywords_are_refused_clearly():
    with pytest.raises(ValueError, match="module.path:NAME"):
        _make(symmetry="nope")
    with pytest.raises(ValueError, match="needs OpenCV|size must be"):
        gym.make(CUSTOM.env_id, env="InvertedPendulum-v5", symmetry=SYMMETRY, size=4)
    assert domain_of(CUSTOM.env_id) is CUSTOM


def test_collect_with_a_symmetry_path_gives_a_custom_dataset(tmp_path):
    cfg = CollectConfig(
        "InvertedPendulum-v5", 3, 2, symmetry=SYMMETRY, twins=True, env_kwargs={"size": 64}, vectorization="sync"
    )
    out = collect(cfg, tmp_path / "pendulum.h5", progress=False)
    with RolloutDataset(out) as ds:
        assert ds.env_id == CUSTOM.env_id
        assert ds.env_kwargs == {"env": "InvertedPendulum-v5", "symmetry": SYMMETRY, "size": 64}
        assert ds.obs.shape == (3, 3, 64, 64, 3) and ds.twin_obs.shape == (3, 3, 2, 64, 64, 3)
        np.testing.assert_allclose(ds.twin_actions[:, :, 1], -ds.actions[()])
        np.testing.assert_array_equal(ds.twin_obs[:, :, 0], ds.obs[()])
    with pytest.raises(ValueError, match="pass --symmetry module:NAME"):
        CollectConfig("InvertedPendulum-v5", 1, 1).validate()
