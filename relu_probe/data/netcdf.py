"""netCDF files of relu_probe: one encoding for recordings, pathways, fitted networks and
analyses.

netCDF stores numbers, strings and flat lists of them; it cannot store a bool, None, a dict,
a tuple or a nested list, and it stores a one-element list exactly like a scalar.
:func:`encode` makes any Dataset netCDF-safe and :func:`decode` restores it exactly:

* attrs (the dataset's and every variable's) that netCDF holds natively stay as they are, so
  any netCDF reader sees them; list-valued ones are named in ``relu_probe_list_attrs`` so a
  one-element list comes back as a list;
* every other attr is written as tagged JSON (:func:`relu_probe._util.serial.to_jsonable`)
  and named in ``relu_probe_json_attrs``; a variable attr whose name netCDF / CF readers
  interpret themselves (``units``, ``_FillValue``, ``scale_factor`` …) is also renamed
  ``relu_probe_attr_<name>``, so no reader rescales, masks or converts the data;
* object arrays of tuples / lists / mixed values become one JSON string per element
  (named in ``relu_probe_json_values``); fixed-width string arrays keep their dtype.

:func:`to_netcdf` / :func:`open_netcdf` write and read one Dataset (``rp.io``);
:func:`write_groups` / :func:`read_groups` several Datasets and DataArrays in one file, each in
its own netCDF group, so each keeps exactly its own coords and name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._util.arrays import plain
from .._util.serial import from_jsonable, to_jsonable
from ..errors import ReluProbeError, StoreError, ValueInputError

__all__ = [
    "LIST_ATTRS_KEY",
    "decode",
    "encode",
    "netcdf_name_problem",
    "open_netcdf",
    "read_groups",
    "require_netcdf4",
    "to_netcdf",
    "write_groups",
]

#: Attr naming the attrs that were lists when written (netCDF reads ``[x]`` back as ``x``).
LIST_ATTRS_KEY = "relu_probe_list_attrs"
#: Attr naming the attrs written as tagged JSON.
JSON_ATTRS_KEY = "relu_probe_json_attrs"
#: Dataset attr naming the variables whose object values are JSON strings.
JSON_VALUES_KEY = "relu_probe_json_values"
#: Variable attr holding the fixed-width string dtype of a variable (``"<U7"``).
DTYPE_KEY = "relu_probe_dtype"
#: Prefix of the variable attrs that CF readers would interpret, as written.
RENAMED_PREFIX = "relu_probe_attr_"
#: Group attrs of :func:`write_groups`: what the group holds, and a DataArray's name.
KIND_KEY, NAME_KEY = "relu_probe_kind", "relu_probe_name"

_KEYS = (LIST_ATTRS_KEY, JSON_ATTRS_KEY, JSON_VALUES_KEY, DTYPE_KEY)
#: Variable attrs that xarray's CF decoding or netCDF itself would interpret.
_INTERPRETED = frozenset({
    "units", "calendar", "_FillValue", "missing_value", "scale_factor", "add_offset", "coordinates",
    "bounds", "grid_mapping", "dtype", "compress", "_Unsigned", "_Encoding", "valid_range", "valid_min",
    "valid_max", "flag_values", "flag_masks", "flag_meanings",
})


def require_netcdf4(what: str) -> None:
    """Raise a clear error when the netCDF4 package (the ``io`` extra) is missing."""
    try:
        import netCDF4  # noqa: F401
    except ImportError:
        raise ReluProbeError(
            f"{what} writes netCDF files, which needs the netCDF4 package: pip install 'relu_probe[io]'"
        ) from None


# ----------------------------------------------------------------------------- attrs
def _native(value: Any) -> bool:
    """Whether netCDF stores *value* as it is: a string, a real number, or a non-empty flat list
    of strings or of real numbers."""
    def scalar(v: Any) -> bool:
        return isinstance(v, (str, Integral, Real)) and not isinstance(v, (bool, np.bool_))

    if isinstance(value, list):
        return bool(value) and (all(isinstance(v, str) for v in value)
                                or all(scalar(v) and not isinstance(v, str) for v in value))
    return scalar(value)


def _encode_attrs(attrs: Mapping[Any, Any], *, variable: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lists: list[str] = []
    as_json: list[str] = []
    for key, value in attrs.items():
        key = str(key)
        if variable and key in _INTERPRETED:
            key = RENAMED_PREFIX + key
            out[key] = json.dumps(to_jsonable(value))
            as_json.append(key)
        elif _native(value):
            out[key] = value
            if isinstance(value, list):
                lists.append(key)
        else:
            out[key] = json.dumps(to_jsonable(value))
            as_json.append(key)
    if lists:
        out[LIST_ATTRS_KEY] = json.dumps(lists)
    if as_json:
        out[JSON_ATTRS_KEY] = json.dumps(as_json)
    return out


def _names(value: Any) -> list[str]:
    """The attr names listed in a key attr: a JSON list (files written before relu_probe's one
    encoding separate them by spaces)."""
    if value is None:
        return []
    text = str(value)
    return list(json.loads(text)) if text.startswith("[") else text.split()


def _decode_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    attrs = dict(attrs)
    lists = set(_names(attrs.pop(LIST_ATTRS_KEY, None)))
    as_json = set(_names(attrs.pop(JSON_ATTRS_KEY, None)))
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in as_json:
            value = from_jsonable(json.loads(str(value)))
        elif key in lists:
            value = [plain(value)] if np.ndim(value) == 0 else [plain(v) for v in value]
        else:
            value = plain(value)
        out[key[len(RENAMED_PREFIX):] if key.startswith(RENAMED_PREFIX) else key] = value
    return out


# ----------------------------------------------------------------------------- datasets
def _needs_json(values: np.ndarray) -> bool:
    return values.dtype == object and not all(isinstance(v, str) for v in values.ravel().tolist())


def _replace(ds: xr.Dataset, name: Any, variable: xr.Variable) -> xr.Dataset:
    if name in ds.coords:
        return ds.assign_coords({name: variable})
    ds[name] = variable
    return ds


def netcdf_name_problem(name: Any, *, coord: bool = False) -> str | None:
    """Why netCDF cannot store a variable or dimension called *name* (None if it can).

    The netCDF-C rules (Unidata, "NetCDF Users Guide", *Names*): a name begins with a
    letter, a digit, ``_`` or a multi-byte UTF-8 character, holds no ``/`` and no control
    character, and does not end with white space. A *coord* that is not a dimension also
    holds no white space: xarray lists such coords in the CF ``coordinates`` attribute,
    separated by spaces, so it would read back as a data variable.
    """
    text = str(name)
    if coord and any(ch.isspace() for ch in text):
        return "contains white space (netCDF's `coordinates` attribute separates coord names by spaces)"
    if not text:
        return "is empty"
    first = text[0]
    if not (first.isalnum() or first == "_" or ord(first) > 127):
        return f"begins with {first!r} (netCDF names begin with a letter, a digit or '_')"
    if "/" in text:
        return "contains '/' (netCDF reserves it for groups)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "contains a control character"
    if text != text.rstrip():
        return "ends with white space"
    return None


def encode(ds: xr.Dataset) -> xr.Dataset:
    """A netCDF-safe copy of *ds* (module docstring); :func:`decode` inverts it.

    Raises :class:`relu_probe.errors.ValueInputError` naming the first variable or dimension
    whose name netCDF cannot store (:func:`netcdf_name_problem`), before anything is written."""
    for name in [*ds.variables, *ds.dims]:
        problem = netcdf_name_problem(name, coord=name in ds.coords and name not in ds.dims)
        if problem is not None:
            raise ValueInputError(
                f"{name!r} cannot be saved to netCDF: its name {problem}. Rename that coord or variable "
                "(e.g. ds.rename({...}), or another key in the inputs file)."
            )
    out = ds.copy(deep=False)
    json_values: list[str] = []
    for name in list(out.variables):
        var = out.variables[name]
        # only object arrays are read here: a dask-backed variable is written chunk by chunk
        if var.dtype == object and _needs_json(values := np.asarray(var.values)):
            flat = [json.dumps(to_jsonable(v)) for v in values.ravel().tolist()]
            new = xr.Variable(var.dims, np.array(flat, dtype=object).reshape(var.shape))
            json_values.append(str(name))
        else:
            new = var.copy(deep=False)
        new.attrs = _encode_attrs(var.attrs, variable=True)
        if var.dtype.kind == "U":
            new.attrs[DTYPE_KEY] = var.dtype.str
        out = _replace(out, name, new)
    out.attrs = _encode_attrs(ds.attrs, variable=False)
    if json_values:
        out.attrs[JSON_VALUES_KEY] = json.dumps(json_values)
    return out


def decode(ds: xr.Dataset) -> xr.Dataset:
    """Inverse of :func:`encode`, on a Dataset read back from netCDF. A file written without
    :func:`encode` reads as it is (numpy scalars in its attrs become Python scalars)."""
    out = ds.copy(deep=False)
    json_values = set(_names(ds.attrs.get(JSON_VALUES_KEY)))
    for name in list(out.variables):
        var = out.variables[name]
        attrs = dict(var.attrs)
        dtype = attrs.pop(DTYPE_KEY, None)
        data = var.values
        if name in json_values:
            items = [from_jsonable(json.loads(str(v))) for v in np.asarray(data).ravel().tolist()]
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            data = arr.reshape(var.shape)
        elif dtype is not None:
            data = np.asarray(data).astype(np.dtype(str(dtype)))
        elif data.dtype.kind == "U":
            data = np.asarray(data, dtype=object)
        new = xr.Variable(var.dims, data)
        new.attrs = _decode_attrs(attrs)
        new.encoding = {}
        out = _replace(out, name, new)
    attrs = {k: v for k, v in ds.attrs.items() if k != JSON_VALUES_KEY}
    out.attrs = _decode_attrs(attrs)
    return out


def to_netcdf(ds: xr.Dataset, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write *ds* to a netCDF file (``engine="netcdf4"`` by default); :func:`open_netcdf`
    reads it back identical. Plain netCDF readers see the same data and attrs."""
    kwargs.setdefault("engine", "netcdf4")
    encode(ds).to_netcdf(path, **kwargs)


def open_netcdf(path: str | os.PathLike, **kwargs: Any) -> xr.Dataset:
    """Read a dataset written by :func:`to_netcdf` into memory, exactly as it was written."""
    kwargs.setdefault("engine", "netcdf4")
    with xr.open_dataset(path, **kwargs) as handle:
        return decode(handle.load())


# ----------------------------------------------------------------------------- groups
def write_groups(
    path: str | os.PathLike, groups: Mapping[str, xr.Dataset | xr.DataArray | None],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write Datasets and DataArrays to one netCDF file, each in its own group (so each keeps
    exactly its own coords and name); ``None`` entries are left out. *attrs* go on the file."""
    path = Path(path)
    xr.Dataset(attrs=dict(attrs or {})).pipe(encode).to_netcdf(path, mode="w", engine="netcdf4")
    for key, obj in groups.items():
        if obj is None:
            continue
        if isinstance(obj, xr.DataArray):
            ds = obj.to_dataset(name="__data__")
            ds.attrs = {KIND_KEY: "DataArray", NAME_KEY: obj.name}
        else:
            ds = obj.copy(deep=False)
            ds.attrs = {**obj.attrs, KIND_KEY: "Dataset"}
        encode(ds).to_netcdf(path, mode="a", group=key, engine="netcdf4")


def read_groups(path: str | os.PathLike) -> tuple[dict[str, xr.Dataset | xr.DataArray], dict[str, Any]]:
    """Inverse of :func:`write_groups`: ``({group: Dataset or DataArray}, file attrs)``."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as handle:
            names = list(handle.groups)
        with xr.open_dataset(path, engine="netcdf4") as handle:
            attrs = decode(handle.load()).attrs
        out: dict[str, Any] = {}
        for key in names:
            with xr.open_dataset(path, group=key, engine="netcdf4") as handle:
                ds = decode(handle.load())
            kind = ds.attrs.pop(KIND_KEY)
            if kind == "DataArray":
                da = ds["__data__"]
                da.name = ds.attrs.pop(NAME_KEY)
                out[key] = da
            else:
                out[key] = ds
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise StoreError(f"cannot read {str(path)!r}: {exc}") from None
    return out, attrs
