"""Issue 11 (pathways and scores): exact answers on the hand-built networks of
``relu_probe.testing`` that the paper's one-hidden-layer, one-unit-per-object nets cannot catch —
two layers on different weight scales, channel units, missing cells, a LeakyReLU, a
near-parallel code, a rarely active unit, several units per item with readouts other than the
identity — and the null baselines.

Every expected number comes from the builders' closed forms (``net.expected``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from relu_probe.reln.layered import LayeredSpec
import torch
from torch import nn

from _deps import require

import relu_probe as rp
from relu_probe import testing as T
from relu_probe.errors import CoordError
from relu_probe.pathways.onsets import members_label, profile_on
from relu_probe.reln.reln import kept_pathways

STRUCTURE = ("shared_score", "node_reuse_score", "modularity_score", "k_minus_one_score", "effective_pathways")


def record(net):
    return rp.record(net.model, net.X, coords=net.coords, **net.record)


def masses(pw):
    return {tuple(c): float(m) for c, m in zip(pw.contexts, pw.mass.values)}


def assert_masses(pw, expected, rel=1e-6):
    got = masses(pw)
    assert set(got) == set(expected), (got, expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=rel, abs=1e-9), key


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- item 1: per site
def test_deep_net_pathways_per_site_and_pooled():
    net = T.deep_net()
    ds = record(net)
    imp = rp.unit_importance(net.model, ds)
    pw = rp.find_pathways(ds, "context", "object", importance=imp)
    assert pw.sites == net.expected["sites"]
    for site in pw.sites:
        one = pw.sel(site)
        assert_masses(one, net.expected["masses"][site])
        assert float(one.mass.sum()) == pytest.approx(1.0)
    assert set(pw.summary()["site"]) == {"1", "3"}
    # layer 1 is strictly modular, layer 2 fully shared: the pooled decomposition (one
    # importance normalisation over both layers) hides the first layer
    pooled = rp.find_pathways(ds, "context", "object", importance=imp, per_site=False)
    assert pooled.sites == ["1+3"]
    assert_masses(pooled, net.expected["pooled_masses"])


def test_scores_have_one_row_per_site():
    net = T.deep_net()
    ds = record(net)
    pw = rp.find_pathways(ds, "context", "object", model=net.model)
    table = quiet(rp.scores, pw, ds, literature=False)
    assert isinstance(table, pd.DataFrame) and list(table.index) == ["1", "3"] and table.index.name == "site"
    for site in ("1", "3"):
        for score in STRUCTURE:
            assert table.loc[site, score] == pytest.approx(net.expected["scores"][site][score], nan_ok=True), score
    # layer 1's modular units: every unit's interaction share is (K-1)(n-1)/(Kn-1)
    assert table.loc["1", "mixed_selectivity_score"] == pytest.approx(2 * 3 / 11)
    assert table.loc["3", "mixed_selectivity_score"] == pytest.approx(0.0, abs=1e-12)
    pooled = quiet(rp.scores, rp.find_pathways(ds, "context", "object", model=net.model, per_site=False), ds,
                   literature=False)
    assert isinstance(pooled, pd.Series)
    assert pooled["shared_score"] == pytest.approx(net.expected["pooled_scores"]["shared_score"])


def test_a_one_site_result_scores_against_that_sites_units():
    net = T.deep_net()
    ds = record(net)
    one = rp.find_pathways(ds, "context", "object", model=net.model, sites="1")
    series = rp.scores(one, ds, literature=False)  # raised "Compute it from the same recording" before
    assert isinstance(series, pd.Series)
    assert series["shared_score"] == 0.0 and series["modularity_score"] == 1.0
    assert series["mixed_selectivity_score"] == pytest.approx(2 * 3 / 11)
    with pytest.raises(CoordError, match="lacks"):
        rp.scores(rp.find_pathways(ds, "context", "object", sites="3"), ds.isel(unit=slice(0, 12)))


# ----------------------------------------------------------------------------- item 4: channel units
def test_channel_units_are_on_relative_to_their_own_rate():
    net = T.channel_net()
    ds = record(net)
    assert "gate_rate" in ds
    rate = rp.gating_profile(ds, "context").values
    np.testing.assert_allclose(rate[0], 0.3)  # channel A1: 30% of positions in every sample
    np.testing.assert_allclose(rate[5], net.expected["rates"]["C"])
    pw = rp.find_pathways(ds, "context", "object", model=net.model)
    assert_masses(pw, net.expected["masses"])
    assert rp.shared_score(pw) == pytest.approx(net.expected["shared_score"], rel=1e-6)  # was 0
    assert rp.modularity_score(pw) == pytest.approx(1.0)
    labels = [pw.contexts[p] for p in pw.labels.values]
    assert labels == net.expected["unit_contexts"]  # C, on at 5% of positions elsewhere, is {0}
    assert float(pw.unassigned.sum()) == 0.0


# ----------------------------------------------------------------------------- unassigned importance
def test_importance_that_cannot_be_assigned_is_reported():
    net = T.rare_unit_net()
    ds = record(net)
    with pytest.warns(UserWarning, match=r"14\.3% of the importance belongs to units in no pathway"):
        pw = rp.find_pathways(ds, "context", model=net.model)
    assert pw.method == "profiles"
    assert_masses(pw, net.expected["masses"])
    assert float(pw.unassigned.sel(site="1")) == pytest.approx(net.expected["unassigned"])
    assert pw.labels.values[0] == -1


# ----------------------------------------------------------------------------- item 5: LeakyReLU
def test_leaky_slope_is_recorded_and_the_anova_reads_signed_activity():
    net = T.leaky_net(0.1)
    ds = record(net)
    assert ds.attrs["site_slopes"] == net.expected["site_slopes"]
    index = rp.mixed_selectivity_index(ds, ("context", "object"))
    np.testing.assert_allclose(index.values, net.expected["mixed_selectivity_index"], atol=1e-6)
    assert index.values[0] == pytest.approx(0.0, abs=1e-6)  # |output| would give 1
    imp = rp.unit_importance(net.model, ds)
    ms = rp.mixed_selectivity_score(ds, ("context", "object"), imp)
    assert ms == pytest.approx(net.expected["mixed_selectivity_score"], rel=1e-6)
    assert net.expected["mixed_selectivity_of_magnitude"] == pytest.approx(1.0)
    assert_masses(rp.find_pathways(ds, "context", "object", importance=imp), net.expected["masses"])


def test_slopes_of_every_kind_of_site():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)
            self.act = nn.LeakyReLU(0.25)
            self.relu = nn.ReLU()
            self.gelu = nn.GELU()

        def forward(self, x):
            h = self.lin(x)
            return (self.act(h) + torch.nn.functional.leaky_relu(h, 0.2) + self.relu(h)
                    + torch.nn.functional.leaky_relu(h) + torch.relu(h) + self.gelu(h))

    ds = rp.record(Mixed(), torch.randn(5, 3))
    slopes = dict(zip(ds.attrs["sites"], ds.attrs["site_slopes"]))
    assert slopes == {"act": 0.25, "::leaky_relu#0": 0.2, "relu": 0.0, "::leaky_relu#1": 0.01, "::relu#0": 0.0}
    # an activation recorded on request is not piecewise linear at 0: no slope (NaN)
    gelu = rp.record(Mixed(), torch.randn(5, 3), sites=[nn.GELU, "relu"])
    assert gelu.attrs["sites"] == ["relu", "gelu"]
    assert gelu.attrs["site_slopes"][0] == 0.0 and math.isnan(gelu.attrs["site_slopes"][1])


# ----------------------------------------------------------------------------- item 6: unbalanced designs
def test_a_fully_shared_net_with_missing_cells_is_shared():
    net = T.unbalanced_net("shared")
    ds = record(net)
    assert ds.sizes["sample"] == 10
    with pytest.warns(UserWarning, match="2 of 4 `object` values do not appear under every `context`"):
        pw = rp.find_pathways(ds, "context", "object", model=net.model)
    assert_masses(pw, net.expected["masses"])
    assert rp.shared_score(pw) == 1.0  # was 0.6, with 40% (K-1)-set mass and modularity 0.5
    assert float(pw.unassigned.sum()) == pytest.approx(net.expected["unassigned"])


def test_missing_cells_of_a_k_minus_one_net():
    net = T.unbalanced_net("k_minus_one", missing=((2, 0),))
    ds = record(net)
    with pytest.warns(UserWarning, match="1 of 4"):
        pw = rp.find_pathways(ds, "context", "object", model=net.model)
    assert_masses(pw, net.expected["masses"])
    assert rp.k_minus_one_score(pw) == pytest.approx(1.0)


def test_no_complete_item_is_refused_and_auto_uses_profiles():
    net = T.unbalanced_net("shared", n_contexts=2, n_objects=2, missing=((0, 1), (1, 0)))
    ds = record(net)
    with pytest.raises(CoordError, match="no 'object' value does"):
        rp.find_pathways(ds, "context", "object", method="context-sets")
    assert quiet(rp.find_pathways, ds, "context", "object").method == "profiles"


# ----------------------------------------------------------------------------- item 7: parallelism
def test_near_parallel_coding_vectors_give_parallelism_one():
    net = T.near_parallel_net()
    ds = record(net)
    for pairing in ("best", "within"):
        score = rp.parallelism_score(ds, "context", "object", pairing=pairing)
        assert score == pytest.approx(net.expected["parallelism_score"], abs=1e-7)  # was -0.9998


# ----------------------------------------------------------------------------- item 8: smaller faults
def test_min_mass_keeps_every_set_of_a_k_minus_one_net_at_K_20():
    net = T.k_minus_one_net(20, 2)
    ds = rp.record(net.model, net.X, coords=net.coords, values=True)
    pw = rp.find_pathways(ds, "context", "object")
    assert pw.n_pathways == 21 and max(pw.mass.values) < 0.051
    reln = rp.ReLN.from_pathways(pw, net.X.numpy())
    assert reln.dropped_ == [] and reln.gates.sizes["pathway"] == 21  # a fixed 0.05 kept only the shared set
    # the rule: the largest pathways holding 95% of the mass, ties together
    np.testing.assert_array_equal(kept_pathways([0.5, 0.3, 0.16, 0.02, 0.01, 0.01]), [0, 1, 2])
    np.testing.assert_array_equal(kept_pathways([0.4, 0.2, 0.2, 0.2]), [0, 1, 2, 3])
    # the paper's k = 3 net: shared + pairs hold 94%; the singletons (near-equal by symmetry)
    # are kept together, not the one the noise made largest
    paper = [0.362, 0.202, 0.194, 0.182, 0.0204, 0.0197, 0.0196]
    np.testing.assert_array_equal(kept_pathways(paper), np.arange(7))
    # a clear tail (a quarter of the last kept mass) is still dropped
    np.testing.assert_array_equal(kept_pathways([0.40, 0.30, 0.26, 0.02, 0.01, 0.01]), [0, 1, 2])
    np.testing.assert_array_equal(kept_pathways([0.5, 0.3, 0.1, 0.1], 0.2), [0, 1])


def test_profile_on_needs_an_absolute_floor():
    net = T.rare_unit_net()
    ds = record(net)
    profile = rp.gating_profile(ds, "context").values
    np.testing.assert_allclose(profile[0], net.expected["profile_rare"])
    assert not profile_on(profile)[0].any()  # (0.03, 0.02, 0) is on nowhere
    est = rp.PathwayClustering(n_pathways=2).fit(profile, sample_weight=[1.0, 1.0, 1.0])
    centres = {tuple(np.round(c, 3)): cols for c, cols in zip(est.cluster_centers_, est.pathway_columns_)}
    assert centres[(0.03, 0.02, 0.0)] == ()
    assert centres[(0.0, 0.0, 1.0)] == (2,)


def test_pathways_are_named_after_their_members():
    on = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]], bool)
    groups = np.array([0, 0, 0, 1, 1, 1])
    weight = np.array([1.0, 1.0, 1.5, 1.0, 3.0, 0.5])
    sets, assign, disagrees = members_label(on, groups, weight)
    # group 0: {0,1} carries 2 of 3.5; group 1: {0,1,2} carries 3 of 4.5
    assert [tuple(map(bool, s)) for s in sets] == [(True, True, False), (True, True, True)]
    np.testing.assert_array_equal(assign, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(disagrees, [False, False, True, True, False, True])
    # a member whose own set is another pathway's joins that pathway: unit 1 ({0,1}) is in
    # group 1, named {0,1,2}, and joins unit 0's pathway
    sets, assign, disagrees = members_label(on, np.array([0, 1, 1, 1, 1, 1]), weight)
    assert [tuple(map(bool, s)) for s in sets] == [(True, True, False), (True, True, True)]
    np.testing.assert_array_equal(assign, [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(disagrees, [False, False, True, True, False, True])


def test_profile_pathways_count_their_disagreeing_members():
    net = T.k_minus_one_net(3, 4)
    ds = rp.record(net.model, net.X, coords=net.coords, values=True)
    pw = rp.find_pathways(ds, "context", method="profiles", n_pathways=2)
    own = profile_on(rp.gating_profile(ds, "context").values)
    sets = np.array([[c in S for c in range(3)] for S in pw.contexts])
    for u, p in enumerate(pw.labels.values):
        assert pw.disagrees.values[u] == (not np.array_equal(own[u], sets[p]))
    summary = pw.summary()
    assert summary["n_disagreeing"].sum() == int(pw.disagrees.sum()) > 0
    # each pathway's set is the own set of most of its members' importance
    imp = pw.importance.values
    for p, S in enumerate(sets):
        members = pw.labels.values == p
        agree = members & (own == S).all(1)
        assert imp[agree].sum() >= max(imp[members & (own == row).all(1)].sum() for row in own[members])


# ----------------------------------------------------------------------------- item 9: importance, null
def test_find_pathways_and_analyze_use_the_same_default_importance():
    net = T.scaled_pathway_net()
    ds = record(net)
    res = rp.analyze(net.model, net.X, coords=net.coords, by="context", within="object", attribution=False,
                     literature=False, null=None)
    pw = rp.find_pathways(ds, "context", "object", model=net.model)
    assert res.params["importance"] == pw.importance.attrs["method"] == "readout"
    assert_masses(pw, net.expected["masses"])
    assert_masses(res.pathways, net.expected["masses"])
    assert rp.scores(pw, ds, literature=False)["mixed_selectivity_score"] == pytest.approx(
        net.expected["mixed_selectivity_score"], rel=1e-6)
    # without the model only the activity is known (readout norms are not 1 here)
    activity = rp.find_pathways(ds, "context", "object")
    assert activity.importance.attrs["method"] == "activity"
    assert masses(activity)[(0, 1, 2)] != pytest.approx(net.expected["masses"][(0, 1, 2)])


def test_null_baseline_of_a_shared_net():
    # K = 2, n = 2: shuffling the items within each context keeps the pairing of items across
    # the two contexts with probability 1/2 (then the net is fully shared) and swaps it
    # otherwise (then every unit serves one context): the null of shared_score is 0 or 1
    net = T.shared_net(2, 2)
    ds = rp.record(net.model, net.X, coords=net.coords, values=True)
    pw = rp.find_pathways(ds, "context", "object")
    table = rp.null_scores(pw, ds, n_shuffles=400, random_state=3)
    assert list(table.columns) == ["value", "null_mean", "null_std", "z", "percentile", "n_null"]
    row = table.loc["shared_score"]
    assert row["value"] == 1.0 and row["n_null"] == 400
    assert row["null_mean"] == pytest.approx(0.5, abs=3 * 0.5 / math.sqrt(400))
    assert row["null_std"] == pytest.approx(0.5, abs=0.01)
    assert row["z"] == pytest.approx((1 - row["null_mean"]) / row["null_std"])
    assert row["percentile"] == pytest.approx(100 * (1 - row["null_mean"] / 2))  # below: all zeros, ties half
    # K = 2: modularity is 1 by construction whenever defined, so it is NaN (says nothing)
    assert math.isnan(table.loc["modularity_score", "value"])
    again = rp.null_scores(pw, ds, n_shuffles=400, random_state=3)
    pd.testing.assert_frame_equal(table, again)


def test_null_baseline_per_site_and_in_analyze():
    net = T.deep_net()
    res = quiet(rp.analyze, net.model, net.X, coords=net.coords, by="context", within="object", attribution=False,
                literature=False, null=20)
    null = res.null_scores
    assert null.index.names == ["site", "score"] and set(null.index.get_level_values(0)) == {"1", "3"}
    np.testing.assert_allclose(null.xs("1")["value"].values, res.scores.loc["1", null.xs("1").index].values)
    assert (null["n_null"] <= 20).all()
    # layer 2 is fully shared; its shuffled copies are not
    assert null.loc[("3", "shared_score"), "z"] > 2
    assert quiet(rp.analyze, net.model, net.X, coords=net.coords, by="context", within="object",
                 attribution=False, literature=False, null=0).null_scores is None


def test_the_network_at_initialisation_is_a_baseline_too():
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, width=60, seed=0)
    mon = rp.TrainingMonitor(model, X, coords=coords, every=200, by="context", within="object")
    rp.tasks.train_full_batch(model, X, Y, epochs=401, lr=5e-3, callback=mon.update)
    res = quiet(rp.analyze, model, X, coords=coords, by="context", within="object", attribution=False,
                literature=False, null=10, monitor=mon)
    first = mon.scores().loc[0]
    assert "init" in res.null_scores.columns
    for score in ("shared_score", "node_reuse_score", "mixed_selectivity_score"):
        assert res.null_scores.loc[score, "init"] == pytest.approx(first[score])


def test_monitor_checks_its_design_when_built():
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, width=20)
    keep = ~((coords["context"] == 1) & (coords["object"] == 2))
    partial = {k: v[keep] for k, v in coords.items()}
    with pytest.raises(CoordError, match="incomplete: 1 of 24 combinations"):
        rp.TrainingMonitor(model, X[torch.from_numpy(keep)], coords=partial, by="context", within="object")
    with pytest.raises(CoordError, match="'colour' is not one of"):
        rp.TrainingMonitor(model, X, coords=coords, by="colour")
    rp.TrainingMonitor(model, X[torch.from_numpy(keep)], coords=partial, by="context")  # no ANOVA: fine


def test_monitor_scores_and_pathways_per_site():
    net = T.deep_net()
    mon = rp.TrainingMonitor(net.model, net.X, coords=net.coords, every=1, by="context", within="object")
    mon.snapshot(0)
    mon.snapshot(1)
    frame = mon.scores()
    assert frame.index.names == ["step", "site"] and len(frame) == 4
    assert frame.loc[(0, "3"), "shared_score"] == 1.0 and frame.loc[(1, "1"), "shared_score"] == 0.0
    over_time = mon.pathways_over_time()
    assert list(over_time["site"].values) == ["1", "1", "1", "3"]
    np.testing.assert_allclose(over_time.sel(step=0).values, [1 / 3, 1 / 3, 1 / 3, 1.0])


def test_analysis_per_site_reports_and_round_trips(tmp_path):
    require("netCDF4")
    net = T.deep_net()
    res = quiet(rp.analyze, net.model, net.X, coords=net.coords, by="context", within="object", attribution=False,
                literature=False, null=5)
    assert isinstance(res.scores, pd.DataFrame) and list(res.scores.index) == ["1", "3"]
    html = res.to_html(tmp_path / "report.html").read_text()
    # each site by its short label, the module path in its tooltip, with its own scores and a card under Layers
    assert '<code title="1">ReLU 1</code>' in html and '<code title="3">ReLU 2</code>' in html
    assert 'id="layers"' in html and 'id="layer-1"' in html and 'id="layer-2"' in html
    assert "null mean ± sd" in html
    back = rp.Analysis.load(res.save(tmp_path / "saved"))
    pd.testing.assert_frame_equal(back.scores, res.scores)
    pd.testing.assert_frame_equal(back.null_scores, res.null_scores)
    assert back.pathways.sites == ["1", "3"]
    assert masses(back.pathways.sel("1")) == masses(res.pathways.sel("1"))
    # with targets, per-site pathways of two sites give a layered ReLN (one block per layer and
    # pathway), not a one-layer ReLN of pooled sets, and no one-layer race is run on it
    deep = quiet(rp.analyze, net.model, net.X, coords=net.coords, by="context", within="object", attribution=False,
                 literature=False, null=None, Y=net.model(net.X).detach(), lr=1e-3, epochs=5)
    assert isinstance(deep.reln.spec_, LayeredSpec)
    assert sorted(set(deep.reln.block_mass_["layer"].values.tolist())) == ["1", "3"]
    assert "loss_race" not in deep.dynamics and any("layered ReLN" in n for n in deep.notes)
    again = rp.Analysis.load(deep.save(tmp_path / "deep"))
    np.testing.assert_allclose(again.dynamics["loss_reln"].values, deep.dynamics["loss_reln"].values)


def _repeated_cells(net):
    """*net*'s samples with those of context 0 four times and of context 2 twice."""
    context = net.coords["context"]
    rows = np.concatenate([np.arange(context.size), np.repeat(np.flatnonzero(context == 0), 3),
                           np.flatnonzero(context == 2)])
    return net.X[torch.from_numpy(rows)], {k: v[rows] for k, v in net.coords.items()}


@pytest.mark.parametrize("how", ["model", "importance", "activity"])
def test_repeating_some_cells_samples_leaves_the_masses_as_they_are(how):
    """Every (item, context) cell weighs the same whatever its number of samples: the samples
    of context 0 four times and of context 2 twice give the exact balanced masses (readout
    importance: 0.1942 for the full set, 0.2686 for each pair) — with the default importance
    (``model=``) and with ``importance=rp.unit_importance(model, ds)`` passed in alike. Before,
    the repeated cells weighed more: 0.345 / 0.288 / 0.173 for the pairs with the readout
    importance, and later still with a passed-in readout importance, which was not balanced."""
    net = T.scaled_pathway_net()
    X, coords = _repeated_cells(net)

    def pathways(inputs, coords):
        ds = rp.record(net.model, inputs, coords=coords, **net.record)
        if how == "importance":
            return rp.find_pathways(ds, "context", "object", importance=rp.unit_importance(net.model, ds))
        return rp.find_pathways(ds, "context", "object", model=net.model if how == "model" else None)

    balanced, repeated = pathways(net.X, net.coords), pathways(X, coords)
    masses = {tuple(c): m for c, m in zip(repeated.summary()["contexts"], repeated.summary()["mass"])}
    expected = {tuple(c): m for c, m in zip(balanced.summary()["contexts"], balanced.summary()["mass"])}
    assert masses.keys() == expected.keys()
    for key, value in expected.items():
        assert masses[key] == pytest.approx(value, rel=1e-9)
    if how != "activity":
        assert repeated.importance.attrs["method"] == "readout"
        for key, value in net.expected["masses"].items():
            assert masses[key] == pytest.approx(value, rel=1e-9)
