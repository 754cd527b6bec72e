"""The subspaces a gated pathway's learning lives in, and the reduced arrays to step there.

From the mean initial state ``A = a0 I``, ``B = b0 I``, ``M = 0`` (see
:mod:`relu_probe._exact`), gradient descent only changes a pathway's Gram state inside the
span of the targets' rows (output side) and of the pathway's open, masked inputs (input side);
outside, the state stays ``a0 I`` / ``b0 I`` with no coupling. :func:`reduce_problem`
expresses the data in orthonormal bases of those spans (zero-padded to a common input
dimension), so that every array the dynamics touch is ``(n_p + r)``-sized whatever the width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ReducedProblem", "reduce_problem", "row_basis", "RANK_TOL"]

#: Relative size below which a singular value of the data counts as zero (subspace ranks).
RANK_TOL = 1e-10


@dataclass
class ReducedProblem:
    """Arrays the exact dynamics step on: gated inputs and targets in the reduced bases.

    Attributes
    ----------
    Xh : (pathway, sample, n) gated, masked inputs in each pathway's input basis
    Yr : (sample, r) targets in the output basis
    Qy : (output, r) output basis (orthonormal columns)
    Vin : (pathway, feature, n) input bases (zero-padded columns)
    valid : (pathway, n) 1 on the coordinates a pathway really has
    own : (pathway,) bool, pathways that follow their own group's error (residual rule)
    L_perp : loss of the target part outside the output basis (a constant)
    """

    Xh: np.ndarray
    Yr: np.ndarray
    Qy: np.ndarray
    Vin: np.ndarray
    valid: np.ndarray
    own: np.ndarray
    L_perp: float

    @property
    def n_paths(self) -> int:
        return int(self.Xh.shape[0])


def row_basis(A: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Orthonormal basis (columns) of the row space of ``A`` (singular values above
    ``tol × max``)."""
    if A.size == 0 or not np.any(A):
        return np.zeros((A.shape[1], 0))
    _, s, Vt = np.linalg.svd(A, full_matrices=False)
    k = int(np.sum(s > tol * s.max()))
    return Vt[:k].T


def reduce_problem(
    X: np.ndarray, Y: np.ndarray, G: np.ndarray, masks: np.ndarray, own: np.ndarray, reduce: bool = True
) -> ReducedProblem:
    """The problem in the reduced bases (``reduce=False``: full coordinates, for explicit
    finite-width initial weights, whose state has components outside the spans)."""
    P, n_full = X.shape
    Xg = G[:, :, None] * (X[None] * masks[:, None, :])  # (p, P, n_full)
    if not reduce:
        p = G.shape[0]
        eye = np.broadcast_to(np.eye(n_full), (p, n_full, n_full)).copy()
        return ReducedProblem(Xg, Y.copy(), np.eye(Y.shape[1]), eye, masks.astype(float), own, 0.0)
    Qy = row_basis(Y)
    if Qy.shape[1] == 0:
        Qy = np.zeros((Y.shape[1], 1))
        Qy[0, 0] = 1.0
    Yr = Y @ Qy
    perp = Y - Yr @ Qy.T
    bases = [row_basis(Xg[p]) for p in range(G.shape[0])]
    n = max(1, max(b.shape[1] for b in bases))
    Vin = np.zeros((G.shape[0], n_full, n))
    valid = np.zeros((G.shape[0], n))
    for p, b in enumerate(bases):
        Vin[p, :, : b.shape[1]] = b
        valid[p, : b.shape[1]] = 1.0
    Xh = Xg @ Vin
    return ReducedProblem(Xh, Yr, Qy, Vin, valid, own, 0.5 * float(np.vdot(perp, perp)))
