"""The sen-rl command line: argument parsing and dispatch, nothing else.

Subcommands:

  collect  run random policies in a domain and write the rollouts to an HDF5 dataset
           (sen_rl.data.collect)
  train    train a world model on a rollout dataset, with resumable checkpoints
           (sen_rl.train.train)
  eval     score a checkpoint on an evaluation dataset: Hits@k, MRR, EE(S), DIE, HH@1, TH@1
           (sen_rl.evaluate.evaluate)
  plan     reach goals of the checkpoint's domain by model predictive control in its latent space
           (sen_rl.agents.planning.LatentMPC on the goal task of sen_rl.agents.goals)

The options of collect and train are the fields of sen_rl.data.CollectConfig and
sen_rl.train.TrainConfig, with the fields' docstrings as their help (add_config_options), so
that an option is declared once, in the library. The README's demo is python -m benchmarks.demo.

Exit codes: 0 success; 1 training diverged (sen_rl.train.TrainingDiverged); 2 a usage error,
from argparse or a user error raised by the library (ValueError, DatasetError,
FileExistsError, FileNotFoundError, IsADirectoryError), printed as one line on stderr without
a traceback. Progress bars show only when stderr is a terminal, and never with --quiet.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import re
import sys
import textwrap
import time
import types
import typing
from pathlib import Path

#: the subcommands and what each does (the lines of ``sen-rl --help``)
COMMANDS = {
    "collect": "run random policies in a domain and write the rollouts to an HDF5 dataset",
    "train": "train a world model on a rollout dataset, with resumable checkpoints",
    "eval": "score a checkpoint on an evaluation dataset: Hits@k, MRR, EE(S), DIE, HH@1, TH@1",
    "plan": "reach goals of the checkpoint's domain by model predictive control in its latent space",
}

#: the README's worked example, collect -> train -> eval on 2D Shapes
EXAMPLE = (
    "sen-rl collect --env SEN-Shapes-v0 --episodes 1000 --steps 100 --seed 0 --out data/shapes_train.h5",
    "sen-rl train --data data/shapes_train.h5 --variant sen --preset cpu --out runs/shapes_sen",
    "sen-rl collect --env SEN-Shapes-v0 --episodes 1000 --steps 10 --seed 1 --twins --out data/shapes_eval.h5",
    "sen-rl eval --checkpoint runs/shapes_sen/best.pt --data data/shapes_eval.h5",
)


# --- options from dataclasses ---------------------------------------------------------------


def _plain(doc: str) -> str:
    """A docstring as one line of plain text: reST roles and ``literals`` lose their markup."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", inspect.cleandoc(doc))
    text = re.sub(r"``([^`]*)``", r"\1", text)
    return " ".join(text.split())


def attribute_docs(obj) -> dict[str, str]:
    """The attribute docstrings of a class or module: the string literal right after each assignment."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    body = tree.body[0].body if inspect.isclass(obj) else tree.body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if not (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)):
            continue
        if not isinstance(after.value.value, str):
            continue
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        for target in targets:
            if isinstance(target, ast.Name) and isinstance(node, ast.AnnAssign | ast.Assign):
                docs[target.id] = _plain(after.value.value)
    return docs


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}); example: '{{\"size\": 64}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"size\": 64}'")
    return value


def _comma_list(item_type):
    """An argparse type: one word of a list option, which may hold several items separated by commas."""

    def parse(text: str) -> list:
        return [item_type(part) for part in text.split(",") if part]

    parse.__name__ = getattr(item_type, "__name__", "value")  # argparse names the type in its errors
    return parse


def _unwrap_optional(tp) -> tuple[typing.Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def add_config_options(
    parser: argparse.ArgumentParser,
    config_class: type,
    names: dict[str, str] | None = None,
    choices: dict[str, typing.Sequence[str]] | None = None,
) -> None:
    """Add one ``--field-name`` option per field of the dataclass ``config_class``.

    The help is the field's docstring; the type and default are the field's: a field without
    default is required, ``bool`` is a flag (``--x``, or ``--no-x`` when it defaults to True),
    ``T | None`` takes a ``T`` and defaults to None, a list takes one or more words (commas
    separate items too) and a dict takes a JSON object. ``names`` renames options (field ->
    option name) and ``choices`` restricts values; the option's ``dest`` is always the field's
    name, so :func:`config_from_args` builds the config back.
    """
    names, choices = names or {}, choices or {}
    hints = typing.get_type_hints(config_class)
    docs = attribute_docs(config_class)
    for f in dataclasses.fields(config_class):
        name = names.get(f.name, f.name).replace("_", "-")
        tp, _ = _unwrap_optional(hints[f.name])
        origin = typing.get_origin(tp) or tp
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        help_text = docs.get(f.name, "")
        kwargs: dict[str, typing.Any] = {"dest": f.name}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if tp is bool:
            if default is True:
                name, help_text = f"no-{name}", f"turn off: {help_text}"
            kwargs["action"] = "store_false" if default is True else "store_true"
        elif origin in (list, tuple):
            (item_type,) = typing.get_args(tp)[:1] or (str,)
            kwargs.update(nargs="+", type=_comma_list(item_type), metavar=f.name.upper())
        elif origin is dict:
            kwargs.update(type=_json_dict, metavar="JSON")
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            raise TypeError(f"{config_class.__name__}.{f.name}: no command-line option for type {tp!r}")
        if f.name in choices:
            kwargs["choices"] = tuple(choices[f.name])
        shown = all(default is not x for x in (dataclasses.MISSING, None, False)) and default not in ("", {}, [])
        if shown:
            help_text += f" (default: {json.dumps(default) if isinstance(default, dict) else default})"
        kwargs["help"] = help_text.replace("%", "%%")
        parser.add_argument(f"--{name}", **kwargs)


def config_from_args(config_class: type, args: argparse.Namespace):
    """The dataclass ``config_class`` from the options :func:`add_config_options` added."""
    values = {}
    for f in dataclasses.fields(config_class):
        value = getattr(args, f.name)
        if isinstance(value, list):  # one list per word: flatten
            value = [item for word in value for item in (word if isinstance(word, list) else [word])]
        values[f.name] = value
    return config_class(**values)


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal: a log or a pipe gets the one-line summaries, not bar redraws."""
    return not quiet and sys.stderr.isatty()


# --- commands -------------------------------------------------------------------------------


def cmd_collect(args) -> int:
    from sen_rl.data import CollectConfig, collect

    cfg = config_from_args(CollectConfig, args)
    t0 = time.perf_counter()
    out = collect(cfg, args.out, overwrite=args.overwrite, progress=show_progress(args.quiet))
    dt = time.perf_counter() - t0
    first, count = cfg.episode_range()
    frames = count * (cfg.steps + 1)
    part = f" (part {cfg.shard}: episodes {first}..{first + count - 1} of {cfg.episodes})" if cfg.shard else ""
    print(f"wrote {out}: {count} episodes x {cfg.steps} steps{part}, {frames / dt:.0f} frames/s")
    return 0


def _announce_resume(cfg, payload: dict | None) -> None:
    """Say where a resumed run continues (``payload``: its ``last.pt``); a missing one is left for train()."""
    if payload is None:
        return
    last = Path(cfg.out) / "last.pt"
    total = cfg.epochs or payload.get("train_config", {}).get("epochs")
    following = payload["epoch"] + 2  # the checkpoint's epoch is 0-based; print 1-based
    if total is not None and following > total:
        print(f"{last} has all {total} epochs already; pass a larger --epochs to train on")
    else:
        print(f"resuming {last} from epoch {following}" + (f" of {total}" if total is not None else ""))


def _resolve_resume_keeps(args) -> dict | None:
    """Fill the ``sen_rl.train.RESUME_KEEPS`` options left out: from ``OUT/last.pt`` with --resume, else the defaults.

    Returns that checkpoint (None: no --resume, or no checkpoint, which train() reports).
    """
    from sen_rl.model import read_checkpoint
    from sen_rl.train import RESUME_KEEPS, TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    last = Path(args.out) / "last.pt"
    payload = read_checkpoint(last) if args.resume and last.exists() else None
    saved = {} if payload is None else payload.get("train_config", {})
    for key in RESUME_KEEPS:
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key, defaults[key]))
    return payload


def cmd_train(args) -> int:
    from sen_rl.distributed import launched_world
    from sen_rl.train import TrainConfig, train

    payload = _resolve_resume_keeps(args)
    cfg = config_from_args(TrainConfig, args)
    if args.resume and launched_world().main:
        _announce_resume(cfg, payload)
    result = train(
        cfg,
        resume=args.resume,
        progress=show_progress(args.quiet),
        verbose=not args.quiet,
        overwrite=args.overwrite,
    )
    if not launched_world().main:  # under torchrun, rank 0 speaks for the job
        return 0
    last = result["history"][-1] if result["history"] else {}
    if "val_hits@1" in last:
        best = max(r.get("val_hits@1", 0) for r in result["history"])
        print(f"validation Hits@1 (one step): last {last['val_hits@1']:.1%}, best {best:.1%}")
    print(f"checkpoints: {result['best']} (best), {result['last']} (last)")
    return 0


def cmd_eval(args) -> int:
    """Evaluate a checkpoint on a rollout dataset: print the table, optionally write JSON."""
    from sen_rl.data import open_rollouts
    from sen_rl.evaluate import evaluate, format_table
    from sen_rl.fileio import atomic_write_text
    from sen_rl.model import load_model
    from sen_rl.train import _device

    device = _device(args.device)
    model = load_model(args.checkpoint, map_location=device)
    with open_rollouts(args.data) as ds:
        results = evaluate(
            model,
            ds,
            horizon=args.horizon,
            max_samples=args.max_samples,
            seed=args.seed,
            hh_samples=args.hh_samples,
            th_starts=args.th_starts,
            unseen_from=args.unseen_from,
        )
    results["checkpoint"] = str(args.checkpoint)
    print(format_table(results))
    if args.json:
        out = atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def cmd_plan(args) -> int:
    """Play goal episodes of the checkpoint's domain with LatentMPC (or random actions): success rate."""
    import gymnasium as gym

    from sen_rl.agents.planning import LatentMPC, RandomAgent, format_summary, run_goal_episodes, summarize
    from sen_rl.domains import domain_of
    from sen_rl.fileio import atomic_write_text
    from sen_rl.model import load_model
    from sen_rl.train import _device

    for name in ("episodes", "horizon", "goal_steps", "beam_width"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    device = _device(args.device)
    model = load_model(args.checkpoint, map_location=device, export=True)
    domain = domain_of(model.config.env_id)
    env_kwargs = {**model.config.env_kwargs, **args.env_kwargs}
    goal_steps = args.goal_steps or domain.goal.goal_steps
    shown_kwargs = f" {json.dumps(env_kwargs)}" if env_kwargs else ""
    env = gym.make(domain.goal_env_id, goal_steps=goal_steps, **env_kwargs)
    try:
        if args.random:
            agent = RandomAgent(env.action_space, seed=args.seed)
        else:
            agent = LatentMPC(
                model,
                env.action_space,
                horizon=args.horizon,
                method=args.method,
                beam_width=args.beam_width,
                memory=not args.no_memory,
                seed=args.seed,
            )
        print(
            f"plan: {args.episodes} episodes of {domain.goal_env_id}{shown_kwargs} (goals {goal_steps} random "
            f"steps away, budget {domain.goal.max_steps} steps), {agent}, checkpoint {args.checkpoint}"
        )
        episodes = run_goal_episodes(env, agent, args.episodes, seed=args.seed, progress=show_progress(args.quiet))
    finally:
        env.close()
    summary = summarize(episodes)
    print(format_summary(summary))
    if args.json:
        results = {
            "checkpoint": str(args.checkpoint),
            "env_id": domain.goal_env_id,
            "env_kwargs": env_kwargs,
            "goal_steps": goal_steps,
            "max_steps": domain.goal.max_steps,
            "agent": repr(agent),
            "seed": args.seed,
            **summary,
            "steps": [e.steps for e in episodes],
            "successes_per_episode": [e.success for e in episodes],
        }
        out = atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


# --- the parser -----------------------------------------------------------------------------


def _epilog() -> str:
    from sen_rl import domains

    docs = attribute_docs(domains)

    def paragraph(text: str) -> str:
        return textwrap.fill(text, width=92, initial_indent="  ", subsequent_indent="  ")

    width = max(len(env_id) for env_id in domains.ENV_IDS)
    lines = ["domains (collect --env):"]
    for env_id in domains.ENV_IDS:
        d = domains.DOMAINS[env_id]
        only = "" if tuple(d.variants) == tuple(domains.VARIANTS) else f" (variants {', '.join(d.variants)})"
        lines.append(f"  {env_id:<{width}}  {d.title}{only}")
    lines += [
        "",
        f"train --variant {{{','.join(domains.VARIANTS)}}}:",
        paragraph(docs["VARIANTS"]),
        "",
        f"train --preset {{{','.join(domains.PRESETS)}}}:",
        paragraph(docs["PRESETS"]),
        "",
        "example: collect -> train -> eval on 2D Shapes:",
        *(f"  {command}" for command in EXAMPLE),
        "",
        "sen-rl COMMAND --help lists the options of a command. The README's demo: python -m benchmarks.demo",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    import sen_rl
    from sen_rl.data import CollectConfig
    from sen_rl.domains import PRESETS, VARIANTS
    from sen_rl.hardware import AMP_CHOICES
    from sen_rl.train import AUGMENTS, LR_SCHEDULES, RESUME_KEEPS, TrainConfig

    # no choices for --env: another registered env is collected with --symmetry (CollectConfig.validate)
    choices = {
        "variant": VARIANTS,
        "preset": PRESETS,
        "lr_schedule": LR_SCHEDULES,
        "augment": AUGMENTS,
        "amp": AMP_CHOICES,
    }
    parser = argparse.ArgumentParser(
        prog="sen-rl",
        description="sen-rl: Symmetric Embedding Networks (Park et al., ICML 2022) for reinforcement learning.\n"
        "Collect rollouts of the paper's domains, train equivariant world models on them, evaluate them.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sen-rl {sen_rl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    def command(name: str) -> argparse.ArgumentParser:
        summary = COMMANDS[name]
        return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")

    p = command("collect")
    add_config_options(p, CollectConfig, names={"env_id": "env"}, choices=choices)
    p.add_argument("--out", required=True, help="output dataset file (.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar (one shows only when stderr is a terminal)")
    p.set_defaults(func=cmd_collect)

    p = command("train")
    add_config_options(p, TrainConfig, choices=choices)
    for action in p._actions:  # their default is resolved in cmd_train: a resumed run keeps its checkpoint's
        if action.dest in RESUME_KEEPS:
            shown = f"(default: {action.default})"
            action.help = action.help.replace(shown, f"(default: {action.default}; with --resume, the checkpoint's)")
            action.default = None
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from the epoch after the last one saved in OUT/last.pt; "
        "epochs, batch size, learning rate and the other settings not given again come from the checkpoint",
    )
    p.add_argument("--overwrite", action="store_true", help="start again in an OUT that holds a run")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars and no per-epoch lines (bars show only when stderr is a terminal)",
    )
    p.set_defaults(func=cmd_train)

    p = command("eval")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.pt) from sen-rl train")
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="evaluation dataset (.h5), collected with --twins for EE/DIE; several files (e.g. the shards of a "
        "collect --shard run) or a quoted glob are read as one",
    )
    p.add_argument(
        "--horizon", type=int, help="steps to roll forward (default: the domain's, 10 on the grids, 1 otherwise)"
    )
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--max-samples", type=int, help="evaluate the first N episodes, one sample each (default: all)")
    p.add_argument("--hh-samples", type=int, default=1000, help="samples for HH@1, which renders (0: skip)")
    p.add_argument("--th-starts", type=int, default=10, help="Teapot TH@1 traversals per axis (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="seeds the DIE permutation")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--unseen-from",
        metavar="TRAIN.h5",
        help="the training set of a model trained on restricted actions: Hits@k and MRR also on the samples "
        "whose actions it holds (/seen) and on the others (/unseen)",
    )
    p.set_defaults(func=cmd_eval)

    from sen_rl.agents.planning import METHODS, LatentMPC

    mpc = {k: v.default for k, v in inspect.signature(LatentMPC).parameters.items()}
    p = command("plan")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.pt) from sen-rl train; its domain sets the goals")
    p.add_argument("--episodes", type=int, required=True, help="goal episodes to play")
    p.add_argument(
        "--goal-steps", type=int, help="random steps from the start to the goal (default: the domain's, 5 on the grids)"
    )
    p.add_argument(
        "--horizon",
        type=int,
        default=mpc["horizon"],
        help=f"steps of each planned action sequence (default: {mpc['horizon']})",
    )
    p.add_argument(
        "--method",
        default=mpc["method"],
        choices=METHODS,
        help="search: exhaustive or beam for discrete actions, cem for boxes; auto: exhaustive while the "
        f"sequences are at most {mpc['exhaustive_limit']}, else beam (default: {mpc['method']})",
    )
    p.add_argument(
        "--beam-width",
        type=int,
        default=mpc["beam_width"],
        help=f"partial sequences beam search keeps per depth (default: {mpc['beam_width']})",
    )
    p.add_argument("--random", action="store_true", help="uniformly random actions instead of the planner (baseline)")
    p.add_argument(
        "--no-memory",
        action="store_true",
        help="plan with the model's predictions only, not with the transitions already made (LatentMPC memory)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the goals and the planner (default: 0)")
    p.add_argument(
        "--env-kwargs",
        type=_json_dict,
        default={},
        metavar="JSON",
        help="gym.make keywords on top of the checkpoint's, e.g. '{\"size\": 64}'",
    )
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar (one shows only when stderr is a terminal)")
    p.set_defaults(func=cmd_plan)
    return parser


def main(argv=None) -> int:
    """Run one subcommand; returns its exit code (argparse exits with 2 on a bad command line)."""
    args = build_parser().parse_args(argv)
    from sen_rl.data import DatasetError
    from sen_rl.train import TrainingDiverged

    user_errors = (ValueError, DatasetError, FileExistsError, FileNotFoundError, IsADirectoryError)
    try:
        return args.func(args)
    except TrainingDiverged as exc:
        print(f"sen-rl {args.command}: training diverged: {exc}", file=sys.stderr)
        return 1
    except user_errors as exc:
        # errors a user can cause carry their fix in the message: show it without a traceback,
        # in argparse's format for the same subcommand
        print(f"sen-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
