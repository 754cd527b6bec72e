"""The neural race: predict a GDLN's learning from the gated correlations of the data
(Saxe, Sodhani & Lewallen, arXiv 2207.10430; Jarvis, Klein, Rosman & Saxe, arXiv 2503.06181).

Notation (:mod:`relu_probe.reln.correlations`). ``P`` samples, inputs ``x_μ``, targets ``y_μ``; pathway ``p``
has gate ``g_{pμ} ∈ {0,1}`` and input mask ``m_p``, ``x̃_{pμ} = m_p ⊙ x_μ``. The gated
correlations are averages over *all* ``P`` samples (the paper's convention)::

    Σ^{yx}(p)   = (1/P) Σ_μ g_{pμ} y_μ x̃_{pμ}ᵀ          = U_p S_p V_pᵀ   (SVD)
    Σ^{x}(q, p) = (1/P) Σ_μ g_{qμ} g_{pμ} x̃_{qμ} x̃_{pμ}ᵀ

Mode ``α`` of pathway ``p`` has ``s_{pα}`` (singular value), ``d_{pα} = v_{pα}ᵀ Σ^x(p,p)
v_{pα}`` and strength ``π_{pα}`` (the singular value of the pathway map ``M_p`` along
``u_{pα} v_{pα}ᵀ``). For a summed loss trained at learning rate ``η`` the time constant is
``τ = 1 / (η P)`` epochs.

Uncoupled modes follow the logistic law (Eq. 1)::

    τ dπ/dt = 2 π (s − d π)
    π(t)    = (s/d) / (1 − (1 − s/(d π0)) e^{−r t}),   r = 2 s / τ

and coupled pathways the race (Eq. 2), with overlaps computed from the data::

    τ dπ_{pα}/dt = 2 π_{pα} (s_{pα} − Σ_{qβ} K_{pα,qβ} π_{qβ}),
    K_{pα,qβ}    = (u_{pα}ᵀ u_{qβ}) (v_{qβ}ᵀ Σ^x(q,p) v_{pα}).

``time="continuous"`` uses these gradient-flow equations as written (the paper's closed
form). ``time="discrete"`` (default) uses the per-epoch growth of gradient *descent* on a
balanced mode, ``π ← π (1 + e/τ)²`` with ``e`` the bracket above: the rate becomes
``r = 2 ln(1 + s/τ)`` and the race is integrated as ``d ln π/dt = 2 ln(1 + e/τ)``, which is
what a simulated GDLN does epoch by epoch.

Methods
-------
``"auto"``    (default) the exact dynamics: the only prediction that needs no assumption.
``"exact"``   Exact full-batch gradient descent of the pathways, independent of the hidden
              width (:mod:`relu_probe.reln.exact`: the Gram state ``[[W1ᵀW1, (W2W1)ᵀ],
              [W2W1, W2W2ᵀ]]`` stepped as ``Ω ← TΩTᵀ`` in the data's reduced subspaces by
              adaptive exact powers of the one-epoch map, ``step="exact"``: epoch by epoch)
              from the mean initial state ``A = a0·I``, ``B = b0·I``, ``M = 0`` — the
              infinite-width limit of the GDLN at fixed ``σ² h``. With ``rule="residual"`` the
              context pathways chase the shared pathway's *live* residual from t = 0.
``"live"``    The same exact dynamics stepped epoch by epoch (``method="exact",
              step="exact"``); the name of earlier versions, kept as an alias.
``"closed"``  Eq. 1 for every mode (pathways uncoupled): the mode-by-mode approximation.
``"race"``    Eq. 2 with the data-computed couplings ``K`` (integrated numerically).

Training rules (as :class:`relu_probe.GDLN`)
--------------------------------------------
``"joint"``     every pathway races on ``Y``; couplings between all pathways.
``"residual"``  the paper's rule: shared pathways race on ``Y`` alone; the others on the
                residual ``R = Y − Ŷ_shared``. With ``"closed"``/``"race"`` that residual is the
                *final* one (the shared pathway's converged map ``Σ_α (s_α/d_α) u_α v_αᵀ``),
                as in the paper's closed form; with ``"closed"``, ``d_scale`` may divide the
                context pathways' ``d`` (``"k-1"``: the paper's ``d/(k−1)``). The exact
                dynamics use the live residual.

Biases and leaky units (:mod:`relu_probe.reln.spec`): a hidden bias is a constant input
every pathway reads, so the correlations run over the design ``[x, 1]``; an output bias is an
ungated one-layer direct path (gate 1, reading only the constant input) that races with the
pathways linearly, ``τ dπ_b/dt = s_b − Σ_{qβ} K_{b,qβ} π_{qβ}``; a LeakyReLU slope ``α``
turns the gates into ``α + (1 − α) g`` in every correlation. The exact dynamics read leaky
slopes as effective gates; with a bias they step the exact map-space recursion epoch by
epoch (``attrs["step"] = "exact"``), which carries the constant input and the direct path.

Learning rate and epochs: before anything is computed, ``lr`` is checked against the largest
stable learning rate of the gating, ``2/λ_bal`` (:mod:`relu_probe.reln.stability`; of the
pathways and an output bias's direct path), and refused at or above it with the bound in the
message. Without ``lr`` / ``epochs`` both are derived from the data
(:mod:`relu_probe.reln.schedule`: a share of that bound, and the epochs for every mode that
matters to converge), and noted in the result's ``attrs``.

Diagnostics (Assumption 2.1, the mutual diagonalisability of the gated correlations that the
mode picture needs): ``"closed"`` compares its asymptote (every growing mode at ``s/d``) with
the least-squares optimum of the gating and warns when the gap is a noticeable share of the
part of the task that needs the gates (:mod:`relu_probe.reln.assumption`); ``"race"`` has no
closed-form asymptote and warns when the exact gradient puts more than 5 % of its drive
outside the pathways' modes along the predicted trajectory (``attrs["off_mode_gradient"]``).
The exact dynamics need neither.

The predicted loss is computed exactly from the mode strengths::

    L(t) = L0 − Σ_{pα} c_{pα} π_{pα} + ½ Σ_{pα,qβ} π_{pα} Q_{pα,qβ} π_{qβ},
    c_{pα} = P u_{pα}ᵀ Σ^{yx}_Y(p) v_{pα},   Q_{pα,qβ} = P (u_{pα}ᵀ u_{qβ}) v_{pα}ᵀ Σ^x(p,q) v_{qβ}.
"""


from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .._util.arrays import check_xy
from .._util.checks import check_choice, check_int, check_real
from ..errors import ReluProbeWarning, ValueInputError
from .correlations import (
    DEFAULT_TOL,
    coupled_fixed_point,
    coupling,
    gated_correlations,
    modes,
    off_mode_gradient,
    predict_outputs,
    rank,
    row_basis,
)
from .assumption import gap_to_optimum
from .dynamics import check_divergence, divergence_limit
from .exact import MeanState, exact_curve, exact_from_spec, mean_state_of
from .gating import context_labels, cue_inputs, sample_groups
from .init import network_state
from .spec import PathwaySpec, resolve_spec, warn_residual_is_joint
from .schedule import resolve_schedule, stability_problem

__all__ = ["race_dynamics", "race_from_spec", "closed_form", "RACE_METHODS", "DEFAULT_TOL"]

#: The predictions :func:`race_dynamics` offers (module docstring).
RACE_METHODS = ("auto", "exact", "closed", "race", "live")

#: Off-mode gradient (share of the drive) above which the mode race warns (Assumption 2.1).
OFF_MODE_WARN = 0.05


# ----------------------------------------------------------------------------- the laws
def closed_form(
    s: np.ndarray, d: np.ndarray, pi0: np.ndarray, tau: float, epochs: np.ndarray, *, time: str = "discrete"
) -> np.ndarray:
    """Eq. 1 for every mode: ``π(t) = (s/d) / (1 − (1 − s/(d π0)) e^{−r t})``.

    ``r = 2s/τ`` (``time="continuous"``) or ``2 ln(1 + s/τ)`` (``"discrete"``). Modes with
    ``s = 0`` decay as ``π0 / (1 + 2 d π0 t/τ)``; modes with ``d = 0`` (no input variance) keep
    ``π0``. ``s``, ``d``, ``pi0`` broadcast to one shape; the epoch axis is appended last.
    """
    s_, d_, p_ = np.broadcast_arrays(
        np.asarray(s, float), np.asarray(d, float), np.asarray(pi0, float)
    )
    shape = s_.shape
    s_, d_, p_ = s_.reshape(-1), d_.reshape(-1), p_.reshape(-1)
    t = np.asarray(epochs, float)
    out = np.empty((s_.size, t.size))
    grow = (s_ > 0) & (d_ > 0)
    decay = (s_ <= 0) & (d_ > 0)
    still = ~(grow | decay)
    if grow.any():
        sg, dg, pg = s_[grow], d_[grow], p_[grow]
        r = 2.0 * sg / tau if time == "continuous" else 2.0 * np.log1p(sg / tau)
        target = sg / dg
        expo = np.exp(np.multiply.outer(-r, t))
        expo *= (1.0 - target / pg)[:, None]
        np.subtract(1.0, expo, out=expo)
        np.divide(target[:, None], expo, out=expo)
        out[grow] = expo
    if decay.any():
        dd, pd = d_[decay], p_[decay]
        out[decay] = pd[:, None] / (1.0 + np.multiply.outer(2.0 * dd * pd / tau, t))
    if still.any():
        out[still] = p_[still, None]
    return out.reshape(shape + t.shape)


def _half_rise(s: np.ndarray, d: np.ndarray, pi0: np.ndarray, tau: float, time: str) -> np.ndarray:
    """Half-rise time of Eq. 1: ``t½ = ln(s/(d π0) − 1) / r`` (0 when π0 ≥ s/(2d), ∞ for s = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 2.0 * s / tau if time == "continuous" else 2.0 * np.log1p(s / tau)
        ratio = s / (d * pi0)
        t = np.log(ratio - 1.0) / r
    t = np.where(ratio <= 2.0, 0.0, t)
    t = np.where(s > 0, t, np.inf)
    return t


def _integrate_race(
    s: np.ndarray,
    K: np.ndarray,
    pi0: np.ndarray,
    tau: float,
    epochs: int,
    time: str,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    linear: np.ndarray | None = None,
) -> np.ndarray:
    """Integrate ``d ln π/dt = rate(s − K π)`` over epochs 0..epochs−1; returns (N, epochs).

    ``rate(e) = 2e/τ`` (continuous) or ``2 ln(1 + e/τ)`` (discrete). Uses LSODA (scipy's
    ``odeint``) with the analytic Jacobian in ``y = ln π``. Modes flagged ``linear`` (the
    one-layer direct path of an output bias) follow ``dπ/dt = (s − K π)/τ`` in ``y = π``.
    """
    from scipy.integrate import odeint

    if linear is not None and linear.any():
        return _integrate_mixed(s, K, pi0, tau, epochs, time, linear, rtol=rtol, atol=atol)
    y0 = np.log(np.maximum(pi0, 1e-300))

    if time == "continuous":

        def f(y: np.ndarray, t: float) -> np.ndarray:
            return (2.0 / tau) * (s - K @ np.exp(y))

        def jac(y: np.ndarray, t: float) -> np.ndarray:
            return -(2.0 / tau) * K * np.exp(y)[None, :]

    else:

        def f(y: np.ndarray, t: float) -> np.ndarray:
            e = (s - K @ np.exp(y)) / tau
            return 2.0 * np.log1p(np.maximum(e, -0.999999))

        def jac(y: np.ndarray, t: float) -> np.ndarray:
            e = (s - K @ np.exp(y)) / tau
            g = 2.0 / (1.0 + np.maximum(e, -0.999999)) / tau
            return -(g[:, None] * K) * np.exp(y)[None, :]

    t = np.arange(epochs, dtype=float)
    y = odeint(f, y0, t, Dfun=jac, rtol=rtol, atol=atol, mxstep=100000)
    return np.exp(y.T)


def _integrate_mixed(s: np.ndarray, K: np.ndarray, pi0: np.ndarray, tau: float, epochs: int, time: str,
                     linear: np.ndarray, *, rtol: float, atol: float) -> np.ndarray:
    """:func:`_integrate_race` with some linear modes: state ``ln π`` for the two-layer modes,
    ``π`` for the linear ones."""
    from scipy.integrate import odeint

    lin = np.asarray(linear, dtype=bool)

    def strengths(y: np.ndarray) -> np.ndarray:
        return np.where(lin, y, np.exp(np.where(lin, 0.0, y)))

    def f(y: np.ndarray, t: float) -> np.ndarray:
        e = s - K @ strengths(y)
        grow = 2.0 * e / tau if time == "continuous" else 2.0 * np.log1p(np.maximum(e / tau, -0.999999))
        return np.where(lin, e / tau, grow)

    def jac(y: np.ndarray, t: float) -> np.ndarray:
        pi = strengths(y)
        dpi_dy = np.where(lin, 1.0, pi)
        e = s - K @ pi
        if time == "continuous":
            row = np.where(lin, 1.0 / tau, 2.0 / tau)
        else:
            row = np.where(lin, 1.0 / tau, 2.0 / (1.0 + np.maximum(e / tau, -0.999999)) / tau)
        return -(row[:, None] * K) * dpi_dy[None, :]

    y0 = np.where(lin, pi0, np.log(np.maximum(pi0, 1e-300)))
    y = odeint(f, y0, np.arange(epochs, dtype=float), Dfun=jac, rtol=rtol, atol=atol, mxstep=100000)
    return np.where(lin[:, None], y.T, np.exp(np.where(lin[:, None], 0.0, y.T)))


def gram_simulate(
    X: np.ndarray,
    Y: np.ndarray,
    G: np.ndarray,
    masks: np.ndarray,
    *,
    lr: float,
    epochs: int,
    A0: np.ndarray,
    B0: np.ndarray,
    M0: np.ndarray,
    own_error: np.ndarray | None = None,
    n_sv: int | None = None,
    linear: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact gradient descent of one-hidden-layer gated pathways in map space.

    For pathway ``p`` with weights ``W1`` (h×n), ``W2`` (m×h), let ``M = W2 W1``,
    ``A = W2 W2ᵀ``, ``B = W1ᵀ W1`` and ``Ẽ = Σ_μ g_{pμ} (y_μ − ŷ_μ) x̃_{pμ}ᵀ`` (the negative
    gradient of the summed loss w.r.t. ``M``). One step ``W2 += η Ẽ W1ᵀ``, ``W1 += η W2ᵀ Ẽ``
    gives, with no approximation::

        M ← M + η (A Ẽ + Ẽ B) + η² Ẽ Mᵀ Ẽ
        A ← A + η (Ẽ Mᵀ + M Ẽᵀ) + η² Ẽ B Ẽᵀ
        B ← B + η (Ẽᵀ M + Mᵀ Ẽ) + η² Ẽᵀ A Ẽ

    so the GDLN can be run on (m×n, m×m, n×n) matrices whatever its hidden width.

    Parameters
    ----------
    X (P, n), Y (P, m), G (p, P), masks (p, n)
    A0 (p, m, m), B0 (p, n, n), M0 (p, m, n)
    own_error : (p,) bool, optional
        Pathways that follow only their own group's error (the residual rule's shared
        pathways: ``Ẽ`` uses ``y − ŷ_shared``); the others use the total error.
    n_sv : int, optional
        Number of singular values per pathway to return (default ``min(m, n)``).
    linear : (p,) bool, optional
        One-layer paths (an output bias's direct path): ``M ← M + η Ẽ`` (masked to the
        inputs the path reads), their ``A``, ``B`` unused.

    Returns
    -------
    loss (epochs,), singular values (p, n_sv, epochs), final maps (p, m, n)
    """
    P, n = X.shape
    p_count = G.shape[0]
    M, A, B = M0.copy(), A0.copy(), B0.copy()
    m = Y.shape[1]
    n_sv = min(m, n) if n_sv is None else n_sv
    Xm = X[None, :, :] * masks[:, None, :]  # (p, P, n)
    Xg = Xm * G[:, :, None]
    own = np.zeros(p_count, dtype=bool) if own_error is None else np.asarray(own_error, bool)
    use_own = bool(own.any())
    lin = np.zeros(p_count, dtype=bool) if linear is None else np.asarray(linear, bool)
    loss = np.empty(epochs)
    svs = np.zeros((p_count, n_sv, epochs))
    eta, eta2 = lr, lr * lr
    for t in range(epochs):
        Z = Xg @ np.swapaxes(M, 1, 2)  # (p, P, m): gated pathway outputs
        Yhat = Z.sum(0)
        R = Y - Yhat
        loss[t] = 0.5 * np.vdot(R, R)
        ev = np.linalg.eigvalsh(np.swapaxes(M, 1, 2) @ M)[:, ::-1]  # (p, n) descending
        k = min(n_sv, ev.shape[1])
        svs[:, :k, t] = np.sqrt(np.clip(ev[:, :k], 0.0, None))
        if use_own:
            Rs = Y - Z[own].sum(0)
            E = np.where(own[:, None, None], Rs.T[None], R.T[None]) @ Xg  # (p, m, n)
        else:
            E = R.T[None] @ Xg  # (p, m, n)
        AE = A @ E
        EB = E @ B
        EMt = E @ np.swapaxes(M, 1, 2)  # (p, m, m)
        EtM = np.swapaxes(E, 1, 2) @ M  # (p, n, n)
        Et = np.swapaxes(E, 1, 2)
        M_new = M + eta * (AE + EB) + eta2 * (EMt @ E)
        if lin.any():
            M_new[lin] = M[lin] + eta * E[lin] * masks[lin][:, None, :]
        A = A + eta * (EMt + np.swapaxes(EMt, 1, 2)) + eta2 * (EB @ Et)
        B = B + eta * (EtM + np.swapaxes(EtM, 1, 2)) + eta2 * (Et @ AE)
        M = M_new
        if not math.isfinite(loss[t]) or loss[t] > divergence_limit(loss[0]):
            check_divergence(loss[: t + 1], loss[0], lr=lr, what="the predicted dynamics")
    return loss, svs, M


# ----------------------------------------------------------------------------- public
def race_dynamics(
    X: Any,
    Y: Any,
    gates: Any,
    *,
    lr: float | None = None,
    epochs: int | None = None,
    init: Any = None,
    rule: str = "joint",
    method: str = "auto",
    context: Any = None,
    inputs: Any = None,
    shared: Any = None,
    d_scale: Any = None,
    time: str = "discrete",
    hidden: Any = 100,
    init_scale: Any = None,
    network: Any = None,
    within: Any = None,
    step: str = "adaptive",
    check_lr: bool = True,
    tol: float = DEFAULT_TOL,
    hidden_bias: bool = False,
    output_bias: bool = False,
    bias_init_scale: float = 0.0,
    leak: Any = 0.0,
) -> xr.Dataset:
    """Predict the learning dynamics of a GDLN from the gated correlations of the data.

    See the module docstring for the equations and the methods.

    Parameters
    ----------
    X, Y : array-like (sample, feature), (sample, output)
    gates : array-like (pathway, sample), DataArray, or list of context sets
        As for :class:`relu_probe.GDLN` (context sets need ``context``).
    lr : float, optional
        Learning rate of the gradient descent being predicted (``τ = 1/(lr·P)``), on the
        summed loss ``½ Σ_μ ‖y_μ − ŷ_μ‖²``. Refused at once at or above the largest stable
        rate (module docstring) unless ``check_lr=False``. Default: a share of that rate
        computed from the data (:mod:`relu_probe.reln.schedule`; noted in
        ``attrs["lr_source"]`` / ``attrs["schedule_notes"]``); the paper's is
        ``rp.tasks.PAPER_LR``.
    epochs : int, optional
        Epochs predicted. Default: enough for every mode that matters to converge, from the
        data and the initial state (:mod:`relu_probe.reln.schedule`); the paper's is
        ``rp.tasks.PAPER_EPOCHS``.
    init : float, sequence, mapping or MeanState, optional
        Initial mode strength ``π0`` (one value, one per pathway, or
        ``{"shared": π0_s, "context": π0_c}``), meaning the balanced mean state
        ``A = B = 2 π0 I``; or a :class:`relu_probe.reln.exact.MeanState`. Default: the state
        of the GDLN with ``hidden`` units and weight stds ``init_scale``, ``A = σ_out² h I``,
        ``B = σ_in² h I`` (it grows like Eq. 1 from ``π0 = (σ_in² + σ_out²) h / 4``), or, with
        ``network``, the network's own units.
    rule : {"joint", "residual"}, default="joint"
    method : {"auto", "exact", "closed", "race", "live"}, default="auto"
        ``"auto"``: the exact dynamics. ``"closed"``: the closed form (Eq. 1 per mode, the
        mode-by-mode approximation), ``"race"``: the coupled race (Eq. 2), ``"live"``: the
        exact dynamics epoch by epoch (module docstring).
    context : array-like (sample,), optional
        Per-sample context labels.
    inputs : None, "all", "auto", or masks
        Input masks as in :class:`relu_probe.GDLN`.
    shared : optional
        Shared pathways (default: those open on every sample).
    d_scale : None, "k-1", "overlap" or float
        Residual rule with ``method="closed"`` only: divide the context pathways' ``d`` by
        ``k − 1`` (the paper's rule), by the mean number of context pathways open on their
        samples (``"overlap"``, equal to ``k − 1`` for the paper's (k−1)-sets), or by a number.
        It stands in for the coupling between context pathways that ``"race"`` computes, and
        is exact only for symmetric gatings such as the paper's (k−1)-sets.
    time : {"discrete", "continuous"}, default="discrete"
        ``"closed"``/``"race"``: growth per epoch of gradient descent, or the gradient-flow
        rate of Eq. 1/2.
    hidden, init_scale :
        The GDLN's hidden width and initial weight std, read exactly as :class:`relu_probe.GDLN`
        reads them (:mod:`relu_probe.reln.spec`: one value, one per pathway, or a mapping
        ``{"shared": …, "context": …}``; per pathway, the pair (input-layer, output-layer)
        of stds), used when neither ``init`` nor ``network`` is given. Default: the GDLN's
        small initialisation relative to the data (:mod:`relu_probe.reln.small_init`, as
        :class:`relu_probe.GDLN`).
    network : torch.nn.Module, optional
        The *untrained* one-hidden-layer ReLU network (``Linear → ReLU → Linear``, no biases)
        whose learning is predicted: each context-set pathway starts from the units of the
        network that are on exactly in its contexts (:mod:`relu_probe.reln.init`). Needs
        ``gates`` as context sets and ``context``.
    within : array-like (sample,), optional
        With ``network``: the item of each sample (default: samples with equal non-cue inputs).
    step : {"adaptive", "exact"}, default="adaptive"
        Exact dynamics: adaptive exact powers of the one-epoch map (within 0.1 % of ``L0`` of
        stepping every epoch), or every epoch.
    check_lr : bool, default=True
        Refuse an ``lr`` at or above the largest stable learning rate before computing.
    tol : float, default=1e-9
        Singular values below ``tol × max s`` are treated as zero.
    hidden_bias, output_bias, bias_init_scale, leak :
        Biases and LeakyReLU slopes, read as :class:`relu_probe.GDLN` reads them
        (:mod:`relu_probe.reln.spec`): hidden biases are a constant input every pathway reads
        (the last ``feature``); an output bias is an ungated one-layer direct path, raced
        with the pathways (``"race"``: ``τ dπ_b/dt = s_b − Σ K π``; the exact dynamics:
        exactly, stepped epoch by epoch) and reported as ``output_bias`` — ``"closed"``
        refuses it; a slope ``α`` makes the effective gates ``α + (1 − α) g``.

    Returns
    -------
    xarray.Dataset
        ``loss`` (epoch): the predicted ``½ Σ ‖y − ŷ‖²`` before each epoch's update (as
        ``GDLN.loss_curve_``); ``singular_values`` (pathway, mode, epoch): predicted singular
        values of every pathway map (``"closed"``/``"race"``: the mode strengths ``π`` in the
        order of the modes of ``Σ^{yx}``; exact: in descending order, zero-padded);
        ``s``, ``d``, ``half_rise`` (pathway, mode); ``pi0`` (pathway); ``sigma_yx``
        (pathway, output, feature): the correlation each pathway races on in the mode picture
        (``Y``, or the final residual for the residual rule's context pathways);
        ``sigma_yx_Y``: the same for ``Y``; ``sigma_x`` (pathway, pathway_, feature,
        feature_); ``U`` (pathway, output, mode), ``V`` (pathway, feature, mode); ``inputs``
        (pathway, feature); ``gates`` (pathway, sample); exact: ``maps`` (pathway, output,
        feature) after the last epoch. Attrs: ``tau``, ``L0``, ``lr``, ``lr_bound`` (the
        largest stable rate), ``lr_source`` / ``epochs_source`` (``"given"`` or
        ``"derived"``) and ``schedule_notes`` (how a default was derived), ``rule``, ``method`` (``"exact"``, ``"closed"`` or ``"race"``;
        ``"auto"`` is resolved), ``step``, ``time``, ``n_samples``, ``init`` (where the
        initial state came from), ``asymptote`` (``"closed"``: the loss with every growing
        mode at ``s/d``; else the last predicted loss), ``off_mode_gradient``.

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> ds = rp.race_dynamics(X, Y, [(0, 1, 2), (0, 1), (1, 2), (0, 2)],
    ...                       lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS,
    ...                       context=coords["context"], rule="residual", inputs="auto",
    ...                       init={"shared": 5e-9, "context": 5e-5}, d_scale="k-1",
    ...                       method="closed", time="continuous")
    >>> round(float(ds.singular_values.sel(pathway=0, mode=3).isel(epoch=-1)), 3)
    3.055
    """
    Xn, Yn = check_xy(X, Y)
    spec = resolve_spec(gates, Xn, context=context, shared=shared, inputs=inputs, hidden=hidden, depth=1,
                        init_scale=init_scale, hidden_bias=hidden_bias, output_bias=output_bias,
                        bias_init_scale=bias_init_scale, leak=leak, Y=Yn)
    if network is not None:
        if init is not None:
            raise ValueInputError("pass either `init` or `network` (the initial state comes from one), not both.")
        init = _network_state(network, Xn, spec, context, within)
    return race_from_spec(Xn, Yn, spec, context=context, lr=lr, epochs=epochs, init=init, rule=rule,
                          method=method, d_scale=d_scale, time=time, step=step, check_lr=check_lr, tol=tol)


def _network_state(network: Any, X: np.ndarray, spec: PathwaySpec, context: Any, within: Any) -> MeanState:
    """The mean state of *spec*'s context-set pathways from the untrained *network*."""
    if spec.gating.contexts is None or context is None:
        raise ValueInputError(
            "`network` needs the gates as context sets and the per-sample `context` labels (the "
            "pathways' initial units are those on exactly in each set's contexts)."
        )
    ctx = context_labels(context, X.shape[0])
    cue = cue_inputs(X, sample_groups(None, ctx))
    return network_state(network, X, list(spec.gating.contexts), ctx, spec.inputs.astype(np.float64), cue, within)


def _checked_race_args(spec: PathwaySpec, *, lr: float | None, epochs: int | None, rule: str, method: str,
                       d_scale: Any, time: str, step: str,
                       tol: float) -> tuple[float | None, int | None, float, str, str]:
    """:func:`race_from_spec`'s arguments checked against each other and the spec; returns
    ``(lr, epochs, tol, method, step)`` with ``"auto"`` / ``"live"`` resolved to the exact
    dynamics (``"live"``: stepped epoch by epoch); ``lr`` / ``epochs`` stay None when not given."""
    if lr is not None:
        lr = check_real("lr", lr, minimum=0.0, strict=True)
    if epochs is not None:
        epochs = check_int("epochs", epochs, minimum=1)
    check_choice("rule", rule, ["joint", "residual"])
    check_choice("method", method, RACE_METHODS)
    check_choice("time", time, ["discrete", "continuous"])
    check_choice("step", step, ["adaptive", "exact"])
    tol = check_real("tol", tol, minimum=0.0)
    if any(len(w) != 1 for w in spec.widths) or spec.trunk:
        raise ValueInputError("the neural race covers pathways with one hidden layer and no trunk.")
    if method == "live":
        method, step = "exact", "exact"
    elif method == "auto":
        method = "exact"
    if d_scale is not None and (rule != "residual" or method != "closed"):
        raise ValueInputError(
            "`d_scale` applies to rule='residual' with method='closed' (the paper's uncoupled "
            "closed form, where d/(k−1) stands in for the coupling the race computes); got "
            f"rule={rule!r}, method={method!r}."
        )
    if spec.output_bias and method == "closed":
        raise ValueInputError(
            "method='closed' cannot model an output bias: the ungated direct path and the shared pathway both "
            "fit the outputs' mean, and the uncoupled closed form would count it twice. Use method='auto' "
            "(the exact dynamics) or 'race' (coupled)."
        )
    return lr, epochs, tol, method, step


def _warn_if_approximate(method: str, asymptote: float, off_mode: float, X_design: np.ndarray, Y: np.ndarray,
                         spec: PathwaySpec, paths: Any) -> None:
    """The closed form's Assumption 2.1 gap (its asymptote against the gates' least-squares
    optimum) and the coupled race's off-mode drive, warned where they exceed their limits."""
    if method == "closed":
        gap_to_optimum(asymptote, X_design, Y, spec.gates, paths.masks[: spec.n_pathways],
                       what="the closed form", stacklevel=4)
    elif method == "race" and off_mode > OFF_MODE_WARN:
        warnings.warn(
            "race_dynamics(method='race'): the gated correlations are not mutually "
            "diagonalisable (Assumption 2.1) along this trajectory — the gradient of the "
            f"predicted state has {100 * off_mode:.1f}% of the drive outside the pathways' "
            "modes, so the mode picture is approximate. method='auto' runs the exact dynamics "
            "instead.",
            ReluProbeWarning,
            stacklevel=4,
        )


def race_from_spec(
    X: np.ndarray,
    Y: np.ndarray,
    spec: PathwaySpec,
    *,
    context: Any = None,
    lr: float | None = None,
    epochs: int | None = None,
    init: Any = None,
    rule: str = "joint",
    method: str = "auto",
    d_scale: Any = None,
    time: str = "discrete",
    step: str = "adaptive",
    check_lr: bool = True,
    tol: float = DEFAULT_TOL,
) -> xr.Dataset:
    """:func:`race_dynamics` of the pathways of a resolved :class:`PathwaySpec` (e.g. a fitted
    GDLN's ``spec_``), on checked float arrays *X*, *Y*; the other arguments as there
    (``init`` may also be a :class:`~relu_probe.reln.exact.MeanState`). ``lr`` is checked
    against the largest stable rate, and the defaults of ``lr`` / ``epochs`` derived
    (:func:`relu_probe.reln.schedule.resolve_schedule`), before anything is computed."""
    lr, epochs, tol, method, step = _checked_race_args(spec, lr=lr, epochs=epochs, rule=rule, method=method,
                                                       d_scale=d_scale, time=time, step=step, tol=tol)
    if rule == "residual" and not spec.shared.any():
        warn_residual_is_joint(spec.gating.names, stacklevel=4)
    state = mean_state_of(init, spec)
    pi0 = state.pi0
    problem = stability_problem(spec, X, rule)  # the paths, an output bias's direct path included
    schedule = resolve_schedule(problem, Y, lr=lr, epochs=epochs, pi0=pi0, check_lr=check_lr,
                                what="race_dynamics", curve=exact_curve(X, Y, spec, rule, state))
    lr, epochs, lr_bound = schedule.lr, schedule.epochs, schedule.lr_bound
    paths = _Paths(problem.G, problem.masks, problem.shared, problem.linear)
    # the constant input: read by every pathway with hidden biases, else by the direct path only
    X_design = problem.X
    P = X.shape[0]
    tau = 1.0 / (lr * P)
    residual = problem.own is not None
    a0, b0 = state.a0, state.b0
    if paths.n_pathways > spec.n_pathways:  # the direct path: starts at the biases' initial (mean) value 0
        pi0, a0, b0 = np.append(pi0, 0.0), np.append(a0, 0.0), np.append(b0, 0.0)
    target = _targets(X_design, Y, paths, residual=residual, tol=tol)
    div = _d_divisor(d_scale, spec, context) if d_scale is not None else np.ones(paths.n_pathways)
    target["d_eff"] = target["d"] / div[:, None]
    L0 = 0.5 * float(np.vdot(Y, Y))
    extra: dict[str, Any] = {}
    if method == "exact" and (spec.hidden_bias or spec.output_bias):
        # the constant input's own initial scale and the one-layer direct path: the exact
        # map-space recursion, epoch by epoch
        step = "exact"
        bias_b0 = ((spec.bias_init_scale ** 2) * np.array([w[0] for w in spec.widths], float)
                   if spec.hidden_bias else None)
        loss, pi = _live(X_design, Y, paths, a0, b0, lr=lr, epochs=epochs, residual=residual, bias_b0=bias_b0)
        off_mode, asymptote = 0.0, float(loss[-1])
    elif method == "exact":
        exact = exact_from_spec(X, Y, spec, rule=rule, lr=lr, epochs=epochs, init=state, step=step, check_lr=False)
        loss = exact["loss"].values
        n_modes = target["s"].shape[1]
        pi = np.zeros((spec.n_pathways, n_modes, epochs))
        q = min(exact.sizes["mode"], n_modes)
        pi[:, :q] = exact["singular_values"].values[:, :q]
        extra["maps"] = exact["maps"]
        off_mode, asymptote = 0.0, float(loss[-1])
    else:
        if method == "closed":
            pi = _closed(target, pi0, tau, epochs, time)
        else:
            pi = _race(target, paths, div, pi0, tau, epochs, time, residual=residual, n_samples=P)
        loss = _mode_loss(pi, target, L0=L0, n_samples=P, lr=lr)
        off_mode = _off_mode(pi, target, paths, residual=residual)
        asymptote = _closed_asymptote(target, L0=L0, n_samples=P) if method == "closed" else float(loss[-1])
    ds = _race_dataset(X_design, Y, spec, paths, target, pi, loss, pi0, tau, lr=lr, rule=rule, method=method,
                       time=time, d_scale=d_scale, off_mode=off_mode)
    ds = ds.assign(extra)
    ds.attrs.update({"lr_bound": lr_bound, "step": step if method == "exact" else "", "init": state.source,
                     "asymptote": asymptote, **schedule.attrs()})
    _warn_if_approximate(method, asymptote, off_mode, X_design, Y, spec, paths)
    return ds


@dataclass(frozen=True)
class _Paths:
    """The paths the race integrates: the pathways (effective gates, design input masks), and
    with an output bias the ungated direct path last (gate 1, reading only the constant input;
    ``linear``: a one-layer path, ``τ dπ/dt = s − Σ K π``)."""

    G: np.ndarray
    masks: np.ndarray
    shared: np.ndarray
    linear: np.ndarray

    @property
    def n_pathways(self) -> int:
        return int(self.G.shape[0])


# ----------------------------------------------------------------------------- steps
def _targets(X: np.ndarray, Y: np.ndarray, paths: _Paths, *, residual: bool, tol: float) -> dict[str, np.ndarray]:
    """The correlation each pathway races on and its modes.

    Every pathway races on ``Y``; with the residual rule the context pathways race on the
    *final* residual of the shared pathways, ``R = Y − Ŷ_shared`` with the shared maps at their
    converged values ``Σ_α (s_α/d_α) u_α v_αᵀ`` (their coupled fixed point when there are
    several). Singular values below ``tol × max s`` are set to 0.
    """
    G, masks = paths.G, paths.masks
    n_modes = min(Y.shape[1], X.shape[1])
    syx_Y, sx = gated_correlations(X, Y, G, masks)
    syx = syx_Y.copy()
    U, s, V, d = modes(syx_Y, sx, n_modes)
    if residual:
        sh = np.flatnonzero(paths.shared)
        smax = max(float(s.max()), 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            final = np.where(s[sh] > tol * smax, s[sh] / d[sh], 0.0)
        if len(sh) > 1:
            final = coupled_fixed_point(U[sh], s[sh], V[sh], sx[np.ix_(sh, sh)], tol * smax)
        shared_maps = np.einsum("poa,pa,pfa->pof", U[sh], final, V[sh])
        R = Y - predict_outputs(G[sh], shared_maps, masks[sh], X)
        syx_R, _ = gated_correlations(X, R, G, masks)
        ctx = np.flatnonzero(~paths.shared)
        syx[ctx] = syx_R[ctx]
        U[ctx], s[ctx], V[ctx], d[ctx] = modes(syx_R[ctx], sx[np.ix_(ctx, ctx)], n_modes)
    s_max = max(float(s.max()), 1e-300)
    s = np.where(s > tol * s_max, s, 0.0)
    return {"syx": syx, "syx_Y": syx_Y, "sx": sx, "U": U, "s": s, "V": V, "d": d}


def _d_divisor(d_scale: Any, spec: PathwaySpec, context: Any) -> np.ndarray:
    """Divisor of each pathway's ``d`` (1 for the shared ones): ``k − 1``, the mean number of
    context pathways open on the pathway's samples (``"overlap"``), or a number."""
    gating = spec.gating
    div = np.ones(gating.n_pathways)
    ctx_paths = ~spec.shared
    if isinstance(d_scale, str):
        check_choice("d_scale", d_scale, ["k-1", "overlap"])
        if d_scale == "k-1":
            k = len(np.unique(sample_groups(gating.G, context)))
            if k < 2:
                raise ValueInputError("`d_scale='k-1'` needs at least two contexts; found one.")
            div[ctx_paths] = k - 1
        else:
            cover = gating.G[ctx_paths].sum(0)  # context pathways open per sample
            for p in np.flatnonzero(ctx_paths):
                open_ = gating.G[p] == 1
                div[p] = cover[open_].mean() if open_.any() else 1.0
        return div
    div[ctx_paths] = check_real("d_scale", d_scale, minimum=0.0, strict=True)
    return div


def _closed(target: dict[str, np.ndarray], pi0: np.ndarray, tau: float, epochs: int, time: str) -> np.ndarray:
    """``method="closed"``: Eq. 1 for every mode, uncoupled (:func:`closed_form`)."""
    s, d = target["s"], target["d_eff"]
    n_paths, n_modes = s.shape
    return closed_form(
        s.reshape(-1), d.reshape(-1), np.repeat(pi0, n_modes), tau, np.arange(epochs), time=time
    ).reshape(n_paths, n_modes, epochs)


def _race(target: dict[str, np.ndarray], paths: _Paths, div: np.ndarray, pi0: np.ndarray, tau: float,
          epochs: int, time: str, *, residual: bool, n_samples: int) -> np.ndarray:
    r"""``method="race"``: Eq. 2, ``τ dπ_{pα}/dt = 2 π_{pα} (s_{pα} − Σ_{qβ} K_{pα,qβ} π_{qβ})`` with
    ``K_{pα,qβ} = (u_{pα}ᵀ u_{qβ})(v_{qβ}ᵀ Σ^x(q,p) v_{pα})`` computed from the data, integrated
    numerically (:func:`_integrate_race`). Under the residual rule shared and context pathways
    do not couple (the context ones race on the shared pathways' final residual). Modes with
    ``s = 0`` only decay (:func:`closed_form`)."""
    U, V, sx, s, d_eff = target["U"], target["V"], target["sx"], target["s"], target["d_eff"]
    n_paths, n_modes = s.shape
    N = n_paths * n_modes
    K = coupling(U, V, sx).reshape(N, N).copy()
    allow = np.ones((n_paths, n_paths), dtype=bool)
    if residual:
        allow[np.ix_(paths.shared, ~paths.shared)] = False  # shared ignores contexts
        allow[np.ix_(~paths.shared, paths.shared)] = False  # final residual: shared done
    K = np.where(np.repeat(np.repeat(allow, n_modes, 0), n_modes, 1), K, 0.0)
    # the d_scale divisor applies to a pathway's coupling with itself
    own_block = np.repeat(np.repeat(np.diag(1.0 / div), n_modes, 0), n_modes, 1)
    same = np.repeat(np.repeat(np.eye(n_paths, dtype=bool), n_modes, 0), n_modes, 1)
    K = np.where(same, K * own_block, K)
    active = (s > 0).reshape(-1)
    pi = np.zeros((N, epochs))
    pi0_modes = np.repeat(pi0, n_modes)
    linear = np.repeat(paths.linear, n_modes)
    if active.any():
        pi[active] = _integrate_race(s.reshape(-1)[active], K[np.ix_(active, active)], pi0_modes[active], tau,
                                     epochs, time, linear=linear[active])
    if (~active).any():
        pi[~active] = closed_form(np.zeros((~active).sum()), d_eff.reshape(-1)[~active], pi0_modes[~active], tau,
                                  np.arange(epochs), time=time)
    return pi.reshape(n_paths, n_modes, epochs)


def _mode_loss(pi: np.ndarray, target: dict[str, np.ndarray], *, L0: float, n_samples: int,
               lr: float | None) -> np.ndarray:
    r"""The loss of mode strengths *pi*, exactly:

    .. math:: L(t) = L_0 - \sum_{pα} c_{pα} π_{pα} + \tfrac12 \sum_{pα,qβ} π_{pα} Q_{pα,qβ} π_{qβ},\quad
              c_{pα} = P\, u_{pα}^\top Σ^{yx}_Y(p) v_{pα},\quad
              Q = P \cdot \mathrm{coupling}(U, V, Σ^x)

    (always against ``Y``). Modes with ``s = 0`` stay below π0: they enter the linear term
    exactly, the quadratic one only through their coupling with active modes at π0 (an
    :math:`O(π_0^2)` omission). A curve that diverges is refused (naming ``lr``; no check
    when *lr* is None).
    """
    U, V, s = target["U"], target["V"], target["s"]
    P = n_samples
    c = P * np.einsum("poa,pof,pfa->pa", U, target["syx_Y"], V)
    n_paths, n_modes, epochs = pi.shape
    N = n_paths * n_modes
    Qf = (P * coupling(U, V, target["sx"])).reshape(N, N)
    flat = pi.reshape(N, epochs)
    active = (s > 0).reshape(-1)
    fa = flat[active]
    quad = np.einsum("nt,nt->t", fa, Qf[np.ix_(active, active)] @ fa)
    if (~active).any():
        quad += 2.0 * np.einsum("nt,n->t", fa, Qf[np.ix_(active, ~active)] @ flat[~active, 0])
    loss = L0 - c.reshape(-1) @ flat + 0.5 * quad
    if lr is not None:
        check_divergence(loss, L0, lr=lr, what="the predicted dynamics")
    return loss


def _off_mode(pi: np.ndarray, target: dict[str, np.ndarray], paths: _Paths, *, residual: bool) -> float:
    """The off-mode share of the drive along the predicted trajectory
    (:func:`relu_probe.reln.correlations.off_mode_gradient`)."""
    couple = np.ones((paths.n_pathways, paths.n_pathways), dtype=bool)
    if residual:  # the final-residual model: shared and context pathways race apart
        couple[np.ix_(paths.shared, ~paths.shared)] = False
        couple[np.ix_(~paths.shared, paths.shared)] = False
    return off_mode_gradient(pi, target["U"], target["V"], target["syx"], target["sx"], couple)


def _closed_asymptote(target: dict[str, np.ndarray], *, L0: float, n_samples: int) -> float:
    """The closed form's loss at ``t → ∞``: every mode with ``s > 0`` at ``s/d``, the others
    at 0 (:func:`_mode_loss` of those strengths)."""
    s, d = target["s"], target["d_eff"]
    with np.errstate(divide="ignore", invalid="ignore"):
        pi_inf = np.where((s > 0) & (d > 0), s / d, 0.0)
    return float(_mode_loss(pi_inf[..., None], target, L0=L0, n_samples=n_samples, lr=None)[0])


def _live(X: np.ndarray, Y: np.ndarray, paths: _Paths, a0: np.ndarray, b0: np.ndarray, *,
          lr: float, epochs: int, residual: bool, bias_b0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact dynamics with biases: exact gradient descent of the pathway maps, epoch by
    epoch (:func:`gram_simulate`) from ``A = a0·I``, ``B = b0·I`` (on each pathway's inputs;
    the constant input at ``bias_init_scale² h``), ``M = 0``, on the row space of ``Y`` (the
    part of ``Y`` outside it adds a constant to the loss); with the residual rule the shared
    pathways follow their own error."""
    n_paths, n_in = paths.n_pathways, X.shape[1]
    masks = paths.masks
    n_modes = min(Y.shape[1], n_in)
    basis = row_basis(Y, rank(Y))  # (m, r)
    Yr = Y @ basis
    A0 = a0[:, None, None] * np.eye(Yr.shape[1])[None]
    diag = b0[:, None] * masks
    if bias_b0 is not None and masks.shape[1] > 0 and bias_b0.size:  # hidden biases: the constant column
        n_real = bias_b0.size
        diag[:n_real, -1] = bias_b0 * masks[:n_real, -1]
    B0 = diag[:, :, None] * np.eye(n_in)[None]
    M0 = np.zeros((n_paths, Yr.shape[1], n_in))
    loss, svs, _ = gram_simulate(X, Yr, paths.G, masks, lr=lr, epochs=epochs, A0=A0, B0=B0, M0=M0,
                                 own_error=paths.shared if residual else None, n_sv=n_modes, linear=paths.linear)
    outside = Y - Yr @ basis.T
    return loss + 0.5 * float(np.vdot(outside, outside)), svs


def _race_dataset(X: np.ndarray, Y: np.ndarray, spec: PathwaySpec, paths: _Paths, target: dict[str, np.ndarray],
                  pi: np.ndarray, loss: np.ndarray, pi0: np.ndarray, tau: float, *, lr: float, rule: str, method: str,
                  time: str, d_scale: Any, off_mode: float) -> xr.Dataset:
    """The result of :func:`race_dynamics` (its Returns section): per pathway; the direct path
    of an output bias, when there is one, as ``output_bias`` (its strength ``‖b‖`` over
    epochs) and ``output_bias_s``."""
    n = spec.n_pathways
    s, d_eff = target["s"][:n], target["d_eff"][:n]
    data = {
        "loss": ("epoch", np.asarray(loss, dtype=np.float64)),
        "singular_values": (("pathway", "mode", "epoch"), pi[:n]),
        "s": (("pathway", "mode"), s),
        "d": (("pathway", "mode"), d_eff),
        "half_rise": (("pathway", "mode"), _half_rise(s, d_eff, pi0[:n, None], tau, time)),
        "pi0": ("pathway", pi0[:n]),
        "sigma_yx": (("pathway", "output", "feature"), target["syx"][:n]),
        "sigma_yx_Y": (("pathway", "output", "feature"), target["syx_Y"][:n]),
        "sigma_x": (("pathway", "pathway_", "feature", "feature_"), target["sx"][:n, :n]),
        "U": (("pathway", "output", "mode"), target["U"][:n]),
        "V": (("pathway", "feature", "mode"), target["V"][:n]),
        "inputs": (("pathway", "feature"), paths.masks[:n] > 0),
        "gates": (("pathway", "sample"), paths.G[:n]),
    }
    if paths.n_pathways > n:
        data["output_bias"] = ("epoch", pi[n, 0])
        data["output_bias_s"] = ((), float(target["s"][n, 0]))
    return xr.Dataset(
        data,
        coords={**spec.coords(), "mode": np.arange(s.shape[1]), "epoch": np.arange(pi.shape[-1])},
        attrs={
            "tau": tau,
            "L0": 0.5 * float(np.vdot(Y, Y)),
            "lr": lr,
            "rule": rule,
            "method": method,
            "time": time,
            "n_samples": X.shape[0],
            "d_scale": "none" if d_scale is None else str(d_scale),
            "off_mode_gradient": float(off_mode),
            "hidden_bias": int(spec.hidden_bias),
            "output_bias": int(spec.output_bias),
        },
    )
