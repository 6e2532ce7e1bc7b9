"""benchmarks/plan_checkpoints.py: LatentMPC on given checkpoints per seed, beside random actions, same goals."""

import contextlib
import datetime
import io
import json

import gymnasium as gym
import pytest
import torch

import sen_rl  # noqa: F401  (registers the envs)
from benchmarks import plan_checkpoints as pc
from sen_rl.agents.planning import RandomAgent, run_goal_episodes
from sen_rl.model import build_model

SEEDS, GOALS = 2, 3


def _checkpoint(path, env_id="SEN-Shapes-v0", variant="sen", seed=0, **kw):
    # untrained smoke models: the benchmark plays whatever a checkpoint holds, and these save in milliseconds
    torch.manual_seed(seed)
    return build_model(env_id, variant, "smoke", **kw).save(path)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan_checkpoints")
    return {v: [_checkpoint(d / f"{v}{s}.pt", variant=v, seed=s) for s in range(SEEDS)] for v in ("sen", "none")}


@pytest.fixture(scope="module")
def run(ckpts, tmp_path_factory):
    """One run of the benchmark on both agents: the printed text, the --out file and the --json data."""
    d = tmp_path_factory.mktemp("plan_out")
    argv = [f"--agent={v}=" + ",".join(str(p) for p in paths) for v, paths in ckpts.items()]
    argv += ["--goals", str(GOALS), "--horizon", "1", "--quiet", "--out", str(d / "t.md"), "--json", str(d / "t.json")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert pc.main(argv) == 0
    return printed.getvalue(), (d / "t.md").read_text(), json.loads((d / "t.json").read_text())


def test_table_has_a_row_per_agent_and_random_and_what_was_run(run):
    printed, text, data = run
    assert text in printed  # the same markdown goes to stdout and --out
    lines = text.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("| agent | seed 0")))
    rows = lines[first + 2 : lines.index("", first)]  # the success table's rows (the metric table follows)
    assert [r.split(" | ")[0][2:] for r in rows] == ["sen", "none", "random"]
    for row in rows:
        label = row.split(" | ")[0][2:]
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert len(cells) == SEEDS + 3  # per seed, pooled, steps, ms
        summary = data["agents"][label]
        for cell, s in zip(cells[:SEEDS], summary["per_seed"], strict=True):
            assert cell == f"{round(100 * s['success_rate'])}%"
        assert cells[SEEDS].startswith(f"{round(100 * summary['pooled']['success_rate'])}% (")
    assert "Command: `python -m benchmarks.plan_checkpoints --agent=sen=" in text and "--goals 3" in text
    assert "Machine: " in text and f"Date: {datetime.date.today().isoformat()}" in text
    assert "`SEN-Shapes-Goal-v0`" in text and "budget 20 steps" in text and "goals 5 random steps" in text
    assert "Planner: `LatentMPC(method='exhaustive', horizon=1)`" in text
    assert data["planner"] == "LatentMPC(method='exhaustive', horizon=1)" and data["env_id"] == "SEN-Shapes-v0"
    assert data["goal_task"]["max_steps"] == 20 and data["command"] in text and data["machine"] in text


def test_pooled_summaries_add_up_the_seeds(run):
    _, _, data = run
    assert list(data["agents"]) == ["sen", "none", "random"]
    for label, s in data["agents"].items():
        per_seed, pooled = s["per_seed"], s["pooled"]
        assert len(per_seed) == SEEDS and all(x["episodes"] == GOALS for x in per_seed)
        assert pooled["episodes"] == SEEDS * GOALS
        assert pooled["successes"] == sum(x["successes"] for x in per_seed)
        assert pooled["decisions"] == sum(x["decisions"] for x in per_seed)
        assert pooled["ci_low"] <= pooled["success_rate"] <= pooled["ci_high"]
        episodes = [e for seed in data["episodes"][label] for e in seed]
        assert pooled["successes"] == sum(e["success"] for e in episodes)
        assert all(1 <= e["steps"] <= 20 for e in episodes)  # no goal is reached at the start


def test_every_agent_plays_the_goals_of_its_seed(run):
    _, _, data = run
    episodes = data["episodes"]
    for seed in range(SEEDS):
        starts_goals = {
            label: [(e["state"], e["goal_state"]) for e in episodes[label][seed]] for label in ("sen", "none", "random")
        }
        assert starts_goals["sen"] == starts_goals["none"] == starts_goals["random"]
        # seed i's goals are run_goal_episodes(seed=i)'s, whatever the agent
        env = gym.make("SEN-Shapes-Goal-v0")
        direct = run_goal_episodes(env, RandomAgent(env.action_space, seed=99), GOALS, seed=seed)
        env.close()
        assert starts_goals["random"] == [
            (e.reset_info["state"].tolist(), e.reset_info["goal_state"].tolist()) for e in direct
        ]
    assert episodes["sen"][0] != episodes["sen"][1]  # seeds play different goals


def test_mismatched_checkpoints_are_refused(ckpts, tmp_path, capsys):
    sen, none = ckpts["sen"], ckpts["none"]
    with pytest.raises(ValueError, match=r"one checkpoint per seed.*'sen' 2, 'none' 1"):
        pc.check_checkpoints({"sen": sen, "none": none[:1]})

    teapot = _checkpoint(tmp_path / "teapot.pt", "SEN-Teapot-v0")
    with pytest.raises(ValueError) as e:
        pc.check_checkpoints({"sen": sen, "none": [none[0], teapot]})
    assert str(teapot) in str(e.value) and "SEN-Teapot-v0" in str(e.value) and "SEN-Shapes-v0" in str(e.value)
    assert "'none', seed 1" in str(e.value)

    four = _checkpoint(tmp_path / "four.pt", env_kwargs={"n_objects": 4})
    with pytest.raises(ValueError) as e:
        pc.check_checkpoints({"sen": [four, sen[1]]})
    assert str(sen[1]) in str(e.value) and '"n_objects": 4' in str(e.value) and "env_kwargs" in str(e.value)

    missing = tmp_path / "missing.pt"
    with pytest.raises(FileNotFoundError, match="missing.pt") as e:
        pc.check_checkpoints({"sen": [sen[0], missing]})
    assert str(missing) in str(e.value) and "'sen', seed 1" in str(e.value)
    # the command line says the same as a usage error, before playing anything
    with pytest.raises(SystemExit) as exit_info:
        pc.main(["--agent", f"sen={sen[0]},{missing}", "--goals", "1", "--quiet"])
    assert exit_info.value.code == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--agent", "sen"],  # no checkpoints
        ["--agent", "sen=a.pt,,b.pt"],  # an empty path
        ["--agent", "random=a.pt"],  # the random row's label
        ["--agent", "x=a.pt", "--agent", "x=b.pt"],  # the same label twice
        ["--agent", "x=a.pt", "--goals", "0"],
    ],
)
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        pc.main(argv)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_rank_correlation_on_hand_made_cases():
    x = [0.1, 0.5, 0.2, 0.9]
    assert pc.rank_correlation(x, [1, 5, 2, 9]) == pytest.approx(1.0)  # same order, other scale
    assert pc.rank_correlation(x, [9, 1, 5, 0]) == pytest.approx(-1.0)
    assert pc.rank_correlation(x, [3, 3, 3, 3]) != pc.rank_correlation(x, [3, 3, 3, 3])  # nan: constant


class _PixelModel:
    """A stand-in model: the latent is the picture, the energy the squared pixel distance."""

    def encode(self, obs):
        return torch.as_tensor(obs.reshape(len(obs), -1), dtype=torch.float64)

    def energy(self, z, z_goal):
        return (z - z_goal).square().sum(-1)


def test_metric_check_reads_the_episodes_starts_and_goals(ckpts, run):
    """The check sees the same starts and goals as the episodes (its median distance is theirs), and
    its correlations are within [-1, 1] and in the JSON."""
    import numpy as np

    env = gym.make("SEN-Shapes-Goal-v0")
    check = pc.goal_metric_check(_PixelModel(), pc.goal_views(env, GOALS, seed=1))
    played = run_goal_episodes(env, RandomAgent(env.action_space, seed=0), GOALS, seed=1)
    env.close()
    assert check["median_distance"] == np.median([e.reset_info["distance"] for e in played])
    assert all(-1 <= check[k] <= 1 for k in ("all", "near") if check[k] == check[k])
    _, text, data = run
    assert set(data["metric_check"]) == {"sen", "none"} and len(data["metric_check"]["sen"]) == SEEDS
    assert "rank correlation, all starts" in text
