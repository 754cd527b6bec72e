"""Scores of the learned structure.

From pathway masses (:mod:`.structure`): :func:`shared_score`, :func:`node_reuse_score`,
:func:`modularity_score`, :func:`effective_pathways`. From the recorded activity:
:func:`mixed_selectivity_index` / :func:`mixed_selectivity_score` (two-way ANOVA,
:mod:`.selectivity`), :func:`ccgp_score` and :func:`parallelism_score` (abstraction geometry,
:mod:`.abstraction`) and :func:`dci_score` (:mod:`.dci`). :func:`scores` computes them all.
"""

from .abstraction import ccgp_score, parallelism_score
from .dci import dci_score
from .selectivity import mixed_selectivity_index, mixed_selectivity_score
from .structure import effective_pathways, modularity_score, node_reuse_score, shared_score
from .table import scores

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
