"""Declared symmetries (sen_rl.symmetry): refused unless a representation, naming the failing relation."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from sen_rl.groups import PLANE_GROUPS, d4_compose, d4_matrix
from sen_rl.symmetry import Symmetry, load_symmetry

ROT90 = np.array([[0.0, -1.0], [1.0, 0.0]])
MIRROR_X = np.diag([-1.0, 1.0])  # x -> -x
#: a faithful 2D representation of every group: its generators as plane matrices
PLANE = {"flip": MIRROR_X, "turn": ROT90, "half_turn": -np.eye(2)}


def _plane_rules(group: str) -> dict:
    rules = {n: PLANE[n] for n in PLANE_GROUPS[group].generator_names}
    if group == "D1-ud":
        rules["flip"] = np.diag([1.0, -1.0])
    return rules


@pytest.mark.parametrize(
    ("group", "action", "relation"),
    [
        ("D1", {"flip": [[2.0]]}, "flip^2 = e"),
        ("C2", {"half_turn": [[0.0, 1.0], [-1.0, 0.0]]}, "half_turn^2 = e"),  # a quarter turn, not a half one
        ("C4", {"turn": [[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]]}, "turn^4 = e"),
        ("C4", {"turn": [1, 2, 0, 3]}, "turn^4 = e"),  # a 3-cycle: order 3
        ("D2", {"flip": [[0.0, 1.0], [1.0, 0.0]], "half_turn": np.diag([1.0, -1.0])}, "(flip half_turn)^2 = e"),
        ("D4", {"flip": np.eye(2), "turn": ROT90}, "flip turn flip = turn^-1"),
        ("D4", {"flip": [1, 0, 2, 3], "turn": [1, 2, 3, 0]}, "flip turn flip = turn^-1"),  # not the square's mirror
        ("D4", {"flip": MIRROR_X, "turn": [[1.0, 1.0], [0.0, 1.0]]}, "turn^4 = e"),  # a shear
    ],
)
def test_a_non_representation_is_refused_naming_the_relation(group, action, relation):
    with pytest.raises(ValueError, match="not a representation") as err:
        Symmetry(group=group, action=action)
    assert f"the relation {relation} fails" in str(err.value) and group in str(err.value)


def test_a_state_rule_that_is_no_representation_is_refused():
    with pytest.raises(ValueError, match=r"the state rule is not a representation of D4: the relation turn\^4 = e"):
        Symmetry(group="D4", action=_plane_rules("D4"), state={"flip": MIRROR_X, "turn": np.diag([1.0, 2.0])})


def test_a_function_rule_is_checked_on_sampled_actions():
    sym = Symmetry(group="D1", action={"flip": lambda a: -2 * a})  # not an involution
    with pytest.raises(ValueError, match=r"the relation flip\^2 = e fails"):
        sym.check_actions(gym.spaces.Box(-1, 1, (2,), np.float32))
    good = Symmetry(group="D1", action={"flip": lambda a: a[..., ::-1]})  # swap two motors
    good.check_actions(gym.spaces.Box(-1, 1, (2,), np.float32))
    assert good.act_on_action((1, 2), np.array([1.0, 2.0])).tolist() == [2.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group": "D8", "action": {}}, "group 'D8' is not known; choose one of: D1"),
        ({"group": "D4", "action": {"flip": MIRROR_X}}, "give exactly one rule per generator (missing: turn"),
        ({"group": "D1", "action": {"mirror": [[-1.0]]}}, "unknown: mirror"),
        ({"group": "C4", "action": {"turn": [0, 0, 1, 2]}}, "is not a permutation of 0..3"),
        ({"group": "D4", "action": {"flip": [1, 0], "turn": ROT90}}, "mix matrix, permutation"),
        ({"group": "D1", "action": {"flip": "left"}}, "a rule is a square matrix"),
        ({"group": "D1", "action": {"flip": [[-1.0]]}, "state": {"flip": [1, 0]}}, "state rules are matrices"),
    ],
)
def test_bad_declarations_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError) as err:
        Symmetry(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("group", list(PLANE_GROUPS))
def test_the_rules_are_a_homomorphism_on_every_pair_of_elements(group):
    """rho(g h) = rho(g) rho(h) for all g, h (numpy and torch alike), and the group's elements are D4's."""
    sym = Symmetry(group=group, action=_plane_rules(group), state=_plane_rules(group))
    assert sym.elements[0] == (0, 0) and set(sym.elements) <= {(f, k) for f in (0, 1) for k in range(4)}
    a = np.random.default_rng(0).normal(size=(5, 2))
    for g, h in itertools.product(sym.elements, repeat=2):
        gh = d4_compose(g, h)
        assert gh in sym.elements  # closed
        np.testing.assert_allclose(sym.act_on_action(gh, a), sym.act_on_action(g, sym.act_on_action(h, a)))
        np.testing.assert_allclose(sym.act_on_state(gh, a), sym.act_on_state(g, sym.act_on_state(h, a)))
    for g in sym.elements:  # plane matrices of the generators give every element's D4 plane matrix
        np.testing.assert_allclose(sym.act_on_action(g, a), a @ d4_matrix(g).T, atol=1e-12)
        t = torch.as_tensor(a)
        np.testing.assert_allclose(sym.act_on_action(g, t).numpy(), sym.act_on_action(g, a))


def test_permutations_act_on_discrete_actions():
    # CartPole-like: two actions, push left / push right, swapped by the mirror
    sym = Symmetry(group="D1", action={"flip": [1, 0]})
    assert sym.act_on_action((1, 2), 0) == 1 and sym.act_on_action((0, 0), 1) == 1
    assert sym.act_on_action((1, 2), np.array([0, 1, 1])).tolist() == [1, 0, 0]
    assert sym.act_on_action((1, 2), torch.tensor([0, 1])).tolist() == [1, 0]
    sym.check_actions(gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="act on 2 numbers"):
        sym.check_actions(gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="not Discrete"):
        sym.check_actions(gym.spaces.Box(-1, 1, (2,)))


def test_no_state_rule_means_a_clear_error_not_a_guess():
    sym = Symmetry(group="D1", action={"flip": [[-1.0]]})
    assert not sym.has_state_rule
    with pytest.raises(ValueError, match="declares no rule on world states"):
        sym.act_on_state((1, 2), np.zeros(4))
    with pytest.raises(ValueError, match=r"not an element of D1"):
        sym.act_on_action((0, 1), np.zeros(1))


def test_load_symmetry_by_path():
    sym = load_symmetry("sen_rl.example_symmetries:INVERTED_PENDULUM")
    assert sym.name == "D1" and sym.elements == ((0, 0), (1, 2))
    for bad, message in [
        ("sen_rl.example_symmetries", "module.path:NAME"),
        ("sen_rl.example_symmetries:NOPE", "has no 'NOPE'"),
        ("sen_rl.example_symmetries:INVERTED_PENDULUM_CAMERA", "not a sen_rl.symmetry.Symmetry"),
        ("no_such_package_xyz.sym:R", "cannot import"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_symmetry(bad)
