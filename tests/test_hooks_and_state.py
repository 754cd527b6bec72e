"""Hooks never leak and the model is left exactly as it was."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe import testing as T

FACTORIES = {
    "sequential": T.SequentialReLUNet,
    "functional": lambda: T.FunctionalReLUNet("torch.relu_"),
    "nested": T.NestedMixedNet,
    "conv": T.ToyConvNet,
}


def inputs_for(name):
    return T.ToyConvNet.images(6) if name == "conv" else T.toy_inputs(6)


@pytest.mark.parametrize("name", FACTORIES)
def test_no_hooks_after_normal_record(name):
    model = FACTORIES[name]()
    rp.record(model, inputs_for(name), batch_size=2)
    T.assert_no_hooks(model)


@pytest.mark.parametrize("name", FACTORIES)
def test_no_hooks_after_user_exception_inside_recorder(name):
    model = FACTORIES[name]()
    with pytest.raises(KeyError, match="user"):
        with rp.Recorder(model):
            model(inputs_for(name))
            raise KeyError("user")
    T.assert_no_hooks(model)


@pytest.mark.parametrize("first_pass", [True, False])
def test_no_hooks_after_forward_raises(first_pass):
    model = T.FailingNet()
    x = T.toy_inputs(8)
    x[6, 0] = 99
    with pytest.raises(rp.errors.ForwardError) as info:
        rp.record(model, x if not first_pass else x[6:], batch_size=3)
    assert isinstance(info.value.__cause__, ValueError)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "ValueError" in message and "poisoned sample" in message
    assert "last ReLU site reached: '1'" in message
    assert ("batch 2 (samples 6–7)" in message) if not first_pass else ("batch 0" in message)
    T.assert_no_hooks(model)


def test_forward_raising_inside_user_recorder_drops_the_partial_pass():
    model = T.FailingNet()
    x = T.toy_inputs(4)
    bad = x.clone()
    bad[0, 0] = 99
    with rp.Recorder(model) as rec:
        model(x)
        with pytest.raises(ValueError):
            model(bad)
        model(x)
    assert rec.n_samples == 8
    T.assert_no_hooks(model)


def test_nested_recorders_both_record_and_both_clean_up():
    model = T.NestedMixedNet()
    x = T.toy_inputs(5)
    with rp.Recorder(model, sites="block.act") as outer:
        with rp.Recorder(model) as inner:
            model(x)
        model(x)
    T.assert_no_hooks(model)
    assert inner.n_samples == 5 and outer.n_samples == 10
    assert inner.sites == list(model.expected_gates(x))
    expected = model.expected_gates(x)
    ds_inner = inner.to_dataset()
    for site in inner.sites:
        assert (ds_inner.gate.sel(unit=ds_inner.site == site).values == expected[site]).all()


def test_recorder_survives_hook_leak_matrix_with_exceptions_in_nested_blocks():
    model = T.FunctionalReLUNet("F.relu")
    x = T.toy_inputs(3)
    with pytest.raises(RuntimeError, match="inner boom"):
        with rp.Recorder(model):
            with rp.Recorder(model, sites="block::*"):
                model(x)
                raise RuntimeError("inner boom")
    T.assert_no_hooks(model)
    assert torch.overrides._get_current_function_mode_stack() == []


def test_model_state_unchanged_after_record():
    model = nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3)
    ).double()
    model.train()
    model[4].weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    ds = rp.record(model, T.toy_inputs(10))
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # BN running stats untouched too
    assert all(p.grad is None for p in model.parameters())
    # recording ran in eval mode: dropout off, so a second record is identical
    assert (rp.record(model, T.toy_inputs(10)).gate.values == ds.gate.values).all()
    T.assert_no_hooks(model)


def test_model_state_restored_when_forward_raises():
    model = T.FailingNet()
    model.train()
    x = T.toy_inputs(2)
    x[0, 0] = 99
    with pytest.raises(rp.errors.ForwardError):
        rp.record(model, x)
    assert all(m.training for m in model.modules())


def test_recording_runs_without_autograd():
    model = T.SequentialReLUNet()
    seen = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.requires_grad))
    rp.record(model, T.toy_inputs(3))
    assert seen == [False]


def test_count_hooks_reports_leaks():
    model = T.SequentialReLUNet()
    handle = model[1].register_forward_pre_hook(lambda m, a: None)
    with pytest.raises(AssertionError, match="1:_forward_pre_hooks=1"):
        T.assert_no_hooks(model)
    handle.remove()
    T.assert_no_hooks(model)


def test_user_hooks_survive_recording():
    model = T.SequentialReLUNet()
    calls = []
    model[1].register_forward_hook(lambda m, a, out: calls.append(1))
    rp.record(model, T.toy_inputs(4), batch_size=2)
    assert calls == [1, 1]
    assert T.count_hooks(model) == {"1:_forward_hooks": 1}
