"""Array coercion shared by the stages: numpy views of tensors and DataArrays, plain Python
scalars, object arrays of tuples, and checked 2-D float matrices (internal)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError, ValueInputError, describe

__all__ = ["as_2d_float", "check_xy", "object_array", "plain", "to_numpy"]


def to_numpy(value: Any) -> np.ndarray:
    """*value* as a numpy array: a tensor is detached and copied to the CPU, an xarray object
    gives its values, anything else goes through :func:`numpy.asarray`."""
    if callable(getattr(value, "detach", None)):  # torch.Tensor, without importing torch
        return value.detach().cpu().numpy()
    if isinstance(value, (xr.DataArray, xr.Variable)):
        return np.asarray(value.values)
    return np.asarray(value)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``5``, not ``np.int64(5)``); anything else
    unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def object_array(items: Iterable[Any]) -> np.ndarray:
    """A 1-D object array holding *items* as they are (tuples stay tuples; numpy would
    otherwise build a 2-D array from equal-length tuples)."""
    items = list(items)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def as_2d_float(name: str, value: Any, *, n_rows: int | None = None) -> np.ndarray:
    """*value* (tensor, array, DataArray, nested list) as a finite 2-D float64 array.

    A 1-D input is one column. With *n_rows*, the first dimension must have that length and
    any further dimensions are flattened (an image batch becomes samples × pixels).
    """
    if value is None:
        raise InputError(f"`{name}` must be a 2-D array or tensor, got None.")
    try:
        arr = to_numpy(value)
    except Exception as exc:  # pragma: no cover - defensive
        raise InputError(f"`{name}` must be a 2-D array or tensor, got {describe(value)}.") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise InputError(f"`{name}` must be a numeric 2-D array or tensor, got {describe(value)}.")
    if n_rows is not None:
        if arr.ndim == 0 or arr.shape[0] != n_rows:
            raise ValueInputError(
                f"`{name}` must have one row per recorded sample ({n_rows}), got shape {arr.shape}."
            )
        arr = arr.reshape(n_rows, -1)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueInputError(f"`{name}` must be 2-D (samples × features), got an array of shape {arr.shape}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueInputError(f"`{name}` contains NaN or infinite values.")
    return arr


def check_xy(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs and targets: 2-D, finite, same number of samples (rows)."""
    Xa = as_2d_float("X", X)
    Ya = as_2d_float("Y", Y)
    if Xa.shape[0] != Ya.shape[0]:
        raise ValueInputError(
            f"`X` and `Y` must have the same number of samples (rows): X has {Xa.shape[0]}, "
            f"Y has {Ya.shape[0]}."
        )
    if Xa.shape[0] == 0:
        raise ValueInputError("`X` and `Y` must contain at least one sample, got 0.")
    return Xa, Ya
