"""Reading a recorded gate Dataset: validation, sample coords, gates/activity, site selection,
and aligning a per-unit importance with the dataset's units.

Every analysis function (importance, profiles, pathways, scores) goes through these helpers,
so a malformed dataset or a misspelt coordinate gets the same clear message everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .errors import CoordError, InputError, ValueInputError, describe

__all__ = [
    "check_dataset",
    "sample_coord_names",
    "check_sample_coord",
    "gate_var",
    "activity_var",
    "raw_gate_var",
    "select_sites",
    "align_importance",
    "unit_coords",
]


def check_dataset(ds: Any, name: str = "ds") -> xr.Dataset:
    """Return *ds* if it is a recorded gate Dataset (dims ``sample`` × ``unit``); raise otherwise."""
    if not isinstance(ds, xr.Dataset):
        raise InputError(
            f"`{name}` must be an xarray.Dataset returned by rp.record (dims sample × unit), "
            f"got {describe(ds)}."
        )
    if "gate" in ds.data_vars:
        var = "gate"
    elif "gate_rate" in ds.data_vars:
        var = "gate_rate"
    else:
        raise ValueInputError(
            f"`{name}` has no 'gate' or 'gate_rate' variable; data variables are "
            f"{sorted(map(str, ds.data_vars)) or 'none'}. Pass the Dataset returned by rp.record."
        )
    dims = ds[var].dims
    if "step" in dims:
        raise ValueInputError(
            f"`{name}` holds training snapshots (dim 'step'); select one first, e.g. "
            f"`{name}.isel(step=-1)`."
        )
    if set(dims) != {"sample", "unit"}:
        raise ValueInputError(
            f"`{name}['{var}']` must have dims ('sample', 'unit'), got {dims}."
        )
    if ds.sizes["sample"] == 0 or ds.sizes["unit"] == 0:
        raise ValueInputError(
            f"`{name}` is empty: {ds.sizes['sample']} samples × {ds.sizes['unit']} units."
        )
    # dask-backed recordings: the 1-D coords are small; load them so groupby can see labels
    lazy = {k: v.compute() for k, v in ds.coords.items() if v.chunks is not None}
    return ds.assign_coords(lazy) if lazy else ds


def sample_coord_names(ds: xr.Dataset) -> list[str]:
    """Names of the per-sample coords of *ds* (``sample`` itself excluded)."""
    return sorted(
        str(k) for k, v in ds.coords.items() if v.dims == ("sample",) and k != "sample"
    )


def check_sample_coord(ds: xr.Dataset, value: Any, argname: str) -> str:
    """Return *value* if it names a per-sample coord of *ds* with a label for every sample.

    Raises :class:`~relu_probe.errors.CoordError` listing the coords when *value* names none,
    and :class:`~relu_probe.errors.InputError` naming the first sample whose label is missing
    (None, NaN, NaT or ``pd.NA``): a condition or item without a label cannot be grouped.
    """
    available = sample_coord_names(ds)
    if not isinstance(value, str):
        raise InputError(
            f"`{argname}` must be the name of a sample coord (one of {available}), "
            f"got {describe(value)}."
        )
    if value not in available:
        listed = ", ".join(repr(a) for a in available) or "none (pass coords= to rp.record)"
        raise CoordError(
            f"`{argname}`={value!r} is not a sample coord of the dataset; available sample "
            f"coords: {listed}."
        )
    labels = np.asarray(ds[value].values)
    missing = np.flatnonzero(pd.isna(labels))
    if missing.size:
        first = int(missing[0])
        sample = _plain(ds["sample"].values[first]) if "sample" in ds.coords else first
        raise InputError(
            f"`{argname}`={value!r}: the coord must label every sample, but sample {sample!r} "
            f"(position {first}) has {_plain(labels[first])!r}; {missing.size} of {labels.size} samples "
            "have no label. Give them a label or leave them out, e.g. "
            f"ds.isel(sample=ds[{value!r}].notnull())."
        )
    return value


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: ``5``, not ``np.int64(5)``)."""
    return value.item() if isinstance(value, np.generic) else value


def gate_var(ds: xr.Dataset) -> xr.DataArray:
    """The gates as floats in [0, 1]: ``gate`` (0/1) or ``gate_rate`` (channel units)."""
    var = ds["gate"] if "gate" in ds.data_vars else ds["gate_rate"]
    return var.astype(np.float64).transpose("sample", "unit")


def raw_gate_var(ds: xr.Dataset) -> xr.DataArray:
    """The gates as stored — bool ``gate`` or float ``gate_rate`` — with dims (sample, unit).

    For reductions (:func:`relu_probe._reduce.grouped_sum`), which count bool gates without
    widening them (and straight from the packed bits of a loaded store).
    """
    var = ds["gate"] if "gate" in ds.data_vars else ds["gate_rate"]
    return var if var.dims == ("sample", "unit") else var.transpose("sample", "unit")


def activity_var(ds: xr.Dataset) -> xr.DataArray:
    """Per-sample activity magnitude: ``|activation|`` when stored, else the gate (rate)."""
    if "activation" in ds.data_vars:
        return abs(ds["activation"].astype(np.float64)).transpose("sample", "unit")
    return gate_var(ds)


def select_sites(ds: xr.Dataset, sites: str | Sequence[str] | None) -> xr.Dataset:
    """Restrict *ds* to the units of one site or a list of sites (``None``: all units)."""
    if sites is None:
        return ds
    wanted = [sites] if isinstance(sites, str) else list(sites)
    if "site" not in ds.coords:
        raise CoordError("`sites` was given but the dataset has no 'site' unit coord.")
    present = list(dict.fromkeys(str(s) for s in ds["site"].values))
    missing = [s for s in wanted if s not in present]
    if missing or not wanted:
        raise CoordError(
            f"`sites` must name recorded sites; unknown: {missing or wanted!r}. "
            f"Recorded sites: {present}."
        )
    keep = np.isin(ds["site"].values.astype(str), wanted)
    return ds.isel(unit=np.flatnonzero(keep))


def unit_coords(ds: xr.Dataset) -> dict[str, Any]:
    """The unit coords of *ds* (``unit``, ``site``, ``neuron``, …) for building results."""
    return {k: v for k, v in ds.coords.items() if v.dims == ("unit",)}


def align_importance(importance: Any, ds: xr.Dataset, argname: str = "importance") -> xr.DataArray:
    """Return *importance* as a float DataArray over ``ds.unit`` (same order), checked.

    Accepts a DataArray with a ``unit`` dim (matched by unit id; it may cover more units
    than *ds*, e.g. when *ds* was restricted to some sites) or a 1-D array with one value per
    unit of *ds*. Values must be finite and >= 0.
    """
    units = ds["unit"].values
    if isinstance(importance, xr.DataArray):
        if importance.dims != ("unit",):
            raise CoordError(
                f"`{argname}` must be a DataArray over the single dim 'unit', got dims "
                f"{importance.dims}."
            )
        if "unit" in importance.coords:
            have = importance["unit"].values
            missing = np.setdiff1d(units, have)
            if missing.size:
                raise CoordError(
                    f"`{argname}` does not cover the dataset's units: {missing.size} of "
                    f"{units.size} unit ids are missing (first: {missing[:5].tolist()}); "
                    f"it has {have.size} units. Compute it from the same recording."
                )
            values = importance.sel(unit=units).values
        else:
            values = importance.values
    else:
        try:
            values = np.asarray(importance, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"`{argname}` must be a DataArray over 'unit' or a 1-D array of numbers, "
                f"got {describe(importance)}."
            ) from None
    values = np.asarray(values, dtype=np.float64)
    if values.shape != units.shape:
        raise CoordError(
            f"`{argname}` must have one value per unit of the dataset ({units.size}), got "
            f"shape {values.shape}."
        )
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueInputError(
            f"`{argname}` must be finite for every unit; got {int(bad.sum())} non-finite values."
        )
    if np.any(values < 0):
        raise ValueInputError(
            f"`{argname}` must be >= 0 for every unit; got min {float(values.min())!r}."
        )
    return xr.DataArray(values, dims=("unit",), coords=unit_coords(ds), name="importance")
