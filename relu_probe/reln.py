"""The ReLN: the gated deep linear network whose gates are the pathways a ReLU network uses
(Jarvis, Klein, Rosman & Saxe, *Make Haste Slowly*, ICLR 2025), and the search for the
gating structure that learns fastest.

``ReLN.from_pathways`` turns a :class:`relu_probe.Pathways` result into a GDLN with one
pathway per discovered context set (pathways below ``min_mass`` dropped), the shared pathway
reading every input and the others only the inputs that vary within a context (the paper's
rule; cue inputs are detected from the data). It trains with the paper's ``"residual"`` rule
by default.

``fastest_reln`` ranks candidate gatings by their predicted learning speed. The ranking must
see the race on the *live* residual from t = 0: early on, the context pathways also fit the
structure the shared pathway has not learned yet, and pathways open on more data grow faster
— a head start that decides which of them take the residual later. The closed form on the
final residual gives, e.g., shared + 2-of-3 and shared + single-context pathways identical
curves. The default ``method="live"`` therefore integrates exact gradient descent of the
pathway maps from the mean initial state (:func:`relu_probe.race.gram_simulate`);
``"simulate"`` trains each candidate GDLN.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ._gates import check_xy, cue_inputs, resolve_gates, sample_groups
from ._validation import check_choice, check_int, check_real
from .dynamics import DEFAULT_FRACTIONS, epochs_to_fraction
from .errors import InputError, ValueInputError, describe
from .gdln import GDLN
from .race import race_dynamics

__all__ = ["ReLN", "fastest_reln", "PAPER_INIT_SCALE", "cardinality_candidates"]

#: The paper's ReLN initialisation (``gdln3.py``): weight std 10 × 0.0005/700 for the shared
#: pathway and 20 × 0.0005/700 for the context pathways, 100 hidden units each.
PAPER_INIT_SCALE: dict[str, float] = {"shared": 0.005 / 700, "context": 0.01 / 700}

#: Pathways below this share of the recorded mass are left out of a ReLN by default.
DEFAULT_MIN_MASS = 0.05


class ReLN(GDLN):
    """A GDLN built to imitate a ReLU network: one pathway per discovered gating.

    Same parameters as :class:`relu_probe.GDLN`, with the paper's defaults:
    ``inputs="auto"``, ``rule="residual"``, ``hidden=100`` per pathway and
    ``init_scale=None`` meaning :data:`PAPER_INIT_SCALE`. ``context`` stores per-sample
    context labels used by :meth:`fit` when none are passed.

    Build one from a :class:`relu_probe.Pathways` with :meth:`from_pathways`.

    Attributes
    ----------
    pathway_mass_ : xarray.DataArray or None
        Recorded mass of the kept pathways (``from_pathways`` only), renormalised to 1.
    dropped_ : list of tuple
        Context sets of the pathways left out (below ``min_mass``).
    """

    def __init__(
        self,
        gates: Any,
        *,
        hidden: int | Sequence[Any] = 100,
        depth: int | Sequence[int] = 1,
        init_scale: Any = None,
        inputs: Any = "auto",
        rule: str = "residual",
        shared: Any = None,
        trunk: Sequence[int] | None = None,
        trunk_init_scale: Any = None,
        lr: float = 1e-3,
        epochs: int = 8001,
        sv_stride: int = 10,
        seed: int | None = 0,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        progress: bool | None = None,
        context: Any = None,
    ) -> None:
        super().__init__(
            gates,
            hidden=hidden,
            depth=depth,
            init_scale=init_scale,
            inputs=inputs,
            rule=rule,
            shared=shared,
            trunk=trunk,
            trunk_init_scale=trunk_init_scale,
            lr=lr,
            epochs=epochs,
            sv_stride=sv_stride,
            seed=seed,
            dtype=dtype,
            device=device,
            progress=progress,
        )
        self.context = context

    def fit(
        self,
        X: Any,
        Y: Any,
        *,
        context: Any = None,
        lr: float | None = None,
        epochs: int | None = None,
    ) -> ReLN:
        """Train the ReLN (see :meth:`relu_probe.GDLN.fit`); ``context`` defaults to the
        labels stored at construction."""
        ctx = self.context if context is None else context
        super().fit(X, Y, context=ctx, lr=lr, epochs=epochs)
        return self

    def _init_scale_param(self) -> Any:
        return PAPER_INIT_SCALE if self.init_scale is None else self.init_scale

    @classmethod
    def from_pathways(
        cls,
        pw: Any,
        X: Any,
        Y: Any = None,
        *,
        min_mass: float = DEFAULT_MIN_MASS,
        inputs: Any = "auto",
        **params: Any,
    ) -> ReLN:
        """The ReLN whose gates are the pathways of a :class:`relu_probe.Pathways` result.

        Parameters
        ----------
        pw : relu_probe.Pathways
            From :func:`relu_probe.find_pathways` on a recording of ``X`` (same samples, same
            order).
        X : array-like (sample, feature)
            The recorded inputs: used to detect cue inputs and to check the sample count.
        Y : array-like (sample, output), optional
            Targets, only checked against ``X`` here (pass them to :meth:`fit`).
        min_mass : float, default=0.05
            Pathways whose recorded mass ``pw.mass`` is below this are left out (their
            context sets are listed in ``dropped_``).
        inputs : "auto", "all", None or masks, default="auto"
            ``"auto"``: the shared pathway (open on every sample) reads every input; every
            other pathway reads only the inputs that vary within a context — cue inputs,
            constant within each context (groups from the ``pw.by`` sample coord, else from the
            gate patterns), are left to the shared pathway. Ignored with a ``trunk`` (every
            input then goes through the shared trunk).
        **params
            Any other :class:`ReLN` parameter (``hidden``, ``init_scale``, ``rule``, ``lr``,
            ``epochs``, ``seed`` …).

        Returns
        -------
        ReLN
            Unfitted; call ``.fit(X, Y)``.
        """
        for attr in ("mass", "sample_gates"):
            if not hasattr(pw, attr):
                raise InputError(
                    f"`pw` must be a relu_probe.Pathways (from rp.find_pathways), got {describe(pw)}."
                )
        if Y is None:
            from ._gates import as_2d_float

            Xn = as_2d_float("X", X)
        else:
            Xn, _ = check_xy(X, Y)
        min_mass = check_real("min_mass", min_mass, minimum=0.0)
        gates_da = pw.sample_gates
        if not isinstance(gates_da, xr.DataArray) or set(gates_da.dims) != {"pathway", "sample"}:
            raise InputError("`pw.sample_gates` must be a (pathway, sample) DataArray.")
        gates_da = gates_da.transpose("pathway", "sample")
        if gates_da.sizes["sample"] != Xn.shape[0]:
            raise ValueInputError(
                f"`X` has {Xn.shape[0]} samples but the pathways were found on "
                f"{gates_da.sizes['sample']}; pass the recorded inputs in their recorded order."
            )
        mass = np.asarray(pw.mass.values, dtype=np.float64)
        contexts = list(pw.mass["contexts"].values) if "contexts" in pw.mass.coords else [None] * len(mass)
        keep = np.flatnonzero(mass >= min_mass)
        if keep.size == 0:
            raise ValueInputError(
                f"no pathway has mass >= `min_mass` ({min_mass}); largest mass is "
                f"{mass.max() if mass.size else 0.0:.3g}. Lower `min_mass`."
            )
        dropped = [contexts[i] for i in range(len(mass)) if i not in set(keep.tolist())]
        G = gates_da.isel(pathway=keep).astype(np.float64)
        by = getattr(pw, "by", None)
        context = None
        if by is not None and by in gates_da.coords and gates_da[by].dims == ("sample",):
            context = np.asarray(gates_da[by].values)
        if params.get("trunk"):
            inputs = None  # every input goes through the shared trunk
        elif isinstance(inputs, str) and inputs == "auto":
            Gv = G.values
            shared = np.all(Gv == 1.0, axis=1)
            if "shared" in params and params["shared"] is not None:
                from .gdln import _resolve_shared

                shared = _resolve_shared(params["shared"], resolve_gates(G, Xn.shape[0], warn_empty=False))
            cue = cue_inputs(Xn, sample_groups(Gv, context))
            if (~cue).sum() == 0:
                raise ValueInputError(
                    "`inputs='auto'`: every input is constant within each context; pass "
                    "explicit `inputs` masks."
                )
            masks = np.ones((Gv.shape[0], Xn.shape[1]), dtype=bool)
            masks[~shared] = ~cue
            inputs = masks
        params.setdefault("context", context)
        model = cls(G, inputs=inputs, **params)
        kept_mass = mass[keep] / mass[keep].sum()
        model.pathway_mass_ = xr.DataArray(
            kept_mass,
            dims=("pathway",),
            coords={"pathway": np.arange(keep.size), "contexts": ("pathway", _object_array([contexts[i] for i in keep]))},
            name="mass",
        )
        model.dropped_ = dropped
        return model


def _object_array(items: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = list(items)
    return arr


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
    lr: float = 1e-3,
    epochs: int = 8001,
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
        ``init_scale = PAPER_INIT_SCALE`` (the same per pathway for every candidate, so that
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
    if candidates is None:
        if context is None:
            raise ValueInputError(
                "`candidates` is None, so the default family needs per-sample `context=` labels."
            )
        values = tuple(np.unique(np.asarray(context)).tolist())
        if len(values) < 2:
            raise ValueInputError("`context` has a single value; need at least two contexts.")
        candidates = cardinality_candidates(values)
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence) or len(candidates) == 0:
        raise InputError(
            f"`candidates` must be a non-empty list of gatings, got {describe(candidates)}."
        )
    if init is None and init_scale is None:
        init_scale = PAPER_INIT_SCALE
    L0 = 0.5 * float(np.vdot(Yn, Yn))
    results: list[dict[str, Any]] = []
    for i, cand in enumerate(candidates):
        gating = resolve_gates(cand, Xn.shape[0], context, name=f"candidates[{i}]")
        if method == "simulate":
            model = GDLN(
                cand,
                hidden=hidden,
                init_scale=init_scale,
                inputs=inputs,
                rule=rule,
                lr=lr,
                epochs=epochs,
                seed=seed,
                sv_stride=max(epochs, 1),
            ).fit(Xn, Yn, context=context)
            loss = model.loss_curve_
        else:
            ds = race_dynamics(
                Xn,
                Yn,
                cand,
                lr=lr,
                epochs=epochs,
                init=init,
                rule=rule,
                method=method,
                context=context,
                inputs=inputs,
                hidden=hidden,
                init_scale=init_scale,
                d_scale="overlap" if (rule == "residual" and method == "closed") else None,
            )
            loss = ds["loss"].values
        if by == "mean_loss":
            score = float(loss.mean())
        elif by == "final_loss":
            score = float(loss[-1])
        else:
            hit = epochs_to_fraction(loss, L0, float(by))
            score = float("inf") if hit is None else float(hit)
        results.append(
            {
                "candidate": cand,
                "names": list(gating.names),
                "n_pathways": gating.n_pathways,
                "score": score,
                "mean_loss": float(loss.mean()),
                "final_loss": float(loss[-1]),
                "epochs_to": {f: epochs_to_fraction(loss, L0, f) for f in fractions},
                "loss": np.asarray(loss),
            }
        )
    ranked = _rank(results, rtol)
    for r, item in enumerate(ranked):
        item["rank"] = r
    ordered = [{"rank": it["rank"], **{k: v for k, v in it.items() if k != "rank"}} for it in ranked]
    if as_frame:
        import pandas as pd

        rows = []
        for it in ordered:
            row = {k: v for k, v in it.items() if k not in ("epochs_to",)}
            for f, e in it["epochs_to"].items():
                row[f"epochs_to_{f:g}"] = e
            rows.append(row)
        return pd.DataFrame(rows)
    return ordered


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
