"""SEN-Custom-v0: pixels of any registered Gymnasium environment, with a declared symmetry.

``gym.make("SEN-Custom-v0", env="InvertedPendulum-v5", symmetry="mypkg.sym:REFLECT")`` makes
the environment ``env`` with ``render_mode="rgb_array"`` and turns it into a pixel environment
with Gymnasium's own wrappers:

    gym.make(env, render_mode="rgb_array", **symmetry.make_kwargs, **env_kwargs)
      -> AddRenderObservation(render_only=True)      the rendered frame is the observation
      -> ResizeObservation((size, size))            only if the frame has another size (needs OpenCV)
      -> FrameStackObservation(frames)              only if frames > 1
      -> TransformObservation                       frames stacked on the channel axis: (H, W, frames * 3)

The symmetry (a :class:`sen_rl.symmetry.Symmetry`, named by its ``"module:NAME"`` path so that
datasets, checkpoints and collection workers can make the same env again from plain
keywords) says how the group acts on the actions and, optionally, on the world states.

World state (``info["state"]``): the last ``frames`` states of the wrapped env, ``[frames, D]``
(oldest first), read generically: ``concat(qpos, qvel)`` for MuJoCo environments, the
``state`` attribute for the classic-control ones (which render with pygame, not installed by
the set-up: ``pip install "gymnasium[classic-control]"``); ``[frames, 0]`` when neither exists (then
no twins, no EE(S) and no state resets). ``render_state`` sets the wrapped env to each state,
renders it through the same wrappers' functions and restores it, so the twin of the identity
is the observation itself.

Episodes: with ``terminate=False`` (the default, what collecting world-model data needs) the
environment keeps simulating after the wrapped env would end the episode (its flag is in
``info["inner_terminated"]``); with ``terminate=True`` its terminations and truncations are
passed on, as an agent needs.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from sen_rl.envs.base import SymmetricEnv
from sen_rl.render import mujoco_module
from sen_rl.symmetry import load_symmetry


def _world_state_io(unwrapped: gym.Env):
    """``(get, set)`` of the wrapped env's world state as a flat float vector, or ``(None, None)``."""
    data = getattr(unwrapped, "data", None)
    if data is not None and hasattr(data, "qpos") and hasattr(unwrapped, "set_state"):
        nq = len(data.qpos)

        def get_mujoco() -> np.ndarray:
            return np.concatenate([data.qpos, data.qvel]).astype(np.float64)

        def set_mujoco(s: np.ndarray) -> None:
            unwrapped.set_state(np.array(s[:nq]), np.array(s[nq:]))

        return get_mujoco, set_mujoco
    if getattr(unwrapped, "state", None) is not None:

        def get_attr() -> np.ndarray:
            return np.array(unwrapped.state, dtype=np.float64).ravel()

        def set_attr(s: np.ndarray) -> None:
            old = unwrapped.state
            unwrapped.state = np.array(s, dtype=np.asarray(old).dtype).reshape(np.shape(old))

        return get_attr, set_attr
    return None, None


class _KinematicsFirst(gym.Wrapper):
    """Renders a MuJoCo env's positions *after* its step, with its own GL context.

    ``mj_step`` leaves the body positions the renderer reads at an earlier stage of the step than
    the final ``qpos``, so a frame would not be the picture of the state reported with it (a few
    pixels off); ``mj_kinematics`` recomputes those positions from ``qpos`` alone and changes
    nothing the next step depends on. Other envs render unchanged.
    """

    def render(self):
        unwrapped = self.env.unwrapped
        data, model = getattr(unwrapped, "data", None), getattr(unwrapped, "model", None)
        if data is not None and model is not None and hasattr(data, "qpos"):
            mujoco_module().mj_kinematics(model, data)
        # freeing another env's EGL context releases the thread's current one (eglReleaseThread),
        # and Gymnasium makes a viewer's context current only when it creates it: make ours current
        viewer = getattr(getattr(unwrapped, "mujoco_renderer", None), "viewer", None)
        if viewer is not None and hasattr(viewer, "make_context_current"):
            viewer.make_context_current()
        return self.env.render()


class CustomEnv(SymmetricEnv):
    """Any registered Gymnasium env that renders ``rgb_array``, seen as pixels, with a declared symmetry.

    :param env: the Gymnasium id of the environment (e.g. ``"InvertedPendulum-v5"``).
    :param symmetry: ``"module.path:NAME"`` of a :class:`sen_rl.symmetry.Symmetry`.
    :param size: side of the square observation; frames of another size are resized.
    :param frames: frames stacked on the channel axis (2 shows velocities).
    :param env_kwargs: ``gym.make`` keywords of ``env`` (on top of the symmetry's ``make_kwargs``).
    :param terminate: pass the wrapped env's terminations and truncations on (agents) or not (collection).
    """

    def __init__(
        self,
        env: str,
        symmetry: str,
        size: int = 64,
        frames: int = 1,
        env_kwargs: dict | None = None,
        terminate: bool = False,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode)
        if not isinstance(env, str) or not env:
            raise ValueError(f"env must be the id of a registered Gymnasium environment, got {env!r}")
        if int(size) < 8 or int(frames) < 1:
            raise ValueError(f"size must be >= 8 and frames >= 1, got size={size}, frames={frames}")
        self.symmetry = load_symmetry(symmetry)
        self.env_id, self.size, self.stacked_frames, self.terminate = env, int(size), int(frames), bool(terminate)
        kwargs = {**dict(self.symmetry.make_kwargs), **dict(env_kwargs or {})}
        mujoco_module()  # picks a headless GL back end before a MuJoCo env imports MuJoCo
        try:
            inner = gym.make(env, render_mode="rgb_array", **kwargs)
        except gym.error.Error as exc:
            raise ValueError(f"cannot make {env!r} with render_mode='rgb_array' and {kwargs}: {exc}") from None
        self._inner = inner
        self.symmetry.check_actions(inner.action_space)
        self.action_space = inner.action_space

        # the pixel pipeline, all Gymnasium wrappers; render_state reuses their own functions
        self._render = gym.wrappers.AddRenderObservation(_KinematicsFirst(inner), render_only=True)
        # after the wrapper's first reset: classic-control envs hold state = None until then
        self._get_world, self._set_world = _world_state_io(inner.unwrapped)
        chain: gym.Env = self._render
        frame = self._render.observation_space  # AddRenderObservation rendered one frame to find it
        if len(frame.shape) != 3 or frame.shape[-1] != 3:
            raise ValueError(f"{env} renders frames of shape {frame.shape}, not RGB (H, W, 3) frames")
        self._resize = None
        if frame.shape[:2] != (self.size, self.size):
            try:
                self._resize = gym.wrappers.ResizeObservation(chain, (self.size, self.size))
            except gym.error.DependencyNotInstalled as exc:
                raise ValueError(
                    f"{env} renders {frame.shape[1]}x{frame.shape[0]} frames and resizing them to {self.size}x"
                    f"{self.size} needs OpenCV ({exc}); or make {env} render at that size, e.g. "
                    f'env_kwargs={{"width": {self.size}, "height": {self.size}}} for MuJoCo envs'
                ) from None
            chain = self._resize
        self._stack = None
        if self.stacked_frames > 1:
            self._stack = gym.wrappers.FrameStackObservation(chain, self.stacked_frames)
            chain = gym.wrappers.TransformObservation(self._stack, self._channels_last, self._stacked_space())
        self._chain = chain
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3 * self.stacked_frames), np.uint8)
        self.metadata = {**SymmetricEnv.metadata, "render_fps": inner.metadata.get("render_fps", 30)}
        self._states: deque = deque(maxlen=self.stacked_frames)

    # -- the pixel pipeline -----------------------------------------------------------------
    def _stacked_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, (self.size, self.size, 3 * self.stacked_frames), np.uint8)

    @staticmethod
    def _channels_last(stacked: np.ndarray) -> np.ndarray:
        """``[F, H, W, 3]`` (FrameStackObservation) -> ``[H, W, 3F]``, oldest frame first."""
        stacked = np.asarray(stacked)
        return np.ascontiguousarray(np.moveaxis(stacked, 0, 2).reshape(*stacked.shape[1:3], -1))

    def _frame(self) -> np.ndarray:
        """The wrapped env's current frame, through the same wrappers' functions as the observations."""
        frame = self._render.observation(None)
        return self._resize.observation(frame) if self._resize is not None else frame

    # -- world states -------------------------------------------------------------------------
    @property
    def has_states(self) -> bool:
        return self._get_world is not None

    def _world(self) -> np.ndarray:
        return self._get_world() if self._get_world is not None else np.zeros(0)

    @property
    def state_shape(self) -> tuple[int, int]:
        """``(frames, D)``, the shape of :meth:`get_state`, known before the first reset."""
        return (self.stacked_frames, len(self._world()))

    def get_state(self) -> np.ndarray:
        """``[frames, D]``: the world states of the stacked frames, oldest first."""
        return np.stack(list(self._states))

    def _check_state(self, state) -> np.ndarray:
        if not self.has_states:
            raise ValueError(f"{self.env_id} exposes no world state (no MuJoCo qpos/qvel, no `state` attribute)")
        s = np.asarray(state, dtype=np.float64)
        want = (self.stacked_frames, len(self._world()))
        if s.shape != want:
            raise ValueError(f"a state of SEN-Custom-v0 with {self.env_id} is [frames, D] = {want}, got {s.shape}")
        return s

    def set_state(self, state) -> None:
        """Set the wrapped env to the last of the stacked states; the frame stack is rendered from all of them."""
        s = self._check_state(state)
        if self._stack is not None:
            # FrameStackObservation keeps its frames in the public deque obs_queue: refill it
            self._stack.obs_queue.clear()
            self._stack.obs_queue.extend(self._render_one(x) for x in s)
        self._set_world(s[-1])
        self._states.clear()
        self._states.extend(s)

    def _render_one(self, world: np.ndarray) -> np.ndarray:
        saved = self._world()
        self._set_world(world)
        try:
            return self._frame()
        finally:
            self._set_world(saved)

    def render_state(self, state) -> np.ndarray:
        s = self._check_state(state)
        frames = np.stack([self._render_one(x) for x in s])
        return self._channels_last(frames) if self.stacked_frames > 1 else frames[0]

    # -- Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        gym.Env.reset(self, seed=seed)
        options = dict(options or {})
        warmup = int(options.pop("warmup", 0))
        state = options.pop("state", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: 'warmup', 'state'")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        obs, info = self._chain.reset(seed=seed)
        self.action_space.seed(None if seed is None else int(self.np_random.integers(2**31)))
        self._states.clear()
        self._states.extend([self._world()] * self.stacked_frames)
        if state is not None:
            self.set_state(state)
            obs = self._observe_chain()
        for _ in range(warmup):
            obs, *_ = self._step_chain(self.random_action())
        return obs, {**info, "state": self.get_state()}

    def _observe_chain(self) -> np.ndarray:
        if self._stack is None:
            return self._frame()
        return self._channels_last(np.stack(list(self._stack.obs_queue)))

    def _step_chain(self, action):
        obs, reward, terminated, truncated, info = self._chain.step(action)
        self._states.append(self._world())
        return obs, reward, terminated, truncated, info

    def step(self, action):
        action = self._check_action(action)
        obs, reward, terminated, truncated, info = self._step_chain(action)
        info = {**info, "state": self.get_state(), "inner_terminated": bool(terminated)}
        if not self.terminate:
            terminated = truncated = False
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self._frame()

    def close(self):
        # A MuJoCo viewer's MjrContext frees its GL objects when garbage-collected, in whatever
        # GL context is current then, i.e. another env's, whose buffers it would destroy (black
        # frames): free it now, in its own context, before Gymnasium destroys that context.
        renderer = getattr(self._inner.unwrapped, "mujoco_renderer", None)
        for viewer in getattr(renderer, "_viewers", {}).values():
            if hasattr(viewer, "con") and hasattr(viewer, "make_context_current"):
                viewer.make_context_current()
                viewer.con.free()
        self._chain.close()
        super().close()


__all__ = ["CustomEnv"]
