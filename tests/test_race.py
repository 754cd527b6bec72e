"""rp.race_dynamics: gated correlations, Eq. 1 / Eq. 2, the exact Gram reduction, agreement
with the simulated GDLN, dataset layout, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import relu_probe as rp
from relu_probe.errors import ValueInputError
from relu_probe.reln.correlations import gated_correlations
from relu_probe.reln.exact import exact_dynamics
from relu_probe.reln.race import closed_form

MIXED3 = [(0, 1, 2), (0, 1), (1, 2), (0, 2)]
MODULAR3 = [(0, 1, 2), (0,), (1,), (2,)]
PAPER_PI0_3 = {"shared": 5e-9, "context": 5e-5}



@pytest.fixture(scope="module")
def task3():
    X, Y, coords = rp.tasks.contextual_task(3)
    return X.numpy(), Y.numpy(), coords["context"]


def test_gated_correlations_by_hand(task3):
    X, Y, ctx = task3
    G = np.stack([np.ones(24), (ctx < 2).astype(float)])
    masks = np.ones((2, 11))
    masks[1, 8:] = 0
    syx, sx = gated_correlations(X, Y, G, masks)
    np.testing.assert_allclose(syx[0], Y.T @ X / 24, atol=1e-15)
    Xm = X * masks[1]
    np.testing.assert_allclose(syx[1], (Y[ctx < 2].T @ Xm[ctx < 2]) / 24, atol=1e-15)
    np.testing.assert_allclose(sx[0, 1], (X[ctx < 2].T @ Xm[ctx < 2]) / 24, atol=1e-15)
    np.testing.assert_allclose(sx[1, 0], sx[0, 1].T, atol=1e-15)


def test_paper_spectrum_and_alignment(task3):
    """Jarvis et al., arXiv 2503.06181: s(YXᵀ/24), d, and VᵀΣ^xV diagonal."""
    X, Y, _ = task3
    ds = rp.race_dynamics(X, Y, np.ones((1, 24)), init=5e-9, lr=rp.tasks.PAPER_LR, epochs=10)
    expected = [1.0704, 0.4564, 0.4564, 0.3819, 0.25, 0.25, 0.1443, 0.1443, 0.1443, 0.1443, 0.0]
    np.testing.assert_allclose(ds["s"].values[0], expected, atol=1e-4)
    np.testing.assert_allclose(
        ds["d"].values[0], [0.4583, 1 / 3, 1 / 3] + [0.125] * 7 + [0.0], atol=1e-4
    )
    V = ds["V"].values[0]
    D = V.T @ ds["sigma_x"].values[0, 0] @ V
    assert np.abs(D - np.diag(np.diag(D))).max() < 1e-12
    assert ds.attrs["L0"] == 96.0
    assert ds.attrs["tau"] == pytest.approx(1 / 0.024)


def test_closed_form_solves_eq1():
    s, d, pi0, tau = np.array([0.4, 0.1]), np.array([0.2, 0.05]), 1e-4, 40.0
    t = np.arange(0, 3000, 7)
    pi = closed_form(s, d, pi0, tau, t, time="continuous")
    sol = solve_ivp(lambda _t, p: 2 * p * (s - d * p) / tau, (0, t[-1]), [pi0, pi0], t_eval=t,
                    rtol=1e-11, atol=1e-16)
    np.testing.assert_allclose(pi, sol.y, rtol=1e-7, atol=1e-12)
    # discrete: π ← π (1 + (s − dπ)/τ)² per epoch, as balanced gradient descent does
    pid = closed_form(s, d, pi0, tau, np.arange(3000), time="discrete")
    p = np.full(2, pi0)
    traj = []
    for _ in range(3000):
        traj.append(p.copy())
        p = p * (1 + (s - d * p) / tau) ** 2
    traj = np.array(traj).T
    assert np.abs(pid - traj).max() < 0.01 * (s / d).max()
    # s = 0: slow decay from π0; asymptote s/d otherwise
    z = closed_form(np.array([0.0]), np.array([0.5]), 1e-3, 10.0, np.array([0, 100]))
    np.testing.assert_allclose(z[0], [1e-3, 1e-3 / (1 + 2 * 0.5 * 1e-3 * 100 / 10.0)])
    late = closed_form(s, d, pi0, tau, np.array([20000.0]), time="continuous")
    np.testing.assert_allclose(late[:, -1], s / d, rtol=1e-9)


def test_loss_formula_equals_direct_prediction(task3):
    """The loss from mode strengths equals ½‖Y − Σ_p g_p U_p diag(π_p) V_pᵀ x̃‖² exactly."""
    X, Y, ctx = task3
    ds = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="residual", inputs="auto",
                          init=PAPER_PI0_3, d_scale="k-1", epochs=4001, method="closed", lr=rp.tasks.PAPER_LR)
    G, masks = ds["gates"].values, ds["inputs"].values
    for e in (0, 400, 1500, 4000):
        pi = ds["singular_values"].isel(epoch=e).values
        maps = np.einsum("poa,pa,pfa->pof", ds["U"].values, pi, ds["V"].values)
        Yhat = np.einsum("ps,pof,pf,sf->so", G, maps, masks, X)
        direct = 0.5 * ((Y - Yhat) ** 2).sum()
        # modes with s = 0 are held out of the quadratic term (an O(π0) omission)
        assert float(ds["loss"].isel(epoch=e)) == pytest.approx(direct, abs=1e-6)


def test_paper_closed_form_numbers(task3):
    """Jarvis et al., arXiv 2503.06181: singular values, s/d and half-rise times of the closed form."""
    X, Y, ctx = task3
    ds = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="residual", inputs="auto",
                          init=PAPER_PI0_3, d_scale="k-1", time="continuous", method="closed",
                          lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    final = ds["singular_values"].isel(epoch=-1)
    assert float(final.sel(pathway=0).max()) == pytest.approx(3.0551, abs=1e-3)
    np.testing.assert_allclose(final.sel(mode=0).values[1:], 2.16, atol=0.01)
    np.testing.assert_allclose(ds["s"].sel(pathway=1).values[:4], [0.0902, 0.0589, 0.0589, 0.0340], atol=2e-4)
    np.testing.assert_allclose(ds["d"].sel(pathway=1).values[:7], 1 / 24, rtol=1e-9)
    half = ds["half_rise"]
    np.testing.assert_allclose(half.sel(pathway=0).values[[0, 1, 3, 4, 6]], [389, 887, 1104, 1651, 2780], atol=3)
    np.testing.assert_allclose(half.sel(pathway=1).values[[0, 1, 3]], [2471, 3625, 5944], atol=6)
    # the formula itself
    s, d, tau = ds["s"].values[1, 0], ds["d"].values[1, 0], ds.attrs["tau"]
    assert float(half.sel(pathway=1, mode=0)) == pytest.approx(tau * np.log(s / (d * 5e-5) - 1) / (2 * s))
    assert np.isinf(float(half.sel(pathway=0, mode=10)))
    assert float(ds["loss"][0]) == pytest.approx(96.0, abs=0.01)
    assert float(ds["loss"][-1]) < 0.01


def test_final_residual_closed_form_cannot_tell_mixed_from_modular(task3):
    """On the final residual, shared + 2-of-3 and shared + single-context pathways have the
    same s and d/(number of covering pathways): identical curves (Jarvis et al., arXiv 2503.06181)."""
    X, Y, ctx = task3
    kw = dict(context=ctx, rule="residual", inputs="auto", init=PAPER_PI0_3, d_scale="overlap", method="closed",
              lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    a = rp.race_dynamics(X, Y, MIXED3, **kw)
    b = rp.race_dynamics(X, Y, MODULAR3, **kw)
    np.testing.assert_allclose(a["s"].values, b["s"].values, atol=1e-12)
    # identical up to the O(π0) start (π0 = 5e-5 here) on a loss of scale 96
    np.testing.assert_allclose(a["loss"].values, b["loss"].values, rtol=0, atol=1e-4)
    assert np.abs(a["loss"].values - b["loss"].values)[4000:].max() < 1e-8
    # "overlap" equals "k-1" for the paper's (k-1)-sets
    c = rp.race_dynamics(X, Y, MIXED3, **{**kw, "d_scale": "k-1"})
    np.testing.assert_array_equal(a["d"].values, c["d"].values)
    e = rp.race_dynamics(X, Y, MIXED3, **{**kw, "d_scale": 2.0})
    np.testing.assert_array_equal(a["d"].values, e["d"].values)


@pytest.mark.parametrize("rule", ["joint", "residual"])
def test_gram_reduction_is_exact(task3, rule):
    """The Gram recursion of the exact dynamics, stepped epoch by epoch from a GDLN's own
    weights, reproduces gradient descent on the weights to rounding error."""
    X, Y, ctx = task3
    kw = dict(hidden=[9, 5, 6, 7], inputs="auto", rule=rule, init_scale=0.05, seed=2)
    init = rp.GDLN(MIXED3, epochs=1, lr=1e-300, **kw).fit(X, Y, context=ctx)
    W = [(w[0], w[1]) for w in init.weights_]
    g = rp.GDLN(MIXED3, epochs=150, lr=2e-3, sv_stride=149, **kw).fit(X, Y, context=ctx)
    ds = exact_dynamics(X, Y, MIXED3, context=ctx, inputs="auto", rule=rule, weights=W, lr=2e-3, epochs=150,
                        step="exact", sv_stride=149)
    np.testing.assert_allclose(ds["loss"].values, g.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(ds["maps"].values, g.maps_.values, atol=1e-13)
    q = ds.sizes["mode"]
    np.testing.assert_allclose(ds["singular_values"].isel(sv_epoch=-1).values,
                               g.singular_values_.isel(epoch=-1).values[:, :q], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_simulation_on_aligned_shared_pathway(task3, seed):
    """Hierarchy task, shared pathway (aligned data): the race is within 2 % of L0 of the
    simulated GDLN at every epoch."""
    X, Y, _ = task3
    sigma = 0.005 / 700
    gates = np.ones((1, 24))
    paper = dict(lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    g = rp.GDLN(gates, hidden=100, init_scale=sigma, seed=seed, sv_stride=100, **paper).fit(X, Y)
    for method in ("auto", "closed", "race", "live"):
        ds = rp.race_dynamics(X, Y, gates, hidden=100, init_scale=sigma, method=method, **paper)
        r = rp.compare_dynamics(g.loss_curve_, ds["loss"])
        assert r["max_abs_diff_pct"] <= 2.0, (method, r["max_abs_diff_pct"])
        sv = ds["singular_values"].isel(epoch=-1).values[0]
        np.testing.assert_allclose(np.sort(sv)[::-1][:10], g.singular_values_.isel(epoch=-1).values[0, :10],
                                   rtol=1e-3)


def test_live_and_closed_agree_for_the_same_pi0(task3):
    """Aligned data, one pathway: the mean-field reduction started from ``init=π0`` follows
    Eq. 1 from the same π0."""
    X, Y, _ = task3
    live = rp.race_dynamics(X, Y, np.ones((1, 24)), init=1e-8, method="live", epochs=4001, lr=rp.tasks.PAPER_LR)
    closed = rp.race_dynamics(X, Y, np.ones((1, 24)), init=1e-8, method="closed", epochs=4001, lr=rp.tasks.PAPER_LR)
    assert rp.compare_dynamics(closed["loss"], live["loss"])["max_abs_diff_pct"] < 0.5


def test_joint_race_couples_pathways(task3):
    """Two identical pathways racing jointly share the target: each ends at half of s/d."""
    X, Y, _ = task3
    gates = np.ones((2, 24))
    ds = rp.race_dynamics(X, Y, gates, init=1e-6, method="race", rule="joint",
                          lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    top = ds["singular_values"].isel(epoch=-1, mode=3).values  # s/d = 3.055 mode
    np.testing.assert_allclose(top, [3.0551 / 2, 3.0551 / 2], rtol=1e-3)
    assert float(ds["loss"][-1]) == pytest.approx(17.0, abs=0.01)
    closed = rp.race_dynamics(X, Y, gates, init=1e-6, method="closed", rule="joint",
                              lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    # uncoupled modes overshoot: each pathway alone goes to s/d
    np.testing.assert_allclose(closed["singular_values"].isel(epoch=-1, mode=3).values, 3.0551, rtol=1e-3)


def test_off_mode_diagnostic(task3):
    """The mode race warns when Assumption 2.1 fails along its trajectory (the joint rule's
    context pathways cannot follow the residual in their fixed bases) and is silent on the
    aligned paper setting."""
    import warnings

    from relu_probe.errors import ReluProbeWarning

    X, Y, ctx = task3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="residual", inputs="auto",
                              init=PAPER_PI0_3, d_scale="k-1", method="closed",
                              lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
        ok2 = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="residual", inputs="auto",
                               init=PAPER_PI0_3, method="race", lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    assert ok.attrs["off_mode_gradient"] < 1e-6 and ok2.attrs["off_mode_gradient"] < 1e-6
    with pytest.warns(ReluProbeWarning, match="Assumption 2.1"):
        bad = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="joint", inputs="auto", init=1e-8,
                               method="race", lr=rp.tasks.PAPER_LR, epochs=rp.tasks.PAPER_EPOCHS)
    assert bad.attrs["off_mode_gradient"] > 0.05
    live = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="joint", inputs="auto", init=1e-8,
                            method="live", epochs=8001, lr=rp.tasks.PAPER_LR)
    assert float(live["loss"][-1]) < 0.1 < float(bad["loss"][-1])


def test_live_residual_tracks_gdln(task3):
    X, Y, ctx = task3
    sc = {"shared": 0.005 / 700, "context": 0.01 / 700}
    kw = dict(inputs="auto", rule="residual", hidden=100, init_scale=sc)
    ds = rp.race_dynamics(X, Y, MIXED3, context=ctx, method="live", epochs=2500, **kw)
    g = rp.GDLN(MIXED3, epochs=2500, seed=0, sv_stride=500, **kw).fit(X, Y, context=ctx)
    r = rp.compare_dynamics(g.loss_curve_, ds["loss"])
    assert r["mean_abs_diff"] < 0.2
    assert r["max_abs_diff_pct"] < 4.0


def test_dataset_layout(task3):
    X, Y, ctx = task3
    ds = rp.race_dynamics(X, Y, MIXED3, context=ctx, rule="residual", inputs="auto", epochs=50,
                          init=PAPER_PI0_3, method="closed", lr=rp.tasks.PAPER_LR)
    assert ds["loss"].dims == ("epoch",) and ds.sizes["epoch"] == 50
    assert ds["singular_values"].dims == ("pathway", "mode", "epoch")
    assert ds["sigma_x"].dims == ("pathway", "pathway_", "feature", "feature_")
    assert list(ds["name"].values) == ["{0,1,2}", "{0,1}", "{1,2}", "{0,2}"]
    assert ds["contexts"].values[1] == (0, 1)
    assert ds.attrs["method"] == "closed" and ds.attrs["rule"] == "residual"
    for name in ("loss", "singular_values", "s", "d", "pi0", "U", "V"):
        assert np.all(np.isfinite(ds[name].values)), name
    # the context pathways race on the final residual, not on Y
    assert not np.allclose(ds["sigma_yx"].values[1], ds["sigma_yx_Y"].values[1])
    np.testing.assert_allclose(ds["sigma_yx"].values[0], ds["sigma_yx_Y"].values[0])
    np.testing.assert_array_equal(ds["pi0"].values, [5e-9, 5e-5, 5e-5, 5e-5])


def test_default_init_matches_gdln_default(task3):
    X, Y, _ = task3
    ds = rp.race_dynamics(X, Y, np.ones((2, 24)), epochs=5, lr=rp.tasks.PAPER_LR)
    # the GDLN's default small init: two pathways of 100 units share H = 200, σ² = 2 π0 / H with
    # π0 = 1e-6 σ1(M_lin); each pathway's mean-field strength σ² h / 2 is then π0 h / H = π0 / 2
    pi0 = 1e-6 * np.linalg.norm(np.linalg.lstsq(X, Y, rcond=None)[0], 2)
    np.testing.assert_allclose(ds["pi0"].values, pi0 / 2, rtol=1e-9)
    g = rp.GDLN(np.ones((2, 24)), epochs=1, lr=1e-6).fit(X, Y)
    np.testing.assert_allclose(np.concatenate(g.spec_.init_scales), np.sqrt(2 * pi0 / 200), rtol=1e-9)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("method", ["auto", "closed", "race", "live"])
def test_unstable_lr_named(task3, method):
    X, Y, _ = task3
    with pytest.raises(ValueInputError, match="`lr`"):
        rp.race_dynamics(X, Y, np.ones((1, 24)), lr=0.2, epochs=300, init=1e-3, method=method)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rule": "joint", "d_scale": "k-1"}, "d_scale"),
        ({"rule": "residual", "method": "live", "d_scale": "k-1"}, "d_scale"),
        ({"rule": "residual", "method": "race", "d_scale": "k-1"}, "d_scale"),
        ({"rule": "residual", "d_scale": "half"}, "d_scale"),
        ({"method": "euler"}, "method"),
        ({"time": "later"}, "time"),
        ({"init": {"shared": 1e-3, "other": 1.0}}, "init"),
        ({"init": -1.0}, "init"),
    ],
)
def test_bad_parameters(task3, kwargs, match):
    X, Y, ctx = task3
    with pytest.raises(ValueInputError, match=match):
        rp.race_dynamics(X, Y, MIXED3, context=ctx, epochs=10, **{"init": 1e-6, **kwargs})


def test_bad_data(task3):
    X, Y, _ = task3
    with pytest.raises(ValueInputError, match="same number of samples"):
        rp.race_dynamics(X, Y[:10], np.ones((1, 24)))
    with pytest.raises(ValueInputError, match="only 0 and 1"):
        rp.race_dynamics(X, Y, np.full((1, 24), 2.0))
    with pytest.raises(ValueInputError, match="one column per sample"):
        rp.race_dynamics(X, Y, np.ones((1, 20)))
