"""Training: exact resume, checkpoints that rebuild the model alone, divergence, clear errors."""

import shutil

import h5py
import numpy as np
import pytest
import torch

import sen_rl.data
import sen_rl.train
from sen_rl.data import CollectConfig, RolloutDataset, TransitionStream, collect, distinct_targets
from sen_rl.model import WorldModel, load_model
from sen_rl.train import TrainConfig, TrainingDiverged, cosine_lr, train


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "shapes.h5"
    return collect(CollectConfig("SEN-Shapes-v0", 12, 10, seed=0, vectorization="sync"), path, progress=False)


def _cfg(data, out, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        preset="smoke",
        batch_size=16,
        seed=1,
        device="cpu",
        val_samples=20,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return torch.load(path, weights_only=False)["model_state"]


@pytest.mark.parametrize(
    "kw", [dict(lr_schedule="constant"), dict(lr_schedule="cosine"), dict(augment="group")], ids=str
)
def test_two_epochs_equal_one_plus_resumed_one(shapes_data, tmp_path, kw, monkeypatch):
    train(_cfg(shapes_data, tmp_path / "a", epochs=2, **kw), progress=False, log=False, verbose=False)
    # a 2-epoch run killed in epoch 2, before its checkpoint (a cosine curve depends on the total)
    real_save, calls = WorldModel.save, {"n": 0}

    def save_then_die(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_save(self, *a, **k)

    monkeypatch.setattr(WorldModel, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(shapes_data, tmp_path / "b", epochs=2, **kw), progress=False, log=False, verbose=False)
    monkeypatch.setattr(WorldModel, "save", real_save)
    train(_cfg(shapes_data, tmp_path / "b", epochs=2, **kw), resume=True, progress=False, log=False, verbose=False)
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["history"]
    hb = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["history"]
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb]
    # each epoch's time is kept across the resume: what a run's training time is summed from
    assert len(hb) == 2 and all(r["epoch_seconds"] > 0 for r in hb)


def test_cosine_schedule_values_and_resume_check(shapes_data, tmp_path):
    assert cosine_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 50, 100) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 100, 100) == pytest.approx(0.0)
    assert cosine_lr(1e-3, 25, 100) == pytest.approx(0.5e-3 * (1 + np.cos(np.pi / 4)))
    train(_cfg(shapes_data, tmp_path, epochs=1, lr_schedule="cosine"), progress=False, log=False, verbose=False)
    # the optimiser ran its last step near the end of the curve, far below the base rate
    lr = torch.load(tmp_path / "last.pt", weights_only=False)["optimizer_state"]["param_groups"][0]["lr"]
    assert 0 < lr < 0.2 * 5e-4
    with pytest.raises(ValueError, match="lr_schedule='cosine'"):
        train(_cfg(shapes_data, tmp_path, epochs=2), resume=True, progress=False, log=False, verbose=False)
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine"):
        train(_cfg(shapes_data, tmp_path / "x", epochs=1, lr_schedule="step"), progress=False, log=False)


def _moved_by(elements, on_pixels, on_action, before, after, row):
    """The group elements that move transition ``row`` of batch ``before`` onto the same row of ``after``."""
    (o, a, n), (o2, a2, n2) = ([x[row] for x in b] for b in (before, after))
    return [
        g
        for g in elements
        if np.array_equal(on_pixels(g, o), o2)
        and np.array_equal(on_pixels(g, n), n2)
        and np.array_equal(np.asarray(on_action(g, np.asarray(a)[None]))[0], a2)
    ]


def test_group_augment_moves_each_transition_by_one_element():
    """Reacher's D4 on random pictures and torques: each row moved whole by one element, all elements drawn."""
    from sen_rl.domains import domain_of
    from sen_rl.groups import D4_ELEMENTS, d4_act_on_action

    on_pixels = domain_of("SEN-Reacher-v0").act_on_observation
    rng = np.random.default_rng(0)
    batch = (
        rng.integers(0, 256, (200, 8, 8, 6), dtype=np.uint8),
        rng.uniform(-1, 1, (200, 2)).astype(np.float32),
        rng.integers(0, 256, (200, 8, 8, 6), dtype=np.uint8),
    )
    kept = tuple(x.copy() for x in batch)
    moved = sen_rl.data.group_augment(batch, D4_ELEMENTS, on_pixels, d4_act_on_action, np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(batch, kept, strict=True))  # the input is left alone
    assert [x.shape for x in moved] == [x.shape for x in batch] and moved[1].dtype == np.float32
    used = []
    for row in range(200):
        (g,) = _moved_by(D4_ELEMENTS, on_pixels, d4_act_on_action, batch, moved, row)  # random pictures: one
        used.append(g)
    assert set(used) == set(D4_ELEMENTS)
    assert any(g[0] == 1 for g in used) and any(moved[1][i, 0] == -batch[1][i, 0] != 0 for i in range(200))


def test_training_sees_the_recorded_batches_moved(shapes_data, tmp_path, monkeypatch):
    """--augment group: the same batches in the same order as without, each transition moved by a C4 element."""
    from sen_rl.domains import domain_of
    from sen_rl.groups import C4_ELEMENTS, c4_rotate_grid_action

    seen: dict[str, list] = {}
    real_step = sen_rl.train._train_step

    def record(run, batch, *a, **k):
        seen.setdefault(run.config.out, []).append(batch)
        return real_step(run, batch, *a, **k)

    monkeypatch.setattr(sen_rl.train, "_train_step", record)
    plain, moved = str(tmp_path / "plain"), str(tmp_path / "moved")
    train(_cfg(shapes_data, plain, epochs=1), progress=False, log=False, verbose=False)
    train(_cfg(shapes_data, moved, epochs=1, augment="group"), progress=False, log=False, verbose=False)
    assert len(seen[plain]) == len(seen[moved]) > 1
    on_pixels, used = domain_of("SEN-Shapes-v0").act_on_observation, set()
    for before, after in zip(seen[plain], seen[moved], strict=True):
        for row in range(len(before[0])):
            found = _moved_by(C4_ELEMENTS, on_pixels, c4_rotate_grid_action, before, after, row)
            assert found, row
            used.update(found)
    assert used == set(C4_ELEMENTS)
    # the checkpoint records it, so that a resumed run keeps it
    assert torch.load(tmp_path / "moved" / "last.pt", weights_only=False)["train_config"]["augment"] == "group"


def test_augment_needs_a_known_action_on_pixels(shapes_data, tmp_path):
    with pytest.raises(ValueError, match="no map of SEN-Cubes-v0's images.*SEN-Shapes-v0, SEN-Reacher-v0.*without"):
        sen_rl.train._check_augment("group", "SEN-Cubes-v0")
    with pytest.raises(ValueError, match="no map of SEN-Teapot-v0's images"):
        sen_rl.train._check_augment("group", "SEN-Teapot-v0")
    with pytest.raises(ValueError, match="augment must be one of group or None, got 'flip'"):
        train(_cfg(shapes_data, tmp_path / "x", epochs=1, augment="flip"), progress=False, log=False)
    # a resumed run keeps its augmentation: switching it on half-way is refused
    train(_cfg(shapes_data, tmp_path / "r", epochs=1), progress=False, log=False, verbose=False)
    with pytest.raises(ValueError, match="augment=None, not 'group'"):
        train(_cfg(shapes_data, tmp_path / "r", epochs=2, augment="group"), resume=True, progress=False, log=False)
    # so is a checkpoint from before the option, which ran without it
    last = tmp_path / "r" / "last.pt"
    payload = torch.load(last, weights_only=False)
    del payload["train_config"]["augment"]
    torch.save(payload, last)
    with pytest.raises(ValueError, match="augment=None, not 'group'"):
        train(_cfg(shapes_data, tmp_path / "r", epochs=2, augment="group"), resume=True, progress=False, log=False)


def test_checkpoint_alone_rebuilds_the_model(shapes_data, tmp_path):
    result = train(_cfg(shapes_data, tmp_path, epochs=1), progress=False, log=False, verbose=False)
    model = load_model(result["best"])
    assert isinstance(model, WorldModel) and not model.training
    obs = np.zeros((2, 50, 50, 3), np.uint8)
    z = model.encode(obs)
    assert torch.isfinite(z).all()
    z2 = model.predict(z, np.array([0, 5]))
    assert z2.shape == z.shape
    assert model.rollout(z, np.array([[0, 1, 2], [3, 4, 5]])).shape == (2, 3, *z.shape[1:])


def _parameters(path):
    """The trainable weights of a checkpoint: batch norms' running statistics move even at lr ~ 0."""
    return {k: v for k, v in _weights(path).items() if "running_" not in k and "num_batches" not in k}


def test_init_seed_draws_the_weights_and_nothing_else(shapes_data, tmp_path):
    def run(name, **kw):  # an lr so small that one epoch leaves the drawn weights as they were
        train(_cfg(shapes_data, tmp_path / name, epochs=1, lr=1e-12, **kw), progress=False, log=False, verbose=False)
        return tmp_path / name / "last.pt"

    seed1, seed1_init1, seed0_init1 = (
        run("s1", seed=1),
        run("s1i1", seed=1, init_seed=1),
        run("s0i1", seed=0, init_seed=1),
    )
    # init_seed equal to seed is the plain run, bit for bit
    a, b = _weights(seed1), _weights(seed1_init1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # seed 0 with seed 1's weights: the same initial weights...
    p1, p01 = _parameters(seed1), _parameters(seed0_init1)
    assert all(torch.allclose(p1[k], p01[k], atol=1e-8) for k in p1)
    p0 = _parameters(run("s0", seed=0))
    assert not all(torch.allclose(p1[k], p0[k], atol=1e-8) for k in p1)
    # ...under seed 0's split, data order and negatives
    h1 = torch.load(seed1, weights_only=False)["history"][0]
    h01 = torch.load(seed0_init1, weights_only=False)["history"][0]
    assert h1["loss"] != h01["loss"] and h1["val_loss"] != h01["val_loss"]
    # kept on resume like the seed, and a different one refused
    assert torch.load(seed0_init1, weights_only=False)["train_config"]["init_seed"] == 1
    with pytest.raises(ValueError, match="init_seed=1"):
        train(_cfg(shapes_data, tmp_path / "s0i1", epochs=2, seed=0), resume=True, progress=False, log=False)
    # one network's weights from another seed: the embedding is seed 1's, the encoder and transition seed 0's
    p0e1 = _parameters(run("s0e1", seed=0, init_part_seeds={"embedding": 1}))
    assert {k.split(".")[0] for k in p0e1} == {"embedding", "encoder", "transition"}
    for k in p0e1:
        assert torch.allclose(p0e1[k], (p1 if k.startswith("embedding.") else p0)[k], atol=1e-8), k
    with pytest.raises(ValueError, match="no network 'decoder'"):
        run("bad", init_part_seeds={"decoder": 1})


def test_divergence_stops_and_keeps_last_good_checkpoint(shapes_data, tmp_path, monkeypatch):
    train(_cfg(shapes_data, tmp_path, epochs=1), progress=False, log=False, verbose=False)
    good = (tmp_path / "last.pt").read_bytes()
    real = WorldModel.loss
    calls = {"n": 0}

    def poisoned(self, *a, **kw):
        out = real(self, *a, **kw)
        calls["n"] += 1
        if calls["n"] == 3:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(WorldModel, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3"):
        train(_cfg(shapes_data, tmp_path, epochs=3), resume=True, progress=False, log=False, verbose=False)
    assert (tmp_path / "last.pt").read_bytes() == good


def test_divergence_closes_the_dataset_and_the_writer(shapes_data, tmp_path, monkeypatch):
    data = shutil.copyfile(shapes_data, tmp_path / "d.h5")  # opened for writing below
    opened, closed_writers = [], []

    class SpyDataset(RolloutDataset):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            opened.append(self)

    from torch.utils.tensorboard import SummaryWriter

    real_close = SummaryWriter.close

    def spy_close(self):
        closed_writers.append(self)
        return real_close(self)

    def nan_loss(self, *a, **kw):
        return {"loss": torch.tensor(float("nan"), requires_grad=True)}

    monkeypatch.setattr(sen_rl.data, "RolloutDataset", SpyDataset)  # what train's open_rollouts opens
    monkeypatch.setattr(SummaryWriter, "close", spy_close)
    monkeypatch.setattr(WorldModel, "loss", nan_loss)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1"):
        train(_cfg(data, tmp_path / "run", epochs=1), progress=False, log=True, verbose=False)
    assert len(opened) == 1 and opened[0].closed
    assert len(closed_writers) == 1
    with h5py.File(data, "a"):  # HDF5 refuses this while the file is still open for reading
        pass
    # a run that fails before its first epoch closes the file too
    with pytest.raises(ValueError, match="batch_size"):
        train(_cfg(data, tmp_path / "run2", batch_size=1), progress=False, log=False, verbose=False)
    assert len(opened) == 2 and opened[1].closed


def test_clear_errors(shapes_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(_cfg(shapes_data, tmp_path / "fresh", epochs=1), resume=True, progress=False, log=False, verbose=False)
    with pytest.raises(FileExistsError, match="--resume"):  # an earlier run is never clobbered
        train(_cfg(shapes_data, tmp_path / "fresh2", epochs=1), progress=False, log=False, verbose=False)
        train(_cfg(shapes_data, tmp_path / "fresh2", epochs=1), progress=False, log=False, verbose=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(_cfg(shapes_data, tmp_path / "x", batch_size=1), progress=False, log=False, verbose=False)
    # resuming with data of another environment is refused
    train(_cfg(shapes_data, tmp_path / "run", epochs=1), progress=False, log=False, verbose=False)
    cubes = collect(CollectConfig("SEN-Cubes-v0", 3, 2, vectorization="sync"), tmp_path / "c.h5", progress=False)
    with pytest.raises(ValueError, match="SEN-Shapes-v0"):
        train(_cfg(cubes, tmp_path / "run", epochs=2), resume=True, progress=False, log=False, verbose=False)
    model = load_model(tmp_path / "run" / "last.pt")
    with pytest.raises(ValueError, match="uint8"):
        model.encode(np.zeros((2, 50, 50, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.encode(np.zeros((2, 64, 64, 3), np.uint8))


class _FakeDataset:
    """obs[e, t] holds (e, t) in its first two pixels, so every yielded transition can be traced."""

    def __init__(self, episodes, steps):
        obs = np.zeros((episodes, steps + 1, 2, 2, 1), np.uint8)
        obs[:, :, 0, 0, 0] = np.arange(episodes)[:, None]
        obs[:, :, 0, 1, 0] = np.arange(steps + 1)[None, :]
        self.obs, self.actions = obs, np.arange(episodes * steps).reshape(episodes, steps)
        self.steps, self.obs_shape = steps, obs.shape[2:]


@pytest.mark.parametrize("block_bytes", [1, 40, 1 << 20])
def test_stream_visits_every_training_transition_once(block_bytes):
    ds = _FakeDataset(episodes=23, steps=7)
    train_eps = np.array([0, 2, 3, 5, 8, 9, 10, 11, 15, 16, 22])
    stream = TransitionStream(ds, train_eps, batch_size=5, block_bytes=block_bytes)
    seen = []
    for obs, act, nxt in stream.epoch(np.random.default_rng(0)):
        assert 2 <= len(obs) <= 5
        e, t = obs[:, 0, 0, 0].astype(int), obs[:, 0, 1, 0].astype(int)
        np.testing.assert_array_equal(nxt[:, 0, 0, 0], e)  # the next frame is of the same episode...
        np.testing.assert_array_equal(nxt[:, 0, 1, 0], t + 1)  # ...one step later
        np.testing.assert_array_equal(act, e * 7 + t)  # and the action is the one taken between them
        seen += list(zip(e.tolist(), t.tolist(), strict=True))
    expected = {(e, t) for e in train_eps.tolist() for t in range(7)}
    assert len(seen) == len(set(seen)) == len(expected)  # 77 = 15 batches of 5 + a last one of 2
    assert set(seen) == expected
    capped = sum(len(b[0]) for b in stream.epoch(np.random.default_rng(0), max_transitions=20))
    assert capped == 20


def test_validation_keeps_one_transition_per_distinct_target():
    nxt = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [2, 2]], np.uint8)
    obs, act = np.arange(10).reshape(5, 2), np.arange(5)
    o, a, n = distinct_targets((obs, act, nxt))
    assert a.tolist() == [0, 1, 3] and n.tolist() == [[1, 1], [2, 2], [3, 3]]


def test_batch_size_defaults_to_the_domains_for_its_preset(shapes_data, tmp_path):
    """The grid domains and Teapot train the cpu preset at batch 64 (their plateau, sen_rl/domains.py); an
    explicit batch size wins; a domain without an override keeps the trainer's default."""
    from sen_rl.domains import domain_of

    assert domain_of("SEN-Shapes-v0").preset_batch_size["cpu"] == 64
    assert domain_of("SEN-Teapot-v0").preset_batch_size["cpu"] == 64
    assert "cpu" not in domain_of("SEN-Reacher-v0").preset_batch_size
    kw = dict(preset="cpu", batch_size=None, epochs=1, max_transitions=64, val_samples=4)
    train(_cfg(shapes_data, tmp_path / "default", **kw), progress=False, log=False, verbose=False)
    saved = torch.load(tmp_path / "default" / "last.pt", weights_only=False)["train_config"]
    assert saved["batch_size"] == 64
    kw["batch_size"] = 32
    train(_cfg(shapes_data, tmp_path / "explicit", **kw), progress=False, log=False, verbose=False)
    saved = torch.load(tmp_path / "explicit" / "last.pt", weights_only=False)["train_config"]
    assert saved["batch_size"] == 32
    assert sen_rl.train.PRESET_TRAINING["smoke"][1] == 64 and sen_rl.train.PRESET_TRAINING["cpu"][1] == 256
    with pytest.raises(ValueError, match="less than one batch"):  # an epoch of nothing is refused up front
        train(_cfg(shapes_data, tmp_path / "none", **{**kw, "max_transitions": 8}), progress=False, log=False)


def test_auto_precision_of_a_resumed_run_is_its_checkpoints(tmp_path):
    """A resumed ``--amp auto`` run keeps its checkpoint's precision; one written before
    precisions were stored was trained by the old rule (fp32 on the CPU), whatever this CPU is."""
    from sen_rl.distributed import World

    cfg = _cfg("unused.h5", tmp_path, amp="auto")
    cpu = torch.device("cpu")
    assert sen_rl.train._precision(cfg, cpu, {"precision": "bf16"}, World())[0] == "bf16"
    precision, why = sen_rl.train._precision(cfg, cpu, {"config": {}}, World())
    assert precision == "fp32" and "predates" in why
    assert (
        sen_rl.train._precision(_cfg("unused.h5", tmp_path, amp="bf16"), cpu, {"precision": "fp32"}, World())[0]
        == "bf16"
    )


def test_net_kwargs_go_on_top_of_the_domains_and_into_the_checkpoint(shapes_data, tmp_path):
    """``--net-kwargs`` adds builder keywords to the domain table's; the checkpoint stores them all,
    so it rebuilds alone; an unknown keyword is refused naming it and the builder."""
    from sen_rl.domains import domain_of

    result = train(
        _cfg(shapes_data, tmp_path / "a", epochs=1, net_kwargs={"edge_action": True}),
        progress=False,
        log=False,
        verbose=False,
    )
    domain_kwargs = dict(domain_of("SEN-Shapes-v0").net_kwargs)
    assert domain_kwargs and "edge_action" not in domain_kwargs
    model = load_model(result["best"])
    assert model.config.net_kwargs == {**domain_kwargs, "edge_action": True}
    assert model.nets.transition.edge_action
    # resuming keeps the network: the same keywords pass, others are refused
    resumed = _cfg(shapes_data, tmp_path / "a", epochs=2, net_kwargs={"edge_action": True})
    train(resumed, resume=True, progress=False, log=False, verbose=False)
    with pytest.raises(ValueError, match=r"--resume: .* was built with net_kwargs .*edge_action"):
        other = _cfg(shapes_data, tmp_path / "a", epochs=3, net_kwargs={"edge_action": False})
        train(other, resume=True, progress=False, log=False, verbose=False)
    with pytest.raises(ValueError, match=r"edge_actoin.*sen_rl\.nets\.grid\.build"):
        train(_cfg(shapes_data, tmp_path / "b", epochs=1, net_kwargs={"edge_actoin": True}), progress=False, log=False)
