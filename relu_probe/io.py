"""Save and open recorded datasets as netCDF, keeping list-valued attrs exact.

netCDF stores a one-element list attribute exactly like a scalar, so a plain
``xr.open_dataset`` returns ``"act"`` where ``["act"]`` was written. :func:`to_netcdf`
writes an extra attribute naming the list-valued attrs and :func:`open_netcdf` restores
them, so ``open_netcdf(path)`` is identical to the dataset saved. Library code reads
per-site attrs through :func:`relu_probe.dataset.site_attr`, which accepts both forms.
"""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

__all__ = ["to_netcdf", "open_netcdf", "LIST_ATTRS_KEY"]

#: File attribute listing which attrs were lists when saved.
LIST_ATTRS_KEY = "relu_probe_list_attrs"


def to_netcdf(ds: xr.Dataset, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write *ds* to a netCDF file (``engine="netcdf4"`` by default)."""
    out = ds.copy(deep=False)
    lists = [k for k, v in ds.attrs.items() if isinstance(v, (list, tuple))]
    out.attrs = {**ds.attrs, LIST_ATTRS_KEY: " ".join(lists)}
    kwargs.setdefault("engine", "netcdf4")
    out.to_netcdf(path, **kwargs)


def open_netcdf(path: str | os.PathLike, **kwargs: Any) -> xr.Dataset:
    """Read a dataset written by :func:`to_netcdf` into memory, with its list attrs restored."""
    kwargs.setdefault("engine", "netcdf4")
    with xr.open_dataset(path, **kwargs) as handle:
        ds = handle.load()
    names = str(ds.attrs.pop(LIST_ATTRS_KEY, "")).split()
    for name in names:
        value = ds.attrs.get(name)
        if value is None:
            ds.attrs[name] = []
        elif isinstance(value, str):
            ds.attrs[name] = [value]
        else:
            ds.attrs[name] = [v.item() if hasattr(v, "item") else v for v in value]
    return ds
