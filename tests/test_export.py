"""Export to rsatoolbox and the condition-mean (dPCA) array, on a hand-weighted network whose
activations are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe.errors import CoordError, ValueInputError
from _deps import require


@pytest.fixture(scope="module")
def rsatoolbox():
    return require("rsatoolbox")  # the rsa extra, part of the test extra: CI has it


def _net() -> nn.Module:
    """relu(W x) with W = [[1, 0], [0, 1], [1, -1]], then relu(1·h): sites "1" (3 units), "3" (1 unit)."""
    first, second = nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
        second.weight.fill_(1.0)
    return nn.Sequential(first, nn.ReLU(), second, nn.ReLU()).double()


X = torch.tensor([[1.0, 2.0], [3.0, 0.0], [-1.0, 1.0], [2.0, 2.0], [0.0, -3.0]], dtype=torch.float64)
COORDS = {"context": np.array(["a", "a", "a", "b", "b"], dtype=object), "object": np.array([0, 0, 1, 0, 2])}
# post-ReLU values worked out by hand: site "1" = relu(x1, x2, x1 - x2), site "3" = their sum
ACT = np.array([[1, 2, 0, 3], [3, 0, 3, 6], [0, 1, 0, 1], [2, 2, 0, 4], [0, 0, 3, 3]], dtype=float)
GATE = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 1], [0, 0, 1, 1]], dtype=float)  # 0 is off


@pytest.fixture(scope="module")
def ds():
    out = rp.record(_net(), X, coords=COORDS, values=True)
    np.testing.assert_array_equal(out.activation.values, ACT)
    return out


def test_to_rsatoolbox_keeps_values_and_every_coord_as_descriptors(ds, rsatoolbox):
    data = rp.to_rsatoolbox(ds)
    assert isinstance(data, rsatoolbox.data.Dataset)
    np.testing.assert_array_equal(data.measurements, ACT)
    assert data.measurements.dtype == np.float64
    np.testing.assert_array_equal(data.obs_descriptors["sample"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(data.obs_descriptors["context"], ["a", "a", "a", "b", "b"])
    assert data.obs_descriptors["context"].dtype.kind == "U"  # not object: rsatoolbox can save it
    np.testing.assert_array_equal(data.obs_descriptors["object"], [0, 0, 1, 0, 2])
    np.testing.assert_array_equal(data.channel_descriptors["site"], ["1", "1", "1", "3"])
    np.testing.assert_array_equal(data.channel_descriptors["neuron"], [0, 1, 2, 0])
    np.testing.assert_array_equal(data.channel_descriptors["unit"], [0, 1, 2, 3])
    assert data.descriptors["variable"] == "activation" and data.descriptors["model_class"] == "Sequential"
    assert "site" not in data.descriptors


def test_to_rsatoolbox_gates_and_one_site(ds, rsatoolbox):
    gates = rp.to_rsatoolbox(ds, variable="gate")
    np.testing.assert_array_equal(gates.measurements, GATE)
    one = rp.to_rsatoolbox(ds, sites="3")
    np.testing.assert_array_equal(one.measurements, ACT[:, 3:])
    assert one.descriptors["site"] == "3" and one.n_channel == 1


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # rsatoolbox averaging int descriptors
def test_rsatoolbox_computes_an_rdm_over_a_coord(ds, rsatoolbox):
    rdm = rsatoolbox.rdm.calc_rdm(rp.to_rsatoolbox(ds), method="euclidean", descriptor="context")
    # context means: a = (4/3, 1, 1, 10/3), b = (1, 1, 3/2, 7/2); squared distance 7/18 over 4 channels
    np.testing.assert_allclose(rdm.dissimilarities, [[7 / 72]], rtol=1e-12)
    np.testing.assert_array_equal(rdm.pattern_descriptors["context"], ["a", "b"])


def test_condition_means_are_cell_means_with_nan_for_empty_cells(ds):
    cm = rp.condition_means(ds, "context", "object")
    assert cm.dims == ("unit", "context", "object") and cm.name == "condition_mean"
    assert list(cm["context"].values) == ["a", "b"] and list(cm["object"].values) == [0, 1, 2]
    nan = np.nan
    expected = np.array([  # unit, context, object: cells (a,0) = mean of samples 0, 1 ...
        [[2.0, 0.0, nan], [2.0, nan, 0.0]],
        [[1.0, 1.0, nan], [2.0, nan, 0.0]],
        [[1.5, 0.0, nan], [0.0, nan, 3.0]],
        [[4.5, 1.0, nan], [4.0, nan, 3.0]],
    ])
    np.testing.assert_array_equal(cm.values, expected)
    np.testing.assert_array_equal(cm["n_samples"].values, [[2, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(cm["site"].values, ["1", "1", "1", "3"])
    p_on = rp.condition_means(ds, "context", "object", variable="gate")
    np.testing.assert_array_equal(p_on.values[:, 0, 0], [1.0, 0.5, 0.5, 1.0])  # P(on) in cell (a, 0)
    by_context = rp.condition_means(ds, "context", sites="1")
    np.testing.assert_allclose(by_context.values, [[4 / 3, 1.0], [1.0, 1.0], [1.0, 1.5]], rtol=1e-15)


def test_condition_means_of_a_store_equal_those_in_memory(tmp_path, ds):
    require("zarr")
    lazy = rp.record(_net(), X, coords=COORDS, values=True, store=tmp_path / "g.zarr", chunk_size=2)
    for variable in ("activation", "gate"):
        a = rp.condition_means(ds, "context", "object", variable=variable)
        b = rp.condition_means(lazy, "context", "object", variable=variable)
        np.testing.assert_array_equal(a.values, b.values)


def test_to_rsatoolbox_reads_a_store(tmp_path, rsatoolbox):
    require("zarr")
    lazy = rp.record(_net(), X, coords=COORDS, values=True, store=tmp_path / "g.zarr", chunk_size=2)
    data = rp.to_rsatoolbox(lazy, variable="gate")
    np.testing.assert_array_equal(data.measurements, GATE)
    np.testing.assert_array_equal(data.obs_descriptors["context"], ["a", "a", "a", "b", "b"])


def test_export_refuses_what_is_not_there(ds, rsatoolbox):
    gates_only = rp.record(_net(), X, coords=COORDS)
    with pytest.raises(ValueInputError, match="`variable`='activation'.*values=True"):
        rp.condition_means(gates_only, "context", variable="activation")
    with pytest.raises(ValueInputError, match="`variable`"):
        rp.to_rsatoolbox(ds, variable="spikes")
    with pytest.raises(CoordError, match="`by`='task'"):
        rp.condition_means(ds, "task")
    with pytest.raises(CoordError, match="`within` must differ"):
        rp.condition_means(ds, "context", "context")
    assert rp.to_rsatoolbox(gates_only).descriptors["variable"] == "gate"


def test_to_rsatoolbox_without_rsatoolbox_names_the_extra(ds, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rsatoolbox", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "rsatoolbox.data", None)
    with pytest.raises(ImportError, match=r"relu_probe\[rsa\]"):
        rp.to_rsatoolbox(ds)
