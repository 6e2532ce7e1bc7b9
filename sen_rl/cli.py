"""The ``sen-rl`` command line: ``collect``, ``train``, ``demo``."""

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
    if args.epochs <= 0:
        return 0

    # then a world model of the default domain, 2D Shapes, at the CPU preset
    from sen_rl.train import TrainConfig, train

    data = out / "shapes_train.h5"
    cfg = CollectConfig("SEN-Shapes-v0", args.episodes, 100, seed=args.seed)
    collect(cfg, data, overwrite=True, progress=not args.quiet)
    print(f"training the SEN world model on {data} ({args.episodes} episodes x 100 steps), preset cpu:")
    run = out / "shapes_sen"
    result = train(
        TrainConfig(data=str(data), out=str(run), variant="sen", preset="cpu", epochs=args.epochs, seed=args.seed),
        progress=not args.quiet,
        overwrite=True,
    )
    best = max(result["history"], key=lambda r: r.get("val_hits@1", 0))
    print(
        f"SEN on 2D Shapes learned to predict the next latent: validation Hits@1 {best['val_hits@1']:.1%} "
        f"(MRR {best['val_mrr']:.1%}) at one step after {best['epoch']} epochs; model {result['best']}"
    )
    return 0


def cmd_train(args) -> int:
    from sen_rl.train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        variant=args.variant,
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        max_transitions=args.max_transitions,
        threads=args.threads,
    )
    result = train(cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    last = result["history"][-1] if result["history"] else {}
    if "val_hits@1" in last:
        best = max(r.get("val_hits@1", 0) for r in result["history"])
        print(f"validation Hits@1 (one step): last {last['val_hits@1']:.1%}, best {best:.1%}")
    print(f"checkpoints: {result['best']} (best), {result['last']} (last)")
    return 0


def cmd_eval(args) -> int:
    """Evaluate a checkpoint on a rollout dataset: print the table, optionally write JSON."""
    import os

    from sen_rl.data import RolloutDataset
    from sen_rl.evaluate import evaluate, format_table
    from sen_rl.model import load_model
    from sen_rl.train import _device

    device = _device(args.device)
    model = load_model(args.checkpoint, map_location=device).to(device)
    with RolloutDataset(args.data) as ds:
        results = evaluate(
            model,
            ds,
            horizon=args.horizon,
            max_samples=args.max_samples,
            seed=args.seed,
            hh_samples=args.hh_samples,
            th_starts=args.th_starts,
        )
    results["checkpoint"] = str(args.checkpoint)
    print(format_table(results))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        print(f"wrote {out}")
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
    p.add_argument("--actions", nargs="+", help="restrict discrete actions: directions (up right down left) or indices")
    p.add_argument("--positive-torque", action="store_true", help="Reacher: second-joint torque >= 0 only")
    p.add_argument("--twins", action="store_true", help="store re-rendered observations for every group element")
    p.add_argument("--env-kwargs", type=_json_dict, default={}, help="JSON keyword arguments for gym.make")
    p.add_argument("--num-envs", type=int, default=0, help="parallel environments (0: one per core, max 8)")
    p.add_argument("--vectorization", choices=("async", "sync"), default="async")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="train a world model on a rollout dataset")
    p.add_argument("--data", required=True, help="rollout dataset (.h5) from `sen-rl collect`")
    p.add_argument("--out", required=True, help="run folder for checkpoints and TensorBoard logs")
    p.add_argument("--variant", choices=("sen", "none", "full"), default="sen")
    p.add_argument("--preset", choices=("smoke", "cpu", "paper"), default="cpu")
    p.add_argument("--epochs", type=int, help="default per preset: smoke 2, cpu 20, paper 100")
    p.add_argument("--batch-size", type=int, help="default per preset: smoke 64, cpu 256, paper 1024")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"), help="mixed precision")
    p.add_argument("--max-transitions", type=int, help="cap the transitions seen per epoch")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--overwrite", action="store_true", help="start again in an OUT that holds a run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "demo", help="datasets of every domain, a contact sheet of their twins, and a Shapes world model"
    )
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=4, help="epochs of the Shapes world model (0: skip training)")
    p.add_argument("--episodes", type=int, default=500, help="Shapes training episodes of 100 steps")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="Hits@k, MRR, EE(S), DIE, HH@1 (and Teapot TH@1) of a checkpoint on a dataset")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.pt) from `sen-rl train`")
    p.add_argument("--data", required=True, help="evaluation dataset (.h5), collected with --twins for EE/DIE")
    p.add_argument("--horizon", type=int, help="steps to roll forward (default: 10 grid domains, 1 Teapot/Reacher)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--max-samples", type=int, help="evaluate the first N episodes, one sample each (default: all)")
    p.add_argument("--hh-samples", type=int, default=1000, help="samples for HH@1, which renders (0: skip)")
    p.add_argument("--th-starts", type=int, default=10, help="Teapot TH@1 traversals per axis (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="seeds the DIE permutation")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        # errors a user can cause carry their fix in the message: show it without a traceback
        user_error = (ValueError, FileExistsError, FileNotFoundError, IsADirectoryError)
        if not isinstance(exc, user_error) and type(exc).__name__ != "TrainingDiverged":
            raise
        print(f"sen-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
