"""Teapot networks (SEN-Teapot-v0): group SO(3), tested with the cube's 24 rotations.

Pipeline (see :mod:`sen_rl.nets.base`)::

    image [B, 1, 64, 64] --S--> v [B, 3, 3] --E = identity--> z = v --T(z, a)--> next z [B, 3, 3]

Conventions (as in :mod:`sen_rl.groups`, which implements every action below: a group
element ``g`` is a 3x3 rotation matrix):

- **latent / embedding** ``z = v``: ``[B, 3, 3]`` for both variants. For ``"sen"`` it is a
  rotation matrix whose **columns** are ``[u', v', w]``, the Gram-Schmidt frame of the two
  3-vectors ``u, v`` that the CNN predicts (``w = u' x v'``). Columns, not rows, because
  then ``det z = (u' x v') . w = |w|^2 = +1`` *and* Gram-Schmidt is equivariant:
  ``GS(g u, g v) = g GS(u, v)``, so ``rho_V(g) z = rho_Z(g) z = g @ z`` is the action of
  rotating the two predicted vectors. (Rows would also have det +1, but ``g`` would then
  act on the right.) The env's state (body frame -> world frame) uses the same layout: its
  columns are the teapot's axes in world coordinates, and it also steps as ``a @ z``.
- ``act_on_embedding(g, v) = act_on_latent(g, z) = g @ z`` (:func:`sen_rl.groups.so3_act_on_matrix`;
  ``g`` ``[3, 3]`` or batched ``[B, 3, 3]``, numpy or torch). For ``"none"`` the 9 numbers
  are read as a ``[3, 3]`` matrix only so that EE(S) and DIE can be computed; nothing makes
  them a rotation.
- **actions**: ``"small"`` (``Discrete(6)``, int64 ``[B]``) index ``i`` is the rotation by
  :data:`~sen_rl.groups.TEAPOT_SMALL_ANGLE` about :data:`~sen_rl.groups.TEAPOT_SMALL_AXES`
  ``[i]``; ``"large"`` (``Box(-pi, pi, (3,))``, float ``[B, 3]``) a rotation vector.
  ``rho_A(g) a = g a g^-1``, which is ``R(theta, g n)``: small actions are permuted (axis
  ``n_i`` goes to ``g n_i``, :func:`sen_rl.groups.teapot_act_on_small_action`), rotation
  vectors are rotated, ``a -> g a`` (:func:`sen_rl.groups.teapot_act_on_large_action`).
- **"sen" transition** "MatMul": ``T(z, a) = A(a) @ z`` with ``A(a)`` the action's rotation
  matrix (a fixed buffer of :data:`~sen_rl.groups.TEAPOT_SMALL_ROTATIONS`, or Rodrigues'
  formula in torch, :func:`sen_rl.groups.axis_angle_to_matrix`); it predicts the
  next latent itself (``predicts_delta=False``) and is exactly equivariant:
  ``T(g z, g a g^-1) = g A(a) g^-1 g z = g T(z, a)``. It has no parameters.
- **"none" embedding**: the same CNN with 9 unconstrained outputs and, C-SWM style,
  BatchNorm after each convolution (``none_batch_norm``; on in the domain table's
  ``net_kwargs``). Without it the latents of all frames start (and stay) within about 1e-3
  of each other: the hinge's gradient vanishes there and the loss sits at 1.0
  (docs/RESULTS_findings.md, Teapot).
- **"none" transition**: a C-SWM MLP on ``[z (9), A(a) (9)]`` predicting ``delta z [B, 3, 3]``
  (``predicts_delta=True``). It sees the action as its rotation matrix ``A(a)``, as MatMul
  does (``none_action="matrix"``, the domain table's): from the rotation vector it must also
  learn Rodrigues' formula, and after 40 epochs on large actions it ranked less than half as
  well (validation Hits@1 15% against 38%).

Gram-Schmidt (:func:`gram_schmidt`) is differentiable and never returns NaN: norms are
clamped, ``v`` is projected out of ``u'`` twice (orthogonal to rounding), and when ``u`` is
(nearly) zero or ``v`` (nearly) parallel to ``u`` a fixed fallback direction is used. No
continuous map from all pairs ``(u, v)`` to SO(3) exists, so the fallback is a jump and is
not equivariant; it only fires on a set of tiny measure.

``DomainNets.equivariant``: the encoder is the identity (trivially equivariant) in every
variant, the embedding never is (it is learned), the transition for ``"sen"`` and ``"hvae"``
(both MatMul), not for ``"none"``.

Variants: ``"sen"`` ("Ours (MatMul)"), ``"none"`` and ``"hvae"``, the Homeomorphic VAE baseline
(:mod:`sen_rl.nets.hvae`: its embedding is the VAE's posterior mean in ``"sen"``'s layout, its
transition the same MatMul, and it trains with its own ELBO). There is no ``"full"`` variant: the
action of 3D rotations on rendered pixels is unknown (it is not a pixel operation), so
there is no equivariant CNN on pixels to build.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sen_rl.groups import TEAPOT_ACTION_MODES, TEAPOT_SMALL_ROTATIONS, axis_angle_to_matrix
from sen_rl.nets.base import PRESETS, VARIANTS, DomainNets, check_choice, check_positive_int

TEAPOT_VARIANTS = ("sen", "none", "hvae")
N_SMALL_ACTIONS = len(TEAPOT_SMALL_ROTATIONS)

#: Sizes per preset. ``channels``: the 4 stride-2 conv layers of S (4x4 kernels, padding 1,
#: each halves the map); ``fc``: width of S's 2 hidden FC layers (3 FC layers in all);
#: ``hidden``: width of the "none" transition MLP (the domain table's ``none_hidden=512`` replaces it:
#: checkpoints written before it keep these widths).
PRESET_SIZES: dict[str, dict] = {
    "smoke": {"channels": (4, 4, 8, 8), "fc": 32, "hidden": 32},
    "cpu": {"channels": (16, 16, 32, 32), "fc": 128, "hidden": 128},
    "paper": {"channels": (32, 32, 64, 64), "fc": 256, "hidden": 512},
}

LATENT_LAYOUT = (
    "z: [B, 3, 3]; 'sen': a rotation matrix with columns [u', v', u' x v'] (Gram-Schmidt of the CNN's u, v); "
    "'none': 9 unconstrained numbers read as a 3x3 matrix; rho_Z(g) z = g @ z"
)


# --------------------------------------------------------------------------- Gram-Schmidt


def _safe_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``|x|`` over the last axis, clamped below at ``eps`` (finite gradient everywhere)."""
    return x.square().sum(-1, keepdim=True).clamp_min(eps * eps).sqrt()


def gram_schmidt(u: torch.Tensor, v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Two vectors ``[..., 3]`` -> a rotation matrix ``[..., 3, 3]`` with columns ``[u', v', u' x v']``.

    ``u' = u / |u|``, ``v' = normalize(v - (u'.v) u')``. Numerically safe and differentiable:
    if ``|u| <= eps`` then ``u' = e_x``; if the part of ``v`` orthogonal to ``u'`` is shorter than
    ``sqrt(machine eps) * |v| + eps`` (``v`` parallel to ``u``, or zero), the basis vector least
    aligned with ``u'`` replaces ``v``. The result is orthonormal with det +1 to rounding.
    Equivariant away from those fallbacks: ``gram_schmidt(g u, g v) = g gram_schmidt(u, v)``.
    """
    u, v = torch.broadcast_tensors(u, v)
    tol = float(torch.finfo(u.dtype).eps) ** 0.5
    basis = torch.eye(3, dtype=u.dtype, device=u.device)

    u_sq = u.square().sum(-1, keepdim=True)
    u_ok = u_sq > eps * eps
    u_hat = torch.where(u_ok, u / _safe_norm(u, eps), basis[0].expand_as(u))
    u_hat = u_hat / _safe_norm(u_hat, eps)  # exact unit length to rounding

    def perp(x: torch.Tensor) -> torch.Tensor:
        x = x - (x * u_hat).sum(-1, keepdim=True) * u_hat
        return x - (x * u_hat).sum(-1, keepdim=True) * u_hat  # twice is enough

    v_perp = perp(v)
    v_ok = v_perp.square().sum(-1, keepdim=True) > (tol * _safe_norm(v, eps) + eps).square()
    # fallback: the basis vector least aligned with u' (its orthogonal part has length >= sqrt(2/3))
    helper = basis[u_hat.detach().abs().argmin(-1)]
    v_dir = torch.where(v_ok, v_perp, perp(helper))
    v_hat = v_dir / _safe_norm(v_dir, eps)
    w_hat = torch.linalg.cross(u_hat, v_hat, dim=-1)
    return torch.stack([u_hat, v_hat, w_hat], dim=-1)


# --------------------------------------------------------------------------- embedding S


class DownsamplingCNN(nn.Module):
    """4 conv layers (4x4 kernels, stride 2, padding 1, ReLU), then 3 FC layers (ReLU between).

    ``[B, C, H, W]`` -> ``[B, n_out]``; a 64x64 map ends as 4x4 before the FC layers.
    ``batch_norm``: BatchNorm after each convolution (the "none" embedding's).
    """

    def __init__(self, in_shape: tuple[int, int, int], channels, fc: int, n_out: int, batch_norm: bool = False):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for ch in channels:
            norm = [nn.BatchNorm2d(ch)] if batch_norm else []
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), *norm, nn.ReLU()]
            c = ch
            h, w = h // 2, w // 2
            if h < 1 or w < 1:
                raise ValueError(f"observations of {in_shape[1]}x{in_shape[2]} are too small for 4 stride-2 convs")
        self.conv = nn.Sequential(*layers)
        self.feature_shape = (c, h, w)
        self.fc = nn.Sequential(nn.Linear(c * h * w, fc), nn.ReLU(), nn.Linear(fc, fc), nn.ReLU(), nn.Linear(fc, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class SENEmbedding(nn.Module):
    """The "sen" embedding: CNN -> ``u, v`` (6 numbers) -> Gram-Schmidt -> ``z [B, 3, 3]`` in SO(3)."""

    def __init__(self, in_shape, channels, fc: int, eps: float = 1e-8):
        super().__init__()
        self.cnn = DownsamplingCNN(in_shape, channels, fc, 6)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uv = self.cnn(x)
        return gram_schmidt(uv[:, :3], uv[:, 3:], self.eps)


class PlainEmbedding(nn.Module):
    """The "none" embedding: the same CNN with 9 unconstrained outputs, shaped ``[B, 3, 3]`` (row-major).

    ``batch_norm``: BatchNorm after each convolution, which keeps the frames' latents apart at
    the start of training (see the module docstring).
    """

    def __init__(self, in_shape, channels, fc: int, batch_norm: bool = False):
        super().__init__()
        self.cnn = DownsamplingCNN(in_shape, channels, fc, 9, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x).reshape(-1, 3, 3)


# --------------------------------------------------------------------------- transitions T


class MatMulTransition(nn.Module):
    """``T(z, a) = A(a) @ z``: the next latent itself (no parameters, exactly equivariant)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = check_choice("actions", mode, TEAPOT_ACTION_MODES)
        self.register_buffer("small_rotations", torch.tensor(TEAPOT_SMALL_ROTATIONS), persistent=False)

    def action_matrix(self, a: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``A(a)``: ``[..., 3, 3]`` rotation matrices of the actions."""
        if self.mode == "small":
            out = self.small_rotations[a.long()]
        else:
            out = axis_angle_to_matrix(a.to(torch.float64 if dtype is None else dtype))
        return out if dtype is None else out.to(dtype)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.action_matrix(a, z.dtype) @ z

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class MLPTransition(nn.Module):
    """The "none" transition: C-SWM's MLP on ``[z, action]`` -> delta z ``[B, 3, 3]``.

    Linear, ReLU, Linear, LayerNorm, ReLU, Linear.

    ``action_input`` (:data:`NONE_ACTION_INPUTS`): ``"matrix"``, the action's rotation matrix
    ``A(a)`` flattened ``[9]``, the MatMul transition's own input; ``"vector"``, the one-hot
    ``[6]`` (small) or the rotation vector ``[3]`` (large).
    """

    def __init__(self, mode: str, hidden: int, action_input: str = "vector"):
        super().__init__()
        self.mode = check_choice("actions", mode, TEAPOT_ACTION_MODES)
        self.action_input = check_choice("none_action", action_input, NONE_ACTION_INPUTS)
        self.matrix = MatMulTransition(mode) if action_input == "matrix" else None
        n_act = 9 if self.matrix is not None else N_SMALL_ACTIONS if mode == "small" else 3
        self.net = nn.Sequential(
            nn.Linear(9 + n_act, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 9),
        )

    def encode_action(self, a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if self.matrix is not None:
            return self.matrix.action_matrix(a, dtype).reshape(a.shape[0], 9)
        if self.mode == "small":
            return F.one_hot(a.long(), N_SMALL_ACTIONS).to(dtype)
        return a.to(dtype)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z.reshape(z.shape[0], 9), self.encode_action(a, z.dtype)], dim=-1)
        return self.net(h).reshape(z.shape)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, action_input={self.action_input!r}"


# --------------------------------------------------------------------------- build


def action_mode(action_space) -> str:
    """``"small"`` for ``Discrete(6)``, ``"large"`` for a ``Box`` of shape ``(3,)``."""
    n = getattr(action_space, "n", None)
    if n is not None:
        if int(n) != N_SMALL_ACTIONS:
            raise ValueError(f"Teapot's discrete actions are Discrete(6) (+-x, +-y, +-z), got {action_space}")
        return "small"
    if tuple(getattr(action_space, "shape", ()) or ()) == (3,):
        return "large"
    raise ValueError(f"Teapot actions are Discrete(6) or Box(-pi, pi, (3,)) rotation vectors, got {action_space}")


#: what the "none" embedding outputs: "free" (9 unconstrained numbers) or "rotation" (the SEN's
#: own Gram-Schmidt head, a rotation matrix, so the latent cannot shrink to a point)
NONE_LATENTS = ("free", "rotation")
#: how the "none" transition sees the action: its rotation matrix, or the env's own encoding
NONE_ACTION_INPUTS = ("matrix", "vector")


def build(
    variant: str,
    preset: str,
    obs_space,
    action_space,
    none_latent: str = "free",
    none_batch_norm: bool = False,
    none_action: str = "vector",
    none_hidden: int | None = None,
) -> DomainNets:
    """Networks of SEN-Teapot-v0; see the module docstring for the conventions.

    ``none_latent`` (:data:`NONE_LATENTS`), ``none_batch_norm`` (BatchNorm in the free latent's
    CNN) and ``none_action`` (:data:`NONE_ACTION_INPUTS`) apply to ``"none"`` only. The
    baseline is ``none_batch_norm=True, none_action="matrix", none_hidden=512``, set in the domain table
    (``sen_rl.domains``), so checkpoints store it; these defaults are the networks of the
    "none" checkpoints written before (stored without the keywords), which collapsed to a
    constant latent (docs/RESULTS_findings.md, Teapot). ``none_hidden`` replaces the preset's
    width of the "none" transition MLP (the ``cpu`` preset's 128 ranked 10-11 points lower in HH@1).
    """
    check_choice("variant", variant, VARIANTS)
    if none_hidden is not None:
        check_positive_int("Teapot's none_hidden (the none transition's width)", none_hidden)
    check_choice("none_latent", none_latent, NONE_LATENTS)
    check_choice("none_action", none_action, NONE_ACTION_INPUTS)
    if variant == "full":
        raise ValueError(
            "Teapot has no 'full' variant: how 3D rotations act on the rendered pixels is unknown "
            "(no pixel operation), so no equivariant pixel CNN exists; choose one of " + ", ".join(TEAPOT_VARIANTS)
        )
    check_choice("variant", variant, TEAPOT_VARIANTS)
    check_choice("preset", preset, PRESETS)
    sizes = dict(PRESET_SIZES[preset])
    if none_hidden is not None:
        sizes["hidden"] = none_hidden
    if len(obs_space.shape) != 3:
        raise ValueError(f"Teapot observations are [H, W, C] images, got shape {obs_space.shape}")
    height, width, channels = (int(s) for s in obs_space.shape)
    in_shape = (channels, height, width)
    mode = action_mode(action_space)
    if variant == "hvae":
        return _build_hvae(preset, in_shape, mode)

    if variant == "sen":
        embedding: nn.Module = SENEmbedding(in_shape, sizes["channels"], sizes["fc"])
        transition: nn.Module = MatMulTransition(mode)
    else:
        if none_latent == "rotation":
            embedding = SENEmbedding(in_shape, sizes["channels"], sizes["fc"])
        else:
            embedding = PlainEmbedding(in_shape, sizes["channels"], sizes["fc"], batch_norm=bool(none_batch_norm))
        transition = MLPTransition(mode, sizes["hidden"], action_input=none_action)
    equivariant = variant == "sen"

    return DomainNets(
        embedding=embedding,
        encoder=nn.Identity(),
        transition=transition,
        predicts_delta=not equivariant,
        object_axis=None,
        equivariant={"embedding": False, "encoder": True, "transition": equivariant},
        info={
            "domain": "teapot",
            "variant": variant,
            "preset": preset,
            "group": "SO(3) (tested with the cube's 24 rotations)",
            "actions": mode,
            "input_shape": in_shape,
            "embedding_shape": (3, 3),
            "latent_shape": (3, 3),
            "latent_layout": LATENT_LAYOUT,
            "action_encoding": (
                "MatMul: A(a) @ z"
                if equivariant
                else (
                    "rotation matrix A(a) [9]"
                    if none_action == "matrix"
                    else "one-hot [6]"
                    if mode == "small"
                    else "rotation vector [3]"
                )
                + " concatenated with z (9)"
            ),
            "sizes": dict(sizes),
        },
    )


def _build_hvae(preset: str, in_shape: tuple[int, int, int], mode: str) -> DomainNets:
    """The Homeomorphic VAE baseline: posterior-mean embedding, MatMul dynamics, the ELBO as its objective."""
    from sen_rl.nets.hvae import HVAEEncoder, HVAEObjective  # hvae builds on this module's CNN: import late

    sizes = PRESET_SIZES[preset]
    return DomainNets(
        embedding=HVAEEncoder(in_shape, sizes["channels"], sizes["fc"]),
        encoder=nn.Identity(),
        transition=MatMulTransition(mode),
        predicts_delta=False,
        object_axis=None,
        equivariant={"embedding": False, "encoder": True, "transition": True},
        objective=HVAEObjective(in_shape, sizes["channels"], sizes["fc"]),
        info={
            "domain": "teapot",
            "variant": "hvae",
            "preset": preset,
            "group": "SO(3) (tested with the cube's 24 rotations)",
            "actions": mode,
            "input_shape": in_shape,
            "embedding_shape": (3, 3),
            "latent_shape": (3, 3),
            "latent_layout": "z: [B, 3, 3], the HVAE posterior's mean rotation, columns [u', v', u' x v']; "
            "rho_Z(g) z = g @ z",
            "action_encoding": "MatMul: A(a) @ z, the true action's rotation (the HVAE learns no dynamics)",
            "objective": (
                "negative ELBO: Gaussian pixels (one learned scale), uniform prior on SO(3), "
                "Lie-algebra Gaussian posterior"
            ),
            "sizes": dict(sizes),
        },
    )
