"""The benchmark scripts run end to end at tiny sizes and write what they promise."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import collect_speed, reproduce


def test_reproduce_smoke_writes_the_table(tmp_path, capsys):
    tracked = reproduce.TRACKED_RESULTS  # the repository's docs/RESULTS.md
    before = (tracked.read_bytes(), tracked.stat().st_mtime_ns) if tracked.exists() else None
    args = ["--preset", "smoke", "--only", "shapes_up", "--seeds", "0", "--workdir", str(tmp_path), "--device", "cpu"]

    # a partial smoke run: the table goes to the run's workdir, never over the tracked results
    assert reproduce.main(args) == 0
    default = tmp_path / "runs/reproduce/smoke/RESULTS.md"
    out = capsys.readouterr().out
    assert f"tables written to {default}" in out
    assert "shapes_up: training time " in out and ", 3 runs in all" in out
    after = (tracked.read_bytes(), tracked.stat().st_mtime_ns) if tracked.exists() else None
    assert after == before
    assert not list(tracked.parent.glob(f".{tracked.name}.tmp-*"))
    text = default.read_text()
    assert "Unseen actions: 2D Shapes trained on {up}" in text
    assert "| sen (ours, 1 seeds) |" in text and "| sen (paper) | 100 | 99.9 |" in text
    assert "--preset smoke" in text  # the command that made the table
    assert "Training time, all runs of this table:" in text
    assert "What we found" not in text  # docs/RESULTS_findings.md belongs to the tracked results only
    # a run's training time is its epochs' (so that it adds up when a run is resumed)
    run = tmp_path / "runs/reproduce/smoke/shapes_up/sen/seed0"
    history = torch.load(run / "last.pt", weights_only=False)["history"]
    train_s = json.loads((run / "eval.json").read_text())["train_seconds"]
    assert train_s == pytest.approx(sum(r["epoch_seconds"] for r in history))

    # --results chooses the file; a second run reuses the cached evaluation instead of training again
    results = tmp_path / "elsewhere/RESULTS.md"
    eval_json = tmp_path / "runs/reproduce/smoke/shapes_up/sen/seed0/eval.json"
    stamp = eval_json.stat().st_mtime_ns
    assert reproduce.main([*args, "--results", str(results)]) == 0
    assert eval_json.stat().st_mtime_ns == stamp
    assert f"tables written to {results}" in capsys.readouterr().out
    assert results.read_text().split("\n## ", 1)[1] == text.split("\n## ", 1)[1]  # the same tables


def test_reproduce_jobs_gives_the_results_of_one_run_at_a_time(tmp_path, monkeypatch, capsys):
    import json
    import re
    import shutil

    import torch

    assert reproduce.worker_threads(1) == 0  # torch's default, as before --jobs
    assert reproduce.worker_threads(2) == max(1, (os.cpu_count() or 1) // 2)
    assert reproduce.worker_threads(10**6) == 1
    # one thread in both runs whatever the cores: float sums, so the results, change with the thread count
    monkeypatch.setattr(reproduce, "worker_threads", lambda jobs: 1)
    threads = torch.get_num_threads()
    args = ["--preset", "smoke", "--only", "shapes_up", "--variants", "none", "sen", "--seeds", "0", "1"]
    args += ["--device", "cpu"]
    try:
        assert reproduce.main([*args, "--workdir", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)  # the --jobs 1 runs set it in this process
    shutil.copytree(tmp_path / "one/data", tmp_path / "two/data")  # the same datasets, not collected again
    capsys.readouterr()
    assert reproduce.main([*args, "--workdir", str(tmp_path / "two"), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "shapes_up: training time " in out and ", 4 runs in all, wall " in out and " with --jobs 2\n" in out
    assert "all tables: wall " in out

    def tables(workdir):
        text = (workdir / "runs/reproduce/smoke/RESULTS.md").read_text().split("\n## ", 1)[1]
        # training and wall times differ from run to run; every figure of the table must not
        return re.sub(r"Training time, .*", "", text), re.search(r"Training time, .*", text)[0]

    one, two = tables(tmp_path / "one"), tables(tmp_path / "two")
    assert one[0] == two[0] and "| sen (ours, 2 seeds) |" in two[0]
    assert re.fullmatch(r"Training time, all runs of this table: \d+ s \(wall \d+ s with --jobs 1\)\.", one[1])
    assert re.fullmatch(r"Training time, all runs of this table: \d+ s \(wall \d+ s with --jobs 2\)\.", two[1])
    apart = {"train_seconds", "started", "finished", "jobs", "data"}  # times, and the path of each workdir's dataset
    for variant in ("none", "sen"):
        for seed in (0, 1):
            rel = f"runs/reproduce/smoke/shapes_up/{variant}/seed{seed}/eval.json"
            a, b = (json.loads((tmp_path / w / rel).read_text()) for w in ("one", "two"))
            assert (a["jobs"], b["jobs"]) == (1, 2) and b["finished"] > b["started"]
            assert {k: v for k, v in a.items() if k not in apart} == {k: v for k, v in b.items() if k not in apart}


def test_reproduce_jobs_below_one_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--preset", "smoke", "--jobs", "0", "--workdir", str(tmp_path)])
    assert exc.value.code == 2 and "--jobs must be at least 1, got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before collecting anything


def test_reproduce_wall_time_is_the_union_of_the_runs_spans():
    runs = {"sen": [{"started": 0, "finished": 100, "jobs": 2}, {"started": 50, "finished": 200, "jobs": 2}]}
    assert reproduce.wall_time(runs) == "wall 3 min with --jobs 2"
    # a run finished an hour later (an interrupted table, continued): the pause is no wall time
    runs["none"] = [{"started": 3800, "finished": 3860, "jobs": 1}]
    assert reproduce.wall_time(runs) == "wall 4 min with --jobs 1, 2"
    runs["full"] = [{"hits@1": 1.0}]  # an eval.json from before --jobs: no wall time to tell
    assert reproduce.wall_time(runs) == "" and reproduce.wall_time({}) == ""


def test_reproduce_tables_go_to_the_tracked_file_only_for_a_full_run(tmp_path):
    parse = argparse.Namespace
    full = dict(results=None, only=None, variants=None)
    assert reproduce.results_path(parse(preset="cpu", **full), tmp_path)[0] == reproduce.TRACKED_RESULTS
    assert reproduce.results_path(parse(preset="paper", **full), tmp_path)[0] == reproduce.TRACKED_RESULTS
    workdir_table = tmp_path / "runs/reproduce/cpu/RESULTS.md"
    for partial in (dict(only=["reacher"]), dict(variants=["sen"])):
        assert reproduce.results_path(parse(preset="cpu", **{**full, **partial}), tmp_path)[0] == workdir_table
    smoke = reproduce.results_path(parse(preset="smoke", **full), tmp_path)[0]
    assert smoke == tmp_path / "runs/reproduce/smoke/RESULTS.md"
    asked = parse(preset="smoke", **{**full, "results": "docs/RESULTS.md", "only": ["reacher"]})
    assert reproduce.results_path(asked, tmp_path)[0] == Path("docs/RESULTS.md")


def test_reproduce_experiments_take_the_domain_defaults():
    from sen_rl.domains import domain_of

    for exp in reproduce.EXPERIMENTS.values():
        d = domain_of(exp.env_id)
        assert set(exp.variants) <= set(d.variants)
        assert exp.eval_steps >= exp.horizon
    reacher, shapes = reproduce.EXPERIMENTS["reacher"], reproduce.EXPERIMENTS["shapes_up"]
    assert (reacher.steps, reacher.warmup, reacher.horizon) == (10, 50, 1)  # the paper's Reacher sets
    assert (shapes.steps, shapes.warmup, shapes.horizon, shapes.eval_steps) == (1, 0, 10, 10)
    assert reacher.env_kwargs_for("cpu") == {"size": 64} and reacher.env_kwargs_for("paper") == {}
    assert reproduce.EXPERIMENTS["teapot"].env_kwargs_for("cpu") == {"actions": "large"}
    assert "full" not in reproduce.EXPERIMENTS["teapot"].variants


def test_reproduce_training_settings_layer_experiment_then_variant():
    settings = reproduce.training_settings
    # an experiment-wide rate reaches every variant; a variant's own settings go on top
    for variant in ("sen", "none", "full"):
        assert settings("reacher", variant, "cpu") == {"epochs": 60, "batch_size": 64, "lr": 1e-3}
    assert settings("teapot", "hvae", "cpu") == {"epochs": 4, "batch_size": 64, "lr": 1e-3}
    assert settings("teapot", "sen", "cpu") == {"epochs": 150, "batch_size": None}  # the paper's lr
    assert "lr" not in settings("reacher", "sen", "paper")


def test_collect_speed_reports_every_run(capsys):
    assert (
        collect_speed.main(
            ["--fraction", "0.002", "--twins-fraction", "0.002", "--only", "SEN-Shapes-v0", "--num-envs", "1"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| SEN-Shapes-v0 | no |" in out and "| SEN-Shapes-v0 | yes |" in out


@pytest.mark.parametrize("actions", ["small", "large"])
def test_teapot_plot_takes_either_action_space(tmp_path, actions):
    import gymnasium as gym
    from PIL import Image

    import sen_rl
    from benchmarks import plots

    model = sen_rl.build_model("SEN-Teapot-v0", "sen", "smoke", env_kwargs={"actions": actions})
    assert isinstance(model.action_space, gym.spaces.Box) == (actions == "large")
    ckpt = model.save(tmp_path / "model.pt")
    out = plots.teapot_traversals(str(ckpt), str(tmp_path / "traversals.png"))
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > im.height > 100


def test_train_speed_authors_mode_names_what_is_wrong(tmp_path, capsys):
    from benchmarks import train_speed

    def error_of(path) -> str:
        with pytest.raises(SystemExit) as exc:
            train_speed.main(["--authors", str(path)])
        assert exc.value.code == 2  # argparse's usage error, before any model is built
        return capsys.readouterr().err

    missing = tmp_path / "no-such-checkout"
    err = error_of(missing)
    assert f"--authors {missing}: no such directory" in err and "Clone the authors' repository" in err

    # a folder that is not their repository: the files the mode needs are named
    (tmp_path / "other").mkdir()
    err = error_of(tmp_path / "other")
    assert "not a checkout of the authors' code" in err and "sen/net/encoder.py" in err

    # their files present, but importing a package this environment lacks: named, with the fix
    fake = tmp_path / "fake"
    for rel in train_speed.AUTHORS_FILES:
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text("import os\nimport torch\nfrom sen import utils\n")
    (fake / "sen/net/encoder.py").write_text("import no_such_pkg_xyz.nn\nfrom sen import utils\n")
    err = error_of(fake)
    assert "imports no_such_pkg_xyz, not installed here" in err and "pip install no_such_pkg_xyz" in err
    assert "torch" not in err.split("imports", 1)[1].split("not installed")[0]  # only what is missing


def test_train_speed_authors_mode_rejects_other_settings(capsys):
    from benchmarks import train_speed

    with pytest.raises(SystemExit):
        train_speed.main(["--authors", "x", "--preset", "cpu"])
    assert "--authors compares SEN-Cubes-v0 sen, preset paper, fp32" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # their model is timed eager, so ours must be too
        train_speed.main(["--authors", "x", "--compile", "embedding"])
    assert "drop --compile" in capsys.readouterr().err


PARENT = """
import multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from benchmarks.reproduce import exit_with_parent
if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=exit_with_parent) as pool:
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 120).result()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its reaping is left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_reproduce_workers_end_with_a_killed_parent(tmp_path):
    # a worker that outlived a killed reproduce went on training its run beside the restarted one
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    worker = None
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 20
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        parent.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)  # the failing case leaves no orphan behind
