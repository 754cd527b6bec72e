"""``rp.Pathways``: the result of :func:`relu_probe.find_pathways`."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._util.arrays import object_array, plain
from .._util.checks import check_int
from ..data import netcdf
from ..data.access import Recording
from ..errors import InputError, ValueInputError, describe

__all__ = ["Pathways", "assemble_pathways"]


class Pathways:
    """Pathways found in a recording: which units serve which set of contexts.

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
    mass : xarray.DataArray
        Dim ``pathway`` (ids 0..n-1, ordered by number of contexts descending, then mass
        descending), values summing to 1; coords ``contexts`` (tuple of context values per
        pathway) and ``n_contexts`` (its length).
    membership : xarray.DataArray
        ``(unit, pathway)``, >= 0: mass of each unit in each pathway (sums over units to
        ``mass``); carries the dataset's unit coords.
    labels : xarray.DataArray
        ``(unit,)`` int: each unit's dominant pathway, ``-1`` for negligible units (total
        membership below ``negligible`` / n_units of the mass, see ``find_pathways``).
    sample_gates : xarray.DataArray
        ``(pathway, sample)`` int8 0/1: whether each pathway is open on each recorded sample.
    sites : xarray.DataArray
        ``(pathway, site)``: each pathway's mass per recording site (its site composition).
    importance : xarray.DataArray
        The unit importance used (sums to 1 over units).
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
    def sites(self) -> xr.DataArray:
        if "site" in self.membership.coords:
            site = self.membership["site"].values.astype(str)
        else:
            site = np.full(self.membership.sizes["unit"], "")
        names = list(dict.fromkeys(site))
        values = np.stack(
            [self.membership.values[site == s].sum(0) for s in names], axis=1
        ) if names else np.zeros((self.n_pathways, 0))
        return xr.DataArray(
            values.reshape(self.n_pathways, len(names)),
            dims=("pathway", "site"),
            coords={"pathway": self.mass["pathway"].values, "contexts": ("pathway", self.mass["contexts"].values), "site": names},
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

    def summary(self) -> pd.DataFrame:
        """One row per pathway: ``pathway, contexts, n_units, mass, sites``.

        ``n_units`` counts the units whose dominant pathway it is; ``sites`` maps each site
        holding part of the pathway's mass to its share of that mass.
        """
        site_mass = self.sites
        rows = []
        for i, p in enumerate(self.mass["pathway"].values):
            total = float(self.mass.values[i])
            shares = site_mass.values[i]
            sites = {
                str(s): float(v / total) for s, v in zip(site_mass["site"].values, shares) if v > 0
            } if total > 0 else {}
            rows.append(
                {
                    "pathway": int(p),
                    "contexts": self.mass["contexts"].values[i],
                    "n_units": int((self.labels.values == p).sum()),
                    "mass": total,
                    "sites": sites,
                }
            )
        return pd.DataFrame(rows, columns=["pathway", "contexts", "n_units", "mass", "sites"])

    def __repr__(self) -> str:
        head = (
            f"Pathways(method={self.method!r}, by={self.by!r}, within={self.within!r}, "
            f"{self.n_pathways} pathways over {self.n_contexts} contexts, "
            f"{self.membership.sizes['unit']} units)"
        )
        if not self.n_pathways:
            return head
        table = self.summary().drop(columns="sites").to_string(index=False)
        return f"{head}\n{table}"

    # ------------------------------------------------------------------ persistence
    def to_dataset(self) -> xr.Dataset:
        """A netCDF-safe Dataset (:func:`relu_probe.data.netcdf.encode`); see :meth:`from_dataset`."""
        ds = xr.Dataset(
            {
                "mass": self.mass,
                "membership": self.membership,
                "labels": self.labels,
                "sample_gates": self.sample_gates,
                "importance": self.importance,
            },
            attrs={"method": self.method, "by": self.by, "within": self.within,
                   "context_values": tuple(self.context_values)},
        )
        return netcdf.encode(ds)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> Pathways:
        """Rebuild a :class:`Pathways` written by :meth:`to_dataset` (read back from netCDF)."""
        if not isinstance(ds, xr.Dataset) or "mass" not in ds or "context_values" not in ds.attrs:
            raise InputError(f"`ds` must be a Dataset written by Pathways.to_dataset(), got {describe(ds)}.")
        ds = netcdf.decode(ds)
        return cls(
            method=ds.attrs["method"],
            by=ds.attrs["by"],
            within=ds.attrs["within"],
            context_values=ds.attrs["context_values"],
            mass=ds["mass"],
            membership=ds["membership"],
            labels=ds["labels"].rename("pathway"),
            sample_gates=ds["sample_gates"],
            importance=ds["importance"],
        )


def assemble_pathways(
    *,
    method: str,
    by: str,
    within: str | None,
    context_values: Sequence[Hashable],
    contexts: Sequence[tuple],
    membership: np.ndarray,
    sample_open: np.ndarray,
    rec: Recording,
    importance: xr.DataArray,
    negligible: float,
) -> Pathways:
    """Normalise, order and label raw pathway results into a :class:`Pathways`.

    ``membership`` is (unit, pathway) raw mass, ``sample_open`` (pathway, sample) bool.
    Pathways are ordered by number of contexts (descending), then mass (descending); masses
    are normalised to sum to 1 (an all-zero result keeps zero pathways).
    """
    membership = np.asarray(membership, dtype=np.float64).reshape(rec.n_units, len(contexts))
    sample_open = np.asarray(sample_open, dtype=bool).reshape(len(contexts), rec.n_samples)
    raw_mass = membership.sum(0)
    keep = np.flatnonzero(raw_mass > 0)
    total = raw_mass.sum()
    contexts = [tuple(plain(v) for v in contexts[i]) for i in keep]
    order = sorted(range(len(keep)), key=lambda j: (-len(contexts[j]), -raw_mass[keep[j]], contexts[j]))
    membership = membership[:, keep[order]] / (total if total > 0 else 1.0)
    sample_open = sample_open[keep[order]]
    contexts = [contexts[j] for j in order]
    n = len(contexts)
    path_coords = {
        "pathway": np.arange(n),
        "contexts": ("pathway", object_array(contexts)),
        "n_contexts": ("pathway", np.array([len(c) for c in contexts], dtype=np.int64)),
    }
    unit_coords = rec.unit_coords()
    sample_coords = rec.sample_coords()
    mass = xr.DataArray(membership.sum(0), dims=("pathway",), coords=path_coords, name="mass")
    member = xr.DataArray(
        membership, dims=("unit", "pathway"), coords={**unit_coords, **path_coords}, name="membership"
    )
    per_unit = membership.sum(1)
    n_units = max(rec.n_units, 1)
    labels = np.where(
        (per_unit > 0) & (per_unit >= negligible / n_units) & (n > 0),
        membership.argmax(1) if n else -1,
        -1,
    ).astype(np.int64)
    label_da = xr.DataArray(labels, dims=("unit",), coords=unit_coords, name="pathway")
    gates = xr.DataArray(
        sample_open.astype(np.int8),
        dims=("pathway", "sample"),
        coords={**path_coords, **sample_coords},
        name="sample_gates",
    )
    return Pathways(
        method=method,
        by=by,
        within=within,
        context_values=context_values,
        mass=mass,
        membership=member,
        labels=label_da,
        sample_gates=gates,
        importance=importance,
    )
