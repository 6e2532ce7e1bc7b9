"""The domain table: the one place that says what each of sen-rl's domains is.

Everything that differs between the paper's four domains is a field of :class:`Domain`:
the env id and its registration, the keyword arguments each preset implies, which network
module builds its world models, the evaluation defaults and the goal task of the planners.
Registration, ``build_model``, training, evaluation, the CLI, the reproduction and the
pictures read this table; no other module branches on an env id.

>>> from sen_rl.domains import domain_of
>>> d = domain_of("SEN-Reacher-v0")
>>> d.env_kwargs("cpu")
{'size': 64}

Adding a domain is one :class:`Domain` entry here plus its env (``envs/``) and its networks
(``sen_rl/nets/``); ``docs/adding_a_domain.md`` walks through it.

This module imports neither torch nor MuJoCo: ``import sen_rl`` reads it to register the envs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from sen_rl import groups
from sen_rl.envs.shapes import CELL as SHAPES_CELL

PRESETS = ("smoke", "cpu", "paper")
"""Model sizes: ``smoke`` (seconds, for tests), ``cpu`` (minutes on 2 cores), ``paper`` (published, a GPU job)."""
VARIANTS = ("sen", "none", "full", "hvae")
"""World models: ``sen`` (the paper's SEN: plain CNN, then equivariant encoder and transition),
``none`` (nothing equivariant, C-SWM style), ``full`` (an equivariant CNN on the pixels),
``hvae`` (Teapot only: the Homeomorphic VAE baseline, an SO(3)-latent VAE trained on the
observations alone, whose latent moves by the true action's rotation)."""
CONTRASTIVE_VARIANTS = ("sen", "none", "full")
"""The variants trained with the contrastive loss, all of which the grid domains and Reacher have."""


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class GoalTask:
    """A goal-reaching task on a domain, for planners and agents.

    A goal is reached when the env's ``goal_distance(state, goal_state) <= tolerance``, for
    every domain; the distance is the env's own (cells, radians, metres).

    :param success: what that rule amounts to, for people and tables: ``"exact"`` (the world
        state equals the goal state), ``"orientation"`` (geodesic angle to the goal orientation
        at most ``tolerance`` radians) or ``"fingertip"`` (fingertip within ``tolerance`` metres
        of the goal configuration's fingertip).
    :param tolerance: the largest ``goal_distance`` that counts as reached (0 for ``"exact"``).
    :param goal_steps: the goal is drawn this many random steps away from the start state.
    :param max_steps: step budget of one episode.
    """

    success: str
    tolerance: float
    goal_steps: int
    max_steps: int


@dataclass(frozen=True)
class Domain:
    """One of sen-rl's domains: its env, symmetry, world-model networks and defaults.

    :param name: short name used in file and run names (``"shapes"``).
    :param title: the paper's name for it (``"2D Shapes"``).
    :param env_id: the Gymnasium id it is registered under.
    :param entry_point: ``"module:Class"`` of the env, as Gymnasium's registry takes it.
    :param max_episode_steps: ``TimeLimit`` of ``gym.make``.
    :param group: name of the symmetry group (its conventions are in :mod:`sen_rl.groups`).
    :param nets: module under ``sen_rl.nets`` whose ``build(variant, preset, obs_space,
        action_space, **net_kwargs)`` makes the world model's networks.
    :param variants: the world-model variants that exist for it.
    :param preset_env_kwargs: ``gym.make`` keywords each preset implies (Reacher's ``cpu``
        networks take 64x64 frames); a preset not listed uses the env's defaults.
    :param net_kwargs: keywords of the networks builder that follow from the env, not the preset,
        and settings of a baseline that differ from the builder's defaults, which stay those of
        older checkpoints (a checkpoint stores the keywords it was built with).
    :param act_on_embedding: ``rho_V(g) v``, the group's action on the embedding of the SEN
        (torch, batched), from :mod:`sen_rl.groups`; EE(S) measures the SEN against it.
    :param act_on_latent: ``rho_Z(g) z``, the group's action on the latent (torch, batched),
        from :mod:`sen_rl.groups`; the world model's encoder and transition commute with it.
    :param act_on_observation: ``rho_X(g) x``, the group's action on the env's pixels ``[..., H, W, C]``
        (numpy), where a known map of the image re-renders the moved world state (2D Shapes
        exactly, Reacher up to anti-aliasing); None where no such map exists (3D Blocks' and
        Teapot's perspective views: the case SEN is for). Training's ``augment="group"`` needs it.
    :param quarter_turn: the reference element of ``ee_quarter`` (one counter-clockwise quarter turn).
    :param eval_horizon: steps rolled forward by the paper's evaluation.
    :param traversals: TH@1 traversals (Teapot): ``(name, index of the small action turned by)``.
    :param direction_names: names of the move directions when a discrete action is
        ``object * len(names) + direction`` (grids); lets ``--actions up`` restrict collection.
    :param warmup: random unrecorded steps after each reset in the paper's datasets.
    :param episode_steps: recorded steps per episode in the paper's training sets.
    :param goal: the goal task of the planners (None: it has none, like the custom domain).
    :param preset_batch_size: training batch size of a preset where the domain departs from
        the trainer's default (``sen_rl.train.PRESET_TRAINING``), with the reason beside it.
    :param env_net_kwargs: ``gym.make`` keywords that the networks read too (the custom domain's
        ``symmetry``): copied from the env's keywords into the networks' (:meth:`net_kwargs_for`).
    """

    name: str
    title: str
    env_id: str
    entry_point: str
    max_episode_steps: int
    group: str
    nets: str
    variants: tuple[str, ...]
    act_on_embedding: Callable[[Any, Any], Any]
    act_on_latent: Callable[[Any, Any], Any]
    quarter_turn: Any
    eval_horizon: int
    goal: GoalTask | None
    preset_env_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=_frozen)
    net_kwargs: Mapping[str, Any] = field(default_factory=_frozen)
    traversals: tuple[tuple[str, int], ...] = ()
    act_on_observation: Callable[[Any, Any], Any] | None = None
    direction_names: tuple[str, ...] | None = None
    warmup: int = 0
    episode_steps: int = 100
    env_net_kwargs: tuple[str, ...] = ()
    preset_batch_size: Mapping[str, int] = field(default_factory=_frozen)

    @property
    def goal_env_id(self) -> str:
        """Id of its goal task (:mod:`sen_rl.agents.goals`): ``-Goal`` before the version (``SEN-Shapes-Goal-v0``)."""
        name, sep, version = self.env_id.rpartition("-v")
        return f"{name}-Goal{sep}{version}" if sep else f"{self.env_id}-Goal"

    def env_kwargs(self, preset: str | None = None, **overrides: Any) -> dict[str, Any]:
        """``gym.make`` keywords for ``preset`` (None: the env's defaults), with ``overrides`` on top."""
        if preset is not None:
            check_choice("preset", preset, PRESETS)
        return {**self.preset_env_kwargs.get(preset, {}), **overrides}

    def make_env(self, preset: str | None = None, **overrides: Any):
        """``gym.make(env_id, **env_kwargs(preset, **overrides))``."""
        import gymnasium as gym

        register_envs()
        return gym.make(self.env_id, **self.env_kwargs(preset, **overrides))

    def net_kwargs_for(self, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Keywords of the networks builder for an env made with ``env_kwargs``: ``net_kwargs`` plus
        the ``env_net_kwargs`` found in ``env_kwargs``."""
        return {**self.net_kwargs, **{k: env_kwargs[k] for k in self.env_net_kwargs if k in env_kwargs}}

    def env_class(self) -> type:
        """The env's class (imports its module, and so MuJoCo for the rendered domains)."""
        module, name = self.entry_point.split(":")
        return getattr(importlib.import_module(module), name)

    def nets_module(self):
        """The module under ``sen_rl.nets`` that builds this domain's networks (imports torch)."""
        return importlib.import_module(f"sen_rl.nets.{self.nets}")

    def check_variant(self, variant: str) -> str:
        if variant not in self.variants:
            why = " (how its group acts on pixels is unknown)" if variant == "full" else ""
            raise ValueError(
                f"{self.env_id} has no {variant!r} world model{why}; choose one of {', '.join(self.variants)}"
            )
        return variant


def check_choice(name: str, value: str, allowed) -> str:
    """``value`` if it is in ``allowed``, else a ValueError naming the option and the choices."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not known; choose one of {', '.join(allowed)}")
    return value


def check_positive_int(name: str, value) -> int:
    """``value`` if it is a positive int (not a bool), else a ValueError naming the option."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


_SMALL_TURN = 2 * np.pi / 30  # Teapot's small actions
_GRID_GOAL = GoalTask(success="exact", tolerance=0.0, goal_steps=5, max_steps=20)

#: The table, keyed by env id.
#: The grid transitions sit on a plateau (predicting no move) for a seed-dependent number of
#: updates; at the cpu preset's 10-20 epochs, batch 256 leaves some seeds on it or just off
#: it, undershooting every move, and their 10-step rollouts drift. Batch 64 (4x the updates,
#: noisier) leaves it within 2-4 epochs: docs/RESULTS_findings.md, "multi-step drift".
_GRID_CPU_BATCH = _frozen({"cpu": 64})

DOMAINS: Mapping[str, Domain] = MappingProxyType(
    {
        d.env_id: d
        for d in (
            Domain(
                name="shapes",
                title="2D Shapes",
                env_id="SEN-Shapes-v0",
                entry_point="sen_rl.envs.shapes:ShapesEnv",
                max_episode_steps=100,
                group="C4",
                nets="grid",
                variants=CONTRASTIVE_VARIANTS,
                # drawn on cells of CELL pixels, which the cell-aligned SEN reads one at a time
                net_kwargs=_frozen({"cell": SHAPES_CELL}),
                act_on_embedding=groups.c4_act_on_embedding,
                act_on_latent=groups.c4_act_on_latent,
                act_on_observation=groups.c4_act_on_image,
                quarter_turn=groups.C4_QUARTER_TURN,
                eval_horizon=10,
                direction_names=groups.GRID_DIRECTIONS,
                goal=_GRID_GOAL,
                preset_batch_size=_GRID_CPU_BATCH,
            ),
            Domain(
                name="cubes",
                title="3D Blocks",
                env_id="SEN-Cubes-v0",
                entry_point="sen_rl.envs.cubes:CubesEnv",
                max_episode_steps=100,
                group="C4",
                nets="grid",
                variants=CONTRASTIVE_VARIANTS,
                act_on_embedding=groups.c4_act_on_embedding,
                act_on_latent=groups.c4_act_on_latent,
                quarter_turn=groups.C4_QUARTER_TURN,
                eval_horizon=10,
                direction_names=groups.GRID_DIRECTIONS,
                goal=_GRID_GOAL,
                preset_batch_size=_GRID_CPU_BATCH,
            ),
            Domain(
                name="teapot",
                title="Teapot",
                env_id="SEN-Teapot-v0",
                entry_point="sen_rl.envs.teapot:TeapotEnv",
                max_episode_steps=100,
                group="SO(3) (the cube's 24 rotations for tests and twins)",
                nets="teapot",
                variants=("sen", "none", "hvae"),
                act_on_embedding=groups.so3_act_on_matrix,  # V = Z = SO(3): g @ z
                act_on_latent=groups.so3_act_on_matrix,
                quarter_turn=groups.SO3_QUARTER_TURN,
                eval_horizon=1,
                # small-action indices of +z, +y, +x in groups.TEAPOT_SMALL_AXES
                traversals=(("yaw", 4), ("pitch", 2), ("roll", 0)),
                episode_steps=1,
                goal=GoalTask(success="orientation", tolerance=_SMALL_TURN, goal_steps=5, max_steps=30),
                # the same plateau as the grids' (about 15 epochs at batch 256): batch 64 leaves it
                # sooner and ranks better on every metric at 100 epochs (HH@1 84.6-98.0% over 3
                # seeds against 81.3 +- 3.9%): docs/RESULTS_findings.md, Teapot
                preset_batch_size=_frozen({"cpu": 64}),
                # the "none" baseline: without BatchNorm its latents start at a point and stay there,
                # without the action's matrix it learns less than half as fast, and its transition MLP
                # has C-SWM's (and the paper preset's) 512 hidden units at every preset: at the cpu
                # preset's 128 it ranked lower on every seed (docs/RESULTS_findings.md, Teapot); here,
                # not as the builder's defaults, so older checkpoints keep loading
                net_kwargs=_frozen({"none_batch_norm": True, "none_action": "matrix", "none_hidden": 512}),
            ),
            Domain(
                name="reacher",
                title="Reacher",
                env_id="SEN-Reacher-v0",
                entry_point="sen_rl.envs.reacher:ReacherEnv",
                max_episode_steps=50,
                group="D4",
                nets="reacher",
                variants=CONTRASTIVE_VARIANTS,
                # the smoke and cpu networks take 64x64 frames; paper: the env's 128x128
                preset_env_kwargs=_frozen({"smoke": {"size": 64}, "cpu": {"size": 64}}),
                act_on_embedding=groups.d4_act_on_embedding,
                act_on_latent=groups.d4_act_on_latent,
                act_on_observation=groups.d4_act_on_image,
                quarter_turn=groups.D4_QUARTER_TURN,
                eval_horizon=1,
                warmup=50,
                episode_steps=10,
                goal=GoalTask(success="fingertip", tolerance=0.02, goal_steps=10, max_steps=50),
            ),
        )
    }
)

ENV_IDS: tuple[str, ...] = tuple(DOMAINS)

#: Any registered Gymnasium env that renders ``rgb_array``, seen as pixels, with a symmetry the
#: user declares (:mod:`sen_rl.symmetry`): ``gym.make("SEN-Custom-v0", env=ID, symmetry="pkg:NAME")``.
#: Not one of the paper's :data:`DOMAINS` (no goal task, no tables); ``domain_of`` knows it. The
#: declared group is a subgroup of D4, written with D4's elements, so D4's actions on V and Z hold.
CUSTOM = Domain(
    name="custom",
    title="Custom environment",
    env_id="SEN-Custom-v0",
    entry_point="sen_rl.envs.custom:CustomEnv",
    max_episode_steps=1000,
    group="declared: a subgroup of D4 (sen_rl.groups.PLANE_GROUPS)",
    nets="generic",
    variants=("sen", "none"),
    act_on_embedding=groups.d4_act_on_embedding,
    act_on_latent=groups.d4_act_on_latent,
    quarter_turn=groups.D4_QUARTER_TURN,  # the evaluation falls back to another element without one
    eval_horizon=1,
    goal=None,
    episode_steps=10,
    env_net_kwargs=("symmetry",),
)


def domain_of(env_id: str) -> Domain:
    """The domain whose env or goal task is registered as ``env_id`` (``"sen_rl:"`` prefix allowed).

    A ValueError lists the known ids when ``env_id`` is neither.
    """
    key = env_id.split(":", 1)[1] if env_id.startswith("sen_rl:") else env_id
    for d in DOMAINS.values():
        if key in (d.env_id, d.goal_env_id):
            return d
    if key == CUSTOM.env_id:
        return CUSTOM
    raise ValueError(f"{env_id!r} is not a sen-rl domain; known: {', '.join(ENV_IDS)} and their -Goal- tasks")


def register_envs() -> None:
    """Register every domain's env and its goal task (``Domain.goal_env_id``) with Gymnasium (idempotent)."""
    import gymnasium as gym

    if CUSTOM.env_id not in gym.registry:
        gym.register(id=CUSTOM.env_id, entry_point=CUSTOM.entry_point, max_episode_steps=CUSTOM.max_episode_steps)
    for d in DOMAINS.values():
        if d.env_id not in gym.registry:
            gym.register(id=d.env_id, entry_point=d.entry_point, max_episode_steps=d.max_episode_steps)
        if d.goal_env_id not in gym.registry:
            gym.register(
                id=d.goal_env_id,
                entry_point="sen_rl.agents.goals:make_goal_env",
                kwargs={"env_id": d.env_id},
                max_episode_steps=d.goal.max_steps,
            )


__all__ = [
    "CONTRASTIVE_VARIANTS",
    "CUSTOM",
    "DOMAINS",
    "ENV_IDS",
    "PRESETS",
    "VARIANTS",
    "Domain",
    "GoalTask",
    "domain_of",
    "register_envs",
]
