"""Matplotlib figures of the HTML report, rendered off-screen to PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly, so no
pyplot state, GUI backend or global ``matplotlib.use`` is touched. Every label that comes from
user data goes through :func:`text` (mathtext ``$`` escaped, so a coord label can never be
interpreted as markup; long labels wrapped, never shortened). Every figure has its axes
labelled and a legend or a labelled colour bar.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .labels import context_set_label, pathway_kind

__all__ = [
    "attribution_maps_png",
    "context_mass_png",
    "gate_stability_png",
    "layer_summary_png",
    "loss_curves_png",
    "structure_bars_png",
    "tv_over_training_png",
    "monitor_pathways_png",
    "monitor_scores_png",
    "profile_grid_png",
    "profile_heatmap_png",
    "singular_values_png",
    "text",
]

#: colour per pathway kind: shared, several contexts, a single context
KIND_COLOURS = {"shared": "#1b6ca8", "mixed": "#e08a1e", "single": "#8c8c8c"}


def text(value: Any, width: int = 60) -> str:
    """A user-supplied string made safe for matplotlib text (no mathtext), whole: lines longer
    than *width* characters are wrapped after a space or a comma, never cut."""
    s = str(value).replace("$", r"\$")
    if len(s) <= width:
        return s
    lines, line = [], ""
    for piece in re.split(r"(?<=[ ,])", s):
        if line and len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    lines.append(line.rstrip())
    return "\n".join(lines)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def context_mass_png(contexts: Sequence[Sequence[Any]], mass: np.ndarray, n_contexts: int) -> bytes:
    """Horizontal bars: the mass of every context-set pathway, coloured by its kind."""
    n = len(contexts)
    fig = _figure(7.0, max(1.6, 0.42 * n + 0.9))
    ax = fig.add_subplot()
    y = np.arange(n)
    colours = [KIND_COLOURS[pathway_kind(c, n_contexts)] for c in contexts]
    ax.barh(y, mass, color=colours)
    ax.set_yticks(y, [text(context_set_label(c)) for c in contexts])
    ax.invert_yaxis()
    ax.set_xlabel("pathway mass")
    ax.set_ylabel("pathway (the contexts it is on in)")
    ax.set_xlim(0, max(1e-12, float(np.max(mass)) if n else 1.0) * 1.15)
    for yi, m in zip(y, mass):
        ax.text(m, yi, f" {m:.3f}", va="center", fontsize=9)
    from matplotlib.patches import Patch

    handles = [Patch(color=KIND_COLOURS[k], label=lab) for k, lab in
               (("shared", "all contexts"), ("mixed", "several contexts"), ("single", "one context"))]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def profile_heatmap_png(
    values: np.ndarray,
    row_groups: Sequence[int],
    group_labels: dict[int, str],
    column_labels: Sequence[str],
    column_groups: Sequence[str],
    *,
    by: str,
    within: str | None,
    measure: str,
) -> bytes:
    """Units (rows, grouped by pathway) × conditions (columns, grouped by ``by``).

    A strip left of the heatmap colours each row by its pathway; the legend names every
    pathway in full (``#3 {a,b}``), so no group is left unlabelled however thin. The colour
    bar is labelled with *measure* (what a cell is: ``P(on | by)``, or the fraction of
    positions active for channel units).
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n_rows, n_cols = values.shape
    order = list(dict.fromkeys(int(g) for g in row_groups))
    palette = colormaps["tab20"]
    colour = {g: palette(i % 20) for i, g in enumerate(order)}
    legend_rows = len(order)
    fig = _figure(min(11.0, 4.4 + 0.16 * n_cols + 2.6), max(3.2, min(7.0, 2.0 + 0.018 * n_rows + 0.2 * legend_rows)))
    grid = fig.add_gridspec(1, 2, width_ratios=(0.35, max(3.0, 0.16 * n_cols + 2.0)), wspace=0.02)
    strip, ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    index = np.array([order.index(int(g)) for g in row_groups])[:, None]
    strip.imshow(index, aspect="auto", interpolation="nearest",
                 cmap=ListedColormap([colour[g] for g in order]), vmin=-0.5, vmax=len(order) - 0.5)
    strip.set_xticks([])
    strip.set_yticks([])
    strip.set_ylabel(f"units, grouped by pathway ({n_rows} shown)")
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label=text(measure, 34), fraction=0.05, pad=0.02)
    starts = [i for i in range(1, n_rows) if row_groups[i] != row_groups[i - 1]]
    for s in starts:
        ax.axhline(s - 0.5, color="white", lw=0.8)
        strip.axhline(s - 0.5, color="white", lw=0.8)
    ax.set_yticks([])
    cstarts = [0] + [j for j in range(1, n_cols) if column_groups[j] != column_groups[j - 1]]
    cends = cstarts[1:] + [n_cols]
    for s in cstarts[1:]:
        ax.axvline(s - 0.5, color="white", lw=1.2)
    if within is None or n_cols == len(cstarts):
        ax.set_xticks(np.arange(n_cols), [text(c, 14) for c in column_labels], fontsize=8,
                      rotation=90 if n_cols > 8 else 0)
        ax.set_xlabel(text(by, 40))
    else:
        ax.set_xticks([(s + e - 1) / 2 for s, e in zip(cstarts, cends)],
                      [text(column_groups[s], 14) for s in cstarts], fontsize=8,
                      rotation=90 if len(cstarts) > 8 else 0)
        ax.set_xlabel(f"{text(by, 30)} (columns within a block: {text(within, 30)})")
    handles = [Patch(color=colour[g], label=text(group_labels.get(g, f"#{g}"), 44))
               for g in order]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False, title="pathway",
               title_fontsize=8, ncols=1 if legend_rows <= 24 else 2)
    return _png(fig)


def layer_summary_png(
    sites: Sequence[str],
    kinds: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    n_contexts: int,
) -> bytes:
    """The layer-by-layer summary: per site (x, in recording order) the share of its pathway
    mass on all contexts, on several and on one (stacked bars, left) and its scores (lines,
    right).

    *kinds* is ``(n_sites, 3)``: masses of shared, mixed and single-context pathways, each
    row summing to 1 (or 0 for a site without pathways).
    """
    n = len(sites)
    panel = max(5.4, 2.2 + 0.34 * n)  # wide enough for the three-entry legend above the bars
    fig = _figure(min(11.0, panel * (2 if scores else 1)), 3.9)
    axes = np.atleast_1d(fig.subplots(1, 2 if scores else 1, squeeze=False)).ravel()
    x = np.arange(n)
    bottom = np.zeros(n)
    names = (("shared", f"all {n_contexts} contexts"), ("mixed", "several contexts"), ("single", "one context"))
    for j, (kind, label) in enumerate(names):
        axes[0].bar(x, kinds[:, j], bottom=bottom, color=KIND_COLOURS[kind], label=label, width=0.8)
        bottom += kinds[:, j]
    axes[0].set_ylabel("share of the site's pathway mass")
    axes[0].set_ylim(0, 1.0)
    axes[0].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 1.16), ncols=3)
    if scores:
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        for j, (name, v) in enumerate(scores.items()):
            axes[1].plot(x, np.asarray(v, dtype=np.float64), marker="o", ms=3.5, lw=1.4, color=cmap(j % 10),
                         label=text(name, 30))
        axes[1].set_ylabel("score")
        axes[1].set_ylim(-0.03, 1.03)
        axes[1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 1.16), ncols=3)
    for ax in axes:
        ax.set_xticks(x, [text(s, 22) for s in sites], rotation=90 if n > 4 else 0, fontsize=8)
        ax.set_xlabel("site (recording order)")
        ax.set_xlim(-0.6, n - 0.4)
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def profile_grid_png(panels: Sequence[dict[str, Any]], *, measure: str, by: str, n_contexts: int) -> bytes:
    """Small multiples: one gating-profile panel per site (units × ``by`` values, one colour
    scale), rows grouped by pathway; a strip left of each panel colours the rows by their
    pathway's kind (the legend)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n = len(panels)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    n_cols = max(len(p["columns"]) for p in panels)
    fig = _figure(min(11.0, cols * (0.9 + 0.32 * n_cols) + 1.0), 2.3 * rows + 1.0)
    grid = fig.add_gridspec(rows, 2 * cols, width_ratios=[0.12, 1.0] * cols)
    kinds = ("shared", "mixed", "single")
    strip_cmap = ListedColormap([KIND_COLOURS[k] for k in kinds])
    image = None
    for i, panel in enumerate(panels):
        r, c = divmod(i, cols)
        strip, ax = fig.add_subplot(grid[r, 2 * c]), fig.add_subplot(grid[r, 2 * c + 1])
        values = np.asarray(panel["values"], dtype=np.float64)
        strip.imshow(np.array([kinds.index(k) for k in panel["kinds"]])[:, None], aspect="auto",
                     interpolation="nearest", cmap=strip_cmap, vmin=-0.5, vmax=2.5)
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
        groups = panel["groups"]
        for j in range(1, len(groups)):
            if groups[j] != groups[j - 1]:
                ax.axhline(j - 0.5, color="white", lw=0.6)
                strip.axhline(j - 0.5, color="white", lw=0.6)
        strip.set_xticks([])
        strip.set_yticks([])
        if c == 0:
            strip.set_ylabel("units", fontsize=8)
        ax.set_yticks([])
        ax.set_xticks(np.arange(len(panel["columns"])), [text(x, 10) for x in panel["columns"]], fontsize=6.5,
                      rotation=90)
        if i >= n - cols:  # the bottom panel of each column
            ax.set_xlabel(text(by, 24), fontsize=7)
        ax.set_title(text(panel["title"], 24), fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, label=text(measure, 26), fraction=0.025, pad=0.01)
    handles = [Patch(color=KIND_COLOURS[k], label=lab) for k, lab in
               zip(kinds, (f"all {n_contexts} contexts", "several contexts", "one context"))]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False,
               title="pathway of the row", title_fontsize=8)
    return _png(fig)


def loss_curves_png(curves: dict[str, np.ndarray]) -> bytes:
    """Loss against epoch for each named curve, linear and log scale side by side."""
    styles = {"ReLU network": {"color": "black", "lw": 2.2},
              "ReLN (simulated)": {"color": "#e08a1e", "lw": 1.6, "ls": "--"}}
    race_style = {"color": "#1b6ca8", "lw": 1.4, "ls": ":"}
    styles["closed form (mode-by-mode approximation)"] = {"color": "#7a7f87", "lw": 1.1, "ls": "-."}
    fig = _figure(10.0, 3.6)
    axes = fig.subplots(1, 2)
    for ax, log in zip(axes, (False, True)):
        for name, loss in curves.items():
            loss = np.asarray(loss, dtype=np.float64)
            ax.plot(np.arange(loss.size), np.maximum(loss, 1e-12) if log else loss, label=text(name),
                    **styles.get(name, race_style))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" + (" (log scale)" if log else ""))
        if log:
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", useOffset=False)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=9)
    return _png(fig)


def singular_values_png(
    sv_sim: np.ndarray,
    sv_closed: np.ndarray | None,
    epochs: np.ndarray,
    names: Sequence[str],
    race_label: str = "closed form",
    n_modes: int = 6,
) -> bytes:
    """One panel per ReLN pathway: its map's top singular values over training (simulated
    solid, the race prediction dashed)."""
    n = len(names)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(3.0 * cols + 0.6, 2.5 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for p in range(n):
        ax = axes[p]
        top = np.argsort(-sv_sim[p, :, -1], kind="stable")[:n_modes]
        for j, mode in enumerate(top):
            ax.plot(epochs, sv_sim[p, mode], color=cmap(j % 10), lw=1.5)
            if sv_closed is not None:
                ax.plot(epochs, sv_closed[p, mode], color=cmap(j % 10), lw=1.0, ls="--")
        from matplotlib.ticker import FormatStrFormatter

        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))  # no offset text over the title
        ax.set_title(f"pathway {text(names[p], 30)}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        if p % cols == 0:
            ax.set_ylabel("singular value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[n:]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.2", lw=1.5, label="ReLN (simulated)")]
    if sv_closed is not None:
        handles.append(Line2D([], [], color="0.2", lw=1.0, ls="--", label=text(race_label)))
    handles += [Line2D([], [], color=cmap(j % 10), lw=2.5, label=f"mode {j + 1}") for j in range(
        min(n_modes, sv_sim.shape[1]))]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(8, len(handles)), fontsize=8, frameon=False)
    fig.suptitle("singular values of each pathway's input–output map over training (modes ranked by final value)",
                 fontsize=9)
    return _png(fig)


def monitor_scores_png(steps: np.ndarray, columns: dict[str, np.ndarray]) -> bytes:
    """Scores against training step: scores in [0, 1], other scores, and the loss (log scale)
    in separate panels."""
    loss = columns.get("loss")
    rest = {k: v for k, v in columns.items() if k != "loss" and np.isfinite(v).any()}
    unit_cols = {k: v for k, v in rest.items() if np.nanmin(v) >= 0 and np.nanmax(v) <= 1}
    other = {k: v for k, v in rest.items() if k not in unit_cols}
    panels = [(unit_cols, "score (0–1)", False), (other, "value", False)]
    if loss is not None and np.isfinite(loss).any() and np.nanmax(loss) > 0:
        panels.append(({"loss": loss}, "training loss", True))
    panels = [p for p in panels if p[0]]
    rows_of_legend = max((int(np.ceil(len(group) / 2)) for group, _, _ in panels), default=1)
    fig = _figure(3.6 * max(len(panels), 1) + 0.6, 3.0 + 0.17 * rows_of_legend)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1), squeeze=False)).ravel()
    for ax, (group, ylabel, log) in zip(axes, panels):
        for name, v in group.items():
            ax.plot(steps, np.where(v > 0, v, np.nan) if log else v, marker="o", ms=3, label=text(name, 30))
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.spines[["top", "right"]].set_visible(False)
        # above the axes, never over the lines it names
        ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2)
    return _png(fig)


def monitor_pathways_png(steps: np.ndarray, mass: np.ndarray, labels: Sequence[str], kinds: Sequence[str],
                         sites: Sequence[str] | None = None) -> bytes:
    """Stacked areas: each pathway's mass against training step. With *sites* (the site of
    each pathway, per-site pathways whose masses sum to 1 within each site) one panel per site,
    titled by it, each with its own legend; else one panel."""
    from matplotlib import colormaps

    mass = np.nan_to_num(np.asarray(mass, dtype=np.float64))
    groups = list(dict.fromkeys(sites)) if sites is not None else [None]
    n = len(groups)
    cols = 1 if n == 1 else min(3, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(10.0 if n == 1 else 11.0, 3.6 if n == 1 else 2.7 * rows + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    palette = {"shared": colormaps["Blues"], "mixed": colormaps["Oranges"], "single": colormaps["Greys"]}
    for i, group in enumerate(groups):
        ax = axes[i]
        cols_of = [j for j in range(len(labels)) if sites is None or sites[j] == group]
        sub = mass[:, cols_of]
        counts = {k: 0 for k in palette}
        colours = []
        for j in cols_of:
            counts[kinds[j]] += 1
            colours.append(palette[kinds[j]](0.45 + 0.12 * (counts[kinds[j]] % 4)))
        # label the pathways that ever matter; a legend taller than the panel collapses the axes
        limit = 14 if n == 1 else 6
        shown = {cols_of[j] for j in np.argsort(-sub.max(0), kind="stable")[:limit] if sub[:, j].max() >= 0.01}
        names = [text(labels[j], 30) if j in shown else f"_{j}" for j in cols_of]
        ax.stackplot(steps, sub.T, labels=names, colors=colours)
        ax.set_ylim(0, max(1.0, float(sub.sum(1).max()) if sub.size else 1.0))
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7 if n > 1 else 8)
        if group is not None:
            ax.set_title(text(group, 30), fontsize=9)
        if i % cols == 0:
            ax.set_ylabel("pathway mass" + (" (within the site)" if group is not None else ""),
                          fontsize=8 if n > 1 else 10)
        if i >= n - cols:
            ax.set_xlabel("training step", fontsize=8 if n > 1 else 10)
        if n > 1:
            ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _png(fig)


def structure_bars_png(labels: Sequence[str], predicted: np.ndarray, measured: np.ndarray) -> bytes:
    """Predicted against measured mass of every context set, as paired bars."""
    n = len(labels)
    fig = _figure(max(4.0, 0.55 * n + 1.6), 3.2)
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x - 0.2, predicted, width=0.4, color="#1b6ca8", label="predicted (before training)")
    ax.bar(x + 0.2, measured, width=0.4, color="#e08a1e", label="measured (trained network)")
    ax.set_xticks(x, [text(s, 14) for s in labels], fontsize=8, rotation=90 if n > 10 else 0)
    ax.set_xlabel("context set")
    ax.set_ylabel("pathway mass")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def tv_over_training_png(steps: np.ndarray, tv: np.ndarray) -> bytes:
    """Total-variation distance between predicted and measured structure against training step."""
    fig = _figure(6.0, 3.0)
    ax = fig.add_subplot()
    ax.plot(steps, tv, marker="o", ms=3, color="#1b6ca8",
            label="total-variation distance, predicted vs measured pathway masses")
    ax.set_xlabel("training step")
    ax.set_ylabel("TV, predicted vs measured")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    ax.set_ylim(0, max(0.5, float(np.nanmax(tv)) if np.isfinite(tv).any() else 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def attribution_maps_png(maps: np.ndarray, titles: Sequence[str]) -> bytes:
    """One image per pathway: attribution share over a 2-D input (summed over channels), on
    one colour scale (the colour bar: share of the pathway's attribution per pixel)."""
    n = len(titles)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(1.9 * cols + 1.2, 2.1 * rows + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    top = float(np.max(maps)) if maps.size and np.max(maps) > 0 else 1.0
    image = None
    for i in range(n):
        image = axes[i].imshow(maps[i], cmap="magma", interpolation="nearest", vmin=0.0, vmax=top)
        axes[i].set_title(text(titles[i], 26), fontsize=8)
        axes[i].set_xticks([])
        axes[i].set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:n]), label="share of attribution per pixel", fraction=0.03, pad=0.02)
    return _png(fig)


#: Colours of the gate-stability panels: the flips, the chance level, the threshold, the stable step.
STABILITY_COLOURS = {"flips": "#1b6ca8", "chance": "#6c6c6c", "threshold": "#b86a0c", "stable": "#2e8b57"}


def gate_stability_png(
    steps: np.ndarray,
    flips: np.ndarray,
    chance: np.ndarray,
    sites: Sequence[str],
    stable_steps: np.ndarray,
    *,
    tolerance: float,
) -> bytes:
    """Small multiples, one panel per site: the fraction of probe gates that flipped since the
    previous snapshot against training step (solid), the flip fraction of a gating re-drawn at
    the same on-rates (chance, dashed), the stability threshold ``tolerance × chance``
    (dotted) and the step from which the site stays below it (vertical line; none while the
    site is not stable).

    *flips* and *chance* are ``(n_steps, n_sites)``; *stable_steps* is ``(n_sites,)``, NaN
    for a site that is not stable. One y scale for all panels, so sites compare.
    """
    from matplotlib.lines import Line2D

    steps = np.asarray(steps, dtype=np.float64)
    flips = np.asarray(flips, dtype=np.float64)
    chance = np.asarray(chance, dtype=np.float64)
    n = len(sites)
    cols = min(6 if n > 8 else 4, n)
    rows = int(np.ceil(n / cols))
    width = min(11.0, max(6.8, 2.6 * cols + 0.8))  # at least as wide as its legend (two columns)
    fig = _figure(width, 2.0 * rows + 1.0)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)).ravel()
    finite = np.concatenate([flips[np.isfinite(flips)], chance[np.isfinite(chance)]])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    for i in range(n):
        ax = axes[i]
        ax.plot(steps, chance[:, i], color=STABILITY_COLOURS["chance"], lw=1.1, ls="--")
        ax.plot(steps, tolerance * chance[:, i], color=STABILITY_COLOURS["threshold"], lw=1.0, ls=":")
        ax.plot(steps, flips[:, i], color=STABILITY_COLOURS["flips"], lw=1.6, marker="o", ms=2.5)
        if np.isfinite(stable_steps[i]):
            ax.axvline(float(stable_steps[i]), color=STABILITY_COLOURS["stable"], lw=1.2)
        ax.set_title(text(sites[i], 28), fontsize=8)
        ax.set_ylim(0, top * 1.08)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
        if i % cols == 0:
            ax.set_ylabel("fraction of gates flipped", fontsize=8)
        if i >= n - cols:  # the bottom panel of each column
            ax.set_xlabel("training step", fontsize=8)
            ax.tick_params(labelbottom=True)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=STABILITY_COLOURS["flips"], lw=1.6, marker="o", ms=2.5,
               label="flipped since the previous snapshot"),
        Line2D([], [], color=STABILITY_COLOURS["chance"], lw=1.1, ls="--",
               label="chance (gates re-drawn at the same rates)"),
        Line2D([], [], color=STABILITY_COLOURS["threshold"], lw=1.0, ls=":",
               label=f"stability threshold ({tolerance:g} × chance)"),
        Line2D([], [], color=STABILITY_COLOURS["stable"], lw=1.2, label="stable from this step"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2 if width < 10.5 else 4, fontsize=8, frameon=False)
    return _png(fig)
