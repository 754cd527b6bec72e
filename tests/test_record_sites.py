"""Every ReLU call style is recorded with exactly the gates computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe import testing as T


def site_block(ds, site, var="gate"):
    return ds[var].sel(unit=ds.site == site).values


MODELS = [
    ("sequential", T.SequentialReLUNet, T.toy_inputs),
    ("inplace", T.InplaceReLUNet, T.toy_inputs),
    ("reused", T.ReusedReLUNet, T.toy_inputs),
    ("modulelist", T.ModuleListNet, T.toy_inputs),
    ("leaky", T.LeakyReLUNet, T.toy_inputs),
    ("nested-mixed", T.NestedMixedNet, T.toy_inputs),
    ("conv", T.ToyConvNet, T.ToyConvNet.images),
    ("sequence", T.ToySequenceNet, T.ToySequenceNet.tokens),
] + [(f"functional-{s}", (lambda s=s: T.FunctionalReLUNet(s)), T.toy_inputs) for s in T.FUNCTIONAL_STYLES]


@pytest.mark.parametrize("name,factory,make_inputs", MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("batch_size", [1, 5, None])
def test_gates_match_hand_computation(name, factory, make_inputs, batch_size):
    model = factory()
    x = make_inputs()
    ds = rp.record(model, x, batch_size=batch_size)
    expected = model.expected_gates(x)
    assert ds.attrs["sites"] == list(expected)
    assert ds.gate.dtype == bool
    assert ds.sizes["sample"] == len(x)
    for site, gates in expected.items():
        np.testing.assert_array_equal(site_block(ds, site), gates, err_msg=f"{name}: site {site}")
    T.assert_no_hooks(model)


@pytest.mark.parametrize("name,factory,make_inputs", MODELS[:3], ids=[m[0] for m in MODELS[:3]])
def test_list_sites_matches_recorded_sites(name, factory, make_inputs):
    model = factory()
    x = make_inputs()
    assert rp.list_sites(model, x[:2]) == list(model.expected_gates(x))
    T.assert_no_hooks(model)


def test_values_are_post_relu_activations_even_in_place():
    model = T.InplaceReLUNet()
    x = T.toy_inputs()
    ds = rp.record(model, x, values=True)
    assert ds.activation.dtype == np.float32
    for site, values in model.expected_values(x).items():
        np.testing.assert_allclose(site_block(ds, site, "activation"), values, rtol=0, atol=1e-6)


def test_leaky_relu_values_keep_the_negative_slope():
    model = T.LeakyReLUNet()
    x = T.toy_inputs()
    ds = rp.record(model, x, values=True)
    np.testing.assert_allclose(site_block(ds, "1", "activation"), model.expected_values(x)["1"], atol=1e-6)
    np.testing.assert_array_equal(site_block(ds, "1"), model.expected_gates(x)["1"])


def test_conv_element_units_have_channel_and_position_coords():
    model = T.ToyConvNet()
    x = T.ToyConvNet.images(7)
    ds = rp.record(model, x)
    assert ds.sizes["unit"] == 8
    np.testing.assert_array_equal(ds.channel.values, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(ds.position.values, [0, 1, 2, 3, 0, 1, 2, 3])
    assert ds.attrs["site_kinds"] == ["conv"]
    assert ds.attrs["site_readouts"] == ["head"]


def test_conv_channel_units_store_fraction_of_active_positions():
    model = T.ToyConvNet()
    x = T.ToyConvNet.images(9)
    ds = rp.record(model, x, units="channel", values=True)
    assert "gate" not in ds and ds.gate_rate.dtype == np.float32
    np.testing.assert_allclose(ds.gate_rate.values, model.expected_gate_rate(x)["act"], atol=1e-7)
    z = model.pre_activation(x)
    np.testing.assert_allclose(ds.activation.values, np.maximum(z, 0).reshape(9, 2, -1).mean(2), atol=1e-6)
    np.testing.assert_array_equal(ds.position.values, [-1, -1])


def test_sequence_sites_are_channel_last():
    model = T.ToySequenceNet()
    x = T.ToySequenceNet.tokens(6, length=4)
    ds = rp.record(model, x)
    assert ds.attrs["site_kinds"] == ["sequence"]
    # units in the tensor's own (position-major) order: unit 3 t + c is channel c at position t
    np.testing.assert_array_equal(ds.channel.values, np.tile([0, 1, 2], 4))
    np.testing.assert_array_equal(ds.position.values, np.repeat([0, 1, 2, 3], 3))
    ds_c = rp.record(model, x, units="channel")
    np.testing.assert_allclose(ds_c.gate_rate.values, model.expected_gate_rate(x)["act"], atol=1e-7)


def test_channel_dim_override():
    model = T.ToySequenceNet()
    x = T.ToySequenceNet.tokens(3, length=4)
    ds = rp.record(model, x, channel_dim=1, units="channel")
    # channel-first reading of (n, T=4, C=3): 4 "channels" (the tokens) of 3 positions each
    assert ds.sizes["unit"] == 4


def test_selection_by_name_glob_type_and_predicate():
    model = T.NestedMixedNet()
    x = T.toy_inputs()
    by_name = rp.record(model, x, sites="block.act#1")
    assert by_name.attrs["sites"] == ["block.act#1"]
    all_calls = rp.record(model, x, sites="block.act")
    assert all_calls.attrs["sites"] == ["block.act#0", "block.act#1"]
    by_glob = rp.record(model, x, sites="block#*::*")
    assert by_glob.attrs["sites"] == ["block#0::relu#0", "block#1::relu#0"]
    by_type = rp.record(model, x, sites=nn.ReLU)
    assert by_type.attrs["sites"] == ["fc_act", "block#0::relu#0", "block.act#0", "block#1::relu#0", "block.act#1"]
    by_predicate = rp.record(model, x, sites=lambda s: s.kind == "module" and s.call == 0)
    assert by_predicate.attrs["sites"] == ["fc_act", "block.act#0"]
    mixed = rp.record(model, x, sites=["fc_act", "*::relu#0"])
    assert mixed.attrs["sites"] == ["fc_act", "block#0::relu#0", "block#1::relu#0"]
    expected = model.expected_gates(x)
    for site in mixed.attrs["sites"]:
        np.testing.assert_array_equal(site_block(mixed, site), expected[site])
    T.assert_no_hooks(model)


def test_opt_in_activation_type():
    model = nn.Sequential(nn.Linear(4, 3, bias=False).double(), nn.GELU())
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(T.A_WEIGHTS))
    x = T.toy_inputs()
    ds = rp.record(model, x, sites=[nn.GELU])
    np.testing.assert_array_equal(ds.gate.values, (x.numpy() @ T.A_WEIGHTS.T) > 0)


def test_units_ordered_by_first_call_then_neuron():
    model = T.SequentialReLUNet()
    ds = rp.record(model, T.toy_inputs())
    assert list(ds.site.values) == ["1", "1", "1", "3", "3"]
    assert list(ds.neuron.values) == [0, 1, 2, 0, 1]
    assert list(ds.unit.values) == [0, 1, 2, 3, 4]


def test_recorder_in_a_user_loop_with_training_mode_and_grads():
    model = T.SequentialReLUNet()
    model.train()
    x = T.toy_inputs(20)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with rp.Recorder(model) as rec:
        for batch in x.split(6):
            loss = model(batch).pow(2).sum()
            loss.backward()  # autograd still works while recording
            opt.step()
    assert model.training
    ds = rec.to_dataset(coords={"parity": (np.arange(20) % 2).astype(bool)})
    np.testing.assert_array_equal(site_block(ds, "1"), model.expected_gates(x)["1"])
    assert ds.parity.dtype == bool
    T.assert_no_hooks(model)


def test_dict_and_tuple_batches_and_dataloader():
    model = T.SequentialReLUNet()
    x = T.toy_inputs(12)
    expected = model.expected_gates(x)["1"]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(12)), batch_size=5)
    for inputs, kwargs in [
        (loader, {}),
        ([x[:7], x[7:]], {}),
        ([(x[:4], 0), (x[4:], 1)], {}),
        ([{"pixels": x[:3], "label": 0}, {"pixels": x[3:], "label": 1}], {"input_key": "pixels"}),
        (x.numpy(), {}),
    ]:
        ds = rp.record(model, inputs, **kwargs)
        np.testing.assert_array_equal(site_block(ds, "1"), expected)


def test_dict_batches_without_input_key_become_keyword_arguments():
    class KwNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = T.SequentialReLUNet()

        def forward(self, input_ids, attention_mask=None):
            return self.inner(input_ids)

    model = KwNet()
    x = T.toy_inputs(6)
    ds = rp.record(model, [{"input_ids": x, "attention_mask": torch.ones(6)}])
    np.testing.assert_array_equal(site_block(ds, "inner.1"), T.SequentialReLUNet.expected_gates(x)["1"])


def test_dataparallel_and_ddp_are_unwrapped():
    model = T.SequentialReLUNet()
    x = T.toy_inputs()
    ds = rp.record(nn.DataParallel(model), x)
    assert ds.attrs["sites"] == ["1", "3"]
    assert ds.attrs["model_class"] == "SequentialReLUNet"
    T.assert_no_hooks(model)


def test_torch_compiled_model_records_through_original_module():
    model = T.SequentialReLUNet()
    compiled = torch.compile(model)
    x = T.toy_inputs()
    ds = rp.record(compiled, x)
    np.testing.assert_array_equal(site_block(ds, "3"), model.expected_gates(x)["3"])
    with pytest.raises(rp.errors.InputError, match="_orig_mod"):
        rp.Recorder(compiled)
    T.assert_no_hooks(model)


def test_gates_land_on_cpu_and_coords_of_any_dtype():
    model = T.SequentialReLUNet()
    x = T.toy_inputs(4)
    coords = {"name": np.array(["a", "b", "c", "d"]), "value": [0.5, 1.5, 2.5, 3.5], "tensor": torch.arange(4)}
    ds = rp.record(model, x, coords=coords)
    assert list(ds.name.values) == ["a", "b", "c", "d"]
    assert ds.value.dtype == np.float64
    np.testing.assert_array_equal(ds.tensor.values, np.arange(4))
    assert isinstance(ds.gate.values, np.ndarray)


def test_distributed_data_parallel_is_unwrapped():
    import socket

    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        model = T.SequentialReLUNet()
        x = T.toy_inputs()
        ds = rp.record(nn.parallel.DistributedDataParallel(model), x)
        np.testing.assert_array_equal(site_block(ds, "1"), model.expected_gates(x)["1"])
        assert ds.attrs["model_class"] == "SequentialReLUNet"
    finally:
        dist.destroy_process_group()
    T.assert_no_hooks(model)
