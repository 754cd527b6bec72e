"""The HTML report of an :class:`relu_probe.Analysis`: one self-contained file.

>>> res = rp.analyze(model, X, coords=coords, within="object", Y=Y, loss_curve=loss)  # doctest: +SKIP
>>> res.to_html("report.html")                                                        # doctest: +SKIP

The file needs nothing but a browser: figures are PNGs embedded as ``data:`` URIs, styles are
inline, and there is no script at all (a Content-Security-Policy forbids any). Sections:

1. **Scores** with a one-line definition of each;
2. **Pathways**: the pathway table (context set, units, mass, sites) and the context-set mass
   bars;
3. **Gating profiles**: a heatmap of P(on) for every important unit, rows grouped by pathway,
   columns by condition (and item);
4. **Units**: the most important units' pathway, gating profile, mixed-selectivity index and
   importance; the input features that drive each pathway (captum integrated gradients);
5. **Learning dynamics** (with targets): ReLU vs ReLN vs its prediction (the exact dynamics by
   default) and the closed form (the mode-by-mode approximation), their comparison, and the
   singular-value trajectories of every ReLN pathway;
6. **Predicted structure** (with targets): the pathway masses predicted from the data before
   training against the measured ones, and their total-variation distance (over training too,
   with a monitor's :meth:`~relu_probe.TrainingMonitor.structure_over_time`);
7. **Structure over training** (when a training monitor was attached): scores and pathway
   masses against training step.

Every string that comes from the user's data or model (coord labels, site names, titles,
feature names) is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._util.checks import check_int
from .._version import __version__
from ..errors import InputError, ReluProbeError, StoreError, describe
from ..pathways.profiles import gating_profile
from . import figures as figs
from .labels import KIND_TEXT, RACE_EXPLANATIONS, RACE_LABELS, SCORE_DEFINITIONS, context_set_label, pathway_kind

__all__ = ["render_report", "write_report"]

#: What the report reads of an analysis (the attributes of :class:`relu_probe.Analysis`).
REPORT_FIELDS = ("dataset", "importance", "pathways", "scores", "null_scores", "profile", "selectivity", "attributions", "reln",
                 "dynamics", "comparison", "monitor_scores", "monitor_pathways", "params", "notes", "title", "by",
                 "within", "unit_table", "pathway_table", "top_features")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh;box-sizing:border-box}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 8px;padding-top:8px;border-top:1px solid #e3e6ea}
h3{font-size:1.02em;margin:18px 0 6px}
.meta{color:#5b6472;font-size:.92em;margin:0 0 12px}
nav{font-size:.9em;margin:8px 0 8px}nav a{margin-right:14px;color:#1b6ca8;text-decoration:none}
table{border-collapse:collapse;font-size:.88em;margin:6px 0 10px}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.def{color:#454e5c;max-width:620px}
img{max-width:100%;height:auto;display:block;margin:6px 0 4px}
.kind-shared{color:#1b6ca8;font-weight:600}.kind-mixed{color:#b86a0c;font-weight:600}.kind-single{color:#6c6c6c}
.p{display:inline-block;min-width:34px;padding:1px 4px;margin:1px;border-radius:3px;text-align:right;
font-variant-numeric:tabular-nums;font-size:.85em}
.note{color:#5b6472;font-size:.9em}.caption{color:#5b6472;font-size:.86em;margin:0 0 10px}
footer{margin-top:36px;color:#8a93a0;font-size:.82em}
"""


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    if value is None:
        return '<td class="num">—</td>'
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f'<td class="num">{esc(value)}</td>'
    if not np.isfinite(v):
        return f'<td class="num">{esc(v)}</td>'
    return f'<td class="num">{esc(fmt.format(v))}</td>'


def _table(header: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# ----------------------------------------------------------------------------- sections


def _header(res: Any, title: str) -> str:
    ds = res.dataset
    p = res.params
    sites = p.get("sites") or []
    site_text = ", ".join(sites[:8]) + (f" … ({len(sites)} sites)" if len(sites) > 8 else "")
    within = f", items <code>{esc(res.within)}</code>" if res.within else ""
    lines = [
        f"<h1>{esc(title)}</h1>",
        ('<p class="meta">'
         f"Model <code>{esc(p.get('model_class', ''))}</code> · {ds.sizes['sample']} samples × "
         f"{ds.sizes['unit']} units ({esc(p.get('units', 'element'))}) at site(s) {esc(site_text)} · "
         f"pathways by <code>{esc(res.by)}</code>{within} ({esc(res.pathways.method)}) · "
         f"importance: {esc(p.get('importance', ''))}</p>"),
    ]
    return "\n".join(lines)


def _site_rows(table: Any) -> list[tuple[str | None, Any]]:
    """``(site, row)`` of a scores table: one row without a site for a Series, one per site for
    a DataFrame indexed by site."""
    if hasattr(table, "iterrows"):
        return [(str(site), row) for site, row in table.iterrows()]
    return [(None, table)]


def _scores_section(res: Any) -> str:
    null = getattr(res, "null_scores", None)
    out = ['<h2 id="scores">Scores</h2>']
    if null is not None:
        out.append('<p class="caption">Null: the same analysis with the <code>'
                   f'{esc(res.by)}</code> labels shuffled across items (mean ± sd over shuffles); z = (score − null mean) / '
                   "null sd." + (" At init: the network at step 0 of the training monitor." if "init" in null.columns
                                 else "") + "</p>")
    for site, row in _site_rows(res.scores):
        if site is not None:
            out.append(f"<h3>Site <code>{esc(site)}</code></h3>")
        header = ["score", "value"]
        if null is not None:
            header += ["null mean ± sd", "z"] + (["at init"] if "init" in null.columns else [])
        header.append("definition")
        rows = []
        for name, value in row.items():
            cells = f"<tr><td><code>{esc(name)}</code></td>{_num(value)}"
            if null is not None:
                key = (site, name) if site is not None else name
                if key in null.index:
                    line = null.loc[key]
                    cells += (f'<td class="num">{esc(f"{line.null_mean:.3f} ± {line.null_std:.3f}")}</td>'
                              f"{_num(line.z, '{:.1f}')}")
                    cells += _num(line.init) if "init" in null.columns else ""
                else:
                    cells += '<td class="num">—</td><td class="num">—</td>' + (
                        '<td class="num">—</td>' if "init" in null.columns else "")
            rows.append(cells + f'<td class="def">{esc(SCORE_DEFINITIONS.get(str(name), ""))}</td></tr>')
        out.append(_table(header, rows))
    return "\n".join(out)


def _items_text(res: Any) -> str:
    if res.within is None or res.within not in res.dataset.coords:
        return ""
    items = list(dict.fromkeys(res.dataset[res.within].values.tolist()))
    shown = ", ".join(map(str, items[:12])) + (f", … ({len(items)} in all)" if len(items) > 12 else "")
    return f" Items (<code>{esc(res.within)}</code>): {esc(shown)}."


def _pathway_section(res: Any) -> str:
    pw = res.pathways
    k = pw.n_contexts
    out = ['<h2 id="pathways">Pathways</h2>',
           (f'<p class="caption">A pathway is the set of <code>{esc(res.by)}</code> values in which a group of '
            "units is on; its mass is its share of the importance-weighted activity (masses sum to 1 within each "
            "site). A unit not on in its pathway's contexts (profiles and co-clustering) is counted apart. "
            f"{k} conditions: {esc(', '.join(map(str, pw.context_values)))}.{_items_text(res)}</p>")]
    if pw.n_pathways == 0:
        out.append('<p class="note">No pathway: no unit is on for any sample.</p>')
        return "\n".join(out)
    table = res.pathway_table()
    for site in pw.sites:
        sub = table[table["site"] == site]
        if len(pw.sites) > 1:
            out.append(f"<h3>Site <code>{esc(site)}</code></h3>")
        rows = []
        for row in sub.to_dict("records"):
            kd = pathway_kind(row["contexts"], k)
            sites = ", ".join(f"{s}: {100 * v:.0f}%" for s, v in sorted(row["sites"].items(), key=lambda kv: -kv[1]))
            rows.append(
                f"<tr><td class=\"num\">{int(row['pathway'])}</td><td>{esc(context_set_label(row['contexts']))}</td>"
                f'<td class="kind-{kd}">{esc(KIND_TEXT[kd])}</td><td class="num">{int(row["n_units"])}</td>'
                f"{_num(row['mass'])}<td class=\"num\">{int(row['n_disagreeing'])}</td><td>{esc(sites)}</td></tr>"
            )
        if not rows:
            out.append('<p class="note">No pathway at this site: no unit is on for any sample.</p>')
            continue
        out.append(_table(["pathway", "contexts", "kind", "units", "mass", "units not on in these contexts",
                           "sites (share of mass)"], rows))
        unassigned = float(pw.unassigned.sel(site=site)) if site in pw.unassigned["site"].values else 0.0
        if unassigned > 0:
            out.append(f'<p class="note">{100 * unassigned:.1f}% of this site\'s importance belongs to units on in no '
                       "context; it is in no pathway.</p>")
        png = figs.context_mass_png(list(sub["contexts"]), np.asarray(sub["mass"], dtype=np.float64), k)
        out.append(_img(png, f"context-set mass bars, site {site}"))
    return "\n".join(out)


def _heatmap_section(res: Any, max_rows: int) -> str:
    pw = res.pathways
    labels = pw.labels.values
    imp = res.importance.values
    keep = np.flatnonzero(labels >= 0)
    out = ['<h2 id="profiles">Gating profiles</h2>']
    if keep.size == 0:
        out.append('<p class="note">No unit carries pathway mass.</p>')
        return "\n".join(out)
    shown = keep
    if keep.size > max_rows:
        shown = keep[np.argsort(-imp[keep], kind="stable")[:max_rows]]
    by, within = res.by, res.within
    ds = res.dataset.isel(unit=np.sort(shown))
    use_items = within is not None and len(np.unique(ds[within].values)) <= 24
    if use_items:
        prof = gating_profile(ds, [by, within]).transpose("unit", by, within)
        by_vals = prof[by].values.tolist()
        it_vals = prof[within].values.tolist()
        values = prof.values.reshape(prof.shape[0], -1)
        col_labels = [f"{b}/{o}" for b in by_vals for o in it_vals]
        col_groups = [str(b) for b in by_vals for _ in it_vals]
    else:
        prof = gating_profile(ds, by).transpose("unit", by)
        values = prof.values
        col_labels = [str(b) for b in prof[by].values.tolist()]
        col_groups = col_labels
    unit_labels = labels[np.sort(shown)]
    unit_imp = imp[np.sort(shown)]
    ctx_profile = gating_profile(ds, by).transpose("unit", by).values
    first_on = np.argmax(ctx_profile > 0.5, axis=1)
    order = np.lexsort((-unit_imp, first_on, unit_labels))
    contexts = pw.mass["contexts"].values
    groups = [f"#{p} {context_set_label(contexts[p])}" for p in unit_labels[order]]
    png = figs.profile_heatmap_png(values[order], groups, col_labels, col_groups, by=by, within=within if use_items else None)
    caption = (f"P(on) of {len(shown)} units"
               + (f" (the {len(shown)} most important of {keep.size})" if len(shown) < keep.size else "")
               + f", rows grouped by pathway and ordered by the first <code>{esc(by)}</code> they serve; "
               + (f"columns: <code>{esc(by)}</code> blocks, one column per <code>{esc(within)}</code>."
                  if use_items else f"columns: <code>{esc(by)}</code>."))
    out.append(_img(png, "gating-profile heatmap"))
    out.append(f'<p class="caption">{caption}</p>')
    return "\n".join(out)


def _shade(v: float) -> str:
    a = 0.08 + 0.62 * float(np.clip(v, 0, 1))
    colour = "#fff" if v > 0.6 else "#1d2330"
    return f'style="background:rgba(27,108,168,{a:.2f});color:{colour}"'


def _representative_units(table: Any, n: int) -> Any:
    """The *n* most important units, taken in turn from every pathway (so small pathways are
    represented too), listed by pathway then importance."""
    groups = [g.index.to_list() for _, g in table[table["pathway"] >= 0].groupby("pathway", sort=True)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n and any(depth < len(g) for g in groups):
        for g in groups:
            if depth < len(g) and len(picked) < n:
                picked.append(g[depth])
        depth += 1
    if not picked:
        return table.head(n)
    sub = table.loc[picked]
    return sub.sort_values(["pathway", "importance"], ascending=[True, False], kind="stable")


def _units_section(res: Any, max_units: int) -> str:
    table = res.unit_table()
    total = len(table)
    table = _representative_units(table, max_units)
    by = res.by
    pcols = [c for c in table.columns if c.startswith("P(on | ")]
    values = [c.split("=", 1)[1][:-1] for c in pcols]
    has_ms = "mixed_selectivity" in table.columns
    header = ["unit", "site", "neuron", "pathway", f"profile P(on | {by}) for {', '.join(values)}"]
    header += ["mixed selectivity"] if has_ms else []
    header += ["importance"]
    rows = []
    for row in table.to_dict("records"):
        prof = "".join(f'<span class="p" {_shade(row[c])} title="{esc(by)}={esc(v)}">{row[c]:.2f}</span>'
                       for c, v in zip(pcols, values))
        pathway = "—" if row["pathway"] < 0 else f"#{row['pathway']} {context_set_label(row['contexts'])}"
        cells = (f"<tr><td class=\"num\">{int(row['unit'])}</td><td>{esc(row['site'])}</td>"
                 f"<td class=\"num\">{int(row['neuron'])}</td><td>{esc(pathway)}</td><td>{prof}</td>")
        if has_ms:
            cells += _num(row["mixed_selectivity"])
        cells += _num(row["importance"], "{:.4f}") + "</tr>"
        rows.append(cells)
    out = ['<h2 id="units">Units</h2>',
           f'<p class="caption">{len(table)} of {total} units: the most important ones of every pathway, in turn. '
           "Mixed selectivity: the interaction share of a two-way ANOVA of the unit's activity over condition × item (0 = additive, "
           "1 = pure conjunction).</p>" if has_ms else
           f'<p class="caption">{len(table)} of {total} units: the most important ones of every pathway (the mixed-selectivity index '
           "needs an item coord: pass <code>within=</code>).</p>",
           _table(header, rows)]
    return "\n".join(out)


def _features_section(res: Any, n_top: int = 6) -> str:
    out = ['<h3 id="features">Input features of each pathway</h3>']
    att = res.attributions
    if att is None:
        out.append('<p class="note">No input attributions (they need the model and the inputs as one tensor).</p>')
        return "\n".join(out)
    top = res.top_features(n_top)
    rows = []
    for p in att["pathway"].values:
        sub = top[top["pathway"] == p]
        feats = "; ".join(f"{name} ({100 * share:.1f}%)" for name, share in zip(sub["name"], sub["share"]))
        ctx = sub["contexts"].iloc[0] if len(sub) else ()
        rows.append(f"<tr><td class=\"num\">{int(p)}</td><td>{esc(context_set_label(ctx))}</td><td>{esc(feats)}</td></tr>")
    out.append(f'<p class="caption">Share of each input feature in the pathway\'s activity: '
               f"{esc(att.attrs.get('method', 'integrated gradients'))}, mean |attribution| over "
               f"{esc(att.attrs.get('n_samples', ''))} samples.</p>")
    out.append(_table(["pathway", "contexts", f"top {n_top} input features (share)"], rows))
    shape = att.attrs.get("feature_shape") or []
    shape = [int(s) for s in (shape if isinstance(shape, (list, tuple, np.ndarray)) else [shape])]
    if len(shape) >= 2:
        maps = att.values.reshape(att.sizes["pathway"], *shape)
        maps = maps.reshape(maps.shape[0], -1, shape[-2], shape[-1]).sum(1)
        titles = [f"#{int(p)} {context_set_label(c)}" for p, c in zip(att["pathway"].values, att["contexts"].values)]
        out.append(_img(figs.attribution_maps_png(maps, titles), "attribution maps"))
        out.append('<p class="caption">Attribution share over the input image (summed over channels).</p>')
    return "\n".join(out)


def _dynamics_section(res: Any) -> str:
    out = ['<h2 id="dynamics">Learning dynamics</h2>']
    dyn = res.dynamics
    if dyn is None:
        out.append('<p class="note">No learning dynamics: pass the targets <code>Y=</code> (and the ReLU network\'s '
                   "<code>loss_curve=</code>) to fit the ReLN — the gated deep linear network whose gates are these "
                   "pathways (Jarvis et al., ICLR 2025) — and compare its curves with the ReLU network's.</p>")
        return "\n".join(out)
    curves = {}
    if "loss_relu" in dyn:
        curves["ReLU network"] = dyn["loss_relu"].values
    if "loss_reln" in dyn:
        curves["ReLN (simulated)"] = dyn["loss_reln"].values
    race_label = RACE_LABELS.get(str(dyn.attrs.get("race_method", "")), "race prediction")
    if "loss_race" in dyn:
        curves[race_label] = dyn["loss_race"].values
    closed_label = RACE_LABELS["closed"]
    if "loss_closed" in dyn:
        curves[closed_label] = dyn["loss_closed"].values
    out.append(_img(figs.loss_curves_png(curves), "loss curves"))
    if res.reln is not None:
        names = list(res.reln.pathway_names_)
        explain = RACE_EXPLANATIONS.get(str(dyn.attrs.get("race_method", "")), "")
        out.append(f'<p class="caption">ReLN: {len(names)} pathways ({esc(", ".join(names))}), rule '
                   f"<code>{esc(res.reln.rule)}</code>, learning rate {esc(res.reln.lr_)}. {esc(explain)}</p>")
    if res.comparison:
        labels = {"reln": "ReLN vs ReLU", "race": f"{race_label} vs ReLU", "race_vs_reln": f"{race_label} vs ReLN",
                  "closed": f"{closed_label} vs ReLU", "closed_vs_reln": f"{closed_label} vs ReLN"}
        first = next(iter(res.comparison.values()))
        fracs = list(first["epochs_to_a"].keys())
        header = ["comparison", "mean |ΔL|", "mean |ΔL| (% L0)", "max |ΔL|", "at epoch"]
        header += [f"epochs to {100 * f:g}% L0 (ref → other)" for f in fracs]
        rows = []
        for key, cmp in res.comparison.items():
            cells = (f"<tr><td>{esc(labels.get(key, key))}</td>{_num(cmp['mean_abs_diff'])}"
                     f"{_num(cmp['mean_abs_diff_pct'], '{:.2f}')}{_num(cmp['max_abs_diff'])}"
                     f"<td class=\"num\">{int(cmp['max_abs_diff_epoch'])}</td>")
            for f in fracs:
                a, b = cmp["epochs_to_a"].get(f), cmp["epochs_to_b"].get(f)
                cells += f'<td class="num">{esc("—" if a is None else a)} → {esc("—" if b is None else b)}</td>'
            rows.append(cells + "</tr>")
        out.append(_table(header, rows))
    if "sv_reln" in dyn:
        sv = dyn["sv_reln"].transpose("pathway", "mode", "sv_epoch")
        race = dyn["sv_race"].transpose("pathway", "mode", "sv_epoch").values if "sv_race" in dyn else None
        names = [str(n) for n in sv["name"].values] if "name" in sv.coords else [str(p) for p in sv["pathway"].values]
        png = figs.singular_values_png(sv.values, race, sv["sv_epoch"].values, names, race_label)
        out.append(_img(png, "singular-value trajectories"))
    return "\n".join(out)


def _structure_section(res: Any) -> str:
    """Predicted (before training) against measured structure, and TV over training."""
    st = getattr(res, "structure", None)
    over = getattr(res, "monitor_structure", None)
    if st is None and over is None:
        return ""
    out = ['<h2 id="structure">Predicted structure</h2>']
    if st is not None:
        out.append(f'<p class="caption">The pathways a one-hidden-layer ReLU network is predicted to learn from the '
                   "data and its initial state alone, before any training (rp.predict_structure: every context set "
                   "races under the exact dynamics; predicted mass ∝ σ₁(M_S) × the share of samples S is open on), "
                   f"against the masses measured on the trained network. Total-variation distance "
                   f"{float(st.attrs['tv']):.3f}.</p>")
        labels = [str(v) for v in st["label"].values]
        order = sorted(range(len(labels)), key=lambda i: (-int(st["n_contexts"].values[i]), labels[i]))
        rows = [f"<tr><td>{esc(labels[i])}</td>{_num(st['predicted'].values[i])}{_num(st['measured'].values[i])}"
                f"{_num(st['difference'].values[i])}</tr>" for i in order]
        out.append(_table(["context set", "predicted", "measured", "difference"], rows))
        out.append(_img(figs.structure_bars_png([labels[i] for i in order], st["predicted"].values[order],
                                                st["measured"].values[order]), "predicted and measured structure"))
    if over is not None:
        steps = np.asarray(over["step"].values, dtype=np.float64)
        out.append(_img(figs.tv_over_training_png(steps, np.asarray(over["tv"].values, dtype=np.float64)),
                        "predicted vs measured structure over training"))
        out.append('<p class="caption">Total-variation distance between the predicted structure at each training '
                   "step and the structure measured at that snapshot (undefined before any predicted pathway has "
                   "grown).</p>")
    return "\n".join(out)


def _monitor_section(res: Any) -> str:
    if res.monitor_scores is None and res.monitor_pathways is None:
        return ""
    out = ['<h2 id="training">Structure over training</h2>']
    frame = res.monitor_scores
    if frame is not None:
        per_site = frame.index.nlevels > 1
        for site in (list(dict.fromkeys(frame.index.get_level_values(1))) if per_site else [None]):
            sub = frame.xs(site, level=1) if per_site else frame
            if per_site:
                out.append(f"<h3>Site <code>{esc(site)}</code></h3>")
            steps = np.asarray(sub.index.to_numpy(), dtype=np.float64)
            columns = {str(c): np.asarray(sub[c].to_numpy(), dtype=np.float64) for c in sub.columns}
            out.append(_img(figs.monitor_scores_png(steps, columns), "scores over training"))
            rows = []
            for c, v in columns.items():
                rows.append(f"<tr><td><code>{esc(c)}</code></td>{_num(v[0])}{_num(v[-1])}</tr>")
            first, last = sub.index[0], sub.index[-1]
            out.append(_table(["score", f"step {first}", f"step {last}"], rows))
    da = res.monitor_pathways
    if da is not None:
        da = da.transpose("step", "pathway")
        if "contexts" in da.coords:
            contexts = list(da["contexts"].values)
        else:
            contexts = [(p,) for p in da["pathway"].values]
        k = max((len(c) for c in contexts), default=1)
        if res.pathways is not None:
            k = max(k, res.pathways.n_contexts)
        labels = [context_set_label(c) if isinstance(c, (tuple, list)) else str(c) for c in contexts]
        kinds = [pathway_kind(c, k) if isinstance(c, (tuple, list)) else "mixed" for c in contexts]
        png = figs.monitor_pathways_png(np.asarray(da["step"].values, dtype=np.float64), np.asarray(da.values, float),
                                        labels, kinds)
        out.append(_img(png, "pathway masses over training"))
    return "\n".join(out)


def _notes_section(res: Any) -> str:
    if not res.notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in res.notes)
    return f'<h2 id="notes">Notes</h2><ul class="note">{items}</ul>'


def render_report(res: Any, *, title: str | None = None, max_units: int = 40, max_heatmap_units: int = 400) -> str:
    """The report of *res* (an :class:`relu_probe.Analysis`) as an HTML string.

    The report reads the analysis' attributes (:data:`REPORT_FIELDS`) and nothing else, so it
    does not depend on the analysis stage that produced them.
    """
    if any(not hasattr(res, name) for name in REPORT_FIELDS):
        raise InputError(f"`res` must be a relu_probe.Analysis (from rp.analyze), got {describe(res)}.")
    max_units = check_int("max_units", max_units, minimum=1)
    max_heatmap_units = check_int("max_heatmap_units", max_heatmap_units, minimum=1)
    title = res.title if title is None else str(title)
    sections = [
        _scores_section(res),
        _pathway_section(res),
        _heatmap_section(res, max_heatmap_units),
        _units_section(res, max_units) + "\n" + _features_section(res),
        _dynamics_section(res),
        _structure_section(res),
        _monitor_section(res),
        _notes_section(res),
    ]
    nav_items = [("scores", "Scores"), ("pathways", "Pathways"), ("profiles", "Gating profiles"), ("units", "Units"),
                 ("dynamics", "Learning dynamics")]
    if getattr(res, "structure", None) is not None or getattr(res, "monitor_structure", None) is not None:
        nav_items.append(("structure", "Predicted structure"))
    if res.monitor_scores is not None or res.monitor_pathways is not None:
        nav_items.append(("training", "Structure over training"))
    if res.notes:
        nav_items.append(("notes", "Notes"))
    nav = "<nav>" + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in nav_items) + "</nav>"
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="relu_probe">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + _header(res, title) + "\n" + nav + "\n" + "\n".join(s for s in sections if s)
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
    text = render_report(res, title=title, max_units=max_units, max_heatmap_units=max_heatmap_units)
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"`path` {str(path)!r} is a directory; pass the .html file to write.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
