"""Slow reproductions for issue 11: the layered ReLN on the paper's depth task, and the ReLN of
a biased ReLU network (``pytest -m slow tests/test_paper_deep_biased_reln.py``).

Depth (11 → 420 → 420 → 60, init std 0.0006, lr 1e-3, 30001 epochs; Jarvis et al., arXiv
2503.06181, and the authors' ``depth/relu.py``): the ReLU loss sits on plateaus near 96, 66 and
12 and ends below 3. The layered ReLN of its per-site pathways, with gates that follow the
recorded training gates, reproduces those stages; with gates fixed at their final context sets
it cannot (the context blocks of layer 2 then learn the context means right after the global
mean, skipping the 66 plateau), and the checks below say so too.

Biases (the paper's one-hidden-layer task with zero-initialised biases): the ReLN that models
them (constant input of every pathway, ungated direct path to the outputs) tracks the biased
ReLU network better than the same ReLN ignoring them, and within the mean |ΔL| of 3.1 that
issue 11 reports for a hand-built biased model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import relu_probe as rp
from relu_probe.reln.layered import LayeredSpec

pytestmark = pytest.mark.slow


def _plateau(loss: np.ndarray, value: float, tol: float, length: int) -> bool:
    """The curve stays within ``tol`` of ``value`` for at least ``length`` consecutive epochs."""
    near = np.abs(loss - value) <= tol
    run = best = 0
    for flag in near:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best >= length


def _trained(net, X, Y, coords, *, epochs, every):
    torch.set_num_threads(1)
    monitor = rp.TrainingMonitor(net, X, coords=coords, every=every, values=False)
    relu = rp.tasks.train_full_batch(net, X, Y, epochs=epochs, callback=lambda e, l: monitor.update(e, l))
    ds = rp.record(net, X, coords=coords)
    imp = rp.unit_importance(net, ds, method="readout")
    pws = {s: rp.find_pathways(ds, by="context", within="object", importance=imp, sites=s) for s in ds.attrs["sites"]}
    return relu, monitor, pws


@pytest.mark.parametrize("seed", [0, 1])
def test_layered_reln_reproduces_the_depth_plateaus(seed):
    X, Y, coords = rp.tasks.contextual_task(3)
    hp = rp.tasks.paper_hyperparameters(3, depth=2)
    net = rp.tasks.paper_network(3, depth=2, seed=seed)
    relu, monitor, pws = _trained(net, X, Y, coords, epochs=int(hp["epochs"]), every=100)
    # the ReLU network's stages (Jarvis et al., arXiv 2503.06181: 96, 66, ≈12, final < 3)
    for value, length in ((96.0, 3000), (66.0, 2000), (12.0, 3000)):
        assert _plateau(relu, value, 1.0, length), (value, seed)
    assert relu[30000] < 3.0
    kw = dict(model=net, min_mass=0.01, init_scale=float(hp["init_std"]), lr=hp["lr"], epochs=int(hp["epochs"]),
              seed=seed, sv_stride=1000)
    moving = rp.ReLN.from_pathways(pws, X, Y, trajectory=monitor, **kw).fit(X, Y)
    fixed = rp.ReLN.from_pathways(pws, X, Y, **kw).fit(X, Y)
    L, F = moving.loss_curve_, fixed.loss_curve_
    moving_gap = rp.compare_dynamics(relu, L)["mean_abs_diff"]
    fixed_gap = rp.compare_dynamics(relu, F)["mean_abs_diff"]
    at = (4000, 8000, 12000, 16000, 20000, 24000, 30000)
    print(f"\nseed {seed}: loss at {at}\n  ReLU   {[round(relu[e], 2) for e in at]}"
          f"\n  moving {[round(L[e], 2) for e in at]}  mean |ΔL| {moving_gap:.2f}"
          f"\n  fixed  {[round(F[e], 2) for e in at]}  mean |ΔL| {fixed_gap:.2f}")
    assert isinstance(moving.spec_, LayeredSpec) and moving.spec_.n_layers == 2
    # gates following training: the staged plateaus and the final loss
    for value, length in ((96.0, 3000), (66.0, 300), (12.0, 1000)):
        assert _plateau(L, value, 1.5, length), (value, seed)
    assert L[30000] < 3.0
    # tracked qualitatively (issue 11 sets the plateaus, not a |ΔL|): on average within 5% of
    # L0; the ReLN leaves the 12-plateau earlier than the ReLU net (measured 4.55 at seed 0)
    assert moving_gap < 0.05 * relu[0]
    # fixed final gates: the 66 plateau is skipped, the last stage not reached, a worse match
    assert not _plateau(F, 66.0, 1.5, 300)
    assert F[30000] > 3.0
    assert fixed_gap > moving_gap


@pytest.mark.parametrize("seed", [0, 1])
def test_reln_with_biases_tracks_a_biased_relu_network(seed):
    X, Y, coords = rp.tasks.contextual_task(3)
    hp = rp.tasks.paper_hyperparameters(3)
    net = rp.tasks.paper_network(3, seed=seed, bias=True)
    relu, monitor, pws = _trained(net, X, Y, coords, epochs=int(hp["epochs"]), every=100)
    (site,) = pws
    paper = dict(lr=hp["lr"], epochs=int(hp["epochs"]))  # the paper's training, as the ReLU network's
    kw = dict(model=net, trajectory=monitor, init_scale=float(hp["init_std"]), seed=seed, **paper)
    modelled = rp.ReLN.from_pathways(pws, X, Y, **kw)
    assert modelled.hidden_bias == [True] and modelled.output_bias is True
    ignored = rp.ReLN.from_pathways(pws, X, Y, hidden_bias=False, output_bias=False, **kw)
    gap_modelled = rp.compare_dynamics(relu, modelled.fit(X, Y).loss_curve_)["mean_abs_diff"]
    gap_ignored = rp.compare_dynamics(relu, ignored.fit(X, Y).loss_curve_)["mean_abs_diff"]
    fixed = rp.ReLN.from_pathways(pws, X, Y, model=net, init_scale=float(hp["init_std"]), seed=seed,
                                  **paper).fit(X, Y)
    gap_fixed = rp.compare_dynamics(relu, fixed.loss_curve_)["mean_abs_diff"]
    print(f"\nseed {seed}: biased ReLU vs ReLN mean |ΔL|: biases modelled {gap_modelled:.2f}, ignored "
          f"{gap_ignored:.2f}; fixed gates with biases {gap_fixed:.2f}")
    assert gap_modelled <= 3.1
    assert gap_modelled < 0.75 * gap_ignored
