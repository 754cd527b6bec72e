"""Loss curves: read them, compare two of them (e.g. a ReLU network against its ReLN or the
closed-form race), and stop a simulation whose loss diverges.

Quantities, for curves ``a`` (the reference) and ``b`` over epochs ``e = start … stop−1``:

- ``mean_abs_diff  = mean_e |a[e] − b[e]|`` and ``max_abs_diff = max_e |a[e] − b[e]|``;
- the same as a percentage of ``L0 = a[0]`` (the reference's initial loss, overridable);
- ``epochs_to_*[f]`` = the first epoch ``e`` with ``loss[e] <= f · L0`` (``None`` if never),
  for ``f`` in ``fractions`` (default 50 %, 25 %, 10 %, 1 % of ``L0``).

A simulated or predicted curve has diverged once a loss is not finite or exceeds
``DIVERGENCE_FACTOR × max(L0, 1)`` (:func:`check_divergence`).

Loss conventions. Every prediction here is for full-batch gradient descent on the *summed*
loss ``L = ½ Σ_μ ‖y_μ − f(x_μ)‖²`` (the paper's). A training loop may report the same loss
scaled, ``L_user = c · L``; gradient descent at rate ``η`` on ``L_user`` is gradient descent at
rate ``c η`` on ``L`` (a mean loss only rescales time, ``τ = 1/(c η P)``).
:func:`loss_convention` identifies ``c`` by checking the curve against the model it trained:
its last value against ``c · ½ Σ ‖Y − f(X)‖²`` of the trained model (and, when known, its
first value against the untrained model), for the conventions of :data:`LOSS_CONVENTIONS`:

=================  =========================================  ==============
name               loss                                       ``c``
=================  =========================================  ==============
``"sum"``          ``½ Σ_μ ‖y_μ − f(x_μ)‖²``                  1
``"sum_squares"``  ``Σ_μ ‖y_μ − f(x_μ)‖²`` (``MSELoss(reduction="sum")``)  2
``"mean"``         ``½ Σ_μ ‖y_μ − f(x_μ)‖² / P``              ``1/P``
``"mean_squares"`` ``Σ_μ ‖y_μ − f(x_μ)‖² / P``                ``2/P``
``"mse"``          ``Σ_μ ‖y_μ − f(x_μ)‖² / (P m)`` (``MSELoss()``)  ``2/(P m)``
=================  =========================================  ==============

A value matches when it is within ``CONVENTION_RTOL`` (relative) plus the curve's last
one-epoch change (the curve's last value precedes the last update, the model follows it). A
curve that matches none was not full-batch gradient descent on one of these losses
(minibatches, momentum or Adam, weight decay, another loss): it cannot be compared epoch by
epoch with a prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import time
import warnings

import numpy as np
import torch
import xarray as xr

from .._util.arrays import to_numpy
from .._util.checks import check_int, check_real
from ..errors import DivergenceError, InputError, ReluProbeWarning, ValueInputError, describe

__all__ = [
    "CONVENTION_RTOL",
    "LOSS_CONVENTIONS",
    "loss_convention",
    "replays_gradient_descent",
    "REPLAY_STEPS",
    "REPLAY_RTOL",
    "model_outputs",
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

#: Loss conventions (module docstring): name -> (description, factor ``c(P, m)``).
LOSS_CONVENTIONS: dict[str, tuple[str, Any]] = {
    "sum": ("½ Σ_μ ‖y_μ − f(x_μ)‖² (summed)", lambda P, m: 1.0),
    "sum_squares": ("Σ_μ ‖y_μ − f(x_μ)‖² (summed, no ½)", lambda P, m: 2.0),
    "mean": ("½ Σ_μ ‖y_μ − f(x_μ)‖² / P (mean over samples)", lambda P, m: 1.0 / P),
    "mean_squares": ("Σ_μ ‖y_μ − f(x_μ)‖² / P (mean over samples, no ½)", lambda P, m: 2.0 / P),
    "mse": ("Σ_μ ‖y_μ − f(x_μ)‖² / (P m) (torch MSELoss, mean over elements)", lambda P, m: 2.0 / (P * m)),
}

#: Relative tolerance of a convention match (module docstring): 2 %, well inside the factor
#: of at least 2 between any two conventions of :data:`LOSS_CONVENTIONS` (for ``P, m ≥ 2``).
CONVENTION_RTOL = 0.02


def divergence_limit(L0: float) -> float:
    """The loss above which a curve starting at *L0* has diverged."""
    return DIVERGENCE_FACTOR * max(float(L0), 1.0)


def check_divergence(loss: Any, L0: float, *, lr: float, what: str, force: bool = False) -> None:
    """Raise a :class:`~relu_probe.errors.DivergenceError` naming ``lr`` when *loss* (1-D, one
    value per epoch) holds a non-finite value or one above :func:`divergence_limit` (with
    *force*: in any case, at its last epoch when none is), naming the first such epoch."""
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(loss) | (loss > divergence_limit(L0)))
    if bad.size == 0 and not force:
        return
    first = int(bad[0]) if bad.size else max(loss.size - 1, 0)
    value = float(loss[first]) if loss.size else float("nan")
    raise DivergenceError(
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
    model: Any = None,
    X: Any = None,
    Y: Any = None,
    initial_model: Any = None,
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
    model, X, Y : optional
        The trained torch model whose training loss ``loss_a`` is, with its inputs and
        targets: ``loss_a``'s convention is checked first (:func:`loss_convention`, module
        docstring). A scaled (e.g. mean) loss is divided by its factor ``c`` before the
        comparison — ``loss_b`` must then be a prediction at the summed loss's rate
        ``c · lr`` (``τ`` rescaled); a curve that matches no convention is compared anyway
        but with a :class:`~relu_probe.errors.ReluProbeWarning` that an epoch-by-epoch
        comparison is not meaningful.
    initial_model : torch.nn.Module, optional
        With ``model``: the untrained model, to check ``loss_a``'s first value as well.

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
    convention = None
    if model is not None or X is not None or Y is not None or initial_model is not None:
        if model is None or X is None or Y is None:
            raise InputError("checking `loss_a`'s convention needs `model`, `X` and `Y` together.")
        convention = loss_convention(a, Y, model_outputs(model, X),
                                     initial_outputs=None if initial_model is None else model_outputs(initial_model, X))
        if convention["convention"] is None:
            warnings.warn(
                f"`loss_a` (last value {a[-1]:.4g}) matches none of the loss conventions of full-batch "
                f"gradient descent (½Σ‖Y − f(X)‖² of the model is {convention['summed_end']:.4g}, or that "
                "scaled by a mean): an epoch-by-epoch comparison is not meaningful (minibatches, momentum "
                "or Adam, weight decay, or another loss).",
                ReluProbeWarning,
                stacklevel=2,
            )
        else:
            a = a / convention["factor"]
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
        **({} if convention is None else {"convention": convention}),
    }


def model_outputs(model: Any, X: Any) -> np.ndarray:
    """``f(X)`` of a torch model as a (sample, output) float64 array: one forward pass without
    autograd, in eval mode, the model's train mode restored afterwards."""
    was_training = bool(getattr(model, "training", False))
    param = next(iter(model.parameters()), None)
    X_t = torch.as_tensor(np.asarray(to_numpy(X)))
    if param is not None:
        X_t = X_t.to(device=param.device, dtype=param.dtype if param.is_floating_point() else X_t.dtype)
    try:
        model.eval()
        with torch.no_grad():
            out = model(X_t)
    finally:
        model.train(was_training)
    arr = np.asarray(to_numpy(out), dtype=np.float64)
    return arr.reshape(arr.shape[0], -1)


#: Steps of training replayed at most by :func:`replays_gradient_descent` (a few hundred
#: forward/backward passes over the samples; the early steps are where optimisers differ most).
REPLAY_STEPS = 200
#: Seconds a replay may take (:func:`replays_gradient_descent`): it stops at the logged steps
#: reached by then (a large network on many samples replays fewer steps, or none).
REPLAY_BUDGET_S = 10.0
#: Relative tolerance of a replayed loss: the same float arithmetic in another order (a mean
#: reduction against a scaled sum) differs by rounding only, far below 1 %; momentum, Adam or a
#: minibatch step move the early loss by much more.
REPLAY_RTOL = 0.01


def replays_gradient_descent(
    initial: Any,
    X: Any,
    Y: Any,
    loss: Any,
    *,
    lr: float,
    factor: float,
    steps: Any = None,
) -> dict[str, Any]:
    r"""Whether full-batch gradient descent reproduces a training loop's first logged losses.

    From a copy of the *initial* model, ``θ_{j+1} = θ_j − lr ∇_θ L_u(θ_j)`` with
    ``L_u = factor · ½ Σ_μ ‖y_μ − f_θ(x_μ)‖²`` (the loop's loss in its convention,
    :func:`loss_convention`) is stepped up to the logged steps ``0 < s ≤ max(REPLAY_STEPS,
    s_1)`` (``s_1`` the first logged step after 0; none beyond ``10 × REPLAY_STEPS``; the replay
    stops after :data:`REPLAY_BUDGET_S` seconds, at the logged steps reached), and the
    replayed ``L_u(θ_s)`` is compared with each logged value, allowing the initial copy to have
    been taken one update before or after the first logged loss (one shift for every value).
    A value matches within :data:`REPLAY_RTOL`. Momentum, Adam, minibatches, weight decay or
    dropout do not reproduce once they move the loss by more than that within the replayed
    steps: a loss that only looks like ``c · ½ Σ ‖y − f‖²`` at its ends is told apart from one
    that was descended.

    Returns
    -------
    dict
        ``reproduced`` (True / False, or None when no logged step could be replayed),
        ``checked`` (the steps compared) and ``worst`` (the largest relative difference at the
        best shift).
    """
    import copy

    curve = np.asarray(loss, dtype=np.float64).reshape(-1)
    at = np.arange(curve.size) if steps is None else np.asarray(steps, dtype=np.int64).reshape(-1)
    later = at[at > 0]
    if later.size == 0 or later[0] > 10 * REPLAY_STEPS:
        return {"reproduced": None, "checked": [], "worst": float("nan")}
    horizon = max(REPLAY_STEPS, int(later[0]))
    chosen = (at > 0) & (at <= horizon)
    check_steps, observed = at[chosen], curve[chosen]
    model = copy.deepcopy(initial)
    params = [p for p in model.parameters() if p.requires_grad]
    param = params[0] if params else None
    X_t = torch.as_tensor(np.asarray(to_numpy(X)))
    if param is not None:
        X_t = X_t.to(device=param.device, dtype=param.dtype if param.is_floating_point() else X_t.dtype)
    Y_t = torch.as_tensor(np.asarray(to_numpy(Y), dtype=np.float64))
    replayed = np.full(int(check_steps[-1]) + 2, np.nan)
    started, reached = time.perf_counter(), 0
    with torch.enable_grad():
        for j in range(replayed.size):
            if j > 1 and time.perf_counter() - started > REPLAY_BUDGET_S:
                break
            out = model(X_t)
            out = out.reshape(out.shape[0], -1)
            target = Y_t.reshape(out.shape).to(dtype=out.dtype, device=out.device)
            value = factor * 0.5 * ((out - target) ** 2).sum()
            replayed[j] = float(value.detach())
            reached = j + 1
            if j + 1 == replayed.size:
                break
            grads = torch.autograd.grad(value, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p.sub_(lr * g)
    keep = check_steps + 1 < reached  # every shift below can be compared
    if not keep.any():
        return {"reproduced": None, "checked": [], "worst": float("nan")}
    check_steps, observed = check_steps[keep], observed[keep]
    best = float("inf")
    for shift in (0, -1, 1):  # the copy taken with the first logged loss, one update after, one before
        index = check_steps - shift
        if index.min() < 0 or index.max() >= reached:
            continue
        r = replayed[index]
        rel = np.abs(observed - r) / np.maximum(np.maximum(np.abs(observed), np.abs(r)), 1e-300)
        best = min(best, float(rel.max()))
    return {"reproduced": bool(best <= REPLAY_RTOL), "checked": [int(s) for s in check_steps], "worst": best}


def loss_convention(
    loss: Any,
    Y: Any,
    outputs: Any,
    *,
    initial_outputs: Any = None,
    steps: Any = None,
    final_step: int | None = None,
) -> dict[str, Any]:
    """Which convention of :data:`LOSS_CONVENTIONS` the loss curve *loss* follows (module
    docstring), checked against ``½ Σ ‖Y − outputs‖²`` of the trained model (last value) and,
    with *initial_outputs*, of the untrained one (first value).

    Parameters
    ----------
    loss : array-like (n,)
        Loss values, one per epoch (the default), or taken at *steps* (e.g. a training
        monitor's snapshots).
    Y, outputs : array-like (P, m)
        Targets and the trained model's outputs.
    initial_outputs : array-like (P, m), optional
        The untrained model's outputs; the first value is checked against them when it was
        taken at step 0.
    steps : array-like of int (n,), optional
        The steps at which the values were taken (increasing); default ``0 … n−1``.
    final_step : int, optional
        The last step of training (the trained model follows it); default ``steps[-1]``.

    Each value may precede or follow the update of its step, and the last one precedes
    ``final_step − steps[-1]`` more updates: the match tolerates the curve's per-step change
    there (``|Δloss| / Δstep`` between the two values at that end) times the steps in between
    plus one, on top of :data:`CONVENTION_RTOL`. With one value per epoch that is the last
    (first) one-epoch change.

    Returns
    -------
    dict
        ``convention`` (name, or None when none matches), ``factor`` (``c``; NaN when none
        matches), ``description``, ``checked`` (which values were checked), ``summed_end``
        (``½ Σ ‖Y − f(X)‖²`` of the trained model) and ``last`` (the curve's last value).
    """
    curve = as_loss_curve("loss_curve", loss)
    Yn = np.asarray(to_numpy(Y), dtype=np.float64)
    Yn = Yn.reshape(Yn.shape[0], -1)
    out = np.asarray(outputs, dtype=np.float64).reshape(Yn.shape[0], -1)
    if out.shape != Yn.shape:
        raise ValueInputError(
            f"the model's outputs have shape {out.shape} but `Y` has shape {Yn.shape}; the loss "
            "convention cannot be checked."
        )
    P, m = Yn.shape
    end = 0.5 * float(((Yn - out) ** 2).sum())
    start = None
    if initial_outputs is not None:
        init = np.asarray(initial_outputs, dtype=np.float64).reshape(Yn.shape)
        start = 0.5 * float(((Yn - init) ** 2).sum())
    at = np.arange(curve.size) if steps is None else np.asarray(steps, dtype=np.int64).reshape(-1)
    if at.shape != curve.shape or (at.size > 1 and np.any(np.diff(at) <= 0)) or (at.size and at[0] < 0):
        raise ValueInputError(
            f"`steps` must be {curve.size} increasing non-negative steps, one per loss value; got {describe(steps)}."
        )
    end_step = int(at[-1]) if final_step is None else int(final_step)
    if end_step < at[-1]:
        raise ValueInputError(f"`final_step` ({end_step}) precedes the last loss value's step ({int(at[-1])}).")
    if start is not None and at[0] != 0:
        start = None  # the first value was not taken at initialisation
    # the model may be snapshotted before or after the update of the step whose loss is logged,
    # and the last value may precede more updates: the per-step change at each end is tolerated
    rate_end = abs(float(curve[-1] - curve[-2])) / float(at[-1] - at[-2]) if curve.size > 1 else 0.0
    rate_start = abs(float(curve[1] - curve[0])) / float(at[1] - at[0]) if curve.size > 1 else 0.0
    step = rate_end * (end_step - int(at[-1]) + 1)
    first_step = rate_start
    checked = "last value" + (" and first value" if start is not None else "")
    for name, (description, factor) in LOSS_CONVENTIONS.items():
        c = float(factor(P, m))
        ok = abs(curve[-1] - c * end) <= CONVENTION_RTOL * max(abs(curve[-1]), c * end) + step
        if ok and start is not None:
            ok = abs(curve[0] - c * start) <= CONVENTION_RTOL * max(abs(curve[0]), c * start) + first_step
        if ok:
            return {"convention": name, "factor": c, "description": description, "checked": checked,
                    "summed_end": end, "last": float(curve[-1])}
    return {"convention": None, "factor": float("nan"), "description": "none of the known conventions",
            "checked": checked, "summed_end": end, "last": float(curve[-1])}
