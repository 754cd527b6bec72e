"""Two-way ANOVA variance components of unit responses over a (by × within) grid."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._access import activity_var, raw_gate_var
from ._reduce import grouped_sum
from .errors import CoordError

__all__ = ["cell_means", "anova_components"]


def cell_means(ds: xr.Dataset, by: str, within: str) -> np.ndarray:
    """Mean activity of every unit in every (by, within) cell: array (unit, by, within).

    Activity is the recorded activation, or the gate (rate) when only gates were stored.
    Every combination must have at least one sample.
    """
    activity = activity_var(ds) if "activation" in ds.data_vars else raw_gate_var(ds)
    sums, count = grouped_sum(activity, [by, within])
    missing = int((count.values == 0).sum())
    if missing:
        raise CoordError(
            f"the two-way ANOVA needs a sample for every ({by}, {within}) combination; "
            f"{missing} of {count.size} combinations have none."
        )
    return (sums / count).transpose("unit", by, within).values.astype(np.float64)


def anova_components(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Variance components of the balanced two-way decomposition of each unit's cell means.

    For unit *u* with cell means :math:`M_{ab}` (:math:`A` levels of *a*, :math:`B` of *b*):
    :math:`M_{ab} = \mu + \alpha_a + \beta_b + \gamma_{ab}` and

    .. math:: SS_a = B \sum_a \alpha_a^2,\quad SS_b = A \sum_b \beta_b^2,\quad
              SS_{int} = \sum_{ab} \gamma_{ab}^2,\quad SS_{tot} = \sum_{ab} (M_{ab} - \mu)^2

    with :math:`SS_{tot} = SS_a + SS_b + SS_{int}`. Returns ``(ss_a, ss_b, ss_int, ss_tot)``,
    each of shape ``(unit,)``.
    """
    M = np.asarray(M, dtype=np.float64)
    _, A, B = M.shape
    mu = M.mean(axis=(1, 2), keepdims=True)
    alpha = M.mean(axis=2, keepdims=True) - mu
    beta = M.mean(axis=1, keepdims=True) - mu
    gamma = M - mu - alpha - beta
    ss_a = B * (alpha**2).sum(axis=(1, 2))
    ss_b = A * (beta**2).sum(axis=(1, 2))
    ss_int = (gamma**2).sum(axis=(1, 2))
    ss_tot = ((M - mu) ** 2).sum(axis=(1, 2))
    return ss_a, ss_b, ss_int, ss_tot
