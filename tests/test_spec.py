"""One PathwaySpec: the GDLN, its race and its ReLN read the pathway parameters the same way."""

from __future__ import annotations

import numpy as np
import pytest

import relu_probe as rp
from relu_probe.errors import ValueInputError
from relu_probe.reln.spec import resolve_spec

GATES = [(0, 1, 2), (0, 1), (1, 2), (0, 2)]  # shared first, then the (k-1)-sets


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
    # a role missing from the mapping takes the default 0.005 / Σ_p h_p = 0.005 / 140
    ({"shared": 80, "context": 20}, {"shared": 1e-3},
     [(80, 1e-3, 1e-3)] + [(20, 0.005 / 140, 0.005 / 140)] * 3),
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
