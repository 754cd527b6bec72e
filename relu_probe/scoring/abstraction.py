"""Abstraction geometry (Bernardi, Benna, Rigotti, Munuera, Fusi & Salzman 2020, *Cell* 183:954):
cross-condition generalisation performance (CCGP) and the parallelism score."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from .._util.checks import check_choice, check_int
from ..data.access import Recording, as_recording
from ..errors import CoordError, DegenerateDataWarning
from .factors import two_factors

__all__ = ["ccgp_score", "parallelism_score", "default_decoder", "condition_table"]


def default_decoder() -> Any:
    """Standardised features followed by a linear SVM (Bernardi et al. 2020 used linear SVMs)."""
    return make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=20000))


def condition_table(rec: Recording, by: str, within: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, list]:
    """Features (sample × informative unit), per-sample by/within labels and their values."""
    features = rec.activity().values
    varying = features.max(0) > features.min(0)
    lab, item = rec.ds[by].values, rec.ds[within].values
    return features[:, varying], lab, item, sorted(set(lab.tolist())), sorted(set(item.tolist()))


def _fit(decoder: Any, X: np.ndarray, y: np.ndarray) -> Any:
    model = clone(decoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def _ccgp(
    rec: Recording, by: str, within: str, decoder: Any, max_splits: int | None, random_state: Any
) -> float:
    """:func:`ccgp_score` on a checked recording."""
    X, lab, item, values, _ = condition_table(rec, by, within)
    if len(values) < 2:
        raise CoordError(f"CCGP needs at least two values of `by`={by!r}; got {values}.")
    if X.shape[1] == 0:
        warnings.warn(
            "no unit varies across samples: CCGP is chance (0.5).", DegenerateDataWarning, stacklevel=3
        )
        return 0.5
    rng = np.random.default_rng(random_state)
    accuracies = []
    for a, b in itertools.combinations(values, 2):
        items_a = sorted(set(item[lab == a].tolist()))
        items_b = sorted(set(item[lab == b].tolist()))
        if len(items_a) < 2 or len(items_b) < 2:
            raise CoordError(
                f"CCGP holds out one `{within}` condition per side, so every `{by}` value needs "
                f"at least two `{within}` values; {by}={a!r} has {len(items_a)} and {by}={b!r} "
                f"has {len(items_b)}."
            )
        splits = list(itertools.product(items_a, items_b))
        if max_splits is not None and len(splits) > max_splits:
            chosen = rng.choice(len(splits), size=max_splits, replace=False)
            splits = [splits[i] for i in sorted(chosen)]
        side_a, side_b = lab == a, lab == b
        for oa, ob in splits:
            test = (side_a & (item == oa)) | (side_b & (item == ob))
            train = (side_a | side_b) & ~test
            model = _fit(decoder, X[train], lab[train] == a)
            accuracies.append(float(np.mean(model.predict(X[test]) == (lab[test] == a))))
    return float(np.mean(accuracies))


def _coding_direction(decoder: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weight vector of a linear decoder separating two conditions, in feature space."""
    model = _fit(decoder, X, y)
    est = model[-1] if hasattr(model, "steps") else model
    coef = np.asarray(getattr(est, "coef_")).reshape(-1)
    if hasattr(model, "steps") and len(model.steps) > 1:
        scaler = model[:-1]
        scale = getattr(scaler[-1], "scale_", None)
        if scale is not None:  # map back to the raw (unscaled) features
            coef = coef / scale
    norm = np.linalg.norm(coef)
    return coef / norm if norm > 0 else coef


def _parallelism(
    rec: Recording, by: str, within: str, decoder: Any, pairing: str
) -> float:
    """:func:`parallelism_score` on a checked recording."""
    X, lab, item, values, items = condition_table(rec, by, within)
    if len(values) < 2:
        raise CoordError(f"the parallelism score needs at least two values of `by`={by!r}; got {values}.")
    n = len(items)
    for v in values:
        if sorted(set(item[lab == v].tolist())) != items:
            raise CoordError(
                f"the parallelism score pairs conditions across `{by}` values, so every `{by}` "
                f"value needs every `{within}` value; {by}={v!r} lacks some."
            )
    if n < 2:
        raise CoordError(f"the parallelism score needs at least two `{within}` values; got {items}.")
    if pairing == "auto":
        pairing = "best" if n <= 8 else "within"
    if pairing == "best" and n > 8:
        raise CoordError(
            f"pairing='best' maximises over all {math.factorial(n)} pairings of the {n} `{within}` "
            "values per side (feasible up to 8); use pairing='within'."
        )
    if X.shape[1] == 0:
        warnings.warn(
            "no unit varies across samples: the parallelism score is 0.", DegenerateDataWarning, stacklevel=3
        )
        return 0.0
    perms = np.array(list(itertools.permutations(range(n)))) if pairing == "best" else np.arange(n)[None, :]
    scores = []
    for a, b in itertools.combinations(values, 2):
        need = {(i, int(j)) for perm in perms for i, j in enumerate(perm)}
        directions = {}
        for i, j in need:
            rows = ((lab == a) & (item == items[i])) | ((lab == b) & (item == items[j]))
            if np.allclose(X[rows][lab[rows] == a].mean(0), X[rows][lab[rows] == b].mean(0)):
                directions[i, j] = np.zeros(X.shape[1])  # identical conditions: no direction
            else:
                directions[i, j] = _coding_direction(decoder, X[rows], lab[rows] == a)
        keys = sorted(directions)
        table = np.full((n, n), -1, dtype=np.int64)
        for t, (i, j) in enumerate(keys):
            table[i, j] = t
        D = np.stack([directions[k] for k in keys])
        cos = D @ D.T
        pair_i, pair_k = np.triu_indices(n, k=1)
        ids = table[np.arange(n)[None, :], perms]  # (n_pairings, n): direction of each pair
        best = float(cos[ids[:, pair_i], ids[:, pair_k]].mean(1).max())
        scores.append(best)
    return float(np.mean(scores))


def ccgp_score(
    ds: xr.Dataset,
    by: str,
    within: str,
    *,
    decoder: Any = None,
    max_splits: int | None = 64,
    sites: str | Sequence[str] | None = None,
    random_state: int | None = 0,
) -> float:
    r"""Cross-condition generalisation performance of ``by`` across ``within`` (Bernardi et al. 2020).

    Conditions are the (by, within) cells. For every pair of ``by`` values (a, b) — a
    dichotomy — and every choice of one held-out condition per side,
    :math:`(a, o_a)` and :math:`(b, o_b)`, a linear decoder is trained to tell a from b on
    all other conditions of the two sides and tested on the held-out ones:

    .. math:: \mathrm{CCGP} = \operatorname{mean}_{(a,b)} \operatorname{mean}_{(o_a, o_b)}
              \mathrm{acc}\big(\text{train on } \{(a,o)\}_{o \ne o_a} \cup \{(b,o)\}_{o \ne o_b},\;
              \text{test on } (a,o_a), (b,o_b)\big)

    Chance is 0.5; values near 1 mean ``by`` is coded in an abstract (factorised) format
    that generalises to conditions never trained on (Bernardi, Benna, Rigotti, Munuera, Fusi
    & Salzman 2020, *Cell* 183:954). Features are the units' activations (gates when only
    gates were stored); units that never vary are dropped.

    Parameters
    ----------
    decoder : scikit-learn classifier, optional
        Default: ``StandardScaler`` + ``LinearSVC(C=1)``.
    max_splits : int or None, default=64
        Held-out (o_a, o_b) choices per dichotomy; a random subset (``random_state``) when
        there are more. ``None``: all.

    Returns
    -------
    float
        In [0, 1]; 0.5 with a ``DegenerateDataWarning`` when no unit varies.
    """
    rec = as_recording(ds).select_sites(sites)
    by, within = two_factors(rec, by, within)
    if max_splits is not None:
        max_splits = check_int("max_splits", max_splits, minimum=1)
    return _ccgp(rec, by, within, default_decoder() if decoder is None else decoder, max_splits, random_state)


def parallelism_score(
    ds: xr.Dataset,
    by: str,
    within: str,
    *,
    pairing: str = "auto",
    decoder: Any = None,
    sites: str | Sequence[str] | None = None,
) -> float:
    r"""Parallelism score of ``by`` across ``within`` (Bernardi et al. 2020).

    For a dichotomy a vs b (each pair of ``by`` values), each side holds the conditions
    :math:`(a, o_i)` resp. :math:`(b, o_j)`. For a one-to-one pairing π of the two sides,
    the coding direction :math:`w_{i}` of pair :math:`(a, o_i)` vs :math:`(b, o_{\pi(i)})` is
    the (unit-normalised, raw-feature) weight vector of a linear decoder trained to separate
    the two conditions, and

    .. math:: \mathrm{PS} = \max_\pi \frac{2}{n(n-1)} \sum_{i<i'} \cos(w_i, w_{i'})

    averaged over dichotomies. 1 when the coding directions are parallel (a factorised,
    abstract code), ~0 when unrelated (Bernardi et al. 2020, *Cell* 183:954).

    Parameters
    ----------
    pairing : {"auto", "best", "within"}, default="auto"
        ``"best"``: maximise over all pairings (Bernardi's definition; up to 8 conditions per
        side). ``"within"``: pair conditions with the same ``within`` value. ``"auto"``:
        ``"best"`` up to 8 ``within`` values, else ``"within"``.
    decoder : scikit-learn linear classifier, optional
        Default: ``StandardScaler`` + ``LinearSVC(C=1)``.

    Returns
    -------
    float
        In [−1, 1]; 0 with a ``DegenerateDataWarning`` when no unit varies. A pair of
        conditions with identical responses has no coding direction (counts as 0 cosine).
    """
    check_choice("pairing", pairing, ["auto", "best", "within"])
    rec = as_recording(ds).select_sites(sites)
    by, within = two_factors(rec, by, within)
    return _parallelism(rec, by, within, default_decoder() if decoder is None else decoder, pairing)
