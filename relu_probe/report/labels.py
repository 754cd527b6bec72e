"""The words of the report and the command line: how a context set, a pathway's kind, a score,
a site, a unit's gating measure and a race method are named (one place, so every table,
figure and line reads the same)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..data.schema import context_set_label

__all__ = ["KIND_TEXT", "RACE_EXPLANATIONS", "RACE_LABELS", "SCORE_DEFINITIONS", "SCORE_LABELS", "context_set_label",
           "default_title", "gating_measure", "pathway_kind", "score_label", "site_labels"]

#: How each score is named for a reader (tables, figure legends).
SCORE_LABELS: dict[str, str] = {
    "shared_score": "Shared",
    "node_reuse_score": "Node reuse",
    "modularity_score": "Modularity",
    "k_minus_one_score": "(K−1)‑of‑K structure",  # non-breaking hyphens: one word on a line
    "effective_pathways": "Effective pathways",
    "mixed_selectivity_score": "Mixed selectivity",
    "ccgp_score": "CCGP",
    "parallelism_score": "Parallelism",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness",
}

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


def score_label(name: str) -> str:
    """A score's name for a reader: ``"Node reuse"`` for ``node_reuse_score``; an unknown
    score's identifier with ``_score`` dropped and underscores as spaces, capitalised."""
    name = str(name)
    if name in SCORE_LABELS:
        return SCORE_LABELS[name]
    text = re.sub(r"_score$", "", name).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name


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


def gating_measure(units: str, by: str) -> str:
    """What a unit's per-condition value is: ``P(on | by)`` for element units (the fraction of
    samples on which the unit is on); for channel units the mean over samples of the
    fraction of the channel's positions that are on."""
    if units == "channel":
        return f"fraction of positions active, mean per {by}"
    return f"P(on | {by})"


def _fold(parts: list[list[str]]) -> list[list[str]]:
    """Drop the components every name shares at its start and at its end (keeping one)."""
    if len(parts) < 2:
        return parts
    head = 0
    while all(len(p) > head + 1 for p in parts) and len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while all(len(p) > head + tail + 1 for p in parts) and len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    out = []
    for p in parts:
        middle = p[head: len(p) - tail]
        if head and all(c.isdigit() for c in ".".join(middle).replace(".", "")):
            middle = [p[head - 1], *middle]  # "0" alone says nothing: keep "layer.0"
        out.append(middle)
    return out


def site_labels(sites: Sequence[str]) -> list[str]:
    """Short, distinct labels of recording sites, for axes and tables (the full name goes in a
    tooltip).

    Module-path components shared by every site at the start and at the end are folded
    away (``bert.encoder.layer.0.intermediate.intermediate_act_fn`` and ``…layer.1…`` read
    ``layer.0`` and ``layer.1``); an index of an ``nn.Sequential`` (``"3"``) reads
    ``ReLU 2`` (the site's place among the sites, from 1); names that folding would make
    equal are kept whole.

    >>> site_labels(["bert.encoder.layer.0.intermediate.act", "bert.encoder.layer.1.intermediate.act"])
    ['layer.0', 'layer.1']
    >>> site_labels(["1", "3", "5"])
    ['ReLU 1', 'ReLU 2', 'ReLU 3']
    >>> site_labels(["relu", "layer1.0.relu#0"])
    ['relu', 'layer1.0.relu#0']
    """
    names = [str(s) for s in sites]
    parts = _fold([n.split(".") for n in names])
    labels = [".".join(p) if p else n for p, n in zip(parts, names)]
    if len(set(labels)) < len(labels):
        labels = list(names)
    return [f"ReLU {i + 1}" if re.fullmatch(r"\d+", label) else label for i, label in enumerate(labels)]


def default_title(model_class: str, by: str, within: str | None, n_sites: int) -> str:
    """The report's title when none is given: what was analysed, in words."""
    model = model_class or "network"
    across = f", items {within}" if within else ""
    sites = f"{n_sites} ReLU site{'s' if n_sites != 1 else ''}"
    return f"ReLU pathways by {by}{across} in a {model} ({sites})"
