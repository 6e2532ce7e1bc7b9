"""benchmarks.moved_transitions: one-step transitions, the chosen ones moved by a group element."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.moved_transitions import moved_transitions, rows_to_move
from sen_rl.data import CollectConfig, RolloutDataset, collect
from sen_rl.groups import d4_act_on_image, reacher_symmetry

REFLECT = (1, 0)


@pytest.fixture(scope="module")
def reacher(tmp_path_factory):
    path = tmp_path_factory.mktemp("moved") / "reacher.h5"
    cfg = CollectConfig("SEN-Reacher-v0", 4, 3, warmup=5, env_kwargs={"size": 16}, num_envs=1, vectorization="sync")
    return collect(cfg, path, progress=False)


def _rows(path):
    """(first obs, action, next obs, first state, next state) per transition, episode-major."""
    with RolloutDataset(path) as ds:
        o, a, s = ds.obs[:], ds.actions[:], ds.states[:]
    t = a.shape[1]
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    return flat(o[:, :t]), flat(a), flat(o[:, 1:]), flat(s[:, :t]), flat(s[:, 1:])


def test_reflecting_the_negative_torques_leaves_every_transition_or_its_mirror(reacher, tmp_path):
    out = tmp_path / "pos.h5"
    info = moved_transitions(reacher, out, REFLECT, "negative:1")
    o, a, o2, s, s2 = _rows(reacher)
    m = a[:, 1] < 0
    assert 0 < m.sum() < len(a) and info == {**info, "transitions": len(a), "moved": int(m.sum())}
    with RolloutDataset(out) as ds:
        assert (ds.episodes, ds.steps) == (len(a), 1)
        no, na, ns = ds.obs[:], ds.actions[:, 0], ds.states[:]
        assert json.loads(ds.attrs["moved_from"])["where"] == "negative:1"
    assert (na[:, 1] >= 0).all()
    # moved rows: pixels, torques and states by the reflection; the others as recorded
    sym = reacher_symmetry()
    np.testing.assert_array_equal(no[m, 0], d4_act_on_image(REFLECT, o[m]))
    np.testing.assert_array_equal(no[m, 1], d4_act_on_image(REFLECT, o2[m]))
    np.testing.assert_array_equal(na[m], -a[m])
    np.testing.assert_allclose(ns[m, 1], sym.act_on_state(REFLECT, s2[m]))
    np.testing.assert_array_equal(no[~m, 0], o[~m])
    np.testing.assert_array_equal(no[~m, 1], o2[~m])
    np.testing.assert_array_equal(na[~m], a[~m])
    np.testing.assert_array_equal(ns[~m, 0], s[~m])


def test_none_keeps_every_transition_and_a_restriction_the_moves_break_is_dropped(tmp_path):
    cfg = CollectConfig("SEN-Reacher-v0", 3, 2, warmup=5, positive_torque=True, env_kwargs={"size": 16}, num_envs=1)
    src = collect(replace(cfg, vectorization="sync"), tmp_path / "pos.h5", progress=False)
    same = moved_transitions(src, tmp_path / "same.h5", REFLECT, "none")
    o, a, o2, *_ = _rows(src)
    with RolloutDataset(tmp_path / "same.h5") as ds:
        np.testing.assert_array_equal(ds.obs[:, 1], o2)
        assert ds.attrs["positive_torque"] and same["moved"] == 0
    moved_transitions(src, tmp_path / "half.h5", REFLECT, "half")
    with RolloutDataset(tmp_path / "half.h5") as ds:
        # a reflected positive torque is negative: the file no longer holds only positive ones
        assert (ds.actions[:, 0, 1] < 0).any() and not ds.attrs["positive_torque"]


def test_rows_to_move_and_bad_input(reacher, tmp_path):
    a = np.array([[0.5, -0.1], [-0.3, 0.2], [0.1, 0.0]])
    np.testing.assert_array_equal(rows_to_move(a, "negative:0"), [False, True, False])
    np.testing.assert_array_equal(rows_to_move(a, "none"), [False] * 3)
    half = rows_to_move(np.zeros((1000, 2)), "half")
    assert 400 < half.sum() < 600 and (half == rows_to_move(np.zeros((1000, 2)), "half")).all()
    with pytest.raises(ValueError, match="components 0 to 1"):
        rows_to_move(a, "negative:2")
    with pytest.raises(ValueError, match="must be one of"):
        rows_to_move(a, "some")
    with pytest.raises(ValueError, match="not an element of D4"):
        moved_transitions(reacher, tmp_path / "x.h5", (2, 0), "half")
    assert not (tmp_path / "x.h5").exists()
    (tmp_path / "kept.h5").write_bytes(b"earlier work")
    with pytest.raises(FileExistsError, match="--overwrite"):
        moved_transitions(reacher, tmp_path / "kept.h5", REFLECT, "half")
    assert (tmp_path / "kept.h5").read_bytes() == b"earlier work"


def test_a_grid_domain_moves_by_quarter_turns(tmp_path):
    from sen_rl.groups import c4_act_on_image, grid_symmetry

    cfg = CollectConfig("SEN-Shapes-v0", 3, 4, actions=["up"], num_envs=1, vectorization="sync")
    src = collect(cfg, tmp_path / "up.h5", progress=False)
    info = moved_transitions(src, tmp_path / "turned.h5", [1], "half")
    o, a, *_ = _rows(src)
    m = rows_to_move(a, "half")
    assert info["element"] == 1 and 0 < m.sum() < len(a)
    with RolloutDataset(tmp_path / "turned.h5") as ds:
        np.testing.assert_array_equal(ds.obs[m, 0], c4_act_on_image(1, o[m]))
        np.testing.assert_array_equal(ds.actions[m, 0], grid_symmetry().act_on_action(1, a[m]))
        # turned "up" moves are "left" moves: the file no longer claims the restriction to "up"
        assert json.loads(ds.attrs["actions"]) is None
