"""The report's gate-stability section: how many probe gates flip between training snapshots,
per site, against chance, and the step from which each site's gating stays fixed.

The ReLN (Jarvis, Klein, Rosman & Saxe, "Make Haste Slowly", ICLR 2025, arXiv 2503.06181)
models a ReLU network by a gated deep linear network whose gates are *fixed*; this section
shows, from :meth:`relu_probe.TrainingMonitor.gate_stability` (an analysis'
``monitor_stability``), when that assumption starts to hold at each site.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import figures as figs
from .labels import site_labels
from .markup import esc, img, num, site_cell, table

__all__ = ["stability_section", "stability_rows"]


def stability_rows(stability: Any) -> list[dict[str, Any]]:
    """One record per site of a ``monitor_stability`` Dataset (dims ``step``, ``site``): its
    name, stable step (``None`` when not stable), and the last snapshot pair's flip fraction,
    chance flip fraction and their ratio (NaN when the chance level is 0)."""
    flips = stability["flip_fraction"].transpose("step", "site").values
    chance = stability["chance_flip_fraction"].transpose("step", "site").values
    stable = stability["stable_step"].values
    out = []
    for i, site in enumerate(stability["site"].values.tolist()):
        last, last_chance = float(flips[-1, i]), float(chance[-1, i])
        out.append({
            "site": str(site),
            "stable_step": None if not np.isfinite(stable[i]) else int(stable[i]),
            "flip_fraction": last,
            "chance_flip_fraction": last_chance,
            "ratio": last / last_chance if last_chance > 0 else float("nan"),
        })
    return out


def stability_section(res: Any, options: dict[str, Any]) -> str:
    r"""The flip fraction of every site over training against its chance level (figure), and
    each site's stable step (table); ``""`` without ``monitor_stability``.

    For consecutive snapshots :math:`t_{k-1}, t_k` the flip fraction of a site is
    :math:`f_k = \frac{1}{|X||U|}\sum_{x,u} [g_u(x, t_k) \ne g_u(x, t_{k-1})]` over the probe
    samples :math:`X` and its units :math:`U`; the chance level :math:`c_k` is the flip
    fraction of gates re-drawn independently at each unit's on-rates; a site is stable from
    :math:`t_j` when :math:`f_k \le \text{tolerance} \cdot c_k` for every :math:`k > j`
    (:meth:`relu_probe.TrainingMonitor.gate_stability`).
    """
    stability = getattr(res, "monitor_stability", None)
    if stability is None or stability.sizes.get("step", 0) == 0 or stability.sizes.get("site", 0) == 0:
        return ""
    stability = stability.transpose("step", "site", ...)
    sites = [str(s) for s in stability["site"].values.tolist()]
    short = dict(zip(sites, site_labels(sites)))
    tolerance = float(stability.attrs.get("tolerance", np.nan))
    steps = np.asarray(stability["step"].values)
    records = stability_rows(stability)
    png = figs.gate_stability_png(steps, stability["flip_fraction"].values, stability["chance_flip_fraction"].values,
                                  [short[s] for s in sites], np.asarray(stability["stable_step"].values, float),
                                  tolerance=tolerance)
    n_stable = sum(r["stable_step"] is not None for r in records)
    out = ['<h2 id="stability">Gate stability</h2>',
           '<p class="caption">The ReLN assumes gates that do not change during learning (Jarvis et al., ICLR 2025). '
           "Here, for each site, the fraction of the probe set's gates that flipped between consecutive training "
           "snapshots, against the fraction that would flip if each unit's gates were re-drawn at random with the same "
           f"on-rates (chance). A site is stable from a step when every later snapshot flips at most {tolerance:g} × "
           f"chance. {n_stable} of {len(records)} sites are stable by step {int(steps[-1])}. Flips counted at steps "
           f"{esc(_steps_text(steps))}, each against the snapshot before.</p>",
           img(png, "gate flips over training, per site")]
    body = []
    for r in records:
        stable = ("not yet" if r["stable_step"] is None else f"step {r['stable_step']}")
        body.append(f"<tr><td>{site_cell(short[r['site']], r['site'])}</td><td>{esc(stable)}</td>"
                    f"{num(r['flip_fraction'], '{:.4f}')}{num(r['chance_flip_fraction'], '{:.4f}')}"
                    f"{num(r['ratio'], '{:.3f}')}</tr>")
    out.append(table(["site", "gates stable from", f"flipped at step {int(steps[-1])}", "chance",
                      "flipped / chance"], body, css="stability"))
    return "\n".join(out)


def _steps_text(steps: np.ndarray, limit: int = 8) -> str:
    """The snapshot steps compared, the first and last few when there are many."""
    values = [str(int(s)) for s in steps]
    if len(values) <= limit:
        return ", ".join(values)
    return ", ".join(values[:3]) + f", … ({len(values)} in all), " + ", ".join(values[-2:])
