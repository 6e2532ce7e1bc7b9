"""Generic SEN networks for a declared symmetry: pixels of any size and channel count, any subgroup of D4.

The Reacher networks (:mod:`sen_rl.nets.reacher`) generalised over the group ``H`` of a
:class:`sen_rl.symmetry.Symmetry` (``D1``, ``D1-ud``, ``C2``, ``C4``, ``D2``, ``D4``):

- S (``"sen"`` and ``"none"``): an unconstrained CNN, ``[B, C, H, W]`` -> 8 scalar maps
  ``[B, 8, h, w]`` (about a quarter of the size): a stride-2 stem, dilated 3x3 convolutions,
  a stride-2 head. ``H`` acts on V as on pictures, :func:`sen_rl.groups.d4_act_on_embedding`.
- E (``"sen"``): escnn convolutions on escnn's ``flipRot2dOnR2(N=4)`` restricted to ``H``:
  scalar fields -> ``H``-regular fields -> (three stages, max-pools, a global max-pool, two
  1x1 layers) -> ``L`` D4-regular fields restricted to ``H``: the latent ``[B, 8 L]``, on which
  ``H`` acts by D4's regular permutations (:func:`sen_rl.groups.d4_act_on_latent`) whatever
  the subgroup, so one rule serves every declared group.
- T (``"sen"``): escnn linear layers on ``[z, lift(a)]`` -> delta z. The action enters through
  its *lift* ``lift(a)[h] = rho_A(h^-1) a`` over the elements ``h`` of ``H``: whatever the
  declared rule (matrix, permutation, function), ``lift(rho_A(g) a)[h] = lift(a)[g^-1 h]``, the
  regular representation of ``H`` (one regular field per action coordinate; a ``Discrete(n)``
  action is one-hot encoded first, ``n`` fields).
- ``"none"``: plain CNN E and an MLP T on ``[z, a]`` of the same sizes.

Exactness: every strided window is centred on the map (the grid rules of the Reacher
networks, checked per axis), so E and T are equivariant to float round-off for every
element of ``H`` (tested for every group with random weights). Groups with quarter turns
need square pictures; the mirrors and the half turn take any ``H x W`` whose two sides go
through the same window plan (a ValueError says when they do not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sen_rl.groups import d4_inverse
from sen_rl.nets.base import DomainNets, check_choice
from sen_rl.nets.escnn_utils import EscnnNet, d4_gspace, import_escnn, linear, r2conv
from sen_rl.nets.reacher import down_conv, down_pool, is_centred
from sen_rl.symmetry import Symmetry, load_symmetry

EMBED_FIELDS = 8  # scalar maps of V
D4_ORDER = 8  # numbers of a D4-regular field
VARIANTS = ("sen", "none")
PRESETS = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class GenericPreset:
    """Sizes of one preset. Widths are in channels; equivariant layers use ``width // |H|`` regular fields."""

    name: str
    sen_channels: int  # plain SEN width
    dilations: tuple[int, ...]  # dilated 3x3 convolutions between the stride-2 stem and head
    enc_channels: int  # encoder width (the "none" encoder too)
    trans_channels: int  # transition width (the "none" MLP too)
    latent_fields: int  # D4-regular latent fields: the latent has 8 x this many numbers


PRESET_SIZES = {
    "smoke": GenericPreset("smoke", 8, (2,), 16, 32, 2),
    "cpu": GenericPreset("cpu", 16, (2, 4, 8), 64, 128, 4),
    "paper": GenericPreset("paper", 32, (2, 4, 8, 16), 256, 512, 4),
}


# --------------------------------------------------------------------------- window plans


def _window(shape: tuple[int, int], kind: str) -> tuple[int, int, int]:
    """(kernel, stride, padding) of a centred stride-2 conv or pool on both axes; ValueError if they differ."""
    pick = down_conv if kind == "conv" else down_pool
    plans = {pick(n) for n in shape}
    if len(plans) != 1:
        raise ValueError(
            f"a {shape[0]}x{shape[1]} map needs different stride-2 windows on its two axes (one side even, one odd) "
            "to stay centred; make the observation square (SEN-Custom-v0 size=...) or give both sides the same parity"
        )
    return plans.pop()


def _apply(shape: tuple[int, int], kernel: int, stride: int, padding: int, dilation: int = 1) -> tuple[int, int]:
    out = []
    for n in shape:
        if not is_centred(n, kernel, stride, padding, dilation):
            raise ValueError(f"a {kernel}x{kernel}/{stride} window on a side of {n} is off-centre")
        out.append((n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1)
    return out[0], out[1]


def _encoder_plan(shape: tuple[int, int]):
    """Per stage: (conv window, pool window or None); two stride-2 stages, then a stride-1 one."""
    plan = []
    for stage in range(3):
        conv = _window(shape, "conv") if stage < 2 and min(shape) > 1 else (3, 1, 1)
        shape = _apply(shape, *conv)
        pool = _window(shape, "pool") if min(shape) > 1 else None
        if pool is not None:
            shape = _apply(shape, *pool)
        plan.append((conv, pool))
    return plan


# --------------------------------------------------------------------------- networks


class PlainEmbedding(nn.Module):
    """S: stride-2 stem, dilated 3x3 convolutions, stride-2 head; ``[B, C, H, W]`` -> ``[B, 8, h, w]``."""

    def __init__(self, shape: tuple[int, int], in_channels: int, channels: int, dilations):
        super().__init__()
        k, s, p = _window(shape, "conv")
        mid = _apply(shape, k, s, p)
        layers = [nn.Conv2d(in_channels, channels, k, s, p), nn.BatchNorm2d(channels), nn.ReLU()]
        for d in dilations:
            _apply(mid, 3, 1, d, d)
            layers += [nn.Conv2d(channels, channels, 3, 1, d, d), nn.BatchNorm2d(channels), nn.ReLU()]
        k, s, p = _window(mid, "conv")
        layers.append(nn.Conv2d(channels, EMBED_FIELDS, k, s, p))
        self.net = nn.Sequential(*layers)
        self.out_shape = _apply(mid, k, s, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _subgroup(symmetry: Symmetry):
    """escnn's gspace of the declared group, and its elements as our D4 ``(f, k)`` in escnn's order."""
    gs, include, _ = d4_gspace().restrict(symmetry.plane_group.escnn_id)
    elements = [tuple(int(x) for x in include(e).to("int")) for e in gs.fibergroup.elements]
    if sorted(elements) != sorted(symmetry.elements):
        raise RuntimeError(f"escnn's subgroup {symmetry.plane_group.escnn_id} is not {symmetry.name}: {elements}")
    return gs, elements


def _latent_type(symmetry: Symmetry, fields: int):
    """``fields`` D4-regular fields restricted to the declared group (so D4's permutations act on z)."""
    enn = import_escnn().nn
    d4 = d4_gspace()
    return enn.FieldType(d4, fields * [d4.regular_repr]).restrict(symmetry.plane_group.escnn_id)


def equivariant_encoder(symmetry: Symmetry, shape: tuple[int, int], channels: int, latent_fields: int) -> EscnnNet:
    """E: 8 scalar maps -> ``latent_fields`` D4-regular fields restricted to the group, exactly equivariant."""
    enn = import_escnn().nn
    gs, elements = _subgroup(symmetry)
    fields = max(1, channels // len(elements))
    t_in = enn.FieldType(gs, EMBED_FIELDS * [gs.trivial_repr])
    t_hid = enn.FieldType(gs, fields * [gs.regular_repr])
    t_out = _latent_type(symmetry, latent_fields)
    layers, t = [], t_in
    for conv, pool in _encoder_plan(shape):
        k, s, p = conv
        layers += [r2conv(t, t_hid, k, stride=s, padding=p), enn.InnerBatchNorm(t_hid), enn.ReLU(t_hid)]
        if pool is not None:
            layers.append(enn.PointwiseMaxPool2D(t_hid, pool[0], stride=pool[1], padding=pool[2]))
        t = t_hid
    layers.append(enn.PointwiseAdaptiveMaxPool2D(t_hid, 1))
    for _ in range(2):
        layers += [r2conv(t_hid, t_hid, 1), enn.InnerBatchNorm(t_hid), enn.ReLU(t_hid)]
    layers.append(r2conv(t_hid, t_out, 1))
    return EscnnNet(enn.SequentialModule(*layers), flatten=True)


class PlainEncoder(nn.Module):
    """The ``"none"`` E: the same layout with plain convolutions."""

    def __init__(self, shape: tuple[int, int], channels: int, latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = EMBED_FIELDS
        for conv, pool in _encoder_plan(shape):
            layers += [nn.Conv2d(c, channels, *conv), nn.BatchNorm2d(channels), nn.ReLU()]
            if pool is not None:
                layers.append(nn.MaxPool2d(*pool))
            c = channels
        layers.append(nn.AdaptiveMaxPool2d(1))
        for _ in range(2):
            layers += [nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()]
        layers += [nn.Conv2d(channels, latent_dim, 1), nn.Flatten(1)]
        self.net = nn.Sequential(*layers)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v)


class ActionLift(nn.Module):
    """``a -> lift(a)``, ``lift(a)[j, h] = (rho_A(h^-1) a)_j`` over the group's elements in escnn's order.

    Field-major ``[B, n * |H|]``: ``n`` regular fields, one per action coordinate (one-hot
    class for ``Discrete``). Matrix rules are precomputed as one ``[|H|, d, d]`` buffer;
    permutations and functions are applied element by element.
    """

    def __init__(self, symmetry: Symmetry, action_space: gym.Space, elements: list[tuple[int, int]]):
        super().__init__()
        self.symmetry = symmetry
        self.inverses = [d4_inverse(h) for h in elements]
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.n = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.start = int(action_space.start) if self.discrete else 0
        if symmetry.action_kind == "matrix":
            eye = np.eye(self.n)
            mats = np.stack([np.asarray(symmetry.act_on_action(h, eye)).T for h in self.inverses])  # rho(h^-1)
            self.register_buffer("matrices", torch.as_tensor(mats, dtype=torch.float32), persistent=False)
        else:
            self.matrices = None

    @property
    def size(self) -> int:
        return self.n * len(self.inverses)

    def forward(self, a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if self.matrices is not None:
            lifted = torch.einsum("hij,bj->bih", self.matrices.to(dtype), a.to(dtype).flatten(1))
            return lifted.flatten(1)
        cols = []
        for h in self.inverses:
            if self.symmetry.action_kind == "permutation":
                moved = self.symmetry.act_on_action(h, a.long() - self.start)
            else:  # a function of numpy arrays
                moved = torch.as_tensor(np.asarray(self.symmetry.act_on_action(h, a.cpu().numpy())), device=a.device)
                moved = moved - self.start if self.discrete else moved
            if self.discrete:
                moved = nn.functional.one_hot(moved.long(), self.n)
            cols.append(moved.to(dtype).flatten(1))
        return torch.stack(cols, dim=-1).flatten(1)  # [B, n, |H|] field-major


class EquivariantTransition(nn.Module):
    """T(z, a) -> delta z: escnn linear layers on ``[z, lift(a)]``."""

    def __init__(self, symmetry: Symmetry, action_space: gym.Space, channels: int, latent_fields: int):
        super().__init__()
        escnn = import_escnn()
        enn = escnn.nn
        gs, elements = _subgroup(symmetry)
        group = gs.fibergroup
        gs0 = escnn.gspaces.no_base_space(group)
        self.lift = ActionLift(symmetry, action_space, elements)
        latent = list(_latent_type(symmetry, latent_fields).representations)
        t_in = enn.FieldType(gs0, latent + self.lift.n * [group.regular_representation])
        t_hid = enn.FieldType(gs0, max(1, channels // len(elements)) * [group.regular_representation])
        t_out = enn.FieldType(gs0, latent)
        self.mlp = EscnnNet(
            enn.SequentialModule(
                linear(t_in, t_hid), enn.ReLU(t_hid), linear(t_hid, t_hid), enn.ReLU(t_hid), linear(t_hid, t_out)
            )
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([z.flatten(1), self.lift(a, z.dtype)], dim=1))


class PlainTransition(nn.Module):
    """The ``"none"`` T: an MLP on ``[z, a]`` (one-hot for ``Discrete``) with a LayerNorm."""

    def __init__(self, action_space: gym.Space, latent_dim: int, hidden: int):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.n = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.start = int(action_space.start) if self.discrete else 0
        self.net = nn.Sequential(
            nn.Linear(latent_dim + self.n, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, latent_dim),
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        a = nn.functional.one_hot(a.long() - self.start, self.n) if self.discrete else a.flatten(1)
        return self.net(torch.cat([z.flatten(1), a.to(z.dtype)], dim=1))


# --------------------------------------------------------------------------- build


def observation_shape(obs_space, symmetry: Symmetry) -> tuple[int, int, int]:
    """``(H, W, C)`` of a uint8 picture observation, checked against the group."""
    shape = tuple(getattr(obs_space, "shape", ()) or ())
    if len(shape) != 3 or min(shape[:2]) < 8:
        raise ValueError(f"generic SEN networks take pictures (H, W, C) with H, W >= 8, got shape {shape}")
    if symmetry.plane_group.has_quarter_turns and shape[0] != shape[1]:
        raise ValueError(
            f"{symmetry.name} turns pictures by quarter turns, which needs square ones; got {shape[0]}x{shape[1]}"
        )
    return shape  # type: ignore[return-value]


def build(variant: str, preset: str, obs_space, action_space, symmetry: str | Symmetry | None = None) -> DomainNets:
    """The world-model networks of ``variant`` (``"sen"``, ``"none"``) at ``preset`` size for a declared symmetry.

    :param symmetry: the :class:`~sen_rl.symmetry.Symmetry` or its ``"module:NAME"`` path (what
        checkpoints store); the group and the action rule come from it.
    """
    check_choice("variant", variant, VARIANTS)
    cfg = PRESET_SIZES[check_choice("preset", preset, PRESETS)]
    if symmetry is None:
        raise ValueError("generic SEN networks need the declared symmetry: build(..., symmetry='module:NAME')")
    sym = load_symmetry(symmetry)
    sym.check_actions(action_space)
    h, w, c = observation_shape(obs_space, sym)
    embedding = PlainEmbedding((h, w), c, cfg.sen_channels, cfg.dilations)
    latent_dim = D4_ORDER * cfg.latent_fields
    if variant == "sen":
        encoder: nn.Module = equivariant_encoder(sym, embedding.out_shape, cfg.enc_channels, cfg.latent_fields)
        transition: nn.Module = EquivariantTransition(sym, action_space, cfg.trans_channels, cfg.latent_fields)
    else:
        encoder = PlainEncoder(embedding.out_shape, cfg.enc_channels, latent_dim)
        transition = PlainTransition(action_space, latent_dim, cfg.trans_channels)
    equivariant = variant == "sen"
    return DomainNets(
        embedding=embedding,
        encoder=encoder,
        transition=transition,
        predicts_delta=True,
        object_axis=None,
        equivariant={"embedding": False, "encoder": equivariant, "transition": equivariant},
        info={
            "domain": "custom",
            "variant": variant,
            "preset": preset,
            "group": sym.name,
            "elements": list(sym.elements),
            "input_shape": (h, w, c),
            "embedding_shape": (EMBED_FIELDS, *embedding.out_shape),
            "latent_shape": (latent_dim,),
            "latent_fields": (cfg.latent_fields, D4_ORDER),
            "sizes": asdict(cfg),
        },
    )
