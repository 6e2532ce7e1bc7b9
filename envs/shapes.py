"""SEN-Shapes-v0: 2D Shapes, painted with numpy.

Every object has its own colour and a shape that is itself invariant under quarter turns
(circle, square, diamond, cross, ring), so a quarter turn of the world state re-renders as
exactly ``np.rot90`` of the image: the one domain where the pixel action of the group is
known, which the paper's "Full" baseline assumes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sen_rl.envs.grid import GridWorldEnv

CELL = 10
# distinct, saturated colours (uint8 RGB), one per object
COLOURS = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ],
    dtype=np.uint8,
)


def _shape_masks(cell: int = CELL) -> list[np.ndarray]:
    """Boolean ``cell x cell`` masks, each symmetric under rot90 about the cell centre."""
    c = (cell - 1) / 2
    i, j = np.mgrid[0:cell, 0:cell]
    di, dj = np.abs(i - c), np.abs(j - c)
    r = np.hypot(di, dj)
    circle = r <= c + 0.1
    square = (di <= c - 0.5) & (dj <= c - 0.5)
    diamond = di + dj <= c + 0.6
    cross = ((di <= 1) | (dj <= 1)) & (np.maximum(di, dj) <= c + 0.1)
    ring = (r <= c + 0.1) & (r >= c - 2.2)
    masks = [circle, square, diamond, cross, ring]
    for m in masks:  # the property the domain promises
        assert np.array_equal(np.rot90(m), m)
    return masks


SHAPE_NAMES = ("circle", "square", "diamond", "cross", "ring")
_MASKS = _shape_masks()


class ShapesEnv(GridWorldEnv):
    """2D Shapes: ``n_objects`` coloured shapes on a ``width x width`` grid of 10-pixel cells.

    Observation: ``(10*width, 10*width, 3)`` uint8 on a black background (50x50x3 by
    default). Action ``object * 4 + direction``, directions ``[up, right, down, left]``.
    Reward 0: the domain is for learning world models; goals come from planners.
    """

    def __init__(self, render_mode: str | None = None, n_objects: int = 5, width: int = 5):
        if isinstance(n_objects, int | np.integer) and n_objects > len(COLOURS):
            raise ValueError(f"n_objects must be at most {len(COLOURS)} (one colour each), got {n_objects}")
        super().__init__(render_mode, n_objects=n_objects, width=width)
        side = CELL * self.width
        self.observation_space = gym.spaces.Box(0, 255, (side, side, 3), np.uint8)

    def render_state(self, state) -> np.ndarray:
        cells = self._validate_state(state)
        side = CELL * self.width
        img = np.zeros((side, side, 3), dtype=np.uint8)
        for obj, (r, c) in enumerate(cells):
            mask = _MASKS[obj % len(_MASKS)]
            block = img[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL]
            block[mask] = COLOURS[obj]
        return img
