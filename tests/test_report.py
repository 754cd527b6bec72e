"""The HTML report: sections, escaping of every user-supplied string, embedded PNGs, and a
headless-Chromium load (no console errors, every image decodes)."""

from __future__ import annotations

import base64
import html
import io
import re
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from _chromium import check_pages, find_chromium
from _deps import unavailable
from torch import nn

import relu_probe as rp
from relu_probe.errors import InputError, StoreError
from relu_probe.report import render_report, write_report
from relu_probe.testing import k_minus_one_net

EVIL = "<script>alert(1)</script>"
EVIL_SITE = "<img src=x onerror=alert(2)>"
EVIL_STRINGS = [EVIL, EVIL_SITE, 'out&"\'', "<b>o0</b>", "$\\alpha$ & <i>", "<title>t</title>"]


@pytest.fixture(scope="module")
def evil():
    """The k−1-of-k network with HTML in every user-supplied string (site names, coord
    labels, feature names, title, monitor columns), with targets so every section renders."""
    net = k_minus_one_net(3, 4)
    lin1, relu, lin2 = net.model
    model = nn.Sequential(OrderedDict([("first", lin1), (EVIL_SITE, relu), ('out&"\'', lin2)]))
    context = np.array([EVIL, "a&b", "$\\alpha$ & <i>"], dtype=object)[net.coords["context"]]
    obj = np.array(["<b>o0</b>", "o1", "o2", "o3"], dtype=object)[net.coords["object"]]
    with torch.no_grad():
        Y = model(net.X)
    names = ["<title>t</title>", "o1", "o2", "o3", "c0", "c1", "c2"]
    res = rp.analyze(model, net.X, coords={"context": context, "object": obj}, within="object", Y=Y,
                     feature_names=names, epochs=60, reln_params={"hidden": 8}, title=f"Report {EVIL}")
    ctx = np.empty(2, dtype=object)
    ctx[:] = [tuple(sorted(set(context))), (EVIL, "a&b")]
    frame = pd.DataFrame({"shared_score": [1.0, 0.4], EVIL: [0.0, 2.0]}, index=pd.Index([0, 50], name="step"))
    masses = xr.DataArray([[1.0, 0.0], [0.6, 0.4]], dims=("step", "pathway"),
                          coords={"step": [0, 50], "pathway": [0, 1], "contexts": ("pathway", ctx)})
    stability = pd.DataFrame({"step": [50, 100], "site": [EVIL_SITE, EVIL_SITE], "flip_fraction": [0.2, 0.0],
                              "chance_flip_fraction": [0.4, 0.3]})
    stability.attrs = {"tolerance": 0.05, "stable_step": {EVIL_SITE: 50}}
    return res.attach_monitor(scores=frame, pathways=masses, stability=stability)


@pytest.fixture(scope="module")
def plain():
    net = k_minus_one_net(3, 4)
    return rp.analyze(net.model, net.X, coords=net.coords, attribution=False)


@pytest.fixture(scope="module")
def reports(evil, plain, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    return {"evil": evil.to_html(out / "evil.html"), "plain": write_report(plain, out / "sub" / "plain.html")}


def _images(text: str) -> list[str]:
    return re.findall(r"<img\b[^>]*>", text)


def test_every_user_string_is_escaped(evil, reports):
    text = reports["evil"].read_text(encoding="utf-8")
    for s in EVIL_STRINGS:
        assert s not in text, s
    assert "<script" not in text.lower()
    # each one is shown, escaped
    for s in (EVIL, EVIL_SITE, "<b>o0</b>", "<title>t</title>"):
        assert html.escape(s, quote=True) in text, s
    assert f"<title>Report {html.escape(EVIL)}</title>" in text
    # the only tags are the report's own
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", text))
    assert tags <= {"html", "head", "meta", "link", "title", "style", "body", "main", "h1", "h2", "h3", "p", "code",
                    "nav", "a", "table", "thead", "tbody", "tr", "th", "td", "span", "img", "ul", "li", "footer"}


def test_sections_and_embedded_pngs(evil, plain, reports):
    from PIL import Image

    text = reports["evil"].read_text(encoding="utf-8")
    for anchor in ("scores", "pathways", "profiles", "units", "features", "dynamics", "structure", "training",
                   "stability"):
        assert f'id="{anchor}"' in text, anchor
    for name in evil.scores.index:
        assert f"<code>{name}</code>" in text
    assert "http://" not in text and "https://" not in text  # reads offline, fetches nothing
    images = _images(text)
    # mass bars, heatmap, loss curves, singular values, predicted vs measured structure, monitor
    # scores, monitor pathways, gate stability
    assert len(images) == 8
    for tag in images:
        src = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', tag)
        assert src, tag[:80]
        with Image.open(io.BytesIO(base64.b64decode(src.group(1)))) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 50
    plain_text = reports["plain"].read_text(encoding="utf-8")
    assert 'id="training"' not in plain_text  # no monitor: no section
    assert "pass the targets <code>Y=</code>" in plain_text
    assert "No input attributions" in plain_text
    assert len(_images(plain_text)) == 2


def test_report_rejects_bad_arguments(plain, tmp_path):
    with pytest.raises(InputError, match="rp.analyze"):
        render_report(object())
    with pytest.raises(StoreError, match="directory"):
        write_report(plain, tmp_path)


def test_report_from_loaded_analysis_is_identical(evil, tmp_path):
    back = rp.Analysis.load(evil.save(tmp_path / "a"))
    def strip(text: str) -> str:
        return re.sub(r"Generated by relu_probe .*? on .*? UTC", "", text)

    assert strip(render_report(back)) == strip(render_report(evil))


def test_chromium_loads_reports_without_errors(reports, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    # a negative control proves the check can fail: a broken image and a throwing script
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><head><title>control</title></head><body>'
                       '<img src="data:image/png;base64,AAAAbroken"><script>console.error("boom");'
                       'throw new Error("oops")</script></body></html>', encoding="utf-8")
    evil_page, plain_page, control_page = check_pages([reports["evil"], reports["plain"], control], chromium=chromium)
    for page, n_images in ((evil_page, 8), (plain_page, 2)):
        assert page["errors"] == []
        assert page["scripts"] == 0
        assert len(page["images"]) == n_images
        for decoded, width, height in page["images"]:
            assert decoded and width > 0 and height > 0
    assert evil_page["title"] == f"Report {EVIL}"  # the title is text, not markup
    assert control_page["images"] == [[False, 0, 0]]
    assert any("boom" in e for e in control_page["errors"]) and any("oops" in e for e in control_page["errors"])


def test_layers_section_escapes_site_names_in_text_and_tooltips(tmp_path):
    """Two sites named with markup: short labels, tooltips (attribute values) and figures
    all take them as text."""
    evil_a, evil_b = '<b onmouseover="x">a</b>', "'><script>alert(3)</script>"
    net = k_minus_one_net(3, 4)
    lin1, relu, lin2 = net.model
    model = nn.Sequential(OrderedDict([("first", lin1), (evil_a, relu), ("mid", nn.Linear(lin2.in_features, 8).double()),
                                       (evil_b, nn.ReLU()), ("out", nn.Linear(8, 2).double())]))
    res = rp.analyze(model, net.X, coords=net.coords, within="object", attribution=False, literature=False)
    assert list(res.dataset.attrs["sites"]) == [evil_a, evil_b]
    text = render_report(res)
    assert 'id="layers"' in text
    for s in (evil_a, evil_b):
        assert s not in text
        assert f'title="{html.escape(s, quote=True)}"' in text
    assert "<script" not in text.lower() and "onmouseover=\"" not in text
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", text))
    assert tags <= {"html", "head", "meta", "link", "title", "style", "body", "main", "h1", "h2", "h3", "p", "code",
                    "nav", "a", "table", "thead", "tbody", "tr", "th", "td", "span", "img", "ul", "li", "footer",
                    "section", "div", "dl", "dt", "dd", "details", "summary"}


def test_a_skipped_reln_says_why_instead_of_asking_for_the_targets():
    """Y given, but a two-hidden-layer network without lr / epochs: the ReLN is skipped, and the
    dynamics section gives that reason (it asked for `Y=`, which had been passed)."""
    X, Y, coords = rp.tasks.contextual_task(3)
    torch.manual_seed(0)
    deep = torch.nn.Sequential(torch.nn.Linear(11, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 60)).double()
    res = rp.analyze(deep, X, coords=coords, by="context", within="object", Y=Y, progress=False,
                     attribution=False, literature=False)
    assert res.dynamics is None
    text = render_report(res)
    assert "No learning dynamics: ReLN skipped: `lr` and `epochs` not given" in html.unescape(text)
    assert "pass the targets" not in text
