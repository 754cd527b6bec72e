r"""Exact learning dynamics of one-hidden-layer gated pathways, independent of the width.

A pathway ``p`` of a one-hidden-layer GDLN (Saxe, Sodhani & Lewallen 2022, arXiv 2207.10430)
has weights ``W1`` (h × n), ``W2`` (m × h), reads the masked inputs ``x̃_{pμ} = m_p ⊙ x_μ``
and is open on sample ``μ`` when ``g_{pμ} = 1``. Full-batch gradient descent at learning rate
``η`` on the summed loss ``L = ½ Σ_μ ‖y_μ − ŷ_μ‖²`` updates ``W2 += η E W1ᵀ``,
``W1 += η W2ᵀ E`` with ``E_p = Σ_μ g_{pμ} r_μ x̃_{pμ}ᵀ`` (``r_μ`` the error the pathway
follows, see *rules*). Stack ``Q = [W1ᵀ; W2]`` ((n+m) × h): one epoch is ``Q ← T Q`` with

.. math::  T = I + η F, \qquad F = \begin{pmatrix} 0 & Eᵀ \\ E & 0 \end{pmatrix},

so the Gram state ``Ω = Q Qᵀ = [[B, Mᵀ], [M, A]]`` (``B = W1ᵀW1``, ``M = W2 W1``,
``A = W2 W2ᵀ``) evolves *exactly* as ``Ω ← T Ω Tᵀ`` whatever ``h`` is (the recursion of
:func:`relu_probe.reln.race.gram_simulate`). ``E`` depends on ``Ω`` only through the maps ``M``.

Reduced state
-------------
From the mean initial state of a wide pathway, ``A = a0 I``, ``B = b0 I``, ``M = 0`` (the
infinite-width limit at fixed ``σ_out² h = a0``, ``σ_in² h = b0``), ``Ω`` only changes inside
the span of the targets' rows (output side, dimension ``r = rank Y``) and of the pathway's
open, masked inputs (input side, ``n_p ≤ n``): the components outside stay ``a0 I`` / ``b0 I``
with no coupling. The state is therefore ``(n_p + r) × (n_p + r)`` per pathway, for any width.

Adaptive exact steps
--------------------
With ``E`` frozen, ``k`` epochs are the exact matrix power ``T^k``, computed in closed form
from the eigen-decomposition ``EᵀE = V diag(λ) Vᵀ`` (``s = √λ`` the singular values of
``E``, ``x = η s``)::

    T^k = [[I + V diag(α) Vᵀ,       V diag(β/s) Vᵀ Eᵀ     ],
           [E V diag(β/s) Vᵀ,   I + E V diag(α/λ) Vᵀ Eᵀ   ]]
    α = (1 − x²)^{k/2} cosh(k atanh x) − 1,   β = (1 − x²)^{k/2} sinh(k atanh x)

(``(1 ± x)^k`` summed and differenced). Over a step of ``k`` epochs the exact product
``T(E_{t+k−1}) ··· T(E_t)`` is replaced by ``T(E_mid)^k`` with ``E_mid`` the error at epoch
``t + (k−1)/2`` (the mean of the epochs' left ends), extrapolated along one epoch's exact
change of the maps, ``ΔM = η(AE + EB) + η² E Mᵀ E`` (``E`` is linear in ``M``): an exponential
midpoint rule with local error ``O(k³)``. The step is accepted when the
estimated error of the growth exponent over the step, ``Σ_j η (E_{t+j} − E_mid) ≈
η k³ E''/24 ≈ η k ‖E_{t+k} − 2E_mid + E_t‖ / 6``, is at most ``rtol``; the next step is
resized by ``(rtol / err)^{1/3}``. Converged modes relax at ``η λ`` per epoch (``λ`` the
current sharpness), and a frozen-error step longer than ``2/(η λ)`` would overshoot them, so
steps are also capped at ``STIFF_LIMIT / (η λ)`` (``λ`` tracked by a power iteration on the
Gauss–Newton operator of the current state). Plateaus, where ``E`` barely moves, are crossed
in a few exact powers; transitions take steps of a few epochs. When ``η s(E) ≥ 1`` no real
power exists and that step is one exact epoch. The loss between step ends is a cubic spline
through the step ends' exact losses; singular values are interpolated linearly in ``log σ``.
``step="exact"`` applies ``T`` epoch by epoch instead.

Rules
-----
``"joint"``: every pathway follows the total error ``r_μ = y_μ − ŷ_μ``. ``"residual"`` (the
rule of the paper's code, Jarvis et al. 2025, arXiv 2503.06181): shared pathways follow their
own error ``y_μ − ŷ^{shared}_μ``, the others the total error (see :class:`relu_probe.GDLN`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from scipy.interpolate import CubicSpline

from .._util.arrays import check_xy
from .._util.checks import check_choice, check_int, check_real
from ..errors import InputError, ValueInputError, describe
from .dynamics import divergence_limit
from .spec import PathwaySpec, per_pathway, per_role, resolve_spec
from .schedule import resolve_schedule, stability_problem
from .subspace import ReducedProblem, reduce_problem

__all__ = ["MeanState", "exact_curve", "exact_dynamics", "exact_from_spec", "mean_state_of", "run_exact", "DEFAULT_RTOL"]

#: Default per-step tolerance of the adaptive steps (error of the growth exponent): measured
#: max loss error against epoch-by-epoch stepping ≤ 0.1 % of L0 on the paper's 3/4/5-context
#: tasks (both rules, ReLN and union gatings), ≤ 0.05 % on digits.
DEFAULT_RTOL = 5e-4

#: Largest number of epochs one adaptive step may cover.
MAX_STEP = 1000

#: Power iterations per step end for the current sharpness (warm-started).
POWER_ITERATIONS = 2

#: Adaptive steps cover at most ``STIFF_LIMIT / (lr λ)`` epochs (``λ`` a bound on the current
#: sharpness): the exponential midpoint rule damps a mode relaxing at ``z`` per step only for
#: ``z < 2``.
STIFF_LIMIT = 1.8


# ---------------------------------------------------------------------------- init state
@dataclass(frozen=True)
class MeanState:
    r"""Mean initial state of every pathway: ``A0 = a0·I``, ``B0 = b0·I``, ``M0 = 0``.

    A pathway with ``h`` hidden units whose input and output weights are drawn i.i.d. with
    standard deviations ``σ_in`` and ``σ_out`` has ``E[W1ᵀW1] = σ_in² h I`` and
    ``E[W2W2ᵀ] = σ_out² h I``: ``a0 = σ_out² h``, ``b0 = σ_in² h``. Its initial mode strength
    for Eq. 1 is ``π0 = (a0 + b0) / 4`` (a mode then grows as ``((a0 + b0)/2) sinh(r t)``).

    Attributes
    ----------
    a0, b0 : numpy.ndarray (pathway,)
    source : str
        How the values were obtained (shown in results).
    """

    a0: np.ndarray
    b0: np.ndarray
    source: str = "given"

    def __post_init__(self) -> None:
        a0 = np.atleast_1d(np.asarray(self.a0, dtype=np.float64))
        b0 = np.atleast_1d(np.asarray(self.b0, dtype=np.float64))
        if a0.shape != b0.shape or a0.ndim != 1:
            raise ValueInputError(
                f"MeanState: `a0` and `b0` must be 1-D with one value per pathway, got shapes "
                f"{a0.shape} and {b0.shape}."
            )
        if not (np.all(np.isfinite(a0)) and np.all(np.isfinite(b0))) or (a0 < 0).any() or (b0 < 0).any():
            raise ValueInputError("MeanState: `a0` and `b0` must be finite and >= 0.")
        object.__setattr__(self, "a0", a0)
        object.__setattr__(self, "b0", b0)

    @property
    def pi0(self) -> np.ndarray:
        """Initial mode strength ``(a0 + b0) / 4`` of each pathway (for Eq. 1)."""
        return (self.a0 + self.b0) / 4.0

    @classmethod
    def from_pi0(cls, pi0: Any, source: str = "pi0") -> MeanState:
        """The balanced state ``a0 = b0 = 2 π0`` whose modes grow like Eq. 1 from ``π0``."""
        p = np.atleast_1d(np.asarray(pi0, dtype=np.float64))
        return cls(2.0 * p, 2.0 * p, source)

    @classmethod
    def from_weights(cls, std_in: Any, std_out: Any, width: Any, source: str = "weights") -> MeanState:
        """``a0 = σ_out² h``, ``b0 = σ_in² h`` per pathway (broadcast)."""
        s_in, s_out, h = np.broadcast_arrays(
            np.atleast_1d(np.asarray(std_in, float)),
            np.atleast_1d(np.asarray(std_out, float)),
            np.atleast_1d(np.asarray(width, float)),
        )
        return cls(s_out**2 * h, s_in**2 * h, source)

    def take(self, index: Any) -> MeanState:
        """The state of a subset of pathways."""
        idx = np.asarray(index)
        return MeanState(self.a0[idx], self.b0[idx], self.source)


def mean_state_of(init: Any, spec: PathwaySpec) -> MeanState:
    r"""The mean initial state of every pathway of *spec*.

    ``init`` may be a :class:`MeanState` (one entry per pathway), or ``π0`` — one value, one
    per pathway, or ``{"shared": π0_s, "context": π0_c}`` — meaning the balanced state
    ``a0 = b0 = 2 π0``. Without ``init`` the state is that of the GDLN *spec* describes: a
    pathway with ``h`` hidden units and initial weight stds ``σ_in``, ``σ_out`` starts, on
    average over its Gaussian draw, at ``a0 = σ_out² h``, ``b0 = σ_in² h``, and grows like
    Eq. 1 from ``π0 = (a0 + b0)/4``.
    """
    n = spec.n_pathways
    if isinstance(init, MeanState):
        if init.a0.shape[0] != n:
            raise ValueInputError(
                f"`init` is a MeanState for {init.a0.shape[0]} pathways; the gating has {n}."
            )
        return init
    if init is not None:
        if isinstance(init, Mapping):
            values = per_role("init", init, list(spec.shared), require_both=True)
        else:
            values = per_pathway("init", init, n)
        pi0 = np.array([check_real("init", v, minimum=0.0, strict=True) for v in values])
        return MeanState.from_pi0(pi0, source="init (π0)")
    for scales in spec.init_scales:
        for value in scales:
            if value <= 0:
                raise ValueInputError(f"`init_scale` must be > 0.0, got {value}.")
    h = np.array([w[0] for w in spec.widths], dtype=np.float64)
    s_in = np.array([sc[0] for sc in spec.init_scales])
    s_out = np.array([sc[-1] for sc in spec.init_scales])
    return MeanState.from_weights(s_in, s_out, h, source="hidden/init_scale")


# ---------------------------------------------------------------------------- stepping
class _Stepper:
    """The exact recursion on the stacked Gram states ``Ω`` (pathway, N, N), N = n + r."""

    def __init__(self, prob: ReducedProblem, lr: float) -> None:
        self.prob = prob
        self.lr = lr
        p, P, n = prob.Xh.shape
        self.p, self.n, self.r = p, n, prob.Yr.shape[1]
        self.N = n + self.r
        self.Xcat = np.ascontiguousarray(prob.Xh.transpose(1, 0, 2).reshape(P, p * n))
        self.own = prob.own
        self.any_own = bool(prob.own.any())
        if self.any_own:
            Xo = prob.Xh.copy()
            Xo[~prob.own] = 0.0
            self.Xown = np.ascontiguousarray(Xo.transpose(1, 0, 2).reshape(P, p * n))
        self.eye_n = np.eye(n)
        self.eye_r = np.eye(self.r)
        self.T = np.zeros((p, self.N, self.N))

    def maps(self, Om: np.ndarray) -> np.ndarray:
        return Om[:, self.n :, : self.n]

    def errors(self, Om: np.ndarray) -> tuple[np.ndarray, float]:
        """``Eᵀ`` per pathway (p, n, r) and the loss ``½‖Y − Ŷ‖²`` of state ``Ω``."""
        return self.errors_of(Om[:, : self.n, self.n :])

    def errors_of(self, Mt: np.ndarray) -> tuple[np.ndarray, float]:
        """``Eᵀ`` and the loss for the maps ``Mᵀ`` (p, n, r)."""
        p, n, r = self.p, self.n, self.r
        Mcat = Mt.reshape(p * n, r)  # stacked Mᵀ blocks
        R = self.prob.Yr - self.Xcat @ Mcat
        loss = 0.5 * float(np.vdot(R, R)) + self.prob.L_perp
        Et = (self.Xcat.T @ R).reshape(p, n, r)
        if self.any_own:
            Rs = self.prob.Yr - self.Xown @ Mcat
            Es = (self.Xcat.T @ Rs).reshape(p, n, r)
            Et = np.where(self.own[:, None, None], Es, Et)
        return Et, loss

    def power(self, Et: np.ndarray, k: float) -> np.ndarray | None:
        """``T(E)^k`` (p, N, N); ``None`` when ``η s(E) ≥ 1`` (no real power)."""
        lr, n = self.lr, self.n
        E = Et.transpose(0, 2, 1)  # (p, r, n)
        lam, V = np.linalg.eigh(Et @ E)  # EᵀE = V diag(λ) Vᵀ
        lam = np.clip(lam, 0.0, None)
        x = lr * np.sqrt(lam)
        if np.any(x >= 1.0):
            return None
        theta = k * np.arctanh(x)
        c = 0.5 * k * np.log1p(-x * x)
        alpha = np.expm1(c) * np.cosh(theta) + 2.0 * np.sinh(0.5 * theta) ** 2
        pos = x > 0
        safe = np.where(pos, x, 1.0)
        beta_s = np.where(pos, lr * np.exp(c) * np.sinh(theta) / safe, k * lr)
        alpha_l = np.where(pos, lr * lr * alpha / (safe * safe), 0.5 * k * (k - 1) * lr * lr)
        Vt = V.transpose(0, 2, 1)
        T = self.T
        T[:, :n, :n] = (V * alpha[:, None, :]) @ Vt
        T[:, :n, :n] += self.eye_n
        EV = E @ V  # (p, r, n)
        low = (EV * beta_s[:, None, :]) @ Vt  # E V diag(β/s) Vᵀ
        T[:, n:, :n] = low
        T[:, :n, n:] = low.transpose(0, 2, 1)
        T[:, n:, n:] = (EV * alpha_l[:, None, :]) @ EV.transpose(0, 2, 1)
        T[:, n:, n:] += self.eye_r
        return T

    def map_change(self, Om: np.ndarray, Et: np.ndarray) -> np.ndarray:
        """One epoch's exact change of ``Mᵀ``: ``(η(AE + EB) + η² E Mᵀ E)ᵀ`` (p, n, r)."""
        n, lr = self.n, self.lr
        A, B, Mt = Om[:, n:, n:], Om[:, :n, :n], Om[:, :n, n:]
        E = Et.transpose(0, 2, 1)
        return lr * (Et @ A + B @ Et) + (lr * lr) * ((E @ Mt) @ E).transpose(0, 2, 1)

    def one_epoch(self, Om: np.ndarray, Et: np.ndarray) -> np.ndarray:
        """Exact single epoch ``Ω + η(FΩ + ΩF) + η² FΩF``."""
        n, lr = self.n, self.lr
        E = Et.transpose(0, 2, 1)
        FO = np.empty_like(Om)
        FO[:, :n] = Et @ Om[:, n:]  # Eᵀ [M, A]
        FO[:, n:] = E @ Om[:, :n]  # E [B, Mᵀ]
        FOF = np.empty_like(Om)
        FOF[:, :, :n] = FO[:, :, n:] @ E
        FOF[:, :, n:] = FO[:, :, :n] @ Et
        return Om + lr * (FO + FO.transpose(0, 2, 1)) + (lr * lr) * FOF

    def propagate(self, Om: np.ndarray, Et: np.ndarray, k: float) -> np.ndarray:
        """``T(E)^k Ω T(E)^kᵀ``; epoch by epoch with frozen ``E`` when no real power exists."""
        if k == 1:
            return self.one_epoch(Om, Et)
        T = self.power(Et, k)
        if T is None:
            raise _NoPower
        return T @ Om @ T.transpose(0, 2, 1)


class _NoPower(Exception):
    pass


def _singular_values(M: np.ndarray) -> np.ndarray:
    return np.linalg.svd(M, compute_uv=False)


def _diverged(loss: float, L0: float) -> bool:
    return not np.isfinite(loss) or loss > divergence_limit(L0)


def _divergence_error(epoch: int, loss: float, lr: float) -> ValueInputError:
    return ValueInputError(
        f"the exact dynamics diverged (loss {loss:.3g} at epoch {epoch}); lower the learning "
        f"rate `lr` (got {lr})."
    )


def run_exact(
    prob: ReducedProblem,
    Om0: np.ndarray,
    *,
    lr: float,
    epochs: int,
    step: str = "adaptive",
    rtol: float = DEFAULT_RTOL,
    sv_epochs: np.ndarray | None = None,
    max_step: int = MAX_STEP,
) -> dict[str, Any]:
    """Run the exact dynamics from ``Ω0``.

    Stiffness: a converged mode relaxes at ``lr λ`` per epoch, ``λ`` the current sharpness
    (the top eigenvalue of the Gauss–Newton operator ``JJᵀΔ = Σ_p X̂_p (A_p g_p + g_p B_p)ᵀ``,
    ``g_p = Δᵀ X̂_p``, at the current ``A``, ``B``), and frozen-error steps longer than
    ``STIFF_LIMIT / (lr λ)`` would overshoot it. ``λ`` is tracked by a warm-started power
    iteration (``POWER_ITERATIONS`` per step end) and the steps are capped accordingly (and
    at ``max_step``).

    Returns a dict: ``loss`` (epochs,) before each epoch's update; ``sv`` (p, q,
    len(sv_epochs)) singular values of every map before the update of those epochs; ``state``
    the final ``Ω`` (after the last update); ``step_epochs`` the epochs where an adaptive
    step ended (exact states); ``n_steps``, ``n_rejected``.
    """
    st = _Stepper(prob, lr)
    L0 = 0.5 * float(np.vdot(prob.Yr, prob.Yr)) + prob.L_perp
    n0 = st.n
    delta = np.random.default_rng(0).standard_normal(prob.Yr.shape)

    def stiff_cap(Om: np.ndarray) -> int:
        nonlocal delta
        A, B = Om[:, n0:, n0:], Om[:, :n0, :n0]
        lam = 0.0
        for _ in range(POWER_ITERATIONS):
            nrm = float(np.linalg.norm(delta))
            if nrm == 0 or not np.isfinite(nrm):
                break
            g = (st.Xcat.T @ (delta / nrm)).reshape(st.p, n0, -1)  # g_pᵀ (p, n, r)
            dMt = g @ A + B @ g  # (A g + g B)ᵀ
            delta = st.Xcat @ dMt.reshape(st.p * n0, -1)
            lam = float(np.linalg.norm(delta))
        return int(max(1, min(max_step, STIFF_LIMIT / (lr * lam)))) if lam > 0 else max_step

    sv_epochs = np.zeros(0, dtype=int) if sv_epochs is None else np.asarray(sv_epochs, dtype=int)
    q = min(st.n, st.r)
    if step == "exact":
        loss = np.empty(epochs)
        svs = np.zeros((st.p, q, sv_epochs.size))
        want = {int(e): i for i, e in enumerate(sv_epochs)}
        Om = Om0.copy()
        for t in range(epochs):
            Et, L = st.errors(Om)
            loss[t] = L
            if _diverged(L, L0):
                raise _divergence_error(t, L, lr)
            if t in want:
                svs[:, :, want[t]] = _singular_values(st.maps(Om))[:, :q]
            Om = st.one_epoch(Om, Et)
        return {"loss": loss, "sv": svs, "state": Om, "step_epochs": np.arange(epochs + 1),
                "n_steps": epochs, "n_rejected": 0}

    Om = Om0.copy()
    Et, L = st.errors(Om)
    ts, Ls, Ss = [0], [L], [_singular_values(st.maps(Om))[:, :q]]
    cap = stiff_cap(Om)
    t, k = 0, 1.0
    n_steps = n_rej = 0
    while t < epochs:
        kk = int(max(1, min(round(k), cap, epochs - t)))
        try:
            if kk > 1:
                # E at epoch t + (k−1)/2, extrapolated along one epoch's exact change of M
                Mt = Om[:, : st.n, st.n :]
                Et_mid, _ = st.errors_of(Mt + 0.5 * (kk - 1) * st.map_change(Om, Et))
                Om_new = st.propagate(Om, Et_mid, kk)
            else:
                Et_mid = Et
                Om_new = st.one_epoch(Om, Et)
        except _NoPower:
            # η s(E) ≥ 1: no real power of T exists; take exact single epochs
            Et_mid = Et
            Om_new, kk = st.one_epoch(Om, Et), 1
        Et_new, L_new = st.errors(Om_new)
        n_steps += 1
        err = lr * kk * float(np.sqrt(np.sum((Et_new - 2.0 * Et_mid + Et) ** 2))) / 6.0 if kk > 1 else 0.0
        if kk > 1 and (err > rtol or not np.isfinite(L_new)):
            n_rej += 1
            shrink = max(0.2, 0.9 * (rtol / err) ** (1.0 / 3.0)) if np.isfinite(err) else 0.2
            k = max(1.0, min(kk * shrink, kk - 1.0))  # strictly shorter: no retry loop
            continue
        if _diverged(L_new, L0):
            raise _divergence_error(t + kk, L_new, lr)
        Om, Et, t = Om_new, Et_new, t + kk
        ts.append(t)
        Ls.append(L_new)
        Ss.append(_singular_values(st.maps(Om))[:, :q])
        cap = stiff_cap(Om)
        grow = 2.0 if err <= 0 else min(2.0, 0.9 * (rtol / err) ** (1.0 / 3.0))
        k = kk * max(0.5, grow)
    ts_a = np.asarray(ts, dtype=float)
    Ls_a = np.asarray(Ls)
    loss = CubicSpline(ts_a, Ls_a)(np.arange(epochs)) if ts_a.size > 2 else np.interp(np.arange(epochs), ts_a, Ls_a)
    # exact values where a step ended
    ends = np.asarray(ts[:-1], dtype=int)
    loss[ends[ends < epochs]] = Ls_a[: ends.size][ends < epochs]
    S = np.stack(Ss, axis=-1)  # (p, q, steps)
    svs = np.zeros((st.p, q, sv_epochs.size))
    if sv_epochs.size:
        logS = np.log(np.maximum(S, 1e-300))
        for a in range(st.p):
            for b in range(q):
                svs[a, b] = np.exp(np.interp(sv_epochs, ts_a, logS[a, b]))
                svs[a, b][np.interp(sv_epochs, ts_a, S[a, b]) <= 0] = 0.0  # exactly zero where it is
    return {"loss": loss, "sv": svs, "state": Om, "step_epochs": np.asarray(ts, dtype=int),
            "n_steps": n_steps, "n_rejected": n_rej}


# ---------------------------------------------------------------------------- states
def _mean_omega(prob: ReducedProblem, state: MeanState) -> np.ndarray:
    p, n, r = prob.n_paths, prob.Xh.shape[2], prob.Yr.shape[1]
    Om = np.zeros((p, n + r, n + r))
    idx_n = np.arange(n)
    Om[:, idx_n, idx_n] = state.b0[:, None] * prob.valid
    idx_r = np.arange(n, n + r)
    Om[:, idx_r, idx_r] = state.a0[:, None]
    return Om


def _weights_omega(weights: Sequence[Any], masks: np.ndarray, n_out: int) -> np.ndarray:
    """Gram state of explicit per-pathway weights ``(W1 (h×n), W2 (m×h))`` in full coordinates."""
    p, n = masks.shape
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != p:
        raise InputError(
            f"`weights` must be one (W1, W2) pair per pathway ({p}), got {describe(weights)}."
        )
    Om = np.zeros((p, n + n_out, n + n_out))
    for i, pair in enumerate(weights):
        try:
            W1, W2 = (np.asarray(w, dtype=np.float64) for w in pair[:2]) if len(pair) >= 2 else (None, None)
        except TypeError:
            W1 = W2 = None
        if W1 is None or W1.ndim != 2 or W2.ndim != 2 or W1.shape[1] != n or W2.shape[0] != n_out or W2.shape[1] != W1.shape[0]:
            raise ValueInputError(
                f"`weights[{i}]` must be (W1 of shape (h, {n}), W2 of shape ({n_out}, h)); got "
                f"{describe(pair)}."
            )
        W1 = W1 * masks[i][None, :]
        Qm = np.concatenate([W1.T, W2], axis=0)
        Om[i] = Qm @ Qm.T
    return Om


def exact_curve(X: np.ndarray, Y: np.ndarray, spec: PathwaySpec, rule: str,
                init: Any = None) -> Callable[[float, int], np.ndarray] | None:
    """``curve(lr, epochs)``: the exact dynamics' loss curve of *spec*'s pathways from *init*
    (adaptive steps, no singular values), used to measure the epochs to convergence
    (:func:`relu_probe.reln.schedule.resolve_schedule`); None where the exact dynamics do not
    cover *spec* (biases, deep pathways, a trunk)."""
    if spec.hidden_bias or spec.output_bias or spec.trunk or any(len(w) != 1 for w in spec.widths):
        return None

    def curve(rate: float, horizon: int) -> np.ndarray:
        ds = exact_from_spec(X, Y, spec, rule=rule, lr=rate, epochs=horizon, init=init,
                             sv_epochs=np.zeros(0, dtype=int), check_lr=False)
        return ds["loss"].values

    return curve


def _weights_state(Om0: np.ndarray, masks: np.ndarray, n_in: int, n_out: int) -> MeanState:
    """The mean state of explicit initial weights (their Gram state *Om0*): ``a0 = tr(W2W2ᵀ)/m``
    (per output) and ``b0 = tr(W1ᵀW1)/n_p`` (per open input)."""
    return MeanState(
        np.array([np.trace(Om0[p, n_in:, n_in:]) / n_out for p in range(len(Om0))]),
        np.array([np.trace(Om0[p, :n_in, :n_in]) / max(masks[p].sum(), 1) for p in range(len(Om0))]),
        "weights",
    )


# ---------------------------------------------------------------------------- public
def exact_dynamics(
    X: Any,
    Y: Any,
    gates: Any,
    *,
    context: Any = None,
    inputs: Any = None,
    shared: Any = None,
    rule: str = "joint",
    lr: float | None = None,
    epochs: int | None = None,
    init: Any = None,
    hidden: Any = 100,
    init_scale: Any = None,
    weights: Sequence[Any] | None = None,
    step: str = "adaptive",
    rtol: float = DEFAULT_RTOL,
    sv_stride: int = 10,
    check_lr: bool = True,
) -> xr.Dataset:
    r"""Exact full-batch gradient-descent dynamics of a one-hidden-layer GDLN, at any width.

    See the module docstring (:mod:`relu_probe.reln.exact`) for the recursion and the adaptive
    steps. From the mean initial state (``init``, or the one of ``hidden`` / ``init_scale``)
    this is the GDLN of infinite width at fixed ``σ² h`` (a finite-width GDLN fluctuates
    around it by ``O(h^{-1/2})`` in the logarithm of its initial mode strengths); from
    explicit ``weights`` it is that very network, epoch for epoch.

    Parameters
    ----------
    X, Y : array-like (sample, feature), (sample, output)
    gates : array-like (pathway, sample), DataArray, or list of context sets
        As for :class:`relu_probe.GDLN` (context sets need ``context``).
    context : array-like (sample,), optional
    inputs : None, "all", "auto" or masks
        Input masks as for :class:`relu_probe.GDLN` (``"auto"``: non-shared pathways read only
        inputs that vary within a context).
    shared : optional
        Shared pathways (default: those open on every sample); used by ``rule="residual"``
        and ``inputs="auto"``.
    rule : {"joint", "residual"}, default="joint"
    lr : float, optional
        Learning rate of gradient descent on the summed loss. Default: a share of the largest
        stable rate of these data, and ``epochs`` enough to converge
        (:mod:`relu_probe.reln.schedule`, noted in ``attrs``); the paper's are
        ``rp.tasks.PAPER_LR`` and ``rp.tasks.PAPER_EPOCHS``.
    epochs : int, optional
    init : MeanState, float, sequence or mapping, optional
        Mean initial state per pathway (:class:`MeanState`, e.g. from
        :func:`relu_probe.reln.init.mean_state_from_network`), or ``π0`` (one value, one per
        pathway, or ``{"shared": …, "context": …}``) meaning ``a0 = b0 = 2 π0``
        (:func:`mean_state_of`).
    hidden, init_scale :
        Without ``init``: the GDLN's widths and initial weight stds, read as
        :class:`relu_probe.GDLN` reads them (:mod:`relu_probe.reln.spec`).
    weights : sequence of (W1, W2), optional
        Explicit initial weights per pathway, ``W1`` (h_p × n_features; masked inputs are
        ignored) and ``W2`` (n_outputs × h_p): the dynamics of exactly that network (no
        reduction to the data's subspaces, so the cost grows with the number of outputs).
    step : {"adaptive", "exact"}, default="adaptive"
        Adaptive exact powers of the one-epoch map, or every epoch one by one.
    rtol : float, default=5e-4
        Adaptive steps: tolerated error of the growth exponent per step.
    sv_stride : int, default=10
        Singular values are reported every ``sv_stride`` epochs (and at the last epoch).
    check_lr : bool, default=True
        Refuse, before any stepping, a learning rate at or above the largest stable one
        (:func:`relu_probe.reln.stability.max_stable_lr`).

    Returns
    -------
    xarray.Dataset
        ``loss`` (epoch): ``½ Σ ‖y − ŷ‖²`` before each epoch's update (as
        ``GDLN.loss_curve_``); ``singular_values`` (pathway, mode, sv_epoch); ``maps``
        (pathway, output, feature) after the last update; ``a0``, ``b0``, ``pi0`` (pathway);
        ``gates`` (pathway, sample); ``inputs`` (pathway, feature). Attrs: ``L0``, ``lr``,
        ``tau`` (``1/(lr P)``), ``rule``, ``step``, ``n_steps``, ``n_rejected``, ``init``,
        ``lr_bound``, ``lr_source`` / ``epochs_source`` (``"given"`` or ``"derived"``),
        ``schedule_notes``.
    """
    Xn, Yn = check_xy(X, Y)
    spec = resolve_spec(gates, Xn, context=context, shared=shared, inputs=inputs, hidden=hidden,
                        init_scale=init_scale, Y=Yn)
    sv_stride = check_int("sv_stride", sv_stride, minimum=1)
    return exact_from_spec(Xn, Yn, spec, rule=rule, lr=lr, epochs=epochs, init=init, weights=weights, step=step,
                           rtol=rtol, sv_stride=sv_stride, check_lr=check_lr)


def exact_from_spec(
    X: np.ndarray,
    Y: np.ndarray,
    spec: PathwaySpec,
    *,
    rule: str = "joint",
    lr: float | None,
    epochs: int | None,
    init: Any = None,
    weights: Sequence[Any] | None = None,
    step: str = "adaptive",
    rtol: float = DEFAULT_RTOL,
    sv_epochs: np.ndarray | None = None,
    sv_stride: int | None = None,
    check_lr: bool = True,
) -> xr.Dataset:
    """:func:`exact_dynamics` of the pathways of a resolved :class:`PathwaySpec`, on checked
    float arrays; singular values at the epochs *sv_epochs*, or every *sv_stride* epochs and
    at the last (default: every epoch). ``lr`` / ``epochs`` None: derived from the data
    (:func:`relu_probe.reln.schedule.resolve_schedule`)."""
    if lr is not None:
        lr = check_real("lr", lr, minimum=0.0, strict=True)
    if epochs is not None:
        epochs = check_int("epochs", epochs, minimum=1)
    check_choice("rule", rule, ["joint", "residual"])
    check_choice("step", step, ["adaptive", "exact"])
    rtol = check_real("rtol", rtol, minimum=0.0, strict=True)
    if any(len(w) != 1 for w in spec.widths) or spec.trunk:
        raise ValueInputError("the exact dynamics cover pathways with one hidden layer and no trunk.")
    if spec.hidden_bias or spec.output_bias:
        raise ValueInputError(
            "exact_from_spec covers pathways without biases; race_dynamics(method='auto') steps a biased "
            "gating's exact dynamics epoch by epoch."
        )
    masks = spec.inputs.astype(np.float64)
    G = spec.gates  # effective gates α + (1 − α) g of leaky units (the 0/1 gates for ReLU units)
    residual = rule == "residual" and bool(spec.shared.any()) and bool((~spec.shared).any())
    own = spec.shared.copy() if residual else np.zeros(spec.n_pathways, dtype=bool)
    if weights is not None and init is not None:
        raise ValueInputError("pass either `init` (a mean state) or `weights`, not both.")
    if weights is not None:
        prob = reduce_problem(X, Y, G, masks, own, reduce=False)
        Om0 = _weights_omega(weights, masks, Y.shape[1])
        state = _weights_state(Om0, masks, X.shape[1], Y.shape[1])
    else:
        prob = reduce_problem(X, Y, G, masks, own, reduce=True)
        state = mean_state_of(init, spec)
        Om0 = _mean_omega(prob, state)

    def curve(rate: float, horizon: int) -> np.ndarray:  # the loss alone, to measure the epochs
        return run_exact(prob, Om0, lr=rate, epochs=horizon, step="adaptive", rtol=rtol,
                         sv_epochs=np.zeros(0, int))["loss"]

    schedule = resolve_schedule(stability_problem(spec, X, rule), Y, lr=lr, epochs=epochs, pi0=state.pi0,
                                check_lr=check_lr, what="exact_dynamics", curve=curve)
    lr, epochs, lr_bound = schedule.lr, schedule.epochs, schedule.lr_bound
    if sv_epochs is not None:
        sv_epochs = np.asarray(sv_epochs, dtype=int)
    elif sv_stride is not None:
        sv_epochs = np.arange(0, epochs, sv_stride)
        if sv_epochs[-1] != epochs - 1:
            sv_epochs = np.append(sv_epochs, epochs - 1)
    else:
        sv_epochs = np.arange(epochs)

    out = run_exact(prob, Om0, lr=lr, epochs=epochs, step=step, rtol=rtol, sv_epochs=sv_epochs)
    n = prob.Xh.shape[2]
    M_red = out["state"][:, n:, :n]  # (p, r, n)
    maps = np.einsum("mr,prn,pfn->pmf", prob.Qy, M_red, prob.Vin)
    q = out["sv"].shape[1]
    return xr.Dataset(
        {
            "loss": ("epoch", out["loss"]),
            "singular_values": (("pathway", "mode", "sv_epoch"), out["sv"]),
            "maps": (("pathway", "output", "feature"), maps),
            "a0": ("pathway", state.a0),
            "b0": ("pathway", state.b0),
            "pi0": ("pathway", state.pi0),
            "gates": (("pathway", "sample"), G.copy()),
            "inputs": (("pathway", "feature"), spec.inputs.copy()),
        },
        coords={**spec.coords(), "mode": np.arange(q), "epoch": np.arange(epochs), "sv_epoch": sv_epochs},
        attrs={
            "L0": 0.5 * float(np.vdot(Y, Y)),
            "lr": lr,
            "tau": 1.0 / (lr * X.shape[0]),
            "rule": rule,
            "step": step,
            "rtol": rtol,
            "n_steps": int(out["n_steps"]),
            "n_rejected": int(out["n_rejected"]),
            "init": state.source,
            "lr_bound": lr_bound,
            "n_samples": X.shape[0],
            **schedule.attrs(),
        },
    )
