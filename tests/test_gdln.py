"""rp.GDLN: exact gradients (vs autograd), training rules, masks, fitted attributes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

import relu_probe as rp
from relu_probe.errors import (
    DegenerateDataWarning,
    InputError,
    NotFittedError,
    ValueInputError,
)

SETS3 = [(0, 1, 2), (0,), (0, 1), (1, 2), (0, 2)]



@pytest.fixture(scope="module")
def task3():
    X, Y, coords = rp.tasks.contextual_task(3)
    return X, Y, coords["context"]


def _autograd_reference(g: rp.GDLN, X, Y, ctx, epochs: int, lr: float):
    """Train the same pathways with torch autograd, starting from g's initial weights."""
    init = rp.GDLN(**{**g.get_params(), "epochs": 1, "lr": 1e-300}).fit(X, Y, context=ctx)
    W = [[torch.tensor(w, requires_grad=True) for w in ws] for ws in init.weights_]
    T = [torch.tensor(w, requires_grad=True) for w in init.trunk_weights_]
    G = torch.tensor(init.gates_.values)
    M = torch.tensor(init.inputs_.values, dtype=torch.float64)
    shared = init.shared_
    losses = []
    for _ in range(epochs):
        outs = []
        base = X
        for w in T:
            base = base @ w.T
        for p, ws in enumerate(W):
            h = (base * M[p]) @ ws[0].T if not T else base @ ws[0].T
            for w in ws[1:]:
                h = h @ w.T
            outs.append(h * G[p][:, None])
        yhat = sum(outs)
        total = 0.5 * ((yhat - Y) ** 2).sum()
        losses.append(float(total.detach()))
        if g.rule == "joint" or not shared.any():
            objective = total
        else:
            ys = sum(o for o, s in zip(outs, shared) if s)
            yc = sum(o for o, s in zip(outs, shared) if not s)
            objective = 0.5 * ((ys - Y) ** 2).sum() + 0.5 * ((yc - (Y - ys.detach())) ** 2).sum()
        params = [w for ws in W for w in ws] + T
        for w in params:
            w.grad = None
        objective.backward()
        with torch.no_grad():
            for w in params:
                w -= lr * w.grad
    return (
        np.array(losses),
        [[w.detach().numpy() for w in ws] for ws in W],
        [w.detach().numpy() for w in T],
    )


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("rule", ["joint", "residual"])
def test_matches_autograd(task3, depth, rule):
    X, Y, ctx = task3
    g = rp.GDLN(
        SETS3,
        hidden=[5, 4, 3, 6, 2],
        depth=depth,
        inputs="auto",
        rule=rule,
        init_scale=0.2,
        lr=2e-3,
        epochs=25,
        seed=3,
    ).fit(X, Y, context=ctx)
    ref_loss, ref_w, _ = _autograd_reference(g, X, Y, ctx, 25, 2e-3)
    np.testing.assert_allclose(g.loss_curve_, ref_loss, rtol=1e-12)
    for ws, rs in zip(g.weights_, ref_w):
        for w, r in zip(ws, rs):
            np.testing.assert_allclose(w, r, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("rule", ["joint", "residual"])
def test_trunk_matches_autograd(task3, rule):
    """A shared ungated trunk (the paper's two-layer ReLN) learns from every pathway's error."""
    X, Y, ctx = task3
    g = rp.GDLN([(0, 1, 2), (0, 1), (1, 2)], hidden={"shared": 6, "context": 3}, trunk=[7, 5],
                trunk_init_scale=[0.3, 0.2], rule=rule, init_scale=0.2, lr=2e-3, epochs=25,
                seed=1).fit(X, Y, context=ctx)
    assert [w.shape for w in g.trunk_weights_] == [(7, 11), (5, 7)]
    assert [[w.shape for w in ws] for ws in g.weights_] == [[(6, 5), (60, 6)], [(3, 5), (60, 3)], [(3, 5), (60, 3)]]
    ref_loss, ref_w, ref_t = _autograd_reference(g, X, Y, ctx, 25, 2e-3)
    np.testing.assert_allclose(g.loss_curve_, ref_loss, rtol=1e-12)
    for w, r in zip(g.trunk_weights_, ref_t):
        np.testing.assert_allclose(w, r, rtol=1e-10, atol=1e-14)
    for ws, rs in zip(g.weights_, ref_w):
        for w, r in zip(ws, rs):
            np.testing.assert_allclose(w, r, rtol=1e-10, atol=1e-14)
    # maps include the trunk
    T = g.trunk_weights_[1] @ g.trunk_weights_[0]
    np.testing.assert_allclose(g.maps_.values[1], g.weights_[1][1] @ g.weights_[1][0] @ T, rtol=1e-10)
    with pytest.raises(ValueInputError, match="trunk"):
        rp.GDLN([(0, 1, 2)], trunk=[4], inputs=[[0, 1]], epochs=2).fit(X, Y, context=ctx)


def test_residual_rule_shared_pathway_learns_as_if_alone(task3):
    """Under the residual rule the shared pathway follows only its own error, so it evolves
    exactly as a GDLN made of the shared pathway alone (same initial weights)."""
    X, Y, ctx = task3
    full = rp.GDLN([(0, 1, 2), (0, 1), (1, 2)], hidden=[7, 3, 3], rule="residual", init_scale=0.1,
                   epochs=60, seed=5).fit(X, Y, context=ctx)
    alone = rp.GDLN([(0, 1, 2)], hidden=7, init_scale=0.1, epochs=60, seed=5).fit(X, Y, context=ctx)
    np.testing.assert_allclose(full.maps_.values[0], alone.maps_.values[0], rtol=1e-10, atol=1e-15)
    # under the joint rule the context pathways change the shared pathway's path
    joint = rp.GDLN([(0, 1, 2), (0, 1), (1, 2)], hidden=[7, 3, 3], rule="joint", init_scale=0.1,
                    epochs=60, seed=5).fit(X, Y, context=ctx)
    assert np.abs(joint.maps_.values[0] - alone.maps_.values[0]).max() > 1e-6


def test_fitted_attributes(task3):
    X, Y, ctx = task3
    g = rp.GDLN(SETS3, hidden=4, inputs="auto", lr=rp.tasks.PAPER_LR, epochs=53, sv_stride=10, init_scale=0.05).fit(
        X, Y, context=ctx
    )
    assert g.loss_curve_.shape == (53,)
    sv = g.singular_values_
    assert sv.dims == ("pathway", "mode", "epoch")
    assert list(sv["epoch"].values) == [0, 10, 20, 30, 40, 50, 52]
    assert sv.sizes["mode"] == 11 and sv.sizes["pathway"] == 5
    assert list(sv["name"].values) == ["{0,1,2}", "{0}", "{0,1}", "{1,2}", "{0,2}"]
    assert sv["contexts"].values[2] == (0, 1)
    assert list(sv["shared"].values) == [True, False, False, False, False]
    # maps are the products of the weights
    for p, ws in enumerate(g.weights_):
        np.testing.assert_allclose(ws[1] @ ws[0], g.maps_.values[p], rtol=1e-12)
    # singular values of the last recorded epoch are below the final maps' only by one step
    final = np.linalg.svd(g.maps_.values, compute_uv=False)
    np.testing.assert_allclose(sv.isel(epoch=-1).values, final, rtol=0.05, atol=1e-12)
    # input masks: cue inputs (context one-hot, features 8-10) only for the shared pathway
    masks = g.inputs_.values
    assert masks[0].all()
    assert not masks[1:, 8:].any() and masks[1:, :8].all()
    for p in range(1, 5):
        assert np.all(g.weights_[p][0][:, 8:] == 0.0)
    # predict = Σ_p g_p M_p (m_p ⊙ x)
    Xn = X.numpy()
    manual = sum(
        g.gates_.values[p][:, None] * ((Xn * masks[p]) @ g.maps_.values[p].T) for p in range(5)
    )
    np.testing.assert_allclose(g.predict(X), manual, rtol=1e-12)
    np.testing.assert_allclose(g.predict(X[:8], context=ctx[:8]), manual[:8], rtol=1e-12)
    np.testing.assert_allclose(g.predict(X[8:16], SETS3, context=ctx[8:16]), manual[8:16], rtol=1e-12)
    from sklearn.metrics import r2_score

    assert g.score(X, Y) == pytest.approx(r2_score(Y.numpy(), manual), rel=1e-12)


def test_gate_matrix_and_dataarray_inputs(task3):
    X, Y, ctx = task3
    G = np.stack([np.ones(24), (ctx != 2).astype(float)])
    a = rp.GDLN(G, hidden=3, epochs=20, init_scale=0.1).fit(X, Y)
    da = xr.DataArray(G, dims=("pathway", "sample"))
    b = rp.GDLN(da, hidden=3, epochs=20, init_scale=0.1).fit(X, Y)
    c = rp.GDLN([(0, 1, 2), (0, 1)], hidden=3, epochs=20, init_scale=0.1).fit(X, Y, context=ctx)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    np.testing.assert_array_equal(a.loss_curve_, c.loss_curve_)
    assert a.pathway_names_ == ["p0", "p1"]
    assert c.pathway_names_ == ["{0,1,2}", "{0,1}"]
    # explicit masks: index lists per pathway
    d = rp.GDLN(G, hidden=3, epochs=5, inputs=[None, [0, 1, 2]], init_scale=0.1).fit(X, Y)
    assert d.inputs_.values[1].tolist() == [True] * 3 + [False] * 8


def test_per_pathway_widths_depths_and_scales(task3):
    X, Y, ctx = task3
    g = rp.GDLN([(0, 1, 2), (0, 1)], hidden=[6, [4, 5]], depth=[1, 2],
                init_scale=[0.1, [0.2, 0.0, 0.3]], lr=rp.tasks.PAPER_LR, epochs=3).fit(X, Y, context=ctx)
    shapes = [[w.shape for w in ws] for ws in g.weights_]
    assert shapes == [[(6, 11), (60, 6)], [(4, 11), (5, 4), (60, 5)]]
    # a zero middle layer makes pathway 1's map exactly zero at initialisation
    assert float(g.singular_values_.isel(pathway=1, epoch=0).max()) == 0.0
    assert float(g.singular_values_.isel(pathway=0, epoch=0).max()) > 0.0


def test_pathway_strength(task3):
    X, Y, ctx = task3
    g = rp.GDLN([(0, 1, 2), (0, 1), (1, 2), (0, 2)], inputs="auto", rule="residual", hidden=20,
                init_scale=0.01, epochs=300, sv_stride=50).fit(X, Y, context=ctx)
    s = g.pathway_strength()
    assert s.dims == ("pathway",)
    assert float(s.sum()) == pytest.approx(1.0)
    assert s["contexts"].values[1] == (0, 1)
    top = np.linalg.svd(g.maps_.values, compute_uv=False)[:, 0]
    np.testing.assert_allclose(s.values, top / top.sum(), rtol=1e-12)
    raw = g.pathway_strength(normalize=False, measure="nuclear")
    np.testing.assert_allclose(raw.values, np.linalg.svd(g.maps_.values, compute_uv=False).sum(1), rtol=1e-12)
    over = g.pathway_strength(over="epoch", measure="frobenius")
    assert over.dims == ("pathway", "epoch")
    np.testing.assert_allclose(over.sum("pathway").values[1:], 1.0)


def test_scores_accept_a_fitted_gdln(task3):
    """rp.scores weighs a fitted GDLN's pathways by their learned strength."""
    X, Y, ctx = task3
    g = rp.GDLN([(0, 1, 2), (0, 1), (1, 2), (0, 2)], inputs="auto", rule="residual", hidden=10,
                init_scale=0.02, epochs=400, sv_stride=100).fit(X, Y, context=ctx)
    s = g.pathway_strength()
    assert s.attrs["context_values"] == [0, 1, 2] and s.attrs["n_contexts"] == 3
    assert rp.shared_score(g) == pytest.approx(float(s.sel(pathway=0)))
    # node reuse Σ m_S (|S|−1)/(K−1): 1 for the shared pathway, 1/2 for each pair
    expected = float(s.sel(pathway=0)) + 0.5 * float(s.isel(pathway=slice(1, None)).sum())
    assert rp.node_reuse_score(g) == pytest.approx(expected)


def test_sklearn_conventions(task3):
    X, Y, ctx = task3
    g = rp.GDLN([(0, 1, 2)], hidden=3, epochs=4)
    assert g.get_params()["hidden"] == 3
    with pytest.raises(NotFittedError):
        g.predict(X)
    with pytest.raises(NotFittedError):
        g.pathway_strength()
    assert g.fit(X, Y, context=ctx) is g
    c = clone(g)
    assert not hasattr(c, "loss_curve_") and c.get_params()["epochs"] == 4
    # fit overrides
    g.fit(X, Y, context=ctx, epochs=7)
    assert g.loss_curve_.shape == (7,) and g.epochs == 4


def test_seed_reproducible(task3):
    X, Y, ctx = task3
    a = rp.GDLN([(0, 1, 2), (0, 1)], hidden=5, epochs=30, seed=7, init_scale=0.05).fit(X, Y, context=ctx)
    b = rp.GDLN([(0, 1, 2), (0, 1)], hidden=5, epochs=30, seed=7, init_scale=0.05).fit(X, Y, context=ctx)
    c = rp.GDLN([(0, 1, 2), (0, 1)], hidden=5, epochs=30, seed=8, init_scale=0.05).fit(X, Y, context=ctx)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    assert not np.array_equal(a.loss_curve_, c.loss_curve_)


# ----------------------------------------------------------------------------- bad input
def test_divergence_names_lr(task3):
    X, Y, ctx = task3
    with pytest.raises(ValueInputError, match=r"`lr`.*0\.5"):
        rp.GDLN([(0, 1, 2)], hidden=10, init_scale=0.1, lr=0.5, epochs=400).fit(X, Y, context=ctx)


@pytest.mark.parametrize(
    "gates, kwargs, err, match",
    [
        (np.full((2, 24), 0.5), {}, ValueInputError, "only 0 and 1"),
        (np.ones((2, 23)), {}, ValueInputError, "one column per sample"),
        ([(0, 1, 2), (0, 1)], {}, ValueInputError, "context="),
        ([(0, 7)], {"context": True}, ValueInputError, "available contexts"),
        (np.ones((1, 24)), {"init_scale": [0.1, 0.2]}, ValueInputError, "init_scale"),
        (np.ones((1, 24)), {"hidden": 0}, ValueInputError, "hidden"),
        (np.ones((1, 24)), {"rule": "both"}, ValueInputError, "rule"),
        (np.ones((1, 24)), {"inputs": np.ones((1, 5))}, ValueInputError, "inputs"),
        ("abc", {}, InputError, "gates"),
    ],
)
def test_bad_gates_and_params(task3, gates, kwargs, err, match):
    X, Y, ctx = task3
    fit_kw = {}
    if kwargs.pop("context", False):
        fit_kw["context"] = ctx
    with pytest.raises(err, match=match):
        rp.GDLN(gates, epochs=2, **kwargs).fit(X, Y, **fit_kw)


def test_xy_mismatch_and_nan(task3):
    X, Y, ctx = task3
    with pytest.raises(ValueInputError, match="same number of samples"):
        rp.GDLN(np.ones((1, 24)), epochs=2).fit(X, Y[:20])
    Xbad = X.clone()
    Xbad[0, 0] = float("nan")
    with pytest.raises(ValueInputError, match="NaN"):
        rp.GDLN(np.ones((1, 24)), epochs=2).fit(Xbad, Y)


def test_closed_pathway_warns(task3):
    X, Y, _ = task3
    G = np.vstack([np.ones(24), np.zeros(24)])
    with pytest.warns(DegenerateDataWarning, match="never learn"):
        rp.GDLN(G, hidden=2, epochs=2).fit(X, Y)


def test_predict_needs_gates_for_new_samples(task3):
    X, Y, _ = task3
    g = rp.GDLN(np.ones((1, 24)), hidden=2, epochs=2).fit(X, Y)
    with pytest.raises(ValueInputError, match="gates"):
        g.predict(X[:5])
    with pytest.raises(ValueInputError, match="features"):
        g.predict(X[:, :5])
