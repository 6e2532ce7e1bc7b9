"""The README's main job, ``python -m benchmarks.demo``, at a tiny size: what it writes and what its table says."""

from benchmarks.demo import main
from sen_rl.data import RolloutDataset
from sen_rl.domains import DOMAINS


def test_demo_writes_contact_sheet_and_unseen_action_table(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--episodes", "256", "--epochs", "1", "--eval-episodes", "20", "--quiet"]
    assert main(argv) == 0
    assert (out / "contact_sheet.png").stat().st_size > 0
    for domain in DOMAINS.values():  # one small twin dataset of every domain of the table
        with RolloutDataset(out / f"{domain.env_id}.h5") as ds:
            assert ds.has_twins and ds.env_kwargs == domain.env_kwargs("smoke") and ds.attrs["warmup"] == domain.warmup
    with RolloutDataset(out / "shapes_up_train.h5") as ds:  # training data: "up" moves only
        assert set((ds.actions[:] % 4).ravel().tolist()) == {0}
    with RolloutDataset(out / "shapes_eval.h5") as ds:  # evaluation: every direction, 10 steps, twins
        assert ds.steps == 10 and ds.has_twins and len(set((ds.actions[:] % 4).ravel().tolist())) == 4
    captured = capsys.readouterr()
    table = (out / "unseen_actions.txt").read_text()
    assert table in captured.out
    assert "epoch 1/1" not in captured.out  # --quiet: no per-epoch lines
    assert "\r" not in captured.err  # and no progress bars
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.startswith(("none ", "sen "))}
    assert set(rows) == {"none", "sen"}
    for row in rows.values():
        # the cell-aligned SEN is exactly equivariant on 2D Shapes pictures, trained or not
        assert row[3] == "0.00"
