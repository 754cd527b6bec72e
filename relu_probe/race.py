"""The neural race: predict a GDLN's learning from the gated correlations of the data.

Notation (paper-brief §1–§2). ``P`` samples, inputs ``x_μ``, targets ``y_μ``; pathway ``p``
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
``"closed"``  Eq. 1 for every mode (pathways uncoupled).
``"race"``    Eq. 2 with the data-computed couplings ``K`` (integrated numerically).
``"live"``    Exact gradient descent of the pathway maps, reduced to Gram matrices
              (``M_p = W2 W1``, ``A_p = W2 W2ᵀ``, ``B_p = W1ᵀ W1`` evolve in closed form, see
              :func:`gram_simulate`) from the mean initial state ``A = a0·I``,
              ``B = b0·I``, ``M = 0`` — the infinite-width limit of the GDLN at fixed
              ``σ² h``. It needs no alignment assumption; with ``rule="residual"`` the context
              pathways chase the shared pathway's *live* residual from t = 0.

Training rules (as :class:`relu_probe.GDLN`)
--------------------------------------------
``"joint"``     every pathway races on ``Y``; couplings between all pathways.
``"residual"``  the paper's rule: shared pathways race on ``Y`` alone; the others on the
                residual ``R = Y − Ŷ_shared``. With ``"closed"``/``"race"`` that residual is the
                *final* one (the shared pathway's converged map ``Σ_α (s_α/d_α) u_α v_αᵀ``),
                as in the paper's closed form; with ``"closed"``, ``d_scale`` may divide the
                context pathways' ``d`` (``"k-1"``: the paper's ``d/(k−1)``). ``"live"`` uses
                the live residual.

Diagnostics: ``attrs["off_mode_gradient"]`` is the largest share of the drive that the exact
gradient puts outside the pathways' modes along the predicted trajectory (0 when Assumption
2.1 holds); above 5 % ``"closed"``/``"race"`` warn and point to ``"live"``.

The predicted loss is computed exactly from the mode strengths::

    L(t) = L0 − Σ_{pα} c_{pα} π_{pα} + ½ Σ_{pα,qβ} π_{pα} Q_{pα,qβ} π_{qβ},
    c_{pα} = P u_{pα}ᵀ Σ^{yx}_Y(p) v_{pα},   Q_{pα,qβ} = P (u_{pα}ᵀ u_{qβ}) v_{pα}ᵀ Σ^x(p,q) v_{qβ}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import warnings

import numpy as np
import xarray as xr

from ._gates import Gating, check_xy, per_pathway, per_role, resolve_gates, sample_groups
from ._validation import check_choice, check_int, check_real
from .errors import ReluProbeWarning, ValueInputError

__all__ = ["race_dynamics", "gated_correlations", "closed_form", "gram_simulate"]

#: Relative threshold below which a singular value counts as zero.
DEFAULT_TOL = 1e-9

#: Off-mode gradient (share of the drive) above which the mode race warns (Assumption 2.1).
OFF_MODE_WARN = 0.05


# ----------------------------------------------------------------------------- pieces
def gated_correlations(
    X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gated correlations ``Σ^{yx}(p)`` (pathway, output, feature) of targets ``T`` and
    ``Σ^x(q, p)`` (pathway, pathway, feature, feature), averaged over all ``P`` samples."""
    P = X.shape[0]
    Xm = X[None, :, :] * masks[:, None, :]  # (p, s, f)
    Xg = Xm * G[:, :, None]
    syx = np.einsum("so,psf->pof", T, Xg) / P
    sx = np.einsum("qsf,psg->qpfg", Xg, Xg) / P
    return syx, sx


def _modes(
    syx: np.ndarray, sx: np.ndarray, n_modes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SVD of each pathway's correlation and the matching d = vᵀ Σ^x(p,p) v."""
    U, s, Vt = np.linalg.svd(syx, full_matrices=False)  # (p,o,r), (p,r), (p,r,f)
    U, s, V = U[:, :, :n_modes], s[:, :n_modes], np.swapaxes(Vt, 1, 2)[:, :, :n_modes]
    diag = np.einsum("pfa,pfg,pga->pa", V, sx[np.arange(len(s)), np.arange(len(s))], V)
    return U, s, V, diag


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
) -> np.ndarray:
    """Integrate ``d ln π/dt = rate(s − K π)`` over epochs 0..epochs−1; returns (N, epochs).

    ``rate(e) = 2e/τ`` (continuous) or ``2 ln(1 + e/τ)`` (discrete). Uses LSODA (scipy's
    ``odeint``) with the analytic Jacobian in ``y = ln π``.
    """
    from scipy.integrate import odeint

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
        A = A + eta * (EMt + np.swapaxes(EMt, 1, 2)) + eta2 * (EB @ Et)
        B = B + eta * (EtM + np.swapaxes(EtM, 1, 2)) + eta2 * (Et @ AE)
        M = M_new
        if not np.isfinite(loss[t]) or loss[t] > 1e6 * max(loss[0], 1.0):
            raise ValueInputError(
                f"the predicted dynamics diverged (loss {loss[t]:.3g} at epoch {t}); lower the "
                f"learning rate `lr` (got {lr})."
            )
    return loss, svs, M


# ----------------------------------------------------------------------------- public
def _resolve_init(
    init: Any,
    gating: Gating,
    shared: np.ndarray,
    hidden: Any,
    init_scale: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """π0 per pathway, and the Gram initial scales (a0 = σ_out² h, b0 = σ_in² h)."""
    n = gating.n_pathways
    if init is not None:
        if isinstance(init, Mapping):
            vals = per_role("init", init, [shared[p] for p in range(n)], require_both=True)
        else:
            vals = per_pathway("init", init, n)
        pi0 = np.array([check_real("init", v, minimum=0.0, strict=True) for v in vals])
        # the mean-field state A = B = 2π0·I grows like Eq. 1 from π0 (see below)
        return pi0, 2.0 * pi0, 2.0 * pi0
    hs = [check_int("hidden", h, minimum=1) for h in per_pathway("hidden", hidden, n, kind="integer")]
    if isinstance(init_scale, Mapping):
        raw = per_role("init_scale", init_scale, [shared[p] for p in range(n)])
    else:
        raw = per_pathway("init_scale", init_scale, n)
    default = 0.005 / sum(hs)
    a0, b0 = np.empty(n), np.empty(n)
    for p, (h, sc) in enumerate(zip(hs, raw)):
        if sc is None:
            s_in = s_out = default
        elif np.isscalar(sc):
            s_in = s_out = check_real("init_scale", sc, minimum=0.0, strict=True)
        else:
            vals = list(sc)
            if len(vals) != 2:
                raise ValueInputError(
                    f"`init_scale[{p}]` must be one value or (input-layer, output-layer) values, got "
                    f"{len(vals)} values."
                )
            s_in, s_out = (check_real("init_scale", v, minimum=0.0, strict=True) for v in vals)
        b0[p] = s_in**2 * h
        a0[p] = s_out**2 * h
    # a mean-field pathway (A = a0·I, B = b0·I, M = 0) grows as π ≈ ((a0 + b0)/2)·sinh(r t),
    # i.e. like Eq. 1 started from π0 = (a0 + b0)/4
    return (a0 + b0) / 4.0, a0, b0


def _d_divisor(
    d_scale: Any, gating: Gating, shared: np.ndarray, context: Any
) -> np.ndarray:
    n = gating.n_pathways
    div = np.ones(n)
    if d_scale is None:
        return div
    ctx_paths = ~shared
    if isinstance(d_scale, str):
        check_choice("d_scale", d_scale, ["k-1", "overlap"])
        if d_scale == "k-1":
            groups = sample_groups(gating.G, context)
            k = len(np.unique(groups))
            if k < 2:
                raise ValueInputError("`d_scale='k-1'` needs at least two contexts; found one.")
            div[ctx_paths] = k - 1
        else:
            cover = gating.G[ctx_paths].sum(0)  # context pathways open per sample
            for p in np.flatnonzero(ctx_paths):
                open_ = gating.G[p] == 1
                div[p] = cover[open_].mean() if open_.any() else 1.0
        return div
    value = check_real("d_scale", d_scale, minimum=0.0, strict=True)
    div[ctx_paths] = value
    return div


def race_dynamics(
    X: Any,
    Y: Any,
    gates: Any,
    *,
    lr: float = 1e-3,
    epochs: int = 8001,
    init: Any = None,
    rule: str = "joint",
    method: str | None = None,
    context: Any = None,
    inputs: Any = None,
    shared: Any = None,
    d_scale: Any = None,
    time: str = "discrete",
    hidden: Any = 100,
    init_scale: Any = None,
    tol: float = DEFAULT_TOL,
) -> xr.Dataset:
    """Predict the learning dynamics of a GDLN from the gated correlations of the data.

    See the module docstring for the equations.

    Parameters
    ----------
    X, Y : array-like (sample, feature), (sample, output)
    gates : array-like (pathway, sample), DataArray, or list of context sets
        As for :class:`relu_probe.GDLN` (context sets need ``context``).
    lr : float, default=1e-3
        Learning rate of the gradient descent being predicted (``τ = 1/(lr·P)``).
    epochs : int, default=8001
    init : float, sequence, or mapping, optional
        Initial mode strength ``π0`` (one value, one per pathway, or
        ``{"shared": π0_s, "context": π0_c}``). Default: the value that matches a GDLN with
        ``hidden`` units and weight stds ``init_scale``, ``π0 = (σ_in² + σ_out²) h / 4``
        (a randomly initialised pathway grows as ``((σ_in² + σ_out²) h / 2) sinh(r t)``, i.e.
        like Eq. 1 from that π0). For ``method="live"`` the initial state is
        ``A = σ_out² h I``, ``B = σ_in² h I`` (or ``2 π0 I`` when ``init`` is given), ``M = 0``.
    rule : {"joint", "residual"}, default="joint"
    method : {"closed", "race", "live"}, optional
        Default ``"closed"`` for ``rule="residual"`` (the paper's closed form), ``"race"`` for
        ``rule="joint"``.
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
        Growth per epoch of gradient descent, or the gradient-flow rate of Eq. 1/2.
    hidden, init_scale :
        The GDLN's hidden width and initial weight std (one value, one per pathway, or a
        mapping ``{"shared": …, "context": …}``; a pair gives input- and output-layer stds),
        used when ``init`` is not given. Default ``init_scale = 0.005 / Σ_p hidden_p``.
    tol : float, default=1e-9
        Singular values below ``tol × max s`` are treated as zero.

    Returns
    -------
    xarray.Dataset
        ``loss`` (epoch); ``singular_values`` (pathway, mode, epoch): predicted ``π``;
        ``s``, ``d``, ``half_rise`` (pathway, mode); ``pi0`` (pathway); ``sigma_yx``
        (pathway, output, feature): the correlation each pathway races on (``Y``, or the
        final residual for the residual rule's context pathways); ``sigma_yx_Y``: the same for
        ``Y``; ``sigma_x`` (pathway, pathway_, feature, feature_); ``U`` (pathway, output,
        mode), ``V`` (pathway, feature, mode); ``inputs`` (pathway, feature). Attrs: ``tau``,
        ``L0``, ``lr``, ``rule``, ``method``, ``time``, ``n_samples``.

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> ds = rp.race_dynamics(X, Y, [(0, 1, 2), (0, 1), (1, 2), (0, 2)],
    ...                       context=coords["context"], rule="residual", inputs="auto",
    ...                       init={"shared": 5e-9, "context": 5e-5}, d_scale="k-1",
    ...                       time="continuous")
    >>> round(float(ds.singular_values.sel(pathway=0, mode=3).isel(epoch=-1)), 3)
    3.055
    """
    from .gdln import _resolve_inputs, _resolve_shared

    Xn, Yn = check_xy(X, Y)
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    epochs = check_int("epochs", epochs, minimum=1)
    check_choice("rule", rule, ["joint", "residual"])
    if method is None:
        method = "closed" if rule == "residual" else "race"
    check_choice("method", method, ["closed", "race", "live"])
    check_choice("time", time, ["discrete", "continuous"])
    tol = check_real("tol", tol, minimum=0.0)
    gating = resolve_gates(gates, Xn.shape[0], context)
    shared_mask = _resolve_shared(shared, gating)
    masks = _resolve_inputs(inputs, gating, shared_mask, Xn, context).astype(np.float64)
    if d_scale is not None and (rule != "residual" or method != "closed"):
        raise ValueInputError(
            "`d_scale` applies to rule='residual' with method='closed' (the paper's uncoupled "
            "closed form, where d/(k−1) stands in for the coupling the race computes); got "
            f"rule={rule!r}, method={method!r}."
        )
    pi0, a0, b0 = _resolve_init(init, gating, shared_mask, hidden, init_scale)

    P, n_in = Xn.shape
    m = Yn.shape[1]
    n_paths = gating.n_pathways
    n_modes = min(m, n_in)
    tau = 1.0 / (lr * P)
    G = gating.G
    L0 = 0.5 * float(np.vdot(Yn, Yn))
    residual = rule == "residual" and bool(shared_mask.any()) and bool((~shared_mask).any())

    syx_Y, sx = gated_correlations(Xn, Yn, G, masks)
    # correlation each pathway races on
    syx = syx_Y.copy()
    U, s, V, d = _modes(syx_Y, sx, n_modes)
    if residual:
        # final residual of the shared pathways (their converged joint map)
        sh = np.flatnonzero(shared_mask)
        Ush, ssh, Vsh, dsh = U[sh], s[sh], V[sh], d[sh]
        smax = max(float(s.max()), 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            final = np.where(ssh > tol * smax, ssh / dsh, 0.0)
        if len(sh) > 1:
            # several shared pathways: solve their coupled fixed point by least squares
            final = _coupled_fixed_point(U[sh], s[sh], V[sh], sx[np.ix_(sh, sh)], tol * smax)
        shared_maps = np.einsum("poa,pa,pfa->pof", Ush, final, Vsh)
        Yhat_s = _predict(G[sh], shared_maps, masks[sh], Xn)
        R = Yn - Yhat_s
        syx_R, _ = gated_correlations(Xn, R, G, masks)
        ctx = np.flatnonzero(~shared_mask)
        syx[ctx] = syx_R[ctx]
        Uc, sc, Vc, dc = _modes(syx_R[ctx], sx[np.ix_(ctx, ctx)], n_modes)
        U[ctx], s[ctx], V[ctx], d[ctx] = Uc, sc, Vc, dc
    s_max = max(float(s.max()), 1e-300)
    s = np.where(s > tol * s_max, s, 0.0)
    # gradient descent on a balanced mode, π ← π (1 + (s − dπ)/τ)², is stable at its fixed
    # point only when s/τ = lr·P·s < 1 (the sharpness there is 2·P·s)
    if float(s.max()) * lr * P >= 1.0:
        raise ValueInputError(
            f"gradient descent at this learning rate diverges: lr·P·s_max = "
            f"{float(s.max()) * lr * P:.3g} >= 1 (s_max = {float(s.max()):.4g}, P = {P}); lower "
            f"the learning rate `lr` (got {lr}) below {1.0 / (float(s.max()) * P):.3g}."
        )

    div = _d_divisor(d_scale, gating, shared_mask, context) if d_scale is not None else np.ones(n_paths)
    d_eff = d / div[:, None]
    t_axis = np.arange(epochs)

    # loss coefficients (always against Y)
    c = P * np.einsum("poa,pof,pfa->pa", U, syx_Y, V)  # (p, a)
    Q = P * _coupling(U, V, sx)

    if method == "live":
        own = shared_mask if residual else None
        n_r = _rank(Yn)
        Qy = _row_basis(Yn, n_r)  # (m, r)
        Yr = Yn @ Qy
        A0 = a0[:, None, None] * np.eye(Yr.shape[1])[None]
        B0 = b0[:, None, None] * (np.eye(n_in)[None] * masks[:, None, :])
        M0 = np.zeros((n_paths, Yr.shape[1], n_in))
        loss, svs, Mfin = gram_simulate(
            Xn, Yr, G, masks, lr=lr, epochs=epochs, A0=A0, B0=B0, M0=M0, own_error=own, n_sv=n_modes
        )
        loss = loss + 0.5 * float(np.vdot(Yn - Yr @ Qy.T, Yn - Yr @ Qy.T))
        pi = svs
    else:
        N = n_paths * n_modes
        active = (s > 0).reshape(-1)
        if method == "closed":
            # closed_form treats every mode by its own branch (growth / decay / constant)
            pi = closed_form(
                s.reshape(-1), d_eff.reshape(-1), np.repeat(pi0, n_modes), tau, t_axis, time=time
            ).reshape(n_paths, n_modes, epochs)
        else:
            # K[pα, qβ] = (u_pα·u_qβ)(v_qβᵀ Σ^x(q,p) v_pα) = Q[pα, qβ] / P
            K = (Q / P).reshape(N, N).copy()
            # allowed couplings
            allow = np.ones((n_paths, n_paths), dtype=bool)
            if residual:
                allow[np.ix_(shared_mask, ~shared_mask)] = False  # shared ignores contexts
                allow[np.ix_(~shared_mask, shared_mask)] = False  # final residual: shared done
            allow_full = np.repeat(np.repeat(allow, n_modes, 0), n_modes, 1)
            K = np.where(allow_full, K, 0.0)
            # the d_scale divisor applies to a pathway's coupling with itself
            own_block = np.repeat(np.repeat(np.diag(1.0 / div), n_modes, 0), n_modes, 1)
            same = np.repeat(np.repeat(np.eye(n_paths, dtype=bool), n_modes, 0), n_modes, 1)
            K = np.where(same, K * own_block, K)
            pi = np.zeros((N, epochs))
            pi0_modes = np.repeat(pi0, n_modes)
            if active.any():
                pi[active] = _integrate_race(
                    s.reshape(-1)[active], K[np.ix_(active, active)], pi0_modes[active], tau, epochs, time
                )
            if (~active).any():
                pi[~active] = closed_form(
                    np.zeros((~active).sum()), d_eff.reshape(-1)[~active], pi0_modes[~active], tau, t_axis, time=time
                )
            pi = pi.reshape(n_paths, n_modes, epochs)
        flat = pi.reshape(N, epochs)
        Qf = Q.reshape(N, N)
        cf = c.reshape(-1)
        # modes with s = 0 stay below π0: they enter the linear term exactly, the quadratic
        # one only through their coupling with active modes at π0 (an O(π0²) omission)
        fa = flat[active]
        quad = np.einsum("nt,nt->t", fa, Qf[np.ix_(active, active)] @ fa)
        if (~active).any():
            quad += 2.0 * np.einsum("nt,n->t", fa, Qf[np.ix_(active, ~active)] @ flat[~active, 0])
        loss = L0 - cf @ flat + 0.5 * quad
        if not np.all(np.isfinite(loss)) or float(np.max(loss)) > 1e6 * max(L0, 1.0):
            raise ValueInputError(
                f"the predicted dynamics diverged; lower the learning rate `lr` (got {lr})."
            )

    off_mode = 0.0
    if method != "live":
        couple = np.ones((n_paths, n_paths), dtype=bool)
        if residual:  # the final-residual model: shared and context pathways race apart
            couple[np.ix_(shared_mask, ~shared_mask)] = False
            couple[np.ix_(~shared_mask, shared_mask)] = False
        off_mode = _off_mode_gradient(pi, U, V, syx, sx, couple)
        if off_mode > OFF_MODE_WARN:
            warnings.warn(
                f"race_dynamics(method={method!r}): the gated correlations are not mutually "
                "diagonalisable (Assumption 2.1) along this trajectory — the gradient of the "
                f"predicted state has {100 * off_mode:.1f}% of the drive outside the pathways' "
                "modes, so the mode picture is approximate. method='live' integrates the exact "
                "reduced gradient descent instead.",
                ReluProbeWarning,
                stacklevel=2,
            )

    half = _half_rise(s, d_eff, pi0[:, None], tau, time)
    pcoords: dict[str, Any] = {
        "pathway": np.arange(n_paths),
        "name": ("pathway", list(gating.names)),
        "shared": ("pathway", shared_mask.copy()),
    }
    if gating.contexts is not None:
        ctx_arr = np.empty(n_paths, dtype=object)
        ctx_arr[:] = gating.contexts
        pcoords["contexts"] = ("pathway", ctx_arr)
    ds = xr.Dataset(
        {
            "loss": ("epoch", np.asarray(loss, dtype=np.float64)),
            "singular_values": (("pathway", "mode", "epoch"), pi),
            "s": (("pathway", "mode"), s),
            "d": (("pathway", "mode"), d_eff),
            "half_rise": (("pathway", "mode"), half),
            "pi0": ("pathway", pi0),
            "sigma_yx": (("pathway", "output", "feature"), syx),
            "sigma_yx_Y": (("pathway", "output", "feature"), syx_Y),
            "sigma_x": (("pathway", "pathway_", "feature", "feature_"), sx),
            "U": (("pathway", "output", "mode"), U),
            "V": (("pathway", "feature", "mode"), V),
            "inputs": (("pathway", "feature"), masks.astype(bool)),
            "gates": (("pathway", "sample"), G),
        },
        coords={**pcoords, "mode": np.arange(n_modes), "epoch": t_axis},
        attrs={
            "tau": tau,
            "L0": L0,
            "lr": lr,
            "rule": rule,
            "method": method,
            "time": time,
            "n_samples": P,
            "d_scale": "none" if d_scale is None else str(d_scale),
            "off_mode_gradient": float(off_mode),
        },
    )
    return ds


def _coupling(U: np.ndarray, V: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """``(u_pα·u_qβ) (v_pαᵀ Σ^x(p,q) v_qβ)`` as an array (p, α, q, β)."""
    uu = np.einsum("poa,qob->paqb", U, U, optimize=True)
    vsv = np.einsum("pfa,pqfg,qgb->paqb", V, sx, V, optimize=True)
    return uu * vsv


def _off_mode_gradient(
    pi: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    target: np.ndarray,
    sx: np.ndarray,
    couple: np.ndarray,
    n_checks: int = 9,
) -> float:
    """How far the exact gradient leaves the pathways' modes along the predicted trajectory.

    At ``n_checks`` epochs, with ``M_p = U_p diag(π_p) V_pᵀ``, the gradient of the modelled
    objective is ``E_p = Σ^{yx}_T(p) − Σ_{q coupled to p} M_q Σ^x(q, p)`` (``T`` the target
    each pathway races on). Its part off the modes, ``E_p − U_p diag(U_pᵀ E_p V_p) V_pᵀ``,
    vanishes when Assumption 2.1 holds. Returns ``max_t max_p ‖off-mode part‖_F /
    max_p ‖Σ^{yx}_T(p)‖_F``.
    """
    epochs = pi.shape[-1]
    scale = max(float(np.sqrt((target**2).sum(axis=(1, 2))).max()), 1e-300)
    mask = couple.astype(float)
    Ut, Vt = np.swapaxes(U, 1, 2), np.swapaxes(V, 1, 2)
    worst = 0.0
    for t in np.unique(np.linspace(0, epochs - 1, n_checks).astype(int)):
        maps = (U * pi[:, None, :, t]) @ Vt  # (p, o, f)
        prod = maps[:, None] @ sx  # (q, p, o, g): M_q Σ^x(q, p)
        E = target - np.einsum("pq,qpog->pog", mask, prod)
        on = ((Ut @ E) * Vt).sum(-1)  # diag(U_pᵀ E_p V_p)
        off = E - (U * on[:, None, :]) @ Vt
        worst = max(worst, float(np.sqrt((off**2).sum(axis=(1, 2))).max()) / scale)
    return worst


def _predict(G: np.ndarray, maps: np.ndarray, masks: np.ndarray, X: np.ndarray) -> np.ndarray:
    return np.einsum("ps,pof,pf,sf->so", G, maps, masks, X)


def _rank(Y: np.ndarray) -> int:
    sv = np.linalg.svd(Y, compute_uv=False)
    return int(np.sum(sv > DEFAULT_TOL * max(float(sv.max()), 1e-300)))


def _row_basis(Y: np.ndarray, r: int) -> np.ndarray:
    _, _, Vt = np.linalg.svd(Y, full_matrices=False)
    return Vt[: max(r, 1)].T.copy()


def _coupled_fixed_point(
    U: np.ndarray, s: np.ndarray, V: np.ndarray, sx: np.ndarray, tol: float
) -> np.ndarray:
    """Fixed point of the shared pathways' coupled race: solve K π = s on active modes."""
    n_p, n_m = s.shape
    K = _coupling(U, V, sx).reshape(n_p * n_m, n_p * n_m)
    flat = s.reshape(-1)
    act = flat > tol
    sol = np.zeros_like(flat)
    if act.any():
        sol[act] = np.linalg.lstsq(K[np.ix_(act, act)], flat[act], rcond=None)[0]
    return sol.reshape(n_p, n_m)
