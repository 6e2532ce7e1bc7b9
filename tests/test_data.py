"""Rollout datasets: layout, determinism, twins, restrictions, atomic writes, clear errors."""

import h5py
import numpy as np
import pytest

from sen_rl.data import CollectConfig, DatasetError, RolloutDataset, allowed_actions, collect


def _collect(tmp_path, name="d.h5", **kw):
    cfg = dict(env_id="SEN-Shapes-v0", episodes=5, steps=6, seed=3, vectorization="sync", num_envs=2)
    cfg.update(kw)
    return collect(CollectConfig(**cfg), tmp_path / name, progress=False)


def test_layout_and_consistency(tmp_path):
    path = _collect(tmp_path)
    with RolloutDataset(path) as ds:
        assert ds.env_id == "SEN-Shapes-v0" and (ds.episodes, ds.steps) == (5, 6)
        assert ds["obs"].shape == (5, 7, 50, 50, 3) and ds["obs"].dtype == np.uint8
        assert ds["actions"].shape == (5, 6) and ds["states"].shape == (5, 7, 5, 2)
        assert ds.attrs["seed"] == 3 and ds.attrs["complete"]
        env = ds.make_env().unwrapped
        # obs[t] is the render of states[t]; states[t+1] follows from states[t] and actions[t]
        for e in range(5):
            env.reset(options={"state": ds["states"][e, 0]})
            for t in range(6):
                np.testing.assert_array_equal(env.render_state(ds["states"][e, t]), ds["obs"][e, t])
                env.step(int(ds["actions"][e, t]))
                np.testing.assert_array_equal(env.get_state(), ds["states"][e, t + 1])


def test_same_seed_same_data_whatever_the_parallelism(tmp_path):
    a = _collect(tmp_path, "a.h5", num_envs=1)
    b = _collect(tmp_path, "b.h5", num_envs=3)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for key in ("obs", "actions", "states"):
            np.testing.assert_array_equal(fa[key][:], fb[key][:])
    c = _collect(tmp_path, "c.h5", seed=4)
    with h5py.File(a) as fa, h5py.File(c) as fc:
        assert not np.array_equal(fa["actions"][:], fc["actions"][:])


def test_twins_are_rerendered_transformed_states(tmp_path):
    path = _collect(tmp_path, twins=True, episodes=2, steps=3)
    with RolloutDataset(path) as ds:
        env = ds.make_env().unwrapped
        G = len(env.symmetry.elements)
        assert ds["twins/obs"].shape == (2, 4, G, 50, 50, 3)
        for e in range(2):
            for t in range(4):
                for gi, g in enumerate(env.symmetry.elements):
                    np.testing.assert_array_equal(ds["twins/obs"][e, t, gi], np.rot90(ds["obs"][e, t], g))
            for t in range(3):
                for gi, g in enumerate(env.symmetry.elements):
                    assert ds["twins/actions"][e, t, gi] == env.symmetry.act_on_action(g, int(ds["actions"][e, t]))


def test_action_restriction(tmp_path):
    path = _collect(tmp_path, actions=["up"], episodes=4, steps=20)
    with RolloutDataset(path) as ds:
        assert set(np.unique(ds["actions"][:] % 4)) == {0}
    from gymnasium.spaces import Discrete

    assert allowed_actions(Discrete(20), ["up", "down"]).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert allowed_actions(Discrete(20), ["3", 5]).tolist() == [3, 5]
    with pytest.raises(ValueError, match="directions"):
        allowed_actions(Discrete(20), ["upward"])
    with pytest.raises(ValueError, match="only applies to the grid"):
        allowed_actions(Discrete(6), ["up"])


def test_refuses_to_overwrite_and_keeps_old_file(tmp_path):
    path = _collect(tmp_path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        _collect(tmp_path)
    # an overwrite that fails midway leaves the old file intact and no temporary behind
    with pytest.raises(ValueError):
        collect(CollectConfig("SEN-Shapes-v0", 2, 2, actions=["sideways"]), path, overwrite=True, progress=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_reader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="sen-rl collect"):
        RolloutDataset(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        RolloutDataset(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["obs"] = np.zeros((1, 2, 3))
    with pytest.raises(DatasetError, match="not a sen-rl rollout file"):
        RolloutDataset(foreign)
    good = _collect(tmp_path)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DatasetError):
        RolloutDataset(truncated)
    with h5py.File(good, "a") as f:
        del f["rewards"]
    with pytest.raises(DatasetError, match="lacks"):
        RolloutDataset(good)


def test_bad_config():
    with pytest.raises(ValueError, match="unknown env id"):
        CollectConfig("SEN-Nope-v0", 1, 1).validate()
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        CollectConfig("SEN-Shapes-v0", 0, 1).validate()
