"""The benchmark scripts run end to end at tiny sizes and write what they promise."""

import pytest

from benchmarks import collect_speed, reproduce


def test_reproduce_smoke_writes_the_table(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    args = [
        "--preset",
        "smoke",
        "--only",
        "shapes_up",
        "--seeds",
        "0",
        "--workdir",
        str(tmp_path),
        "--results",
        str(results),
        "--device",
        "cpu",
    ]
    assert reproduce.main(args) == 0
    text = results.read_text()
    assert "Unseen actions: 2D Shapes trained on {up}" in text
    assert "| sen (ours, 1 seeds) |" in text and "| sen (paper) | 100 | 99.9 |" in text
    assert "--preset smoke" in text  # the command that made the table
    # a second run reuses the cached evaluation instead of training again
    eval_json = tmp_path / "runs/reproduce/smoke/shapes_up/sen/seed0/eval.json"
    stamp = eval_json.stat().st_mtime_ns
    assert reproduce.main(args) == 0
    assert eval_json.stat().st_mtime_ns == stamp


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
