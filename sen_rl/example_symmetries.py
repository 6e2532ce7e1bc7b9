"""Worked examples of declared symmetries for environments nobody here wrote (``docs/custom_environments.md``).

``sen-rl collect --env InvertedPendulum-v5 --symmetry sen_rl.example_symmetries:INVERTED_PENDULUM ...``
``sen-rl collect --env Reacher-v5 --symmetry sen_rl.example_symmetries:REACHER ...``
"""

from __future__ import annotations

import numpy as np

from sen_rl.envs.reacher import VIEW_HALF_EXTENT
from sen_rl.groups import plane_group, reacher_symmetry
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

#: MuJoCo's default vertical field of view of the free camera (reacher.xml sets no other).
_FREE_CAMERA_FOVY = 45.0

#: Gymnasium's default camera for Reacher-v5 looks at the arena from an oblique angle. This one is
#: SEN-Reacher-v0's: orthographic, straight down (elevation -90) at the arm's base, azimuth 90
#: (world +x to the right of the picture, +y up), showing the square |x|, |y| <= 0.28 (an
#: orthographic free camera shows a height of 2 * distance * tan(fovy / 2)). The D4 action on
#: the world is then the same rotation/flip of the picture about its centre
#: (:func:`sen_rl.groups.d4_act_on_embedding`). The arena's walls at +-0.3 lie just outside.
REACHER_CAMERA = {
    "type": 0,
    "trackbodyid": -1,
    "orthographic": 1,
    "lookat": [0.0, 0.0, 0.0],
    "distance": VIEW_HALF_EXTENT / float(np.tan(np.deg2rad(_FREE_CAMERA_FOVY) / 2)),
    "azimuth": 90.0,
    "elevation": -90.0,
}

#: Reacher-v5's world state (one frame): MuJoCo's ``(qpos, qvel)``.
REACHER_V5_STATE_LAYOUT = "(joint0, joint1, target_x, target_y, joint0', joint1', target_x', target_y')"
_SEN_REACHER = reacher_symmetry()


def _reacher_rule(g: tuple[int, int]):
    """The D4 element ``g`` on Reacher-v5's world state, as SEN-Reacher-v0 (the same reacher.xml) moves it.

    SEN-Reacher-v0's state is (previous qpos, qpos, qvel) (:data:`sen_rl.groups.REACHER_STATE_LAYOUT`);
    the rule is read off it by giving it this qpos as the previous one too.
    """

    def rule(state: np.ndarray) -> np.ndarray:
        s = np.asarray(state, dtype=np.float64)
        if s.shape[-1] != 8:
            raise ValueError(f"a Reacher-v5 world state is {REACHER_V5_STATE_LAYOUT} (8 numbers), got shape {s.shape}")
        return _SEN_REACHER.act_on_state(g, np.concatenate([s[..., :4], s], axis=-1))[..., 4:]

    return rule


#: Gymnasium's Reacher-v5 (random goals) under D4, seen through :data:`REACHER_CAMERA`.
#: Joint 0 turns the arm about the base at the origin and its zero points along world +x; the
#: target's slide joints have ``ref`` equal to the target body's offset, so (target_x, target_y)
#: is its world position. The generators (:data:`sen_rl.groups.PLANE_GROUPS`):
#:
#: - ``flip`` = D4's ``(1, 2)``, the picture's left <-> right mirror, world ``(x, y) -> (-x, y)``
#:   (mirroring about the y axis, *not* about joint 0's zero direction +x, which is ``(1, 0)``):
#:   joint0 -> pi - joint0, joint1 -> -joint1, both angular velocities change sign, the target
#:   and its velocity mirror, and both torques change sign (a mirror reverses turning senses).
#: - ``turn`` = ``(0, 1)``, a counter-clockwise quarter turn: joint0 -> joint0 + pi/2, the target
#:   and its velocity turn by 90 degrees, everything else (torques included) unchanged.
#:
#: ``+ pi/2`` is affine, so the state rule is a function, which ``Symmetry`` does not check against
#: the relations (four turns add 2 pi to joint0, the same arm); the tests check them with joint0
#: taken modulo 2 pi. The dynamics commute with all eight elements to
#: float round-off: joint0 is unlimited and enters only through the base's orientation, joint1's
#: limits (+-3) and the target's (+-0.27 on both axes) are symmetric, nothing collides, gravity
#: is normal to the plane. Pictures (64x64): the picture of g.s and g applied to the picture of s
#: agree within 32 of 255 levels on at least 99% of the pixels (worst of 200 random states: 0.98%
#: differ under mirrors, the arm's anti-aliased edges; 0.02% under rotations). Few pixels are
#: *exactly* equal under quarter turns and the x/y mirrors (about 5%): the headlight's specular
#: highlight on the ground, lit per vertex, shades it along one diagonal of the ground quad, up to
#: 24 levels off D4 symmetry; the half turn and the diagonal mirrors keep 98% of the pixels equal
#: (``tests/envs/test_custom.py``).
REACHER = Symmetry(
    group="D4",
    action={"flip": -np.eye(2), "turn": np.eye(2)},
    state={name: _reacher_rule(g) for name, g in plane_group("D4").generators},
    make_kwargs={"width": 64, "height": 64, "default_camera_config": REACHER_CAMERA},
    description="D4 about the arm's base: turns add pi/2 to joint0 and turn the target; mirrors negate torques",
)

__all__ = ["INVERTED_PENDULUM", "INVERTED_PENDULUM_CAMERA", "REACHER", "REACHER_CAMERA", "REACHER_V5_STATE_LAYOUT"]
