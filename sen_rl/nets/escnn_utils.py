"""What every escnn network of sen-rl shares: the import, the gspaces, layer init and the wrapper.

- :func:`import_escnn` is the only place that imports escnn, and the only place that
  silences its warning that py3nj (a Fortran package) is missing: only escnn's SO(3)
  Clebsch-Gordan code uses py3nj, and sen-rl's escnn networks use the 2D groups C4 and D4.
- :func:`c4_gspace` / :func:`d4_gspace` are the escnn spaces whose elements act on fields
  exactly as :mod:`sen_rl.groups` says (checked in the tests); :func:`escnn_element`
  translates our D4 elements.
- :func:`r2conv` / :func:`linear` build layers initialised like escnn would (generalized He),
  only much faster (:func:`he_variances`).
- :class:`EscnnNet` puts an escnn ``SequentialModule`` behind a plain-tensor interface.

escnn is a hard dependency, but it is imported on first use: ``import sen_rl.nets.grid``
stays cheap for the variants without escnn.
"""

from __future__ import annotations

import copy
import functools
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from sen_rl.groups import d4_element

if TYPE_CHECKING:  # annotations only: escnn itself loads on first use
    from escnn.group import GroupElement
    from escnn.gspaces import GSpace2D
    from escnn.nn import FieldType
    from escnn.nn.modules.basismanager import BlocksBasisExpansion
    from numpy.typing import ArrayLike


@functools.lru_cache(maxsize=1)
def import_escnn() -> ModuleType:
    """The ``escnn`` package with ``escnn.nn`` and ``escnn.gspaces`` loaded, its py3nj warning silenced.

    Cached: ``catch_warnings`` resets Python's warning registries, so it runs once, not per call.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*py3nj.*", category=UserWarning)
        import escnn.gspaces
        import escnn.nn
    _deterministic_null_spaces(escnn)
    _index_labels_once(escnn)
    return escnn


def _deterministic_null_spaces(escnn: ModuleType) -> None:
    """Make escnn solve its kernel constraints with scipy's SVD even where scikit-learn is installed.

    escnn 1.0.11 switches to scikit-learn's ``randomized_svd`` (unseeded) when it can import it.
    Recent scikit-learn refuses the ``np.matrix`` escnn passes (TypeError at the first R2Conv),
    and where it works the basis of each layer depends on the random draw, so a checkpoint's
    ``weights`` would mean other filters on a machine with scikit-learn than without.
    """
    from escnn.group import _numerical

    _numerical.randomized_svd = None


def _index_labels_once(escnn: ModuleType) -> None:
    """Make escnn's ``indexes_from_labels`` check each distinct label once instead of once per field.

    escnn 1.0.11 re-scans every index list for every field (quadratic): 0.77 s of the 1.9 s it
    takes to rebuild a paper-size Reacher model, all in the 5 batch norms of 181 fields. The
    result is the same dict, built in linear time; the tests compare both on real field types.
    """
    from escnn.nn.modules import utils
    from escnn.nn.modules.batchnormalization import inner

    original = utils.indexes_from_labels

    def indexes_from_labels(in_type, labels):
        distinct = list(dict.fromkeys(labels))
        if len(distinct) == len(labels):
            return original(in_type, labels)
        indexes: dict = {label: [] for label in distinct}
        fields: dict = {label: [] for label in distinct}
        position = 0
        for c, (label, rep) in enumerate(zip(labels, in_type.representations, strict=True)):
            indexes[label] += range(position, position + rep.size)
            fields[label].append(c)
            position += rep.size
        return {
            label: (utils.check_consecutive_numbers(indexes[label]), fields[label], indexes[label])
            for label in distinct
        }

    indexes_from_labels.escnn_original = original  # type: ignore[attr-defined]
    utils.indexes_from_labels = indexes_from_labels
    inner.indexes_from_labels = indexes_from_labels  # imported by name there


# --------------------------------------------------------------------------- groups


@functools.lru_cache(maxsize=1)
def c4_gspace() -> GSpace2D:
    """escnn's C4 acting on the plane: element ``k`` turns a field like ``torch.rot90(., k)``."""
    return import_escnn().gspaces.rot2dOnR2(N=4)


@functools.lru_cache(maxsize=1)
def d4_gspace() -> GSpace2D:
    """escnn's D4 acting on the plane, with reflections matching ours.

    With ``axis=0.0`` (reflection about escnn's X axis, which is the image-row flip) escnn's
    element ``((f, k), "int")`` transforms a scalar field exactly as our ``(f, k)``
    (:func:`sen_rl.groups.d4_act_on_embedding`). With escnn's default ``axis=pi/2`` the
    reflections would be relabelled (ours ``(1, k)`` = escnn ``(1, k+2)``).
    """
    return import_escnn().gspaces.flipRot2dOnR2(N=4, axis=0.0)


def escnn_element(g: ArrayLike) -> GroupElement:
    """Our D4 element ``(f, k)`` as an escnn group element of :func:`d4_gspace` (same parameters)."""
    return d4_gspace().fibergroup.element(d4_element(g), "int")


# --------------------------------------------------------------------------- layers


def he_variances(basis: BlocksBasisExpansion) -> torch.Tensor:
    """escnn's generalized He init scales (``escnn.nn.init._generalized_he_init_variances``), fast.

    escnn walks every basis element of every (input field, output field) pair in Python,
    about 35 s for the paper-size Reacher encoder; the scale of a weight only depends on its
    output irrep and the number of basis elements reaching it, so one pass per block type
    suffices. Equality with escnn's own result is tested.
    """
    n_in = {}
    for r in basis._in_reprs:
        n_in[r.name] = n_in.get(r.name, 0) + 1
    out_start = np.cumsum([0] + [len(r.irreps) for r in basis._out_reprs])
    out_fields: dict[str, list[int]] = {}
    for o, r in enumerate(basis._out_reprs):
        out_fields.setdefault(r.name, []).append(o)
    pairs = list(basis._representations_pairs)
    attrs = {p: list(getattr(basis, f"block_expansion_{basis._escape_pair(p)}").get_basis_info()) for p in pairs}
    inputs: dict[int, set] = {}
    counts: dict[tuple, int] = {}
    for p in pairs:
        for o in out_fields[p[1]]:
            for a in attrs[p]:
                og = int(out_start[o]) + a["out_irrep_idx"]
                inputs.setdefault(og, set()).add(a["in_irrep"])
                counts[(a["in_irrep"], og)] = counts.get((a["in_irrep"], og), 0) + n_in[p[0]]
    chunks = []
    for p in pairs:
        for o in out_fields[p[1]]:
            v = []
            for a in attrs[p]:
                og = int(out_start[o]) + a["out_irrep_idx"]
                v.append(1.0 / np.sqrt(len(inputs[og]) * counts[(a["in_irrep"], og)]))
            chunks.append(np.tile(np.asarray(v, dtype=np.float32), n_in[p[0]]))
    out = torch.from_numpy(np.concatenate(chunks)) if chunks else torch.zeros(0)
    if out.numel() != basis.dimension():
        raise RuntimeError("escnn's basis layout changed; he_variances no longer matches it")
    return out


def _he_init(module: nn.Module) -> nn.Module:
    """Initialise an escnn R2Conv/Linear built with ``initialize=False`` like escnn would.

    The same single ``randn_like`` draw as ``escnn.nn.init.generalized_he_init``, so a seed
    gives the same weights as escnn's own init.
    """
    with torch.no_grad():
        module.weights.copy_(he_variances(module.basisexpansion) * torch.randn_like(module.weights))
    return module


def r2conv(t_in: FieldType, t_out: FieldType, kernel: int, **kwargs) -> nn.Module:
    """``escnn.nn.R2Conv(t_in, t_out, kernel, **kwargs)`` with escnn's He init, computed fast."""
    return _he_init(import_escnn().nn.R2Conv(t_in, t_out, kernel, initialize=False, **kwargs))


def linear(t_in: FieldType, t_out: FieldType) -> nn.Module:
    """``escnn.nn.Linear(t_in, t_out)`` with escnn's He init, computed fast."""
    return _he_init(import_escnn().nn.Linear(t_in, t_out, initialize=False))


def dilated_basis(dilation: int) -> dict:
    """R2Conv basis options making a dilated 3x3 filter the undilated one on a stretched grid.

    escnn's defaults stretch the rings with the dilation but not the Gaussian widths, so at
    dilation 8 the sampled basis is ~1e-15 at the grid points and its normalisation turns
    rounding noise into the filter (0.7 relative equivariance error measured); it also admits
    frequencies up to 2 * dilation that 8 points on a ring cannot carry.
    """
    d = float(dilation)
    return {
        "rings": [0.0, d],
        "sigma": [0.005 * d, 0.4 * d],
        "frequencies_cutoff": _fco_3x3,
    }


def _fco_3x3(r: float) -> float:
    """escnn's default frequency cut-off of a 3x3 filter, at any dilation (0 at the centre, else 2)."""
    return 0.0 if r == 0.0 else 2.0


# --------------------------------------------------------------------------- wrapper


class EscnnNet(nn.Module):
    """An escnn ``SequentialModule`` behind a plain-tensor interface.

    ``export_module`` swaps ``net`` for its plain-torch export; ``forward`` accepts both.
    ``flatten`` turns the ``[B, C, 1, 1]`` output into ``[B, C]``.

    ``net`` is deep-copied: escnn caches its basis-sampling submodules and shares them
    between every layer of the same shape, across models, so ``.to(device / dtype)`` of one
    model would move the buffers of another. The copy keeps them shared only inside this one.
    """

    #: Whether escnn's R2Convs cache their expanded filter in eval mode. escnn then adds
    #: ``filter`` / ``expanded_bias`` buffers to the eval-mode state dict; with False they
    #: expand the filter on every call in both modes and the state dict never changes with
    #: the mode. Part of a network's checkpoint format, so fixed per network class.
    cache_filters: bool = True

    def __init__(self, net: nn.Module, flatten: bool = False):
        super().__init__()
        self.net = copy.deepcopy(net)
        self.flatten = flatten
        if not self.cache_filters:
            self.train()  # drops the placeholder filter buffers R2Conv registers at construction

    @property
    def in_type(self) -> FieldType:
        return self.net.in_type

    def train(self, mode: bool = True) -> EscnnNet:
        # eval() makes R2Convs cache their expanded filter; without no_grad it would keep
        # autograd history, and deepcopy (export_module, checkpoint copies) then fails
        with torch.no_grad():
            super().train(mode)
        if not mode and not self.cache_filters:
            enn = import_escnn().nn
            for m in self.net.modules():
                if isinstance(m, enn.R2Conv):
                    m.train(True)  # drops the cached filter; the conv has no other mode-dependence
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enn = import_escnn().nn
        if isinstance(self.net, enn.EquivariantModule):
            y = self.net(enn.GeometricTensor(x, self.net.in_type)).tensor
        else:  # exported: plain torch
            y = self.net(x)
        return y.flatten(1) if self.flatten else y
