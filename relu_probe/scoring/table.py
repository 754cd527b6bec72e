"""Every score at once: ``rp.scores``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..data.access import Recording, align_importance, as_recording
from ..errors import CoordError, DegenerateDataWarning, IncompleteDesignError, InputError
from ..pathways.find import find_pathways
from ..pathways.result import Pathways
from .abstraction import ccgp_score, parallelism_score
from .dci import dci_score
from .selectivity import mixed_selectivity_score
from .structure import effective_pathways, k_minus_one_score, modularity_score, node_reuse_score, shared_score

__all__ = ["scores", "site_recording", "STRUCTURE_SCORES"]

#: The scores read from pathway masses alone, in table order.
STRUCTURE_SCORES = ("shared_score", "node_reuse_score", "modularity_score", "k_minus_one_score", "effective_pathways")


def scores(
    source: Any,
    ds: xr.Dataset | None = None,
    *,
    by: str | None = None,
    within: str | None = None,
    importance: xr.DataArray | np.ndarray | None = None,
    literature: bool = True,
    random_state: int | None = 0,
) -> pd.Series | pd.DataFrame:
    """All scores at once: a pandas Series (index = score name) for one site, a DataFrame
    (one row per site, index ``site``) for pathways found at several sites.

    Parameters
    ----------
    source : Pathways, fitted GDLN/ReLN, or xarray.Dataset
        - :class:`~relu_probe.Pathways`: the pathway scores; with a recording (``ds``) also
          the selectivity and literature scores, computed on the units the pathways were
          found on (pathways of one site score against that site's units of ``ds``).
        - a recording (``xarray.Dataset``): pathways are found first with
          ``find_pathways(source, by, within, importance)`` (per site); then as above.
        - any object with ``pathway_strength()`` (a fitted GDLN / ReLN): the pathway scores
          weight each pathway by its learned strength instead of its recorded mass (see
          :func:`relu_probe.scoring.structure.pathway_masses` for the interface); the
          dataset-based scores need ``ds``.
    ds : xarray.Dataset, optional
        The recording for the dataset-based scores when ``source`` is not one.
    by, within : str, optional
        Factor coords; default ``source.by`` / ``source.within`` when available.
    importance : optional
        Unit importance for :func:`mixed_selectivity_score` (and for ``find_pathways`` when
        ``source`` is a Dataset); default: the pathways' importance, else activity.
    literature : bool, default=True
        Also compute :func:`ccgp_score`, :func:`parallelism_score` and :func:`dci_score`
        (needs both ``by`` and ``within``).

    Returns
    -------
    pandas.Series or pandas.DataFrame
        ``shared_score, node_reuse_score, modularity_score, k_minus_one_score,
        effective_pathways``, and with a recording and both factors
        ``mixed_selectivity_score``, and with ``literature`` ``ccgp_score,
        parallelism_score, dci_disentanglement, dci_completeness, dci_informativeness``.
        A Series for one site; with pathways at several sites a DataFrame indexed by
        ``site`` (recording order), one row per site, each scored on its own pathways and
        units. For a null baseline of each score see :func:`relu_probe.null_scores`.
    """
    if isinstance(source, (xr.Dataset, Recording)):
        if ds is not None:
            raise InputError("`ds` must be omitted when `source` is already a Dataset.")
        ds = source
        if by is None:
            raise InputError("`by` is required when `source` is a Dataset (e.g. by='context').")
        source = find_pathways(ds, by, within, importance)
    by = by if by is not None else getattr(source, "by", None)
    within = within if within is not None else getattr(source, "within", None)
    rec = None if ds is None else as_recording(ds)
    if rec is not None and importance is not None and not isinstance(importance, xr.DataArray):
        importance = align_importance(importance, rec)  # an array over the recording's units
    with warnings.catch_warnings(record=True) as caught:
        # a fully shared / empty structure warns once per score: collect, then say it once
        warnings.simplefilter("always")
        if isinstance(source, Pathways) and len(source.sites) > 1:
            rows = {site: _one_site(source.sel(site), rec, by, within, importance, literature, random_state)
                    for site in source.sites}
            out: pd.Series | pd.DataFrame = pd.DataFrame.from_dict(rows, orient="index")
            out.index.name = "site"
        else:
            out = pd.Series(_one_site(source, rec, by, within, importance, literature, random_state),
                            name="scores", dtype=np.float64)
    seen: set[tuple[type, str]] = set()
    for w in caught:  # re-emitted under the caller's own warning filters
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, w.category, stacklevel=2)
    return out


def site_recording(pathways: Any, rec: Recording) -> Recording:
    """The units of *rec* the pathways were found on (all of *rec* for other sources).

    Raises :class:`~relu_probe.errors.CoordError` when the pathways hold units *rec* lacks.
    """
    if not isinstance(pathways, Pathways):
        return rec
    want = np.asarray(pathways.membership["unit"].values)
    have = np.asarray(rec.ds["unit"].values)
    if want.size == have.size and np.array_equal(want, have):
        return rec
    missing = np.setdiff1d(want, have)
    if missing.size:
        raise CoordError(
            f"the pathways were found on {want.size} units, {missing.size} of which the recording "
            f"lacks (first unit ids: {missing[:5].tolist()}); pass the recording they were found on."
        )
    return rec.isel_units(np.flatnonzero(np.isin(have, want)))


def _crossed(name: str, by: str, within: str, score: Any) -> float:
    """``score()``, or NaN with a warning when the design is not crossed (a (by, within) cell
    with no sample, e.g. objects nested in contexts): the other scores of the table stand."""
    try:
        return score()
    except IncompleteDesignError as exc:
        warnings.warn(f"{name} is NaN: {exc} It needs every {within!r} under every {by!r} (a crossed design).",
                      DegenerateDataWarning, stacklevel=4)
        return float("nan")


def _one_site(
    source: Any, rec: Recording | None, by: str | None, within: str | None, importance: Any, literature: bool,
    random_state: int | None,
) -> dict[str, float]:
    """The scores of one site's pathways (and its units of the recording)."""
    out: dict[str, float] = {
        "shared_score": shared_score(source),
        "node_reuse_score": node_reuse_score(source),
        "modularity_score": modularity_score(source),
        "k_minus_one_score": k_minus_one_score(source),
        "effective_pathways": effective_pathways(source),
    }
    if rec is None or by is None or within is None:
        return out
    sub = site_recording(source, rec)
    imp = importance
    if imp is None and isinstance(getattr(source, "importance", None), xr.DataArray):
        imp = source.importance
    out["mixed_selectivity_score"] = _crossed("mixed_selectivity_score", by, within,
                                              lambda: mixed_selectivity_score(sub, by, imp, within=within))
    if literature:
        out["ccgp_score"] = _crossed("ccgp_score", by, within,
                                     lambda: ccgp_score(sub, by, within, random_state=random_state))
        out["parallelism_score"] = _crossed("parallelism_score", by, within, lambda: parallelism_score(sub, by, within))
        dci = dci_score(sub, (by, within), random_state=random_state)
        out.update({f"dci_{k}": v for k, v in dci.items()})
    return out
