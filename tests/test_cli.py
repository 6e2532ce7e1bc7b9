"""The ``sen-rl`` command line: help, options from the config dataclasses, exit codes, progress rule."""

import argparse
import dataclasses
import sys

import pytest

import sen_rl
import sen_rl.data
import sen_rl.train
from sen_rl import cli
from sen_rl.data import CollectConfig, RolloutDataset
from sen_rl.domains import DOMAINS, ENV_IDS, PRESETS, VARIANTS
from sen_rl.model import read_checkpoint
from sen_rl.train import LR_SCHEDULES, TrainConfig, TrainingDiverged

EXTRAS = {
    "collect": {"out", "overwrite", "quiet"},
    "train": {"resume", "overwrite", "quiet"},
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


@pytest.fixture(scope="module")
def parser():
    return cli.build_parser()


def test_help_lists_commands_domains_choices_and_example(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for command in ("collect", "train", "eval", "plan"):
        assert f"    {command} " in text, command
    assert "demo" not in text.split("commands:")[1].split("domains")[0]  # demo is benchmarks.demo now
    for env_id in ENV_IDS:
        assert env_id in text and DOMAINS[env_id].title in text
    for name in (*VARIANTS, *PRESETS):
        assert name in text
    assert "equivariant" in text and "seconds, for tests" in text  # the docstrings of VARIANTS and PRESETS
    for command in cli.EXAMPLE:
        assert command in text
    assert "--version" in text and "``" not in text


def test_module_docstring_lists_every_subcommand(parser):
    assert set(_subparsers(parser)) == set(cli.COMMANDS) == {"collect", "train", "eval", "plan"}
    for command in cli.COMMANDS:
        assert f"  {command} " in cli.__doc__


def test_every_option_has_help(parser):
    for name, sub in _subparsers(parser).items():
        for action in _options(sub):
            assert action.help and action.help.strip(), (name, action.option_strings)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"sen-rl {sen_rl.__version__}"


def test_options_are_the_config_fields_plus_documented_extras(parser):
    subs = _subparsers(parser)
    for command, config in (("collect", CollectConfig), ("train", TrainConfig)):
        dests = [a.dest for a in _options(subs[command])]
        assert len(dests) == len(set(dests)), command
        assert set(dests) == {f.name for f in dataclasses.fields(config)} | EXTRAS[command], command
    train = {a.dest: a for a in _options(subs["train"])}
    assert train["variant"].choices == VARIANTS and train["preset"].choices == PRESETS
    assert train["lr_schedule"].choices == LR_SCHEDULES
    assert train["data"].required and train["out"].required
    assert "OUT/last.pt" in train["resume"].help and "epoch after the last one saved" in train["resume"].help
    collect = {a.dest: a for a in _options(subs["collect"])}
    assert collect["env_id"].option_strings == ["--env"] and collect["env_id"].choices is None  # --symmetry
    # every option of the command line before the options came from the configs still exists
    before = {
        "collect": "--env --episodes --steps --seed --out --warmup --actions --positive-torque --twins "
        "--env-kwargs --num-envs --vectorization --overwrite --quiet",
        "train": "--data --out --variant --preset --epochs --batch-size --lr --lr-schedule --seed --device "
        "--amp --max-transitions --threads --resume --overwrite --quiet",
        "eval": "--checkpoint --data --horizon --json --max-samples --hh-samples --th-starts --seed --device",
    }
    for command, names in before.items():
        strings = {s for a in _options(subs[command]) for s in a.option_strings}
        assert set(names.split()) <= strings, command


def test_collect_options_build_the_config(parser):
    argv = "collect --env SEN-Shapes-v0 --episodes 3 --steps 2 --out x.h5 --actions up,right down --twins"
    args = parser.parse_args([*argv.split(), "--env-kwargs", '{"size": 64}'])
    cfg = cli.config_from_args(CollectConfig, args)
    assert cfg == CollectConfig(
        "SEN-Shapes-v0", 3, 2, actions=["up", "right", "down"], twins=True, env_kwargs={"size": 64}
    )
    assert cli.config_from_args(CollectConfig, parser.parse_args(argv.split()[:9])) == CollectConfig(
        "SEN-Shapes-v0", 3, 2
    )


def test_generic_helper_types_defaults_and_docstrings():
    @dataclasses.dataclass
    class Toy:
        name: str
        """The ``name``, required."""
        count: int | None = None
        """How many (None: all)."""
        rate: float = 0.5
        """A rate of 50%."""
        colour: str = "red"
        """One of :data:`COLOURS`."""
        sizes: list[int] = dataclasses.field(default_factory=list)
        """Sizes."""
        extra: dict = dataclasses.field(default_factory=dict)
        """Keywords."""
        fast: bool = False
        """Go fast."""
        checks: bool = True
        """Run the checks."""

    p = argparse.ArgumentParser()
    cli.add_config_options(p, Toy, choices={"colour": ("red", "blue")})
    help_of = {a.dest: a.help for a in _options(p)}
    assert help_of["name"] == "The name, required." and help_of["colour"] == "One of COLOURS. (default: red)"
    assert "50%%" in help_of["rate"]  # argparse formats help with %
    assert p.format_help()  # formats without error
    args = p.parse_args(["--name", "n", "--sizes", "1,2", "3", "--extra", '{"a": 1}', "--fast", "--no-checks"])
    assert cli.config_from_args(Toy, args) == Toy("n", None, 0.5, "red", [1, 2, 3], {"a": 1}, True, False)
    assert cli.config_from_args(Toy, p.parse_args(["--name", "n", "--count", "4"])) == Toy("n", count=4)
    for bad in (["--colour", "green"], ["--extra", "[1]"], ["--extra", "{"], []):
        with pytest.raises(SystemExit):
            p.parse_args(["--name", "n", *bad] if bad else bad)


def test_bad_env_exits_2_naming_the_known_ids(tmp_path, capsys):
    # --env takes any id (another env is collected with --symmetry); CollectConfig.validate refuses it
    argv = ["collect", "--env", "SEN-Nope-v0", "--episodes", "1", "--steps", "1", "--out", str(tmp_path / "x")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "SEN-Nope-v0" in err and all(env_id in err for env_id in ENV_IDS) and "--symmetry" in err
    assert not (tmp_path / "x").exists()


def test_training_diverged_exits_1(tmp_path, monkeypatch, capsys):
    def diverge(*args, **kwargs):
        raise TrainingDiverged("loss is nan at epoch 1, step 3; try a lower --lr")

    monkeypatch.setattr(sen_rl.train, "train", diverge)
    assert cli.main(["train", "--data", str(tmp_path / "d.h5"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sen-rl train: training diverged: loss is nan") and "Traceback" not in err


def test_user_errors_exit_2_other_errors_propagate(tmp_path, monkeypatch, capsys):
    argv = ["train", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "run"), "--preset", "smoke"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sen-rl train: error: ") and "missing.h5" in err

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(sen_rl.train, "train", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(argv)


@pytest.mark.parametrize("tty, quiet, bars", [(False, False, False), (True, False, True), (True, True, False)])
def test_progress_bars_only_on_a_terminal_and_never_quiet(tmp_path, monkeypatch, tty, quiet, bars):
    seen = {}

    def fake_collect(config, out, overwrite=False, progress=True):
        seen["progress"] = progress
        return out

    monkeypatch.setattr(sen_rl.data, "collect", fake_collect)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    argv = ["collect", "--env", "SEN-Shapes-v0", "--episodes", "1", "--steps", "1", "--out", str(tmp_path / "x.h5")]
    assert cli.main(argv + ["--quiet"] * quiet) == 0
    assert seen["progress"] is bars


def test_collect_train_resume_end_to_end(tmp_path, capsys):
    data, run = tmp_path / "shapes.h5", tmp_path / "run"
    argv = "collect --env SEN-Shapes-v0 --episodes 8 --steps 4 --actions up --num-envs 1 --vectorization sync"
    assert cli.main([*argv.split(), "--out", str(data)]) == 0
    out, err = capsys.readouterr()
    assert f"wrote {data}" in out and "\r" not in err  # stderr is no terminal here: no bar
    with RolloutDataset(data) as ds:
        assert ds.episodes == 8 and set((ds.actions[:] % 4).ravel().tolist()) == {0}

    train = ["train", "--data", str(data), "--out", str(run), "--batch-size", "8"]
    train += ["--device", "cpu", "--threads", "1"]
    first = ["--epochs", "1", "--variant", "none", "--preset", "smoke", "--seed", "3", "--lr", "1e-3"]
    assert cli.main([*train, *first]) == 0
    out, err = capsys.readouterr()
    assert "epoch 1/1:" in out and "checkpoints:" in out and "\r" not in err
    assert cli.main([*train, "--epochs", "1"]) == 2  # a run is there: --resume or --overwrite
    assert "--resume" in capsys.readouterr().err
    # variant, preset, seed and learning rate not given again come from the checkpoint; given, they must match it
    assert cli.main([*train, "--resume", "--variant", "sen", "--epochs", "2"]) == 2
    assert "variant='none', not 'sen'" in capsys.readouterr().err
    assert cli.main([*train, "--resume", "--lr", "5e-4", "--epochs", "2"]) == 2
    assert "lr=0.001, not 0.0005" in capsys.readouterr().err
    assert cli.main([*train, "--epochs", "2", "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run / 'last.pt'} from epoch 2 of 2" in out and "epoch 2/2:" not in out
    saved = read_checkpoint(run / "last.pt")
    assert saved["epoch"] == 1 and saved["config"]["variant"] == "none" and saved["config"]["preset"] == "smoke"
    assert saved["train_config"]["seed"] == 3
    # the rate the resumed epoch ran at (Adam's restored state) is the one the run records
    assert saved["train_config"]["lr"] == 1e-3 == saved["optimizer_state"]["param_groups"][0]["lr"]


def test_plan_smoke_checkpoint_writes_json(tmp_path, capsys):
    import json

    data, run = tmp_path / "shapes.h5", tmp_path / "run"
    collect = "collect --env SEN-Shapes-v0 --episodes 16 --steps 2 --num-envs 1 --vectorization sync --quiet"
    assert cli.main([*collect.split(), "--out", str(data)]) == 0
    train = f"train --data {data} --out {run} --preset smoke --epochs 1 --batch-size 8 --device cpu --threads 1 --quiet"
    assert cli.main(train.split()) == 0
    capsys.readouterr()

    ckpt, out = run / "best.pt", tmp_path / "plan.json"
    argv = ["plan", "--checkpoint", str(ckpt), "--episodes", "2", "--horizon", "1", "--seed", "3"]
    assert cli.main([*argv, "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "SEN-Shapes-Goal-v0" in printed and "LatentMPC(method='exhaustive', horizon=1)" in printed
    assert "success " in printed and "95% CI" in printed and "ms per decision" in printed
    result = json.loads(out.read_text())
    assert result["episodes"] == 2 and result["goal_steps"] == 5 and result["max_steps"] == 20
    assert 0 <= result["ci_low"] <= result["success_rate"] <= result["ci_high"] <= 1
    assert len(result["steps"]) == 2 and all(1 <= s <= 20 for s in result["steps"])
    assert result["seconds_per_decision"] > 0 and result["env_kwargs"] == {}

    # the random baseline, with other goals
    assert cli.main([*argv[:5], "--random", "--goal-steps", "1", "--json", str(out)]) == 0
    assert "RandomAgent()" in capsys.readouterr().out
    assert json.loads(out.read_text())["goal_steps"] == 1

    # user errors: exit 2, one line, no traceback
    assert cli.main([*argv[:3], "--episodes", "0"]) == 2
    assert capsys.readouterr().err.startswith("sen-rl plan: error: --episodes must be >= 1")
    assert cli.main([*argv, "--method", "cem"]) == 2
    assert "is discrete" in capsys.readouterr().err
    assert cli.main(["plan", "--checkpoint", str(tmp_path / "missing.pt"), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sen-rl plan: error: ") and "missing.pt" in err and "Traceback" not in err
