"""Data-parallel training on PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``sen-rl train`` started by ``torchrun --nproc-per-node N [--nnodes M ...]`` finds
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment and joins the process group (gloo on
the CPU, NCCL on CUDA, one GPU per process). What makes N processes train like one process
at the same global batch:

- every rank reads the same global batch of the epoch (the order derives from ``(seed,
  epoch)`` as in one process) and keeps its own rows (:func:`share`): the float conversion,
  the networks and their memory are split N ways;
- the contrastive loss needs the whole batch (its negatives are other samples of the batch):
  latents are gathered with a differentiable all-gather (:func:`gather_rows`), so every rank
  computes the loss of the global batch; DDP's averaging of the gradients then gives exactly
  the one-process gradient (each rank's share arrives N times, once per rank's copy of the
  loss, and DDP divides by N);
- batch norms see the statistics of the global batch: torch's ``SyncBatchNorm`` on CUDA, and on
  the CPU, where that one refuses to run, :class:`CpuSyncBatchNorm`; escnn's ``InnerBatchNorm``
  holds torch batch norms, which are swapped the same way (:func:`sync_batch_norms`);
- collectives time out (``--dist-timeout``) instead of hanging when a rank dies.

A variant with its own objective (Teapot's ``hvae``) is refused under torchrun.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that validates, writes checkpoints, logs and prints."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def launched_world() -> World:
    """The world ``torchrun`` (or any launcher setting ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``) started us in."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank = int(os.environ.get("RANK", "0"))
    return World(rank=rank, size=size, local_rank=int(os.environ.get("LOCAL_RANK", str(rank))))


def init(world: World, device: torch.device, timeout_s: float) -> bool:
    """Join the process group (gloo for the CPU, NCCL for CUDA); True if this call created it."""
    if not world.parallel or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s), **kwargs)
    return True


def local_device(world: World, device: torch.device) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` when ``device`` is CUDA, else ``device``."""
    if world.parallel and device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def share(n: int, world: World) -> slice:
    """This rank's rows of a global batch of ``n``: contiguous, sizes differing by at most one."""
    base, extra = divmod(n, world.size)
    lo = world.rank * base + min(world.rank, extra)
    return slice(lo, lo + base + (world.rank < extra))


class _AllReduce(torch.autograd.Function):
    """Sum over ranks; the gradient of each rank's input is the sum of every rank's output gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    """``[world, *x.shape]``: every rank's ``x``; each rank's input gets the summed gradient of its slot."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over the ranks."""
    return _AllReduce.apply(x)


def gather_rows(x: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """The global batch of ``n`` rows from every rank's :func:`share` of it, differentiably."""
    sizes = [share(n, World(r, world.size)).stop - share(n, World(r, world.size)).start for r in range(world.size)]
    pad = max(sizes) - x.shape[0]
    if pad:  # all_gather needs equal shapes
        x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
    parts = _AllGather.apply(x)
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


class CpuSyncBatchNorm(_BatchNorm):
    """Batch norm over the batch of every rank, on any device (torch's ``SyncBatchNorm`` is GPU-only).

    Statistics come from differentiable all-reduces of per-channel sums (two passes, for the
    accuracy of torch's own batch norm); eval mode and a single process use ``F.batch_norm``.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = all_reduce(input.new_tensor([input.numel() / input.shape[1]], dtype=torch.float64))
        mean = all_reduce(input.sum(dims, dtype=torch.float64)) / count
        centred = input - mean.to(input.dtype).view(shape)
        var = all_reduce(centred.double().square().sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return out


def sync_batch_norms(module: nn.Module, device: torch.device) -> nn.Module:
    """Every torch batch norm in ``module`` (escnn's included) made to use the global batch's statistics."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, CpuSyncBatchNorm):
            new = CpuSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            module.add_module(name, new.to(device))
        else:
            sync_batch_norms(child, device)
    return module


def report_failure(world: World, exc: BaseException) -> None:
    """One line on stderr naming the rank that failed: the other ranks then stop on their collectives."""
    print(f"sen-rl train: rank {world.rank} of {world.size} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
