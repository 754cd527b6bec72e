r"""Hand-built networks for the cases the one-unit-per-object nets of :mod:`._pathway_nets`
cannot catch: several units per item with different activations, readouts that are not the
identity (column norms other than 1, mixed by a rotation), missing (item, context) cells,
channel units of a convolution, a LeakyReLU, two layers on different weight scales, a
near-parallel code and a rarely active unit.

Every expected number is derived in closed form from the weights (the formulas are in each
builder's docstring), never by running relu_probe. Masses are those of the context-set
decomposition with the **readout** importance :math:`I_u \propto \lVert W_{:,u}\rVert\,\bar a_u`
and recorded activations: for unit *u* (activation :math:`L_u` where on, readout norm
:math:`r_u`) and item *o*,

.. math:: m(u, o) \propto r_u \sum_{c \in S(u, o)} a_u(o, c) = r_u\, L_u\, |S(u, o)|

(:func:`relu_probe.find_pathways`, Notes), summed per context set and normalised.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._util.checks import check_int, check_real
from ._pathway_nets import ON, _unit, pathway_task

__all__ = [
    "KnownNet", "scaled_pathway_net", "unbalanced_net", "channel_net", "leaky_net", "deep_net",
    "near_parallel_net", "rare_unit_net",
]


class KnownNet(NamedTuple):
    """A hand-built network, its inputs and coords, how to record it, and what to expect.

    Attributes
    ----------
    model : torch.nn.Module
    X : torch.Tensor
    coords : dict
    expected : dict
        The exact expected results (documented by each builder).
    record : dict
        Keyword arguments of :func:`relu_probe.record` the expectations assume
        (``values=True`` always; ``units="channel"`` for :func:`channel_net`).
    """

    model: nn.Module
    X: torch.Tensor
    coords: dict[str, np.ndarray]
    expected: dict[str, Any]
    record: dict[str, Any]


def _rotation(n: int, seed: int) -> np.ndarray:
    """A fixed orthogonal n × n matrix (QR of a seeded Gaussian): mixes the readout."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _sequential(W1: np.ndarray, readout: np.ndarray, activation: nn.Module | None = None) -> nn.Sequential:
    model = nn.Sequential(
        nn.Linear(W1.shape[1], W1.shape[0], bias=False), activation or nn.ReLU(),
        nn.Linear(readout.shape[1], readout.shape[0], bias=False),
    ).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W1))
        model[2].weight.copy_(torch.from_numpy(readout))
    return model


def _structure(masses: dict[tuple, float], K: int) -> dict[str, float]:
    """The pathway scores of the masses (formulas of :mod:`relu_probe.scoring.structure`)."""
    specific = {S: m for S, m in masses.items() if len(S) < K}
    spec = sum(specific.values())
    return {
        "shared_score": masses.get(tuple(range(K)), 0.0),
        "node_reuse_score": sum(m * (len(S) - 1) / (K - 1) for S, m in masses.items()),
        "modularity_score": (sum(m * (K - len(S)) / (K - 1) for S, m in specific.items()) / spec
                             if spec and K > 2 else math.nan),
        "k_minus_one_score": (sum(m * (len(S) - 1) for S, m in specific.items()) / spec / (K - 2)
                              if spec and K > 2 else math.nan),
        "effective_pathways": math.exp(-sum(m * math.log(m) for m in masses.values() if m > 0)),
    }


def _anova(M: np.ndarray) -> tuple[float, float]:
    """(SS_int, SS_tot) of a (context × item) table of cell means (balanced two-way ANOVA)."""
    mu = M.mean()
    gamma = M - M.mean(1, keepdims=True) - M.mean(0, keepdims=True) + mu
    return float((gamma**2).sum()), float(((M - mu) ** 2).sum())


# --------------------------------------------------------------------------- paper-input nets
def _paper_expected(n: int, K: int, units: list[tuple], missing: set[tuple[int, int]]) -> dict[str, Any]:
    """Closed-form expectations for units ``(object or None, on-contexts, level L, readout norm r)``
    on the paper inputs with the (object, context) cells in *missing* not recorded."""
    cells = [(o, c) for c in range(K) for o in range(n) if (o, c) not in missing]
    P = len(cells)
    complete = [o for o in range(n) if all((o, c) not in missing for c in range(K))]
    raw_imp, masses, sets = [], {}, []
    unassigned = 0.0
    for obj, ctx, level, norm in units:
        on = [(o, c) for o, c in cells if (obj is None or o == obj) and c in ctx]
        raw_imp.append(norm * level * len(on) / P)
        sets.append(tuple(ctx))
    raw_imp = np.array(raw_imp)
    importance = raw_imp / raw_imp.sum()
    for (obj, ctx, level, norm), imp in zip(units, importance):
        items = [o for o in complete if obj is None or o == obj]
        if not items or not ctx:
            unassigned += imp
            continue
        masses[tuple(ctx)] = masses.get(tuple(ctx), 0.0) + imp  # all its complete items have the set ctx
    total = sum(masses.values())
    masses = {S: m / total for S, m in masses.items()}
    out = {"masses": masses, "importance": importance, "unit_contexts": sets, "unassigned": unassigned,
           "items_left_out": n - len(complete), **_structure(masses, K)}
    if not missing:
        ss = []
        for obj, ctx, level, _ in units:
            M = level * np.outer(np.isin(np.arange(K), ctx), np.ones(n) if obj is None else np.eye(n)[obj])
            ss.append(_anova(M))
        ss_int, ss_tot = np.array(ss).T
        out["mixed_selectivity_index"] = np.divide(ss_int, ss_tot, out=np.zeros_like(ss_int), where=ss_tot > 0)
        out["mixed_selectivity_score"] = float((importance * ss_int).sum() / (importance * ss_tot).sum())
    return out


def _paper_net(n: int, K: int, units: list[tuple], missing: set[tuple[int, int]] = frozenset(),
               seed: int = 0) -> KnownNet:
    W1 = np.stack([_unit(n, K, obj, list(ctx)) * (level / ON) for obj, ctx, level, _ in units])
    norms = np.array([u[3] for u in units], dtype=np.float64)
    readout = _rotation(len(units), seed) * norms[None, :]  # column u has norm r_u
    X, coords = pathway_task(K, n)
    keep = np.array([(o, c) not in missing for o, c in zip(coords["object"], coords["context"])])
    X, coords = X[torch.from_numpy(keep)], {k: v[keep] for k, v in coords.items()}
    return KnownNet(_sequential(W1, readout), X, coords, _paper_expected(n, K, units, set(missing)),
                    {"values": True})


def scaled_pathway_net(n_contexts: int = 3, n_objects: int = 4, *, seed: int = 0) -> KnownNet:
    r"""The paper's structure with two units of every kind, different activations and readout
    norms, read out through a rotation.

    Per object: two shared units (activations 1.5 and 0.75, readout norms 2 and 0.5) and, for
    every context :math:`\bar c`, two units on in all contexts but :math:`\bar c` (activations
    1 and 2, norms 1 and 3). With :math:`w = r L |S|` per (unit, item),

    .. math:: m_{\mathrm{all}} = \frac{K (2 \cdot 1.5 + 0.5 \cdot 0.75)}{Z},\quad
              m_{\{c \ne \bar c\}} = \frac{(K-1)(1 \cdot 1 + 3 \cdot 2)}{Z}

    with Z their sum over the K + 1 sets: :math:`m_{\mathrm{all}} = 3.375 / (3.375 +
    7 (K-1))` (0.1942 for K = 3). ``expected`` as for :class:`PathwayNet`, plus the
    (K−1) score 1 and ``unassigned`` 0.
    """
    K = check_int("n_contexts", n_contexts, minimum=3)
    n = check_int("n_objects", n_objects, minimum=2)
    everywhere = tuple(range(K))
    units = [(o, everywhere, 1.5, 2.0) for o in range(n)] + [(o, everywhere, 0.75, 0.5) for o in range(n)]
    for skip in range(K):
        ctx = tuple(c for c in range(K) if c != skip)
        units += [(o, ctx, 1.0, 1.0) for o in range(n)] + [(o, ctx, 2.0, 3.0) for o in range(n)]
    return _paper_net(n, K, units, seed=seed)


def unbalanced_net(base: str = "shared", *, n_contexts: int = 3, n_objects: int = 4,
                   missing: tuple[tuple[int, int], ...] = ((0, 1), (1, 2)), seed: int = 0) -> KnownNet:
    r"""A hand-built net recorded without some (object, context) cells.

    ``base``: ``"shared"`` (per object two units on in every context, activations 1.5 and 1,
    readout norms 1 and 2) or ``"k_minus_one"`` (per object a shared unit and a unit on in all
    contexts but each :math:`\bar c`, activation 1.5, norms 1.5 and 1). ``missing`` lists
    the (object, context) cells left out (default: 2 of the 12 cells of K = 3, n = 4, in two
    different objects).

    An item seen under only some contexts has no defined context set, so it is left out; the
    importance of units that serve only left-out items is *unassigned*
    (``expected["unassigned"]``, their share of the readout importance computed over the
    recorded samples) and the masses describe the complete items: for ``"shared"``,
    ``shared_score`` 1 whatever cells are missing (counting a missing cell as "off" instead
    gives (K−1)-sets to the incomplete items: 40% (K−1)-set mass, shared 0.6 and modularity
    0.5 for the default cells). ``expected["items_left_out"]`` counts the incomplete items.
    """
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    everywhere = tuple(range(K))
    if base == "shared":
        units = [(o, everywhere, 1.5, 1.0) for o in range(n)] + [(o, everywhere, 1.0, 2.0) for o in range(n)]
    elif base == "k_minus_one":
        units = [(o, everywhere, 1.5, 1.5) for o in range(n)]
        units += [(o, tuple(c for c in range(K) if c != skip), 1.5, 1.0) for skip in range(K) for o in range(n)]
    else:
        raise ValueError(f"`base` must be 'shared' or 'k_minus_one', got {base!r}.")
    cells = {(int(o), int(c)) for o, c in missing}
    if any(not (0 <= o < n and 0 <= c < K) for o, c in cells):
        raise ValueError(f"`missing` cells must be (object < {n}, context < {K}); got {sorted(cells)}.")
    return _paper_net(n, K, units, cells, seed=seed)


# --------------------------------------------------------------------------- channel units
def channel_net() -> KnownNet:
    r"""A 1-D convolution whose pathways live in its channels (record with ``units="channel"``).

    Inputs: 3 contexts × 4 objects, 20 positions; input channels are the object and context
    one-hots (constant over positions) and three position patterns: ``a`` (+1 on positions
    0–5, −1 elsewhere), ``b`` (1 on positions 10–14) and ``d`` (1 on position 19).
    ``Conv1d(kernel 1) → ReLU → Conv1d(kernel 1)``, channels:

    - ``A1``, ``A2``: :math:`z = a` and :math:`z = 2a` — on at 6 of 20 positions (rate 0.3)
      in **every** sample, mean activation 0.3 and 0.6; readout norms 5 and 2.5.
    - ``B_c`` (c = 0, 1, 2): on at every position in context c only (activation 1.5, rate 1;
      0 elsewhere); readout norm 1.
    - ``C``: :math:`z = 2b + 3d + [c = 0] - 2.5`: in context 0 on at 6 positions (rate 0.3,
      mean activation (5 · 0.5 + 1.5)/20 = 0.2), in the others at position 19 only (rate
      0.05, activation 0.025); readout norm 4.

    On is decided per channel relative to its own largest rate
    (:mod:`relu_probe.pathways.onsets`): ``A`` is on in every cell (a 30%-active channel is
    on, not "below half of the positions"), ``B_c`` in context c, and ``C`` only in context 0
    (``rate > 0`` would make it shared). With :math:`I_u \propto r_u \bar a_u` —
    :math:`I_{A1} = 5 \cdot 0.3`, :math:`I_{A2} = 2.5 \cdot 0.6`, :math:`I_{B_c} = 1.5/3`,
    :math:`I_C = 4 (0.2 + 2 \cdot 0.025)/3` — and every unit's whole importance in its set:
    shared = 3/(3 + 1.5 + 1/3) = 0.6207, :math:`m_{\{0\}}` = (0.5 + 1/3)/4.8333,
    :math:`m_{\{1\}} = m_{\{2\}}` = 0.5/4.8333; modularity 1.
    """
    K, n, L = 3, 4, 20
    pos = np.arange(L)
    a = np.where(pos < 6, 1.0, -1.0)
    b = ((pos >= 10) & (pos <= 14)).astype(float)
    d = (pos == 19).astype(float)
    context, obj = np.repeat(np.arange(K), n), np.tile(np.arange(n), K)
    P = n * K
    # input channels: n object one-hots, K context one-hots, a, b, d
    X = np.zeros((P, n + K + 3, L))
    X[np.arange(P), obj, :] = 1.0
    X[np.arange(P), n + context, :] = 1.0
    X[:, n + K, :] = a
    X[:, n + K + 1, :] = b
    X[:, n + K + 2, :] = d
    W = np.zeros((6, n + K + 3))
    W[0, n + K] = 1.0  # A1 = a
    W[1, n + K] = 2.0  # A2 = 2a
    for c in range(K):  # B_c: 1.5 in context c, -0.5 elsewhere (the context one-hots sum to 1)
        W[2 + c, n:n + K] = -0.5
        W[2 + c, n + c] = 1.5
    # C = 2b + 3d + [c = 0] - 2.5: the constant from the object one-hots (exactly one is 1)
    W[5, n + K + 1], W[5, n + K + 2], W[5, n] = 2.0, 3.0, 1.0
    W[5, :n] = -2.5
    norms = np.array([5.0, 2.5, 1.0, 1.0, 1.0, 4.0])
    readout = _rotation(6, 1) * norms[None, :]
    model = nn.Sequential(nn.Conv1d(n + K + 3, 6, 1, bias=False), nn.ReLU(), nn.Conv1d(6, 6, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W[:, :, None]))
        model[2].weight.copy_(torch.from_numpy(readout[:, :, None]))
    mean_act = np.array([0.3, 0.6, 1.5 / K, 1.5 / K, 1.5 / K, (0.2 + 2 * 0.025) / K])
    raw = norms * mean_act
    importance = raw / raw.sum()
    sets = [tuple(range(K))] * 2 + [(c,) for c in range(K)] + [(0,)]
    masses: dict[tuple, float] = {}
    for S, imp in zip(sets, importance):
        masses[S] = masses.get(S, 0.0) + float(imp)
    expected = {"masses": masses, "importance": importance, "unit_contexts": sets, "unassigned": 0.0,
                "rates": {"A": 0.3, "C": (0.3, 0.05, 0.05)}, **_structure(masses, K)}
    return KnownNet(model, torch.from_numpy(X), {"context": context, "object": obj}, expected,
                    {"values": True, "units": "channel"})


# --------------------------------------------------------------------------- pattern nets
def _pattern_net(Z: np.ndarray, norms: np.ndarray, activation: nn.Module, seed: int = 0) -> nn.Sequential:
    """One-hot-per-sample inputs: unit u's pre-activation on sample j is exactly ``Z[u, j]``."""
    readout = _rotation(Z.shape[0], seed) * np.asarray(norms, dtype=np.float64)[None, :]
    return _sequential(np.asarray(Z, dtype=np.float64), readout, activation)


def leaky_net(slope: float = 0.1) -> KnownNet:
    r"""Two LeakyReLU(α) units on 2 contexts × 2 objects (one-hot input per sample).

    Unit 1's signed output is additive, :math:`M_1 = a_o + b_c` with a = (1, −1),
    b = (0.5, −0.5): outputs (1.5, 0.5; −0.5, −1.5) (rows: objects), so its pre-activation is
    :math:`z = M` where M > 0 and :math:`M/\alpha` where M < 0. Its interaction share is
    exactly **0**; the magnitude :math:`|M_1|` = (1.5, 0.5; 0.5, 1.5) is a pure interaction
    (share 1). Unit 2: :math:`z = \pm 1` (+1 for (o, c) = (0, 0), (1, 1)), output
    (1, −α; −α, 1), a pure interaction (share 1) either way. Readout norms 2 and 1.

    With :math:`I_u \propto r_u \overline{|a_u|}` (:math:`I_1 \propto 2 \cdot 1`,
    :math:`I_2 \propto (1 + α)/2`) the pooled mixed selectivity is
    :math:`I_2 SS_{int,2} / (I_1 SS_{tot,1} + I_2 SS_{tot,2})` with :math:`SS_{tot,1} = 5`,
    :math:`SS_{int,2} = SS_{tot,2} = (1 + α)^2` (0.0624 for α = 0.1; 1.0 on the magnitude).
    Gates: unit 1 is on for object 0 in both contexts (shared), unit 2 for (0, 0) and (1, 1)
    (one context per item): :math:`m_{\{0,1\}} = I_1`, :math:`m_{\{0\}} = m_{\{1\}} = I_2/2`.
    ``expected["site_slopes"]`` = [α].
    """
    alpha = check_real("slope", slope, minimum=0.0, strict=True)
    K, n = 2, 2
    context, obj = np.repeat(np.arange(K), n), np.tile(np.arange(n), K)
    M1 = np.array([1.0, -1.0])[obj] + np.array([0.5, -0.5])[context]
    z1 = np.where(M1 > 0, M1, M1 / alpha)
    z2 = np.where(obj == context, 1.0, -1.0)
    norms = np.array([2.0, 1.0])
    model = _pattern_net(np.stack([z1, z2]) @ np.eye(n * K), norms, nn.LeakyReLU(alpha))
    out2 = np.where(z2 > 0, z2, alpha * z2)
    raw = norms * np.array([np.abs(M1).mean(), np.abs(out2).mean()])
    imp = raw / raw.sum()
    ss1 = _anova(M1.reshape(K, n))
    ss2 = _anova(out2.reshape(K, n))
    index = np.array([ss1[0] / ss1[1], ss2[0] / ss2[1]])
    ms = float((imp[1] * ss2[0] + imp[0] * ss1[0]) / (imp[0] * ss1[1] + imp[1] * ss2[1]))
    folded = [_anova(np.abs(M1).reshape(K, n)), _anova(np.abs(out2).reshape(K, n))]
    ms_folded = float(sum(i * s[0] for i, s in zip(imp, folded)) / sum(i * s[1] for i, s in zip(imp, folded)))
    masses = {(0, 1): float(imp[0]), (0,): float(imp[1] / 2), (1,): float(imp[1] / 2)}
    expected = {"site_slopes": [alpha], "importance": imp, "mixed_selectivity_index": index,
                "mixed_selectivity_score": ms, "mixed_selectivity_of_magnitude": ms_folded, "masses": masses,
                **_structure(masses, K)}
    return KnownNet(model, torch.eye(n * K, dtype=torch.float64), {"context": context, "object": obj}, expected,
                    {"values": True})


def near_parallel_net() -> KnownNet:
    r"""Two ReLU units whose context coding vectors across two objects are (1, 0.01) and
    (1, −0.01).

    Condition means (context, object) → (unit 1, unit 2): (0, 0) → (2, 1.01),
    (1, 0) → (1, 1), (0, 1) → (2, 0.99), (1, 1) → (1, 1). Every pairing of the two sides gives
    the coding vectors :math:`d = (1, \pm 0.01)`, so the parallelism score is their cosine,
    :math:`(1 - 10^{-4}) / (1 + 10^{-4}) = 0.99980002`. Rescaling each unit by its spread
    within a pair of conditions (a per-pair standardisation) would turn them antiparallel
    (−0.9998).
    """
    K, n = 2, 2
    context, obj = np.repeat(np.arange(K), n), np.tile(np.arange(n), K)
    table = {(0, 0): (2.0, 1.01), (1, 0): (1.0, 1.0), (0, 1): (2.0, 0.99), (1, 1): (1.0, 1.0)}
    Z = np.array([table[(c, o)] for c, o in zip(context, obj)]).T
    model = _pattern_net(Z, np.array([1.0, 1.0]), nn.ReLU())
    expected = {"parallelism_score": (1 - 1e-4) / (1 + 1e-4)}
    return KnownNet(model, torch.eye(n * K, dtype=torch.float64), {"context": context, "object": obj}, expected,
                    {"values": True})


def rare_unit_net(n_per_context: int = 100) -> KnownNet:
    r"""A unit that is almost never on, next to a context-selective one (items do not repeat).

    3 contexts, ``n_per_context`` samples each (one-hot input per sample, coord ``context``
    only). Unit ``rare`` is on (activation 1) for 3 samples of context 0 and 2 of context 1:
    its profile :math:`P(\text{on} \mid c)` is (0.03, 0.02, 0) for 100 samples per context —
    on nowhere under the absolute floor of 5% (:data:`relu_probe.pathways.onsets.ON_FLOOR`),
    although 0.02 is more than half of 0.03. Units ``c2a``, ``c2b`` are on for every sample
    of context 2 (activations 1 and 2). Readout norms 10, 1, 1.

    Expected (profiles): one pathway {2} of mass 1; the rare unit's importance
    :math:`10 \cdot 5/N / (10 \cdot 5/N + 1/3 + 2/3)` is unassigned (0.1429 for N = 300).
    """
    m = check_int("n_per_context", n_per_context, minimum=40)
    K = 3
    context = np.repeat(np.arange(K), m)
    N = K * m
    rare = np.full(N, -1.0)
    rare[[0, 1, 2, m, m + 1]] = 1.0
    c2 = np.where(context == 2, 1.0, -1.0)
    Z = np.stack([rare, c2, 2 * c2])
    norms = np.array([10.0, 1.0, 1.0])
    model = _pattern_net(Z, norms, nn.ReLU())
    raw = norms * np.array([5 / N, 1 / 3, 2 / 3])
    imp = raw / raw.sum()
    expected = {"masses": {(2,): 1.0}, "unassigned": float(imp[0]), "importance": imp,
                "profile_rare": (3 / m, 2 / m, 0.0)}
    return KnownNet(model, torch.eye(N, dtype=torch.float64), {"context": context}, expected, {"values": True})


# --------------------------------------------------------------------------- two layers
def deep_net(n_contexts: int = 3, n_objects: int = 4, *, scale: float = 10.0) -> KnownNet:
    r"""Two ReLU layers with different structure on different weight scales.

    Layer 1 (site ``"1"``) is strictly modular: unit (c, o) is on (activation 1.5) only for
    object o in context c. Layer 2 (site ``"3"``) sums, per object, the layer-1 units of that
    object: unit o is on (1.5) for object o in every context — fully shared. Layer 1's
    readout (layer 2's weights) has column norms 1; layer 2's readout has column norms
    ``scale`` (a rotation times ``scale``).

    Per site (importance normalised within each layer): layer 1 masses :math:`1/K` per
    context (shared 0, modularity 1), layer 2 shared 1. Pooled over both layers with one
    normalisation, layer 2's units carry :math:`I \propto \text{scale} \cdot 1.5 K/(nK)` each
    against :math:`1.5/(nK)` per layer-1 unit: shared :math:`= \text{scale} / (\text{scale} +
    1)` (0.909 for scale 10) — the modular first layer is hidden.
    """
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    scale = check_real("scale", scale, minimum=0.0, strict=True)
    W1 = np.stack([_unit(n, K, o, [c]) for c in range(K) for o in range(n)])
    W2 = np.zeros((n, n * K))
    for c in range(K):
        for o in range(n):
            W2[o, c * n + o] = 1.0
    readout = _rotation(n, 2) * scale
    model = nn.Sequential(
        nn.Linear(n + K, n * K, bias=False), nn.ReLU(), nn.Linear(n * K, n, bias=False), nn.ReLU(),
        nn.Linear(n, n, bias=False),
    ).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W1))
        model[2].weight.copy_(torch.from_numpy(W2))
        model[4].weight.copy_(torch.from_numpy(readout))
    X, coords = pathway_task(K, n)
    layer1 = {(c,): 1.0 / K for c in range(K)}
    layer2 = {tuple(range(K)): 1.0}
    pooled = {tuple(range(K)): scale / (scale + 1), **{(c,): 1.0 / (K * (scale + 1)) for c in range(K)}}
    expected = {"sites": ["1", "3"], "masses": {"1": layer1, "3": layer2}, "pooled_masses": pooled,
                "scores": {"1": _structure(layer1, K), "3": _structure(layer2, K)},
                "pooled_scores": _structure(pooled, K)}
    return KnownNet(model, X, coords, expected, {"values": True})
