"""The initial state of a ReLN's pathways from a network with hidden biases (a bias is the
weight of a constant input every pathway reads), with exact answers on hand-built units."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe.reln.init import init_std_from_trained, mean_state_from_network


def _biased_net(W1, b1, W2) -> nn.Module:
    net = nn.Sequential(nn.Linear(W1.shape[1], W1.shape[0]), nn.ReLU(), nn.Linear(W1.shape[0], W2.shape[0]))
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(W1))
        net[0].bias.copy_(torch.as_tensor(b1))
        net[2].weight.copy_(torch.as_tensor(W2))
        net[2].bias.fill_(0.3)  # the readout bias is a direct path: no part of a pathway's state
    return net.double()


def test_bias_only_units_are_on_everywhere_or_nowhere():
    """Units with zero input weights are gated by their bias alone: b > 0 puts them in the
    pathway open in every context, b < 0 in none. Their drive on the full set is
    ⟨b² / ‖[x, 1]‖²⟩ over the samples, and a0 = Σ ‖w2_u‖² / m over those units (one item)."""
    X = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0], [1.0, 1.0, 2.0], [2.0, 0.0, 2.0]])
    context = np.array([0, 1, 0, 1])
    items = np.zeros(4, dtype=int)
    b1 = np.array([0.5, 2.0, -1.0])
    W1 = np.zeros((3, 3))
    W2 = np.array([[1.0, 2.0, 5.0], [3.0, 0.0, 5.0]])  # m = 2 outputs
    net = _biased_net(W1, b1, W2)
    sets = [(0, 1), (0,), (1,)]
    masks = np.ones((3, 3))
    state = mean_state_from_network(net, X, sets, context, masks, items)
    norm = (X**2).sum(1) + 1.0  # ‖[x, 1]‖²
    assert state.a0[0] == pytest.approx((1 + 9) / 2 + (4 + 0) / 2)
    assert state.b0[0] == pytest.approx(np.mean(0.25 / norm) + np.mean(4.0 / norm))
    np.testing.assert_array_equal(state.a0[1:], 0.0)
    assert "hidden biases" in state.source


def test_a_bias_moves_a_unit_between_context_sets():
    """w1 = (1, −1, 0) on inputs (cue 0, cue 1, feature): on in context 0 only; a bias of 1.5
    turns it on in both contexts, a bias of −2 in neither."""
    X = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    context, items = np.array([0, 1]), np.zeros(2, dtype=int)
    sets = [(0, 1), (0,), (1,)]
    masks = np.ones((3, 3))
    W2 = np.array([[2.0]])
    for bias, owner in [(0.0, 1), (1.5, 0), (-2.0, None)]:
        state = mean_state_from_network(_biased_net(np.array([[1.0, -1.0, 0.0]]), [bias], W2), X, sets,
                                        context, masks, items)
        expected = np.zeros(3)
        if owner is not None:
            expected[owner] = 4.0
        np.testing.assert_array_equal(state.a0, expected)


def test_trained_biased_network_gives_its_init_std():
    """Gradient descent leaves the input weights along directions the data do not span as they
    were drawn, biases or not: the std read off the trained network is the init's."""
    torch.manual_seed(0)
    X = torch.randn(40, 30, dtype=torch.float64)
    X[:, 20:] = 0.0  # 10 directions the data never span
    Y = torch.randn(40, 4, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 4)).double()
    with torch.no_grad():
        net[0].weight.normal_(0.0, 0.2)
        net[0].bias.uniform_(-0.3, 0.3)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    for _ in range(300):
        opt.zero_grad()
        (0.5 * ((net(X) - Y) ** 2).sum()).backward()
        opt.step()
    (s_in, _), h, _ = init_std_from_trained(net, X.numpy())
    assert h == 64 and s_in == pytest.approx(0.2, rel=0.1)  # 640 untouched weights: ~3 % error


def test_analyze_takes_the_initial_state_of_a_biased_network():
    """Before, `init_network` (and a monitor's step-0 copy) with nonzero biases was refused and
    the ReLN fell back to the default small init; now it starts from the network's own units."""
    X, Y, coords = rp.tasks.contextual_task(3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 60), nn.ReLU(), nn.Linear(60, Y.shape[1])).double()
    initial = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=5e-3)
    curve = []
    for _ in range(300):
        opt.zero_grad()
        loss = 0.5 * ((model(X) - Y) ** 2).sum()
        curve.append(loss.item())
        loss.backward()
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, loss_curve=curve, lr=5e-3, init_network=initial, predict=False)
    assert "network weights and hidden biases" in res.reln.init_source_
    assert not [n for n in res.notes if "nonzero biases" in n]


def test_noisy_repeats_of_an_item_are_one_item_for_the_default_init():
    """Two noisy repeats of every (object, context): no two samples share their non-cue inputs,
    so the items must come from the pathways' `within` coord (before, the default init saw
    every sample as its own item and refused: "no candidate pathway has a unit")."""
    X0, Y0, coords0 = rp.tasks.contextual_task(3)
    gen = torch.Generator().manual_seed(0)
    X = torch.cat([X0, X0]) + 0.05 * torch.randn(2 * X0.shape[0], X0.shape[1], generator=gen, dtype=X0.dtype)
    Y = torch.cat([Y0, Y0])
    coords = {k: np.concatenate([v, v]) for k, v in coords0.items()}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 60, bias=False), nn.ReLU(),
                          nn.Linear(60, Y.shape[1], bias=False)).double()
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rp.analyze(model, X, Y=Y, coords=coords, by="context", within="object", attribution=False,
                         literature=False, lr=1e-3, epochs=20, predict=False)
    assert res.reln is not None and res.reln.items is not None
    np.testing.assert_array_equal(res.reln.items, coords["object"])


def test_recording_in_train_mode_warns_and_restores_batch_norm_statistics():
    """eval_mode=False: a train-mode forward updates batch norm's running statistics; they are
    restored, and a warning says the gates depend on the batch (before: silent, and the buffers
    had changed)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(20, 1, 8, 8)
    with pytest.warns(rp.errors.ReluProbeWarning, match=r"train mode \(eval_mode=False\): 1 module.*'?1'?"):
        rp.record(model, x, eval_mode=False, batch_size=5)
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert model.training and model[1].training
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # eval mode: no warning, nothing to restore
        rp.record(model, x)
