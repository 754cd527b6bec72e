"""rp.find_pathways / rp.Pathways / rp.PathwayClustering on networks with known pathways."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from _deps import require
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

import relu_probe as rp
from relu_probe.errors import CoordError, DegenerateDataWarning, InputError, NotFittedError, ValueInputError
from relu_probe.testing import k_minus_one_net, modular_net, shared_net

NETS = {"modular": modular_net, "shared": shared_net, "k_minus_one": k_minus_one_net}


def _record(net, values=True):
    return rp.record(net.model, net.X, coords=net.coords, values=values)


def _masses(pw):
    return dict(zip(pw.contexts, pw.mass.values.tolist()))


def _assert_masses(pw, expected):
    got = _masses(pw)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


# ----------------------------------------------------------------------------- context sets


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("K", [3, 4])
@pytest.mark.parametrize("values", [True, False])
def test_context_set_masses_are_exact(name, K, values):
    net = NETS[name](K, 4)
    ds = _record(net, values=values)
    imp = rp.unit_importance(net.model, ds)
    pw = rp.find_pathways(ds, "context", "object", importance=imp)
    assert pw.method == "context-sets"
    assert pw.context_values == tuple(range(K))
    _assert_masses(pw, net.expected["masses"])
    # the default (activity) importance gives the same masses here (readout norms are 1)
    _assert_masses(rp.find_pathways(ds, "context", "object"), net.expected["masses"])


@pytest.mark.parametrize("name", NETS)
def test_membership_labels_units_and_gates(name):
    net = NETS[name](3, 4)
    ds = _record(net)
    pw = rp.find_pathways(ds, "context", "object", importance=rp.unit_importance(net.model, ds))
    # membership sums to mass over units and to the importance over pathways
    np.testing.assert_allclose(pw.membership.sum("unit").values, pw.mass.values, atol=1e-12)
    np.testing.assert_allclose(pw.membership.sum("pathway").values, net.expected["importance"], atol=1e-12)
    assert pw.membership.dims == ("unit", "pathway")
    assert "site" in pw.membership.coords and "neuron" in pw.membership.coords
    # each unit's dominant pathway is its designed context set
    index = {c: p for p, c in enumerate(pw.contexts)}
    expected_labels = [index[c] for c in net.expected["unit_contexts"]]
    np.testing.assert_array_equal(pw.labels.values, expected_labels)
    for p in range(pw.n_pathways):
        np.testing.assert_array_equal(pw.units(p), np.flatnonzero(np.array(expected_labels) == p))
    # sample gates: open exactly on the samples of the pathway's contexts
    ctx = ds["context"].values
    for p, contexts in enumerate(pw.contexts):
        np.testing.assert_array_equal(pw.sample_gates.values[p], np.isin(ctx, contexts).astype(np.int8))
    assert pw.sample_gates.dtype == np.int8
    # ordering: number of contexts descending, then mass descending
    sizes = [len(c) for c in pw.contexts]
    assert sizes == sorted(sizes, reverse=True)
    summary = pw.summary()
    assert list(summary.columns) == ["site", "pathway", "contexts", "n_units", "mass", "n_disagreeing", "sites"]
    assert summary["mass"].sum() == pytest.approx(1.0)
    assert summary["n_units"].sum() == ds.sizes["unit"]
    assert all(s == {"1": pytest.approx(1.0)} for s in summary["sites"])
    assert "pathway" in repr(pw) and "context-sets" in repr(pw)


def test_ordering_within_a_size_is_by_mass():
    net = k_minus_one_net(3, 4)
    ds = _record(net)
    # make the units skipping context 2 (on in {0, 1}) count double
    imp = np.where(np.arange(16) >= 12, 2.0, 1.0) * net.expected["importance"]
    pw = rp.find_pathways(ds, "context", "object", importance=imp)
    assert pw.contexts[0] == (0, 1, 2)
    assert pw.contexts[1] == (0, 1)
    assert pw.mass.values[1] > pw.mass.values[2] == pytest.approx(pw.mass.values[3])


def test_majority_rule_with_repeated_samples():
    net = k_minus_one_net(3, 4)
    X = torch.cat([net.X, net.X])
    coords = {k: np.concatenate([v, v]) for k, v in net.coords.items()}
    ds = rp.record(net.model, X, coords=coords, values=True)
    # unit 0 (shared, object 0) switched off on one of the two samples of (object 0, context 0)
    sample = int(np.flatnonzero((coords["object"] == 0) & (coords["context"] == 0))[0])
    ds["gate"][sample, 0] = False
    ds["activation"][sample, 0] = 0.0
    pw = rp.find_pathways(ds, "context", "object")
    member = pw.membership.isel(unit=0)
    assert member.sel(pathway=pw.contexts.index((1, 2))) == pytest.approx(float(member.sum()))
    pw_low = rp.find_pathways(ds, "context", "object", on_fraction=0.4)
    member = pw_low.membership.isel(unit=0)
    assert member.sel(pathway=pw_low.contexts.index((0, 1, 2))) == pytest.approx(float(member.sum()))


# ----------------------------------------------------------------------------- across / per site


def _two_site_net(K=3, n=4):
    net = k_minus_one_net(K, n)
    H = net.model[0].out_features
    eye = torch.eye(H, dtype=torch.float64)
    model = nn.Sequential(
        net.model[0], nn.ReLU(), nn.Linear(H, H, bias=False), nn.ReLU(), nn.Linear(H, H, bias=False)
    ).double()
    with torch.no_grad():
        model[2].weight.copy_(eye)
        model[4].weight.copy_(eye)
    return net, model


def test_pathways_per_site_by_default_and_pooled_on_request():
    net, model = _two_site_net()
    ds = rp.record(model, net.X, coords=net.coords, values=True)
    assert ds.attrs["sites"] == ["1", "3"]
    imp = rp.unit_importance(model, ds)
    pw = rp.find_pathways(ds, "context", "object", importance=imp)
    # per site: every site has the designed masses, summing to 1 within the site
    assert pw.sites == ["1", "3"]
    assert list(pw.summary()["site"]) == ["1"] * 4 + ["3"] * 4
    for site in ("1", "3"):
        one = pw.sel(site)
        assert one.sites == [site] and one.membership.sizes["unit"] == 16
        assert set(one.membership["site"].values) == {site}
        assert float(one.importance.sum()) == pytest.approx(1.0)
        _assert_masses(one, net.expected["masses"])
        np.testing.assert_array_equal(one.mass["pathway"].values, np.arange(4))
        assert (one.labels.values >= 0).all() and one.labels.values.max() == 3
        per_site = rp.find_pathways(ds, "context", "object", importance=imp, sites=site)
        _assert_masses(per_site, net.expected["masses"])
    assert pw.site_mass.dims == ("pathway", "site")
    np.testing.assert_allclose(pw.site_mass.values, np.kron(np.eye(2), np.ones((4, 1))) * pw.mass.values[:, None])
    with pytest.raises(CoordError, match=r"\['1', '3'\]"):
        pw.sel("2")
    # pooled: one decomposition over both sites, each pathway's mass split evenly between them
    pooled = rp.find_pathways(ds, "context", "object", importance=imp, per_site=False)
    assert pooled.sites == ["1+3"]
    _assert_masses(pooled, net.expected["masses"])
    assert list(pooled.site_mass["site"].values) == ["1", "3"]
    np.testing.assert_allclose(pooled.site_mass.values, np.repeat(pooled.mass.values[:, None] / 2, 2, axis=1))
    assert pooled.summary()["sites"][0] == {"1": pytest.approx(0.5), "3": pytest.approx(0.5)}
    with pytest.raises(CoordError, match="Recorded sites"):
        rp.find_pathways(ds, "context", "object", sites=["1", "9"])


# ----------------------------------------------------------------------------- profiles / cocluster / auto


@pytest.mark.parametrize("name", NETS)
def test_profiles_method_recovers_the_designed_sets(name):
    net = NETS[name](3, 4)
    ds = _record(net)
    pw = rp.find_pathways(ds, "context", importance=rp.unit_importance(net.model, ds), method="profiles")
    assert pw.method == "profiles" and pw.within is None
    _assert_masses(pw, net.expected["masses"])
    index = {c: p for p, c in enumerate(pw.contexts)}
    np.testing.assert_array_equal(pw.labels.values, [index[c] for c in net.expected["unit_contexts"]])


def test_auto_uses_profiles_when_items_do_not_repeat():
    net = k_minus_one_net(3, 4)
    ds = _record(net)
    unique = ds.assign_coords(item=("sample", np.arange(ds.sizes["sample"])))
    pw = rp.find_pathways(unique, "context", "item")
    assert pw.method == "profiles"
    _assert_masses(pw, net.expected["masses"])
    assert rp.find_pathways(ds, "context", "object").method == "context-sets"
    assert rp.find_pathways(ds, "context").method == "profiles"
    with pytest.raises(CoordError, match="method='profiles'"):
        rp.find_pathways(unique, "context", "item", method="context-sets")
    with pytest.raises(CoordError, match="needs `within`"):
        rp.find_pathways(ds, "context", method="context-sets")


def test_cocluster_blocks_are_named_after_their_units():
    # the k-1 net's gate matrix is block diagonal over objects: object o's shared unit and its
    # K skip units are on only on object o's samples. Every block covers all contexts with its
    # samples, but only its shared unit is on in all of them: the block is named after the
    # set most of its units' importance has (shared: 1.5 x 3 samples against 1.5 x 2 per skip
    # unit), and the skip units, whose own sets are no block's, are counted as disagreeing.
    K, n = 3, 4
    net = k_minus_one_net(K, n)
    ds = _record(net)
    est = rp.PathwayClustering(method="cocluster").fit(ds.gate.values.T.astype(float))
    unit_object = np.concatenate([np.arange(n)] + [np.arange(n)] * K)
    assert est.n_pathways_ == n
    for p in range(n):
        assert len(set(unit_object[est.labels_ == p])) == 1
    pw = rp.find_pathways(ds, "context", "object", method="cocluster")
    assert pw.method == "cocluster"
    assert pw.contexts == [tuple(range(K))]
    shared_unit = np.arange(n + K * n) < n
    np.testing.assert_array_equal(pw.disagrees.values, ~shared_unit)
    assert pw.summary()["n_disagreeing"].tolist() == [K * n]
    np.testing.assert_array_equal(pw.sample_gates.values[0], np.ones(n * K, np.int8))


# ----------------------------------------------------------------------------- degenerate and bad input


def test_all_off_gates_give_empty_pathways_with_warning():
    net = modular_net(3, 4)
    with torch.no_grad():
        net.model[0].weight.fill_(-1.0)
    ds = _record(net)
    with pytest.warns(DegenerateDataWarning) as record:
        pw = rp.find_pathways(ds, "context", "object")
    assert any("no unit is on" in str(w.message) for w in record)
    assert pw.n_pathways == 0
    assert float(pw.mass.sum()) == 0.0
    assert (pw.labels.values == -1).all()
    assert list(pw.summary().columns) == ["site", "pathway", "contexts", "n_units", "mass", "n_disagreeing", "sites"]
    assert len(pw.summary()) == 0
    for method in ("profiles", "cocluster"):
        with pytest.warns(DegenerateDataWarning):
            assert rp.find_pathways(ds, "context", method=method).n_pathways == 0


def test_constant_on_gates_warn_and_are_all_shared():
    net = shared_net(3, 4)
    with torch.no_grad():
        net.model[0].weight.fill_(1.0)
    ds = _record(net)
    with pytest.warns(DegenerateDataWarning, match="constant"):
        pw = rp.find_pathways(ds, "context", "object")
    _assert_masses(pw, {(0, 1, 2): 1.0})


def test_bad_coords_and_importance():
    net = modular_net(3, 4)
    ds = _record(net)
    with pytest.raises(CoordError, match="available sample coords: 'context', 'object'"):
        rp.find_pathways(ds, "task")
    with pytest.raises(CoordError, match="`within`='item'.*'context', 'object'"):
        rp.find_pathways(ds, "context", "item")
    with pytest.raises(CoordError, match="differ"):
        rp.find_pathways(ds, "context", "context")
    with pytest.raises(ValueInputError, match="method"):
        rp.find_pathways(ds, "context", "object", method="louvain")
    with pytest.raises(CoordError, match="one value per unit"):
        rp.find_pathways(ds, "context", "object", importance=np.ones(5))
    other = xr.DataArray(np.ones(12), dims="unit", coords={"unit": np.arange(100, 112)})
    with pytest.raises(CoordError, match="12 of 12 unit ids are missing"):
        rp.find_pathways(ds, "context", "object", importance=other)
    with pytest.raises(ValueInputError, match=">= 0"):
        rp.find_pathways(ds, "context", "object", importance=-np.ones(12))
    with pytest.raises(ValueInputError, match="finite"):
        rp.find_pathways(ds, "context", "object", importance=np.full(12, np.nan))
    with pytest.raises(CoordError, match="single dim 'unit'"):
        rp.find_pathways(ds, "context", "object", importance=xr.DataArray(np.ones((12, 1)), dims=("unit", "x")))
    with pytest.raises(InputError, match="rp.record"):
        rp.find_pathways(ds.to_array(), "context")
    with pytest.raises(ValueInputError, match="step"):
        rp.find_pathways(ds.expand_dims(step=[0]), "context", "object")



def _with_missing(values, missing):
    """*values* with a missing label at positions 7 and 9 (float NaN or None)."""
    out = np.asarray(values).astype(np.float64 if missing == "nan" else object)
    out[[7, 9]] = np.nan if missing == "nan" else None
    return out


#: Every public consumer of a `by` / `within` coord: (call, argument name of each factor).
FACTOR_CONSUMERS = {
    "find_pathways": (lambda ds: rp.find_pathways(ds, "context", "object"), ("by", "within")),
    "scores": (lambda ds: rp.scores(ds, by="context", within="object"), ("by", "within")),
    "gating_profile": (lambda ds: rp.gating_profile(ds, ["context", "object"]), ("by", "by")),
    "mixed_selectivity_score": (lambda ds: rp.mixed_selectivity_score(ds, by=("context", "object")), ("by", "within")),
    "mixed_selectivity_index": (lambda ds: rp.mixed_selectivity_index(ds, "context", within="object"), ("by", "within")),
    "ccgp_score": (lambda ds: rp.ccgp_score(ds, "context", "object"), ("by", "within")),
    "parallelism_score": (lambda ds: rp.parallelism_score(ds, "context", "object"), ("by", "within")),
    "dci_score": (lambda ds: rp.dci_score(ds, ("context", "object")), ("factors", "factors")),
    "analyze": (lambda ds: rp.analyze(None, ds, by="context", within="object"), ("by", "within")),
}


@pytest.mark.parametrize("missing", ["nan", "none"])
@pytest.mark.parametrize("coord", ["context", "object"])
@pytest.mark.parametrize("consumer", FACTOR_CONSUMERS)
def test_missing_labels_in_a_factor_coord_name_the_coord_and_first_sample(consumer, coord, missing):
    net = k_minus_one_net(3, 4)
    ds = _record(net)
    ds = ds.assign_coords({"sample": ds["sample"].values + 100, coord: ("sample", _with_missing(ds[coord], missing))})
    call, argnames = FACTOR_CONSUMERS[consumer]
    argname = argnames[coord == "object"]
    shown = "nan" if missing == "nan" else "None"
    with pytest.raises(InputError, match=(
        f"`{argname}`='{coord}': the coord must label every sample, but sample 107 \\(position 7\\) has "
        f"{shown}; 2 of 12 samples have no label"
    )):
        call(ds)


@pytest.mark.parametrize("missing", ["nan", "none"])
def test_missing_labels_refused_when_analysing_or_monitoring_a_model(missing):
    net = k_minus_one_net(3, 4)
    coords = dict(net.coords, context=_with_missing(net.coords["context"], missing))
    with pytest.raises(InputError, match="`by`='context'.*sample 7 \\(position 7\\)"):
        rp.analyze(net.model, net.X, coords=coords, by="context", within="object")
    # the monitor refuses them when it is built, not after training
    with pytest.raises(InputError, match="`by`='context'.*sample 7 \\(position 7\\)"):
        rp.TrainingMonitor(net.model, net.X, coords=coords, every=1, by="context", within="object")
    mon = rp.TrainingMonitor(net.model, net.X, coords=coords, every=1)
    mon.snapshot(0)
    with pytest.raises(InputError, match="`by`='context'.*sample 7 \\(position 7\\)"):
        mon.scores(by="context", within="object")
    # a coord that is not used as a factor may have missing labels
    other = dict(net.coords, note=_with_missing(net.coords["context"], missing))
    rp.find_pathways(rp.record(net.model, net.X, coords=other), "context", "object")


def test_importance_for_a_superset_of_units_is_aligned_by_id():
    net, model = _two_site_net()
    ds = rp.record(model, net.X, coords=net.coords, values=True)
    imp = rp.unit_importance(model, ds)  # over both sites
    pw = rp.find_pathways(ds, "context", "object", importance=imp, sites="3")
    np.testing.assert_array_equal(pw.importance["unit"].values, np.arange(16, 32))
    assert float(pw.importance.sum()) == pytest.approx(1.0)


def test_units_argument_checked():
    net = modular_net(3, 4)
    pw = rp.find_pathways(_record(net), "context", "object")
    with pytest.raises(ValueInputError, match="0..2"):
        pw.units(3)


def test_round_trip_through_netcdf(tmp_path):
    net = k_minus_one_net(3, 4)
    ds = _record(net)
    pw = rp.find_pathways(ds, "context", "object")
    path = tmp_path / "pathways.nc"
    pw.to_dataset().to_netcdf(path)
    with xr.open_dataset(path) as stored:
        back = rp.Pathways.from_dataset(stored.load())
    assert back.contexts == pw.contexts
    assert back.context_values == pw.context_values
    assert (back.method, back.by, back.within) == (pw.method, pw.by, pw.within)
    np.testing.assert_allclose(back.mass.values, pw.mass.values)
    np.testing.assert_allclose(back.membership.values, pw.membership.values)
    np.testing.assert_array_equal(back.labels.values, pw.labels.values)
    pd.testing.assert_frame_equal(back.summary(), pw.summary())


# ----------------------------------------------------------------------------- the estimator


def _expected_failures(estimator):
    failures = {
        # same as scikit-learn's own KMeans (meta-issue #16298)
        "check_sample_weight_equivalence_on_dense_data": (
            "sample_weight is not equivalent to removing/repeating samples."
        ),
    }
    if estimator.method == "cocluster":
        failures["check_clustering"] = (
            "co-clustering needs a non-negative gate matrix; this check feeds standardised "
            "(negative) blobs without honouring the positive_only tag."
        )
    return failures


def _check_name(check) -> str:
    while isinstance(check, functools.partial):
        check = check.func
    return check.__name__


# scikit-learn's array-API check runs only with SCIPY_ARRAY_API=1 set before scipy is first
# imported, and that switches scipy into array-API mode for the whole process, which users
# do not run in. So the check runs in an interpreter of its own
# (test_sklearn_array_api_check_in_array_api_mode), and every other check runs here.
_ARRAY_API_CHECK = "check_array_api_input"
_ALL_CHECKS = parametrize_with_checks(
    [rp.PathwayClustering(), rp.PathwayClustering(method="cocluster")],
    expected_failed_checks=_expected_failures,
).mark
_CHECKS = [p for p in _ALL_CHECKS.args[1] if _check_name(getattr(p, "values", p)[1]) != _ARRAY_API_CHECK]


@pytest.mark.parametrize(_ALL_CHECKS.args[0], _CHECKS, **_ALL_CHECKS.kwargs)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


ARRAY_API_SCRIPT = textwrap.dedent(f"""
    import functools, json
    import relu_probe as rp
    from sklearn.utils.estimator_checks import estimator_checks_generator
    ran = []
    for estimator in (rp.PathwayClustering(), rp.PathwayClustering(method="cocluster")):
        for estimator, check in estimator_checks_generator(estimator):
            function = check
            while isinstance(function, functools.partial):
                function = function.func
            if function.__name__ == {_ARRAY_API_CHECK!r}:
                check(estimator)  # raises (SkipTest included) unless the check passes
                ran.append(repr(estimator))
    print(json.dumps(ran))
""")


def test_sklearn_array_api_check_in_array_api_mode():
    # "with array API dispatch enabled and NumPy inputs, results do not change" (scikit-learn's
    # check for estimators without array-API support of their own)
    assert len(_CHECKS) < len(list(_ALL_CHECKS.args[1]))  # the check exists and is not run above
    out = subprocess.run([sys.executable, "-c", ARRAY_API_SCRIPT], env={**os.environ, "SCIPY_ARRAY_API": "1"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        "PathwayClustering()", "PathwayClustering(method='cocluster')"
    ]


def test_estimator_profiles_example_and_predict():
    X = np.array([[1, 1, 0], [0.9, 1, 0], [0, 0, 1.0], [0, 0.1, 1]])
    est = rp.PathwayClustering()
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert est.fit(X) is est
    assert est.labels_.tolist() == [0, 0, 1, 1]
    assert est.pathway_columns_ == [(0, 1), (2,)]
    assert est.n_pathways_ == 2
    np.testing.assert_array_equal(est.predict(np.array([[0.0, 0.2, 0.9]])), [1])
    assert est.get_params()["explained"] == 0.9
    assert rp.PathwayClustering(n_pathways=1).fit(X).labels_.tolist() == [0, 0, 0, 0]


def test_estimator_cocluster_blocks():
    A = np.zeros((6, 6))
    A[:3, :2] = 1.0
    A[3:, 2:] = 1.0
    A[5] = 0.0  # a never-on unit
    est = rp.PathwayClustering(method="cocluster").fit(A)
    assert est.labels_.tolist() == [0, 0, 0, 1, 1, -1]
    assert est.column_labels_.tolist() == [0, 0, 1, 1, 1, 1]
    assert est.pathway_columns_ == [(0, 1), (2, 3, 4, 5)]
    assert est.score_ == pytest.approx(1 - (6**2 + 8**2) / 14**2)  # Barber's Q of the two blocks
    with pytest.raises(ValueError, match="Negative values"):
        rp.PathwayClustering(method="cocluster").fit(-A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(est.predict(A[:2]), [0, 0])


def test_dask_backed_recording_gives_the_same_pathways():
    require("dask")
    net = k_minus_one_net(3, 4)
    ds = _record(net)
    lazy = ds.chunk({"sample": 5})
    assert lazy["context"].chunks is not None
    for method in ("context-sets", "profiles", "cocluster"):
        eager = rp.find_pathways(ds, "context", "object", method=method)
        chunked = rp.find_pathways(lazy, "context", "object", method=method)
        assert chunked.contexts == eager.contexts
        np.testing.assert_allclose(chunked.mass.values, eager.mass.values)
    np.testing.assert_allclose(
        rp.gating_profile(lazy, "context").values, rp.gating_profile(ds, "context").values
    )
    assert rp.mixed_selectivity_score(lazy) == pytest.approx(rp.mixed_selectivity_score(ds))
