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


#: The paper's unseen-action result on 2D Shapes trained on {up} (ICML Table 2): H@1, MRR (%) at 10 steps
PAPER_SHAPES_UP = {"none": ("2.8 +- 0.6", "5.3 +- 0.4", "0.00"), "sen": ("100", "99.9", "0.00")}


def cmd_demo(args) -> int:
    """Contact sheet of every domain's twins, then the paper's central result on 2D Shapes.

    ``sen`` and ``none`` are trained on "up" moves only and evaluated on all four directions
    at 10 steps: the equivariant model generalises to the moves it never saw, the plain one
    cannot.
    """
    from sen_rl.data import CollectConfig, RolloutDataset, collect
    from sen_rl.viz import contact_sheet

    out = Path(args.out)
    t_start = time.perf_counter()
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

    from sen_rl.evaluate import evaluate
    from sen_rl.model import load_model
    from sen_rl.train import TrainConfig, train

    train_data, eval_data = out / "shapes_up_train.h5", out / "shapes_eval.h5"
    collect(
        CollectConfig("SEN-Shapes-v0", args.episodes, 1, seed=args.seed + 1, actions=["up"]),
        train_data,
        overwrite=True,
        progress=not args.quiet,
    )
    collect(
        CollectConfig("SEN-Shapes-v0", args.eval_episodes, 10, seed=args.seed + 2, twins=True),
        eval_data,
        overwrite=True,
        progress=not args.quiet,
    )
    results = {}
    for variant in ("none", "sen"):
        print(f"training {variant!r} on 2D Shapes, 'up' moves only ({args.episodes} transitions, {args.epochs} epochs)")
        run = out / f"shapes_up_{variant}"
        cfg = TrainConfig(
            data=str(train_data), out=str(run), variant=variant, preset="cpu", epochs=args.epochs, seed=args.seed
        )
        result = train(cfg, progress=not args.quiet, overwrite=True)
        results[variant] = evaluate(load_model(result["best"]), eval_data, horizon=10, seed=args.seed, hh_samples=0)

    lines = [
        "",
        "Unseen actions, 2D Shapes: trained on 'up' only, evaluated on all four directions, 10 steps",
        f"{'model':6s} {'Hits@1':>8s} {'MRR':>8s} {'EE(S)':>7s}   paper: Hits@1, MRR, EE(S)",
    ]
    for variant, r in results.items():
        paper = PAPER_SHAPES_UP[variant]
        lines.append(f"{variant:6s} {r['hits@1']:8.1%} {r['mrr']:8.1%} {r['ee_quarter']:7.2f}   " + ", ".join(paper))
    lines.append(
        f"({results['sen']['samples']} evaluation episodes of {eval_data}; the paper's 'none' row is its CNN "
        "baseline; demo time {:.1f} min)".format((time.perf_counter() - t_start) / 60)
    )
    table = "\n".join(lines)
    print(table)
    (out / "unseen_actions.txt").write_text(table + "\n")
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
        lr_schedule=args.lr_schedule,
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
    p.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), default="constant", help="cosine: lr falls to 0 at the end"
    )
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
        "demo", help="a contact sheet of every domain's twins, then 2D Shapes trained on 'up' moves only"
    )
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10, help="epochs of each Shapes model (0: skip training)")
    p.add_argument("--episodes", type=int, default=20000, help="Shapes training transitions ('up' moves)")
    p.add_argument("--eval-episodes", type=int, default=1000, help="Shapes evaluation episodes of 10 steps")
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
