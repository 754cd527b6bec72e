r"""Null baselines of the scores: the same analysis with the ``by`` labels shuffled across items.

A score means little without knowing what it is by chance: a randomly initialised network
already has a shared pathway (its units are on for some items in every context), and
modularity or mixed selectivity take values set by the task's design. :func:`null_scores`
repeats the analysis that produced a :class:`~relu_probe.Pathways` (the same method and
parameters, :attr:`Pathways.params`, and the same importance) on recordings whose labels are
shuffled, and reports each observed score next to the distribution it has there:

- **context-set decomposition** (items repeat across contexts): within every ``by`` value the
  ``within`` labels are permuted (a random one-to-one relabelling of the items seen in that
  context). Every (item, context) cell keeps its samples and every context keeps its
  responses, but which response of context *a* belongs to the same item as a response of
  context *b* is random — the correspondence a context set is made of. Equivalently: the
  ``by`` labels are shuffled across items.
- **profiles / co-clustering** (no repeated items): the ``by`` labels are permuted across
  all samples (every context keeps its number of samples).

With :math:`s` the observed score and :math:`s_1 \dots s_n` its values on *n* shuffles,

.. math:: z = \frac{s - \bar s_{\mathrm{null}}}{\mathrm{sd}(s_{\mathrm{null}})}, \qquad
          \mathrm{percentile} = 100\,\frac{\#\{s_r < s\} + \tfrac12 \#\{s_r = s\}}{n}

(``sd`` with ``ddof=1``; ``z`` is NaN when the null does not vary). With a training monitor
that saw step 0, :func:`relu_probe.analyze` adds the scores of the network at
initialisation beside this baseline (column ``init``).

What the shuffle tests, score by score: for the context-set decomposition, whether the
structure follows the *items* across contexts. An untrained network's does too — its units
read an item's own input in every context, so a randomly initialised MLP on the paper's task
has shared 0.59 against a null of 0.27 (z ≈ 14) — so tell learned structure from the input's
by the ``init`` column (the network at step 0), not by z alone. The mixed-selectivity null is
high (shuffled items make the cell means non-additive): a z below 0 there says the responses
are more additive than with items paired at random.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._util.checks import check_int
from ..data.access import Recording, as_recording
from ..errors import InputError, describe
from ..pathways.find import find_pathways
from ..pathways.result import Pathways
from .table import scores, site_recording

__all__ = ["null_scores", "shuffled_recording", "NULL_COLUMNS"]

#: The columns of :func:`null_scores`.
NULL_COLUMNS = ("value", "null_mean", "null_std", "z", "percentile", "n_null")


def shuffled_recording(rec: Recording, by: str, within: str | None, method: str, rng: np.random.Generator) -> Recording:
    """*rec* with its labels shuffled for the null of *method* (module docstring)."""
    labels = np.asarray(rec.ds[by].values)
    if method == "context-sets" and within is not None:
        item = np.asarray(rec.ds[within].values)
        new = item.copy()
        for value in np.unique(labels):
            rows = labels == value
            values, codes = np.unique(item[rows], return_inverse=True)
            new[rows] = values[rng.permutation(values.size)][codes.reshape(-1)]  # item o -> item pi(o)
        return rec.relabelled(within, new)
    return rec.relabelled(by, labels[rng.permutation(labels.size)])


def null_scores(
    pathways: Pathways,
    ds: xr.Dataset,
    *,
    n_shuffles: int = 20,
    literature: bool = False,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Every score next to its null baseline (module docstring).

    Parameters
    ----------
    pathways : Pathways
        From :func:`relu_probe.find_pathways` on ``ds``; the null repeats that analysis
        (:attr:`Pathways.params`, its importance).
    ds : xarray.Dataset
        The recording the pathways were found on.
    n_shuffles : int, default=20
        Shuffled repetitions: each repeats the whole decomposition (for ``"profiles"`` its
        k-means), so the cost is about ``n_shuffles`` times that of ``find_pathways`` plus
        ``scores``. With 20 the null mean is known to about a quarter of its sd and the
        percentile in steps of 5; raise it for publication figures.
    literature : bool, default=False
        Also the literature scores (CCGP, parallelism, DCI), which refit decoders on every
        shuffle (slow on large recordings).
    random_state : int or None, default=0
        Seed of the shuffles (and of the scores' own randomness).

    Returns
    -------
    pandas.DataFrame
        Columns ``value`` (the observed score), ``null_mean``, ``null_std``, ``z``,
        ``percentile`` and ``n_null`` (shuffles with a finite value); index ``score`` (the
        score names), or ``(site, score)`` for pathways at several sites.
    """
    if not isinstance(pathways, Pathways):
        raise InputError(
            f"`pathways` must be an rp.Pathways (from rp.find_pathways), got {describe(pathways)}; the null "
            "baseline repeats the analysis that produced it."
        )
    n_shuffles = check_int("n_shuffles", n_shuffles, minimum=1)
    rec = site_recording(pathways, as_recording(ds))
    observed = scores(pathways, rec, literature=literature, random_state=random_state)
    params = {k: v for k, v in pathways.params.items() if k != "sites"}
    method = params.pop("method", pathways.method)
    rng = np.random.default_rng(random_state)
    null = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shuffles repeat the observed analysis' warnings
        for _ in range(n_shuffles):
            shuffled = shuffled_recording(rec, pathways.by, pathways.within, method, rng)
            pw = find_pathways(shuffled, pathways.by, pathways.within, importance=pathways.importance,
                               method=method, **params)
            null.append(_frame(scores(pw, shuffled, literature=literature, random_state=random_state),
                               pathways.sites))
    obs = _frame(observed, pathways.sites)
    stack = np.stack([frame.reindex(index=obs.index, columns=obs.columns).to_numpy(np.float64) for frame in null])
    return _table(obs, stack)


def _frame(result: Any, sites: list[str]) -> pd.DataFrame:
    """A scores result as a (site × score) frame."""
    if isinstance(result, pd.Series):
        return result.to_frame().T.set_axis([sites[0]], axis=0)
    return result


def _table(obs: pd.DataFrame, null: np.ndarray) -> pd.DataFrame:
    """The null table of observed (site × score) values and null draws (shuffle, site, score)."""
    value = obs.to_numpy(np.float64)
    finite = np.isfinite(null)
    n = finite.sum(0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN results, by design
        mean = np.nanmean(null, axis=0)
        std = np.where(n > 1, np.nanstd(null, axis=0, ddof=1), np.nan)
        # a null that does not vary (beyond rounding of equal values) gives no z
        varies = std > 1e-9 * np.maximum(1.0, np.abs(mean))
        std = np.where(varies | ~np.isfinite(std), std, 0.0)
        z = np.where(varies, (value - mean) / np.where(varies, std, 1.0), np.nan)
        below = np.where(finite, null < value[None], False).sum(0)
        ties = np.where(finite, null == value[None], False).sum(0)
        percentile = np.where((n > 0) & np.isfinite(value), 100.0 * (below + 0.5 * ties) / np.maximum(n, 1), np.nan)
    columns = {"value": value, "null_mean": mean, "null_std": std, "z": z, "percentile": percentile, "n_null": n}
    sites, names = list(obs.index), list(obs.columns)
    index = (pd.Index(names, name="score") if len(sites) == 1
             else pd.MultiIndex.from_product([sites, names], names=["site", "score"]))
    frame = pd.DataFrame({k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in columns.items()}, index=index)
    return frame.astype({"n_null": np.int64})
