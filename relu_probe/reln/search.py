"""Which gating learns fastest: ``rp.fastest_reln`` ranks candidate gatings by their predicted
learning speed.

The ranking must see the race on the *live* residual from t = 0: early on, the context
pathways also fit the structure the shared pathway has not learned yet, and pathways open on
more data grow faster — a head start that decides which of them take the residual later. The
closed form on the final residual gives, e.g., shared + 2-of-3 and shared + single-context
pathways identical curves. The default ``method="live"`` therefore integrates exact gradient
descent of the pathway maps from the mean initial state
(:func:`relu_probe.reln.race.gram_simulate`); ``"simulate"`` trains each candidate GDLN.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._util.arrays import check_xy
from .._util.checks import check_choice, check_int, check_real
from ..errors import InputError, ValueInputError, describe
from ..tasks import PAPER_EPOCHS, PAPER_INIT_SCALE, PAPER_LR
from .dynamics import DEFAULT_FRACTIONS, epochs_to_fraction
from .gating import resolve_gates
from .gdln import GDLN
from .race import race_dynamics

__all__ = ["fastest_reln", "cardinality_candidates"]


def cardinality_candidates(contexts: Sequence[Any]) -> list[list[tuple]]:
    """The structured candidate family: for ``j = 1 … k−1``, the shared set plus every
    ``j``-subset of the ``k`` contexts (``j = 1``: strictly modular; ``j = k−1``: the paper's
    mixed-selective ReLN)."""
    values = tuple(contexts)
    k = len(values)
    return [[values] + list(itertools.combinations(values, j)) for j in range(1, k)]


def fastest_reln(
    X: Any,
    Y: Any,
    candidates: Sequence[Any] | None = None,
    *,
    context: Any = None,
    method: str = "live",
    rule: str = "residual",
    lr: float = PAPER_LR,
    epochs: int = PAPER_EPOCHS,
    init: Any = None,
    hidden: Any = 100,
    init_scale: Any = None,
    inputs: Any = "auto",
    by: str | float = "mean_loss",
    rtol: float = 0.01,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int | None = 0,
    as_frame: bool = False,
) -> list[dict[str, Any]] | Any:
    """Rank candidate gatings by how fast their GDLN is predicted to learn ``(X, Y)``.

    Parameters
    ----------
    X, Y : array-like (sample, feature), (sample, output)
    candidates : sequence, optional
        Each candidate is a gating: a list of context sets (needs ``context``) or a
        (pathway, sample) 0/1 array. Default: :func:`cardinality_candidates` of the contexts
        (shared + all ``j``-sets for ``j = 1 … k−1``).
    context : array-like (sample,), optional
        Per-sample context labels.
    method : {"live", "simulate", "race", "closed"}, default="live"
        ``"live"``: exact reduced gradient descent from the mean initial state, the context
        pathways chasing the shared pathway's live residual
        (:func:`relu_probe.race_dynamics` ``method="live"``). ``"simulate"``: train each
        candidate :class:`relu_probe.GDLN` (seed ``seed``). ``"race"``/``"closed"``: the mode
        race / closed form on the final residual — they cannot see the early head start and
        are offered for comparison only.
    rule : {"residual", "joint"}, default="residual"
    lr, epochs : learning rate and number of epochs predicted.
    init, hidden, init_scale :
        Initial state, as in :func:`relu_probe.race_dynamics`. Default
        ``init_scale =`` :data:`relu_probe.tasks.PAPER_INIT_SCALE` (the same per pathway for every candidate, so that
        candidates differ only in their gating).
    inputs : default="auto"
        Input masks (shared reads all, the others only non-cue inputs).
    by : "mean_loss", "final_loss" or float, default="mean_loss"
        Ranking score (lower is faster): the mean predicted loss over epochs (area under the
        curve), the final loss, or the epoch at which the loss first falls to ``by × L0``.
    rtol : float, default=0.01
        Candidates whose score is within ``rtol`` (relative) of the best remaining one are
        ranked by their number of pathways first: a pathway that adds no speed is not part
        of the fastest ReLN.
    fractions : sequence of float
        Fractions of ``L0`` reported in ``epochs_to``.
    as_frame : bool, default=False
        Return a pandas DataFrame (one row per candidate, in rank order) instead of a list.

    Returns
    -------
    list of dict (or DataFrame), fastest first
        Keys: ``rank``, ``candidate`` (as given), ``names`` (pathway labels),
        ``n_pathways``, ``score``, ``mean_loss``, ``final_loss``, ``epochs_to``
        (``{fraction: epoch or None}``), ``loss`` (predicted curve, numpy array).

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> ranking = rp.fastest_reln(X, Y, context=coords["context"], epochs=3000)  # doctest: +SKIP
    >>> ranking[0]["names"]                                                       # doctest: +SKIP
    ['{0,1,2}', '{0,1}', '{0,2}', '{1,2}']
    """
    Xn, Yn = check_xy(X, Y)
    check_choice("method", method, ["live", "simulate", "race", "closed"])
    check_choice("rule", rule, ["residual", "joint"])
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    epochs = check_int("epochs", epochs, minimum=1)
    rtol = check_real("rtol", rtol, minimum=0.0)
    if isinstance(by, str):
        check_choice("by", by, ["mean_loss", "final_loss"])
    else:
        by = check_real("by", by, minimum=0.0, strict=True)
    candidates = _candidates(candidates, context)
    if init is None and init_scale is None:
        init_scale = PAPER_INIT_SCALE
    L0 = 0.5 * float(np.vdot(Yn, Yn))
    results = []
    for i, cand in enumerate(candidates):
        gating = resolve_gates(cand, Xn.shape[0], context, name=f"candidates[{i}]")
        loss = _predicted_loss(
            Xn, Yn, cand, method=method, context=context, rule=rule, lr=lr, epochs=epochs, init=init, hidden=hidden,
            init_scale=init_scale, inputs=inputs, seed=seed,
        )
        results.append({
            "candidate": cand,
            "names": list(gating.names),
            "n_pathways": gating.n_pathways,
            "score": _score(loss, by, L0),
            "mean_loss": float(loss.mean()),
            "final_loss": float(loss[-1]),
            "epochs_to": {f: epochs_to_fraction(loss, L0, f) for f in fractions},
            "loss": np.asarray(loss),
        })
    ordered = [{"rank": r, **item} for r, item in enumerate(_rank(results, rtol))]
    return _as_frame(ordered) if as_frame else ordered


def _candidates(candidates: Any, context: Any) -> Sequence[Any]:
    """The candidates as given, or the default family of the context labels."""
    if candidates is None:
        if context is None:
            raise ValueInputError("`candidates` is None, so the default family needs per-sample `context=` labels.")
        values = tuple(np.unique(np.asarray(context)).tolist())
        if len(values) < 2:
            raise ValueInputError("`context` has a single value; need at least two contexts.")
        candidates = cardinality_candidates(values)
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence) or len(candidates) == 0:
        raise InputError(f"`candidates` must be a non-empty list of gatings, got {describe(candidates)}.")
    return candidates


def _predicted_loss(X: np.ndarray, Y: np.ndarray, candidate: Any, *, method: str, context: Any, rule: str,
                    lr: float, epochs: int, init: Any, hidden: Any, init_scale: Any, inputs: Any,
                    seed: int | None) -> np.ndarray:
    """The loss curve of one candidate gating: a trained GDLN (``"simulate"``) or the race
    prediction of *method* (the closed form with the ``"overlap"`` divisor of ``d``)."""
    if method == "simulate":
        model = GDLN(candidate, hidden=hidden, init_scale=init_scale, inputs=inputs, rule=rule, lr=lr, epochs=epochs,
                     seed=seed, sv_stride=max(epochs, 1)).fit(X, Y, context=context)
        return model.loss_curve_
    ds = race_dynamics(
        X, Y, candidate, lr=lr, epochs=epochs, init=init, rule=rule, method=method, context=context, inputs=inputs,
        hidden=hidden, init_scale=init_scale, d_scale="overlap" if (rule == "residual" and method == "closed") else None,
    )
    return ds["loss"].values


def _score(loss: np.ndarray, by: str | float, L0: float) -> float:
    """The ranking score (lower is faster): mean or final loss, or the epoch the loss first
    reaches ``by × L0`` (infinite if never)."""
    if by == "mean_loss":
        return float(loss.mean())
    if by == "final_loss":
        return float(loss[-1])
    hit = epochs_to_fraction(loss, L0, float(by))
    return float("inf") if hit is None else float(hit)


def _as_frame(ordered: list[dict[str, Any]]) -> Any:
    """The ranking as a DataFrame: one row per candidate, ``epochs_to`` spread over columns."""
    import pandas as pd

    rows = []
    for item in ordered:
        row = {k: v for k, v in item.items() if k != "epochs_to"}
        for f, e in item["epochs_to"].items():
            row[f"epochs_to_{f:g}"] = e
        rows.append(row)
    return pd.DataFrame(rows)


def _rank(results: list[dict[str, Any]], rtol: float) -> list[dict[str, Any]]:
    """Order by score; within ``rtol`` of the best remaining score prefer fewer pathways."""
    remaining = sorted(results, key=lambda r: r["score"])
    out = []
    while remaining:
        best = remaining[0]["score"]
        bound = best + rtol * abs(best) if np.isfinite(best) else best
        close = [r for r in remaining if r["score"] <= bound]
        pick = min(close, key=lambda r: (r["n_pathways"], r["score"]))
        out.append(pick)
        remaining = [r for r in remaining if r is not pick]
    return out
