r"""Hand-built ReLU networks **with biases and a leaky layer** whose gates are known exactly:
the known answers for the ReLN of such networks.

:func:`biased_leaky_net` is, in float64, on the contextual inputs of
:func:`relu_probe.testing.pathway_task` (object one-hot, then context one-hot)::

    Linear(n + K → H1, bias) → ReLU                       (site "1")
    Linear(H1 → H2, bias)    → LeakyReLU(slope)           (site "3")
    Linear(H2 → m, bias)                                  (readout "4")

Each hidden layer holds two units per context set ``S`` among the shared set (all ``K``
contexts) and the ``K`` sets of ``K − 1`` contexts (the structure Jarvis et al., arXiv
2503.06181, find), and every unit is on exactly on the samples whose context is in its set,
for every object:

- layer 1, unit ``r ∈ {0, 1}`` of set ``S``: weight ``0.1 (r + 1)(o + 1)/n`` from object
  ``o``, ``−2`` from every context outside ``S``, bias ``0.5``. On (context in ``S``) its
  pre-activation is ``0.5 + 0.1 (r+1)(o+1)/n ∈ (0.5, 0.7]``; off it is at most ``−1.3``.
- layer 2, unit ``r`` of set ``S``: weight ``1/(r + 1)`` from both layer-1 units of the same
  set, bias ``−0.5/(r + 1)`` for a ``(K−1)``-set and ``+0.1`` for the shared set. On its set
  the pre-activation is above ``0.5/(r+1)``; off it is exactly the bias, ``−0.5/(r+1)``,
  so the leaky unit passes ``slope × (−0.5/(r+1))`` there.
- readout: ``W[j, v] = cos(1 + j + 2v)/2``, bias ``b_j = 0.3 − 0.25 j``.

So the biases matter (a ReLN without them cannot produce these outputs), the leaky units
pass a nonzero signal where they are "off", and a layered ReLN with one block per (site,
set) — two units each, the units' own weights — is this network exactly: same outputs on
every sample and the same gradient step, as long as no unit's gate flips (the margins above
are at least 0.25).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._util.checks import check_int, check_real
from ._pathway_nets import pathway_task

__all__ = ["ReLNNet", "biased_leaky_net"]


class ReLNNet(NamedTuple):
    """A hand-built network with its task and the exact expected ReLN structure.

    Attributes
    ----------
    model : torch.nn.Sequential
        Sites ``"1"`` (ReLU) and ``"3"`` (LeakyReLU), readout ``"4"``; every Linear has a bias.
    X : torch.Tensor (n·K, n + K)
    Y : torch.Tensor (n·K, m)
        Targets for a training step (``Y[μ, j] = sin(μ + j)``).
    coords : dict
        ``context`` and ``object`` per sample.
    expected : dict
        ``sets`` ({site: list of context sets, one per pair of units in unit order}),
        ``unit_contexts`` ({site: context set of every unit}), ``slopes`` ({site: slope}),
        ``hidden_bias`` (True for both sites), ``output_bias`` (True), ``outputs`` (the
        network's outputs on ``X``, computed in closed form by numpy from the weights above).
    """

    model: nn.Sequential
    X: torch.Tensor
    Y: torch.Tensor
    coords: dict[str, np.ndarray]
    expected: dict[str, Any]


def _sets(K: int) -> list[tuple[int, ...]]:
    full = tuple(range(K))
    return [full] + [tuple(c for c in full if c != skip) for skip in reversed(range(K))]


def biased_leaky_net(n_contexts: int = 3, n_objects: int = 4, *, slope: float = 0.1, n_outputs: int = 3,
                     depth: int = 2) -> ReLNNet:
    """The two-hidden-layer network of the module docstring, with its known answers.

    ``depth=1`` keeps only the first hidden layer, made leaky: ``Linear(n + K → H1, bias) →
    LeakyReLU(slope)`` (site ``"1"``) ``→ Linear(H1 → m, bias)`` (readout ``"2"``, weights as
    the readout above). Off its set a unit's pre-activation is then ``≤ −1.3`` and passes
    ``slope`` times it.
    """
    K = check_int("n_contexts", n_contexts, minimum=2)
    n = check_int("n_objects", n_objects, minimum=2)
    m = check_int("n_outputs", n_outputs, minimum=1)
    alpha = check_real("slope", slope, minimum=0.0)
    X, coords = pathway_task(K, n)
    sets = _sets(K)
    units = [(S, r) for S in sets for r in (0, 1)]
    H = len(units)
    W1, b1 = np.zeros((H, n + K)), np.full(H, 0.5)
    W2, b2 = np.zeros((H, H)), np.zeros(H)
    for u, (S, r) in enumerate(units):
        W1[u, :n] = 0.1 * (r + 1) * (np.arange(n) + 1) / n
        for c in range(K):
            if c not in S:
                W1[u, n + c] = -2.0
        for u1, (S1, _) in enumerate(units):
            if S1 == S:
                W2[u, u1] = 1.0 / (r + 1)
        b2[u] = 0.1 if len(S) == K else -0.5 / (r + 1)
    W3 = np.array([[math.cos(1 + j + 2 * v) / 2 for v in range(H)] for j in range(m)])
    b3 = 0.3 - 0.25 * np.arange(m)
    check_int("depth", depth, minimum=1)
    if depth > 2:
        raise ValueError("`depth` must be 1 or 2.")
    x = X.numpy()
    if depth == 1:
        model = nn.Sequential(nn.Linear(n + K, H), nn.LeakyReLU(alpha), nn.Linear(H, m)).to(torch.float64)
        layers = ((model[0], (W1, b1)), (model[2], (W3, b3)))
        z1 = x @ W1.T + b1
        outputs = np.where(z1 > 0, z1, alpha * z1) @ W3.T + b3
    else:
        model = nn.Sequential(nn.Linear(n + K, H), nn.ReLU(), nn.Linear(H, H), nn.LeakyReLU(alpha), nn.Linear(H, m))
        model = model.to(torch.float64)
        layers = ((model[0], (W1, b1)), (model[2], (W2, b2)), (model[4], (W3, b3)))
        h1 = np.maximum(x @ W1.T + b1, 0.0)
        z2 = h1 @ W2.T + b2
        h2 = np.where(z2 > 0, z2, alpha * z2)
        outputs = h2 @ W3.T + b3
    with torch.no_grad():
        for layer, (W, b) in layers:
            layer.weight.copy_(torch.from_numpy(W))
            layer.bias.copy_(torch.from_numpy(b))
    P = x.shape[0]
    Y = torch.tensor([[math.sin(mu + j) for j in range(m)] for mu in range(P)], dtype=torch.float64)
    unit_contexts = [S for S, _ in units]
    site_names = ["1"] if depth == 1 else ["1", "3"]
    slopes = [alpha] if depth == 1 else [0.0, alpha]
    expected = {
        "sets": {site: list(sets) for site in site_names},
        "unit_contexts": {site: unit_contexts for site in site_names},
        "slopes": dict(zip(site_names, slopes)),
        "hidden_bias": True,
        "output_bias": True,
        "outputs": outputs,
    }
    return ReLNNet(model, X, Y, coords, expected)

