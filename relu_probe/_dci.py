"""DCI disentanglement (Eastwood & Williams 2018) with lasso importances."""

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

from ._access import activity_var
from .errors import DegenerateDataWarning

__all__ = ["dci"]


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


def dci(
    ds: xr.Dataset, factors: Sequence[str], alpha: float, n_splits: int, random_state: Any
) -> dict[str, float]:
    features = activity_var(ds).values
    X = features[:, features.max(0) > features.min(0)]
    labels = [ds[f].values for f in factors]
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
