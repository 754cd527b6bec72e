"""Scores: exact answers on hand-built networks and constructed geometries."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import pandas as pd
import pytest
import xarray as xr

import relu_probe as rp
from relu_probe.errors import CoordError, DegenerateDataWarning, InputError, ValueInputError
from relu_probe.testing import k_minus_one_net, modular_net, shared_net

NETS = {"modular": modular_net, "shared": shared_net, "k_minus_one": k_minus_one_net}
PATHWAY_SCORES = ("shared_score", "node_reuse_score", "modularity_score", "k_minus_one_score", "effective_pathways")


def _record(net, values=True):
    return rp.record(net.model, net.X, coords=net.coords, values=values)


def _pathways(net, values=True):
    ds = _record(net, values)
    return rp.find_pathways(ds, "context", "object", importance=rp.unit_importance(net.model, ds)), ds


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- pathway scores


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("K", [2, 3, 5])
def test_pathway_scores_exact(name, K):
    net = NETS[name](K, 4)
    pw, _ = _pathways(net)
    for score in PATHWAY_SCORES:
        assert _quiet(getattr(rp, score), pw) == pytest.approx(net.expected[score], abs=1e-12, nan_ok=True), score


def test_headline_values_of_the_three_nets():
    K = 3
    modular, _ = _pathways(modular_net(K))
    assert rp.modularity_score(modular) == 1.0
    assert rp.node_reuse_score(modular) == 0.0
    assert rp.shared_score(modular) == 0.0
    assert rp.effective_pathways(modular) == pytest.approx(K)
    shared, _ = _pathways(shared_net(K))
    assert rp.shared_score(shared) == 1.0
    assert rp.node_reuse_score(shared) == 1.0
    assert rp.effective_pathways(shared) == pytest.approx(1.0)
    # modularity is undefined without context-specific mass: NaN, never a value in or out of range
    with pytest.warns(DegenerateDataWarning, match="undefined without context-specific"):
        assert math.isnan(rp.modularity_score(shared))
    with pytest.warns(DegenerateDataWarning, match="undefined without context-specific"):
        assert math.isnan(rp.k_minus_one_score(shared))
    mixed, _ = _pathways(k_minus_one_net(K))
    assert rp.shared_score(mixed) == pytest.approx(1 / K)
    assert rp.node_reuse_score(mixed) == pytest.approx((K - 1) / K)
    assert rp.modularity_score(mixed) == pytest.approx(1 / (K - 1))
    assert rp.k_minus_one_score(mixed) == pytest.approx(1.0)
    assert rp.k_minus_one_score(modular) == 0.0
    m = np.array([1 / K] + [(K - 1) / K**2] * K)
    assert rp.effective_pathways(mixed) == pytest.approx(math.exp(-(m * np.log(m)).sum()))


class _FakeReLN:
    """Stands in for a fitted GDLN/ReLN: the pathway_strength() extension point."""

    def __init__(self, strengths, contexts, context_values):
        self.context_values = context_values
        c = np.empty(len(contexts), dtype=object)
        c[:] = contexts
        self._s = xr.DataArray(strengths, dims="pathway", coords={"contexts": ("pathway", c)})

    def pathway_strength(self):
        return self._s


def test_scores_accept_pathway_strength_objects_and_dataarrays():
    pw, _ = _pathways(k_minus_one_net(3))
    reln = _FakeReLN(7.0 * pw.mass.values, pw.contexts, (0, 1, 2))  # unnormalised strengths
    for score in PATHWAY_SCORES:
        assert getattr(rp, score)(reln) == pytest.approx(getattr(rp, score)(pw))
        assert getattr(rp, score)(pw.mass) == pytest.approx(getattr(rp, score)(pw))
    assert rp.k_minus_one_score(reln) == pytest.approx(1.0)
    series = rp.scores(reln)
    assert list(series.index) == list(PATHWAY_SCORES)
    # K comes from context_values, not from the pathways present: a single {0} pathway out of 4
    lone = _FakeReLN([1.0], [(0,)], (0, 1, 2, 3))
    assert rp.node_reuse_score(lone) == 0.0 and rp.modularity_score(lone) == 1.0
    assert rp.k_minus_one_score(lone) == 0.0


def test_modularity_ignores_negligible_context_specific_mass():
    # early in training almost all mass is shared; the ratio of ~1e-7 masses is noise
    tiny = _FakeReLN([1.0, 1e-7, 1e-7], [(0, 1, 2), (0, 1), (0,)], (0, 1, 2))
    with pytest.warns(DegenerateDataWarning, match="min_mass"):
        assert math.isnan(rp.modularity_score(tiny))
    assert rp.modularity_score(tiny, min_mass=0.0) == pytest.approx(0.75)
    with pytest.warns(DegenerateDataWarning, match="min_mass"):
        assert math.isnan(rp.k_minus_one_score(tiny))
    assert rp.k_minus_one_score(tiny, min_mass=0.0) == pytest.approx(0.5)  # mean size 1.5, K = 3
    with pytest.raises(ValueInputError, match="min_mass"):
        rp.modularity_score(tiny, min_mass=-1)


def test_pathway_score_errors():
    with pytest.raises(InputError, match="rp.Pathways"):
        rp.shared_score({"a": 1})
    with pytest.raises(ValueInputError, match=">= 0"):
        rp.shared_score(_FakeReLN([1.0, -1.0], [(0, 1), (0,)], (0, 1)))
    with pytest.raises(ValueInputError, match="at least 2 contexts"):
        rp.shared_score(_FakeReLN([1.0], [(0,)], (0,)))


def test_empty_pathways_score_zero_or_nan_with_warnings():
    empty = _FakeReLN([0.0, 0.0], [(0, 1), (0,)], (0, 1))
    for score in PATHWAY_SCORES:
        with pytest.warns(DegenerateDataWarning):
            value = getattr(rp, score)(empty)
        # ratios over the (absent) context-specific mass are undefined; sums are 0
        if score in ("modularity_score", "k_minus_one_score"):
            assert math.isnan(value), score
        else:
            assert value == 0.0, score


def test_k_minus_one_score_does_not_move_with_K():
    # modularity and node reuse of the (K-1) and modular references change with K by
    # construction; the (K-1) score is 0 and 1 for them at every K, and in between linear in
    # the mean size of the context-specific sets
    for K in (3, 4, 5, 8, 20):
        kmo = _FakeReLN([1 / K] + [(K - 1) / K**2] * K, [tuple(range(K))] + [tuple(c for c in range(K) if c != s)
                                                                           for s in range(K)], tuple(range(K)))
        mod = _FakeReLN([0.5] + [0.5 / K] * K, [tuple(range(K))] + [(c,) for c in range(K)], tuple(range(K)))
        assert rp.modularity_score(kmo) == pytest.approx(1 / (K - 1))
        assert rp.node_reuse_score(kmo) == pytest.approx((K - 1) / K)
        assert rp.k_minus_one_score(kmo) == pytest.approx(1.0)
        assert rp.k_minus_one_score(mod) == 0.0
        half = _FakeReLN([0.5, 0.5], [(0,), tuple(range(K - 1))], tuple(range(K)))  # sizes 1 and K-1
        assert rp.k_minus_one_score(half) == pytest.approx(0.5)
    with pytest.warns(DegenerateDataWarning, match="K = 2"):
        assert math.isnan(rp.k_minus_one_score(_FakeReLN([1.0], [(0,)], (0, 1))))


# ----------------------------------------------------------------------------- mixed selectivity


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("values", [True, False])
def test_mixed_selectivity_exact(name, values):
    K, n = 3, 4
    net = NETS[name](K, n)
    ds = _record(net, values)
    index = rp.mixed_selectivity_index(ds, ("context", "object"))
    np.testing.assert_allclose(index.values, net.expected["mixed_selectivity_index"], atol=1e-12)
    imp = rp.unit_importance(net.model, ds)
    score = rp.mixed_selectivity_score(ds, ("context", "object"), imp)
    assert score == pytest.approx(net.expected["mixed_selectivity_score"], abs=1e-12)
    assert rp.mixed_selectivity_score(ds, "context", imp, within="object") == pytest.approx(score)


def test_mixed_selectivity_closed_forms():
    K, n = 3, 4
    ds = _record(modular_net(K, n))
    # conjunctive unit: (K-1)(n-1)/(Kn-1)
    assert rp.mixed_selectivity_score(ds) == pytest.approx((K - 1) * (n - 1) / (K * n - 1))
    assert rp.mixed_selectivity_score(ds, average="units") == pytest.approx((K - 1) * (n - 1) / (K * n - 1))
    net = k_minus_one_net(K, n)
    ds = _record(net)
    # pooled: sum I SS_int / sum I SS_tot = 12/67 for K=3, n=4 (derivation in relu_probe.testing)
    assert rp.mixed_selectivity_score(ds) == pytest.approx(12 / 67)
    # units: skip units have (n-1)/(Kn-K+1) = 3/10, shared units 0; weights (K-1)/K : 1 per object
    expected = (K * (K - 1) / K * 0.3) / (K * (K - 1) / K + 1)
    assert rp.mixed_selectivity_score(ds, average="units") == pytest.approx(expected)
    assert rp.mixed_selectivity_score(_record(shared_net(K, n))) == 0.0


def _additive_and_conjunctive_net(K: int, n: int) -> torch.nn.Sequential:
    """Inputs [object one-hot (n), context one-hot (K)]; unit 0 adds an object term in every
    context (no interaction), unit 1 is on in context 0 only, with an object term (an
    interaction); a readout of weights (1, 3)."""
    lin = torch.nn.Linear(n + K, 2, bias=False)
    w = torch.zeros(2, n + K)
    w[0, :n] = torch.arange(1.0, n + 1)
    w[1, :n] = torch.arange(1.0, n + 1)
    w[1, n] = 1.0
    w[1, n + 1:] = -(n + 2.0)
    lin.weight.data = w
    out = torch.nn.Linear(2, 1, bias=False)
    out.weight.data = torch.tensor([[1.0, 3.0]])
    return torch.nn.Sequential(lin, torch.nn.ReLU(), out)


@pytest.mark.parametrize("given", [None, "activity", "readout"])
def test_mixed_selectivity_weighs_cells_not_samples(given):
    """Repeating every sample of context 0 three more times changes no cell mean, so the score
    must equal the balanced design's — also with an activity or readout importance computed on
    the unbalanced samples (as a training monitor stores it). The conjunctive unit is on in
    context 0 only, so weighing samples would raise its share of the importance."""
    K, n = 3, 4
    model = _additive_and_conjunctive_net(K, n)
    obj, ctx = np.meshgrid(np.arange(n), np.arange(K), indexing="xy")
    obj, ctx = obj.reshape(-1), ctx.reshape(-1)
    X = torch.cat([torch.eye(n)[obj], torch.eye(K)[ctx]], dim=1)
    ds = rp.record(model, X, coords={"object": obj, "context": ctx}, values=True, progress=False)
    extra = np.flatnonzero(ctx == 0)
    unbalanced = ds.isel(sample=np.concatenate([np.arange(len(obj)), extra, extra, extra]))

    def importance(rec):
        return None if given is None else rp.unit_importance(model if given == "readout" else None, rec, method=given)

    expected = rp.mixed_selectivity_score(ds, ("context", "object"), importance(ds))
    assert 0.0 < expected < 1.0
    assert rp.mixed_selectivity_score(unbalanced, ("context", "object"), importance(unbalanced)) == pytest.approx(
        expected, abs=1e-12)


def test_scores_of_an_incomplete_design_keep_the_structure_scores():
    """A (context, object) cell with no sample (e.g. objects nested in contexts) makes only the
    crossed-design ANOVA undefined: rp.scores warns and gives it NaN, the others stand."""
    net = shared_net(3, 4)
    ds = _record(net).isel(sample=slice(1, None))
    pw = rp.find_pathways(ds, "context", "object")
    with pytest.warns(DegenerateDataWarning, match="mixed_selectivity_score is NaN.*crossed design"):
        row = rp.scores(pw, ds)  # one site: a Series
    assert np.isnan(row["mixed_selectivity_score"]) and np.isnan(row["parallelism_score"])
    assert row["shared_score"] == pytest.approx(1.0)  # shared_net: every unit on in every context
    assert np.isfinite(row["node_reuse_score"]) and np.isfinite(row["dci_informativeness"])


def test_find_pathways_says_when_within_cannot_be_used():
    """Every object under one context only (nested): `within` cannot define context sets of
    items; find_pathways says so and uses the gating profiles (it used to drop it silently)."""
    net = shared_net(3, 4)
    ds = _record(net)
    nested = ds.isel(sample=np.flatnonzero(ds["object"].values % 3 == ds["context"].values))
    with pytest.warns(DegenerateDataWarning, match="`within`='object' is not used"):
        pw = rp.find_pathways(nested, "context", "object")
    assert pw.method == "profiles"


def test_mixed_selectivity_degenerate_and_errors():
    net = shared_net(3, 4)
    ds = _record(net)
    flat = ds.copy(deep=True)
    flat["activation"][:] = 1.0
    with pytest.warns(DegenerateDataWarning, match="varies"):
        assert rp.mixed_selectivity_score(flat) == 0.0
    with pytest.raises(CoordError, match="every \\(context, object\\) combination"):
        rp.mixed_selectivity_score(ds.isel(sample=slice(1, None)))
    with pytest.raises(InputError, match="within"):
        rp.mixed_selectivity_score(ds, by="context")
    with pytest.raises(CoordError, match="available sample coords"):
        rp.mixed_selectivity_score(ds, by=("context", "task"))
    with pytest.raises(ValueInputError, match="average"):
        rp.mixed_selectivity_score(ds, average="median")
    with pytest.raises(CoordError, match="one value per unit"):
        rp.mixed_selectivity_score(ds, importance=np.ones(3))


# ----------------------------------------------------------------------------- CCGP / PS / DCI


def _factorised(K=3, n=4, seed=0, units=(10, 20)):
    """A factorised (abstract) code: context on one block of units, object on another."""
    rng = np.random.default_rng(seed)
    f, g = rng.normal(size=(K, units[0])), rng.normal(size=(n, units[1]))
    context, obj = np.repeat(np.arange(K), n), np.tile(np.arange(n), K)
    return _dataset(np.hstack([f[context], g[obj]]), context, obj)


def _dataset(activation, context, obj):
    P, U = activation.shape
    return xr.Dataset(
        {
            "gate": (("sample", "unit"), activation > 0),
            "activation": (("sample", "unit"), activation.astype(np.float32)),
        },
        coords={
            "sample": np.arange(P),
            "unit": np.arange(U),
            "site": ("unit", np.array(["s"] * U, dtype=object)),
            "neuron": ("unit", np.arange(U)),
            "context": ("sample", context),
            "object": ("sample", obj),
        },
        attrs={"sites": ["s"], "site_readouts": [""], "units": "element", "threshold": 0.0},
    )


def test_ccgp_of_factorised_code_is_one_and_of_conjunctive_code_chance():
    assert rp.ccgp_score(_factorised(), "context", "object") == 1.0
    # modular net: every condition has its own unit, unseen in training -> exactly chance
    assert rp.ccgp_score(_record(modular_net(3, 4)), "context", "object") == 0.5
    # a code without context information generalises no better than chance
    assert rp.ccgp_score(_record(shared_net(3, 4)), "context", "object") <= 0.5


def test_ccgp_max_splits_and_errors():
    ds = _factorised(K=2, n=4)
    assert rp.ccgp_score(ds, "context", "object", max_splits=3, random_state=1) == 1.0
    with pytest.raises(CoordError, match="at least two"):
        rp.ccgp_score(ds.isel(sample=[0, 4]), "context", "object")
    with pytest.raises(ValueInputError, match="max_splits"):
        rp.ccgp_score(ds, "context", "object", max_splits=0)


@pytest.mark.parametrize("pairing", ["best", "within"])
def test_parallelism_exact(pairing):
    assert rp.parallelism_score(_factorised(), "context", "object", pairing=pairing) == pytest.approx(1.0)
    # conjunctive code: coding directions use disjoint units -> all cosines 0
    ds = _record(modular_net(3, 4))
    assert rp.parallelism_score(ds, "context", "object", pairing=pairing) == pytest.approx(0.0, abs=1e-12)


def test_parallelism_best_pairing_is_the_maximum():
    ds = _factorised(K=2, n=3, seed=4)
    # shuffle the object labels of context 1: only the matching pairing is parallel
    obj = ds["object"].values.copy()
    obj[3:] = [2, 0, 1]
    shuffled = ds.assign_coords(object=("sample", obj))
    assert rp.parallelism_score(shuffled, "context", "object", pairing="best") == pytest.approx(1.0)
    assert rp.parallelism_score(shuffled, "context", "object", pairing="within") < 0.99
    with pytest.raises(CoordError, match="pairing='within'"):
        rp.parallelism_score(_factorised(K=2, n=9), "context", "object", pairing="best")


def test_dci_of_one_hot_factor_code():
    K, n = 3, 4
    context, obj = np.repeat(np.arange(K), n), np.tile(np.arange(n), K)
    codes = np.hstack([np.eye(K)[context], np.eye(n)[obj]])
    dci = rp.dci_score(_dataset(codes, context, obj))
    assert dci["disentanglement"] == pytest.approx(1.0, abs=1e-12)  # each unit codes one factor
    assert dci["informativeness"] == 1.0
    # completeness: each factor is spread evenly over its own units (K resp. n of the J = K+n)
    J = K + n
    assert dci["completeness"] == pytest.approx(1 - (math.log(K) / math.log(J) + math.log(n) / math.log(J)) / 2, abs=1e-6)
    # conjunctive units code both factors: no disentanglement
    assert rp.dci_score(_record(modular_net(K, n)))["disentanglement"] < 0.01


def test_dci_errors():
    ds = _factorised()
    with pytest.raises(ValueInputError, match="at least two"):
        rp.dci_score(ds, factors=("context",))
    with pytest.raises(ValueInputError, match="single value"):
        rp.dci_score(ds.assign_coords(const=("sample", np.zeros(12))), factors=("context", "const"))
    with pytest.raises(CoordError, match="available sample coords"):
        rp.dci_score(ds, factors=("context", "colour"))


# ----------------------------------------------------------------------------- rp.scores


def test_scores_collects_everything():
    net = k_minus_one_net(3, 4)
    pw, ds = _pathways(net)
    series = rp.scores(pw, ds)
    assert isinstance(series, pd.Series)
    assert list(series.index) == [
        *PATHWAY_SCORES,
        "mixed_selectivity_score",
        "ccgp_score",
        "parallelism_score",
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness",
    ]
    for score in PATHWAY_SCORES + ("mixed_selectivity_score",):
        assert series[score] == pytest.approx(net.expected[score]), score
    assert series["k_minus_one_score"] == pytest.approx(1.0)
    assert series["ccgp_score"] == rp.ccgp_score(ds, "context", "object")
    # from a recording directly, without the literature scores
    direct = rp.scores(ds, by="context", within="object", literature=False)
    assert list(direct.index) == [*PATHWAY_SCORES, "mixed_selectivity_score"]
    np.testing.assert_allclose(direct.values, series[direct.index].values)
    assert list(rp.scores(pw).index) == list(PATHWAY_SCORES)
    with pytest.raises(InputError, match="`by` is required"):
        rp.scores(ds)


def test_scores_warns_once_for_a_fully_shared_net():
    pw, ds = _pathways(shared_net(3, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = rp.scores(pw, ds, literature=False)
    assert series["shared_score"] == 1.0 and math.isnan(series["modularity_score"])
    assert math.isnan(series["k_minus_one_score"])
    assert sum(issubclass(w.category, DegenerateDataWarning) for w in caught) == 1


def test_importing_the_scoring_module_keeps_rp_scores_the_function():
    import relu_probe.scoring as scoring

    pw, _ = _pathways(k_minus_one_net(3, 4))
    assert rp.scores is scoring.scores
    pd.testing.assert_series_equal(scoring.scores(pw), rp.scores(pw))
    assert scoring.shared_score(pw) == pytest.approx(1 / 3)


def test_callers_can_silence_degenerate_warnings():
    pw, ds = _pathways(shared_net(3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DegenerateDataWarning)
        rp.scores(pw, ds, literature=False)  # would raise if a warning escaped the filter


def test_parallelism_and_ccgp_average_all_dichotomies():
    # four contexts: six dichotomies, all parallel / generalising in a factorised code
    ds = _factorised(K=4, n=3)
    assert rp.parallelism_score(ds, "context", "object") == pytest.approx(1.0)
    assert rp.ccgp_score(ds, "context", "object") == 1.0


def test_modularity_says_nothing_with_two_contexts():
    """K = 2: a context-specific pathway serves one context, so modularity would be 1 for any
    structure (a fully modular and a half-shared network alike): NaN with a warning."""
    for masses, sets in (([1.0], [(0,)]), ([0.5, 0.25, 0.25], [(0, 1), (0,), (1,)])):
        with pytest.warns(DegenerateDataWarning, match="K = 2"):
            assert math.isnan(rp.modularity_score(_FakeReLN(masses, sets, (0, 1))))
