"""The learning rate and epochs without the paper's constants (relu_probe.reln.schedule): defaults
derived from the data, the stability bound with an output bias's direct path, and a too-large
``lr`` refused at once, before anything is simulated, by every entry point."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

import relu_probe as rp
from relu_probe.errors import ValueInputError
from relu_probe.reln import exact as exact_module
from relu_probe.reln import gdln as gdln_module
from relu_probe.reln import race as race_module
from relu_probe.reln.exact import exact_dynamics
from relu_probe.reln.gating import resolve_gates
from relu_probe.reln.predict import ContextSetRace
from relu_probe.reln.schedule import LR_FRACTION, MAX_EPOCHS
from relu_probe.reln.stability import max_stable_lr

MIXED3 = [(0, 1, 2), (0, 1), (1, 2), (0, 2)]


def _bias_task():
    """8 centred, small inputs and targets with a large mean: the pathway's sharpness is far
    below ``P`` while the output bias's own curvature is exactly ``P = 8``."""
    X = 0.1 * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]] * 2, dtype=float)
    Y = np.hstack([1.0 + X @ np.array([[1.0], [0.5]]), -2.0 + X @ np.array([[0.3], [-1.0]])])
    return X, Y


def _digits(step=6):
    """A non-paper task: sklearn's bundled digits (every *step*-th image), one-hot targets,
    contexts = label mod 3."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[::step] / 16.0, y[::step]
    return X, np.eye(10)[y], y % 3


def _random_task(seed=0, P=60, n=7, m=5):
    """Gaussian inputs, a cue input, a shared and a context-specific part of the targets."""
    rng = np.random.default_rng(seed)
    ctx = rng.choice(3, size=P, p=[0.5, 0.3, 0.2])
    X = rng.standard_normal((P, n)) * 0.6
    X[:, -1] = 1.0 + ctx
    Y = X @ (rng.standard_normal((m, n)) * 0.4).T + np.einsum(
        "pn,pmn->pm", X, (rng.standard_normal((3, m, n)) * 0.4)[ctx])
    return X, Y, ctx


def _item_task(seed=0, n_items=8, n=6, m=5):
    """Not the paper's task: Gaussian item features repeated in 3 contexts (one-hot cue inputs),
    targets a shared linear map of the item plus a context-specific one."""
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n_items, n)) * 0.7
    ctx = np.repeat(np.arange(3), n_items)
    item = np.tile(np.arange(n_items), 3)
    X = np.hstack([items[item], np.eye(3)[ctx]])
    W = rng.standard_normal((m, n)) * 0.5
    Wc = rng.standard_normal((3, m, n)) * 0.5
    Y = items[item] @ W.T + np.einsum("pn,pmn->pm", items[item], Wc[ctx])
    return X, Y, ctx, item


# ------------------------------------------------------------------ the bound with an output bias
def test_output_bias_direct_path_sets_the_bound_to_two_over_P():
    """Centred inputs decouple the bias from the pathway, so the sharpness is exactly
    max(λ_pathway, P) = P: the bound is 2/P. Without the direct path it would be ~40× higher."""
    X, Y = _bias_task()
    G = np.ones((1, 8))
    biased = rp.GDLN(G, output_bias=True, hidden=20, init_scale=0.01)
    plain = rp.GDLN(G, hidden=20, init_scale=0.01)
    assert biased.max_stable_lr(X, Y) == pytest.approx(2.0 / 8, rel=1e-9)
    assert plain.max_stable_lr(X, Y) > 10 * (2.0 / 8)


def test_a_rate_the_old_bound_allowed_diverges_and_is_now_refused():
    """lr = 0.3 is below the bias-free bound (~10.6) but above 2/P = 0.25: the bias step
    ``b ← b − lr·P·(b − ȳ)`` grows by |1 − 2.4| = 1.4 per epoch. Simulated anyway it diverges;
    with the check it is refused before any epoch; just below the bound it converges."""
    X, Y = _bias_task()
    G = np.ones((1, 8))
    g = rp.GDLN(G, output_bias=True, hidden=20, init_scale=0.01, seed=0, progress=False)
    assert 0.3 < rp.GDLN(G, hidden=20, init_scale=0.01).max_stable_lr(X, Y)
    with pytest.raises(ValueInputError, match="diverged"):
        g.fit(X, Y, lr=0.3, epochs=300, check_lr=False)
    with pytest.raises(ValueInputError, match=r"`lr` = 0.3 is at or above 0.25,"):
        g.fit(X, Y, lr=0.3, epochs=300)
    g.fit(X, Y, lr=0.9 * 0.25, epochs=3000)
    assert g.loss_curve_[-1] < 1e-10 * g.loss_curve_[0]
    with pytest.raises(ValueInputError, match=r"`lr` = 0.3 is at or above 0.25,"):
        rp.race_dynamics(X, Y, G, output_bias=True, lr=0.3, epochs=300)


# ------------------------------------------------------------------ defaults from the data
def test_race_dynamics_default_lr_is_a_share_of_the_data_bound_not_the_papers():
    """Digits: the bound is ~4e-5, so the paper's 1e-3 would be refused; the default is
    LR_FRACTION × the bound computed independently from the gates, and the attrs say so."""
    X, Y, ctx = _digits()
    G = resolve_gates(MIXED3, len(X), ctx).G
    bound = max_stable_lr(X, Y, G, np.ones((4, X.shape[1])))
    assert bound < 1e-3 / 10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = rp.race_dynamics(X, Y, MIXED3, context=ctx)
    assert ds.attrs["lr"] == pytest.approx(LR_FRACTION * bound, rel=1e-6)
    assert ds.attrs["lr_bound"] == pytest.approx(bound, rel=1e-6)
    assert ds.attrs["tau"] == pytest.approx(1.0 / (ds.attrs["lr"] * len(X)))
    assert ds.attrs["lr_source"] == "derived" and ds.attrs["epochs_source"] == "derived"
    assert f"{bound:.4g}" in ds.attrs["schedule_notes"]
    # digits' small input directions need millions of epochs at a stable rate: capped, with a warning
    assert ds.sizes["epoch"] == MAX_EPOCHS
    assert any("exceed" in str(w.message) and "`epochs=`" in str(w.message) for w in caught)
    assert "the cap" in ds.attrs["schedule_notes"] and "stops before convergence" in ds.attrs["schedule_notes"]


def test_derived_epochs_reach_convergence_on_a_non_paper_task():
    """The derived epochs leave under 1e-3 of L0 to learn: running twice as long gains less."""
    X, Y, ctx = _random_task()
    ds = rp.race_dynamics(X, Y, MIXED3, context=ctx, hidden=50, init_scale=0.01)
    T, L0 = ds.sizes["epoch"], ds.attrs["L0"]
    assert ds.attrs["epochs_source"] == "derived" and T < MAX_EPOCHS
    longer = rp.race_dynamics(X, Y, MIXED3, context=ctx, hidden=50, init_scale=0.01, lr=ds.attrs["lr"], epochs=2 * T)
    assert longer.attrs["lr_source"] == "given"
    assert np.allclose(longer["loss"].values[:T], ds["loss"].values, rtol=0, atol=1e-3 * L0)
    assert ds["loss"].values[-1] - longer["loss"].values[-1] < 1e-3 * L0
    # and not far more than needed: a quarter of the epochs still has learning left
    assert ds["loss"].values[T // 4] - longer["loss"].values[-1] > 1e-3 * L0


def test_gdln_and_reln_defaults_are_derived_and_recorded():
    """GDLN / ReLN with no lr: the fit's lr is LR_FRACTION × max_stable_lr, never 1e-3, and
    ``schedule_`` says where each came from; the loss converges within the derived epochs."""
    X, Y, ctx = _random_task(seed=1)
    g = rp.GDLN(MIXED3, hidden=30, init_scale=0.02, progress=False).fit(X, Y, context=ctx)
    bound = g.max_stable_lr(X, Y, context=ctx)
    assert g.lr_ == pytest.approx(LR_FRACTION * bound, rel=1e-9) and g.lr_ != rp.tasks.PAPER_LR
    assert g.schedule_.lr_source == "derived" and g.schedule_.epochs_source == "derived"
    assert g.epochs_ == g.loss_curve_.size and g.epochs_ != rp.tasks.PAPER_EPOCHS
    assert g.loss_curve_[-1] < 1e-2 * g.L0_
    Xi, Yi, ci, _ = _item_task()
    r = rp.ReLN(MIXED3, hidden=30, progress=False).fit(Xi, Yi, context=ci)  # the default init from the data
    assert r.lr_ == pytest.approx(LR_FRACTION * r.max_stable_lr(Xi, Yi, context=ci), rel=1e-9)
    assert any("lr not given" in n for n in r.schedule_.notes)
    assert r.loss_curve_[-1] < 1e-2 * r.L0_
    given = rp.GDLN(MIXED3, hidden=30, init_scale=0.02, lr=0.5 * bound, epochs=50, progress=False)
    given.fit(X, Y, context=ctx)
    assert given.schedule_.lr_source == "given" and given.schedule_.notes == ()


def test_biased_gdln_epochs_come_from_the_mode_picture_and_converge():
    """With an output bias the exact engine does not apply: the epochs are the mode picture's
    estimate, said so in the note, and the simulated loss reaches the least-squares optimum."""
    X, Y = _bias_task()
    g = rp.GDLN(np.ones((1, 8)), output_bias=True, hidden=20, init_scale=0.05, progress=False).fit(X, Y)
    assert g.lr_ == pytest.approx(LR_FRACTION * 0.25, rel=1e-9)
    assert any("mode picture" in n for n in g.schedule_.notes)
    assert g.loss_curve_[-1] < 1e-2 * g.L0_


def test_a_layered_gdln_without_lr_asks_for_it():
    """Deep pathways are not covered by the bound: no default, one clear error."""
    X, Y, ctx = _random_task()
    with pytest.raises(ValueInputError, match=r"pass `lr` and `epochs`.*PAPER_LR"):
        rp.GDLN(MIXED3, depth=2, hidden=10, progress=False).fit(X, Y, context=ctx)


# ------------------------------------------------------------------ refused before anything runs
def _never(*args, **kwargs):
    raise AssertionError("simulated before the learning rate was checked")


_REFUSAL = re.compile(r"`lr` = 0\.5 is at or above ([0-9.e-]+), the largest stable learning rate")


@pytest.fixture
def unstable():
    X, Y, ctx = _random_task()
    G = resolve_gates(MIXED3, len(X), ctx).G
    bound = max_stable_lr(X, Y, G, np.ones((4, X.shape[1])))
    assert bound < 0.5
    return X, Y, ctx, bound


def _check_refusal(err, bound):
    m = _REFUSAL.search(str(err.value))
    assert m, str(err.value)
    return float(m.group(1))


def test_race_dynamics_and_exact_dynamics_refuse_before_stepping(unstable, monkeypatch):
    X, Y, ctx, bound = unstable
    monkeypatch.setattr(race_module, "exact_from_spec", _never)
    monkeypatch.setattr(race_module, "_live", _never)
    monkeypatch.setattr(exact_module, "run_exact", _never)
    for method in ("auto", "race", "closed"):
        with pytest.raises(ValueInputError) as err:
            rp.race_dynamics(X, Y, MIXED3, context=ctx, lr=0.5, epochs=100, method=method)
        assert _check_refusal(err, bound) == pytest.approx(bound, rel=1e-3)
    with pytest.raises(ValueInputError) as err:
        exact_dynamics(X, Y, MIXED3, context=ctx, lr=0.5, epochs=100)
    assert _check_refusal(err, bound) == pytest.approx(bound, rel=1e-3)


def test_gdln_and_reln_fit_refuse_before_simulating(unstable, monkeypatch):
    X, Y, ctx, bound = unstable
    monkeypatch.setattr(gdln_module.GDLN, "_simulate", _never)
    with pytest.raises(ValueInputError) as err:
        rp.GDLN(MIXED3, inputs="all", hidden=10, lr=0.5, epochs=100).fit(X, Y, context=ctx)
    assert _check_refusal(err, bound) == pytest.approx(bound, rel=1e-3)
    with pytest.raises(ValueInputError) as err:
        rp.ReLN(MIXED3, inputs="all", rule="joint", hidden=10, init_scale=0.01).fit(X, Y, context=ctx, lr=0.5,
                                                                                   epochs=100)
    assert _check_refusal(err, bound) == pytest.approx(bound, rel=1e-3)


def test_fastest_reln_checks_every_candidate_before_racing_any(monkeypatch):
    """The first candidate is stable at this lr, the second is not: nothing is raced before the
    refusal (the old loop raced the first, then refused the second)."""
    X, Y, ctx, _ = _item_task()
    shared_only = [(0, 1, 2)]
    alone = max_stable_lr(X, Y, np.ones((1, len(X))), np.ones((1, X.shape[1])))
    G = resolve_gates(MIXED3, len(X), ctx).G
    masks = np.ones((4, X.shape[1]))
    masks[1:, -3:] = 0.0  # inputs="auto": the context pathways do not read the cues
    mixed = max_stable_lr(X, Y, G, masks)
    assert abs(alone - mixed) > 1e-3 * mixed
    (low, unstable), (_, stable) = sorted([(alone, shared_only), (mixed, MIXED3)], key=lambda pair: pair[0])
    lr = 0.5 * (alone + mixed)
    monkeypatch.setattr(ContextSetRace, "race", _never)
    with pytest.raises(ValueInputError, match=rf"`lr` = {lr:g} is at or above {low:.4g},"):
        rp.fastest_reln(X, Y, [stable, unstable], context=ctx, lr=lr, epochs=100)


def test_fastest_reln_and_predict_structure_defaults_are_derived():
    """One lr and one number of epochs for every candidate, derived: the smallest candidate
    rate, and curves that all reach the end of learning."""
    X, Y, ctx, item = _item_task()
    ranking = rp.fastest_reln(X, Y, [[(0, 1, 2)], MIXED3], context=ctx, within=item)
    sizes = {item_["loss"].size for item_ in ranking}
    assert len(sizes) == 1
    pred = rp.predict_structure(X, Y, context=ctx, within=item)
    assert pred.race.attrs["lr_source"] == "derived" and pred.race.attrs["epochs_source"] == "derived"
    assert pred.race.attrs["lr"] == pytest.approx(LR_FRACTION * pred.race.attrs["lr_bound"], rel=1e-9)
    loss = pred.race["loss"].values
    assert loss[-1] < 1e-2 * loss[0]


def test_analyze_derives_lr_and_epochs_with_notes_and_refuses_a_too_large_one():
    """A ReLU network on a non-paper task, analysed with targets but no lr / epochs / curve:
    the ReLN runs at a rate derived from its bound, noted; a given lr above it is refused."""
    X, Y, ctx, item = _item_task()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 60, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(60, Y.shape[1], bias=False)).double()
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    rp.tasks.train_full_batch(net, Xt, Yt, lr=2e-3, epochs=1500, progress=False)
    coords = {"context": ctx, "item": item}
    res = rp.analyze(net, Xt, coords=coords, by="context", within="item", Y=Y, attribution=False, predict=False,
                     null=None)
    assert res.reln is not None
    bound = res.reln.max_stable_lr(X, Y, context=res.reln.context_)
    assert res.reln.lr_ == pytest.approx(LR_FRACTION * bound, rel=1e-9)
    assert res.params["lr"] == pytest.approx(res.reln.lr_)
    assert any("lr not given" in n and f"{bound:.4g}" in n for n in res.notes)
    assert any("epochs not given" in n for n in res.notes)
    with pytest.raises(ValueInputError, match=r"`lr` = 5 \(your training loop's"):
        rp.analyze(net, Xt, coords=coords, by="context", within="item", Y=Y, lr=5.0, epochs=100,
                   attribution=False, predict=False, null=None)


def test_analyze_skips_a_reln_it_cannot_derive_lr_for_and_says_so():
    """A ReLN with a trunk is not covered by the data-derived defaults: with no lr it is skipped
    with a note (the old code trained it at the paper's 1e-3); with lr and epochs it runs."""
    net = rp.testing.k_minus_one_net(3, 4)
    Y = torch.as_tensor(np.random.default_rng(0).normal(size=(net.X.shape[0], 3)))
    kw = dict(coords=net.coords, within="object", Y=Y, attribution=False, literature=False, null=None,
              reln_params={"trunk": [6], "hidden": 4, "min_mass": 0.0})
    res = rp.analyze(net.model, net.X, epochs=30, **kw)
    assert res.reln is None
    assert any("ReLN skipped: `lr` not given" in n for n in res.notes)
    given = rp.analyze(net.model, net.X, lr=1e-3, epochs=30, **kw)
    assert given.reln is not None and given.reln.lr_ == 1e-3


def test_default_init_is_small_when_items_are_nested_in_contexts():
    """One class per context (digits-like): no unit can be on in every context of an item, so
    the full-set pathway's share is 0 and the default init is referenced to the whole hidden
    layer — finite and small (it was ~1e146, and every fit diverged at epoch 0)."""
    rng = np.random.default_rng(3)
    context = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(60, 8)) + context[:, None] * 0.5
    Y = np.eye(3)[context]
    sets = [[0, 1, 2], [1, 2], [0], [2]]
    reln = rp.ReLN(sets, context=context, rule="joint")
    scales, source = reln._default_init_scale(X, Y, context)
    assert "whole hidden layer" in source
    stds = np.asarray(scales, dtype=float)
    assert np.all(np.isfinite(stds)) and np.all(stds > 0)
    # the pathways' mean-field strengths (s_in² + s_out²) h / 4 add up to at most the layer's π0
    pi0 = 1e-6 * np.linalg.norm(np.linalg.lstsq(X, Y, rcond=None)[0], 2)
    strengths = (stds[:, 0] ** 2 + stds[:, 1] ** 2) * 100 / 4
    assert 0 < strengths.sum() <= pi0 * (1 + 1e-6)
    fitted = reln.fit(X, Y)  # derived lr and epochs from that init: converges, finite
    assert np.all(np.isfinite(fitted.loss_curve_)) and fitted.loss_curve_[-1] < fitted.loss_curve_[0]
