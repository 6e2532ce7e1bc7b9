"""The paper's latent plots: Teapot traversals, and Reacher latents against the joint angles.

    python -m benchmarks.plots teapot --checkpoint runs/.../best.pt --out docs/img/teapot_traversals.png
    python -m benchmarks.plots reacher --checkpoint runs/.../best.pt --data data/.../reacher_eval.h5 \\
        --out docs/img/reacher_latents.png

Teapot: from one start orientation the teapot turns 30 steps of 2 pi / 30 about the yaw (z),
pitch (y) and roll (x) axes; each panel shows the latent's diagonal entries for the encoded frames
(solid) and of the model's own rollout from the first frame (dashed). An equivariant model
keeps the dashed lines on the solid ones for the whole turn.

Reacher: the first two principal components of the latents of an evaluation set, coloured
by the true joint angles (as sin and cos, since the angles wrap).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sen_rl.fileio import atomic_write

#: Reacher state entries of the current joint angles (joint0, joint1): see sen_rl.groups.REACHER_STATE_LAYOUT
REACHER_JOINTS = slice(4, 6)
#: Reacher latents are encoded this many frames at a time (memory)
ENCODE_CHUNK = 256


def _save(fig: Any, out: str) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(out)
    try:
        with atomic_write(path, suffix=".png") as tmp:  # savefig picks the format by the suffix
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return path


@torch.no_grad()
def teapot_traversals(checkpoint: str, out: str, seed: int = 0) -> Path:
    import gymnasium as gym
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sen_rl.domains import DOMAINS, domain_of
    from sen_rl.evaluate import TRAVERSAL_STEPS
    from sen_rl.groups import TEAPOT_SMALL_ANGLE, TEAPOT_SMALL_AXES, axis_angle_to_matrix, random_rotation
    from sen_rl.model import load_model

    model = load_model(checkpoint)
    domain = domain_of(model.config.env_id)
    if not domain.traversals:
        with_traversals = ", ".join(d.env_id for d in DOMAINS.values() if d.traversals)
        raise ValueError(f"{checkpoint} is a model of {model.config.env_id}, not {with_traversals}")
    env = domain.make_env(**model.config.env_kwargs).unwrapped
    start = random_rotation(np.random.default_rng(seed))
    fig, axes = plt.subplots(1, len(domain.traversals), figsize=(12, 3.4), sharey=True, squeeze=False)
    for ax, (name, action) in zip(axes[0], domain.traversals, strict=True):
        step = axis_angle_to_matrix(TEAPOT_SMALL_ANGLE * TEAPOT_SMALL_AXES[action])
        states = [start]
        for _ in range(TRAVERSAL_STEPS):
            states.append(step @ states[-1])
        frames = np.stack([env.render_state(s) for s in states])
        z_enc = model.encode(frames).reshape(len(frames), -1).numpy()
        z0 = model.encode(frames[:1])
        if isinstance(model.action_space, gym.spaces.Discrete):
            actions = np.full((1, TRAVERSAL_STEPS), action)
        else:  # a large-action model takes the same turn as a rotation vector
            vec = (TEAPOT_SMALL_AXES[action] * TEAPOT_SMALL_ANGLE).astype(np.float32)
            actions = np.broadcast_to(vec, (1, TRAVERSAL_STEPS, 3)).copy()
        z_pred = model.rollout(z0, actions).reshape(TRAVERSAL_STEPS, -1).numpy()
        z_pred = np.concatenate([z_enc[:1], z_pred])
        k = np.arange(TRAVERSAL_STEPS + 1)
        # the diagonal of the 3x3 latent: one entry of each row, so every traversal moves two
        for i, colour in zip((0, 4, 8), ("tab:blue", "tab:orange", "tab:green"), strict=True):
            ax.plot(k, z_enc[:, i], color=colour, label=f"z[{i}] encoded")
            ax.plot(k, z_pred[:, i], color=colour, linestyle="--", label=f"z[{i}] predicted")
        ax.set_title(f"{name} traversal")
        ax.set_xlabel("steps of 2 pi / 30")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Teapot latent along traversals: {model.config.variant} ({model.config.preset} preset)")
    fig.tight_layout()
    env.close()
    return _save(fig, out)


@torch.no_grad()
def reacher_latents(checkpoint: str, data: str, out: str, samples: int = 2000) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sen_rl.data import RolloutDataset
    from sen_rl.model import load_model

    model = load_model(checkpoint)
    with RolloutDataset(data) as ds:
        if ds.env_id != model.config.env_id:
            raise ValueError(f"{checkpoint} is a model of {model.config.env_id}, but {data} holds {ds.env_id}")
        n = min(samples, ds.episodes)
        obs = ds.obs[:n, 0]
        states = ds.states[:n, 0]
    z = torch.cat([model.encode(obs[i : i + ENCODE_CHUNK]) for i in range(0, n, ENCODE_CHUNK)])
    z = z.reshape(n, -1).numpy()
    zc = z - z.mean(0)
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    pcs = zc @ vt[:2].T
    joints = states[:, REACHER_JOINTS]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    panels = [
        ("sin joint0", np.sin(joints[:, 0])),
        ("cos joint0", np.cos(joints[:, 0])),
        ("sin joint1", np.sin(joints[:, 1])),
        ("cos joint1", np.cos(joints[:, 1])),
    ]
    for ax, (label, colour) in zip(axes, panels, strict=True):
        sc = ax.scatter(pcs[:, 0], pcs[:, 1], c=colour, s=4, cmap="twilight")
        ax.set_title(f"colour: {label}")
        ax.set_xlabel("latent PC 1")
        fig.colorbar(sc, ax=ax, fraction=0.046)
    axes[0].set_ylabel("latent PC 2")
    fig.suptitle(f"Reacher latents against the true joint angles: {model.config.variant} ({model.config.preset})")
    fig.tight_layout()
    return _save(fig, out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="which", required=True)
    t = sub.add_parser("teapot")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--out", default="docs/img/teapot_traversals.png")
    t.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("reacher")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--data", required=True, help="an evaluation set of the model's Reacher")
    r.add_argument("--out", default="docs/img/reacher_latents.png")
    args = p.parse_args(argv)
    if args.which == "teapot":
        path = teapot_traversals(args.checkpoint, args.out, args.seed)
    else:
        path = reacher_latents(args.checkpoint, args.data, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
