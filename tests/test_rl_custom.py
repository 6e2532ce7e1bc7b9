"""benchmarks.rl_custom end to end at tiny sizes, on InvertedPendulum-v5 through SEN-Custom-v0."""

import json

import numpy as np
import pytest

from benchmarks import rl_custom
from sen_rl.data import CollectConfig, collect
from sen_rl.model import build_model

SYMMETRY = "sen_rl.example_symmetries:INVERTED_PENDULUM"
SMOKE = rl_custom.PRESETS["smoke"]
KWARGS = '{"frames": 2}'


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    """Tiny train / eval sets (2 frames) and untrained `sen` / `none` checkpoints of their env."""
    root = tmp_path_factory.mktemp("rl_custom")
    kwargs = {"frames": 2}  # 64x64: SB3's NatureCNN needs at least 36 pixels a side
    paths = {}
    for name, episodes, steps, twins in (("train", 6, 3, False), ("eval", 8, 1, True)):
        cfg = CollectConfig(
            "InvertedPendulum-v5",
            episodes,
            steps,
            seed=len(name),
            symmetry=SYMMETRY,
            twins=twins,
            env_kwargs=kwargs,
            vectorization="sync",
        )
        paths[name] = collect(cfg, root / f"{name}.h5", progress=False)
    env_kwargs = {"env": "InvertedPendulum-v5", "symmetry": SYMMETRY, **kwargs}
    for variant in ("sen", "none"):
        build_model("SEN-Custom-v0", variant, "smoke", env_kwargs=env_kwargs).save(root / f"{variant}.pt")
    return root, paths


def _args(root, paths, *extra):
    return [
        "--env",
        "InvertedPendulum-v5",
        "--symmetry",
        SYMMETRY,
        "--env-kwargs",
        KWARGS,
        "--world-model",
        f"sen={root / 'sen.pt'}",
        "--world-model",
        f"none={root / 'none.pt'}",
        "--train-data",
        str(paths["train"]),
        "--eval-data",
        str(paths["eval"]),
        "--preset",
        "smoke",
        "--seeds",
        "0",
        "--workdir",
        str(root / "work"),
        *extra,
    ]


def test_every_condition_is_run_scored_and_tabulated(pendulum):
    root, paths = pendulum
    assert rl_custom.main(_args(root, paths)) == 0

    work = root / "work"
    data = json.loads((work / "rl_custom.json").read_text())
    text = (work / "rl_custom.md").read_text()
    rows = {r["condition"]: r for r in data["rows"]}
    assert list(rows) == ["pixels", "sen_frozen", "none_frozen", "state", "random", "zero"]
    updates = (SMOKE.steps - SMOKE.sac["learning_starts"]) // SMOKE.sac["train_freq"]
    for c in ("pixels", "sen_frozen", "none_frozen", "state"):
        assert rows[c]["algo"] == "SAC" and rows[c]["n_timesteps"] == SMOKE.steps
        assert rows[c]["gradient_steps"] == updates  # equal env steps, equal updates
    # InvertedPendulum pays 1 a step while the pole stands; the smoke TimeLimit is 8 steps
    for r in rows.values():
        assert r["eval_episodes"] == SMOKE.final_eval_episodes and 1 <= r["mean_reward"] <= SMOKE.max_episode_steps
    ceiling = rows["state"]["ceiling_fraction"]
    assert ceiling == 1.0 or np.isnan(ceiling)  # nan when the state policy ties random
    assert "| SAC | InvertedPendulum-v5 | frozen sen latent (SENWorldModel), MlpPolicy |" in text
    assert "| SAC | InvertedPendulum-v5 | frozen none latent (SENWorldModel), MlpPolicy |" in text

    # the world models' scores: one-step ranking on the held-out set, and a probe per state coordinate
    for variant in ("sen", "none"):
        s = data["world_models"][variant]
        assert s["variant"] == variant and s["samples"] == 8 and 0 < s["mrr"] <= 1
        assert np.isfinite(s["ee_mean"])  # the eval set has twins
        for which in ("trained", "untrained"):
            assert len(s["probe"][which]) == 4  # (x, angle, x', angle') of the current frame
            assert all(v <= 1 for v in s["probe"][which])  # the pendulum's 4 coordinates all vary
    assert (work / "rl_custom.png").stat().st_size > 0
    assert list((work / "tb").glob("sen_frozen_seed0_*"))

    # a second call with the same settings reuses every run
    stamp = (work / "runs/pixels/seed0/result.json").stat().st_mtime_ns
    assert rl_custom.main(_args(root, paths, "--conditions", "pixels", "random")) == 0
    assert (work / "runs/pixels/seed0/result.json").stat().st_mtime_ns == stamp


def test_state_probe_reads_a_linear_code_exactly(pendulum):
    """A 'model' whose latent is an affine image of the world state has a probe R^2 of 1."""
    import torch

    _, paths = pendulum
    from sen_rl.data import RolloutDataset

    with RolloutDataset(paths["train"]) as ds:
        obs, states = ds.obs[()], ds.states[()]
    table = {obs[e, t].tobytes(): states[e, t, -1] for e in range(obs.shape[0]) for t in range(obs.shape[1])}
    with RolloutDataset(paths["eval"]) as ds:
        table.update({ds.obs[e, 0].tobytes(): ds.states[e, 0, -1] for e in range(ds.episodes)})

    class StateCode:
        def encode(self, x):
            s = np.stack([table[np.asarray(o).tobytes()] for o in np.asarray(x)])
            return torch.as_tensor(s @ (np.eye(4) + np.tri(4)) + 3.0)  # invertible

    r2 = rl_custom.state_probe(StateCode(), paths["train"], paths["eval"], ridge=1e-9)
    np.testing.assert_allclose(r2, 1.0, atol=1e-6)


def test_bad_world_models_are_refused_before_any_run(pendulum, tmp_path):
    root, paths = pendulum
    with pytest.raises(SystemExit, match="VARIANT=PATH"):
        rl_custom.main([*_args(root, paths)[:6], "--world-model", "sen"])
    with pytest.raises(SystemExit, match="does not exist"):
        rl_custom.main([*_args(root, paths)[:6], "--world-model", f"sen={tmp_path / 'missing.pt'}"])
    with pytest.raises(SystemExit, match="give both"):
        rl_custom.main([*_args(root, paths)[:12], "--train-data", str(paths["train"])])
    # a checkpoint of other frames: the wrapper's refusal names the keywords that would match
    args = _args(root, paths, "--workdir", str(tmp_path / "w"))
    args[args.index(KWARGS)] = '{"frames": 1}'
    with pytest.raises(ValueError, match="frames"):
        rl_custom.main(args)
    assert not (tmp_path / "w" / "runs").exists()


def test_the_random_floor_differs_between_seeds(tmp_path):
    """SEN-Custom-v0 reseeds its action space from each reset seed; the floor must not inherit that."""
    from dataclasses import replace

    preset = replace(SMOKE, final_eval_episodes=6, max_episode_steps=30)
    env_fn = rl_custom.make_env_fn("InvertedPendulum-v5", SYMMETRY, {"frames": 2}, {})
    runs = [rl_custom.rl.run_one("random", preset, 1, seed, None, {}, tmp_path, env_fn=env_fn) for seed in (0, 1)]
    assert runs[0]["final_returns"] != runs[1]["final_returns"]  # the same 6 start states, other actions
