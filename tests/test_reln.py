"""rp.ReLN.from_pathways and rp.fastest_reln."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import relu_probe as rp
from relu_probe.errors import InputError, ValueInputError
from relu_probe.reln.search import DEFAULT_PARSIMONY, _rank, cardinality_candidates
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
    reln = rp.ReLN.from_pathways(pw, X, Y, epochs=5, init_scale=PAPER_INIT_SCALE)  # the paper's, on request
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


def test_default_init_is_relative_to_the_data_not_the_papers(task3):
    """Without an init, the full set starts at π0 = 1e-6 × σ1 of the best linear map
    (``(σ_in² + σ_out²) h / 4``), the context sets at the share Gaussian units would give them
    (a k−1 set holds a third of the full set's units on the paper's task: f = 1/12 vs 1/4)."""
    X, Y, coords = task3
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    reln = rp.ReLN.from_pathways(pw, X, Y, epochs=3).fit(X, Y)
    Xn, Yn = X.numpy(), Y.numpy()
    s1 = np.linalg.norm(np.linalg.lstsq(Xn, Yn, rcond=None)[0], 2)
    pi0 = [(a**2 + b**2) * 100 / 4 for a, b in reln.spec_.init_scales]
    assert pi0[0] == pytest.approx(1e-6 * s1, rel=1e-9)
    assert reln.spec_.init_scales[0][0] != pytest.approx(PAPER_INIT_SCALE["shared"], rel=0.5)
    # a0 (readout side) of a pair: a third of the full set's (orthant probabilities), ± sampling
    a_full, a_pair = reln.spec_.init_scales[0][1] ** 2, np.array([s[1] ** 2 for s in reln.spec_.init_scales[1:]])
    np.testing.assert_allclose(a_pair / a_full, 1 / 3, rtol=0.05)
    assert "default small init" in reln.init_source_


def test_init_from_the_untrained_network(task3):
    """``network=``: each pathway's scales are the mean state of the network's own units on
    exactly its contexts (a0 by hand for the full set), spread over the ReLN's 100 units."""
    X, Y, coords = task3
    net = rp.tasks.paper_network(3, seed=2, init_std=0.01)
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    reln = rp.ReLN.from_pathways(pw, X, Y, network=net, epochs=3).fit(X, Y)
    W1, W2 = net[0].weight.detach().double().numpy(), net[2].weight.detach().double().numpy()
    on = (X.numpy() @ W1.T > 0).reshape(3, 8, -1)  # (context, object, unit)
    full = on.all(0)
    a0 = sum((W2[:, full[o]] ** 2).sum() / W2.shape[0] for o in range(8)) / 8
    assert reln.spec_.init_scales[0][1] ** 2 * 100 == pytest.approx(a0, rel=1e-9)
    assert reln.init_source_ == "network weights"
    with pytest.raises(ValueInputError, match="not both"):
        rp.ReLN.from_pathways(pw, X, Y, network=net, init_scale=1e-3)


def test_fit_refuses_an_unstable_learning_rate_at_once(task3):
    """GDLN / ReLN fit: an lr above the data's stability bound is refused before any step,
    with the bound named."""
    X, Y, coords = task3
    with pytest.raises(ValueInputError, match=r"`lr` = 0.05 is at or above .* largest stable"):
        rp.GDLN([(0, 1, 2), (0, 1), (1, 2), (0, 2)], lr=0.05, epochs=100000).fit(X, Y, context=coords["context"])
    pw = FakePathways(PAPER_SETS, PAPER_MASS, coords["context"])
    with pytest.raises(ValueInputError, match="largest stable"):
        rp.ReLN.from_pathways(pw, X, Y, lr=0.05, epochs=100000).fit(X, Y)


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
    """The cardinality family with the paper's ReLN init (requested explicitly) and rule: the
    mixed ReLN first, the union of the candidates' sets (raced as well) second — marginally
    faster, but ranked behind by the parsimony tolerance — and the modular ReLN far behind."""
    X, Y, coords = task3
    paper = dict(lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    ranking = rp.fastest_reln(X, Y, cardinality_candidates((0, 1, 2)), context=coords["context"],
                              rule="residual", init_scale=PAPER_INIT_SCALE, **paper)
    assert [r["rank"] for r in ranking] == [0, 1, 2]
    best, union, other = ranking
    assert best["names"] == ["{0,1,2}", "{0,1}", "{0,2}", "{1,2}"]
    assert other["names"] == ["{0,1,2}", "{0}", "{1}", "{2}"]
    assert union["is_union"] and union["n_pathways"] == 7 and not best["is_union"]
    assert union["score"] < best["score"] <= union["score"] * (1 + DEFAULT_PARSIMONY)
    # well separated: the modular ReLN is much slower and stalls
    assert other["mean_loss"] - best["mean_loss"] > 2.0
    assert best["final_loss"] < 0.05 and other["final_loss"] > 2.5
    assert best["epochs_to"][0.1] < other["epochs_to"][0.1]
    assert other["epochs_to"][0.01] is None
    assert best["loss"].shape == (8001,)
    # by speed alone the union comes first
    by_speed = rp.fastest_reln(X, Y, cardinality_candidates((0, 1, 2)), context=coords["context"],
                               rule="residual", init_scale=PAPER_INIT_SCALE, parsimony=0.0, **paper)
    assert by_speed[0]["is_union"] and [r["score"] for r in by_speed] == sorted(r["score"] for r in by_speed)


def test_fastest_reln_without_candidates_is_the_structure_search(task3):
    """No candidates: the structure predict_structure finds (full set + pairs; the singles do
    not grow in the race of all seven sets), ranked ahead of that seven-set race by parsimony."""
    X, Y, coords = task3
    ranking = rp.fastest_reln(X, Y, context=coords["context"])
    assert len(ranking) == 2
    best, union = ranking
    assert set(best["candidate"]) == {(0, 1, 2), (0, 1), (1, 2), (0, 2)}
    assert union["is_union"] and union["n_pathways"] == 7
    assert max(union["mass"][S] for S in [(0,), (1,), (2,)]) < 0.01
    pred = rp.predict_structure(X, Y, context=coords["context"])
    assert set(pred.contexts) == set(best["candidate"])


def test_fastest_reln_options(task3):
    X, Y, coords = task3
    cands = [[(0, 1, 2), (0,), (1,), (2,)], np.array([np.ones(24), coords["context"] != 2], float)]
    df = rp.fastest_reln(X, Y, cands, context=coords["context"], epochs=2000, as_frame=True,
                         by="final_loss", parsimony=0.0)
    assert list(df.columns[:3]) == ["rank", "candidate", "names"]
    assert "epochs_to_0.5" in df.columns and len(df) == 3  # the two and their union
    assert set(df.loc[df["is_union"], "candidate"].iloc[0]) == {(0, 1, 2), (0,), (1,), (2,), (0, 1)}
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
        ({"candidates": [[(0, 1, 2), (5,)]]}, ValueInputError, "no sample has"),
        ({"candidates": [np.eye(24)[:2]]}, ValueInputError, "whole contexts"),
        ({"parsimony": -0.1}, ValueInputError, "parsimony"),
        ({"by": "speed"}, ValueInputError, "by"),
    ],
)
def test_fastest_reln_bad_input(task3, kwargs, err, match):
    X, Y, coords = task3
    base = {"candidates": None, "context": coords["context"], "epochs": 10}
    base.update(kwargs)
    with pytest.raises(err, match=match):
        rp.fastest_reln(X, Y, **base)
