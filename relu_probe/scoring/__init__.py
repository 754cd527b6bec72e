"""Scores of the learned structure.

From pathway masses (:mod:`.structure`): :func:`shared_score`, :func:`node_reuse_score`,
:func:`modularity_score`, :func:`k_minus_one_score`, :func:`effective_pathways`. From the recorded activity:
:func:`mixed_selectivity_index` / :func:`mixed_selectivity_score` (two-way ANOVA,
:mod:`.selectivity`), :func:`ccgp_score` and :func:`parallelism_score` (abstraction geometry,
:mod:`.abstraction`) and :func:`dci_score` (:mod:`.dci`). :func:`scores` computes them all,
:func:`null_scores` each next to its null baseline (:mod:`.null`).
"""

from .abstraction import ccgp_score, parallelism_score
from .dci import dci_score
from .selectivity import mixed_selectivity_index, mixed_selectivity_score
from .null import null_scores
from .structure import effective_pathways, k_minus_one_score, modularity_score, node_reuse_score, shared_score
from .table import scores

__all__ = [
    "shared_score",
    "node_reuse_score",
    "modularity_score",
    "k_minus_one_score",
    "effective_pathways",
    "mixed_selectivity_index",
    "mixed_selectivity_score",
    "ccgp_score",
    "parallelism_score",
    "dci_score",
    "scores",
    "null_scores",
]
