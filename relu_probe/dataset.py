"""Build and check the recorded ``xarray.Dataset`` (the layout contract of DESIGN.md).

Layout: dims ``sample`` × ``unit``; ``gate`` (bool) or ``gate_rate`` (float32, channel
units) and optionally ``activation`` (float32); unit coords ``site``, ``neuron`` (+
``channel``, ``position`` when any site has positions); sample coords ``sample`` and the
user's coords; attrs plain str / number / list so netCDF round-trips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._version import __version__
from .errors import CoordError, InputError, describe

__all__ = [
    "RESERVED_NAMES",
    "check_coords",
    "unit_coords",
    "dataset_attrs",
    "build_dataset",
    "gate_variable",
    "site_attr",
]

#: Names a user coord may not take (they are the dataset's own dims, coords and vars).
RESERVED_NAMES = frozenset(
    {"sample", "unit", "site", "neuron", "channel", "position", "gate", "gate_rate", "activation", "step"}
)


def check_coords(coords: Mapping[str, Any] | None, n_samples: int, *, argument: str = "coords") -> dict[str, np.ndarray]:
    """Validate per-sample coords: a mapping of name → array-like of length *n_samples*.

    Any dtype is accepted (ints, strings, categoricals → numpy arrays). Raises
    :class:`~relu_probe.errors.CoordError` naming the coord, its length and the expected one.
    """
    if coords is None:
        return {}
    if not hasattr(coords, "items"):
        raise InputError(
            f"`{argument}` must be a mapping of coord name to per-sample values "
            f"(e.g. {{'context': labels}}), got {describe(coords)}."
        )
    out: dict[str, np.ndarray] = {}
    for name, values in coords.items():
        if not isinstance(name, str) or not name:
            raise CoordError(f"`{argument}` keys must be non-empty strings, got {name!r}.")
        if name in RESERVED_NAMES:
            raise CoordError(
                f"`{argument}` cannot use the name {name!r}: it is reserved for the dataset's own "
                f"dims, coords and variables ({', '.join(sorted(RESERVED_NAMES))})."
            )
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        array = np.asarray(values)
        if array.ndim == 0:
            raise CoordError(
                f"`{argument}[{name!r}]` must hold one value per sample ({n_samples}), got a scalar {array.item()!r}."
            )
        if array.ndim != 1:
            raise CoordError(
                f"`{argument}[{name!r}]` must be 1-D (one value per sample), got shape {array.shape}."
            )
        if len(array) != n_samples:
            raise CoordError(
                f"`{argument}[{name!r}]` has {len(array)} values, expected {n_samples} "
                "(one per recorded sample)."
            )
        out[name] = array
    return out


def unit_coords(site_names: Sequence[str], layouts: Mapping[str, Any], units: str) -> dict[str, np.ndarray]:
    """Per-unit coords for sites in order: ``site``, ``neuron`` and, when any site has
    positions, ``channel`` and ``position`` (dense units: ``channel = neuron``,
    ``position = -1``; channel units: ``position = -1``)."""
    site, neuron, channel, position = [], [], [], []
    any_positions = False
    for name in site_names:
        layout = layouts[name]
        n = layout.n_units(units)
        site.append(np.repeat(np.array([name], dtype=object), n))
        neuron.append(np.arange(n))
        any_positions |= layout.channel_dim is not None
        if layout.channel_dim is None or units == "channel":
            channel.append(np.arange(n))
            position.append(np.full(n, -1))
        else:
            channel.append(np.repeat(np.arange(layout.n_channels), layout.n_positions))
            position.append(np.tile(np.arange(layout.n_positions), layout.n_channels))
    coords = {
        "site": np.concatenate(site) if site else np.array([], dtype=object),
        "neuron": np.concatenate(neuron).astype(np.int64) if neuron else np.array([], dtype=np.int64),
    }
    if any_positions:
        coords["channel"] = np.concatenate(channel).astype(np.int64)
        coords["position"] = np.concatenate(position).astype(np.int64)
    return coords


def dataset_attrs(
    *,
    site_names: Sequence[str],
    layouts: Mapping[str, Any],
    readouts: Mapping[str, str],
    units: str,
    model_class: str,
    threshold: float = 0.0,
) -> dict[str, Any]:
    """The recorded dataset's attrs (plain str / number / list values)."""
    return {
        "relu_probe_version": __version__,
        "model_class": model_class,
        "sites": list(site_names),
        "site_readouts": [readouts.get(name, "") for name in site_names],
        "site_shapes": ["x".join(map(str, layouts[name].shape)) for name in site_names],
        "site_kinds": [layouts[name].kind for name in site_names],
        "units": units,
        "threshold": float(threshold),
    }


def build_dataset(
    data: Mapping[str, np.ndarray],
    *,
    site_names: Sequence[str],
    layouts: Mapping[str, Any],
    readouts: Mapping[str, str],
    units: str,
    model_class: str,
    coords: Mapping[str, np.ndarray],
    sample_ids: np.ndarray | None = None,
    threshold: float = 0.0,
) -> xr.Dataset:
    """Assemble the recorded dataset from ``(sample, unit)`` arrays (see the module docstring)."""
    n_samples = next(iter(data.values())).shape[0]
    ucoords = unit_coords(site_names, layouts, units)
    n_units = len(ucoords["site"])
    ids = np.arange(n_samples, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
    variables = {name: (("sample", "unit"), array) for name, array in data.items()}
    all_coords: dict[str, Any] = {
        "sample": ("sample", ids),
        "unit": ("unit", np.arange(n_units, dtype=np.int64)),
    }
    for name, values in ucoords.items():
        all_coords[name] = ("unit", values)
    for name, values in coords.items():
        all_coords[name] = ("sample", values)
    attrs = dataset_attrs(
        site_names=site_names, layouts=layouts, readouts=readouts, units=units,
        model_class=model_class, threshold=threshold,
    )
    ds = xr.Dataset(variables, coords=all_coords, attrs=attrs)
    for name in ("gate", "gate_rate"):
        if name in ds:
            ds[name].attrs["long_name"] = (
                "ReLU input > threshold" if name == "gate" else "fraction of positions with ReLU input > threshold"
            )
    if "activation" in ds:
        ds["activation"].attrs["long_name"] = "post-ReLU activation"
    return ds


def gate_variable(ds: xr.Dataset) -> str:
    """Name of the dataset's gate variable: ``"gate"`` or ``"gate_rate"``."""
    for name in ("gate", "gate_rate"):
        if name in ds.data_vars:
            return name
    raise InputError(
        "`ds` has no gate variable: expected a dataset from rp.record with a 'gate' or "
        f"'gate_rate' variable, got variables {sorted(map(str, ds.data_vars))}."
    )


def site_attr(ds: xr.Dataset, key: str) -> list:
    """A per-site attr (``sites``, ``site_readouts``, ``site_shapes``, ``site_kinds``) as a list.

    netCDF returns one-element list attributes as scalars; this undoes that. ``sites`` falls
    back to the unique ``site`` coord values in unit order when the attr is absent.
    """
    value = ds.attrs.get(key)
    if value is None:
        if key == "sites" and "site" in ds.coords:
            return list(dict.fromkeys(ds["site"].values.tolist()))
        return []
    if isinstance(value, str):
        return [value]
    return [v.item() if hasattr(v, "item") else v for v in value]
