"""Gated correlations and their modes: what the neural race of a GDLN is computed from.

Notation (Saxe, Sodhani & Lewallen, arXiv 2207.10430; Jarvis et al., arXiv 2503.06181).
``P`` samples, inputs ``x_μ``, targets ``y_μ``; pathway ``p`` has gate ``g_{pμ} ∈ {0,1}`` and
input mask ``m_p``, ``x̃_{pμ} = m_p ⊙ x_μ``. The gated correlations are averages over *all*
``P`` samples (the paper's convention)::

    Σ^{yx}(p)   = (1/P) Σ_μ g_{pμ} y_μ x̃_{pμ}ᵀ          = U_p S_p V_pᵀ   (SVD)
    Σ^{x}(q, p) = (1/P) Σ_μ g_{qμ} g_{pμ} x̃_{qμ} x̃_{pμ}ᵀ

Mode ``α`` of pathway ``p`` has ``s_{pα}`` (singular value), ``d_{pα} = v_{pα}ᵀ Σ^x(p,p)
v_{pα}`` and strength ``π_{pα}`` (the singular value of the pathway map ``M_p`` along
``u_{pα} v_{pα}ᵀ``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_TOL",
    "coupled_fixed_point",
    "coupling",
    "gated_correlations",
    "modes",
    "off_mode_gradient",
    "predict_outputs",
    "rank",
    "row_basis",
]

#: Relative threshold below which a singular value counts as zero.
DEFAULT_TOL = 1e-9


def gated_correlations(
    X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gated correlations of targets ``T`` (averages over all ``P`` samples, module docstring):

    ``Σ^{yx}(p) = (1/P) Σ_μ g_{pμ} t_μ x̃_{pμ}ᵀ`` (pathway, output, feature) and
    ``Σ^x(q, p) = (1/P) Σ_μ g_{qμ} g_{pμ} x̃_{qμ} x̃_{pμ}ᵀ`` (pathway, pathway, feature, feature),
    with ``x̃_{pμ} = m_p ⊙ x_μ``."""
    P = X.shape[0]
    Xm = X[None, :, :] * masks[:, None, :]  # (p, s, f)
    Xg = Xm * G[:, :, None]
    syx = np.einsum("so,psf->pof", T, Xg) / P
    sx = np.einsum("qsf,psg->qpfg", Xg, Xg) / P
    return syx, sx



def modes(
    syx: np.ndarray, sx: np.ndarray, n_modes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first *n_modes* modes of each pathway: the SVD ``Σ^{yx}(p) = U_p S_p V_pᵀ`` and
    ``d_{pα} = v_{pα}ᵀ Σ^x(p, p) v_{pα}``; returns ``(U, s, V, d)``."""
    U, s, Vt = np.linalg.svd(syx, full_matrices=False)  # (p,o,r), (p,r), (p,r,f)
    U, s, V = U[:, :, :n_modes], s[:, :n_modes], np.swapaxes(Vt, 1, 2)[:, :, :n_modes]
    diag = np.einsum("pfa,pfg,pga->pa", V, sx[np.arange(len(s)), np.arange(len(s))], V)
    return U, s, V, diag



def coupling(U: np.ndarray, V: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """The overlaps ``(u_{pα}·u_{qβ}) (v_{pα}ᵀ Σ^x(p,q) v_{qβ})`` as an array (p, α, q, β):
    ``P`` times them are the loss's quadratic coefficients ``Q``, and the race's couplings
    ``K_{pα,qβ}`` are them with ``Σ^x(q, p)``."""
    uu = np.einsum("poa,qob->paqb", U, U, optimize=True)
    vsv = np.einsum("pfa,pqfg,qgb->paqb", V, sx, V, optimize=True)
    return uu * vsv



def coupled_fixed_point(
    U: np.ndarray, s: np.ndarray, V: np.ndarray, sx: np.ndarray, tol: float
) -> np.ndarray:
    """Fixed point of coupled pathways' race ``τ dπ/dt = 2π(s − K π)``: solve ``K π = s`` (least
    squares) on the modes with ``s > tol``; the others stay at 0."""
    n_p, n_m = s.shape
    K = coupling(U, V, sx).reshape(n_p * n_m, n_p * n_m)
    flat = s.reshape(-1)
    act = flat > tol
    sol = np.zeros_like(flat)
    if act.any():
        sol[act] = np.linalg.lstsq(K[np.ix_(act, act)], flat[act], rcond=None)[0]
    return sol.reshape(n_p, n_m)



def off_mode_gradient(
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



def predict_outputs(G: np.ndarray, maps: np.ndarray, masks: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Outputs ``ŷ_μ = Σ_p g_{pμ} M_p (m_p ⊙ x_μ)`` of pathway maps *maps* (pathway, output, feature)."""
    return np.einsum("ps,pof,pf,sf->so", G, maps, masks, X)



def rank(Y: np.ndarray) -> int:
    """Numerical rank of *Y* (singular values above ``DEFAULT_TOL × max``)."""
    sv = np.linalg.svd(Y, compute_uv=False)
    return int(np.sum(sv > DEFAULT_TOL * max(float(sv.max()), 1e-300)))



def row_basis(Y: np.ndarray, r: int) -> np.ndarray:
    """An orthonormal basis (columns) of the first *r* right singular vectors of *Y*."""
    _, _, Vt = np.linalg.svd(Y, full_matrices=False)
    return Vt[: max(r, 1)].T.copy()
