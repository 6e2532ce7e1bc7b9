"""Every group convention of sen-rl, in one place.

Environments, networks and metrics all read the conventions below, so that "a quarter
turn" or "a reflection" means the same thing everywhere. Each group's actions on world
states, MDP actions, embeddings V and latents Z (``rho_V``, ``rho_Z``) live here once;
the networks and the environments import them.

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

Functions on MDP actions and SO(3) matrices take numpy arrays (and ints) as the
environments give them, or torch tensors as the networks give them, and answer in kind.
The actions on embeddings and latents are torch only. This module never imports torch
itself (environment workers stay torch-free): it only uses torch when handed a tensor.
"""

from __future__ import annotations

import functools
import itertools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor; without importing torch (no tensor exists before it is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(x)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # shared constants: an in-place edit would change every user's group
    return a


# --------------------------------------------------------------------------- C4 / grids

GRID_DIRECTIONS = ("up", "right", "down", "left")
#: (row, col) displacement of each direction, row 0 at the top of the image.
GRID_DELTAS = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)
C4_ELEMENTS: tuple[int, ...] = (0, 1, 2, 3)
#: One counter-clockwise quarter turn (the reference element of ``ee_quarter``).
C4_QUARTER_TURN: int = 1


def c4_rotate_cells(k: int, cells: np.ndarray, width: int) -> np.ndarray:
    """Rotate grid cells ``[..., 2]`` (row, col) by ``k`` counter-clockwise quarter turns (world states)."""
    out = np.asarray(cells).copy()
    for _ in range(k % 4):
        r, c = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0], out[..., 1] = width - 1 - c, r
    return out


def c4_rotate_grid_action(k: int, action: ArrayLike | torch.Tensor) -> int | np.ndarray | torch.Tensor:
    """``rho_A(k)`` on grid actions ``object * 4 + direction``: direction ``d -> (d - k) mod 4``.

    Acts on the MDP's action space. An int gives an int of the same type, an array or list
    a numpy array, an (integer) torch tensor a tensor of the same dtype and device.
    """
    k = int(k) % 4
    a = action if _is_tensor(action) else np.asarray(action)
    out = (a // 4) * 4 + (a % 4 - k) % 4
    return type(action)(out) if isinstance(action, int | np.integer) else out


def c4_act_on_embedding(k: int, v: torch.Tensor) -> torch.Tensor:
    """``rho_V(k) v``: ``k`` counter-clockwise quarter turns of maps ``[..., H, W]`` (the grid embedding V).

    The same direction as ``np.rot90`` on the ``[H, W]`` axes, so also the action on pixels.
    """
    import torch

    return torch.rot90(v, int(k) % 4, dims=(-2, -1))


def c4_act_on_image(k: int, x: np.ndarray) -> np.ndarray:
    """``k`` counter-clockwise quarter turns of images ``[..., H, W, C]`` (numpy, as the envs give them).

    ``np.rot90`` on the ``[H, W]`` axes, the direction of :func:`c4_act_on_embedding`: 2D Shapes
    re-renders a turned world state as exactly this image.
    """
    return np.rot90(np.asarray(x), int(k) % 4, axes=(-3, -2))


def c4_act_on_latent(k: int, z: torch.Tensor) -> torch.Tensor:
    """``rho_Z(k) z`` on the grid latent Z: C4-regular fields laid out ``[..., 4 * c]``, rotation index last.

    ``(rho_Z(k) z)[i, r] = z[i, (r + k) mod 4]``: a roll by ``-k`` of each field's 4 numbers.
    """
    import torch

    shape = z.shape
    return torch.roll(z.reshape(*shape[:-1], -1, 4), shifts=-(int(k) % 4), dims=-1).reshape(shape)


def c4_compose(k1: int, k2: int) -> int:
    """The element ``k1 k2`` (apply ``k2`` first)."""
    return (k1 + k2) % 4


def c4_inverse(k: int) -> int:
    return (-k) % 4


# --------------------------------------------------------------------------- D4 / plane

#: Also the order of escnn's ``dihedral_group(4).elements`` (the tests check it), which
#: fixes the basis of a D4-regular field: number ``a`` belongs to element ``D4_ELEMENTS[a]``.
D4_ELEMENTS: tuple[tuple[int, int], ...] = tuple((f, k) for f in (0, 1) for k in range(4))
#: One counter-clockwise quarter turn, no reflection (the reference element of ``ee_quarter``).
D4_QUARTER_TURN: tuple[int, int] = (0, 1)


def d4_element(g: ArrayLike) -> tuple[int, int]:
    """``g`` as a D4 element ``(f, k)`` of plain ints, or a ValueError naming the valid ones."""
    try:
        t = tuple(int(x) for x in g)
    except TypeError as e:
        raise ValueError(f"a D4 element is a pair (f, k), got {g!r}") from e
    if t not in D4_ELEMENTS:
        raise ValueError(f"{g!r} is not a D4 element; use one of {D4_ELEMENTS}")
    return t


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


def d4_flip_sign(g: tuple[int, int]) -> int:
    """The "rho_flip" representation: -1 for reflections, +1 for rotations."""
    return -1 if g[0] else 1


def d4_act_on_action(g: tuple[int, int], action: ArrayLike | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``rho_A(g)`` on Reacher's torques (the MDP's action space): ``-a`` for reflections, ``a`` for rotations.

    numpy (or lists) in, numpy out with the input's dtype; a torch tensor in, a tensor out.
    """
    sign = d4_flip_sign(d4_element(g))
    if _is_tensor(action):
        return action * sign
    a = np.asarray(action)
    return (sign * a).astype(a.dtype)


def d4_act_on_embedding(g: tuple[int, int], v: torch.Tensor) -> torch.Tensor:
    """``rho_V(g) v`` on scalar maps ``[..., H, W]`` (Reacher's embedding V, and its pixels).

    Flips the rows ``f`` times (world ``(x, y) -> (x, -y)``, as image rows grow with ``-y``),
    then ``torch.rot90(., k, dims=(-2, -1))`` (counter-clockwise as seen with +y up).
    """
    import torch

    f, k = d4_element(g)
    if f:
        v = torch.flip(v, dims=(-2,))
    return torch.rot90(v, k, dims=(-2, -1)) if k else v


def d4_act_on_image(g: tuple[int, int], x: np.ndarray) -> np.ndarray:
    """``g = (f, k)`` on images ``[..., H, W, C]`` (numpy): flip the rows ``f`` times, then ``k`` ``np.rot90``.

    The pixels' side of :func:`d4_act_on_embedding`. Reacher's top-down camera re-renders a
    moved world state as this image up to anti-aliasing (its test bounds the difference).
    """
    f, k = d4_element(g)
    x = np.asarray(x)
    if f:
        x = x[..., ::-1, :, :]
    return np.rot90(x, k, axes=(-3, -2))


@functools.lru_cache(maxsize=1)
def d4_regular_permutations() -> np.ndarray:
    """``perm[i, a]``: ``(rho_reg(g_i) x)[a] = x[perm[i, a]]`` for ``g_i = D4_ELEMENTS[i]`` (read-only).

    Number ``a`` of a regular field belongs to ``h_a = D4_ELEMENTS[a]`` and the regular
    representation maps ``e_h`` to ``e_{g h}``, so entry ``a`` of ``rho_reg(g) x`` reads
    element ``g^-1 h_a``. This is escnn's regular representation in escnn's basis order
    (the tests compare the two entry by entry), computed without escnn.
    """
    perm = [[D4_ELEMENTS.index(d4_compose(d4_inverse(g), h)) for h in D4_ELEMENTS] for g in D4_ELEMENTS]
    return _read_only(np.array(perm, dtype=np.int64))


def d4_act_on_latent(g: tuple[int, int], z: torch.Tensor) -> torch.Tensor:
    """``rho_Z(g) z`` on Reacher's latent Z: ``z [..., 8 n]``, ``n`` D4-regular fields (field-major)."""
    import torch

    perm = torch.tensor(d4_regular_permutations()[D4_ELEMENTS.index(d4_element(g))], device=z.device)
    shape = z.shape
    return z.reshape(*shape[:-1], -1, len(D4_ELEMENTS))[..., perm].reshape(shape)


# --------------------------------------------------------------------------- subgroups of D4 (declared symmetries)


@dataclass(frozen=True)
class PlaneGroup:
    """A subgroup of D4 acting on the image plane, presented by named generators and relations.

    The groups a user may declare for an environment of their own (:mod:`sen_rl.symmetry`).
    Elements are written as D4 elements ``(f, k)`` (the convention above), so the actions on
    embeddings and latents are D4's (:func:`d4_act_on_embedding`, :func:`d4_act_on_latent`).
    Generator names mean the same in every group: ``flip`` mirrors the picture left <-> right
    (image x -> -x; D4's ``(1, 2)``; in ``D1-ud`` it mirrors top <-> bottom, ``(1, 0)``),
    ``turn`` is a counter-clockwise quarter turn as seen on screen (``np.rot90``),
    ``half_turn`` a half turn.

    :param name: ``"D1"``, ``"D1-ud"``, ``"C2"``, ``"C4"``, ``"D2"`` or ``"D4"`` (:data:`PLANE_GROUPS`).
    :param description: what it does to a picture, for people.
    :param generators: generator name -> its D4 element.
    :param relations: ``(word, text)``: the word (a product of generator names, applied right to
        left) equals the identity; together they present the group, so maps of the generators
        that satisfy them define a representation. ``text`` is the relation as people write it.
    :param escnn_id: the subgroup's id in escnn's ``flipRot2dOnR2(N=4, axis=0.0)`` (its ``restrict``).
    """

    name: str
    description: str
    generators: tuple[tuple[str, tuple[int, int]], ...]
    relations: tuple[tuple[tuple[str, ...], str], ...]
    escnn_id: tuple

    @property
    def generator_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.generators)

    @functools.cached_property
    def words(self) -> dict[tuple[int, int], tuple[str, ...]]:
        """Every element's shortest word in the generators (breadth first; ``()`` is the identity)."""
        words: dict[tuple[int, int], tuple[str, ...]] = {(0, 0): ()}
        frontier = [(0, 0)]
        while frontier:
            nxt = []
            for g in frontier:
                for name, s in self.generators:
                    h = d4_compose(s, g)  # the word of h is name followed by g's word (g applied first)
                    if h not in words:
                        words[h] = (name, *words[g])
                        nxt.append(h)
            frontier = nxt
        return words

    @property
    def elements(self) -> tuple[tuple[int, int], ...]:
        """The elements in :data:`D4_ELEMENTS` order (identity first), which is also escnn's order."""
        return tuple(g for g in D4_ELEMENTS if g in self.words)

    @property
    def has_quarter_turns(self) -> bool:
        """Whether it turns pictures by 90 degrees (then only square pictures keep their shape)."""
        return any(k % 2 for _, k in self.elements)

    def word(self, g) -> tuple[str, ...]:
        """The generators whose product is ``g`` (apply the last one first); ValueError if ``g`` is not in the group."""
        g = d4_element(g)
        if g not in self.words:
            raise ValueError(f"{g} is not an element of {self.name}; its elements are {self.elements}")
        return self.words[g]

    def apply(self, maps: dict[str, Any], g, x):
        """``rho(g) x`` for a representation given on the generators by ``maps`` (name -> function)."""
        for name in reversed(self.word(g)):
            x = maps[name](x)
        return x

    def check_relations(self, maps: dict[str, Any], samples, what: str, close=None) -> None:
        """Refuse ``maps`` (generator name -> function) unless every defining relation holds on ``samples``.

        Linear maps checked on a basis, or permutations on every index, are checked exactly;
        other functions on the samples given. The ValueError names the first failing relation.
        """
        missing = [n for n in self.generator_names if n not in maps]
        extra = [n for n in maps if n not in self.generator_names]
        if missing or extra:
            raise ValueError(
                f"{what}: {self.name} is generated by {', '.join(self.generator_names)}; give exactly one rule per "
                f"generator (missing: {', '.join(missing) or 'none'}; unknown: {', '.join(map(str, extra)) or 'none'})"
            )
        close = close or (lambda a, b: np.allclose(a, b, atol=1e-6))
        for word, text in self.relations:
            x = samples
            for name in reversed(word):
                x = maps[name](x)
            if not close(x, samples):
                raise ValueError(
                    f"{what} is not a representation of {self.name}: the relation {text} fails "
                    f"(applying {' '.join(word)} does not give back the input)"
                )


def _plane_group(name, description, generators, relations, escnn_id) -> PlaneGroup:
    group = PlaneGroup(name, description, tuple(generators.items()), tuple(relations), escnn_id)
    for word, text in group.relations:  # the relations must hold in D4 itself
        g = (0, 0)
        for s in reversed(word):
            g = d4_compose(dict(group.generators)[s], g)
        assert g == (0, 0), f"{name}: {text} does not hold in D4"
    return group


_FLIP, _FLIP_UD, _TURN, _HALF = (1, 2), (1, 0), (0, 1), (0, 2)
#: The subgroups of D4 that a declared symmetry may name, keyed by name.
PLANE_GROUPS: dict[str, PlaneGroup] = {
    g.name: g
    for g in (
        _plane_group(
            "D1", "a mirror left <-> right (x -> -x)", {"flip": _FLIP}, [(("flip", "flip"), "flip^2 = e")], (2, 1)
        ),
        _plane_group(
            "D1-ud", "a mirror top <-> bottom (y -> -y)", {"flip": _FLIP_UD}, [(("flip", "flip"), "flip^2 = e")], (0, 1)
        ),
        _plane_group(
            "C2", "the half turn", {"half_turn": _HALF}, [(("half_turn", "half_turn"), "half_turn^2 = e")], (None, 2)
        ),
        _plane_group("C4", "the quarter turns", {"turn": _TURN}, [(("turn",) * 4, "turn^4 = e")], (None, 4)),
        _plane_group(
            "D2",
            "both mirrors and the half turn",
            {"flip": _FLIP, "half_turn": _HALF},
            [
                (("flip", "flip"), "flip^2 = e"),
                (("half_turn", "half_turn"), "half_turn^2 = e"),
                (("flip", "half_turn") * 2, "(flip half_turn)^2 = e"),
            ],
            (0, 2),
        ),
        _plane_group(
            "D4",
            "the quarter turns and the mirrors",
            {"flip": _FLIP, "turn": _TURN},
            [
                (("turn",) * 4, "turn^4 = e"),
                (("flip", "flip"), "flip^2 = e"),
                (("flip", "turn", "flip", "turn"), "flip turn flip = turn^-1"),
            ],
            (0, 4),
        ),
    )
}


def plane_group(name: str) -> PlaneGroup:
    """The declared-symmetry group called ``name``; a ValueError lists the names and what each does."""
    if name not in PLANE_GROUPS:
        known = "; ".join(f"{g.name} ({g.description})" for g in PLANE_GROUPS.values())
        raise ValueError(f"group {name!r} is not known; choose one of: {known}")
    return PLANE_GROUPS[name]


# --------------------------------------------------------------------------- SO(3)

#: One counter-clockwise quarter turn about world z (the reference element of ``ee_quarter``).
SO3_QUARTER_TURN: np.ndarray = _read_only(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))


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


def axis_angle_to_matrix(v: ArrayLike | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Rodrigues' formula for rotation vectors ``[..., 3]`` (axis * angle) -> ``[..., 3, 3]``.

    numpy in: float64 out. A torch tensor in: a tensor of its dtype, finite and
    differentiable everywhere (``sin(t)/t`` and ``(1 - cos t)/t^2`` by Taylor series near 0).
    """
    if _is_tensor(v):
        return _axis_angle_to_matrix_torch(v)
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    axis = np.where(theta > 1e-12, v / np.maximum(theta, 1e-12), 0.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    kmat = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*v.shape[:-1], 3, 3)
    th = theta[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return eye + np.sin(th) * kmat + (1 - np.cos(th)) * kmat @ kmat


def _axis_angle_to_matrix_torch(v: torch.Tensor) -> torch.Tensor:
    """``R = I + sin(t)/t K + (1 - cos t)/t^2 K^2`` with ``K = skew(v)``, ``t = |v|``."""
    import torch

    theta2 = v.square().sum(-1)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    # (1 - cos t) / t^2, written without the cancellation of 1 - cos t
    b = torch.where(small, 0.5 - theta2 / 24, 2 * torch.sin(theta / 2).square() / theta2_safe)
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


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


#: Teapot's action spaces: ``"small"`` (``Discrete(6)``) and ``"large"`` (rotation vectors).
TEAPOT_ACTION_MODES: tuple[str, ...] = ("small", "large")
#: The six "small" Teapot actions: rotations of 2 pi / 30 about +x, -x, +y, -y, +z, -z.
TEAPOT_SMALL_ANGLE = 2 * np.pi / 30
TEAPOT_SMALL_AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
#: The six small actions as rotation matrices ``[6, 3, 3]`` (float64).
TEAPOT_SMALL_ROTATIONS: np.ndarray = _read_only(axis_angle_to_matrix(TEAPOT_SMALL_ANGLE * TEAPOT_SMALL_AXES))


def _torch_matrices(g: ArrayLike | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``g`` (``[3, 3]`` or ``[..., 3, 3]``, numpy or torch) as a tensor on ``like``'s device, in its float dtype."""
    import torch

    dtype = like.dtype if like.is_floating_point() else torch.float64
    g = g if torch.is_tensor(g) else torch.from_numpy(np.array(g, dtype=np.float64))
    g = g.to(device=like.device, dtype=dtype)
    if g.shape[-2:] != (3, 3):
        raise ValueError(f"an SO(3) group element is a 3x3 rotation matrix, got shape {tuple(g.shape)}")
    return g


def so3_act_on_matrix(g: ArrayLike | torch.Tensor, z: ArrayLike | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``g @ z`` for ``z [..., 3, 3]``: SO(3) on Teapot's world states (orientations), embedding V and latent Z.

    ``g`` is ``[3, 3]`` or batched ``[..., 3, 3]``. A torch ``z`` gives a tensor in ``z``'s
    dtype and device; numpy gives numpy.
    """
    z = z if _is_tensor(z) else np.asarray(z)
    if tuple(z.shape[-2:]) != (3, 3):
        raise ValueError(f"SO(3) acts here on [..., 3, 3] matrices, got shape {tuple(z.shape)}")
    if _is_tensor(z):
        return _torch_matrices(g, z) @ z
    return np.asarray(g) @ z


def teapot_act_on_small_action(
    g: ArrayLike | torch.Tensor, action: ArrayLike | torch.Tensor
) -> int | np.ndarray | torch.Tensor:
    """``rho_A(g) a = g a g^-1`` on small Teapot actions (indices into :data:`TEAPOT_SMALL_AXES`).

    ``g R(theta, n) g^-1 = R(theta, g n)``: the angle stays and axis ``n_a`` moves to ``g n_a``,
    which must be one of the six axes (``g`` a rotation of the cube), else ValueError. ``g``
    is ``[3, 3]`` or batched ``[..., 3, 3]``. An int gives an int of the same type, an array a
    numpy int64 array, an integer tensor a tensor of the same dtype and device.
    """
    if _is_tensor(action):
        import torch

        axes = torch.tensor(TEAPOT_SMALL_AXES, device=action.device)
        g, index = _torch_matrices(g, axes), action.long()
    else:
        axes, g, index = TEAPOT_SMALL_AXES, np.asarray(g, dtype=np.float64), np.asarray(action)
    moved = (g @ axes[index][..., None])[..., 0]  # g n_a, [..., 3]
    out = (moved @ axes.T).argmax(-1)
    if bool((abs(moved - axes[out]) > 1e-6).any()):
        raise ValueError("g does not map the six small-action axes onto each other; use a cube rotation")
    if _is_tensor(action):
        return out.to(action.dtype)
    return type(action)(out) if isinstance(action, int | np.integer) else out


def teapot_act_on_large_action(
    g: ArrayLike | torch.Tensor, action: ArrayLike | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """``rho_A(g) a = g a g^-1`` on large Teapot actions (rotation vectors ``[..., 3]``): ``a -> g a``.

    The conjugate of a rotation by ``theta`` about ``n`` turns by ``theta`` about ``g n``, so the
    rotation vector rotates. numpy in: float32 out (the action space's dtype); a float tensor
    in: a tensor of its dtype and device.
    """
    if _is_tensor(action):
        return (_torch_matrices(g, action) @ action[..., None])[..., 0]
    a = np.asarray(action, dtype=np.float64)
    return (np.asarray(g, dtype=np.float64) @ a[..., None])[..., 0].astype(np.float32)


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
        return c4_rotate_grid_action(g, action)


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
        return d4_act_on_action(g, action)


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
        return so3_act_on_matrix(g, state)

    def act_on_action(self, g, action):
        self._check(g)
        if self.actions == "small":
            return teapot_act_on_small_action(g, action)
        return teapot_act_on_large_action(g, action)


def teapot_symmetry(actions: str = "small") -> TeapotSymmetry:
    elements = tuple(octahedral_group())
    return TeapotSymmetry(name="O (24 rotations of SO(3))", elements=elements, actions=actions)
