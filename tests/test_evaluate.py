"""End-to-end evaluation of smoke models on tiny twin datasets, and the ``sen-rl eval`` command."""

import json

import numpy as np
import pytest
import torch

from sen_rl.cli import main
from sen_rl.data import CollectConfig, RolloutDataset, collect
from sen_rl.evaluate import (
    TRAVERSAL_STEPS,
    element_label,
    evaluate,
    format_table,
)
from sen_rl.groups import octahedral_group
from sen_rl.metrics import equivariance_error
from sen_rl.model import build_model

FRACTIONS = ("hits@1", "hits@5", "hits@10", "mrr", "hh@1", "th@1_yaw", "th@1_pitch", "th@1_roll")


@pytest.fixture(scope="module")
def shapes_twins(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "shapes.h5"
    cfg = CollectConfig("SEN-Shapes-v0", 6, 3, seed=0, twins=True, vectorization="sync")
    return collect(cfg, path, progress=False)


@pytest.fixture(scope="module")
def shapes_full():
    torch.manual_seed(0)
    return build_model("SEN-Shapes-v0", "full", "smoke")


def _check_fractions(r):
    for k in FRACTIONS:
        if k in r:
            assert 0.0 <= r[k] <= 1.0, (k, r[k])


def test_shapes_full_model(shapes_twins, shapes_full):
    r = evaluate(shapes_full, shapes_twins, horizon=3)
    for k in ("hits@1", "hits@5", "hits@10", "mrr", "ee_mean", "ee_quarter", "die_mean", "hh@1", "hh_negatives"):
        assert k in r, k
    assert (r["horizon"], r["samples"], r["skipped"]) == (3, 6, [])
    assert r["ee_quarter_element"] == "rot90"
    _check_fractions(r)
    # the "full" embedding is exactly C4-equivariant and Shapes twins are exact rot90 images
    for label in ("rot0", "rot90", "rot180", "rot270"):
        assert r[f"ee/{label}"] < 1e-4, (label, r[f"ee/{label}"])
        assert r[f"die/{label}"] < 1e-4, (label, r[f"die/{label}"])
    assert "th@1_yaw" not in r  # Teapot only
    json.dumps(r)  # JSON-able
    table = format_table(r)
    assert "Hits@1" in table and "EE(S)" in table and "rot270" in table


def test_ee_matches_the_metric_function(shapes_twins):
    torch.manual_seed(1)
    model = build_model("SEN-Shapes-v0", "sen", "smoke").eval()
    r = evaluate(model, shapes_twins, horizon=1, max_samples=5, hh_samples=0)
    assert r["samples"] == 5 and r["skipped"] == ["hh@1: hh_samples = 0"] and "hh@1" not in r
    with RolloutDataset(shapes_twins) as ds, torch.no_grad():
        v = model.embed(ds.obs[:5, 0])
        v_g = model.embed(ds.twin_obs[:5, 0, 1])
        want = equivariance_error(v_g, model.symmetry.act_on_embedding(1, v), v)
    assert r["ee/rot90"] == pytest.approx(want, rel=1e-6)
    assert r["ee/rot0"] == 0.0


def test_horizon_longer_than_the_episodes(shapes_twins, shapes_full):
    with pytest.raises(ValueError, match=r"sen-rl collect --env SEN-Shapes-v0 --steps 10"):
        evaluate(shapes_full, shapes_twins)  # default horizon 10 > 3 steps
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        evaluate(shapes_full, shapes_twins, horizon=0)


def test_wrong_env(shapes_twins):
    model = build_model("SEN-Teapot-v0", "sen", "smoke")
    with pytest.raises(ValueError, match="SEN-Teapot-v0.*SEN-Shapes-v0"):
        evaluate(model, shapes_twins, horizon=1)


def test_without_twins(tmp_path, shapes_full):
    path = collect(
        CollectConfig("SEN-Shapes-v0", 3, 1, seed=1, vectorization="sync"), tmp_path / "d.h5", progress=False
    )
    r = evaluate(shapes_full, path, horizon=1)
    assert "hits@1" in r and "hh@1" in r
    assert not any(k.startswith(("ee", "die")) for k in r)
    assert any("--twins" in s for s in r["skipped"])
    assert "skipped" in format_table(r)


def test_grid_hard_negatives_move_one_object_one_cell(shapes_twins):
    with RolloutDataset(shapes_twins) as ds:
        env = ds.make_env()
        state = ds.states[0, 0]
    negs = env.unwrapped.hard_negative_states(state)
    env.close()
    assert 2 <= len(negs) <= 20
    assert len({n.tobytes() for n in negs}) == len(negs)
    for n in negs:
        moved = np.abs(n - state).sum(axis=1)
        assert sorted(moved.tolist()) == [0, 0, 0, 0, 1]


def test_element_labels():
    labels = [element_label(g) for g in octahedral_group()]
    assert len(set(labels)) == 24 and labels[0] == "id"
    assert element_label(np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])) == "R(+z,90)"
    assert [element_label(g) for g in range(4)] == ["rot0", "rot90", "rot180", "rot270"]
    assert element_label((1, 3)) == "flip-rot270"


def test_teapot_traversals(tmp_path):
    path = collect(
        CollectConfig("SEN-Teapot-v0", 3, 1, seed=0, twins=True, vectorization="sync"),
        tmp_path / "teapot.h5",
        progress=False,
    )
    torch.manual_seed(0)
    model = build_model("SEN-Teapot-v0", "sen", "smoke")
    r = evaluate(model, path, th_starts=1, hh_samples=2)
    assert r["horizon"] == 1 and r["th_starts"] == 1 and r["hh_negatives"] == 6.0
    assert r["ee_quarter_element"] == "R(+z,90)"
    assert len([k for k in r if k.startswith("ee/")]) == 24
    _check_fractions(r)
    for name in ("yaw", "pitch", "roll"):
        th = r[f"th@1_{name}"] * TRAVERSAL_STEPS  # one traversal: a multiple of 1/30
        assert th == pytest.approx(round(th)), (name, r[f"th@1_{name}"])
    assert "TH@1 roll" in format_table(r)


def test_seen_and_unseen_split_the_ranking_of_a_restricted_model(tmp_path, shapes_twins, shapes_full):
    train = collect(
        CollectConfig("SEN-Shapes-v0", 3, 2, seed=1, actions=["up"], vectorization="sync"),
        tmp_path / "up.h5",
        progress=False,
    )
    whole = evaluate(shapes_full, shapes_twins, horizon=2, hh_samples=0)
    r = evaluate(shapes_full, shapes_twins, horizon=2, hh_samples=0, unseen_from=train)
    with RolloutDataset(shapes_twins) as ds:
        seen = (ds.actions[:, :2] % 4 == 0).all(axis=1)  # both steps move up
    assert (r["seen_samples"], r["unseen_samples"]) == (int(seen.sum()), int((~seen).sum()))
    assert r["mrr"] == whole["mrr"]  # the split adds keys, it changes nothing else
    # each part is ranked among all samples, so the parts' MRR average back to the whole's
    parts = [(r[f"{p}_samples"], r.get(f"mrr/{p}", 0.0)) for p in ("seen", "unseen")]
    assert sum(n * m for n, m in parts) / r["samples"] == pytest.approx(r["mrr"])
    assert "MRR unseen actions" in format_table(r)
    ckpt = shapes_full.save(tmp_path / "model.pt")
    out = tmp_path / "eval.json"
    args = ["eval", "--checkpoint", str(ckpt), "--data", str(shapes_twins), "--horizon", "2", "--hh-samples", "0"]
    assert main([*args, "--unseen-from", str(train), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mrr/unseen"] == r["mrr/unseen"]
    with pytest.raises(ValueError, match="SEN-Teapot-v0"):
        teapot = collect(CollectConfig("SEN-Teapot-v0", 2, 1, seed=0), tmp_path / "t.h5", progress=False)
        evaluate(shapes_full, shapes_twins, horizon=2, hh_samples=0, unseen_from=teapot)


def test_cli_eval(tmp_path, shapes_twins, shapes_full, capsys):
    ckpt = shapes_full.save(tmp_path / "model.pt")
    out = tmp_path / "res" / "eval.json"
    rc = main(["eval", "--checkpoint", str(ckpt), "--data", str(shapes_twins), "--horizon", "2", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Hits@1 (2 steps)" in printed and f"wrote {out}" in printed
    saved = json.loads(out.read_text())
    assert saved["horizon"] == 2 and saved["checkpoint"] == str(ckpt) and saved["ee_quarter"] < 1e-4
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temporary left behind

    rc = main(["eval", "--checkpoint", str(ckpt), "--data", str(shapes_twins)])
    assert rc == 2
    assert "--steps 10" in capsys.readouterr().err

    teapot = build_model("SEN-Teapot-v0", "sen", "smoke").save(tmp_path / "teapot.pt")
    rc = main(["eval", "--checkpoint", str(teapot), "--data", str(shapes_twins), "--horizon", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "SEN-Teapot-v0" in err and "SEN-Shapes-v0" in err
