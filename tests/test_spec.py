"""One PathwaySpec: the GDLN, its race and its ReLN read the pathway parameters the same way."""

from __future__ import annotations

import numpy as np
import pytest

import relu_probe as rp
from relu_probe.errors import ValueInputError
from relu_probe.reln.spec import resolve_spec

GATES = [(0, 1, 2), (0, 1), (1, 2), (0, 2)]  # shared first, then the (k-1)-sets

#: The paper's 3-context task's best linear map has σ1 = √(28/3) (its strongest mode, the
#: 3.055 of the race docstring; checked below), so the default small init is
#: π0 = 1e-6 · √(28/3) and one hidden layer shared by 140 units gets σ = √(2 π0 / 140).
SIGMA1_K3 = (28 / 3) ** 0.5
DEFAULT_STD_140 = (2e-6 * SIGMA1_K3 / 140) ** 0.5


@pytest.fixture(scope="module")
def task():
    X, Y, coords = rp.tasks.contextual_task(3)
    return X.numpy(), Y.numpy(), coords["context"]


def _pi0(h, s_in, s_out):
    """A mean-field pathway of h units and weight stds (s_in, s_out) starts at π0 = (s_in² + s_out²) h / 4."""
    return (s_in**2 + s_out**2) * h / 4.0


@pytest.mark.parametrize("hidden, init_scale, expected", [
    # (hidden per pathway, init stds per pathway as (input layer, output layer))
    (100, 1e-3, [(100, 1e-3, 1e-3)] * 4),
    ([10, 20, 30, 40], [1e-3, 2e-3, 3e-3, 4e-3],
     [(10, 1e-3, 1e-3), (20, 2e-3, 2e-3), (30, 3e-3, 3e-3), (40, 4e-3, 4e-3)]),
    (50, [(1e-3, 4e-3), 2e-3, (3e-3, 1e-3), 2e-3],
     [(50, 1e-3, 4e-3), (50, 2e-3, 2e-3), (50, 3e-3, 1e-3), (50, 2e-3, 2e-3)]),
    ({"shared": 80, "context": 20}, {"shared": (1e-3, 3e-3), "context": 2e-3},
     [(80, 1e-3, 3e-3)] + [(20, 2e-3, 2e-3)] * 3),
    # a role missing from the mapping takes the default small init √(2 π0 / Σ_p h_p), Σ_p h_p = 140
    ({"shared": 80, "context": 20}, {"shared": 1e-3},
     [(80, 1e-3, 1e-3)] + [(20, DEFAULT_STD_140, DEFAULT_STD_140)] * 3),
])
def test_gdln_and_race_read_hidden_and_init_scale_alike(task, hidden, init_scale, expected):
    X, Y, ctx = task
    g = rp.GDLN(GATES, hidden=hidden, init_scale=init_scale, rule="residual", inputs="auto", epochs=2,
                lr=1e-6).fit(X, Y, context=ctx)
    got = np.array([(w[0], *s) for w, s in zip(g.spec_.widths, g.spec_.init_scales)])
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-12)
    # the weights the GDLN drew have those widths
    assert [w[0].shape[0] for w in g.weights_] == [h for h, _, _ in expected]
    race = rp.race_dynamics(X, Y, GATES, context=ctx, rule="residual", inputs="auto", hidden=hidden,
                            init_scale=init_scale, epochs=3)
    np.testing.assert_allclose(race["pi0"].values, [_pi0(*e) for e in expected], rtol=1e-12)


def test_race_accepts_the_documented_hidden_mapping(task):
    X, Y, ctx = task
    kw = dict(context=ctx, rule="residual", inputs="auto", epochs=50, init_scale=1e-3)
    by_role = rp.race_dynamics(X, Y, GATES, hidden={"shared": 100, "context": 50}, **kw)
    listed = rp.race_dynamics(X, Y, GATES, hidden=[100, 50, 50, 50], **kw)
    np.testing.assert_array_equal(by_role["loss"].values, listed["loss"].values)
    np.testing.assert_array_equal(by_role["pi0"].values, listed["pi0"].values)


def test_a_fitted_reln_and_its_race_share_one_spec(task):
    X, Y, ctx = task
    reln = rp.ReLN(GATES, hidden={"shared": 30, "context": 10}, epochs=5, context=ctx,
                   init_scale=rp.tasks.PAPER_INIT_SCALE).fit(X, Y)
    spec = resolve_spec(GATES, X, context=ctx, shared=None, inputs="auto", hidden={"shared": 30, "context": 10},
                        init_scale=rp.tasks.PAPER_INIT_SCALE)
    assert reln.spec_.widths == spec.widths and reln.spec_.init_scales == spec.init_scales
    np.testing.assert_array_equal(reln.spec_.inputs, spec.inputs)
    np.testing.assert_array_equal(reln.spec_.shared, spec.shared)
    # the context pathways leave out the cue inputs (the last three features)
    assert reln.spec_.inputs[0].all() and not reln.spec_.inputs[1:, -3:].any()


def test_zero_init_scale_simulates_but_has_no_race(task):
    X, Y, ctx = task
    g = rp.GDLN(GATES, init_scale=0.0, epochs=3).fit(X, Y, context=ctx)
    assert np.all(g.loss_curve_ == g.loss_curve_[0])  # zero weights never move
    with pytest.raises(ValueInputError, match=r"`init_scale` must be > 0.0, got 0.0"):
        rp.race_dynamics(X, Y, GATES, context=ctx, init_scale=0.0, epochs=3)


def test_the_race_refuses_a_spec_it_cannot_predict(task):
    X, Y, ctx = task
    from relu_probe.reln.race import race_from_spec

    deep = resolve_spec(GATES, X, context=ctx, depth=2)
    with pytest.raises(ValueInputError, match="one hidden layer"):
        race_from_spec(X, Y, deep, context=ctx, epochs=3)


def test_the_paper_tasks_best_linear_map_strength(task):
    """The premise of DEFAULT_STD_140: σ1 of the least-squares map of the 3-context task."""
    X, Y, _ = task
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    assert np.linalg.norm(coef, 2) == pytest.approx(SIGMA1_K3, rel=1e-9)


@pytest.mark.parametrize("depth, trunk", [(1, None), (2, None), (3, None), (1, [30]), (2, [30, 20])])
def test_default_init_is_small_relative_to_the_data_not_the_papers(depth, trunk):
    """Without `init_scale`, every weight matrix gets σ = (2 π0)^{1/L} / √(Σ_p h_p) with
    π0 = 1e-6 σ1(M_lin) and L the weight matrices of a path: the L factors σ√H multiply to 2 π0.
    On data whose best linear map has σ1 = 50 (not the paper's), scaling the targets by 50
    scales π0 by 50."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    M = np.zeros((6, 3))
    M[0, 0], M[1, 1], M[2, 2] = 50.0, 20.0, 5.0  # σ1(M_lin) = 50 exactly (Y = X M, X full rank)
    Y = X @ M
    gates = np.ones((2, 40))
    gates[1, ::2] = 0
    spec = resolve_spec(gates, X, hidden=[[10] * depth, [25] * depth], depth=depth, trunk=trunk, Y=Y)
    n_weights = len(trunk or []) + depth + 1
    expected = (2 * 50e-6) ** (1 / n_weights) / np.sqrt(35)
    assert np.allclose(np.concatenate(spec.init_scales), expected, rtol=1e-9)
    if trunk:
        assert np.allclose(spec.trunk_scales, expected, rtol=1e-9)
    assert not np.isclose(expected, rp.tasks.PAPER_INIT_GAIN / 35)
    # the product of the L factors σ√H is 2 π0: the documented initial mode strength
    assert (expected * np.sqrt(35)) ** n_weights == pytest.approx(2 * 50e-6, rel=1e-9)


def test_the_gdln_default_init_follows_the_targets_scale():
    """A GDLN fitted without `init_scale` draws weights whose std follows the data: targets
    ×100 → π0 ×100 → σ ×10 for one hidden layer."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    Y = X @ rng.normal(size=(5, 2))
    stds = []
    for scale in (1.0, 100.0):
        g = rp.GDLN(np.ones((1, 60)), hidden=400, epochs=1, lr=1e-6).fit(X, scale * Y)
        stds.append(np.std(g.weights_[0][0]))
        assert g.spec_.init_scales[0][0] == pytest.approx(
            np.sqrt(2e-6 * np.linalg.norm(np.linalg.lstsq(X, scale * Y, rcond=None)[0], 2) / 400), rel=1e-9)
    assert stds[1] / stds[0] == pytest.approx(10.0, rel=0.1)
