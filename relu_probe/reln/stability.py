r"""What gradient descent on a gated linear network can reach, computed from the data alone:
the least-squares optimum of the gating and the largest stable learning rate.

Least-squares optimum
---------------------
With pathway maps ``M_p`` the outputs are ``Ŷ = Σ_p D_p X̃_p M_pᵀ`` (``D_p = diag(g_p)``,
``X̃_p`` the masked inputs): linear in the stacked maps, so the best loss reachable with those
gates and input masks is the least-squares residual of the design ``Xcat = [D_1X̃_1, …]``::

    L* = ½ ‖Y − Ŷ*‖²,   Ŷ* = Xcat Xcat⁺ Y

Largest stable learning rate
----------------------------
At a minimum every pathway's gradient ``E_p = Σ_μ g_{pμ} r_μ x̃_{pμ}ᵀ`` vanishes, so the
Hessian of the summed loss in the weights is the Gauss–Newton matrix ``JᵀJ`` (same nonzero
spectrum as ``JJᵀ``); gradient descent at rate ``η`` can settle there only if
``η < 2/λ_max``. For an output perturbation ``Δ = z uᵀ`` (``z`` over samples, ``‖u‖ = 1``)
and ``w_p = X̃_pᵀ D_p z``,

.. math::

    \langle Δ, JJᵀΔ \rangle = \sum_p u^T A_p u \,\lVert w_p\rVert^2 + w_p^T B_p w_p
    \;\ge\; 2 \sum_p |u^T M_p w_p|\, \lVert w_p \rVert
    \;\ge\; 2 \min_{p: w_p \ne 0} \lVert w_p\rVert \; \lvert u^T Ŷ^{*T} z \rvert

(``A_p = W2W2ᵀ``, ``B_p = W1ᵀW1``; ``a + b ≥ 2√(ab)`` and Cauchy–Schwarz), and
``Σ_p M_p w_p = Ŷ*ᵀ z`` is the same at every optimum. Hence every minimum, however its maps
are shared between pathways and however its weights are balanced, has

.. math:: λ_{max} \ge λ_{low} = \max_z \frac{2\, \lVert Ŷ^{*T} z\rVert\, \min_{p: w_p\ne0} \lVert X̃_p^T D_p z\rVert}{\lVert z \rVert^2}

(maximised over the leading left singular vectors of ``Ŷ*``, globally and within each group
of samples with the same open pathways). At ``η ≥ 2/λ_low`` gradient descent cannot converge
at all. For a single pathway whose modes are aligned with the input correlations,
``2/λ_low = 1/(P s_max)``, the familiar ``η P s_max < 1``.

The **largest stable learning rate** is ``2/λ_bal``, with ``λ_bal`` the largest eigenvalue at
the *balanced* factorisation of the minimum-norm optimum (``W1 = S^{1/2}Vᵀ``,
``W2 = U S^{1/2}``): the optimum gradient descent from a small initialisation approaches
(the imbalance ``W1W1ᵀ − W2ᵀW2`` is conserved by gradient flow). Above it that optimum is
unstable; gradient descent can then at best converge at the edge of stability, by leaving it
for a flatter, unbalanced optimum (Cohen et al. 2021, arXiv 2103.00065), no longer following
the small-step dynamics the predictions describe. Rates ``≥ 2/λ_bal`` are **refused** before
anything is simulated (``check_lr=False`` runs them anyway). ``λ_bal ≥ λ_low`` always; for
one aligned pathway they coincide up to the mixed directions. In map space ``JJᵀ = C W Cᵀ``
with ``C`` the map → output operator and ``W_p(g) = A_p g + g B_p`` (diagonal in the singular
bases of ``M_p``, entries ``σ_i + σ_j``): ``λ_bal`` is the top eigenvalue of
``W^{1/2} CᵀC W^{1/2}`` (``CᵀC`` the gated input Gram acting on the input side), found by
Lanczos iteration.

With the paper's ``"residual"`` rule the shared pathways are first fitted to ``Y`` alone and
the others to the remaining residual; the update is block-triangular and both bounds are the
smaller of the two groups'.

Direct (one-layer) paths
------------------------
An output bias is an ungated one-layer path from the constant input (:mod:`relu_probe.reln.spec`),
``ŷ_μ ← ŷ_μ + b``, stepped at the same rate, ``b ← b − η Σ_μ (ŷ_μ − y_μ)``. A one-layer path's
map is its weight, so its block of ``W`` is the identity (no ``σ_i + σ_j`` factor) and it adds
``X̃_bᵀ D_b`` itself to the sharpness: for the bias, gate 1 on all ``P`` samples and input 1,
its own curvature is ``Σ_μ 1 = P`` per output. ``linear`` marks such paths; ``λ_bal`` is then
the top eigenvalue of ``W^{1/2} CᵀC W^{1/2}`` with those identity blocks, so it is at least
``P`` with an output bias — a bound that ignored the direct path can be above ``2/P`` and
diverge. For ``λ_low`` a direct path contributes ``‖X̃_bᵀ D_b z‖²`` (its own curvature, a
lower bound by itself), and the two-layer argument above is kept for ``z`` orthogonal to the
direct paths' inputs (where they add nothing to ``Ŷ*ᵀz``).
"""

from __future__ import annotations

import numpy as np

from scipy.sparse.linalg import LinearOperator, eigsh

from ..errors import ValueInputError
from .gating import sample_groups
from .subspace import reduce_problem, row_basis

__all__ = ["least_squares_loss", "learning_rate_bounds", "max_stable_lr", "check_learning_rate",
           "never_converges_lr", "lr_refusal", "optimal_outputs"]

#: Leading singular vectors of the optimal outputs tried as ``z`` (globally and per group).
N_DIRECTIONS = 4


def _gated(X: np.ndarray, G: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(p, P, n) gated, masked inputs."""
    return G[:, :, None] * (X[None] * masks[:, None, :])


def _optimum(X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm least-squares stacked maps ``(p·n, m)`` and the optimal outputs ``Ŷ*``."""
    Xg = _gated(X, G, masks)
    Xc = Xg.transpose(1, 0, 2).reshape(X.shape[0], -1)
    coef = np.linalg.lstsq(Xc, T, rcond=None)[0]
    return coef, Xc @ coef


def optimal_outputs(X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``Ŷ* = Xcat Xcat⁺ T``: the outputs of the least-squares optimum of the gating."""
    return _optimum(X, T, G, masks)[1]


def least_squares_loss(X: np.ndarray, Y: np.ndarray, G: np.ndarray, masks: np.ndarray) -> float:
    """``L* = ½‖Y − Ŷ*‖²``: the best summed loss any pathway maps reach."""
    _, Yh = _optimum(X, Y, G, masks)
    R = Y - Yh
    return 0.5 * float(np.vdot(R, R))


def _lambda_low(X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray, linear: np.ndarray) -> float:
    """The optimum-independent lower bound ``λ_low`` of the module docstring (direct paths:
    their own curvature, and the two-layer bound for ``z`` orthogonal to their inputs)."""
    if G.shape[0] == 0 or not np.any(G) or not np.any(T):
        return 0.0
    _, Yh = _optimum(X, T, G, masks)
    if not np.any(Yh):
        return 0.0
    Xg = _gated(X, G, masks)
    P = X.shape[0]
    direct = Xg[linear].transpose(1, 0, 2).reshape(P, -1)  # (P, ·) the direct paths' gated inputs
    best = float(np.linalg.norm(direct, 2) ** 2) if direct.size else 0.0
    basis = row_basis(direct.T) if direct.size else np.zeros((P, 0))  # span of their inputs over samples
    cands = list(np.linalg.svd(Yh, full_matrices=False)[0].T[:N_DIRECTIONS])
    groups = sample_groups(G)
    for g in np.unique(groups):
        rows = groups == g
        for v in np.linalg.svd(Yh[rows], full_matrices=False)[0].T[:N_DIRECTIONS]:
            z = np.zeros(P)
            z[rows] = v
            cands.append(z)
    two_layer = Xg[~linear]
    for z in cands:
        z = z - basis @ (basis.T @ z)
        if float(z @ z) <= 1e-24:
            continue
        w = np.linalg.norm(np.einsum("psn,s->pn", two_layer, z), axis=1)
        active = w > 1e-12 * max(float(w.max()) if w.size else 0.0, 1e-300)
        if not active.any():
            continue
        best = max(best, 2.0 * float(np.linalg.norm(Yh.T @ z)) * float(w[active].min()) / float(z @ z))
    return best


def _lambda_balanced(X: np.ndarray, T: np.ndarray, G: np.ndarray, masks: np.ndarray, linear: np.ndarray) -> float:
    """Largest Hessian eigenvalue at the balanced minimum-norm optimum (module docstring);
    a direct path's block of ``W`` is the identity."""
    p = G.shape[0]
    if p == 0 or not np.any(G) or not np.any(T):
        return 0.0
    prob = reduce_problem(X, T, G, masks, np.zeros(p, dtype=bool))
    Xh, Tr = prob.Xh, prob.Yr  # (p, P, n), (P, r)
    P, n, r = Xh.shape[1], Xh.shape[2], Tr.shape[1]
    Xc = Xh.transpose(1, 0, 2).reshape(P, p * n)
    coef = np.linalg.lstsq(Xc, Tr, rcond=None)[0]  # (p·n, r) stacked Mᵀ
    M = coef.reshape(p, n, r).transpose(0, 2, 1)  # (p, r, n)
    U, s, Vt = np.linalg.svd(M, full_matrices=True)
    q = s.shape[1]
    a = np.zeros((p, r))
    b = np.zeros((p, n))
    a[:, :q] = s
    b[:, :q] = s
    root = np.sqrt(a[:, :, None] + b[:, None, :])  # √(σ_i + σ_j)
    root[linear] = 1.0  # a one-layer path: its map is its weight
    K = Xc.T @ Xc
    Ut, V = U.transpose(0, 2, 1), Vt.transpose(0, 2, 1)

    def half(z: np.ndarray) -> np.ndarray:  # W^{1/2}
        return U @ ((Ut @ z @ V) * root) @ Vt

    def apply(v: np.ndarray) -> np.ndarray:
        z = half(v.reshape(p, r, n))
        flat = z.transpose(1, 0, 2).reshape(r, p * n) @ K
        return half(flat.reshape(r, p, n).transpose(1, 0, 2)).reshape(-1)

    size = p * r * n
    if size <= 600:
        H = np.stack([apply(e) for e in np.eye(size)], axis=1)
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    op = LinearOperator((size, size), matvec=apply, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(size)
    return float(eigsh(op, k=1, which="LA", tol=1e-10, v0=v0, return_eigenvectors=False)[0])


def _groups(
    X: np.ndarray, Y: np.ndarray, G: np.ndarray, masks: np.ndarray, own: np.ndarray, linear: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(target, gates, masks, linear)`` of each independently converging group of pathways."""
    if own.any() and (~own).any():
        _, Yh = _optimum(X, Y, G[own], masks[own])
        return [(Y, G[own], masks[own], linear[own]), (Y - Yh, G[~own], masks[~own], linear[~own])]
    return [(Y, G, masks, linear)]


def _rate(lam: float) -> float:
    return float("inf") if lam <= 0 else 2.0 / lam


def _flags(flags: np.ndarray | None, n: int, name: str) -> np.ndarray:
    """A per-pathway bool mask (default all False)."""
    if flags is None:
        return np.zeros(n, dtype=bool)
    out = np.asarray(flags, dtype=bool)
    if out.shape != (n,):
        raise ValueInputError(f"`{name}` must hold one flag per pathway ({n}), got shape {out.shape}.")
    return out


def _all_groups(X: np.ndarray, Y: np.ndarray, G: np.ndarray, masks: np.ndarray, own: np.ndarray | None,
                linear: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    n = G.shape[0]
    return _groups(X, Y, G, masks, _flags(own, n, "own"), _flags(linear, n, "linear"))


def learning_rate_bounds(
    X: np.ndarray,
    Y: np.ndarray,
    G: np.ndarray,
    masks: np.ndarray,
    own: np.ndarray | None = None,
    linear: np.ndarray | None = None,
) -> tuple[float, float]:
    """``(2/λ_low, 2/λ_bal)`` (module docstring): at and above the first, gradient descent
    cannot converge at any optimum; below the second it settles at the balanced optimum.

    ``own`` marks pathways that follow their own group's error (the residual rule's shared
    pathways, and an output bias's direct path with them); ``linear`` marks one-layer direct
    paths (an output bias: gate 1, reading only the constant input). ``inf`` when the data
    hold nothing to learn.
    """
    return never_converges_lr(X, Y, G, masks, own, linear), max_stable_lr(X, Y, G, masks, own, linear)


def max_stable_lr(
    X: np.ndarray,
    Y: np.ndarray,
    G: np.ndarray,
    masks: np.ndarray,
    own: np.ndarray | None = None,
    linear: np.ndarray | None = None,
) -> float:
    """``2/λ_bal``: the largest learning rate at which gradient descent settles at the
    balanced least-squares optimum (module docstring; ``own`` and ``linear`` as in
    :func:`learning_rate_bounds`)."""
    return _rate(max(_lambda_balanced(X, *g) for g in _all_groups(X, Y, G, masks, own, linear)))


def lr_refusal(lr: float, bound: float, never: float) -> ValueInputError:
    """The one error that refuses ``lr >= bound`` (2/λ_bal), naming both bounds."""
    return ValueInputError(
        f"`lr` = {lr:g} is at or above {bound:.4g}, the largest stable learning rate of this "
        "gated network (2 / the sharpness of the balanced least-squares optimum that "
        "gradient descent from a small initialisation approaches, computed from the data, "
        "an output bias's direct path included); "
        f"at or above {never:.4g} it cannot converge at all. Use lr < {bound:.4g} (or "
        "check_lr=False to run at the edge of stability anyway)."
    )


def check_learning_rate(
    X: np.ndarray,
    Y: np.ndarray,
    G: np.ndarray,
    masks: np.ndarray,
    lr: float,
    own: np.ndarray | None = None,
    linear: np.ndarray | None = None,
) -> float:
    """Refuse ``lr >= 2/λ_bal`` with one :class:`ValueInputError` naming the bound (and
    ``2/λ_low``, computed only then); return the bound."""
    bound = max_stable_lr(X, Y, G, masks, own, linear)
    if lr >= bound:
        raise lr_refusal(lr, bound, never_converges_lr(X, Y, G, masks, own, linear))
    return bound


def never_converges_lr(
    X: np.ndarray,
    Y: np.ndarray,
    G: np.ndarray,
    masks: np.ndarray,
    own: np.ndarray | None = None,
    linear: np.ndarray | None = None,
) -> float:
    """``2/λ_low`` alone (:func:`learning_rate_bounds`), for the refusal's message."""
    return _rate(max(_lambda_low(X, *g) for g in _all_groups(X, Y, G, masks, own, linear)))
