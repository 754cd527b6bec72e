"""Nonlinear mixed selectivity: the interaction share of a two-way ANOVA of each unit's activity
over two factors (Rigotti et al. 2013, *Nature* 497:585), per unit and for the population."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from .._util.checks import check_choice
from ..data.access import align_importance, as_recording, Recording
from ..data.reduce import grouped_sum
from ..errors import DegenerateDataWarning, IncompleteDesignError
from ..pathways.context_sets import cell_balanced_importance
from ..pathways.importance import ACTIVITY_PROPORTIONAL, unit_importance
from .factors import two_factors

__all__ = ["anova_components", "cell_means", "mixed_selectivity_index", "mixed_selectivity_score"]


def cell_means(rec: Recording, by: str, within: str) -> np.ndarray:
    """Mean activity of every unit in every (by, within) cell: array (unit, by, within).

    Activity is the recorded activation with its sign (a LeakyReLU's negative branch
    :math:`\alpha z` stays negative: the ANOVA sees the unit's response, not its magnitude),
    or the gate (rate) when only gates were stored. Every combination must have at least one
    sample.
    """
    sums, count = grouped_sum(rec.summed_activity(), [by, within])
    missing = int((count.values == 0).sum())
    if missing:
        raise IncompleteDesignError(
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


def mixed_selectivity_index(
    ds: xr.Dataset,
    by: str | Sequence[str] = ("context", "object"),
    *,
    within: str | None = None,
    sites: str | Sequence[str] | None = None,
) -> xr.DataArray:
    r"""Per-unit nonlinear mixed-selectivity index: the interaction share of a two-way ANOVA.

    With the unit's mean activity in every (by, within) cell decomposed as
    :math:`M_{ab} = \mu + \alpha_a + \beta_b + \gamma_{ab}` (balanced two-way ANOVA),

    .. math:: \mathrm{NMS}_u = \frac{SS_{int}}{SS_{a} + SS_{b} + SS_{int}},\quad
              SS_{int} = \sum_{ab} \gamma_{ab}^2,\; SS_a = B\sum_a \alpha_a^2,\;
              SS_b = A\sum_b \beta_b^2

    (Rigotti et al. 2013, *Nature* 497:585; Fusi, Miller & Rigotti 2016). Activity is the
    recorded activation with its sign (for a LeakyReLU the signed output, never its
    magnitude), or the gate when only gates were stored. Units whose activity does
    not vary (:math:`SS_{tot} = 0`) have no selectivity at all and get index 0.

    Returns
    -------
    xarray.DataArray
        Over ``unit`` with the dataset's unit coords, values in [0, 1].
    """
    rec = as_recording(ds).select_sites(sites)
    by, within = two_factors(rec, by, within)
    _, _, ss_int, ss_tot = anova_components(cell_means(rec, by, within))
    index = np.divide(ss_int, ss_tot, out=np.zeros_like(ss_int), where=ss_tot > 0)
    return xr.DataArray(np.clip(index, 0.0, 1.0), dims=("unit",), coords=rec.unit_coords(), name="mixed_selectivity")


def mixed_selectivity_score(
    ds: xr.Dataset,
    by: str | Sequence[str] = ("context", "object"),
    importance: xr.DataArray | np.ndarray | None = None,
    *,
    within: str | None = None,
    average: str = "pooled",
    sites: str | Sequence[str] | None = None,
) -> float:
    r"""Importance-weighted nonlinear mixed selectivity of the population (Rigotti et al. 2013).

    With per-unit two-way ANOVA components over the (by × within) grid (see
    :func:`mixed_selectivity_index`) and unit importances :math:`I_u`:

    - ``average="pooled"`` (default): the interaction share of the importance-weighted
      response variance,

      .. math:: \mathrm{MS} = \frac{\sum_u I_u \, SS_{int,u}}{\sum_u I_u \, SS_{tot,u}}
                = \frac{\sum_u I_u SS_{tot,u} \mathrm{NMS}_u}{\sum_u I_u SS_{tot,u}}

      i.e. the importance-weighted mean of the unit indices, each unit also weighted by how
      much it varies. This is the quantity Jarvis et al. (arXiv 2503.06181) follow during
      training on their tasks (near 0 early on, 0.15–0.20 at epoch 8000; the package's slow
      tests reproduce it).
    - ``average="units"``: :math:`\sum_u I_u \mathrm{NMS}_u / \sum_u I_u` over units that vary.

    **Cells, not samples.** The ANOVA is over cell means, so every (by, within) cell weighs the
    same; so does the importance. The default (activity) importance, and a given one from
    :func:`relu_probe.unit_importance` or a training monitor (``attrs["method"]`` ``"readout"`` or
    ``"activity"``, both :math:`\propto \bar a_u`), has its sample mean :math:`\bar a_u` replaced by
    the mean over cells (:func:`relu_probe.pathways.context_sets.cell_balanced_importance`), as
    :func:`relu_probe.find_pathways` does: repeating the samples of some cells changes no score.

    Parameters
    ----------
    ds : xarray.Dataset
    by : str or pair of str, default=("context", "object")
        The two factors, or the first one with ``within`` the second.
    importance : DataArray or array, optional
        Per-unit importance (:func:`relu_probe.unit_importance`); default the ``"activity"``
        importance (mean activation).
    within : str, optional
    average : {"pooled", "units"}, default="pooled"
    sites : str or list of str, optional

    Returns
    -------
    float
        In [0, 1]. 0 with a ``DegenerateDataWarning`` when no unit's activity varies.
    """
    check_choice("average", average, ["pooled", "units"])
    rec = as_recording(ds).select_sites(sites)
    by, within = two_factors(rec, by, within)
    imp = (
        unit_importance(None, rec, method="activity") if importance is None else align_importance(importance, rec)
    ).values
    method = "activity" if importance is None else getattr(importance, "attrs", {}).get("method")
    if method in ACTIVITY_PROPORTIONAL:
        imp = cell_balanced_importance(imp, rec, by, within)
    _, _, ss_int, ss_tot = anova_components(cell_means(rec, by, within))
    varies = (ss_tot > 0) & (imp > 0)
    if not varies.any():
        warnings.warn(
            "no (important) unit's activity varies over the (by, within) grid: "
            "mixed_selectivity_score is 0.",
            DegenerateDataWarning,
            stacklevel=2,
        )
        return 0.0
    if average == "pooled":
        return float(np.clip((imp * ss_int)[varies].sum() / (imp * ss_tot)[varies].sum(), 0.0, 1.0))
    index = ss_int[varies] / ss_tot[varies]
    return float(np.clip((imp[varies] * index).sum() / imp[varies].sum(), 0.0, 1.0))
