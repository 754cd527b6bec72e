"""Real architectures built in the project: a ResNet-18 in torchvision's layout, the digit-image
task, small BERT / OPT models with ReLU feed-forwards and the multi-task sequence task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import relu_probe as rp
from relu_probe.errors import InputError, ValueInputError
from relu_probe.testing import (
    IGNORE_LABEL,
    BasicBlock,
    accuracy,
    bert_token_classifier,
    digit_images,
    fit_classifier,
    fit_token_model,
    multitask_sequences,
    opt_token_model,
    resnet18,
    token_accuracy,
    token_logits,
)

# torchvision.models.resnet18()'s state_dict, key by key in order, written out from its
# documented architecture ("-" is a 0-d tensor). Used where torchvision does not import.
TORCHVISION_RESNET18 = """
conv1.weight 64,3,7,7
bn1.weight 64
bn1.bias 64
bn1.running_mean 64
bn1.running_var 64
bn1.num_batches_tracked -
layer1.0.conv1.weight 64,64,3,3
layer1.0.bn1.weight 64
layer1.0.bn1.bias 64
layer1.0.bn1.running_mean 64
layer1.0.bn1.running_var 64
layer1.0.bn1.num_batches_tracked -
layer1.0.conv2.weight 64,64,3,3
layer1.0.bn2.weight 64
layer1.0.bn2.bias 64
layer1.0.bn2.running_mean 64
layer1.0.bn2.running_var 64
layer1.0.bn2.num_batches_tracked -
layer1.1.conv1.weight 64,64,3,3
layer1.1.bn1.weight 64
layer1.1.bn1.bias 64
layer1.1.bn1.running_mean 64
layer1.1.bn1.running_var 64
layer1.1.bn1.num_batches_tracked -
layer1.1.conv2.weight 64,64,3,3
layer1.1.bn2.weight 64
layer1.1.bn2.bias 64
layer1.1.bn2.running_mean 64
layer1.1.bn2.running_var 64
layer1.1.bn2.num_batches_tracked -
layer2.0.conv1.weight 128,64,3,3
layer2.0.bn1.weight 128
layer2.0.bn1.bias 128
layer2.0.bn1.running_mean 128
layer2.0.bn1.running_var 128
layer2.0.bn1.num_batches_tracked -
layer2.0.conv2.weight 128,128,3,3
layer2.0.bn2.weight 128
layer2.0.bn2.bias 128
layer2.0.bn2.running_mean 128
layer2.0.bn2.running_var 128
layer2.0.bn2.num_batches_tracked -
layer2.0.downsample.0.weight 128,64,1,1
layer2.0.downsample.1.weight 128
layer2.0.downsample.1.bias 128
layer2.0.downsample.1.running_mean 128
layer2.0.downsample.1.running_var 128
layer2.0.downsample.1.num_batches_tracked -
layer2.1.conv1.weight 128,128,3,3
layer2.1.bn1.weight 128
layer2.1.bn1.bias 128
layer2.1.bn1.running_mean 128
layer2.1.bn1.running_var 128
layer2.1.bn1.num_batches_tracked -
layer2.1.conv2.weight 128,128,3,3
layer2.1.bn2.weight 128
layer2.1.bn2.bias 128
layer2.1.bn2.running_mean 128
layer2.1.bn2.running_var 128
layer2.1.bn2.num_batches_tracked -
layer3.0.conv1.weight 256,128,3,3
layer3.0.bn1.weight 256
layer3.0.bn1.bias 256
layer3.0.bn1.running_mean 256
layer3.0.bn1.running_var 256
layer3.0.bn1.num_batches_tracked -
layer3.0.conv2.weight 256,256,3,3
layer3.0.bn2.weight 256
layer3.0.bn2.bias 256
layer3.0.bn2.running_mean 256
layer3.0.bn2.running_var 256
layer3.0.bn2.num_batches_tracked -
layer3.0.downsample.0.weight 256,128,1,1
layer3.0.downsample.1.weight 256
layer3.0.downsample.1.bias 256
layer3.0.downsample.1.running_mean 256
layer3.0.downsample.1.running_var 256
layer3.0.downsample.1.num_batches_tracked -
layer3.1.conv1.weight 256,256,3,3
layer3.1.bn1.weight 256
layer3.1.bn1.bias 256
layer3.1.bn1.running_mean 256
layer3.1.bn1.running_var 256
layer3.1.bn1.num_batches_tracked -
layer3.1.conv2.weight 256,256,3,3
layer3.1.bn2.weight 256
layer3.1.bn2.bias 256
layer3.1.bn2.running_mean 256
layer3.1.bn2.running_var 256
layer3.1.bn2.num_batches_tracked -
layer4.0.conv1.weight 512,256,3,3
layer4.0.bn1.weight 512
layer4.0.bn1.bias 512
layer4.0.bn1.running_mean 512
layer4.0.bn1.running_var 512
layer4.0.bn1.num_batches_tracked -
layer4.0.conv2.weight 512,512,3,3
layer4.0.bn2.weight 512
layer4.0.bn2.bias 512
layer4.0.bn2.running_mean 512
layer4.0.bn2.running_var 512
layer4.0.bn2.num_batches_tracked -
layer4.0.downsample.0.weight 512,256,1,1
layer4.0.downsample.1.weight 512
layer4.0.downsample.1.bias 512
layer4.0.downsample.1.running_mean 512
layer4.0.downsample.1.running_var 512
layer4.0.downsample.1.num_batches_tracked -
layer4.1.conv1.weight 512,512,3,3
layer4.1.bn1.weight 512
layer4.1.bn1.bias 512
layer4.1.bn1.running_mean 512
layer4.1.bn1.running_var 512
layer4.1.bn1.num_batches_tracked -
layer4.1.conv2.weight 512,512,3,3
layer4.1.bn2.weight 512
layer4.1.bn2.bias 512
layer4.1.bn2.running_mean 512
layer4.1.bn2.running_var 512
layer4.1.bn2.num_batches_tracked -
fc.weight 1000,512
fc.bias 1000
"""


def _listed(text: str) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for line in text.strip().splitlines():
        name, shape = line.split()
        out.append((name, () if shape == "-" else tuple(int(s) for s in shape.split(","))))
    return out


def _torchvision_resnet18():
    try:
        from torchvision.models import resnet18 as tv_resnet18
    except Exception:  # torchvision missing or broken (a CUDA wheel against CPU torch)
        return None
    return tv_resnet18()


# ---------------------------------------------------------------------------------- ResNet-18
def test_resnet18_state_dict_has_torchvisions_keys_and_shapes():
    ours = [(k, tuple(v.shape)) for k, v in resnet18().state_dict().items()]
    listed = _listed(TORCHVISION_RESNET18)
    assert len(listed) == 122
    tv = _torchvision_resnet18()
    if tv is not None:  # the listing is checked against torchvision itself where it imports
        assert [(k, tuple(v.shape)) for k, v in tv.state_dict().items()] == listed
        resnet18().load_state_dict(tv.state_dict())
    assert ours == listed


def test_resnet18_sizes_follow_width_channels_and_classes():
    model = resnet18(num_classes=7, in_channels=1, width=8)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["conv1.weight"] == (8, 1, 7, 7)
    assert shapes["layer4.0.downsample.0.weight"] == (64, 32, 1, 1)
    assert shapes["fc.weight"] == (7, 64)
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 7)
    assert model(torch.randn(2, 1, 64, 48)).shape == (2, 7)  # adaptive pooling: any size


def test_resnet_blocks_reuse_one_relu_and_compute_the_residual_formula():
    torch.manual_seed(0)
    model = resnet18(width=4, num_classes=3).eval()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 9  # stem + one per block
    block = model.layer2[0]
    assert isinstance(block, BasicBlock) and block.downsample is not None and model.layer2[1].downsample is None
    for bn in (block.bn1, block.bn2, block.downsample[1]):  # non-trivial batch-norm statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(5, 4, 8, 8)
    with torch.no_grad():
        h = torch.relu(block.bn1(block.conv1(x)))
        expected = torch.relu(block.bn2(block.conv2(h)) + block.downsample(x))
        assert h.shape == (5, 8, 4, 4)
        torch.testing.assert_close(block(x.clone()), expected, rtol=0, atol=0)
        x2 = torch.randn(5, 8, 4, 4)  # an identity-skip block
        b2 = model.layer2[1]
        torch.testing.assert_close(b2(x2.clone()), torch.relu(b2.bn2(b2.conv2(torch.relu(b2.bn1(b2.conv1(x2))))) + x2))


def test_record_sees_every_call_of_the_reused_block_relus():
    torch.manual_seed(0)
    model = resnet18(width=4, num_classes=3).eval()
    x = torch.randn(6, 3, 32, 32)
    sites = rp.list_sites(model, x)
    blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert sites == ["relu"] + [f"{p}.relu#{k}" for p in blocks for k in (0, 1)]
    ds = rp.record(model, x, sites=["layer2.0.relu#0", "layer2.0.relu#1"])
    block = model.layer2[0]
    with torch.no_grad():
        h = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
        pre0 = block.bn1(block.conv1(h))
        pre1 = block.bn2(block.conv2(torch.relu(pre0))) + block.downsample(h)
    for site, pre in (("layer2.0.relu#0", pre0), ("layer2.0.relu#1", pre1)):
        got = ds.gate.values[:, ds.site.values == site]
        np.testing.assert_array_equal(got, (pre > 0).reshape(6, -1).numpy())  # channel-major units


def test_resnet_refuses_bad_sizes_by_name():
    with pytest.raises(ValueInputError, match="`width`"):
        resnet18(width=0)
    with pytest.raises(InputError, match="`num_classes`"):
        resnet18(num_classes=2.5)
    with pytest.raises(ValueInputError, match="`layers`"):
        rp.testing.ResNet(())


# ---------------------------------------------------------------------------------- digit images
RULES = {"parity": lambda d: d % 2, "magnitude": lambda d: int(d >= 5), "mod 3": lambda d: d % 3}


def test_digit_images_show_each_digit_under_each_cue_with_the_rule_answers():
    task = digit_images(("parity", "magnitude", "mod 3"), n_images=40, seed=3)
    raw = load_digits()
    n = 40
    assert task.images.shape == (3 * n, 3, 32, 32) and task.images.dtype == torch.float32
    assert task.classes == ("parity: even", "parity: odd", "magnitude: 0-4", "magnitude: 5-9",
                            "mod 3: 0", "mod 3: 1", "mod 3: 2")
    index = task.coords["image"][:n]
    assert len(set(index.tolist())) == n and (np.diff(index) > 0).all()
    offsets = {"parity": 0, "magnitude": 2, "mod 3": 4}
    colours = {"parity": (1, 0, 0), "magnitude": (0, 1, 0), "mod 3": (0, 0, 1)}
    for j in range(3 * n):
        context, image = task.coords["context"][j], int(task.coords["image"][j])
        assert context == ("parity", "magnitude", "mod 3")[j // n] and image == index[j % n]
        digit = int(raw.target[image])
        assert task.coords["digit"][j] == digit
        assert int(task.labels[j]) == offsets[context] + RULES[context](digit)
        picture = task.images[j].numpy()
        for c in range(3):  # the digit, each pixel a 3x3 block, grey in all channels
            for r in range(8):
                for q in range(8):
                    block = picture[c, 4 + 3 * r : 7 + 3 * r, 4 + 3 * q : 7 + 3 * q]
                    assert (block == np.float32(raw.images[image][r, q] / 16.0)).all()
            assert (picture[c, :2, :] == colours[context][c]).all() and (picture[c, :, -2:] == colours[context][c]).all()
            assert (picture[c, 2:4, 2:-2] == 0).all()  # the black gap between frame and digit


def test_digit_images_without_contexts_are_plain_digit_classification():
    task = digit_images(None, n_images=10, seed=1)
    assert task.images.shape == (10, 3, 32, 32) and task.classes[3] == "digit 3"
    np.testing.assert_array_equal(task.labels.numpy(), load_digits().target[task.coords["image"]])
    assert float(task.images[:, :, :4].abs().sum()) == 0.0  # no frame: the margin stays black
    assert "context" not in task.coords


def test_digit_images_refuse_unknown_contexts_and_frames_over_the_digit():
    with pytest.raises(ValueInputError, match="`contexts`"):
        digit_images(("parity", "colour"))
    with pytest.raises(ValueInputError, match="`frame`"):
        digit_images(("parity",), border=1, frame=2)
    with pytest.raises(ValueInputError, match="`n_images`"):
        digit_images(None, n_images=5000)


def test_a_small_resnet18_learns_the_cued_digit_task():
    task = digit_images(("parity", "magnitude"), n_images=300)
    image = task.coords["image"]
    held_out = torch.from_numpy(np.isin(image, np.unique(image)[::4]))
    torch.manual_seed(0)
    model = resnet18(num_classes=len(task.classes), width=8)
    losses = fit_classifier(model, task.images[~held_out], task.labels[~held_out], epochs=8, lr=3e-3)
    assert losses[-1] < 0.75 * losses[0]
    assert not model.training
    # chance is 1/2 within a context: the network reads the cue and the digit
    assert accuracy(model, task.images[held_out], task.labels[held_out]) > 0.65


# ---------------------------------------------------------------------------------- sequences
def _answers(task_name: str, values: list[int], n_values: int) -> list[int]:
    out = []
    for i, v in enumerate(values):
        if task_name == "parity":
            out.append(v % 2)
        elif task_name == "magnitude":
            out.append(int(v >= n_values / 2))
        elif task_name == "repeat":
            out.append(int(i > 0 and v == values[i - 1]))
        else:  # new max
            out.append(int(i == 0 or v > max(values[:i])))
    return out


def test_multitask_sequences_label_every_value_token_by_its_task_rule():
    tasks = ("parity", "magnitude", "repeat", "new max")
    task = multitask_sequences(30, tasks=tasks, length=7, min_length=3, n_values=6, seed=2)
    n = 30
    assert task.vocab == ("[PAD]", "0", "1", "2", "3", "4", "5", "[parity]", "[magnitude]", "[repeat]", "[new max]")
    assert task.classes[6:] == ("new max: not max", "new max: new max")
    offsets = {"parity": 0, "magnitude": 2, "repeat": 4, "new max": 6}
    for j in range(4 * n):
        name = tasks[j // n]
        assert task.coords["task"][j] == name and task.coords["sequence"][j] == j % n
        ids, mask, labels = (t[j].tolist() for t in (task.input_ids, task.attention_mask, task.labels))
        length = int(task.coords["length"][j])
        assert 3 <= length <= 7
        assert ids[0] == 7 + tasks.index(name) and labels[0] == IGNORE_LABEL
        assert mask == [1] * (1 + length) + [0] * (7 - length)
        assert ids[1 + length :] == [0] * (7 - length) and labels[1 + length :] == [IGNORE_LABEL] * (7 - length)
        values = [i - 1 for i in ids[1 : 1 + length]]
        assert all(0 <= v < 6 for v in values)
        assert labels[1 : 1 + length] == [offsets[name] + a for a in _answers(name, values, 6)]
        # the same sequence (item) under every task
        assert ids[1:] == task.input_ids[j % n, 1:].tolist()


def test_token_table_lists_the_value_tokens():
    task = multitask_sequences(5, tasks=("parity", "repeat"), length=4, min_length=2, seed=0)
    table = task.token_table()
    expected = [(i, p) for i in range(10) for p in range(1, 5) if task.attention_mask[i, p] == 1]
    assert list(zip(table["input"].tolist(), table["position"].tolist())) == expected
    assert (table["token"] == task.input_ids.numpy()[table["input"], table["position"]]).all()
    assert list(table["task"][:3]) == ["parity"] * 3 and table["sequence"][0] == 0


def test_multitask_sequences_repeat_probability_balances_the_repeat_rule():
    task = multitask_sequences(4000, tasks=("repeat",), length=6, n_values=8, repeat_prob=0.3, seed=0)
    values = task.input_ids[:, 1:]
    repeats = (values[:, 1:] == values[:, :-1]).float().mean().item()
    assert abs(repeats - (0.3 + 0.7 / 8)) < 0.01  # a repeat, or a uniform draw that repeats


def test_multitask_sequences_refuse_bad_arguments_by_name():
    with pytest.raises(ValueInputError, match="`tasks`"):
        multitask_sequences(4, tasks=("parity", "sorting"))
    with pytest.raises(ValueInputError, match="`min_length`"):
        multitask_sequences(4, length=3, min_length=5)
    with pytest.raises(ValueInputError, match="`repeat_prob`"):
        multitask_sequences(4, repeat_prob=1.5)
    with pytest.raises(InputError, match="`n_sequences`"):
        multitask_sequences("many")


@pytest.mark.parametrize(
    "builder, site, producer",
    [(bert_token_classifier, "bert.encoder.layer.{}.intermediate.intermediate_act_fn", "bert.encoder.layer.{}.intermediate.dense"),
     (opt_token_model, "model.decoder.layers.{}.activation_fn", "model.decoder.layers.{}.fc1")],
)
def test_record_finds_the_feed_forward_relus_of_bert_and_opt(builder, site, producer):
    task = multitask_sequences(6, tasks=("parity", "repeat"), length=5)
    model = builder(task, layers=3, hidden=16, ffn=24, heads=2)
    batch = task.batches(4)[0]
    assert rp.list_sites(model, batch) == [site.format(i) for i in range(3)]
    assert all(isinstance(model.get_submodule(site.format(i)), nn.ReLU) for i in range(3))
    # the recorded gates are the feed-forward pre-activations > 0
    seen = {}
    handle = model.get_submodule(producer.format(1)).register_forward_hook(lambda m, a, out: seen.setdefault("x", out))
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    ds = rp.record(model, [batch], sites=site.format(1))
    on = (seen["x"] > 0).numpy()
    # BERT's feed-forward sees (batch, seq, ffn); OPT flattens it to (batch * seq, ffn), which is
    # read back as (batch, seq, ffn) from the batch's input_ids: both give one sample per input
    # and one unit per (position, neuron), in the tensor's own (position-major) order
    assert on.shape == ((4, 6, 24) if on.ndim == 3 else (4 * 6, 24))
    assert ds.sizes == {"sample": 4, "unit": 6 * 24}
    assert ds.attrs["site_kinds"] == ["sequence"] and ds.attrs["site_shapes"] == ["6x24"]
    np.testing.assert_array_equal(ds.gate.values, on.reshape(4, 6 * 24))
    np.testing.assert_array_equal(ds.position.values, np.repeat(np.arange(6), 24))
    np.testing.assert_array_equal(ds.channel.values, np.tile(np.arange(24), 6))


@pytest.mark.parametrize("builder", [bert_token_classifier, opt_token_model])
def test_small_transformers_learn_the_token_rules(builder):
    task = multitask_sequences(96, tasks=("parity", "magnitude"), length=6)
    model = builder(task, hidden=32, ffn=64, heads=2)
    assert token_logits(model, task.batches(4)[0], task.n_labels).shape == (4, 7, 4)
    losses = fit_token_model(model, task, epochs=15, lr=1e-2, batch_size=32)
    assert losses[-1] < 0.1 * losses[0] and not model.training
    held_out = multitask_sequences(96, tasks=("parity", "magnitude"), length=6, seed=5)
    assert min(token_accuracy(model, held_out).values()) > 0.95  # chance 1/2
