"""Tokens (positions) as samples: ``rp.record(..., samples="position")``, flattened (batch·seq, d)
layouts, dict inputs — with gates computed by hand on hand-weighted sequence models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe import testing as T
from relu_probe.errors import CoordError, StoreMismatchError, ValueInputError

# Embedding of token v (vocabulary 0…5, 0 = padding): e(v) = (v - 2, 3 - v). The feed-forward
# W = [[1, 0], [0, 1], [2, 1]], b = (0, 0, -2.5) gives z(v) = (v - 2, 3 - v, v - 3.5): channel 0 is
# on for v > 2, channel 1 for v < 3, channel 2 for v > 3.5.
EMBED = np.array([[v - 2.0, 3.0 - v] for v in range(6)])
W = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
BIAS = np.array([0.0, 0.0, -2.5])
Z = EMBED @ W.T + BIAS  # (vocab, 3)
GATES = Z > 0
assert (GATES == np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 1]], bool)).all()


class TokenNet(nn.Module):
    """``input_ids → Embedding(EMBED) → Linear(W, BIAS) → ReLU → sum``: one sequence site
    ``"act"`` (3 channels). ``flatten=True`` reshapes to ``(batch · seq, 2)`` before the
    feed-forward, as OPT's decoder layers do. The attention mask is accepted and ignored
    (position-wise model), so padded tokens still have gates: those of token 0."""

    def __init__(self, flatten: bool = False) -> None:
        super().__init__()
        self.flatten = flatten
        self.embed = nn.Embedding(6, 2).to(torch.float64)
        self.fc = nn.Linear(2, 3).to(torch.float64)
        with torch.no_grad():
            self.embed.weight.copy_(torch.from_numpy(EMBED))
            self.fc.weight.copy_(torch.from_numpy(W))
            self.fc.bias.copy_(torch.from_numpy(BIAS))
        self.act = nn.ReLU()
        self.head = nn.Linear(3, 1).to(torch.float64)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(input_ids)
        if self.flatten:
            h = h.reshape(-1, h.shape[-1])
        return self.head(self.act(self.fc(h)))


# three inputs of up to 4 tokens, right-padded with 0
IDS = torch.tensor([[3, 1, 5, 0], [4, 4, 0, 0], [2, 5, 3, 1]])
MASK = (IDS != 0).long()
LABEL = np.array(["a", "b", "c"], dtype=object)


def expected_tokens(ids: torch.Tensor, mask: torch.Tensor | None) -> dict[str, np.ndarray]:
    """The kept (input, position) pairs in order, their tokens and their hand-computed gates."""
    keep = np.ones(ids.shape, bool) if mask is None else mask.numpy() != 0
    rows, cols = np.nonzero(keep)
    tokens = ids.numpy()[rows, cols]
    return {"input": rows, "position": cols, "token": tokens, "gate": GATES[tokens],
            "activation": np.maximum(Z[tokens], 0)}


@pytest.mark.parametrize("flatten", [False, True], ids=["bert-like", "opt-like"])
@pytest.mark.parametrize("batch_size", [1, 2, None])
def test_every_real_token_is_one_sample_with_its_gates(flatten, batch_size):
    model = TokenNet(flatten)
    ds = rp.record(model, {"input_ids": IDS, "attention_mask": MASK}, samples="position",
                   coords={"label": LABEL}, batch_size=batch_size, values=True)
    want = expected_tokens(IDS, MASK)
    assert ds.sizes == {"sample": int(MASK.sum()), "unit": 3}  # 9 real tokens, 3 channels
    np.testing.assert_array_equal(ds.gate.values, want["gate"])
    np.testing.assert_allclose(ds.activation.values, want["activation"], atol=1e-6)
    for name in ("input", "position", "token"):
        np.testing.assert_array_equal(ds[name].values, want[name], err_msg=name)
    np.testing.assert_array_equal(ds["label"].values, LABEL[want["input"]])  # broadcast per input
    np.testing.assert_array_equal(ds.neuron.values, [0, 1, 2])
    assert "channel" not in ds.coords and ds.attrs["samples"] == "position"
    assert ds.attrs["site_kinds"] == ["sequence"] and ds.attrs["site_shapes"] == ["4x3"]
    T.assert_no_hooks(model)


def test_without_a_mask_every_position_is_a_sample_and_token_ids_may_be_positional():
    model = TokenNet()
    ds = rp.record(model, IDS, samples="position")  # model(ids): token ids passed positionally
    want = expected_tokens(IDS, None)
    assert ds.sizes["sample"] == 12
    np.testing.assert_array_equal(ds.gate.values, want["gate"])
    np.testing.assert_array_equal(ds.token.values, want["token"])
    np.testing.assert_array_equal(ds.position.values, np.tile(np.arange(4), 3))


def test_batches_of_different_lengths_and_a_recorder_loop():
    model = TokenNet(flatten=True)
    short, long = IDS[:2, :2], IDS[1:]
    batches = [{"input_ids": short, "attention_mask": (short != 0).long()},
               {"input_ids": long, "attention_mask": (long != 0).long()}]
    ds = rp.record(model, batches, samples="position")
    first, second = expected_tokens(short, short != 0), expected_tokens(long, long != 0)
    np.testing.assert_array_equal(ds.gate.values, np.concatenate([first["gate"], second["gate"]]))
    np.testing.assert_array_equal(ds.input.values, np.concatenate([first["input"], second["input"] + 2]))
    with rp.Recorder(model, samples="position") as rec:
        for batch in batches:
            model(**batch)
    assert rec.n_inputs == 4 and rec.n_samples == ds.sizes["sample"]
    again = rec.to_dataset(coords={"k": np.arange(4)})
    np.testing.assert_array_equal(again.gate.values, ds.gate.values)
    np.testing.assert_array_equal(again.k.values, again.input.values)


def test_flattened_layouts_are_read_as_sequences_with_one_sample_per_input():
    """OPT-style (batch·seq, d) sites used to give batch·seq rows, so per-input coords failed;
    they are one sample per input now, units (position, channel) in memory order."""
    for flatten in (False, True):
        ds = rp.record(TokenNet(flatten), {"input_ids": IDS, "attention_mask": MASK}, coords={"label": LABEL})
        assert ds.sizes == {"sample": 3, "unit": 4 * 3}
        np.testing.assert_array_equal(ds.gate.values, GATES[IDS.numpy()].reshape(3, 12))
        np.testing.assert_array_equal(ds.position.values, np.repeat(np.arange(4), 3))
        np.testing.assert_array_equal(ds.channel.values, np.tile(np.arange(3), 4))


def test_a_single_dict_batch_is_accepted():
    ds = rp.record(TokenNet(), {"input_ids": IDS})
    np.testing.assert_array_equal(ds.gate.values, GATES[IDS.numpy()].reshape(3, 12))
    ds = rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK}, batch_size=2, samples="position")
    assert ds.sizes["sample"] == 9


def test_channel_units_count_only_the_real_positions_of_a_sequence():
    ds = rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK}, units="channel")
    want = np.stack([GATES[IDS[i][MASK[i] != 0].numpy()].mean(0) for i in range(3)])
    np.testing.assert_allclose(ds.gate_rate.values, want, atol=1e-7)
    with pytest.raises(ValueInputError, match="input 1 has no real token"):
        rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK * torch.tensor([[1], [0], [1]])},
                  units="channel")


def test_conv_positions_are_samples_in_row_major_order():
    model = T.ToyConvNet()
    x = T.ToyConvNet.images(5)
    ds = rp.record(model, x, samples="position", batch_size=2, coords={"id": np.arange(5) * 10})
    on = T.ToyConvNet.pre_activation(x) > 0  # (n, channel, 2, 2)
    np.testing.assert_array_equal(ds.gate.values, on.reshape(5, 2, 4).transpose(0, 2, 1).reshape(20, 2))
    np.testing.assert_array_equal(ds.position.values, np.tile(np.arange(4), 5))
    np.testing.assert_array_equal(ds["id"].values, np.repeat(np.arange(5) * 10, 4))
    assert "token" not in ds.coords


def test_toy_sequence_tokens_as_samples():
    model = T.ToySequenceNet()
    x = T.ToySequenceNet.tokens(6, length=5)
    ds = rp.record(model, x, samples="position", batch_size=4)
    np.testing.assert_array_equal(ds.gate.values, model.expected_token_gates(x))


def test_bert_and_opt_give_one_sample_per_real_token():
    task = T.multitask_sequences(8, tasks=("parity", "repeat"), length=5, min_length=2, seed=3)
    table = task.token_table()  # value tokens; the task token (position 0) is a real token too
    mask = task.attention_mask.numpy() != 0
    for builder in (T.bert_token_classifier, T.opt_token_model):
        model = builder(task, layers=2, hidden=16, ffn=24, heads=2)
        ds = rp.record(model, task.batches(5), samples="position", coords=task.coords)
        assert ds.sizes == {"sample": int(mask.sum()), "unit": 2 * 24}
        rows, cols = np.nonzero(mask)
        np.testing.assert_array_equal(ds.input.values, rows)
        np.testing.assert_array_equal(ds.position.values, cols)
        np.testing.assert_array_equal(ds.token.values, task.input_ids.numpy()[rows, cols])
        np.testing.assert_array_equal(ds.task.values, task.coords["task"][rows])
        values = ds.sel(sample=ds.position > 0)
        np.testing.assert_array_equal(values.input.values, table["input"])
        # the gates are the feed-forward pre-activations > 0 at the kept tokens
        seen = []
        fc = model.get_submodule("bert.encoder.layer.1.intermediate.dense" if "Bert" in type(model).__name__
                                 else "model.decoder.layers.1.fc1")
        handle = fc.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
        try:
            with torch.no_grad():
                for batch in task.batches(5):
                    model(**batch)
        finally:
            handle.remove()
        pre = torch.cat([s.reshape(-1, 24) for s in seen]).numpy()  # (inputs · seq, ffn), input-major
        np.testing.assert_array_equal(ds.gate.values[:, 24:], pre[np.flatnonzero(mask.reshape(-1))] > 0)


def test_stores_hold_the_same_token_samples_and_resume(tmp_path):
    model = TokenNet(flatten=True)
    inputs = {"input_ids": IDS, "attention_mask": MASK}
    memory = rp.record(model, inputs, samples="position", coords={"label": LABEL}, values=True)
    stored = rp.record(model, inputs, samples="position", coords={"label": LABEL}, values=True, batch_size=2,
                       store=tmp_path / "s", chunk_size=4)
    for name in ("gate", "activation", "input", "position", "token", "label"):
        np.testing.assert_array_equal(stored[name].values, memory[name].values, err_msg=name)
    assert stored.attrs["samples"] == "position"
    again = rp.record(model, inputs, samples="position", coords={"label": LABEL}, values=True, batch_size=3,
                      store=tmp_path / "s", resume=True)
    np.testing.assert_array_equal(again.gate.values, memory.gate.values)
    other = {"input_ids": IDS.flip(0), "attention_mask": MASK.flip(0)}
    with pytest.raises(StoreMismatchError):
        rp.record(model, other, samples="position", coords={"label": LABEL}, store=tmp_path / "s", resume=True)
    with pytest.raises(StoreMismatchError, match=r"coords\['label'\]` differs at input 0"):
        rp.record(model, inputs, samples="position", coords={"label": LABEL[::-1]}, values=True,
                  store=tmp_path / "s", resume=True)
    with pytest.raises(StoreMismatchError, match="samples"):  # a per-input store is another layout
        rp.record(model, inputs, store=tmp_path / "s", resume=True)


def test_a_resumed_token_store_records_only_the_missing_chunks(tmp_path):
    model = TokenNet()
    inputs = [{"input_ids": IDS[i : i + 1], "attention_mask": MASK[i : i + 1]} for i in range(3)]
    full = rp.record(model, inputs, samples="position")

    class Stop(Exception):
        pass

    def stopping():  # a stream killed after its second batch
        yield inputs[0]
        yield inputs[1]
        raise Stop

    with pytest.raises(Stop):
        rp.record(model, stopping(), samples="position", store=tmp_path / "s", n_samples=9,
                  coords={"label": LABEL}, chunk_size=3)
    with pytest.warns(rp.errors.ReluProbeWarning, match="incomplete"):
        partial = rp.load(tmp_path / "s")
    assert 0 < partial.sizes["sample"] < 9
    done = rp.record(model, inputs, samples="position", store=tmp_path / "s", resume=True, coords={"label": LABEL})
    np.testing.assert_array_equal(done.gate.values, full.gate.values)
    np.testing.assert_array_equal(done.input.values, full.input.values)


def test_token_stores_need_their_size_up_front(tmp_path):
    model = TokenNet()
    stream = (b for b in [{"input_ids": IDS, "attention_mask": MASK}])
    with pytest.raises(ValueInputError, match="number of inputs up front"):
        rp.record(model, stream, samples="position", store=tmp_path / "a")
    stream = (b for b in [{"input_ids": IDS, "attention_mask": MASK}])
    with pytest.raises(ValueInputError, match="pass `n_samples=`"):  # masks not known before the stream runs
        rp.record(model, stream, samples="position", store=tmp_path / "b", coords={"label": LABEL})
    stream = (b for b in [{"input_ids": IDS, "attention_mask": MASK}])
    with pytest.raises(ValueInputError, match="yielded more kept positions than the 5 expected"):
        rp.record(model, stream, samples="position", store=tmp_path / "b", coords={"label": LABEL}, n_samples=5,
                  overwrite=True)
    stream = (b for b in [{"input_ids": IDS, "attention_mask": MASK}])
    ds = rp.record(model, stream, samples="position", store=tmp_path / "c", coords={"label": LABEL}, n_samples=9)
    assert ds.sizes["sample"] == 9
    # tensors: inputs × positions, the positions found on the first batch
    x = T.ToyConvNet.images(5)
    ds = rp.record(T.ToyConvNet(), x, samples="position", store=tmp_path / "d", batch_size=2)
    assert ds.sizes["sample"] == 20
    with pytest.raises(ValueInputError, match="eval mode only"):
        rp.record(T.ToyConvNet(), x, samples="position", store=tmp_path / "e", eval_mode=False)


def test_token_samples_refuse_what_they_cannot_record():
    with pytest.raises(ValueInputError, match=r"site\(s\) \['1', '3'\] have no positions"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(), samples="position")
    resnet = T.resnet18(num_classes=3)
    with pytest.raises(ValueInputError, match="different numbers of positions.*'relu': 256"):
        rp.record(resnet, torch.randn(2, 3, 32, 32), samples="position")
    one_stage = rp.record(resnet, torch.randn(2, 3, 32, 32), samples="position", sites="layer2*")
    assert one_stage.sizes["sample"] == 2 * 16 and one_stage.attrs["sites"][0] == "layer2.0.relu#0"
    with pytest.raises(ValueInputError, match="`units='channel'` averages"):
        rp.record(TokenNet(), IDS, samples="position", units="channel")
    with pytest.raises(ValueInputError, match="`sample_ids` name the samples"):
        rp.record(TokenNet(), IDS, samples="position", sample_ids=[5, 6, 7])
    with pytest.raises(ValueInputError, match="`samples` must be one of"):
        rp.record(TokenNet(), IDS, samples="token")
    with pytest.raises(CoordError, match=r"`coords\['label'\]` has 9 values, expected 3 \(one per recorded input\)"):
        rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK}, samples="position",
                  coords={"label": np.arange(9)})
    with pytest.raises(CoordError, match="reserved"):
        rp.record(TokenNet(), IDS, samples="position", coords={"token": np.arange(3)})
    with pytest.raises(ValueInputError, match="attention_mask has shape"):
        rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK[:, :3]}, samples="position")


def test_analyze_takes_tokens_as_samples():
    model = TokenNet()
    ids = torch.tensor([[v, w] for v in range(1, 6) for w in range(1, 6)])
    task = np.array(["first", "second"] * 12 + ["first"], dtype=object)
    res = rp.analyze(model, ids, coords={"task": task}, by="task", samples="position", literature=False)
    assert res.dataset.sizes["sample"] == 50 and res.params["samples"] == "position"
    np.testing.assert_array_equal(res.dataset.gate.values, GATES[ids.numpy().reshape(-1)])
    assert any("samples='position'" in note for note in res.notes)  # attribution skipped, said why


TOKEN_FACTORY = """
import torch
from torch import nn

class PositionWise(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(6, 4)
        self.fc = nn.Linear(4, 5)
        self.act = nn.ReLU()
        self.head = nn.Linear(5, 2)

    def forward(self, input_ids, attention_mask=None):
        out = self.head(self.act(self.fc(self.embed(input_ids))))
        return out if attention_mask is None else out * attention_mask[..., None]

def build():
    return PositionWise()
"""


def test_cli_analyze_records_tokens_as_samples(tmp_path, capsys):
    from relu_probe.cli import main

    (tmp_path / "token_models.py").write_text(TOKEN_FACTORY)
    ids = np.array([[v, w, u] for v in range(1, 6) for w in range(1, 6) for u in (1, 4)])
    task = np.array(["x", "y"] * 25, dtype=object).astype(str)
    np.savez(tmp_path / "tokens.npz", X=ids, task=task)
    code = main(["analyze", "--model", f"{tmp_path / 'token_models.py'}:build", "--inputs", str(tmp_path / "tokens.npz"),
                 "--by", "task", "--samples", "position", "--no-literature", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    saved = rp.Analysis.load(tmp_path / "out" / "analysis")
    import importlib.util

    spec = importlib.util.spec_from_file_location("token_models_check", tmp_path / "token_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    direct = rp.record(module.build(), torch.from_numpy(ids), samples="position", coords={"task": task})
    assert saved.dataset.sizes["sample"] == 150 and saved.params["samples"] == "position"
    np.testing.assert_array_equal(saved.dataset.gate.values, direct.gate.values)
    np.testing.assert_array_equal(saved.dataset.token.values, ids.reshape(-1))
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--model", "x:y", "--inputs", "i.npz", "--by", "t", "--samples", "tokens"])
    assert info.value.code == 2 and "--samples: invalid choice: 'tokens'" in capsys.readouterr().err


# ------------------------------------------------------------------ padding relu_probe cannot use
class PadMaskNet(TokenNet):
    """TokenNet whose forward takes its padding mask under another name."""

    def forward(self, input_ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(input_ids)


def _relu_probe_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, rp.errors.ReluProbeWarning)]


def test_a_mask_the_model_or_the_padding_rule_does_not_get_is_warned_about():
    import warnings

    # a (ids, mask) tuple batch: the model is called with the ids only, so the mask is unused
    with pytest.warns(rp.errors.ReluProbeWarning, match=r"item 1 of the input batches has the shape of the token "
                                                        r"ids \(3, 4\) and holds only 0 / 1: an attention mask\?"):
        ds = rp.record(TokenNet(), [(IDS, MASK)], samples="position")
    assert ds.sizes["sample"] == 12  # every position kept: what the warning says
    # a mask under another keyword reaches the model, but padding is dropped only by attention_mask
    with pytest.warns(rp.errors.ReluProbeWarning, match=r"the batches' 'pad_mask' has the shape of the token ids"):
        ds = rp.record(PadMaskNet(), {"input_ids": IDS, "pad_mask": MASK}, samples="position")
    assert ds.sizes["sample"] == 12
    # element units of a padded sequence: the padded positions are units
    with pytest.warns(rp.errors.ReluProbeWarning, match=r"the units at padded positions hold the model's "
                                                        r"computation on padding"):
        ds = rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK})
    assert ds.sizes["unit"] == 12  # 4 positions × 3 channels, padding included
    # no warning where the mask is used, where there is no padding, or for an (input, target) pair
    targets = torch.tensor([[0.5], [1.5], [2.5]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK}, samples="position")
        rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK}, units="channel")
        rp.record(TokenNet(), {"input_ids": IDS[:, :2], "attention_mask": MASK[:, :2]})  # no padding in 2 positions
        rp.record(TokenNet(), [(IDS, targets)], samples="position")
    assert _relu_probe_warnings(caught) == []


def test_a_monitor_takes_token_coords_as_factors():
    """With samples='position' the recording adds `token`: a monitor may key its pathways by
    it (it used to refuse it as not one of the probe coords)."""
    ids = torch.tensor([[v, w] for v in range(1, 6) for w in range(1, 6)])
    task = np.array(["first", "second"] * 12 + ["first"], dtype=object)
    model = TokenNet()
    mon = rp.TrainingMonitor(model, ids, coords={"task": task}, by="task", within="token", samples="position")
    mon.snapshot(0)
    ds = rp.record(model, ids, coords={"task": task}, samples="position")
    want = rp.find_pathways(ds, by="task", within="token", model=model)
    got = mon.pathways_over_time().isel(step=0)
    expected = {tuple(c): float(m) for c, m in zip(want.mass["contexts"].values, want.mass.values)}
    assert {tuple(c): float(m) for c, m in zip(got["contexts"].values, got.values) if m > 0} == \
        pytest.approx({k: v for k, v in expected.items() if v > 0})
    with pytest.raises(CoordError, match=r"`within`='token' is not one of the probe set's coords \(\['task'\]; "
                                         r"'token' is a coord of samples='position' recordings\)"):
        rp.TrainingMonitor(model, ids, coords={"task": task}, by="task", within="token")


def test_cli_analyze_passes_the_attention_mask_and_names_unused_keys(tmp_path, capsys):
    from relu_probe.cli import main

    (tmp_path / "token_models.py").write_text(TOKEN_FACTORY)  # its forward takes an optional mask
    ids = np.array([[v, w, u] for v in range(1, 6) for w in range(1, 6) for u in (0, 4)])
    mask = (ids != 0).astype(np.int64)
    task = np.array(["x", "y"] * 25, dtype=object).astype(str)
    np.savez(tmp_path / "tokens.npz", X=ids, attention_mask=mask, task=task, extra=np.zeros((50, 2)))
    code = main(["analyze", "--model", f"{tmp_path / 'token_models.py'}:build", "--inputs", str(tmp_path / "tokens.npz"),
                 "--by", "task", "--samples", "position", "--no-literature", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "attention mask 'attention_mask' (125 real tokens)" in captured.out
    assert "key(s) 'extra' not used" in captured.err
    saved = rp.Analysis.load(tmp_path / "out" / "analysis")
    assert saved.dataset.sizes["sample"] == int(mask.sum()) == 125  # the 25 padding positions dropped
    np.testing.assert_array_equal(saved.dataset.token.values, ids[mask != 0])
    np.savez(tmp_path / "bad.npz", X=ids, attention_mask=mask[:, :2], task=task)
    code = main(["analyze", "--model", f"{tmp_path / 'token_models.py'}:build", "--inputs", str(tmp_path / "bad.npz"),
                 "--by", "task", "--samples", "position", "--out", str(tmp_path / "out2")])
    assert code == 2 and "--attention-mask 'attention_mask' must be an integer or bool (sample, seq) array matching " \
        "the token ids X (50, 3), got dtype int64 and shape (50, 2)" in capsys.readouterr().err


def test_a_resume_with_another_padded_length_says_so(tmp_path):
    path = tmp_path / "padded.zarr"
    rp.record(TokenNet(), {"input_ids": IDS, "attention_mask": MASK}, store=path, n_samples=3, chunk_size=1)
    longer = torch.nn.functional.pad(IDS, (0, 2))  # the same tokens padded to 6 positions
    with pytest.raises(StoreMismatchError, match=r"other values, order, dtype or shape \(token batches padded to "
                                                    r"another length count as other inputs\)"):
        rp.record(TokenNet(), {"input_ids": longer, "attention_mask": (longer != 0).long()}, store=path,
                  n_samples=3, chunk_size=1, resume=True)
