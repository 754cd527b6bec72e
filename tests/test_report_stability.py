"""The report's gate-stability section, on the hand-built two-site network of
``test_gate_stability`` whose weights are changed by hand between snapshots: the table gives
each site's stable step and the last pair's flips against chance as computed by hand from the
gates, and the figure draws exactly those flip fractions, chance levels and stable steps."""

from __future__ import annotations

import html

import numpy as np
import pytest
import torch
from matplotlib.lines import Line2D
from test_gate_stability import X, expected_rows, net, take_snapshots

import relu_probe as rp
from relu_probe.report import figures, render_report

COORDS = {"c": np.arange(20) % 2}


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures drawn while a test renders a report."""
    figs = []
    original = figures._png

    def keep(fig):
        figs.append(fig)
        return original(fig)

    monkeypatch.setattr(figures, "_png", keep)
    return figs


def _analysis(model, mon):
    return rp.analyze(model, torch.from_numpy(X), coords=COORDS, by="c", literature=False, attribution=False,
                      monitor=mon)


def _stability_figure(drawn):
    found = [f for f in drawn if any(t.get_text().startswith("stability threshold")
                                     for leg in f.legends for t in leg.get_texts())]
    assert len(found) == 1
    return found[0]


def test_the_report_shows_each_sites_flips_chance_and_stable_step(drawn):
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), coords=COORDS, by="c", every=10, values=False)
    history, steps = take_snapshots(mon, model)
    text = render_report(_analysis(model, mon))
    assert '<h2 id="stability">Gate stability</h2>' in text and '<a href="#stability">Gate stability</a>' in text
    section = text[text.index('id="stability"'):]
    want = {(step, site): (flips, chance) for step, site, flips, chance in expected_rows(history, steps)}
    # site '1' last changes between steps 0 and 10, site '3' between 20 and 30; both flip nothing at 40
    for site, label, stable in (("1", "ReLU 1", 10), ("3", "ReLU 2", 30)):
        flips, chance = want[(40, site)]
        assert flips == 0 and chance > 0
        row = (f'<tr><td><code title="{site}">{label}</code></td><td>step {stable}</td>'
               f'<td class="num">{flips:.4f}</td><td class="num">{chance:.4f}</td><td class="num">0.000</td></tr>')
        assert row in section, row
    assert "2 of 2 sites are stable by step 40" in section
    assert "every later snapshot flips at most 0.05 × chance" in section

    fig = _stability_figure(drawn)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["ReLU 1", "ReLU 2"]
    for ax, site, stable in zip(axes, ("1", "3"), (10, 30)):
        flips = [line for line in ax.lines if line.get_linestyle() == "-" and line.get_marker() == "o"]
        chance = [line for line in ax.lines if line.get_linestyle() == "--"]
        threshold = [line for line in ax.lines if line.get_linestyle() == ":"]
        vertical = [line for line in ax.lines if line.get_marker() in ("None", None, "") and
                    line.get_linestyle() == "-"]
        np.testing.assert_array_equal(flips[0].get_xdata(), steps[1:])
        np.testing.assert_allclose(flips[0].get_ydata(), [want[(s, site)][0] for s in steps[1:]], atol=1e-12)
        np.testing.assert_allclose(chance[0].get_ydata(), [want[(s, site)][1] for s in steps[1:]], atol=1e-12)
        np.testing.assert_allclose(threshold[0].get_ydata(), [0.05 * want[(s, site)][1] for s in steps[1:]],
                                   atol=1e-12)
        assert len(vertical) == 1 and list(vertical[0].get_xdata()) == [stable, stable]
        assert ax.get_xlabel() == "training step"
    assert axes[0].get_ylabel() == "fraction of gates flipped"
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert legend == ["flipped since the previous snapshot", "chance (gates re-drawn at the same rates)",
                      "stability threshold (0.05 × chance)", "stable from this step"]


def test_a_site_still_changing_reads_not_yet_and_has_no_stable_line(drawn):
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), coords=COORDS, by="c", every=10, values=False)
    mon.snapshot(0)
    with torch.no_grad():
        model[0].weight[0].neg_()  # site '1' changes between the last two snapshots
    mon.snapshot(10)
    res = _analysis(model, mon)
    stable = res.monitor_stability["stable_step"].values
    assert np.isnan(stable[0])
    section = render_report(res)
    section = section[section.index('id="stability"'):]
    assert '<td><code title="1">ReLU 1</code></td><td>not yet</td>' in section
    fig = _stability_figure(drawn)
    first = [ax for ax in fig.axes if ax.get_visible()][0]
    assert not [line for line in first.lines if isinstance(line, Line2D) and line.get_marker() in ("None", None, "")
                and line.get_linestyle() == "-"]


def test_no_stability_section_without_a_monitor_or_with_channel_units():
    model = net()
    text = render_report(_analysis(model, None))
    assert 'id="stability"' not in text and "#stability" not in text
    conv = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(6, 1))
    probe = torch.randn(6, 1, 4, generator=torch.Generator().manual_seed(0))
    coords = {"c": np.arange(6) % 2}
    mon = rp.TrainingMonitor(conv, probe, coords=coords, by="c", units="channel", values=False)
    mon.snapshot(0)
    mon.snapshot(1)
    res = rp.analyze(conv, probe, coords=coords, by="c", units="channel", literature=False, attribution=False,
                     monitor=mon)
    assert res.monitor_stability is None  # channel units have no binary gates to flip
    assert 'id="stability"' not in render_report(res)


def test_stability_site_names_are_escaped():
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), coords=COORDS, by="c", every=10, values=False)
    take_snapshots(mon, model)
    frame = mon.gate_stability()
    evil = '<img src=x onerror="alert(1)">'
    frame["site"] = frame["site"].map({"1": evil, "3": "ok"})
    frame.attrs["stable_step"] = {evil: 10, "ok": 30}
    res = _analysis(model, None).attach_monitor(stability=frame)
    text = render_report(res)
    assert evil not in text
    assert f'<code title="{html.escape(evil)}">' in text[text.index('id="stability"'):]


def test_per_site_pathway_masses_over_training_get_one_panel_per_site(drawn):
    """Per-site pathways sum to 1 within each site: one stacked panel per site (titled by it,
    each stack summing to 1), not one stack of every site's pathways summing to the number of sites."""
    model = net()
    mon = rp.TrainingMonitor(model, torch.from_numpy(X), coords=COORDS, by="c", every=10, values=False)
    take_snapshots(mon, model)
    res = _analysis(model, mon)
    over_time = res.monitor_pathways
    assert set(over_time["site"].values.tolist()) == {"1", "3"}
    text = render_report(res)
    assert "one panel per site (masses sum to 1 within each site)" in text
    stacks = [f for f in drawn if any(ax.collections and ax.get_ylabel().startswith("pathway mass")
                                      for ax in f.axes)]
    assert len(stacks) == 1
    axes = [ax for ax in stacks[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["ReLU 1", "ReLU 2"]
    for ax, site in zip(axes, ("1", "3")):
        mine = over_time.isel(pathway=np.flatnonzero(over_time["site"].values == site))
        assert len(ax.collections) == mine.sizes["pathway"]  # this site's pathways only
        np.testing.assert_allclose(mine.sum("pathway").values, 1.0, atol=1e-9)
        assert ax.get_ylim()[1] == pytest.approx(1.0)
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend and all(t.startswith("{") for t in legend)
