"""The group conventions: group laws and the conversions everything else relies on."""

import numpy as np

from sen_rl.groups import (
    D4_ELEMENTS,
    axis_angle_to_matrix,
    d4_compose,
    d4_inverse,
    d4_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    octahedral_group,
    quaternion_to_matrix,
    random_rotation,
    reacher_symmetry,
    teapot_symmetry,
)


def test_d4_is_a_group_and_matrices_represent_it():
    for g in D4_ELEMENTS:
        np.testing.assert_allclose(d4_matrix(d4_compose(g, d4_inverse(g))), np.eye(2))
        for h in D4_ELEMENTS:
            np.testing.assert_allclose(d4_matrix(d4_compose(g, h)), d4_matrix(g) @ d4_matrix(h))
    assert len({tuple(d4_matrix(g).round(6).ravel()) for g in D4_ELEMENTS}) == 8
    # (1, 0) is the reflection about the x axis; (0, 1) a counter-clockwise quarter turn
    np.testing.assert_allclose(d4_matrix((1, 0)) @ [1, 2], [1, -2])
    np.testing.assert_allclose(d4_matrix((0, 1)) @ [1, 0], [0, 1])


def test_reacher_state_action_is_a_representation():
    sym = reacher_symmetry()
    s = np.random.default_rng(0).normal(size=12)
    for g in D4_ELEMENTS:
        for h in D4_ELEMENTS:
            lhs = sym.act_on_state(g, sym.act_on_state(h, s))
            rhs = sym.act_on_state(d4_compose(g, h), s)
            # joint0 is an angle: equal modulo 2 pi
            d = lhs - rhs
            d[[0, 4]] = (d[[0, 4]] + np.pi) % (2 * np.pi) - np.pi
            np.testing.assert_allclose(d, 0, atol=1e-12)
    assert sym.act_on_action((1, 3), np.array([0.5, -0.2], np.float32)).tolist() == [-0.5, np.float32(0.2).item()]


def test_octahedral_group_closed_and_maps_small_actions():
    G = octahedral_group()
    assert G.shape == (24, 3, 3)
    keys = {tuple(g.round(6).ravel()) for g in G}
    for a in G:
        for b in G:
            assert tuple((a @ b).round(6).ravel()) in keys
    sym = teapot_symmetry("small")
    for g in G:
        perm = [sym.act_on_action(g, i) for i in range(6)]
        assert sorted(perm) == list(range(6))


def test_rotation_conversions_round_trip():
    rng = np.random.default_rng(1)
    rots = [random_rotation(rng) for _ in range(50)] + list(octahedral_group())
    for r in rots:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(r), 1)
        np.testing.assert_allclose(axis_angle_to_matrix(matrix_to_axis_angle(r)), r, atol=1e-9)
        np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(r)), r, atol=1e-9)
