"""``rp.Pathways``: the result of :func:`relu_probe.find_pathways`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._util.arrays import object_array, plain
from .._util.checks import check_int
from ..data import netcdf
from ..data.access import Recording
from ..errors import CoordError, InputError, ValueInputError, describe

__all__ = ["Pathways", "SiteResult", "assemble_pathways"]


class Pathways:
    """Pathways found in a recording: which units serve which set of contexts, per site.

    Built by :func:`relu_probe.find_pathways`; not meant to be constructed by hand.

    Attributes
    ----------
    method : str
        ``"context-sets"``, ``"profiles"`` or ``"cocluster"``.
    by, within : str, str or None
        The condition coord and the item coord.
    context_values : tuple
        All distinct values of ``by`` in the recorded samples, sorted.
    n_contexts : int
        ``len(context_values)``.
    sites : list of str
        The sites the pathways were found at, in recording order (one entry ``"a+b"`` for
        pathways pooled over sites ``a`` and ``b``, ``per_site=False``).
    mass : xarray.DataArray
        Dim ``pathway`` (ids 0..n-1, ordered by site, then number of contexts descending, then
        mass descending), values summing to 1 **within each site**; coords ``site``,
        ``contexts`` (tuple of context values per pathway) and ``n_contexts`` (its length).
    membership : xarray.DataArray
        ``(unit, pathway)``, >= 0: mass of each unit in each pathway (sums over units to
        ``mass``); carries the dataset's unit coords.
    labels : xarray.DataArray
        ``(unit,)`` int: each unit's dominant pathway, ``-1`` for negligible units (total
        membership below ``negligible`` / n_units of its site's mass, see ``find_pathways``).
    disagrees : xarray.DataArray
        ``(unit,)`` bool: the unit's own on-set differs from its pathway's context set
        (``"profiles"`` / ``"cocluster"``; never for ``"context-sets"``, where every (unit,
        item) pair goes to its own set).
    unassigned : xarray.DataArray
        Over ``site``: the share of the site's importance carried by units that are on in no
        context (not part of any pathway's mass).
    sample_gates : xarray.DataArray
        ``(pathway, sample)`` int8 0/1: whether each pathway is open on each recorded sample.
    site_mass : xarray.DataArray
        ``(pathway, site)``: each pathway's mass per recording site (its site composition;
        one non-zero column per pathway unless pooled).
    importance : xarray.DataArray
        The unit importance used, normalised to sum to 1 within each site (over all units
        when pooled).
    params : dict
        The :func:`relu_probe.find_pathways` parameters that produced the result (the method
        resolved), so the same analysis can be run again, e.g. on shuffled labels
        (:func:`relu_probe.null_scores`).
    """

    def __init__(
        self,
        *,
        method: str,
        by: str,
        within: str | None,
        context_values: Sequence[Any],
        mass: xr.DataArray,
        membership: xr.DataArray,
        labels: xr.DataArray,
        sample_gates: xr.DataArray,
        importance: xr.DataArray,
        disagrees: xr.DataArray | None = None,
        unassigned: xr.DataArray | None = None,
        site_groups: dict[str, Sequence[str]] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.method = method
        self.by = by
        self.within = within
        self.context_values = tuple(plain(v) for v in context_values)
        self.mass = mass
        self.membership = membership
        self.labels = labels
        self.sample_gates = sample_gates
        self.importance = importance
        n_units = membership.sizes["unit"]
        self.disagrees = (
            disagrees if disagrees is not None
            else xr.DataArray(np.zeros(n_units, bool), dims=("unit",), coords=labels.coords, name="disagrees")
        )
        if site_groups is None:  # a result written before pathways had sites: one pooled group
            unit_sites = _unit_sites(membership) or [""]
            site_groups = {"+".join(unit_sites): tuple(unit_sites)}
        if "site" not in mass.coords:
            label = next(iter(site_groups))
            self.mass = mass = mass.assign_coords(site=("pathway", np.array([label] * mass.sizes["pathway"], dtype=object)))
        self.site_groups = {str(k): tuple(str(s) for s in v) for k, v in site_groups.items()}
        self.unassigned = unassigned if unassigned is not None else xr.DataArray(
            np.zeros(len(self.site_groups)), dims=("site",), coords={"site": list(self.site_groups)}, name="unassigned"
        )
        self.params = dict(params or {})

    # ------------------------------------------------------------------ views
    @property
    def n_contexts(self) -> int:
        return len(self.context_values)

    @property
    def n_pathways(self) -> int:
        return int(self.mass.sizes["pathway"])

    @property
    def contexts(self) -> list[tuple]:
        """The context set of every pathway, in pathway order."""
        return list(self.mass["contexts"].values)

    @property
    def sites(self) -> list[str]:
        """The sites (or pooled site groups) the pathways were found at, in recording order."""
        return list(self.site_groups)

    @property
    def site_mass(self) -> xr.DataArray:
        """``(pathway, site)``: each pathway's mass per recording site."""
        site = _unit_sites(self.membership, as_array=True)
        names = list(dict.fromkeys(site.tolist()))
        values = np.stack(
            [self.membership.values[site == s].sum(0) for s in names], axis=1
        ) if names else np.zeros((self.n_pathways, 0))
        return xr.DataArray(
            values.reshape(self.n_pathways, len(names)),
            dims=("pathway", "site"),
            coords={"pathway": self.mass["pathway"].values, "contexts": ("pathway", self.mass["contexts"].values),
                    "site": names},
            name="site_mass",
        )

    def pathway_strength(self) -> xr.DataArray:
        """Each pathway's weight for the scores: its mass (the interface :func:`relu_probe.scores`
        also accepts from fitted GDLN / ReLN models)."""
        return self.mass

    def units(self, p: int) -> np.ndarray:
        """Unit ids (``unit`` coord values) whose dominant pathway is *p*."""
        p = check_int("p", p, minimum=0)
        if p >= self.n_pathways:
            raise ValueInputError(
                f"`p` must be a pathway id in 0..{self.n_pathways - 1}, got {p}."
            )
        return np.asarray(self.labels["unit"].values[self.labels.values == p])

    def sel(self, site: str) -> Pathways:
        """The pathways of one site (a one-site :class:`Pathways`: its units, its pathways
        renumbered from 0, its importance).

        Raises :class:`~relu_probe.errors.CoordError` naming the sites when *site* is not one.
        """
        if not isinstance(site, str) or site not in self.site_groups:
            raise CoordError(f"`site` must be one of the pathways' sites {self.sites}, got {site!r}.")
        if len(self.site_groups) == 1:
            return self
        group = self.site_groups[site]
        units = np.isin(_unit_sites(self.membership, as_array=True), group)
        keep = np.flatnonzero(self.mass["site"].values.astype(str) == site)
        renumber = np.full(self.n_pathways + 1, -1, dtype=np.int64)
        renumber[keep] = np.arange(keep.size)
        new_ids = {"pathway": np.arange(keep.size)}
        mass = self.mass.isel(pathway=keep).assign_coords(new_ids)
        membership = self.membership.isel(unit=units, pathway=keep).assign_coords(new_ids)
        labels = self.labels.isel(unit=units)
        labels = labels.copy(data=renumber[labels.values])
        gates = self.sample_gates.isel(pathway=keep).assign_coords(new_ids)
        params = dict(self.params, sites=list(group))
        return Pathways(
            method=self.method, by=self.by, within=self.within, context_values=self.context_values, mass=mass,
            membership=membership, labels=labels, sample_gates=gates, importance=self.importance.isel(unit=units),
            disagrees=self.disagrees.isel(unit=units), unassigned=self.unassigned.sel(site=[site]),
            site_groups={site: group}, params=params,
        )

    def summary(self) -> pd.DataFrame:
        """One row per pathway: ``site, pathway, contexts, n_units, mass, n_disagreeing, sites``.

        ``mass`` sums to 1 within each site; ``n_units`` counts the units whose dominant
        pathway it is and ``n_disagreeing`` those of them whose own on-set is not the
        pathway's set (:attr:`disagrees`); ``sites`` maps each site holding part of the
        pathway's mass to its share of that mass (one site unless pooled).
        """
        site_mass = self.site_mass
        labels = self.labels.values
        disagrees = self.disagrees.values
        rows = []
        for i, p in enumerate(self.mass["pathway"].values):
            total = float(self.mass.values[i])
            shares = site_mass.values[i]
            sites = {
                str(s): float(v / total) for s, v in zip(site_mass["site"].values, shares) if v > 0
            } if total > 0 else {}
            members = labels == p
            rows.append(
                {
                    "site": str(self.mass["site"].values[i]),
                    "pathway": int(p),
                    "contexts": self.mass["contexts"].values[i],
                    "n_units": int(members.sum()),
                    "mass": total,
                    "n_disagreeing": int((members & disagrees).sum()),
                    "sites": sites,
                }
            )
        return pd.DataFrame(rows, columns=["site", "pathway", "contexts", "n_units", "mass", "n_disagreeing", "sites"])

    def __repr__(self) -> str:
        head = (
            f"Pathways(method={self.method!r}, by={self.by!r}, within={self.within!r}, "
            f"{self.n_pathways} pathways over {self.n_contexts} contexts at {len(self.sites)} site(s), "
            f"{self.membership.sizes['unit']} units)"
        )
        if not self.n_pathways:
            return head
        table = self.summary().drop(columns="sites")
        if len(self.sites) == 1:
            table = table.drop(columns="site")
        return f"{head}\n{table.to_string(index=False)}"

    # ------------------------------------------------------------------ persistence
    def to_dataset(self) -> xr.Dataset:
        """A netCDF-safe Dataset (:func:`relu_probe.data.netcdf.encode`); see :meth:`from_dataset`."""
        # one Dataset holds unit and pathway coords: the pathways' site is `pathway_site` there
        ds = xr.Dataset(
            {
                "mass": self.mass.drop_vars("site"),
                "membership": self.membership,
                "labels": self.labels,
                "sample_gates": self.sample_gates.drop_vars("site", errors="ignore"),
                "importance": self.importance,
                "disagrees": self.disagrees.astype(np.int8),
                "unassigned": self.unassigned.rename(site="site_group"),
            },
            attrs={"method": self.method, "by": self.by, "within": self.within,
                   "context_values": tuple(self.context_values),
                   "site_groups": {k: list(v) for k, v in self.site_groups.items()},
                   "params": dict(self.params)},
        )
        return netcdf.encode(ds)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> Pathways:
        """Rebuild a :class:`Pathways` written by :meth:`to_dataset` (read back from netCDF)."""
        if not isinstance(ds, xr.Dataset) or "mass" not in ds or "context_values" not in ds.attrs:
            raise InputError(f"`ds` must be a Dataset written by Pathways.to_dataset(), got {describe(ds)}.")
        ds = netcdf.decode(ds)
        groups = ds.attrs.get("site_groups")

        def pathway_var(name: str) -> xr.DataArray:
            var = ds[name]
            if "pathway_site" in var.coords:
                var = var.drop_vars([c for c in ("site",) if c in var.coords and var[c].dims != ("pathway",)])
                var = var.rename(pathway_site="site")
            return var

        return cls(
            method=ds.attrs["method"],
            by=ds.attrs["by"],
            within=ds.attrs["within"],
            context_values=ds.attrs["context_values"],
            mass=pathway_var("mass"),
            membership=ds["membership"],
            labels=ds["labels"].rename("pathway"),
            sample_gates=pathway_var("sample_gates"),
            importance=ds["importance"],
            disagrees=ds["disagrees"].astype(bool) if "disagrees" in ds else None,
            unassigned=ds["unassigned"].rename(site_group="site") if "unassigned" in ds else None,
            site_groups=dict(groups) if groups else None,
            params=ds.attrs.get("params") or {},
        )


def _unit_sites(membership: xr.DataArray, as_array: bool = False) -> Any:
    """The ``site`` of every unit (``""`` without a site coord); unique, in order, unless *as_array*."""
    if "site" in membership.coords:
        site = membership["site"].values.astype(str)
    else:
        site = np.full(membership.sizes["unit"], "")
    return site if as_array else list(dict.fromkeys(site.tolist()))


@dataclass
class SiteResult:
    """One site's (or one pooled group's) decomposition, for :func:`assemble_pathways`.

    ``label`` names the pathways' site, ``sites`` the recorded sites it covers, ``index`` the
    positions of its units in the recording, ``importance`` their importance (normalised
    within the group) and ``found`` the raw :class:`~relu_probe.pathways.context_sets.ContextSets`.
    """

    label: str
    sites: tuple[str, ...]
    index: np.ndarray
    importance: np.ndarray
    found: Any


def assemble_pathways(
    *,
    method: str,
    by: str,
    within: str | None,
    context_values: Sequence[Hashable],
    results: Sequence[SiteResult],
    sample_open: Callable[[Sequence[tuple]], np.ndarray],
    rec: Recording,
    importance: xr.DataArray,
    negligible: float,
    params: dict[str, Any],
) -> Pathways:
    """Normalise, order and label the raw per-site results into a :class:`Pathways`.

    Within each site, pathways are ordered by number of contexts (descending), then mass
    (descending), and their masses normalised to sum to 1 (a site without any mass keeps
    zero pathways). ``sample_open(contexts)`` gives the (pathway, sample) gates of a list of
    context sets.
    """
    U = rec.n_units
    columns, contexts, site_of = [], [], []
    labels = np.full(U, -1, dtype=np.int64)
    disagrees = np.zeros(U, dtype=bool)
    imp_values = np.zeros(U)
    unassigned = []
    for res in results:
        found = res.found
        member = np.asarray(found.membership, dtype=np.float64).reshape(res.index.size, len(found.contexts))
        raw_mass = member.sum(0)
        keep = np.flatnonzero(raw_mass > 0)
        total = raw_mass.sum()
        sets = [tuple(plain(v) for v in found.contexts[i]) for i in keep]
        order = sorted(range(len(keep)), key=lambda j: (-len(sets[j]), -raw_mass[keep[j]], sets[j]))
        member = member[:, keep[order]] / (total if total > 0 else 1.0)
        first = len(contexts)
        for j in order:
            contexts.append(sets[j])
            site_of.append(res.label)
        block = np.zeros((U, len(order)))
        block[res.index] = member
        columns.append(block)
        per_unit = member.sum(1)
        n_units = max(res.index.size, 1)
        dominant = np.where(
            (per_unit > 0) & (per_unit >= negligible / n_units) & (member.shape[1] > 0),
            member.argmax(1) + first if member.shape[1] else -1,
            -1,
        )
        labels[res.index] = dominant
        disagrees[res.index] = np.asarray(found.disagrees, dtype=bool) & (dominant >= 0)
        imp_values[res.index] = res.importance
        unassigned.append(float(found.unassigned))
    membership = np.concatenate(columns, axis=1) if columns else np.zeros((U, 0))
    n = len(contexts)
    path_coords = {
        "pathway": np.arange(n),
        "site": ("pathway", np.array(site_of, dtype=object) if n else np.array([], dtype=object)),
        "contexts": ("pathway", object_array(contexts)),
        "n_contexts": ("pathway", np.array([len(c) for c in contexts], dtype=np.int64)),
    }
    unit_coords = rec.unit_coords()
    member_coords = {**unit_coords, **{k: v for k, v in path_coords.items() if k != "site"},
                     "pathway_site": path_coords["site"]}
    mass = xr.DataArray(membership.sum(0), dims=("pathway",), coords=path_coords, name="mass")
    member = xr.DataArray(membership, dims=("unit", "pathway"), coords=member_coords, name="membership")
    label_da = xr.DataArray(labels, dims=("unit",), coords=unit_coords, name="pathway")
    gates = xr.DataArray(
        sample_open(contexts).astype(np.int8),
        dims=("pathway", "sample"),
        coords={**path_coords, **rec.sample_coords()},
        name="sample_gates",
    )
    imp = xr.DataArray(imp_values, dims=("unit",), coords=unit_coords, name="importance",
                       attrs=dict(importance.attrs))
    groups = {res.label: res.sites for res in results}
    return Pathways(
        method=method,
        by=by,
        within=within,
        context_values=context_values,
        mass=mass,
        membership=member,
        labels=label_da,
        sample_gates=gates,
        importance=imp,
        disagrees=xr.DataArray(disagrees, dims=("unit",), coords=unit_coords, name="disagrees"),
        unassigned=xr.DataArray(np.array(unassigned), dims=("site",), coords={"site": list(groups)},
                                name="unassigned"),
        site_groups=groups,
        params=params,
    )
