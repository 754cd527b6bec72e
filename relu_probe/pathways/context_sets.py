"""The context-set decomposition: which set of contexts each unit serves for each item, and the
mass of every (unit, context set) pair (Jarvis et al., *Make Haste Slowly*, arXiv 2503.06181:
the pathways of a ReLU network are the context sets its units are active in)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..data.access import Recording
from ..data.reduce import grouped_sum
from ..errors import CoordError, DegenerateDataWarning
from .onsets import cell_on

__all__ = ["ContextSets", "context_set_mass", "cell_table", "cell_balanced_importance", "complete_items"]


@dataclass
class ContextSets:
    """The raw result of one decomposition (one site, or the pooled units).

    ``membership`` is (unit, set) raw mass (importance shares), ``contexts`` the context
    tuple of every set, ``unassigned`` the share of the importance that no set received,
    ``disagrees`` (unit,) the units whose own on-set differs from their pathway's set, and
    ``info`` what was left out (``items_left_out``).
    """

    contexts: list[tuple]
    membership: np.ndarray
    unassigned: float
    disagrees: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def cell_table(rec: Recording, by: str, within: str) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """Per (unit, item, context) cell: mean gate rate, summed activity, and sample count.

    Returns DataArrays with dims ``(unit, within, by)`` (the count: ``(within, by)``); missing
    cells have count 0, rate 0 and activity 0. Computed one sample chunk at a time on
    dask-backed recordings.
    """
    gate_sums, count = grouped_sum(rec.raw_gates(), [within, by])
    total = grouped_sum(rec.activity(), [within, by])[0] if rec.has_activation else gate_sums
    rate = (gate_sums / count.where(count > 0)).fillna(0.0)
    order = ("unit", within, by)
    return rate.transpose(*order), total.astype(np.float64).transpose(*order), count.astype(np.float64)


def complete_items(count: np.ndarray) -> np.ndarray:
    """Bool per item (rows of the (item, context) sample ``count``): it has a sample under
    every context."""
    return np.asarray(count > 0).all(axis=1)


def context_set_mass(
    rec: Recording, by: str, within: str, importance: np.ndarray, on_fraction: float, *,
    rebalance: bool = False,
) -> ContextSets:
    r"""Mass of every (unit, context set) pair.

    For unit *u* and item *o*, :math:`S(u, o) = \{c : u \text{ on in cell } (o, c)\}`
    (:func:`relu_probe.pathways.onsets.cell_on`: gate rate above ``on_fraction``; for
    channel units above ``on_fraction`` times the channel's own largest cell rate). With
    :math:`A(u, o) = \sum_{c \in S(u,o)} a_u(o, c)`, :math:`a_u(o, c)` the unit's mean
    activity over the samples of cell :math:`(o, c)`, the pair's mass is

    .. math:: m(u, o) = I_u \, \frac{A(u, o)}{\sum_{o'} A(u, o')}

    so each unit's importance :math:`I_u` is split over its items in proportion to their
    activity. With the readout importance :math:`I_u \propto \lVert W_{:,u} \rVert \bar a_u`
    this is exactly :math:`\lVert W_{:,u} \rVert \sum_{c} a_u(o, c) / P`, the weighting of
    Jarvis et al. (arXiv 2503.06181), and with the activity importance it is
    :math:`\sum_c a_u(o, c)`.

    **Cells, not samples.** Every (item, context) cell weighs the same whatever its number of
    samples: :math:`a_u(o, c)` is a mean over the cell, and with ``rebalance`` (the readout and
    activity importances, which are :math:`\propto \bar a_u`) the sample mean
    :math:`\bar a_u` in :math:`I_u` is replaced by the mean over cells,
    :math:`I_u \to I_u \, \bar a_u^{\mathrm{cells}} / \bar a_u`. Repeating the samples of
    some cells then leaves every mass as it was; on a balanced design nothing changes.

    **Unbalanced designs.** The context set of an item seen under only some contexts is not
    defined — a unit on wherever the item was shown could be shared or context-specific —
    so such items are left out, with a :class:`UserWarning` that says how many. Every set is
    then a subset of all K contexts, and the scores compare it with K.

    The importance of units that are on in no cell of the items kept is *unassigned*: it is
    returned (``unassigned``), not spread over the other units.
    """
    rate, total, count = cell_table(rec, by, within)
    context_values = tuple(count[by].values.tolist())
    present = count.values > 0  # (item, context)
    complete = complete_items(count.values)
    K = len(context_values)
    if not complete.any():
        most = int(present.sum(1).max(initial=0))
        raise CoordError(
            f"method='context-sets' needs items (`within`={within!r}) that appear under every value "
            f"of `by`={by!r} ({K} values), but no {within!r} value does (the most any appears under is "
            f"{most}). The context set of an item seen under only some contexts is not defined. Use "
            "method='profiles' (clusters P(on | context) per unit), or record the missing combinations."
        )
    info: dict[str, Any] = {}
    if not complete.all():
        left = int((~complete).sum())
        info["items_left_out"] = left
        warnings.warn(
            f"{left} of {complete.size} `{within}` values do not appear under every `{by}` value "
            f"({int((~present).sum())} ({within}, {by}) combinations have no sample) and were left out "
            f"of the context-set decomposition: the context set of an item seen under only some "
            f"contexts is not defined. The masses describe the {int(complete.sum())} complete items.",
            UserWarning,
            stacklevel=4,
        )
    cells, cell_mean = _cell_means(total.values, count.values)
    if rebalance:
        importance = _cell_balanced(importance, total.values, count.values, cell_mean, cells)
    on = _on_cells(rec, rate.values[:, complete, :], on_fraction)
    act = np.where(on, cell_mean[:, complete, :], 0.0).sum(2)  # (U, O)
    per_unit = act.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(per_unit > 0, act / np.where(per_unit > 0, per_unit, 1.0), 0.0)
    weight = importance[:, None] * share  # (U, O)
    U, O, _ = on.shape
    unassigned = float(importance[per_unit[:, 0] <= 0].sum())
    flat_w = weight.reshape(-1)
    keep = flat_w > 0
    if not keep.any():
        return ContextSets([], np.zeros((U, 0)), unassigned, np.zeros(U, bool), info)
    rows = on.reshape(U * O, K)[keep]
    sets, inverse = np.unique(rows, axis=0, return_inverse=True)
    unit_index = np.repeat(np.arange(U), O)[keep]
    membership = np.zeros((U, len(sets)))
    np.add.at(membership, (unit_index, inverse.reshape(-1)), flat_w[keep])
    contexts = [tuple(context_values[j] for j in np.flatnonzero(row)) for row in sets]
    return ContextSets(contexts, membership, unassigned, np.zeros(U, bool), info)


def cell_balanced_importance(importance: np.ndarray, rec: Recording, by: str, within: str) -> np.ndarray:
    r"""An activity-proportional importance (readout or activity, :math:`\propto \bar a_u`) with
    every present (item, context) cell weighing the same: :math:`I_u \, \bar a_u^{\mathrm{cells}} /
    \bar a_u`, normalised to sum to 1 (:func:`context_set_mass`). Unchanged on a design with
    the same number of samples in every cell."""
    _, total, count = cell_table(rec, by, within)
    cells, cell_mean = _cell_means(total.values, count.values)
    return _cell_balanced(importance, total.values, count.values, cell_mean, cells)


def _cell_means(total: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The present cells (item, context) and each unit's mean activity in them, 0 elsewhere
    (*total* (unit, item, context) summed activity, *count* (item, context) samples)."""
    cells = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return cells, np.where(cells[None], total / np.where(cells, count, 1.0)[None], 0.0)


def _cell_balanced(importance: np.ndarray, total: np.ndarray, count: np.ndarray, cell_mean: np.ndarray,
                   cells: np.ndarray) -> np.ndarray:
    """``I_u ā_u^cells / ā_u`` (:func:`context_set_mass`): the importance with every present
    (item, context) cell weighing the same; units with no activity keep theirs (zero share)."""
    n = count.sum()
    sample_mean = total.sum(axis=(1, 2)) / n if n > 0 else np.zeros(total.shape[0])
    per_cell = cell_mean.sum(axis=(1, 2)) / max(int(cells.sum()), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(sample_mean > 0, per_cell / np.where(sample_mean > 0, sample_mean, 1.0), 1.0)
    out = np.asarray(importance, dtype=np.float64) * ratio
    total_out = out.sum()
    return out / total_out if total_out > 0 else out


def _on_cells(rec: Recording, rate: np.ndarray, on_fraction: float) -> np.ndarray:
    """:func:`cell_on` for every unit of the recording, each by its own kind (0/1 gates or
    channel gate rates)."""
    channel = rec.rate_units()
    on = np.empty(rate.shape, dtype=bool)
    on[~channel] = cell_on(rate[~channel], on_fraction, channel_units=False)
    on[channel] = cell_on(rate[channel], on_fraction, channel_units=True)
    return on


def constant_gates(rec: Recording) -> bool:
    """True when no unit's gate varies across samples (all-off or all-on everywhere)."""
    gates = rec.gates()
    spread = (gates.max("sample") - gates.min("sample")).values
    return bool(np.all(spread == 0))


def warn_degenerate(message: str) -> None:
    warnings.warn(message, DegenerateDataWarning, stacklevel=4)
