"""Contrastive training of a world model from a rollout dataset, resumable bit for bit.

Data stream from the HDF5 file as uint8: each epoch visits the training episodes in
contiguous blocks in a seeded random order, shuffles the transitions of a few blocks
together, and converts each batch to float on the device. Episodes are independent
rollouts, so block-wise shuffling loses nothing and keeps reads sequential and memory small.

Every epoch writes ``last.pt`` atomically (model, optimiser, RNG states, config, history);
the best epoch by validation loss is copied to ``best.pt``. ``resume=True`` continues from
``last.pt`` exactly: the epoch's order and negatives are derived from ``(seed, epoch)``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sen_rl import distributed
from sen_rl.data import (
    Batch,
    ConcatRolloutDataset,
    RolloutDataset,
    TransitionStream,
    distinct_targets,
    group_augment,
    open_rollouts,
    split_episodes,
)
from sen_rl.distributed import World, gather_rows, launched_world, share, sync_batch_norms
from sen_rl.domains import DOMAINS, domain_of
from sen_rl.fileio import atomic_write
from sen_rl.hardware import autocast_for, check_amp, resolve_amp, use_channels_last
from sen_rl.metrics import ranking_metrics
from sen_rl.model import WorldModel, build_model, read_checkpoint

# -- fixed numbers (changing one changes every run: resume and published runs depend on them) --
VALIDATION_SEED_TAG = 11
"""The validation batch is drawn once per run by ``default_rng([seed, VALIDATION_SEED_TAG])``."""
EVAL_CHUNK = 500
"""``evaluate_one_step`` scores this many transitions at a time (memory); chunk ``i`` draws its
negatives from a generator seeded ``generator_seed + i``, so the size is part of the result."""
GENERATOR_SEED_BOUND = 2**62
"""An epoch's torch generator (negatives) is seeded by ``rng.integers(GENERATOR_SEED_BOUND)``."""
AUGMENT_SEED_TAG = 13
"""With ``augment="group"``, epoch ``e`` draws its group elements from ``default_rng([seed, e, AUGMENT_SEED_TAG])``."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Training settings (stored in every checkpoint)."""

    data: list[str]
    """Rollout dataset(s) (.h5) from ``sen-rl collect``: one file, several read as one (e.g. the shards of a
    ``collect --shard`` run, in episode order) or a quoted glob such as ``'data/part*.h5'``."""
    out: str
    """Run folder: checkpoints and TensorBoard logs."""
    variant: str = "sen"
    """``sen``, ``none``, ``full`` or ``hvae`` (those of the data's domain: ``sen_rl.domains``)."""
    preset: str = "cpu"
    """``smoke``, ``cpu`` or ``paper``: network sizes and default epochs/batch."""
    epochs: int | None = None
    """Epochs (default per preset)."""
    batch_size: int | None = None
    """Transitions per batch (default per preset)."""
    lr: float = 5e-4
    """Adam learning rate (the paper's 5e-4)."""
    lr_schedule: str = "constant"
    """``constant`` (the paper's) or ``cosine``: the rate falls from ``lr`` to 0 over all steps."""
    seed: int = 0
    """Seeds weights, validation split, data order and negatives."""
    init_seed: int | None = None
    """Seeds the initial weights alone, in place of ``seed`` (None: ``seed``): an ablation can pair one seed's
    weights with another's split, data order and negatives, to tell which of the two a result depends on."""
    init_part_seeds: dict[str, int] | None = None
    """Seeds of single networks' initial weights, e.g. ``{"embedding": 1}``: those of ``embedding``, ``encoder`` or
    ``transition`` are drawn as under that seed, the others as under ``init_seed`` (or ``seed``); an ablation that
    tells which network's initial weights a result depends on."""
    device: str = "auto"
    """``cpu``, ``cuda``, ``cuda:1``... or ``auto``."""
    amp: str = "auto"
    """Precision: ``fp32``, ``bf16`` or ``fp16`` autocast, as asked; ``auto``: bf16 on CUDA (fp16 where the GPU
    lacks bf16), and on the CPU bf16 only where it has native bf16 and a one-off measurement finds it faster, else
    fp32 (sen_rl.hardware)."""
    val_fraction: float = 0.1
    """Share of episodes held out (by episode) to choose the best checkpoint."""
    val_samples: int = 1000
    """Validation transitions used for loss and Hits@1 (fixed subset)."""
    max_transitions: int | None = None
    """Train on at most this many transitions per epoch (None: all)."""
    augment: str | None = None
    """``group``: symmetry data augmentation, the way a plain network is given a symmetry without equivariant
    layers. Each training transition is replaced by its image under a group element drawn at random (both
    observations by the domain's action on pixels, the action by the group's); validation stays as recorded.
    Only for domains whose group acts on the pixels by a known map (``Domain.act_on_observation``). None: off."""
    threads: int = 0
    """CPU threads for torch (0: leave torch's default; torchrun sets 1 per process)."""
    dist_timeout: float = 1800.0
    """Under torchrun: seconds a collective waits for the other processes before the job stops with an error."""
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keywords of the domain's network builder, on top of the domain table's (e.g. Teapot's ``{"none_batch_norm":
    false}``, an ablation); a resumed run keeps its checkpoint's (given again, they must match it)."""

    def __post_init__(self) -> None:
        if isinstance(self.data, str | Path):  # one file, as a plain path
            self.data = [str(self.data)]
        self.data = [str(d) for d in self.data]


LR_SCHEDULES = ("constant", "cosine")
AUGMENTS = ("group",)

#: settings a resumed run takes from its checkpoint, and must match when given again. The learning
#: rate too: Adam's restored state would otherwise keep the old rate under a constant schedule
#: while the run's record named the new one
RESUME_KEEPS = ("variant", "preset", "seed", "init_seed", "init_part_seeds", "lr", "lr_schedule", "augment")


def cosine_lr(base: float, step: int, total_steps: int) -> float:
    """Cosine decay from ``base`` at step 0 to 0 at ``total_steps``."""
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


PRESET_TRAINING = {"smoke": (2, 64), "cpu": (20, 256), "paper": (100, 1024)}
"""Default ``(epochs, batch_size)`` of each preset."""


def default_batch_size(env_id: str, preset: str) -> int:
    """The batch ``train`` uses for ``env_id`` at ``preset`` when none is given: the domain's own
    where it departs from the preset's (``Domain.preset_batch_size``)."""
    _, batch = PRESET_TRAINING.get(preset, (1, 1))
    return domain_of(env_id).preset_batch_size.get(preset, batch)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    return dev


@torch.no_grad()
def evaluate_one_step(model: WorldModel, batch: Batch, generator_seed: int = 0) -> dict[str, float]:
    """Validation loss and one-step Hits@1/MRR on a fixed batch of transitions."""
    was = model.training
    model.eval()
    obs, act, nxt = batch
    parts, zs, preds = [], [], []
    for i in range(0, len(obs), EVAL_CHUNK):
        chunk = slice(i, i + EVAL_CHUNK)
        gen = torch.Generator().manual_seed(generator_seed + i)
        out = model.loss(obs[chunk], act[chunk], nxt[chunk], generator=gen)
        parts.append({k: float(v) for k, v in out.items()})
        z = model.encode(obs[chunk])
        preds.append(model.predict(z, act[chunk]).float().cpu())
        zs.append(model.encode(nxt[chunk]).float().cpu())
    model.train(was)
    m = ranking_metrics(torch.cat(preds), torch.cat(zs), ks=(1,))
    return {"loss": float(np.mean([p["loss"] for p in parts])), "hits@1": m["hits@1"], "mrr": m["mrr"]}


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- one run


@dataclass
class _Run:
    """What a training run holds from one epoch to the next."""

    config: TrainConfig
    last_path: Path
    best_path: Path
    model: WorldModel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: torch.autocast | None
    precision: str
    """``fp32``, ``bf16`` or ``fp16``: what ``--amp`` resolved to (stored in the checkpoint)."""
    precision_reason: str
    stream: TransitionStream
    val_batch: Batch | None
    """The fixed validation batch (rank 0 only: the others never validate)."""
    world: World
    ddp: nn.Module | None
    """The DistributedDataParallel wrapper of the loss under torchrun (None in one process)."""
    augment: Callable[[Batch, np.random.Generator], Batch] | None
    """``config.augment`` as a function of a batch and a generator (None: off)."""
    steps_per_epoch: int
    """Optimiser steps an epoch takes at most, a last partial batch included: the cosine curve's unit."""
    bar_total: int
    start_epoch: int
    history: list[dict[str, float]]
    best_val: float


def _prepare_run(
    config: TrainConfig, ds: RolloutDataset | ConcatRolloutDataset, last_path: Path, resume: bool, overwrite: bool
) -> dict | None:
    """Check the run folder and the settings; returns the checkpoint to resume from (None: a fresh run).

    Settings left to None come from the checkpoint when resuming, else from the preset.
    """
    payload = None
    if not resume and not overwrite and last_path.exists():
        raise FileExistsError(
            f"{last_path} exists: pass --resume to continue that run or --overwrite to start it again"
        )
    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint {last_path} to resume from; drop --resume to start")
        payload = read_checkpoint(last_path)
        saved = payload.get("train_config", {})
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        for key in RESUME_KEEPS:
            # a key older checkpoints lack was added with a default that keeps their behaviour: they ran with it
            was = saved.get(key, defaults[key])
            if was != getattr(config, key):
                raise ValueError(f"--resume: {last_path} was trained with {key}={was!r}, not {getattr(config, key)!r}")
        built = payload["config"].get("net_kwargs", {})
        differ = {k: v for k, v in config.net_kwargs.items() if built.get(k) != v}
        if differ:  # the network exists already: a keyword that would change it cannot apply
            raise ValueError(
                f"--resume: {last_path} was built with net_kwargs {json.dumps(built)}, which --net-kwargs "
                f"{json.dumps(differ)} would change; drop --net-kwargs to resume, or start a new run"
            )
        if payload["config"]["env_id"] != ds.env_id:
            raise ValueError(
                f"--resume: {last_path} is a model of {payload['config']['env_id']}, "
                f"but {ds.path} holds {ds.env_id} data"
            )
        # settings not given again on the command line come from the checkpoint
        for key in ("epochs", "batch_size"):
            if getattr(config, key) is None:
                setattr(config, key, saved.get(key))
    default_epochs, _ = PRESET_TRAINING.get(config.preset, (1, 1))
    config.epochs = config.epochs or default_epochs
    config.batch_size = config.batch_size or default_batch_size(ds.env_id, config.preset)
    _check_init_part_seeds(config.init_part_seeds)
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {config.lr_schedule!r}")
    _check_augment(config.augment, ds.env_id)
    if config.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (negatives come from the batch), got {config.batch_size}")
    if config.max_transitions is not None and config.max_transitions < config.batch_size:
        raise ValueError(
            f"max_transitions={config.max_transitions} is less than one batch ({config.batch_size}): an epoch "
            "would train on nothing; raise --max-transitions or lower --batch-size"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    return payload


def run_net_kwargs(env_id: str, env_kwargs: dict, given: dict | None) -> dict | None:
    """The network keywords a fresh run builds with: the domain's for ``env_kwargs`` under ``given``
    (``--net-kwargs``), or None (the domain's own) when none are given."""
    return {**domain_of(env_id).net_kwargs_for(env_kwargs), **given} if given else None


#: the networks of a world model that ``TrainConfig.init_part_seeds`` may seed on their own
INIT_PARTS = ("embedding", "encoder", "transition")


def _check_augment(augment: str | None, env_id: str) -> None:
    if augment is None:
        return
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)} or None, got {augment!r}")
    if domain_of(env_id).act_on_observation is None:
        known = ", ".join(d.env_id for d in DOMAINS.values() if d.act_on_observation is not None)
        raise ValueError(
            f"augment={augment!r} moves the pixels by the group, but no map of {env_id}'s images is known to do "
            f"that (its symmetry is what the SEN learns); it exists for {known}. Train without augment"
        )


def _check_init_part_seeds(parts: dict | None) -> None:
    for name, seed in (parts or {}).items():
        if name not in INIT_PARTS:
            raise ValueError(f"init_part_seeds: no network {name!r}; the parts are {', '.join(INIT_PARTS)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"init_part_seeds: the seed of {name!r} must be an integer, got {seed!r}")


def _reseed_parts(model: nn.Module, parts: dict[str, int], build: Callable[[], nn.Module]) -> None:
    """Replace the initial weights of the networks named in ``parts`` with those a model built under each one's
    seed has. Each such model is built whole, so a part's weights are exactly the ones that seed gives it in a
    plain run; torch's global generator is left as the main build left it."""
    if not parts:
        return
    state = torch.random.get_rng_state()
    for seed in sorted(set(parts.values())):
        torch.manual_seed(seed)
        donor = build()
        for name in (n for n, s in parts.items() if s == seed):
            getattr(model, name).load_state_dict(getattr(donor, name).state_dict())
    torch.random.set_rng_state(state)


def _precision(config: TrainConfig, device: torch.device, payload: dict | None, world: World) -> tuple[str, str]:
    """The precision this run trains in, and why: ``--amp`` as asked, or the machine's choice for ``auto``.

    A resumed ``auto`` run keeps the precision its checkpoint was trained in, so that moving a
    run to another machine does not change its arithmetic half way; a checkpoint written before
    precisions were stored was trained by the old rule (bf16 on CUDA, fp32 on the CPU). Under
    torchrun rank 0 decides for every rank: ranks that measured differently would gather
    latents of different dtypes.
    """
    config.amp = check_amp(config.amp)
    if config.amp == "auto" and payload is not None:
        saved = payload.get("precision")
        if saved is not None:
            return saved, f"--amp auto: kept from {config.out}/last.pt"
        old = "bf16" if device.type == "cuda" else "fp32"
        return old, f"--amp auto: {config.out}/last.pt predates stored precisions; its rule gave {old}"
    if world.parallel and config.amp == "auto":
        shared = [resolve_amp(config.amp, device) if world.main else None]
        torch.distributed.broadcast_object_list(shared, src=0)
        precision, why = shared[0]
        return precision, why if world.main else f"{why} (rank 0's choice)"
    return resolve_amp(config.amp, device)


class _Loss(nn.Module):
    """The model's loss as a module's forward: what DistributedDataParallel wraps."""

    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model

    def forward(self, *batch: Any, **kw: Any) -> dict[str, torch.Tensor]:
        return self.model.loss(*batch, **kw)


def _unused_parameters(model: WorldModel, ds: RolloutDataset | ConcatRolloutDataset) -> list[str]:
    """Parameters the loss leaves without a gradient (DDP must be told), probed on two transitions.

    The probe's batch-norm updates are undone, so the run is the same with or without it.
    """
    saved = copy.deepcopy(model.state_dict())
    frames, actions = ds.obs[0], ds.actions[0]  # one episode; two of its transitions (the same one if T = 1)
    t = np.array([0, min(1, ds.steps - 1)])
    obs, act, nxt = frames[t], actions[t], frames[t + 1]
    model.loss(obs, act, nxt, generator=torch.Generator().manual_seed(0))["loss"].backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    model.load_state_dict(saved)
    return unused


def _build(
    config: TrainConfig,
    ds: RolloutDataset | ConcatRolloutDataset,
    payload: dict | None,
    last_path: Path,
    best_path: Path,
    world: World,
    device: torch.device,
) -> _Run:
    """Model, optimiser, data streams and mixed precision, restored from ``payload`` when resuming.

    The order is part of the result: the weights are drawn right after ``manual_seed``, the
    same on every rank.
    """
    # -- model and optimiser; the weights are the only draw from torch's global generator that the
    # run's results depend on (the data order and negatives have generators of their own)
    torch.manual_seed(config.seed if config.init_seed is None else config.init_seed)
    # a resumed run keeps the network its checkpoint was built with, even if defaults changed since
    if payload is not None:
        net_kwargs = payload["config"].get("net_kwargs", {})
    else:
        net_kwargs = run_net_kwargs(ds.env_id, ds.env_kwargs, config.net_kwargs)

    def build():
        return build_model(ds.env_id, config.variant, config.preset, env_kwargs=ds.env_kwargs, net_kwargs=net_kwargs)

    try:
        model = build()
        if payload is None:  # a resumed run's weights come from its checkpoint
            _reseed_parts(model, config.init_part_seeds or {}, build)
    except TypeError as exc:  # an unknown --net-kwargs key reaches the builder as an unexpected keyword
        if not config.net_kwargs or "keyword" not in str(exc):
            raise
        raise ValueError(
            f"--net-kwargs {json.dumps(config.net_kwargs)}: {exc}; see the keywords of the domain's networks "
            f"builder (sen_rl.nets.{domain_of(ds.env_id).nets}.build)"
        ) from None
    if tuple(model.obs_shape) != tuple(ds.obs_shape):
        raise ValueError(f"{ds.path} holds observations {ds.obs_shape}, the model expects {model.obs_shape}")
    if world.parallel and model.objective is not None:
        # its loss is a per-row mean with its own noise: no gather makes N ranks equal one process
        raise ValueError(
            f"variant {config.variant!r} trains with its own objective, which is not data-parallel; "
            "train it in one process (without torchrun)"
        )
    precision, why = _precision(config, device, payload, world)
    model.to(device)
    if use_channels_last(device, precision):
        model.to(memory_format=torch.channels_last)
    if world.parallel:  # before the optimiser: the synced batch norms are new modules
        sync_batch_norms(model, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    # -- resume: weights, optimiser, RNGs and history of the last finished epoch
    start_epoch, history, best_val = 0, [], math.inf
    if payload is not None:
        model.load_weights(payload["model_state"])
        optimizer.load_state_dict(payload["optimizer_state"])
        _set_rng_state(payload["rng"])
        start_epoch, history, best_val = payload["epoch"] + 1, payload["history"], payload["best_val"]

    # -- data: training stream, and a fixed validation batch of held-out episodes
    train_eps, val_eps = split_episodes(ds.episodes, config.val_fraction, config.seed)
    stream = TransitionStream(ds, train_eps, config.batch_size)
    val_batch = None
    if len(val_eps) and world.main:
        vs = TransitionStream(ds, val_eps, min(config.val_samples, len(val_eps) * ds.steps))
        val_batch = distinct_targets(next(vs.epoch(np.random.default_rng([config.seed, VALIDATION_SEED_TAG]))))

    # -- mixed precision
    autocast = autocast_for(precision, device)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
    scaler = torch.amp.GradScaler(device.type, enabled=autocast is not None and autocast.fast_dtype == torch.float16)
    if payload is not None and payload.get("scaler_state"):
        scaler.load_state_dict(payload["scaler_state"])

    capped = None if config.max_transitions is None else max(1, config.max_transitions // config.batch_size)
    model.train()
    ddp = None
    if world.parallel:
        # 1x1 convolutions on channels-last views of HWC frames return channels-last gradients, which DDP
        # copies into its buckets: correct, and a copy of a few small tensors, not worth a warning per step
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        unused = _unused_parameters(model, ds)
        ddp = DistributedDataParallel(
            _Loss(model),
            device_ids=[device.index] if device.type == "cuda" else None,
            # batch-norm statistics are global (synced), so the ranks' buffers never differ
            forward_sync_buffers=False,
            gradient_as_bucket_view=True,  # gradients are views of DDP's buckets: no second copy of them
            find_unused_parameters=bool(unused),
        )
    return _Run(
        config=config,
        last_path=last_path,
        best_path=best_path,
        model=model,
        optimizer=optimizer,
        scaler=scaler,
        autocast=autocast,
        precision=precision,
        precision_reason=why,
        stream=stream,
        val_batch=val_batch,
        world=world,
        ddp=ddp,
        augment=_augmenter(config.augment, model, ds.env_id),
        steps_per_epoch=len(stream) + 1 if capped is None else capped,
        bar_total=len(stream) if capped is None else capped,
        start_epoch=start_epoch,
        history=history,
        best_val=best_val,
    )


def _augmenter(augment: str | None, model: WorldModel, env_id: str) -> Callable | None:
    if augment is None:
        return None
    sym = model.symmetry
    return functools.partial(
        group_augment,
        elements=sym.elements,
        act_on_observation=domain_of(env_id).act_on_observation,
        act_on_action=sym.act_on_action,
    )


def _train_step(run: _Run, batch: Batch, gen: torch.Generator, epoch: int, step: int) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch``; a TrainingDiverged before any update if the loss is not finite."""
    config, model, optimizer = run.config, run.model, run.optimizer
    if config.lr_schedule == "cosine":
        # a function of the step alone, so a resumed run follows the same curve
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(config.lr, epoch * run.steps_per_epoch + step, config.epochs * run.steps_per_epoch)
    if run.ddp is not None:
        # this rank's rows of the global batch; the loss gathers the latents of all of them
        n, world = len(batch[0]), run.world
        rows = share(n, world)
        batch = tuple(part[rows] for part in batch)
        loss_fn = functools.partial(run.ddp, gather=functools.partial(gather_rows, n=n, world=world))
    else:
        loss_fn = model.loss
    with run.autocast if run.autocast is not None else contextlib.nullcontext():
        parts = loss_fn(*batch, generator=gen)
    loss = parts["loss"]
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}; stopping. "
            f"The last good checkpoint ({run.last_path if run.last_path.exists() else 'none yet'}) is kept; "
            "try a lower --lr"
        )
    optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(optimizer)
    run.scaler.update()
    return parts


def _run_epoch(run: _Run, epoch: int, progress: bool) -> dict[str, float]:
    """Train one epoch; returns its row of the history (mean losses, throughput)."""
    from tqdm.auto import tqdm

    config = run.config
    # the epoch's order and negatives follow from (seed, epoch) alone: what makes resume exact
    rng = np.random.default_rng([config.seed, epoch])
    gen = torch.Generator().manual_seed(int(rng.integers(GENERATOR_SEED_BOUND)))
    # a generator of its own, so that augmenting leaves the order and the negatives as they were
    aug_rng = np.random.default_rng([config.seed, epoch, AUGMENT_SEED_TAG])
    sums, count, t0, n_samples = {}, 0, time.perf_counter(), 0
    bar = tqdm(total=run.bar_total, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
    try:
        for step, batch in enumerate(run.stream.epoch(rng, config.max_transitions)):
            if len(batch[0]) < run.world.size:  # a last partial batch too small to give every rank a row
                break
            if run.augment is not None:
                batch = run.augment(batch, rng=aug_rng)
            parts = _train_step(run, batch, gen, epoch, step)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            count += 1
            n_samples += len(batch[0])
            rate = n_samples / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", sps=f"{rate:.0f}")
            bar.update(1)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    row = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()}}
    row["samples_per_sec"] = n_samples / elapsed
    return row


def _validate(run: _Run) -> dict[str, float]:
    """``val_loss``, ``val_hits@1`` and ``val_mrr`` on the fixed validation batch (empty without one)."""
    if run.val_batch is None:
        return {}
    val = evaluate_one_step(run.model, run.val_batch, generator_seed=run.config.seed)
    return {f"val_{k}": v for k, v in val.items()}


def _save_epoch(run: _Run, epoch: int, row: dict[str, float]) -> bool:
    """Append ``row`` to the history, write ``last.pt`` and, if it is the best so far, ``best.pt``."""
    run.history.append(row)
    score = row.get("val_loss", row["loss"])
    improved = score < run.best_val
    run.best_val = min(run.best_val, score)
    run.model.save(
        run.last_path,
        train_config=asdict(run.config),
        optimizer_state=run.optimizer.state_dict(),
        scaler_state=run.scaler.state_dict() if run.scaler.is_enabled() else None,
        rng=_rng_state(),
        precision=run.precision,
        epoch=epoch,
        history=run.history,
        best_val=run.best_val,
    )
    if improved:
        with atomic_write(run.best_path) as tmp:
            shutil.copyfile(run.last_path, tmp)
    return improved


def _log_epoch(writer: Any, row: dict[str, float], epoch: int) -> None:
    """TensorBoard scalars of one epoch: ``train/...`` and ``val/...``."""
    for k, v in row.items():
        if k != "epoch":
            tag = k.replace("val_", "val/") if k.startswith("val_") else f"train/{k}"
            writer.add_scalar(tag, v, epoch + 1)
    writer.flush()


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    log: bool = True,
    verbose: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or resume) a world model; returns the history and the paths of the checkpoints.

    ``progress`` shows a progress bar per epoch, ``verbose`` prints one line per epoch and
    ``log`` writes TensorBoard scalars under ``config.out``. A run folder that already holds
    a checkpoint is only continued (``resume``) or replaced (``overwrite``), never silently.
    The dataset and the TensorBoard writer are closed however the run ends.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this with the same config: see
    :mod:`sen_rl.distributed`. Rank 0 alone validates, writes checkpoints and logs, and prints;
    ``resume`` needs the run folder on a file system every node reads.
    """
    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    world = launched_world()
    device = distributed.local_device(world, _device(config.device))
    created = distributed.init(world, device, config.dist_timeout)
    progress, verbose, log = (flag and world.main for flag in (progress, verbose, log))
    ds, writer = None, None
    try:
        # -- setup
        ds = open_rollouts(config.data)
        payload = _prepare_run(config, ds, last_path, resume, overwrite)
        run = _build(config, ds, payload, last_path, best_path, world, device)
        if verbose:
            ranks = f", {world.size} processes" if world.parallel else ""
            print(f"precision {run.precision} ({run.precision_reason}){ranks}")
        if log:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out))

        # -- epochs: train, validate, checkpoint, report (the last three on rank 0)
        for epoch in range(run.start_epoch, config.epochs):
            t_epoch = time.perf_counter()
            row = _run_epoch(run, epoch, progress)
            if not world.main:
                run.history.append(row)
                continue
            row.update(_validate(run))
            # kept in the history, so that a run's training time adds up across resumes
            row["epoch_seconds"] = time.perf_counter() - t_epoch
            improved = _save_epoch(run, epoch, row)
            if writer is not None:
                _log_epoch(writer, row, epoch)
            if verbose:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
                print(f"epoch {epoch + 1}/{config.epochs}: {shown}" + (" (best)" if improved else ""))
        if world.parallel:  # the others wait for rank 0's last checkpoint before returning its paths
            torch.distributed.barrier()
    except BaseException as exc:
        if world.parallel:
            distributed.report_failure(world, exc)
        raise
    finally:
        if writer is not None:
            writer.close()
        if ds is not None:
            ds.close()
        if created:
            torch.distributed.destroy_process_group()
    return {"history": run.history, "last": last_path, "best": best_path if best_path.exists() else last_path}
