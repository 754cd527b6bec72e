"""The ReLN of deep, biased and leaky ReLU networks (issue 11, items 2, 3, 5, 8, 11): a layered
GDLN with one gated block per (site, pathway); hidden biases as a constant input every
pathway reads, the output bias as an ungated direct path; LeakyReLU slopes modelled exactly
or refused; the residual rule's silent switch to joint warns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _deps import require
from torch import nn
from torch.nn import functional as F

import relu_probe as rp
from relu_probe.errors import InputError, ReluProbeWarning, ValueInputError
from relu_probe.reln.gating import cue_inputs


# ----------------------------------------------------------------------------- helpers
def _per_site_pathways(net, ds):
    return {s: rp.find_pathways(ds, by="context", within="object", sites=s) for s in ds.attrs["sites"]}


def _unit_order(spec_layers, unit_contexts):
    """Net units in the ReLN's block order: block by block, the units whose set it is."""
    order = []
    for gating, contexts in zip(spec_layers, unit_contexts):
        perm = []
        for S in gating.contexts:
            perm += [u for u, c in enumerate(contexts) if tuple(c) == tuple(S)]
        order.append(np.array(perm))
    return order


def _torch_step(model, X, Y, lr):
    """One full-batch gradient step of the summed loss on a copy of *model*: (loss, stepped copy)."""
    import copy

    twin = copy.deepcopy(model)
    loss = 0.5 * ((twin(X) - Y) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        for p in twin.parameters():
            p -= lr * p.grad
    return float(loss.detach()), twin


def _linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


# ----------------------------------------------------------------------------- known answers
def test_known_answer_net_has_the_documented_gates_and_outputs():
    net = rp.testing.biased_leaky_net()
    with torch.no_grad():
        np.testing.assert_allclose(net.model(net.X).numpy(), net.expected["outputs"], atol=1e-14)
    ds = rp.record(net.model, net.X, coords=net.coords)
    for site, pw in _per_site_pathways(net.model, ds).items():
        assert sorted(pw.contexts) == sorted(net.expected["sets"][site])
        # every unit's gate is its set's gate, on every object
        gates = ds["gate"].values[:, ds["site"].values == site]
        for u, S in enumerate(net.expected["unit_contexts"][site]):
            np.testing.assert_array_equal(gates[:, u], np.isin(net.coords["context"], S))


def test_layered_reln_of_a_biased_leaky_network_is_that_network():
    net = rp.testing.biased_leaky_net(slope=0.1)
    X, Y = net.X, net.Y
    ds = rp.record(net.model, X, coords=net.coords)
    pws = _per_site_pathways(net.model, ds)
    units = [[2] * len(pw.contexts) for pw in pws.values()]
    reln = rp.ReLN.from_pathways(pws, X, Y, model=net.model, min_mass=0.0, hidden=units, inputs="all",
                                 lr=1e-3, epochs=1)
    spec_layers = None
    # what the network told the ReLN: biases everywhere, slope 0 then 0.1
    assert reln.rule == "joint"
    assert list(reln.hidden_bias) == [True, True] and reln.output_bias is True
    assert list(reln.leak) == [0.0, 0.1]
    # set the ReLN's weights to the network's, block by block, and train one epoch
    reln.fit(X, Y)  # builds spec_ and the weight shapes
    spec_layers = reln.spec_.layers
    o1, o2 = _unit_order(spec_layers, [net.expected["unit_contexts"]["1"], net.expected["unit_contexts"]["3"]])
    L1, L2, L3 = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in _linears(net.model)]
    reln.weights_ = [L1[0][o1], L2[0][np.ix_(o2, o1)], L3[0][:, o2]]
    reln.hidden_biases_ = [L1[1][o1], L2[1][o2]]
    reln.output_bias_ = L3[1]
    np.testing.assert_allclose(reln.predict(X), net.expected["outputs"], atol=1e-13)
    reln.set_params(warm_start=True)
    reln.fit(X, Y)
    loss, stepped = _torch_step(net.model, X, Y, 1e-3)
    assert reln.loss_curve_[0] == pytest.approx(loss, rel=1e-13)
    S1, S2, S3 = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in _linears(stepped)]
    np.testing.assert_allclose(reln.weights_[0], S1[0][o1], atol=1e-13)
    np.testing.assert_allclose(reln.weights_[1], S2[0][np.ix_(o2, o1)], atol=1e-13)
    np.testing.assert_allclose(reln.weights_[2], S3[0][:, o2], atol=1e-13)
    np.testing.assert_allclose(reln.hidden_biases_[0], S1[1][o1], atol=1e-13)
    np.testing.assert_allclose(reln.hidden_biases_[1], S2[1][o2], atol=1e-13)
    np.testing.assert_allclose(reln.output_bias_, S3[1], atol=1e-13)
    with torch.no_grad():
        np.testing.assert_allclose(reln.predict(X), stepped(X).numpy(), atol=1e-12)


def test_one_layer_reln_of_a_biased_leaky_network_is_that_network():
    net = rp.testing.biased_leaky_net(slope=0.2, depth=1)
    X, Y = net.X, net.Y
    ds = rp.record(net.model, X, coords=net.coords)
    pw = rp.find_pathways(ds, by="context", within="object")
    reln = rp.ReLN.from_pathways(pw, X, Y, model=net.model, min_mass=0.0, hidden=2, inputs="all", rule="joint",
                                 epochs=1)
    assert reln.hidden_bias is True and reln.output_bias is True and reln.leak == pytest.approx(0.2)
    reln.fit(X, Y)
    assert reln.spec_.hidden_bias and reln.spec_.output_bias
    np.testing.assert_allclose(reln.spec_.slopes, 0.2)
    # effective gates: 1 where open, the slope where closed
    np.testing.assert_allclose(np.unique(reln.gates_.values), [0.2, 1.0])
    (o1,) = _unit_order([reln.spec_.gating], [net.expected["unit_contexts"]["1"]])
    L1, L2 = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in _linears(net.model)]
    design = np.hstack([L1[0], L1[1][:, None]])  # the bias is the constant input's column
    reln.weights_ = [[design[o1[2 * p:2 * p + 2]], L2[0][:, o1[2 * p:2 * p + 2]]] for p in range(len(o1) // 2)]
    reln.output_bias_ = L2[1]
    reln.set_params(warm_start=True)
    reln.fit(X, Y)
    loss, stepped = _torch_step(net.model, X, Y, reln.lr_)
    assert reln.loss_curve_[0] == pytest.approx(loss, rel=1e-13)
    with torch.no_grad():
        np.testing.assert_allclose(reln.predict(X), stepped(X).numpy(), atol=1e-12)


def test_ignoring_biases_or_the_slope_cannot_reproduce_the_network():
    net = rp.testing.biased_leaky_net(slope=0.1, depth=1)
    X, Y = net.X, net.Y
    ds = rp.record(net.model, X, coords=net.coords)
    pw = rp.find_pathways(ds, by="context", within="object")
    L1, L2 = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in _linears(net.model)]
    for kw, expect_close in ((dict(), True), (dict(leak=0.0), False),
                             (dict(hidden_bias=False, output_bias=False), False)):
        reln = rp.ReLN.from_pathways(pw, X, Y, model=net.model, min_mass=0.0, hidden=2, inputs="all",
                                     rule="joint", epochs=1, **kw).fit(X, Y)
        (o1,) = _unit_order([reln.spec_.gating], [net.expected["unit_contexts"]["1"]])
        first = np.hstack([L1[0], L1[1][:, None]]) if reln.spec_.hidden_bias else L1[0]
        reln.weights_ = [[first[o1[2 * p:2 * p + 2]], L2[0][:, o1[2 * p:2 * p + 2]]] for p in range(len(o1) // 2)]
        reln.output_bias_ = L2[1] if reln.spec_.output_bias else None
        reln.maps_ = reln.maps_.copy(data=np.stack([w[1] @ w[0] for w in reln.weights_]))
        gap = np.abs(reln.predict(X) - net.expected["outputs"]).max()
        assert (gap < 1e-12) == expect_close, (kw, gap)


def test_layered_gdln_with_one_block_per_unit_is_the_relu_network():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.LeakyReLU(0.05), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    X = torch.randn(11, 5, dtype=torch.float64)
    Y = torch.randn(11, 3, dtype=torch.float64)
    with torch.no_grad():
        z1 = model[0](X)
        z2 = model[2](model[1](z1))
    gates = {"1": (z1 > 0).numpy().T.astype(float), "3": (z2 > 0).numpy().T.astype(float)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rp.errors.DegenerateDataWarning)  # a unit may be off everywhere
        g = rp.GDLN(gates, hidden=1, leak=[0.05, 0.0], hidden_bias=True, output_bias=True, inputs="all",
                    lr=1e-4, epochs=1).fit(X, Y)
    L1, L2, L3 = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in _linears(model)]
    g.weights_ = [L1[0], L2[0], L3[0]]
    g.hidden_biases_ = [L1[1], L2[1]]
    g.output_bias_ = L3[1]
    with torch.no_grad():
        np.testing.assert_allclose(g.predict(X), model(X).numpy(), atol=1e-13)
    g.set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rp.errors.DegenerateDataWarning)
        g.fit(X, Y)
    loss, stepped = _torch_step(model, X, Y, 1e-4)
    assert g.loss_curve_[0] == pytest.approx(loss, rel=1e-13)
    # the same step: weights into a unit that is never open (no edge reaches it) get no gradient in
    # the ReLU network, and are not part of the GDLN's graph (held at 0)
    for mine, before, after in zip(g.weights_, [L1[0], L2[0], L3[0]], [m.weight.detach().numpy() for m in _linears(stepped)]):
        kept = mine != 0
        np.testing.assert_allclose(mine[kept], after[kept], atol=1e-13)
        np.testing.assert_array_equal(before[~kept], after[~kept])
    np.testing.assert_allclose(g.hidden_biases_[0], _linears(stepped)[0].bias.detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(g.output_bias_, _linears(stepped)[2].bias.detach().numpy(), atol=1e-13)


# ----------------------------------------------------------------------------- the graph
def test_layered_graph_connects_blocks_that_are_open_together():
    context = np.repeat([0, 1, 2], 2)
    X = np.eye(6)
    gates = {"a": [(0,), (1, 2)], "b": [(0, 1), (2,)]}
    g = rp.GDLN(gates, hidden=3, lr=1e-3, epochs=2, init_scale=0.1).fit(X, np.ones((6, 2)), context=context)
    spec = g.spec_
    np.testing.assert_array_equal(spec.edges[0], [[True, True], [False, True]])  # (b block, a block)
    assert g.pathway_names_ == ["{0}>{0,1}", "{1,2}>{0,1}", "{1,2}>{2}"]
    assert g.contexts_ == [(0,), (1,), (2,)]  # a path is open where all its blocks are
    np.testing.assert_array_equal(g.gates_.values, [np.isin(context, S) for S in g.contexts_])
    # the masked weights stay zero through training
    assert not g.weights_[1][3:, :3].any()


def test_layered_gdln_refuses_the_residual_rule_and_unreachable_blocks():
    context = np.repeat([0, 1], 2)
    X, Y = np.eye(4), np.ones((4, 1))
    with pytest.raises(ValueInputError, match="residual"):
        rp.GDLN({"a": [(0, 1)], "b": [(0, 1)]}, rule="residual", lr=1e-3, epochs=1).fit(X, Y, context=context)
    with pytest.warns(rp.errors.DegenerateDataWarning, match="never open together"):
        rp.GDLN({"a": [(0,)], "b": [(0,), (1,)]}, lr=1e-3, epochs=1).fit(X, Y, context=context)
    with pytest.raises(ValueInputError, match="no path"):
        rp.GDLN({"a": [(0,)], "b": [(1,)]}, lr=1e-3, epochs=1).fit(X, Y, context=context)


def test_layered_reln_saves_and_loads(tmp_path):
    require("netCDF4")
    net = rp.testing.biased_leaky_net()
    ds = rp.record(net.model, net.X, coords=net.coords)
    mon = rp.TrainingMonitor(net.model, net.X, coords=net.coords, every=1, values=False)
    mon.snapshot(0)
    mon.snapshot(5)
    reln = rp.ReLN.from_pathways(_per_site_pathways(net.model, ds), net.X, net.Y, model=net.model, lr=1e-3,
                                 epochs=20, min_mass=0.0, trajectory=mon).fit(net.X, net.Y)
    reln.to_netcdf(tmp_path / "reln.nc")
    back = rp.ReLN.from_netcdf(tmp_path / "reln.nc")
    assert back.spec_.schedule_epochs == [0, 5]
    refit = back.set_params(warm_start=False).fit(net.X, net.Y)  # the saved parameters rebuild the same network
    np.testing.assert_array_equal(refit.loss_curve_, reln.loss_curve_)
    back = rp.ReLN.from_netcdf(tmp_path / "reln.nc")
    np.testing.assert_array_equal(back.loss_curve_, reln.loss_curve_)
    np.testing.assert_allclose(back.predict(net.X), reln.predict(net.X), atol=1e-14)
    assert back.pathway_names_ == reln.pathway_names_
    assert back.spec_.hidden_bias == (True, True) and back.spec_.leak == reln.spec_.leak


def test_from_pathways_takes_a_list_of_per_site_results_and_refuses_a_pooled_entry():
    net = rp.testing.biased_leaky_net()
    ds = rp.record(net.model, net.X, coords=net.coords)
    pws = _per_site_pathways(net.model, ds)
    a = rp.ReLN.from_pathways(pws, net.X, net.Y, model=net.model, min_mass=0.0)
    b = rp.ReLN.from_pathways(list(pws.values()), net.X, net.Y, model=net.model, min_mass=0.0)
    assert list(a.gates) == list(b.gates) == ["1", "3"]
    # default widths: each site's width shared out by mass (8 units, masses 1/3, 2/9 ×3)
    assert a.hidden == [[3, 2, 2, 2], [3, 2, 2, 2]]
    pooled = rp.find_pathways(ds, by="context", within="object", per_site=False)
    with pytest.raises(ValueInputError, match="several sites"):
        rp.ReLN.from_pathways([pooled], net.X, net.Y)
    with pytest.warns(ReluProbeWarning, match="mixes"):
        rp.ReLN.from_pathways(pooled, net.X, net.Y, min_mass=0.0)


# ----------------------------------------------------------------------------- leaky units
class _FunctionalLeaky(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(7, 8, bias=False).double()
        self.out = nn.Linear(8, 2, bias=False).double()

    def forward(self, x):
        return self.out(F.leaky_relu(self.inp(x), 0.3))


def test_a_leaky_site_of_unknown_slope_is_refused_never_taken_for_a_relu():
    X, coords = rp.testing.pathway_task(3, 4)
    model = _FunctionalLeaky()
    ds = rp.record(model, X, coords=coords)
    (site,) = ds.attrs["sites"] if isinstance(ds.attrs["sites"], list) else [ds.attrs["sites"]]
    assert "leaky" in site
    pw = rp.find_pathways(ds, by="context", within="object")
    with pytest.raises(ValueInputError, match="slope"):
        rp.ReLN.from_pathways({site: pw}, X, min_mass=0.0, model=model)
    assert rp.ReLN.from_pathways({site: pw}, X, min_mass=0.0, leak=[0.3]).leak == 0.3
    assert rp.ReLN.from_pathways(pw, X, min_mass=0.0, leak=0.3).leak == 0.3
    # a recording that stores the slope (site_slopes) is read
    ds.attrs["site_slopes"] = [0.3]
    assert rp.ReLN.from_pathways({site: pw}, X, min_mass=0.0, recording=ds).leak == 0.3


def test_leaky_slopes_out_of_range_are_refused():
    X, Y, coords = rp.tasks.contextual_task(3)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueInputError, match="slope"):
            rp.GDLN([(0, 1, 2)], leak=bad, epochs=1).fit(X, Y, context=coords["context"])


# ----------------------------------------------------------------------------- gates that follow training
def test_gate_schedule_switches_the_gates_at_its_epochs():
    context = np.repeat([0, 1], 3)
    X, Y = np.eye(6), np.ones((6, 2))
    closed, open_ = np.zeros((1, 6)), np.ones((1, 6))
    g = rp.GDLN({"a": [(0, 1)]}, gate_schedule={0: {"a": closed}, 5: {"a": open_}}, hidden=4, init_scale=0.3,
                epochs=10, lr=0.01).fit(X, Y, context=context)
    L0 = 0.5 * float((Y**2).sum())
    np.testing.assert_array_equal(g.loss_curve_[:5], L0)  # closed: output 0, nothing learns
    assert g.loss_curve_[5] < L0 and g.loss_curve_[9] < g.loss_curve_[5]  # open from epoch 5 on
    with pytest.raises(ValueInputError, match=r"\[0, 1\]"):
        rp.GDLN({"a": [(0, 1)]}, gate_schedule={0: {"a": 2 * open_}}, epochs=2).fit(X, Y, context=context)


def test_trajectory_of_constant_gates_is_the_fixed_reln():
    net = rp.testing.biased_leaky_net()
    ds = rp.record(net.model, net.X, coords=net.coords)
    pws = _per_site_pathways(net.model, ds)
    mon = rp.TrainingMonitor(net.model, net.X, coords=net.coords, every=1, values=False)
    for step in (0, 3, 7):
        mon.snapshot(step)  # the hand-set network does not change: the same gates each time
    kw = dict(model=net.model, min_mass=0.0, epochs=12, init_scale=0.2, lr=1e-2)
    fixed = rp.ReLN.from_pathways(pws, net.X, net.Y, **kw).fit(net.X, net.Y)
    moving = rp.ReLN.from_pathways(pws, net.X, net.Y, trajectory=mon, **kw)
    assert sorted(moving.gate_schedule) == [0, 3, 7]
    moving.fit(net.X, net.Y)
    np.testing.assert_array_equal(moving.loss_curve_, fixed.loss_curve_)


def test_trajectory_gates_are_the_rms_of_the_block_units_gates():
    net = rp.testing.biased_leaky_net(depth=1)
    ds = rp.record(net.model, net.X, coords=net.coords)
    pw = rp.find_pathways(ds, by="context", within="object")
    traj = ds.expand_dims(step=[0]).copy(deep=True)
    gate = traj["gate"].values.copy()
    gate[0, :, 0] = True  # one of the shared block's two units... (unit 0 is already always on)
    gate[0, :, 2] = False  # block {0,1} (units 2, 3): unit 2 now always off
    traj["gate"] = (traj["gate"].dims, gate)
    reln = rp.ReLN.from_pathways({"1": pw}, net.X, net.Y, model=net.model, min_mass=0.0, trajectory=traj)
    values = reln.gate_schedule[0]["1"]
    names = [tuple(c) for c in pw.contexts]
    b = names.index((0, 1))
    expected = np.where(np.isin(net.coords["context"], (0, 1)), np.sqrt(0.5), 0.0)
    np.testing.assert_allclose(values[b], expected)
    np.testing.assert_allclose(values[names.index((0, 1, 2))], 1.0)


# ----------------------------------------------------------------------------- biases elsewhere
def test_a_constant_input_is_not_a_cue_and_every_pathway_reads_it():
    X, Y, coords = rp.tasks.contextual_task(3)
    Xb = np.hstack([X.numpy(), np.ones((X.shape[0], 1))])  # a bias input
    groups = coords["context"]
    cue = cue_inputs(Xb, groups)
    assert cue[8:11].all() and not cue[:8].any()
    assert not cue[11]  # constant on every sample: a bias, not a cue
    g = rp.GDLN([(0, 1, 2), (0, 1)], inputs="auto", epochs=1).fit(Xb, Y, context=coords["context"])
    assert g.inputs_.values[1, 11] and not g.inputs_.values[1, 8:11].any()


def test_paper_network_with_biases_starts_from_the_same_weights_and_zero_biases():
    plain = rp.tasks.paper_network(3, seed=3)
    biased = rp.tasks.paper_network(3, seed=3, bias=True)
    for a, b in zip(_linears(plain), _linears(biased)):
        assert torch.equal(a.weight, b.weight) and a.bias is None
        assert torch.count_nonzero(b.bias) == 0


def test_race_models_the_output_bias_as_a_direct_path():
    X, Y, coords = rp.tasks.contextual_task(3)
    sets = [(0, 1, 2), (0, 1), (1, 2), (0, 2)]
    kw = dict(context=coords["context"], inputs="auto", hidden=200, init_scale=1e-3, hidden_bias=True,
              output_bias=True, epochs=1500)
    g = rp.GDLN(sets, rule="joint", inputs="auto", hidden=200, init_scale=1e-3, hidden_bias=True, output_bias=True,
                epochs=1500).fit(X, Y, context=coords["context"])
    live = rp.race_dynamics(X, Y, sets, rule="joint", method="live", **kw)
    # the exact reduced dynamics follow the simulated network (mean field: finite width only)
    assert rp.compare_dynamics(g.loss_curve_, live["loss"].values)["mean_abs_diff"] < 0.01 * g.L0_
    # the direct path learns the outputs' mean: ‖b‖ → ‖mean y‖ minus what the pathways take
    assert live["output_bias"].values[-1] == pytest.approx(np.linalg.norm(g.output_bias_), rel=0.02)
    assert live["sigma_yx"].sizes["feature"] == X.shape[1] + 1  # the constant input
    with pytest.raises(ValueInputError, match="closed"):
        rp.race_dynamics(X, Y, sets, rule="residual", method="closed", **kw)


# ----------------------------------------------------------------------------- residual → joint
def test_residual_rule_without_a_shared_pathway_warns_that_it_is_joint():
    X, Y, coords = rp.tasks.contextual_task(3)
    sets = [(0, 1), (1, 2), (0, 2)]  # none open on every sample
    with pytest.warns(ReluProbeWarning, match="joint"):
        res = rp.GDLN(sets, rule="residual", epochs=20).fit(X, Y, context=coords["context"])
    joint = rp.GDLN(sets, rule="joint", epochs=20).fit(X, Y, context=coords["context"])
    np.testing.assert_array_equal(res.loss_curve_, joint.loss_curve_)  # what the warning says
    with pytest.warns(ReluProbeWarning, match="joint"):
        rp.race_dynamics(X, Y, sets, context=coords["context"], rule="residual", epochs=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReluProbeWarning)
        rp.GDLN([(0, 1, 2), *sets], rule="residual", epochs=5).fit(X, Y, context=coords["context"])


def test_from_pathways_refuses_what_is_not_a_pathways_result():
    X, Y, _ = rp.tasks.contextual_task(3)
    with pytest.raises(InputError, match="Pathways"):
        rp.ReLN.from_pathways({"1": object()}, X, Y)
    with pytest.raises(ValueInputError, match="empty"):
        rp.ReLN.from_pathways({}, X, Y)


def test_depth_example_builds_and_trains_the_layered_reln(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "depth.py"
    spec = importlib.util.spec_from_file_location("example_depth", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rp.errors.DegenerateDataWarning)
            out = module.main(["--epochs", "400", "--every", "100", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert set(out["relns"]) == {"fixed gates", "gates following training"}
    init_std = rp.tasks.paper_hyperparameters(3, depth=2)["init_std"]
    for reln in out["relns"].values():
        assert reln.spec_.n_layers == 2 and reln.loss_curve_.shape == (400,)
        # the init of each weight layer is read off the monitor's step-0 copy of the network,
        # drawn with the paper's std: ≥ 4620 entries per layer, so the RMS is within a few %
        assert "untrained network" in reln.init_source_
        np.testing.assert_allclose(reln.spec_.init_scales, init_std, rtol=0.05)
    assert sorted(out["relns"]["gates following training"].gate_schedule) == [0, 100, 200, 300]
    assert (tmp_path / "depth.png").exists()


def test_readout_importance_leaves_the_output_bias_to_the_direct_path():
    net = rp.testing.biased_leaky_net(depth=1)
    ds = rp.record(net.model, net.X, coords=net.coords, values=True)
    before = rp.unit_importance(net.model, ds, method="readout")
    with torch.no_grad():
        net.model[2].bias.mul_(-40.0)  # the readout's bias: the direct path, no unit's
    after = rp.unit_importance(net.model, ds, method="readout")
    np.testing.assert_allclose(after.values, before.values, rtol=1e-14)
    # a unit's own (hidden) bias counts through its activation: on-activation 0.5 + w_o
    act = ds["activation"].values
    norms = np.linalg.norm(net.model[2].weight.detach().numpy(), axis=0)
    expected = norms * np.abs(act).mean(0)
    np.testing.assert_allclose(before.values, expected / expected.sum(), rtol=1e-6)  # activations: float32


def _outputs(net):
    """The hand-built network's own outputs, as the targets of its ReLN."""
    with torch.no_grad():
        return net.model(torch.as_tensor(net.X, dtype=torch.float64)).numpy()


def _untrained_like(model, stds, seed=0):
    """A copy of *model* whose l-th Linear has entries ±stds[l] (random signs): RMS exactly stds[l]."""
    import copy

    import torch

    gen = torch.Generator().manual_seed(seed)
    fresh = copy.deepcopy(model)
    linears = [m for m in fresh.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, s in zip(linears, stds):
            signs = torch.randint(0, 2, layer.weight.shape, generator=gen).to(layer.weight.dtype) * 2 - 1
            layer.weight.copy_(signs * s)
    return fresh


def test_layered_reln_takes_each_layers_init_std_from_the_untrained_network():
    """Issue 12 item 3 for deep networks: a layered ReLN's blocks share out each site's units,
    so its initial std per weight layer is the untrained network's (RMS of each nn.Linear)."""
    net = rp.testing.deep_net()
    Y = _outputs(net)
    ds = rp.record(net.model, net.X, coords=net.coords)
    pws = _per_site_pathways(net.model, ds)
    stds = [0.01, 0.002, 0.03]
    untrained = _untrained_like(net.model, stds)
    reln = rp.ReLN.from_pathways(pws, net.X, Y, model=net.model, network=untrained, min_mass=0.0, epochs=1,
                                 lr=1e-4)
    np.testing.assert_allclose(reln.init_scale, stds, rtol=1e-12)
    reln.fit(net.X, Y)
    assert "untrained network" in reln.init_source_
    np.testing.assert_allclose(reln.spec_.init_scales, stds, rtol=1e-12)  # one per weight layer
    # without it, the default small init relative to the data (not the network's, not the paper's)
    default = rp.ReLN.from_pathways(pws, net.X, Y, model=net.model, min_mass=0.0, epochs=1, lr=1e-4)
    default.fit(net.X, Y)
    assert not np.allclose(default.spec_.init_scales, stds)
    # init_std alone: one std per weight layer
    given = rp.ReLN.from_pathways(pws, net.X, Y, model=net.model, init_std=stds, min_mass=0.0, epochs=1, lr=1e-4)
    np.testing.assert_allclose(given.init_scale, stds)


def test_layered_reln_refuses_a_network_or_width_it_cannot_read():
    net = rp.testing.deep_net()
    Y = _outputs(net)
    ds = rp.record(net.model, net.X, coords=net.coords)
    pws = _per_site_pathways(net.model, ds)
    shallow = torch.nn.Sequential(torch.nn.Linear(net.X.shape[1], 4, bias=False), torch.nn.ReLU(),
                                  torch.nn.Linear(4, Y.shape[1], bias=False))
    with pytest.raises(ValueInputError, match=r"`network`.*3 weight layers.*2 nn.Linear"):
        rp.ReLN.from_pathways(pws, net.X, Y, model=net.model, network=shallow, min_mass=0.0)
    with pytest.raises(ValueInputError, match="`width`"):
        rp.ReLN.from_pathways(pws, net.X, Y, model=net.model, init_std=0.01, width=10, min_mass=0.0)
    with pytest.raises(ValueInputError, match="`init_scale` or `network`"):
        rp.ReLN.from_pathways(pws, net.X, Y, model=net.model, network=net.model, init_scale=0.1,
                              min_mass=0.0)
