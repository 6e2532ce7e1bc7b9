"""Worked examples of declared symmetries for environments nobody here wrote (``docs/custom_environments.md``).

``sen-rl collect --env InvertedPendulum-v5 --symmetry sen_rl.example_symmetries:INVERTED_PENDULUM ...``
"""

from __future__ import annotations

import numpy as np

from sen_rl.symmetry import Symmetry

#: Gymnasium's default camera for InvertedPendulum-v5 aims at the median of the bodies in the
#: state of the *first* rendered frame, so the picture of a state depends on the episode's
#: start. A fixed free camera on the plane x = 0, looking along +y, level, far enough to see
#: the whole rail (x in [-1, 1]): the world mirror x -> -x is then the picture's left <-> right
#: mirror about its vertical centre line (up to rasterisation and shading, about 2% of pixels).
INVERTED_PENDULUM_CAMERA = {
    "type": 0,
    "trackbodyid": -1,
    "lookat": [0.0, 0.0, 0.3],
    "distance": 3.0,
    "azimuth": 90.0,
    "elevation": 0.0,
}

#: InvertedPendulum-v5 mirrored about the plane x = 0: the cart's position and the pole's angle
#: change sign (the hinge turns about y), so do both velocities and the force on the cart.
#: World state (one frame): MuJoCo's ``(qpos, qvel)`` = (x, angle, x', angle').
INVERTED_PENDULUM = Symmetry(
    group="D1",
    action={"flip": [[-1.0]]},
    state={"flip": -np.eye(4)},
    make_kwargs={"width": 64, "height": 64, "default_camera_config": INVERTED_PENDULUM_CAMERA},
    description="x -> -x, angle -> -angle, force -> -force; the picture's left-right mirror",
)

__all__ = ["INVERTED_PENDULUM", "INVERTED_PENDULUM_CAMERA"]
