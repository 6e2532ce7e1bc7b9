"""stable-baselines3 on SEN latents: the wrapper route and the features extractor, frozen or fine-tuned."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

from sen_rl.agents.sb3 import SENFeaturesExtractor
from sen_rl.model import build_model, load_model
from sen_rl.wrappers import SENWorldModel

SIZE = 40  # the smallest frames NatureCNN-sized SB3 defaults and the smoke Reacher networks both take


@pytest.fixture(autouse=True)
def one_thread():
    """Batches of a few tiny tensors: one thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("SEN-Reacher-v0", "sen", "smoke", env_kwargs={"size": SIZE})
    return model.save(tmp_path_factory.mktemp("sb3") / "reacher.pt")


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters(), strict=True))


def test_extractor_gives_the_models_latents_from_sb3_input(ckpt):
    model = load_model(ckpt)
    venv = VecTransposeImage(DummyVecEnv([lambda: gym.make("SEN-Reacher-v0", size=SIZE)]))
    obs = venv.reset()
    extractor = SENFeaturesExtractor(venv.observation_space, checkpoint=ckpt)
    assert extractor.features_dim == int(np.prod(model.latent_shape))
    x = preprocess_obs(torch.as_tensor(obs), venv.observation_space)  # float, channels first, / 255
    with torch.no_grad():
        want = model.encode(np.transpose(obs, (0, 2, 3, 1))).reshape(1, -1)
        torch.testing.assert_close(extractor(x), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="channels last"):
        SENFeaturesExtractor(gym.make("SEN-Reacher-v0", size=SIZE).observation_space, checkpoint=ckpt)
    with pytest.raises(ValueError, match="size"):
        SENFeaturesExtractor(gym.spaces.Box(0, 255, (6, 64, 64), np.uint8), checkpoint=ckpt)


@pytest.mark.parametrize("fine_tune", [False, True])
def test_sac_learns_on_pixels_through_the_extractor(ckpt, fine_tune):
    env = gym.make("SEN-Reacher-v0", size=SIZE)
    agent = SAC(
        "CnnPolicy",
        env,
        policy_kwargs=dict(
            features_extractor_class=SENFeaturesExtractor,
            features_extractor_kwargs=dict(checkpoint=str(ckpt), fine_tune=fine_tune),
        ),
        buffer_size=100,
        learning_starts=20,
        batch_size=4,
        seed=0,
        device="cpu",
    )
    sen = agent.policy.actor.features_extractor
    sen_before, head_before = _snapshot(sen), _snapshot(agent.policy.actor.mu)
    agent.learn(30)  # 10 gradient steps
    assert _changed(head_before, agent.policy.actor.mu)  # the policy learns
    assert _changed(sen_before, sen) == fine_tune  # the SEN only when asked
    assert sen.training == (fine_tune and agent.policy.training)


def test_sac_learns_on_latents_through_the_wrapper(ckpt):
    env = SENWorldModel(gym.make("SEN-Reacher-v0", size=SIZE), ckpt)
    agent = SAC("MlpPolicy", env, buffer_size=100, learning_starts=20, batch_size=4, seed=0, device="cpu")
    before = _snapshot(agent.policy.actor.mu)
    agent.learn(40)
    assert _changed(before, agent.policy.actor.mu)
    assert agent.replay_buffer.observations.shape[-1] == int(np.prod(load_model(ckpt).latent_shape))
