"""Find the pathways a network uses: ``rp.find_pathways``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from torch import nn

from .._util.checks import check_choice, check_real
from ..data.access import Recording, as_recording
from ..errors import CoordError, InputError, describe
from .clustering import PathwayClustering
from .context_sets import ContextSets, complete_items, constant_gates, context_set_mass, warn_degenerate
from .importance import ACTIVITY_PROPORTIONAL, default_importance, given_importance
from .onsets import ON_FLOOR, members_label, profile_on
from .profiles import gating_profile
from .result import Pathways, SiteResult, assemble_pathways

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
    model: nn.Module | None = None,
    sites: str | Sequence[str] | None = None,
    per_site: bool = True,
    n_pathways: int | None = None,
    on_fraction: float = 0.5,
    on_floor: float = ON_FLOOR,
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
        Per-unit importance (e.g. :func:`relu_probe.unit_importance`). Default: the same
        importance :func:`relu_probe.analyze` uses
        (:func:`relu_probe.pathways.importance.default_importance`): the ``"readout"``
        importance when ``model`` is given and every site's output is read by Linear / Conv
        layers only, else the ``"activity"`` importance (mean activation, or gate rate), which
        needs no model. A ``"readout"`` / ``"activity"`` DataArray from
        :func:`relu_probe.unit_importance` computed on this recording is balanced over cells
        like the default (Notes), so ``importance=rp.unit_importance(model, ds)`` and
        ``model=model`` give the same masses; any other importance is used as given.
    method : {"auto", "context-sets", "profiles", "cocluster"}, default="auto"
        ``"auto"``: ``"context-sets"`` when ``within`` is given and at least one item appears
        under every context, else ``"profiles"``.
    model : torch.nn.Module, optional
        The recorded model, for the default (readout) importance.
    sites : str or list of str, optional
        Analyse only these sites. Default: every recorded site.
    per_site : bool, default=True
        Find the pathways of every site (layer) on its own, with the importance normalised
        within the site: masses sum to 1 per site and every pathway carries its ``site``.
        ``False`` pools the units of all sites into one decomposition with one importance
        normalisation — this **mixes layers** (units of layers on different weight scales are
        added up) and is only meaningful for comparable sites; the pooled pathways' ``site``
        is the sites' names joined by ``"+"``.
    n_pathways : int, optional
        ``"profiles"`` / ``"cocluster"``: fix the number of clusters per site (default:
        automatic, see :class:`PathwayClustering`).
    on_fraction : float in [0, 1), default=0.5
        When a unit is on. ``"context-sets"``: for (item, context) when its gate rate over that
        cell's samples exceeds this (with one sample per cell: when the gate is on); for
        channel units (``units="channel"``) when its rate exceeds this fraction of the
        channel's own largest cell rate. ``"profiles"`` / ``"cocluster"``: in a context where
        its gating profile reaches this fraction of its largest value (and ``on_floor``). See
        :mod:`relu_probe.pathways.onsets`.
    on_floor : float in [0, 1], default=0.05
        ``"profiles"`` / ``"cocluster"``: a unit is off in a context where it is on for fewer
        than this share of the context's samples (channel units: of its positions).
    negligible : float, default=0.01
        Units whose share of their site's mass is below ``negligible / n_units`` get label -1;
        an unassigned share of a site's importance above ``negligible`` is warned about.
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

    normalised so that :math:`\sum_S m_S = 1` within each site. With the readout importance
    this equals the paper's :math:`\lVert W_{:,u} \rVert \sum_c \mathrm{ReLU}(z_u(o,c))`
    weighting. :math:`a_u(o, c)` is the unit's mean over the samples of cell :math:`(o, c)`, and
    the readout / activity importance — the default, or one passed in with its
    ``attrs["method"]`` from :func:`relu_probe.unit_importance` — is taken over cells too
    (its sample mean :math:`\bar a_u` replaced by the mean over cells), so every cell weighs
    the same whatever its number of samples (repeating some cells' samples changes no mass;
    :func:`relu_probe.pathways.context_sets.context_set_mass`). Items that do not appear under
    every context are left out with a warning (their context set is not defined).

    ``"profiles"`` (items do not repeat across contexts): every unit's own on-set is read
    from its gating profile :math:`P(\text{on} \mid c)`
    (:func:`relu_probe.pathways.onsets.profile_on`); the profiles, each scaled to its
    maximum, are clustered by importance-weighted k-means (:class:`PathwayClustering`; the
    number of clusters is the fewest that explain 90% of the weighted profile variance).
    Each cluster is named after its members — the on-set carrying most of their importance
    (:func:`relu_probe.pathways.onsets.members_label`); a unit whose own on-set is another
    pathway's joins that pathway, and one whose set is no pathway's stays and is counted as
    disagreeing (:attr:`Pathways.disagrees`, ``summary()["n_disagreeing"]``). A unit's whole
    importance goes to its pathway.

    ``"cocluster"`` (label-free): scikit-learn's ``SpectralCoclustering`` on the
    (unit × sample) gate matrix, the number of blocks chosen by bipartite modularity. The
    units of one block form a pathway, named after its members' own on-sets as for
    ``"profiles"``.

    The importance of units that are on nowhere (no cell, or no context above the
    thresholds) is *unassigned*: reported per site in :attr:`Pathways.unassigned` (and
    warned about when above ``negligible``), not spread over the other units.

    Raises
    ------
    CoordError
        ``by`` / ``within`` is not a sample coord (the message lists the available ones);
        ``"context-sets"`` with no item that appears under every context (use
        ``"profiles"``); an ``importance`` whose units do not match the dataset.

    Warns
    -----
    DegenerateDataWarning
        All gates off (the result has no pathways) or gates constant over samples.
    UserWarning
        Items left out of the context-set decomposition; unassigned importance.
    """
    check_choice("method", method, PATHWAY_METHODS)
    if model is not None and not isinstance(model, nn.Module):
        raise InputError(f"`model` must be the recorded torch.nn.Module or None, got {describe(model)}.")
    if not isinstance(per_site, (bool, np.bool_)):
        raise InputError(f"`per_site` must be True or False, got {describe(per_site)}.")
    full = as_recording(ds)
    rec = full.select_sites(sites)
    by = rec.sample_coord(by, "by")
    if within is not None:
        within = rec.sample_coord(within, "within")
        if within == by:
            raise CoordError(f"`within` must differ from `by`; both are {by!r}.")
    on_fraction = check_real("on_fraction", on_fraction, minimum=0.0)
    on_floor = check_real("on_floor", on_floor, minimum=0.0)
    negligible = check_real("negligible", negligible, minimum=0.0)
    imp = default_importance(model, rec) if importance is None else given_importance(importance, rec)
    if method == "auto":
        method = "context-sets" if within is not None and _items_complete(rec, by, within) else "profiles"
        if within is not None and method == "profiles":
            warn_degenerate(
                f"no `{within}` value appears under every `{by}` value (items nested in contexts), so the "
                f"context-set decomposition over items is not defined: `within`={within!r} is not used and the "
                "pathways are found from each unit's gating profile over "
                f"`{by}` (method='profiles')."
            )
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
    context_values = tuple(np.unique(rec.ds[by].values).tolist())
    site_names = rec.site_names()
    groups = [[s] for s in site_names] if per_site else [site_names]
    results = []
    for group in groups:
        sub = rec if len(groups) == 1 else rec.select_sites(group)
        index = np.flatnonzero(np.isin(rec.ds["unit"].values, sub.ds["unit"].values))
        raw = imp.values[index]
        total = raw.sum()
        site_imp = raw / total if total > 0 else np.full(raw.size, 1.0 / max(raw.size, 1))
        if method == "context-sets":
            found = context_set_mass(sub, by, within, site_imp, on_fraction,
                                     rebalance=imp.attrs.get("method") in ACTIVITY_PROPORTIONAL)
        elif method == "profiles":
            found = _profiles(sub, by, site_imp, n_pathways, random_state, on_fraction, on_floor)
        else:
            found = _cocluster(sub, by, site_imp, n_pathways, random_state, on_fraction, on_floor)
        label = "+".join(group)
        _check_found(found, label, len(groups) > 1, negligible)
        results.append(SiteResult(label, tuple(group), index, site_imp, found))
    params = {
        "method": method, "per_site": bool(per_site), "sites": None if sites is None else list(site_names),
        "n_pathways": n_pathways, "on_fraction": on_fraction, "on_floor": on_floor, "negligible": negligible,
        "random_state": random_state,
    }
    return assemble_pathways(
        method=method,
        by=by,
        within=within,
        context_values=context_values,
        results=results,
        sample_open=lambda contexts: _open_on(rec, by, contexts),
        rec=rec,
        importance=imp,
        negligible=negligible,
        params=params,
    )


def _check_found(found: ContextSets, label: str, several: bool, negligible: float) -> None:
    where = f" at site {label!r}" if several else ""
    if found.membership.size == 0 or found.membership.sum() <= 0:
        warn_degenerate(
            f"no unit is on for any sample{where} (or every active unit has zero importance): the "
            "decomposition has no pathways there and every score takes its documented empty value."
        )
    elif found.unassigned > negligible:
        warnings.warn(
            f"{100 * found.unassigned:.1f}% of the importance{where} belongs to units in no pathway — on in "
            "no context by the pathway rule (see `on_fraction`, `on_floor`), or only for items left out — "
            "and is not assigned (Pathways.unassigned); the masses are shares of the assigned part.",
            UserWarning,
            stacklevel=3,
        )


def _open_on(rec: Recording, by: str, contexts: Sequence[tuple]) -> np.ndarray:
    """(pathway, sample) bool: pathway *p* is open on the samples whose ``by`` label is in its set."""
    sample_by = rec.ds[by].values
    rows = [np.isin(sample_by, np.array(c, dtype=sample_by.dtype)) for c in contexts]
    return np.array(rows, dtype=bool).reshape(len(contexts), rec.n_samples)


def _items_complete(rec: Recording, by: str, within: str) -> bool:
    """Whether at least one item appears under every ``by`` value."""
    items, item_codes = np.unique(rec.ds[within].values, return_inverse=True)
    contexts, context_codes = np.unique(rec.ds[by].values, return_inverse=True)
    count = np.zeros((items.size, contexts.size))
    np.add.at(count, (item_codes.reshape(-1), context_codes.reshape(-1)), 1)
    return bool(contexts.size > 1 and complete_items(count).any())


def _by_members(
    on: np.ndarray, groups: np.ndarray, imp: np.ndarray, context_values: tuple, unassigned: float
) -> ContextSets:
    """Pathways of grouped units, each named after its members (:func:`members_label`)."""
    sets, assign, disagrees = members_label(on, groups, imp)
    U = on.shape[0]
    membership = np.zeros((U, len(sets)))
    placed = assign >= 0
    membership[np.flatnonzero(placed), assign[placed]] = imp[placed]
    contexts = [tuple(context_values[j] for j in np.flatnonzero(row)) for row in sets]
    return ContextSets(contexts, membership, unassigned, disagrees)


def _profile_on(rec: Recording, by: str, imp: np.ndarray, relative: float, floor: float) -> tuple:
    profile = gating_profile(rec, by)
    context_values = tuple(profile[by].values.tolist())
    P = np.nan_to_num(profile.values, nan=0.0)
    on = profile_on(P, relative, floor)
    active = (imp > 0) & on.any(1)
    unassigned = float(imp[~on.any(1)].sum())
    return P, on, active, context_values, unassigned


def _profiles(
    rec: Recording, by: str, imp: np.ndarray, n_pathways: int | None, random_state: Any, relative: float,
    floor: float,
) -> ContextSets:
    P, on, active, context_values, unassigned = _profile_on(rec, by, imp, relative, floor)
    U = P.shape[0]
    if not active.any():
        return ContextSets([], np.zeros((U, 0)), unassigned, np.zeros(U, bool))
    shape = P[active] / P[active].max(1, keepdims=True)
    est = PathwayClustering(
        method="profiles",
        n_pathways=None if n_pathways is None else min(n_pathways, int(active.sum())),
        random_state=random_state,
    ).fit(shape, sample_weight=imp[active])
    groups = np.full(U, -1, dtype=np.int64)
    groups[active] = est.labels_
    return _by_members(on, groups, imp, context_values, unassigned)


def _cocluster(
    rec: Recording, by: str, imp: np.ndarray, n_pathways: int | None, random_state: Any, relative: float,
    floor: float,
) -> ContextSets:
    P, on, active, context_values, unassigned = _profile_on(rec, by, imp, relative, floor)
    U = P.shape[0]
    gates = rec.gates().values.T  # (unit, sample)
    use = active & (gates.sum(1) > 0)
    if not use.any():
        return ContextSets([], np.zeros((U, 0)), unassigned, np.zeros(U, bool))
    est = PathwayClustering(method="cocluster", n_pathways=n_pathways, random_state=random_state).fit(gates[use])
    groups = np.full(U, -1, dtype=np.int64)
    groups[use] = est.labels_
    return _by_members(on, groups, imp, context_values, unassigned)
