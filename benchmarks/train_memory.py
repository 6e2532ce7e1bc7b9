"""Peak memory of training on a rollout dataset (the paper-size Reacher set by default).

    python -m benchmarks.train_memory                       # collects data/reacher_paper.h5 if missing
    python -m benchmarks.train_memory --preset cpu --batch-size 256 --steps 5
    python -m benchmarks.train_memory --loader-only         # the data stream alone, a whole epoch

Each measurement runs in a fresh process and reports its peak resident memory
(``ru_maxrss``): the data stream reads uint8 blocks of about 256 MB from the HDF5 file
and converts one batch at a time, so memory does not grow with the dataset. For
comparison, the authors' loader holds the whole paper-size Reacher set as float32
(14.7 GiB) in a 7.3 GiB training process, about 22 GiB in all, on this machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sen_rl.domains import PRESETS, domain_of

#: the subject of the measurement: the paper's largest training set
ENV_ID = "SEN-Reacher-v0"
PAPER_EPISODES = 2000  # the paper's Reacher training set (docs/paper.md)


def _child(args) -> dict:
    from sen_rl.data import RolloutDataset
    from sen_rl.train import TrainConfig, TransitionStream, train

    t0 = time.perf_counter()
    if args.loader_only:
        ds = RolloutDataset(args.data)
        stream = TransitionStream(ds, np.arange(ds.episodes), args.batch_size)
        n = sum(len(b[0]) for b in stream.epoch(np.random.default_rng(0)))
        what = f"data stream, one epoch ({n} transitions)"
    else:
        cfg = TrainConfig(
            data=args.data,
            out=args.out,
            preset=args.preset,
            variant=args.variant,
            epochs=1,
            batch_size=args.batch_size,
            max_transitions=args.steps * args.batch_size,
            val_samples=args.batch_size,
            device="cpu",
            amp=args.amp,
        )
        train(cfg, progress=False, log=False, verbose=False, overwrite=True)
        what = f"training {args.variant}/{args.preset}, {args.steps} steps at batch {args.batch_size}, amp {args.amp}"
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"what": what, "peak_gib": peak_kib / 2**20, "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/reacher_paper.h5")
    p.add_argument("--out", default="runs/bench_memory")
    p.add_argument("--preset", default="paper", choices=PRESETS)
    p.add_argument("--variant", default="sen")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--amp", default="off", choices=("off", "bf16"))
    p.add_argument("--loader-only", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return 0
    if not Path(args.data).exists():
        from sen_rl.data import CollectConfig, collect

        d = domain_of(ENV_ID)
        print(f"collecting the paper-size {d.title} set into {args.data} ...", flush=True)
        cfg = CollectConfig(
            d.env_id, PAPER_EPISODES, d.episode_steps, seed=0, warmup=d.warmup, env_kwargs=d.env_kwargs("paper")
        )
        collect(cfg, args.data)
    cmd = [sys.executable, "-m", "benchmarks.train_memory", "--child", *(argv or sys.argv[1:])]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        return out.returncode
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{r['what']}: peak resident memory {r['peak_gib']:.2f} GiB ({r['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
