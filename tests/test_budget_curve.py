"""benchmarks.budget_curve on hand-made runs: updates, training time and the table's figures."""

import json

import pytest

from benchmarks.budget_curve import load_run, main, table


def _history(mrrs, sps=100.0):
    return [{"epoch": i + 1, "val_mrr": m, "val_loss": 1.0 - m, "samples_per_sec": sps} for i, m in enumerate(mrrs)]


def test_json_run_counts_updates_and_minutes(tmp_path):
    path = tmp_path / "gpu.json"
    scores = {"hits@1": 0.9, "hits@10": 1.0, "mrr": 0.95}
    run = {"train_history": _history([0.2, 0.6, 0.5]), "train_transitions": 1000, "batch_size": 300}
    path.write_text(json.dumps({**run, "eval_best": scores}))
    r = load_run(f"gpu={path}")
    assert r.updates_per_epoch == 4  # 1000 / 300, the last batch partial
    assert r.minutes() == pytest.approx(3 * 1000 / 100 / 60)
    row = table([r])[2]
    # 3 epochs, 12 updates, 0.5 min, last val MRR 50.0, best epoch by validation loss: 2
    assert row == "| gpu | 3 | 12 | 0.5 | 50.0 | 2 | 90.0 | 100.0 | 95.0 |"


@pytest.mark.parametrize("spec", ["no-equals-sign", "=x.json", "label="])
def test_malformed_run_spec_is_refused(spec, capsys):
    with pytest.raises(SystemExit):
        main([spec])
    assert "LABEL=PATH" in capsys.readouterr().err


def test_json_without_history_is_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"train_history": []}))
    with pytest.raises(ValueError, match="train_transitions"):
        load_run(f"x={path}")
