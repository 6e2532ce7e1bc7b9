"""benchmarks/drift.py on hand-made episodes: a model that makes 80% of every move, blocked or not."""

import numpy as np
import torch

from benchmarks.drift import measure
from sen_rl.groups import GRID_DELTAS, GRID_DIRECTIONS

WIDTH = 5


class Undershoot:
    """Latents are the objects' cells as floats; ``predict`` moves the acting object by ``share``
    of a cell in its direction, never checking the board's edge or the other objects."""

    def __init__(self, share: float):
        self.share = share

    def predict(self, z: torch.Tensor, actions) -> torch.Tensor:
        a = np.asarray(actions, dtype=np.int64)
        obj, d = np.divmod(a, 4)
        out = z.clone()
        out[np.arange(len(a)), obj] += self.share * torch.as_tensor(GRID_DELTAS[d], dtype=z.dtype)
        return out


def _episodes(starts: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """States ``[N, K+1, objects, 2]`` under the grid's rules (a blocked move does nothing)."""
    from sen_rl.envs.grid import grid_step

    states = [starts]
    for k in range(actions.shape[1]):
        states.append(np.stack([grid_step(s, a, WIDTH) for s, a in zip(states[-1], actions[:, k], strict=True)]))
    return np.stack(states, axis=1)


def test_undershoot_drifts_linearly_and_blocked_moves_are_told_apart():
    # object 0 of every episode moves right 3 times from columns 0..1 (free) in rows 0..3;
    # episode 4 starts at the right edge (every move off the board); episode 5 has object 1 in the way
    starts = np.array([[[r, 0], [4, 4]] for r in range(4)] + [[[0, 4], [4, 4]], [[2, 1], [2, 2]]])
    right = GRID_DIRECTIONS.index("right")
    actions = np.full((len(starts), 3), 0 * 4 + right)
    states = _episodes(starts, actions)
    z = torch.as_tensor(states, dtype=torch.float64)
    out = measure(Undershoot(0.8), z, actions, states, GRID_DIRECTIONS, WIDTH)

    free = states[:, 1:] != states[:, :-1]
    assert free[:4].any(axis=(-1, -2)).all() and not free[4:].any()
    for k, row in enumerate(out["steps"], start=1):
        assert row["teacher"] == 1.0  # from the true latent every step is nearest its own target
        assert np.isclose(row["move"], 0.8)  # the share of each free move the model makes
        assert np.isclose(row["blocked"], 2 / 6)
        # the rollout lags 0.2 cells per free step; a blocked episode gains 0.8 per step; in units
        # of the mean distance from each state to its nearest other state
        flat = states[:, k].reshape(len(states), -1).astype(float)
        dist = np.linalg.norm(flat[:, None] - flat[None], axis=-1) + np.diag(np.full(len(flat), np.inf))
        expected = (4 * 0.2 * k + 2 * 0.8 * k) / 6 / dist.min(axis=1).mean()
        assert np.isclose(row["error"], expected), (k, row["error"], expected)
    kinds = out["kinds"]
    assert np.isclose(kinds["free"]["value"], 0.8) and np.isclose(kinds["free"]["share"], 12 / 18)
    # a ghost move of 0.8 cells where nothing moves, against a free move of 1 cell
    assert np.isclose(kinds["blocked: board edge"]["value"], 0.8)
    assert np.isclose(kinds["blocked: other object"]["value"], 0.8)
    assert np.isclose(kinds["blocked: board edge"]["share"], 3 / 18)
    assert np.isclose(kinds["blocked: other object"]["share"], 3 / 18)


def test_an_exact_model_does_not_drift():
    starts = np.array([[[r, c], [4, 4]] for r in range(3) for c in range(2)])
    actions = np.full((len(starts), 2), 1)  # object 0 right: free for columns 0..1 over 2 steps
    states = _episodes(starts, actions)
    z = torch.as_tensor(states, dtype=torch.float64)
    out = measure(Undershoot(1.0), z, actions, states, GRID_DIRECTIONS, WIDTH)
    assert all(r["rollout"] == 1.0 and r["error"] == 0.0 and np.isclose(r["move"], 1.0) for r in out["steps"])
