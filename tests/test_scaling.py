"""Scaling out: sharded collection, several files as one dataset, and the precision a run trains in."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import sen_rl.train
from sen_rl.cli import main
from sen_rl.data import CollectConfig, ConcatRolloutDataset, DatasetError, collect, open_rollouts
from sen_rl.train import TrainConfig, train

# a collection with a warm-up and more episodes than envs, so that shards start mid-batch
SHAPES = dict(env_id="SEN-Shapes-v0", episodes=7, steps=4, seed=5, warmup=2, num_envs=2, vectorization="sync")
KEYS = ("obs", "actions", "states", "rewards")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The whole collection and its 3 shards (7 episodes: 2 + 2 + 3)."""
    root = tmp_path_factory.mktemp("shards")
    whole = collect(CollectConfig(**SHAPES), root / "whole.h5", progress=False)
    parts = [collect(CollectConfig(**SHAPES, shard=f"{k}/3"), root / f"part{k}.h5", progress=False) for k in (1, 2, 3)]
    return whole, parts


def test_shards_concatenate_to_the_whole_collection_exactly(shards):
    whole, parts = shards
    with h5py.File(whole) as f:
        full = {k: f[k][()] for k in KEYS}
    counts, firsts = [], []
    for path in parts:
        with h5py.File(path) as f:
            counts.append(f[KEYS[0]].shape[0])
            firsts.append(int(f.attrs["first_episode"]))
            assert int(f.attrs["total_episodes"]) == 7 and int(f.attrs["episodes"]) == counts[-1]
    assert counts == [2, 2, 3] and firsts == [0, 2, 4]
    for key in KEYS:
        joined = []
        for path in parts:
            with h5py.File(path) as f:
                joined.append(f[key][()])
        assert np.array_equal(np.concatenate(joined), full[key]), key
        assert np.concatenate(joined).dtype == full[key].dtype


def test_several_files_read_like_one_in_episode_order(shards):
    whole, parts = shards
    # given out of order and as a glob: shards are put in episode order
    with open_rollouts([parts[2], parts[0], parts[1]]) as many, open_rollouts(str(whole)) as one:
        assert isinstance(many, ConcatRolloutDataset) and many.episodes == one.episodes == 7
        for key in KEYS:
            assert np.array_equal(getattr(many, key)[()], getattr(one, key)[()]), key
        assert np.array_equal(many.obs[1:5, 2], one.obs[1:5, 2])  # a slice across two files
        assert np.array_equal(many.actions[-1], one.actions[-1])
    with open_rollouts(str(parts[0].parent / "part*.h5")) as globbed:
        assert globbed.episodes == 7


def test_the_same_shard_twice_and_a_missing_glob_are_refused(shards, tmp_path):
    _, parts = shards
    copy = tmp_path / "again.h5"
    copy.write_bytes(parts[1].read_bytes())
    with pytest.raises(DatasetError, match="hold the same episodes"):
        open_rollouts([parts[1], copy])
    with pytest.raises(ValueError, match="given twice"):
        open_rollouts([parts[1], parts[1]])
    with pytest.raises(FileNotFoundError, match="no dataset matches"):
        open_rollouts(str(tmp_path / "nothing*.h5"))


def test_files_that_disagree_are_refused_with_the_difference(shards, tmp_path):
    whole, _ = shards
    small = collect(
        CollectConfig("SEN-Reacher-v0", 2, 2, env_kwargs={"size": 16}, vectorization="sync"),
        tmp_path / "r16.h5",
        progress=False,
    )
    large = collect(
        CollectConfig("SEN-Reacher-v0", 2, 2, env_kwargs={"size": 24}, vectorization="sync"),
        tmp_path / "r24.h5",
        progress=False,
    )
    with pytest.raises(DatasetError, match="r24.h5 cannot be read as one dataset.*obs_shape"):
        open_rollouts([small, large])
    with pytest.raises(DatasetError, match="env_id 'SEN-Reacher-v0' against 'SEN-Shapes-v0'"):
        open_rollouts([whole, small])


def test_bad_shard_specs():
    for spec in ("0/3", "4/3", "2", "a/b"):
        with pytest.raises(ValueError, match="K/N with 1 <= K <= N"):
            CollectConfig(**SHAPES, shard=spec).validate()
    with pytest.raises(ValueError, match="leave some parts empty"):
        CollectConfig(**SHAPES, shard="1/8").validate()


def _cfg(data, out, **kw):
    base = dict(data=data, out=str(out), preset="smoke", batch_size=6, seed=2, device="cpu", val_samples=8)
    return TrainConfig(**{**base, "threads": 1, "epochs": 2, **kw})


def _final(out):
    payload = torch.load(out / "last.pt", weights_only=False)
    return payload["model_state"], [r["loss"] for r in payload["history"]], payload


def test_training_on_shards_equals_training_on_the_whole_file(shards, tmp_path):
    whole, parts = shards
    train(_cfg(str(whole), tmp_path / "one"), progress=False, log=False, verbose=False)
    train(_cfg([str(p) for p in parts], tmp_path / "many"), progress=False, log=False, verbose=False)
    (wa, la, _), (wb, lb, _) = _final(tmp_path / "one"), _final(tmp_path / "many")
    assert la == lb
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_cli_collects_a_shard_and_evaluates_several_files(shards, tmp_path, capsys):
    whole, parts = shards
    out = tmp_path / "p2.h5"
    argv = ["collect", "--env", "SEN-Shapes-v0", "--episodes", "7", "--steps", "4", "--seed", "5", "--warmup", "2"]
    assert main([*argv, "--vectorization", "sync", "--shard", "2/3", "--out", str(out), "--quiet"]) == 0
    assert "part 2/3: episodes 2..3 of 7" in capsys.readouterr().out
    with h5py.File(out) as a, h5py.File(parts[1]) as b:
        assert np.array_equal(a["obs"][()], b["obs"][()])
    train(_cfg(str(whole), tmp_path / "run", epochs=1), progress=False, log=False, verbose=False)
    report = tmp_path / "eval.json"
    args = [
        "eval",
        "--checkpoint",
        str(tmp_path / "run" / "last.pt"),
        "--hh-samples",
        "0",
        "--horizon",
        "3",
        "--json",
        str(report),
    ]
    assert main([*args, "--data", *map(str, parts)]) == 0
    many = json.loads(report.read_text())
    assert main([*args, "--data", str(whole)]) == 0
    one = json.loads(report.read_text())
    assert many["samples"] == one["samples"] == 7
    assert many["hits@1"] == one["hits@1"] and many["mrr"] == one["mrr"]


def test_explicit_amp_is_kept_and_auto_resumes_in_the_saved_precision(shards, tmp_path, monkeypatch):
    whole, _ = shards
    calls = []

    def fake_resolve(amp, device):
        calls.append(amp)
        return ("bf16", "pretend native") if amp == "auto" else (amp, "asked for")

    monkeypatch.setattr(sen_rl.train, "resolve_amp", fake_resolve)
    train(_cfg(str(whole), tmp_path / "a", epochs=1, amp="auto"), progress=False, log=False, verbose=False)
    assert _final(tmp_path / "a")[2]["precision"] == "bf16"
    # on another machine auto would say fp32: a resumed run keeps the precision it was trained in
    monkeypatch.setattr(sen_rl.train, "resolve_amp", lambda amp, device: ("fp32", "other machine"))
    train(_cfg(str(whole), tmp_path / "a", epochs=2, amp="auto"), resume=True, progress=False, log=False, verbose=False)
    assert _final(tmp_path / "a")[2]["precision"] == "bf16"
    train(_cfg(str(whole), tmp_path / "b", epochs=1, amp="off"), progress=False, log=False, verbose=False)
    assert _final(tmp_path / "b")[2]["precision"] == "fp32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_trains_in_reduced_precision(shards, tmp_path):
    whole, _ = shards
    train(_cfg(str(whole), tmp_path / "gpu", epochs=1, device="cuda"), progress=False, log=False, verbose=False)
    payload = _final(tmp_path / "gpu")[2]
    assert payload["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in payload["history"])
