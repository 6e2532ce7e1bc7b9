"""Headless MuJoCo rendering: choose an OpenGL back end before MuJoCo is first imported.

MuJoCo reads ``MUJOCO_GL`` when it is imported. Without a display and with nothing set,
rendering fails with "an OpenGL platform library has not been loaded", so sen-rl picks
EGL (Mesa's software renderer works) unless the user chose a back end. Every module of
sen-rl imports MuJoCo through :func:`mujoco_module`.
"""

from __future__ import annotations

import atexit
import os
import weakref

import numpy as np

INSTALL_HINT = (
    "MuJoCo could not render off-screen. Install Mesa's EGL/OSMesa libraries "
    "(Debian/Ubuntu: `apt-get install libegl1 libgl1 libosmesa6`) and/or set MUJOCO_GL to "
    "'egl' or 'osmesa' (or 'glfw' with a display) before importing sen_rl."
)


def _choose_backend() -> None:
    if os.environ.get("MUJOCO_GL"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return  # MuJoCo's default (GLFW) works with a display
    os.environ["MUJOCO_GL"] = "egl"
    # PyOpenGL must agree with MuJoCo, or it may load a GLX context that cannot exist here
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def mujoco_module():
    """Import MuJoCo with a working off-screen back end chosen first."""
    _choose_backend()
    import mujoco

    return mujoco


# Renderers still open at interpreter exit must be closed before MuJoCo's own exit hook
# terminates the EGL display, or they raise EGL errors during shutdown. atexit runs hooks
# in reverse order, and MuJoCo registers its hook with the first GL context, so ours is
# registered right after that context exists.
_LIVE: weakref.WeakSet = weakref.WeakSet()
_HOOKED = False


def _close_all() -> None:
    for renderer in list(_LIVE):
        renderer.close()


class OffscreenRenderer:
    """A ``mujoco.Renderer`` with an explicit close and a clear error when GL is missing."""

    def __init__(self, model, height: int, width: int):
        mujoco = mujoco_module()
        try:
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as exc:  # the message from GL back ends is cryptic: add the fix
            raise RuntimeError(f"{INSTALL_HINT} (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: {exc})") from exc
        global _HOOKED
        _LIVE.add(self)
        if not _HOOKED:
            atexit.register(_close_all)
            _HOOKED = True

    def render(self, data, camera=-1) -> np.ndarray:
        self._renderer.update_scene(data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
