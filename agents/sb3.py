"""stable-baselines3 on SEN latents: a features extractor that runs a trained SEN encoder.

Two routes to an SB3 agent on SEN latents:

- **through the wrapper** (cheapest): ``SAC("MlpPolicy", SENWorldModel(env, ckpt))``. The
  encoder runs once per env step, frozen, outside the policy; replay buffers hold latents
  (32 floats for Reacher instead of 64x64x6 pixels), and gradient steps never touch the CNN.
- **as a features extractor**: ``SAC("CnnPolicy", env, policy_kwargs=dict(
  features_extractor_class=SENFeaturesExtractor, features_extractor_kwargs=dict(
  checkpoint=ckpt, fine_tune=True)))``. The policy sees pixels and encodes every batch
  itself, so the SEN can be fine-tuned on the RL loss; it costs a forward (and backward)
  pass of the encoder per gradient step. Frozen (``fine_tune=False``) it gives the same
  features as the wrapper at that cost, so pick it only to fine-tune.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sen_rl.model import WorldModel, load_model


class SENFeaturesExtractor(BaseFeaturesExtractor):
    """The SEN encoder of a checkpoint as an SB3 features extractor (latent flattened).

    It receives what SB3 gives a features extractor of an image env: float ``[B, C, H, W]``
    in [0, 1] (``VecTransposeImage`` and SB3's division by 255, the ``CnnPolicy`` defaults).

    :param observation_space: the (channels-first) observation space SB3 passes in.
    :param checkpoint: path of a sen-rl checkpoint (or a :class:`~sen_rl.model.WorldModel`).
    :param fine_tune: train the embedding and encoder with the policy; by default they are
        frozen and run in eval mode (the plain-torch export).
    """

    def __init__(
        self, observation_space: gym.spaces.Box, checkpoint: str | os.PathLike | WorldModel, fine_tune: bool = False
    ):
        if isinstance(checkpoint, WorldModel):
            model = checkpoint if fine_tune else checkpoint.export()
        else:
            model = load_model(checkpoint, export=not fine_tune)
        h, w, c = model.obs_shape
        shape = tuple(getattr(observation_space, "shape", ()) or ())
        if shape != (c, h, w):
            hint = (
                " (channels last: SB3 transposes image observations for its CnnPolicy; with normalize_images=False "
                "or a custom policy, wrap the env in VecTransposeImage)"
                if shape == (h, w, c)
                else f"; make the env as the model was trained: {model.config.env_id} {model.config.env_kwargs}"
            )
            raise ValueError(
                f"SENFeaturesExtractor reads float [B, {c}, {h}, {w}] observations in [0, 1], "
                f"the observation space is {observation_space}{hint}"
            )
        super().__init__(observation_space, int(np.prod(model.latent_shape)))
        self.fine_tune = bool(fine_tune)
        # only the networks that make z are used: the transition stays out of the policy
        self.embedding, self.encoder = model.embedding, model.encoder
        self.latent_shape = model.latent_shape
        if not self.fine_tune:
            for p in self.parameters():
                p.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> SENFeaturesExtractor:
        # a frozen SEN keeps its batch-norm statistics and exported filters whatever SB3 asks
        return super().train(mode and self.fine_tune)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if observations.ndim != 4:
            raise ValueError(f"expected a batch [B, C, H, W] of observations, got shape {tuple(observations.shape)}")
        with torch.set_grad_enabled(self.fine_tune and torch.is_grad_enabled()):
            z = self.encoder(self.embedding(observations.float()))
        return z.reshape(z.shape[0], -1)


__all__ = ["SENFeaturesExtractor"]
