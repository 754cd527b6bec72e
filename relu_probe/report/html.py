"""The HTML report of an :class:`relu_probe.Analysis`: one self-contained file.

>>> res = rp.analyze(model, X, coords=coords, within="object", Y=Y, loss_curve=loss)  # doctest: +SKIP
>>> res.to_html("report.html")                                                        # doctest: +SKIP

The file needs nothing but a browser: figures are PNGs embedded as ``data:`` URIs, styles are
inline, and there is no script at all (a Content-Security-Policy forbids any). The sections
(:data:`relu_probe.report.sections.SECTIONS`) are:

1. **Scores**, each with its name for a reader ("Node reuse") and a definition that gives
   its identifier (``node_reuse_score``) and formula; per site when the pathways are per
   site; null baselines beside them when the analysis has them;
2. **Layers** (several sites): the layer-by-layer summary figure — how much of each site's
   pathway mass is shared by all contexts, several, or one, and each site's scores — a
   table of the sites, one card per site with its pathways, and every site's gating
   profiles as small multiples. Site names are shortened (common prefixes folded) with the
   full module path in a tooltip;
3. **Pathways** (one site, or pooled): the pathway table and the context-set mass bars;
4. **Gating profiles** (one site, or pooled): a heatmap of every important unit, rows
   grouped by pathway and named in a legend, columns by condition (and item);
5. **Units**: the most important units' pathway, gating profile, mixed-selectivity index and
   importance; the input features that drive each pathway (captum integrated gradients);
6. **Learning dynamics** (with targets): ReLU vs ReLN vs its prediction (the exact dynamics by
   default) and the closed form (the mode-by-mode approximation), their comparison, and the
   singular-value trajectories of every ReLN pathway;
7. **Predicted structure** (with targets): the pathway masses predicted from the data before
   training against the measured ones, and their total-variation distance (over training too,
   with a monitor's :meth:`~relu_probe.TrainingMonitor.structure_over_time`);
8. **Structure over training** (when a training monitor was attached);
9. **Gate stability** (when the monitor's gates are binary): per site, the fraction of probe
   gates that flipped between snapshots against its chance level, and the step from which
   the site's gating stays fixed — the ReLN's fixed-gating assumption, measured;
10. **Notes**: what was skipped and why.

Every string that comes from the user's data or model (coord labels, site names, titles,
feature names) is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._util.checks import check_int
from .._version import __version__
from ..errors import InputError, ReluProbeError, StoreError, describe
from .labels import site_labels
from .layers import recording_sites
from .markup import esc
from .sections import SECTIONS

__all__ = ["render_report", "write_report", "check_report_path", "is_relu_probe_report", "GENERATOR_TAG"]

#: The tag every report carries in its ``<head>`` (how an existing file is recognised as one).
GENERATOR_TAG = '<meta name="generator" content="relu_probe">'

#: What the report reads of an analysis (the attributes of :class:`relu_probe.Analysis`).
REPORT_FIELDS = ("dataset", "importance", "pathways", "scores", "null_scores", "profile", "selectivity",
                 "attributions", "reln", "dynamics", "comparison", "monitor_scores", "monitor_pathways",
                 "monitor_stability", "params", "notes", "title", "by", "within", "unit_table", "pathway_table",
                 "top_features")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9;line-height:1.45}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh;box-sizing:border-box}
h1{font-size:1.55em;margin:0 0 4px;overflow-wrap:break-word}
h2{font-size:1.25em;margin:32px 0 8px;padding-top:8px;border-top:1px solid #e3e6ea}
h3{font-size:1.02em;margin:18px 0 6px}
.meta{color:#5b6472;font-size:.92em;margin:0 0 12px;font-weight:normal}
nav{font-size:.9em;margin:8px 0 8px}nav a{margin-right:14px;color:#1b6ca8;text-decoration:none}
table{border-collapse:collapse;font-size:.88em;margin:6px 0 10px;max-width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 10px;text-align:left;vertical-align:top}
td{overflow-wrap:break-word}
th{background:#f0f2f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.prof{white-space:nowrap}
code{font-size:.92em}td code,th code,h3 code{font-size:1.02em}
td.def{color:#454e5c;max-width:640px}
img{max-width:100%;height:auto;display:block;margin:6px 0 4px}
.kind-shared{color:#1b6ca8;font-weight:600}.kind-mixed{color:#b86a0c;font-weight:600}.kind-single{color:#6c6c6c}
.p{display:inline-block;min-width:34px;padding:1px 4px;margin:1px;border-radius:3px;text-align:right;
font-variant-numeric:tabular-nums;font-size:.85em}
.note{color:#5b6472;font-size:.9em}.z{color:#8a93a0;font-size:.82em}.caption{color:#5b6472;font-size:.86em;margin:0 0 10px}
dl.defs{font-size:.86em;color:#454e5c;margin:4px 0 10px;display:grid;grid-template-columns:max-content 1fr;
gap:2px 14px}dl.defs dt{font-weight:600;color:#1d2330}dl.defs dd{margin:0}
.layers{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:6px 18px;margin:8px 0}
section.layer{min-width:0}section.layer h3{margin:10px 0 2px;font-size:.95em}
section.layer table{font-size:.82em;margin:2px 0 6px;width:100%}
details{margin:6px 0 10px}summary{cursor:pointer;color:#1b6ca8;font-size:.9em}
footer{margin-top:36px;color:#8a93a0;font-size:.82em}
"""


def _header(res: Any, title: str) -> str:
    ds = res.dataset
    p = res.params
    sites = recording_sites(res)
    short = site_labels(sites)
    if len(sites) <= 4:
        where = "site" + ("s " if len(sites) > 1 else " ") + ", ".join(
            f'<code title="{esc(s)}">{esc(label)}</code>' for s, label in zip(sites, short))
    else:
        where = (f'{len(sites)} ReLU sites (<code title="{esc(sites[0])}">{esc(short[0])}</code> … '
                 f'<code title="{esc(sites[-1])}">{esc(short[-1])}</code>)')
    within = f", items <code>{esc(res.within)}</code>" if res.within else ""
    units = {"channel": "channel units: fraction of positions active"}.get(str(p.get("units", "element")),
                                                                           "element units")
    return "\n".join([
        f"<h1>{esc(title)}</h1>",
        ('<p class="meta">'
         f"Model <code>{esc(p.get('model_class', ''))}</code> · {_samples_text(ds)} × "
         f"{ds.sizes['unit']} units ({esc(units)}) at {where} · "
         f"pathways by <code>{esc(res.by)}</code>{within} ({esc(res.pathways.method)}) · "
         f"importance: {esc(p.get('importance', ''))}</p>"),
    ])


def _samples_text(ds: Any) -> str:
    """The samples in words: with tokens as samples, how many inputs they come from."""
    n = ds.sizes["sample"]
    if str(ds.attrs.get("samples", "input")) == "position" and "input" in ds.coords:
        inputs = len(np.unique(np.asarray(ds["input"].values)))
        return f"{n} token samples (the positions of {inputs} inputs)"
    return f"{n} samples"


def render_report(res: Any, *, title: str | None = None, max_units: int = 40, max_heatmap_units: int = 400) -> str:
    """The report of *res* (an :class:`relu_probe.Analysis`) as an HTML string.

    The report reads the analysis' attributes (:data:`REPORT_FIELDS`) and nothing else, so it
    does not depend on the analysis stage that produced them.
    """
    if any(not hasattr(res, name) for name in REPORT_FIELDS):
        raise InputError(f"`res` must be a relu_probe.Analysis (from rp.analyze), got {describe(res)}.")
    options = {"max_units": check_int("max_units", max_units, minimum=1),
               "max_heatmap_units": check_int("max_heatmap_units", max_heatmap_units, minimum=1)}
    title = res.title if title is None else str(title)
    built = [(section, section.build(res, options)) for section in SECTIONS]
    built = [(section, body) for section, body in built if body]
    nav = "<nav>" + "".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s, _ in built) + "</nav>"
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{GENERATOR_TAG}\n"
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + _header(res, title) + "\n" + nav + "\n" + "\n".join(body for _, body in built)
        + f'\n<footer>Generated by relu_probe {esc(__version__)} on {esc(generated)}. '
        "Figures are embedded; this file reads offline.</footer>\n</main>\n</body>\n</html>\n"
    )


def write_report(res: Any, path: str | os.PathLike, *, title: str | None = None, max_units: int = 40,
                 max_heatmap_units: int = 400) -> Path:
    """Write the report of *res* to *path* (parent directories are created); returns the path.

    Parameters
    ----------
    res : relu_probe.Analysis
    path : str or Path
        The ``.html`` file to write.
    title : str, optional
        Default: the analysis title.
    max_units : int, default=40
        Rows of the per-unit table (most important first).
    max_heatmap_units : int, default=400
        Rows of the gating-profile heatmap (most important units).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReluProbeError(
            "the HTML report draws its figures with matplotlib, which is not installed: "
            "pip install 'relu_probe[plot]'"
        ) from None
    path = Path(path)
    check_report_path(path)
    text = render_report(res, title=title, max_units=max_units, max_heatmap_units=max_heatmap_units)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.relu_probe.partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader sees the old report or the new one
    finally:
        tmp.unlink(missing_ok=True)
    return path


def is_relu_probe_report(path: Path) -> bool:
    """Whether the file *path* is an HTML report relu_probe wrote (its generator tag in the head)."""
    try:
        with open(path, "rb") as handle:
            return GENERATOR_TAG.encode() in handle.read(4096)
    except OSError:
        return False


def check_report_path(path: Path, where: str | None = None) -> None:
    """Refuse a report path relu_probe must not write: a directory, a symbolic link (writing
    through it would change the file it points to), or an existing file that is not a
    relu_probe report (it would be lost). An earlier relu_probe report is replaced. *where*
    names the path in the error (default: the argument ``path``)."""
    where = f"`path` {str(path)!r}" if where is None else where
    if path.is_symlink():
        raise StoreError(f"{where} is a symbolic link; relu_probe writes its report only to a plain file, never "
                         "through a link. Choose another path.")
    if path.is_dir():
        raise StoreError(f"{where} is a directory; pass the .html file to write.")
    if path.exists() and not is_relu_probe_report(path):
        raise StoreError(f"{where} exists and is not a relu_probe report; relu_probe never replaces a file it did "
                         "not write. Choose another path.")
