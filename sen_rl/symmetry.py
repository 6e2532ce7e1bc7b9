"""Declare the symmetry of an environment you did not write, so that a SEN can use it.

A SEN needs to know how a group acts on the *actions* of the MDP (and, for the equivariance
metrics and the twins, on its world *states*), never on its pixels. A :class:`Symmetry` says
that for any Gymnasium environment:

>>> import numpy as np
>>> from sen_rl.symmetry import Symmetry
>>> REFLECT = Symmetry(
...     group="D1",                               # a mirror of the picture, left <-> right
...     action={"flip": [[-1.0]]},                # force -> -force
...     state={"flip": -np.eye(4)},               # (x, angle, x', angle') -> minus all four
... )
>>> REFLECT.elements
((0, 0), (1, 2))
>>> REFLECT.act_on_action((1, 2), np.array([0.5], np.float32))
array([-0.5], dtype=float32)

The group is a subgroup of D4 acting on the picture (:data:`sen_rl.groups.PLANE_GROUPS`:
``D1``, ``D1-ud``, ``C2``, ``C4``, ``D2``, ``D4``), given by the names of its generators. Each
generator gets a rule per space:

- a **matrix** (``Box`` actions or vector states: ``a -> M a`` on the last axis);
- a **permutation** of ``range(n)`` (``Discrete(n)`` actions: ``a -> perm[a]``);
- a **function** of one array (anything else, e.g. an angle that turns by a quarter).

Matrices and permutations are checked when the symmetry is declared: the rules of the
generators must satisfy the group's defining relations (``flip^2 = e``, ``turn^4 = e``,
``flip turn flip = turn^-1``), which makes them a representation; a failing rule is refused
with a ``ValueError`` naming the relation. Functions on actions are checked the same way on
sampled actions when an environment is made with the symmetry (:meth:`Symmetry.check_actions`).
Functions on states are not checked against the relations (an angle turned four times by a
quarter comes back as itself plus 2 pi); the test that the dynamics commute with the
declared action (``docs/custom_environments.md``) is their check.

The group conventions live in :mod:`sen_rl.groups`; this module only binds rules to them.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sen_rl import groups
from sen_rl.groups import PlaneGroup, plane_group

RULE_KINDS = ("matrix", "permutation", "function")


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(x)


def _rule_kind(rule: Any, what: str) -> str:
    if callable(rule):
        return "function"
    a = np.asarray(rule)
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.size and np.issubdtype(a.dtype, np.number):
        return "matrix"
    if a.ndim == 1 and a.size and np.issubdtype(a.dtype, np.integer):
        if sorted(a.tolist()) != list(range(a.size)):
            raise ValueError(f"{what}: {a.tolist()} is not a permutation of 0..{a.size - 1}")
        return "permutation"
    raise ValueError(
        f"{what}: a rule is a square matrix (Box actions, vector states), a permutation of range(n) "
        f"(Discrete(n) actions) or a function of one array; got {rule!r}"
    )


def _as_map(kind: str, rule: Any) -> Callable[[Any], Any]:
    """The rule as a function on numpy arrays ``[..., d]`` (matrices), integer arrays (permutations) or tensors."""
    if kind == "function":
        return rule
    if kind == "matrix":
        m = np.asarray(rule, dtype=np.float64)

        def matrix(x):
            if _is_tensor(x):
                return x @ x.new_tensor(m).T
            a = np.asarray(x)
            out = a @ m.T
            return out.astype(a.dtype) if np.issubdtype(a.dtype, np.floating) else out

        return matrix
    perm = np.asarray(rule, dtype=np.int64)

    def permutation(x):
        if _is_tensor(x):
            import torch

            return torch.as_tensor(perm, device=x.device)[x.long()].to(x.dtype)
        out = perm[np.asarray(x)]
        return type(x)(out) if isinstance(x, int | np.integer) else out

    return permutation


@dataclass(frozen=True)
class Symmetry(groups.Symmetry):
    """A group acting on an environment's actions (and optionally its world states), checked on declaration.

    :param group: the name of a subgroup of D4 acting on the picture (:data:`sen_rl.groups.PLANE_GROUPS`).
    :param action: generator name -> its rule on MDP actions: a matrix (``Box``), a permutation
        (``Discrete``) or a function.
    :param state: generator name -> its rule on world states (a matrix or a function), or None
        when unknown (then no twins and no EE(S), the rest works).
    :param make_kwargs: ``gym.make`` keywords under which the symmetry shows in the pictures
        (a camera on the mirror's axis, the frame size...); plain JSON values. Keywords given
        when the env is made override them.
    :param description: optional words for people (what the symmetry is, in the env's terms).

    ``name`` (the group's name) and ``elements`` (its D4 elements ``(f, k)``, identity first)
    are derived. ``act_on_action(g, a)`` and ``act_on_state(g, s)`` apply any element; matrices
    and permutations act on numpy arrays and torch tensors alike.
    """

    name: str = field(init=False)
    elements: tuple = field(init=False)
    group: str
    action: Mapping[str, Any]
    state: Mapping[str, Any] | None = None
    make_kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        pg = plane_group(self.group)
        object.__setattr__(self, "name", pg.name)
        object.__setattr__(self, "elements", pg.elements)
        action_kinds = {n: _rule_kind(r, f"action rule of {n!r}") for n, r in dict(self.action).items()}
        object.__setattr__(self, "_action_maps", {n: _as_map(k, self.action[n]) for n, k in action_kinds.items()})
        object.__setattr__(self, "action_kind", self._single_kind(action_kinds, "action"))
        if self.action_kind != "function":
            pg.check_relations(self._action_maps, self._basis(self.action, self.action_kind), "the action rule")
        state_maps = None
        if self.state is not None:
            state_kinds = {n: _rule_kind(r, f"state rule of {n!r}") for n, r in dict(self.state).items()}
            if "permutation" in state_kinds.values():
                raise ValueError("state rules are matrices or functions (a world state is a vector of numbers)")
            state_maps = {n: _as_map(k, self.state[n]) for n, k in state_kinds.items()}
            kind = self._single_kind(state_kinds, "state")
            if kind == "matrix":
                pg.check_relations(state_maps, self._basis(self.state, kind), "the state rule")
            else:  # still: one rule per generator
                missing = set(pg.generator_names) ^ set(state_maps)
                if missing:
                    raise ValueError(
                        f"the state rule: {pg.name} is generated by {', '.join(pg.generator_names)}; "
                        f"give exactly one rule per generator (wrong: {', '.join(sorted(missing))})"
                    )
        object.__setattr__(self, "_state_maps", state_maps)

    @staticmethod
    def _single_kind(kinds: dict[str, str], what: str) -> str:
        distinct = set(kinds.values())
        if len(distinct) > 1:
            raise ValueError(f"the {what} rules mix {', '.join(sorted(distinct))}; give every generator the same kind")
        if not distinct:
            raise ValueError(f"no {what} rules given; give one per generator")
        (kind,) = distinct
        return kind

    @staticmethod
    def _basis(rules: Mapping[str, Any], kind: str) -> np.ndarray:
        """Inputs on which checking a linear rule (or a permutation) checks it everywhere."""
        sizes = {np.asarray(r).shape[0] for r in rules.values()}
        if len(sizes) != 1:
            raise ValueError(f"the rules act on spaces of different sizes {sorted(sizes)}; they must agree")
        (n,) = sizes
        return np.eye(n) if kind == "matrix" else np.arange(n)

    @property
    def plane_group(self) -> PlaneGroup:
        return plane_group(self.group)

    @property
    def has_state_rule(self) -> bool:
        return self._state_maps is not None

    def act_on_action(self, g, action):
        """``rho_A(g) a`` for actions ``[..., d]`` (matrices), indices (permutations) or what a function takes."""
        return self.plane_group.apply(self._action_maps, g, action)

    def act_on_state(self, g, state):
        """``g s`` for world states ``[..., D]``; a ValueError when no state rule was declared."""
        if self._state_maps is None:
            raise ValueError(
                f"this {self.name} symmetry declares no rule on world states; twins and EE(S) need one: "
                "declare Symmetry(..., state={generator: matrix or function})"
            )
        return self.plane_group.apply(self._state_maps, g, np.asarray(state, dtype=np.float64))

    def check_actions(self, action_space, n_samples: int = 16, seed: int = 0) -> None:
        """Check the action rules against ``action_space``: sizes, and the relations for function rules.

        Environments made with this symmetry call it (:class:`sen_rl.envs.custom.CustomEnv`).
        """
        import gymnasium as gym

        discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.action_kind == "permutation" and not discrete:
            raise ValueError(f"the action rules are permutations, but the actions are {action_space} (not Discrete)")
        if self.action_kind == "matrix" and not (
            isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1
        ):
            raise ValueError(f"the action rules are matrices, but the actions are {action_space} (not a vector Box)")
        if self.action_kind != "function":
            n = int(action_space.n) if discrete else int(action_space.shape[0])
            size = np.asarray(next(iter(self.action.values()))).shape[0]
            if size != n:
                raise ValueError(f"the action rules act on {size} numbers, but the actions are {action_space} ({n})")
            return
        action_space.seed(seed)
        samples = np.stack([np.asarray(action_space.sample()) for _ in range(n_samples)])
        exact = discrete or np.issubdtype(samples.dtype, np.integer)
        self.plane_group.check_relations(
            self._action_maps,
            samples,
            "the action rule",
            close=(lambda a, b: np.array_equal(a, b)) if exact else None,
        )
        for g in self.elements:
            out = np.asarray(self.act_on_action(g, samples))
            if out.shape != samples.shape:
                raise ValueError(f"the action rule maps actions {samples.shape} to shape {out.shape} (for {g})")


def load_symmetry(path: str | Symmetry) -> Symmetry:
    """The :class:`Symmetry` named by ``"module.path:NAME"`` (a Symmetry passes through).

    The module is imported as Python would; if it is not found, the current directory is put
    on ``sys.path`` and the import tried again, so that ``sen-rl collect --symmetry mypkg.sym:REFLECT``
    finds ``./mypkg/sym.py`` like ``python -m`` would.
    """
    if isinstance(path, Symmetry):
        return path
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"a symmetry is named 'module.path:NAME' (e.g. 'mypkg.sym:REFLECT'), got {path!r}")
    module_name, attr = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if os.getcwd() in sys.path or exc.name != module_name.split(".")[0]:
            raise ValueError(f"cannot import {module_name!r} for the symmetry {path!r}: {exc}") from None
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc2:
            raise ValueError(f"cannot import {module_name!r} for the symmetry {path!r}: {exc2}") from None
    if not hasattr(module, attr):
        raise ValueError(f"{module_name} has no {attr!r} (for the symmetry {path!r})")
    sym = getattr(module, attr)
    if not isinstance(sym, Symmetry):
        raise ValueError(f"{path} is a {type(sym).__name__}, not a sen_rl.symmetry.Symmetry")
    return sym


__all__ = ["RULE_KINDS", "Symmetry", "load_symmetry"]
