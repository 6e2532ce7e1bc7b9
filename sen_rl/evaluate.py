"""Evaluate a world model on a rollout dataset: Hits@k, MRR, EE(S), DIE, HH@1 and TH@1.

>>> from sen_rl.data import RolloutDataset                        # doctest: +SKIP
>>> from sen_rl.model import load_model
>>> results = evaluate(load_model("runs/shapes/best.pt"), RolloutDataset("data/shapes_eval.h5"))
>>> print(format_table(results))

One sample per episode, as in the paper: encode ``obs[e, 0]``, roll the model forward
through ``actions[e, :K]`` and compare with the encoding of ``obs[e, K]``. EE(S) and DIE
need the dataset's twins (``sen-rl collect --twins``); HH@1 and TH@1 render new
observations with the dataset's environment. The definitions, orientations and tie rules
are in ``docs/metrics.md``; the metric functions are in :mod:`sen_rl.metrics`.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import torch

from sen_rl.data import ActionSampler, ConcatRolloutDataset, RolloutDataset, open_rollouts
from sen_rl.domains import domain_of
from sen_rl.groups import (
    TEAPOT_SMALL_ANGLE,
    TEAPOT_SMALL_AXES,
    axis_angle_to_matrix,
    element_label,
    is_identity,
)
from sen_rl.metrics import (
    distance_invariance_error,
    hard_hits_at_1,
    rank_metrics,
    ranks,
    row_norms,
    safe_ratio,
    traversal_hits_at_1,
)
from sen_rl.model import WorldModel

TRAVERSAL_STEPS = 30  # of 2 pi / 30: one full turn

_BATCH_BYTES = 64 << 20  # uint8 pixels read per batch, twins included


# --------------------------------------------------------------------------- checks


def check_compatible(model: WorldModel, ds: RolloutDataset) -> None:
    """A ValueError naming both sides when the dataset was not made by the model's environment."""
    mid = model.config.env_id
    if ds.env_id != mid:
        raise ValueError(
            f"the model was trained for {mid} but the dataset {ds.path} holds {ds.env_id}; "
            f"evaluate on a dataset of {mid} (`sen-rl collect --env {mid} --twins ...`)"
        )
    if tuple(ds.obs_shape) != tuple(model.obs_shape):
        raise ValueError(
            f"the dataset {ds.path} has observations {ds.obs_shape} (env kwargs {ds.env_kwargs}) but the model "
            f"expects {model.obs_shape} (env kwargs {model.config.env_kwargs}); collect with the model's --env-kwargs"
        )
    space = model.action_space
    act_shape = tuple(ds.actions.shape[2:])
    want = tuple(getattr(space, "shape", ()) or ())
    if act_shape != want or (np.issubdtype(ds.actions.dtype, np.integer) != (want == ())):
        raise ValueError(
            f"the dataset {ds.path} has actions of shape {act_shape} ({ds.actions.dtype}, env kwargs "
            f"{ds.env_kwargs}) but the model's action space is {space} (env kwargs {model.config.env_kwargs})"
        )


def resolve_horizon(env_id: str, steps: int, horizon: int | None) -> int:
    k = domain_of(env_id).eval_horizon if horizon is None else int(horizon)
    if k < 1:
        raise ValueError(f"horizon must be >= 1, got {k}")
    if k > steps:
        raise ValueError(
            f"horizon {k} needs episodes of at least {k} steps but the dataset has {steps}; "
            f"collect an evaluation dataset with `sen-rl collect --env {env_id} --steps {k} --twins ...` "
            f"or pass --horizon {steps}"
        )
    return k


# --------------------------------------------------------------------------- evaluation


def _batches(n: int, size: int):
    for lo in range(0, n, size):
        yield lo, min(n, lo + size)


def _take(actions: np.ndarray, g: int) -> np.ndarray:
    """Twin actions ``[B, K, G, ...]`` -> the ``[B, K, ...]`` of element ``g``."""
    return actions[:, :, g]


@torch.no_grad()
def _encode_many(model: WorldModel, obs: np.ndarray, batch: int = 256) -> torch.Tensor:
    return torch.cat([model.encode(obs[i : i + batch]).float().cpu() for i in range(0, len(obs), batch)])


@torch.no_grad()
def _hard_hits(model, env, pred, target, states_k, n, chunk: int = 64) -> dict:
    """HH@1 on the first ``n`` samples; frames are rendered and encoded ``chunk`` samples at a time."""
    z_negs, counts = [], []
    for lo, hi in _batches(n, chunk):
        frames, sizes = [], []
        for i in range(lo, hi):
            states = env.unwrapped.hard_negative_states(states_k[i])
            sizes.append(len(states))
            frames += [env.unwrapped.render_state(s) for s in states]
        z_negs += list(_encode_many(model, np.stack(frames)).split(sizes))
        counts += sizes
    m = max(counts)
    # pad every sample to m negatives by repeating its first one; the mask ignores the copies
    z_neg = torch.stack([torch.cat([z, z[:1].expand(m - len(z), *z.shape[1:])]) for z in z_negs])
    mask = torch.arange(m)[None] < torch.tensor(counts)[:, None]
    return {
        "hh@1": hard_hits_at_1(pred[:n], target[:n], z_neg, mask),
        "hh_samples": n,
        "hh_negatives": float(np.mean(counts)),
    }


@torch.no_grad()
def _traversals(model, env, starts: np.ndarray, traversals) -> dict:
    out = {}
    discrete = isinstance(model.action_space, gym.spaces.Discrete)
    idx = torch.arange(1, TRAVERSAL_STEPS + 1) % TRAVERSAL_STEPS  # prediction after k steps -> frame k mod 30
    for name, a in traversals:
        steps = np.arange(TRAVERSAL_STEPS)
        rots = axis_angle_to_matrix(TEAPOT_SMALL_AXES[a][None] * (steps[:, None] * TEAPOT_SMALL_ANGLE))
        frames = np.stack([[env.unwrapped.render_state(r @ s0) for r in rots] for s0 in starts])  # [S, 30, ...]
        n = len(starts)
        z = _encode_many(model, frames.reshape(n * TRAVERSAL_STEPS, *frames.shape[2:]))
        z = z.reshape(n, TRAVERSAL_STEPS, *z.shape[1:])
        if discrete:
            actions = np.full((n, TRAVERSAL_STEPS), a, dtype=np.int64)
        else:
            vec = (TEAPOT_SMALL_AXES[a] * TEAPOT_SMALL_ANGLE).astype(np.float32)
            actions = np.broadcast_to(vec, (n, TRAVERSAL_STEPS, 3)).copy()
        preds = model.rollout(z[:, 0].to(model.device), actions).float().cpu()
        out[f"th@1_{name}"] = traversal_hits_at_1(preds, z, idx)
    out["th_starts"] = len(starts)
    return out


@torch.no_grad()
def evaluate(
    model: WorldModel,
    dataset: RolloutDataset | ConcatRolloutDataset | str | os.PathLike | list,
    horizon: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    hh_samples: int = 1000,
    th_starts: int = 10,
    batch_size: int = 256,
    unseen_from: RolloutDataset | str | os.PathLike | None = None,
) -> dict:
    """Every metric of the paper on an evaluation dataset, as a flat JSON-able dict.

    :param model: the world model (evaluated in eval mode on its own device).
    :param dataset: a :class:`RolloutDataset`, the path of one, or several paths or globs read as one
        dataset (:func:`sen_rl.data.open_rollouts`), of the model's env; with
        twins for EE(S) and DIE.
    :param horizon: steps ``K`` to roll forward (default: the domain's ``eval_horizon``); the
        dataset needs at least ``K`` steps per episode.
    :param max_samples: use the first ``max_samples`` episodes (default: all), one sample each.
    :param seed: seeds the DIE permutation.
    :param hh_samples: HH@1 on the first ``hh_samples`` samples (it renders new frames); 0: skip.
    :param th_starts: Teapot TH@1 traversals from the start states of the first ``th_starts``
        episodes; 0: skip.
    :param batch_size: episodes per batch (fewer when their twins would exceed 64 MiB).
    :param unseen_from: the training set (or its path) of a model trained on restricted actions:
        Hits@k and MRR are then also given on the samples whose ``K`` actions that set could hold
        (``/seen``) and on those with at least one it could not (``/unseen``), each ranked among
        all samples as before, with ``seen_samples`` and ``unseen_samples``.

    Keys: ``env_id, variant, preset, data, horizon, samples``; ``hits@1, hits@5, hits@10, mrr``
    (fractions); with twins ``ee/<element>, ee_mean, ee_quarter, ee_quarter_element,
    die/<element>, die_mean``; ``hh@1, hh_samples, hh_negatives``; Teapot ``th@1_yaw,
    th@1_pitch, th@1_roll, th_starts``; ``skipped`` (list of what was not computed and why).
    """
    own = isinstance(dataset, str | os.PathLike | list | tuple)  # paths or globs: opened and closed here
    ds = open_rollouts(dataset) if own else dataset
    was_training = model.training
    model.eval()
    try:
        sampler = None if unseen_from is None else _training_sampler(unseen_from, ds.env_id)
        return _evaluate(model, ds, horizon, max_samples, seed, hh_samples, th_starts, batch_size, sampler)
    finally:
        model.train(was_training)
        if own:
            ds.close()


def _training_sampler(train, env_id: str) -> ActionSampler:
    """The action sampler of a training set (a RolloutDataset or its path), checked to be of ``env_id``."""
    own = not isinstance(train, RolloutDataset)
    ds = RolloutDataset(train) if own else train
    try:
        if ds.env_id != env_id:
            raise ValueError(f"unseen_from {ds.path} is a {ds.env_id} set, the evaluation set is {env_id}")
        return ds.action_sampler()
    finally:
        if own:
            ds.close()


def _seen_and_unseen(r: torch.Tensor, actions: np.ndarray, sampler: ActionSampler) -> dict:
    """Ranking metrics of the samples whose actions ``[N, K, ...]`` the sampler draws, and of the others."""
    n, k = actions.shape[:2]
    seen = torch.from_numpy(sampler.can_draw(actions).reshape(n, k).all(axis=1))
    out: dict = {"seen_samples": int(seen.sum()), "unseen_samples": int((~seen).sum())}
    for name, mask in (("seen", seen), ("unseen", ~seen)):
        if mask.any():
            out.update(rank_metrics(r[mask], suffix=f"/{name}"))
    return out


def _evaluate(model, ds, horizon, max_samples, seed, hh_samples, th_starts, batch_size, sampler=None) -> dict:
    check_compatible(model, ds)
    env_id = ds.env_id
    domain = domain_of(env_id)
    K = resolve_horizon(env_id, ds.steps, horizon)
    if max_samples is not None and int(max_samples) < 2:
        raise ValueError(f"max_samples must be >= 2 (ranking needs rivals), got {max_samples}")
    N = ds.episodes if max_samples is None else min(ds.episodes, int(max_samples))
    if N < 2:
        raise ValueError(f"the dataset {ds.path} has {N} episode(s); ranking metrics need at least 2")

    sym = model.symmetry
    elements = list(sym.elements)
    G = len(elements)
    labels = [element_label(g) for g in elements]
    twins = ds.has_twins
    skipped: list[str] = []
    if twins:
        stored = np.asarray(ds.twin_elements[()], dtype=np.float64)
        if stored.shape != np.asarray(elements, dtype=np.float64).shape or not np.allclose(
            stored, np.asarray(elements, dtype=np.float64)
        ):
            raise ValueError(
                f"the twins of {ds.path} were made for other group elements than the model's {sym.name}; "
                "collect the dataset again with this version of sen-rl"
            )
    else:
        skipped.append("ee, die: the dataset has no twins (collect it with `sen-rl collect --twins`)")

    frame_bytes = int(np.prod(ds.obs_shape))
    per_episode = frame_bytes * (2 + (2 * G if twins else 0))
    bs = max(1, min(int(batch_size), _BATCH_BYTES // per_episode))

    z0s, preds, targets = [], [], []
    ee_num = torch.zeros(G, dtype=torch.float64)
    ee_den = torch.zeros((), dtype=torch.float64)
    preds_g, targets_g = [], []
    for lo, hi in _batches(N, bs):
        obs0 = ds.obs[lo:hi, 0]
        obsk = ds.obs[lo:hi, K]
        acts = ds.actions[lo:hi, :K]
        v = model.embed(obs0)
        z0 = model.encoder(v)
        z0s.append(z0.float().cpu())
        preds.append(model.rollout(z0, acts)[:, -1].float().cpu())
        targets.append(model.encode(obsk).float().cpu())
        if not twins:
            continue
        t0 = ds.twin_obs[lo:hi, 0]  # [B, G, ...]
        tk = ds.twin_obs[lo:hi, K]
        tacts = ds.twin_actions[lo:hi, :K]  # [B, K, G, ...]
        ee_den += row_norms(v).sum().cpu()
        pg, tg = [], []
        for i, g in enumerate(elements):
            v_g = model.embed(t0[:, i])
            ee_num[i] += row_norms(sym.act_on_embedding(g, v) - v_g).sum().cpu()
            pg.append(model.rollout(model.encoder(v_g), _take(tacts, i))[:, -1].float().cpu())
            tg.append(model.encode(tk[:, i]).float().cpu())
        preds_g.append(torch.stack(pg, dim=1))
        targets_g.append(torch.stack(tg, dim=1))
    z0 = torch.cat(z0s)
    pred, target = torch.cat(preds), torch.cat(targets)

    results: dict = {
        "env_id": env_id,
        "variant": model.config.variant,
        "preset": model.config.preset,
        "data": str(ds.path),
        "horizon": K,
        "samples": N,
    }
    r = ranks(pred, target)
    results.update(rank_metrics(r, ks=(1, 5, 10)))
    if sampler is not None:
        results.update(_seen_and_unseen(r, ds.actions[:N, :K], sampler))

    if twins:
        non_id = [i for i, g in enumerate(elements) if not is_identity(g)]
        # EE = mean_i ||rho(g) S(x_i) - S(g x_i)|| / mean_i ||S(x_i)||: the 1/N of both means cancels
        ee = [safe_ratio(ee_num[i], ee_den) for i in range(G)]
        results.update({f"ee/{labels[i]}": ee[i] for i in range(G)})
        results["ee_mean"] = float(np.mean([ee[i] for i in non_id]))
        ref = np.asarray(domain.quarter_turn, dtype=np.float64)
        q = next((i for i, g in enumerate(elements) if np.allclose(np.asarray(g, dtype=np.float64), ref)), None)
        if q is None:  # a declared group without the quarter turn (a mirror): its first other element
            q = non_id[0]
        results["ee_quarter"] = ee[q]
        results["ee_quarter_element"] = labels[q]

        pred_g, target_g = torch.cat(preds_g), torch.cat(targets_g)  # [N, G, ...]
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(int(seed)))
        die = [distance_invariance_error(pred, target, pred_g[:, i], target_g[:, i], z0, perm) for i in range(G)]
        results.update({f"die/{labels[i]}": die[i] for i in range(G)})
        results["die_mean"] = float(np.mean([die[i] for i in non_id]))

    n_hh = min(N, int(hh_samples))
    want_th = bool(domain.traversals) and int(th_starts) > 0
    if n_hh > 0 or want_th:
        env = ds.make_env()
        try:
            if n_hh > 0:
                states_k = ds.states[:n_hh, K]
                try:
                    results.update(_hard_hits(model, env, pred, target, states_k, n_hh))
                except NotImplementedError as exc:  # a custom env knows no hard negatives
                    skipped.append(f"hh@1: {exc}")
            if want_th:
                starts = ds.states[: min(ds.episodes, int(th_starts)), 0]
                results.update(_traversals(model, env, starts, domain.traversals))
        finally:
            env.close()
    if n_hh <= 0:
        skipped.append("hh@1: hh_samples = 0")
    if domain.traversals and not want_th:
        skipped.append("th@1: th_starts = 0")
    results["skipped"] = skipped
    return results


# --------------------------------------------------------------------------- table


def _pct(x) -> str:
    return f"{100 * x:6.1f}%"


def format_table(results: dict) -> str:
    """The results as a readable text table (fractions shown as percentages)."""
    r = results
    lines = [
        f"{r['env_id']}  variant {r['variant']}  preset {r['preset']}  horizon {r['horizon']}  samples {r['samples']}",
        f"  data {r['data']}",
        "",
        f"  {'metric':<26}{'value':>10}",
    ]

    def row(name, value, note=""):
        lines.append(f"  {name:<26}{value:>10}" + (f"  {note}" if note else ""))

    for k, name in (("hits@1", "Hits@1"), ("hits@5", "Hits@5"), ("hits@10", "Hits@10"), ("mrr", "MRR")):
        if k in r:
            row(f"{name} ({r['horizon']} steps)", _pct(r[k]))
    for part in ("seen", "unseen"):
        if f"mrr/{part}" in r:
            n = r[f"{part}_samples"]
            row(f"Hits@1 {part} actions", _pct(r[f"hits@1/{part}"]), f"{n} samples, ranked among all")
            row(f"MRR {part} actions", _pct(r[f"mrr/{part}"]), f"{n} samples, ranked among all")
    if "ee_mean" in r:
        row("EE(S) mean", f"{r['ee_mean']:.4f}", "non-identity elements")
        row("EE(S) quarter turn", f"{r['ee_quarter']:.4f}", r["ee_quarter_element"])
        row(f"DIE mean ({r['horizon']} steps)", f"{r['die_mean']:.2e}", "non-identity elements")
    if "hh@1" in r:
        row(
            f"HH@1 ({r['horizon']} steps)",
            _pct(r["hh@1"]),
            f"{r['hh_samples']} samples, {r['hh_negatives']:.1f} hard negatives each",
        )
    for k in (k for k in r if k.startswith("th@1_")):
        name = k[len("th@1_") :]
        row(f"TH@1 {name}", _pct(r[k]), f"{r['th_starts']} traversals of {TRAVERSAL_STEPS} steps")
    elements = [k[3:] for k in r if k.startswith("ee/")]
    if elements:
        lines += ["", f"  {'element':<16}{'EE(S)':>10}{'DIE':>12}"]
        for e in elements:
            lines.append(f"  {e:<16}{r[f'ee/{e}']:>10.4f}{r.get(f'die/{e}', float('nan')):>12.2e}")
    for s in r.get("skipped", []):
        lines.append(f"  skipped {s}")
    return "\n".join(lines)
