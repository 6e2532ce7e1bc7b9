"""Where the time of a ``sen-rl train`` run goes, against the bare training step of train_speed.

    python -m benchmarks.train_breakdown --data data/reacher64.h5 --preset cpu --batch-size 256 --threads 1

Runs :func:`sen_rl.train.train` as ``sen-rl train`` does (no progress bar, no TensorBoard
writer) with timers around its parts: set-up (opening the data, building the model, drawing
the validation batch), each ``next()`` of the training stream (HDF5 reads, lzf decompression,
shuffling, gathering), the first optimiser step of each epoch (one-off kernel choices) and the
others, escnn's filter expansion in the forward pass (training mode expands every equivariant
filter from its basis on every call), validation and the checkpoint. Then, in the same process,
at the same batch, threads and precision, the bare step of :func:`benchmarks.train_speed.measure`
on random in-memory batches. The first line names the machine; the run folder is a temporary one.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

import sen_rl.train as train_mod
from benchmarks.train_speed import measure
from sen_rl.data import TransitionStream, open_rollouts
from sen_rl.hardware import describe_machine
from sen_rl.nets.escnn_utils import import_escnn


class Timers:
    """Seconds per (epoch, part); epoch 0 holds what happens once, before the first epoch."""

    def __init__(self) -> None:
        self.epoch = 0
        self.seconds: dict[tuple[int, str], float] = defaultdict(float)
        self.steps: dict[int, int] = defaultdict(int)

    def add(self, part: str, sec: float) -> None:
        self.seconds[self.epoch, part] += sec

    def wrap(self, fn: Callable, part: str | Callable[..., str]) -> Callable:
        """``fn`` timed into ``part`` (a name, or a function of fn's arguments giving one)."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(part(*args, **kwargs) if callable(part) else part, time.perf_counter() - t)

        return timed


def instrument(timers: Timers) -> Callable[[], None]:
    """Put the timers into sen_rl.train, the stream and escnn; returns the function that takes them out."""
    enn = import_escnn().nn
    saved = [
        (train_mod, "_build", train_mod._build),
        (train_mod, "_train_step", train_mod._train_step),
        (train_mod, "_run_epoch", train_mod._run_epoch),
        (train_mod, "_validate", train_mod._validate),
        (train_mod, "_save_epoch", train_mod._save_epoch),
        (TransitionStream, "epoch", TransitionStream.epoch),
    ]
    # the escnn classes whose forward expands a filter from its basis in training mode
    saved += [(cls, "expand_parameters", cls.expand_parameters) for cls in (enn.R2Conv, enn.Linear)]
    run_epoch, train_step, stream_epoch = train_mod._run_epoch, train_mod._train_step, TransitionStream.epoch

    def epoch(run, epoch, progress):
        timers.epoch = epoch + 1
        return timers.wrap(run_epoch, "epoch loop (sen-rl train's samples/s)")(run, epoch, progress)

    def step(run, batch, gen, epoch, i):
        timers.steps[timers.epoch] += 1
        return timers.wrap(train_step, "first training step" if i == 0 else "other training steps")(
            run, batch, gen, epoch, i
        )

    def batches(self, *args, **kwargs) -> Iterator:
        it = stream_epoch(self, *args, **kwargs)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                timers.add("data: next batch (read, lzf decompression, shuffle, gather)", time.perf_counter() - t)
            yield batch

    train_mod._build = timers.wrap(train_mod._build, "set-up: model, optimiser, streams, validation batch")
    train_mod._run_epoch, train_mod._train_step, TransitionStream.epoch = epoch, step, batches
    train_mod._validate = timers.wrap(train_mod._validate, "validation")
    train_mod._save_epoch = timers.wrap(train_mod._save_epoch, "checkpoint (last.pt, best.pt)")
    for cls, name, fn in saved[-2:]:
        setattr(cls, name, timers.wrap(fn, "  of which escnn filter expansion (forward only)"))

    def restore() -> None:
        for owner, name, fn in saved:
            setattr(owner, name, fn)

    return restore


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="rollout file (sen-rl collect)")
    p.add_argument("--variant", default="sen")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--amp", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default, as sen-rl train)")
    p.add_argument("--bare-steps", type=int, default=3, help="timed steps of the bare step (after one warm-up)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {describe_machine()}; {torch.get_num_threads()} torch threads", flush=True)
    ds = open_rollouts(args.data)
    env_id, n_transitions = ds.env_id, ds.episodes * ds.steps
    ds.close()
    timers = Timers()
    restore = instrument(timers)
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as out:
            config = train_mod.TrainConfig(
                data=args.data,
                out=str(Path(out) / "run"),
                variant=args.variant,
                preset=args.preset,
                epochs=args.epochs,
                batch_size=args.batch_size,
                amp=args.amp,
                threads=args.threads,
            )
            result = train_mod.train(config, progress=False, log=False, verbose=False)
    finally:
        restore()
    total = time.perf_counter() - t0
    history = result["history"]
    precision = train_mod.check_amp(args.amp)
    bare = measure(
        env_id, args.variant, args.preset, args.batch_size, args.bare_steps, 1, precision, False, torch.device("cpu")
    )

    epochs = range(1, args.epochs + 1)
    print(
        f"\n{env_id} {args.variant} {args.preset}, {n_transitions} transitions, batch {args.batch_size}, "
        f"{args.amp}: whole run {total:.1f} s"
    )
    header = "| part | before | " + " | ".join(f"epoch {e}" for e in epochs) + " |"
    print(header)
    print("|---" * (2 + len(epochs)) + "|")
    names = list(dict.fromkeys(part for (_, part) in timers.seconds))
    for name in names:
        cells = [timers.seconds.get((e, name)) for e in (0, *epochs)]
        print(f"| {name} | " + " | ".join("" if c is None else f"{c:.2f} s" for c in cells) + " |")
    steps = [timers.steps[e] for e in epochs]
    print("| optimiser steps | | " + " | ".join(str(s) for s in steps) + " |")
    rates = [f"{row['samples_per_sec']:.1f}/s" for row in history]
    print("| samples/s, sen-rl train's history | | " + " | ".join(rates) + " |")
    print(
        f"bare step (benchmarks.train_speed, random in-memory batches, same process): {bare['step_s']:.3f} s/step, "
        f"{bare['transitions_per_s']:.1f} samples/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
