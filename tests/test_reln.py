"""rp.ReLN.from_pathways and rp.fastest_reln."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import relu_probe as rp
from relu_probe.errors import InputError, ValueInputError
from relu_probe.reln.search import _rank, cardinality_candidates
from relu_probe.tasks import PAPER_INIT_SCALE



@pytest.fixture(scope="module")
def task3():
    X, Y, coords = rp.tasks.contextual_task(3)
    return X, Y, coords


class FakePathways:
    """The parts of the rp.Pathways contract that ReLN.from_pathways reads."""

    def __init__(self, contexts, masses, context_labels, by="context"):
        n = len(contexts)
        ctx = np.empty(n, dtype=object)
        ctx[:] = contexts
        coords = {"pathway": np.arange(n), "contexts": ("pathway", ctx)}
        self.by = by
        self.mass = xr.DataArray(np.asarray(masses, float), dims="pathway", coords=coords)
        gates = np.array([[c in s for c in context_labels] for s in contexts], dtype=np.int8)
        self.sample_gates = xr.DataArray(
            gates,
            dims=("pathway", "sample"),
            coords={**coords, "sample": np.arange(len(context_labels)), by: ("sample", context_labels)},
        )


PAPER_SETS = [(0, 1, 2), (0, 1), (1, 2), (0, 2), (0,), (1,), (2,)]
PAPER_MASS = [0.35, 0.21, 0.21, 0.20, 0.011, 0.010, 0.009]


def test_from_pathways_keeps_massive_pathways_and_detects_cues(task3):
    X, Y, coords = task3
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    reln = rp.ReLN.from_pathways(pw, X, Y, epochs=5)
    assert isinstance(reln, rp.ReLN) and isinstance(reln, rp.GDLN)
    assert reln.dropped_ == [(0,), (1,), (2,)]
    np.testing.assert_allclose(reln.pathway_mass_.values, np.array(PAPER_MASS[:4]) / 0.97)
    masks = reln.inputs
    assert masks.shape == (4, 11)
    assert masks[0].all()  # the shared pathway reads the context cue too
    assert masks[1:, :8].all() and not masks[1:, 8:].any()  # cue inputs detected
    reln.fit(X, Y)
    assert reln.pathway_names_ == ["{0,1,2}", "{0,1}", "{1,2}", "{0,2}"]
    assert reln.contexts_[3] == (0, 2)
    assert list(reln.shared_) == [True, False, False, False]
    assert reln.rule == "residual"
    # the paper's initialisation: weight std 0.005/700 (shared) and 0.01/700 (context)
    w_shared = np.concatenate([w.ravel() for w in reln.weights_[0]])
    assert np.std(w_shared) == pytest.approx(PAPER_INIT_SCALE["shared"], rel=0.1)
    strength = reln.pathway_strength()
    assert list(strength["contexts"].values) == PAPER_SETS[:4]


def test_from_pathways_min_mass_and_inputs_override(task3):
    X, Y, coords = task3
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    r = rp.ReLN.from_pathways(pw, X, min_mass=0.0, inputs="all")
    assert r.dropped_ == [] and r.gates.sizes["pathway"] == 7
    assert r.inputs == "all"
    with pytest.raises(ValueInputError, match="min_mass"):
        rp.ReLN.from_pathways(pw, X, min_mass=0.5)


def test_from_pathways_without_context_coord_uses_gate_patterns(task3):
    X, Y, coords = task3
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    pw.sample_gates = pw.sample_gates.drop_vars("context")
    r = rp.ReLN.from_pathways(pw, X)
    assert not r.inputs[1:, 8:].any() and r.inputs[1:, :8].all()


def test_from_pathways_bad_input(task3):
    X, Y, coords = task3
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    with pytest.raises(ValueInputError, match="24"):
        rp.ReLN.from_pathways(pw, X[:10])
    with pytest.raises(ValueInputError, match="same number of samples"):
        rp.ReLN.from_pathways(pw, X, Y[:5])
    with pytest.raises(InputError, match="Pathways"):
        rp.ReLN.from_pathways(object(), X)


def test_from_real_pathways(task3):
    """record → find_pathways → ReLN.from_pathways on a (briefly) trained ReLU network."""
    X, Y, coords = task3
    net = rp.tasks.paper_network(3, seed=0)
    rp.tasks.train_full_batch(net, X, Y, epochs=3000)
    ds = rp.record(net, X, coords=coords)
    pw = rp.find_pathways(ds, by="context", within="object",
                          importance=rp.unit_importance(net, ds, method="readout"))
    reln = rp.ReLN.from_pathways(pw, X, Y, epochs=10)
    kept = [tuple(c) for c in reln.pathway_mass_["contexts"].values]
    assert kept[0] == (0, 1, 2)
    assert {(0, 1), (0, 2), (1, 2)} <= set(kept)
    # the default keeps the largest pathways holding 95% of the mass; only small ones are dropped
    mass = dict(zip(pw.contexts, pw.mass.values))
    assert sum(mass[c] for c in kept) >= 0.95
    assert all(mass[c] <= min(mass[k] for k in kept) for c in reln.dropped_)
    reln.fit(X, Y)
    assert reln.loss_curve_.shape == (10,)


# ----------------------------------------------------------------------------- fastest ReLN
def test_cardinality_candidates():
    cands = cardinality_candidates((0, 1, 2))
    assert cands == [[(0, 1, 2), (0,), (1,), (2,)], [(0, 1, 2), (0, 1), (0, 2), (1, 2)]]
    assert [len(c) for c in cardinality_candidates(range(5))] == [6, 11, 11, 6]


def test_fastest_reln_picks_the_mixed_reln_k3(task3):
    X, Y, coords = task3
    ranking = rp.fastest_reln(X, Y, context=coords["context"])
    assert [r["rank"] for r in ranking] == [0, 1]
    best, other = ranking
    assert best["names"] == ["{0,1,2}", "{0,1}", "{0,2}", "{1,2}"]
    assert other["names"] == ["{0,1,2}", "{0}", "{1}", "{2}"]
    # well separated: the modular ReLN is much slower and stalls
    assert other["mean_loss"] - best["mean_loss"] > 2.0
    assert best["final_loss"] < 0.05 and other["final_loss"] > 2.5
    assert best["epochs_to"][0.1] < other["epochs_to"][0.1]
    assert other["epochs_to"][0.01] is None
    assert best["loss"].shape == (8001,)


def test_fastest_reln_options(task3):
    X, Y, coords = task3
    cands = [[(0, 1, 2), (0,), (1,), (2,)], np.array([np.ones(24), coords["context"] != 2], float)]
    df = rp.fastest_reln(X, Y, cands, context=coords["context"], epochs=2000, as_frame=True,
                         by="final_loss")
    assert list(df.columns[:3]) == ["rank", "candidate", "names"]
    assert "epochs_to_0.5" in df.columns and len(df) == 2
    assert df["score"].is_monotonic_increasing
    r = rp.fastest_reln(X, Y, cands, context=coords["context"], epochs=2000, by=0.5)
    assert r[0]["score"] == r[0]["epochs_to"][0.5]


def test_rank_prefers_fewer_pathways_within_rtol():
    items = [
        {"score": 17.156, "n_pathways": 7, "name": "full"},
        {"score": 17.159, "n_pathways": 4, "name": "mixed"},
        {"score": 21.0, "n_pathways": 4, "name": "modular"},
    ]
    assert [r["name"] for r in _rank(items, 0.01)] == ["mixed", "full", "modular"]
    assert [r["name"] for r in _rank(items, 0.0)] == ["full", "mixed", "modular"]


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"candidates": []}, InputError, "candidates"),
        ({"candidates": None, "context": None}, ValueInputError, "context"),
        ({"method": "guess"}, ValueInputError, "method"),
        ({"by": "speed"}, ValueInputError, "by"),
    ],
)
def test_fastest_reln_bad_input(task3, kwargs, err, match):
    X, Y, coords = task3
    base = {"candidates": None, "context": coords["context"], "epochs": 10}
    base.update(kwargs)
    with pytest.raises(err, match=match):
        rp.fastest_reln(X, Y, **base)
