"""rp.compare_dynamics: exact values on hand-made curves, inputs it accepts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import relu_probe as rp
from relu_probe.errors import InputError, ValueInputError


def test_exact_values():
    a = np.array([100.0, 80.0, 40.0, 20.0, 5.0, 0.5])
    b = np.array([100.0, 90.0, 45.0, 20.0, 10.0, 2.0])
    r = rp.compare_dynamics(a, b)
    diff = np.array([0.0, 10.0, 5.0, 0.0, 5.0, 1.5])
    assert r["mean_abs_diff"] == pytest.approx(diff.mean())
    assert r["max_abs_diff"] == 10.0
    assert r["max_abs_diff_epoch"] == 1
    assert r["mean_abs_diff_pct"] == pytest.approx(diff.mean())  # L0 = 100
    assert r["max_abs_diff_pct"] == pytest.approx(10.0)
    assert r["L0"] == 100.0
    assert r["n_epochs"] == 6
    # first epoch at or below 50 / 25 / 10 / 1 % of L0
    assert r["epochs_to_a"] == {0.5: 2, 0.25: 3, 0.1: 4, 0.01: 5}
    assert r["epochs_to_b"] == {0.5: 2, 0.25: 3, 0.1: 4, 0.01: None}


def test_window_and_L0():
    a = np.array([10.0, 8.0, 6.0, 4.0])
    b = np.array([10.0, 9.0, 9.0, 4.5])
    r = rp.compare_dynamics(a, b, start=2, L0=20.0, fractions=(0.25,))
    assert r["mean_abs_diff"] == pytest.approx((3.0 + 0.5) / 2)
    assert r["max_abs_diff_epoch"] == 2
    assert r["max_abs_diff_pct"] == pytest.approx(15.0)
    assert r["window"] == (2, 4)
    assert r["epochs_to_a"] == {0.25: 3}
    r2 = rp.compare_dynamics(a, b, stop=2)
    assert r2["mean_abs_diff"] == pytest.approx(0.5)


def test_accepts_tensor_dataset_dataarray_and_estimator():
    a = np.linspace(10, 1, 7)
    b = a + 1.0
    ds = xr.Dataset({"loss": ("epoch", b)})

    class Fitted:
        loss_curve_ = b

    for other in (torch.tensor(b), ds, xr.DataArray(b, dims="epoch"), Fitted(), list(b)):
        r = rp.compare_dynamics(a, other)
        assert r["mean_abs_diff"] == pytest.approx(1.0)
        assert r["max_abs_diff"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], {}, "same number of epochs"),
        ([1.0, np.nan], [1.0, 2.0], {}, "non-finite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], {}, "1-D"),
        ([], [], {}, "at least one epoch"),
        ([1.0, 2.0], [1.0, 2.0], {"start": 2}, "non-empty window"),
        ([0.0, 1.0], [0.0, 1.0], {}, "pass `L0=`"),
        ([1.0, 2.0], [1.0, 2.0], {"L0": -1.0}, "`L0`"),
    ],
)
def test_bad_input(a, b, kwargs, match):
    with pytest.raises(ValueInputError, match=match):
        rp.compare_dynamics(a, b, **kwargs)


def test_dataset_without_loss():
    with pytest.raises(InputError, match="loss"):
        rp.compare_dynamics(xr.Dataset({"x": ("e", [1.0])}), [1.0])


# ----------------------------------------------------------------------------- loss conventions
def _trained_linear(mean: bool, seed: int = 0, epochs: int = 300):
    """A linear model trained full batch by its own loop on a summed or mean (MSELoss) loss."""
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.standard_normal((30, 4)))
    Y = X @ torch.from_numpy(rng.standard_normal((4, 3))) + 0.3 * torch.from_numpy(rng.standard_normal((30, 3)))
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3, bias=False).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.3 if mean else 0.005)
    curve = []
    for _ in range(epochs):
        opt.zero_grad()
        out = model(X)
        loss = torch.nn.functional.mse_loss(out, Y) if mean else 0.5 * ((out - Y) ** 2).sum()
        curve.append(loss.item())
        loss.backward()
        opt.step()
    return model, X, Y, np.array(curve)


def test_loss_convention_is_read_off_the_model():
    from relu_probe.reln.dynamics import loss_convention, model_outputs

    model, X, Y, curve = _trained_linear(mean=False)
    out = model_outputs(model, X)
    assert loss_convention(curve, Y, out)["convention"] == "sum"
    summed = 0.5 * float(((Y.numpy() - out) ** 2).sum())
    # the same values under other conventions (exact factors)
    for name, factor in [("sum_squares", 2.0), ("mean", 1 / 30), ("mean_squares", 2 / 30), ("mse", 2 / 90)]:
        r = loss_convention(curve * factor, Y, out)
        assert r["convention"] == name and r["factor"] == pytest.approx(factor)
        assert r["summed_end"] == pytest.approx(summed)
    # a torch MSELoss training loop
    model_m, Xm, Ym, curve_m = _trained_linear(mean=True)
    assert loss_convention(curve_m, Ym, model_outputs(model_m, Xm))["convention"] == "mse"
    # a curve that is none of them (e.g. a minibatch loss, a third of the summed one)
    assert loss_convention(curve / 3.0, Y, out)["convention"] is None


def test_loss_convention_accepts_an_initial_snapshot_taken_after_the_first_update():
    """A training monitor updated after `opt.step()` copies the model one update after the
    first logged loss: the first value is checked within that one step's change."""
    import copy

    from relu_probe.reln.dynamics import loss_convention, model_outputs

    model, X, Y, curve = _trained_linear(mean=True)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    before = torch.nn.Linear(4, 3, bias=False).double()  # the same init as _trained_linear's
    after = copy.deepcopy(before)
    opt = torch.optim.SGD(after.parameters(), lr=0.3)
    opt.zero_grad()
    torch.nn.functional.mse_loss(after(X), Y).backward()
    opt.step()
    out = model_outputs(model, X)
    for first in (before, after):
        r = loss_convention(curve, Y, out, initial_outputs=model_outputs(first, X))
        assert r["convention"] == "mse"
    # a model two updates off at the start is still refused (not silently compared)
    opt.zero_grad()
    torch.nn.functional.mse_loss(after(X), Y).backward()
    opt.step()
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.mse_loss(after(X), Y).backward()
        opt.step()
    assert loss_convention(curve, Y, out, initial_outputs=model_outputs(after, X))["convention"] is None
    del rng


def test_compare_dynamics_checks_the_convention_and_rescales_a_mean_loss():
    model, X, Y, curve = _trained_linear(mean=True)
    summed = curve * (90 / 2)  # the same training on the summed loss's scale
    r = rp.compare_dynamics(curve, summed, model=model, X=X, Y=Y)
    assert r["convention"]["convention"] == "mse"
    assert r["mean_abs_diff"] == pytest.approx(0.0, abs=1e-9 * summed[0])
    with pytest.warns(rp.errors.ReluProbeWarning, match="not meaningful"):
        r = rp.compare_dynamics(curve / 3.0, summed, model=model, X=X, Y=Y)
    assert r["convention"]["convention"] is None
    with pytest.raises(InputError, match="together"):
        rp.compare_dynamics(curve, summed, model=model)
    assert model.training  # left as it was
