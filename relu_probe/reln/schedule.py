r"""The learning rate and the number of epochs, from the data, when the user gives none.

Nothing here is fitted to a task: both come from the gating's own least-squares problem.
The paper's values (``lr = 1e-3``, 8001 epochs; arXiv 2503.06181) are available only on
request, as :data:`relu_probe.tasks.PAPER_LR` and :data:`relu_probe.tasks.PAPER_EPOCHS`.

Learning rate
-------------
``lr = LR_FRACTION × 2/λ_bal`` with ``2/λ_bal`` the largest stable learning rate
(:func:`relu_probe.reln.stability.max_stable_lr`, an output bias's direct path included).
At that rate the stiffest direction of the converged network, curvature ``λ_bal``, contracts
by ``1 − η λ_bal = 1 − 2 f`` per epoch against gradient flow's ``e^{−2f}``; its per-epoch
rate ``−ln(1 − 2f)`` is within ``≈ f`` (relative) of the flow's ``2f``, and every slower
direction closer. ``f = 0.05`` keeps gradient descent within about 5 % of gradient flow in
its fastest direction (the predictions describe the discrete steps exactly; the fraction only
keeps the default run in the regime the theory's continuous-time picture describes).

Epochs
------
Enough epochs for the loss to come within ``δ = LOSS_RTOL`` of its asymptote ``L∞``,
relative to the learnable loss ``L0 − L∞``: ``T = min{t : L(t) − L∞ ≤ δ (L0 − L∞)} + 1``.
``L∞`` is computed from the data (:func:`asymptote`: the gating's least-squares loss, or the
residual rule's two-stage fit). Where the exact dynamics cover the network (one gated layer
without biases, :mod:`relu_probe.reln.exact`), ``L(t)`` is theirs, from the initial state,
run over horizons starting at twice the estimate below. Otherwise (biases) ``T`` is that
estimate: the same criterion in the mode picture of the paper (Eq. 1, the logistic law in discrete
time) from the pathways' initial strengths ``π0``. Mode ``α`` (singular value ``s_α``,
``d_α``, asymptote ``σ_α = s_α/d_α``) holds the share ``w_α = ½ P s_α²/d_α`` of the loss and
leaves ``w_α (1 − π_α(t)/σ_α)²`` of it at epoch ``t``:

.. math::

    \frac{π_α(t)}{σ_α} = \frac{1}{1 − (1 − σ_α/π_0)\, e^{−r_α t}},\quad r_α = 2\ln(1 + η P s_α),
    \qquad T = \min\Big\{t : \frac{\sum_α w_α (1 − π_α(t)/σ_α)^2}{\sum_α w_α} \le δ\Big\} + 1

(found by bisection; the remaining share falls monotonically). The modes are those of the
gated correlations (:mod:`relu_probe.reln.race`): pathways open on every sample race on ``Y``;
the others on the residual ``Y − Ŷ*_shared`` of the shared pathways' least-squares fit, the
part of the task that needs the gates (it is learned last, so its modes set the end of
learning; it ignores the coupling between pathways, and is off by a factor of order one —
on the paper's 3-context task it is 1.5× the exact dynamics' epoch, on a random gated task
0.85× of it). A one-layer
direct path (an output bias) relaxes from 0 as ``π/σ = 1 − (1 − η P d)^t``. ``T`` is capped at
:data:`MAX_EPOCHS`, with a warning (pass ``epochs=`` to run longer): data whose small input
directions carry a real share of the loss (e.g. sklearn's digits) can need millions of epochs
to converge at a stable rate.

Each default is recorded in :attr:`Schedule.notes` (and the ``attrs`` / notes of the caller):
the time axis of the predictions is in epochs *of the chosen rate*.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._util.checks import check_int, check_real
from ..errors import ReluProbeWarning, ValueInputError
from .correlations import gated_correlations, modes
from .spec import PathwaySpec, with_constant
from .stability import check_learning_rate, max_stable_lr, optimal_outputs

__all__ = ["LR_FRACTION", "LOSS_RTOL", "MAX_EPOCHS", "Schedule", "StabilityProblem", "stability_problem",
           "default_lr", "convergence_epochs", "measured_epochs", "asymptote", "resolve_schedule"]

#: Default learning rate as a share of the largest stable one (module docstring).
LR_FRACTION = 0.05

#: Share of the learnable loss left at the default epochs (module docstring).
LOSS_RTOL = 1e-3

#: Longest time the search for the epochs looks at (beyond it: "more than this").
HORIZON = 1e9

#: Most epochs the default runs (module docstring).
MAX_EPOCHS = 100_000


@dataclass(frozen=True)
class StabilityProblem:
    """The one-gated-layer problem the bound and the defaults are computed on: the design
    (with the constant input when there are biases), the effective gates and design input
    masks of every path, the direct path of an output bias last (``linear``: a one-layer path,
    gate 1, reading only the constant input; counted with the shared pathways), and ``own``:
    the paths that follow their own error (the residual rule's shared ones; None: joint)."""

    X: np.ndarray
    G: np.ndarray
    masks: np.ndarray
    shared: np.ndarray
    linear: np.ndarray
    own: np.ndarray | None


def paths_of(spec: PathwaySpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(G, masks, shared, linear)`` of *spec*'s pathways on the design inputs, with an
    output bias's direct path appended last (module docstring of :mod:`relu_probe.reln.spec`)."""
    G, masks = spec.gates, spec.design_inputs.astype(np.float64)
    shared, linear = spec.shared.copy(), np.zeros(spec.n_pathways, dtype=bool)
    if spec.output_bias:
        if not spec.hidden_bias:  # a constant input column that only the direct path reads
            masks = np.hstack([masks, np.zeros((masks.shape[0], 1))])
        direct = np.zeros((1, masks.shape[1]))
        direct[0, -1] = 1.0  # the constant input (the design's last column)
        G = np.vstack([G, np.ones((1, G.shape[1]))])
        masks = np.vstack([masks, direct])
        shared, linear = np.append(shared, True), np.append(linear, True)
    return G, masks, shared, linear


def design_of(spec: PathwaySpec, X: np.ndarray) -> np.ndarray:
    """The inputs the paths read: *X* with the constant input when there is any bias."""
    return with_constant(X) if (spec.output_bias and not spec.hidden_bias) else spec.design(X)


def stability_problem(spec: PathwaySpec, X: np.ndarray, rule: str) -> StabilityProblem:
    """The :class:`StabilityProblem` of a one-gated-layer *spec* trained by *rule*."""
    G, masks, shared, linear = paths_of(spec)
    residual = rule == "residual" and bool(spec.shared.any()) and bool((~spec.shared).any())
    return StabilityProblem(design_of(spec, X), G, masks, shared, linear, shared if residual else None)


@dataclass(frozen=True)
class Schedule:
    """A learning rate and a number of epochs, with where each came from.

    ``lr_bound`` is ``2/λ_bal`` (nan when not computed); ``notes`` say what was derived and why.
    """

    lr: float
    epochs: int
    lr_bound: float
    lr_source: str
    epochs_source: str
    notes: tuple[str, ...]

    def attrs(self) -> dict[str, object]:
        """The entries a result's ``attrs`` record."""
        return {"lr_source": self.lr_source, "epochs_source": self.epochs_source,
                "schedule_notes": " | ".join(self.notes)}


def default_lr(bound: float) -> float:
    """``LR_FRACTION × bound`` (module docstring); refuses a bound that is not finite."""
    if not math.isfinite(bound) or bound <= 0:
        raise ValueInputError(
            "`lr` cannot be derived from these data: the targets hold nothing the gating can learn, so the "
            f"largest stable learning rate is {bound:g}; pass `lr=`."
        )
    return LR_FRACTION * bound


def _modes_of(X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray, pi0: np.ndarray,
              linear: np.ndarray) -> np.ndarray:
    """``(s, d, π0, linear)`` rows of every mode with ``s, d > 0`` of the paths racing on *T*."""
    if G.shape[0] == 0 or not np.any(T):
        return np.zeros((0, 4))
    syx, sx = gated_correlations(X, T, G, masks)
    _, s, _, d = modes(syx, sx, min(T.shape[1], X.shape[1]))
    rows = [(s_a, d_a, float(pi0[p]), float(linear[p]))
            for p in range(G.shape[0]) for s_a, d_a in zip(s[p], d[p]) if s_a > 0 and d_a > 0]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _remaining(table: np.ndarray, lr: float, P: int, t: float) -> float:
    """``Σ_α w_α (1 − π_α(t)/σ_α)² / Σ_α w_α`` (module docstring), ``w_α = ½ P s_α²/d_α``."""
    s, d, pi0, lin = table.T
    w = 0.5 * P * s * s / d
    sigma = s / d
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        r = 2.0 * np.log1p(lr * P * s)
        start = np.maximum(pi0, 1e-300)
        frac = 1.0 / (1.0 - (1.0 - sigma / start) * np.exp(-r * t))  # Eq. 1: π(t)/σ
        contraction = np.abs(1.0 - lr * P * d)
        frac_lin = 1.0 - np.exp(t * np.log(np.maximum(contraction, 1e-300)))  # from 0: 1 − (1 − ηPd)^t
    frac = np.where(lin > 0, frac_lin, frac)
    gap = np.where(np.isfinite(frac), (1.0 - frac) ** 2, 1.0)
    return float(np.sum(w * gap) / max(float(np.sum(w)), 1e-300))


def convergence_epochs(problem: StabilityProblem, Y: np.ndarray, pi0: np.ndarray, lr: float, *,
                       tol: float = LOSS_RTOL) -> tuple[int, int]:
    """``(T, T_uncapped)``: the epochs of the module docstring at rate *lr* from the paths'
    initial strengths *pi0* (one per path; a direct path's is ignored)."""
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    X, G, masks, shared, linear = problem.X, problem.G, problem.masks, problem.shared, problem.linear
    pi0 = np.asarray(pi0, dtype=np.float64)
    if shared.any() and (~shared).any():
        Yh = optimal_outputs(X, Y, G[shared], masks[shared])
        targets = [(Y, shared), (Y - Yh, ~shared)]
    else:
        targets = [(Y, np.ones(G.shape[0], dtype=bool))]
    table = np.vstack([_modes_of(X, T, G[rows], masks[rows], pi0[rows], linear[rows]) for T, rows in targets])
    P = X.shape[0]
    if table.shape[0] == 0 or _remaining(table, lr, P, 1.0) <= tol:
        return 2, 2
    lo, hi = 1.0, 2.0
    while _remaining(table, lr, P, hi) > tol and hi < HORIZON:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1.0:  # bisection: the remaining share falls monotonically
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _remaining(table, lr, P, mid) > tol else (lo, mid)
    raw = int(math.ceil(hi)) + 1
    return min(raw, MAX_EPOCHS), raw


def asymptote(problem: StabilityProblem, Y: np.ndarray) -> float:
    """``L∞``: the loss gradient descent from a small initialisation settles at — the
    least-squares loss ``L*`` of the gating (joint rule), or, with the residual rule, that of
    the shared paths' fit to ``Y`` followed by the others' fit to its residual."""
    X, G, masks = problem.X, problem.G, problem.masks
    if problem.own is None:
        R = Y - optimal_outputs(X, Y, G, masks)
    else:
        own = problem.own
        R1 = Y - optimal_outputs(X, Y, G[own], masks[own])
        R = R1 - optimal_outputs(X, R1, G[~own], masks[~own])
    return 0.5 * float(np.vdot(R, R))


def measured_epochs(curve: Callable[[float, int], np.ndarray], lr: float, start: int, L0: float, L_inf: float, *,
                    tol: float = LOSS_RTOL) -> int | None:
    """The first epoch + 1 at which the exact loss curve ``curve(lr, H)`` is within
    ``tol (L0 − L∞)`` of ``L∞``, over horizons ``H`` from ``2 × start`` growing 4× up to
    :data:`MAX_EPOCHS`; None when it is not reached by then."""
    H = int(min(MAX_EPOCHS, max(2 * start, 64)))
    while True:
        loss = np.asarray(curve(lr, H), dtype=np.float64)
        hit = np.flatnonzero(loss - L_inf <= tol * max(L0 - L_inf, 0.0))
        if hit.size:
            return int(hit[0]) + 1
        if H >= MAX_EPOCHS:
            return None
        H = int(min(MAX_EPOCHS, 4 * H))


def _pi0_of_paths(problem: StabilityProblem, pi0: np.ndarray) -> np.ndarray:
    pi0 = np.asarray(pi0, dtype=np.float64)
    extra = problem.G.shape[0] - pi0.shape[0]
    return np.append(pi0, np.zeros(extra)) if extra > 0 else pi0


def resolve_schedule(problem: StabilityProblem | None, Y: np.ndarray, *, lr: float | None, epochs: int | None,
                     pi0: np.ndarray | None, check_lr: bool = True, what: str = "",
                     curve: Callable[[float, int], np.ndarray] | None = None) -> Schedule:
    """The learning rate and epochs of a run: the user's (``lr`` checked at once against the
    largest stable rate, refused at or above it unless ``check_lr=False``), or the defaults
    of the module docstring, each noted.

    *problem* is None for the networks the bound does not cover (deep pathways, a trunk, a
    layered GDLN): a given ``lr`` is then not checked, and no default can be derived (one
    clear error asks for ``lr`` and ``epochs``). *pi0*: the pathways' initial strengths
    (needed only to derive ``epochs``). *what* names the run in the notes. *curve*: the
    exact dynamics' loss curve ``curve(lr, epochs)`` of these paths from their initial state
    (:mod:`relu_probe.reln.exact`), which measures the epochs; without it (biases) the mode
    picture's estimate is used.
    """
    if lr is not None:
        lr = check_real("lr", lr, minimum=0.0, strict=True)
    if epochs is not None:
        epochs = check_int("epochs", epochs, minimum=1)
    label = f"{what}: " if what else ""
    if problem is None:
        if lr is None or epochs is None:
            missing = " and ".join(n for n, v in (("`lr`", lr), ("`epochs`", epochs)) if v is None)
            raise ValueInputError(
                f"{label}pass {missing}: the data-derived defaults (the largest stable learning rate and the "
                "epochs to convergence) cover one gated layer of one-hidden-layer pathways without a trunk; "
                f"got none for this network (the paper's values are rp.tasks.PAPER_LR / PAPER_EPOCHS)."
            )
        return Schedule(lr, epochs, float("nan"), "given", "given", ())
    notes: list[str] = []
    bound = float("nan")
    paths = dict(own=problem.own, linear=problem.linear)
    if lr is not None and check_lr:
        bound = check_learning_rate(problem.X, Y, problem.G, problem.masks, lr, **paths)
    elif lr is None:
        bound = max_stable_lr(problem.X, Y, problem.G, problem.masks, **paths)
    lr_source = "given"
    if lr is None:
        lr = default_lr(bound)
        lr_source = "derived"
        notes.append(f"{label}lr not given: {lr:.4g} = {LR_FRACTION:g} × {bound:.4g}, the largest stable learning "
                     "rate of these data (gradient descent within ~5 % of gradient flow in its stiffest direction); "
                     "the time axis is in epochs of this rate — pass `lr=` (your training's) to compare timings")
    epochs_source = "given"
    if epochs is None:
        if pi0 is None:
            raise ValueInputError(f"{label}pass `epochs`: the initial state needed to derive it is unknown.")
        estimate, raw = convergence_epochs(problem, Y, _pi0_of_paths(problem, pi0), lr)
        epochs_source = "derived"
        L0 = 0.5 * float(np.vdot(Y, Y))
        if curve is not None:
            hit = measured_epochs(curve, lr, estimate, L0, asymptote(problem, Y))
            how = (f"the exact dynamics from the initial state, at lr {lr:.4g}, come within {LOSS_RTOL:g} of the "
                   "learnable loss of their asymptote")
            capped = hit is None
            epochs = MAX_EPOCHS if capped else hit
        else:
            how = (f"the mode picture (Eq. 1 from the initial state, at lr {lr:.4g}) leaves under {LOSS_RTOL:g} of "
                   "the learnable loss")
            capped = raw > estimate
            epochs = estimate
        if capped:
            notes.append(f"{label}epochs not given: {MAX_EPOCHS}, the cap — {how} only after more than {MAX_EPOCHS} "
                         f"epochs (the mode picture estimates {raw}), so the run stops before convergence")
        else:
            notes.append(f"{label}epochs not given: {epochs}, where {how}")
        if capped:
            warnings.warn(
                f"{label}the epochs to convergence derived from the data exceed {MAX_EPOCHS} (the mode picture "
                f"estimates {raw}); running {MAX_EPOCHS}, which stops before convergence. Pass `epochs=` to run "
                "longer.",
                ReluProbeWarning, stacklevel=3,
            )
    return Schedule(float(lr), int(epochs), bound, lr_source, epochs_source, tuple(notes))
