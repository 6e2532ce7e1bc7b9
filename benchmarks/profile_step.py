"""Where the time of a training step goes: data, the SEN S, the encoder E, the transition T, loss, backward, Adam.

    python -m benchmarks.profile_step --env SEN-Reacher-v0 --preset cpu --data data/reacher64.h5 --batch-size 256
    python -m benchmarks.profile_step --env SEN-Cubes-v0 --preset paper --batch-size 256 --steps 2

Each step is the one ``sen-rl train`` takes: the next batch from a :class:`~sen_rl.data.TransitionStream`
over ``--data`` (random uint8 batches without it), the contrastive loss under the precision
``--amp`` resolves to, backward and the Adam step. Forward hooks time S, E and T; the rest of
the loss (uint8 to float, latent distances, negatives) is the loss call minus them. The torch
profiler's table of operators (self CPU time) follows, and its total against the wall time
shows the Python and dispatch overhead outside the operators. The first line names the machine.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from benchmarks.train_speed import random_batch
from sen_rl.data import RolloutDataset, TransitionStream
from sen_rl.hardware import autocast_for, describe_machine, resolve_amp
from sen_rl.model import build_model


def _timed(model, parts: dict[str, float]):
    """Forward pre/post hooks adding each component's forward time to ``parts``."""
    starts: dict[str, float] = {}
    handles = []
    for name in ("embedding", "encoder", "transition"):
        module = getattr(model, name)

        def pre(_m, _i, name=name):
            starts[name] = time.perf_counter()

        def post(_m, _i, _o, name=name):
            parts[f"forward {name}"] += time.perf_counter() - starts[name]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="SEN-Reacher-v0")
    p.add_argument("--variant", default="sen")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--data", help="rollout file to stream batches from (default: random in-memory batches)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="profiled steps (after one warm-up step)")
    p.add_argument("--amp", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=15, help="operators shown")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    precision, why = resolve_amp(args.amp, device)
    print(f"machine: {describe_machine()}; {args.threads} torch threads; precision {precision} ({why})")

    ds = RolloutDataset(args.data) if args.data else None
    model = build_model(args.env, args.variant, args.preset, env_kwargs=ds.env_kwargs if ds else None)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    ctx = autocast_for(precision, device)
    if ds is not None:
        stream = TransitionStream(ds, np.arange(ds.episodes), args.batch_size)
        # epoch after epoch, full batches only, so that a small file serves any number of steps
        batches = (
            b for e in range(10**9) for b in stream.epoch(np.random.default_rng(e)) if len(b[0]) == args.batch_size
        )
    else:
        rng = np.random.default_rng(0)
        fixed = [random_batch(model, args.batch_size, rng) for _ in range(2)]
        batches = (fixed[i % 2] for i in range(10**9))
    gen = torch.Generator().manual_seed(0)
    parts: dict[str, float] = defaultdict(float)

    def step(record: bool) -> None:
        t = time.perf_counter()
        batch = next(batches)
        t_data = time.perf_counter()
        with ctx if ctx is not None else torch.autocast("cpu", enabled=False):
            loss = model.loss(*batch, generator=gen)["loss"]
        t_loss = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t_back = time.perf_counter()
        opt.step()
        t_opt = time.perf_counter()
        if record:
            parts["data (stream, decompress, gather)"] += t_data - t
            parts["loss call"] += t_loss - t_data
            parts["backward"] += t_back - t_loss
            parts["Adam step"] += t_opt - t_back
            parts["step"] += t_opt - t

    model.train()
    step(record=False)  # warm-up: one-off kernel choices, escnn caches
    parts.clear()
    handles = _timed(model, parts)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step(record=True)
    for h in handles:
        h.remove()
    n = args.steps
    total = parts["step"] / n
    forward = {k: parts[k] / n for k in list(parts) if k.startswith("forward ")}
    rest = parts["loss call"] / n - sum(forward.values())
    rows = [
        ("data (stream, decompress, gather)", parts["data (stream, decompress, gather)"] / n),
        *forward.items(),
        ("forward rest of the loss (uint8->float, distances, negatives)", rest),
        ("backward (all components)", parts["backward"] / n),
        ("Adam step", parts["Adam step"] / n),
    ]
    print(f"\n{args.env} {args.variant} {args.preset}, batch {args.batch_size}: {total:.3f} s/step (mean of {n})")
    for name, sec in rows:
        print(f"  {name:62s} {sec:8.3f} s  {100 * sec / total:5.1f}%")
    ops = prof.key_averages()
    op_total = sum(e.self_cpu_time_total for e in ops) / 1e6 / n
    outside = total - op_total
    print(f"  operators (profiler self CPU) {op_total:.3f} s/step; outside them (Python, dispatch): {outside:.3f} s")
    print(ops.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=40))
    if ds is not None:
        ds.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
