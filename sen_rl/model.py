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
import importlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sen_rl.nets.base import PRESETS, VARIANTS, DomainNets, check_choice, export_module, to_float_image

#: env id -> module under sen_rl.nets that builds its networks
DOMAIN_NETS = {
    "SEN-Shapes-v0": "grid",
    "SEN-Cubes-v0": "grid",
    "SEN-Teapot-v0": "teapot",
    "SEN-Reacher-v0": "reacher",
}

#: env kwargs a preset implies when the user gives none (Reacher's CPU sizes use 64x64 frames)
PRESET_ENV_KWARGS = {
    ("SEN-Reacher-v0", "smoke"): {"size": 64},
    ("SEN-Reacher-v0", "cpu"): {"size": 64},
}

#: keyword arguments of a domain's network builder that depend on the env, not on the preset:
#: 2D Shapes is drawn on 10-pixel cells, which its cell-aligned SEN reads one cell at a time
DEFAULT_NET_KWARGS = {
    "SEN-Shapes-v0": {"cell": 10},
}

CHECKPOINT_FORMAT = "sen-rl-checkpoint"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a world model (stored inside every checkpoint)."""

    env_id: str
    variant: str = "sen"
    preset: str = "cpu"
    env_kwargs: dict = field(default_factory=dict)
    hinge: float = 1.0
    sigma: float = 0.5
    #: extra keywords for the domain's network builder; None: DEFAULT_NET_KWARGS of the env
    net_kwargs: dict | None = None


def _spaces(env_id: str, env_kwargs: dict):
    import sen_rl  # noqa: F401  (registers the ids)

    if env_id not in DOMAIN_NETS:
        raise ValueError(f"no world model for env {env_id!r}; supported: {', '.join(DOMAIN_NETS)}")
    env = gym.make(env_id, **env_kwargs)
    try:
        return env.observation_space, env.action_space, env.unwrapped.symmetry
    finally:
        env.close()


class ModelSymmetry:
    """The env's symmetry (same elements) extended with the group's action on the model's spaces."""

    def __init__(self, env_symmetry, nets: DomainNets):
        self._env = env_symmetry
        self._nets = nets
        self.name = env_symmetry.name
        self.elements = env_symmetry.elements

    def act_on_state(self, g, state):
        return self._env.act_on_state(g, state)

    def act_on_action(self, g, action):
        return self._env.act_on_action(g, action)

    def act_on_latent(self, g, z):
        """rho_Z(g) z, for a torch tensor or numpy array ``[B, ...]``."""
        if isinstance(z, np.ndarray):
            return self._nets.act_on_latent(g, torch.from_numpy(z)).numpy()
        return self._nets.act_on_latent(g, z)

    def act_on_embedding(self, g, v):
        """rho_V(g) v on the output of the symmetric embedding."""
        if isinstance(v, np.ndarray):
            return self._nets.act_on_embedding(g, torch.from_numpy(v)).numpy()
        return self._nets.act_on_embedding(g, v)


class WorldModel(nn.Module):
    """A latent world model of one SEN domain: ``encode``, ``predict``, ``rollout``, ``loss``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        check_choice("variant", config.variant, VARIANTS)
        check_choice("preset", config.preset, PRESETS)
        self.config = config
        obs_space, action_space, env_symmetry = _spaces(config.env_id, config.env_kwargs)
        self.obs_shape = tuple(obs_space.shape)
        self.action_space = action_space
        module = importlib.import_module(f"sen_rl.nets.{DOMAIN_NETS[config.env_id]}")
        if config.net_kwargs is None:  # stored resolved, so a checkpoint never depends on later defaults
            config.net_kwargs = dict(DEFAULT_NET_KWARGS.get(config.env_id, {}))
        nets: DomainNets = module.build(config.variant, config.preset, obs_space, action_space, **config.net_kwargs)
        self.embedding, self.encoder, self.transition = nets.embedding, nets.encoder, nets.transition
        self.nets = nets
        self.symmetry = ModelSymmetry(env_symmetry, nets)

    # -- inputs ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _obs_tensor(self, obs) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs)
        if tuple(x.shape) == self.obs_shape:
            x = x[None]
        if x.ndim != len(self.obs_shape) + 1 or tuple(x.shape[1:]) != self.obs_shape:
            raise ValueError(
                f"observations must be uint8 [B, {', '.join(map(str, self.obs_shape))}] like "
                f"{self.config.env_id} {self.config.env_kwargs or ''} gives them; got shape {tuple(x.shape)}"
            )
        if x.dtype != torch.uint8:
            raise ValueError(f"observations must be uint8 pixels (0..255), got {x.dtype}")
        return x.to(self.device, non_blocking=True)

    def _action_tensor(self, action) -> torch.Tensor:
        if isinstance(self.action_space, gym.spaces.Discrete):
            a = torch.as_tensor(np.asarray(action) if not torch.is_tensor(action) else action)
            return a.to(self.device, torch.int64)
        a = torch.as_tensor(np.asarray(action, dtype=np.float32) if not torch.is_tensor(action) else action)
        return a.to(self.device, torch.float32)

    # -- the model --------------------------------------------------------------------------
    def embed(self, obs) -> torch.Tensor:
        """v = S(pixels)."""
        return self.embedding(to_float_image(self._obs_tensor(obs)))

    def encode(self, obs) -> torch.Tensor:
        """z = E(S(pixels)) for a uint8 batch laid out like the env's observations."""
        return self.encoder(self.embed(obs))

    def predict(self, z: torch.Tensor, action) -> torch.Tensor:
        """The next latent after ``action``."""
        a = self._action_tensor(action)
        out = self.transition(z, a)
        return z + out if self.nets.predicts_delta else out

    def rollout(self, z: torch.Tensor, actions) -> torch.Tensor:
        """Latents after each of ``actions [B, K, ...]``: returns ``[B, K, *latent]``."""
        a = self._action_tensor(actions)
        out = []
        for k in range(a.shape[1]):
            z = self.predict(z, a[:, k])
            out.append(z)
        return torch.stack(out, dim=1)

    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d(x, y) per sample; averaged over objects for object-factored latents."""
        diff = (x - y).pow(2)
        norm = 0.5 / self.config.sigma**2
        if self.nets.object_axis is not None:
            diff = diff.movedim(self.nets.object_axis, 1)
            return norm * diff.reshape(diff.shape[0], diff.shape[1], -1).sum(-1).mean(1)
        return norm * diff.reshape(diff.shape[0], -1).sum(-1)

    def loss(self, obs, action, next_obs, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The contrastive loss on a batch of transitions, with its parts."""
        x = torch.cat([self._obs_tensor(obs), self._obs_tensor(next_obs)])
        z_all = self.encoder(self.embedding(to_float_image(x)))
        z, z_next = z_all.chunk(2)
        pred = self.predict(z, action)
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
    def state_dict_eval(self) -> dict:
        """The state dict in eval mode (escnn's train and eval state dicts differ)."""
        was_training = self.training
        self.eval()
        state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        self.train(was_training)
        return state

    def save(self, path: str | os.PathLike, **extra) -> Path:
        """Write a checkpoint atomically: config + eval-mode weights (+ ``extra`` entries)."""
        import sen_rl

        payload = {
            "format": CHECKPOINT_FORMAT,
            "sen_rl_version": sen_rl.__version__,
            "config": asdict(self.config),
            "model_state": self.state_dict_eval(),
            **extra,
        }
        return atomic_torch_save(payload, path)

    def export(self) -> WorldModel:
        """A copy for inference whose networks are plain torch (escnn modules exported)."""
        model = copy.copy(self)
        model._modules = dict(self._modules)
        self_training = self.training
        self.eval()
        model.embedding = export_module(self.embedding)
        model.encoder = export_module(self.encoder)
        model.transition = export_module(self.transition)
        self.train(self_training)
        return model.eval()


def atomic_torch_save(payload: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def build_model(
    env_id: str, variant: str = "sen", preset: str = "cpu", env_kwargs: dict | None = None, **config
) -> WorldModel:
    """A fresh world model for ``env_id``; ``env_kwargs`` default to what the preset implies."""
    if env_kwargs is None:
        env_kwargs = dict(PRESET_ENV_KWARGS.get((env_id, preset), {}))
    return WorldModel(ModelConfig(env_id=env_id, variant=variant, preset=preset, env_kwargs=env_kwargs, **config))


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and validate a checkpoint file, with errors that name the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a sen-rl checkpoint (no format={CHECKPOINT_FORMAT!r})")
    for key in ("config", "model_state"):
        if key not in payload:
            raise ValueError(f"{path} lacks {key!r}; it is corrupt")
    return payload


def load_model(path: str | os.PathLike, map_location="cpu") -> WorldModel:
    """Rebuild a world model from a checkpoint alone (the config travels inside it)."""
    payload = read_checkpoint(path, map_location)
    # checkpoints written before net_kwargs existed were built without any
    model = WorldModel(ModelConfig(**{"net_kwargs": {}, **payload["config"]}))
    model.eval()
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the model its config describes ({exc})") from None
    return model
