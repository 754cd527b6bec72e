"""Every bad input gets one clear error that names the argument, what was expected and what came."""

from __future__ import annotations

import warnings
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe import errors
from relu_probe import testing as T


def test_model_without_relu():
    with pytest.raises(errors.NoSitesError, match="no ReLU site") as info:
        rp.record(T.NoReLUNet(), T.toy_inputs())
    assert isinstance(info.value, ValueError)
    assert "NoReLUNet" in str(info.value)


def test_unknown_site_lists_closest():
    with pytest.raises(errors.SiteNotFoundError, match=r"Closest sites: 'block\.act#0'") as info:
        rp.record(T.NestedMixedNet(), T.toy_inputs(), sites="block.actt#0")
    assert isinstance(info.value, LookupError)


def test_glob_matching_nothing():
    with pytest.raises(errors.NoSitesError, match="matched no recording site"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(), sites="encoder.*")


def test_bad_selector_type():
    with pytest.raises(errors.InputError, match="`sites` must be"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(), sites=[3.5])


def test_site_that_never_fires_after_the_first_pass():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ReLU()
            self.b = nn.ReLU()

        def forward(self, x):
            x = self.a(x)
            return self.b(x) if x.shape[0] > 2 else x

    with pytest.raises(errors.SiteNeverFiredError, match=r"\['b'\] did not fire in forward pass 1"):
        rp.record(Branchy(), torch.randn(5, 3), batch_size=3)


@pytest.mark.parametrize("coords,match", [
    ({"context": np.arange(3)}, r"`coords\['context'\]` has 3 values, expected 6"),
    ({"context": 1}, "got a scalar"),
    ({"gate": np.arange(6)}, "reserved"),
    ([1, 2], "must be a mapping"),
    ({"m": np.zeros((6, 2))}, "must be 1-D"),
])
def test_bad_coords(coords, match):
    with pytest.raises((errors.CoordError, errors.InputError), match=match):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(6), coords=coords)


@pytest.mark.parametrize("inputs", [torch.zeros(0, 4, dtype=torch.float64), [], iter([])])
def test_empty_inputs(inputs):
    with pytest.raises(errors.ValueInputError, match="`inputs` is empty"):
        rp.record(T.SequentialReLUNet(), inputs)


@pytest.mark.parametrize("inputs,match", [
    (["not a tensor"], "`inputs` batch 0 is str"),
    ([("text", 1)], "first item is str"),
    ("a string", "`inputs` must be a Tensor"),
    ({"x": "text"}, "dict without tensors"),
    (42, "`inputs` must be a Tensor"),
    ([{"x": torch.zeros(2, 4)}], None),
    ({"x": torch.zeros(2, 4)}, None),
])
def test_batches_that_are_not_tensors(inputs, match):
    if match is None:  # dict batch (or dict of tensors) with a wrong input_key
        with pytest.raises(errors.InputError, match="input_key='pixels'"):
            rp.record(T.SequentialReLUNet(), inputs, input_key="pixels")
        return
    with pytest.raises(errors.InputError, match=match) as info:
        rp.record(T.SequentialReLUNet(), inputs)
    assert isinstance(info.value, TypeError)


def test_nan_and_inf_preactivations_warn_with_counts_per_site():
    x = T.toy_inputs(6)
    x[0, 0] = float("nan")
    x[1, 2] = float("inf")
    with pytest.warns(errors.NonFiniteWarning, match=r"'1': \d+, '3': \d+") as record:
        ds = rp.record(T.SequentialReLUNet(), x)
    message = str(record[0].message)
    z1 = x.numpy() @ T.A_WEIGHTS.T
    assert f"'1': {int((~np.isfinite(z1)).sum())}" in message
    # sample 0 has NaN pre-activations everywhere (0 * NaN = NaN): NaN > 0 is False, so off
    assert not ds.gate.values[0].any()


def test_bad_units_and_batch_size():
    with pytest.raises(errors.ValueInputError, match="`units` must be one of 'element', 'channel'; got 'pixel'"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(), units="pixel")
    with pytest.raises(errors.ValueInputError, match="`batch_size` must be an integer >= 1, got 0"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(), batch_size=0)
    with pytest.raises(errors.InputError, match="`batch_size` must be an integer, got float"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(), batch_size=2.5)


def test_not_a_model():
    with pytest.raises(errors.InputError, match="`model` must be a torch.nn.Module, got function"):
        rp.record(lambda x: x, T.toy_inputs())


def test_torchscript_model_refused_with_guidance():
    scripted = torch.jit.script(T.SequentialReLUNet())
    with pytest.raises(errors.InputError, match="TorchScript"):
        rp.record(scripted, T.toy_inputs())


def test_variable_shape_with_element_units_suggests_channel_units():
    model = T.ToySequenceNet()
    batches = [T.ToySequenceNet.tokens(2, length=3), T.ToySequenceNet.tokens(2, length=5)]
    with pytest.raises(errors.ValueInputError, match="units='channel'"):
        rp.record(model, batches)
    ds = rp.record(model, batches, units="channel")
    assert ds.sizes == {"sample": 4, "unit": 3}
    T.assert_no_hooks(model)


def test_to_dataset_before_any_pass():
    with rp.Recorder(T.SequentialReLUNet()) as rec:
        pass
    with pytest.raises(errors.ValueInputError, match="no forward pass was recorded"):
        rec.to_dataset()


def test_every_error_is_a_relu_probe_error():
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, errors.ReluProbeError)


class MaskedNaN(torch.nn.Module):
    """A NaN pre-activation at site "act" that never reaches the output (masked away)."""

    def __init__(self):
        super().__init__()
        self.act = torch.nn.ReLU()

    def forward(self, x):
        h = self.act(x)
        return torch.where(torch.isnan(h), torch.zeros_like(h), h).sum(1)


def test_check_finite_modes():
    x = T.toy_inputs(6)
    x[2, 1] = float("nan")
    # "auto": the NaN reaches the output, so the batch is re-run and counted per site
    with pytest.warns(errors.NonFiniteWarning) as auto:
        rp.record(T.SequentialReLUNet(), x, batch_size=2)
    with pytest.warns(errors.NonFiniteWarning) as every:
        rp.record(T.SequentialReLUNet(), x, batch_size=2, check_finite=True)
    assert str(auto[0].message) == str(every[0].message)
    # a NaN masked before the output: only the per-site check sees it
    masked = torch.zeros(4, 3, dtype=torch.float64)
    masked[1, 2] = float("nan")
    with pytest.warns(errors.NonFiniteWarning, match="'act': 1"):
        ds = rp.record(MaskedNaN(), masked, check_finite=True)
    assert not ds.gate.values[1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rp.record(MaskedNaN(), masked)                      # auto: output is finite
        rp.record(T.SequentialReLUNet(), x, check_finite=False)
    with rp.Recorder(MaskedNaN()) as rec:                   # user loops check every site
        rec.model(masked)
    assert rec.nonfinite == {"act": 1}
    with pytest.raises(errors.ValueInputError, match="`check_finite` must be"):
        rp.record(T.SequentialReLUNet(), x, check_finite="sometimes")


@dataclass
class DataclassOutput:
    logits: torch.Tensor
    hidden: torch.Tensor | None = None
    owner: object = None


class SlotsOutput:
    __slots__ = ("logits",)

    def __init__(self, logits):
        self.logits = logits


class AttributeOutput:
    def __init__(self, logits):
        self.extras = {"scale": 1.0}
        self.logits = logits


NamedOutput = namedtuple("NamedOutput", ["logits", "aux"])

OUTPUTS = {
    "dataclass": lambda y: DataclassOutput(logits=y),
    "dataclass-with-cycle": lambda y: (lambda out: (setattr(out, "owner", out), out)[1])(DataclassOutput(y)),
    "slots": SlotsOutput,
    "attributes": AttributeOutput,
    "namedtuple": lambda y: NamedOutput(logits=y, aux=None),
    "nested": lambda y: [{"out": (torch.arange(3), DataclassOutput(logits=y))}],
}


class WrappedOutput(nn.Module):
    """:class:`SequentialReLUNet` whose output is wrapped in a container."""

    def __init__(self, wrap):
        super().__init__()
        self.net, self.wrap = T.SequentialReLUNet(), wrap

    def forward(self, x):
        return self.wrap(self.net(x))


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_auto_check_finite_finds_tensors_in_any_output_container(kind):
    model = WrappedOutput(OUTPUTS[kind])
    x = T.toy_inputs(6)
    x[2, 1] = float("nan")
    with pytest.warns(errors.NonFiniteWarning) as every:
        rp.record(model, x, batch_size=2, check_finite=True)
    with pytest.warns(errors.NonFiniteWarning) as auto:  # "auto": the output's NaN triggers the count
        rp.record(model, x, batch_size=2)
    assert str(auto[0].message) == str(every[0].message)
    with np.errstate(invalid="ignore"):
        z1 = x.numpy() @ T.A_WEIGHTS.T
    assert f"'net.1': {int((~np.isfinite(z1)).sum())}" in str(auto[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rp.record(model, T.toy_inputs(6), batch_size=2)  # finite output: no warning
