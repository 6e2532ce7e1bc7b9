"""The Homeomorphic VAE (Falorsi et al. 2018): Teapot's ``"hvae"`` baseline, a VAE with an SO(3) latent.

The paper's Table 1 compares the SEN with a VAE whose latent space is the rotation group
itself (Falorsi, de Haan, Davidson, De Cao, Weiler, Forre, Cohen, "Explorations in
Homeomorphic Variational Auto-Encoding", 2018). It learns from observations alone; its
latent dynamics for the metrics are the true action's rotation, ``z -> a z``.

Generative model and posterior::

    prior      R ~ uniform on SO(3) (Haar)
    likelihood x | R ~ N(decoder(R), s^2)    per pixel, intensities in [0, 1], s one learned scale
    posterior  R = R_mean @ exp(hat(v)),  v ~ N(0, diag(sigma^2)) in so(3) = R^3
               R_mean = Gram-Schmidt of two 3-vectors of the encoder CNN (as Teapot's "sen")
               sigma  = 3 more outputs of the same CNN, squashed into (SIGMA_MIN, SIGMA_MAX)

Densities on SO(3) are taken against the Haar measure that ``exp`` maps to the Lebesgue
measure at the identity; in exponential coordinates it is ``2 (1 - cos|v|) / |v|^2 d^3v``,
and SO(3) has volume ``8 pi^2`` in it (the ball ``|v| <= pi`` integrates to ``8 pi^2``), so
the uniform prior has log-density ``-log(8 pi^2)`` (:data:`LOG_UNIFORM_DENSITY`).

The posterior density (Falorsi et al., the reparameterisation density on Lie groups): a
rotation by angle ``theta`` in ``[0, pi]`` about the unit axis ``n`` is ``exp`` of every
``v_k = n (theta + 2 pi k)``, ``k`` in Z, and ``exp`` stretches volume by
``|v|^2 / (2 - 2 cos |v|)``, so

    q(R_mean exp(hat(v)))  =  sum_k N(v_k; 0, diag sigma^2) |v_k|^2 / (2 - 2 cos theta)

(:func:`log_density`; the sum is truncated to ``|k| <= n_wraps``, default 3, which keeps
all but 1e-5 of the mass for every scale up to ``SIGMA_MAX`` = 4 rad, measured by quadrature
in ``tests/test_hvae.py``; the encoder's scales stay below it). The Haar measure is
invariant, so the density does not depend on ``R_mean``, and

    KL(q || uniform) = E_q[log q(R)] + log(8 pi^2)

is estimated by Monte Carlo with the reparameterised sample itself (one sample per image,
unbiased; it is >= 0 only in expectation). No Lie-algebra Gaussian is uniform on SO(3): the
KL has a floor of about 0.0103 nats (isotropic scale about 1.63 rad) and tends to log 2 as
the scale grows (the angle becomes uniform on ``[0, pi]``, where Haar has density ``1 - cos``).
The loss is the negative ELBO per image in nats: the summed Gaussian negative
log-likelihood of the pixels plus that KL, averaged over the batch (a density of continuous
pixels, so it goes below 0). The pixel noise ``s`` is learned (one number, at least one grey
level, 1/255). Why Gaussian: the teapot is grey shading on a grey background (mean pixel
0.37, per-pixel spread across orientations 0.06), and with Bernoulli pixels the whole
reconstruction gain from knowing the orientation is about 90 nats per image; on the ``cpu``
data a Bernoulli HVAE collapsed within 200 steps to the mean image with a constant latent,
even with the KL switched off, while the Gaussian one spreads its latent over SO(3).

The world model reads it as (see :mod:`sen_rl.nets.base`): embedding ``S`` = the encoder,
returning the posterior mean ``R_mean [B, 3, 3]`` in Teapot's latent layout (columns
``[u', v', u' x v']``); encoder ``E`` = identity; transition = Teapot's MatMul ``T(z, a) =
a z`` (no parameters). The decoder lives in the objective (:class:`HVAEObjective`, the
``DomainNets.objective`` that :meth:`sen_rl.model.WorldModel.loss` hands training to), so
it is saved and loaded with the model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sen_rl.groups import axis_angle_to_matrix
from sen_rl.nets.teapot import DownsamplingCNN, gram_schmidt

#: volume of SO(3) in the Haar measure that exp maps to the Lebesgue measure at the identity
HAAR_VOLUME = 8 * math.pi**2
#: log-density of the uniform distribution on SO(3) in that measure
LOG_UNIFORM_DENSITY = -math.log(HAAR_VOLUME)
#: default truncation of the sum over the 2 pi-periodic preimages of exp: |k| <= N_WRAPS
N_WRAPS = 3
#: bounds of the posterior scale (radians): log sigma stays finite, and the truncated sum exact
SIGMA_MIN, SIGMA_MAX = 1e-4, 4.0
#: the scale of a fresh encoder (its raw outputs near 0). Small: a fresh CNN gives nearly the same
#: mean for every teapot (spread about 0.01), and noise above that spread teaches the decoder to
#: ignore its input; at 0.1, one of three cpu seeds collapsed to a constant latent in 100 steps
SIGMA_INIT = 0.01
#: the learned pixel noise of the likelihood starts here and stays above one grey level
PIXEL_NOISE_INIT, PIXEL_NOISE_MIN = 0.1, 1 / 255


# --------------------------------------------------------------------------- the density on SO(3)


def _safe_norm(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x.square().sum(-1).clamp_min(eps * eps).sqrt()


def canonical_angle_axis(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation ``exp(hat(v))`` as an angle ``theta [...]`` in ``[0, pi]`` and a unit axis ``n [..., 3]``.

    ``|v|`` is reduced modulo ``2 pi``; an angle above ``pi`` becomes ``2 pi - theta`` about ``-n``.
    At ``v = 0`` the axis is ``e_x`` (any axis describes the identity).
    """
    r = _safe_norm(v)
    e_x = torch.zeros_like(v)
    e_x[..., 0] = 1
    n = torch.where((r > 1e-12)[..., None], v / r[..., None], e_x)
    t = torch.remainder(r, 2 * math.pi)
    flip = t > math.pi
    theta = torch.where(flip, 2 * math.pi - t, t)
    n = torch.where(flip[..., None], -n, n)
    return theta, n


def log_density(v: torch.Tensor, sigma: torch.Tensor, n_wraps: int = N_WRAPS) -> torch.Tensor:
    """``log q(exp(hat(v)))``: the pushforward of ``N(0, diag sigma^2)`` on so(3) through ``exp``.

    Against the Haar measure of total mass ``8 pi^2`` (see the module docstring), summing the
    preimages ``n (theta + 2 pi k)``, ``|k| <= n_wraps``. ``v`` and ``sigma`` are ``[..., 3]``
    (broadcast); differentiable in both (the reparameterisation gradient).

    The ``k = 0`` Jacobian ``theta^2 / (4 sin^2(theta / 2))`` is written as ``sinc(theta/2)^-2``, finite at
    ``theta = 0``; the other terms have ``|theta + 2 pi k| >= pi``, and their ``1 / sin^2(theta/2)``
    is the true integrable singularity of the density at the identity (clamped away from 0).
    """
    if n_wraps < 0:
        raise ValueError(f"n_wraps must be >= 0, got {n_wraps}")
    theta, n = canonical_angle_axis(v)
    k = torch.arange(-n_wraps, n_wraps + 1, device=v.device, dtype=v.dtype)
    t = theta[..., None] + 2 * math.pi * k  # signed lengths of the preimages along n: [..., 2K+1]
    pre = n[..., None, :] * t[..., None]  # [..., 2K+1, 3]
    sig = sigma[..., None, :]
    log_normal = -0.5 * (pre / sig).square().sum(-1) - torch.log(sig).sum(-1) - 1.5 * math.log(2 * math.pi)
    log_sin2 = 2 * torch.log(torch.sin(theta / 2).clamp_min(1e-30))[..., None]  # log sin^2(theta/2)
    log_jac_wrapped = 2 * torch.log(t.abs().clamp_min(1e-30)) - math.log(4.0) - log_sin2
    log_jac_zero = -2 * torch.log(torch.sinc(theta / (2 * math.pi)))[..., None]  # torch.sinc(x) = sin(pi x)/(pi x)
    log_jac = torch.where(k == 0, log_jac_zero, log_jac_wrapped)
    return torch.logsumexp(log_normal + log_jac, dim=-1)


def kl_to_uniform_mc(v: torch.Tensor, sigma: torch.Tensor, n_wraps: int = N_WRAPS) -> torch.Tensor:
    """One-sample Monte Carlo estimate of ``KL(q || uniform on SO(3))`` per sample ``[...]``.

    ``v`` must be drawn from ``N(0, diag sigma^2)`` (e.g. ``sigma * eps``): the estimate is
    ``log q(exp(hat(v))) - log(1 / (8 pi^2))``, unbiased, non-negative in expectation only.
    """
    return log_density(v, sigma, n_wraps) - LOG_UNIFORM_DENSITY


def sample_posterior(
    mean: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reparameterised sample ``(R_mean exp(hat(v)) [..., 3, 3], v [..., 3])``, ``v = sigma * eps``.

    ``eps ~ N(0, I)`` is drawn on the CPU from ``generator`` (so a seeded run draws the same
    noise on every device) and moved to ``sigma``'s device.
    """
    eps = torch.randn(sigma.shape, generator=generator, dtype=torch.float32)
    v = sigma * eps.to(sigma.device, sigma.dtype)
    return mean @ axis_angle_to_matrix(v), v


# --------------------------------------------------------------------------- networks


class HVAEEncoder(nn.Module):
    """The posterior network: a CNN (Teapot's :class:`~sen_rl.nets.teapot.DownsamplingCNN`) with 9 outputs.

    ``forward(x)`` is the embedding the world model encodes with: the posterior mean
    ``R_mean [B, 3, 3]`` (Gram-Schmidt of outputs 0-2 and 3-5); :meth:`posterior` adds the
    Lie-algebra scales ``sigma [B, 3]``: outputs 6-8 through a sigmoid onto
    ``(SIGMA_MIN, SIGMA_MAX)``, shifted so that an output of 0 gives :data:`SIGMA_INIT`.
    """

    def __init__(self, in_shape, channels, fc: int, eps: float = 1e-8):
        super().__init__()
        self.cnn = DownsamplingCNN(in_shape, channels, fc, 9)
        self.eps = eps
        self.sigma_shift = math.log((SIGMA_MAX - SIGMA_INIT) / (SIGMA_INIT - SIGMA_MIN))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R_mean [B, 3, 3], sigma [B, 3])`` of images ``[B, C, H, W]``."""
        out = self.cnn(x)
        mean = gram_schmidt(out[:, :3], out[:, 3:6], self.eps)
        sigma = SIGMA_MIN + (SIGMA_MAX - SIGMA_MIN) * torch.sigmoid(out[:, 6:] - self.sigma_shift)
        return mean, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]


class HVAEDecoder(nn.Module):
    """Rotation matrix ``[B, 3, 3]`` -> pixel means ``[B, C, H, W]``: the encoder CNN mirrored.

    3 FC layers (9 -> fc -> fc -> the encoder's last feature map), then one 4x4 stride-2
    transposed convolution per encoder convolution (channels in reverse), ReLU between.
    """

    def __init__(self, out_shape: tuple[int, int, int], channels, fc: int):
        super().__init__()
        c_out, height, width = out_shape
        scale = 2 ** len(channels)
        if height % scale or width % scale:
            raise ValueError(
                f"the HVAE decoder doubles the map {len(channels)} times, so images must have sides divisible "
                f"by {scale}; got {height}x{width}"
            )
        channels = tuple(channels)
        self.feature_shape = (channels[-1], height // scale, width // scale)
        self.fc = nn.Sequential(
            nn.Linear(9, fc), nn.ReLU(), nn.Linear(fc, fc), nn.ReLU(), nn.Linear(fc, math.prod(self.feature_shape))
        )
        layers: list[nn.Module] = []
        outs = (*reversed(channels[:-1]), c_out)
        c = channels[-1]
        for i, ch in enumerate(outs):
            layers.append(nn.ConvTranspose2d(c, ch, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
            c = ch
        self.deconv = nn.Sequential(nn.ReLU(), *layers)

    def forward(self, rotation: torch.Tensor) -> torch.Tensor:
        h = self.fc(rotation.reshape(rotation.shape[0], 9))
        return self.deconv(h.reshape(-1, *self.feature_shape))


class HVAEObjective(nn.Module):
    """The negative ELBO, the HVAE's training loss (``DomainNets.objective``); it owns the decoder
    and the likelihood's pixel noise.

    Called by :meth:`sen_rl.model.WorldModel.loss` as ``objective(model, x, action, x_next,
    generator=...)`` with float images ``[B, C, H, W]`` in [0, 1]. The HVAE ignores actions: the
    observations before and after each transition are ``2B`` images of its training set.
    ``generator`` (a CPU ``torch.Generator``) draws the Lie-algebra noise, so a seeded run
    and its validation are reproducible.
    """

    def __init__(self, out_shape: tuple[int, int, int], channels, fc: int, n_wraps: int = N_WRAPS):
        super().__init__()
        self.decoder = HVAEDecoder(out_shape, channels, fc)
        self.log_pixel_noise = nn.Parameter(torch.tensor(math.log(PIXEL_NOISE_INIT)))
        self.n_wraps = int(n_wraps)

    def pixel_noise(self) -> torch.Tensor:
        """The likelihood's pixel standard deviation ``s`` (at least :data:`PIXEL_NOISE_MIN`)."""
        return self.log_pixel_noise.clamp_min(math.log(PIXEL_NOISE_MIN)).exp()

    def forward(
        self,
        model: nn.Module,
        x: torch.Tensor,
        action: torch.Tensor,
        x_next: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        images = torch.cat([x, x_next])
        mean, sigma = model.embedding.posterior(images)
        sample, v = sample_posterior(mean, sigma, generator)
        noise = self.pixel_noise()
        err = (self.decoder(sample).float() - images.float()) / noise
        recon = (0.5 * err.square() + torch.log(noise) + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1).mean()
        kl = kl_to_uniform_mc(v.float(), sigma.float(), self.n_wraps).mean()
        return {
            "loss": recon + kl,
            "recon": recon.detach(),
            "kl": kl.detach(),
            "sigma": sigma.detach().mean(),
            "pixel_noise": noise.detach(),
        }

    def extra_repr(self) -> str:
        return f"n_wraps={self.n_wraps}"
