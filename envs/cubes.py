"""SEN-Cubes-v0: the 3D Blocks domain, rendered by MuJoCo in perspective.

The dynamics are those of 2D Shapes (:mod:`sen_rl.envs.grid`); the picture is five
coloured cubes on a board seen by an oblique perspective camera, so a quarter turn of the
world is *not* a rotation of the image: the case SEN is built for.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sen_rl.envs.grid import GridWorldEnv
from sen_rl.envs.shapes import COLOURS
from sen_rl.render import OffscreenRenderer, mujoco_module

CUBE_HALF = 0.4  # half the side of a cube; cells are 1 apart


def _scene_xml(n_objects: int, width: int) -> str:
    half = width / 2
    cubes = "\n".join(
        f'<body name="cube{i}" mocap="true" pos="0 0 {CUBE_HALF}">'
        f'<geom type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" '
        f'rgba="{" ".join(f"{v / 255:.3f}" for v in COLOURS[i])} 1"/></body>'
        for i in range(n_objects)
    )
    return f"""
<mujoco>
  <visual>
    <global offwidth="512" offheight="512"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <quality shadowsize="0"/>
  </visual>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="0.3 0.5 -1" castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom type="plane" size="{half} {half} 0.1" rgba="0.55 0.55 0.55 1"/>
    {cubes}
  </worldbody>
</mujoco>"""


class CubesEnv(GridWorldEnv):
    """3D Blocks: coloured cubes on a ``width x width`` board, ``size x size x 3`` uint8 images.

    Same state, actions and symmetry as :class:`~sen_rl.envs.shapes.ShapesEnv`; cell
    ``(row, col)`` sits at world ``(col - (width-1)/2, (width-1)/2 - row)``, row 0 farthest
    from the camera.
    """

    def __init__(self, render_mode: str | None = None, n_objects: int = 5, width: int = 5, size: int = 50):
        if isinstance(n_objects, int | np.integer) and n_objects > len(COLOURS):
            raise ValueError(f"n_objects must be at most {len(COLOURS)} (one colour each), got {n_objects}")
        if not isinstance(size, int | np.integer) or not 16 <= size <= 512:
            raise ValueError(f"size must be an int in [16, 512] (image side in pixels), got {size!r}")
        super().__init__(render_mode, n_objects=n_objects, width=width)
        self.size = int(size)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        mujoco = mujoco_module()
        self._mj = mujoco
        self._model = mujoco.MjModel.from_xml_string(_scene_xml(self.n_objects, self.width))
        self._data = mujoco.MjData(self._model)
        self._renderer: OffscreenRenderer | None = None
        # in front of the board (negative y), high up, looking down at its centre
        self._camera = mujoco.MjvCamera()
        self._camera.lookat[:] = (0.0, 0.1, 0.0)
        self._camera.distance = 1.5 * self.width
        self._camera.elevation = -60.0
        self._camera.azimuth = 90.0

    def _world_xy(self, cells: np.ndarray) -> np.ndarray:
        mid = (self.width - 1) / 2
        return np.stack([cells[:, 1] - mid, mid - cells[:, 0]], axis=-1).astype(np.float64)

    def render_state(self, state) -> np.ndarray:
        cells = self._validate_state(state)
        self._data.mocap_pos[:, :2] = self._world_xy(cells)
        self._data.mocap_pos[:, 2] = CUBE_HALF
        self._mj.mj_kinematics(self._model, self._data)
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self._model, self.size, self.size)
        return self._renderer.render(self._data, camera=self._camera).copy()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()
