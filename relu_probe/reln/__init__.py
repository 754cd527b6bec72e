"""Gated deep linear networks: the GDLN, its neural race, and the ReLN of a ReLU network.

:class:`GDLN` simulates a gated deep linear network (Saxe, Sodhani & Lewallen, arXiv
2207.10430) by full-batch gradient descent; :func:`race_dynamics` predicts its learning from
the gated correlations of the data (closed form, coupled race, or exact reduced dynamics);
:class:`ReLN` is the GDLN whose gates are the pathways a ReLU network uses (Jarvis, Klein,
Rosman & Saxe, arXiv 2503.06181) and :func:`fastest_reln` ranks candidate gatings by their
predicted speed; :func:`compare_dynamics` compares loss curves. All of them read their
pathway parameters through one :class:`~relu_probe.reln.spec.PathwaySpec`.
"""

from .dynamics import compare_dynamics
from .gdln import GDLN
from .predict import PredictedStructure, compare_structure, predict_structure
from .race import race_dynamics
from .reln import ReLN
from .search import fastest_reln
from .spec import PathwaySpec

__all__ = [
    "GDLN",
    "PathwaySpec",
    "PredictedStructure",
    "ReLN",
    "compare_dynamics",
    "compare_structure",
    "fastest_reln",
    "predict_structure",
    "race_dynamics",
]
