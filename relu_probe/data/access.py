"""How every analysis stage reads a recording: validated once, at the boundary.

:func:`as_recording` checks a Dataset returned by :func:`relu_probe.record` (dims, gate
variable, size) and wraps it in a :class:`Recording`. Every public analysis function starts
with it; passed a :class:`Recording`, it returns it unchanged, so a pipeline that checked its
recording once (:func:`relu_probe.analyze`) hands the checked view from stage to stage and
nothing is validated twice. Sample coords are checked on first use and remembered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._util.arrays import plain
from ..errors import CoordError, InputError, ValueInputError, describe
from .reduce import grouped_sum, packed_unit_range
from .schema import ACTIVATION, GATE, GATE_RATE, GATE_VARIABLES, SAMPLE, SITE, STEP, UNIT, gate_name, site_attr

__all__ = ["Recording", "as_recording", "align_importance"]


class Recording:
    """A recorded gate Dataset that passed :func:`as_recording`.

    Attributes
    ----------
    ds : xarray.Dataset
        The recording (dask-backed recordings keep their data lazy; their 1-D coords are
        loaded).
    gate_name : {"gate", "gate_rate"}
        Its gate variable.
    """

    __slots__ = ("ds", "gate_name", "_checked")

    def __init__(self, ds: xr.Dataset, gate_name: str, checked: frozenset[str] = frozenset()) -> None:
        self.ds = ds
        self.gate_name = gate_name
        self._checked = set(checked)

    def __repr__(self) -> str:
        return f"Recording({self.ds.sizes[SAMPLE]} samples × {self.ds.sizes[UNIT]} units)"

    # ------------------------------------------------------------------ the data
    @property
    def n_samples(self) -> int:
        return int(self.ds.sizes[SAMPLE])

    @property
    def n_units(self) -> int:
        return int(self.ds.sizes[UNIT])

    @property
    def has_activation(self) -> bool:
        return ACTIVATION in self.ds.data_vars

    def raw_gates(self) -> xr.DataArray:
        """The gates as stored — bool ``gate`` or float ``gate_rate`` — with dims (sample, unit).

        For reductions (:func:`relu_probe.data.reduce.grouped_sum`), which count bool gates
        without widening them (and straight from the packed bits of a loaded store).
        """
        var = self.ds[self.gate_name]
        return var if var.dims == (SAMPLE, UNIT) else var.transpose(SAMPLE, UNIT)

    def gates(self) -> xr.DataArray:
        """The gates as floats in [0, 1]: ``gate`` (0/1) or ``gate_rate`` (channel units)."""
        return self.raw_gates().astype(np.float64)

    def activity(self) -> xr.DataArray:
        """Per-sample activity magnitude: ``|activation|`` when stored, else the gate (rate)."""
        if self.has_activation:
            return abs(self.ds[ACTIVATION].astype(np.float64)).transpose(SAMPLE, UNIT)
        return self.gates()

    def signed_activity(self) -> xr.DataArray:
        """Per-sample activity with its sign: the activation when stored (a LeakyReLU's negative
        branch stays negative), else the gate (rate). What response-based scores read (the
        ANOVA, the decoders), so that a leaky unit's response is not folded by ``|·|``."""
        if self.has_activation:
            return self.ds[ACTIVATION].astype(np.float64).transpose(SAMPLE, UNIT)
        return self.gates()

    def rate_units(self) -> np.ndarray:
        """Bool per unit: its gate is a fraction of positions (a channel unit of a conv or
        sequence site, ``units="channel"``) rather than a 0/1 gate per sample."""
        if self.gate_name != GATE_RATE:
            return np.zeros(self.n_units, dtype=bool)
        kinds = dict(zip(map(str, site_attr(self.ds, "sites")), map(str, site_attr(self.ds, "site_kinds"))))
        if SITE not in self.ds.coords:
            return np.ones(self.n_units, dtype=bool)
        site = self.ds[SITE].values.astype(str)
        return np.array([kinds.get(s, "conv") != "dense" for s in site], dtype=bool)

    def site_names(self) -> list[str]:
        """The sites of the recording's units, in recording order (``[""]`` without a site coord)."""
        if SITE not in self.ds.coords:
            return [""]
        return [str(s) for s in dict.fromkeys(self.ds[SITE].values.tolist())]

    def mean_activity(self) -> np.ndarray:
        """Per-unit mean over samples of :meth:`activity`, summed one sample chunk at a time
        (:func:`relu_probe.data.reduce.grouped_sum`): bool gates are counted without widening
        them (straight from the packed bits of a loaded store), so memory stays bounded by
        the chunk size."""
        source = abs(self.ds[ACTIVATION]).transpose(SAMPLE, UNIT) if self.has_activation else self.raw_gates()
        sums, _ = grouped_sum(source, [])
        return np.asarray(sums.values, dtype=np.float64) / self.n_samples

    def summed_activity(self) -> xr.DataArray:
        """What per-cell sums of responses read (the ANOVA): the signed activation when stored
        (:meth:`signed_activity`), else the gates as stored (bool gates are then counted
        without widening)."""
        return self.signed_activity() if self.has_activation else self.raw_gates()

    def unit_coords(self) -> dict[str, Any]:
        """The unit coords (``unit``, ``site``, ``neuron``, …) for building results over units."""
        return {k: v for k, v in self.ds.coords.items() if v.dims == (UNIT,)}

    def sample_coords(self) -> dict[str, Any]:
        """The sample coords (``sample`` and the user's labels)."""
        return {k: v for k, v in self.ds.coords.items() if v.dims == (SAMPLE,)}

    def sample_coord_names(self) -> list[str]:
        """Names of the per-sample coords (``sample`` itself excluded)."""
        return sorted(str(k) for k in self.sample_coords() if k != SAMPLE)

    # ------------------------------------------------------------------ checks
    def sample_coord(self, value: Any, argname: str) -> str:
        """Return *value* if it names a per-sample coord with a label for every sample.

        Raises :class:`~relu_probe.errors.CoordError` listing the coords when *value* names
        none, and :class:`~relu_probe.errors.InputError` naming the first sample whose label is
        missing (None, NaN, NaT or ``pd.NA``): a condition or item without a label cannot be
        grouped. A coord that passed once is not checked again.
        """
        if isinstance(value, str) and value in self._checked:
            return value
        available = self.sample_coord_names()
        if not isinstance(value, str):
            raise InputError(
                f"`{argname}` must be the name of a sample coord (one of {available}), got {describe(value)}."
            )
        if value not in available:
            listed = ", ".join(repr(a) for a in available) or "none (pass coords= to rp.record)"
            raise CoordError(
                f"`{argname}`={value!r} is not a sample coord of the dataset; available sample coords: {listed}."
            )
        labels = np.asarray(self.ds[value].values)
        missing = np.flatnonzero(pd.isna(labels))
        if missing.size:
            first = int(missing[0])
            sample = plain(self.ds[SAMPLE].values[first]) if SAMPLE in self.ds.coords else first
            raise InputError(
                f"`{argname}`={value!r}: the coord must label every sample, but sample {sample!r} "
                f"(position {first}) has {plain(labels[first])!r}; {missing.size} of {labels.size} samples "
                "have no label. Give them a label or leave them out, e.g. "
                f"ds.isel(sample=ds[{value!r}].notnull())."
            )
        self._checked.add(value)
        return value

    def select_sites(self, sites: str | Sequence[str] | None) -> Recording:
        """The units of one site or a list of sites (``None``: all units)."""
        if sites is None:
            return self
        wanted = [sites] if isinstance(sites, str) else list(sites)
        if SITE not in self.ds.coords:
            raise CoordError("`sites` was given but the dataset has no 'site' unit coord.")
        present = list(dict.fromkeys(str(s) for s in self.ds[SITE].values))
        missing = [s for s in wanted if s not in present]
        if missing or not wanted:
            raise CoordError(
                f"`sites` must name recorded sites; unknown: {missing or wanted!r}. Recorded sites: {present}."
            )
        keep = np.isin(self.ds[SITE].values.astype(str), wanted)
        return self.isel_units(np.flatnonzero(keep))

    def loaded(self) -> Recording:
        """The recording with its data in memory (a dask-backed one is read once, here)."""
        if all(getattr(v, "chunks", None) is None for v in self.ds.data_vars.values()):
            return self
        return Recording(self.ds.load(), self.gate_name, frozenset(self._checked))

    def relabelled(self, name: str, values: np.ndarray) -> Recording:
        """The recording with sample coord *name* given new *values*, drawn from its own labels
        (as a null baseline shuffles them). No re-validation: they are labels already checked."""
        labels = np.asarray(self.ds[name].values)
        values = np.asarray(values)
        if values.shape != labels.shape or not np.isin(values, labels).all():
            raise ValueInputError(
                f"`values` must give each of the {labels.size} samples one of the coord {name!r}'s own labels."
            )
        ds = self.ds.assign_coords({name: (SAMPLE, values)})
        return Recording(ds, self.gate_name, frozenset(self._checked))

    def isel_units(self, index: Any) -> Recording:
        """The recording of the units at *index* (positions along ``unit``); no re-validation.

        The gates of a loaded store stay packed when *index* is a run of consecutive units
        from a multiple of 8 (a site's units): reductions on the selection still read the
        packed bits (:func:`relu_probe.data.reduce.packed_unit_range`)."""
        ds = self.ds.isel({UNIT: index})
        positions = np.asarray(index)
        if self.gate_name == GATE and positions.ndim == 1 and positions.size \
                and np.array_equal(positions, np.arange(positions[0], positions[0] + positions.size)):
            gate = self.ds[GATE]
            if gate.dims == (SAMPLE, UNIT):
                packed = packed_unit_range(gate.data, int(positions[0]), int(positions[-1]) + 1)
                if packed is not None:
                    ds[GATE] = ds[GATE].copy(data=packed)
        return Recording(ds, self.gate_name, frozenset(self._checked))


def as_recording(ds: Any, name: str = "ds") -> Recording:
    """Check that *ds* is a recorded gate Dataset (dims ``sample`` × ``unit``) and wrap it.

    A :class:`Recording` is returned as it is: it was checked when it was made.

    Raises
    ------
    InputError
        *ds* is not an ``xarray.Dataset``.
    ValueInputError
        It has no gate variable, training snapshots (dim ``step``), other dims, or no data.
    """
    if isinstance(ds, Recording):
        return ds
    if not isinstance(ds, xr.Dataset):
        raise InputError(
            f"`{name}` must be an xarray.Dataset returned by rp.record (dims sample × unit), got {describe(ds)}."
        )
    var = gate_name(ds)
    if var is None:
        raise ValueInputError(
            f"`{name}` has no {' or '.join(repr(v) for v in GATE_VARIABLES)} variable; data variables are "
            f"{sorted(map(str, ds.data_vars)) or 'none'}. Pass the Dataset returned by rp.record."
        )
    dims = ds[var].dims
    if STEP in dims:
        raise ValueInputError(
            f"`{name}` holds training snapshots (dim 'step'); select one first, e.g. `{name}.isel(step=-1)`."
        )
    if set(dims) != {SAMPLE, UNIT}:
        raise ValueInputError(f"`{name}['{var}']` must have dims ('sample', 'unit'), got {dims}.")
    if ds.sizes[SAMPLE] == 0 or ds.sizes[UNIT] == 0:
        raise ValueInputError(f"`{name}` is empty: {ds.sizes[SAMPLE]} samples × {ds.sizes[UNIT]} units.")
    # dask-backed recordings: the 1-D coords are small; load them so groupby can see labels
    lazy = {k: v.compute() for k, v in ds.coords.items() if v.chunks is not None}
    return Recording(ds.assign_coords(lazy) if lazy else ds, var)


def align_importance(importance: Any, rec: Recording, argname: str = "importance") -> xr.DataArray:
    """Return *importance* as a float DataArray over the recording's units (same order), checked.

    Accepts a DataArray with a ``unit`` dim (matched by unit id; it may cover more units than
    the recording, e.g. when it was restricted to some sites) or a 1-D array with one value
    per unit. Values must be finite and >= 0.
    """
    units = rec.ds[UNIT].values
    if isinstance(importance, xr.DataArray):
        if importance.dims != (UNIT,):
            raise CoordError(f"`{argname}` must be a DataArray over the single dim 'unit', got dims {importance.dims}.")
        if UNIT in importance.coords:
            have = importance[UNIT].values
            missing = np.setdiff1d(units, have)
            if missing.size:
                raise CoordError(
                    f"`{argname}` does not cover the dataset's units: {missing.size} of "
                    f"{units.size} unit ids are missing (first: {missing[:5].tolist()}); "
                    f"it has {have.size} units. Compute it from the same recording."
                )
            values = importance.sel({UNIT: units}).values
        else:
            values = importance.values
    else:
        try:
            values = np.asarray(importance, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"`{argname}` must be a DataArray over 'unit' or a 1-D array of numbers, got {describe(importance)}."
            ) from None
    values = np.asarray(values, dtype=np.float64)
    if values.shape != units.shape:
        raise CoordError(
            f"`{argname}` must have one value per unit of the dataset ({units.size}), got shape {values.shape}."
        )
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueInputError(f"`{argname}` must be finite for every unit; got {int(bad.sum())} non-finite values.")
    if np.any(values < 0):
        raise ValueInputError(f"`{argname}` must be >= 0 for every unit; got min {float(values.min())!r}.")
    return xr.DataArray(values, dims=(UNIT,), coords=rec.unit_coords(), name="importance")
