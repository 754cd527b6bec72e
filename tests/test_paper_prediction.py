"""Issue 12's targets on the paper's tasks (slow): ReLU networks trained by their own loop
with their own seeds, nothing tuned, against

- ``rp.analyze``'s default prediction (the exact dynamics of the ReLN of the discovered
  pathways, initial state read off the trained network itself);
- ``rp.race_dynamics``' default method for the same pathways, from the untrained network;
- ``rp.predict_structure`` from the data and the untrained network, against the measured
  pathway masses;

and the paper's "diff" task, where the closed form misses, flagged by ``analyze`` (and the
hierarchy task not). Run with ``pytest -m slow tests/test_paper_prediction.py -s`` to see
the figures.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

import relu_probe as rp

#: (K, seed, bound on mean |ΔL|, bound on the structure's TV): issue 12's "Done when" table.
#: Seeds never used while developing (development used 0-5, 21-26 and 31-33).
TARGETS = [(3, 41, 1.5, 0.10), (4, 42, 1.5, 0.10), (5, 43, 2.0, 0.15)]


@functools.lru_cache(maxsize=None)
def trained(k: int, seed: int, variant: str = "hierarchy"):
    """The paper's ReLU network trained by its own loop (full batch, lr 1e-3, 8001 epochs)."""
    X, Y, coords = rp.tasks.contextual_task(k, variant=variant)
    net = rp.tasks.paper_network(k, seed=seed)
    net0 = copy.deepcopy(net)
    loss = rp.tasks.train_full_batch(net, X, Y, progress=False)
    return X, Y, coords, net, net0, loss


@functools.lru_cache(maxsize=None)
def analysed(k: int, seed: int, variant: str = "hierarchy"):
    X, Y, coords, net, _, loss = trained(k, seed, variant)
    return rp.analyze(net, X, coords=coords, within="object", Y=Y, loss_curve=loss, lr=1e-3, attribution=False,
                      literature=False, null=None)


@pytest.mark.slow
@pytest.mark.parametrize("k, seed, dl_max, tv_max", TARGETS)
def test_analyze_default_prediction_tracks_the_relu_loss(k, seed, dl_max, tv_max):
    res = analysed(k, seed)
    assert res.dynamics.attrs["race_method"] == "exact"
    dl = res.comparison["race"]["mean_abs_diff"]
    closed = res.comparison["closed"]["mean_abs_diff"]
    print(f"\nK={k} seed={seed}: analyze default (exact) mean|ΔL| {dl:.3f} (<= {dl_max}); closed form {closed:.3f}; "
          f"ReLN simulated {res.comparison['reln']['mean_abs_diff']:.3f}; structure TV {res.structure.attrs['tv']:.3f}")
    print("  notes: " + "\n         ".join(res.notes))
    assert dl <= dl_max
    assert any("read off the trained network" in n for n in res.notes)


@pytest.mark.slow
@pytest.mark.parametrize("k, seed, dl_max, tv_max", TARGETS)
def test_race_dynamics_default_tracks_the_relu_loss(k, seed, dl_max, tv_max):
    X, Y, coords, _, net0, loss = trained(k, seed)
    res = analysed(k, seed)
    sets = [tuple(c) for c in res.reln.contexts_]
    race = rp.race_dynamics(X, Y, sets, context=coords["context"], inputs="auto", network=net0, lr=rp.tasks.PAPER_LR,
                             epochs=len(loss))
    assert race.attrs["method"] == "exact"
    dl = rp.compare_dynamics(loss, race)["mean_abs_diff"]
    print(f"\nK={k} seed={seed}: race_dynamics default (sets {sets}) mean|ΔL| {dl:.3f} (<= {dl_max})")
    assert dl <= dl_max


#: Issue 12's K = 5 structure bar is not met (measured TV 0.163 predicted / 0.158 analyze's
#: against 0.15; other seeds 44 / 45: 0.119 / 0.145). The prediction under-weights the
#: 3-context sets (0.05 against 0.19) and over-weights the 4-context ones (0.74 against 0.61):
#: the union race keeps the gates fixed, while the ReLU net forms its smaller context sets out
#: of units of the shared pathway (a head start the race does not see; module docstring of
#: relu_probe.reln.predict, benchmarks/predicted_structure.py). Strict: the case fails CI the
#: day it passes, so the mark cannot outlive the miss.
STRUCTURE_TARGETS = TARGETS[:2] + [pytest.param(*TARGETS[2], marks=pytest.mark.xfail(
    strict=True, reason="issue 12 open: K = 5 predicted-structure TV 0.163 > 0.15 (fixed gating misses the "
                        "3-context sets' head start)"))]


@pytest.mark.slow
@pytest.mark.parametrize("k, seed, dl_max, tv_max", STRUCTURE_TARGETS)
def test_predicted_structure_matches_the_measured_one(k, seed, dl_max, tv_max):
    X, Y, coords, _, net0, loss = trained(k, seed)
    res = analysed(k, seed)
    pred = rp.predict_structure(X, Y, context=coords["context"], within=coords["object"], network=net0,
                                lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    tv = rp.compare_structure(pred, res.pathways)["tv"]
    print(f"\nK={k} seed={seed}: predict_structure vs measured TV {tv:.3f} (<= {tv_max}); analyze's (init read off "
          f"the trained network) {res.structure.attrs['tv']:.3f}")
    print(rp.compare_structure(pred, res.pathways)["per_set"].round(3).to_string(index=False))
    assert tv <= tv_max
    assert res.structure.attrs["tv"] <= tv_max


@pytest.mark.slow
def test_diff_task_warns_and_the_hierarchy_task_does_not():
    """The paper's diff task breaks Assumption 2.1: analyze notes that the closed form misses
    the best fit of the gates; on the hierarchy task it says nothing of the kind."""
    diff = analysed(3, 44, "diff")
    hier = analysed(3, 41)
    flagged = [n for n in diff.notes if "Assumption 2.1" in n]
    print("\ndiff task: " + (flagged[0] if flagged else "no note"))
    assert flagged
    assert not [n for n in hier.notes if "Assumption 2.1" in n]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="not met: the exact prediction's mean |ΔL| on the diff task is 2.00 > 1.5")
def test_exact_prediction_tracks_the_diff_task():
    """Beyond issue 12's table: the exact prediction does not need Assumption 2.1, so it
    should track the ReLU curve on the diff task as on the hierarchy task (the K = 3 bound)."""
    diff = analysed(3, 44, "diff")
    print(f"\ndiff task: exact mean|ΔL| {diff.comparison['race']['mean_abs_diff']:.3f}, closed form "
          f"{diff.comparison['closed']['mean_abs_diff']:.3f}")
    assert diff.comparison["race"]["mean_abs_diff"] <= 1.5
