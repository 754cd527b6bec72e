"""rp.unit_importance: readout (Linear / Conv / flattened conv), conductance, activity, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe.data.schema import site_attr
from relu_probe.errors import DegenerateDataWarning, InputError, ValueInputError
from relu_probe.pathways.importance import default_importance, default_importance_method, readout_gaps
from relu_probe.testing import ToyConvNet, k_minus_one_net, modular_net


def _record(net, values=True, **kw):
    return rp.record(net.model, net.X, coords=net.coords, values=values, **kw)


def _scaled_readout(net, scale):
    with torch.no_grad():
        net.model[2].weight.mul_(torch.as_tensor(scale)[None, :])
    return net


def test_readout_is_weight_norm_times_mean_activation():
    net = k_minus_one_net(3, 4)
    scale = np.linspace(0.5, 3.0, net.model[2].weight.shape[1])
    _scaled_readout(net, scale)
    ds = _record(net)
    imp = rp.unit_importance(net.model, ds)
    # identity readout scaled per column: outgoing norm = scale; mean activation known
    expected = scale * net.expected["importance"]
    np.testing.assert_allclose(imp.values, expected / expected.sum(), rtol=1e-12)
    assert imp.dims == ("unit",) and imp.name == "importance"
    assert imp.attrs["method"] == "readout"
    assert list(imp["site"].values) == list(ds["site"].values)
    assert imp.sum() == pytest.approx(1.0)


def test_readout_with_gates_only_uses_gate_rate():
    net = modular_net(3, 4)
    scale = np.arange(1, 13, dtype=float)
    _scaled_readout(net, scale)
    ds = _record(net, values=False)
    assert "activation" not in ds
    imp = rp.unit_importance(net.model, ds)
    # every unit is on for exactly one of the 12 samples: gate rate 1/12 for all
    np.testing.assert_allclose(imp.values, scale / scale.sum(), rtol=1e-12)


def test_activity_importance_needs_no_model():
    net = k_minus_one_net(3, 4)
    ds = _record(net)
    imp = rp.unit_importance(None, ds, method="activity")
    np.testing.assert_allclose(imp.values, net.expected["importance"], rtol=1e-12)


def _relu_net(seed=0, n_in=5, hidden=6, n_out=3):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(n_in, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, n_out, bias=False)).double()
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64))
    X = torch.randn(10, n_in, generator=g, dtype=torch.float64)
    return model, X


def test_conductance_matches_closed_form_for_bias_free_relu_net():
    # Bias-free: h(a x) = a h(x), y(a x) = a y(x). For F = ½‖y‖² the conductance of unit u is
    # ∫ a (yᵀ W2[:,u]) h_u da = ½ (yᵀ W2[:,u]) h_u, integrated exactly by Gauss–Legendre.
    model, X = _relu_net()
    ds = rp.record(model, X, values=True)
    imp = rp.unit_importance(model, ds, method="conductance", inputs=X)
    with torch.no_grad():
        h = model[1](model[0](X))
        y = model(X)
        W2 = model[2].weight
        cond = 0.5 * (y @ W2) * h
    expected = cond.abs().mean(0).numpy()
    np.testing.assert_allclose(imp.values, expected / expected.sum(), rtol=1e-9)
    assert imp.attrs["method"] == "conductance"


def test_conductance_with_target_and_batches():
    model, X = _relu_net(seed=1)
    ds = rp.record(model, X)
    imp = rp.unit_importance(model, ds, method="conductance", inputs=X, target=2, batch_size=3)
    with torch.no_grad():
        h = model[1](model[0](X))
        expected = (model[2].weight[2] * h).abs().mean(0).numpy()
    np.testing.assert_allclose(imp.values, expected / expected.sum(), rtol=1e-9)
    assert model.training  # mode restored


def test_readout_through_flatten_uses_the_elements_column():
    model = ToyConvNet()
    with torch.no_grad():
        model.head.weight.copy_(torch.arange(1.0, 9.0, dtype=torch.float64)[None, :])
    X = ToyConvNet.images(16)
    ds = rp.record(model, X, values=True)
    assert ds.attrs["site_readouts"] == ["head"]
    imp = rp.unit_importance(model, ds)
    act = ds["activation"].values.astype(np.float64).mean(0)
    expected = np.arange(1.0, 9.0)[ds["neuron"].values] * act
    np.testing.assert_allclose(imp.values, expected / expected.sum(), rtol=1e-6)


def test_readout_through_flatten_with_channel_units():
    model = ToyConvNet()
    with torch.no_grad():
        model.head.weight.copy_(torch.arange(1.0, 9.0, dtype=torch.float64)[None, :])
    X = ToyConvNet.images(16)
    ds = rp.record(model, X, values=True, units="channel")
    imp = rp.unit_importance(model, ds)
    w = np.arange(1.0, 9.0).reshape(2, 4)
    norms = np.linalg.norm(w, axis=1)
    act = ds["activation"].values.astype(np.float64).mean(0)
    expected = norms * act
    np.testing.assert_allclose(imp.values, expected / expected.sum(), rtol=1e-6)


class _ConvConv(nn.Module):
    def __init__(self, groups: int = 1):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv = nn.Conv1d(2, 4, 3, bias=False).double()
        self.act = nn.ReLU()
        self.head = nn.Conv1d(4, 2 * groups, 2, groups=groups, bias=False).double()
        with torch.no_grad():
            for layer in (self.conv, self.head):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64))

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("units", ["element", "channel"])
def test_readout_conv_uses_channel_outgoing_norm(groups, units):
    model = _ConvConv(groups)
    X = torch.randn(12, 2, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ds = rp.record(model, X, values=True, units=units)
    assert ds.attrs["site_readouts"] == ["head"]
    imp = rp.unit_importance(model, ds)
    W = model.head.weight.detach().numpy()  # (out, in/groups, k)
    in_per_group = W.shape[1]
    out_per_group = W.shape[0] // groups
    norms = np.array(
        [
            np.linalg.norm(W[(c // in_per_group) * out_per_group : (c // in_per_group + 1) * out_per_group, c % in_per_group])
            for c in range(4)
        ]
    )
    act = ds["activation"].values.astype(np.float64).mean(0)
    expected = norms[ds["channel"].values] * act
    np.testing.assert_allclose(imp.values, expected / expected.sum(), rtol=1e-6)


def test_all_off_gives_uniform_with_warning():
    net = modular_net(3, 4)
    with torch.no_grad():
        net.model[0].weight.fill_(-1.0)
    ds = _record(net)
    with pytest.warns(DegenerateDataWarning, match="uniform"):
        imp = rp.unit_importance(net.model, ds)
    np.testing.assert_allclose(imp.values, 1.0 / 12)


def test_errors():
    net = modular_net(3, 4)
    ds = _record(net)
    with pytest.raises(ValueInputError, match="method"):
        rp.unit_importance(net.model, ds, method="bogus")
    with pytest.raises(InputError, match="model"):
        rp.unit_importance(None, ds)
    with pytest.raises(InputError, match="xarray.Dataset"):
        rp.unit_importance(net.model, ds["gate"])
    with pytest.raises(ValueInputError, match="inputs"):
        rp.unit_importance(net.model, ds, method="conductance")
    with pytest.raises(ValueInputError, match="12 recorded samples"):
        rp.unit_importance(net.model, ds, method="conductance", inputs=net.X[:5])
    no_readout = ds.assign_attrs(site_readouts=[""])
    with pytest.raises(ValueInputError, match="conductance"):
        rp.unit_importance(net.model, no_readout)
    wrong_model = nn.Sequential(nn.Linear(7, 12), nn.ReLU())
    with pytest.raises(ValueInputError, match="not in `model`"):
        rp.unit_importance(wrong_model, ds)


def test_conductance_reads_functional_sites_like_modules():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.out = nn.Linear(4, 1)

        def forward(self, x):
            return self.out(torch.relu(self.fc(x)))

    model = Functional()
    as_module = nn.Sequential(model.fc, nn.ReLU(), model.out)  # the same weights, an nn.ReLU module
    X = torch.randn(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = rp.record(model, X)
    imp = rp.unit_importance(model, ds, method="conductance", inputs=X, n_steps=16)
    ref = rp.unit_importance(as_module, rp.record(as_module, X), method="conductance", inputs=X, n_steps=16)
    np.testing.assert_allclose(imp.values, ref.values, atol=1e-7)
    # readout still works: the recorder found the consuming Linear
    imp = rp.unit_importance(model, ds)
    assert imp.sum() == pytest.approx(1.0) and (imp >= 0).all()


class _SkipNet(nn.Module):
    """``out = head(r2(fc2(h))) + skip(h)``, ``h = r1(fc1(x))``: site ``r1`` is read by two
    Linears (fc2 and a skip head); unit 0 of ``r1`` reaches the output only through ``skip``."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3, bias=False)
        self.r1 = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.r2 = nn.ReLU()
        self.head = nn.Linear(2, 1, bias=False)
        self.skip = nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.eye(3))
            self.fc2.weight.copy_(torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 4.0]]))
            self.skip.weight.copy_(torch.tensor([[12.0, 4.0, 0.0]]))
            self.head.weight.copy_(torch.tensor([[1.0, 2.0]]))

    def forward(self, x):
        h = self.r1(self.fc1(x))
        return self.head(self.r2(self.fc2(h))) + self.skip(h)


_SKIP_X = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
# r1: activations = X, mean [2, 2, 2]; outgoing norms ‖[W_fc2; W_skip][:, u]‖ = [12, 5, 4]
#     (fc2 alone: [0, 3, 4], which would give unit 0 no importance) -> I ∝ [24, 10, 8]
# r2: fc2 outputs [6, 12], [6, 4] -> mean [6, 8]; head norms [1, 2] -> I ∝ [6, 16]
_SKIP_EXPECTED = {"r1": np.array([24.0, 10.0, 8.0]) / 42, "r2": np.array([6.0, 16.0]) / 22}


def _per_site(imp):
    return {site: imp.values[imp["site"].values == site] for site in ("r1", "r2")}


def test_readout_norm_stacks_every_linear_reading_the_site(tmp_path):
    net = _SkipNet()
    ds = rp.record(net, _SKIP_X, values=True)
    assert ds.attrs["site_readouts"] == ["fc2 + skip", "head"]
    assert ds.attrs["site_other_readers"] == ["", ""]
    assert default_importance_method(net, ds) == "readout"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every reader is a readout: nothing to warn about
        per_site = {s: rp.unit_importance(net, ds.sel(unit=ds.site == s)).values for s in ("r1", "r2")}
    for site, expected in _SKIP_EXPECTED.items():
        np.testing.assert_allclose(per_site[site], expected, rtol=1e-12)
    whole = _per_site(rp.unit_importance(net, ds))
    np.testing.assert_allclose(whole["r1"] / whole["r1"].sum(), _SKIP_EXPECTED["r1"], rtol=1e-12)
    # the readouts survive a zarr store and a netCDF file
    stored = rp.record(net, _SKIP_X, values=True, store=tmp_path / "skip.zarr")
    rp.io.to_netcdf(ds, tmp_path / "skip.nc")
    for loaded in (stored, rp.load(tmp_path / "skip.zarr"), rp.io.open_netcdf(tmp_path / "skip.nc")):
        assert list(site_attr(loaded, "site_readouts")) == ["fc2 + skip", "head"]
        assert list(site_attr(loaded, "site_other_readers")) == ["", ""]
        np.testing.assert_allclose(rp.unit_importance(net, loaded).values, rp.unit_importance(net, ds).values,
                                   rtol=1e-12)


def test_recording_written_with_one_readout_per_site_still_loads():
    net = _SkipNet()
    ds = rp.record(net, _SKIP_X, values=True)
    ds.attrs["site_readouts"] = ["fc2", "head"]  # what recordings stored before every readout was kept
    ds.attrs.pop("site_other_readers", None)
    assert default_importance_method(net, ds) == "readout"
    r1 = rp.unit_importance(net, ds.sel(unit=ds.site == "r1")).values
    np.testing.assert_allclose(r1, np.array([0.0, 6.0, 8.0]) / 14, rtol=1e-12)  # fc2's columns only


class _ResidualReadNet(nn.Module):
    """``h = r(fc1(x))`` is read by ``fc2`` and, unweighted, by the residual sum ``h + fc2(h)``."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3, bias=False)
        self.r = nn.ReLU()
        self.fc2 = nn.Linear(3, 3, bias=False)
        self.head = nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.eye(3))
            self.fc2.weight.copy_(torch.diag(torch.tensor([0.0, 3.0, 4.0])))
            self.head.weight.fill_(1.0)

    def forward(self, x):
        h = self.r(self.fc1(x))
        return self.head(h + self.fc2(h))


def test_site_also_read_outside_a_readout_falls_back_to_activity_by_default():
    net = _ResidualReadNet()
    ds = rp.record(net, _SKIP_X, values=True)
    assert ds.attrs["site_readouts"] == ["fc2"]
    assert ds.attrs["site_other_readers"] == ["add"]
    gaps = readout_gaps(ds)
    assert list(gaps) == ["r"] and "add" in gaps["r"] and "fc2" in gaps["r"]
    assert default_importance_method(net, ds) == "activity"
    imp = default_importance(net, ds)
    assert imp.attrs["method"] == "activity"
    np.testing.assert_allclose(imp.values, np.full(3, 1 / 3), rtol=1e-12)  # mean activations [2, 2, 2]
    # asked for explicitly, the readout importance says what it leaves out
    with pytest.warns(UserWarning, match=r"site 'r' is read by add besides fc2"):
        explicit = rp.unit_importance(net, ds, method="readout")
    np.testing.assert_allclose(explicit.values, np.array([0.0, 3.0, 4.0]) / 7, rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # two samples, constant gates: expected
        res = rp.analyze(net, _SKIP_X, coords={"c": np.array([0, 1])}, by="c", null=0, literature=False,
                         attribution=False)
    assert res.pathways.importance.attrs["method"] == "activity"
    assert any("also read by add" in note for note in res.notes)


class _FreedOutputNet(nn.Module):
    """``h = r(fc1(x))`` is read by a sum and then freed; a new tensor (often at h's freed
    address) is what ``head`` reads. ``head`` is no readout of ``r``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.fc1, self.r, self.head = nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 1)
        self.reused: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.r(self.fc1(x))
        y = h.sum(1, keepdim=True)
        address = h.data_ptr()
        del h
        z = torch.empty(len(x), self.width)
        z.fill_(1.0)
        z.mul_(y)
        self.reused.append(z.data_ptr() == address)
        return self.head(z)


def test_a_freed_site_output_is_not_matched_by_new_data_at_its_address():
    """Site outputs are matched by address and size; the allocator hands a freed output's
    memory to later tensors (here, for some widths, to the one ``head`` reads). That new data is
    recognised as such: the site has no readout, only the sum reads it."""
    reused = []
    for width in (64, 128, 256, 512, 1024):
        model = _FreedOutputNet(width)
        ds = rp.record(model, torch.randn(32, 4))
        reused += model.reused
        assert list(ds.attrs["site_readouts"]) == [""], width
        assert list(ds.attrs["site_other_readers"]) == ["sum"], width
    print(f"address reused in {sum(reused)} of {len(reused)} passes")
