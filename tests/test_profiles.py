"""rp.gating_profile: P(on | condition) per unit."""

from __future__ import annotations

import numpy as np
import pytest

import relu_probe as rp
from relu_probe.errors import CoordError, InputError
from relu_probe.testing import ToyConvNet, k_minus_one_net, modular_net


def _record(net, **kw):
    return rp.record(net.model, net.X, coords=net.coords, **kw)


def test_profile_of_modular_net_is_exact():
    K, n = 3, 4
    net = modular_net(K, n)
    prof = rp.gating_profile(_record(net), "context")
    assert prof.dims == ("unit", "context")
    assert prof.name == "gating_profile"
    # unit (c, o) is on for exactly one of the n samples of context c
    expected = np.repeat(np.eye(K), n, axis=0) / n
    np.testing.assert_array_equal(prof.values, expected)
    np.testing.assert_array_equal(prof["context"].values, np.arange(K))
    assert list(prof["site"].values) == ["1"] * (K * n)


def test_profile_of_k_minus_one_net():
    K, n = 3, 4
    net = k_minus_one_net(K, n)
    prof = rp.gating_profile(_record(net), "context").values
    np.testing.assert_array_equal(prof[:n], np.full((n, K), 1 / n))  # shared units
    for skip in range(K):
        rows = prof[n * (1 + skip) : n * (2 + skip)]
        expected = np.full(K, 1 / n)
        expected[skip] = 0.0
        np.testing.assert_array_equal(rows, np.tile(expected, (n, 1)))


def test_profile_over_two_coords_is_the_gate_table():
    net = modular_net(2, 4)
    ds = _record(net)
    prof = rp.gating_profile(ds, ("context", "object"))
    assert prof.dims == ("unit", "context", "object")
    gates = ds["gate"].values.T.reshape(-1, 2, 4).astype(float)
    np.testing.assert_array_equal(prof.values, gates)


def test_channel_units_average_the_gate_rate():
    X = ToyConvNet.images(16)
    group = np.arange(16) % 2
    ds = rp.record(ToyConvNet(), X, coords={"parity": group}, units="channel")
    prof = rp.gating_profile(ds, "parity")
    rate = ds["gate_rate"].values.astype(float)
    np.testing.assert_allclose(prof.sel(parity=1).values, rate[group == 1].mean(0))


def test_site_selection_and_errors():
    net = modular_net(3, 4)
    ds = _record(net)
    assert rp.gating_profile(ds, "context", sites="1").sizes["unit"] == 12
    with pytest.raises(CoordError, match="Recorded sites: \\['1'\\]"):
        rp.gating_profile(ds, "context", sites="nope")
    with pytest.raises(CoordError, match="available sample coords: 'context', 'object'"):
        rp.gating_profile(ds, "task")
    with pytest.raises(InputError, match="name of a sample coord"):
        rp.gating_profile(ds, 3)
    with pytest.raises(InputError, match="xarray.Dataset"):
        rp.gating_profile(ds["gate"], "context")
