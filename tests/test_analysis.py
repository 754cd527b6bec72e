"""rp.analyze / rp.Analysis: exact results on hand-built networks, the ReLN wiring, exact
save/load round trips, recordings as input, monitors, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import relu_probe as rp
from relu_probe.reln.init import init_std_from_trained
from relu_probe.errors import CoordError, DegenerateDataWarning, InputError, StoreError, ValueInputError
from relu_probe.testing import (
    FunctionalReLUNet,
    ToyConvNet,
    k_minus_one_net,
    toy_inputs,
)

K, N = 3, 4


@pytest.fixture(scope="module")
def net():
    return k_minus_one_net(K, N)


@pytest.fixture(scope="module")
def res(net):
    return rp.analyze(net.model, net.X, coords=net.coords, by="context", within="object")


def test_exact_pathways_scores_and_selectivity(net, res):
    exp = net.expected
    assert res.params["importance"] == "readout"
    assert res.pathways.method == "context-sets"
    got = dict(zip(res.pathways.contexts, res.pathways.mass.values.tolist()))
    assert got.keys() == exp["masses"].keys()
    for S, m in exp["masses"].items():
        assert got[S] == pytest.approx(m, abs=1e-12)
    for name in ("shared_score", "node_reuse_score", "modularity_score", "effective_pathways",
                 "mixed_selectivity_score"):
        assert res.scores[name] == pytest.approx(exp[name], abs=1e-12), name
    np.testing.assert_allclose(res.importance.values, exp["importance"], atol=1e-12)
    np.testing.assert_allclose(res.selectivity.values, exp["mixed_selectivity_index"], atol=1e-12)
    # the per-condition profile: P(on | context) = 1/N on the unit's contexts (one object each), else 0
    for u, S in enumerate(exp["unit_contexts"]):
        expected = [1.0 / N if c in S else 0.0 for c in range(K)]
        np.testing.assert_allclose(res.profile.sel(unit=u).values, expected)
    # the same as calling the pieces one by one
    imp = rp.unit_importance(net.model, res.dataset)
    pw = rp.find_pathways(res.dataset, "context", "object", importance=imp)
    pd.testing.assert_series_equal(res.scores, rp.scores(pw, res.dataset))


def test_exact_input_attributions(res):
    r"""Integrated gradients on units that are linear along the whole path from 0.

    A unit on for (o, c) has z = 1.5 α along the path, gradient W[u]: object o gets 1, the
    context input 0.5. Summed over the pathway's on samples and normalised: the shared pathway
    gives every object 1/(1.5 N) and every context 1/(3K); a pathway on K−1 contexts gives every
    object 1/(1.5 N), each of its contexts 1/(3(K−1)) and the missing context 0.
    """
    att = res.attributions
    assert att.dims == ("pathway", "feature")
    assert att["feature_name"].values.tolist() == [f"x[{i}]" for i in range(N + K)]
    for p, S in zip(att["pathway"].values, att["contexts"].values):
        share = att.sel(pathway=p).values
        np.testing.assert_allclose(share[:N], 1 / (1.5 * N), atol=1e-9)
        if len(S) == K:
            np.testing.assert_allclose(share[N:], 1 / (3 * K), atol=1e-9)
        else:
            expected = [1 / (3 * (K - 1)) if c in S else 0.0 for c in range(K)]
            np.testing.assert_allclose(share[N:], expected, atol=1e-9)
    top = res.top_features(2)
    assert set(top.columns) == {"pathway", "contexts", "rank", "feature", "name", "share"}
    assert len(top) == 2 * att.sizes["pathway"]


def test_unit_table_and_repr(net, res):
    table = res.unit_table()
    assert len(table) == 16 and list(table.columns[:6]) == ["unit", "site", "neuron", "pathway", "contexts", "importance"]
    assert table["importance"].is_monotonic_decreasing
    for row in table.itertuples():
        assert row.contexts == net.expected["unit_contexts"][row.unit]
    assert len(res.unit_table(5)) == 5
    text = repr(res)
    assert "16 units" in text and "{0,1,2} 0.333" in text and "node_reuse_score=0.667" in text


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, width=64, init_std=0.005 / 64, seed=3)
    loss = rp.tasks.train_full_batch(model, X, Y, lr=2e-3, epochs=1200)
    return model, X, Y, coords, loss


@pytest.fixture(scope="module")
def full(paper):
    model, X, Y, coords, loss = paper
    res = rp.analyze(model, X, coords=coords, within="object", Y=Y, loss_curve=loss, lr=2e-3, literature=False,
                     reln_params={"hidden": 16, "min_mass": 0.02}, closed_form_init={"shared": 5e-9, "context": 5e-5})
    steps = np.array([0, 100, 200])
    frame = pd.DataFrame({"shared_score": [1.0, 0.8, 0.6], "effective_pathways": [1.0, 1.5, 2.5]},
                         index=pd.Index(steps, name="step"))
    ctx = np.empty(2, dtype=object)
    ctx[:] = [(0, 1, 2), (0, 1)]
    masses = xr.DataArray([[1.0, 0.0], [0.8, 0.2], [0.6, 0.4]], dims=("step", "pathway"),
                          coords={"step": steps, "pathway": [0, 1], "contexts": ("pathway", ctx)}, name="mass")
    return res.attach_monitor(scores=frame, pathways=masses)


def test_reln_and_race_are_wired_exactly(paper, full):
    """The ReLN of the pathways from the initial state read off the trained network (its
    untouched weights); its default prediction is the exact dynamics of the ReLN's own spec,
    the closed form (with the π0 asked for) shown beside it, each compared with the ReLU curve."""
    model, X, Y, coords, loss = paper
    stds, width, _ = init_std_from_trained(model, X.numpy())
    assert stds == pytest.approx((0.005 / 64, 0.005 / 64), rel=0.15)  # the fixture's init std
    reln = rp.ReLN.from_pathways(full.pathways, X, Y, lr=2e-3, epochs=len(loss), hidden=16, min_mass=0.02,
                                 init_std=stds, width=width).fit(X, Y)
    np.testing.assert_array_equal(full.reln.loss_curve_, reln.loss_curve_)
    assert full.reln.pathway_names_ == reln.pathway_names_ and len(reln.pathway_names_) >= 2
    kw = dict(lr=2e-3, epochs=len(loss), rule="residual", context=coords["context"], inputs=reln.inputs_.values,
              shared=reln.shared_)
    closed = rp.race_dynamics(X.numpy(), Y.numpy(), reln.gates_.values, init={"shared": 5e-9, "context": 5e-5},
                              method="closed", d_scale="overlap", **kw)
    exact = rp.race_dynamics(X.numpy(), Y.numpy(), reln.gates_.values, hidden=16, init_scale=reln.spec_.init_scales,
                             **kw)
    dyn = full.dynamics
    assert dyn.attrs["race_method"] == "exact" and exact.attrs["method"] == "exact"
    np.testing.assert_array_equal(dyn["loss_race"].values, exact["loss"].values)
    np.testing.assert_array_equal(dyn["loss_closed"].values, closed["loss"].values)
    np.testing.assert_array_equal(dyn["loss_relu"].values, loss)
    np.testing.assert_array_equal(dyn["sv_reln"].values, reln.singular_values_.values)
    assert full.comparison["reln"] == rp.compare_dynamics(loss, reln.loss_curve_)
    assert full.comparison["race"] == rp.compare_dynamics(loss, exact["loss"].values)
    assert full.comparison["closed"] == rp.compare_dynamics(loss, closed["loss"].values)
    assert full.params["epochs"] == len(loss)
    # the exact prediction follows the simulated ReLN (16 units per pathway) far better than
    # the closed form does
    assert full.comparison["race"]["mean_abs_diff"] < full.comparison["closed"]["mean_abs_diff"]


def test_race_method_live(paper):
    model, X, Y, coords, loss = paper
    res = rp.analyze(model, X, coords=coords, within="object", Y=Y, loss_curve=loss, lr=2e-3, literature=False,
                     attribution=False, race_method="live", reln_params={"hidden": 16, "min_mass": 0.02})
    reln = res.reln
    live = rp.race_dynamics(X.numpy(), Y.numpy(), reln.gates_.values, lr=2e-3, epochs=len(loss), rule="residual",
                            method="live", context=coords["context"], inputs=reln.inputs_.values,
                            shared=reln.shared_, hidden=16, init_scale=reln.spec_.init_scales)
    assert res.dynamics.attrs["race_method"] == "exact"  # "live" is the exact dynamics, epoch by epoch
    np.testing.assert_array_equal(res.dynamics["loss_race"].values, live["loss"].values)
    with pytest.raises(ValueInputError, match="race_method"):
        rp.analyze(model, X, coords=coords, Y=Y, race_method="euler")


def test_save_load_round_trip_is_exact(paper, full, tmp_path):
    path = full.save(tmp_path / "a")
    back = rp.Analysis.load(path)
    xr.testing.assert_identical(back.dataset, full.dataset)
    for name in ("importance", "profile", "selectivity", "attributions", "dynamics", "monitor_pathways", "structure"):
        xr.testing.assert_identical(getattr(back, name), getattr(full, name))
    for name in ("mass", "membership", "labels", "sample_gates", "importance"):
        xr.testing.assert_identical(getattr(back.pathways, name), getattr(full.pathways, name))
    assert back.pathways.context_values == full.pathways.context_values
    pd.testing.assert_series_equal(back.scores, full.scores, check_exact=True)
    pd.testing.assert_frame_equal(back.monitor_scores, full.monitor_scores, check_exact=True)
    assert back.comparison == full.comparison
    assert back.params == full.params and back.notes == full.notes
    for name in ("singular_values_", "maps_", "gates_", "inputs_", "pathway_mass_"):
        xr.testing.assert_identical(getattr(back.reln, name), getattr(full.reln, name))
    for name in ("loss_curve_", "shared_", "context_"):
        np.testing.assert_array_equal(getattr(back.reln, name), getattr(full.reln, name))
    for name in ("pathway_names_", "contexts_", "dropped_", "lr_", "epochs_", "L0_", "n_features_in_"):
        assert getattr(back.reln, name) == getattr(full.reln, name), name
    assert back.reln.get_params().keys() == full.reln.get_params().keys()
    X = paper[1].numpy()
    np.testing.assert_array_equal(back.reln.predict(X), full.reln.predict(X))
    assert repr(back) == repr(full)
    # a second save refuses to overwrite unless asked
    with pytest.raises(StoreError, match="overwrite=True"):
        full.save(path)
    full.save(path, overwrite=True)


def test_save_and_load_refuse_foreign_directories(full, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.txt").write_text("mine")
    with pytest.raises(StoreError, match="is not empty and is not a relu_probe output: it holds .data.txt."):
        full.save(other, overwrite=True)
    assert (other / "data.txt").read_text() == "mine"
    with pytest.raises(StoreError, match="no summary.json"):
        rp.Analysis.load(other)
    (other / "summary.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        rp.Analysis.load(other)
    saved = full.save(tmp_path / "saved")
    (saved / "units.nc").unlink()
    with pytest.raises(StoreError, match="missing"):
        rp.Analysis.load(saved)


def test_recording_as_input_and_store(net, tmp_path):
    ds = rp.record(net.model, net.X, coords=net.coords, values=True, store=tmp_path / "gates.zarr")
    res = rp.analyze(None, ds, by="context", within="object")
    assert res.params["importance"] == "activity"
    assert res.attributions is None and any("attributions" in n for n in res.notes)
    pw = rp.find_pathways(ds.load(), "context", "object")
    np.testing.assert_allclose(res.pathways.mass.values, pw.mass.values)
    # a model makes the readout importance available for a recording too
    res2 = rp.analyze(net.model, ds, by="context", within="object", X=net.X)
    assert res2.params["importance"] == "readout" and res2.attributions is not None


def test_channel_units_and_functional_sites():
    images = ToyConvNet.images(24)
    labels = np.arange(24) % 3
    # the toy's two channels are on for every label: no context-specific structure
    with pytest.warns(DegenerateDataWarning, match="undefined without context-specific structure"):
        res = rp.analyze(ToyConvNet(), images, coords={"label": labels}, by="label", units="channel")
    assert res.dataset.attrs["units"] == "channel" and "gate_rate" in res.dataset
    att = res.attributions
    assert att.attrs["feature_shape"] == [1, 3, 3]
    np.testing.assert_allclose(att.sum("feature").values, 1.0)
    assert res.selectivity is None and "mixed_selectivity" not in res.unit_table().columns
    # functional ReLUs are read call by call, like modules: attributed, nothing skipped
    x = toy_inputs(30)
    with pytest.warns(DegenerateDataWarning):
        res = rp.analyze(FunctionalReLUNet("F.relu"), x, coords={"c": np.arange(30) % 2}, by="c")
    assert res.attributions is not None and not any("functional" in n for n in res.notes)


def test_monitor_attachment_checks(res):
    class Monitor:
        def scores(self):
            return pd.DataFrame({"shared_score": [1.0, 0.5]}, index=[0, 10])

        def pathways_over_time(self):
            return xr.DataArray(np.ones((2, 1)), dims=("step", "pathway"),
                                coords={"step": [0, 10], "contexts": ("pathway", _ctx([(0, 1, 2)]))})

    copy = rp.Analysis(**{k: getattr(res, k) for k in ("dataset", "importance", "pathways", "scores", "profile")})
    copy.attach_monitor(Monitor())
    assert copy.monitor_scores.index.name == "step" and copy.monitor_pathways.dims == ("step", "pathway")
    assert "monitor: 2 snapshots (steps 0–10)" in repr(copy)
    per_site = pd.DataFrame({"shared_score": [1.0, 0.5, 0.9, 0.4, 0.2, 0.1]},  # 3 snapshots × 2 sites
                            index=pd.MultiIndex.from_product([[0, 10, 20], ["a", "b"]], names=["step", "site"]))
    copy.attach_monitor(scores=per_site)
    assert "monitor: 3 snapshots (steps 0–20)" in repr(copy)
    with pytest.raises(InputError, match="scores\\(\\)"):
        copy.attach_monitor(object())
    with pytest.raises(InputError, match="DataFrame"):
        copy.attach_monitor(scores={"a": 1})
    with pytest.raises(InputError, match="dims \\(step, pathway\\)"):
        copy.attach_monitor(pathways=xr.DataArray(np.ones(3), dims="step"))


def _ctx(items):
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def test_bad_input(net, paper):
    model, X, Y, coords, loss = paper
    with pytest.raises(CoordError, match="'ctx'"):
        rp.analyze(net.model, net.X, coords=net.coords, by="ctx")
    with pytest.raises(InputError, match="model"):
        rp.analyze(None, net.X, coords=net.coords)
    with pytest.raises(ValueInputError, match="one row per recorded sample"):
        rp.analyze(model, X, coords=coords, Y=Y[:5], attribution=False)
    with pytest.raises(ValueInputError, match="`epochs`"):
        rp.analyze(model, X, coords=coords, Y=Y, loss_curve=loss, epochs=10, attribution=False)
    with pytest.raises(InputError, match="X="):
        rp.analyze(model, [X[:12], X[12:]], coords=coords, Y=Y, attribution=False)
    # a training lr the ReLN cannot follow is refused with the bound, before any simulation
    with pytest.raises(ValueInputError, match=r"`lr` = 1 \(your training loop's.* at or above .* largest stable"):
        rp.analyze(model, X, coords=coords, within="object", Y=Y, loss_curve=loss, lr=1.0, attribution=False,
                   literature=False, null=None)
    with pytest.raises(ValueInputError, match="feature_names"):
        rp.analyze(net.model, net.X, coords=net.coords, feature_names=["a"])
    with pytest.raises(ValueInputError, match="importance"):
        rp.analyze(net.model, net.X, coords=net.coords, importance="magic")
    with pytest.raises(InputError, match="title"):
        rp.analyze(net.model, net.X, coords=net.coords, title=3)


def test_an_lr_above_the_bound_can_be_fitted_on_request(paper):
    """The refusal names the escape hatch; reln_params={'check_lr': False} fits the ReLN at the
    user's rate with a note (the bound is that of the least-squares optimum, which a short run
    from a small init never approaches)."""
    import re

    model, X, Y, coords, loss = paper
    kw = dict(coords=coords, within="object", Y=Y, attribution=False, literature=False, null=None)
    with pytest.raises(ValueInputError, match=r"reln_params=\{'check_lr': False\}") as info:
        rp.analyze(model, X, loss_curve=loss, lr=1.0, **kw)
    bound = float(re.search(r"at or above ([0-9.e+-]+), the largest", str(info.value)).group(1))
    res = rp.analyze(model, X, lr=1.05 * bound, epochs=40, reln_params={"check_lr": False}, **kw)
    assert any("fitted anyway" in n and "check_lr" in n for n in res.notes)
    assert res.reln.lr_ == pytest.approx(1.05 * bound) and np.all(np.isfinite(res.reln.loss_curve_))


def test_progress_bar_runs(net, capsys):
    rp.analyze(net.model, net.X, coords=net.coords, progress=True, attribution=False)
    assert "analyze" in capsys.readouterr().err


def test_nested_items_skip_the_per_unit_anova_with_a_note(net):
    """Items nested in the conditions (each object under one parity): the pathways and scores
    say what they can, and the two-way ANOVA of the per-unit mixed selectivity, undefined
    there, is skipped with a note instead of failing the whole analysis."""
    X, coords = net.X, dict(net.coords)
    parity = np.asarray(coords["object"]) % 2
    with pytest.warns(UserWarning):
        res = rp.analyze(net.model, X, coords={**coords, "parity": parity}, by="parity", within="object",
                         null=0, literature=False, attribution=False)
    assert res.selectivity is None
    assert any(n.startswith("per-unit mixed selectivity skipped: the two-way ANOVA needs a sample for every "
                            "(parity, object) combination") for n in res.notes)
