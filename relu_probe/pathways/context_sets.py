"""The context-set decomposition: which set of contexts each unit serves for each item, and the
mass of every (unit, context set) pair (Jarvis et al., *Make Haste Slowly*, arXiv 2503.06181:
the pathways of a ReLU network are the context sets its units are active in)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from ..data.access import Recording
from ..data.reduce import grouped_sum
from ..errors import CoordError, DegenerateDataWarning

__all__ = ["context_set_mass", "cell_table"]


def cell_table(rec: Recording, by: str, within: str) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """Per (unit, item, context) cell: mean gate rate, summed activity, and sample count.

    Returns DataArrays with dims ``(unit, within, by)``; missing cells have count 0, rate 0
    and activity 0. Computed one sample chunk at a time on dask-backed recordings.
    """
    gate_sums, count = grouped_sum(rec.raw_gates(), [within, by])
    total = grouped_sum(rec.activity(), [within, by])[0] if rec.has_activation else gate_sums
    rate = (gate_sums / count.where(count > 0)).fillna(0.0)
    order = ("unit", within, by)
    return rate.transpose(*order), total.astype(np.float64).transpose(*order), count.astype(np.float64)


def context_set_mass(
    rec: Recording, by: str, within: str, importance: np.ndarray, on_fraction: float
) -> tuple[list[tuple], np.ndarray, tuple, dict[str, Any]]:
    r"""Mass of every (unit, context set) pair.

    For unit *u* and item *o*, :math:`S(u, o) = \{c : \bar g_u(o, c) > \text{on\_fraction}\}`
    (the contexts where the unit is on for the item; :math:`\bar g` is the gate rate over the
    cell's samples). With :math:`A(u, o) = \sum_{c \in S(u,o)} a_u(o, c)` (summed activity),
    the pair's mass is

    .. math:: m(u, o) = I_u \, \frac{A(u, o)}{\sum_{o'} A(u, o')}

    so each unit's importance :math:`I_u` is split over its items in proportion to their
    activity. With the readout importance :math:`I_u \propto \lVert W_{:,u} \rVert \bar a_u`
    this is exactly :math:`\lVert W_{:,u} \rVert \sum_{c} a_u(o, c) / P`, the weighting of
    Jarvis et al. (arXiv 2503.06181), and with the activity importance it is
    :math:`\sum_c a_u(o, c)`.

    Returns ``(contexts, membership (unit × set), context_values, info)``.
    """
    rate, total, count = cell_table(rec, by, within)
    context_values = tuple(count[by].values.tolist())
    present = count.values > 0  # (item, context)
    per_item = present.sum(1)
    if per_item.max() <= 1:
        raise CoordError(
            f"method='context-sets' needs items (`within`={within!r}) that appear under several "
            f"values of `by`={by!r}, but every {within!r} value occurs in a single {by!r}. Use "
            "method='profiles' (clusters P(on | context) per unit) or method='cocluster'."
        )
    info: dict[str, Any] = {}
    single = per_item <= 1
    if single.any():
        warnings.warn(
            f"{int(single.sum())} of {single.size} `{within}` values occur under a single "
            f"`{by}` value and were left out of the context-set decomposition.",
            UserWarning,
            stacklevel=4,
        )
        info["items_left_out"] = int(single.sum())
    if (~present[~single]).any():
        info["missing_cells"] = int((~present[~single]).sum())
        warnings.warn(
            f"{info['missing_cells']} ({within}, {by}) combinations have no sample; the context "
            "sets of those items only range over the contexts where they occur.",
            UserWarning,
            stacklevel=4,
        )
    use = ~single
    on = (rate.values > on_fraction) & present[None, :, :] & use[None, :, None]  # (U, O, K)
    act = np.where(on, total.values, 0.0).sum(2)  # (U, O)
    per_unit = act.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(per_unit > 0, act / np.where(per_unit > 0, per_unit, 1.0), 0.0)
    weight = importance[:, None] * share  # (U, O)
    U, O, K = on.shape
    flat_w = weight.reshape(-1)
    keep = flat_w > 0
    if not keep.any():
        return [], np.zeros((U, 0)), context_values, info
    rows = on.reshape(U * O, K)[keep]
    sets, inverse = np.unique(rows, axis=0, return_inverse=True)
    unit_index = np.repeat(np.arange(U), O)[keep]
    membership = np.zeros((U, len(sets)))
    np.add.at(membership, (unit_index, inverse.reshape(-1)), flat_w[keep])
    contexts = [tuple(context_values[j] for j in np.flatnonzero(row)) for row in sets]
    return contexts, membership, context_values, info


def constant_gates(rec: Recording) -> bool:
    """True when no unit's gate varies across samples (all-off or all-on everywhere)."""
    gates = rec.gates()
    spread = (gates.max("sample") - gates.min("sample")).values
    return bool(np.all(spread == 0))


def warn_degenerate(message: str) -> None:
    warnings.warn(message, DegenerateDataWarning, stacklevel=4)
