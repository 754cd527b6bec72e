"""Contracts between the stages: one estimator error, a recording checked once along analyze,
one way to write a context set, each fitted network saving itself, and the model left as it
was by every stage that runs it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sklearn.exceptions
import torch
import xarray as xr
from sklearn.utils.validation import check_is_fitted

import relu_probe as rp
from relu_probe import errors
from relu_probe.data import access
from relu_probe.testing import k_minus_one_net
from _deps import require


# ----------------------------------------------------------------------------- errors
def test_one_not_fitted_error_that_scikit_learn_recognises():
    assert issubclass(errors.NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(errors.NotFittedError, errors.ReluProbeError)
    for estimator in (rp.PathwayClustering(), rp.GDLN([(0, 1)])):
        call = estimator.predict if isinstance(estimator, rp.PathwayClustering) else estimator.pathway_strength
        with pytest.raises(errors.NotFittedError) as info:
            call(np.zeros((2, 2))) if isinstance(estimator, rp.PathwayClustering) else call()
        assert type(info.value) is errors.NotFittedError
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(rp.PathwayClustering())
    # it travels between processes like any exception
    assert type(pickle.loads(pickle.dumps(errors.NotFittedError("x")))) is errors.NotFittedError


def test_cli_error_joins_the_hierarchy():
    from relu_probe.cli import CLIError

    assert CLIError is errors.CLIError and issubclass(CLIError, errors.ReluProbeError)


# ----------------------------------------------------------------------------- validated once
@pytest.fixture(scope="module")
def net():
    return k_minus_one_net(3, 4)


def test_analyze_checks_the_recording_and_each_coord_once(net, monkeypatch):
    ds = rp.record(net.model, net.X, coords=net.coords, values=True)
    full_checks, label_checks = [], []
    gate_name = access.gate_name

    class CountingPandas:
        @staticmethod
        def isna(values):
            label_checks.append(len(values))
            return access_pd.isna(values)

    access_pd = access.pd
    monkeypatch.setattr(access, "gate_name", lambda d: full_checks.append(1) or gate_name(d))
    monkeypatch.setattr(access, "pd", CountingPandas)
    res = rp.analyze(net.model, ds, by="context", within="object")
    assert len(full_checks) == 1  # the recording, at the start
    assert len(label_checks) == 2  # "context" and "object", at their first use
    assert res.scores["shared_score"] == pytest.approx(net.expected["shared_score"], abs=1e-12)


def test_a_checked_recording_is_accepted_as_it_is(net):
    ds = rp.record(net.model, net.X, coords=net.coords)
    rec = access.as_recording(ds)
    assert access.as_recording(rec) is rec
    xr.testing.assert_identical(rp.gating_profile(rec, "context"), rp.gating_profile(ds, "context"))


# ----------------------------------------------------------------------------- one context-set label
def test_one_context_set_label_everywhere(net, tmp_path):
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, width=40)
    mon = rp.TrainingMonitor(model, X, coords=coords, every=5, by="context", within="object")
    loss = rp.tasks.train_full_batch(model, X, Y, lr=2e-2, epochs=11, callback=mon.update)
    masses = mon.pathways_over_time()
    assert all(label == rp.dataset.context_set_label(c) for label, c in
               zip(masses["label"].values, masses["contexts"].values))
    assert "{0,1,2}" in masses["label"].values.tolist()
    res = rp.analyze(net.model, net.X, coords=net.coords, within="object", attribution=False, literature=False)
    html = res.to_html(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "{0,1,2}" in html and "{0, 1, 2}" not in html
    assert "{0,1,2} 0.333" in repr(res)
    del loss


# ----------------------------------------------------------------------------- networks save themselves
@pytest.mark.parametrize("cls", [rp.GDLN, rp.ReLN])
def test_a_fitted_network_saves_and_loads_itself(cls, tmp_path):
    require("netCDF4")
    X, Y, coords = rp.tasks.contextual_task(3)
    g = cls([(0, 1, 2), (0, 1), (1, 2), (0, 2)], hidden=6, trunk=[5], epochs=20, lr=1e-2, seed=3)
    g.fit(X, Y, context=coords["context"])
    g.to_netcdf(tmp_path / "net.nc")
    back = cls.from_netcdf(tmp_path / "net.nc")
    assert type(back) is cls and back.get_params().keys() == g.get_params().keys()
    for a, b in zip(back.trunk_weights_, g.trunk_weights_):
        np.testing.assert_array_equal(a, b)
    xr.testing.assert_identical(back.maps_, g.maps_)
    np.testing.assert_array_equal(back.predict(X.numpy()), g.predict(X.numpy()))
    assert back.spec_.widths == g.spec_.widths and back.spec_.trunk == (5,)
    with pytest.raises(errors.StoreError, match="holds no saved"):
        (rp.ReLN if cls is rp.GDLN else rp.GDLN).from_netcdf(tmp_path / "net.nc")


def test_analyze_predicts_no_race_for_a_reln_with_a_trunk(net):
    X, Y = net.X, torch.as_tensor(np.random.default_rng(0).normal(size=(net.X.shape[0], 3)))
    res = rp.analyze(net.model, X, coords=net.coords, within="object", Y=Y, lr=1e-3, epochs=30, attribution=False,
                     literature=False, reln_params={"trunk": [6], "hidden": 4, "min_mass": 0.0})
    assert "loss_reln" in res.dynamics and "loss_race" not in res.dynamics
    assert any("without a trunk" in note for note in res.notes)


# ----------------------------------------------------------------------------- the model left as it was
def test_conductance_gives_every_module_its_own_mode_back(net):
    model = net.model
    ds = rp.record(model, net.X, coords=net.coords)
    model.train()
    model[0].eval()  # a submodule in eval mode inside a model in training mode
    before = {name: m.training for name, m in model.named_modules()}
    rp.unit_importance(model, ds, method="conductance", inputs=net.X)
    assert {name: m.training for name, m in model.named_modules()} == before
    model.eval()
