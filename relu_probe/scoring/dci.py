"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, ICLR 2018) with
lasso importances."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .._util.checks import check_int, check_real
from ..data.access import Recording, as_recording
from ..errors import DegenerateDataWarning, ValueInputError

__all__ = ["dci_score", "importance_matrix", "informativeness"]


def _one_hot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, codes = np.unique(labels, return_inverse=True)
    return np.eye(len(classes))[codes.reshape(-1)], classes


def _lasso(alpha: float) -> Any:
    return make_pipeline(StandardScaler(), Lasso(alpha=alpha, max_iter=50000, precompute=True))


def _fit(model: Any, X: np.ndarray, Y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, Y)


def _entropy(P: np.ndarray, base: int, axis: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(P > 0, np.log(np.where(P > 0, P, 1.0)), 0.0)
    return -(P * logs).sum(axis) / np.log(base)


def importance_matrix(X: np.ndarray, factors: Sequence[np.ndarray], alpha: float) -> np.ndarray:
    """R[j, k]: sum over factor k's classes of |lasso coefficient| of code j (standardised)."""
    R = np.zeros((X.shape[1], len(factors)))
    for k, labels in enumerate(factors):
        Y, _ = _one_hot(labels)
        model = _fit(_lasso(alpha), X, Y)
        coef = np.atleast_2d(model[-1].coef_)  # (classes, codes)
        R[:, k] = np.abs(coef).sum(0)
    return R


def informativeness(X: np.ndarray, labels: np.ndarray, alpha: float, n_splits: int, random_state: Any) -> float:
    """Cross-validated accuracy of the argmax of the one-hot lasso regressions."""
    Y, classes = _one_hot(labels)
    splits = min(n_splits, X.shape[0])
    if splits < 2:
        return float("nan")
    correct = np.zeros(X.shape[0], dtype=bool)
    for train, test in KFold(splits, shuffle=True, random_state=random_state).split(X):
        model = _fit(_lasso(alpha), X[train], Y[train])
        pred = np.atleast_2d(model.predict(X[test]).reshape(len(test), -1)).argmax(1)
        correct[test] = pred == Y[test].argmax(1)
    return float(correct.mean())


def _dci(
    rec: Recording, factors: Sequence[str], alpha: float, n_splits: int, random_state: Any
) -> dict[str, float]:
    """:func:`dci_score` on a checked recording."""
    features = rec.signed_activity().values
    X = features[:, features.max(0) > features.min(0)]
    labels = [rec.ds[f].values for f in factors]
    K = len(factors)
    if X.shape[1] == 0:
        warnings.warn(
            "no unit varies across samples: DCI disentanglement and completeness are 0.",
            DegenerateDataWarning,
            stacklevel=3,
        )
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": 0.0}
    R = importance_matrix(X, labels, alpha)
    total = R.sum()
    if total <= 0:
        warnings.warn(
            f"the lasso (alpha={alpha}) selected no unit for any factor: DCI disentanglement and "
            "completeness are 0; lower `alpha`.",
            DegenerateDataWarning,
            stacklevel=3,
        )
        D = C = 0.0
    else:
        row = R.sum(1)
        used = row > 0
        P = R[used] / row[used, None]
        D_j = 1.0 - _entropy(P, K, axis=1)
        D = float((row[used] / total * D_j).sum())
        col = R.sum(0)
        J = X.shape[1]
        C_k = []
        for k in range(K):
            if col[k] <= 0:
                C_k.append(0.0)
            elif J == 1:
                C_k.append(1.0)
            else:
                C_k.append(float(1.0 - _entropy(R[:, k] / col[k], J, axis=0)))
        C = float(np.mean(C_k))
    inform = [informativeness(X, lab, alpha, n_splits, random_state) for lab in labels]
    return {"disentanglement": D, "completeness": C, "informativeness": float(np.mean(inform))}


def dci_score(
    ds: xr.Dataset,
    factors: Sequence[str] = ("context", "object"),
    *,
    alpha: float = 0.01,
    n_splits: int = 5,
    sites: str | Sequence[str] | None = None,
    random_state: int | None = 0,
) -> dict[str, float]:
    r"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    A lasso regression (``alpha``, standardised codes) from the units' activations to each
    factor's one-hot labels gives the importance :math:`R_{jk}` of unit *j* for factor *k*
    (sum of absolute coefficients over the factor's classes). With
    :math:`P_{jk} = R_{jk}/\sum_{k'} R_{jk'}`, :math:`\tilde P_{jk} = R_{jk}/\sum_{j'} R_{j'k}`,
    K factors and J units:

    .. math::
        D = \sum_j \rho_j \big(1 - H_K(P_{j\cdot})\big),\quad
        \rho_j = \frac{\sum_k R_{jk}}{\sum_{jk} R_{jk}},\qquad
        C = \frac1K \sum_k \big(1 - H_J(\tilde P_{\cdot k})\big)

    with :math:`H_b` the entropy in base b. Informativeness I is the mean cross-validated
    (``n_splits``-fold) accuracy of predicting each factor by the argmax of its one-hot
    regressions. (Eastwood & Williams, *A framework for the quantitative evaluation of
    disentangled representations*, ICLR 2018.)

    Parameters
    ----------
    factors : sequence of str, default=("context", "object")
        Ground-truth factor coords on ``sample`` (at least two, each with >= 2 values).

    Returns
    -------
    dict
        ``{"disentanglement": D, "completeness": C, "informativeness": I}``, each in [0, 1].
    """
    rec = as_recording(ds).select_sites(sites)
    if isinstance(factors, str) or len(factors) < 2:
        raise ValueInputError(f"`factors` must name at least two sample coords, got {factors!r}.")
    factors = [rec.sample_coord(f, "factors") for f in factors]
    for f in factors:
        if len(np.unique(rec.ds[f].values)) < 2:
            raise ValueInputError(f"factor {f!r} takes a single value; DCI needs >= 2 values per factor.")
    alpha = check_real("alpha", alpha, minimum=0.0, strict=True)
    n_splits = check_int("n_splits", n_splits, minimum=2)
    return _dci(rec, factors, alpha, n_splits, random_state)
