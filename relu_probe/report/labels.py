"""The words of the report and the command line: how a context set, a pathway's kind, a score
and a race method are named (one place, so every table, figure and line reads the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.schema import context_set_label

__all__ = ["KIND_TEXT", "RACE_EXPLANATIONS", "RACE_LABELS", "SCORE_DEFINITIONS", "context_set_label", "pathway_kind"]

#: One-line definitions of the scores shown in the report (K contexts, pathway masses m_S).
SCORE_DEFINITIONS: dict[str, str] = {
    "shared_score": "Mass m_S of the pathway that is on in every context: 1 = fully shared, 0 = nothing shared.",
    "node_reuse_score": "Σ_S m_S (|S|−1)/(K−1): how many contexts the average unit serves; 0 = one each, 1 = all.",
    "modularity_score": "Over context-specific pathways, Σ m_S (K−|S|)/(K−1) / Σ m_S: 1 = one context per pathway, "
    "1/(K−1) = each serves all but one (undefined, NaN, without context-specific mass).",
    "k_minus_one_score": "(s̄ − 1)/(K − 2), s̄ the mass-weighted mean size of the context-specific sets: 0 = "
    "single-context modules, 1 = (K−1)-context pathways, at every K.",
    "effective_pathways": "exp(−Σ_S m_S ln m_S): the effective number of pathways (n equal pathways give n).",
    "mixed_selectivity_score": "Importance-weighted interaction share of a two-way ANOVA of unit activity over "
    "condition × item (nonlinear mixed selectivity, Rigotti et al. 2013).",
    "ccgp_score": "Cross-condition generalisation: accuracy of a linear decoder of the condition on items it was not "
    "trained on (Bernardi et al. 2020); 0.5 = chance.",
    "parallelism_score": "Mean cosine between the coding vectors (differences of condition means) of the condition "
    "across items (Bernardi et al. 2020); 1 = parallel, abstract code.",
    "dci_disentanglement": "DCI disentanglement: how much each unit codes for a single factor (Eastwood & Williams 2018).",
    "dci_completeness": "DCI completeness: how much each factor is coded by a single unit (Eastwood & Williams 2018).",
    "dci_informativeness": "DCI informativeness: cross-validated accuracy of predicting the factors from the units.",
}

#: How each prediction of the ReLN's learning (:func:`relu_probe.race_dynamics` ``method``) is named.
RACE_LABELS = {"exact": "exact dynamics", "closed": "closed form (mode-by-mode approximation)",
               "race": "neural race", "live": "exact dynamics"}

#: One-sentence explanation of each race method, under the learning-dynamics figure.
RACE_EXPLANATIONS = {
    "exact": "The exact dynamics are full-batch gradient descent of the ReLN's pathways from its mean initial "
             "state, at any width, with no alignment assumption (the context pathways chase the live residual). "
             "The closed form beside it treats every mode on its own (Assumption 2.1 of Jarvis et al. 2025).",
    "closed": "The closed form is the logistic growth of every mode of the neural race, τ dπ/dt = 2π(s − dπ) "
              "(Saxe et al. 2014, 2022; Jarvis et al. 2025).",
    "race": "The neural race couples the modes of all pathways through their overlaps (Eq. 2).",
    "live": "The live race is the exact reduced gradient descent of the pathway maps from the mean initial "
            "state, the context pathways chasing the shared pathway's live residual.",
}

#: How each pathway kind (:func:`pathway_kind`) reads in tables.
KIND_TEXT = {"shared": "shared", "mixed": "mixed", "single": "single context"}


def pathway_kind(contexts: Sequence[Any], n_contexts: int) -> str:
    """``"shared"`` (on in every context), ``"single"`` (one context) or ``"mixed"`` (several)."""
    if len(contexts) >= n_contexts:
        return "shared"
    return "single" if len(contexts) == 1 else "mixed"
