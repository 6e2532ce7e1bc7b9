"""The agent benchmark suite's scheduler: lanes, waiting, running alone, failures, resume, missing models."""

import json
from pathlib import Path

import pytest

from benchmarks import agent_suite
from benchmarks.agent_suite import Part, check_parts, parts, run_suite


def sleeper(name: str, seconds: float = 0.3, code: int = 0, **kw) -> Part:
    return Part(name, ("-c", f"import time, sys; time.sleep({seconds}); sys.exit({code})"), 1, **kw)


def overlap(a, b) -> bool:
    return a.start < b.end and b.start < a.end


def test_lanes_waiting_and_alone(tmp_path):
    todo = [
        sleeper("a"),
        sleeper("b"),
        sleeper("c", after=("a", "b")),
        sleeper("speed", alone=True),
        sleeper("d"),
    ]
    out = run_suite(todo, tmp_path, lanes=2, poll=0.02)
    assert all(o.status == "ok" for o in out.values())
    assert {out[n].lane for n in "abcd"} <= {0, 1}
    # two lanes: the first two parts run at the same time, c only after both it waits on
    assert overlap(out["a"], out["b"])
    assert out["c"].start >= max(out["a"].end, out["b"].end)
    # the part that runs alone shares its time with no other part, and none of its lanes' parts overlap
    for n in "abcd":
        assert not overlap(out["speed"], out[n])
    for x in "abcd":
        for y in "abcd":
            if x < y and out[x].lane == out[y].lane:
                assert not overlap(out[x], out[y])
    saved = json.loads((tmp_path / "suite.json").read_text())
    assert set(saved["parts"]) == set(out) and saved["lanes"] == 2
    assert (tmp_path / "logs" / "c.log").read_text().startswith("$ python -c")


def test_one_lane_runs_one_part_at_a_time(tmp_path):
    out = run_suite([sleeper("a", 0.1), sleeper("b", 0.1), sleeper("c", 0.1)], tmp_path, lanes=1, poll=0.02)
    assert not any(overlap(out[x], out[y]) for x, y in [("a", "b"), ("a", "c"), ("b", "c")])


def test_a_failure_skips_what_waits_on_it_and_a_rerun_resumes(tmp_path):
    flag = tmp_path / "fixed"
    flaky = Part("flaky", ("-c", f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 3)"), 1)
    todo = [sleeper("a", 0.05), flaky, sleeper("after", 0.05, after=("flaky",))]
    out = run_suite(todo, tmp_path, lanes=2, poll=0.02)
    assert out["a"].status == "ok"
    assert out["flaky"].status == "failed" and out["flaky"].returncode == 3
    assert out["after"].status == "skipped" and "flaky" in out["after"].why
    assert "failed: exit code 3" in (tmp_path / "suite.md").read_text()

    flag.touch()
    again = run_suite(todo, tmp_path, lanes=2, poll=0.02)
    assert again["a"].earlier and again["a"].status == "ok"  # finished before: not rerun
    assert not again["flaky"].earlier and again["flaky"].status == "ok"
    assert again["after"].status == "ok"
    assert "an earlier invocation" in (tmp_path / "suite.md").read_text()


def test_a_changed_command_reruns(tmp_path):
    run_suite([sleeper("a", 0.05)], tmp_path, lanes=1, poll=0.02)
    out = run_suite([sleeper("a", 0.06)], tmp_path, lanes=1, poll=0.02)
    assert not out["a"].earlier


def test_missing_models_are_named_with_the_command_that_makes_them(tmp_path):
    todo = [sleeper("plan", needs=(str(tmp_path / "m.pt"),), needs_hint="train it"), sleeper("b", 0.05)]
    out = run_suite(todo, tmp_path, lanes=2, poll=0.02)
    assert out["plan"].status == "not run" and "m.pt" in out["plan"].why and "train it" in out["plan"].why
    assert out["b"].status == "ok"


def test_bad_part_lists_are_refused():
    with pytest.raises(ValueError, match="unknown parts"):
        check_parts([sleeper("a", after=("nope",))])
    with pytest.raises(ValueError, match="circle"):
        check_parts([sleeper("a", after=("b",)), sleeper("b", after=("a",))])
    with pytest.raises(ValueError, match="lanes"):
        run_suite([sleeper("a")], Path("unused"), lanes=0)


@pytest.mark.parametrize("preset", ["smoke", "cpu"])
def test_the_presets_commands_parse(preset, tmp_path):
    """Every part is a valid command line of its benchmark, and the table parts wait on every seed."""
    from benchmarks import plan_checkpoints, planning

    todo = parts(preset, tmp_path, tmp_path / "reproduce")
    check_parts(todo)
    parsers = {
        "benchmarks.planning": planning.build_parser(),
        "benchmarks.plan_checkpoints": plan_checkpoints.build_parser(),
    }
    for p in todo:
        assert p.argv[0] == "-m"
        if p.argv[1] in parsers:
            parsers[p.argv[1]].parse_args(list(p.argv[2:]))
        if p.name.endswith("-table"):
            assert len(p.after) == len(agent_suite.SEEDS)
    names = {p.name for p in todo}
    assert "speed" in names and next(p for p in todo if p.name == "speed").alone


def test_the_missing_models_hint_is_a_command_that_makes_them_there(tmp_path):
    hints = {p.name: p.needs_hint for p in parts("cpu", tmp_path, tmp_path / "x" / "runs" / "reproduce" / "cpu")}
    assert hints["planning-reacher"].startswith("python -m benchmarks.reproduce --preset cpu")
    assert f"--workdir {tmp_path / 'x'} --only reacher" in hints["planning-reacher"]
    assert "--only teapot" in hints["planning-teapot"]
    # models somewhere the reproduction does not write: the hint says where it does
    other = {p.name: p.needs_hint for p in parts("cpu", tmp_path, tmp_path / "models")}
    assert "pass that folder as --models" in other["planning-teapot"]


def test_an_interrupted_suite_stops_its_parts_and_a_rerun_starts_them_again(tmp_path, monkeypatch):
    import os
    import time

    pid_file, done = tmp_path / "pid", tmp_path / "quick now"
    code = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        f"os.path.exists({str(done)!r}) or time.sleep(60)"
    )
    slow = Part("slow", ("-c", code), 1)
    real_sleep = time.sleep

    def interrupt_once_started(seconds):
        real_sleep(seconds)
        if pid_file.exists() and pid_file.read_text():
            raise KeyboardInterrupt

    monkeypatch.setattr(agent_suite.time, "sleep", interrupt_once_started)
    with pytest.raises(KeyboardInterrupt):
        run_suite([slow], tmp_path, lanes=1, poll=0.05)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the part's process is gone, not left running
        os.kill(pid, 0)
    saved = json.loads((tmp_path / "suite.json").read_text())["parts"]["slow"]
    assert saved["status"] == "failed" and saved["why"] == "interrupted"
    monkeypatch.undo()
    done.touch()
    again = run_suite([slow], tmp_path, lanes=1, poll=0.02)["slow"]  # the same command: run again, not skipped
    assert again.status == "ok" and not again.earlier
