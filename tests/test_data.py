"""Rollout datasets: layout, determinism, twins, restrictions, atomic writes, clear errors."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from gymnasium.spaces import Box, Discrete

from sen_rl.data import (
    OBS_KEY,
    REWARDS_KEY,
    ActionSampler,
    CollectConfig,
    DatasetError,
    RolloutDataset,
    allowed_actions,
    collect,
)
from sen_rl.domains import ENV_IDS, domain_of
from sen_rl.fileio import temporary_name

GRID_DIRECTIONS = domain_of("SEN-Shapes-v0").direction_names


def _collect(tmp_path, name="d.h5", **kw):
    cfg = dict(env_id="SEN-Shapes-v0", episodes=5, steps=6, seed=3, vectorization="sync", num_envs=2)
    cfg.update(kw)
    return collect(CollectConfig(**cfg), tmp_path / name, progress=False)


def test_layout_and_consistency(tmp_path):
    path = _collect(tmp_path)
    with RolloutDataset(path) as ds:
        assert ds.env_id == "SEN-Shapes-v0" and (ds.episodes, ds.steps) == (5, 6)
        assert ds.obs.shape == (5, 7, 50, 50, 3) and ds.obs.dtype == np.uint8
        assert ds.actions.shape == (5, 6) and ds.states.shape == (5, 7, 5, 2)
        assert ds.rewards.shape == (5, 6) and ds.rewards.dtype == np.float32
        assert ds.attrs["seed"] == 3 and ds.attrs["complete"]
        assert not ds.has_twins
        with pytest.raises(DatasetError, match="--twins"):
            ds.twin_obs  # noqa: B018
        env = ds.make_env().unwrapped
        # obs[t] is the render of states[t]; states[t+1] follows from states[t] and actions[t]
        for e in range(5):
            env.reset(options={"state": ds.states[e, 0]})
            for t in range(6):
                np.testing.assert_array_equal(env.render_state(ds.states[e, t]), ds.obs[e, t])
                env.step(int(ds.actions[e, t]))
                np.testing.assert_array_equal(env.get_state(), ds.states[e, t + 1])
        # the raw keys still answer (for old callers) with the same datasets
        assert ds["obs"].name == ds.obs.name
    assert ds.closed


def test_same_seed_same_data_whatever_the_parallelism(tmp_path):
    a = _collect(tmp_path, "a.h5", num_envs=1)
    b = _collect(tmp_path, "b.h5", num_envs=3)
    with RolloutDataset(a) as da, RolloutDataset(b) as db:
        for key in ("obs", "actions", "states"):
            np.testing.assert_array_equal(getattr(da, key)[:], getattr(db, key)[:])
    c = _collect(tmp_path, "c.h5", seed=4)
    with RolloutDataset(a) as da, RolloutDataset(c) as dc:
        assert not np.array_equal(da.actions[:], dc.actions[:])


def test_twins_are_rerendered_transformed_states(tmp_path):
    path = _collect(tmp_path, twins=True, episodes=2, steps=3)
    with RolloutDataset(path) as ds:
        env = ds.make_env().unwrapped
        G = len(env.symmetry.elements)
        assert ds.has_twins and ds.twin_obs.shape == (2, 4, G, 50, 50, 3)
        np.testing.assert_array_equal(ds.twin_elements[:], np.array(env.symmetry.elements, dtype=np.float64))
        for e in range(2):
            for t in range(4):
                for gi, g in enumerate(env.symmetry.elements):
                    np.testing.assert_array_equal(ds.twin_obs[e, t, gi], np.rot90(ds.obs[e, t], g))
            for t in range(3):
                for gi, g in enumerate(env.symmetry.elements):
                    assert ds.twin_actions[e, t, gi] == env.symmetry.act_on_action(g, int(ds.actions[e, t]))


def test_action_restriction(tmp_path):
    path = _collect(tmp_path, actions=["up"], episodes=4, steps=20)
    with RolloutDataset(path) as ds:
        assert set(np.unique(ds.actions[:] % 4)) == {0}

    grid = GRID_DIRECTIONS
    assert allowed_actions(Discrete(20), ["up", "down"], grid).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert allowed_actions(Discrete(20), ["3", 5], grid).tolist() == [3, 5]
    assert allowed_actions(Discrete(6), ["3", 5]).tolist() == [3, 5]
    assert allowed_actions(Discrete(6), []) is None
    with pytest.raises(ValueError, match="or directions up, right, down, left"):
        allowed_actions(Discrete(20), ["upward"], grid)
    with pytest.raises(ValueError, match=r"indices in \[0, 5\]$"):  # no directions offered without them
        allowed_actions(Discrete(6), ["upward"])
    # a direction is accepted exactly where the domain has direction names, whatever the action count
    with pytest.raises(ValueError, match="only applies to the grid"):
        allowed_actions(Discrete(6), ["up"])
    with pytest.raises(ValueError, match="only applies to the grid"):
        allowed_actions(Discrete(20), ["up"], domain_of("SEN-Teapot-v0").direction_names)
    with pytest.raises(ValueError, match="discrete action spaces only"):
        allowed_actions(Box(-1, 1, (2,)), ["up"])


def test_a_restricted_files_sampler_draws_exactly_its_actions(tmp_path):
    path = _collect(tmp_path, actions=["up", "left"], episodes=3, steps=4)
    with RolloutDataset(path) as ds:
        sampler = ds.action_sampler()
        held = ds.actions[:]
    assert sampler.can_draw(held).all()
    every = np.arange(20)  # 5 objects x (up, right, down, left)
    np.testing.assert_array_equal(sampler.can_draw(every), np.isin(every % 4, [0, 3]))
    with RolloutDataset(_collect(tmp_path, name="all.h5", episodes=2, steps=2)) as ds:
        assert ds.action_sampler().can_draw(every).all()  # unrestricted


def test_positive_torque_sampler_tells_the_torque_sign():
    sampler = ActionSampler(Box(-1, 1, (2,)), None, positive_torque=True)
    a = np.array([[[0.5, 0.2], [-0.5, -0.1]], [[0.0, 0.0], [0.9, -0.9]]])  # [N=2, K=2, 2]
    np.testing.assert_array_equal(sampler.can_draw(a), [[True, False], [True, False]])
    rng = np.random.default_rng(0)
    assert sampler.can_draw(np.stack([sampler(rng) for _ in range(50)])).all()
    assert ActionSampler(Box(-1, 1, (2,)), None, positive_torque=False).can_draw(a).all()
    with pytest.raises(ValueError, match="action shape"):
        sampler.can_draw(np.zeros((4, 3)))


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


def test_a_rerun_clears_the_temporary_of_a_killed_collection(tmp_path):
    # a collection killed midway leaves .d.h5.tmp-PID behind: the next one removes it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".d.h5.tmp-{dead.pid}"
    stale.write_bytes(b"half a dataset")
    live = tmp_path / f".d.h5.tmp-{os.getppid()}"  # a collection still running elsewhere: kept
    live.write_bytes(b"being written")
    path = _collect(tmp_path)
    assert not stale.exists() and live.exists()
    assert not temporary_name(path).exists()
    with RolloutDataset(path) as ds:
        assert ds.episodes == 5


def test_reader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="sen-rl collect"):
        RolloutDataset(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        RolloutDataset(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f[OBS_KEY] = np.zeros((1, 2, 3))
    with pytest.raises(DatasetError, match="not a sen-rl rollout file"):
        RolloutDataset(foreign)
    good = _collect(tmp_path)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DatasetError):
        RolloutDataset(truncated)
    with h5py.File(good, "a") as f:
        del f[REWARDS_KEY]
    with pytest.raises(DatasetError, match="lacks"):
        RolloutDataset(good)


def test_bad_config():
    with pytest.raises(ValueError, match="unknown env id") as err:
        CollectConfig("SEN-Nope-v0", 1, 1).validate()
    assert all(env_id in str(err.value) for env_id in ENV_IDS)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        CollectConfig("SEN-Shapes-v0", 0, 1).validate()


def test_pictures_show_the_current_frame_of_a_stack():
    from sen_rl.viz import displayable, stacked_frames

    assert stacked_frames("SEN-Reacher-v0") == 2 and stacked_frames("SEN-Shapes-v0") == 1
    stack = np.concatenate([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(displayable(stack, 2), np.full((4, 4, 3), 7, np.uint8))  # the last frame
    rgb = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_array_equal(displayable(rgb), rgb)
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    np.testing.assert_array_equal(displayable(gray), np.repeat(gray, 3, axis=-1))
    two_gray = np.concatenate([np.zeros_like(gray), gray], axis=-1)
    np.testing.assert_array_equal(displayable(two_gray, 2), np.repeat(gray, 3, axis=-1))
