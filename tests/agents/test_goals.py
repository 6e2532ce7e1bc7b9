"""Goal-reaching tasks (sen_rl.agents.goals): distances, success, goals, rewards, budget, registration."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sen_rl  # noqa: F401  (registers the envs)
from sen_rl.agents.goals import GOAL_TRIES, GoalReaching, make_goal_env
from sen_rl.domains import DOMAINS, GoalTask, domain_of
from sen_rl.envs.base import SymmetricEnv
from sen_rl.envs.cubes import CubesEnv
from sen_rl.envs.reacher import ReacherEnv
from sen_rl.envs.shapes import ShapesEnv
from sen_rl.envs.teapot import TeapotEnv
from sen_rl.groups import axis_angle_to_matrix, random_rotation

GOAL_IDS = ("SEN-Shapes-Goal-v0", "SEN-Cubes-Goal-v0", "SEN-Teapot-Goal-v0", "SEN-Reacher-Goal-v0")
SMALL = {"SEN-Reacher-Goal-v0": {"size": 32}}  # fast Reacher frames
TEAPOT_TOL = 2 * np.pi / 30
CELLS = np.array([[0, 0], [1, 2], [2, 4], [3, 1], [4, 3]])


def make(goal_id, **kwargs):
    return gym.make(goal_id, **SMALL.get(goal_id, {}), **kwargs)


@pytest.fixture(scope="module")
def shapes():
    return GoalReaching(ShapesEnv(), task=domain_of("SEN-Shapes-v0").goal)


@pytest.fixture(scope="module")
def teapot():
    e = TeapotEnv(size=16)
    yield GoalReaching(e, task=domain_of("SEN-Teapot-v0").goal)
    e.close()


@pytest.fixture(scope="module")
def reacher():
    e = ReacherEnv(size=16)
    yield GoalReaching(e, task=domain_of("SEN-Reacher-v0").goal)
    e.close()


# ------------------------------------------------------------------ distances and success


@pytest.mark.parametrize("cls", [ShapesEnv, CubesEnv])
def test_grid_distance_and_success(cls):
    env = cls()
    wrapped = GoalReaching(env, task=DOMAINS["SEN-Shapes-v0"].goal)
    assert env.goal_distance(CELLS, CELLS.copy()) == 0.0 and wrapped.is_success(0.0)
    off = CELLS.copy()
    off[2, 0] += 1  # one object one cell down
    assert env.goal_distance(CELLS, off) == 1.0 and not wrapped.is_success(1.0)
    far = CELLS.copy()
    far[0] = (4, 4)  # (0, 0) -> (4, 4): 8 cells
    far[1] = (0, 2)  # 1 cell
    assert env.goal_distance(CELLS, far) == 9.0 == env.goal_distance(far, CELLS)
    # the reset info says the same with a given goal
    _, info = wrapped.reset(options={"state": CELLS, "goal_state": off})
    assert info["distance"] == 1.0 and info["is_success"] is False
    _, info = wrapped.reset(options={"state": CELLS, "goal_state": CELLS})
    assert info["distance"] == 0.0 and info["is_success"] is True
    with pytest.raises(ValueError, match="share a cell"):
        env.goal_distance(CELLS, np.zeros((5, 2), dtype=int))
    env.close()


def test_teapot_distance_and_success(teapot):
    env = teapot.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(5):
        start = random_rotation(rng)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        for factor, ok in ((0.9, True), (1.1, False)):
            goal = axis_angle_to_matrix(factor * TEAPOT_TOL * axis) @ start
            d = env.goal_distance(start, goal)
            assert d == pytest.approx(factor * TEAPOT_TOL, abs=1e-12)
            assert d == pytest.approx(env.goal_distance(goal, start), abs=1e-12)
            assert teapot.is_success(d) is ok
        assert env.goal_distance(start, start) < 1e-12 and teapot.is_success(env.goal_distance(start, start))
        for angle in (1e-9, 3.0, np.pi):  # full precision near 0 and pi
            goal = start @ axis_angle_to_matrix(angle * axis)  # body-frame turn: same geodesic angle
            assert env.goal_distance(start, goal) == pytest.approx(angle, rel=1e-6)
    with pytest.raises(ValueError, match="goal_state must be a 3x3 rotation"):
        env.goal_distance(np.eye(3), np.ones(3))


def fingertip_xy(q0, q1):
    """Reacher's forward kinematics: links of 0.1 and 0.11 m from the base at the origin."""
    return np.array([0.1 * np.cos(q0) + 0.11 * np.cos(q0 + q1), 0.1 * np.sin(q0) + 0.11 * np.sin(q0 + q1)])


def reacher_state(q0, q1, rest):
    s = np.array(rest, dtype=np.float64)
    s[4:6] = (q0, q1)
    return s


def test_reacher_distance_and_success(reacher):
    env = reacher.unwrapped
    rng = np.random.default_rng(1)
    a = reacher_state(0.3, -1.2, rng.uniform(-1, 1, 12))
    b = a.copy()
    b[0:4] = rng.uniform(-1, 1, 4)  # previous frame
    b[6:8] = (0.1, -0.2)  # target
    b[8:12] = rng.uniform(-5, 5, 4)  # velocities
    assert env.goal_distance(a, b) == 0.0 and reacher.is_success(0.0)
    for q0, q1, q0b, q1b in [(0.3, -1.2, 0.5, -1.0), (2.0, 2.9, -2.0, -2.9), (-0.7, 0.4, -0.7, 0.45)]:
        d = env.goal_distance(reacher_state(q0, q1, a), reacher_state(q0b, q1b, a))
        assert d == pytest.approx(np.linalg.norm(fingertip_xy(q0, q1) - fingertip_xy(q0b, q1b)), abs=1e-12)
    # a straight arm (reach 0.21) turned by joint0: the chord 2 * 0.21 * sin(delta / 2)
    for chord, ok in ((0.019, True), (0.021, False)):
        delta = 2 * np.arcsin(chord / 2 / 0.21)
        d = env.goal_distance(reacher_state(0.4, 0.0, a), reacher_state(0.4 + delta, 0.0, a))
        assert d == pytest.approx(chord, abs=1e-12) and reacher.is_success(d) is ok


def test_reacher_fingertip_matches_simulation(reacher):
    env = reacher.unwrapped
    env.reset(seed=0, options={"warmup": 5})
    for _ in range(10):
        env.step(env.random_action())
        state = env.get_state()
        np.testing.assert_array_equal(env.fingertip_position(state), env._data.xpos[env._fingertip])
        np.testing.assert_allclose(env.fingertip_position(state)[:2], fingertip_xy(*state[4:6]), atol=1e-12)
    before = env.get_state()
    env.goal_distance(before, env.reset(seed=1)[1]["state"])
    np.testing.assert_array_equal(env.get_state(), env.reset(seed=1)[1]["state"])  # env untouched


def test_base_class_has_no_goal_distance():
    class Bare(SymmetricEnv):
        pass

    with pytest.raises(NotImplementedError, match="Bare defines no goal distance"):
        Bare().goal_distance(0, 0)


# ------------------------------------------------------------------ the goal of an episode


@pytest.mark.parametrize("goal_id", GOAL_IDS)
def test_goal_is_reproducible_and_episode_starts_at_start(goal_id):
    env, again = make(goal_id), make(goal_id)
    plain = gym.make(goal_id.replace("-Goal", ""), **SMALL.get(goal_id, {}))
    inner = env.unwrapped
    obs, info = env.reset(seed=7)
    _, info2 = again.reset(seed=7)
    _, plain_info = plain.reset(seed=7)
    np.testing.assert_array_equal(info["goal_state"], info2["goal_state"])
    np.testing.assert_array_equal(info["state"], plain_info["state"])  # the plain env's start state
    np.testing.assert_array_equal(info["state"], inner.get_state())
    np.testing.assert_array_equal(obs, inner.render_state(info["state"]))
    goal_obs = info["goal_observation"]
    assert goal_obs.dtype == np.uint8 and goal_obs.shape == obs.shape
    np.testing.assert_array_equal(goal_obs, inner.render_state(info["goal_state"]))
    assert info["distance"] == inner.goal_distance(info["state"], info["goal_state"]) > 0
    assert info["is_success"] is False
    # physics from the start state as from a plain reset: the same next state
    action = plain.action_space.sample()
    s1 = env.step(action)[4]["state"]
    s2 = plain.step(action)[4]["state"]
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(env.reset(seed=8)[1]["goal_state"], info["goal_state"])
    for e in (env, again, plain):
        e.close()


def test_goal_is_at_most_goal_steps_away():
    env = make("SEN-Shapes-Goal-v0")
    for seed in range(50):
        info = env.reset(seed=seed)[1]
        assert 1 <= info["distance"] <= 5
    env = make("SEN-Shapes-Goal-v0", goal_steps=2)
    assert all(1 <= env.reset(seed=s)[1]["distance"] <= 2 for s in range(20))
    teapot = GoalReaching(TeapotEnv(size=16), task=domain_of("SEN-Teapot-v0").goal)
    for seed in range(20):
        info = teapot.reset(seed=seed)[1]
        assert TEAPOT_TOL < info["distance"] <= 5 * TEAPOT_TOL + 1e-9


def test_stuck_start_is_refused():
    env = GoalReaching(ShapesEnv(n_objects=4, width=2), task=domain_of("SEN-Shapes-v0").goal)  # a full board
    with pytest.raises(RuntimeError, match=f"{GOAL_TRIES} goals drawn 5 random steps"):
        env.reset(seed=0)


# ------------------------------------------------------------------ rewards and the budget


@pytest.mark.parametrize("goal_id", ["SEN-Shapes-Goal-v0", "SEN-Cubes-Goal-v0"])
def test_replaying_the_goal_actions_reaches_it(goal_id):
    reached = 0
    for seed in range(6):
        env = make(goal_id)
        _, info = env.reset(seed=seed)
        # the same draws on a plain env: reset, then goal_steps random actions
        plain = gym.make(goal_id.replace("-Goal", "")).unwrapped
        plain.reset(seed=seed)
        actions = [plain.random_action() for _ in range(5)]
        for a in actions:
            plain.step(a)
        if not np.array_equal(plain.get_state(), info["goal_state"]):
            continue  # this seed's first goal was redrawn
        for a in actions:
            _, reward, terminated, truncated, step_info = env.step(a)
            if terminated:
                break
            assert reward == 0.0 and step_info["distance"] > 0
        assert terminated and not truncated and reward == 1.0
        assert step_info["distance"] == 0.0 and step_info["is_success"] is True
        np.testing.assert_array_equal(step_info["state"], info["goal_state"])
        reached += 1
    assert reached >= 4


@pytest.mark.parametrize("goal_id", GOAL_IDS)
def test_shaped_reward_is_minus_distance(goal_id):
    env = make(goal_id, reward="shaped")
    _, info = env.reset(seed=0)
    goal = info["goal_state"]
    for _ in range(4):
        _, reward, terminated, _, step_info = env.step(env.action_space.sample())
        assert reward == -step_info["distance"]
        assert step_info["distance"] == env.unwrapped.goal_distance(step_info["state"], goal)
        assert terminated == step_info["is_success"]
    env.close()


def test_truncation_at_max_steps():
    goal = CELLS.copy()
    goal[4] = (0, 4)
    for env, budget in [
        (GoalReaching(ShapesEnv(), max_steps=3, task=domain_of("SEN-Shapes-v0").goal), 3),
        (gym.make("SEN-Shapes-Goal-v0"), 20),  # the domain's budget, also the TimeLimit's
        (GoalReaching(gym.make("SEN-Shapes-v0"), max_steps=4), 4),  # domain from the spec
    ]:
        for _ in range(2):  # the count restarts at reset
            env.reset(options={"state": CELLS, "goal_state": goal})
            for t in range(1, budget + 1):
                _, reward, terminated, truncated, _ = env.step(0)  # object 0 up: blocked at row 0
                assert reward == 0.0 and not terminated and truncated == (t == budget)


# ------------------------------------------------------------------ arguments


def test_bad_arguments_are_refused():
    task = domain_of("SEN-Shapes-v0").goal
    env = ShapesEnv()
    with pytest.raises(ValueError, match=r"reward='dense' is not known; choose one of sparse, shaped"):
        GoalReaching(env, reward="dense", task=task)
    for name in ("goal_steps", "max_steps"):
        for bad in (0, -3, 2.5, True):
            with pytest.raises(ValueError, match=rf"{name} must be an int >= 1 .*got {bad!r}"):
                GoalReaching(env, task=task, **{name: bad})
    with pytest.raises(ValueError, match=r"no spec .*pass task=domain_of\(env_id\).goal"):
        GoalReaching(env)
    with pytest.raises(TypeError, match="GoalTask"):
        GoalReaching(env, task=(0.0, 5, 20))
    with pytest.raises(TypeError, match="SymmetricEnv"):
        GoalReaching(gym.make("CartPole-v1"))
    with pytest.raises(RuntimeError, match="call reset"):
        GoalReaching(env, task=task).step(0)
    with pytest.raises(ValueError, match="not a sen-rl domain"):
        make_goal_env("CartPole-v1")
    with pytest.raises(ValueError, match="reward='dense'"):
        gym.make("SEN-Teapot-Goal-v0", reward="dense")
    with pytest.raises(ValueError, match="unknown reset options"):
        GoalReaching(env, task=task).reset(options={"goal": CELLS})
    # an explicit task overrides the domain's
    custom = GoalReaching(gym.make("SEN-Shapes-v0"), task=GoalTask("exact", 2.0, 3, 7))
    assert custom.is_success(2.0) and (custom.goal_steps, custom.max_steps) == (3, 7)


# ------------------------------------------------------------------ registration


def test_every_goal_id_is_registered_and_makes():
    assert tuple(d.goal_env_id for d in DOMAINS.values()) == GOAL_IDS
    for d in DOMAINS.values():
        spec = gym.spec(d.goal_env_id)
        assert spec.entry_point == "sen_rl.agents.goals:make_goal_env"
        assert spec.kwargs == {"env_id": d.env_id} and spec.max_episode_steps == d.goal.max_steps
        env = make(d.goal_env_id)
        goal_env = env.get_wrapper_attr("task")
        assert goal_env == d.goal
        assert env.observation_space == env.unwrapped.observation_space
        assert env.action_space == env.unwrapped.action_space
        env.close()
    env = gym.make("sen_rl:SEN-Shapes-Goal-v0")
    assert env.reset(seed=0)[0].shape == (50, 50, 3)
    env = gym.make("SEN-Reacher-Goal-v0", size=32, reward="shaped", goal_steps=3)
    assert env.get_wrapper_attr("reward_mode") == "shaped" and env.get_wrapper_attr("goal_steps") == 3
    assert env.reset(seed=0)[0].shape == (32, 32, 6)
    env.close()


@pytest.mark.parametrize("goal_id", GOAL_IDS)
def test_env_checker_passes(goal_id):
    for env in (make_goal_env(goal_id.replace("-Goal", ""), **SMALL.get(goal_id, {})), make(goal_id)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any other warning of the checker fails the test
            warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
            check_env(env)  # also env.spec.make() with and without render_mode="rgb_array"
        env.close()


def test_goals_import_neither_torch_nor_mujoco():
    code = (
        "import sys, sen_rl, sen_rl.agents.goals; "
        "bad = [m for m in ('torch', 'mujoco') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
