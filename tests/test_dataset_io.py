"""The recorded dataset keeps the layout contract and round-trips through netCDF."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import relu_probe as rp
import relu_probe.data.schema
import relu_probe.data.netcdf
from relu_probe import testing as T


@pytest.mark.parametrize("factory,inputs,kwargs", [
    (T.NestedMixedNet, T.toy_inputs(9), {"values": True}),
    (T.ToyConvNet, T.ToyConvNet.images(5), {}),
    (T.ToyConvNet, T.ToyConvNet.images(5), {"units": "channel", "values": True}),
])
def test_netcdf_round_trip_is_identical(tmp_path, factory, inputs, kwargs):
    coords = {"label": np.array([f"item {i}" for i in range(len(inputs))]), "group": np.arange(len(inputs)) % 3}
    ds = rp.record(factory(), inputs, coords=coords, **kwargs)
    for value in ds.attrs.values():
        assert isinstance(value, (str, int, float, list))
    path = tmp_path / "gates.nc"
    rp.io.to_netcdf(ds, path)
    xr.testing.assert_identical(ds, rp.io.open_netcdf(path))
    # a plain xarray reader gets the same data; one-element list attrs come back as scalars,
    # which rp.dataset.site_attr accepts
    with xr.open_dataset(path) as plain:
        xr.testing.assert_equal(ds, plain.load())
        assert rp.dataset.site_attr(plain, "sites") == ds.attrs["sites"]


def test_layout_contract():
    model = T.SequentialReLUNet()
    X = T.toy_inputs(6)
    ds = rp.record(model, X, coords={"context": np.arange(6) % 2}, values=True)
    assert ds.gate.dims == ("sample", "unit")
    assert set(ds.coords) == {"sample", "unit", "site", "neuron", "context"}
    assert ds.site.dims == ("unit",) and ds.context.dims == ("sample",)
    assert ds.attrs["sites"] == ["1", "3"]
    assert ds.attrs["units"] == "element"
    assert ds.attrs["threshold"] == 0.0
    assert ds.attrs["model_class"] == "SequentialReLUNet"
    assert ds.attrs["relu_probe_version"] == rp.__version__
    # groupby works on the user coords (what pathways build on)
    rate = ds.gate.groupby("context").mean()
    assert rate.dims == ("context", "unit")
