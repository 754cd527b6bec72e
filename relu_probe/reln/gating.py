"""Gatings: when each pathway of a gated deep linear network is open, and the sample groups and
cue inputs they imply.

A *gating* is a 0/1 matrix ``G`` of shape ``(pathway, sample)``: ``G[p, μ] = 1`` when
pathway ``p`` is open on sample ``μ``. Users give it either directly (array, tensor or
``xarray.DataArray`` with dims ``(pathway, sample)``) or as a list of *context sets* together
with per-sample ``context`` labels; pathway ``p`` is then open on every sample whose context
is in its set.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import xarray as xr

from .._util.arrays import plain, to_numpy
from ..data.schema import context_set_label
from ..errors import DegenerateDataWarning, InputError, ValueInputError, describe

__all__ = [
    "Gating",
    "context_labels",
    "contexts_of_gates",
    "cue_inputs",
    "resolve_gates",
    "sample_groups",
]


@dataclass(frozen=True)
class Gating:
    """A resolved gating.

    Attributes
    ----------
    G : numpy.ndarray, shape (n_pathways, n_samples), float64 of 0.0 / 1.0
    names : list of str
        One label per pathway (``"{0,1}"`` for context sets,
        :func:`relu_probe.data.schema.context_set_label`; ``"p0"`` … otherwise, or the
        ``pathway`` coordinate of a DataArray).
    contexts : list of tuple or None
        The context set of each pathway when the gating came from context sets (or could be
        read off ``context`` labels: the contexts on whose samples the gate is fully open).
    """

    G: np.ndarray
    names: list[str]
    contexts: list[tuple] | None

    @property
    def n_pathways(self) -> int:
        return int(self.G.shape[0])


def context_labels(context: Any, n_samples: int, name: str = "context") -> np.ndarray:
    """Validate per-sample context labels (1-D, one per sample)."""
    arr = to_numpy(context)
    if arr.ndim != 1:
        raise ValueInputError(f"`{name}` must be 1-D (one label per sample), got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueInputError(
            f"`{name}` must have one label per sample ({n_samples}), got {arr.shape[0]}."
        )
    return arr


def _is_context_set_list(gates: Any) -> bool:
    if isinstance(gates, (str, bytes)) or not isinstance(gates, (list, tuple)):
        return False
    return all(
        isinstance(g, (tuple, list, set, frozenset)) or np.isscalar(g) for g in gates
    )


def _sorted_tuple(values: Iterable[Any]) -> tuple:
    vals = list(values)
    try:
        vals = sorted(vals)
    except TypeError:
        pass
    return tuple(plain(v) for v in vals)


def resolve_gates(
    gates: Any,
    n_samples: int,
    context: Any = None,
    *,
    name: str = "gates",
    warn_empty: bool = True,
    strict: bool = True,
) -> Gating:
    """Turn a user's gate specification into a :class:`Gating`.

    Parameters
    ----------
    gates : array-like (pathway, sample) of 0/1, DataArray, or list of context sets
        A list of context sets (tuples/lists/sets of context values; a bare scalar means a
        one-context set) requires ``context``.
    n_samples : int
        Number of samples the gates must cover.
    context : array-like (sample,), optional
        Per-sample context labels.
    strict : bool, default=True
        Reject context sets naming a context that no sample has (off for predicting a subset).
    """
    ctx = None if context is None else context_labels(context, n_samples)
    if _is_context_set_list(gates) and (ctx is not None or not _looks_like_matrix(gates)):
        if ctx is None:
            raise ValueInputError(
                f"`{name}` looks like a list of context sets; pass the per-sample context labels "
                "as `context=` (e.g. coords['context'])."
            )
        return _from_context_sets(gates, ctx, name=name, strict=strict)
    gating = _from_matrix(gates, n_samples, ctx, name=name)
    if warn_empty:
        empty = [gating.names[i] for i in range(gating.n_pathways) if not gating.G[i].any()]
        if empty:
            warnings.warn(
                f"`{name}`: pathway(s) {empty} are closed on every sample and will never learn.",
                DegenerateDataWarning,
                stacklevel=4,
            )
    return gating


def _from_context_sets(gates: Sequence[Any], ctx: np.ndarray, *, name: str, strict: bool) -> Gating:
    """Pathway *p* is open on the samples whose context is in ``gates[p]``."""
    if len(gates) == 0:
        raise ValueInputError(f"`{name}` must name at least one pathway, got an empty list.")
    available = _sorted_tuple(np.unique(ctx))
    rows, names, sets = [], [], []
    for i, entry in enumerate(gates):
        members = (entry,) if np.isscalar(entry) else tuple(entry)
        if len(members) == 0:
            raise ValueInputError(f"`{name}[{i}]` is an empty context set.")
        unknown = [v for v in members if not np.any(ctx == v)]
        if unknown and strict:
            raise ValueInputError(
                f"`{name}[{i}]` names context value(s) {unknown!r} that no sample has; "
                f"available contexts: {list(available)}."
            )
        rows.append(np.isin(ctx, np.asarray(members, dtype=ctx.dtype)).astype(np.float64))
        sets.append(_sorted_tuple(set(members)))
        names.append(context_set_label(sets[-1]))
    return Gating(np.vstack(rows), names, sets)


def _from_matrix(gates: Any, n_samples: int, ctx: np.ndarray | None, *, name: str) -> Gating:
    """A (pathway, sample) 0/1 array, tensor or DataArray (names and context sets read off a
    DataArray's ``contexts`` / ``pathway`` coords, else off the context labels)."""
    names: list[str] | None = None
    da_sets: list[tuple] | None = None
    if isinstance(gates, xr.DataArray):
        if gates.ndim != 2:
            raise ValueInputError(f"`{name}` must be 2-D (pathway, sample), got dims {gates.dims}.")
        if "sample" in gates.dims and gates.dims[0] == "sample":
            gates = gates.transpose()
        if "contexts" in gates.coords and gates["contexts"].dims == (gates.dims[0],):
            da_sets = [_sorted_tuple(v) for v in gates["contexts"].values]
            names = [context_set_label(v) for v in da_sets]
        elif "pathway" in gates.coords:
            names = [str(v) for v in gates["pathway"].values]
    wrong_type = InputError(
        f"`{name}` must be a (pathway, sample) 0/1 array or a list of context sets, got {describe(gates)}."
    )
    try:
        arr = to_numpy(gates)
    except Exception as exc:  # pragma: no cover - defensive
        raise wrong_type from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise wrong_type
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueInputError(f"`{name}` must be 2-D (pathway, sample), got shape {arr.shape}.")
    if arr.shape[1] != n_samples:
        raise ValueInputError(
            f"`{name}` must have one column per sample ({n_samples}), got shape {arr.shape} "
            "(expected (pathway, sample))."
        )
    if arr.shape[0] == 0:
        raise ValueInputError(f"`{name}` must hold at least one pathway, got shape {arr.shape}.")
    G = arr.astype(np.float64)
    if not np.all(np.isfinite(G)) or not np.all((G == 0.0) | (G == 1.0)):
        bad = np.unique(G[~((G == 0.0) | (G == 1.0))])[:5]
        raise ValueInputError(
            f"`{name}` must contain only 0 and 1 (pathway open / closed), got values such as {bad.tolist()}."
        )
    if names is None:
        names = [f"p{i}" for i in range(G.shape[0])]
    sets = da_sets if da_sets is not None else (contexts_of_gates(G, ctx) if ctx is not None else None)
    return Gating(G, names, sets)


def _looks_like_matrix(gates: Sequence[Any]) -> bool:
    try:
        arr = np.asarray(gates)
    except Exception:
        return False
    return arr.dtype != object and arr.ndim == 2


def contexts_of_gates(G: np.ndarray, context: np.ndarray) -> list[tuple]:
    """For each pathway, the tuple of contexts on whose samples the gate is open everywhere."""
    values = _sorted_tuple(np.unique(context))
    out = []
    for row in G:
        out.append(tuple(v for v in values if np.all(row[context == v] == 1.0)))
    return out


def sample_groups(G: np.ndarray | None = None, context: Any = None, n_samples: int | None = None) -> np.ndarray:
    """Integer group id per sample: the context labels when given, else the gate pattern.

    Samples with the same column of ``G`` cannot be told apart by the pathways, so they form
    a group (for context-set gatings these are exactly the contexts).
    """
    if context is not None:
        ctx = np.asarray(context)
        _, inv = np.unique(ctx, return_inverse=True)
        return inv.reshape(-1)
    if G is None:
        if n_samples is None:  # pragma: no cover - internal misuse
            raise ValueError("need G, context or n_samples")
        return np.zeros(n_samples, dtype=int)
    _, inv = np.unique(G.T, axis=0, return_inverse=True)
    return inv.reshape(-1)


def cue_inputs(X: np.ndarray, groups: np.ndarray, *, atol: float = 0.0) -> np.ndarray:
    """Boolean mask over input features that are cue inputs: constant within every group but
    not the same in all of them.

    Feature ``i`` is a cue input when ``max_μ∈c x_μi − min_μ∈c x_μi <= atol`` for every group
    ``c`` and ``max_μ x_μi − min_μ x_μi > atol`` over all samples — e.g. the context one-hot of
    the paper's tasks, which tells the groups apart. A feature that is constant over *all*
    samples (a bias input) carries no cue: it is what a bias reads, and every pathway reads it.
    """
    X = np.asarray(X, dtype=np.float64)
    cue = np.ones(X.shape[1], dtype=bool)
    for g in np.unique(groups):
        block = X[groups == g]
        cue &= (block.max(axis=0) - block.min(axis=0)) <= atol
    if X.shape[0]:
        cue &= (X.max(axis=0) - X.min(axis=0)) > atol
    return cue
