"""Rewrite a rollout file as one-step transitions, some of them moved by a group element.

    python -m benchmarks.moved_transitions data/reproduce/cpu/reacher_train.h5 OUT.h5 --element 1 0 --where negative:1
    python -m benchmarks.moved_transitions data/reproduce/cpu/reacher_pos_train.h5 OUT.h5 --element 1 0 --where half

A moved transition is the one the env gives from the moved state: both observations go through
the domain's action on pixels, the action and the states through the symmetry's. So the output
holds the same transitions as the input up to the symmetry, and only what the chosen rows change
differs: ``negative:I`` moves the rows whose action component ``I`` is negative (for Reacher, a
reflection then leaves every second-joint torque >= 0, the action set of the limited-torque
table on the states of the all-torque one); ``half`` moves a random half (seed 0; the states of
the limited-torque set and their mirrors, with both signs of torque); ``none`` moves nothing (the
input in the output's one-step format, the control for that format).

Each transition becomes an episode of one step, in the input's order, because a moved transition
no longer continues its episode. ``sen-rl train`` then holds out transitions instead of
episodes. Used in docs/RESULTS_findings.md (Reacher, why `none` jumps sooner on the
limited-torque set).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

WHERE = ("none", "half", "negative:I")


def rows_to_move(actions: np.ndarray, where: str, seed: int = 0) -> np.ndarray:
    """Boolean mask over the transitions ``actions`` (``[N, ...]``) that ``where`` selects."""
    if where == "none":
        return np.zeros(len(actions), dtype=bool)
    if where == "half":
        return np.random.default_rng(seed).random(len(actions)) < 0.5
    if where.startswith("negative:"):
        try:
            i = int(where.split(":", 1)[1])
        except ValueError:
            i = -1
        a = np.asarray(actions).reshape(len(actions), -1)
        if not 0 <= i < a.shape[1]:
            raise ValueError(f"--where {where}: the action has components 0 to {a.shape[1] - 1}")
        return a[:, i] < 0
    raise ValueError(f"--where must be one of {', '.join(WHERE)}, got {where!r}")


def _before_after(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step arrays ``[E, T + 1, ...]`` as the ``E * T`` transitions' rows before and after: two ``[E * T, ...]``."""
    flat = lambda y: y.reshape(-1, *x.shape[2:])  # noqa: E731
    return flat(x[:, :-1]), flat(x[:, 1:])


def moved_transitions(
    src: str | os.PathLike, dst: str | os.PathLike, element, where: str, overwrite: bool = False
) -> dict:
    """Write ``dst`` from ``src`` (see the module docstring); returns what it did."""
    import h5py

    from sen_rl.data import ACTIONS_KEY, OBS_KEY, REWARDS_KEY, STATES_KEY, RolloutDataset, check_target
    from sen_rl.domains import domain_of
    from sen_rl.fileio import atomic_write

    check_target(Path(dst), overwrite)
    with RolloutDataset(src) as ds:
        act_on_obs = domain_of(ds.env_id).act_on_observation
        if act_on_obs is None:
            raise ValueError(f"no map of {ds.env_id}'s images is known to move them by its group; nothing to write")
        env = ds.make_env()
        sym = env.unwrapped.symmetry
        env.close()
        element = element[0] if len(element) == 1 else tuple(element)  # C4's elements are numbers, D4's pairs
        if element not in list(sym.elements):
            raise ValueError(f"{element} is not an element of {sym.name}; its elements are {list(sym.elements)}")
        if ds.has_twins:
            raise ValueError(f"{src} holds twins, which this rewrite would drop; collect without --twins")
        obs, act, states, rew, attrs = ds.obs[:], ds.actions[:], ds.states[:], ds.rewards[:], ds.attrs
        sampler = ds.action_sampler()

    n = act.shape[0] * act.shape[1]
    first, second = _before_after(obs)
    s0, s1 = _before_after(states)
    act = act.reshape(n, *act.shape[2:])
    move = rows_to_move(act, where)
    first[move], second[move] = act_on_obs(element, first[move]), act_on_obs(element, second[move])
    act[move] = sym.act_on_action(element, act[move])
    s0[move], s1[move] = sym.act_on_state(element, s0[move]), sym.act_on_state(element, s1[move])

    attrs = dict(attrs)
    attrs.update(episodes=n, total_episodes=n, first_episode=0, steps=1, shard="")
    attrs["moved_from"] = json.dumps({"source": str(src), "element": element, "where": where})
    if not sampler.can_draw(act).all():
        # moved rows left the collection's action restriction, so the file must not claim it (evaluation's
        # --unseen-from reads it)
        attrs.update(actions="null", positive_torque=False)
    with atomic_write(dst) as tmp, h5py.File(tmp, "w") as f:
        # the layout of sen_rl.data's rollout files, one step an episode
        pair = np.stack([first, second], 1)
        f.create_dataset(OBS_KEY, data=pair, chunks=(1, *pair.shape[1:]), compression="lzf")
        f.create_dataset(ACTIONS_KEY, data=act[:, None])
        f.create_dataset(STATES_KEY, data=np.stack([s0, s1], 1))
        f.create_dataset(REWARDS_KEY, data=rew.reshape(n, 1))
        f.attrs.update(attrs)
    return {"transitions": n, "moved": int(move.sum()), "element": element, "where": where, "out": str(dst)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a rollout file of a domain whose pixels the group moves (2D Shapes, Reacher)")
    p.add_argument("dst", help="the one-step rollout file to write")
    p.add_argument("--element", type=int, nargs="+", required=True, help="a group element, e.g. 1 0 (Reacher: reflect)")
    p.add_argument("--where", required=True, help=f"which transitions to move: {', '.join(WHERE)}")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    args = p.parse_args(argv)
    print(json.dumps(moved_transitions(args.src, args.dst, args.element, args.where, args.overwrite)))


if __name__ == "__main__":
    main()
