"""The report as a reader sees it, on an MLP, a ResNet-18 (17 sites) and a BERT: every figure
labelled (axes, legend or colour bar), score names in words with their identifiers in the
definitions, short site labels with the full path in a tooltip, every heatmap row's pathway
named, the channel-unit measure named as such; and in headless Chromium: every image decoded,
no label cut, no word broken, no horizontal overflow. Set ``RELU_PROBE_SCREENSHOTS=DIR`` to
keep the full-page screenshots."""

from __future__ import annotations

import copy
import html
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _chromium import check_pages, find_chromium
from _deps import require, unavailable

import relu_probe as rp
from relu_probe.report import figures
from relu_probe.report.labels import context_set_label, default_title, gating_measure, score_label, site_labels
from relu_probe.testing import digit_images, k_minus_one_net, resnet18


@pytest.fixture(scope="module")
def figures_drawn():
    """Every matplotlib figure the report draws while this module renders reports."""
    drawn = []
    original = figures._png

    def keep(fig):
        drawn.append(fig)
        return original(fig)

    figures._png = keep
    yield drawn
    figures._png = original


@pytest.fixture(scope="module")
def mlp(figures_drawn, tmp_path_factory):
    net = k_minus_one_net(3, 4)
    with torch.no_grad():
        Y = net.model(net.X)
    # a monitor over weights that move less and less: the report gets its training and gate-stability sections
    model = copy.deepcopy(net.model)
    noise = torch.Generator().manual_seed(0)
    mon = rp.TrainingMonitor(model, net.X, coords=net.coords, by="context", within="object", every=10)
    for step, scale in zip((0, 10, 20, 30), (0.0, 0.4, 0.1, 0.0)):
        with torch.no_grad():
            model[0].weight.add_(scale * torch.randn(model[0].weight.shape, generator=noise, dtype=torch.float64))
        mon.snapshot(step)
    res = rp.analyze(model, net.X, coords=net.coords, within="object", Y=Y, epochs=40, reln_params={"hidden": 8},
                     attribution=True, literature=False, monitor=mon)
    assert res.monitor_stability is not None
    return res, res.to_html(tmp_path_factory.mktemp("mlp") / "mlp.html")


@pytest.fixture(scope="module")
def resnet(figures_drawn, tmp_path_factory):
    task = digit_images(("parity", "magnitude", "mod 3"), n_images=16, seed=2)
    torch.manual_seed(0)
    model = resnet18(num_classes=len(task.classes), width=4).eval()
    res = rp.analyze(model, task.images, coords=task.coords, by="context", within="image", units="channel",
                     attribution=True, literature=False)
    return res, res.to_html(tmp_path_factory.mktemp("resnet") / "resnet.html")


@pytest.fixture(scope="module")
def bert(figures_drawn, tmp_path_factory):
    require("transformers")
    from relu_probe.testing import bert_token_classifier, multitask_sequences

    task = multitask_sequences(12, tasks=("parity", "magnitude", "repeat"), length=5)
    model = bert_token_classifier(task, hidden=16, ffn=32, heads=2)
    res = rp.analyze(model, task.input_ids, coords={"task": task.coords["task"], "sequence": task.coords["sequence"]},
                     by="task", within="sequence", samples="position", attribution=True, literature=False)
    return res, res.to_html(tmp_path_factory.mktemp("bert") / "bert.html")


def _texts(fig) -> dict[str, list[str]]:
    """The words on a figure: axis labels, legend entries (axes' and figure's), titles."""
    xlabels, ylabels, legend, titles = [], [], [], []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        xlabels.append(ax.get_xlabel())
        ylabels.append(ax.get_ylabel())
        titles.append(ax.get_title())
        if ax.get_legend() is not None:
            legend += [t.get_text() for t in ax.get_legend().get_texts()]
    for leg in fig.legends:
        legend += [t.get_text() for t in leg.get_texts()]
    return {"x": [t for t in xlabels if t], "y": [t for t in ylabels if t], "legend": legend,
            "titles": [t for t in titles if t]}


def test_every_figure_has_axis_labels_and_a_legend_or_colour_bar(mlp, resnet, bert, figures_drawn):
    from matplotlib.text import Text

    assert len(figures_drawn) >= 9  # MLP: 4 (mass, heatmap, loss, singular values); ResNet: 3; BERT: 2
    for fig in figures_drawn:
        words = _texts(fig)
        # labels are wrapped, never shortened
        assert not [t.get_text() for t in fig.findobj(Text) if "…" in t.get_text()]
        images_only = all(not ax.get_xticklabels() or not ax.lines and not ax.patches for ax in fig.axes
                          if ax.get_visible() and ax.images)
        # a colour bar's label is its y (or x) label: every figure is read through a key
        assert words["legend"] or any("share" in t or "P(on" in t or "fraction" in t for t in words["y"]), words
        if not (images_only and words["titles"]):  # image grids (attribution maps) carry titles
            assert words["x"] and words["y"], words


def _drawn_texts(fig) -> list:
    """The text a figure draws: per visible axes its labels, titles, annotations and the tick
    labels inside its view limits (matplotlib draws no others); its legends; the figure's own."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        out += [ax.xaxis.label, ax.yaxis.label, ax.title, *ax.texts]
        for axis, (lo, hi), index in ((ax.xaxis, ax.get_xlim(), 0), (ax.yaxis, ax.get_ylim(), 1)):
            lo, hi = min(lo, hi), max(lo, hi)
            out += [t for t in axis.get_ticklabels() if lo - 1e-9 * abs(hi - lo) <= t.get_position()[index]
                    <= hi + 1e-9 * abs(hi - lo)]
        if ax.get_legend() is not None:
            out.append(ax.get_legend())
    out += [*fig.legends, *fig.texts] + ([fig._suptitle] if fig._suptitle is not None else [])
    return [t for t in out if t.get_visible() and (not hasattr(t, "get_text") or t.get_text().strip())]


def test_no_text_of_any_figure_is_cut_by_its_edges(mlp, resnet, bert, figures_drawn):
    """Every label, title, tick label and legend a figure draws lies inside it (a legend wider
    than its figure is cut in the PNG, where the browser checks cannot see it)."""
    cut = []
    for i, fig in enumerate(figures_drawn):
        renderer = fig.canvas.get_renderer()
        width, height = fig.bbox.width, fig.bbox.height
        for artist in _drawn_texts(fig):
            box = artist.get_window_extent(renderer)
            if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
                cut.append((i, type(artist).__name__, getattr(artist, "get_text", lambda: "legend")()[:40],
                            [round(v) for v in box.extents], (round(width), round(height))))
    assert cut == [], cut[:8]
    # the check sees a cut: a legend far wider than a small figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    small = Figure(figsize=(2, 2), layout="constrained")
    FigureCanvasAgg(small)
    small.add_subplot().plot([0, 1], label="a label much longer than the two-inch figure it is drawn in")
    small.legend(loc="outside lower center")
    small.canvas.draw()
    assert any(a.get_window_extent(small.canvas.get_renderer()).x0 < -1 for a in _drawn_texts(small))


def test_singular_value_panels_are_labelled(mlp, figures_drawn):
    res, _ = mlp
    sv = [f for f in figures_drawn if f._suptitle is not None and "singular values" in f._suptitle.get_text()]
    assert sv, "no singular-value figure drawn"
    words = _texts(sv[0])
    assert "singular value" in words["y"] and "epoch" in words["x"]
    assert "ReLN (simulated)" in words["legend"] and any(t.startswith("mode ") for t in words["legend"])


def test_heatmap_names_every_pathway_in_full(mlp, figures_drawn):
    res, path = mlp
    heatmaps = [f for f in figures_drawn if any(leg.get_title().get_text() == "pathway" for leg in f.legends)]
    assert heatmaps
    legend = [t.get_text().replace("\n", " ") for leg in heatmaps[0].legends for t in leg.get_texts()]
    # every pathway that has rows (units assigned to it), none shortened
    rows = set(np.unique(res.pathways.labels.values[res.pathways.labels.values >= 0]).tolist())
    expected = {f"#{p} {context_set_label(c)}" for p, c in zip(res.pathways.mass["pathway"].values,
                                                               res.pathways.contexts) if int(p) in rows}
    assert len(expected) >= 4 and set(legend) == expected


def test_scores_read_in_words_with_identifiers_in_definitions(mlp, resnet):
    for res, path in (mlp, resnet):
        text = path.read_text(encoding="utf-8")
        for name in res.scores.index if not hasattr(res.scores, "columns") else res.scores.columns:
            assert f"<td>{score_label(name)}</td>" in text or f"<th>{score_label(name)}</th>" in text, name
            assert f"<code>{name}</code>" in text, name
        assert "node_reuse_score</td>" not in text and ">node_reuse_score<" not in text.replace(
            "<code>node_reuse_score</code>", "")
    assert score_label("node_reuse_score") == "Node reuse" and score_label("my_new_score") == "My new"


def test_site_labels_fold_common_paths_and_keep_full_names_in_tooltips(bert, resnet):
    res, path = bert
    text = path.read_text(encoding="utf-8")
    full = [str(s) for s in res.dataset.attrs["sites"]]
    assert site_labels(full) == ["layer.0", "layer.1"]
    for name in full:
        assert f'<code title="{html.escape(name)}">layer.{name.split(".")[3]}</code>' in text
    res, path = resnet
    assert site_labels(list(res.dataset.attrs["sites"]))[:2] == ["relu", "layer1.0.relu#0"]
    assert site_labels(["1", "3", "5"]) == ["ReLU 1", "ReLU 2", "ReLU 3"]
    assert site_labels(["a.x.b", "a.y.b", "a.x.b2"]) == ["x.b", "y.b", "x.b2"]
    assert site_labels(["enc.0.act", "dec.0.act"]) == ["enc", "dec"]
    assert site_labels(["layers.1", "layers.3"]) == ["layers.1", "layers.3"]  # "1" alone would say nothing


def test_channel_units_are_named_by_what_they_measure(resnet, mlp):
    res, path = resnet
    text = path.read_text(encoding="utf-8")
    assert gating_measure("channel", "context") in text and "P(on | context)" not in text
    res, path = mlp
    assert "P(on | context)" in path.read_text(encoding="utf-8")


def test_titles_and_feature_names_in_words(mlp, resnet, bert):
    res, resnet_path = resnet
    assert res.title == default_title("ResNet", "context", "image", 17)
    assert res.title == "ReLU pathways by context, items image in a ResNet (17 ReLU sites)"
    assert "'" not in res.title
    names = res.attributions["feature_name"].values
    assert names[0] == "pixel (0, 0), channel 0" and names[-1] == "pixel (31, 31), channel 2"
    # per-site pathways: each attributed pathway with its site (a column, and above its map)
    features = resnet_path.read_text(encoding="utf-8")
    features = features[features.index('id="features"'):]
    assert "<th>site</th>" in features
    short = dict(zip(map(str, res.dataset.attrs["sites"]), site_labels(list(map(str, res.dataset.attrs["sites"])))))
    for p in res.attributions["pathway"].values:
        site = str(res.pathways.mass["site"].sel(pathway=p).values)
        assert f'<td class="num">{int(p)}</td><td><code title="{html.escape(site)}">{html.escape(short[site])}</code>' \
            in features, (p, site)
    # tokens as samples: the header says so, and attributions (one sample per input row) are skipped with a note
    res, path = bert
    text = path.read_text(encoding="utf-8")
    n_inputs = len(np.unique(res.dataset["input"].values))
    assert f"{res.dataset.sizes['sample']} token samples (the positions of {n_inputs} inputs)" in text
    assert res.attributions is None and "samples=&#x27;position&#x27;" in text[text.index('id="features"'):]


def test_layer_section_lists_every_site_in_order(resnet):
    res, path = resnet
    text = path.read_text(encoding="utf-8")
    assert 'id="layers"' in text
    sites = [str(s) for s in res.dataset.attrs["sites"]]
    section = text[text.index('id="layers"'):]
    positions = [section.index(f'title="{html.escape(s)}"') for s in sites]
    assert positions == sorted(positions)
    assert "17 ReLU sites" in text


def test_chromium_layout_of_the_mlp_resnet_and_transformer_reports(mlp, resnet, bert, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    shots = Path(os.environ.get("RELU_PROBE_SCREENSHOTS") or tmp_path / "shots")
    # negative control: a cell too narrow for its word, a clipped label, a page wider than the window
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><head><title>c</title><style>td{width:30px;max-width:30px;'
                       'overflow-wrap:anywhere}span{display:inline-block;width:20px;overflow:hidden;'
                       'white-space:nowrap}</style></head><body><table><tr><td>supercalifragilistic</td></tr></table>'
                       '<span>a clipped label</span><div style="width:3000px">wide</div></body></html>',
                       encoding="utf-8")
    pages = check_pages([mlp[1], resnet[1], bert[1], control], chromium=chromium, screenshots=shots, timeout=120)
    *reports, bad = pages
    assert bad["layout"]["broken"] and bad["layout"]["cut"]
    assert bad["layout"]["scrollWidth"] > bad["layout"]["clientWidth"]
    for page, (res, path) in zip(reports, (mlp, resnet, bert)):
        layout = page["layout"]
        assert page["errors"] == [] and page["scripts"] == 0, path
        assert page["images"] and all(ok and w > 0 and h > 0 for ok, w, h in page["images"]), path
        assert layout["scrollWidth"] <= layout["clientWidth"], (path, layout["scrollWidth"])
        assert layout["cut"] == [], (path, layout["cut"][:5])
        assert layout["broken"] == [], (path, layout["broken"][:5])
        assert layout["wide"] == [], (path, layout["wide"][:5])
        assert Path(page["screenshot"]).stat().st_size > 10_000
    # the site names shortened on the page are all given in full in tooltips
    assert reports[1]["layout"]["titled"] >= 17
    assert re.search(r"ReLU pathways by context", pages[1]["title"])
