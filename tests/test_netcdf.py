"""relu_probe's one netCDF encoding restores any Dataset exactly, and plain readers see plain data."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import relu_probe as rp
from relu_probe import testing as T
from relu_probe.data import netcdf
from _deps import require

require("netCDF4")


def _awkward() -> xr.Dataset:
    """Attrs and values netCDF cannot hold as they are, next to ones it can."""
    contexts = np.empty(3, dtype=object)
    contexts[:] = [(0, 1, 2), (0,), ("a", 1.5)]
    ds = xr.Dataset(
        {
            "mass": ("pathway", [0.5, 0.25, 0.25], {"units": "days since 2000-01-01", "flag": True,
                                                   "scale_factor": 2.0, "meta": {"k": (1, 2)}}),
            "name": ("pathway", np.array(["x", "yy", "zzz"])),
        },
        coords={"pathway": np.arange(3), "contexts": ("pathway", contexts)},
    )
    ds.attrs = {"one": ["only"], "empty": [], "none": None, "nested": [[1, 2], [3]], "tuple": (1, "a"),
                "bool": False, "number": np.float32(0.5), "text": "plain", "numbers": [1, 2, 3]}
    return ds


def test_awkward_values_round_trip_exactly(tmp_path):
    ds = _awkward()
    netcdf.to_netcdf(ds, tmp_path / "a.nc")
    back = netcdf.open_netcdf(tmp_path / "a.nc")
    xr.testing.assert_identical(back, ds)
    assert back.attrs["tuple"] == (1, "a") and back.attrs["one"] == ["only"] and back.attrs["none"] is None
    assert back["mass"].attrs["meta"] == {"k": (1, 2)} and back["mass"].attrs["flag"] is True
    assert list(back["contexts"].values) == [(0, 1, 2), (0,), ("a", 1.5)]
    assert back["name"].dtype == np.dtype("<U3")


def test_plain_readers_see_plain_values(tmp_path):
    ds = _awkward()
    netcdf.to_netcdf(ds, tmp_path / "a.nc")
    with xr.open_dataset(tmp_path / "a.nc") as plain:
        # attrs a CF reader would interpret are hidden from it: no time decoding, no scaling
        np.testing.assert_array_equal(plain["mass"].values, [0.5, 0.25, 0.25])
        assert plain.attrs["text"] == "plain" and list(plain.attrs["numbers"]) == [1, 2, 3]


def test_groups_keep_each_array_as_it_was(tmp_path):
    da = xr.DataArray([1.0, 2.0], dims="unit", coords={"site": ("unit", ["a", "b"])}, name=None, attrs={"m": [1]})
    ds = _awkward()
    netcdf.write_groups(tmp_path / "g.nc", {"da": da, "ds": ds, "skipped": None}, attrs={"columns": ["c"]})
    groups, attrs = netcdf.read_groups(tmp_path / "g.nc")
    assert set(groups) == {"da", "ds"} and attrs == {"columns": ["c"]}
    xr.testing.assert_identical(groups["da"], da)
    assert groups["da"].name is None
    xr.testing.assert_identical(groups["ds"], ds)


def test_a_recording_and_its_pathways_use_the_one_encoding(tmp_path):
    net = T.k_minus_one_net(3, 4)
    ds = rp.record(net.model, net.X, coords=net.coords, values=True)
    pw = rp.find_pathways(ds, "context", "object")
    encoded = pw.to_dataset()
    assert netcdf.JSON_VALUES_KEY in encoded.attrs  # the context tuples, one JSON string each
    encoded.to_netcdf(tmp_path / "p.nc")
    with xr.open_dataset(tmp_path / "p.nc") as stored:
        back = rp.Pathways.from_dataset(stored.load())
    assert back.contexts == pw.contexts and back.within == pw.within
    xr.testing.assert_identical(back.membership, pw.membership)


def test_encoding_a_lazy_recording_computes_nothing(tmp_path):
    from dask.callbacks import Callback

    net = T.k_minus_one_net(3, 4)
    lazy = rp.record(net.model, net.X, coords=net.coords, values=True, store=tmp_path / "s.zarr")
    computes = []
    with Callback(start=lambda dsk, state: computes.append(len(dsk))):
        encoded = netcdf.encode(lazy)
    assert computes == [] and hasattr(encoded["gate"].data, "dask")
    netcdf.to_netcdf(lazy, tmp_path / "r.nc")
    xr.testing.assert_identical(netcdf.open_netcdf(tmp_path / "r.nc"), lazy.load())


def test_recordings_saved_by_earlier_versions_still_open(tmp_path):
    # earlier versions named the list-valued attrs in one space-separated string
    ds = rp.record(T.SequentialReLUNet(), T.toy_inputs(6))
    old = ds.copy()
    old.attrs = {**ds.attrs, "sites": ["1"], "relu_probe_list_attrs": "sites site_readouts site_shapes site_kinds"}
    old.attrs["site_readouts"], old.attrs["site_shapes"], old.attrs["site_kinds"] = ["2"], ["3"], ["dense"]
    old.to_netcdf(tmp_path / "old.nc", engine="netcdf4")
    back = netcdf.open_netcdf(tmp_path / "old.nc")
    assert back.attrs["sites"] == ["1"] and back.attrs["site_kinds"] == ["dense"]
    xr.testing.assert_equal(back, ds)


def test_a_name_netcdf_cannot_hold_is_refused_by_name_before_writing(tmp_path):
    from relu_probe.data.netcdf import to_netcdf
    from relu_probe.errors import ValueInputError

    ds = xr.Dataset({"gate": (("sample",), np.zeros(3))}, coords={"#task": ("sample", [0, 1, 2])})
    with pytest.raises(ValueInputError, match=r"'#task' cannot be saved to netCDF: its name begins with '#'"):
        to_netcdf(ds, tmp_path / "x.nc")
    assert not (tmp_path / "x.nc").exists()
