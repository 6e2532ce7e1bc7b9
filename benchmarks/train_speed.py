"""Training throughput and model build time, on random in-memory uint8 batches.

    python -m benchmarks.train_speed --env SEN-Shapes-v0 --preset cpu
    python -m benchmarks.train_speed --env SEN-Reacher-v0 --preset paper --batch-size 256 --steps 3
    python -m benchmarks.train_speed --all --preset cpu          # every domain and variant

Data loading is not counted (as for the authors' figures it is compared with). Each
configuration runs ``--warmup`` untimed steps, then ``--steps`` timed Adam steps of the full
contrastive loss. ``--amp bf16`` and ``--channels-last`` show what each change buys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch

from sen_rl.domains import DOMAINS, PRESETS, VARIANTS, domain_of
from sen_rl.model import build_model

#: the authors' released code, measured on this 2-core machine (x86_64, no GPU) at the published
#: sizes in fp32: transitions per second of one training step (docs/benchmarks.md)
AUTHORS = {
    ("SEN-Cubes-v0", 256): 71.0,
    ("SEN-Cubes-v0", 1024): 52.0,
    ("SEN-Reacher-v0", 256): 8.1,
}


def random_batch(model, batch: int, rng: np.random.Generator):
    obs = rng.integers(0, 256, size=(batch, *model.obs_shape), dtype=np.uint8)
    nxt = rng.integers(0, 256, size=(batch, *model.obs_shape), dtype=np.uint8)
    space = model.action_space
    if isinstance(space, gym.spaces.Discrete):
        act = rng.integers(0, space.n, size=batch)
    else:
        act = rng.uniform(space.low, space.high, size=(batch, *space.shape)).astype(np.float32)
    return obs, act, nxt


def measure(env_id, variant, preset, batch, steps, warmup, amp, channels_last, device) -> dict:
    t0 = time.perf_counter()
    model = build_model(env_id, variant, preset)
    build_s = time.perf_counter() - t0
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    rng = np.random.default_rng(0)
    data = [random_batch(model, batch, rng) for _ in range(2)]
    ctx = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if amp == "bf16"
        else torch.autocast(device.type, dtype=torch.float16)
        if amp == "fp16"
        else None
    )
    times = []
    model.train()
    for i in range(warmup + steps):
        obs, act, nxt = data[i % 2]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        if ctx is not None:
            with ctx:
                loss = model.loss(obs, act, nxt)["loss"]
        else:
            loss = model.loss(obs, act, nxt)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    return {
        "env_id": env_id,
        "variant": variant,
        "preset": preset,
        "batch": batch,
        "amp": amp,
        "channels_last": channels_last,
        "device": str(device),
        "build_s": build_s,
        "step_s": step_s,
        "transitions_per_s": batch / step_s,
        "params": sum(p.numel() for p in model.parameters()),
        # the authors were measured at the published sizes only
        "authors_transitions_per_s": AUTHORS.get((env_id, batch)) if preset == "paper" else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="*", default=["SEN-Shapes-v0"])
    parser.add_argument("--all", action="store_true", help="every domain and variant")
    parser.add_argument("--variant", nargs="*", default=["sen"], choices=VARIANTS)
    parser.add_argument("--preset", default="cpu", choices=PRESETS)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="append results (JSON lines) to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    runs = []
    envs = list(DOMAINS) if args.all else args.env
    for env_id in envs:
        domain = domain_of(env_id)
        variants = VARIANTS if args.all else args.variant
        for variant in variants:
            if variant not in domain.variants:  # e.g. Teapot has no "full": how SO(3) acts on pixels is unknown
                if not args.all:
                    print(f"{env_id}: has no {variant!r} world model, skipped", flush=True)
                continue
            r = measure(
                env_id,
                variant,
                args.preset,
                args.batch_size,
                args.steps,
                args.warmup,
                args.amp,
                args.channels_last,
                device,
            )
            runs.append(r)
            ref = r["authors_transitions_per_s"]
            vs = f"  (authors: {ref:.1f}/s, x{r['transitions_per_s'] / ref:.1f})" if ref else ""
            print(
                f"{env_id:15s} {variant:4s} {args.preset:5s} batch {args.batch_size:4d} amp={args.amp} "
                f"cl={args.channels_last!s:5s}: {r['step_s']:.3f} s/step, {r['transitions_per_s']:.0f} "
                f"transitions/s, build {r['build_s']:.2f} s, {r['params'] / 1e6:.2f} M params{vs}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({**r, "machine": f"{platform.machine()} {os.cpu_count()} cores"}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
