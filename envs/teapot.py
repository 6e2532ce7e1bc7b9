"""SEN-Teapot-v0: the Utah teapot turned by rotations, seen in grayscale by MuJoCo.

The world state is the teapot's orientation, a 3x3 rotation matrix ``z`` (body frame to
world frame), drawn uniformly on SO(3) at reset. An action is a rotation ``a`` about the
teapot's centre, in the world frame, and the transition is the paper's matrix product
``T(z, a) = a z``:

- ``actions="small"`` (default): ``Discrete(6)``; action ``i`` turns by
  :data:`~sen_rl.groups.TEAPOT_SMALL_ANGLE` (12 degrees) about
  :data:`~sen_rl.groups.TEAPOT_SMALL_AXES` ``[i]`` (+x, -x, +y, -y, +z, -z);
- ``actions="large"``: ``Box(-pi, pi, (3,), float32)``, a rotation vector (axis * angle),
  turned into a matrix by :func:`~sen_rl.groups.axis_angle_to_matrix`.

The symmetry (:func:`~sen_rl.groups.teapot_symmetry`) is the cube's 24 rotations, acting
as ``g z`` on states and ``g a g^-1`` on actions. The teapot has no rotational symmetry
of its own (spout and handle), so every orientation gives its own picture.

Observations are ``size x size x 1`` uint8 luminance images of a light teapot on a grey
background, lit by the camera's headlight and a fixed directional light, without shadows.
The camera looks along world +y, with world z up on screen and world x to the right.
Reward is always 0 and episodes never terminate (registration adds a 100-step limit).
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

from sen_rl.envs.base import SymmetricEnv
from sen_rl.envs.teapot_mesh import teapot_mesh
from sen_rl.groups import (
    TEAPOT_ACTION_MODES,
    TEAPOT_SMALL_AXES,
    TEAPOT_SMALL_ROTATIONS,
    axis_angle_to_matrix,
    matrix_to_quaternion,
    random_rotation,
    teapot_symmetry,
)
from sen_rl.render import OffscreenRenderer, mujoco_module

MESH_SUBDIVISIONS = 10  # per patch edge: 32 patches -> about 6,400 triangles
# No shadows and no multisampling: with Mesa's software renderer 4x MSAA makes a 64x64
# frame three times slower (about 3 ms instead of 1 ms) for slightly softer edges.
CAMERA_DISTANCE = 3.0  # from the teapot's centre; its farthest point is at distance 1
CAMERA_FOVY = 45.0
ROTATION_TOL = 1e-6
#: ITU-R BT.601 luma weights, RGB -> gray
LUMA = np.array([0.299, 0.587, 0.114])


def _floats(a: np.ndarray) -> str:
    return " ".join(f"{x:.7g}" for x in np.asarray(a).ravel())


@functools.lru_cache(maxsize=1)
def scene_xml() -> str:
    """The MuJoCo scene: a mocap teapot at the origin, a camera, lights and a grey sky."""
    verts, faces = teapot_mesh(MESH_SUBDIVISIONS)
    return f"""
<mujoco model="sen_teapot">
  <visual>
    <global offwidth="512" offheight="512" fovy="{CAMERA_FOVY}"/>
    <headlight ambient="0.2 0.2 0.2" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
    <quality shadowsize="0" offsamples="0"/>
    <map znear="0.1" zfar="20"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="flat" rgb1="0.3 0.3 0.3" rgb2="0.3 0.3 0.3"
             width="8" height="8"/>
    <material name="porcelain" rgba="0.95 0.95 0.95 1" specular="0.3" shininess="0.3"/>
    <mesh name="teapot" inertia="shell" vertex="{_floats(verts)}" face="{" ".join(map(str, faces.ravel()))}"/>
  </asset>
  <worldbody>
    <light name="key" directional="true" castshadow="false" pos="0 0 5" dir="0.55 0.65 -0.55"
           diffuse="0.6 0.6 0.6" specular="0.2 0.2 0.2"/>
    <camera name="view" pos="0 {-CAMERA_DISTANCE} 0" xyaxes="1 0 0 0 0 1" fovy="{CAMERA_FOVY}"/>
    <body name="teapot" mocap="true">
      <geom name="teapot" type="mesh" mesh="teapot" material="porcelain" contype="0" conaffinity="0"
            mass="1"/>
    </body>
  </worldbody>
</mujoco>"""


@functools.lru_cache(maxsize=1)
def _model():
    """The compiled scene, shared read-only by every env of the process."""
    mujoco = mujoco_module()
    # MuJoCo moves a mesh to its centre of mass and gives the geom the opposite offset, so
    # the teapot's bounding-box centre stays on the body origin, the point it turns about
    return mujoco.MjModel.from_xml_string(scene_xml())


def validate_rotation(state, name: str = "state") -> np.ndarray:
    """``state`` as a float64 3x3 rotation matrix, or a ValueError saying what is wrong."""
    try:
        r = np.array(state, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 3x3 rotation matrix, got {state!r}") from exc
    if r.shape != (3, 3):
        raise ValueError(f"{name} must be a 3x3 rotation matrix, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name} must be a finite 3x3 rotation matrix, got {r.tolist()}")
    err = np.abs(r.T @ r - np.eye(3)).max()
    det = np.linalg.det(r)
    if err > ROTATION_TOL or abs(det - 1.0) > ROTATION_TOL:
        raise ValueError(
            f"{name} must be a rotation matrix (R^T R = I and det R = +1 within {ROTATION_TOL}); "
            f"got max |R^T R - I| = {err:.3g}, det = {det:.6g}"
        )
    return r


def orthonormalize(m: np.ndarray) -> np.ndarray:
    """The rotation nearest to ``m`` (polar factor via SVD); commutes with rotations ``g m``."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:  # only for matrices far from any rotation
        u[:, -1] *= -1
        r = u @ vt
    return r


class TeapotEnv(SymmetricEnv):
    """The Utah teapot, rotated by discrete (``actions="small"``) or continuous (``"large"``) actions.

    Parameters: ``render_mode`` (None or "rgb_array"), ``actions`` ("small" or "large"),
    ``size`` (image side in pixels, int in [16, 512]). See the module docstring.
    """

    def __init__(self, render_mode: str | None = None, actions: str = "small", size: int = 64):
        if not isinstance(actions, str) or actions not in TEAPOT_ACTION_MODES:
            raise ValueError(f"actions must be one of {TEAPOT_ACTION_MODES}, got {actions!r}")
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 16 <= size <= 512:
            raise ValueError(f"size must be an int in [16, 512] (image side in pixels), got {size!r}")
        super().__init__(render_mode)
        self.actions = actions
        self.size = int(size)
        self.symmetry = teapot_symmetry(actions)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 1), np.uint8)
        if actions == "small":
            self.action_space = gym.spaces.Discrete(len(TEAPOT_SMALL_AXES))
        else:
            self.action_space = gym.spaces.Box(-np.pi, np.pi, (3,), np.float32)
        mujoco = mujoco_module()
        self._mj = mujoco
        self._model = _model()
        self._data = mujoco.MjData(self._model)
        self._camera = self._mj.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_CAMERA, "view")
        self._renderer: OffscreenRenderer | None = None
        self._state = np.eye(3)

    # -- world state -----------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        """The orientation, a float64 3x3 rotation matrix (a copy)."""
        return self._state.copy()

    def set_state(self, state) -> None:
        self._state = validate_rotation(state)

    def action_matrix(self, action) -> np.ndarray:
        """The rotation matrix of an (already valid) action."""
        if self.actions == "small":
            return TEAPOT_SMALL_ROTATIONS[int(action)]
        return axis_angle_to_matrix(np.asarray(action, dtype=np.float64))

    def _sample_initial_state(self) -> np.ndarray:
        return random_rotation(self.np_random)

    def _advance(self, action) -> None:
        # T(z, a) = a z, then back onto SO(3) so that long episodes do not drift
        self._state = orthonormalize(self.action_matrix(action) @ self._state)

    def hard_negative_states(self, state) -> list[np.ndarray]:
        """The orientation turned by one small action (2 pi / 30) about +-x, +-y, +-z (6 states)."""
        r = validate_rotation(state)
        return [m @ r for m in TEAPOT_SMALL_ROTATIONS]

    def goal_distance(self, state, goal_state) -> float:
        """The geodesic angle (radians, in [0, pi]) between the orientations ``state`` and ``goal_state``.

        That is ``arccos((trace(R_goal^T R) - 1) / 2)``, computed as ``atan2(|axis part|, cos part)``
        of the relative rotation, which keeps full precision near 0 and pi.
        """
        rel = validate_rotation(goal_state, "goal_state").T @ validate_rotation(state)
        cos = (np.trace(rel) - 1.0) / 2.0
        sin = np.linalg.norm([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]]) / 2.0
        return float(np.arctan2(sin, cos))

    # -- rendering -------------------------------------------------------------------------
    def render_state(self, state) -> np.ndarray:
        r = validate_rotation(state)
        self._data.mocap_quat[0] = matrix_to_quaternion(r)
        self._mj.mj_kinematics(self._model, self._data)
        self._mj.mj_camlight(self._model, self._data)  # places the fixed camera and lights
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self._model, self.size, self.size)
        rgb = self._renderer.render(self._data, camera=self._camera)
        gray = rgb @ LUMA
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()
