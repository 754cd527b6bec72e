r"""Hand-built ReLU networks whose pathways are known exactly.

Every network is ``Linear(n + K → H, no bias) → ReLU → Linear(H → H, no bias)`` in float64,
fed the paper's contextual inputs (object one-hot, then context one-hot; samples
context-major: sample ``j`` is object ``j mod n`` in context ``j // n``). The readout is the
identity, so every hidden unit's outgoing weight norm is 1. With one-hot inputs a unit's
pre-activation is additive, :math:`z_u(o, c) = W[u, o] + W[u, n + c]`, and the weights
below put every unit exactly on or off (margins of at least 0.5) with activation 1.5 when on.

- :func:`modular_net`: one unit per (context c, object o), on only for that pair. Every
  pathway serves one context: masses :math:`m_{\{c\}} = 1/K`; modularity 1, node reuse 0,
  shared 0, :math:`N_{\mathrm{eff}} = K`.
- :func:`shared_net`: one unit per object, on for that object in every context: all mass on
  the shared pathway; shared 1, node reuse 1, mixed selectivity 0.
- :func:`k_minus_one_net`: for every context :math:`\bar c` and object o a unit on for o in
  all contexts but :math:`\bar c`, plus one shared unit per object (the structure Jarvis et
  al., arXiv 2503.06181, find in ReLU networks): :math:`m_{\mathrm{all}} = 1/K`, each (K−1)-set :math:`(K-1)/K^2`.

The expected values are derived in closed form (not by running relu_probe). For the mixed
selectivity, every unit's cell means are rank one, :math:`M = 1.5\, p q^\top` (context
profile p, object profile q), so with :math:`\bar p, \bar q` the means and
:math:`P_2 = \sum (p - \bar p)^2`, :math:`Q_2 = \sum (q - \bar q)^2`:
:math:`SS_{int} = 1.5^2 P_2 Q_2`, :math:`SS_{ctx} = 1.5^2 n \bar q^2 P_2`,
:math:`SS_{obj} = 1.5^2 K \bar p^2 Q_2`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._util.checks import check_int

__all__ = ["PathwayNet", "modular_net", "shared_net", "k_minus_one_net", "pathway_task"]

ON = 1.5  # activation of a unit that is on


class PathwayNet(NamedTuple):
    """A hand-built network with its task and the exact expected results.

    Attributes
    ----------
    model : torch.nn.Sequential
        ``Linear → ReLU → Linear`` (float64, bias-free); the ReLU is site ``"1"`` and its
        readout ``"2"``.
    X : torch.Tensor, shape (n·K, n + K)
    coords : dict
        ``context`` and ``object`` per sample.
    expected : dict
        ``masses`` ({context tuple: mass}), ``unit_contexts`` (each unit's context set, a
        tuple), ``shared_score``, ``node_reuse_score``, ``modularity_score``,
        ``effective_pathways``, ``mixed_selectivity_score`` (pooled, readout or activity
        importance — identical here), ``k_minus_one_score``, ``mixed_selectivity_index``
        (per unit), and
        ``importance`` (per unit, the readout importance, summing to 1).
    """

    model: nn.Sequential
    X: torch.Tensor
    coords: dict[str, np.ndarray]
    expected: dict[str, Any]


def pathway_task(n_contexts: int = 3, n_objects: int = 4) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Inputs and coords of the hand-built networks: ``[object one-hot ; context one-hot]``."""
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    context = np.repeat(np.arange(K), n)
    obj = np.tile(np.arange(n), K)
    X = np.zeros((n * K, n + K))
    X[np.arange(n * K), obj] = 1.0
    X[np.arange(n * K), n + context] = 1.0
    return torch.from_numpy(X), {"context": context, "object": obj}


def _network(W1: np.ndarray) -> nn.Sequential:
    H, n_in = W1.shape
    model = nn.Sequential(nn.Linear(n_in, H, bias=False), nn.ReLU(), nn.Linear(H, H, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W1))
        model[2].weight.copy_(torch.eye(H, dtype=torch.float64))
    return model


def _unit(n: int, K: int, obj: int | None, on_contexts: list[int]) -> np.ndarray:
    """Weights of a unit on (activation 1.5) for object *obj* (None: every object) in
    *on_contexts*, off (z <= -0.5) elsewhere."""
    w = np.zeros(n + K)
    if obj is None:
        w[:n] = 0.0
    else:
        w[:n] = -1.0
        w[obj] = 1.0
    base = ON - (0.0 if obj is None else 1.0)  # context weight that gives z = 1.5 when on
    for c in range(K):
        w[n + c] = base if c in on_contexts else base - 2.0
    return w


def _rank_one_ss(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """(SS_int, SS_tot) of the cell means 1.5 p qᵀ (see the module docstring)."""
    K, n = p.size, q.size
    P2, Q2 = float(((p - p.mean()) ** 2).sum()), float(((q - q.mean()) ** 2).sum())
    ss_int = ON**2 * P2 * Q2
    ss_tot = ss_int + ON**2 * n * q.mean() ** 2 * P2 + ON**2 * K * p.mean() ** 2 * Q2
    return ss_int, ss_tot


def _expected(n: int, K: int, units: list[tuple[int | None, list[int]]]) -> dict[str, Any]:
    """Closed-form expectations for units given as (object or None, on-contexts)."""
    P = n * K
    activity, sets, ss = [], [], []
    masses: dict[tuple, float] = {}
    for obj, ctx in units:
        q = np.ones(n) if obj is None else np.eye(n)[obj]
        p = np.isin(np.arange(K), ctx).astype(float)
        total = ON * p.sum() * q.sum()  # summed activation over the P samples
        activity.append(total / P)
        sets.append(tuple(ctx))
        ss.append(_rank_one_ss(p, q))
        # the readout norm is 1, so a unit's mass is its summed activation (find_pathways, Notes)
        masses[tuple(ctx)] = masses.get(tuple(ctx), 0.0) + total
    grand = sum(masses.values())
    masses = {S: m / grand for S, m in masses.items()}
    importance = np.array(activity) / sum(activity)
    ss_int = np.array([s[0] for s in ss])
    ss_tot = np.array([s[1] for s in ss])
    index = np.divide(ss_int, ss_tot, out=np.zeros_like(ss_int), where=ss_tot > 0)
    specific = {S: m for S, m in masses.items() if len(S) < K}
    spec_total = sum(specific.values())
    return {
        "masses": masses,
        "unit_contexts": sets,
        "importance": importance,
        "shared_score": masses.get(tuple(range(K)), 0.0),
        "node_reuse_score": sum(m * (len(S) - 1) / (K - 1) for S, m in masses.items()),
        "modularity_score": (
            sum(m * (K - len(S)) / (K - 1) for S, m in specific.items()) / spec_total
            if spec_total and K > 2 else math.nan
        ),
        "k_minus_one_score": (
            sum(m * (len(S) - 1) for S, m in specific.items()) / spec_total / (K - 2)
            if spec_total and K > 2 else math.nan
        ),
        "effective_pathways": math.exp(-sum(m * math.log(m) for m in masses.values() if m > 0)),
        "mixed_selectivity_index": index,
        "mixed_selectivity_score": float((importance * ss_int).sum() / (importance * ss_tot).sum())
        if (importance * ss_tot).sum() > 0
        else 0.0,
    }


def _build(n: int, K: int, units: list[tuple[int | None, list[int]]]) -> PathwayNet:
    W1 = np.stack([_unit(n, K, obj, ctx) for obj, ctx in units])
    X, coords = pathway_task(K, n)
    return PathwayNet(_network(W1), X, coords, _expected(n, K, units))


def modular_net(n_contexts: int = 3, n_objects: int = 4) -> PathwayNet:
    """Strictly modular: unit (c, o) is on only for object o in context c.

    Expected: :math:`m_{\\{c\\}} = 1/K`, modularity 1, (K−1) score 0, node reuse 0, shared 0,
    :math:`N_{\\mathrm{eff}} = K`, every unit's mixed-selectivity index
    :math:`(K-1)(n-1)/(Kn-1)`.
    """
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    return _build(n, K, [(o, [c]) for c in range(K) for o in range(n)])


def shared_net(n_contexts: int = 3, n_objects: int = 4) -> PathwayNet:
    """Fully shared: unit o is on for object o in every context.

    Expected: all mass shared, shared 1, node reuse 1, :math:`N_{\\mathrm{eff}} = 1`, mixed
    selectivity 0, modularity and the (K−1) score NaN (no context-specific mass: undefined,
    with a ``DegenerateDataWarning``).
    """
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    return _build(n, K, [(o, list(range(K))) for o in range(n)])


def k_minus_one_net(n_contexts: int = 3, n_objects: int = 4) -> PathwayNet:
    """The paper's structure: per object, one shared unit and K units each on in K−1 contexts.

    Expected: :math:`m_{\\mathrm{all}} = 1/K`, each (K−1)-set :math:`(K-1)/K^2`, node reuse
    :math:`(K-1)/K`, modularity :math:`1/(K-1)`, (K−1) score 1 (K > 2), skip units' mixed-selectivity index
    :math:`(n-1)/(Kn-K+1)`, shared units' 0.
    """
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    units = [(o, list(range(K))) for o in range(n)]
    units += [(o, [c for c in range(K) if c != skip]) for skip in range(K) for o in range(n)]
    return _build(n, K, units)
