"""Why a grid-domain model fails on unseen actions: one-step Hits@1 per move direction, and the
whole encoder's equivariance error per quarter turn.

    python -m benchmarks.direction_diagnostics runs/reproduce/cpu/shapes_up/sen/seed0/best.pt \\
        data/reproduce/cpu/shapes_up_eval.h5

Hits@1 is computed within each direction's samples (first step of each episode); the
encoder error is ``||E(S(g x)) - rho_Z(g) E(S(x))|| / ||E(S(x))||`` on the dataset's twins.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sen_rl.data import RolloutDataset
from sen_rl.domains import domain_of
from sen_rl.groups import element_label
from sen_rl.metrics import ranking_metrics
from sen_rl.model import load_model


@torch.no_grad()
def diagnose(checkpoint: str, data: str, samples: int = 200) -> dict:
    model = load_model(checkpoint)
    with RolloutDataset(data) as ds:
        directions = domain_of(ds.env_id).direction_names  # None unless actions are object * n + direction
        if directions is None or not ds.has_twins:
            raise ValueError(f"{data}: needs a grid-domain dataset with twins (sen-rl collect --twins)")
        obs, act = ds.obs[:, :2], ds.actions[:, 0]
        twins = ds.twin_obs[:samples, 0]
    z, z_next = model.encode(obs[:, 0]), model.encode(obs[:, 1])
    pred = model.predict(z, act)
    out = {}
    for d, name in enumerate(directions):
        idx = np.where(act % len(directions) == d)[0]
        out[f"hits@1/{name}"] = ranking_metrics(pred[idx], z_next[idx], ks=(1,))["hits@1"]
    z0 = z[:samples]
    for g in model.symmetry.elements:
        err = model.encode(twins[:, g]) - model.symmetry.act_on_latent(g, z0)
        out[f"encoder_error/{element_label(g)}"] = float(err.norm() / z0.norm())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("data")
    args = p.parse_args(argv)
    for k, v in diagnose(args.checkpoint, args.data).items():
        print(f"{k:24s} {v:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
