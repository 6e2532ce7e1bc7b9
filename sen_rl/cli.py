"""The ``sen-rl`` command line: ``collect``, ``demo`` (and, as they land, ``train``, ``eval``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

#: Small datasets of every domain for the demo: (env id, env kwargs, episodes, steps, warmup)
DEMO_DOMAINS = (
    ("SEN-Shapes-v0", {}, 8, 10, 0),
    ("SEN-Cubes-v0", {}, 8, 10, 0),
    ("SEN-Teapot-v0", {}, 8, 1, 0),
    ("SEN-Reacher-v0", {"size": 64}, 4, 10, 50),
)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}); example: '{{\"size\": 64}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"size\": 64}'")
    return value


def cmd_collect(args) -> int:
    from sen_rl.data import CollectConfig, collect

    actions = [a for part in args.actions for a in part.split(",") if a] if args.actions else None
    cfg = CollectConfig(
        env_id=args.env,
        episodes=args.episodes,
        steps=args.steps,
        seed=args.seed,
        warmup=args.warmup,
        actions=actions,
        positive_torque=args.positive_torque,
        twins=args.twins,
        env_kwargs=args.env_kwargs,
        num_envs=args.num_envs,
        vectorization=args.vectorization,
    )
    t0 = time.perf_counter()
    out = collect(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    dt = time.perf_counter() - t0
    frames = cfg.episodes * (cfg.steps + 1)
    print(f"wrote {out}: {cfg.episodes} episodes x {cfg.steps} steps, {frames / dt:.0f} frames/s")
    return 0


def cmd_demo(args) -> int:
    """Collect a small dataset of each domain, with twins, and draw the contact sheet."""
    from sen_rl.data import CollectConfig, RolloutDataset, collect
    from sen_rl.viz import contact_sheet

    out = Path(args.out)
    paths = []
    for env_id, kwargs, episodes, steps, warmup in DEMO_DOMAINS:
        cfg = CollectConfig(env_id, episodes, steps, seed=args.seed, warmup=warmup, twins=True, env_kwargs=kwargs)
        path = out / f"{env_id}.h5"
        collect(cfg, path, overwrite=True, progress=not args.quiet)
        paths.append(path)
    datasets = [RolloutDataset(p) for p in paths]
    sheet = contact_sheet(datasets, out / "contact_sheet.png")
    for ds in datasets:
        print(f"  {ds}")
        ds.close()
    print(f"contact sheet: {sheet}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sen-rl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="collect random rollouts into an HDF5 dataset")
    p.add_argument("--env", required=True, help="environment id, e.g. SEN-Shapes-v0")
    p.add_argument("--episodes", type=int, required=True)
    p.add_argument("--steps", type=int, required=True, help="recorded steps per episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output .h5 file")
    p.add_argument("--warmup", type=int, default=0, help="random unrecorded steps after each reset")
    p.add_argument(
        "--actions", nargs="+", help="restrict discrete actions: directions (up right down left) or indices"
    )
    p.add_argument("--positive-torque", action="store_true", help="Reacher: second-joint torque >= 0 only")
    p.add_argument("--twins", action="store_true", help="store re-rendered observations for every group element")
    p.add_argument("--env-kwargs", type=_json_dict, default={}, help="JSON keyword arguments for gym.make")
    p.add_argument("--num-envs", type=int, default=0, help="parallel environments (0: one per core, max 8)")
    p.add_argument("--vectorization", choices=("async", "sync"), default="async")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("demo", help="small datasets of every domain and a contact sheet of their twins")
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"sen-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
