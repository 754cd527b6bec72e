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
Enough epochs for every mode that matters to come within ``ε = STRENGTH_RTOL`` of its
asymptote under Eq. 1 of the paper (the logistic law, discrete time), from the pathways'
initial strength ``π0``:

.. math::

    t_{pα} = \frac{\ln\big((1 − ε)\,\max(s_{pα}/(d_{pα} π_{0,p}) − 1,\ 1)/ε\big)}{2 \ln(1 + η P s_{pα})},
    \qquad T = \lceil \max_{pα} t_{pα} \rceil + 1

with ``s_{pα}``, ``d_{pα}`` the modes of the gated correlations
(:mod:`relu_probe.reln.race`). Pathways open on every sample race on ``Y``; the others on
the residual ``Y − Ŷ*_shared`` of the shared pathways' least-squares fit, the part of the task
that needs the gates (it is learned last, so its modes set the end of learning). A one-layer
direct path (an output bias) relaxes as ``(1 − η P d)^t`` from 0:
``t = ln(1/ε)/(−ln(1 − η P d))``. A mode *matters* when its share of the loss reduction,
``½ P s²/d``, is at least ``ε² L0``: within ``ε`` of its asymptote a mode leaves a loss gap of
``ε²`` of its share, so a smaller mode is below the tolerance altogether. ``T`` is capped at
:data:`MAX_EPOCHS` (with a warning: pass ``epochs=`` to run longer).

Each default is recorded in :attr:`Schedule.notes` (and the ``attrs`` / notes of the caller):
the time axis of the predictions is in epochs *of the chosen rate*.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .._util.checks import check_int, check_real
from ..errors import ReluProbeWarning, ValueInputError
from .correlations import gated_correlations, modes
from .spec import PathwaySpec, with_constant
from .stability import lr_refusal, max_stable_lr, never_converges_lr, optimal_outputs

__all__ = ["LR_FRACTION", "STRENGTH_RTOL", "MAX_EPOCHS", "Schedule", "StabilityProblem", "stability_problem",
           "default_lr", "convergence_epochs", "resolve_schedule"]

#: Default learning rate as a share of the largest stable one (module docstring).
LR_FRACTION = 0.05

#: Relative distance of every mode that matters from its asymptote at the default epochs.
STRENGTH_RTOL = 0.01

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


def _mode_times(X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray, pi0: np.ndarray,
                linear: np.ndarray, lr: float, L0: float, eps: float) -> list[float]:
    """Eq. 1's epochs for each mode that matters of the paths (module docstring)."""
    if G.shape[0] == 0 or not np.any(T):
        return []
    P = X.shape[0]
    syx, sx = gated_correlations(X, T, G, masks)
    _, s, _, d = modes(syx, sx, min(T.shape[1], X.shape[1]))
    times = []
    for p in range(G.shape[0]):
        for s_a, d_a in zip(s[p], d[p]):
            if s_a <= 0 or d_a <= 0 or 0.5 * P * s_a * s_a / d_a < eps * eps * L0:
                continue
            if linear[p]:
                contraction = 1.0 - lr * P * d_a
                times.append(math.log(1.0 / eps) / -math.log(contraction) if 0 < contraction < 1 else 1.0)
                continue
            ratio = max(s_a / (d_a * max(float(pi0[p]), 1e-300)) - 1.0, 1.0)
            times.append(math.log((1.0 - eps) * ratio / eps) / (2.0 * math.log1p(lr * P * s_a)))
    return times


def convergence_epochs(problem: StabilityProblem, Y: np.ndarray, pi0: np.ndarray, lr: float, *,
                       eps: float = STRENGTH_RTOL) -> tuple[int, int]:
    """``(T, T_uncapped)``: the epochs of the module docstring at rate *lr* from the paths'
    initial strengths *pi0* (one per path; a direct path's is ignored)."""
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    X, G, masks, shared, linear = problem.X, problem.G, problem.masks, problem.shared, problem.linear
    pi0 = np.asarray(pi0, dtype=np.float64)
    L0 = 0.5 * float(np.vdot(Y, Y))
    if shared.any() and (~shared).any():
        Yh = optimal_outputs(X, Y, G[shared], masks[shared])
        targets = [(Y, shared), (Y - Yh, ~shared)]
    else:
        targets = [(Y, np.ones(G.shape[0], dtype=bool))]
    times = [1.0]
    for T, rows in targets:
        times += _mode_times(X, T, G[rows], masks[rows], pi0[rows], linear[rows], lr, L0, eps)
    raw = int(math.ceil(max(times))) + 1
    return min(raw, MAX_EPOCHS), raw


def _pi0_of_paths(problem: StabilityProblem, pi0: np.ndarray) -> np.ndarray:
    pi0 = np.asarray(pi0, dtype=np.float64)
    extra = problem.G.shape[0] - pi0.shape[0]
    return np.append(pi0, np.zeros(extra)) if extra > 0 else pi0


def resolve_schedule(problem: StabilityProblem | None, Y: np.ndarray, *, lr: float | None, epochs: int | None,
                     pi0: np.ndarray | None, check_lr: bool = True, what: str = "") -> Schedule:
    """The learning rate and epochs of a run: the user's (``lr`` checked at once against the
    largest stable rate, refused at or above it unless ``check_lr=False``), or the defaults
    of the module docstring, each noted.

    *problem* is None for the networks the bound does not cover (deep pathways, a trunk, a
    layered GDLN): a given ``lr`` is then not checked, and no default can be derived (one
    clear error asks for ``lr`` and ``epochs``). *pi0*: the pathways' initial strengths
    (needed only to derive ``epochs``). *what* names the run in the notes.
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
    if lr is None or check_lr:
        bound = max_stable_lr(problem.X, Y, problem.G, problem.masks, own=problem.own, linear=problem.linear)
    if lr is not None and check_lr and lr >= bound:
        never = never_converges_lr(problem.X, Y, problem.G, problem.masks, own=problem.own, linear=problem.linear)
        raise lr_refusal(lr, bound, never)
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
        epochs, raw = convergence_epochs(problem, Y, _pi0_of_paths(problem, pi0), lr)
        epochs_source = "derived"
        notes.append(f"{label}epochs not given: {epochs}, enough for every mode that matters to come within "
                     f"{100 * STRENGTH_RTOL:g} % of its asymptote at lr {lr:.4g} (Eq. 1 from the initial state)"
                     + (f"; capped from {raw} at {MAX_EPOCHS}" if raw > epochs else ""))
        if raw > epochs:
            warnings.warn(
                f"{label}the epochs to convergence derived from the data ({raw}) exceed {MAX_EPOCHS}; running "
                f"{MAX_EPOCHS}, which may stop before convergence. Pass `epochs=` to run longer.",
                ReluProbeWarning, stacklevel=3,
            )
    return Schedule(float(lr), int(epochs), bound, lr_source, epochs_source, tuple(notes))
