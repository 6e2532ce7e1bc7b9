"""The block-pushing dynamics shared by 2D Shapes and 3D Cubes.

Five objects on a 5x5 board; action ``object * 4 + direction`` moves one object one cell
(directions ``[up, right, down, left]``, row 0 at the top). A move off the board or onto
another object does nothing. The state is an int array ``[n_objects, 2]`` of (row, col)
cells; the group is C4 (quarter turns of the board, see :mod:`sen_rl.groups`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sen_rl.envs.base import SymmetricEnv
from sen_rl.groups import GRID_DELTAS, grid_symmetry


def move_target(cells: np.ndarray, action: int) -> tuple[int, np.ndarray]:
    """The moving object of ``action`` and the cell it heads for (possibly off the board)."""
    obj, direction = divmod(int(action), 4)
    return obj, cells[obj] + GRID_DELTAS[direction]


def off_board(cells: np.ndarray, action: int, width: int) -> bool:
    """Whether ``action`` would move its object off the board."""
    _, new = move_target(cells, action)
    return not (0 <= new[0] < width and 0 <= new[1] < width)


def grid_step(cells: np.ndarray, action: int, width: int) -> np.ndarray:
    """The board after ``action``; blocked moves leave it unchanged."""
    obj, new = move_target(cells, action)
    if off_board(cells, action, width):
        return cells
    if any((new == cells[o]).all() for o in range(len(cells)) if o != obj):
        return cells
    out = cells.copy()
    out[obj] = new
    return out


class GridWorldEnv(SymmetricEnv):
    """Base of the grid domains: state, dynamics, validation. Subclasses paint the board."""

    def __init__(self, render_mode: str | None = None, n_objects: int = 5, width: int = 5):
        super().__init__(render_mode)
        if not isinstance(n_objects, int | np.integer) or not 1 <= n_objects <= width * width:
            raise ValueError(f"n_objects must be an int in [1, {width * width}], got {n_objects!r}")
        if not isinstance(width, int | np.integer) or width < 2:
            raise ValueError(f"width must be an int >= 2, got {width!r}")
        self.n_objects, self.width = int(n_objects), int(width)
        self.symmetry = grid_symmetry(self.width)
        self.action_space = gym.spaces.Discrete(4 * self.n_objects)
        self._cells = np.zeros((self.n_objects, 2), dtype=np.int64)

    def get_state(self) -> np.ndarray:
        return self._cells.copy()

    def _validate_state(self, state) -> np.ndarray:
        cells = np.asarray(state)
        if cells.shape != (self.n_objects, 2) or not np.issubdtype(cells.dtype, np.integer):
            raise ValueError(
                f"a grid state is an int array of shape ({self.n_objects}, 2) with (row, col) cells, "
                f"got {cells.dtype} {cells.shape}"
            )
        if cells.min() < 0 or cells.max() >= self.width:
            raise ValueError(f"grid cells must lie in [0, {self.width - 1}], got {cells.tolist()}")
        if len({tuple(c) for c in cells.tolist()}) != self.n_objects:
            raise ValueError(f"two objects share a cell in {cells.tolist()}")
        return cells.astype(np.int64)

    def set_state(self, state) -> None:
        self._cells = self._validate_state(state).copy()

    def _sample_initial_state(self) -> np.ndarray:
        flat = self.np_random.choice(self.width * self.width, size=self.n_objects, replace=False)
        return np.stack(np.divmod(flat, self.width), axis=-1).astype(np.int64)

    def _advance(self, action) -> None:
        self._cells = grid_step(self._cells, int(action), self.width)

    def hard_negative_states(self, state) -> list[np.ndarray]:
        """Every valid move of one object by one cell (2 to 4 * n_objects states)."""
        cells = self._validate_state(state)
        moved = (grid_step(cells, a, self.width) for a in range(self.action_space.n))
        return [s for s in moved if not np.array_equal(s, cells)]

    def goal_distance(self, state, goal_state) -> float:
        """Sum over objects of the Manhattan distance (in cells) from its cell to its goal cell; 0 iff equal."""
        cells, goal = self._validate_state(state), self._validate_state(goal_state)
        return float(np.abs(cells - goal).sum())
