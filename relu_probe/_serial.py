"""Exact JSON and netCDF round trips for analysis results (private).

:func:`dumps` / :func:`loads` write JSON that restores tuples, numpy arrays, non-string dict
keys and non-finite floats exactly (tagged objects such as ``{"__tuple__": [...]}``); plain
values stay plain so the files remain readable.

:func:`encode_dataset` / :func:`decode_dataset` make an ``xarray.Dataset`` netCDF-safe and
back: object arrays of tuples / lists / mixed values become JSON strings, and every attrs dict
(the dataset's and each variable's) is stored as one JSON string, so list, bool and nested
attrs come back exactly as they were.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["decode_dataset", "dumps", "encode_dataset", "from_jsonable", "loads", "to_jsonable"]

_ATTRS = "relu_probe_attrs"
_JSON_VALUES = "relu_probe_json_values"
_DTYPE = "relu_probe_dtype"


def to_jsonable(value: Any) -> Any:
    """A JSON-serialisable structure that :func:`from_jsonable` turns back into *value*."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isfinite(v):
            return v
        return {"__float__": repr(v)}
    if isinstance(value, tuple):
        return {"__tuple__": [to_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k.startswith("__") for k in value):
            return {k: to_jsonable(v) for k, v in value.items()}
        return {"__dict__": [[to_jsonable(k), to_jsonable(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__objarray__": [to_jsonable(v) for v in value.ravel().tolist()], "shape": list(value.shape)}
        return {"__ndarray__": to_jsonable(value.tolist()), "dtype": value.dtype.str, "shape": list(value.shape)}
    if hasattr(value, "item") and callable(value.item):  # 0-d tensors and numpy scalars
        return to_jsonable(value.item())
    raise TypeError(f"cannot store a {type(value).__name__} in JSON")


def from_jsonable(value: Any) -> Any:
    """Inverse of :func:`to_jsonable`."""
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(from_jsonable(v) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__dict__" in value:
        return {_hashable(from_jsonable(k)): from_jsonable(v) for k, v in value["__dict__"]}
    if "__ndarray__" in value:
        data = from_jsonable(value["__ndarray__"])
        return np.array(data, dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if "__objarray__" in value:
        items = [from_jsonable(v) for v in value["__objarray__"]]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(value["shape"])
    return {k: from_jsonable(v) for k, v in value.items()}


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text of *value* (see :func:`to_jsonable`)."""
    kwargs.setdefault("indent", 2)
    return json.dumps(to_jsonable(value), allow_nan=False, **kwargs)


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`."""
    return from_jsonable(json.loads(text))


def _needs_json(values: np.ndarray) -> bool:
    if values.dtype != object:
        return False
    return not all(isinstance(v, str) for v in values.ravel().tolist())


def encode_dataset(ds: xr.Dataset) -> xr.Dataset:
    """A netCDF-safe copy of *ds* (see the module docstring)."""
    out = ds.copy(deep=False)
    json_names: list[str] = []
    for name in list(out.variables):
        var = out.variables[name]
        attrs = dict(var.attrs)
        if _needs_json(np.asarray(var.values)):
            flat = [json.dumps(to_jsonable(v)) for v in np.asarray(var.values).ravel().tolist()]
            data = np.array(flat, dtype=object).reshape(var.shape)
            json_names.append(str(name))
            new = xr.Variable(var.dims, data)
        else:
            new = var.copy(deep=False)
        new.attrs = {_ATTRS: json.dumps(to_jsonable(attrs))} if attrs else {}
        if var.dtype.kind == "U":
            new.attrs[_DTYPE] = var.dtype.str
        if name in out.coords:
            out = out.assign_coords({name: new})
        else:
            out[name] = new
    out.attrs = {_ATTRS: json.dumps(to_jsonable(dict(ds.attrs))), _JSON_VALUES: json.dumps(json_names)}
    return out


def decode_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Inverse of :func:`encode_dataset` (on a dataset read back from netCDF)."""
    out = ds.copy(deep=False)
    json_names = json.loads(str(ds.attrs.get(_JSON_VALUES, "[]")))
    for name in list(out.variables):
        var = out.variables[name]
        data = var.values
        if name in json_names:
            items = [from_jsonable(json.loads(str(v))) for v in np.asarray(data).ravel().tolist()]
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            data = arr.reshape(var.shape)
        elif _DTYPE in var.attrs:
            data = np.asarray(data).astype(np.dtype(str(var.attrs[_DTYPE])))
        elif data.dtype.kind == "U":
            data = np.asarray(data, dtype=object)
        attrs = var.attrs.get(_ATTRS)
        new = xr.Variable(var.dims, data)
        new.attrs = from_jsonable(json.loads(attrs)) if attrs is not None else {}
        if name in out.coords:
            out = out.assign_coords({name: new})
        else:
            out[name] = new
    attrs = ds.attrs.get(_ATTRS)
    out.attrs = from_jsonable(json.loads(attrs)) if attrs is not None else {}
    return out
