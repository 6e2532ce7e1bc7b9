"""SEN-Teapot-v0: the mesh, the pictures, SO(3) dynamics, exact equivariance, errors, checkers."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import sen_rl
from sen_rl.envs.teapot import TeapotEnv, orthonormalize, validate_rotation
from sen_rl.envs.teapot_mesh import CONTROL_POINTS, PATCHES, teapot_mesh
from sen_rl.groups import (
    TEAPOT_SMALL_ANGLE,
    TEAPOT_SMALL_AXES,
    TEAPOT_SMALL_ROTATIONS,
    axis_angle_to_matrix,
    octahedral_group,
    random_rotation,
)

MODES = ["small", "large"]


@pytest.fixture(scope="module")
def envs():
    """One unwrapped env per action mode, shared by the module (renderers are slow to open)."""
    out = {mode: gym.make("SEN-Teapot-v0", actions=mode).unwrapped for mode in MODES}
    yield out
    for e in out.values():
        e.close()


def _background(img: np.ndarray) -> np.ndarray:
    return img == img[0, 0]


# --------------------------------------------------------------------------- registration


def test_registered_with_import():
    assert "SEN-Teapot-v0" in sen_rl.ENV_IDS
    env = gym.make("SEN-Teapot-v0")
    assert env.spec.max_episode_steps == 100
    assert isinstance(env.unwrapped, TeapotEnv)
    env.close()


def test_registered_without_prior_import():
    code = (
        "import gymnasium as gym; e = gym.make('sen_rl:SEN-Teapot-v0'); o, i = e.reset(seed=0); "
        "print(o.shape, o.dtype, i['state'].shape); e.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(64, 64, 1) uint8 (3, 3)"


# --------------------------------------------------------------------------- mesh


def test_mesh_is_a_closed_outward_teapot():
    assert CONTROL_POINTS.shape == (306, 3) and PATCHES.shape == (32, 4, 4)
    verts, faces = teapot_mesh(10)
    # centred on its bounding box, farthest vertex at distance 1
    np.testing.assert_allclose(verts.min(axis=0), -verts.max(axis=0), atol=1e-12)
    assert np.linalg.norm(verts, axis=1).max() == pytest.approx(1.0)
    # the classic proportions: spout-to-handle length over height
    extent = verts.max(axis=0) - verts.min(axis=0)
    assert 2.0 < extent[0] / extent[2] < 2.1  # the control hull's ratio is (3.525 + 3) / 3.15 = 2.07
    # no degenerate triangles, consistent winding (no directed edge used twice)
    tri = verts[faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
    assert area.min() > 0
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 1
    # open edges only where the handle and the spout enter the body (inside it)
    undirected, counts = np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)
    open_edges = undirected[counts == 1]
    assert len(open_edges) < 0.01 * len(undirected)
    # outward: the enclosed volume is positive
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert volume > 0.5


# --------------------------------------------------------------------------- spaces and pictures


@pytest.mark.parametrize("mode", MODES)
def test_spaces_and_observation(envs, mode):
    env = envs[mode]
    obs, info = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 1), np.uint8)
    assert obs.shape == (64, 64, 1) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    if mode == "small":
        assert env.action_space == gym.spaces.Discrete(6)
    else:
        assert env.action_space == gym.spaces.Box(-np.pi, np.pi, (3,), np.float32)
    state = info["state"]
    assert state.shape == (3, 3) and state.dtype == np.float64
    np.testing.assert_allclose(state.T @ state, np.eye(3), atol=1e-12)
    assert np.linalg.det(state) == pytest.approx(1.0)
    assert obs.std() > 10  # not a blank frame
    obs2, reward, terminated, truncated, info2 = env.step(env.action_space.sample())
    assert reward == 0.0 and not terminated and not truncated
    assert info2["state"].shape == (3, 3)


def test_teapot_is_framed_and_brighter_than_background(envs):
    env = envs["small"]
    rng = np.random.default_rng(1)
    for _ in range(20):
        img = env.render_state(random_rotation(rng))[..., 0]
        bg = _background(img)
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert np.all(border == img[0, 0])  # never clipped by the frame
        rows, cols = np.where(~bg)
        assert max(rows.ptp(), cols.ptp()) >= 0.45 * 64  # fills a good part of the frame
        assert np.median(img[~bg]) > img[0, 0] + 40


def test_different_orientations_give_different_images(envs):
    env = envs["small"]
    s = random_rotation(np.random.default_rng(2))
    base = env.render_state(s).astype(int)
    for a in range(6):
        moved = env.render_state(TEAPOT_SMALL_ROTATIONS[a] @ s).astype(int)
        assert np.abs(moved - base).mean() > 1.0


def test_octahedral_twins_all_look_different(envs):
    """The teapot has no rotational symmetry: the 24 cube rotations of a pose give 24 pictures."""
    env = envs["small"]
    rng = np.random.default_rng(3)
    for _ in range(2):
        s = random_rotation(rng)
        imgs = np.array([env.render_state(g @ s) for g in octahedral_group()]).astype(int)
        dist = np.abs(imgs[:, None] - imgs[None]).mean(axis=(2, 3, 4))
        dist[np.eye(24, dtype=bool)] = np.inf
        assert dist.min() > 2.0


def test_turns_about_the_centre_and_the_view_axis(envs):
    """Half a turn about the camera's axis (world y) turns the silhouette by 180 degrees in place."""
    env = envs["small"]
    half_turn = axis_angle_to_matrix([0.0, np.pi, 0.0])
    rng = np.random.default_rng(4)
    for _ in range(5):
        s = random_rotation(rng)
        a = ~_background(env.render_state(s)[..., 0])
        b = np.rot90(~_background(env.render_state(half_turn @ s)[..., 0]), 2)
        assert (a & b).sum() / (a | b).sum() > 0.9


def test_render_state_matches_set_state_and_leaves_state(envs):
    env = envs["small"]
    env.reset(seed=5)
    before = env.get_state()
    other = random_rotation(np.random.default_rng(5))
    img = env.render_state(other)
    np.testing.assert_array_equal(env.get_state(), before)
    env.set_state(other)
    np.testing.assert_array_equal(env.get_state(), other)
    np.testing.assert_array_equal(env._observe(), img)
    obs, info = env.reset(options={"state": other})
    np.testing.assert_array_equal(obs, img)
    np.testing.assert_array_equal(info["state"], other)


def test_render_mode_rgb_array():
    env = gym.make("SEN-Teapot-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and np.array_equal(frame[..., 0], obs[..., 0])
    env.close()


def test_custom_size():
    env = gym.make("SEN-Teapot-v0", size=32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 1) and env.observation_space.shape == (32, 32, 1)
    env.close()


# --------------------------------------------------------------------------- dynamics


def test_small_actions_are_twelve_degree_world_turns(envs):
    env = envs["small"]
    env.reset(seed=6)
    for a in range(6):
        s = env.get_state()
        env.step(a)
        rel = env.get_state() @ s.T  # the applied rotation, in the world frame (a z)
        np.testing.assert_allclose(rel @ TEAPOT_SMALL_AXES[a], TEAPOT_SMALL_AXES[a], atol=1e-12)
        assert np.arccos((np.trace(rel) - 1) / 2) == pytest.approx(TEAPOT_SMALL_ANGLE)
        # right-handed: +x turns y towards z
        axis = TEAPOT_SMALL_AXES[a]
        perp = np.roll(np.abs(axis), 1)
        assert np.dot(np.cross(axis, perp), rel @ perp) > 0
    # 30 steps of 12 degrees about one axis make a full turn
    s = env.get_state()
    for _ in range(30):
        env.step(4)
    np.testing.assert_allclose(env.get_state(), s, atol=1e-10)


def test_large_actions_are_rotation_vectors(envs):
    env = envs["large"]
    env.reset(seed=7)
    s = env.get_state()
    a = np.array([0.3, -1.2, 2.5], dtype=np.float32)
    env.step(a)
    np.testing.assert_allclose(env.get_state(), axis_angle_to_matrix(a.astype(np.float64)) @ s, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_dynamics_equivariant_for_every_element(envs, mode):
    """step(g s, g a) == g step(s, a) for all 24 cube rotations."""
    env = envs[mode]
    sym = env.symmetry
    assert len(sym.elements) == 24
    env.reset(seed=8)
    rng = np.random.default_rng(8)
    for _ in range(3):
        s = random_rotation(rng)
        a = env.random_action()
        env.set_state(s)
        env._advance(a)
        s_next = env.get_state()
        for g in sym.elements:
            ga = sym.act_on_action(g, a)
            assert env.action_space.contains(ga)
            env.set_state(sym.act_on_state(g, s))
            env.step(ga)
            np.testing.assert_allclose(env.get_state(), sym.act_on_state(g, s_next), rtol=0, atol=1e-9)


def test_no_drift_over_long_episodes(envs):
    env = envs["large"]
    env.reset(seed=9)
    for _ in range(2000):
        env._advance(env.random_action())
    s = env.get_state()
    np.testing.assert_allclose(s.T @ s, np.eye(3), atol=1e-12)
    assert np.linalg.det(s) == pytest.approx(1.0, abs=1e-12)
    near = np.eye(3) + 1e-4 * np.random.default_rng(0).normal(size=(3, 3))
    fixed = orthonormalize(near)
    np.testing.assert_allclose(fixed.T @ fixed, np.eye(3), atol=1e-12)
    g = octahedral_group()[7]
    np.testing.assert_allclose(orthonormalize(g @ near), g @ fixed, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_seeded_reset_is_reproducible(mode):
    def rollout(seed):
        env = gym.make("SEN-Teapot-v0", actions=mode)
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        out = [(obs, info["state"])]
        for _ in range(5):
            obs, _, _, _, info = env.step(env.action_space.sample())
            out.append((obs, info["state"]))
        env.close()
        return out

    a, b, c = rollout(11), rollout(11), rollout(12)
    for (oa, sa), (ob, sb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(a[0][1], c[0][1])


def test_initial_orientation_is_uniform():
    """Haar measure: the image of any fixed vector is uniform on the sphere (mean 0, E[x^2] = 1/3)."""
    env = TeapotEnv()
    env.reset(seed=0)
    zs = np.array([env._sample_initial_state() for _ in range(4000)])
    cols = zs[:, :, 2]
    assert np.abs(cols.mean(axis=0)).max() < 0.05
    np.testing.assert_allclose((cols**2).mean(axis=0), 1 / 3, atol=0.03)
    env.close()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"actions": "medium"}, r"actions must be one of \('small', 'large'\)"),
        ({"actions": 6}, "actions must be one of"),
        ({"size": 8}, r"size must be an int in \[16, 512\]"),
        ({"size": 64.0}, "size must be an int"),
        ({"size": True}, "size must be an int"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_kwargs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeapotEnv(**kwargs)


@pytest.mark.parametrize(
    "mode, action, match",
    [
        ("small", 6, r"outside Discrete\(6\)"),
        ("small", -1, r"outside Discrete\(6\)"),
        ("small", 1.5, "is not in Discrete"),
        ("large", np.zeros(2, np.float32), "is not in Box"),
        ("large", np.array([4.0, 0.0, 0.0], np.float32), "is not in Box"),
        ("large", np.array([np.nan, 0.0, 0.0], np.float32), "is not in Box"),
    ],
)
def test_invalid_actions(envs, mode, action, match):
    env = envs[mode]
    env.reset(seed=0)
    before = env.get_state()
    with pytest.raises(ValueError, match=match):
        env.step(action)
    np.testing.assert_array_equal(env.get_state(), before)


@pytest.mark.parametrize(
    "state, match",
    [
        (np.eye(2), r"shape \(2, 2\)"),
        (np.zeros(9), r"shape \(9,\)"),
        ("not a matrix", "3x3 rotation matrix"),
        (2 * np.eye(3), "R\\^T R = I"),
        (np.diag([1.0, 1.0, -1.0]), "det = -1"),
        (np.full((3, 3), np.nan), "finite"),
        (np.eye(3) + 1e-4, "rotation matrix"),
    ],
)
def test_invalid_states(envs, state, match):
    env = envs["small"]
    env.reset(seed=0)
    before = env.get_state()
    with pytest.raises(ValueError, match=match):
        env.set_state(state)
    with pytest.raises(ValueError, match=match):
        env.render_state(state)
    with pytest.raises(ValueError, match=match):
        env.reset(options={"state": state})
    np.testing.assert_array_equal(env.get_state(), before)
    validate_rotation(np.eye(3) + 1e-8)  # within tolerance: accepted


# --------------------------------------------------------------------------- checkers


@pytest.mark.parametrize("mode", MODES)
def test_env_checkers(mode):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("SEN-Teapot-v0", actions=mode)
    with warnings.catch_warnings():
        # the Box(-pi, pi) rotation vector is the spec; both checkers merely recommend [-1, 1]
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")
        gym_check_env(env.unwrapped)
        sb3_check_env(env)
        sb3_check_env(env.unwrapped)
    env.close()
