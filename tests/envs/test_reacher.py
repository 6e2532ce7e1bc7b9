"""SEN-Reacher-v0: Reacher-v5 physics, exact D4 equivariance, top-down twins, rewards, errors.

Measured on MuJoCo 3.14 (EGL): stepping from ``g s`` with ``g a`` reproduces ``g step(s, a)``
to within 1.1e-14 (joint0 compared modulo 2 pi) over 20 steps for all 8 elements, joint1's
limit included, so :data:`EQUIV_TOL` leaves five orders of magnitude of margin. In the
images, quarter turns of the world are quarter turns of the pixels to within one grey level
on a handful of pixels; reflections differ only along edges (MSAA's sample pattern is not
mirror-symmetric): mean |diff| 0.15-0.23 grey levels against ~2.7 between unrelated states.
"""

import subprocess
import sys
import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest

import sen_rl  # noqa: F401  (registers the envs)
from sen_rl.domains import domain_of
from sen_rl.envs.reacher import VIEW_HALF_EXTENT, ReacherEnv
from sen_rl.groups import D4_ELEMENTS

EQUIV_TOL = 1e-9


@pytest.fixture
def env():
    e = ReacherEnv(size=64)
    yield e
    e.close()


def wrapped_error(a, b) -> float:
    """Max |a - b| over a state, the joint angles compared modulo 2 pi."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d[[0, 1, 4, 5]] = np.angle(np.exp(1j * d[[0, 1, 4, 5]]))
    return float(np.abs(d).max())


def act_on_obs(g, obs):
    """D4 on both frames: the domain's action on pixels, the one --augment group uses."""
    return domain_of("SEN-Reacher-v0").act_on_observation(g, obs)


def fingertip_xy(qpos):
    q0, q1 = qpos[0], qpos[1]
    return np.array([0.1 * np.cos(q0) + 0.11 * np.cos(q0 + q1), 0.1 * np.sin(q0) + 0.11 * np.sin(q0 + q1)])


# --------------------------------------------------------------------------- registration


def test_make_defaults():
    env = gym.make("SEN-Reacher-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, 128, 6) and obs.dtype == np.uint8
    assert env.observation_space == gym.spaces.Box(0, 255, (128, 128, 6), np.uint8)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.spec.max_episode_steps == 50
    state = info["state"]
    assert state.shape == (12,) and state.dtype == np.float64
    np.testing.assert_array_equal(state[0:4], state[4:8])  # previous == current after reset
    np.testing.assert_array_equal(obs[..., :3], obs[..., 3:])
    np.testing.assert_array_equal(state[6:8], [0.2, 0.2])  # default goal
    assert np.all(np.abs(state[4:6]) <= 0.1) and np.all(np.abs(state[8:10]) <= 0.005)
    np.testing.assert_array_equal(state[10:12], 0.0)
    env.close()


def test_make_in_fresh_process_without_import():
    code = (
        "import gymnasium as gym; e = gym.make('sen_rl:SEN-Reacher-v0'); "
        "o = e.reset(seed=0)[0]; print(o.shape, o.dtype)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "(128, 128, 6) uint8"


def test_same_draws_and_physics_as_gymnasium_reacher_v5():
    """Seeded reset (goal=None) and 10 steps equal Reacher-v5's bit for bit.

    Runs in a subprocess: gymnasium.envs.mujoco imports imageio for its viewer, which is not
    a dependency of sen-rl, so a stub stands in for it there.
    """
    code = textwrap.dedent(
        """
        import importlib.util, sys, types
        if importlib.util.find_spec("imageio") is None:
            sys.modules["imageio"] = types.ModuleType("imageio")
        import numpy as np
        from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv as V5
        from sen_rl.envs.reacher import ReacherEnv
        ref, env = V5(), ReacherEnv(size=16, goal=None)
        for seed in (3, 11):
            ref.reset(seed=seed)
            s = env.reset(seed=seed)[1]["state"]
            assert np.array_equal(s[4:8], ref.data.qpos) and np.array_equal(s[8:12], ref.data.qvel), seed
            rng = np.random.default_rng(seed)
            for _ in range(10):
                a = rng.uniform(-1, 1, 2).astype(np.float32)
                _, r_ref, _, _, i_ref = ref.step(a)
                _, r, _, _, info = env.step(a)
                s = info["state"]
                assert np.array_equal(s[4:8], ref.data.qpos) and np.array_equal(s[8:12], ref.data.qvel)
                assert abs(info["reward_ctrl"] - i_ref["reward_ctrl"]) < 1e-6  # v5 sums in float32
                # v5 measures the distance at the positions of RK4's last stage, we at the new state
                assert abs(r - r_ref) < 1e-4, (r, r_ref)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "reacher_v5" in out.stderr and "ModuleNotFoundError" in out.stderr:
        pytest.skip(f"gymnasium's Reacher-v5 cannot be imported here: {out.stderr[-300:]}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------- symmetry


def _start_states(env):
    """Varied starts: after warm-up, a random goal, and one pressing joint1 into its limit."""
    rng = np.random.default_rng(0)
    states = []
    for seed in range(2):
        s = env.reset(seed=seed, options={"warmup": 30})[1]["state"].copy()
        s[6:8] = rng.uniform(-0.25, 0.25, 2)
        s[2:4] = s[6:8]
        states.append(s)
    limit = np.array([1.0, 2.9, -0.1, 0.15, 1.2, 2.95, -0.1, 0.15, 3.0, 20.0, 0.0, 0.0])
    states.append(limit)
    return states


def test_dynamics_equivariant_for_all_d4(env):
    sym = env.symmetry
    assert tuple(sym.elements) == D4_ELEMENTS
    rng = np.random.default_rng(1)
    worst = 0.0
    hit_limit = False
    for s0 in _start_states(env):
        actions = rng.uniform(-1, 1, (12, 2)).astype(np.float32)
        env.reset(options={"state": s0})
        base = [env.step(a) for a in actions]
        hit_limit |= any(abs(step[4]["state"][5]) > 2.99 for step in base)
        for g in D4_ELEMENTS:
            env.reset(options={"state": sym.act_on_state(g, s0)})
            for a, (_, r, _, _, info) in zip(actions, base, strict=True):
                _, r_g, _, _, info_g = env.step(sym.act_on_action(g, a))
                worst = max(worst, wrapped_error(info_g["state"], sym.act_on_state(g, info["state"])))
                assert abs(r_g - r) < EQUIV_TOL  # the reward is invariant
    assert hit_limit, "the limit start state should drive joint1 into its +-3 limit"
    assert worst < EQUIV_TOL, worst


def test_camera_convention(env):
    """Straight down, +x to the right, +y up, the base at the centre."""
    size = env.size
    state = np.array([0, 0, 0.2, 0.2] * 2 + [0.0] * 4)
    frame = env.render_state(state)[..., 3:].astype(int)
    red = (frame[..., 0] > 110) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    rows, cols = np.nonzero(red)
    assert rows.size > 0
    to_px = size / (2 * VIEW_HALF_EXTENT)
    assert abs(cols.mean() + 0.5 - (0.2 + VIEW_HALF_EXTENT) * to_px) < 1.5
    assert abs(rows.mean() + 0.5 - (VIEW_HALF_EXTENT - 0.2) * to_px) < 1.5
    # the arm (blue-teal links) lies on the right half of the middle rows, none on the left
    dark_blue = (frame[..., 2] > frame[..., 0] + 40) & (frame[..., 0] < 60)
    mid = slice(size // 2 - 2, size // 2 + 2)
    assert dark_blue[mid, size // 2 + 2 :].sum() > 10 and dark_blue[mid, : size // 2 - 2].sum() == 0
    bg = frame[2, 2]
    assert np.all(frame[2, -3] == bg) and np.all(frame[-3, 2] == bg) and np.all(frame[-3, -3] == bg)


def test_rendered_twins_match_image_transforms(env):
    sym = env.symmetry
    s = env.reset(seed=4, options={"warmup": 20})[1]["state"]
    obs = env.render_state(s)
    other = env.render_state(env.reset(seed=9, options={"warmup": 20})[1]["state"])
    unrelated = np.abs(other.astype(float) - obs).mean()
    assert unrelated > 0.5
    for g in D4_ELEMENTS:
        twin = env.render_state(sym.act_on_state(g, s)).astype(float)
        diff = np.abs(twin - act_on_obs(g, obs)).mean()
        if g[0] == 0:  # quarter turns: the pixel grid and the MSAA pattern are both C4-symmetric
            assert diff < 0.01 * unrelated, (g, diff, unrelated)
        else:  # reflections: only anti-aliased edges differ
            assert diff < 0.2 * unrelated, (g, diff, unrelated)


# --------------------------------------------------------------------------- reward, state API


def test_reward_by_hand(env):
    obs, info = env.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(5):
        a = rng.uniform(-1, 1, 2).astype(np.float32)
        _, r, terminated, truncated, info = env.step(a)
        s = info["state"]
        dist = np.linalg.norm(fingertip_xy(s[4:6]) - s[6:8])
        ctrl = float(np.sum(np.square(a.astype(np.float64))))
        assert info["reward_dist"] == pytest.approx(-dist, abs=1e-12)
        assert info["reward_ctrl"] == pytest.approx(-ctrl, abs=1e-12)
        assert r == pytest.approx(-dist - ctrl, abs=1e-12)
        assert not terminated and not truncated
        np.testing.assert_array_equal(s[6:8], [0.2, 0.2])  # the target never moves
        np.testing.assert_array_equal(s[10:12], 0.0)


def test_render_state_matches_obs_and_leaves_env_untouched(env):
    env.reset(seed=3, options={"warmup": 10})
    obs, _, _, _, info = env.step(env.action_space.sample())
    s = info["state"]
    np.testing.assert_array_equal(env.render_state(s), obs)
    assert not np.array_equal(obs[..., :3], obs[..., 3:])  # the two frames differ once moving
    # a fresh env (nothing cached) renders the same observation after set_state
    fresh = ReacherEnv(size=64)
    fresh.set_state(s)
    np.testing.assert_array_equal(fresh.get_state(), s)
    np.testing.assert_array_equal(fresh._observe(), obs)
    fresh.close()
    # rendering another state changes neither the state nor what happens next
    a = np.array([0.3, -0.7], dtype=np.float32)
    env.set_state(s)
    expected = env.step(a)
    env.set_state(s)
    other = np.array([2.0, -1.0, 0.1, -0.1, 2.5, -1.5, 0.1, -0.1, 1.0, 1.0, 0.0, 0.0])
    env.render_state(other)
    np.testing.assert_array_equal(env.get_state(), s)
    got = env.step(a)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[4]["state"], expected[4]["state"])
    assert got[1] == expected[1]


def test_seeded_reset_and_warmup_are_reproducible():
    runs = []
    for _ in range(2):
        e = ReacherEnv(size=32)
        obs, info = e.reset(seed=5, options={"warmup": 50})
        e.action_space.seed(5)
        traj = [e.step(e.action_space.sample()) for _ in range(5)]
        runs.append((obs, info["state"], traj))
        e.close()
    (o1, s1, t1), (o2, s2, t2) = runs
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(s1, s2)
    for a, b in zip(t1, t2, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[4]["state"], b[4]["state"])
    e = ReacherEnv(size=32)
    s_other = e.reset(seed=6, options={"warmup": 50})[1]["state"]
    assert not np.allclose(s_other, s1)
    assert abs(s1[4] - s1[0]) + abs(s1[5] - s1[1]) > 0  # warm-up moved the arm; prev != current
    e.close()


def test_warmup_does_not_render(env, monkeypatch):
    calls = []
    original = env._frame
    monkeypatch.setattr(env, "_frame", lambda qpos: calls.append(1) or original(qpos))
    env.reset(seed=0, options={"warmup": 50})
    assert len(calls) == 2  # one observation: previous + current frame


def test_random_goal():
    e = ReacherEnv(size=16, goal=None)
    goals = np.array([e.reset(seed=i)[1]["state"][6:8] for i in range(20)])
    assert np.all(np.linalg.norm(goals, axis=1) < 0.2)
    assert len({tuple(g) for g in goals}) == 20
    e.close()
    e = ReacherEnv(size=16, goal=(-0.1, 0.25))
    np.testing.assert_array_equal(e.reset(seed=0)[1]["state"][2:4], [-0.1, 0.25])
    e.close()


def test_render_mode_and_close():
    e = gym.make("SEN-Reacher-v0", size=64, render_mode="rgb_array")
    obs, _ = e.reset(seed=0)
    frame = e.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, obs[..., 3:])
    e.close()
    assert e.unwrapped._renderer is None
    assert ReacherEnv(size=64).render() is None  # no render_mode


# --------------------------------------------------------------------------- errors, checkers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 15},
        {"size": 64.0},
        {"size": "64"},
        {"size": True},
        {"size": 4096},
        {"goal": (0.3, 0.0)},
        {"goal": (0.1,)},
        {"goal": (np.nan, 0.1)},
        {"goal": "far"},
        {"render_mode": "human"},
    ],
)
def test_bad_kwargs(kwargs):
    with pytest.raises(ValueError):
        ReacherEnv(**kwargs)


@pytest.mark.parametrize(
    "action",
    [
        np.zeros(3, np.float32),
        np.zeros((1, 2), np.float32),
        np.array([np.nan, 0.0], np.float32),
        np.array([0.0, np.nan]),
        np.array([1.5, 0.0], np.float32),
        np.array([0.0, -np.inf]),
        np.array([1, 0]),
        0.5,
    ],
)
def test_invalid_actions(env, action):
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(action)


def test_valid_action_forms(env):
    env.reset(seed=0)
    env.step(np.array([0.5, -1.0]))  # float64 is accepted
    env.step([0.5, -1.0])


def test_bad_states(env):
    for bad in (np.zeros(11), np.zeros((2, 12)), np.full(12, np.nan), "state"):
        with pytest.raises(ValueError):
            env.set_state(bad)
        with pytest.raises(ValueError):
            env.render_state(bad)
    with pytest.raises(ValueError):
        env.reset(options={"state": np.zeros(4)})


def test_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    e = gym.make("SEN-Reacher-v0", size=64, render_mode="rgb_array").unwrapped  # with a spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings either
        check_env(e, skip_render_check=False)
    e.close()


def test_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env

    e = ReacherEnv(size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings either
        check_env(e, warn=True)
    e.close()
