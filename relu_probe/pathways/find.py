"""Find the pathways a network uses: ``rp.find_pathways``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._util.checks import check_choice, check_real
from ..data.access import Recording, as_recording
from ..errors import CoordError
from .clustering import PathwayClustering
from .context_sets import constant_gates, context_set_mass, warn_degenerate
from .importance import given_importance, unit_importance
from .profiles import gating_profile
from .result import Pathways, assemble_pathways

__all__ = ["find_pathways", "PATHWAY_METHODS"]

#: The decompositions :func:`find_pathways` offers.
PATHWAY_METHODS = ("auto", "context-sets", "profiles", "cocluster")


def find_pathways(
    ds: xr.Dataset,
    by: str,
    within: str | None = None,
    importance: xr.DataArray | np.ndarray | None = None,
    method: str = "auto",
    *,
    sites: str | Sequence[str] | None = None,
    n_pathways: int | None = None,
    on_fraction: float = 0.5,
    negligible: float = 0.01,
    random_state: int | None = 0,
) -> Pathways:
    r"""Group the recorded units into pathways keyed by the contexts they serve.

    Parameters
    ----------
    ds : xarray.Dataset
        A recording from :func:`relu_probe.record` with a per-sample ``by`` coord.
    by : str
        The condition coord (context / task cue), e.g. ``"context"``.
    within : str, optional
        The item coord for items that appear under several contexts, e.g. ``"object"``.
    importance : xarray.DataArray or array, optional
        Per-unit importance (e.g. :func:`relu_probe.unit_importance`). Default: the
        ``"activity"`` importance (mean activation, or gate rate), which needs no model.
    method : {"auto", "context-sets", "profiles", "cocluster"}, default="auto"
        ``"auto"``: ``"context-sets"`` when ``within`` is given and items repeat across
        contexts, else ``"profiles"``.
    sites : str or list of str, optional
        Analyse only these sites (per-site pathways). Default: all units together; the site
        composition of every pathway is in :attr:`Pathways.sites`.
    n_pathways : int, optional
        ``"profiles"`` / ``"cocluster"``: fix the number of clusters (default: automatic, see
        :class:`PathwayClustering`).
    on_fraction : float in [0, 1), default=0.5
        ``"context-sets"``: a unit is on for (item, context) when its gate rate over that
        cell's samples exceeds this (with one sample per cell: when the gate is on).
    negligible : float, default=0.01
        Units whose share of the total mass is below ``negligible / n_units`` get label -1.
    random_state : int or None, default=0
        Seed of the clustering methods.

    Returns
    -------
    Pathways

    Notes
    -----
    ``"context-sets"`` (Jarvis et al., arXiv 2503.06181): for unit *u* and item *o* the active
    set is :math:`S(u,o) = \{c : u \text{ on for } (o, c)\}`. With :math:`I_u` the importance
    and :math:`A(u,o) = \sum_{c \in S(u,o)} a_u(o,c)` the unit's activity on the item (the
    gate count :math:`|S(u,o)|` when only gates were recorded),

    .. math:: m_S = \frac{1}{Z} \sum_{(u, o):\, S(u,o) = S} I_u \frac{A(u, o)}{\sum_{o'} A(u, o')}

    normalised so that :math:`\sum_S m_S = 1`. With the readout importance this equals the
    paper's :math:`\lVert W_{:,u} \rVert \sum_c \mathrm{ReLU}(z_u(o,c))` weighting.

    ``"profiles"`` (items do not repeat across contexts): each unit's gating profile
    :math:`P(\text{on} \mid c)` is clustered by importance-weighted k-means
    (:class:`PathwayClustering`; the number of clusters is the fewest that explain 90% of the
    weighted profile variance); each cluster is on in the contexts where its centre reaches
    half its maximum; clusters with the same context set are merged. A unit's whole
    importance goes to its pathway.

    ``"cocluster"`` (label-free): scikit-learn's ``SpectralCoclustering`` on the
    (unit × sample) gate matrix, the number of blocks chosen by bipartite modularity. A
    pathway is the samples and units of one block; its ``contexts`` are the ``by`` values
    its samples cover. A unit's whole importance goes to its block.

    Raises
    ------
    CoordError
        ``by`` / ``within`` is not a sample coord (the message lists the available ones);
        ``"context-sets"`` with items that never repeat across contexts (use ``"profiles"``);
        an ``importance`` whose units do not match the dataset.

    Warns
    -----
    DegenerateDataWarning
        All gates off (the result has no pathways) or gates constant over samples.
    """
    check_choice("method", method, PATHWAY_METHODS)
    rec = as_recording(ds).select_sites(sites)
    by = rec.sample_coord(by, "by")
    if within is not None:
        within = rec.sample_coord(within, "within")
        if within == by:
            raise CoordError(f"`within` must differ from `by`; both are {by!r}.")
    on_fraction = check_real("on_fraction", on_fraction, minimum=0.0)
    negligible = check_real("negligible", negligible, minimum=0.0)
    imp = unit_importance(None, rec, method="activity") if importance is None else given_importance(importance, rec)
    if method == "auto":
        method = "context-sets" if within is not None and _items_repeat(rec, by, within) else "profiles"
    if method == "context-sets" and within is None:
        raise CoordError(
            "method='context-sets' needs `within` (the item coord, e.g. 'object'); without "
            "items that repeat across contexts use method='profiles'."
        )
    if constant_gates(rec):
        warn_degenerate(
            "every unit's gate is constant over the recorded samples (all off or all on): "
            "the pathways carry no context information."
        )
    imp_values = imp.values
    if method == "context-sets":
        contexts, membership, context_values, _ = context_set_mass(rec, by, within, imp_values, on_fraction)
        sample_open = _open_on(rec, by, contexts)
    elif method == "profiles":
        contexts, membership, context_values, sample_open = _profiles(rec, by, imp_values, n_pathways, random_state)
    else:
        contexts, membership, context_values, sample_open = _cocluster(rec, by, imp_values, n_pathways, random_state)
    if membership.size == 0 or membership.sum() <= 0:
        warn_degenerate(
            "no unit is on for any sample (or every active unit has zero importance): the "
            "decomposition has no pathways and every score takes its documented empty value."
        )
    return assemble_pathways(
        method=method,
        by=by,
        within=within,
        context_values=context_values,
        contexts=contexts,
        membership=membership,
        sample_open=sample_open,
        rec=rec,
        importance=imp,
        negligible=negligible,
    )


def _open_on(rec: Recording, by: str, contexts: Sequence[tuple]) -> np.ndarray:
    """(pathway, sample) bool: pathway *p* is open on the samples whose ``by`` label is in its set."""
    sample_by = rec.ds[by].values
    rows = [np.isin(sample_by, np.array(c, dtype=sample_by.dtype)) for c in contexts]
    return np.array(rows, dtype=bool).reshape(len(contexts), rec.n_samples)


def _items_repeat(rec: Recording, by: str, within: str) -> bool:
    pairs = {(a, b) for a, b in zip(rec.ds[within].values.tolist(), rec.ds[by].values.tolist())}
    seen: dict[Any, int] = {}
    for item, _ in pairs:
        seen[item] = seen.get(item, 0) + 1
    return max(seen.values(), default=0) > 1


def _profiles(
    rec: Recording, by: str, imp: np.ndarray, n_pathways: int | None, random_state: Any
) -> tuple[list[tuple], np.ndarray, tuple, np.ndarray]:
    profile = gating_profile(rec, by)
    context_values = tuple(profile[by].values.tolist())
    P = profile.values
    active = np.flatnonzero((imp > 0) & (P.max(1) > 0))
    U = P.shape[0]
    if active.size == 0:
        return [], np.zeros((U, 0)), context_values, np.zeros((0, rec.n_samples), bool)
    est = PathwayClustering(
        method="profiles",
        n_pathways=None if n_pathways is None else min(n_pathways, active.size),
        random_state=random_state,
    ).fit(P[active], sample_weight=imp[active])
    # merge clusters that are on in the same contexts
    keys = list(dict.fromkeys(est.pathway_columns_))
    merged = np.array([keys.index(c) for c in est.pathway_columns_])
    membership = np.zeros((U, len(keys)))
    membership[active, merged[est.labels_]] = imp[active]
    contexts = [tuple(context_values[j] for j in cols) for cols in keys]
    return contexts, membership, context_values, _open_on(rec, by, contexts)


def _cocluster(
    rec: Recording, by: str, imp: np.ndarray, n_pathways: int | None, random_state: Any
) -> tuple[list[tuple], np.ndarray, tuple, np.ndarray]:
    gates = rec.gates().values.T  # (unit, sample)
    sample_by = rec.ds[by].values
    context_values = tuple(np.unique(sample_by).tolist())
    U, P = gates.shape
    use = (imp > 0) & (gates.sum(1) > 0)
    if not use.any():
        return [], np.zeros((U, 0)), context_values, np.zeros((0, P), bool)
    est = PathwayClustering(
        method="cocluster", n_pathways=n_pathways, random_state=random_state
    ).fit(gates[use])
    labels = np.full(U, -1)
    labels[use] = est.labels_
    blocks = [p for p in range(est.n_pathways_) if est.pathway_columns_[p]]
    membership = np.zeros((U, len(blocks)))
    sample_open = np.zeros((len(blocks), P), dtype=bool)
    contexts = []
    for j, p in enumerate(blocks):
        members = labels == p
        membership[members, j] = imp[members]
        cols = list(est.pathway_columns_[p])
        sample_open[j, cols] = True
        contexts.append(tuple(np.unique(sample_by[cols]).tolist()))
    return contexts, membership, context_values, sample_open
