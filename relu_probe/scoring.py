"""Scores of the learned structure: shared / node-reuse / modularity / effective pathways from
pathway masses, nonlinear mixed selectivity, and abstraction / disentanglement scores from the
literature. ``rp.scores`` returns them all."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._access import align_importance, check_dataset, check_sample_coord, select_sites
from ._validation import check_choice, check_int, check_real
from .errors import CoordError, DegenerateDataWarning, InputError, ValueInputError, describe

__all__ = [
    "shared_score",
    "node_reuse_score",
    "modularity_score",
    "effective_pathways",
    "mixed_selectivity_index",
    "mixed_selectivity_score",
    "ccgp_score",
    "parallelism_score",
    "dci_score",
    "scores",
]


# --------------------------------------------------------------------------- pathway masses


def _degenerate(message: str) -> None:
    warnings.warn(message, DegenerateDataWarning, stacklevel=3)


def _pathway_masses(pathways: Any, name: str = "pathways") -> tuple[np.ndarray, np.ndarray, int]:
    """``(m_S normalised, |S|, K)`` from a Pathways, a model with ``pathway_strength()``, or a
    DataArray over ``pathway`` with a ``contexts`` coord.

    **Extension point** (used by fitted GDLN / ReLN models): any object with a
    ``pathway_strength()`` method returning a non-negative DataArray over ``pathway`` with a
    ``contexts`` coord (tuple of context values per pathway) is scored like a
    :class:`~relu_probe.Pathways`, its strengths normalised to sum to 1. The number of
    contexts K is taken from the object's ``context_values`` attribute, else from the
    DataArray's ``attrs["context_values"]`` / ``attrs["n_contexts"]``, else from the union of
    the pathways' contexts.
    """
    owner = pathways
    if isinstance(pathways, xr.DataArray):
        strength = pathways
    elif callable(getattr(pathways, "pathway_strength", None)):
        strength = pathways.pathway_strength()
    else:
        raise InputError(
            f"`{name}` must be an rp.Pathways (from rp.find_pathways), a fitted GDLN/ReLN with "
            f"pathway_strength(), or a DataArray over 'pathway' with a 'contexts' coord; got "
            f"{describe(pathways)}."
        )
    if not isinstance(strength, xr.DataArray) or strength.dims != ("pathway",) or "contexts" not in strength.coords:
        raise InputError(
            f"`{name}` strengths must be a DataArray over 'pathway' with a 'contexts' coord; got "
            f"{describe(strength)}."
        )
    m = np.asarray(strength.values, dtype=np.float64)
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueInputError(f"`{name}` strengths must be finite and >= 0; got {m.tolist()}.")
    contexts = [tuple(c) for c in strength["contexts"].values]
    values = getattr(owner, "context_values", None)
    if values is None:
        values = strength.attrs.get("context_values")
    if values is not None:
        K = len(values)
    elif "n_contexts" in strength.attrs:
        K = int(strength.attrs["n_contexts"])
    else:
        K = len({c for S in contexts for c in S})
    if K < 2:
        raise ValueInputError(
            f"pathway scores need at least 2 contexts; `{name}` has {K}."
        )
    sizes = np.array([len(c) for c in contexts], dtype=np.float64)
    total = m.sum()
    return (m / total if total > 0 else m), sizes, K


def shared_score(pathways: Any) -> float:
    r"""Mass of the shared pathway: the one on in every context.

    .. math:: \mathrm{shared} = m_{S = \{1..K\}}

    where :math:`m_S` are the pathway masses (sum 1) and K the number of contexts. 1 for a
    fully shared network, 0 for a strictly modular one (DESIGN.md "Scores"; the paper's
    common pathway, Jarvis et al. 2025).

    Parameters
    ----------
    pathways : Pathways, fitted GDLN/ReLN, or DataArray
        See :func:`scores` for what is accepted.

    Returns
    -------
    float
        In [0, 1]; 0 (with a ``DegenerateDataWarning``) when there is no mass at all.
    """
    m, sizes, K = _pathway_masses(pathways)
    if m.sum() <= 0:
        _degenerate("no pathway mass: shared_score is 0.")
        return 0.0
    return float(m[sizes == K].sum())


def node_reuse_score(pathways: Any) -> float:
    r"""How many contexts the average unit (by mass) serves, rescaled to [0, 1].

    .. math:: \mathrm{reuse} = \sum_S m_S \, \frac{|S| - 1}{K - 1}

    0 when every unit serves one context (strictly modular), 1 when all serve all contexts
    (fully shared). "Node reuse" in the sense of Jarvis, Klein, Rosman & Saxe (*Make Haste
    Slowly*, ICLR 2025): the same hidden units serving several contexts.

    Returns 0 (with a ``DegenerateDataWarning``) when there is no mass at all.
    """
    m, sizes, K = _pathway_masses(pathways)
    if m.sum() <= 0:
        _degenerate("no pathway mass: node_reuse_score is 0.")
        return 0.0
    return float((m * (sizes - 1) / (K - 1)).sum())


def modularity_score(pathways: Any, *, min_mass: float = 1e-3) -> float:
    r"""How modular the context-specific part of the network is.

    Over the context-specific pathways (:math:`|S| < K`):

    .. math:: \mathrm{modularity} = \frac{\sum_{|S|<K} m_S \, (K - |S|)/(K - 1)}{\sum_{|S|<K} m_S}

    1 for strictly modular structure (every context-specific pathway serves one context),
    :math:`1/(K-1)` when they all serve K−1 of K contexts (the paper's structured mixed
    selectivity). DESIGN.md "Scores"; cf. the strictly modular vs mixed ReLNs of Jarvis et
    al. (2025).

    Parameters
    ----------
    pathways : Pathways, fitted GDLN/ReLN, or DataArray
    min_mass : float, default=1e-3
        When the context-specific mass :math:`\sum_{|S|<K} m_S` is below this, the ratio
        measures numerical noise (e.g. 1e-7 early in training), so 0 is returned with a
        ``DegenerateDataWarning`` — as for a fully shared network, nothing modular was found.
    """
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    m, sizes, K = _pathway_masses(pathways)
    specific = sizes < K
    denominator = m[specific].sum()
    if denominator <= 0 or denominator < min_mass:
        _degenerate(
            f"context-specific pathway mass is {denominator:.3g} (< min_mass={min_mass:g}): "
            "no context-specific structure; modularity_score is 0."
        )
        return 0.0
    return float((m[specific] * (K - sizes[specific]) / (K - 1)).sum() / denominator)


def effective_pathways(pathways: Any) -> float:
    r"""Effective number of pathways: the exponential of the entropy of the masses.

    .. math:: N_{\mathrm{eff}} = \exp\Big(-\sum_S m_S \ln m_S\Big)

    (the Hill number of order 1; Hill 1973). Equals n for n pathways of equal mass. Returns 0
    with a ``DegenerateDataWarning`` when there is no mass at all.
    """
    m, _, _ = _pathway_masses(pathways)
    if m.sum() <= 0:
        _degenerate("no pathway mass: effective_pathways is 0.")
        return 0.0
    p = m[m > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


# --------------------------------------------------------------------------- mixed selectivity


def _by_within(ds: xr.Dataset, by: Any, within: Any) -> tuple[str, str]:
    if within is None:
        if isinstance(by, str) or not isinstance(by, Sequence) or len(by) != 2:
            raise InputError(
                "give the two factors as `by=(factor_a, factor_b)` or as `by=...` plus "
                f"`within=...`; got by={by!r}, within=None."
            )
        by, within = by
    by = check_sample_coord(ds, by, "by")
    within = check_sample_coord(ds, within, "within")
    if by == within:
        raise CoordError(f"`by` and `within` must be two different coords; both are {by!r}.")
    return by, within


def mixed_selectivity_index(
    ds: xr.Dataset,
    by: str | Sequence[str] = ("context", "object"),
    *,
    within: str | None = None,
    sites: str | Sequence[str] | None = None,
) -> xr.DataArray:
    r"""Per-unit nonlinear mixed-selectivity index: the interaction share of a two-way ANOVA.

    With the unit's mean activity in every (by, within) cell decomposed as
    :math:`M_{ab} = \mu + \alpha_a + \beta_b + \gamma_{ab}` (balanced two-way ANOVA),

    .. math:: \mathrm{NMS}_u = \frac{SS_{int}}{SS_{a} + SS_{b} + SS_{int}},\quad
              SS_{int} = \sum_{ab} \gamma_{ab}^2,\; SS_a = B\sum_a \alpha_a^2,\;
              SS_b = A\sum_b \beta_b^2

    (Rigotti et al. 2013, *Nature* 497:585; Fusi, Miller & Rigotti 2016). Activity is the
    recorded activation, or the gate when only gates were stored. Units whose activity does
    not vary (:math:`SS_{tot} = 0`) have no selectivity at all and get index 0.

    Returns
    -------
    xarray.DataArray
        Over ``unit`` with the dataset's unit coords, values in [0, 1].
    """
    from ._anova import anova_components, cell_means

    ds = select_sites(check_dataset(ds), sites)
    by, within = _by_within(ds, by, within)
    _, _, ss_int, ss_tot = anova_components(cell_means(ds, by, within))
    index = np.divide(ss_int, ss_tot, out=np.zeros_like(ss_int), where=ss_tot > 0)
    coords = {k: v for k, v in ds.coords.items() if v.dims == ("unit",)}
    return xr.DataArray(np.clip(index, 0.0, 1.0), dims=("unit",), coords=coords, name="mixed_selectivity")


def mixed_selectivity_score(
    ds: xr.Dataset,
    by: str | Sequence[str] = ("context", "object"),
    importance: xr.DataArray | np.ndarray | None = None,
    *,
    within: str | None = None,
    average: str = "pooled",
    sites: str | Sequence[str] | None = None,
) -> float:
    r"""Importance-weighted nonlinear mixed selectivity of the population (Rigotti et al. 2013).

    With per-unit two-way ANOVA components over the (by × within) grid (see
    :func:`mixed_selectivity_index`) and unit importances :math:`I_u`:

    - ``average="pooled"`` (default): the interaction share of the importance-weighted
      response variance,

      .. math:: \mathrm{MS} = \frac{\sum_u I_u \, SS_{int,u}}{\sum_u I_u \, SS_{tot,u}}
                = \frac{\sum_u I_u SS_{tot,u} \mathrm{NMS}_u}{\sum_u I_u SS_{tot,u}}

      i.e. the importance-weighted mean of the unit indices, each unit also weighted by how
      much it varies. This is the quantity of paper-brief §5.2 (≈0 at epoch 500,
      0.15–0.20 at epoch 8000 on the paper's tasks).
    - ``average="units"``: :math:`\sum_u I_u \mathrm{NMS}_u / \sum_u I_u` over units that vary.

    Parameters
    ----------
    ds : xarray.Dataset
    by : str or pair of str, default=("context", "object")
        The two factors, or the first one with ``within`` the second.
    importance : DataArray or array, optional
        Per-unit importance (:func:`relu_probe.unit_importance`); default the ``"activity"``
        importance (mean activation).
    within : str, optional
    average : {"pooled", "units"}, default="pooled"
    sites : str or list of str, optional

    Returns
    -------
    float
        In [0, 1]. 0 with a ``DegenerateDataWarning`` when no unit's activity varies.
    """
    from ._anova import anova_components, cell_means
    from .importance import unit_importance

    check_choice("average", average, ["pooled", "units"])
    ds = select_sites(check_dataset(ds), sites)
    by, within = _by_within(ds, by, within)
    imp = (
        unit_importance(None, ds, method="activity") if importance is None else align_importance(importance, ds)
    ).values
    _, _, ss_int, ss_tot = anova_components(cell_means(ds, by, within))
    varies = (ss_tot > 0) & (imp > 0)
    if not varies.any():
        _degenerate(
            "no (important) unit's activity varies over the (by, within) grid: "
            "mixed_selectivity_score is 0."
        )
        return 0.0
    if average == "pooled":
        return float(np.clip((imp * ss_int)[varies].sum() / (imp * ss_tot)[varies].sum(), 0.0, 1.0))
    index = ss_int[varies] / ss_tot[varies]
    return float(np.clip((imp[varies] * index).sum() / imp[varies].sum(), 0.0, 1.0))


# --------------------------------------------------------------------------- literature scores


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
    from ._abstraction import ccgp, default_decoder

    ds = select_sites(check_dataset(ds), sites)
    by, within = _by_within(ds, by, within)
    if max_splits is not None:
        max_splits = check_int("max_splits", max_splits, minimum=1)
    return ccgp(ds, by, within, default_decoder() if decoder is None else decoder, max_splits, random_state)


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
    from ._abstraction import default_decoder, parallelism

    check_choice("pairing", pairing, ["auto", "best", "within"])
    ds = select_sites(check_dataset(ds), sites)
    by, within = _by_within(ds, by, within)
    return parallelism(ds, by, within, default_decoder() if decoder is None else decoder, pairing)


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
    from ._dci import dci

    ds = select_sites(check_dataset(ds), sites)
    if isinstance(factors, str) or len(factors) < 2:
        raise ValueInputError(f"`factors` must name at least two sample coords, got {factors!r}.")
    factors = [check_sample_coord(ds, f, "factors") for f in factors]
    for f in factors:
        if len(np.unique(ds[f].values)) < 2:
            raise ValueInputError(f"factor {f!r} takes a single value; DCI needs >= 2 values per factor.")
    alpha = check_real("alpha", alpha, minimum=0.0, strict=True)
    n_splits = check_int("n_splits", n_splits, minimum=2)
    return dci(ds, factors, alpha, n_splits, random_state)


# --------------------------------------------------------------------------- all of them


def scores(
    source: Any,
    ds: xr.Dataset | None = None,
    *,
    by: str | None = None,
    within: str | None = None,
    importance: xr.DataArray | np.ndarray | None = None,
    literature: bool = True,
    random_state: int | None = 0,
) -> pd.Series:
    """All scores at once, as a pandas Series (index = score name).

    Parameters
    ----------
    source : Pathways, fitted GDLN/ReLN, or xarray.Dataset
        - :class:`~relu_probe.Pathways`: the pathway scores; with a recording (``ds``, or the
          pathways' own by/within) also the selectivity and literature scores.
        - a recording (``xarray.Dataset``): pathways are found first with
          ``find_pathways(source, by, within, importance)``; then as above.
        - any object with ``pathway_strength()`` (a fitted GDLN / ReLN, issue "ReLN"): the
          pathway scores weight each pathway by its learned strength instead of its recorded
          mass (see :func:`_pathway_masses` for the interface); the dataset-based scores need
          ``ds``.
    ds : xarray.Dataset, optional
        The recording for the dataset-based scores when ``source`` is not one.
    by, within : str, optional
        Factor coords; default ``source.by`` / ``source.within`` when available.
    importance : optional
        Unit importance for :func:`mixed_selectivity_score` (and for ``find_pathways`` when
        ``source`` is a Dataset); default: the pathways' importance, else activity.
    literature : bool, default=True
        Also compute :func:`ccgp_score`, :func:`parallelism_score` and :func:`dci_score`
        (needs both ``by`` and ``within``).

    Returns
    -------
    pandas.Series
        ``shared_score, node_reuse_score, modularity_score, effective_pathways``, and with a
        recording and both factors ``mixed_selectivity_score``, and with ``literature``
        ``ccgp_score, parallelism_score, dci_disentanglement, dci_completeness,
        dci_informativeness``.
    """
    from .pathways import find_pathways

    if isinstance(source, xr.Dataset):
        if ds is not None:
            raise InputError("`ds` must be omitted when `source` is already a Dataset.")
        ds = source
        if by is None:
            raise InputError("`by` is required when `source` is a Dataset (e.g. by='context').")
        source = find_pathways(ds, by, within, importance)
    by = by if by is not None else getattr(source, "by", None)
    within = within if within is not None else getattr(source, "within", None)
    if importance is None and isinstance(getattr(source, "importance", None), xr.DataArray):
        importance = source.importance
    with warnings.catch_warnings(record=True) as caught:
        # a fully shared / empty structure warns once per score: collect, then say it once
        warnings.simplefilter("always")
        out: dict[str, float] = {
            "shared_score": shared_score(source),
            "node_reuse_score": node_reuse_score(source),
            "modularity_score": modularity_score(source),
            "effective_pathways": effective_pathways(source),
        }
        if ds is not None and by is not None and within is not None:
            ds = check_dataset(ds)
            out["mixed_selectivity_score"] = mixed_selectivity_score(ds, by, importance, within=within)
            if literature:
                out["ccgp_score"] = ccgp_score(ds, by, within, random_state=random_state)
                out["parallelism_score"] = parallelism_score(ds, by, within)
                dci = dci_score(ds, (by, within), random_state=random_state)
                out.update({f"dci_{k}": v for k, v in dci.items()})
    seen: set[tuple[type, str]] = set()
    for w in caught:  # re-emitted under the caller's own warning filters
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, w.category, stacklevel=2)
    return pd.Series(out, name="scores", dtype=np.float64)
