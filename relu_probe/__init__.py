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

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # recording
    "list_sites": "recording.recorder",
    "record": "recording.recorder",
    "Recorder": "recording.recorder",
    "load": "data.store",
    # pathways and scores
    "unit_importance": "pathways.importance",
    "gating_profile": "pathways.profiles",
    "find_pathways": "pathways.find",
    "Pathways": "pathways.result",
    "PathwayClustering": "pathways.clustering",
    "scores": "scoring.table",
    "shared_score": "scoring.structure",
    "node_reuse_score": "scoring.structure",
    "modularity_score": "scoring.structure",
    "k_minus_one_score": "scoring.structure",
    "null_scores": "scoring.null",
    "effective_pathways": "scoring.structure",
    "mixed_selectivity_score": "scoring.selectivity",
    "mixed_selectivity_index": "scoring.selectivity",
    "ccgp_score": "scoring.abstraction",
    "parallelism_score": "scoring.abstraction",
    "dci_score": "scoring.dci",
    # gated deep linear networks
    "GDLN": "reln.gdln",
    "race_dynamics": "reln.race",
    "ReLN": "reln.reln",
    "fastest_reln": "reln.search",
    "compare_dynamics": "reln.dynamics",
    "predict_structure": "reln.predict",
    "compare_structure": "reln.predict",
    "PredictedStructure": "reln.predict",
    # export to representation-analysis tools
    "to_rsatoolbox": "data.export",
    "condition_means": "data.export",
    # one-call analysis, monitoring
    "analyze": "analysis",
    "Analysis": "analysis",
    "TrainingMonitor": "monitor",
}

# public submodule name -> module
_SUBMODULES: dict[str, str] = {
    "tasks": "tasks",
    "testing": "testing",
    "errors": "errors",
    "io": "data.netcdf",
    "dataset": "data.schema",
    "sites": "recording.sites",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{_SUBMODULES[name]}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'relu_probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API and the package's dunder attributes (not its own imports: ``Any``, …)."""
    return sorted({name for name in globals() if name.startswith("__") or name in __all__} | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import errors, tasks, testing
    from .analysis import Analysis, analyze
    from .data import netcdf as io
    from .data import schema as dataset
    from .data.export import condition_means, to_rsatoolbox
    from .data.store import load
    from .monitor import TrainingMonitor
    from .pathways import PathwayClustering, Pathways, find_pathways, gating_profile, unit_importance
    from .recording import Recorder, list_sites, record, sites
    from .reln import (
        GDLN,
        PredictedStructure,
        ReLN,
        compare_dynamics,
        compare_structure,
        fastest_reln,
        predict_structure,
        race_dynamics,
    )
    from .scoring import (
        ccgp_score,
        dci_score,
        effective_pathways,
        k_minus_one_score,
        mixed_selectivity_index,
        mixed_selectivity_score,
        modularity_score,
        node_reuse_score,
        null_scores,
        parallelism_score,
        scores,
        shared_score,
    )
