"""The report's layer-by-layer view of a network with several ReLU sites.

:func:`site_views` lists the sites in recording order with their short labels, their
pathways and their row of scores; :func:`layers_section` draws the layer summary figure
(share of each site's pathway mass on all, several and one context, and the per-site scores),
one card per site (its pathways) and the gating profiles of every site as small multiples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import figures as figs
from .labels import context_set_label, gating_measure, pathway_kind, score_label, site_labels
from .markup import esc, img, num, site_cell, table

__all__ = ["SiteView", "kind_shares", "layers_section", "site_views"]

#: Scores drawn in the layer summary figure (those in [0, 1]), in this order.
SUMMARY_SCORES = ("node_reuse_score", "modularity_score", "k_minus_one_score", "mixed_selectivity_score")

#: Units per site drawn in the small-multiples gating profiles (the most important).
PANEL_UNITS = 120


@dataclass
class SiteView:
    """One recording site as the report shows it."""

    name: str
    label: str
    units: np.ndarray
    pathways: Any | None
    scores: pd.Series | None


def recording_sites(res: Any) -> list[str]:
    """The recorded sites, in recording order."""
    sites = res.params.get("sites") or []
    if not sites and "site" in res.dataset.coords:
        sites = list(dict.fromkeys(res.dataset["site"].values.astype(str).tolist()))
    return [str(s) for s in sites]


def _per_site_pathways(pw: Any) -> dict[str, Any]:
    """The one-site pathways of each site when the pathways were found per site."""
    sites = getattr(pw, "sites", None)
    if not isinstance(sites, list) or len(sites) < 2 or not callable(getattr(pw, "sel", None)):
        return {}
    return {str(s): pw.sel(site=s) for s in sites}


def site_views(res: Any) -> list[SiteView]:
    """Every recorded site: full name, short label, its units (positions in the recording),
    its pathways (a one-site ``Pathways`` when found per site, else ``None``) and its scores
    (a row of the per-site score table, else ``None``)."""
    sites = recording_sites(res)
    unit_sites = res.dataset["site"].values.astype(str) if "site" in res.dataset.coords else np.full(
        res.dataset.sizes["unit"], sites[0] if sites else "")
    per_site = _per_site_pathways(res.pathways)
    frame = res.scores if isinstance(res.scores, pd.DataFrame) else None
    views = []
    for name, label in zip(sites, site_labels(sites)):
        row = frame.loc[name] if frame is not None and name in frame.index else None
        views.append(SiteView(name, label, np.flatnonzero(unit_sites == name), per_site.get(name), row))
    return views


def kind_shares(res: Any, views: list[SiteView]) -> np.ndarray:
    """``(n_sites, 3)``: the share of each site's pathway mass held by pathways on all
    contexts, on several, and on one (rows sum to 1; 0 for a site without pathway mass).

    Read from the unit memberships, so it holds for per-site and for pooled pathways alike
    (for pooled ones it is each site's composition of the pooled pathways)."""
    pw = res.pathways
    membership = pw.membership.transpose("unit", "pathway").values
    k = pw.n_contexts
    kind_of = np.array([("shared", "mixed", "single").index(pathway_kind(c, k)) for c in pw.contexts], dtype=np.int64)
    unit_index = {int(u): i for i, u in enumerate(pw.membership["unit"].values)}
    units = res.dataset["unit"].values
    out = np.zeros((len(views), 3))
    for i, view in enumerate(views):
        rows = [unit_index[int(u)] for u in units[view.units] if int(u) in unit_index]
        per_pathway = membership[rows].sum(0) if rows else np.zeros(len(kind_of))
        for j in range(3):
            out[i, j] = per_pathway[kind_of == j].sum()
        total = out[i].sum()
        if total > 0:
            out[i] /= total
    return out


def layers_section(res: Any, *, caption: str = "", anchor: str = "layers") -> str:
    """The layer summary (figure, table of sites, one card per site with *caption* — what a
    pathway is — above the cards, gating small multiples); empty for a single site."""
    views = site_views(res)
    if len(views) < 2:
        return ""
    k = res.pathways.n_contexts
    shares = kind_shares(res, views)
    scores: dict[str, np.ndarray] = {}
    if any(v.scores is not None for v in views):
        for name in SUMMARY_SCORES:
            values = np.array([np.nan if v.scores is None or name not in v.scores.index else float(v.scores[name])
                               for v in views])
            if np.isfinite(values).any():
                scores[score_label(name)] = values
    labels = [v.label for v in views]
    out = [f'<h2 id="{anchor}">Layers</h2>',
           f'<p class="caption">{len(views)} ReLU sites in recording order. Left: the share of each site\'s pathway '
           f"mass on all {k} <code>{esc(res.by)}</code> values, on several, and on one. "
           + ("Right: the scores of each site's own pathways (definitions under Scores; the shared score is the blue bar). " if scores else
              "Pathways were pooled over the sites, so the sites are shown by their part of the pooled pathways. ")
           + "Hover a site name for its full module path.</p>",
           img(figs.layer_summary_png(labels, shares, scores, n_contexts=k), "layer-by-layer summary")]
    out.append(_site_table(views, shares))
    if any(v.pathways is not None for v in views):
        out.append('<h3 id="pathways">Pathways of every site</h3>' + caption)
        out.append('<div class="layers">' + "".join(_site_card(res, i, v) for i, v in enumerate(views)
                                                   if v.pathways is not None) + "</div>")
    panels = _profile_panels(res, views)
    if panels:
        measure = gating_measure(str(res.params.get("units", "element")), res.by)
        per_site = any(v.pathways is not None for v in views)  # else the Gating profiles section has the anchor
        anchor = ' id="profiles"' if per_site else ""
        out.append(f"<h3{anchor}>Gating profiles of every site</h3>")
        out.append(img(figs.profile_grid_png(panels, measure=measure, by=res.by, n_contexts=k),
                       "gating profiles of every site"))
        out.append(f'<p class="caption">Gating profiles of every site: {esc(measure)} of its most important units '
                   f"(up to {PANEL_UNITS}) per <code>{esc(res.by)}</code> value; rows grouped by pathway, the strip "
                   "coloured by the pathway's kind.</p>")
    return "\n".join(out)


def _site_table(views: list[SiteView], shares: np.ndarray) -> str:
    """One row per site: its units, its pathways and their largest, its mass on all /
    several / one context (its scores are under Scores)."""
    rows = []
    for i, v in enumerate(views):
        top = ""
        if v.pathways is not None and v.pathways.n_pathways:
            mass = np.asarray(v.pathways.mass.values, dtype=np.float64)
            j = int(np.argmax(mass))
            top = f"{context_set_label(v.pathways.contexts[j])} ({mass[j]:.2f})"
        cells = (f'<tr><td class="num">{i + 1}</td><td>{site_cell(v.label, v.name)}</td>'
                 f'<td class="num">{v.units.size}</td>'
                 + (f'<td class="num">{v.pathways.n_pathways}</td><td>{esc(top)}</td>' if v.pathways is not None else "")
                 + "".join(num(x) for x in shares[i]))
        rows.append(cells + "</tr>")
    header = ["#", "site", "units"] + (["pathways", "largest pathway (mass)"] if views[0].pathways is not None else [])
    header += ["mass on all contexts", "on several", "on one"]
    return table(header, rows, css="sites")


def _site_card(res: Any, index: int, view: SiteView) -> str:
    """One site's pathways: contexts, kind, units (and those of them not on in the pathway's
    contexts, where any), mass; the share of the site's importance in no pathway."""
    pw = view.pathways
    k = pw.n_contexts
    frame = pw.summary()
    off = "n_disagreeing" in frame.columns and bool((frame["n_disagreeing"] > 0).any())
    rows = []
    for row in frame.to_dict("records"):
        kind = pathway_kind(row["contexts"], k)
        rows.append(f'<tr><td>{esc(context_set_label(row["contexts"]))}</td><td class="kind-{kind}">'
                    f'{esc(kind)}</td><td class="num">{int(row["n_units"])}</td>'
                    + (f'<td class="num">{int(row["n_disagreeing"])}</td>' if off else "") + f'{num(row["mass"])}</tr>')
    body = table(["contexts", "kind", "units", *(["not on there"] if off else []), "mass"], rows) if rows else \
        '<p class="note">No pathway: no unit is on for any sample.</p>'
    unassigned = getattr(pw, "unassigned", None)
    share = float(unassigned.values.sum()) if unassigned is not None else 0.0
    if share > 0:
        body += f'<p class="note">{100 * share:.1f}% of the importance is on units on in no context (no pathway).</p>'
    return (f'<section class="layer" id="layer-{index + 1}"><h3>{index + 1}. {site_cell(view.label, view.name)}'
            f' <span class="meta">{view.units.size} units</span></h3>{body}</section>')


def _profile_panels(res: Any, views: list[SiteView]) -> list[dict[str, Any]]:
    """One small-multiples panel per site: its most important units' profiles, grouped by
    their pathway, with the kind of that pathway per row."""
    prof = res.profile.transpose("unit", res.by)
    columns = [str(c) for c in prof[res.by].values.tolist()]
    labels = res.pathways.labels.values
    contexts = res.pathways.mass["contexts"].values
    k = res.pathways.n_contexts
    imp = res.importance.values
    panels = []
    for v in views:
        units = v.units[labels[v.units] >= 0]
        if units.size == 0:
            continue
        units = units[np.argsort(-imp[units], kind="stable")[:PANEL_UNITS]]
        values = prof.values[units]
        first_on = np.argmax(values > 0.5, axis=1)
        order = np.lexsort((-imp[units], first_on, labels[units]))
        units = units[order]
        kinds = [pathway_kind(contexts[p], k) for p in labels[units]]
        panels.append({"title": v.label, "values": prof.values[units], "groups": labels[units].tolist(),
                       "kinds": kinds, "columns": columns})
    return panels
