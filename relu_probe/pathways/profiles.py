"""Per-unit gating profiles: ``rp.gating_profile``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..data.access import as_recording
from ..data.reduce import grouped_sum
from ..errors import ValueInputError

__all__ = ["gating_profile"]


def gating_profile(
    ds: xr.Dataset, by: str | Sequence[str], *, sites: str | Sequence[str] | None = None
) -> xr.DataArray:
    r"""Probability that each unit is on, per condition: :math:`P(\text{on}_u \mid by = b)`.

    .. math:: \mathrm{profile}[u, b] = \frac{1}{|\{x : by(x) = b\}|} \sum_{x : by(x) = b} g_u(x)

    where :math:`g_u(x)` is the recorded gate (0/1), or the fraction of active positions
    (``gate_rate``) for ``units="channel"`` recordings. On dask-backed recordings
    (``rp.load``) it is computed one sample chunk at a time (memory bounded by the chunk size).

    Parameters
    ----------
    ds : xarray.Dataset
        A recording from :func:`relu_probe.record`.
    by : str or sequence of str
        Sample coord(s) to condition on, e.g. ``"context"`` or ``("context", "object")``.
    sites : str or list of str, optional
        Only the units of these sites.

    Returns
    -------
    xarray.DataArray
        Dims ``(unit, *by)``, values in [0, 1], with the unit coords of *ds*; name
        ``"gating_profile"``. Combinations of several ``by`` coords that never occur are NaN.

    Examples
    --------
    >>> profile = rp.gating_profile(ds, "context")         # doctest: +SKIP
    >>> profile.sel(unit=3).values       # P(on | context) of unit 3   # doctest: +SKIP
    """
    rec = as_recording(ds).select_sites(sites)
    names = list(by) if isinstance(by, (list, tuple)) else [by]
    if not names:
        raise ValueInputError("`by` must name at least one sample coord, got an empty sequence.")
    for name in names:
        rec.sample_coord(name, "by")
    sums, counts = grouped_sum(rec.raw_gates(), names)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = sums / counts.where(counts > 0)  # NaN only for combinations with no sample
    profile = profile.transpose("unit", *names)
    profile.name = "gating_profile"
    profile.attrs = {"by": list(names)}
    return profile
