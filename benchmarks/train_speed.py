"""Training throughput and model build time, on random in-memory uint8 batches.

    python -m benchmarks.train_speed --env SEN-Shapes-v0 --preset cpu
    python -m benchmarks.train_speed --env SEN-Reacher-v0 --preset paper --batch-size 256 --steps 3
    python -m benchmarks.train_speed --all --preset cpu          # every domain and variant
    python -m benchmarks.train_speed --authors ~/src/sen --threads 1 --steps 3

Data loading is not counted (as for the authors' figures it is compared with). Each
configuration runs ``--warmup`` untimed steps, then ``--steps`` timed Adam steps of the full
contrastive loss. ``--amp bf16`` and ``--channels-last`` show what each change buys; ``--amp auto``
takes what ``sen-rl train`` would on this machine (sen_rl.hardware). The first line printed names
the CPU model and torch's CPU capability: every figure quoted from it must carry them.

``--authors PATH`` times the authors' released 3D Blocks ("Cubes") model beside ours in the
same process: PATH is the root of a checkout of their repository (the one holding
``sen/net/``; it is read, never copied here). Their model is built at its published sizes
(the "Ours" command of their README) and fed random float tensors of the shapes their data
loader yields; ours is the ``paper`` preset of SEN-Cubes-v0 ``sen``. Both train in fp32 at
``--batch-size`` on the same threads, their timed steps interleaved so that a change of load
hits both alike. Their model code imports ``e2cnn`` (which this project does not install:
``pip install e2cnn``), ``h5py``, ``matplotlib``, ``numpy`` and ``torch``; a missing one is
named before anything runs.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from sen_rl.domains import DOMAINS, PRESETS, VARIANTS, domain_of
from sen_rl.hardware import autocast_for, describe_machine, resolve_amp
from sen_rl.model import build_model

#: the authors' released code, measured on the development machine (2-core x86_64, no GPU) at the
#: published sizes in fp32: transitions per second of one training step (docs/benchmarks.md). Other
#: machines give other figures: ``--authors`` measures them beside ours instead.
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


#: the parts ``--compile`` hands to ``torch.compile``: the SEN S alone, or every network
COMPILE_PARTS = {"off": (), "embedding": ("embedding",), "all": ("embedding", "encoder", "transition")}


def measure(env_id, variant, preset, batch, steps, warmup, amp, channels_last, device, compile_parts=()) -> dict:
    t0 = time.perf_counter()
    model = build_model(env_id, variant, preset)
    build_s = time.perf_counter() - t0
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    for part in compile_parts:  # in place, so parameters and state-dict keys stay the model's
        getattr(model, part).compile()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    rng = np.random.default_rng(0)
    data = [random_batch(model, batch, rng) for _ in range(2)]
    amp, _ = resolve_amp(amp, device)
    ctx = autocast_for(amp, device)
    times, first_s = [], None
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
        if i == 0:
            first_s = time.perf_counter() - t  # holds the compilation, if any
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
        "compiled": list(compile_parts),
        "first_step_s": first_s,
        "device": str(device),
        "build_s": build_s,
        "step_s": step_s,
        "transitions_per_s": batch / step_s,
        "params": sum(p.numel() for p in model.parameters()),
        # the authors were measured at the published sizes only
        "authors_transitions_per_s": AUTHORS.get((env_id, batch)) if preset == "paper" else None,
    }


# --------------------------------------------------------------------------- the authors' code

#: Files of the authors' repository that their Cubes model needs, relative to its root.
AUTHORS_FILES = (
    "sen/utils.py",
    "sen/net/embedding.py",
    "sen/net/encoder.py",
    "sen/net/transition.py",
    "sen/net/model.py",
)
#: Their 3D Blocks model at the published sizes (the "Ours" training command of their README):
#: module, class and keyword arguments of each part.
AUTHORS_CUBES = {
    "embedding": ("sen.net.embedding", "CubesEmbedding", {"input_dim": 3, "hidden_dim": 32, "output_dim": 5}),
    "encoder": (
        "sen.net.encoder",
        "CubesEncoder_C4",
        {"input_shape": [5, 50, 50], "output_dim": 2, "hidden_dim": [256, 256], "num_objects": 5},
    ),
    "transition": (
        "sen.net.transition",
        "TransitionGNN_C4",
        {"obs_dim": 2, "action_dim": 4, "hidden_dim": 256, "num_objects": 5},
    ),
}
AUTHORS_MODEL_KWARGS = {"hinge": 1.0, "sigma": 0.5, "n_neg": 1, "pred_delta": True}
#: Their observations and actions: float32 [3, 50, 50] frames in [0, 1], actions object * 4 + direction.
AUTHORS_OBS_SHAPE, AUTHORS_ACTIONS = (3, 50, 50), 20


class AuthorsCodeError(ValueError):
    """``--authors`` does not point at a usable checkout of the authors' code; the message says why."""


def _third_party_imports(files: list[Path]) -> set[str]:
    """Top-level modules that ``files`` import, other than their own package ``sen`` and the standard library."""
    names: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "sen" and n not in sys.stdlib_module_names}


def load_authors_cubes(path: str | Path) -> Callable[[], torch.nn.Module]:
    """A function building the authors' Cubes model (weights initialised as their ``train.py`` does).

    ``path`` is the root of their repository. Raises :class:`AuthorsCodeError` naming the problem
    and the fix: no such folder, not their repository, packages their model code imports missing.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise AuthorsCodeError(
            f"--authors {path}: no such directory. Clone the authors' repository (Park et al., ICML 2022, "
            "'Learning Symmetric Representations for Equivariant World Models') and pass its root folder."
        )
    missing = [f for f in AUTHORS_FILES if not (root / f).is_file()]
    if missing:
        raise AuthorsCodeError(
            f"--authors {path}: not a checkout of the authors' code ({', '.join(missing)} missing); "
            "pass the folder that holds their sen/net/."
        )
    imports = _third_party_imports([root / f for f in AUTHORS_FILES])
    absent = sorted(n for n in imports if importlib.util.find_spec(n) is None)
    if absent:
        raise AuthorsCodeError(
            f"--authors {path}: their model code imports {', '.join(absent)}, not installed here; "
            f"install it into this environment (pip install {' '.join(absent)}) and run again."
        )
    loaded = sys.modules.get("sen")
    # their ``sen`` has no __init__.py: a namespace package, known by its __path__
    where = [Path(p).resolve() for p in getattr(loaded, "__path__", [])]
    if loaded is not None and (root / "sen").resolve() not in where:
        raise AuthorsCodeError(
            f"--authors {path}: another package named 'sen' is already imported "
            f"({', '.join(map(str, where)) or loaded}); run in a fresh process."
        )
    sys.path.insert(0, str(root))
    try:
        parts = {k: getattr(importlib.import_module(m), c) for k, (m, c, _) in AUTHORS_CUBES.items()}
        model_cls = importlib.import_module("sen.net.model").Model
        weights_init = importlib.import_module("sen.utils").weights_init
    except AttributeError as e:  # a later version renamed something this mode relies on
        raise AuthorsCodeError(f"--authors {path}: {e}; this mode knows the layout of their released code") from e
    finally:
        sys.path.remove(str(root))

    def build() -> torch.nn.Module:
        nets = {k: parts[k](**kwargs) for k, (_, _, kwargs) in AUTHORS_CUBES.items()}
        model = model_cls(**nets, **AUTHORS_MODEL_KWARGS)
        model.apply(weights_init)  # as their train.py does
        return model

    return build


def compare_with_authors(build_theirs: Callable[[], torch.nn.Module], batch: int, steps: int, warmup: int) -> dict:
    """Training steps of the authors' Cubes model and of ours (``paper``, ``sen``, fp32), interleaved, on the CPU.

    ``build_theirs`` comes from :func:`load_authors_cubes`. Each side gets ``warmup`` untimed steps,
    then ``steps`` timed ones, alternating theirs and ours; the medians give transitions per second.
    Data loading is counted for neither: theirs gets fixed random float tensors, ours fixed random
    uint8 batches (its uint8-to-float conversion is counted).
    Then each SEN alone is timed the same way (``sen_s``); ``ratio_bound`` is the authors' step time
    over our SEN's: the most our throughput can be of theirs while the SEN stays as it is.
    """
    torch.manual_seed(0)  # their negatives come from torch's global generator
    theirs = build_theirs()
    ours = build_model("SEN-Cubes-v0", "sen", "paper")
    gen = torch.Generator().manual_seed(0)
    their_data = [
        (
            torch.rand(batch, *AUTHORS_OBS_SHAPE, generator=gen),
            torch.randint(0, AUTHORS_ACTIONS, (batch,), generator=gen).float(),  # their loader yields float actions
            torch.rand(batch, *AUTHORS_OBS_SHAPE, generator=gen),
        )
        for _ in range(2)
    ]
    rng = np.random.default_rng(0)
    our_data = [random_batch(ours, batch, rng) for _ in range(2)]
    sides = {
        "authors": (theirs, lambda i: theirs.contrastive_loss(*their_data[i % 2])[0]),
        "ours": (ours, lambda i: ours.loss(*our_data[i % 2])["loss"]),
    }
    opts = {k: torch.optim.Adam(m.parameters(), lr=5e-4) for k, (m, _) in sides.items()}
    times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(warmup + steps):
        for name, (model, loss_of) in sides.items():
            model.train()
            t = time.perf_counter()
            opts[name].zero_grad(set_to_none=True)
            loss_of(i).backward()
            opts[name].step()
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    # the SEN S alone, forward and backward over both frames of the batch: the two are the same
    # network (four 3x3 convolutions, 32 channels, at 50x50), so ours can never step faster than it
    sen_passes = {
        "authors": lambda i: sum(theirs.embedding(x).sum() for x in their_data[i % 2][::2]),
        "ours": lambda i: ours.embed(np.concatenate(our_data[i % 2][::2])).sum(),
    }
    sen_times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(1 + steps):
        for name, sen_of in sen_passes.items():
            t = time.perf_counter()
            sen_of(i).backward()
            if i >= 1:
                sen_times[name].append(time.perf_counter() - t)
            opts[name].zero_grad(set_to_none=True)
    out = {"batch": batch, "steps": steps}
    for name, (model, _) in sides.items():
        step_s = float(np.median(times[name]))
        out[name] = {
            "step_s": step_s,
            "transitions_per_s": batch / step_s,
            "sen_s": float(np.median(sen_times[name])),
            "params": sum(p.numel() for p in model.parameters()),
        }
    out["ratio"] = out["ours"]["transitions_per_s"] / out["authors"]["transitions_per_s"]
    # what ours would reach if everything but its SEN cost nothing
    out["ratio_bound"] = out["authors"]["step_s"] / out["ours"]["sen_s"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="*", help="env ids (default: SEN-Shapes-v0)")
    parser.add_argument("--all", action="store_true", help="every domain and variant")
    parser.add_argument("--variant", nargs="*", default=["sen"], choices=VARIANTS)
    parser.add_argument("--preset", choices=PRESETS, help="model sizes (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", default="fp32", choices=("fp32", "bf16", "fp16", "auto", "off"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--compile",
        default="off",
        choices=tuple(COMPILE_PARTS),
        help="torch.compile the SEN S (embedding) or every network before timing; the first step compiles",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="append results (JSON lines) to this file")
    parser.add_argument(
        "--authors",
        metavar="PATH",
        help="root of a checkout of the authors' code: time their Cubes model beside our paper-preset one, fp32",
    )
    args = parser.parse_args(argv)
    if args.authors is not None:
        fixed = "--authors compares SEN-Cubes-v0 sen, preset paper, fp32, on the CPU"
        if args.all or (args.env and args.env != ["SEN-Cubes-v0"]) or args.variant != ["sen"]:
            parser.error(f"{fixed}: drop --all, --env and --variant")
        if (args.preset or "paper") != "paper" or args.amp not in ("fp32", "off") or args.channels_last:
            parser.error(f"{fixed}: drop --preset, --amp and --channels-last")
        if args.compile != "off":
            parser.error(f"{fixed}: drop --compile")
        if args.device != "cpu":
            parser.error(f"{fixed}: drop --device")
        try:
            build_theirs = load_authors_cubes(args.authors)  # a bad path fails here, before any model is built
        except AuthorsCodeError as e:
            parser.error(str(e))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = describe_machine()
    print(f"machine: {machine}; {torch.get_num_threads()} torch threads", flush=True)
    if args.authors is not None:
        r = compare_with_authors(build_theirs, args.batch_size, args.steps, args.warmup)
        for name, label in (("authors", "authors' code"), ("ours", "sen-rl paper sen")):
            x = r[name]
            print(
                f"SEN-Cubes-v0 {label:16s} fp32 batch {args.batch_size:4d}: {x['step_s']:.3f} s/step, "
                f"{x['transitions_per_s']:.1f} transitions/s, {x['params'] / 1e6:.2f} M params; "
                f"its SEN S alone (forward + backward, both frames) {x['sen_s']:.3f} s",
                flush=True,
            )
        print(f"ours / authors: {r['ratio']:.2f}x (median of {args.steps} interleaved steps each)", flush=True)
        print(
            f"bound: with this SEN, ours reaches at most {r['ratio_bound']:.2f}x the authors' throughput "
            "(their step time over our SEN's time)",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**r, "machine": machine, "threads": torch.get_num_threads()}) + "\n")
        return 0
    args.env = args.env or ["SEN-Shapes-v0"]
    args.preset = args.preset or "cpu"

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
                COMPILE_PARTS[args.compile],
            )
            runs.append(r)
            ref = r["authors_transitions_per_s"]
            vs = f"  (authors on the dev machine: {ref:.1f}/s, x{r['transitions_per_s'] / ref:.1f})" if ref else ""
            print(
                f"{env_id:15s} {variant:4s} {args.preset:5s} batch {args.batch_size:4d} amp={r['amp']} "
                f"cl={args.channels_last!s:5s} compile={args.compile}: {r['step_s']:.3f} s/step, "
                f"{r['transitions_per_s']:.0f} transitions/s, first step {r['first_step_s']:.1f} s, "
                f"build {r['build_s']:.2f} s, {r['params'] / 1e6:.2f} M params{vs}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({**r, "machine": machine, "threads": torch.get_num_threads()}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
