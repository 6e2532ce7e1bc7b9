"""How much a freshly initialised world model responds to motion: for each initial-weight seed, the
change of the embedding's output and of the latent when the older stacked frames are replaced by the
newest one (the same picture, no motion), relative to how much they vary across observations.

    python -m benchmarks.motion_at_init --data data/reproduce/cpu/reacher_pos_train.h5 --variant full --seeds 0 1 2 3

An observation that stacks frames (the env's ``stacked_frames``) shows motion only in the
difference between its frames. A score near 0 means the untrained networks barely see that
difference; 1 means it moves them as much as a change of observation does. The models run in
training mode, as the first training steps see them: a fresh model's batch norms hold no running
statistics yet. Measured in docs/RESULTS_findings.md (Reacher, why `full` seed 0 stalls).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def without_motion(obs: np.ndarray, frames: int) -> np.ndarray:
    """``obs`` (``[..., H, W, C]``, ``frames`` frames stacked on C, oldest first), every frame the newest."""
    c = obs.shape[-1]
    if frames < 2 or c % frames:
        raise ValueError(f"observations of {c} channels do not stack {frames} >= 2 frames")
    newest = obs[..., c - c // frames :]
    return np.concatenate([newest] * frames, axis=-1)


def relative_change(a, b) -> float:
    """Mean distance between paired rows of ``a`` and ``b``, over the mean distance of ``a``'s rows to their mean."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return float((a - b).norm(dim=1).mean() / (a - a.mean(0)).norm(dim=1).mean())


def motion_scores(model, obs: np.ndarray, frames: int) -> dict[str, float]:
    """The embedding's and the latent's relative change when ``obs`` lose their motion."""
    import torch

    with torch.no_grad():
        v, vs = model.embed(obs), model.embed(without_motion(obs, frames))
        z, zs = model.encoder(v), model.encoder(vs)
    return {"embedding": relative_change(v, vs), "latent": relative_change(z, zs)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a rollout file of an env that stacks frames")
    p.add_argument("--variant", default="sen")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(8)), help="initial-weight seeds")
    p.add_argument("--samples", type=int, default=200, help="first frames of this many episodes (default 200)")
    p.add_argument("--net-kwargs", type=json.loads, default=None, help="JSON, as sen-rl train's")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from sen_rl.data import RolloutDataset
    from sen_rl.domains import domain_of
    from sen_rl.model import build_model
    from sen_rl.train import run_net_kwargs

    torch.set_num_threads(max(1, args.threads))
    with RolloutDataset(args.data) as ds:
        env_id, env_kwargs = ds.env_id, ds.env_kwargs
        obs = ds.obs[: min(args.samples, ds.episodes), 0]
    frames = int(domain_of(env_id).env_class().stacked_frames)
    if frames < 2:
        p.error(f"{env_id} observations hold one frame: no motion to take out")
    print(f"{env_id}, {args.variant}, {args.preset}, {len(obs)} observations")
    print("| initial-weight seed | embedding output | latent |\n|---|---|---|")
    net_kwargs = run_net_kwargs(env_id, env_kwargs, args.net_kwargs)  # the networks sen-rl train builds
    for seed in args.seeds:
        torch.manual_seed(seed)  # as sen-rl train draws them (--seed, or --init-seed)
        model = build_model(env_id, args.variant, args.preset, env_kwargs=env_kwargs, net_kwargs=net_kwargs)
        s = motion_scores(model.train(), obs, frames)
        print(f"| {seed} | {s['embedding']:.3f} | {s['latent']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
