"""Exact JSON round trips (internal).

:func:`dumps` / :func:`loads` write JSON that restores tuples, numpy arrays, non-string dict
keys and non-finite floats exactly (tagged objects such as ``{"__tuple__": [...]}``); plain
values stay plain so the files remain readable. :mod:`relu_probe.data.netcdf` builds its
encoding of non-netCDF values on :func:`to_jsonable` / :func:`from_jsonable`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["dumps", "from_jsonable", "loads", "to_jsonable"]


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
