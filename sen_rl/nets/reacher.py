"""Reacher networks: the symmetric embedding CNN, the D4 encoder and the D4 latent transition.

Group: D4 in :mod:`sen_rl.groups`' convention, ``g = (f, k) = r^k m^f`` (reflect ``f`` times
about the world x axis, then ``k`` counter-clockwise quarter turns).

Spaces and actions (all batched torch; implemented in :mod:`sen_rl.groups`):

- pixels ``[B, 6, H, W]``: two stacked RGB frames of a top-down camera, world +x = image
  right, world +y = image *up* (the row index grows with -y);
- embedding V: 8 scalar fields ``[B, 8, H/4, W/4]``; ``rho_V(g)`` flips the rows ``f`` times
  (the world reflection ``(x, y) -> (x, -y)``), then applies ``torch.rot90(v, k, dims=(-2, -1))``
  (a counter-clockwise turn as seen with +y up);
- latent Z: 4 D4-regular fields, ``[B, 32]`` (field-major: ``z.view(B, 4, 8)``); ``rho_Z(g)``
  permutes each field's 8 numbers with the regular representation in escnn's basis order
  (:func:`sen_rl.groups.d4_regular_permutations`);
- actions A: ``rho_A(g) a = -a`` for reflections, ``a`` for rotations ("rho_flip").

escnn correspondence (checked numerically in the tests): with
:func:`sen_rl.nets.escnn_utils.d4_gspace` the escnn element with parameter ``(f, k)``
transforms fields exactly as our ``(f, k)`` (:func:`~sen_rl.nets.escnn_utils.escnn_element`).

Exact equivariance: every strided convolution or pooling keeps its sampling grid centred
on the map (``first centre + last centre == size - 1``), checked when the network is built:
even maps are halved by 4x4 stride-2 convolutions with padding 1 or 2x2 stride-2 pooling,
odd maps by 3x3 stride-2 windows with padding 1. (The authors' 3x3 stride-2 convolutions on
even maps are off-centre by half a pixel, which breaks 6 of the 8 elements.) The plain SEN
uses the same 4x4 stride-2 stems, so an exactly equivariant S is representable at all.
Dilated escnn convolutions get a basis stretched with the dilation
(:func:`~sen_rl.nets.escnn_utils.dilated_basis`):
escnn's default one is numerically broken from dilation 8 on.

Variants: ``"sen"`` (plain CNN S, escnn E and T), ``"none"`` (plain S, plain CNN E, MLP T),
``"full"`` (escnn S on pixels, then the escnn E and T of ``"sen"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from sen_rl.groups import D4_ELEMENTS
from sen_rl.nets.base import CONTRASTIVE_VARIANTS, PRESETS, DomainNets, check_choice, check_positive_int
from sen_rl.nets.escnn_utils import EscnnNet, d4_gspace, dilated_basis, import_escnn, linear, r2conv

N_LATENT_FIELDS = 4  # D4-regular latent fields
REGULAR_SIZE = len(D4_ELEMENTS)  # numbers of a D4-regular field
EMBED_FIELDS = 8  # scalar fields of the embedding V
OBS_CHANNELS = 6  # two stacked RGB frames
ACTION_DIM = 2


@dataclass(frozen=True)
class ReacherPreset:
    """Sizes of one preset. ``*_fields`` count D4-regular fields (8 channels each)."""

    name: str
    min_size: int  # smallest accepted observation side
    max_size: int  # largest accepted observation side
    sen_channels: int  # plain SEN width
    dilations: tuple[int, ...]  # dilated 3x3 convs of the SEN between the two stride-2 stems
    enc_fields: int  # equivariant encoder width (regular fields), all 5 hidden layers
    trans_fields: int  # equivariant transition width (regular fields), 2 hidden layers
    plain_enc_channels: int  # "none" encoder width
    plain_trans_hidden: int  # "none" transition width
    full_fields: int  # "full" SEN width (regular fields)


PRESET_SIZES = {
    "smoke": ReacherPreset("smoke", 8, 64, 8, (2, 4), 4, 4, 16, 32, 2),
    # precision and memory layout are the trainer's choice, from what the machine runs fast (sen_rl.hardware)
    # 64x64 by default (the domain's preset_env_kwargs); 128x128 accepted for the frame-size axis
    # of the budget curve (docs/RESULTS.md, Reacher): same layers, 4x the positions
    "cpu": ReacherPreset("cpu", 64, 128, 16, (2, 4, 8, 16), 16, 32, 64, 128, 2),
    # the authors' published Reacher sizes (scripts/reacher.sl of their code)
    "paper": ReacherPreset("paper", 128, 128, 32, (2, 4, 8, 16, 32), 181, 181, 512, 512, 6),
}


# --------------------------------------------------------------------------- sampling grids


def is_centred(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> bool:
    """Whether a conv/pool window grid is symmetric about the map centre (D4-exact resampling)."""
    span = dilation * (kernel - 1) + 1
    n_out = (size + 2 * padding - span) // stride + 1
    first = -padding + (span - 1) / 2
    return n_out >= 1 and 2 * first + stride * (n_out - 1) == size - 1


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    if not is_centred(size, kernel, stride, padding, dilation):
        raise RuntimeError(
            f"a {kernel}x{kernel} window with stride {stride}, padding {padding} on a {size}x{size} "
            "map is off-centre and would break exact D4 equivariance"
        )
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def down_conv(size: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of a centred stride-2 convolution on a ``size`` map."""
    return (4, 2, 1) if size % 2 == 0 else (3, 2, 1)


def down_pool(size: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of a centred stride-2 max-pool on a ``size`` map."""
    return (2, 2, 0) if size % 2 == 0 else (3, 2, 1)


# --------------------------------------------------------------------------- embeddings S


class PlainEmbedding(nn.Module):
    """The SEN: stride-2 stem, dilated 3x3 convs, stride-2 head; unconstrained.

    ``[B, 6, H, W]`` -> ``[B, 8, H/4, W/4]``.
    """

    def __init__(self, size: int, channels: int, dilations):
        super().__init__()
        k, s, p = down_conv(size)
        mid = _out_size(size, k, s, p)
        layers = [nn.Conv2d(OBS_CHANNELS, channels, k, s, p), nn.BatchNorm2d(channels), nn.ReLU()]
        for d in dilations:
            layers += [nn.Conv2d(channels, channels, 3, 1, d, d), nn.BatchNorm2d(channels), nn.ReLU()]
        k, s, p = down_conv(mid)
        layers += [nn.Conv2d(channels, EMBED_FIELDS, k, s, p)]
        self.net = nn.Sequential(*layers)
        self.out_size = _out_size(mid, k, s, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def equivariant_embedding(size: int, fields: int, dilations) -> EscnnNet:
    """The "full" baseline's S: a D4-equivariant CNN on pixels with the SEN's layout.

    6 trivial fields -> regular fields -> ... -> 8 trivial fields of size ``H/4``.
    """
    enn = import_escnn().nn
    gs = d4_gspace()
    t_in = enn.FieldType(gs, OBS_CHANNELS * [gs.trivial_repr])
    t_hid = enn.FieldType(gs, fields * [gs.regular_repr])
    t_out = enn.FieldType(gs, EMBED_FIELDS * [gs.trivial_repr])
    k, s, p = down_conv(size)
    n = _out_size(size, k, s, p)
    layers = [r2conv(t_in, t_hid, k, stride=s, padding=p), enn.InnerBatchNorm(t_hid), enn.ReLU(t_hid)]
    for d in dilations:
        _out_size(n, 3, 1, d, d)
        layers += [
            r2conv(t_hid, t_hid, 3, padding=d, dilation=d, **dilated_basis(d)),
            enn.InnerBatchNorm(t_hid),
            enn.ReLU(t_hid),
        ]
    k, s, p = down_conv(n)
    _out_size(n, k, s, p)
    layers.append(r2conv(t_hid, t_out, k, stride=s, padding=p))
    return EscnnNet(enn.SequentialModule(*layers))


# --------------------------------------------------------------------------- encoders E


def _encoder_plan(size: int) -> list[tuple[tuple[int, int, int], tuple[int, int, int] | None]]:
    """Per stage: (conv kernel/stride/padding, pool kernel/stride/padding or None).

    Like the authors' encoder: two stride-2 conv stages and a stride-1 one, each followed by
    a stride-2 max-pool while the map is larger than 1x1, all with centred grids.
    """
    plan = []
    n = size
    for stage in range(3):
        conv = down_conv(n) if stage < 2 and n > 1 else (3, 1, 1)
        n = _out_size(n, *conv)
        pool = down_pool(n) if n > 1 else None
        if pool is not None:
            n = _out_size(n, *pool)
        plan.append((conv, pool))
    return plan


def equivariant_encoder(size: int, fields: int, in_regular: bool = False) -> EscnnNet:
    """E: 8 scalar fields ``[B, 8, n, n]`` -> 4 D4-regular fields ``[B, 32]``, exactly equivariant.

    3 stages of R2Conv + InnerBatchNorm + ReLU + max-pool, a global spatial max-pool (keeps
    the regular fields; no group pooling), then two hidden 1x1 layers and a 1x1 output.
    """
    enn = import_escnn().nn
    gs = d4_gspace()
    t_in = enn.FieldType(gs, EMBED_FIELDS * [gs.regular_repr if in_regular else gs.trivial_repr])
    t_hid = enn.FieldType(gs, fields * [gs.regular_repr])
    t_out = enn.FieldType(gs, N_LATENT_FIELDS * [gs.regular_repr])
    layers = []
    t = t_in
    for conv, pool in _encoder_plan(size):
        k, s, p = conv
        layers += [r2conv(t, t_hid, k, stride=s, padding=p), enn.InnerBatchNorm(t_hid), enn.ReLU(t_hid)]
        if pool is not None:
            k, s, p = pool
            layers.append(enn.PointwiseMaxPool2D(t_hid, k, stride=s, padding=p))
        t = t_hid
    layers.append(enn.PointwiseAdaptiveMaxPool2D(t_hid, 1))
    for _ in range(2):
        layers += [r2conv(t_hid, t_hid, 1), enn.InnerBatchNorm(t_hid), enn.ReLU(t_hid)]
    layers.append(r2conv(t_hid, t_out, 1))
    return EscnnNet(enn.SequentialModule(*layers), flatten=True)


class PlainEncoder(nn.Module):
    """The "none" E: the same layout with plain convolutions, then 1x1 convs to 32 numbers."""

    def __init__(self, size: int, channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = EMBED_FIELDS
        for conv, pool in _encoder_plan(size):
            layers += [nn.Conv2d(c, channels, *conv), nn.BatchNorm2d(channels), nn.ReLU()]
            if pool is not None:
                layers.append(nn.MaxPool2d(pool[0], pool[1], pool[2]))
            c = channels
        layers.append(nn.AdaptiveMaxPool2d(1))
        for _ in range(2):
            layers += [nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()]
        layers += [nn.Conv2d(channels, N_LATENT_FIELDS * REGULAR_SIZE, 1), nn.Flatten(1)]
        self.net = nn.Sequential(*layers)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v)


# --------------------------------------------------------------------------- transitions T


class EquivariantTransition(nn.Module):
    """T(z, a) -> delta z: escnn linear layers on [4 regular fields, 2 flip-sign irreps]."""

    def __init__(self, fields: int):
        super().__init__()
        escnn = import_escnn()
        enn = escnn.nn
        group = d4_gspace().fibergroup
        gs0 = escnn.gspaces.no_base_space(group)
        flip = group.irrep(1, 0)  # +1 on rotations, -1 on reflections
        t_in = enn.FieldType(gs0, N_LATENT_FIELDS * [group.regular_representation] + ACTION_DIM * [flip])
        t_hid = enn.FieldType(gs0, fields * [group.regular_representation])
        t_out = enn.FieldType(gs0, N_LATENT_FIELDS * [group.regular_representation])
        self.mlp = EscnnNet(
            enn.SequentialModule(
                linear(t_in, t_hid),
                enn.ReLU(t_hid),
                linear(t_hid, t_hid),
                enn.ReLU(t_hid),
                linear(t_hid, t_out),
            )
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([z.flatten(1), a.to(z.dtype).flatten(1)], dim=1))


class PlainTransition(nn.Module):
    """The "none" T: the authors' MLP on [z, a] with a LayerNorm."""

    def __init__(self, hidden: int):
        super().__init__()
        dim = N_LATENT_FIELDS * REGULAR_SIZE
        self.net = nn.Sequential(
            nn.Linear(dim + ACTION_DIM, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z.flatten(1), a.to(z.dtype).flatten(1)], dim=1))


# --------------------------------------------------------------------------- build


def input_size(preset: str, obs_space) -> int:
    """The observation side ``H`` (= ``W``), validated against the preset."""
    cfg = PRESET_SIZES[check_choice("preset", preset, PRESETS)]
    shape = tuple(getattr(obs_space, "shape", ()) or ())
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] != OBS_CHANNELS:
        raise ValueError(
            f"Reacher networks take square (S, S, {OBS_CHANNELS}) observations (two stacked RGB frames), "
            f"got shape {shape}"
        )
    size = int(shape[0])
    if not cfg.min_size <= size <= cfg.max_size or size % 4:
        want = str(cfg.min_size) if cfg.min_size == cfg.max_size else f"{cfg.min_size}..{cfg.max_size}"
        raise ValueError(
            f"preset {preset!r} takes {want} x {want} observations (a multiple of 4), got {size} x {size}; "
            f"make the environment with the matching image size or choose another preset"
        )
    return size


#: widths of a preset that ``build`` lets a run override (``--net-kwargs``), to vary network size alone;
#: the plain ones too, so that a baseline can be given the equivariant model's channel counts
WIDTH_KEYS = ("sen_channels", "enc_fields", "trans_fields", "plain_enc_channels", "plain_trans_hidden", "full_fields")


#: networks of ``sen`` or ``full`` that ``build(plain_parts=...)`` can swap for the ``none`` ones
PLAIN_PARTS = ("encoder", "transition")


def build(
    variant: str, preset: str, obs_space, action_space, plain_parts: tuple[str, ...] | list[str] = (), **widths: int
) -> DomainNets:
    """The Reacher world-model networks of ``variant`` ("sen", "none", "full") at ``preset`` size.

    ``widths`` (keys of :data:`WIDTH_KEYS`) replace the preset's: e.g. ``enc_fields=32`` doubles
    the `cpu` encoder, to measure what network size alone buys (docs/RESULTS_findings.md, Reacher).
    ``plain_parts`` (of :data:`PLAIN_PARTS`) gives ``sen`` or ``full`` the plain encoder or
    transition of ``none`` in place of the equivariant one, an ablation that tells which
    equivariant network a result depends on (both latents are 32 numbers).
    """
    check_choice("variant", variant, CONTRASTIVE_VARIANTS)
    if isinstance(plain_parts, str):
        raise ValueError(f"plain_parts is a list of network names, e.g. [{plain_parts!r}]; got a string")
    plain = set(plain_parts)
    for part in plain:
        check_choice("Reacher plain part", part, PLAIN_PARTS)
    if plain and variant == "none":
        raise ValueError("plain_parts swaps equivariant networks for plain ones; variant 'none' has none to swap")
    size = input_size(preset, obs_space)
    if tuple(getattr(action_space, "shape", ()) or ()) != (ACTION_DIM,):
        raise ValueError(f"Reacher networks take Box actions of shape (2,), got {action_space!r}")
    for key, value in widths.items():
        check_choice("Reacher network keyword", key, WIDTH_KEYS)
        check_positive_int(f"Reacher network width {key}", value)
    cfg = replace(PRESET_SIZES[preset], **widths)

    if variant == "full":
        embedding: nn.Module = equivariant_embedding(size, cfg.full_fields, cfg.dilations)
        k, s, p = down_conv(size)
        mid = _out_size(size, k, s, p)
        embed_size = _out_size(mid, *down_conv(mid))
    else:
        embedding = PlainEmbedding(size, cfg.sen_channels, cfg.dilations)
        embed_size = embedding.out_size
    if variant == "none":
        plain = set(PLAIN_PARTS)
    encoder: nn.Module = (
        PlainEncoder(embed_size, cfg.plain_enc_channels)
        if "encoder" in plain
        else equivariant_encoder(embed_size, cfg.enc_fields)
    )
    transition: nn.Module = (
        PlainTransition(cfg.plain_trans_hidden) if "transition" in plain else EquivariantTransition(cfg.trans_fields)
    )

    return DomainNets(
        embedding=embedding,
        encoder=encoder,
        transition=transition,
        predicts_delta=True,
        object_axis=None,
        equivariant={
            "embedding": variant == "full",
            "encoder": "encoder" not in plain,
            "transition": "transition" not in plain,
        },
        info={
            "domain": "reacher",
            "variant": variant,
            "preset": preset,
            "group": "D4",
            "input_size": size,
            "embedding_shape": (EMBED_FIELDS, embed_size, embed_size),
            "latent_shape": (N_LATENT_FIELDS * REGULAR_SIZE,),
            "latent_fields": (N_LATENT_FIELDS, REGULAR_SIZE),
            "escnn_gspace": "flipRot2dOnR2(N=4, axis=0.0); our (f, k) = escnn element ((f, k), 'int')",
            "sizes": asdict(cfg),
            **({"plain_parts": sorted(plain)} if plain and variant != "none" else {}),
        },
    )
