"""The paper's two-hidden-layer network analysed per layer (Jarvis et al., arXiv 2503.06181,
section 6): layer 1 becomes shared, and the gating structure sits in layer 2 — more mass on
two-context sets than on single contexts. Pooling the two layers into one decomposition (one
importance normalisation) blurs this."""

from __future__ import annotations

import pytest
from _trained import depth_network

import relu_probe as rp


def by_size(pw: rp.Pathways) -> dict[int, float]:
    out: dict[int, float] = {}
    for contexts, mass in zip(pw.contexts, pw.mass.values):
        out[len(contexts)] = out.get(len(contexts), 0.0) + float(mass)
    return out


@pytest.mark.slow
def test_depth_network_masses_per_layer():
    model, loss = depth_network(0)
    assert loss[-1] < 3.0  # trained: the staged plateaus are behind it
    X, _, coords = rp.tasks.contextual_task(3)
    ds = rp.record(model, X, coords=coords, values=True)
    pw = rp.find_pathways(ds, "context", "object", model=model)
    assert pw.sites == ["1", "3"] and pw.importance.attrs["method"] == "readout"
    layer1, layer2 = by_size(pw.sel("1")), by_size(pw.sel("3"))
    # measured: layer 1 0.81 / 0.14 / 0.05 (|S| = 3 / 2 / 1); layer 2 0.72 / 0.22 / 0.06
    assert layer1[3] == pytest.approx(0.81, abs=0.05), layer1
    assert layer1[3] > layer2[3], (layer1, layer2)
    assert layer2[2] == pytest.approx(0.22, abs=0.05), layer2
    assert layer2[2] > 2 * layer2.get(1, 0.0), layer2
    assert layer2[2] > layer1[2], (layer1, layer2)
    table = rp.scores(pw, ds, literature=False)
    assert list(table.index) == ["1", "3"]
    assert table.loc["1", "shared_score"] == pytest.approx(layer1[3])
    # pooled, the layers' masses are mixed: neither layer's numbers
    pooled = by_size(rp.find_pathways(ds, "context", "object", model=model, per_site=False))
    assert layer2[3] < pooled[3] < layer1[3], (pooled, layer1, layer2)
