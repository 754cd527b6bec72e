"""Matplotlib figures of the HTML report, rendered off-screen to PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly, so no
pyplot state, GUI backend or global ``matplotlib.use`` is touched. Every label that comes from
user data goes through :func:`text` (mathtext ``$`` escaped), so a coord label can never be
interpreted as markup.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from .labels import context_set_label, pathway_kind

__all__ = [
    "attribution_maps_png",
    "context_mass_png",
    "loss_curves_png",
    "structure_bars_png",
    "tv_over_training_png",
    "monitor_pathways_png",
    "monitor_scores_png",
    "profile_heatmap_png",
    "singular_values_png",
    "text",
]

#: colour per pathway kind: shared, several contexts, a single context
KIND_COLOURS = {"shared": "#1b6ca8", "mixed": "#e08a1e", "single": "#8c8c8c"}


def text(value: Any, limit: int = 60) -> str:
    """A user-supplied string made safe for matplotlib text (no mathtext), shortened."""
    s = str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


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
    row_groups: Sequence[str],
    column_labels: Sequence[str],
    column_groups: Sequence[str],
    *,
    by: str,
    within: str | None,
) -> bytes:
    """Units (rows, grouped by pathway) × conditions (columns, grouped by ``by``): P(on)."""
    n_rows, n_cols = values.shape
    fig = _figure(min(11.0, 2.8 + 0.16 * n_cols + 1.2), 5.6)
    ax = fig.add_subplot()
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="P(on)", fraction=0.04)
    # pathway group boundaries and labels
    starts = [0] + [i for i in range(1, n_rows) if row_groups[i] != row_groups[i - 1]]
    ends = starts[1:] + [n_rows]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="white", lw=1.2)
    # label the groups tall enough to hold a label (about 3% of the rows)
    tall = [(s, e) for s, e in zip(starts, ends) if (e - s) >= 0.03 * n_rows]
    ax.set_yticks([(s + e - 1) / 2 for s, e in tall], [text(row_groups[s], 24) for s, _ in tall], fontsize=8)
    ax.set_ylabel(f"units, grouped by pathway ({n_rows} shown)")
    cstarts = [0] + [j for j in range(1, n_cols) if column_groups[j] != column_groups[j - 1]]
    cends = cstarts[1:] + [n_cols]
    for s in cstarts[1:]:
        ax.axvline(s - 0.5, color="white", lw=1.2)
    if within is None or n_cols == len(cstarts):
        ax.set_xticks(np.arange(n_cols), [text(c, 14) for c in column_labels], fontsize=8,
                      rotation=90 if n_cols > 12 else 0)
        ax.set_xlabel(text(by, 40))
    else:
        ax.set_xticks([(s + e - 1) / 2 for s, e in zip(cstarts, cends)],
                      [text(column_groups[s], 14) for s in cstarts], fontsize=8)
        ax.set_xlabel(f"{text(by, 30)} (columns within a block: {text(within, 30)})")
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
        ax.set_ylabel("loss")
        if log:
            ax.set_yscale("log")
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
        ax.set_title(f"pathway {text(names[p], 30)}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[n:]:
        ax.set_visible(False)
    if sv_closed is not None:
        fig.suptitle(f"singular values of each pathway map (solid: ReLN simulated, dashed: {text(race_label)})",
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
    fig = _figure(3.6 * max(len(panels), 1) + 0.6, 3.4)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1), squeeze=False)).ravel()
    for ax, (group, ylabel, log) in zip(axes, panels):
        for name, v in group.items():
            ax.plot(steps, np.where(v > 0, v, np.nan) if log else v, marker="o", ms=3, label=text(name, 30))
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def monitor_pathways_png(steps: np.ndarray, mass: np.ndarray, labels: Sequence[str], kinds: Sequence[str]) -> bytes:
    """Stacked areas: each pathway's mass against training step."""
    fig = _figure(10.0, 3.6)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    palette = {"shared": colormaps["Blues"], "mixed": colormaps["Oranges"], "single": colormaps["Greys"]}
    counts = {k: 0 for k in palette}
    colours = []
    for k in kinds:
        counts[k] += 1
        colours.append(palette[k](0.45 + 0.12 * (counts[k] % 4)))
    mass = np.nan_to_num(mass)
    # label the pathways that ever matter; a legend taller than the figure collapses the axes
    shown = [j for j in np.argsort(-mass.max(0), kind="stable")[:14] if mass[:, j].max() >= 0.01]
    names = [text(s, 30) if j in shown else f"_{j}" for j, s in enumerate(labels)]
    ax.stackplot(steps, mass.T, labels=names, colors=colours)
    ax.set_xlabel("training step")
    ax.set_ylabel("pathway mass")
    ax.set_ylim(0, max(1.0, float(mass.sum(1).max()) if mass.size else 1.0))
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
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
    ax.plot(steps, tv, marker="o", ms=3, color="#1b6ca8")
    ax.set_xlabel("training step")
    ax.set_ylabel("TV, predicted vs measured")
    ax.set_ylim(0, max(0.5, float(np.nanmax(tv)) if np.isfinite(tv).any() else 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def attribution_maps_png(maps: np.ndarray, titles: Sequence[str]) -> bytes:
    """One image per pathway: attribution share over a 2-D input (summed over channels)."""
    n = len(titles)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(1.9 * cols + 0.4, 2.0 * rows + 0.2)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i in range(n):
        axes[i].imshow(maps[i], cmap="magma", interpolation="nearest")
        axes[i].set_title(text(titles[i], 24), fontsize=8)
        axes[i].set_xticks([])
        axes[i].set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    return _png(fig)
