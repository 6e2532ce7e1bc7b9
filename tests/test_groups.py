"""The group conventions: group laws and the conversions everything else relies on."""

import subprocess
import sys

import numpy as np
import pytest

from sen_rl.groups import (
    C4_QUARTER_TURN,
    D4_ELEMENTS,
    D4_QUARTER_TURN,
    SO3_QUARTER_TURN,
    axis_angle_to_matrix,
    c4_rotate_cells,
    c4_rotate_grid_action,
    d4_compose,
    d4_inverse,
    d4_matrix,
    d4_regular_permutations,
    grid_symmetry,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    octahedral_group,
    quaternion_to_matrix,
    random_rotation,
    reacher_symmetry,
    teapot_act_on_small_action,
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


def test_quarter_turns_are_one_counter_clockwise_quarter_turn():
    # C4: the board turns like np.rot90 (counter-clockwise on screen)
    board = np.arange(25).reshape(5, 5)
    cells = np.argwhere(board >= 0)
    moved = c4_rotate_cells(C4_QUARTER_TURN, cells, 5)
    turned = np.rot90(board, C4_QUARTER_TURN)
    assert all(turned[r, c] == board[r0, c0] for (r0, c0), (r, c) in zip(cells, moved, strict=True))
    # D4: x -> y, no reflection; SO(3): the same about world z
    np.testing.assert_array_equal(d4_matrix(D4_QUARTER_TURN) @ [1, 0], [0, 1])
    assert D4_QUARTER_TURN in D4_ELEMENTS and D4_QUARTER_TURN[0] == 0
    np.testing.assert_array_equal(SO3_QUARTER_TURN @ [1, 0, 0], [0, 1, 0])
    np.testing.assert_array_equal(SO3_QUARTER_TURN[2], [0, 0, 1])
    assert teapot_symmetry().index(SO3_QUARTER_TURN) >= 0
    assert not SO3_QUARTER_TURN.flags.writeable


def test_grid_actions_keep_their_type():
    assert [c4_rotate_grid_action(1, a) for a in range(4)] == [3, 0, 1, 2]
    assert type(c4_rotate_grid_action(1, np.int64(5))) is np.int64
    assert type(c4_rotate_grid_action(2, 5)) is int
    np.testing.assert_array_equal(c4_rotate_grid_action(1, [0, 5, 19]), [3, 4, 18])
    assert grid_symmetry().act_on_action(3, 4) == 5  # object 1: up -> right after 3 turns


def test_d4_regular_permutations_represent_d4():
    """The regular representation built from d4_compose is a representation (tested against escnn in tests/nets)."""
    perms = d4_regular_permutations()
    assert not perms.flags.writeable
    x = np.arange(8.0)
    for i, g in enumerate(D4_ELEMENTS):
        assert sorted(perms[i]) == list(range(8))
        for j, h in enumerate(D4_ELEMENTS):
            gh = D4_ELEMENTS.index(d4_compose(g, h))
            np.testing.assert_array_equal(x[perms[j]][perms[i]], x[perms[gh]])  # rho(g) rho(h) = rho(gh)
        # rho(g) e_identity = e_g: the number of the identity moves to element g's place
        assert perms[i][D4_ELEMENTS.index(g)] == 0
    np.testing.assert_array_equal(perms[0], np.arange(8))


def test_teapot_small_actions_need_a_cube_rotation():
    with pytest.raises(ValueError, match="cube rotation"):
        teapot_act_on_small_action(random_rotation(np.random.default_rng(3)), np.arange(6))


def test_groups_imports_neither_torch_nor_escnn():
    """Env workers import this module: it must stay light (torch is used only when handed a tensor)."""
    code = "import sys, sen_rl.groups; print(sorted({'torch', 'escnn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
