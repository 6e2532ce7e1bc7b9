"""The SEN world model: embedding S, encoder E, transition T, the contrastive loss, save/load.

    z = E(S(pixels))                       encode
    z' = z + T(z, a)   (or T(z, a))        predict
    loss = mean d(z', E(S(next pixels))) + mean max(0, hinge - d(z, z_neg))

with ``d(x, y) = 0.5 / sigma^2 * sum (x - y)^2`` (averaged over objects for object-factored
latents) and ``z_neg`` the latent of another sample of the batch. This follows the
authors' code (and C-SWM), not the paper's formula: squared distances, and the negative
compared with the current latent rather than the prediction.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sen_rl.domains import PRESETS, VARIANTS, Domain, check_choice, domain_of
from sen_rl.fileio import atomic_write
from sen_rl.nets.base import DomainNets, export_module, to_float_image

CHECKPOINT_FORMAT = "sen-rl-checkpoint"

ObsFormat = Literal["env", "sb3"]
"""How observations are laid out: ``"env"``, uint8 ``[..., H, W, C]`` as the env emits them;
``"sb3"``, float ``[..., C, H, W]`` in [0, 1], what stable-baselines3 hands a features
extractor (after ``VecTransposeImage`` and its division by 255)."""
OBS_FORMATS: tuple[str, ...] = ("env", "sb3")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a world model (stored inside every checkpoint)."""

    env_id: str
    variant: str = "sen"
    preset: str = "cpu"
    env_kwargs: dict = field(default_factory=dict)
    hinge: float = 1.0
    sigma: float = 0.5
    #: extra keywords for the domain's network builder; None: the domain's ``net_kwargs``
    net_kwargs: dict | None = None


def _domain(env_id: str) -> Domain:
    try:
        return domain_of(env_id)
    except ValueError as exc:
        raise ValueError(f"no world model for env {env_id!r}: {exc}") from None


class ModelSymmetry:
    """The env's symmetry (same elements) extended with the group's action on the model's spaces.

    The rules on states and MDP actions are the env's; those on the embedding and the latent
    are the domain's (:class:`sen_rl.domains.Domain`), all of them written in :mod:`sen_rl.groups`.
    """

    def __init__(self, env_symmetry, domain: Domain):
        self._env = env_symmetry
        self._domain = domain
        self.name: str = env_symmetry.name
        self.elements: tuple = env_symmetry.elements

    def act_on_state(self, g, state):
        return self._env.act_on_state(g, state)

    def act_on_action(self, g, action):
        return self._env.act_on_action(g, action)

    def act_on_latent(self, g, z):
        """rho_Z(g) z, for a torch tensor or numpy array ``[B, ...]``."""
        if isinstance(z, np.ndarray):
            return self._domain.act_on_latent(g, torch.from_numpy(z)).numpy()
        return self._domain.act_on_latent(g, z)

    def act_on_embedding(self, g, v):
        """rho_V(g) v on the output of the symmetric embedding."""
        if isinstance(v, np.ndarray):
            return self._domain.act_on_embedding(g, torch.from_numpy(v)).numpy()
        return self._domain.act_on_embedding(g, v)


class WorldModel(nn.Module):
    """A latent world model of one SEN domain: ``encode``, ``predict``, ``rollout``, ``loss``.

    Single or batched, by one rule: an input whose shape is exactly one observation, latent or
    action (``obs_shape``, ``latent_shape``, the action space's shape) is a single sample and
    gives an output without a batch axis; one more leading axis is a batch of that size.
    ``rollout`` takes a sequence of actions, ``[K, *action]`` for a single latent and
    ``[B, K, *action]`` for a batch. Inputs may be numpy arrays or tensors; outputs are tensors
    on the model's device.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        domain = _domain(config.env_id)
        check_choice("variant", config.variant, VARIANTS)
        domain.check_variant(config.variant)
        check_choice("preset", config.preset, PRESETS)
        self.config = config
        self.domain = domain
        env = self.make_env()
        try:
            obs_space, action_space, env_symmetry = env.observation_space, env.action_space, env.unwrapped.symmetry
        finally:
            env.close()
        self.obs_shape: tuple[int, ...] = tuple(obs_space.shape)
        self.action_space: gym.Space = action_space
        if config.net_kwargs is None:  # stored resolved, so a checkpoint never depends on later defaults
            config.net_kwargs = domain.net_kwargs_for(config.env_kwargs)
        nets: DomainNets = domain.nets_module().build(
            config.variant, config.preset, obs_space, action_space, **config.net_kwargs
        )
        self.embedding, self.encoder, self.transition = nets.embedding, nets.encoder, nets.transition
        self.objective = nets.objective  # None: the contrastive loss below
        self.nets = nets
        self.latent_shape: tuple[int, ...] = tuple(int(n) for n in nets.info["latent_shape"])
        self.symmetry = ModelSymmetry(env_symmetry, domain)

    # -- what the model works on --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def latent_space(self) -> gym.spaces.Box:
        """The latent ``z`` as a float32 Box (unbounded); the group acts on it by ``model.symmetry.act_on_latent``."""
        return gym.spaces.Box(-np.inf, np.inf, self.latent_shape, np.float32)

    def make_env(self, **overrides: Any) -> gym.Env:
        """The environment the model was trained on (``gym.make`` with its env kwargs, ``overrides`` on top)."""
        return self.domain.make_env(**{**self.config.env_kwargs, **overrides})

    # -- inputs ---------------------------------------------------------------------------
    def _obs_tensor(self, obs, obs_format: ObsFormat = "env") -> tuple[torch.Tensor, bool]:
        """A batch of observations as float ``[B, C, H, W]`` in [0, 1], and whether the input was single."""
        check_choice("obs_format", obs_format, OBS_FORMATS)
        x = obs if torch.is_tensor(obs) else torch.as_tensor(np.asarray(obs))
        h, w, c = self.obs_shape
        shape = (h, w, c) if obs_format == "env" else (c, h, w)
        single = tuple(x.shape) == shape
        if single:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            layout = "uint8 [B, H, W, C]" if obs_format == "env" else "float [B, C, H, W] in [0, 1]"
            other = "obs_format='sb3' for float channels-first input" if obs_format == "env" else "obs_format='env'"
            raise ValueError(
                f"obs_format={obs_format!r} observations are {layout} = [B, {', '.join(map(str, shape))}] "
                f"(or one without B), as {self.config.env_id} {self.config.env_kwargs or ''} gives them; "
                f"got shape {tuple(x.shape)} (or pass {other})"
            )
        if obs_format == "env":
            if x.dtype != torch.uint8:
                raise ValueError(
                    f"obs_format='env' observations must be uint8 pixels (0..255), got {x.dtype}; "
                    "for float channels-first input in [0, 1] (stable-baselines3) pass obs_format='sb3'"
                )
            return to_float_image(x.to(self.device, non_blocking=True)), single
        if not x.is_floating_point():
            raise ValueError(
                f"obs_format='sb3' observations must be floats in [0, 1], got {x.dtype}; "
                "for the env's uint8 frames pass obs_format='env'"
            )
        return x.to(self.device, torch.float32, non_blocking=True), single

    def _latent_tensor(self, z) -> tuple[torch.Tensor, bool]:
        z = z if torch.is_tensor(z) else torch.as_tensor(np.asarray(z, dtype=np.float32))
        single = tuple(z.shape) == self.latent_shape
        if single:
            z = z[None]
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(
                f"latents have shape [B, {', '.join(map(str, self.latent_shape))}] (or one without B), "
                f"got {tuple(z.shape)}"
            )
        return z.to(self.device), single

    def _action_tensor(self, action, lead: tuple[int, ...]) -> torch.Tensor:
        """Actions ``[*lead, *action_shape]`` (int64 for discrete spaces, float32 for boxes)."""
        discrete = isinstance(self.action_space, gym.spaces.Discrete)
        if torch.is_tensor(action):
            a = action
        else:
            a = torch.as_tensor(np.asarray(action) if discrete else np.asarray(action, dtype=np.float32))
        want = (*lead, *(self.action_space.shape or ()))
        if tuple(a.shape) != want:
            raise ValueError(f"actions of {self.action_space} must have shape {want} here, got {tuple(a.shape)}")
        return a.to(self.device, torch.int64 if discrete else torch.float32)

    # -- the model --------------------------------------------------------------------------
    def embed(self, obs, obs_format: ObsFormat = "env") -> torch.Tensor:
        """v = S(pixels), for one observation or a batch (see ``obs_format``)."""
        x, single = self._obs_tensor(obs, obs_format)
        v = self.embedding(x)
        return v[0] if single else v

    def encode(self, obs, obs_format: ObsFormat = "env") -> torch.Tensor:
        """z = E(S(pixels)) for one observation or a batch.

        :param obs: ``obs_format="env"`` (default): uint8 ``[..., H, W, C]`` as the env emits;
            ``"sb3"``: float ``[..., C, H, W]`` in [0, 1], as stable-baselines3 hands a features
            extractor. The rule is the argument, never a guess from the values.
        """
        x, single = self._obs_tensor(obs, obs_format)
        z = self.encoder(self.embedding(x))
        return z[0] if single else z

    def predict(self, z, action) -> torch.Tensor:
        """The next latent after ``action``: ``z [*latent]`` with one action, or ``[B, *latent]`` with ``[B, ...]``."""
        zt, single = self._latent_tensor(z)
        a = self._action_tensor(action, () if single else (zt.shape[0],))
        out = self._step(zt, a[None] if single else a)
        return out[0] if single else out

    def _step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        out = self.transition(z, a)
        return z + out if self.nets.predicts_delta else out

    def rollout(self, z, actions) -> torch.Tensor:
        """Latents after each of ``actions``: ``[K, *latent]`` from one latent and ``[K, ...]`` actions,
        ``[B, K, *latent]`` from ``[B, *latent]`` and ``[B, K, ...]``."""
        zt, single = self._latent_tensor(z)
        a = actions if torch.is_tensor(actions) else np.asarray(actions)
        k = a.shape[0] if single else (a.shape[1] if a.ndim > 1 else -1)
        a = self._action_tensor(a, (k,) if single else (zt.shape[0], k))
        if single:
            a = a[None]
        out = []
        for i in range(a.shape[1]):
            zt = self._step(zt, a[:, i])
            out.append(zt)
        traj = torch.stack(out, dim=1)
        return traj[0] if single else traj

    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d(x, y) per sample; averaged over objects for object-factored latents."""
        diff = (x - y).pow(2)
        norm = 0.5 / self.config.sigma**2
        if self.nets.object_axis is not None:
            diff = diff.movedim(self.nets.object_axis, 1)
            return norm * diff.reshape(diff.shape[0], diff.shape[1], -1).sum(-1).mean(1)
        return norm * diff.reshape(diff.shape[0], -1).sum(-1)

    def loss(
        self,
        obs,
        action,
        next_obs,
        generator: torch.Generator | None = None,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The contrastive loss on a batch of transitions (uint8 env observations), with its parts.

        A variant with its own objective (``DomainNets.objective``, e.g. Teapot's ``"hvae"`` ELBO)
        returns that instead, computed on the same batch. ``gather`` (data-parallel training,
        :mod:`sen_rl.distributed`) turns this process's rows of latents into the whole batch's, so
        that the negatives and the mean are those of the global batch.
        """
        both = [o if torch.is_tensor(o) else torch.as_tensor(np.asarray(o)) for o in (obs, next_obs)]
        x, _ = self._obs_tensor(torch.cat(both))
        if self.objective is not None:
            x_obs, x_next = x.chunk(2)
            return self.objective(self, x_obs, self._action_tensor(action, (x_obs.shape[0],)), x_next, generator)
        z_all = self.encoder(self.embedding(x))
        z, z_next = z_all.chunk(2)
        pred = self._step(z, self._action_tensor(action, (z.shape[0],)))
        if gather is not None:
            z, z_next, pred = gather(z), gather(z_next), gather(pred)
        perm = torch.randperm(z.shape[0], generator=generator).to(z.device)
        positive = self.energy(pred, z_next).mean()
        negative = torch.relu(self.config.hinge - self.energy(z, z[perm])).mean()
        return {
            "loss": positive + negative,
            "positive": positive,
            "negative": negative,
            "latent_norm": z.detach().reshape(z.shape[0], -1).norm(dim=1).mean(),
        }

    # -- persistence ------------------------------------------------------------------------
    def saved_state(self) -> dict[str, torch.Tensor]:
        """The weights to save: the train-mode state dict, on the CPU.

        In eval mode escnn adds each equivariant layer's expanded filter as a buffer, derived from
        its weights: 92% of a paper-size Reacher checkpoint (289 MB instead of 23 MB). ``eval()``
        rebuilds them from the weights, so a checkpoint leaves them out.
        """
        was_training = self.training
        self.train()
        state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        self.train(was_training)
        return state

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load a saved state into this model (in its current mode).

        Checkpoints of sen-rl 0.1.0 before this change hold escnn's expanded filters too (the
        eval-mode state dict): entries whose keys escnn's eval mode adds are dropped, any other
        unknown key is refused.
        """
        was_training = self.training
        self.train()
        keys = set(self.state_dict())
        extra = set(state) - keys
        if extra:
            self.eval()
            unknown = extra - set(self.state_dict())
            self.train()
            if unknown:
                raise RuntimeError(f"unexpected key(s) in the state: {sorted(unknown)[:5]}")
        self.load_state_dict({k: v for k, v in state.items() if k in keys})
        self.train(was_training)

    def save(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write a checkpoint atomically: config + weights (+ ``extra`` entries).

        Every entry must be plain data (tensors, numbers, strings, lists, dicts): checkpoints
        are read back with ``torch.load(weights_only=True)``, which runs no pickled code.
        """
        import sen_rl

        payload = {
            "format": CHECKPOINT_FORMAT,
            "sen_rl_version": sen_rl.__version__,
            "config": asdict(self.config),
            "model_state": self.saved_state(),
            **extra,
        }
        with atomic_write(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    def export(self) -> WorldModel:
        """A copy for inference whose networks are plain torch (escnn modules exported), in eval mode."""
        model = copy.copy(self)
        model._modules = dict(self._modules)
        self_training = self.training
        self.eval()
        model.embedding = export_module(self.embedding)
        model.encoder = export_module(self.encoder)
        model.transition = export_module(self.transition)
        self.train(self_training)
        return model.eval()


def build_model(
    env_id: str, variant: str = "sen", preset: str = "cpu", env_kwargs: dict | None = None, **config: Any
) -> WorldModel:
    """A fresh world model for ``env_id``; ``env_kwargs`` default to what the preset implies.

    :param env_id: a sen-rl env id (``sen_rl.ENV_IDS``).
    :param variant: ``"sen"``, ``"none"``, ``"full"`` or ``"hvae"`` (``sen_rl.domains.VARIANTS``;
        each domain's ``variants`` says which it has).
    :param preset: ``"smoke"``, ``"cpu"`` or ``"paper"`` network sizes.
    :param env_kwargs: ``gym.make`` keywords of the env the model reads (e.g. ``{"size": 64}``).
    :param config: further :class:`ModelConfig` fields (``hinge``, ``sigma``, ``net_kwargs``).
    """
    if env_kwargs is None:
        env_kwargs = _domain(env_id).env_kwargs(preset if preset in PRESETS else None)
    return WorldModel(ModelConfig(env_id=env_id, variant=variant, preset=preset, env_kwargs=env_kwargs, **config))


try:  # numpy >= 1.26; numpy.core warns from numpy 2 on
    from numpy._core.multiarray import _reconstruct
except ImportError:  # older numpy 1.x
    from numpy.core.multiarray import _reconstruct

# numpy's legacy RNG state (np.random.get_state) inside older training checkpoints is an
# ndarray; these rebuild arrays and dtypes only, so allowing them runs no foreign code. A pickle
# names the array builder by the module of the numpy that wrote it (numpy.core in 1.x,
# numpy._core in 2.x): both names are allowed, so a checkpoint loads under either.
_NUMPY_GLOBALS = [(_reconstruct, f"{module}.multiarray._reconstruct") for module in ("numpy.core", "numpy._core")]
_NUMPY_GLOBALS += [np.ndarray, np.dtype] + [
    type(np.dtype(t)) for t in ("uint32", "int64", "float64", "float32", "uint8", "bool")
]


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint file, with errors that name the file and the problem.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain data only, so a
    crafted pickle in a shared checkpoint cannot run code; such a file is refused.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        globals_refused = [line for line in str(exc).splitlines() if "GLOBAL" in line]
        if globals_refused:  # torch's weights-only loader met a Python object it does not allow
            raise ValueError(
                f"{path} holds Python objects other than tensors and plain data; sen-rl does not load them, "
                "because unpickling them could run code from the file. Re-save the model from a trusted "
                f"session with WorldModel.save. ({globals_refused[0].strip()[:200]})"
            ) from None
        raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a sen-rl checkpoint (no format={CHECKPOINT_FORMAT!r})")
    for key in ("config", "model_state"):
        if key not in payload:
            raise ValueError(f"{path} lacks {key!r}; it is corrupt")
    return payload


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu", export: bool = False) -> WorldModel:
    """Rebuild a world model from a checkpoint alone (the config travels inside it), in eval mode.

    :param path: a checkpoint written by ``sen-rl train`` or :meth:`WorldModel.save`.
    :param map_location: device for the weights.
    :param export: return the inference model whose escnn modules are exported to plain torch
        (:meth:`WorldModel.export`): faster forward passes, no training.
    """
    payload = read_checkpoint(path, map_location)
    # checkpoints written before net_kwargs existed were built without any
    model = WorldModel(ModelConfig(**{"net_kwargs": {}, **payload["config"]}))
    try:
        model.load_weights(payload["model_state"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the model its config describes ({exc})") from None
    model.eval()  # escnn expands its filters from the loaded weights, once
    model.to(map_location)
    return model.export() if export else model
