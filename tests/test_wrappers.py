"""SENWorldModel and SENWorldModelVec: spaces, latents, dynamics, refusals, vector envs, other wrappers."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

import sen_rl
from sen_rl.model import build_model, load_model
from sen_rl.wrappers import SENWorldModel, SENWorldModelVec


@pytest.fixture(scope="module")
def shapes_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return build_model("SEN-Shapes-v0", "sen", "smoke").save(tmp_path_factory.mktemp("wrap") / "shapes.pt")


@pytest.fixture(scope="module")
def reacher_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return build_model("SEN-Reacher-v0", "sen", "smoke").save(tmp_path_factory.mktemp("wrap") / "reacher.pt")


def test_observations_are_the_models_latents(shapes_ckpt):
    model = load_model(shapes_ckpt)
    env = SENWorldModel(gym.make("SEN-Shapes-v0"), shapes_ckpt)
    assert env.observation_space == model.latent_space and env.observation_space.dtype == np.float32
    z, info = env.reset(seed=3)
    raw, _ = gym.make("SEN-Shapes-v0").reset(seed=3)
    assert z.dtype == np.float32 and env.observation_space.contains(z)
    with torch.no_grad():
        np.testing.assert_allclose(z, model.encode(raw).numpy(), rtol=1e-5, atol=1e-6)
    for _ in range(5):
        z, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(z) and "state" in info


def test_dynamics_numpy_in_and_out_single_or_batched(shapes_ckpt):
    env = SENWorldModel(gym.make("SEN-Shapes-v0"), shapes_ckpt)
    z, _ = env.reset(seed=0)
    obs = np.stack([env.unwrapped.render_state(env.unwrapped.get_state())] * 3)
    zb = env.encode(obs)
    assert isinstance(zb, np.ndarray) and zb.shape == (3, *z.shape)
    np.testing.assert_allclose(zb[0], z, rtol=1e-5, atol=1e-6)
    z1 = env.predict(z, 2)
    assert isinstance(z1, np.ndarray) and z1.shape == z.shape
    np.testing.assert_allclose(env.predict(zb, np.array([2, 2, 2]))[1], z1, rtol=1e-5, atol=1e-6)
    traj = env.rollout(z, [2, 5, 7])
    assert traj.shape == (3, *z.shape)
    np.testing.assert_allclose(traj[0], z1, rtol=1e-5, atol=1e-6)
    assert env.rollout(zb, np.array([[2, 5, 7]] * 3)).shape == (3, 3, *z.shape)


def test_inference_runs_plain_torch(shapes_ckpt, reacher_ckpt):
    for ckpt, kwargs in ((shapes_ckpt, {}), (reacher_ckpt, {"size": 64})):
        env = SENWorldModel(gym.make(load_model(ckpt).config.env_id, **kwargs), ckpt)
        assert not env.model.training
        assert not any(type(m).__module__.startswith("escnn") for m in env.model.modules())


def test_refusals_name_the_problem_and_the_fix(shapes_ckpt, reacher_ckpt):
    with pytest.raises(ValueError, match=r"trained on SEN-Shapes-v0.*SEN-Cubes-v0"):
        SENWorldModel(gym.make("SEN-Cubes-v0"), shapes_ckpt)
    with pytest.raises(ValueError, match=r"size=64"):  # the smoke Reacher model reads 64x64 frames
        SENWorldModel(gym.make("SEN-Reacher-v0"), reacher_ckpt)
    with pytest.raises(TypeError, match="WorldModel or the path"):
        SENWorldModel(gym.make("SEN-Shapes-v0"), 3)
    env = SENWorldModel(gym.make("SEN-Shapes-v0"), shapes_ckpt)
    with pytest.raises(ValueError, match=r"expected an observation uint8 \(50, 50, 3\), got float32 \(50, 50, 3\)"):
        env.observation(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \(64, 64, 3\)"):
        env.observation(np.zeros((64, 64, 3), np.uint8))


def test_works_on_any_env_with_the_same_observations(shapes_ckpt):
    model = load_model(shapes_ckpt)
    # under other wrappers, inside other wrappers, and on an env made without gym.make
    inner = RecordEpisodeStatistics(TimeLimit(gym.make("SEN-Shapes-v0"), max_episode_steps=3))
    env = TimeLimit(SENWorldModel(inner, model), max_episode_steps=10)
    env.reset(seed=0)
    for _ in range(3):
        z, _, terminated, truncated, info = env.step(0)
    assert truncated and "episode" in info and env.observation_space.contains(z)
    from sen_rl.envs.shapes import ShapesEnv

    bare = SENWorldModel(ShapesEnv(), model)
    assert bare.observation_space.contains(bare.reset(seed=0)[0])


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_vector_version_encodes_every_sub_env_like_the_single_one(shapes_ckpt, vectorization):
    n = 3
    fns = [lambda: gym.make("sen_rl:SEN-Shapes-v0") for _ in range(n)]  # workers register it on import
    venv = (
        gym.vector.SyncVectorEnv(fns)
        if vectorization == "sync"
        else gym.vector.AsyncVectorEnv(fns, context="forkserver")
    )
    env = SENWorldModelVec(venv, shapes_ckpt)
    try:
        assert env.single_observation_space == load_model(shapes_ckpt).latent_space
        z, _ = env.reset(seed=[0, 1, 2])
        assert z.shape == (n, *env.single_observation_space.shape) and env.observation_space.contains(z)
        single = SENWorldModel(gym.make("SEN-Shapes-v0"), shapes_ckpt)
        for i in range(n):
            np.testing.assert_allclose(z[i], single.reset(seed=i)[0], rtol=1e-5, atol=1e-6)
        z2, *_ = env.step(np.zeros(n, dtype=np.int64))
        assert env.observation_space.contains(z2)
        with pytest.raises(ValueError, match="expected observations uint8"):
            env.observations(np.zeros((n, 50, 50, 3), np.float32))
    finally:
        env.close()
    with pytest.raises(ValueError, match="trained on SEN-Shapes-v0"):
        SENWorldModelVec(gym.make_vec("SEN-Cubes-v0", num_envs=1, vectorization_mode="sync"), shapes_ckpt)


def test_public_names():
    assert sen_rl.SENWorldModel is SENWorldModel and sen_rl.SENWorldModelVec is SENWorldModelVec


def test_wraps_the_goal_task_of_its_domain(shapes_ckpt):
    env = SENWorldModel(gym.make("SEN-Shapes-Goal-v0"), shapes_ckpt)
    z, info = env.reset(seed=0)
    assert env.observation_space.contains(z) and info["goal_observation"].shape == (50, 50, 3)
    assert env.encode(info["goal_observation"]).shape == z.shape
    with pytest.raises(ValueError, match="trained on SEN-Shapes-v0"):
        SENWorldModel(gym.make("SEN-Cubes-Goal-v0"), shapes_ckpt)
