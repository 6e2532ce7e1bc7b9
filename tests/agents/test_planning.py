"""LatentMPC (sen_rl.agents.planning): real planning logic on exact models, search methods, CEM, seeds, errors."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

import sen_rl  # noqa: F401  (registers the envs)
from sen_rl.agents import LatentMPC, RandomAgent
from sen_rl.agents.planning import METHODS, run_goal_episodes, summarize, wilson_interval
from sen_rl.envs.shapes import CELL, COLOURS
from sen_rl.groups import GRID_DELTAS


class OracleShapes:
    """An exact world model of 2D Shapes: the latent is the objects' (row, col) cells, the transition the env's.

    The encoder reads each object's cell from its colour; the transition moves one object
    one cell unless the move leaves the board or hits another object; the energy is the
    model's (squared distance averaged over objects). A planner on it fails only by its own fault.
    """

    def __init__(self, n_objects: int = 5, width: int = 5):
        self.k, self.width = n_objects, width
        self.action_space = gym.spaces.Discrete(4 * n_objects)
        self.latent_shape = (n_objects, 2)
        self.predicted = 0

    def encode(self, obs):
        x = torch.as_tensor(np.asarray(obs))
        single = x.ndim == 3
        x = x[None] if single else x
        out = torch.zeros(x.shape[0], self.k, 2)
        rows = torch.arange(x.shape[1], dtype=torch.float32)[:, None]
        cols = torch.arange(x.shape[2], dtype=torch.float32)[None, :]
        for i in range(self.k):
            mask = (x == torch.as_tensor(COLOURS[i])).all(-1).float()  # [B, H, W]
            area = mask.sum((1, 2))
            out[:, i, 0] = torch.div((mask * rows).sum((1, 2)) / area, CELL, rounding_mode="floor")
            out[:, i, 1] = torch.div((mask * cols).sum((1, 2)) / area, CELL, rounding_mode="floor")
        return out[0] if single else out

    def predict(self, z, a):
        z, a = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(a)
        single = z.ndim == 2
        z, a = (z[None], a[None]) if single else (z, a)
        self.predicted += z.shape[0]
        obj, direction = a // 4, a % 4
        rows = torch.arange(z.shape[0])
        new = z[rows, obj] + torch.as_tensor(GRID_DELTAS, dtype=torch.float32)[direction]
        inside = ((new >= 0) & (new < self.width)).all(-1)
        clash = (z == new[:, None]).all(-1).any(-1)
        moves = inside & ~clash
        out = z.clone()
        out[rows[moves], obj[moves]] = new[moves]
        return out[0] if single else out

    def energy(self, x, y):
        return 2.0 * (x - y).pow(2).sum(-1).mean(-1)


class LinearModel:
    """A latent ``z`` in R^d moved by ``z + step * a`` (Box actions) or ``z + deltas[a]`` (Discrete); squared energy."""

    def __init__(self, action_space, deltas=None, step=0.5, dim=2):
        self.action_space = action_space
        self.deltas = None if deltas is None else torch.as_tensor(deltas, dtype=torch.float32)
        self.step = step
        self.latent_shape = (dim,)

    def encode(self, obs):
        return torch.as_tensor(np.asarray(obs, dtype=np.float32))

    def predict(self, z, a):
        a = torch.as_tensor(a)
        if self.deltas is not None:
            return z + self.deltas[a]
        return z + self.step * a.float()

    def energy(self, x, y):
        return (x - y).pow(2).sum(-1)


def test_oracle_reaches_goals_one_step_away():
    env = gym.make("SEN-Shapes-Goal-v0", goal_steps=1)
    model = OracleShapes()
    # a horizon of 3: every sequence that starts with the right move ties with ones reaching the goal later;
    # the tie goes to the fewest steps, so the first action is the right one
    planner = LatentMPC(model, horizon=3, seed=0)
    assert planner.method == "exhaustive"
    episodes = run_goal_episodes(env, planner, 10, seed=0)
    summary = summarize(episodes)
    assert summary["successes"] >= 9
    assert summary["mean_steps_to_success"] == 1.0  # exact model: straight to the goal
    assert planner.last_plan.cost == 0.0 and planner.last_plan.steps == 1
    assert model.predicted == 10 * (20 + 20**2 + 20**3)  # every sequence, each prefix predicted once


def test_oracle_reaches_five_step_goals_with_beam_search():
    env = gym.make("SEN-Shapes-Goal-v0")
    planner = LatentMPC(OracleShapes(), horizon=3, method="beam", beam_width=30, seed=0)
    summary = summarize(run_goal_episodes(env, planner, 10, seed=1))
    assert summary["successes"] == 10
    random = summarize(run_goal_episodes(env, RandomAgent(env.action_space, seed=0), 10, seed=1))
    assert random["successes"] <= 3


def _brute_force(model, z0, goal, n, horizon):
    """The best (cost, steps) over every sequence, by the definition: min over steps, ties to fewer steps."""
    best = (np.inf, 0)
    for seq in itertools.product(range(n), repeat=horizon):
        z, costs = z0, []
        for a in seq:
            z = model.predict(z[None], torch.tensor([a]))[0]
            costs.append(float(model.energy(z[None], goal[None])[0]))
        step = int(np.argmin(costs))
        best = min(best, (costs[step], step + 1))
    return best


def test_exhaustive_and_beam_agree_and_match_brute_force():
    rng = np.random.default_rng(0)
    space = gym.spaces.Discrete(3)
    model = LinearModel(space, deltas=rng.normal(size=(3, 2)))
    horizon = 4
    for trial in range(5):
        z0, goal = rng.normal(size=2).astype(np.float32), rng.normal(size=2).astype(np.float32) * 2
        exhaustive = LatentMPC(model, horizon=horizon, method="exhaustive", seed=trial).plan(z0, goal)
        # a beam as wide as the tree below the root prunes nothing: the same search
        wide = LatentMPC(model, horizon=horizon, method="beam", beam_width=3 ** (horizon - 1), seed=trial)
        beam = wide.plan(z0, goal)
        np.testing.assert_array_equal(exhaustive.actions, beam.actions)
        assert (exhaustive.cost, exhaustive.steps) == (beam.cost, beam.steps)
        assert exhaustive.evaluated == 3 + 9 + 27 + 81
        cost, steps = _brute_force(model, torch.as_tensor(z0), torch.as_tensor(goal), 3, horizon)
        assert exhaustive.cost == pytest.approx(cost, rel=1e-5) and exhaustive.steps == steps
        narrow = LatentMPC(model, horizon=horizon, method="beam", beam_width=2, seed=trial).plan(z0, goal)
        assert narrow.cost >= exhaustive.cost - 1e-6 and narrow.evaluated < exhaustive.evaluated


def test_discrete_start_offset_gives_env_actions():
    space = gym.spaces.Discrete(3, start=-1)
    model = LinearModel(space, deltas=np.zeros((3, 1)), dim=1)
    model.predict = lambda z, a: z + a.float()[:, None]  # the env action itself moves z
    planner = LatentMPC(model, horizon=1, seed=0)
    assert planner.act(np.zeros(1, np.float32), np.full(1, -1.0, np.float32)) == -1
    assert planner.act(np.zeros(1, np.float32), np.full(1, 1.0, np.float32)) == 1


def test_cem_converges_on_a_quadratic_cost():
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    model = LinearModel(space, step=0.5)
    z0 = np.zeros(2, np.float32)
    # one step: the optimum is a = (goal - z0) / 0.5 = (0.6, -0.4), cost 0
    planner = LatentMPC(model, horizon=1, method="auto", samples=200, elites=20, iterations=6, seed=0)
    assert planner.method == "cem"
    action = planner.act(z0, np.array([0.3, -0.2], np.float32))
    assert action.shape == (2,) and action.dtype == np.float32
    np.testing.assert_allclose(action, [0.6, -0.4], atol=0.05)
    assert planner.last_plan.cost < 1e-2
    # out of reach: the best action sits on the box's edge, never beyond
    action = planner.act(z0, np.array([5.0, 0.0], np.float32))
    assert space.contains(action) and action[0] == pytest.approx(1.0, abs=1e-3)
    # three steps to a goal 1.2 away: reachable in 3 steps of at most 0.5
    planner = LatentMPC(model, horizon=3, samples=300, elites=30, iterations=8, seed=0)
    plan = planner.plan(z0, np.array([1.2, 0.0], np.float32))
    assert plan.cost < 1e-2 and plan.actions.shape == (3, 2)
    assert np.all(plan.actions >= -1) and np.all(plan.actions <= 1)
    # replanning from where the first action led, warm-started from the shifted plan, closes the gap
    z = z0
    for _ in range(4):
        z = z + 0.5 * planner.act(z, np.array([1.2, 0.0], np.float32))
    np.testing.assert_allclose(z, [1.2, 0.0], atol=0.1)


def test_same_seed_same_actions():
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    goal = np.array([0.7, 0.1], np.float32)

    def cem_actions(seed):
        planner = LatentMPC(LinearModel(box), horizon=2, samples=20, elites=5, iterations=2, seed=seed)
        z, out = np.zeros(2, np.float32), []
        for _ in range(3):
            a = planner.act(z, goal)
            out.append(a)
            z = z + 0.5 * a
        return np.stack(out)

    np.testing.assert_array_equal(cem_actions(3), cem_actions(3))
    assert not np.array_equal(cem_actions(3), cem_actions(4))

    # discrete actions that all tie exactly: the seeded generator breaks the ties
    flat = LinearModel(gym.spaces.Discrete(8), deltas=np.zeros((8, 2)))

    def tied(seed):
        planner = LatentMPC(flat, horizon=2, seed=seed)
        return [planner.act(np.zeros(2, np.float32), goal) for _ in range(12)]

    assert tied(5) == tied(5) and tied(5) != tied(6)
    assert len(set(tied(5))) > 1  # not always the first action
    planner = LatentMPC(flat, horizon=2, seed=5)
    first = [planner.act(np.zeros(2, np.float32), goal) for _ in range(4)]
    planner.reset(seed=5)
    assert [planner.act(np.zeros(2, np.float32), goal) for _ in range(4)] == first


def test_bad_arguments_are_refused():
    shapes = OracleShapes()
    box = LinearModel(gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    cases = [
        (dict(model=shapes, horizon=0), "horizon must be an int >= 1"),
        (dict(model=shapes, horizon=2.5), "horizon must be an int >= 1"),
        (dict(model=shapes, method="greedy"), "method='greedy' is not known; choose one of auto"),
        (dict(model=shapes, action_space=gym.spaces.Discrete(7)), "does not match the model's action space"),
        (dict(model=shapes, method="cem"), "is discrete"),
        (dict(model=shapes, method="exhaustive", horizon=4), "exceeds exhaustive_limit=20000"),
        (dict(model=box, method="beam"), "is a box: use cem"),
        (dict(model=box, samples=10, elites=11), "elites (11) must not exceed samples (10)"),
        (dict(model=box, init_std=0.0), "init_std must be > 0"),
        (dict(model=box, beam_width=0), "beam_width must be an int >= 1"),
        (dict(model=object()), "must have an action_space"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            LatentMPC(**kwargs)
    assert set(METHODS) == {"auto", "exhaustive", "beam", "cem"}
    assert LatentMPC(shapes, horizon=4).method == "beam"  # 20^4 sequences: too many to enumerate
    unbounded = LinearModel(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(ValueError, match="infinite bounds"):
        LatentMPC(unbounded)
    with pytest.raises(ValueError, match="Discrete or Box"):
        LatentMPC(LinearModel(gym.spaces.MultiBinary(2)))
    with pytest.raises(ValueError, match="same shape"):
        LatentMPC(box, horizon=1).act(np.zeros(2, np.float32), np.zeros(3, np.float32))


def test_world_model_is_used_exported_in_eval_mode():
    from sen_rl.model import build_model

    model = build_model("SEN-Shapes-v0", "sen", "smoke").train()
    planner = LatentMPC(model, horizon=1, seed=0)
    assert planner.model is not model and not planner.model.training
    assert model.training  # the caller's model is left as it was
    env = gym.make("SEN-Shapes-Goal-v0")
    obs, info = env.reset(seed=0)
    action = planner.act(obs, info["goal_observation"])
    assert isinstance(action, int) and env.action_space.contains(action)
    eval_model = model.eval()
    assert LatentMPC(eval_model, horizon=1).model is eval_model  # nothing to export: used as it is


def test_wilson_interval_and_summary():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    env = gym.make("SEN-Shapes-Goal-v0")
    episodes = run_goal_episodes(env, RandomAgent(env.action_space, seed=0), 3, seed=0)
    assert all(e.steps == 20 or e.success for e in episodes)  # the budget of the grids
    assert {"state", "goal_state", "distance"} <= set(episodes[0].reset_info)
    summary = summarize(episodes)
    assert summary["episodes"] == 3 and summary["decisions"] == sum(e.steps for e in episodes)
    # the goals depend on the seed and the episode, not on the agent
    again = run_goal_episodes(env, LatentMPC(OracleShapes(), horizon=1, seed=0), 3, seed=0)
    for a, b in zip(episodes, again, strict=True):
        np.testing.assert_array_equal(a.reset_info["goal_state"], b.reset_info["goal_state"])


def test_memory_of_real_transitions_breaks_a_model_that_believes_in_a_blocked_move():
    # the model says action 0 jumps to the goal; in the world it is blocked (nothing moves),
    # while action 1 really moves half way
    space = gym.spaces.Discrete(2)
    model = LinearModel(space, deltas=[[1.0], [0.5]], dim=1)
    start, goal = np.zeros(1, np.float32), np.ones(1, np.float32)

    def world(z, a):
        return z + (0.0 if a == 0 else 0.5)

    for horizon in (1, 2):
        trusting = LatentMPC(model, horizon=horizon, memory=False, seed=0)
        z = start
        for _ in range(3):
            a = trusting.act(z, goal)
            trusting.observe(z, a, world(z, a))  # ignored without memory
            z = world(z, a)
        assert a == 0 and z[0] == 0.0  # stuck for ever on the blocked move

        planner = LatentMPC(model, horizon=horizon, seed=0)
        z, actions = start, []
        for _ in range(3):
            a = planner.act(z, goal)
            planner.observe(z, a, world(z, a))
            actions.append(a)
            z = world(z, a)
            if z[0] == 1.0:
                break
        # one try of the blocked move, then the moves that work (also at depth 2 from the same latent)
        assert actions == [0, 1, 1] and z[0] == 1.0
        planner.reset()
        assert planner.act(start, goal) == 0  # reset forgets what was learnt


def test_benchmark_tells_goals_that_need_an_unseen_direction():
    from benchmarks.planning import needs_unseen_direction

    start = np.array([[2, 2], [0, 0]])
    assert not needs_unseen_direction(start, start)
    assert not needs_unseen_direction(start, start + [[-2, 0], [0, 0]])  # up only
    for delta in ([1, 0], [0, 1], [0, -1], [-1, 1]):  # down, right, left, up and right
        assert needs_unseen_direction(start, start + np.array([delta, [0, 0]]))
    assert not needs_unseen_direction(start, start + [[1, 0], [0, 0]], seen=("up", "down"))
