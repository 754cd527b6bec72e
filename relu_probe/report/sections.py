"""The sections of the HTML report, each a function of the analysis returning its HTML
(``""`` when the analysis holds nothing for it). :data:`SECTIONS` lists them in page order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._util.notes import reln_skipped
from ..pathways.profiles import gating_profile
from . import figures as figs
from .labels import (KIND_TEXT, RACE_EXPLANATIONS, RACE_LABELS, SCORE_DEFINITIONS, context_set_label, gating_measure,
                     pathway_kind, score_label, site_labels)
from .layers import layers_section, recording_sites
from .markup import esc, img, num, site_cell, table
from .stability import stability_section
from .structure import structure_section

__all__ = ["SECTIONS", "Section"]


@dataclass(frozen=True)
class Section:
    """One section of the report: its anchor, its name in the navigation bar and its builder
    ``build(res, options) -> str`` (empty when there is nothing to show)."""

    anchor: str
    title: str
    build: Callable[[Any, dict[str, Any]], str]


def _short_sites(res: Any) -> dict[str, str]:
    sites = recording_sites(res)
    return dict(zip(sites, site_labels(sites)))


# ----------------------------------------------------------------------------- scores
def _score_rows(res: Any) -> list[tuple[str | None, pd.Series]]:
    if isinstance(res.scores, pd.DataFrame):
        return [(str(site), row) for site, row in res.scores.iterrows()]
    return [(None, res.scores)]


def _null_cells(res: Any, site: str | None, name: str) -> str:
    null = getattr(res, "null_scores", None)
    if null is None:
        return ""
    key = (site, name) if site is not None else name
    init = "init" in null.columns
    if key not in null.index:
        return '<td class="num">—</td><td class="num">—</td>' + ('<td class="num">—</td>' if init else "")
    line = null.loc[key]
    return (f'<td class="num">{esc(f"{line.null_mean:.3f} ± {line.null_std:.3f}")}</td>{num(line.z, "{:.1f}")}'
            + (num(line.init) if init else ""))


def _value_and_z(res: Any, site: str, name: str, value: Any) -> str:
    """A score's cell in a per-site table: its value, and its z against the null when there is one."""
    null = getattr(res, "null_scores", None)
    cell = num(value)
    if null is None or (site, name) not in null.index:
        return cell
    z = float(null.loc[(site, name)].z)
    if not np.isfinite(z):
        return cell
    return cell.replace("</td>", f' <span class="z">z {z:.1f}</span></td>')


def _null_header(res: Any) -> list[str]:
    null = getattr(res, "null_scores", None)
    if null is None:
        return []
    return ["null mean ± sd", "z"] + (["at init"] if "init" in null.columns else [])


#: Score columns of one per-site score table (more scores: more tables).
PER_SITE_COLUMNS = 6


def _definitions(names: list[str]) -> str:
    items = "".join(f"<dt>{esc(score_label(n))}</dt><dd><code>{esc(n)}</code>: "
                    f"{esc(SCORE_DEFINITIONS.get(n, 'no definition recorded.'))}</dd>" for n in names)
    return f'<dl class="defs">{items}</dl>'


def scores_section(res: Any, options: dict[str, Any]) -> str:
    """The scores, with human labels; the identifier and formula in each definition. One
    table for one site; with per-site scores a site × score table. Null baselines (when the
    analysis has them) sit next to each score."""
    rows = _score_rows(res)
    names = [str(n) for n in rows[0][1].index]
    out = ['<h2 id="scores">Scores</h2>']
    null = getattr(res, "null_scores", None)
    if null is not None:
        out.append('<p class="caption">Null: the same analysis with the <code>'
                   f'{esc(res.by)}</code> labels shuffled across items (mean ± sd over shuffles); z = (score − null '
                   "mean) / null sd." + (" At init: the network at step 0 of the training monitor."
                                         if "init" in null.columns else "") + "</p>")
    if rows[0][0] is None:
        body = [f"<tr><td>{esc(score_label(n))}</td>{num(v)}{_null_cells(res, None, n)}"
                f'<td class="def"><code>{esc(n)}</code>: {esc(SCORE_DEFINITIONS.get(str(n), ""))}</td></tr>'
                for n, v in rows[0][1].items()]
        out.append(table(["score", "value", *_null_header(res), "definition"], body, css="scores"))
        return "\n".join(out)
    else:
        short = _short_sites(res)
        # one table of at most PER_SITE_COLUMNS scores at a time, so that every column is in view
        for start in range(0, len(names), PER_SITE_COLUMNS):
            group = names[start:start + PER_SITE_COLUMNS]
            body = [f"<tr><td>{site_cell(short.get(site, site), site)}</td>"
                    + "".join(_value_and_z(res, site, n, row[n]) for n in group) + "</tr>" for site, row in rows]
            out.append(table(["site", *[score_label(n) for n in group]], body, css="scores"))
        if null is not None:
            out.append('<p class="caption">Each score with its z against the null (small, grey).</p>')
        if null is not None:
            detail = []
            for site, row in rows:
                for n in names:
                    detail.append(f"<tr><td>{site_cell(short.get(site, site), site)}</td><td>{esc(score_label(n))}"
                                  f"</td>{num(row[n])}{_null_cells(res, site, n)}</tr>")
            out.append(f"<details><summary>Every score against its null baseline ({len(detail)} rows)</summary>"
                       + table(["site", "score", "value", *_null_header(res)], detail) + "</details>")
    out.append(_definitions(names))
    return "\n".join(out)


# ----------------------------------------------------------------------------- pathways
def pathway_caption(res: Any) -> str:
    """What a pathway and its mass are, and the conditions (and items) of this analysis."""
    pw = res.pathways
    per_site = isinstance(getattr(pw, "sites", None), list) and len(pw.sites) > 1
    return (f'<p class="caption">A pathway is the set of <code>{esc(res.by)}</code> values in which a group of '
            "units is on; its mass is its share of the importance-weighted activity (masses sum to 1"
            + (" within each site" if per_site else "") + f"). {pw.n_contexts} conditions: "
            f"{esc(', '.join(map(str, pw.context_values)))}.{_items_text(res)} Units: those whose largest share "
            "of mass is in the pathway; a pathway can also hold some mass of units counted under another pathway "
            "(so it may list 0 units).</p>")


def _items_text(res: Any) -> str:
    if res.within is None or res.within not in res.dataset.coords:
        return ""
    items = list(dict.fromkeys(res.dataset[res.within].values.tolist()))
    shown = ", ".join(map(str, items[:12])) + (f", … ({len(items)} in all)" if len(items) > 12 else "")
    return f" Items (<code>{esc(res.within)}</code>): {esc(shown)}."


def _sites_text(shares: dict[str, float], short: dict[str, str], limit: int = 3) -> str:
    """The sites holding a pathway's mass, largest first: the first *limit* shown, all in the tooltip."""
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    full = ", ".join(f"{s}: {100 * v:.1f}%" for s, v in ranked)
    shown = ", ".join(f"{short.get(s, s)} {100 * v:.0f}%" for s, v in ranked[:limit])
    more = f", … {len(ranked) - limit} more" if len(ranked) > limit else ""
    return f'<span title="{esc(full)}">{esc(shown + more)}</span>'


def pathways_section(res: Any, options: dict[str, Any]) -> str:
    """The pathway table and mass bars (one site group: one site, or pathways pooled over
    several; per-site pathways are shown site by site under Layers)."""
    pw = res.pathways
    k = pw.n_contexts
    if isinstance(getattr(pw, "sites", None), list) and len(pw.sites) > 1:
        return ""  # per-site pathways are shown site by site under Layers
    out = ['<h2 id="pathways">Pathways</h2>', pathway_caption(res)]
    if pw.n_pathways == 0:
        out.append('<p class="note">No pathway: no unit is on for any sample.</p>')
        return "\n".join(out)
    short = _short_sites(res)
    several = len(recording_sites(res)) > 1
    rows = []
    for row in res.pathway_table().to_dict("records"):
        kd = pathway_kind(row["contexts"], k)
        rows.append(
            f"<tr><td class=\"num\">{int(row['pathway'])}</td><td>{esc(context_set_label(row['contexts']))}</td>"
            f'<td class="kind-{kd}">{esc(KIND_TEXT[kd])}</td><td class="num">{int(row["n_units"])}</td>'
            f"{num(row['mass'])}" + (f"<td>{_sites_text(row['sites'], short)}</td>" if several else "") + "</tr>"
        )
    header = ["pathway", "contexts", "kind", "units", "mass"] + (["sites (share of mass)"] if several else [])
    out.append(table(header, rows))
    out.append(img(figs.context_mass_png(pw.contexts, np.asarray(pw.mass.values), k), "context-set mass bars"))
    return "\n".join(out)


# ----------------------------------------------------------------------------- gating profiles
def profiles_section(res: Any, options: dict[str, Any]) -> str:
    """One heatmap of every important unit (one site group; per-site profiles are small
    multiples under Layers)."""
    pw = res.pathways
    if isinstance(getattr(pw, "sites", None), list) and len(pw.sites) > 1:
        return ""
    max_rows = int(options.get("max_heatmap_units", 400))
    labels = pw.labels.values
    imp = res.importance.values
    keep = np.flatnonzero(labels >= 0)
    out = ['<h2 id="profiles">Gating profiles</h2>']
    if keep.size == 0:
        out.append('<p class="note">No unit carries pathway mass.</p>')
        return "\n".join(out)
    shown = keep if keep.size <= max_rows else keep[np.argsort(-imp[keep], kind="stable")[:max_rows]]
    shown = np.sort(shown)
    by, within = res.by, res.within
    ds = res.dataset.isel(unit=shown)
    use_items = within is not None and len(np.unique(ds[within].values)) <= 24
    if use_items:
        prof = gating_profile(ds, [by, within]).transpose("unit", by, within)
        by_vals, it_vals = prof[by].values.tolist(), prof[within].values.tolist()
        values = prof.values.reshape(prof.shape[0], -1)
        col_labels = [f"{b}/{o}" for b in by_vals for o in it_vals]
        col_groups = [str(b) for b in by_vals for _ in it_vals]
    else:
        prof = res.profile.isel(unit=shown).transpose("unit", by)
        values = prof.values
        col_labels = [str(b) for b in prof[by].values.tolist()]
        col_groups = col_labels
    unit_labels, unit_imp = labels[shown], imp[shown]
    ctx_profile = res.profile.isel(unit=shown).transpose("unit", by).values
    order = np.lexsort((-unit_imp, np.argmax(ctx_profile > 0.5, axis=1), unit_labels))
    contexts = pw.mass["contexts"].values
    names = {int(p): f"#{p} {context_set_label(contexts[p])}" for p in np.unique(unit_labels)}
    measure = gating_measure(str(res.params.get("units", "element")), by)
    png = figs.profile_heatmap_png(values[order], unit_labels[order].tolist(), names, col_labels, col_groups, by=by,
                                   within=within if use_items else None, measure=measure)
    caption = (f"{esc(measure)} of {len(shown)} units"
               + (f" (the {len(shown)} most important of {keep.size})" if len(shown) < keep.size else "")
               + f", rows grouped by pathway (legend) and ordered by the first <code>{esc(by)}</code> they serve; "
               + (f"columns: <code>{esc(by)}</code> blocks, one column per <code>{esc(within)}</code>."
                  if use_items else f"columns: <code>{esc(by)}</code>."))
    out.append(img(png, "gating-profile heatmap"))
    out.append(f'<p class="caption">{caption}</p>')
    return "\n".join(out)


# ----------------------------------------------------------------------------- units
def _shade(v: float) -> str:
    a = 0.08 + 0.62 * float(np.clip(v, 0, 1))
    colour = "#fff" if v > 0.6 else "#1d2330"
    return f'style="background:rgba(27,108,168,{a:.2f});color:{colour}"'


def _representative_units(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The *n* most important units, taken in turn from every pathway (so small pathways are
    represented too), listed by pathway then importance."""
    groups = [g.index.to_list() for _, g in frame[frame["pathway"] >= 0].groupby("pathway", sort=True)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n and any(depth < len(g) for g in groups):
        for g in groups:
            if depth < len(g) and len(picked) < n:
                picked.append(g[depth])
        depth += 1
    if not picked:
        return frame.head(n)
    return frame.loc[picked].sort_values(["pathway", "importance"], ascending=[True, False], kind="stable")


def units_section(res: Any, options: dict[str, Any]) -> str:
    """The most important units of every pathway: site, pathway, gating profile, mixed
    selectivity, importance."""
    frame = res.unit_table()
    total = len(frame)
    frame = _representative_units(frame, int(options.get("max_units", 40)))
    by = res.by
    pcols = [c for c in frame.columns if c.startswith("P(on | ")]
    values = [c.split("=", 1)[1][:-1] for c in pcols]
    has_ms = "mixed_selectivity" in frame.columns
    measure = gating_measure(str(res.params.get("units", "element")), by)
    header = ["unit", "site", "neuron", "pathway", f"{measure}: {', '.join(values)}"]
    header += ["mixed selectivity"] if has_ms else []
    header += ["importance"]
    short = _short_sites(res)
    rows = []
    for row in frame.to_dict("records"):
        prof = "".join(f'<span class="p" {_shade(row[c])} title="{esc(by)}={esc(v)}">{row[c]:.2f}</span>'
                       for c, v in zip(pcols, values))
        pathway = "—" if row["pathway"] < 0 else f"#{row['pathway']} {context_set_label(row['contexts'])}"
        site = str(row["site"])
        cells = (f"<tr><td class=\"num\">{int(row['unit'])}</td><td>{site_cell(short.get(site, site), site)}</td>"
                 f"<td class=\"num\">{int(row['neuron'])}</td><td>{esc(pathway)}</td><td class=\"prof\">{prof}</td>")
        if has_ms:
            cells += num(row["mixed_selectivity"])
        rows.append(cells + num(row["importance"], "{:.4f}") + "</tr>")
    caption = (f"{len(frame)} of {total} units: the most important ones of every pathway, in turn. "
               + ("Mixed selectivity: the interaction share of a two-way ANOVA of the unit's activity over condition "
                  "× item (0 = additive, 1 = pure conjunction)." if has_ms else
                  "The mixed-selectivity index needs an item coord: pass <code>within=</code>."))
    return "\n".join(['<h2 id="units">Units</h2>', f'<p class="caption">{caption}</p>', table(header, rows)])


def _attribution_note(res: Any) -> str:
    """Why there are no attributions, in the analysis' own words when it said."""
    said = [n for n in res.notes if "attribution" in n]
    if said:
        text = "; ".join(said)
        return text[:1].upper() + text[1:] + "."
    return ("No input attributions (they need the model and the inputs as one tensor, or were switched off with "
            "attribution=False).")


def features_section(res: Any, options: dict[str, Any], n_top: int = 6) -> str:
    """The input features that drive each pathway (captum integrated gradients)."""
    out = ['<h3 id="features">Input features of each pathway</h3>']
    att = res.attributions
    if att is None:
        out.append(f'<p class="note">{esc(_attribution_note(res))}</p>')
        return "\n".join(out)
    top = res.top_features(n_top)
    site = att["site"].values if "site" in att.coords else None
    if site is None and "site" in res.pathways.mass.coords and len(set(res.pathways.mass["site"].values.tolist())) > 1:
        # per-site pathways: each attributed pathway's site, from the pathways themselves
        site = res.pathways.mass["site"].sel(pathway=att["pathway"].values).values
    short = _short_sites(res)
    rows = []
    for i, p in enumerate(att["pathway"].values):
        sub = top[top["pathway"] == p]
        feats = "; ".join(f"{name} ({100 * share:.1f}%)" for name, share in zip(sub["name"], sub["share"]))
        ctx = att["contexts"].values[i]
        where = f"<td>{site_cell(short.get(str(site[i]), str(site[i])), str(site[i]))}</td>" if site is not None else ""
        rows.append(f"<tr><td class=\"num\">{int(p)}</td>{where}<td>{esc(context_set_label(ctx))}</td>"
                    f"<td>{esc(feats) if feats else '—'}</td></tr>")
    out.append(f'<p class="caption">Share of each input feature in the pathway\'s activity: '
               f"{esc(att.attrs.get('method', 'integrated gradients'))}, mean |attribution| over "
               f"{esc(att.attrs.get('n_samples', ''))} inputs.</p>")
    out.append(table(["pathway", *(["site"] if site is not None else []), "contexts",
                      f"top {n_top} input features (share)"], rows))
    shape = att.attrs.get("feature_shape") or []
    shape = [int(s) for s in (shape if isinstance(shape, (list, tuple, np.ndarray)) else [shape])]
    if len(shape) >= 2 and att.attrs.get("space", "input") == "input":
        maps = att.values.reshape(att.sizes["pathway"], *shape)
        maps = maps.reshape(maps.shape[0], -1, shape[-2], shape[-1]).sum(1)
        titles = [f"#{int(p)} {context_set_label(c)}" for p, c in zip(att["pathway"].values, att["contexts"].values)]
        if site is not None:  # per-site pathways: the site above each map
            titles = [f"{short.get(str(s), str(s))}: {t}" for s, t in zip(site, titles)]
        out.append(img(figs.attribution_maps_png(maps, titles), "attribution maps"))
        out.append('<p class="caption">Attribution share over the input image (summed over channels), one colour '
                   "scale for all pathways.</p>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- dynamics
def dynamics_section(res: Any, options: dict[str, Any]) -> str:
    """Loss curves of the ReLU network, the ReLN, its prediction and the closed form; their comparison;
    the singular values of every ReLN pathway."""
    out = ['<h2 id="dynamics">Learning dynamics</h2>']
    dyn = res.dynamics
    if dyn is None:
        skipped = reln_skipped(getattr(res, "notes", []))
        if skipped:  # the targets were given: say why there is no ReLN
            out.append(f'<p class="note">No learning dynamics: {esc(skipped)}.</p>')
            return "\n".join(out)
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
    out.append(img(figs.loss_curves_png(curves), "loss curves"))
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
        dl = "|\u2060ΔL\u2060|"  # word joiners: the bars never part from ΔL at a line break
        header = ["comparison", f"mean {dl}", f"mean {dl} (% L0)", f"max {dl}", "at epoch"]
        header += [f"epochs to {100 * f:g}% L0 (ref → other)" for f in fracs]
        rows = []
        for key, cmp in res.comparison.items():
            cells = (f"<tr><td>{esc(labels.get(key, key))}</td>{num(cmp['mean_abs_diff'])}"
                     f"{num(cmp['mean_abs_diff_pct'], '{:.2f}')}{num(cmp['max_abs_diff'])}"
                     f"<td class=\"num\">{int(cmp['max_abs_diff_epoch'])}</td>")
            for f in fracs:
                a, b = cmp["epochs_to_a"].get(f), cmp["epochs_to_b"].get(f)
                cells += f'<td class="num">{esc("—" if a is None else a)} → {esc("—" if b is None else b)}</td>'
            rows.append(cells + "</tr>")
        out.append(table(header, rows))
    if "sv_reln" in dyn:
        sv = dyn["sv_reln"].transpose("pathway", "mode", "sv_epoch")
        race = dyn["sv_race"].transpose("pathway", "mode", "sv_epoch").values if "sv_race" in dyn else None
        names = [str(n) for n in sv["name"].values] if "name" in sv.coords else [str(p) for p in sv["pathway"].values]
        out.append(img(figs.singular_values_png(sv.values, race, sv["sv_epoch"].values, names, race_label),
                       "singular-value trajectories"))
    return "\n".join(out)


# ----------------------------------------------------------------------------- training
def _monitor_scores(frame: pd.DataFrame, title: str | None) -> list[str]:
    out = [f"<h3>{title}</h3>"] if title else []
    steps = np.asarray(frame.index.to_numpy(), dtype=np.float64)
    columns = {str(c): np.asarray(frame[c].to_numpy(), dtype=np.float64) for c in frame.columns}
    # a column the monitor never filled (no loss passed to update, a score undefined throughout)
    columns = {c: v for c, v in columns.items() if np.isfinite(v).any()}
    out.append(img(figs.monitor_scores_png(steps, {c if c == "loss" else score_label(c): v for c, v in columns.items()}),
                   "scores over training"))
    rows = [f"<tr><td>{esc(score_label(c))}</td>{num(v[0])}{num(v[-1])}</tr>" for c, v in columns.items()]
    out.append(table(["score", f"step {frame.index[0]}", f"step {frame.index[-1]}"], rows))
    return out


def monitor_section(res: Any, options: dict[str, Any]) -> str:
    """Scores and pathway masses against training step (with a training monitor)."""
    if res.monitor_scores is None and res.monitor_pathways is None:
        return ""
    out = ['<h2 id="training">Structure over training</h2>']
    frame = res.monitor_scores
    if frame is not None:
        if frame.index.nlevels > 1:  # (step, site)
            short = _short_sites(res)
            for site in dict.fromkeys(frame.index.get_level_values(1)):
                out += _monitor_scores(frame.xs(site, level=1), f"Site {site_cell(short.get(str(site), str(site)), str(site))}")
        else:
            out += _monitor_scores(frame, None)
    da = res.monitor_pathways
    if da is not None:
        da = da.transpose("step", "pathway")
        contexts = list(da["contexts"].values) if "contexts" in da.coords else [(p,) for p in da["pathway"].values]
        k = max((len(c) for c in contexts), default=1)
        if res.pathways is not None:
            k = max(k, res.pathways.n_contexts)
        labels = [context_set_label(c) if isinstance(c, (tuple, list)) else str(c) for c in contexts]
        kinds = [pathway_kind(c, k) if isinstance(c, (tuple, list)) else "mixed" for c in contexts]
        sites = None
        if "site" in da.coords and len(set(da["site"].values.tolist())) > 1:  # per-site pathways: a panel each
            short = _short_sites(res)
            sites = [short.get(str(s), str(s)) for s in da["site"].values.tolist()]
        out.append(img(figs.monitor_pathways_png(np.asarray(da["step"].values, dtype=np.float64),
                                                 np.asarray(da.values, float), labels, kinds, sites),
                       "pathway masses over training"))
        out.append('<p class="caption">Pathway masses over training' + (", one panel per site (masses sum to 1 "
                   "within each site)" if sites else "") + "; blue: on in every context, orange: several, grey: "
                   "one.</p>")
    return "\n".join(out)


def notes_section(res: Any, options: dict[str, Any]) -> str:
    """What was skipped and why."""
    if not res.notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in res.notes)
    return f'<h2 id="notes">Notes</h2><ul class="note">{items}</ul>'


def _units_and_features(res: Any, options: dict[str, Any]) -> str:
    return units_section(res, options) + "\n" + features_section(res, options)


#: The report's sections in page order. A later section of relu_probe (predicted vs
#: measured structure, gate stability over training …) is one more ``Section`` here: its
#: builder reads the analysis' attributes and returns ``""`` when they are absent.
SECTIONS: tuple[Section, ...] = (
    Section("scores", "Scores", scores_section),
    Section("layers", "Layers", lambda res, options: layers_section(res, caption=pathway_caption(res))),
    Section("pathways", "Pathways", pathways_section),
    Section("profiles", "Gating profiles", profiles_section),
    Section("units", "Units", _units_and_features),
    Section("dynamics", "Learning dynamics", dynamics_section),
    Section("structure", "Predicted structure", structure_section),
    Section("training", "Structure over training", monitor_section),
    Section("stability", "Gate stability", stability_section),
    Section("notes", "Notes", notes_section),
)
