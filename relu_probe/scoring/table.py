"""Every score at once: ``rp.scores``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..data.access import Recording, as_recording
from ..errors import InputError
from ..pathways.find import find_pathways
from .abstraction import ccgp_score, parallelism_score
from .dci import dci_score
from .selectivity import mixed_selectivity_score
from .structure import effective_pathways, modularity_score, node_reuse_score, shared_score

__all__ = ["scores"]


def scores(
    source: Any,
    ds: xr.Dataset | None = None,
    *,
    by: str | None = None,
    within: str | None = None,
    importance: xr.DataArray | np.ndarray | None = None,
    literature: bool = True,
    random_state: int | None = 0,
) -> pd.Series:
    """All scores at once, as a pandas Series (index = score name).

    Parameters
    ----------
    source : Pathways, fitted GDLN/ReLN, or xarray.Dataset
        - :class:`~relu_probe.Pathways`: the pathway scores; with a recording (``ds``, or the
          pathways' own by/within) also the selectivity and literature scores.
        - a recording (``xarray.Dataset``): pathways are found first with
          ``find_pathways(source, by, within, importance)``; then as above.
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
    pandas.Series
        ``shared_score, node_reuse_score, modularity_score, effective_pathways``, and with a
        recording and both factors ``mixed_selectivity_score``, and with ``literature``
        ``ccgp_score, parallelism_score, dci_disentanglement, dci_completeness,
        dci_informativeness``.
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
    if importance is None and isinstance(getattr(source, "importance", None), xr.DataArray):
        importance = source.importance
    with warnings.catch_warnings(record=True) as caught:
        # a fully shared / empty structure warns once per score: collect, then say it once
        warnings.simplefilter("always")
        out: dict[str, float] = {
            "shared_score": shared_score(source),
            "node_reuse_score": node_reuse_score(source),
            "modularity_score": modularity_score(source),
            "effective_pathways": effective_pathways(source),
        }
        if ds is not None and by is not None and within is not None:
            ds = as_recording(ds)
            out["mixed_selectivity_score"] = mixed_selectivity_score(ds, by, importance, within=within)
            if literature:
                out["ccgp_score"] = ccgp_score(ds, by, within, random_state=random_state)
                out["parallelism_score"] = parallelism_score(ds, by, within)
                dci = dci_score(ds, (by, within), random_state=random_state)
                out.update({f"dci_{k}": v for k, v in dci.items()})
    seen: set[tuple[type, str]] = set()
    for w in caught:  # re-emitted under the caller's own warning filters
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, w.category, stacklevel=2)
    return pd.Series(out, name="scores", dtype=np.float64)
