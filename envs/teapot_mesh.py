"""The Utah teapot as a triangle mesh, tessellated here from Newell's Bezier patches.

Martin Newell's 1975 teapot (public domain) is 32 bicubic Bezier patches over 306 control
points: rim (4 patches), body (8), handle (4), spout (4), lid (8) and the bottom (4) added
later by Frank Crow. The data below is in the classic frame: z up, spout along +x, handle
along -x, the bottom at z = 0.

:func:`teapot_mesh` evaluates every patch on an ``n x n`` grid, welds coincident vertices,
drops degenerate triangles, caps the two openings that would show the inside (the ring
between lid and rim, and the spout's mouth), orients every face outwards, then centres
the mesh at its bounding-box centre and scales it so that its farthest vertex is at
distance ``radius`` from the centre.
"""

from __future__ import annotations

import functools

import numpy as np

# 1-based control point indices of the 32 patches (4x4, row-major), Newell's order
_PATCHES_1 = """
1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
4 17 18 19 8 20 21 22 12 23 24 25 16 26 27 28
19 29 30 31 22 32 33 34 25 35 36 37 28 38 39 40
31 41 42 1 34 43 44 5 37 45 46 9 40 47 48 13
13 14 15 16 49 50 51 52 53 54 55 56 57 58 59 60
16 26 27 28 52 61 62 63 56 64 65 66 60 67 68 69
28 38 39 40 63 70 71 72 66 73 74 75 69 76 77 78
40 47 48 13 72 79 80 49 75 81 82 53 78 83 84 57
57 58 59 60 85 86 87 88 89 90 91 92 93 94 95 96
60 67 68 69 88 97 98 99 92 100 101 102 96 103 104 105
69 76 77 78 99 106 107 108 102 109 110 111 105 112 113 114
78 83 84 57 108 115 116 85 111 117 118 89 114 119 120 93
121 122 123 124 125 126 127 128 129 130 131 132 133 134 135 136
124 137 138 121 128 139 140 125 132 141 142 129 136 143 144 133
133 134 135 136 145 146 147 148 149 150 151 152 69 153 154 155
136 143 144 133 148 156 157 145 152 158 159 149 155 160 161 69
162 163 164 165 166 167 168 169 170 171 172 173 174 175 176 177
165 178 179 162 169 180 181 166 173 182 183 170 177 184 185 174
174 175 176 177 186 187 188 189 190 191 192 193 194 195 196 197
177 184 185 174 189 198 199 186 193 200 201 190 197 202 203 194
204 204 204 204 207 208 209 210 211 211 211 211 212 213 214 215
204 204 204 204 210 217 218 219 211 211 211 211 215 220 221 222
204 204 204 204 219 224 225 226 211 211 211 211 222 227 228 229
204 204 204 204 226 230 231 207 211 211 211 211 229 232 233 212
212 213 214 215 234 235 236 237 238 239 240 241 242 243 244 245
215 220 221 222 237 246 247 248 241 249 250 251 245 252 253 254
222 227 228 229 248 255 256 257 251 258 259 260 254 261 262 263
229 232 233 212 257 264 265 234 260 266 267 238 263 268 269 242
270 270 270 270 279 280 281 282 275 276 277 278 271 272 273 274
270 270 270 270 282 289 290 291 278 286 287 288 274 283 284 285
270 270 270 270 291 298 299 300 288 295 296 297 285 292 293 294
270 270 270 270 300 305 306 279 297 303 304 275 294 301 302 271
"""

# the 306 control points, x y z, in Newell's order
_VERTICES = """
1.4 0 2.4;  1.4 -0.784 2.4;  0.784 -1.4 2.4;  0 -1.4 2.4
1.3375 0 2.53125;  1.3375 -0.749 2.53125;  0.749 -1.3375 2.53125;  0 -1.3375 2.53125
1.4375 0 2.53125;  1.4375 -0.805 2.53125;  0.805 -1.4375 2.53125;  0 -1.4375 2.53125
1.5 0 2.4;  1.5 -0.84 2.4;  0.84 -1.5 2.4;  0 -1.5 2.4
-0.784 -1.4 2.4;  -1.4 -0.784 2.4;  -1.4 0 2.4
-0.749 -1.3375 2.53125;  -1.3375 -0.749 2.53125;  -1.3375 0 2.53125
-0.805 -1.4375 2.53125;  -1.4375 -0.805 2.53125;  -1.4375 0 2.53125
-0.84 -1.5 2.4;  -1.5 -0.84 2.4;  -1.5 0 2.4
-1.4 0.784 2.4;  -0.784 1.4 2.4;  0 1.4 2.4
-1.3375 0.749 2.53125;  -0.749 1.3375 2.53125;  0 1.3375 2.53125
-1.4375 0.805 2.53125;  -0.805 1.4375 2.53125;  0 1.4375 2.53125
-1.5 0.84 2.4;  -0.84 1.5 2.4;  0 1.5 2.4
0.784 1.4 2.4;  1.4 0.784 2.4
0.749 1.3375 2.53125;  1.3375 0.749 2.53125
0.805 1.4375 2.53125;  1.4375 0.805 2.53125
0.84 1.5 2.4;  1.5 0.84 2.4
1.75 0 1.875;  1.75 -0.98 1.875;  0.98 -1.75 1.875;  0 -1.75 1.875
2 0 1.35;  2 -1.12 1.35;  1.12 -2 1.35;  0 -2 1.35
2 0 0.9;  2 -1.12 0.9;  1.12 -2 0.9;  0 -2 0.9
-0.98 -1.75 1.875;  -1.75 -0.98 1.875;  -1.75 0 1.875
-1.12 -2 1.35;  -2 -1.12 1.35;  -2 0 1.35
-1.12 -2 0.9;  -2 -1.12 0.9;  -2 0 0.9
-1.75 0.98 1.875;  -0.98 1.75 1.875;  0 1.75 1.875
-2 1.12 1.35;  -1.12 2 1.35;  0 2 1.35
-2 1.12 0.9;  -1.12 2 0.9;  0 2 0.9
0.98 1.75 1.875;  1.75 0.98 1.875
1.12 2 1.35;  2 1.12 1.35
1.12 2 0.9;  2 1.12 0.9
2 0 0.45;  2 -1.12 0.45;  1.12 -2 0.45;  0 -2 0.45
1.5 0 0.225;  1.5 -0.84 0.225;  0.84 -1.5 0.225;  0 -1.5 0.225
1.5 0 0.15;  1.5 -0.84 0.15;  0.84 -1.5 0.15;  0 -1.5 0.15
-1.12 -2 0.45;  -2 -1.12 0.45;  -2 0 0.45
-0.84 -1.5 0.225;  -1.5 -0.84 0.225;  -1.5 0 0.225
-0.84 -1.5 0.15;  -1.5 -0.84 0.15;  -1.5 0 0.15
-2 1.12 0.45;  -1.12 2 0.45;  0 2 0.45
-1.5 0.84 0.225;  -0.84 1.5 0.225;  0 1.5 0.225
-1.5 0.84 0.15;  -0.84 1.5 0.15;  0 1.5 0.15
1.12 2 0.45;  2 1.12 0.45
0.84 1.5 0.225;  1.5 0.84 0.225
0.84 1.5 0.15;  1.5 0.84 0.15
-1.6 0 2.025;  -1.6 -0.3 2.025;  -1.5 -0.3 2.25;  -1.5 0 2.25
-2.3 0 2.025;  -2.3 -0.3 2.025;  -2.5 -0.3 2.25;  -2.5 0 2.25
-2.7 0 2.025;  -2.7 -0.3 2.025;  -3 -0.3 2.25;  -3 0 2.25
-2.7 0 1.8;  -2.7 -0.3 1.8;  -3 -0.3 1.8;  -3 0 1.8
-1.5 0.3 2.25;  -1.6 0.3 2.025
-2.5 0.3 2.25;  -2.3 0.3 2.025
-3 0.3 2.25;  -2.7 0.3 2.025
-3 0.3 1.8;  -2.7 0.3 1.8
-2.7 0 1.575;  -2.7 -0.3 1.575;  -3 -0.3 1.35;  -3 0 1.35
-2.5 0 1.125;  -2.5 -0.3 1.125;  -2.65 -0.3 0.9375;  -2.65 0 0.9375
-2 -0.3 0.9;  -1.9 -0.3 0.6;  -1.9 0 0.6
-3 0.3 1.35;  -2.7 0.3 1.575
-2.65 0.3 0.9375;  -2.5 0.3 1.125
-1.9 0.3 0.6;  -2 0.3 0.9
1.7 0 1.425;  1.7 -0.66 1.425;  1.7 -0.66 0.6;  1.7 0 0.6
2.6 0 1.425;  2.6 -0.66 1.425;  3.1 -0.66 0.825;  3.1 0 0.825
2.3 0 2.1;  2.3 -0.25 2.1;  2.4 -0.25 2.025;  2.4 0 2.025
2.7 0 2.4;  2.7 -0.25 2.4;  3.3 -0.25 2.4;  3.3 0 2.4
1.7 0.66 0.6;  1.7 0.66 1.425
3.1 0.66 0.825;  2.6 0.66 1.425
2.4 0.25 2.025;  2.3 0.25 2.1
3.3 0.25 2.4;  2.7 0.25 2.4
2.8 0 2.475;  2.8 -0.25 2.475;  3.525 -0.25 2.49375;  3.525 0 2.49375
2.9 0 2.475;  2.9 -0.15 2.475;  3.45 -0.15 2.5125;  3.45 0 2.5125
2.8 0 2.4;  2.8 -0.15 2.4;  3.2 -0.15 2.4;  3.2 0 2.4
3.525 0.25 2.49375;  2.8 0.25 2.475
3.45 0.15 2.5125;  2.9 0.15 2.475
3.2 0.15 2.4;  2.8 0.15 2.4
0 0 3.15;  0 -0.002 3.15;  0.002 0 3.15
0.8 0 3.15;  0.8 -0.45 3.15;  0.45 -0.8 3.15;  0 -0.8 3.15
0 0 2.85
0.2 0 2.7;  0.2 -0.112 2.7;  0.112 -0.2 2.7;  0 -0.2 2.7
-0.002 0 3.15
-0.45 -0.8 3.15;  -0.8 -0.45 3.15;  -0.8 0 3.15
-0.112 -0.2 2.7;  -0.2 -0.112 2.7;  -0.2 0 2.7
0 0.002 3.15
-0.8 0.45 3.15;  -0.45 0.8 3.15;  0 0.8 3.15
-0.2 0.112 2.7;  -0.112 0.2 2.7;  0 0.2 2.7
0.45 0.8 3.15;  0.8 0.45 3.15
0.112 0.2 2.7;  0.2 0.112 2.7
0.4 0 2.55;  0.4 -0.224 2.55;  0.224 -0.4 2.55;  0 -0.4 2.55
1.3 0 2.55;  1.3 -0.728 2.55;  0.728 -1.3 2.55;  0 -1.3 2.55
1.3 0 2.4;  1.3 -0.728 2.4;  0.728 -1.3 2.4;  0 -1.3 2.4
-0.224 -0.4 2.55;  -0.4 -0.224 2.55;  -0.4 0 2.55
-0.728 -1.3 2.55;  -1.3 -0.728 2.55;  -1.3 0 2.55
-0.728 -1.3 2.4;  -1.3 -0.728 2.4;  -1.3 0 2.4
-0.4 0.224 2.55;  -0.224 0.4 2.55;  0 0.4 2.55
-1.3 0.728 2.55;  -0.728 1.3 2.55;  0 1.3 2.55
-1.3 0.728 2.4;  -0.728 1.3 2.4;  0 1.3 2.4
0.224 0.4 2.55;  0.4 0.224 2.55
0.728 1.3 2.55;  1.3 0.728 2.55
0.728 1.3 2.4;  1.3 0.728 2.4
0 0 0
1.5 0 0.15;  1.5 0.84 0.15;  0.84 1.5 0.15;  0 1.5 0.15
1.5 0 0.075;  1.5 0.84 0.075;  0.84 1.5 0.075;  0 1.5 0.075
1.425 0 0;  1.425 0.798 0;  0.798 1.425 0;  0 1.425 0
-0.84 1.5 0.15;  -1.5 0.84 0.15;  -1.5 0 0.15
-0.84 1.5 0.075;  -1.5 0.84 0.075;  -1.5 0 0.075
-0.798 1.425 0;  -1.425 0.798 0;  -1.425 0 0
-1.5 -0.84 0.15;  -0.84 -1.5 0.15;  0 -1.5 0.15
-1.5 -0.84 0.075;  -0.84 -1.5 0.075;  0 -1.5 0.075
-1.425 -0.798 0;  -0.798 -1.425 0;  0 -1.425 0
0.84 -1.5 0.15;  1.5 -0.84 0.15
0.84 -1.5 0.075;  1.5 -0.84 0.075
0.798 -1.425 0;  1.425 -0.798 0
"""

#: Newell's control points ``[306, 3]`` and patches ``[32, 4, 4]`` (0-based indices).
_TRIPLES = [p.split() for p in _VERTICES.replace("\n", ";").split(";") if p.strip()]
CONTROL_POINTS = np.array(_TRIPLES, dtype=np.float64)
PATCHES = np.array(_PATCHES_1.split(), dtype=np.int64).reshape(32, 4, 4) - 1
assert CONTROL_POINTS.shape == (306, 3) and PATCHES.max() == 305

#: Which patches make up which part (Newell's order).
PARTS = {"rim": range(0, 4), "body": range(4, 12), "handle": range(12, 16), "spout": range(16, 20),
         "lid": range(20, 28), "bottom": range(28, 32)}  # fmt: skip


def _bernstein(t: np.ndarray) -> np.ndarray:
    """The four cubic Bernstein polynomials at ``t`` -> ``[len(t), 4]``."""
    s = 1.0 - t
    return np.stack([s**3, 3 * t * s**2, 3 * t**2 * s, t**3], axis=-1)


def _grid_faces(n: int) -> np.ndarray:
    """Two triangles per cell of an ``(n+1) x (n+1)`` vertex grid, consistently wound."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a = (i * (n + 1) + j).ravel()
    b, c, d = a + (n + 1), a + (n + 1) + 1, a + 1
    return np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)])


def _ray_hits(origins: np.ndarray, dirs: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Number of triangles ``[T, 3, 3]`` each ray crosses (Moller-Trumbore), ``[R]``."""
    v0, e1, e2 = tris[:, 0], tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    p = np.cross(dirs[:, None], e2[None])  # [R, T, 3]
    det = np.einsum("rtk,tk->rt", p, e1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origins[:, None] - v0[None]
    u = np.einsum("rtk,rtk->rt", s, p) * inv
    q = np.cross(s, e1[None])
    v = np.einsum("rk,rtk->rt", dirs, q) * inv
    t = np.einsum("rtk,tk->rt", q, e2) * inv
    return (ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)).sum(axis=1)


def _cap(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A triangle fan closing the planar-ish loop ``ring`` ``[m, 3]`` from its centroid."""
    m = len(ring)
    verts = np.concatenate([ring, ring.mean(axis=0, keepdims=True)])
    k = np.arange(m)
    return verts, np.stack([np.full(m, m), k, (k + 1) % m], axis=-1)


def _strip(outer: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles joining two closed loops ``[m, 3]`` with corresponding points."""
    m = len(outer)
    k = np.arange(m)
    k1 = (k + 1) % m
    faces = np.concatenate([np.stack([k, k1, m + k1], -1), np.stack([k, m + k1, m + k], -1)])
    return np.concatenate([outer, inner]), faces


def _pieces(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vertices, faces) of the 32 patches and the two caps, degenerate triangles dropped."""
    basis = _bernstein(np.linspace(0.0, 1.0, n + 1))
    grid = _grid_faces(n)
    surfaces = np.einsum("ui,vj,pijk->puvk", basis, basis, CONTROL_POINTS[PATCHES])
    pieces = [(surface.reshape(-1, 3), grid) for surface in surfaces]
    # the ring between the lid's lower edge (radius 1.3) and the rim's inner edge (1.4),
    # both at z = 2.4, would show the inside: close it with a flat annulus. Both loops are
    # parametrised alike (the lid's control polygon is the rim's scaled by 1.3 / 1.4).
    rim_inner = np.concatenate([pieces[p][0].reshape(n + 1, n + 1, 3)[0, :-1] for p in PARTS["rim"]])
    lid_edge = np.concatenate([pieces[p][0].reshape(n + 1, n + 1, 3)[-1, :-1] for p in PARTS["lid"][4:]])
    pieces.append(_strip(rim_inner, lid_edge))
    # the spout's mouth: the last rows of its two tip patches form one closed loop
    tip = [pieces[p][0].reshape(n + 1, n + 1, 3)[-1, :-1] for p in (18, 19)]
    pieces.append(_cap(np.concatenate(tip)))

    # drop degenerate triangles (the lid's knob and the bottom's centre are collapsed rows)
    cleaned = []
    for verts, faces in pieces:
        tri = verts[faces]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
        cleaned.append((verts, faces[area > 1e-9]))
    return cleaned


@functools.lru_cache(maxsize=1)
def _inward_pieces() -> tuple[bool, ...]:
    """Which pieces are wound inwards, found once on a coarse tessellation.

    A ray leaving the surface along an outward normal crosses the (closed) surface an even
    number of times; each piece votes over a few of its triangles.
    """
    pieces = _pieces(4)
    all_tris = np.concatenate([v[f] for v, f in pieces])
    flags = []
    for verts, faces in pieces:
        tri = verts[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        pick = np.linspace(0, len(faces) - 1, 15).round().astype(int)
        dirs = normal[pick] / np.linalg.norm(normal[pick], axis=-1, keepdims=True)
        origins = tri[pick].mean(axis=1) + 1e-6 * dirs
        flags.append(bool((_ray_hits(origins, dirs, all_tris) % 2 == 1).sum() > len(pick) / 2))
    return tuple(flags)


@functools.lru_cache(maxsize=8)
def teapot_mesh(subdivisions: int = 10, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` (float64) and outward-wound triangles ``[F, 3]`` (int64) of the teapot.

    The mesh is centred at its bounding-box centre and scaled so its farthest vertex lies
    at ``radius``; the axes are Newell's (z up, spout +x, handle -x). The result is cached
    and read-only.
    """
    if isinstance(subdivisions, bool) or not isinstance(subdivisions, int) or subdivisions < 2:
        raise ValueError(f"subdivisions must be an int >= 2, got {subdivisions!r}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    oriented = [
        (verts, faces[:, ::-1] if inward else faces)
        for (verts, faces), inward in zip(_pieces(subdivisions), _inward_pieces(), strict=True)
    ]

    # weld coincident vertices so that normals are smooth across patch seams
    offsets = np.cumsum([0] + [len(v) for v, _ in oriented])
    verts = np.concatenate([v for v, _ in oriented])
    faces = np.concatenate([f + o for (_, f), o in zip(oriented, offsets[:-1], strict=True)])
    uniq, inverse = np.unique(np.round(verts, 6), axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    used, faces = np.unique(faces, return_inverse=True)
    verts, faces = uniq[used], faces.reshape(-1, 3)

    centre = (verts.min(axis=0) + verts.max(axis=0)) / 2
    verts = verts - centre
    verts = verts * (radius / np.linalg.norm(verts, axis=-1).max())
    verts.flags.writeable = False
    faces.flags.writeable = False
    return verts, faces
