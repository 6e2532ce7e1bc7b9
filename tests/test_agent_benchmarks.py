"""The agent benchmarks run end to end at tiny sizes: RL on Reacher's reward, and the agents' speed."""

import json

import gymnasium as gym
import numpy as np
import pytest

from benchmarks import agent_speed, rl_reacher

SMOKE = rl_reacher.PRESETS["smoke"]
ALL = rl_reacher.CONDITIONS + rl_reacher.BASELINES


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of rl_reacher (world model, every condition, seed 0) in a fresh workdir."""
    workdir = tmp_path_factory.mktemp("rl_reacher")
    cpu_plot = rl_reacher.IMG_DIR / "rl_reacher_cpu.png"
    before = cpu_plot.stat().st_mtime_ns if cpu_plot.exists() else None
    assert rl_reacher.main(["--preset", "smoke", "--seeds", "0", "--workdir", str(workdir)]) == 0
    after = cpu_plot.stat().st_mtime_ns if cpu_plot.exists() else None
    assert after == before  # a smoke run never writes the repository's figure
    return workdir


def test_rl_reacher_smoke_tabulates_every_condition(smoke_run):
    text = (smoke_run / "rl_reacher.md").read_text()
    data = json.loads((smoke_run / "rl_reacher.json").read_text())
    rows = {r["condition"]: r for r in data["rows"]}
    assert list(rows) == list(ALL)

    # the zoo's columns, one table row per condition, the ceiling fraction beside each
    assert "| algo | env_id | obs | mean_reward | std_reward | n_timesteps | eval_episodes | wall time |" in text
    for condition in ALL:
        assert f"| {rl_reacher.OBS_LABELS[condition]} |" in text
    assert rows["state"]["ceiling_fraction"] == 1.0  # by construction
    assert rows["random"]["ceiling_fraction"] == 0.0
    lines = {c: next(li for li in text.splitlines() if f"| {rl_reacher.OBS_LABELS[c]} |" in li) for c in ALL}
    assert lines["state"].endswith("| 1.00 |") and lines["random"].endswith("| 0.00 |")
    r_random, r_state = rows["random"]["mean_reward"], rows["state"]["mean_reward"]
    for c in ALL:
        want = (rows[c]["mean_reward"] - r_random) / (r_state - r_random)
        assert rows[c]["ceiling_fraction"] == pytest.approx(want)

    # equal env steps, the same evaluation episodes for all, and every SAC run learned
    updates = (SMOKE.steps - SMOKE.sac["learning_starts"]) // SMOKE.sac["train_freq"]
    for c in rl_reacher.CONDITIONS:
        assert rows[c]["n_timesteps"] == SMOKE.steps and rows[c]["algo"] == "SAC"
        assert rows[c]["gradient_steps"] == updates
        curve = data["curves"][c][0]
        assert [x for x, _ in curve] == list(range(0, SMOKE.steps + 1, SMOKE.eval_every))
    for c in ALL:
        assert rows[c]["eval_episodes"] == SMOKE.final_eval_episodes
        assert np.isfinite(rows[c]["mean_reward"]) and rows[c]["mean_reward"] < 0  # the reward is a cost
    # uniform torques pay E|a|^2 = 2/3 a step in control cost alone; zero torque pays none
    assert rows["random"]["mean_reward"] < rows["zero"]["mean_reward"]

    # what the run records: command, preset, machine, the world model's score; logs and plot
    assert "--preset smoke" in text and "Preset: `smoke`" in text
    assert "CPU capability" in text and "cores" in text
    assert "World model: `sen`" in text and "MRR" in text
    wm = data["world_model"]
    assert data["machine"]["cores"] >= 1 and wm["samples"] == SMOKE.wm_eval_episodes
    assert 0 <= wm["hh@1"] <= 1 and 0 < wm["mrr"] <= 1
    for which in ("trained", "untrained"):  # the linear probe of the latent, beside an untrained SEN's
        assert list(wm["probe"][which]) == list(rl_reacher.PROBE_TARGETS)
        assert all(np.isfinite(v) and v <= 1 for v in wm["probe"][which].values())
    assert "| trained SEN |" in text and "| untrained SEN |" in text
    assert (smoke_run / "rl_reacher_smoke.png").stat().st_size > 0
    for c in rl_reacher.CONDITIONS:
        assert list((smoke_run / "tb").glob(f"{c}_seed0_*")), c  # TensorBoard, one folder per run
    assert not list(smoke_run.rglob(".*.tmp-*"))  # atomic writes left nothing behind


def test_rl_reacher_reuses_cached_runs(smoke_run, capsys):
    result = smoke_run / "runs/state/seed0/result.json"
    stamp = result.stat().st_mtime_ns
    ckpt = smoke_run / "world_model_smoke/best.pt"
    ckpt_stamp = ckpt.stat().st_mtime_ns
    args = ["--preset", "smoke", "--seeds", "0", "--workdir", str(smoke_run), "--conditions", "state", "random"]
    assert rl_reacher.main(args) == 0
    assert result.stat().st_mtime_ns == stamp and ckpt.stat().st_mtime_ns == ckpt_stamp
    rows = {r["condition"]: r for r in json.loads((smoke_run / "rl_reacher.json").read_text())["rows"]}
    assert list(rows) == ["state", "random"]
    # other settings are a different run: redone, not served from the cache
    assert rl_reacher.main([*args[:-2], "state", "--steps", str(SMOKE.steps + SMOKE.eval_every)]) == 0
    assert result.stat().st_mtime_ns != stamp
    assert json.loads(result.read_text())["key"]["steps"] == SMOKE.steps + SMOKE.eval_every
    capsys.readouterr()


def test_every_condition_gets_the_same_sac_settings(smoke_run):
    ckpt = smoke_run / "world_model_smoke/best.pt"
    agents = {}
    for c in rl_reacher.CONDITIONS:
        env = rl_reacher.make_env(c, SMOKE, ckpt)
        agents[c] = rl_reacher.make_agent(c, env, SMOKE, SMOKE.steps, 0, ckpt, None)
    settings = {
        c: (
            a.learning_rate,
            a.batch_size,
            a.buffer_size,
            a.learning_starts,
            a.train_freq.frequency,
            a.gradient_steps,
            a.gamma,
            a.tau,
            float(a.log_ent_coef.exp().item()),
            a.policy.net_arch,
        )
        for c, a in agents.items()
    }
    assert len(set(map(repr, settings.values()))) == 1, settings
    extractor = {c: type(a.policy.actor.features_extractor).__name__ for c, a in agents.items()}
    assert extractor == {
        "pixels": "NatureCNN",
        "sen_frozen": "FlattenExtractor",
        "sen_finetune": "SENFeaturesExtractor",
        "state": "FlattenExtractor",
    }
    assert agents["sen_finetune"].policy.actor.features_extractor.fine_tune
    assert agents["sen_frozen"].observation_space.shape == (32,)  # the SEN latent
    assert agents["state"].observation_space.shape == (12,)


def test_state_observation_is_the_envs_world_state():
    import sen_rl  # noqa: F401

    env = rl_reacher.StateObservation(gym.make("SEN-Reacher-v0", size=16))
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, info["state"].astype(np.float32))
    obs, *_, info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs, np.asarray(env.unwrapped.get_state(), dtype=np.float32))
    np.testing.assert_array_equal(obs, info["state"].astype(np.float32))


def test_latent_probe_reads_a_latent_that_holds_the_angles(tmp_path):
    """A 'model' whose latent is the true sin/cos of the joint angles is probed at R^2 = 1 for them."""
    from sen_rl.data import CollectConfig, RolloutDataset, collect

    path = collect(
        CollectConfig("SEN-Reacher-v0", 6, 3, warmup=5, env_kwargs={"size": 16}, num_envs=1, vectorization="sync"),
        tmp_path / "r.h5",
        progress=False,
    )
    with RolloutDataset(path) as ds:  # observation bytes -> state: an "encoder" that reads the state
        obs, states = ds.obs[()].reshape(-1, *ds.obs_shape), ds.states[()].reshape(-1, 12)
    table = {o.tobytes(): s for o, s in zip(obs, states, strict=True)}
    assert len(table) == len(obs)  # every frame tells its state apart

    class StateModel:
        def encode(self, obs):
            import torch

            s = np.stack([table[o.tobytes()] for o in np.asarray(obs)])
            return torch.as_tensor(np.c_[np.sin(s[:, 4:6]), np.cos(s[:, 4:6])])

    r2 = rl_reacher.latent_probe(StateModel(), path, path)
    for name in ("sin q0", "cos q0", "sin q1", "cos q1"):
        assert r2[name] == pytest.approx(1.0, abs=1e-3)


def test_ceiling_fraction():
    assert rl_reacher.ceiling_fraction(-10.0, -40.0, -5.0) == pytest.approx(30 / 35)
    assert rl_reacher.ceiling_fraction(-5.0, -40.0, -5.0) == 1.0
    assert rl_reacher.ceiling_fraction(-40.0, -40.0, -5.0) == 0.0
    assert np.isnan(rl_reacher.ceiling_fraction(-1.0, -3.0, -3.0))


def test_agent_speed_reports_every_measurement(tmp_path, capsys):
    out = tmp_path / "speed.json"
    args = ["--preset", "smoke", "--threads", "1", "--steps", "6", "--num-envs", "2", "--vector-steps", "3"]
    assert agent_speed.main([*args, "--decisions", "2", "--horizons", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("CPU: ") and "cores" in text
    assert "| SENWorldModel overhead per env step, batch 1" in text
    assert "| SENWorldModelVec overhead per sub-env step, SyncVectorEnv of 2 | 1 |" in text
    assert "LatentMPC decisions per second, Reacher | 1 |" in text and "method='cem'" in text
    assert "LatentMPC decisions per second, 2D Shapes | 1 |" in text and "method='exhaustive'" in text
    data = json.loads(out.read_text())
    (m,) = data["measurements"]
    w = m["wrapper"]
    assert w["num_envs"] == 2 and min(w["bare_step"], w["wrapped_step"], w["encode"]) > 0
    assert w["overhead"] == pytest.approx(w["wrapped_step"] - w["bare_step"])
    assert [(p["domain"], p["horizon"]) for p in m["planning"]] == [("Reacher", 2), ("2D Shapes", 2)]
    assert all(p["decisions_per_second"] > 0 and p["transitions_per_decision"] > 0 for p in m["planning"])


def test_planning_smoke_tabulates_every_agent_on_the_same_goals(tmp_path):
    from benchmarks import planning

    assert planning.main(["--preset", "smoke", "--seeds", "0", "--workdir", str(tmp_path)]) == 0
    text = (tmp_path / "planning.md").read_text()
    headline, rest = text.split("## All goals")
    all_goals = rest.split("##")[0]
    agents = (
        "random",
        "none (all)",
        "sen (all)",
        "none (up)",
        "sen (up)",
        "none (up), no memory",
        "sen (up), no memory",
    )
    header = next(line for line in all_goals.splitlines() if line.startswith("| seed"))
    assert [c.strip() for c in header.strip("|").split("|")][2:] == list(agents)
    row = next(line for line in all_goals.splitlines() if line.startswith("| 0 |"))
    n_all = int(row.split("|")[2])
    hard = next(line for line in headline.splitlines() if line.startswith("| 0 |"))
    assert 0 < int(hard.split("|")[2]) <= n_all  # the unseen-direction goals are a subset of all goals


def test_planning_splits_are_the_papers_and_fit_the_domain_table():
    from benchmarks import planning, reproduce
    from sen_rl.domains import domain_of, register_envs

    register_envs()
    # the unseen-action splits of benchmarks/reproduce.py, one experiment per grid domain
    papers = {e.env_id: tuple(e.train_actions) for e in reproduce.EXPERIMENTS.values() if e.train_actions}
    assert {env: s.seen for env, s in planning.SPLITS.items()} == papers
    for env_id, split in planning.SPLITS.items():
        domain = domain_of(env_id)
        assert domain.goal is not None and domain.goal_env_id in gym.registry
        assert set(split.seen) < set(domain.direction_names)
    cubes = planning.SPLITS["SEN-Cubes-v0"]
    assert [a.name for a in planning.agents(cubes)][3:5] == ["none (u,r,d)", "sen (u,r,d)"]
    # 2D Shapes keeps its cache: workdir and the names in its file, run and evaluation keys
    shapes = planning.SPLITS["SEN-Shapes-v0"]
    assert shapes.workdir.format(preset="cpu") == "runs/planning/cpu" and shapes.data == "up"
    workdirs = {s.workdir for s in planning.SPLITS.values()}
    assert len(workdirs) == len(planning.SPLITS)


def test_planning_tells_blocks_goals_that_need_a_direction_outside_up_right_down():
    from benchmarks.planning import SPLITS, needs_unseen_direction

    urd = SPLITS["SEN-Cubes-v0"].seen
    start = np.array([[2, 2], [0, 0], [4, 4], [1, 3], [3, 1]])

    def goal(*moves):
        """``start`` with objects displaced: (object, (d_row, d_col)) pairs."""
        out = start.copy()
        for obj, delta in moves:
            out[obj] += delta
        return out

    assert not needs_unseen_direction(start, start, urd)
    assert not needs_unseen_direction(start, goal((0, (-2, 0)), (1, (0, 1)), (2, (-1, 0)), (3, (1, 0))), urd)
    assert not needs_unseen_direction(start, goal((0, (1, 2))), urd)  # down and right
    assert needs_unseen_direction(start, goal((1, (0, 1)), (4, (0, -1))), urd)  # object 4 ends left
    assert needs_unseen_direction(start, goal((0, (-1, -1))), urd)  # up and left
    # up only (2D Shapes): the same down/right goal needs unseen directions
    assert needs_unseen_direction(start, goal((0, (1, 2))), SPLITS["SEN-Shapes-v0"].seen)

    # 3D Blocks' own moves, from its info["state"]: exactly a left move leaves {up, right, down}
    env = gym.make("SEN-Cubes-v0", size=16)
    try:
        for direction, name in enumerate(("up", "right", "down", "left")):
            env.reset(options={"state": start})
            *_, info = env.step(0 * 4 + direction)  # object 0 in the middle: every move is free
            assert not np.array_equal(info["state"], start)
            assert needs_unseen_direction(start, info["state"], urd) == (name == "left"), name
    finally:
        env.close()


def test_planning_report_names_the_blocks_split():
    """The report of 3D Blocks (made from hand-made results: no training) says which moves its models saw."""
    import argparse

    from benchmarks import planning

    split = planning.SPLITS["SEN-Cubes-v0"]
    names = [a.name for a in planning.agents(split)]
    rows = [
        {"success": s, "steps": 3, "decisions": 3, "decision_seconds": 0.01, "unseen": u}
        for s, u in ((True, True), (False, True), (True, False), (True, False))
    ]
    results = {0: {a: rows for a in names}}
    checks = {0: {a: None if a == "random" else {"seen": 0.1, "unseen": 0.2} for a in names}}
    args = argparse.Namespace(env="SEN-Cubes-v0", seeds=[0], preset="smoke")
    settings = {"goals": 4, "goal_steps": 5, "max_steps": 20, "horizon": 1, "method": "exhaustive"}
    times = {"wall": 1.0, "train": 0.5, "eval": 0.5}
    text = planning.report(results, checks, args, planning.PRESETS["smoke"], settings, times, times, "cmd")
    head, rest = text.split("## All goals")
    assert text.startswith("# Goal reaching on 3D Blocks") and "`SEN-Cubes-Goal-v0`" in text
    assert "models trained on {up, right, down} never saw" in head and "points left." in head
    header = next(line for line in head.splitlines() if line.startswith("| seed"))
    assert [c.strip() for c in header.strip("|").split("|")][2:] == list(planning.headline(split))
    assert "| 0 | 2 |" in head and "| 0 | 4 |" in rest  # the unseen-direction goals, then all
    assert "| model | up/right/down moves, seeds 0 | up/right/down, mean |" in rest
    assert "Target, sen (u,r,d) >= 80% on the unseen-direction goals: MISSED (50.0% of 2" in rest


def test_planning_evaluation_cache_is_per_domain(tmp_path):
    """A cached evaluation written before the benchmark had other domains (no "env") is 2D Shapes'."""
    from benchmarks import planning

    agent = planning.Agent("random")
    settings = {"goals": 1, "goal_steps": 5, "max_steps": 20, "horizon": 1, "transitions": 10, "epochs": 1}
    path = tmp_path / "eval" / "seed0" / "random.json"
    path.parent.mkdir(parents=True)
    marker = [{"success": True, "steps": 7, "decisions": 7, "decision_seconds": 0.0, "unseen": True}]
    key = {**settings, "agent": "random", "seed": 0}
    path.write_text(json.dumps({"key": key, "episodes": marker, "check": None, "seconds": 1.0}))
    rows, _, _ = planning.evaluate_agent(tmp_path, "SEN-Shapes-v0", agent, None, settings, 0, False)
    assert rows == marker  # served from the cache
    rows, _, _ = planning.evaluate_agent(tmp_path, "SEN-Cubes-v0", agent, None, settings, 0, False)
    assert rows != marker and len(rows) == 1  # played on 3D Blocks
    assert json.loads(path.read_text())["env"] == "SEN-Cubes-v0"


def test_planning_retrains_a_cached_model_of_another_batch(tmp_path, monkeypatch):
    """Models cached before the domain's batch changed must not pass for models at today's batch."""
    from benchmarks import planning
    from sen_rl import train as train_module
    from sen_rl.model import read_checkpoint

    args = (tmp_path, "SEN-Shapes-v0", "up", "sen", planning.PRESETS["smoke"], 0, 1, False, False)
    best, seconds = planning.trained_model(*args)
    batch = read_checkpoint(best.parent / "last.pt")["train_config"]["batch_size"]
    assert batch == train_module.default_batch_size("SEN-Shapes-v0", "smoke")
    assert planning.trained_model(*args) == (best, seconds)  # served from the cache
    monkeypatch.setattr(train_module, "default_batch_size", lambda env_id, preset: batch // 2)
    _, retrained = planning.trained_model(*args)
    assert retrained != seconds
    assert read_checkpoint(best.parent / "last.pt")["train_config"]["batch_size"] == batch // 2
    assert planning.trained_model(*args)[1] == retrained  # and cached again at the new batch
