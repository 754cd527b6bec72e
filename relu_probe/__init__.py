"""relu_probe — see how trained ReLU networks compute.

Record which ReLU units are on for which inputs (*gates*), group units into *pathways* that
share a gating structure over task conditions, score modularity, mixed selectivity and node
reuse, and build the equivalent Gated Deep Linear Network (the ReLN of Jarvis, Klein, Rosman
& Saxe, *Make Haste Slowly*, ICLR 2025) that reproduces the network's learning.

>>> import relu_probe as rp
>>> X, Y, coords = rp.tasks.contextual_task(3)
>>> model = rp.tasks.paper_network(3)
>>> ds = rp.record(model, X, coords=coords)          # xarray.Dataset (sample × unit)

Public names are imported lazily on first use, so ``import relu_probe`` is cheap and runs
nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # recording
    "list_sites": "recorder",
    "record": "recorder",
    "Recorder": "recorder",
    "load": "store",
    # pathways and scores
    "unit_importance": "importance",
    "gating_profile": "profiles",
    "find_pathways": "pathways",
    "Pathways": "pathways",
    "PathwayClustering": "pathways",
    "scores": "scoring",
    "shared_score": "scoring",
    "node_reuse_score": "scoring",
    "modularity_score": "scoring",
    "effective_pathways": "scoring",
    "mixed_selectivity_score": "scoring",
    "mixed_selectivity_index": "scoring",
    "ccgp_score": "scoring",
    "parallelism_score": "scoring",
    "dci_score": "scoring",
    # gated deep linear networks
    "GDLN": "gdln",
    "race_dynamics": "race",
    "ReLN": "reln",
    "fastest_reln": "reln",
    "compare_dynamics": "dynamics",
    # export to representation-analysis tools
    "to_rsatoolbox": "export",
    "condition_means": "export",
    # one-call analysis, monitoring
    "analyze": "analysis",
    "Analysis": "analysis",
    "TrainingMonitor": "monitor",
}

_SUBMODULES = ("tasks", "testing", "errors", "io", "dataset", "sites")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'relu_probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import errors, tasks, testing
    from .analysis import Analysis, analyze
    from .dynamics import compare_dynamics
    from .export import condition_means, to_rsatoolbox
    from .gdln import GDLN
    from .importance import unit_importance
    from .monitor import TrainingMonitor
    from .pathways import PathwayClustering, Pathways, find_pathways
    from .profiles import gating_profile
    from .race import race_dynamics
    from .recorder import Recorder, list_sites, record
    from .reln import ReLN, fastest_reln
    from .scoring import (
        ccgp_score,
        dci_score,
        effective_pathways,
        mixed_selectivity_index,
        mixed_selectivity_score,
        modularity_score,
        node_reuse_score,
        parallelism_score,
        scores,
        shared_score,
    )
    from .store import load
