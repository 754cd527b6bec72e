"""Pathways: which units matter, when they are on, and which sets of contexts they serve.

:func:`unit_importance` weighs the recorded units, :func:`gating_profile` gives
P(on | condition), and :func:`find_pathways` groups the units into pathways keyed by the
contexts they serve (the context-set decomposition, or clustering with
:class:`PathwayClustering` where items do not repeat across contexts). The result is a
:class:`Pathways`.
"""

from .clustering import PathwayClustering, bipartite_modularity
from .find import find_pathways
from .importance import unit_importance
from .profiles import gating_profile
from .result import Pathways

__all__ = ["Pathways", "PathwayClustering", "bipartite_modularity", "find_pathways", "gating_profile", "unit_importance"]
