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

import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sen_rl.data import RolloutDataset
from sen_rl.metrics import ranking_metrics
from sen_rl.model import WorldModel, build_model, read_checkpoint


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Training settings (stored in every checkpoint)."""

    data: str
    """Rollout dataset (.h5) from ``sen-rl collect``."""
    out: str
    """Run folder: checkpoints and TensorBoard logs."""
    variant: str = "sen"
    """``sen``, ``none`` or ``full``."""
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
    """Seeds weights, data order and negatives."""
    device: str = "auto"
    """``cpu``, ``cuda``, ``cuda:1``... or ``auto``."""
    amp: str = "auto"
    """Mixed precision: ``bf16``, ``fp16``, ``off``; ``auto`` is bf16 on CUDA, off on the CPU."""
    val_fraction: float = 0.1
    """Share of episodes held out (by episode) to choose the best checkpoint."""
    val_samples: int = 1000
    """Validation transitions used for loss and Hits@1 (fixed subset)."""
    max_transitions: int | None = None
    """Train on at most this many transitions per epoch (None: all)."""
    threads: int = 0
    """CPU threads for torch (0: leave torch's default)."""


LR_SCHEDULES = ("constant", "cosine")


def cosine_lr(base: float, step: int, total_steps: int) -> float:
    """Cosine decay from ``base`` at step 0 to 0 at ``total_steps``."""
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


PRESET_TRAINING = {"smoke": (2, 64), "cpu": (20, 256), "paper": (100, 1024)}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    return dev


def _autocast(amp: str, device: torch.device):
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "off"
    if amp == "off":
        return None
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp={amp!r}: use bf16, fp16, off or auto")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class TransitionStream:
    """Batches ``(obs, action, next_obs)`` of uint8 numpy arrays from a subset of episodes.

    Episodes are read in contiguous blocks of about ``block_bytes`` of observations; the
    transitions of a block are shuffled and gathered batch by batch, so memory holds one
    block plus one batch whatever the dataset's size.
    """

    def __init__(self, ds: RolloutDataset, episodes: np.ndarray, batch_size: int, block_bytes: int = 256 << 20):
        self.ds, self.episodes, self.batch_size = ds, np.sort(episodes), batch_size
        self.T = ds.steps
        episode_bytes = (self.T + 1) * int(np.prod(ds.obs_shape))
        self.block_eps = max(1, block_bytes // episode_bytes, -(-batch_size // self.T))

    def __len__(self) -> int:
        return max(1, len(self.episodes) * self.T // self.batch_size)

    def _read(self, eps: np.ndarray):
        lo, hi = int(eps[0]), int(eps[-1]) + 1
        keep = eps - lo
        if len(keep) == hi - lo:  # a contiguous run: one slice, no copy
            return self.ds["obs"][lo:hi], self.ds["actions"][lo:hi]
        return self.ds["obs"][lo:hi][keep], self.ds["actions"][lo:hi][keep]

    def epoch(self, rng: np.random.Generator, max_transitions: int | None = None):
        B, T = self.batch_size, self.T
        blocks = [self.episodes[i : i + self.block_eps] for i in range(0, len(self.episodes), self.block_eps)]
        budget = max_transitions if max_transitions is not None else math.inf
        carry = None  # fewer than B transitions left over from the previous block
        for b in rng.permutation(len(blocks)):
            if budget < B:
                break
            obs, act = self._read(blocks[b])
            e, t = np.divmod(rng.permutation(len(obs) * T), T)
            pos = 0
            if carry is not None:
                need = B - len(carry[0])
                part = (obs[e[:need], t[:need]], act[e[:need], t[:need]], obs[e[:need], t[:need] + 1])
                carry = tuple(np.concatenate([c, x]) for c, x in zip(carry, part, strict=True))
                pos = need
                if len(carry[0]) == B:
                    budget -= B
                    yield carry
                    carry = None
            while pos + B <= len(e) and budget >= B:
                ei, ti = e[pos : pos + B], t[pos : pos + B]
                budget -= B
                yield obs[ei, ti], act[ei, ti], obs[ei, ti + 1]
                pos += B
            if pos < len(e) and budget >= B:
                ei, ti = e[pos:], t[pos:]
                carry = (obs[ei, ti], act[ei, ti], obs[ei, ti + 1])
        if carry is not None and len(carry[0]) >= 2 and budget >= len(carry[0]):
            yield carry


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation episode indices, split by whole episodes."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng([seed, 7]).permutation(n_episodes)
    n_val = int(round(n_episodes * val_fraction))
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n_episodes - n_val < 1:
        raise ValueError(f"dataset has {n_episodes} episodes: too few to hold out {n_val} for validation")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def distinct_targets(batch):
    """Keep one transition per distinct next observation.

    Blocked moves repeat a state, so transitions of the same episode often share their next
    observation; each of them then has a rival prediction of the very same target and Hits@1
    scores about half of them as misses however good the model is (6% of a 2D Shapes
    validation batch). The paper's evaluation uses one transition per episode, which avoids
    this; here, duplicates are dropped.
    """
    obs, act, nxt = batch
    _, first = np.unique(nxt.reshape(len(nxt), -1), axis=0, return_index=True)
    keep = np.sort(first)
    return obs[keep], act[keep], nxt[keep]


@torch.no_grad()
def evaluate_one_step(model: WorldModel, batch, generator_seed: int = 0) -> dict[str, float]:
    """Validation loss and one-step Hits@1/MRR on a fixed batch of transitions."""
    was = model.training
    model.eval()
    obs, act, nxt = batch
    parts, zs, preds = [], [], []
    for i in range(0, len(obs), 500):
        gen = torch.Generator().manual_seed(generator_seed + i)
        out = model.loss(obs[i : i + 500], act[i : i + 500], nxt[i : i + 500], generator=gen)
        parts.append({k: float(v) for k, v in out.items()})
        z = model.encode(obs[i : i + 500])
        preds.append(model.predict(z, act[i : i + 500]).float().cpu())
        zs.append(model.encode(nxt[i : i + 500]).float().cpu())
    model.train(was)
    m = ranking_metrics(torch.cat(preds), torch.cat(zs), ks=(1,))
    return {"loss": float(np.mean([p["loss"] for p in parts])), "hits@1": m["hits@1"], "mrr": m["mrr"]}


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    log: bool = True,
    verbose: bool = True,
    overwrite: bool = False,
) -> dict:
    """Train (or resume) a world model; returns the history and the paths of the checkpoints.

    ``progress`` shows a progress bar per epoch, ``verbose`` prints one line per epoch and
    ``log`` writes TensorBoard scalars under ``config.out``. A run folder that already holds
    a checkpoint is only continued (``resume``) or replaced (``overwrite``), never silently.
    """
    from tqdm.auto import tqdm

    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    ds = RolloutDataset(config.data)
    start_epoch, history, best_val = 0, [], math.inf
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
        for key in ("variant", "preset", "seed", "lr_schedule"):
            if key in saved and saved[key] != getattr(config, key):
                raise ValueError(
                    f"--resume: {last_path} was trained with {key}={saved[key]!r}, not {getattr(config, key)!r}"
                )
        if payload["config"]["env_id"] != ds.env_id:
            raise ValueError(
                f"--resume: {last_path} is a model of {payload['config']['env_id']}, "
                f"but {config.data} holds {ds.env_id} data"
            )
        # settings not given again on the command line come from the checkpoint
        for key in ("epochs", "batch_size"):
            if getattr(config, key) is None:
                setattr(config, key, saved.get(key))
    default_epochs, default_batch = PRESET_TRAINING[config.preset] if config.preset in PRESET_TRAINING else (1, 1)
    config.epochs = config.epochs or default_epochs
    config.batch_size = config.batch_size or default_batch
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {config.lr_schedule!r}")
    if config.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (negatives come from the batch), got {config.batch_size}")
    if config.threads:
        torch.set_num_threads(config.threads)

    device = _device(config.device)
    torch.manual_seed(config.seed)
    # a resumed run keeps the network its checkpoint was built with, even if defaults changed since
    net_kwargs = None if payload is None else payload["config"].get("net_kwargs", {})
    model = build_model(ds.env_id, config.variant, config.preset, env_kwargs=ds.env_kwargs, net_kwargs=net_kwargs)
    if tuple(model.obs_shape) != tuple(ds.obs_shape):
        raise ValueError(f"{config.data} holds observations {ds.obs_shape}, the model expects {model.obs_shape}")
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    if payload is not None:
        model.eval()
        model.load_state_dict(payload["model_state"])
        model.train()
        optimizer.load_state_dict(payload["optimizer_state"])
        _set_rng_state(payload["rng"])
        start_epoch, history, best_val = payload["epoch"] + 1, payload["history"], payload["best_val"]

    train_eps, val_eps = split_episodes(ds.episodes, config.val_fraction, config.seed)
    stream = TransitionStream(ds, train_eps, config.batch_size)
    val_batch = None
    if len(val_eps):
        vs = TransitionStream(ds, val_eps, min(config.val_samples, len(val_eps) * ds.steps))
        val_batch = distinct_targets(next(vs.epoch(np.random.default_rng([config.seed, 11]))))

    writer = None
    if log:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out))
    autocast = _autocast(config.amp, device)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
    scaler = torch.amp.GradScaler(device.type, enabled=autocast is not None and autocast.fast_dtype == torch.float16)
    if payload is not None and payload.get("scaler_state"):
        scaler.load_state_dict(payload["scaler_state"])
    # at most the steps an epoch takes, a last partial batch included: the cosine curve's length
    n_steps = len(stream) + 1 if config.max_transitions is None else max(1, config.max_transitions // config.batch_size)
    model.train()
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        sums, count, t0, n_samples = {}, 0, time.perf_counter(), 0
        total = len(stream) if config.max_transitions is None else max(1, config.max_transitions // config.batch_size)
        bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for step, (obs, act, nxt) in enumerate(stream.epoch(rng, config.max_transitions)):
            if config.lr_schedule == "cosine":
                # a function of the step alone, so a resumed run follows the same curve
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(config.lr, epoch * n_steps + step, config.epochs * n_steps)
            if autocast is not None:
                with autocast:
                    parts = model.loss(obs, act, nxt, generator=gen)
            else:
                parts = model.loss(obs, act, nxt, generator=gen)
            loss = parts["loss"]
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}; stopping. "
                    f"The last good checkpoint ({last_path if last_path.exists() else 'none yet'}) is kept; "
                    "try a lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            count += 1
            n_samples += len(obs)
            rate = n_samples / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{sums['loss'] / count:.4f}", sps=f"{rate:.0f}")
            bar.update(1)
        bar.close()
        elapsed = time.perf_counter() - t0
        row = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()}}
        row["samples_per_sec"] = n_samples / elapsed
        if val_batch is not None:
            val = evaluate_one_step(model, val_batch, generator_seed=config.seed)
            row.update({f"val_{k}": v for k, v in val.items()})
        history.append(row)
        score = row.get("val_loss", row["loss"])
        improved = score < best_val
        best_val = min(best_val, score)
        model.save(
            last_path,
            train_config=asdict(config),
            optimizer_state=optimizer.state_dict(),
            scaler_state=scaler.state_dict() if scaler.is_enabled() else None,
            rng=_rng_state(),
            epoch=epoch,
            history=history,
            best_val=best_val,
        )
        if improved:
            tmp = best_path.with_name(f".{best_path.name}.tmp-{os.getpid()}")
            shutil.copyfile(last_path, tmp)
            os.replace(tmp, best_path)
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    tag = k.replace("val_", "val/") if k.startswith("val_") else f"train/{k}"
                    writer.add_scalar(tag, v, epoch + 1)
            writer.flush()
        if verbose:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
            print(f"epoch {epoch + 1}/{config.epochs}: {shown}" + (" (best)" if improved else ""))
    if writer is not None:
        writer.close()
    ds.close()
    return {"history": history, "last": last_path, "best": best_path if best_path.exists() else last_path}
