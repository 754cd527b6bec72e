"""TrainingMonitor.gate_stability(): flips of the probe gates between snapshots, per site, against
hand-computed gates of a network whose weights are set by hand at each step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe.errors import StoreMismatchError, ValueInputError

W1 = np.array([[1.0, -1.0, 0.0, 2.0], [0.0, 1.0, 1.0, -1.0], [1.0, 1.0, -1.0, 0.0]])
W2 = np.array([[1.0, -1.0, 1.0], [-1.0, 2.0, 1.0]])


def net() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(),
                          nn.Linear(2, 1)).to(torch.float64)
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W1))
        model[2].weight.copy_(torch.from_numpy(W2))
        model[2].bias.copy_(torch.tensor([0.5, -0.5], dtype=torch.float64))
    return model


def gates(model: nn.Sequential, x: np.ndarray) -> dict[str, np.ndarray]:
    """Both sites' gates by hand from the current weights."""
    w1, w2 = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    b2 = model[2].bias.detach().numpy()
    z1 = x @ w1.T
    z2 = np.maximum(z1, 0) @ w2.T + b2
    return {"1": z1 > 0, "3": z2 > 0}


def expected_rows(history: list[dict[str, np.ndarray]], steps: list[int]) -> list[tuple[int, str, float, float]]:
    rows = []
    for k in range(1, len(history)):
        for site in ("1", "3"):
            before, now = history[k - 1][site], history[k][site]
            p, q = before.mean(0), now.mean(0)
            rows.append((steps[k], site, float((before != now).mean()), float((p * (1 - q) + q * (1 - p)).mean())))
    return rows


X = np.random.default_rng(0).integers(-3, 4, size=(20, 4)).astype(np.float64)


def take_snapshots(mon: rp.TrainingMonitor, model: nn.Sequential) -> tuple[list, list[int]]:
    """Step 0: as built; 10: unit 0 of site '1' flipped (its weights negated); 20: unchanged;
    30: site '3' rewired (its unit 1 negated); 40: unchanged."""
    history, steps = [], [0, 10, 20, 30, 40]
    for step in steps:
        with torch.no_grad():
            if step == 10:
                model[0].weight[0].neg_()
            if step == 30:
                model[2].weight[1].neg_()
                model[2].bias[1].neg_()
        history.append(gates(model, X))
        mon.snapshot(step)
    return history, steps


@pytest.mark.parametrize("backed", ["memory", "store"])
def test_flip_fractions_and_stable_steps_match_the_hand_computed_gates(backed, tmp_path):
    model = net()
    store = tmp_path / "mon" if backed == "store" else None
    with rp.TrainingMonitor(model, torch.from_numpy(X), every=10, store=store, values=False) as mon:
        history, steps = take_snapshots(mon, model)
        frame = mon.gate_stability()
        stable = mon.stable_steps()
    assert list(frame.columns) == ["step", "site", "flip_fraction", "chance_flip_fraction", "stable"]
    want = expected_rows(history, steps)
    assert [(int(r.step), r.site) for r in frame.itertuples()] == [(s, site) for s, site, _, _ in want]
    np.testing.assert_allclose(frame["flip_fraction"], [w[2] for w in want], rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame["chance_flip_fraction"], [w[3] for w in want], rtol=0, atol=1e-12)
    # the step-10 change flips unit 0 of site '1' on every sample where its input is not 0
    flips_10 = frame.set_index(["step", "site"]).loc[(10, "1"), "flip_fraction"]
    assert flips_10 == pytest.approx(np.count_nonzero(X @ W1[0]) / (20 * 3))
    assert flips_10 > 0 and frame.set_index(["step", "site"]).loc[(20, "1"), "flip_fraction"] == 0
    # site '1' changes last between steps 0 and 10 (stable after 10); site '3' between 20 and 30
    assert frame.attrs["stable_step"] == {"1": 10, "3": 30} == stable.to_dict()
    assert frame.attrs["tolerance"] == 0.05
    assert frame.set_index(["step", "site"])["stable"].to_dict() == {
        (10, "1"): False, (10, "3"): False, (20, "1"): True, (20, "3"): False,
        (30, "1"): True, (30, "3"): False, (40, "1"): True, (40, "3"): True}


def test_a_site_still_changing_at_the_last_snapshot_has_no_stable_step():
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), every=10, values=False)
    mon.snapshot(0)
    with torch.no_grad():
        model[0].weight[0].neg_()
    mon.snapshot(10)
    # a tolerance of 1 (flips up to the chance level) calls every site stable
    assert mon.gate_stability(tolerance=1.0).attrs["stable_step"]["1"] == 0
    stable = mon.stable_steps()
    assert stable.isna()["1"] and stable.name == "stable_step"


def test_gate_stability_refuses_what_it_cannot_measure():
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), values=False)
    mon.snapshot(0)
    with pytest.raises(ValueInputError, match="at least two"):
        mon.gate_stability()
    with pytest.raises(ValueInputError, match="`tolerance`"):
        mon.gate_stability(tolerance=-1)
    conv = nn.Sequential(nn.Conv1d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(6, 1))
    mon = rp.TrainingMonitor(conv, torch.randn(5, 1, 4), units="channel", values=False)
    mon.snapshot(0)
    mon.snapshot(1)
    with pytest.raises(ValueInputError, match="units='channel'"):
        mon.gate_stability()


def test_analysis_carries_the_gate_stability_and_saves_it(tmp_path):
    model = net()
    coords = {"c": np.arange(20) % 2}
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), coords=coords, by="c", every=10, values=False)
    take_snapshots(mon, model)
    res = rp.analyze(model, torch.from_numpy(X), coords=coords, by="c", literature=False, attribution=False,
                     monitor=mon)
    stability = res.monitor_stability
    assert stability.flip_fraction.dims == ("step", "site")
    np.testing.assert_array_equal(stability.stable_step.values, [10.0, 30.0])
    res.save(tmp_path / "a")
    back = rp.Analysis.load(tmp_path / "a")
    np.testing.assert_allclose(back.monitor_stability.flip_fraction.values, stability.flip_fraction.values)
    assert back.monitor_stability.attrs["tolerance"] == 0.05


def test_a_monitor_takes_tokens_as_samples_and_checks_its_coords_per_input(tmp_path):
    from test_token_samples import IDS, LABEL, MASK, TokenNet, expected_tokens

    model = TokenNet()
    probe = {"input_ids": IDS, "attention_mask": MASK}
    with rp.TrainingMonitor(model, probe, coords={"label": LABEL}, samples="position", store=tmp_path / "m",
                            values=False) as mon:
        mon.snapshot(0)
        with torch.no_grad():
            model.fc.bias[2] = 10.0  # channel 2 now on for every token
        mon.snapshot(5)
        frame = mon.gate_stability()
    ds = rp.load(tmp_path / "m")
    want = expected_tokens(IDS, MASK)
    assert ds.gate.shape == (2, 9, 3)
    np.testing.assert_array_equal(ds.label.values, LABEL[want["input"]])
    off = ~want["gate"][:, 2]
    assert frame.set_index("site").loc["act", "flip_fraction"] == pytest.approx(off.sum() / (9 * 3))
    with pytest.raises(StoreMismatchError, match="label"):
        rp.TrainingMonitor(model, probe, coords={"label": LABEL[::-1]}, samples="position", store=tmp_path / "m")


def test_uneven_snapshot_intervals_warn():
    """An extra snapshot between update() snapshots: flips over 5 and 10 steps are not comparable."""
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), every=10, values=False)
    for step in (0, 10, 15, 20):
        mon.snapshot(step)
    with pytest.warns(rp.errors.ReluProbeWarning, match=r"the snapshots are 5, 10 steps apart"):
        mon.gate_stability()
    even = rp.TrainingMonitor(model, torch.from_numpy(X), every=10, values=False)
    for step in (0, 10, 20):
        even.snapshot(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rp.errors.ReluProbeWarning)
        even.gate_stability()
