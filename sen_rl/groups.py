"""Every group convention of sen-rl, in one place.

Environments, networks and metrics all read the conventions below, so that "a quarter
turn" or "a reflection" means the same thing everywhere.

Groups and how their elements are written:

- **C4** (grid domains): an ``int`` ``k`` in ``0..3``, ``k`` counter-clockwise quarter
  turns of the board as it appears on screen (row 0 at the top). A turn maps cell
  ``(r, c)`` to ``(W-1-c, r)``, exactly like ``np.rot90(image, k)``, and rotates the
  move directions ``[up, right, down, left]`` as up->left, right->up, down->right,
  left->down: direction ``d`` goes to ``(d - k) mod 4``.
- **D4** (Reacher): a tuple ``(f, k)`` with ``f`` in ``{0, 1}`` and ``k`` in ``0..3``,
  meaning "first reflect ``f`` times about the world x axis, then rotate by ``k`` quarter
  turns counter-clockwise about the arm's base" (``g = r^k m^f``). The reflection
  ``(x, y) -> (x, -y)``
  negates every joint angle, joint velocity and torque; a rotation adds ``k pi/2`` to the
  first joint angle, rotates the goal, and leaves torques unchanged ("rho_flip").
- **SO(3)** (Teapot): a 3x3 rotation matrix. ``g`` acts on an orientation ``z`` as
  ``g z`` and on an action (itself a rotation) as ``g a g^-1``. The finite set we test and
  evaluate with is the 24-element rotation group of the cube (:func:`octahedral_group`),
  which maps the six discrete actions (+-x, +-y, +-z) onto each other.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- C4 / grids

GRID_DIRECTIONS = ("up", "right", "down", "left")
#: (row, col) displacement of each direction, row 0 at the top of the image.
GRID_DELTAS = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)
C4_ELEMENTS: tuple[int, ...] = (0, 1, 2, 3)


def c4_rotate_cells(k: int, cells: np.ndarray, width: int) -> np.ndarray:
    """Rotate grid cells ``[..., 2]`` (row, col) by ``k`` counter-clockwise quarter turns."""
    out = np.asarray(cells).copy()
    for _ in range(k % 4):
        r, c = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0], out[..., 1] = width - 1 - c, r
    return out


def c4_rotate_direction(k: int, direction):
    """Direction index after ``k`` counter-clockwise quarter turns (up -> left for k=1)."""
    return (np.asarray(direction) - k) % 4


def c4_rotate_grid_action(k: int, action):
    """Grid action ``object * 4 + direction`` after ``k`` quarter turns (object unchanged)."""
    action = np.asarray(action)
    return (action // 4) * 4 + c4_rotate_direction(k, action % 4)


def c4_compose(k1: int, k2: int) -> int:
    """The element ``k1 k2`` (apply ``k2`` first)."""
    return (k1 + k2) % 4


def c4_inverse(k: int) -> int:
    return (-k) % 4


# --------------------------------------------------------------------------- D4 / plane

D4_ELEMENTS: tuple[tuple[int, int], ...] = tuple((f, k) for f in (0, 1) for k in range(4))


def rotation_2d(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def d4_matrix(g: tuple[int, int]) -> np.ndarray:
    """The 2x2 matrix of ``g = r^k m^f`` acting on plane vectors (x, y)."""
    f, k = g
    m = np.diag([1.0, -1.0]) if f else np.eye(2)
    # exact entries for quarter turns (cos/sin of k pi/2 would leave 6e-17 residues)
    r = np.array([[1, 0], [0, 1]], float)
    q = np.array([[0, -1], [1, 0]], float)
    for _ in range(k % 4):
        r = q @ r
    return r @ m


def d4_compose(g1: tuple[int, int], g2: tuple[int, int]) -> tuple[int, int]:
    """The element ``g1 g2`` (apply ``g2`` first): r^a m^f r^b m^h = r^(a + (-1)^f b) m^(f+h)."""
    f1, k1 = g1
    f2, k2 = g2
    return ((f1 + f2) % 2, (k1 + (-k2 if f1 else k2)) % 4)


def d4_inverse(g: tuple[int, int]) -> tuple[int, int]:
    f, k = g
    return (f, k) if f else (0, (-k) % 4)


def d4_act_on_angle(g: tuple[int, int], angle):
    """A base-joint angle (measured from the world x axis) under ``g``."""
    f, k = g
    return (-np.asarray(angle) if f else np.asarray(angle)) + k * np.pi / 2


def d4_flip_sign(g: tuple[int, int]) -> int:
    """The "rho_flip" representation: -1 for reflections, +1 for rotations."""
    return -1 if g[0] else 1


# --------------------------------------------------------------------------- SO(3)


def octahedral_group() -> np.ndarray:
    """The 24 rotations of the cube as an array ``[24, 3, 3]``, identity first.

    Signed permutation matrices with determinant +1, in a fixed order (lexicographic in
    the permutation, then the signs), so element indices are stable across versions.
    """
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs, strict=True)):
                m[row, col] = s
            if np.linalg.det(m) > 0:
                mats.append(m)
    out = np.stack(mats)
    assert out.shape == (24, 3, 3) and np.allclose(out[0], np.eye(3))
    return out


def axis_angle_to_matrix(v) -> np.ndarray:
    """Rodrigues' formula for rotation vectors ``[..., 3]`` (axis * angle) -> ``[..., 3, 3]``."""
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    axis = np.where(theta > 1e-12, v / np.maximum(theta, 1e-12), 0.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    kmat = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*v.shape[:-1], 3, 3)
    th = theta[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return eye + np.sin(th) * kmat + (1 - np.cos(th)) * kmat @ kmat


def matrix_to_axis_angle(r) -> np.ndarray:
    """Inverse of :func:`axis_angle_to_matrix` for one rotation matrix (angles in ``[0, pi]``)."""
    r = np.asarray(r, dtype=np.float64)
    theta = np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if theta < 1e-9:
        return 0.5 * w
    if np.pi - theta > 1e-6:
        return w / (2 * np.sin(theta)) * theta
    # near a half turn the antisymmetric part vanishes: read the axis off (R + I) / 2 = n n^T
    b = (r + np.eye(3)) / 2
    i = int(np.argmax(np.diag(b)))
    axis = b[:, i] / np.sqrt(b[i, i])
    return axis / np.linalg.norm(axis) * theta


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (Haar measure) on SO(3), via a random unit quaternion."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return quaternion_to_matrix(q)


def quaternion_to_matrix(q) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> rotation matrix."""
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(r) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0 (MuJoCo's layout)."""
    r = np.asarray(r, dtype=np.float64)
    t = np.trace(r)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


#: The six "small" Teapot actions: rotations of 2 pi / 30 about +x, -x, +y, -y, +z, -z.
TEAPOT_SMALL_ANGLE = 2 * np.pi / 30
TEAPOT_SMALL_AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)


# --------------------------------------------------------------------------- names


def is_identity(g) -> bool:
    a = np.asarray(g)
    if a.ndim == 2:
        return bool(np.allclose(a, np.eye(a.shape[0])))
    if a.ndim == 1:  # D4 (f, k)
        return bool(a[0] == 0 and a[1] % 4 == 0)
    return int(a) % 4 == 0


def element_label(g) -> str:
    """A short readable name: ``rot90`` (C4), ``flip-rot90`` (D4, reflect then rotate), ``R(+x+y,180)`` (SO(3))."""
    a = np.asarray(g)
    if a.ndim == 0:
        return f"rot{90 * (int(a) % 4)}"
    if a.ndim == 1:
        f, k = (int(x) for x in a)
        return ("flip-" if f else "") + f"rot{90 * (k % 4)}"
    if is_identity(a):
        return "id"
    v = matrix_to_axis_angle(a)
    angle = float(np.linalg.norm(v))
    axis = np.sign(np.round(v / angle, 6))
    name = "".join(("+" if s > 0 else "-") + c for s, c in zip(axis, "xyz", strict=True) if s)
    return f"R({name},{round(np.degrees(angle))})"


# --------------------------------------------------------------------------- symmetry objects


@dataclass(frozen=True)
class Symmetry:
    """How a domain's group acts on its world states and MDP actions.

    ``elements`` lists every group element used for tests and evaluation twins;
    ``act_on_state(g, s)`` and ``act_on_action(g, a)`` apply one of them. Subclasses fix
    the group; networks extend this with ``act_on_latent``.
    """

    name: str
    elements: tuple

    def act_on_state(self, g, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def act_on_action(self, g, action):  # pragma: no cover - abstract
        raise NotImplementedError

    def index(self, g) -> int:
        """Position of ``g`` in :attr:`elements`."""
        for i, e in enumerate(self.elements):
            if np.array_equal(np.asarray(e), np.asarray(g)):
                return i
        raise ValueError(f"{g!r} is not an element of {self.name}; use one of symmetry.elements")

    def _check(self, g):
        self.index(g)


@dataclass(frozen=True)
class GridSymmetry(Symmetry):
    """C4 quarter turns of an ``width x width`` board; states are ``[n_objects, 2]`` cells."""

    width: int = 5

    def act_on_state(self, g, state):
        self._check(g)
        return c4_rotate_cells(g, state, self.width)

    def act_on_action(self, g, action):
        self._check(g)
        out = c4_rotate_grid_action(g, action)
        return type(action)(out) if isinstance(action, int | np.integer) else out


def grid_symmetry(width: int = 5) -> GridSymmetry:
    return GridSymmetry(name="C4", elements=C4_ELEMENTS, width=width)


#: Layout of a Reacher world state (12 floats). The previous joint/goal positions are part
#: of the state because the observation stacks the previous frame with the current one.
REACHER_STATE_LAYOUT = (
    "prev_qpos[0:4] = previous (joint0, joint1, goal_x, goal_y)",
    "qpos[4:8] = current (joint0, joint1, goal_x, goal_y)",
    "qvel[8:12] = current velocities of the same four coordinates",
)


@dataclass(frozen=True)
class ReacherSymmetry(Symmetry):
    """D4 acting on the Reacher arm: see the module docstring for the convention."""

    @staticmethod
    def _act_on_qpos(g, qpos: np.ndarray, velocity: bool) -> np.ndarray:
        f, k = g
        out = np.array(qpos, dtype=np.float64)
        sign = -1.0 if f else 1.0
        out[..., 0] = sign * out[..., 0] + (0.0 if velocity else k * np.pi / 2)
        out[..., 1] = sign * out[..., 1]
        out[..., 2:4] = out[..., 2:4] @ d4_matrix(g).T
        return out

    def act_on_state(self, g, state):
        self._check(g)
        g = tuple(int(x) for x in g)
        s = np.asarray(state, dtype=np.float64)
        if s.shape[-1] != 12:
            raise ValueError(f"a Reacher state has 12 numbers ({REACHER_STATE_LAYOUT}), got shape {s.shape}")
        return np.concatenate(
            [
                self._act_on_qpos(g, s[..., 0:4], False),
                self._act_on_qpos(g, s[..., 4:8], False),
                self._act_on_qpos(g, s[..., 8:12], True),
            ],
            axis=-1,
        )

    def act_on_action(self, g, action):
        self._check(g)
        return (d4_flip_sign(tuple(g)) * np.asarray(action)).astype(np.asarray(action).dtype)


def reacher_symmetry() -> ReacherSymmetry:
    return ReacherSymmetry(name="D4", elements=D4_ELEMENTS)


@dataclass(frozen=True)
class TeapotSymmetry(Symmetry):
    """The cube's 24 rotations acting on orientations (g z) and on actions (g a g^-1)."""

    actions: str = "small"

    def index(self, g) -> int:
        g = np.asarray(g)
        for i, e in enumerate(self.elements):
            if np.allclose(e, g, atol=1e-9):
                return i
        raise ValueError("not an element of the Teapot symmetry set; use one of symmetry.elements")

    def act_on_state(self, g, state):
        self._check(g)
        return np.asarray(g) @ np.asarray(state)

    def act_on_action(self, g, action):
        self._check(g)
        g = np.asarray(g)
        if self.actions == "small":
            a = np.asarray(action)
            # g R(theta, n) g^-1 = R(theta, g n): the axis moves, the angle stays
            axes = TEAPOT_SMALL_AXES[a] @ g.T
            idx = np.argmax(axes @ TEAPOT_SMALL_AXES.T, axis=-1)
            return type(action)(idx) if isinstance(action, int | np.integer) else idx
        # continuous actions are rotation vectors: the same rule applies to the vector
        return (np.asarray(action, dtype=np.float64) @ g.T).astype(np.float32)


def teapot_symmetry(actions: str = "small") -> TeapotSymmetry:
    elements = tuple(octahedral_group())
    return TeapotSymmetry(name="O (24 rotations of SO(3))", elements=elements, actions=actions)
