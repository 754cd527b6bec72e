"""Exact, width-independent dynamics of one-hidden-layer gated pathways (relu_probe._exact),
the learning-rate bounds (relu_probe._stability) and the ReLU-init mean state (_init)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

import relu_probe as rp
from relu_probe.reln.exact import MeanState, exact_dynamics
from relu_probe.reln.gating import cue_inputs, resolve_gates
from relu_probe.reln.init import items_of, mean_state_from_init, mean_state_from_network
from relu_probe.reln.stability import learning_rate_bounds, least_squares_loss, max_stable_lr
from relu_probe.errors import InputError, ValueInputError

MIXED3 = [(0, 1, 2), (0, 1), (1, 2), (0, 2)]


@pytest.fixture(scope="module")
def task3():
    X, Y, coords = rp.tasks.contextual_task(3)
    return X.numpy(), Y.numpy(), coords


def _random_task(seed=0, P=60, n=7, m=5, k=3):
    """A non-paper task: Gaussian inputs, a context cue, targets with a shared and a
    context-specific part, unbalanced contexts."""
    rng = np.random.default_rng(seed)
    ctx = rng.choice(k, size=P, p=[0.5, 0.3, 0.2][:k] if k == 3 else None)
    X = rng.standard_normal((P, n)) * 0.6
    X[:, -1] = 1.0 + ctx  # a cue input, constant within each context
    W_shared = rng.standard_normal((m, n)) * 0.4
    W_ctx = rng.standard_normal((k, m, n)) * 0.4
    Y = X @ W_shared.T + np.einsum("pn,pmn->pm", X, W_ctx[ctx])
    return X, Y, ctx


def _init_weights(gates, X, Y, ctx, hidden, scale, seed, inputs):
    """A GDLN's initial weights (one epoch at a vanishing learning rate)."""
    g = rp.GDLN(gates, hidden=hidden, init_scale=scale, inputs=inputs, epochs=1, lr=1e-300,
                seed=seed, progress=False).fit(X, Y, context=ctx)
    return [(w[0], w[1]) for w in g.weights_]


@pytest.mark.parametrize("rule", ["joint", "residual"])
def test_exact_steps_reproduce_the_simulated_gdln_epoch_for_epoch(task3, rule):
    """From the GDLN's own initial weights, the Gram recursion is that very network: every
    epoch's loss and the recorded singular values agree to rounding."""
    X, Y, coords = task3
    ctx = coords["context"]
    W = _init_weights(MIXED3, X, Y, ctx, 13, 0.02, 4, "auto")
    g = rp.GDLN(MIXED3, hidden=13, init_scale=0.02, inputs="auto", rule=rule, epochs=600,
                sv_stride=50, seed=4, progress=False).fit(X, Y, context=ctx)
    ds = exact_dynamics(X, Y, MIXED3, context=ctx, inputs="auto", rule=rule, weights=W,
                        epochs=600, step="exact", sv_stride=50)
    L0 = ds.attrs["L0"]
    assert np.abs(ds["loss"].values - g.loss_curve_).max() < 1e-9 * L0
    q = ds.sizes["mode"]
    np.testing.assert_allclose(ds["singular_values"].values, g.singular_values_.values[:, :q], atol=1e-9)
    np.testing.assert_allclose(ds["maps"].values, g.maps_.values, atol=1e-9)


@pytest.mark.parametrize("rule", ["joint", "residual"])
def test_adaptive_steps_track_epoch_by_epoch_stepping_on_every_epoch(task3, rule):
    X, Y, coords = task3
    ctx = coords["context"]
    init = MeanState.from_pi0([2e-8, 5e-9, 5e-9, 5e-9])
    kw = dict(context=ctx, inputs="auto", rule=rule, init=init, epochs=4000)
    exact = exact_dynamics(X, Y, MIXED3, step="exact", **kw)
    fast = exact_dynamics(X, Y, MIXED3, **kw)
    L0 = exact.attrs["L0"]
    assert np.abs(fast["loss"].values - exact["loss"].values).max() < 1e-3 * L0
    assert fast.attrs["n_steps"] < 600  # far fewer steps than epochs
    # the learned structure: the paper's singular value of the shared pathway (s/d = 3.055)
    assert float(fast["singular_values"].sel(pathway=0, mode=0).isel(sv_epoch=-1)) == pytest.approx(
        float(exact["singular_values"].sel(pathway=0, mode=0).isel(sv_epoch=-1)), rel=1e-3
    )


def test_adaptive_steps_on_a_non_paper_task_with_unbalanced_contexts():
    X, Y, ctx = _random_task()
    gates = [(0, 1, 2), (0, 1), (2,)]
    init = MeanState.from_pi0([1e-6, 3e-7, 1e-7])
    lr = 0.5 * max_stable_lr(X, Y, resolve_gates(gates, len(X), ctx).G, np.ones((3, X.shape[1])))
    kw = dict(context=ctx, init=init, lr=lr, epochs=4000)
    exact = exact_dynamics(X, Y, gates, step="exact", **kw)
    fast = exact_dynamics(X, Y, gates, **kw)
    L0 = exact.attrs["L0"]
    G = resolve_gates(gates, len(X), ctx).G
    best = least_squares_loss(X, Y, G, np.ones((3, X.shape[1])))
    assert exact["loss"].values[-1] - best < 0.02 * L0  # it learned what the gates allow
    assert np.abs(fast["loss"].values - exact["loss"].values).max() < 1e-3 * L0


def test_mean_state_is_the_wide_gdln(task3):
    """The mean state is the infinite-width limit at fixed σ²h: GDLNs of growing width
    approach it (their seed average within 1 % of L0 at every epoch at 400 units)."""
    X, Y, coords = task3
    ctx = coords["context"]
    h, sigma = 400, 0.02
    state = MeanState.from_weights(sigma, sigma, h)
    state = MeanState(np.repeat(state.a0, 4), np.repeat(state.b0, 4))
    ds = exact_dynamics(X, Y, MIXED3, context=ctx, inputs="auto", init=state, epochs=800, lr=2e-3)
    curves = [
        rp.GDLN(MIXED3, hidden=h, init_scale=sigma, inputs="auto", lr=2e-3, epochs=800,
                sv_stride=800, seed=s, progress=False).fit(X, Y, context=ctx).loss_curve_
        for s in range(3)
    ]
    L0 = ds.attrs["L0"]
    assert np.abs(np.mean(curves, 0) - ds["loss"].values).max() < 0.01 * L0


def test_one_pathway_converges_to_the_least_squares_map():
    """Exact answer: a single open pathway reading every input ends at ``Y X⁺``."""
    rng = np.random.default_rng(3)
    Q = np.linalg.qr(rng.standard_normal((40, 6)))[0]
    X = Q * np.linspace(3.0, 4.0, 6)  # well-conditioned inputs: every mode converges
    Y = X @ rng.standard_normal((6, 4))
    G = np.ones((1, len(X)))
    lr = 0.9 * max_stable_lr(X, Y, G, np.ones((1, X.shape[1])))
    ds = exact_dynamics(X, Y, G, init=1e-4, lr=lr, epochs=30000)
    M = np.linalg.lstsq(X, Y, rcond=None)[0].T
    np.testing.assert_allclose(ds["maps"].values[0], M, atol=1e-6)
    assert ds["loss"].values[-1] == pytest.approx(least_squares_loss(X, Y, G, np.ones((1, X.shape[1]))), abs=1e-8)


def test_learning_rate_bounds_for_one_aligned_pathway(task3):
    """One pathway whose modes are aligned with the inputs (the hierarchy task): below the
    balanced bound gradient descent settles; at ``1/(P s_max)`` (the optimum-independent
    bound, exact here) and above it no optimum is stable."""
    X, Y, _ = task3
    G = np.ones((1, 24))
    masks = np.ones((1, 11))
    s_max = np.linalg.svd(Y.T @ X / 24, compute_uv=False)[0]
    never, balanced = learning_rate_bounds(X, Y, G, masks)
    assert never == pytest.approx(1.0 / (24 * s_max), rel=1e-9)
    assert balanced == pytest.approx(max_stable_lr(X, Y, G, masks)) and balanced < never
    W = _init_weights(G, X, Y, None, 12, 0.05, 1, None)
    best = least_squares_loss(X, Y, G, masks)  # 17, the best linear fit
    for lr, converges in [(0.97 * balanced, True), (1.03 * never, False)]:
        ds = exact_dynamics(X, Y, G, weights=W, lr=lr, epochs=4000, step="exact", check_lr=False)
        tail = ds["loss"].values[-300:]
        assert bool(np.abs(tail - best).max() < 1e-6) is converges
    with pytest.raises(ValueInputError, match=r"largest stable learning rate"):
        exact_dynamics(X, Y, G, init=1e-6, lr=1.01 * balanced, epochs=10)


def test_rates_below_the_bound_converge_on_overlapping_pathways(task3):
    """Shared + pairs (joint rule): a finite GDLN converges just below the refusal bound."""
    X, Y, coords = task3
    ctx = coords["context"]
    G = resolve_gates(MIXED3, 24, ctx).G
    masks = np.ones((4, 11))
    masks[1:] = ~cue_inputs(X, ctx)
    bound = max_stable_lr(X, Y, G, masks)
    g = rp.GDLN(MIXED3, hidden=20, init_scale=1e-2, inputs=masks, lr=0.97 * bound, epochs=4000,
                sv_stride=4000, seed=1, progress=False).fit(X, Y, context=ctx)
    assert g.loss_curve_[-1] < 1e-4 * g.loss_curve_[0]


def test_too_large_learning_rate_on_digits_is_refused_at_once():
    """A digits-sized ReLN (1797 samples, 64 inputs) at lr 1e-3: refused before any step,
    with the bound in the message."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Y = np.eye(10)[y]
    ctx = y % 3
    t0 = time.perf_counter()
    with pytest.raises(ValueInputError, match=r"`lr` = 0.001 is at or above ([0-9.e-]+), the largest stable") as err:
        exact_dynamics(X, Y, MIXED3, context=ctx, init=1e-6, lr=1e-3, epochs=8001)
    assert time.perf_counter() - t0 < 10.0  # well under 1 s warm; the machine is shared
    bound = float(err.value.args[0].split("at or above ")[1].split(",")[0])
    assert bound < 1e-3
    ds = exact_dynamics(X, Y, MIXED3, context=ctx, init=1e-6, lr=0.2 * bound, epochs=50)
    assert np.all(np.isfinite(ds["loss"].values))


def test_gaussian_init_statistics_match_the_orthant_probabilities(task3):
    """Paper task, k = 3: a Gaussian unit's active set on an item is the full set with
    probability 1/4 and any given other non-empty set with probability 1/12, so
    ``a0(S) = σ_out² h f_S``."""
    X, Y, coords = task3
    ctx = coords["context"]
    sets = [(0, 1, 2), (0, 1), (1, 2), (0, 2), (0,), (1,), (2,)]
    cue = cue_inputs(X, ctx)
    masks = np.ones((7, 11))
    masks[1:] = ~cue
    items = items_of(X, ctx, cue, coords["object"])
    st = mean_state_from_init(X, sets, ctx, masks, items, std_in=0.1, std_out=0.2, width=1000,
                              n_units=40000)
    expected = 0.2**2 * 1000 * np.array([1 / 4] + [1 / 12] * 6)
    np.testing.assert_allclose(st.a0, expected, rtol=0.03)
    # b0(S) = σ_in² h E[1[S] w_o²]: for the one-hot object inputs every set's drive is the
    # conditional second moment of its units' object weight, above 1 for the full set
    assert np.all(st.b0 > 0) and st.b0[0] / (0.1**2 * 1000) > 0.25


def test_mean_state_from_network_uses_its_own_units(task3):
    X, Y, coords = task3
    ctx = coords["context"]
    net = rp.tasks.paper_network(3, seed=2, init_std=0.01)
    cue = cue_inputs(X, ctx)
    masks = np.ones((4, 11))
    masks[1:] = ~cue
    items = items_of(X, ctx, cue, coords["object"])
    st = mean_state_from_network(net, X, MIXED3, ctx, masks, items)
    W1 = net[0].weight.detach().numpy()
    W2 = net[2].weight.detach().numpy()
    # full set, by hand: units on for an object in all three contexts
    on = (X @ W1.T > 0).reshape(3, 8, -1)  # (context, object, unit)
    full = on.all(0)  # (object, unit)
    a0 = sum(((W2[:, full[o]] ** 2).sum() / 60) for o in range(8)) / 8
    assert st.a0[0] == pytest.approx(a0, rel=1e-12)
    with pytest.raises(ValueInputError, match="one-hidden-layer"):
        mean_state_from_network(rp.tasks.paper_network(3, depth=2), X, MIXED3, ctx, masks, items)


def test_bad_input_gets_one_clear_error(task3):
    X, Y, coords = task3
    ctx = coords["context"]
    with pytest.raises(ValueInputError, match="`init` or `weights`|either `init`"):
        exact_dynamics(X, Y, MIXED3, context=ctx, init=1e-6, weights=[(np.zeros((3, 11)), np.zeros((60, 3)))] * 4)
    with pytest.raises(ValueInputError, match="`step` must be one of"):
        exact_dynamics(X, Y, MIXED3, context=ctx, init=1e-6, step="rk4")
    with pytest.raises(ValueInputError, match=r"`weights\[0\]`"):
        exact_dynamics(X, Y, MIXED3, context=ctx, weights=[(np.zeros((3, 2)), np.zeros((60, 3)))] * 4)
    with pytest.raises(InputError, match="one \\(W1, W2\\) pair per pathway"):
        exact_dynamics(X, Y, MIXED3, context=ctx, weights="no")
    with pytest.raises(ValueInputError, match="MeanState for 2 pathways"):
        exact_dynamics(X, Y, MIXED3, context=ctx, init=MeanState([1.0, 1.0], [1.0, 1.0]))


def test_default_state_is_the_gdln_of_hidden_and_init_scale(task3):
    """Without ``init`` the mean state is the GDLN's: ``a0 = σ_out² h``, ``b0 = σ_in² h`` per
    pathway, read from ``hidden`` / ``init_scale`` exactly as rp.GDLN reads them."""
    X, Y, coords = task3
    ds = exact_dynamics(X, Y, MIXED3, context=coords["context"], inputs="auto", epochs=5,
                        hidden={"shared": 50, "context": 20}, init_scale=[(0.01, 0.02), 0.03, 0.03, 0.03])
    np.testing.assert_allclose(ds["a0"].values, [0.02**2 * 50] + [0.03**2 * 20] * 3)
    np.testing.assert_allclose(ds["b0"].values, [0.01**2 * 50] + [0.03**2 * 20] * 3)
    np.testing.assert_allclose(ds["pi0"].values, (ds["a0"].values + ds["b0"].values) / 4)


def test_result_layout(task3):
    X, Y, coords = task3
    ds = exact_dynamics(X, Y, MIXED3, context=coords["context"], inputs="auto", init=1e-6,
                        lr=rp.tasks.PAPER_LR, epochs=101, sv_stride=25)
    assert ds["loss"].dims == ("epoch",) and ds.sizes["epoch"] == 101
    assert ds["singular_values"].dims == ("pathway", "mode", "sv_epoch")
    assert list(ds["sv_epoch"].values) == [0, 25, 50, 75, 100]
    assert list(ds["contexts"].values) == MIXED3
    assert ds["maps"].shape == (4, 60, 11)
    assert not ds["inputs"].values[1, 8:].any()  # context pathways do not read the cue
    assert ds.attrs["tau"] == pytest.approx(1 / (1e-3 * 24))


def test_exact_dynamics_read_leaky_slopes_as_effective_gates():
    """A LeakyReLU slope α is the gate α + (1 − α) g on every sample: the exact dynamics of
    0/1 gates with ``leak=α`` are the exact map-space recursion (``gram_simulate``, epoch by
    epoch) on the gates α + (1 − α) g, from the mean state ``A = σ² h I``, ``B = σ² h I``."""
    from relu_probe.reln.race import gram_simulate

    X, Y, ctx = _random_task(seed=3)
    G = np.stack([np.ones(len(ctx)), (ctx != 2).astype(float), (ctx != 0).astype(float)])
    lr, epochs, h, sigma, alpha = 2e-4, 400, 50, 0.05, 0.2
    kw = dict(lr=lr, epochs=epochs, rule="joint", inputs="all", hidden=h, init_scale=sigma, step="exact")
    leaky = rp.race_dynamics(X, Y, G, leak=alpha, **kw)
    assert leaky.attrs["method"] == "exact"
    p, n, m = G.shape[0], X.shape[1], Y.shape[1]
    a0 = sigma ** 2 * h
    loss, _, _ = gram_simulate(X, Y, alpha + (1 - alpha) * G, np.ones((p, n)), lr=lr, epochs=epochs,
                               A0=a0 * np.tile(np.eye(m), (p, 1, 1)), B0=a0 * np.tile(np.eye(n), (p, 1, 1)),
                               M0=np.zeros((p, m, n)))
    np.testing.assert_allclose(leaky["loss"].values, loss, rtol=1e-8)
    relu = rp.race_dynamics(X, Y, G, **kw)
    assert np.abs(relu["loss"].values - loss).max() > 1e-3 * loss[0]  # the slope matters


def test_exact_dynamics_with_an_output_bias_follow_the_direct_path():
    """An output bias is an ungated one-layer direct path. With zero-mean inputs and constant
    targets ``c`` no pathway can fit anything (its correlation Σ_μ c x_μᵀ is 0), so only the
    bias learns, by ``b ← b + η P (c − b)`` from 0: the summed loss is exactly
    ``½ P ‖c‖² (1 − η P)^{2t}``."""
    rng = np.random.default_rng(0)
    P, n = 20, 4
    X = rng.standard_normal((P, n))
    X -= X.mean(0)
    c = np.array([0.7, -1.3])
    Y = np.tile(c, (P, 1))
    lr, epochs = 0.01, 60
    ds = rp.race_dynamics(X, Y, np.ones((1, P)), lr=lr, epochs=epochs, output_bias=True, hidden=10,
                          init_scale=0.01)
    assert ds.attrs["method"] == "exact" and ds.attrs["step"] == "exact"
    t = np.arange(epochs)
    expected = 0.5 * P * float(c @ c) * (1 - lr * P) ** (2 * t)
    np.testing.assert_allclose(ds["loss"].values, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ds["output_bias"].values[-1], np.linalg.norm(c) * (1 - (1 - lr * P) ** (epochs - 1)),
                               rtol=1e-6)
