"""Hand a recording to the tools representation analyses are done with.

* :func:`to_rsatoolbox` — an ``rsatoolbox.data.Dataset`` (observations × channels) for
  representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008,
  doi:10.3389/neuro.06.004.2008; the rsatoolbox documentation describes the object). Sample
  coords become ``obs_descriptors``, unit coords ``channel_descriptors``.
* :func:`condition_means` — the trial-averaged (unit × condition …) array that demixed PCA
  expects (Kobak et al. 2016, eLife 5:e10989; the ``dPCA`` package takes it neurons-first,
  ``X[n, a, b]``), as an ``xarray.DataArray`` with named dims.

Both read in-memory recordings and lazily loaded stores (:func:`relu_probe.load`); the
condition means of a store are reduced one chunk at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import CoordError, ValueInputError, describe
from .access import as_recording
from .reduce import grouped_sum

__all__ = ["to_rsatoolbox", "condition_means"]

_VARIABLES = ("auto", "activation", "gate", "gate_rate")


def _variable(ds: xr.Dataset, variable: str) -> str:
    """The data variable to export: *variable*, or for ``"auto"`` the post-ReLU activation
    when recorded, else the gates."""
    if not isinstance(variable, str) or variable not in _VARIABLES:
        raise ValueInputError(f"`variable` must be one of {list(_VARIABLES)}, got {describe(variable)}.")
    if variable == "auto":
        for name in ("activation", "gate", "gate_rate"):
            if name in ds.data_vars:
                return name
    if variable not in ds.data_vars:
        raise ValueInputError(
            f"`variable`={variable!r} is not in the dataset; it holds {sorted(map(str, ds.data_vars))}"
            + (" (record with values=True for activations)." if variable == "activation" else ".")
        )
    return variable


def _descriptor(values: np.ndarray) -> np.ndarray:
    """A coord as a descriptor array: object arrays of strings become unicode arrays (which
    rsatoolbox's ``save`` and ``np.unique`` handle), everything else is kept as it is."""
    values = np.asarray(values)
    if values.dtype == object and all(isinstance(v, str) for v in values.tolist()):
        return values.astype(str)
    return values


def to_rsatoolbox(
    ds: xr.Dataset,
    *,
    variable: str = "auto",
    sites: str | Sequence[str] | None = None,
) -> Any:
    """The recording as an ``rsatoolbox.data.Dataset`` (needs the ``rsa`` extra: rsatoolbox).

    ``measurements[i, j]`` is the recorded value of unit *j* on sample *i*, as float64:
    the post-ReLU activation, the gate (0/1) or the fraction of active positions
    (``gate_rate``, channel units).

    Parameters
    ----------
    ds : xarray.Dataset
        A recording from :func:`relu_probe.record` (or :func:`relu_probe.load`; the selected
        units are read into memory, ``n_samples × n_units × 8`` bytes).
    variable : {"auto", "activation", "gate", "gate_rate"}, default="auto"
        What to measure; ``"auto"`` takes ``activation`` when recorded (``values=True``),
        else the gates. Use ``"gate"`` for RSA on gating patterns.
    sites : str or list of str, optional
        Only the units of these sites (e.g. one layer at a time).

    Returns
    -------
    rsatoolbox.data.Dataset
        ``obs_descriptors``: the ``sample`` ids and every sample coord (``context``,
        ``object``, …); ``channel_descriptors``: ``unit`` and every unit coord (``site``,
        ``neuron``, ``channel``, ``position``); ``descriptors``: ``variable``,
        ``model_class``, ``units`` and ``threshold`` (and ``site`` when one site is exported).
        Strings are unicode arrays.

    Examples
    --------
    >>> data = rp.to_rsatoolbox(ds, sites="1")                          # doctest: +SKIP
    >>> rdm = rsatoolbox.rdm.calc_rdm(data, method="euclidean", descriptor="context")  # doctest: +SKIP
    """
    try:
        from rsatoolbox.data import Dataset
    except ImportError as exc:
        raise ImportError("rp.to_rsatoolbox needs rsatoolbox: pip install 'relu_probe[rsa]'") from exc
    rec = as_recording(ds).select_sites(sites)
    ds = rec.ds
    name = _variable(ds, variable)
    values = np.asarray(ds[name].transpose("sample", "unit").values, dtype=np.float64)
    obs = {"sample": np.asarray(ds["sample"].values)}
    obs.update({k: _descriptor(v.values) for k, v in rec.sample_coords().items() if k != "sample"})
    channels = {"unit": np.asarray(ds["unit"].values)}
    channels.update({k: _descriptor(v.values) for k, v in rec.unit_coords().items() if k != "unit"})
    descriptors: dict[str, Any] = {"variable": name}
    for key in ("model_class", "units", "threshold"):
        if key in ds.attrs:
            descriptors[key] = ds.attrs[key]
    if "site" in ds.coords:
        present = list(dict.fromkeys(ds["site"].values.tolist()))
        if len(present) == 1:
            descriptors["site"] = str(present[0])
    return Dataset(values, descriptors=descriptors, obs_descriptors=obs, channel_descriptors=channels)


def condition_means(
    ds: xr.Dataset,
    by: str,
    within: str | None = None,
    *,
    variable: str = "auto",
    sites: str | Sequence[str] | None = None,
) -> xr.DataArray:
    r"""Mean response of every unit in every condition: a (unit, *by*, *within*) array for dPCA.

    .. math:: \bar v[u, b, w] = \frac{1}{n_{bw}} \sum_{x:\ by(x) = b,\ within(x) = w} v_u(x),
              \qquad n_{bw} = |\{x : by(x) = b,\ within(x) = w\}|

    where :math:`v_u(x)` is the post-ReLU activation, the gate (0/1, so the mean is
    :math:`P(\text{on})` in the cell) or the fraction of active positions.

    Parameters
    ----------
    ds : xarray.Dataset
        A recording (in memory or a loaded store, reduced one chunk at a time).
    by : str
        Sample coord of the first condition axis (e.g. the context / task).
    within : str, optional
        Sample coord of the second axis (e.g. the item / stimulus); without it the result
        is (unit, *by*).
    variable : {"auto", "activation", "gate", "gate_rate"}, default="auto"
        See :func:`to_rsatoolbox`.
    sites : str or list of str, optional
        Only the units of these sites.

    Returns
    -------
    xarray.DataArray
        Dims ``("unit", by[, within])``, float64, name ``"condition_mean"``; levels of each
        condition sorted; the unit coords of *ds*; coord ``n_samples`` (by[, within]): the
        samples averaged in each cell. **A cell with no sample is NaN** (an unbalanced
        design): dPCA needs every cell, so drop or fill such conditions first
        (``.dropna(within, how="any")``).

    Examples
    --------
    Demixed PCA over contexts × objects (the ``dPCA`` package's ``labels`` name the axes after
    the neuron axis)::

        from dPCA import dPCA
        X = rp.condition_means(ds, "context", "object", variable="activation")
        Z = dPCA.dPCA(labels="co").fit_transform(X.values)
    """
    rec = as_recording(ds).select_sites(sites)
    ds = rec.ds
    names = [rec.sample_coord(by, "by")]
    if within is not None:
        names.append(rec.sample_coord(within, "within"))
        if within == by:
            raise CoordError(f"`within` must differ from `by`, got {by!r} for both.")
    name = _variable(ds, variable)
    var = ds[name].transpose("sample", "unit")
    if name == "activation":
        var = var.astype(np.float64)
    sums, counts = grouped_sum(var, names)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts.where(counts > 0)  # NaN where a cell has no sample
    means = means.astype(np.float64).transpose("unit", *names)
    means = means.assign_coords(n_samples=counts.astype(np.int64))
    means.name = "condition_mean"
    means.attrs = {"variable": name, "conditions": list(names), "long_name": f"mean {name} per condition"}
    return means
