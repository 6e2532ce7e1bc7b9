"""Networks for the grid domains (SEN-Shapes-v0, SEN-Cubes-v0): group C4 x S_K.

Pipeline (see :mod:`sen_rl.nets.base`)::

    image [B, 3, H, W] --S--> v [B, K, H, W] (one sigmoid map per object)
                        --E--> z [B, K, 4 * c] --T(z, a)--> delta z [B, K, 4 * c]

Conventions (C4 element ``k`` = ``k`` counter-clockwise quarter turns; the actions on
every space are implemented in :mod:`sen_rl.groups`):

- **embedding** ``v``: ``rho_V(k) v = torch.rot90(v, k, dims=(-2, -1))``, the same
  direction as ``np.rot90`` on the ``[H, W]`` axes (:func:`sen_rl.groups.c4_act_on_embedding`).
- **latent** ``z``: ``[B, K, 4 * c]``, the flattening of ``[B, K, c, 4]``: per object
  ``c`` C4-regular fields, the rotation index ``r`` is the *last* (fastest) axis, so
  number ``4 * i + r`` is field ``i`` at rotation ``r``.
- **orbit stacking**: the encoder reads the object map ``v`` through its orbit
  ``u_r = rot90(v, r)``, ``r = 0..3``, with one shared MLP. Rotating the input by ``k``
  gives ``u'_r = rot90(v, r + k) = u_{r+k}``, so the stacked axis *shifts down* by ``k``:
  ``rho_Z(k) z = torch.roll(z[..., c, 4], shifts=-k, dims=-1)``, i.e.
  ``(rho_Z(k) z)[i, r] = z[i, (r + k) mod 4]`` (:func:`sen_rl.groups.c4_act_on_latent`).
- **actions**: ``a = object * 4 + d`` becomes a per-object one-hot ``[B, K, 4]`` (one
  regular field of multiplicity 1): object ``a // 4`` gets a 1 at rotation index ``d``.
  A quarter turn maps ``d -> (d - k) mod 4`` (:func:`sen_rl.groups.c4_rotate_grid_action`),
  which moves the 1 from index ``d`` to ``d - k``: exactly ``roll(-k)``, the latent action.
- the latent transition is equivariant to C4 (all layers are circulant :class:`C4Linear`
  layers and rotation-tied LayerNorms) and to permutations of the objects (a C-SWM graph
  network with shared edge / node MLPs and sum aggregation).

Variants: ``"sen"`` (unconstrained CNN S, equivariant E and T), ``"none"`` (the same CNN,
plain C-SWM encoder and transition: nothing is equivariant) and ``"full"`` (S is an
escnn C4-equivariant CNN on pixels, then E and T as in ``"sen"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sen_rl.nets.base import CONTRASTIVE_VARIANTS, PRESETS, DomainNets, check_choice
from sen_rl.nets.escnn_utils import EscnnNet, c4_gspace, import_escnn, r2conv

#: Sizes per preset. ``cnn``: channels of the embedding CNN's hidden layers (for "full":
#: ``cnn // 4`` C4-regular fields, the same number of channels); ``mlp``: width (numbers per
#: object) of the encoder's hidden layers, ``hidden``: of the transition's hidden layers
#: (C4 layers use ``width // 4`` regular fields); ``c``: regular fields per object in z;
#: ``pool``: 2x2 average pooling of the pixels before the CNN (1: none). Pooling in
#: non-overlapping blocks commutes with quarter turns of an even-sized image, so "full"
#: stays exactly equivariant; it cuts the CNN's cost 4x, which the 2-core presets need.
PRESET_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"cnn": 8, "mlp": 32, "hidden": 32, "c": 2, "pool": 2},
    "cpu": {"cnn": 16, "mlp": 128, "hidden": 128, "c": 2, "pool": 2},
    "paper": {"cnn": 32, "mlp": 512, "hidden": 512, "c": 2, "pool": 1},
}

LATENT_LAYOUT = (
    "z: [B, K, 4*c], the flattening of [B, K, c, 4] (K objects, c C4-regular fields, rotation index last); "
    "rho_Z(k) z = roll(z.view(B, K, c, 4), -k, dim=-1)"
)


# --------------------------------------------------------------------------- action encoding


def action_one_hot(a: torch.Tensor, n_objects: int) -> torch.Tensor:
    """Actions ``[B]`` -> ``[B, K, 4]``: object ``a // 4`` gets a 1 at rotation index ``a % 4``."""
    return F.one_hot(a.long(), 4 * n_objects).reshape(*a.shape, n_objects, 4)


# --------------------------------------------------------------------------- C4 layers


class C4Linear(nn.Module):
    """Group convolution over C4 between regular fields (a linear map with circulant blocks).

    Input ``[..., in_mult * 4]`` / output ``[..., out_mult * 4]`` (rotation index last):
    ``out[o, r] = sum_{i, s} W[o, i, (s - r) mod 4] x[i, s] + bias[o]``. It commutes with any
    cyclic shift of the rotation axis.
    """

    def __init__(self, in_mult: int, out_mult: int, bias: bool = True):
        super().__init__()
        self.in_mult, self.out_mult = in_mult, out_mult
        bound = 1.0 / (4 * in_mult) ** 0.5  # nn.Linear's default init for fan_in = 4 * in_mult
        self.weight = nn.Parameter(torch.empty(out_mult, in_mult, 4).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_mult).uniform_(-bound, bound)) if bias else None
        r, s = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
        self.register_buffer("index", (s - r) % 4, persistent=False)

    def dense_weight(self) -> torch.Tensor:
        """The ``[out_mult * 4, in_mult * 4]`` matrix (rows (o, r), columns (i, s))."""
        w = self.weight[:, :, self.index]  # [o, i, r, s]
        return w.permute(0, 2, 1, 3).reshape(4 * self.out_mult, 4 * self.in_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.linear(x, self.dense_weight(), b)

    def extra_repr(self) -> str:
        return f"in_mult={self.in_mult}, out_mult={self.out_mult}, bias={self.bias is not None}"


class C4LayerNorm(nn.Module):
    """LayerNorm over all ``mult * 4`` numbers with affine parameters shared across rotations."""

    def __init__(self, mult: int, eps: float = 1e-5):
        super().__init__()
        self.mult, self.eps = mult, eps
        self.weight = nn.Parameter(torch.ones(mult))
        self.bias = nn.Parameter(torch.zeros(mult))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, (x.shape[-1],), eps=self.eps)
        return x * self.weight.repeat_interleave(4) + self.bias.repeat_interleave(4)


def _c4_linear(n_in: int, n_out: int) -> nn.Module:
    assert n_in % 4 == 0 and n_out % 4 == 0, (n_in, n_out)
    return C4Linear(n_in // 4, n_out // 4)


def _c4_norm(n: int) -> nn.Module:
    return C4LayerNorm(n // 4)


def _mlp(linear, norm, n_in: int, hidden: int, n_out: int, depth: int = 3) -> nn.Sequential:
    """C-SWM's MLP: linear, ReLU, then (linear, norm, ReLU) * (depth - 2), linear."""
    layers: list[nn.Module] = [linear(n_in, hidden), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [linear(hidden, hidden), norm(hidden), nn.ReLU()]
    layers.append(linear(hidden, n_out))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- embeddings S


class ObjectCNN(nn.Module):
    """The SEN: 4 conv 3x3 (padding 1, BN, ReLU), a 1x1 conv to one map per object, sigmoid."""

    def __init__(self, in_channels: int, channels: int, n_objects: int, n_layers: int = 4, pool: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        c_in = in_channels
        for _ in range(n_layers):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c_in = channels
        layers.append(nn.Conv2d(c_in, n_objects, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class CellCNN(nn.Module):
    """A cell-aligned SEN for pictures drawn on a grid of ``cell x cell`` pixel cells (2D Shapes).

    C-SWM's small encoder: one ``cell x cell`` convolution with stride ``cell`` (BN, ReLU), a
    1x1 convolution to one map per object, sigmoid; ``[B, C, H, W] -> [B, K, H/cell, W/cell]``.
    Its weights are unconstrained, but each map entry sees exactly one cell, so on pictures whose
    cells hold quarter-turn-symmetric sprites (2D Shapes) ``S(rot90(x)) = rot90(S(x))`` holds
    exactly, whatever the weights: the reason the paper reports EE(S) = 0.00 on 2D Shapes for
    the CNN baseline and for its SEN alike. A 3x3 stack (:class:`ObjectCNN`) sees neighbouring
    cells; trained on "up" moves only it learns vertically smeared maps that are not
    quarter-turn equivariant (docs/RESULTS_findings.md).
    """

    def __init__(self, in_channels: int, channels: int, n_objects: int, cell: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, cell, stride=cell),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, n_objects, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class C4EquivariantCNN(EscnnNet):
    """The "full" embedding: a C4-equivariant CNN on pixels (escnn), 3 trivial fields -> K trivial maps.

    A lifting 3x3 R2Conv to ``n_regular`` regular fields, ``n_layers - 1`` regular 3x3
    R2Convs (InnerBatchNorm, ReLU after each), a 1x1 R2Conv to ``n_objects`` trivial fields,
    sigmoid. Padding 1 with stride 1 keeps the map size and exact equivariance to quarter
    turns of the pixel grid: ``S(rot90(x, k)) = rot90(S(x), k)``. Inputs and outputs are
    plain tensors; :func:`sen_rl.nets.base.export_module` turns ``self.net`` into plain torch.
    """

    # the R2Convs expand their filters on every call, in eval mode too: this network's
    # checkpoints hold no mode-dependent ``filter`` / ``expanded_bias`` buffers
    cache_filters = False

    def __init__(self, in_channels: int, n_regular: int, n_objects: int, n_layers: int = 4, pool: int = 1):
        enn = import_escnn().nn
        gspace = c4_gspace()
        t_in = enn.FieldType(gspace, in_channels * [gspace.trivial_repr])
        hidden = enn.FieldType(gspace, n_regular * [gspace.regular_repr])
        out_type = enn.FieldType(gspace, n_objects * [gspace.trivial_repr])
        layers: list = []
        for _ in range(n_layers):
            layers += [r2conv(t_in, hidden, 3, padding=1), enn.InnerBatchNorm(hidden), enn.ReLU(hidden)]
            t_in = hidden
        layers.append(r2conv(hidden, out_type, 1))
        super().__init__(enn.SequentialModule(*layers))
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(self.pool(x)))


# --------------------------------------------------------------------------- encoders E


class OrbitEncoder(nn.Module):
    """Equivariant E: orbit-stack each object map, shared MLP per rotation, 3 C4 layers.

    ``v [B, K, H, W]`` -> ``u [B, K, 4, H*W]`` with ``u[:, :, r] = rot90(v, r)``; one shared
    ``Linear(H*W, m)`` + ReLU per rotation gives ``m`` regular fields (computed by rotating
    the weights instead of the maps, see :meth:`orbit_weight`; the tests compare it with
    literal stacking); then C4Linear(m, m),
    C4LayerNorm, ReLU, C4Linear(m, m), C4LayerNorm, ReLU, C4Linear(m, c) -> ``[B, K, 4 * c]``.
    """

    def __init__(self, height: int, width: int, mlp: int, c: int):
        super().__init__()
        if height != width:
            raise ValueError(f"quarter turns need square maps, got {height}x{width}")
        m = mlp // 4
        self.side = height
        self.first = nn.Linear(height * width, m)
        self.rest = nn.Sequential(
            C4Linear(m, m), C4LayerNorm(m), nn.ReLU(), C4Linear(m, m), C4LayerNorm(m), nn.ReLU(), C4Linear(m, c)
        )

    def orbit_weight(self) -> torch.Tensor:
        """The shared first layer read on the orbit, as one ``[4 * m, H*W]`` matrix.

        ``<W, rot90(v, r)> = <rot90(W, -r), v>`` (a rotation permutes pixels), so applying
        ``W`` to every ``rot90(v, r)`` equals applying the stacked ``rot90(W, -r)`` to ``v``
        once, without materialising the four rotated copies of every map. Rows ``(r, j)``.
        """
        m, side = self.first.out_features, self.side
        w = self.first.weight.reshape(m, side, side)
        return torch.cat([torch.rot90(w, -r, dims=(-2, -1)).reshape(m, -1) for r in range(4)])

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = F.linear(v.flatten(-2), self.orbit_weight(), self.first.bias.repeat(4))  # [B, K, 4 * m]
        h = F.relu(h.unflatten(-1, (4, -1)).transpose(-1, -2).flatten(-2))  # [B, K, m * 4]: rotation last
        return self.rest(h)


class PlainEncoder(nn.Module):
    """C-SWM's per-object MLP on the flattened map (Linear/ReLU, 2x Linear/LN/ReLU, Linear)."""

    def __init__(self, height: int, width: int, mlp: int, c: int):
        super().__init__()
        self.net = _mlp(nn.Linear, nn.LayerNorm, height * width, mlp, 4 * c, depth=4)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v.flatten(-2))


# --------------------------------------------------------------------------- transition T


class GraphTransition(nn.Module):
    """C-SWM's graph network over the K objects; ``T(z, a)`` returns delta z ``[B, K, D]``.

    edge ``e_ij = edge_mlp([z_i, z_j])`` for ``i != j``, ``agg_i = sum_j e_ij``,
    ``delta z_i = node_mlp([z_i, action_i, agg_i])`` with ``action_i`` the per-object one-hot
    ``[4]``. With ``edge_action=True`` the edges read the acting object's action too,
    ``e_ij = edge_mlp([z_i, z_j, action_i])``: whether object ``j`` blocks ``i``'s move is then
    a function of one edge, instead of a product the node network must form from the summed
    edges and the action, which C-SWM's layout learns slowly (docs/RESULTS_findings.md,
    "multi-step drift"). With ``equivariant=True`` every layer is a :class:`C4Linear` /
    :class:`C4LayerNorm` (concatenation along the field axis keeps the regular layout), so T
    commutes with :func:`~sen_rl.groups.c4_act_on_latent` /
    :func:`~sen_rl.groups.c4_rotate_grid_action`; sharing across objects and the sum make
    it permutation-equivariant either way.
    """

    def __init__(self, n_objects: int, latent_dim: int, hidden: int, equivariant: bool, edge_action: bool = False):
        super().__init__()
        self.n_objects, self.edge_action = n_objects, edge_action
        linear, norm = (_c4_linear, _c4_norm) if equivariant else (nn.Linear, nn.LayerNorm)
        self.edge_mlp = _mlp(linear, norm, 2 * latent_dim + (4 if edge_action else 0), hidden, hidden)
        self.node_mlp = _mlp(linear, norm, latent_dim + 4 + hidden, hidden, latent_dim)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        n_obj = z.shape[1]
        act = action_one_hot(a, n_obj).to(z.dtype)
        zi = z.unsqueeze(2).expand(-1, -1, n_obj, -1)
        zj = z.unsqueeze(1).expand(-1, n_obj, -1, -1)
        pair = [zi, zj, act.unsqueeze(2).expand(-1, -1, n_obj, -1)] if self.edge_action else [zi, zj]
        edges = self.edge_mlp(torch.cat(pair, dim=-1))  # [B, K, K, hidden]
        off_diag = 1.0 - torch.eye(n_obj, dtype=z.dtype, device=z.device)  # no self-edges
        agg = (edges * off_diag[None, :, :, None]).sum(dim=2)
        return self.node_mlp(torch.cat([z, act, agg], dim=-1))


# --------------------------------------------------------------------------- build


def build(
    variant: str, preset: str, obs_space, action_space, cell: int | None = None, edge_action: bool = False
) -> DomainNets:
    """Networks of the grid domains (C4 x S_K); see the module docstring for the conventions.

    ``cell``: pictures drawn on a grid of ``cell``-pixel cells (2D Shapes): ``"sen"`` and
    ``"none"`` then use the cell-aligned :class:`CellCNN` (maps of one number per cell) instead
    of the 3x3 stack; ``"full"`` keeps its escnn CNN. ``None`` (3D Blocks): the 3x3 stack.
    ``edge_action``: the transition's edges read the action (:class:`GraphTransition`); off in
    checkpoints written before it existed.
    """
    check_choice("variant", variant, CONTRASTIVE_VARIANTS)
    check_choice("preset", preset, PRESETS)
    sizes = PRESET_SIZES[preset]
    height, width, channels = (int(s) for s in obs_space.shape)
    n_actions = int(action_space.n)
    if n_actions % 4:
        raise ValueError(f"grid actions are object * 4 + direction; {n_actions} is not a multiple of 4")
    n_objects = n_actions // 4
    c, pool = sizes["c"], sizes["pool"]
    latent_dim = 4 * c
    if cell is not None and variant != "full":
        pool = int(cell)  # the maps have one entry per cell
    if height != width or height % pool:
        raise ValueError(f"grid images must be square with a side divisible by {pool}; got {height}x{width}")

    if variant == "full":
        embedding: nn.Module = C4EquivariantCNN(channels, max(1, sizes["cnn"] // 4), n_objects, pool=pool)
    elif cell is not None:
        embedding = CellCNN(channels, sizes["cnn"], n_objects, cell=pool)
    else:
        embedding = ObjectCNN(channels, sizes["cnn"], n_objects, pool=pool)
    height, width = height // pool, width // pool
    equivariant = variant != "none"
    enc_cls = OrbitEncoder if equivariant else PlainEncoder
    encoder = enc_cls(height, width, sizes["mlp"], c)
    transition = GraphTransition(n_objects, latent_dim, sizes["hidden"], equivariant, edge_action=edge_action)

    return DomainNets(
        embedding=embedding,
        encoder=encoder,
        transition=transition,
        predicts_delta=True,
        object_axis=1,
        equivariant={"embedding": variant == "full", "encoder": equivariant, "transition": equivariant},
        info={
            "group": "C4 x S_K",
            "latent_layout": LATENT_LAYOUT,
            "latent_shape": (n_objects, latent_dim),
            "n_objects": n_objects,
            "multiplicity": c,
            "embedding_shape": (n_objects, height, width),
            "action_encoding": "one-hot [B, K, 4]: object a//4 gets 1 at rotation index a%4",
            "sizes": dict(sizes),
            "embedding": type(embedding).__name__,
        },
    )
