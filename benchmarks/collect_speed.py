"""Collection speed of every domain, with and without twins, against the paper-size training sets.

    python -m benchmarks.collect_speed                 # 5% of each paper-size set, extrapolated
    python -m benchmarks.collect_speed --fraction 1    # the whole paper-size sets (minutes)

Prints a markdown table (frames per second, and the time the whole paper-size training set
takes at that speed) and writes it as JSON next to ``--json`` if given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sen_rl.data import CollectConfig, collect
from sen_rl.domains import DOMAINS, Domain
from sen_rl.fileio import atomic_write_text

#: episodes of the paper's training sets (docs/paper.md, "Domains"); their recorded steps and
#: warm-up are the domain's ``episode_steps`` and ``warmup``
PAPER_TRAIN_EPISODES = {
    "SEN-Shapes-v0": 1000,
    "SEN-Cubes-v0": 1000,
    "SEN-Teapot-v0": 100_000,
    "SEN-Reacher-v0": 2000,
}
#: a domain the paper does not have is measured on this many episodes
OTHER_TRAIN_EPISODES = 1000


def paper_train_set(domain: Domain) -> tuple[str, dict, int, int, int]:
    """(env id, env kwargs, episodes, steps, warmup) of a domain's paper-size training set."""
    episodes = PAPER_TRAIN_EPISODES.get(domain.env_id, OTHER_TRAIN_EPISODES)
    return domain.env_id, domain.env_kwargs("paper"), episodes, domain.episode_steps, domain.warmup


def measure(env_id, kwargs, episodes, steps, warmup, twins, num_envs, folder) -> dict:
    cfg = CollectConfig(
        env_id, episodes, steps, seed=0, warmup=warmup, twins=twins, env_kwargs=kwargs, num_envs=num_envs
    )
    t0 = time.perf_counter()
    path = collect(cfg, Path(folder) / f"{env_id}-{twins}.h5", overwrite=True, progress=False)
    dt = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return {"seconds": dt, "frames": episodes * (steps + 1), "fps": episodes * (steps + 1) / dt, "bytes": size}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.05, help="share of each paper-size set to collect")
    parser.add_argument("--num-envs", type=int, default=0, help="parallel envs (0: one per core)")
    parser.add_argument("--only", nargs="*", help="env ids to measure (default: all)")
    parser.add_argument("--no-twins", action="store_true", help="skip the runs with twins")
    parser.add_argument(
        "--twins-fraction",
        type=float,
        default=0.01,
        help="share collected for the runs with twins (they render |G| times more)",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for env_id, kwargs, episodes, steps, warmup in map(paper_train_set, DOMAINS.values()):
            if args.only and env_id not in args.only:
                continue
            for twins in (False,) if args.no_twins else (False, True):
                n = max(2, round(episodes * (args.twins_fraction if twins else args.fraction)))
                r = measure(env_id, kwargs, n, steps, warmup, twins, args.num_envs, folder)
                full = episodes * (steps + 1)
                r.update(
                    env_id=env_id,
                    twins=twins,
                    episodes=n,
                    steps=steps,
                    paper_frames=full,
                    paper_minutes=full / r["fps"] / 60,
                )
                rows.append(r)
                print(
                    f"{env_id:16s} twins={twins!s:5s} {r['fps']:8.0f} frames/s "
                    f"-> paper-size set ({full} frames) in {r['paper_minutes']:.1f} min",
                    flush=True,
                )
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"\n| domain | twins | frames/s | paper-size training set | minutes at this speed |  ({machine})")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env_id']} | {'yes' if r['twins'] else 'no'} | {r['fps']:.0f} | {r['paper_frames']} frames "
            f"| {r['paper_minutes']:.1f} |"
        )
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
