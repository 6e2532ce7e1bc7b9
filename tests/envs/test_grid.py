"""2D Shapes and 3D Cubes: dynamics, exact C4 equivariance, re-rendered twins, errors."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import sen_rl
from sen_rl.domains import domain_of
from sen_rl.groups import C4_ELEMENTS, c4_compose, c4_inverse

GRID_IDS = ["SEN-Shapes-v0", "SEN-Cubes-v0"]


@pytest.fixture(params=GRID_IDS)
def env(request):
    e = gym.make(request.param)
    yield e
    e.close()


def test_registered_without_prior_import():
    code = "import gymnasium as gym; e = gym.make('sen_rl:SEN-Shapes-v0'); print(e.reset(seed=0)[0].shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(50, 50, 3)"
    assert set(sen_rl.ENV_IDS) >= set(GRID_IDS)


def test_spaces(env):
    obs, info = env.reset(seed=0)
    assert obs.shape == (50, 50, 3) and obs.dtype == np.uint8
    assert env.action_space == gym.spaces.Discrete(20)
    assert info["state"].shape == (5, 2)
    assert env.spec.max_episode_steps == 100


def test_moves_and_blocking():
    env = gym.make("SEN-Shapes-v0").unwrapped
    env.reset(seed=0, options={"state": np.array([[0, 0], [0, 1], [2, 2], [4, 4], [3, 0]])})
    env.step(0 * 4 + 0)  # object 0 up: off the board -> no-op
    assert env.get_state()[0].tolist() == [0, 0]
    env.step(0 * 4 + 1)  # object 0 right: blocked by object 1 -> no-op
    assert env.get_state()[0].tolist() == [0, 0]
    env.step(0 * 4 + 2)  # object 0 down: free
    assert env.get_state()[0].tolist() == [1, 0]
    env.step(2 * 4 + 3)  # object 2 left
    assert env.get_state()[2].tolist() == [2, 1]
    assert env.get_state()[1].tolist() == [0, 1]  # the others never move


def test_group_laws():
    sym = gym.make("SEN-Shapes-v0").unwrapped.symmetry
    s = np.array([[0, 1], [2, 3], [4, 0], [1, 1], [3, 2]])
    for g in C4_ELEMENTS:
        for h in C4_ELEMENTS:
            np.testing.assert_array_equal(
                sym.act_on_state(g, sym.act_on_state(h, s)), sym.act_on_state(c4_compose(g, h), s)
            )
        np.testing.assert_array_equal(sym.act_on_state(c4_inverse(g), sym.act_on_state(g, s)), s)
    # the paper's convention: a quarter turn maps (r, c) to (W-1-c, r) and "up" to "left"
    assert sym.act_on_state(1, np.array([[0, 1]])).tolist() == [[3, 0]]
    assert [sym.act_on_action(1, a) for a in range(4)] == [3, 0, 1, 2]


def test_dynamics_equivariant_for_every_element(env):
    """step(g s, g a) == g step(s, a), exactly, over long random rollouts."""
    u = env.unwrapped
    rng = np.random.default_rng(0)
    for episode in range(10):
        _, info = env.reset(seed=episode)
        for _ in range(30):
            s = u.get_state()
            a = int(rng.integers(20))
            u.step(a)
            s_next = u.get_state()
            for g in C4_ELEMENTS:
                u.set_state(u.symmetry.act_on_state(g, s))
                u.step(u.symmetry.act_on_action(g, a))
                np.testing.assert_array_equal(u.get_state(), u.symmetry.act_on_state(g, s_next))
            u.set_state(s_next)


def test_shapes_twin_is_exact_pixel_rotation():
    """The domain's action on pixels (what --augment group uses) re-renders every moved state exactly."""
    env = gym.make("SEN-Shapes-v0").unwrapped
    on_pixels = domain_of("SEN-Shapes-v0").act_on_observation
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        for g in C4_ELEMENTS:
            twin = env.render_state(env.symmetry.act_on_state(g, info["state"]))
            np.testing.assert_array_equal(twin, np.rot90(obs, g))
            np.testing.assert_array_equal(twin, on_pixels(g, obs))


def test_cubes_twin_is_a_rerender_not_a_pixel_rotation():
    assert domain_of("SEN-Cubes-v0").act_on_observation is None  # so no pixel augmentation is offered
    env = gym.make("SEN-Cubes-v0").unwrapped
    obs, info = env.reset(seed=3)
    assert obs.std() > 10  # a real picture, not a blank frame
    for g in (1, 2, 3):
        twin = env.render_state(env.symmetry.act_on_state(g, info["state"]))
        assert np.abs(twin.astype(int) - np.rot90(obs, g).astype(int)).mean() > 5
        assert not np.array_equal(twin, obs)
    # the identity re-renders the observation exactly
    np.testing.assert_array_equal(env.render_state(info["state"]), obs)
    env.close()


def test_seeded_determinism(env):
    def run():
        obs, _ = env.reset(seed=123, options={"warmup": 5})
        frames = [obs]
        env.action_space.seed(7)
        for _ in range(10):
            frames.append(env.step(env.action_space.sample())[0])
        return np.stack(frames)

    np.testing.assert_array_equal(run(), run())
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    assert not np.array_equal(a, b)


def test_render_state_leaves_env_untouched(env):
    _, info = env.reset(seed=0)
    other = env.unwrapped.symmetry.act_on_state(1, info["state"])
    env.unwrapped.render_state(other)
    np.testing.assert_array_equal(env.unwrapped.get_state(), info["state"])


@pytest.mark.parametrize("env_id", GRID_IDS)
def test_bad_input_is_refused(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Discrete"):
        env.step(20)
    with pytest.raises(ValueError, match="not in"):
        env.step(np.array([1.5]))
    with pytest.raises(ValueError, match="shape"):
        env.unwrapped.set_state(np.zeros((4, 2), dtype=int))
    with pytest.raises(ValueError, match="share a cell"):
        env.unwrapped.set_state(np.zeros((5, 2), dtype=int))
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"warm_up": 3})
    with pytest.raises(ValueError, match="n_objects"):
        gym.make(env_id, n_objects=0)
    with pytest.raises(ValueError, match="render_mode"):
        gym.make(env_id, render_mode="ansi")
    with pytest.raises(TypeError):
        gym.make(env_id, colour="red")
    env.close()


def test_env_checkers(env):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    gym_check(env.unwrapped, skip_render_check=False)
    sb3_check(env.unwrapped, warn=True)
