"""Input attributions and conductance importance on reused modules, functional ReLUs, token
ids and real architectures: exact answers on bias-free hand-weighted networks, agreement with
captum where captum applies, the cost estimate and the skip rule of ``rp.analyze``."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import relu_probe as rp
from relu_probe.pathways.attribution import attribution_cost, pathway_attributions, plan_attributions
from relu_probe.testing import A_WEIGHTS, B_WEIGHTS, FunctionalReLUNet, ReusedReLUNet, assert_no_hooks, toy_inputs
from relu_probe._util.notes import merge_notes
from _deps import require

analyze_module = importlib.import_module("relu_probe.analysis.analyze")  # the module, not rp.analyze


class _Pathways:
    """The two attributes attribution reads from a Pathways: unit memberships and masses."""

    def __init__(self, ds: xr.Dataset, weights: list[np.ndarray]):
        self.membership = xr.DataArray(np.stack(weights, 1), dims=("unit", "pathway"),
                                       coords={"unit": ds["unit"].values})
        contexts = np.empty(len(weights), dtype=object)
        contexts[:] = [(p,) for p in range(len(weights))]
        self.mass = xr.DataArray(np.full(len(weights), 1.0 / len(weights)), dims=("pathway",),
                                 coords={"pathway": np.arange(len(weights)), "contexts": ("pathway", contexts)})


def _gated_gradients(x: np.ndarray):
    """The toy's two layers by hand: pre-activations and the gated linear maps from the input
    (bias-free, so the gates are constant along the path α·x, α > 0)."""
    z1 = x @ A_WEIGHTS.T
    g1 = (z1 > 0).astype(float)
    z2 = np.maximum(z1, 0) @ B_WEIGHTS.T
    g2 = (z2 > 0).astype(float)
    # d a1_i / d x = g1_i A_i ; d a2_j / d x = g2_j Σ_i B_ji g1_i A_i
    da1 = g1[:, :, None] * A_WEIGHTS[None]
    da2 = g2[:, :, None] * np.einsum("ji,ni,ik->njk", B_WEIGHTS, g1, A_WEIGHTS)
    return z1, z2, da1, da2


def _expected_shares(ig: np.ndarray) -> np.ndarray:
    m = np.abs(ig).mean(0)
    return m / m.sum()


@pytest.mark.parametrize("net", [ReusedReLUNet(), FunctionalReLUNet("F.relu"), FunctionalReLUNet("Tensor.relu_")],
                         ids=["reused module", "F.relu", "Tensor.relu_"])
def test_exact_attributions_through_reused_modules_and_functional_relus(net):
    r"""A bias-free network is linear along the path α·x, so IG_f(x) = x_f ∂A/∂x_f exactly.

    Pathway 0 reads the second call of the ReLU (units 0 and 1, weights 1 and 2), pathway 1
    the first call's unit 2: both calls of one module, attributed separately.
    """
    x = torch.randn(40, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))  # no gate ties at 0
    ds = rp.record(net, x)
    first, second = [s for s in ds.attrs["sites"]][:2]
    site = ds["site"].values
    w0 = np.zeros(ds.sizes["unit"])
    w0[np.flatnonzero(site == second)] = [1.0, 2.0]
    w1 = np.zeros(ds.sizes["unit"])
    w1[np.flatnonzero(site == first)[2]] = 1.0
    shares, notes = pathway_attributions(net, ds, _Pathways(ds, [w0, w1]), x, n_steps=8)
    xn = x.numpy()
    _, _, da1, da2 = _gated_gradients(xn)
    ig0 = xn * (1.0 * da2[:, 0] + 2.0 * da2[:, 1])
    ig1 = xn * da1[:, 2]
    np.testing.assert_allclose(shares.sel(pathway=0).values, _expected_shares(ig0), atol=1e-10)
    np.testing.assert_allclose(shares.sel(pathway=1).values, _expected_shares(ig1), atol=1e-10)
    assert notes == []
    assert shares["feature_name"].values.tolist() == ["x[0]", "x[1]", "x[2]", "x[3]"]
    assert_no_hooks(net)


class _BagOfTokens(nn.Module):
    """ids (N, L) → embedding (d=1, E[v] = v) → per position × hand weights → ReLU → sum."""

    def __init__(self, position_weights):
        super().__init__()
        self.embed = nn.Embedding(5, 1).to(torch.float64)
        with torch.no_grad():
            self.embed.weight.copy_(torch.arange(5, dtype=torch.float64)[:, None])
        self.w = torch.tensor(position_weights, dtype=torch.float64)
        self.act = nn.ReLU()
        self.out = nn.Linear(1, 1, bias=False).to(torch.float64)
        with torch.no_grad():
            self.out.weight.fill_(1.0)

    def forward(self, ids):
        e = self.embed(ids)[..., 0]                      # (N, L)
        return self.out(self.act((e * self.w).sum(1, keepdim=True)))


def test_token_ids_are_attributed_through_their_embedding():
    r"""Integer inputs stay integers; the path runs from the zero embedding to E[ids].

    a = relu(Σ_l w_l E[id_l]) with E[v] = v: along α·E the gate is fixed, so the attribution
    of position l is w_l · id_l where the unit is on, 0 elsewhere.
    """
    weights = [2.0, -1.0, 0.5]
    model = _BagOfTokens(weights)
    ids = torch.tensor([[1, 2, 4], [3, 0, 2], [4, 4, 1], [0, 3, 0], [2, 1, 3]])
    ds = rp.record(model, ids)
    shares, notes = pathway_attributions(model, ds, _Pathways(ds, [np.ones(1)]), ids, n_steps=4)
    pre = (ids.double() * torch.tensor(weights)).sum(1)
    ig = (ids.double() * torch.tensor(weights)) * (pre > 0).double()[:, None]
    np.testing.assert_allclose(shares.values[0], _expected_shares(ig.numpy()), atol=1e-12)
    assert shares["feature_name"].values.tolist() == ["position 0", "position 1", "position 2"]
    assert shares.attrs["space"] == "embedding" and "embedding" in shares.attrs["method"]
    assert ids.dtype == torch.int64


def test_conductance_is_exact_through_a_reused_relu():
    r"""F = ½ y², bias-free: along α·x every unit is linear in α and so is ∂F/∂a, so
    Cond_u = ∫ α g_u · a_u dα = ½ g_u a_u (the trapezoid rule is exact). At the second call
    g = y (the readout is all ones); at the first, g_i = y Σ_j [z2_j > 0] B_ji."""
    net = ReusedReLUNet()
    x = torch.randn(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))  # no gate ties at 0
    ds = rp.record(net, x)
    imp = rp.unit_importance(net, ds, "conductance", x, n_steps=3)
    z1, z2, _, _ = _gated_gradients(x.numpy())
    a1, a2 = np.maximum(z1, 0), np.maximum(z2, 0)
    y = a2.sum(1, keepdims=True)
    cond2 = 0.5 * a2 * y
    cond1 = 0.5 * a1 * (y * ((z2 > 0) @ B_WEIGHTS))
    raw = np.concatenate([np.abs(cond1).mean(0), np.abs(cond2).mean(0)])
    np.testing.assert_allclose(imp.values, raw / raw.sum(), atol=1e-12)
    assert imp.attrs["method"] == "conductance"
    assert_no_hooks(net)


def test_conductance_agrees_with_captum_where_captum_applies():
    from captum.attr import LayerConductance

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(25, 5, dtype=torch.float64)
    ds = rp.record(model, x)
    imp = rp.unit_importance(model, ds, "conductance", x, n_steps=300)

    def scalar(z):
        return 0.5 * model(z).pow(2).sum(1)

    ref = torch.cat([LayerConductance(scalar, model[i]).attribute(x, n_steps=300, method="riemann_trapezoid")
                     .detach().abs().mean(0) for i in (1, 3)]).numpy()
    np.testing.assert_allclose(imp.values, ref / ref.sum(), atol=2e-4)


class _InplaceAfter(nn.Module):
    """``h = relu(W x); h += 1`` (in place after the ReLU) vs the same without in place."""

    def __init__(self, inplace: bool):
        super().__init__()
        self.fc = nn.Linear(4, 3).double()
        self.out = nn.Linear(3, 2).double()
        torch.manual_seed(4)
        for p in self.parameters():
            nn.init.normal_(p)
        self.act = nn.ReLU()
        self.inplace = inplace

    def forward(self, x):
        h = self.act(self.fc(x))
        if self.inplace:
            h += 1.0
        else:
            h = h + 1.0
        return self.out(h)


def test_conductance_reads_the_relu_output_even_when_later_modified_in_place():
    x = toy_inputs(20, seed=2)
    results = []
    for inplace in (True, False):
        model = _InplaceAfter(inplace)
        ds = rp.record(model, x)
        results.append(rp.unit_importance(model, ds, "conductance", x, n_steps=20).values)
    np.testing.assert_allclose(results[0], results[1], atol=1e-12)


def test_conductance_refuses_up_front_what_it_cannot_do():
    model = _BagOfTokens([1.0, 1.0, 1.0])
    two = nn.Sequential(nn.Embedding(5, 2), nn.Embedding(5, 2))  # not a real model: two candidates
    ids = torch.tensor([[1, 2, 3]])
    ds = rp.record(model, ids)
    with pytest.raises(rp.errors.ValueInputError, match="one input row per recorded sample"):
        rp.unit_importance(model, ds, "conductance", ids.repeat(2, 1))
    with pytest.raises(rp.errors.InputError, match="torch.Tensor"):
        rp.unit_importance(model, ds, "conductance", [[1, 2, 3]])
    from relu_probe.pathways.gradients import input_embedding

    with pytest.raises(rp.errors.ValueInputError, match="2 nn.Embedding modules"):
        input_embedding(two)


def _resnet_task():
    from relu_probe.testing import digit_images, resnet18

    task = digit_images(("parity", "magnitude"), n_images=24, seed=1)
    torch.manual_seed(0)
    model = resnet18(num_classes=len(task.classes), width=4).eval()
    return model, task


def test_resnet_attribution_reads_every_block_call():
    """BasicBlock reuses self.relu; every one of the 17 sites is attributed (no notes, no
    all-zero maps) and the hooks are gone afterwards."""
    model, task = _resnet_task()
    ds = rp.record(model, task.images, coords=task.coords, units="channel")
    sites = list(ds.attrs["sites"])
    assert len(sites) == 17 and "layer1.0.relu#1" in sites
    site = ds["site"].values
    weights = [(site == s).astype(float) for s in ("relu", "layer1.0.relu#1", "layer4.1.relu#1")]
    shares, notes = pathway_attributions(model, ds, _Pathways(ds, weights), task.images, n_steps=4)
    assert notes == []
    assert shares.sizes == {"pathway": 3, "feature": 3 * 32 * 32}
    np.testing.assert_allclose(shares.sum("feature").values, 1.0)
    assert shares["feature_name"].values[0] == "pixel (0, 0), channel 0"
    assert_no_hooks(model)


def test_bert_token_ids_attributed_and_conductance_works():
    require("transformers")
    from relu_probe.testing import bert_token_classifier, multitask_sequences

    task = multitask_sequences(6, tasks=("parity", "repeat"), length=4)
    model = bert_token_classifier(task, hidden=16, ffn=24, heads=2)
    res = rp.analyze(model, task.input_ids, coords={"task": task.coords["task"], "sequence": task.coords["sequence"]},
                     by="task", within="sequence", importance="conductance", attribution=True, literature=False)
    assert res.params["importance"] == "conductance" and np.isclose(float(res.importance.sum()), 1.0)
    att = res.attributions
    assert att is not None and att.attrs["space"] == "embedding"
    assert att.sizes["feature"] == task.input_ids.shape[1]
    assert not any("failed" in n for n in res.notes), res.notes


def test_cost_estimate_is_close_to_the_time_taken():
    import time

    model, task = _resnet_task()
    ds = rp.record(model, task.images, coords=task.coords, units="channel")
    pw = rp.find_pathways(ds, "context", "image")
    plan = plan_attributions(model, ds, pw, task.images, n_steps=6)
    estimate = attribution_cost(plan)
    start = time.perf_counter()
    pathway_attributions(model, ds, pw, task.images, plan=plan)
    taken = time.perf_counter() - start
    assert 0.2 * taken < estimate < 5 * taken, (estimate, taken)


def test_analyze_skips_attributions_that_would_dominate_unless_asked(monkeypatch):
    net = ReusedReLUNet()
    x = toy_inputs(24)
    coords = {"c": np.arange(24) % 2}
    monkeypatch.setattr(analyze_module, "attribution_cost", lambda plan: 1e6)
    res = rp.analyze(net, x, coords=coords, by="c")
    assert res.attributions is None
    [note] = [n for n in res.notes if "skipped" in n]
    assert "estimated 1000000 s" in note and "attribution=True" in note and "--attribution" in note
    forced = rp.analyze(net, x, coords=coords, by="c", attribution=True)
    assert forced.attributions is not None
    assert rp.analyze(net, x, coords=coords, by="c", attribution=False).attributions is None
    # a cheap attribution is computed even when it is larger than the (tiny) rest of the run
    monkeypatch.setattr(analyze_module, "attribution_cost", lambda plan: analyze_module.ATTRIBUTION_ALWAYS_S / 2)
    assert rp.analyze(net, x, coords=coords, by="c").attributions is not None
    with pytest.raises(rp.errors.InputError, match="`attribution`"):
        rp.analyze(net, x, coords=coords, by="c", attribution="yes")


class _SlowForward(nn.Module):
    """A network whose every forward takes at least *delay* seconds: recording it costs a few
    forwards, attributing it ``n_steps`` forwards and backwards per pathway."""

    def __init__(self, model: nn.Module, delay: float) -> None:
        super().__init__()
        self.model, self.delay = model, delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(self.delay)
        return self.model(x)


def test_a_measured_estimate_that_would_dominate_skips_attributions_with_a_note():
    """No monkeypatching: the estimate is timed. With 4+ pathways × 32 steps of >= 60 ms
    forwards, attributions would take >= 7.7 s, more than the rest of the analysis (a few
    forwards) and more than ATTRIBUTION_ALWAYS_S."""
    from relu_probe.testing import k_minus_one_net

    net = k_minus_one_net(3, 4)
    model = _SlowForward(net.model, 0.06)
    res = rp.analyze(model, net.X, coords=net.coords, by="context", within="object", literature=False, null=0)
    assert res.attributions is None
    [note] = [n for n in res.notes if "input attributions skipped: estimated" in n]
    estimate, budget = (float(v) for v in re.search(r"estimated (\d+) s .* than the (\d+) s", note).groups())
    n_pathways = int(re.search(r"\((\d+) pathways", note).group(1))
    assert n_pathways >= 4 and estimate >= n_pathways * 32 * 0.06 - 1 and estimate > budget
    assert "attribution=True" in note and "--attribution" in note


def test_repeated_notes_are_merged():
    notes = ["site 'a.relu#0' skipped", "site 'a.relu#1' skipped", "done", "done", "site 'b' and 'c' differ",
             "site 'a.relu#0' skipped"]
    assert merge_notes(notes) == ["sites 'a.relu#0', 'a.relu#1' skipped", "done", "site 'b' and 'c' differ"]


class _Flattening(nn.Module):
    """OPT-style: ids → embedding (d=1, E[v] = v) → rows (batch·seq, 1) → Linear(1→2, weights
    +1 and −0.5) → ReLU → back to (batch, seq, 2) → sum."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 1).to(torch.float64)
        self.fc = nn.Linear(1, 2, bias=False).to(torch.float64)
        with torch.no_grad():
            self.embed.weight.copy_(torch.tensor([[0.0], [1.0], [-2.0], [3.0], [-1.0], [2.0]]))
            self.fc.weight.copy_(torch.tensor([[1.0], [-0.5]]))
        self.act = nn.ReLU()

    def forward(self, ids):
        b, t = ids.shape
        h = self.act(self.fc(self.embed(ids).reshape(b * t, 1)))
        return h.reshape(b, t, 2).sum((1, 2))[:, None]


def test_flattened_batch_times_sequence_sites_are_read_per_input():
    r"""Each row of the (batch·seq, 2) ReLU input belongs to one (input, position): the
    attribution of position t is Σ_u [W_u e_t > 0] W_u e_t (the gate is fixed along α·e),
    whatever the recording made of the rows."""
    model = _Flattening()
    ids = torch.tensor([[1, 2, 3], [4, 5, 1], [2, 2, 3], [5, 4, 0]])
    ds = rp.record(model, ids)
    shares, _ = pathway_attributions(model, ds, _Pathways(ds, [np.ones(ds.sizes["unit"])]), ids, n_steps=4)
    e = model.embed.weight.detach()[ids][..., 0]                     # (N, T)
    w = torch.tensor([1.0, -0.5], dtype=torch.float64)
    z = e[..., None] * w                                             # (N, T, 2) pre-activations
    ig = (z * (z > 0)).sum(-1)
    np.testing.assert_allclose(shares.values[0], _expected_shares(ig.numpy()), atol=1e-12)
