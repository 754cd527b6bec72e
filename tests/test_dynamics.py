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
