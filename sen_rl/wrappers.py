"""Gymnasium wrappers that turn pixel observations into SEN latents.

>>> import gymnasium as gym, sen_rl                                  # doctest: +SKIP
>>> env = sen_rl.SENWorldModel(gym.make("SEN-Shapes-v0"), "runs/shapes_sen/best.pt")
>>> z, info = env.reset(seed=0)              # z: float32 latent, inside env.observation_space
>>> z_next = env.predict(z, env.action_space.sample())   # the learned latent dynamics

:class:`SENWorldModel` wraps one env, :class:`SENWorldModelVec` a ``gymnasium.vector`` env
(every sub-env encoded in one forward pass). Both run the checkpoint's model exported to
plain torch, under ``torch.inference_mode``, and take numpy in and give numpy out.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space

from sen_rl.domains import domain_of
from sen_rl.hardware import pick_memory_format
from sen_rl.model import WorldModel, load_model

ModelLike = WorldModel | str | os.PathLike


def _inference_model(model_or_checkpoint: ModelLike, device: str | torch.device | None) -> WorldModel:
    device = torch.device(device or "cpu")
    if isinstance(model_or_checkpoint, WorldModel):
        return model_or_checkpoint.export().to(device)
    if isinstance(model_or_checkpoint, str | os.PathLike):
        return load_model(model_or_checkpoint, map_location=device, export=True)
    raise TypeError(
        "model_or_checkpoint must be a WorldModel or the path of a checkpoint, "
        f"got {type(model_or_checkpoint).__name__}"
    )


def _fastest_layout(model: WorldModel, batch: int) -> torch.memory_format:
    """Leave the embedding's and encoder's weights in the memory layout that encodes ``batch``
    observations fastest on this machine and return it: at batch 1 PyTorch's kernel choice, and so
    the faster layout, differs by layer shape and machine (docs/agents.md, "Agent speed"). Timed
    on the CPU only (a GPU's asynchronous calls would need synchronising); elsewhere the weights
    stay contiguous."""
    if next(model.parameters()).device.type != "cpu":
        return torch.contiguous_format
    blank = np.zeros((batch, *model.obs_shape), dtype=np.uint8)
    with torch.inference_mode():
        return pick_memory_format([model.embedding, model.encoder], lambda: model.encode(blank))


def _env_id(env: gym.Env | VectorEnv) -> str | None:
    spec = getattr(env, "spec", None) or getattr(getattr(env, "unwrapped", None), "spec", None)
    return getattr(spec, "id", None)


def _sen_domain_id(env_id: str) -> str | None:
    """The env id of the sen-rl domain ``env_id`` belongs to (its goal task too); None for other envs."""
    try:
        return domain_of(env_id).env_id
    except ValueError:
        return None


def _check_observations(model: WorldModel, space: gym.Space, env_id: str | None, what: str) -> None:
    """Refuse, at construction, an env whose observations the model was not trained on."""
    mid = model.config.env_id
    if env_id is not None and _sen_domain_id(env_id) not in (None, mid):
        raise ValueError(
            f"the checkpoint's model was trained on {mid}, but the {what} is {env_id}; "
            f"wrap gym.make({mid!r}, ...) or use a checkpoint trained on {env_id}"
        )
    shape = getattr(space, "shape", None)
    dtype = getattr(space, "dtype", None)
    if shape is None or tuple(shape) != tuple(model.obs_shape) or dtype != np.uint8:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in model.config.env_kwargs.items())
        make = f"gym.make({mid!r}{', ' + kwargs if kwargs else ''})"
        raise ValueError(
            f"the {what}'s observations are {space}, but the model reads uint8 {tuple(model.obs_shape)} "
            f"observations; make the env as the model was trained: {make}"
        )


class _LatentDynamics:
    """``encode``/``predict``/``rollout`` on numpy arrays, single or batched (the model's rule)."""

    model: WorldModel

    def encode(self, obs: np.ndarray) -> np.ndarray:
        """Latent(s) of uint8 observation(s) ``[..., H, W, C]`` as the env emits them."""
        obs = np.asarray(obs)
        shape = self.model.obs_shape
        if obs.dtype != np.uint8 or tuple(obs.shape[-len(shape) :]) != shape or obs.ndim > len(shape) + 1:
            raise ValueError(
                f"expected uint8 observations of shape {shape} (or a batch [B, *{shape}]), got {obs.dtype} {obs.shape}"
            )
        with torch.inference_mode():
            return self.model.encode(obs).cpu().numpy().astype(np.float32, copy=False)

    def predict(self, z: np.ndarray, action: Any) -> np.ndarray:
        """The next latent(s) after ``action``: ``z [*latent]`` with one action, or a batch of both."""
        with torch.inference_mode():
            return self.model.predict(np.asarray(z, dtype=np.float32), action).cpu().numpy()

    def rollout(self, z: np.ndarray, actions: Any) -> np.ndarray:
        """Latents after each action: ``[K, *latent]`` from one latent, ``[B, K, *latent]`` from a batch."""
        with torch.inference_mode():
            return self.model.rollout(np.asarray(z, dtype=np.float32), actions).cpu().numpy()


class SENWorldModel(_LatentDynamics, gym.ObservationWrapper):
    """Observations become SEN latents; the learned latent dynamics come with them.

    :param env: an env whose observations are those the model was trained on (a ``SEN-*`` env,
        possibly under other wrappers such as ``TimeLimit`` or ``RecordEpisodeStatistics``).
    :param model_or_checkpoint: a :class:`~sen_rl.model.WorldModel` or a checkpoint path.
    :param device: torch device of the model (default CPU).

    ``observation_space`` is the model's ``latent_space`` (float32); the pixels stay
    available through ``env.render()`` and the wrapped env. ``memory_format`` is the layout
    of the embedding's and encoder's weights, timed at construction (a few hundred encodes).
    """

    def __init__(self, env: gym.Env, model_or_checkpoint: ModelLike, device: str | torch.device | None = None):
        gym.ObservationWrapper.__init__(self, env)
        self.model = _inference_model(model_or_checkpoint, device)
        _check_observations(self.model, env.observation_space, _env_id(env), "env")
        self.memory_format = _fastest_layout(self.model, 1)
        self.observation_space = self.model.latent_space

    def observation(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation)
        if obs.shape != self.model.obs_shape or obs.dtype != np.uint8:
            raise ValueError(
                f"SENWorldModel expected an observation uint8 {self.model.obs_shape}, got {obs.dtype} {obs.shape}"
            )
        return self.encode(obs)


class SENWorldModelVec(_LatentDynamics, VectorObservationWrapper):
    """:class:`SENWorldModel` for a ``gymnasium.vector`` env: all sub-envs encoded in one forward pass."""

    def __init__(self, env: VectorEnv, model_or_checkpoint: ModelLike, device: str | torch.device | None = None):
        VectorObservationWrapper.__init__(self, env)
        self.model = _inference_model(model_or_checkpoint, device)
        _check_observations(self.model, env.single_observation_space, _env_id(env), "vector env")
        self.memory_format = _fastest_layout(self.model, env.num_envs)
        self.single_observation_space = self.model.latent_space
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)

    def observations(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations)
        want = (self.num_envs, *self.model.obs_shape)
        if obs.shape != want or obs.dtype != np.uint8:
            raise ValueError(f"SENWorldModelVec expected observations uint8 {want}, got {obs.dtype} {obs.shape}")
        return self.encode(obs)


__all__ = ["SENWorldModel", "SENWorldModelVec"]
