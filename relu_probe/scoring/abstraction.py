"""Abstraction geometry (Bernardi, Benna, Rigotti, Munuera, Fusi & Salzman 2020, *Cell* 183:954):
cross-condition generalisation performance (CCGP) and the parallelism score (from the
differences of condition means)."""

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
from ..errors import CoordError, DegenerateDataWarning, IncompleteDesignError
from .factors import two_factors

__all__ = ["ccgp_score", "parallelism_score", "default_decoder", "condition_table"]


def default_decoder() -> Any:
    """Standardised features followed by a linear SVM (Bernardi et al. 2020 used linear SVMs)."""
    return make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=20000))


def condition_table(rec: Recording, by: str, within: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, list]:
    """Features (sample × informative unit), per-sample by/within labels and their values."""
    features = rec.signed_activity().values
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
            raise IncompleteDesignError(
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


def _parallelism(rec: Recording, by: str, within: str, pairing: str) -> float:
    """:func:`parallelism_score` on a checked recording."""
    X, lab, item, values, items = condition_table(rec, by, within)
    if len(values) < 2:
        raise CoordError(f"the parallelism score needs at least two values of `by`={by!r}; got {values}.")
    n = len(items)
    for v in values:
        if sorted(set(item[lab == v].tolist())) != items:
            raise IncompleteDesignError(
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
    # condition means (by value, item, feature)
    means = np.stack([np.stack([X[(lab == v) & (item == o)].mean(0) for o in items]) for v in values])
    perms = np.array(list(itertools.permutations(range(n)))) if pairing == "best" else np.arange(n)[None, :]
    pair_i, pair_k = np.triu_indices(n, k=1)
    scores = []
    for a, b in itertools.combinations(range(len(values)), 2):
        # coding vector of pair (a, o_i) vs (b, o_j): the difference of the condition means
        if pairing == "best":  # every (i, j) pair: n <= 8
            D = (means[a][:, None, :] - means[b][None, :, :]).reshape(n * n, -1)
            ids = np.arange(n)[None, :] * n + perms  # (n_pairings, n): coding vector of each pair
        else:
            D = means[a] - means[b]
            ids = np.arange(n)[None, :]
        norm = np.linalg.norm(D, axis=1, keepdims=True)
        flat = np.divide(D, norm, out=np.zeros_like(D), where=norm > 0)  # identical conditions: no direction
        cos = flat @ flat.T
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
    sites: str | Sequence[str] | None = None,
) -> float:
    r"""Parallelism score of ``by`` across ``within`` (Bernardi et al. 2020).

    For a dichotomy a vs b (each pair of ``by`` values), each side holds the conditions
    :math:`(a, o_i)` resp. :math:`(b, o_j)`, with mean population responses
    :math:`\mu_{a, o_i}`. For a one-to-one pairing π of the two sides, the coding vector of
    pair :math:`(a, o_i)` vs :math:`(b, o_{\pi(i)})` is the difference of the condition means,
    :math:`d_i = \mu_{a, o_i} - \mu_{b, o_{\pi(i)}}`, and

    .. math:: \mathrm{PS} = \max_\pi \frac{2}{n(n-1)} \sum_{i<i'} \cos(d_i, d_{i'})

    averaged over dichotomies. 1 when the coding vectors are parallel (a factorised, abstract
    code), ~0 when unrelated (Bernardi, Benna, Rigotti, Munuera, Fusi & Salzman 2020, *Cell*
    183:954, who use the weight vectors of linear decoders trained on each pair). The
    difference of means is the coding direction without any per-pair rescaling: a decoder fit
    on a standardised pair of conditions divides each unit by its spread *within that pair*,
    which turns two nearly parallel vectors (1, 0.01) and (1, −0.01) into antiparallel ones.
    Features are the units' signed activations (gates when only gates were stored); units
    that never vary are left out.

    Parameters
    ----------
    pairing : {"auto", "best", "within"}, default="auto"
        ``"best"``: maximise over all pairings (Bernardi's definition; up to 8 conditions per
        side). ``"within"``: pair conditions with the same ``within`` value. ``"auto"``:
        ``"best"`` up to 8 ``within`` values, else ``"within"``.

    Returns
    -------
    float
        In [−1, 1]; 0 with a ``DegenerateDataWarning`` when no unit varies. A pair of
        conditions with identical responses has no coding vector (counts as 0 cosine).
    """
    check_choice("pairing", pairing, ["auto", "best", "within"])
    rec = as_recording(ds).select_sites(sites)
    by, within = two_factors(rec, by, within)
    return _parallelism(rec, by, within, pairing)
