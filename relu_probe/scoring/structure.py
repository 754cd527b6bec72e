"""Scores of the learned structure from pathway masses: shared, node reuse, modularity, the
K-comparable (K−1)-structure score and the effective number of pathways.

With K contexts and pathway masses :math:`m_S` (summing to 1) each score is a function of the
masses and the sizes :math:`|S|` of their context sets; each function's docstring gives its
formula.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from .._util.checks import check_real
from ..errors import DegenerateDataWarning, InputError, ValueInputError, describe

__all__ = [
    "shared_score", "node_reuse_score", "modularity_score", "k_minus_one_score", "effective_pathways", "pathway_masses",
]


def _degenerate(message: str) -> None:
    warnings.warn(message, DegenerateDataWarning, stacklevel=3)


def _no_specific_mass(mass: float, min_mass: float) -> None:
    warnings.warn(
        f"context-specific pathway mass is {mass:.3g} (< min_mass={min_mass:g}): modularity_score and "
        "k_minus_one_score are undefined without context-specific structure (NaN).",
        DegenerateDataWarning,
        stacklevel=4,
    )


def pathway_masses(pathways: Any, name: str = "pathways") -> tuple[np.ndarray, np.ndarray, int]:
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
    fully shared network, 0 for a strictly modular one (the paper's common pathway, Jarvis et
    al. 2025, arXiv 2503.06181).

    Parameters
    ----------
    pathways : Pathways, fitted GDLN/ReLN, or DataArray
        See :func:`scores` for what is accepted.

    Returns
    -------
    float
        In [0, 1]; 0 (with a ``DegenerateDataWarning``) when there is no mass at all.
    """
    m, sizes, K = pathway_masses(pathways)
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
    m, sizes, K = pathway_masses(pathways)
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
    selectivity); cf. the strictly modular vs mixed ReLNs of Jarvis et al. (2025,
    arXiv 2503.06181). Its range is :math:`[1/(K-1), 1]`, and the value of a (K−1)
    structure moves with K: to compare structures across K use :func:`k_minus_one_score`.

    Parameters
    ----------
    pathways : Pathways, fitted GDLN/ReLN, or DataArray
    min_mass : float, default=1e-3
        When the context-specific mass :math:`\sum_{|S|<K} m_S` is below this, the ratio
        measures numerical noise (e.g. 1e-7 early in training).

    Returns
    -------
    float
        In :math:`[1/(K-1), 1]`; **NaN** with a ``DegenerateDataWarning`` when it is undefined
        — no context-specific mass (a fully shared network) or less than ``min_mass`` — or
        says nothing: K = 2, where every context-specific pathway serves one context and the
        range is the single value 1.
    """
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    m, sizes, K = pathway_masses(pathways)
    if K < 3:
        _degenerate("with K = 2 contexts every context-specific pathway serves one context: modularity_score "
                    "is 1 by construction and says nothing about the structure (NaN); see shared_score.")
        return float("nan")
    specific = sizes < K
    denominator = m[specific].sum()
    if denominator <= 0 or denominator < min_mass:
        _no_specific_mass(denominator, min_mass)
        return float("nan")
    return float((m[specific] * (K - sizes[specific]) / (K - 1)).sum() / denominator)


def k_minus_one_score(pathways: Any, *, min_mass: float = 1e-3) -> float:
    r"""Where the context-specific structure lies between single-context modules and
    (K−1)-context pathways, on a scale that does not move with K.

    The two reference structures for K contexts are *shared + single-context modules*
    (every context-specific pathway serves one context) and *shared + (K−1)-sets* (every
    context-specific pathway serves all contexts but one — the structure Jarvis et al.,
    arXiv 2503.06181, find in ReLU networks). With :math:`\bar s` the mass-weighted mean
    size of the context-specific sets,

    .. math:: \bar s = \frac{\sum_{|S|<K} m_S\,|S|}{\sum_{|S|<K} m_S}, \qquad
              \mathrm{k\_minus\_one} = \frac{\bar s - 1}{K - 2}
              = \frac{K - 1}{K - 2}\,(1 - \mathrm{modularity})

    0 for the modular reference and 1 for the (K−1) reference **at every K** (modularity is
    :math:`1/(K-1)` and node reuse :math:`(K-2)/(K-1)` for any (K−1) structure, so they
    change with K by construction). The shared mass does not enter: both references have it.

    Returns
    -------
    float
        In [0, 1]; NaN with a ``DegenerateDataWarning`` when undefined: K = 2 (the two
        references coincide) or no context-specific mass (below ``min_mass``, as for
        :func:`modularity_score`).
    """
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    m, sizes, K = pathway_masses(pathways)
    if K < 3:
        _degenerate("with K = 2 contexts single-context and (K-1)-context pathways are the same: "
                    "k_minus_one_score is NaN.")
        return float("nan")
    specific = sizes < K
    denominator = m[specific].sum()
    if denominator <= 0 or denominator < min_mass:
        _no_specific_mass(denominator, min_mass)
        return float("nan")
    mean_size = float((m[specific] * sizes[specific]).sum() / denominator)
    return (mean_size - 1.0) / (K - 2)


def effective_pathways(pathways: Any) -> float:
    r"""Effective number of pathways: the exponential of the entropy of the masses.

    .. math:: N_{\mathrm{eff}} = \exp\Big(-\sum_S m_S \ln m_S\Big)

    (the Hill number of order 1; Hill 1973). Equals n for n pathways of equal mass. Returns 0
    with a ``DegenerateDataWarning`` when there is no mass at all.
    """
    m, _, _ = pathway_masses(pathways)
    if m.sum() <= 0:
        _degenerate("no pathway mass: effective_pathways is 0.")
        return 0.0
    p = m[m > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
