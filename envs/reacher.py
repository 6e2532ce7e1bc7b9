"""SEN-Reacher-v0: Gymnasium's MuJoCo Reacher seen from straight above, two frames stacked.

The physics are those of Gymnasium's ``Reacher-v5`` (its own ``reacher.xml``, loaded from
the installed gymnasium package, RK4 at 0.01 s, ``frame_skip=2``) and so is the reward
(``-|fingertip - target| - |a|^2``). What changes is the observation: a ``size x size x 6``
uint8 image holding the previous and the current RGB frame, rendered by an orthographic
camera looking straight down at the arm's base with world +x to the right of the image
and world +y up. That camera makes the D4 action on the world (:mod:`sen_rl.groups`) act
on the image as the matching rotation/flip of the pixel grid (``np.rot90(np.flipud^f(x), k)``
per frame), up to rasterisation.

World state (``info["state"]``, 12 floats, :data:`sen_rl.groups.REACHER_STATE_LAYOUT`):
previous ``qpos`` (joint0, joint1, target_x, target_y), current ``qpos``, current ``qvel``.
The target's slide joints have ``ref`` equal to the target body's offset, so
``(target_x, target_y)`` is the target's world position.

The dynamics are D4-equivariant: joint0 is unlimited, joint1's limits (+-3) and the
target's (+-0.27 on both axes) are symmetric, nothing collides, gravity is normal to the
plane and armature/damping are isotropic; the measured error is float round-off (see
``tests/envs/test_reacher.py``).
"""

from __future__ import annotations

import importlib.resources
from collections import OrderedDict

import gymnasium as gym
import numpy as np

from sen_rl.envs.base import SymmetricEnv
from sen_rl.groups import REACHER_STATE_LAYOUT, reacher_symmetry
from sen_rl.render import OffscreenRenderer, mujoco_module

FRAME_SKIP = 2  # as Reacher-v5
DEFAULT_GOAL = (0.2, 0.2)
#: The target's slide joints are limited to this range on both axes in reacher.xml.
GOAL_LIMIT = 0.27
#: Half the side of the square of the plane the camera shows: the target's whole range
#: (0.27 + its radius 0.009); the arm reaches 0.21 (+ the fingertip's radius 0.01).
VIEW_HALF_EXTENT = 0.28
#: Hard negatives (HH@1): one joint angle moved by this much (radians) in both stacked frames.
NEGATIVE_ANGLE = 0.1
#: The largest image side accepted (the off-screen buffer is sized to fit it).
MAX_SIZE = 1024


def reacher_xml_path() -> str:
    """Path of Gymnasium's Reacher model file inside the installed gymnasium package."""
    # resolve from the top-level package: importing gymnasium.envs.mujoco would pull in its
    # renderer (and imageio), which this env does not need
    path = importlib.resources.files("gymnasium") / "envs" / "mujoco" / "assets" / "reacher.xml"
    if not path.is_file():
        raise FileNotFoundError(f"Gymnasium's reacher.xml is not at {path}; is gymnasium 1.x installed?")
    return str(path)


class ReacherEnv(SymmetricEnv):
    """Pixel Reacher with a D4-equivariant top-down view.

    Args:
        render_mode: ``None`` or ``"rgb_array"`` (the current frame, ``size x size x 3``).
        size: side of the square images in pixels (int, 16..1024; 128 by default, 64 works).
        goal: fixed target position ``(x, y)`` (each coordinate within +-0.27, the target
            joints' range), or ``None`` for Reacher-v5's random goal, uniform in the disc
            of radius 0.2. The default ``(0.2, 0.2)`` lies 0.283 from the base, beyond the
            arm's reach of 0.21, so the best reward_dist there is about -0.073.

    Actions: ``Box(-1, 1, (2,), float32)`` torques on joint0 and joint1 (gear 200).
    Rewards: ``reward_dist + reward_ctrl`` with ``reward_dist = -|fingertip - target|`` and
    ``reward_ctrl = -sum(a^2)``, both in ``info``; the distance is taken at the state the
    step ends in.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # 1 / (0.01 s * frame_skip)
    stacked_frames = 2  # previous and current RGB frame

    def __init__(self, render_mode: str | None = None, size: int = 128, goal=DEFAULT_GOAL):
        super().__init__(render_mode)
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 16 <= size <= MAX_SIZE:
            raise ValueError(f"size must be an int in [16, {MAX_SIZE}] (image side in pixels), got {size!r}")
        self.size = int(size)
        self.goal = self._validate_goal(goal)
        self.symmetry = reacher_symmetry()

        mujoco = mujoco_module()
        self._mj = mujoco
        self._model = mujoco.MjModel.from_xml_path(reacher_xml_path())
        vis = self._model.vis
        vis.global_.offwidth = max(vis.global_.offwidth, self.size)
        vis.global_.offheight = max(vis.global_.offheight, self.size)
        vis.quality.shadowsize = 0  # no shadow maps (the model has no lights; the headlight casts none)
        # no specular highlight: with per-vertex lighting it paints a gradient along one
        # diagonal of the ground quad, which breaks the image's D4 symmetry
        vis.headlight.specular[:] = 0.0
        vis.headlight.ambient[:] = 0.3
        vis.headlight.diffuse[:] = 0.6
        self._data = mujoco.MjData(self._model)  # the simulation
        self._render_data = mujoco.MjData(self._model)  # scratch for render_state
        self._kinematics_data = mujoco.MjData(self._model)  # scratch for fingertip_position
        self._init_qpos = self._model.qpos0.copy()  # (0, 0, 0.1, -0.1), Reacher-v5's init_qpos
        self._prev_qpos = self._data.qpos.copy()
        self._fingertip = self._model.body("fingertip").id
        self._target = self._model.body("target").id
        self._reward_info = {"reward_dist": 0.0, "reward_ctrl": 0.0}

        # orthographic, straight down at the base; azimuth 90 puts world +y at the top of
        # the image and +x to the right. An orthographic free camera shows a frustum of
        # height 2 * distance * tan(fovy / 2).
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.orthographic = 1
        self._camera.lookat[:] = (0.0, 0.0, 0.0)
        self._camera.elevation = -90.0
        self._camera.azimuth = 90.0
        self._camera.distance = VIEW_HALF_EXTENT / np.tan(np.deg2rad(vis.global_.fovy) / 2)
        self._renderer: OffscreenRenderer | None = None
        self._frames: OrderedDict[bytes, np.ndarray] = OrderedDict()  # qpos -> frame, the last few

        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 6), np.uint8)

    # -- validation -----------------------------------------------------------------------
    @staticmethod
    def _validate_goal(goal):
        if goal is None:
            return None
        try:
            arr = np.asarray(goal, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        ok = arr is not None and arr.shape == (2,) and bool(np.all(np.isfinite(arr)))
        if not ok or np.any(np.abs(arr) > GOAL_LIMIT):
            raise ValueError(
                f"goal must be None (random, as Reacher-v5) or (x, y) with |x|, |y| <= {GOAL_LIMIT} "
                f"(the target joints' range), got {goal!r}"
            )
        return arr

    @staticmethod
    def _validate_state(state) -> np.ndarray:
        try:
            s = np.asarray(state, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a Reacher state is 12 floats ({REACHER_STATE_LAYOUT}), got {state!r}") from exc
        if s.shape != (12,):
            raise ValueError(f"a Reacher state has shape (12,) ({REACHER_STATE_LAYOUT}), got shape {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"a Reacher state must be finite, got {s.tolist()}")
        return s

    def _check_action(self, action):
        arr = np.asarray(action)
        if arr.dtype == np.float64:  # double-precision torques are fine; the space is float32
            arr = arr.astype(np.float32)
        return super()._check_action(arr)

    # -- state ----------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        return np.concatenate([self._prev_qpos, self._data.qpos, self._data.qvel]).astype(np.float64)

    def set_state(self, state) -> None:
        s = self._validate_state(state)
        mj = self._mj
        # a fresh MjData state (no warm start, time 0), so that the state alone fixes the future
        mj.mj_resetData(self._model, self._data)
        self._prev_qpos = s[0:4].copy()
        self._data.qpos[:] = s[4:8]
        self._data.qvel[:] = s[8:12]
        mj.mj_forward(self._model, self._data)

    def _sample_initial_state(self) -> np.ndarray:
        # Reacher-v5's reset_model, draw for draw
        rng = self.np_random
        qpos = rng.uniform(low=-0.1, high=0.1, size=4) + self._init_qpos
        if self.goal is None:
            while True:
                goal = rng.uniform(low=-0.2, high=0.2, size=2)
                if np.linalg.norm(goal) < 0.2:
                    break
        else:
            goal = self.goal
        qpos[2:] = goal
        qvel = rng.uniform(low=-0.005, high=0.005, size=4)
        qvel[2:] = 0.0
        return np.concatenate([qpos, qpos, qvel])

    # -- dynamics -------------------------------------------------------------------------
    def _advance(self, action) -> None:
        mj = self._mj
        self._prev_qpos = self._data.qpos.copy()
        self._data.ctrl[:] = action
        mj.mj_step(self._model, self._data, nstep=FRAME_SKIP)
        # positions of the bodies at the new qpos (mj_step leaves those of its last stage)
        mj.mj_kinematics(self._model, self._data)

    def hard_negative_states(self, state) -> list[np.ndarray]:
        """One joint angle moved by +-NEGATIVE_ANGLE in both the previous and the current frame (4 states)."""
        s = self._validate_state(state)
        out = []
        for joint in (0, 1):
            for sign in (1.0, -1.0):
                t = s.copy()
                t[[joint, 4 + joint]] += sign * NEGATIVE_ANGLE  # previous qpos [0:4], current qpos [4:8]
                out.append(t)
        return out

    def fingertip_position(self, state) -> np.ndarray:
        """World position ``(x, y, z)`` of the fingertip in ``state`` (MuJoCo's forward kinematics
        of its current joint angles ``state[4:6]``; env state untouched)."""
        s = self._validate_state(state)
        data = self._kinematics_data
        data.qpos[:] = s[4:8]
        self._mj.mj_kinematics(self._model, data)
        return data.xpos[self._fingertip].copy()

    def goal_distance(self, state, goal_state) -> float:
        """Euclidean distance (metres) between the fingertip in ``state`` and in ``goal_state``.

        Only the current joint angles matter: velocities, the previous frame and the target do not.
        """
        return float(np.linalg.norm(self.fingertip_position(state) - self.fingertip_position(goal_state)))

    def _reward(self, action) -> float:
        vec = self._data.xpos[self._fingertip] - self._data.xpos[self._target]
        reward_dist = -float(np.linalg.norm(vec))
        reward_ctrl = -float(np.square(np.asarray(action, dtype=np.float64)).sum())
        self._reward_info = {"reward_dist": reward_dist, "reward_ctrl": reward_ctrl}
        return reward_dist + reward_ctrl

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info.update(self._reward_info)
        return obs, reward, terminated, truncated, info

    # -- rendering ------------------------------------------------------------------------
    def _frame(self, qpos: np.ndarray) -> np.ndarray:
        key = qpos.tobytes()
        frame = self._frames.get(key)
        if frame is None:
            mj = self._mj
            self._render_data.qpos[:] = qpos
            mj.mj_kinematics(self._model, self._render_data)
            if self._renderer is None:
                self._renderer = OffscreenRenderer(self._model, self.size, self.size)
            frame = self._renderer.render(self._render_data, camera=self._camera).copy()
            self._frames[key] = frame
            while len(self._frames) > 4:  # a step's previous frame is the last step's current one
                self._frames.popitem(last=False)
        return frame

    def render_state(self, state) -> np.ndarray:
        """Both frames of ``state`` (previous, current) stacked on channels; env state untouched."""
        s = self._validate_state(state)
        return np.concatenate([self._frame(s[0:4]), self._frame(s[4:8])], axis=-1)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._frames.clear()
        super().close()
