"""Which gating learns fastest: ``rp.fastest_reln`` ranks candidate gatings by their predicted
learning speed.

The ranking must see the race on the *live* error from t = 0: early on, the context pathways
also fit the structure the shared pathway has not learned yet, and pathways open on more data
grow faster — a head start that decides which of them take the residual later. The closed
form on the final residual gives, e.g., shared + 2-of-3 and shared + single-context pathways
identical curves. The default ``method="exact"`` therefore runs the exact dynamics of every
candidate (:mod:`relu_probe.reln.exact`); ``"simulate"`` trains each candidate GDLN.

Without candidates the answer is :func:`relu_probe.predict_structure`'s search: the sets that
win the race of every context set (the candidates ranked are that structure and the sets it
raced). With candidates, the union of all their sets races as one more candidate (it tells
which of the sets the data use). Every candidate starts each context set from the same mean
initial state (:class:`relu_probe.reln.predict.ContextSetRace`), so candidates differ only in
their gating.

Ranking: by ``score`` (lower is faster). **Parsimony** is a separate, named tolerance: among
the candidates whose score is within ``parsimony`` (relative) of the best remaining score, the
one with the fewest pathways is ranked first — a pathway that adds no speed is not part of the
fastest ReLN. ``parsimony=0`` ranks by speed alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._util.checks import check_choice, check_int, check_real
from ..data.schema import context_set_label
from ..errors import InputError, describe
from .dynamics import DEFAULT_FRACTIONS, epochs_to_fraction
from .exact import DEFAULT_RTOL
from .gdln import GDLN
from .init import DEFAULT_N_UNITS, init_scales_of
from .predict import DEFAULT_MIN_MASS, ContextSetRace, predict_from, structure_mass
from .race import race_dynamics

__all__ = ["fastest_reln", "cardinality_candidates", "DEFAULT_PARSIMONY"]

#: Candidates within 1 % of the best remaining score are ranked by their number of pathways
#: first (module docstring): closer than the 0.1 % accuracy of the exact dynamics would be
#: noise, and a pathway that buys less than 1 % of speed buys nothing a measurement of a
#: trained network could resolve.
DEFAULT_PARSIMONY = 0.01

#: How each candidate's curve is computed (module docstring).
SEARCH_METHODS = ("exact", "simulate", "race", "closed")


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
    within: Any = None,
    method: str = "exact",
    rule: str = "joint",
    lr: float | None = None,
    epochs: int | None = None,
    network: Any = None,
    init_std: Any = None,
    width: int | None = None,
    init_scale: Any = None,
    hidden: int = 100,
    inputs: str = "auto",
    by: str | float = "mean_loss",
    parsimony: float = DEFAULT_PARSIMONY,
    min_mass: float = DEFAULT_MIN_MASS,
    rtol: float = DEFAULT_RTOL,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int | None = 0,
    as_frame: bool = False,
) -> list[dict[str, Any]] | Any:
    """Rank candidate gatings by how fast their GDLN is predicted to learn ``(X, Y)``.

    Parameters
    ----------
    X, Y : array-like (sample, feature), (sample, output)
    candidates : sequence, optional
        Each candidate is a gating: a list of context sets, or a (pathway, sample) 0/1 array
        whose rows are open on whole contexts. Without candidates: the structure
        :func:`relu_probe.predict_structure` finds and the sets it raced (module docstring).
        With candidates, the union of their sets is ranked too (``is_union``).
    context : array-like (sample,)
        Per-sample context labels.
    within : array-like (sample,), optional
        Item label of every sample (for the initial state from a network).
    method : {"exact", "simulate", "race", "closed"}, default="exact"
        ``"exact"``: the exact dynamics of each candidate from the mean initial state.
        ``"simulate"``: train each candidate :class:`relu_probe.GDLN` (``hidden`` units per
        pathway, weight stds of the same mean state, seed ``seed``). ``"race"``/``"closed"``:
        the mode race / closed form on the final residual — they cannot see the early head
        start and are offered for comparison only.
    rule : {"joint", "residual"}, default="joint"
        Training rule (:class:`relu_probe.GDLN`): ``"joint"``, every pathway follows the total
        error as a ReLU network's units do; ``"residual"``, the paper's code's rule.
    lr, epochs : optional
        Learning rate and number of epochs predicted, the same for every candidate. A given
        ``lr`` is refused at once, before any candidate runs, at or above the largest stable
        rate of any candidate. Default (:mod:`relu_probe.reln.schedule`): the smallest of the
        candidates' derived rates (a share of each one's largest stable rate), and the most
        epochs any candidate needs to converge at that rate; without candidates, those
        :func:`relu_probe.predict_structure` derives. The paper's are ``rp.tasks.PAPER_LR`` /
        ``rp.tasks.PAPER_EPOCHS``.
    network, init_std, width :
        The initial state of every context set (:class:`relu_probe.reln.init.InitRule`): the
        untrained one-hidden-layer ReLU network's own units, or Gaussian weights of std
        ``init_std`` on ``width`` units; default a small initialisation
        (:data:`relu_probe.reln.init.DEFAULT_RELATIVE_INIT`).
    init_scale : float or mapping, optional
        Instead: the weight std of a GDLN with ``hidden`` units per pathway (one value or
        ``{"shared": σ_s, "context": σ_c}``, the full context set being the shared pathway),
        e.g. :data:`relu_probe.tasks.PAPER_INIT_SCALE` for the paper's ReLN.
    hidden : int, default=100
        Hidden units per pathway of each simulated GDLN (``method="simulate"``) and of the
        GDLN whose ``init_scale`` is given.
    inputs : {"auto", "all"}, default="auto"
        ``"auto"``: the full set reads every input, the others only the non-cue inputs.
    by : "mean_loss", "final_loss" or float, default="mean_loss"
        Ranking score (lower is faster): the mean predicted loss over epochs (area under the
        curve), the final loss, or the epoch at which the loss first falls to ``by × L0``.
    parsimony : float, default=0.01
        The parsimony tolerance (module docstring, :data:`DEFAULT_PARSIMONY`).
    min_mass : float, default=0.01
        Without candidates: the pruning threshold of :func:`relu_probe.predict_structure`.
    rtol : float
        Tolerance of the adaptive exact steps.
    fractions : sequence of float
        Fractions of ``L0`` reported in ``epochs_to``.
    seed : int or None, default=0
        ``method="simulate"``: seed of the GDLNs' initial weights.
    as_frame : bool, default=False
        Return a pandas DataFrame (one row per candidate, in rank order) instead of a list.

    Returns
    -------
    list of dict (or DataFrame), fastest first
        Keys: ``rank``, ``candidate`` (tuple of context sets), ``names`` (pathway labels),
        ``n_pathways``, ``is_union``, ``score``, ``mean_loss``, ``final_loss``, ``epochs_to``
        (``{fraction: epoch or None}``), ``loss`` (predicted curve, numpy array) and
        ``mass`` (``{context set: predicted mass}``, :func:`relu_probe.reln.predict.structure_mass`
        of the final maps).

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> ranking = rp.fastest_reln(X, Y, context=coords["context"])   # doctest: +SKIP
    >>> ranking[0]["names"]                                          # doctest: +SKIP
    ['{0,1,2}', '{0,1}', '{0,2}', '{1,2}']
    """
    check_choice("method", method, SEARCH_METHODS)
    check_choice("rule", rule, ["joint", "residual"])
    if lr is not None:
        lr = check_real("lr", lr, minimum=0.0, strict=True)
    if epochs is not None:
        epochs = check_int("epochs", epochs, minimum=1)
    parsimony = check_real("parsimony", parsimony, minimum=0.0)
    hidden = check_int("hidden", hidden, minimum=1)
    if isinstance(by, str):
        check_choice("by", by, ["mean_loss", "final_loss"])
    else:
        by = check_real("by", by, minimum=0.0, strict=True)
    setup = ContextSetRace(X, Y, context, within, inputs, network, init_std, width, DEFAULT_N_UNITS,
                           init_scale=init_scale, hidden=hidden)
    if candidates is None:
        pred = predict_from(setup, lr=lr, epochs=epochs, min_mass=min_mass, rtol=rtol)
        cands = [tuple(pred.contexts), tuple(pred.race["contexts"].values)]
        union = cands[1]
        lr, epochs = float(pred.race.attrs["lr"]), int(pred.race.sizes["epoch"])
    else:
        if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence) or len(candidates) == 0:
            raise InputError(f"`candidates` must be a non-empty list of gatings, got {describe(candidates)}.")
        cands = [setup.candidate(f"candidates[{i}]", c) for i, c in enumerate(candidates)]
        union = tuple(dict.fromkeys(S for c in cands for S in c))
        cands.append(union)
        lr, epochs = _common_schedule(setup, cands, rule=rule, lr=lr, epochs=epochs)
    cands = [tuple(sorted(c, key=lambda S: (-len(S), S))) for c in cands]
    union = tuple(sorted(union, key=lambda S: (-len(S), S)))
    L0 = 0.5 * float(np.vdot(setup.Y, setup.Y))
    results = []
    for cand in dict.fromkeys(cands):
        loss, mass = _curve(setup, cand, method=method, rule=rule, lr=lr, epochs=epochs, hidden=hidden, seed=seed,
                            rtol=rtol)
        results.append({
            "candidate": cand,
            "names": [context_set_label(S) for S in cand],
            "n_pathways": len(cand),
            "is_union": cand == union,
            "score": _score(loss, by, L0),
            "mean_loss": float(loss.mean()),
            "final_loss": float(loss[-1]),
            "epochs_to": {f: epochs_to_fraction(loss, L0, f) for f in fractions},
            "loss": np.asarray(loss),
            "mass": dict(zip(cand, (float(m) for m in mass))),
        })
    ordered = [{"rank": r, **item} for r, item in enumerate(_rank(results, parsimony))]
    return _as_frame(ordered) if as_frame else ordered


def _common_schedule(setup: ContextSetRace, cands: Sequence[tuple[tuple, ...]], *, rule: str, lr: float | None,
                     epochs: int | None) -> tuple[float, int]:
    """One learning rate and one number of epochs for every candidate, before any runs: a given
    ``lr`` checked against every candidate's largest stable rate; else the smallest derived
    rate; the most epochs any candidate needs at that rate (:mod:`relu_probe.reln.schedule`)."""
    if lr is None:
        lr = min(setup.schedule(list(c), rule=rule, lr=None, epochs=1).lr for c in cands)
    else:
        for c in cands:
            setup.schedule(list(c), rule=rule, lr=lr, epochs=1)
    if epochs is None:
        epochs = max(setup.schedule(list(c), rule=rule, lr=lr, epochs=None, check_lr=False).epochs for c in cands)
    return lr, epochs


def _curve(setup: ContextSetRace, sets: tuple[tuple, ...], *, method: str, rule: str, lr: float, epochs: int,
           hidden: int, seed: int | None, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """The predicted loss curve of one candidate and the predicted mass of each of its sets."""
    sets = list(sets)
    state = setup.state(sets)
    G, masks, weights = setup.gates(sets), setup.masks(sets), setup.cell_weights()
    if method == "exact":
        ds = setup.race(sets, lr=lr, epochs=epochs, rule=rule, rtol=rtol, sv_stride=epochs)
        return ds["loss"].values, structure_mass(ds["maps"].values, G, weights)
    if method == "simulate":
        model = GDLN(G, hidden=hidden, init_scale=init_scales_of(state, hidden), inputs=masks, rule=rule, lr=lr,
                     epochs=epochs, seed=seed, sv_stride=max(epochs, 1)).fit(setup.X, setup.Y)
        return model.loss_curve_, structure_mass(model.maps_.values, G, weights)
    ds = race_dynamics(setup.X, setup.Y, G, lr=lr, epochs=epochs, init=state, rule=rule, method=method,
                       inputs=masks, d_scale="overlap" if (rule == "residual" and method == "closed") else None)
    top = ds["singular_values"].isel(epoch=-1).max("mode").values
    raw = top * (G @ weights)
    return ds["loss"].values, raw / raw.sum() if raw.sum() > 0 else raw


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


def _rank(results: list[dict[str, Any]], parsimony: float) -> list[dict[str, Any]]:
    """Order by score; within ``parsimony`` (relative) of the best remaining score prefer
    fewer pathways."""
    remaining = sorted(results, key=lambda r: r["score"])
    out = []
    while remaining:
        best = remaining[0]["score"]
        bound = best + parsimony * abs(best) if np.isfinite(best) else best
        close = [r for r in remaining if r["score"] <= bound]
        pick = min(close, key=lambda r: (r["n_pathways"], r["score"]))
        out.append(pick)
        remaining = [r for r in remaining if r is not pick]
    return out
