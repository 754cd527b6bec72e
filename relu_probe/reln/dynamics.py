"""Loss curves: read them, compare two of them (e.g. a ReLU network against its ReLN or the
closed-form race), and stop a simulation whose loss diverges.

Quantities, for curves ``a`` (the reference) and ``b`` over epochs ``e = start … stop−1``:

- ``mean_abs_diff  = mean_e |a[e] − b[e]|`` and ``max_abs_diff = max_e |a[e] − b[e]|``;
- the same as a percentage of ``L0 = a[0]`` (the reference's initial loss, overridable);
- ``epochs_to_*[f]`` = the first epoch ``e`` with ``loss[e] <= f · L0`` (``None`` if never),
  for ``f`` in ``fractions`` (default 50 %, 25 %, 10 %, 1 % of ``L0``).

A simulated or predicted curve has diverged once a loss is not finite or exceeds
``DIVERGENCE_FACTOR × max(L0, 1)`` (:func:`check_divergence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import xarray as xr

from .._util.arrays import to_numpy
from .._util.checks import check_int, check_real
from ..errors import InputError, ValueInputError, describe

__all__ = [
    "DEFAULT_FRACTIONS",
    "DIVERGENCE_FACTOR",
    "as_loss_curve",
    "check_divergence",
    "compare_dynamics",
    "divergence_limit",
    "epochs_to_fraction",
]

#: Fractions of ``L0`` at which :func:`compare_dynamics` reports the epochs reached.
DEFAULT_FRACTIONS = (0.5, 0.25, 0.1, 0.01)

#: A loss above ``DIVERGENCE_FACTOR × max(L0, 1)`` counts as a diverged simulation.
DIVERGENCE_FACTOR = 1e6


def divergence_limit(L0: float) -> float:
    """The loss above which a curve starting at *L0* has diverged."""
    return DIVERGENCE_FACTOR * max(float(L0), 1.0)


def check_divergence(loss: Any, L0: float, *, lr: float, what: str, force: bool = False) -> None:
    """Raise a :class:`~relu_probe.errors.ValueInputError` naming ``lr`` when *loss* (1-D, one
    value per epoch) holds a non-finite value or one above :func:`divergence_limit` (with
    *force*: in any case, at its last epoch when none is), naming the first such epoch."""
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(loss) | (loss > divergence_limit(L0)))
    if bad.size == 0 and not force:
        return
    first = int(bad[0]) if bad.size else max(loss.size - 1, 0)
    value = float(loss[first]) if loss.size else float("nan")
    raise ValueInputError(
        f"{what} diverged (loss {value:.3g} at epoch {first}); lower the learning rate `lr` (got {lr})."
    )


def as_loss_curve(name: str, value: Any) -> np.ndarray:
    """Read a loss curve from an array / tensor / list, an ``xarray`` object with a ``loss``
    variable, or a fitted estimator with ``loss_curve_``; return a finite 1-D float array."""
    if hasattr(value, "loss_curve_") and not isinstance(value, (np.ndarray, xr.DataArray)):
        value = value.loss_curve_
    if isinstance(value, xr.Dataset):
        if "loss" not in value:
            raise InputError(
                f"`{name}` is a Dataset without a `loss` variable (variables: "
                f"{sorted(map(str, value.data_vars))})."
            )
        value = value["loss"]
    try:
        arr = np.asarray(to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"`{name}` must be a 1-D sequence of losses, got {describe(value)}.") from exc
    if arr.ndim != 1:
        raise ValueInputError(f"`{name}` must be 1-D (one loss per epoch), got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueInputError(f"`{name}` must hold at least one epoch, got an empty curve.")
    if not np.all(np.isfinite(arr)):
        first = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueInputError(f"`{name}` has a non-finite loss ({arr[first]}) at epoch {first}.")
    return arr


def epochs_to_fraction(loss: np.ndarray, L0: float, fraction: float) -> int | None:
    """First epoch at which ``loss <= fraction · L0``; ``None`` if it never gets there."""
    hits = np.flatnonzero(loss <= fraction * L0)
    return int(hits[0]) if hits.size else None


def compare_dynamics(
    loss_a: Any,
    loss_b: Any,
    *,
    start: int = 0,
    stop: int | None = None,
    L0: float | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, Any]:
    """Compare two loss curves epoch by epoch.

    Parameters
    ----------
    loss_a, loss_b : array-like, xarray object or fitted estimator
        Loss per epoch (same length). ``loss_a`` is the reference (e.g. the ReLU network);
        a Dataset contributes its ``loss`` variable, an estimator its ``loss_curve_``.
    start, stop : int, optional
        Epoch window ``[start, stop)`` for the |ΔL| statistics (e.g. ``start=1500`` for the
        paper's late phase). Epochs-to-fraction always use the whole curves.
    L0 : float, optional
        Loss scale for the percentages and fractions; default ``loss_a[0]``.
    fractions : sequence of float, default (0.5, 0.25, 0.1, 0.01)

    Returns
    -------
    dict
        ``mean_abs_diff``, ``max_abs_diff``, ``max_abs_diff_epoch``, ``mean_abs_diff_pct``,
        ``max_abs_diff_pct`` (percent of ``L0``), ``L0``, ``n_epochs``, ``window``
        (start, stop), and ``epochs_to_a`` / ``epochs_to_b``: dicts ``{fraction: epoch or
        None}``.

    Examples
    --------
    >>> import numpy as np
    >>> r = compare_dynamics(np.array([10.0, 5.0, 1.0]), np.array([10.0, 6.0, 1.0]))
    >>> r["mean_abs_diff"], r["max_abs_diff"], r["epochs_to_a"][0.5], r["epochs_to_b"][0.5]
    (0.3333333333333333, 1.0, 1, 2)
    """
    a = as_loss_curve("loss_a", loss_a)
    b = as_loss_curve("loss_b", loss_b)
    if a.shape != b.shape:
        raise ValueInputError(
            f"`loss_a` and `loss_b` must have the same number of epochs: loss_a has {a.size}, "
            f"loss_b has {b.size}."
        )
    n = a.size
    start = check_int("start", start, minimum=0)
    stop = n if stop is None else check_int("stop", stop, minimum=1)
    if stop > n or start >= stop:
        raise ValueInputError(
            f"`start`/`stop` must select a non-empty window inside [0, {n}), got start={start}, "
            f"stop={stop}."
        )
    if L0 is None:
        scale = float(a[0])
        if scale <= 0.0:
            raise ValueInputError(
                f"`loss_a[0]` is {scale}, so percentages of L0 are undefined; pass `L0=` explicitly."
            )
    else:
        scale = check_real("L0", L0, minimum=0.0, strict=True)
    fracs = []
    for f in fractions:
        fracs.append(check_real("fractions", f, minimum=0.0, strict=True))
    diff = np.abs(a[start:stop] - b[start:stop])
    arg = int(np.argmax(diff))
    mean_abs = float(diff.mean())
    max_abs = float(diff[arg])
    pct = 100.0 / scale
    return {
        "mean_abs_diff": mean_abs,
        "max_abs_diff": max_abs,
        "max_abs_diff_epoch": start + arg,
        "mean_abs_diff_pct": mean_abs * pct,
        "max_abs_diff_pct": max_abs * pct,
        "L0": scale,
        "n_epochs": n,
        "window": (start, stop),
        "epochs_to_a": {f: epochs_to_fraction(a, scale, f) for f in fracs},
        "epochs_to_b": {f: epochs_to_fraction(b, scale, f) for f in fracs},
    }
