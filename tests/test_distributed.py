"""Data-parallel training: 2 CPU processes (gloo) train like 1 process at the same global batch.

The processes are started as torchrun would start them (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), by torch.multiprocessing, so that one start
serves a run and its resumption.
"""

from __future__ import annotations

import os
import socket
import time
import traceback

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import sen_rl.train
from sen_rl.data import CollectConfig, collect
from sen_rl.distributed import World, share
from sen_rl.model import build_model
from sen_rl.train import TrainConfig, train

LR = 5e-4
ATOL = 1e-5
"""Parameters of the 2-process run equal the 1-process ones to this (float32 sums in another order)."""


def _free_ports() -> tuple[int, int]:
    """Two free TCP ports (held open together, so that they differ)."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return a.getsockname()[1], b.getsockname()[1]


def _cfg(data: str, out: str, epochs: int) -> TrainConfig:
    return TrainConfig(
        data=data,
        out=out,
        preset="smoke",
        batch_size=16,
        epochs=epochs,
        seed=1,
        device="cpu",
        val_samples=20,
        threads=1,
        dist_timeout=20,
        amp="fp32",  # the bounds below are float32's; `auto` may pick bf16 on a CPU that has it
    )


def _worker(rank: int, world: int, ports: tuple, data: str, out: str, fail_rank: int, report: str) -> None:
    """One rank: a 1-epoch run, then its resumption to 2 epochs (or a crash at the first step of ``fail_rank``).

    Each run rendezvouses on a port of its own, as two torchrun launches would: a second group
    on the first port could meet the first group's rendezvous store before rank 0 closes it.
    """
    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        if rank == fail_rank:

            def crash(*args, **kwargs):
                raise RuntimeError("injected failure")

            sen_rl.train._train_step = crash
        os.environ["MASTER_PORT"] = str(ports[0])
        train(_cfg(data, out, 1), progress=False, log=False, verbose=False)
        os.environ["MASTER_PORT"] = str(ports[1])
        train(_cfg(data, out, 2), resume=True, progress=False, log=False, verbose=False)
    except BaseException as exc:
        with open(f"{report}.{rank}", "w") as f:
            f.write(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "shapes.h5"
    return collect(CollectConfig("SEN-Shapes-v0", 12, 10, seed=0, vectorization="sync"), path, progress=False)


def _bias_before_batch_norm(model: nn.Module) -> set[str]:
    """Biases of convolutions followed by a batch norm, and that norm's running mean.

    Such a bias has a gradient of exactly zero (the norm subtracts it again); in floating point
    it is rounding noise, which Adam turns into steps of about ``lr`` with a random sign in each
    process. They are checked against that bound instead.
    """
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            kids = list(module.named_children())
            for (a, conv), (b, norm) in zip(kids, kids[1:], strict=False):
                if isinstance(conv, nn.Conv2d) and conv.bias is not None and isinstance(norm, nn.BatchNorm2d):
                    names |= {f"{prefix}.{a}.bias", f"{prefix}.{b}.running_mean"}
    return names


def test_share_splits_every_batch_without_overlap():
    for n in (2, 7, 16):
        for size in (1, 2, 3):
            rows = [range(n)[share(n, World(r, size))] for r in range(size)]
            assert [i for part in rows for i in part] == list(range(n))
            assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_two_processes_train_like_one_and_resume(shapes_data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    train(_cfg(str(shapes_data), str(one), 2), progress=False, log=False, verbose=False)
    ctx = mp.start_processes(
        _worker,
        args=(2, _free_ports(), str(shapes_data), str(two), -1, str(tmp_path / "error")),
        nprocs=2,
        start_method="spawn",
        join=False,
    )
    # bounded: a hang fails the test with the ranks' reports instead of stalling the suite
    deadline = time.monotonic() + 180
    for p in ctx.processes:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [p for p in ctx.processes if p.is_alive()]
    for p in alive:
        p.kill()
    reports = {f.name: f.read_text() for f in tmp_path.glob("error.*")}
    assert not alive and all(p.exitcode == 0 for p in ctx.processes), (alive, reports)
    a = torch.load(one / "last.pt", weights_only=False)
    b = torch.load(two / "last.pt", weights_only=False)
    # the global loss of every epoch, and the validation on rank 0, as in one process
    for ra, rb in zip(a["history"], b["history"], strict=True):
        for key in ("loss", "positive", "negative"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=ATOL), key
        # validation runs in eval mode, where a bias before batch norm no longer cancels but
        # meets the running mean: the bias noise bounded below reaches val_loss (on an AMD EPYC
        # 1.8e-5 relative at epoch 2, while the training losses agreed to 5e-7)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-4), "val_loss"
    steps = 2 * len(a["history"]) * 6  # 108 training transitions per epoch at batch 16: 7 steps at most
    noisy = _bias_before_batch_norm(build_model("SEN-Shapes-v0", "sen", "smoke"))
    assert noisy, "the smoke model has convolution biases before batch norms: the rule must find them"
    for key, wa in a["model_state"].items():
        wb = b["model_state"][key]
        if not wa.is_floating_point():
            assert torch.equal(wa, wb), key
        elif key in noisy:
            assert (wa - wb).abs().max() <= LR * steps, key
        else:
            assert torch.allclose(wa, wb, rtol=0, atol=ATOL), (key, float((wa - wb).abs().max()))


def test_a_failing_rank_stops_the_others_with_a_message(shapes_data, tmp_path):
    report = tmp_path / "error"
    ctx = mp.start_processes(
        _worker,
        args=(2, _free_ports(), str(shapes_data), str(tmp_path / "run"), 1, str(report)),
        nprocs=2,
        start_method="spawn",
        join=False,
    )
    deadline = time.monotonic() + 60
    for p in ctx.processes:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [p for p in ctx.processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung after the other failed"
    assert all(p.exitcode != 0 for p in ctx.processes)
    assert "injected failure" in (tmp_path / "error.1").read_text()
    assert (tmp_path / "error.0").exists()  # rank 0 stopped on its own, with an error of its own
