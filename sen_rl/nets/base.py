"""The contract every domain's networks honour, so that the world model is domain-agnostic.

The path of an observation is one straight line:

    pixels (uint8, [B, H, W, C]) -> float [B, C, H, W] in [0, 1]
        -> embedding S (the SEN: an unconstrained CNN, or an equivariant one for "full")
        -> v in V, where the group acts by the domain's ``act_on_embedding``
        -> encoder E (equivariant for "sen"/"full", plain for "none")
        -> z in Z, where the group acts by the domain's ``act_on_latent``
    transition T(z, a): the next latent is z + T(z, a) when ``predicts_delta`` (C-SWM,
    the grid domains and Reacher), or T(z, a) itself (Teapot's MatMul: T(z, a) = a z).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sen_rl.domains import (  # noqa: F401  (re-exported for the nets)
    CONTRASTIVE_VARIANTS,
    PRESETS,
    VARIANTS,
    check_choice,
    check_positive_int,
)


@dataclass
class DomainNets:
    """The three networks of one world model and how their latent is laid out.

    The group's actions on V and Z are the domain table's (``Domain.act_on_embedding``,
    ``Domain.act_on_latent``), on MDP actions the environment's (``env.symmetry.act_on_action``):
    the networks are built to commute with them and carry no copy.

    :param embedding: S, pixels ``[B, C, H, W]`` float in [0, 1] -> v.
    :param encoder: E, v -> z.
    :param transition: T, ``(z, a)`` -> delta z (or the next z when not ``predicts_delta``);
        ``a`` is the batch of raw environment actions as a tensor (int64 for discrete
        spaces, float32 for boxes).
    :param object_axis: latent axis that indexes objects (the energy averages over it), or None.
    :param equivariant: which of embedding/encoder/transition are exactly equivariant.
    :param objective: None (train with the contrastive loss), or a module that is the variant's own
        training loss (Teapot's ``"hvae"``: the ELBO): :meth:`sen_rl.model.WorldModel.loss` returns
        ``objective(model, x, action, x_next, generator=generator)``, ``x`` and ``x_next`` float
        ``[B, C, H, W]`` in [0, 1], a dict with ``"loss"`` and scalars to log. Its parameters
        (e.g. a decoder) belong to the model: trained, saved and loaded with it.
    """

    embedding: nn.Module
    encoder: nn.Module
    transition: nn.Module
    predicts_delta: bool = True
    object_axis: int | None = None
    equivariant: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    objective: nn.Module | None = None


def export_module(module: nn.Module) -> nn.Module:
    """Plain-torch copy for inference: escnn modules are exported, others deep-copied in eval mode."""
    import copy

    module = copy.deepcopy(module).eval()

    def _export(m: nn.Module) -> nn.Module:
        if hasattr(m, "export") and callable(m.export) and m.__class__.__module__.startswith("escnn"):
            return m.export()
        for name, child in list(m.named_children()):
            setattr(m, name, _export(child))
        return m

    return _export(module)


def to_float_image(obs: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, C]`` -> float ``[B, C, H, W]`` in [0, 1]."""
    return obs.permute(0, 3, 1, 2).float().div_(255.0)
