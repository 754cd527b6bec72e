"""The report's predicted-structure section: the pathway masses
:func:`relu_probe.predict_structure` predicts from the data and the network's initial state,
before any training, against the masses measured on the trained network (an analysis'
``structure``), and their total-variation distance over training (``monitor_structure``,
from :meth:`relu_probe.TrainingMonitor.structure_over_time`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import figures as figs
from .markup import esc, img, num, table

__all__ = ["structure_section"]


def structure_section(res: Any, options: dict[str, Any]) -> str:
    """Predicted (before training) against measured structure, and TV over training
    (``""`` when the analysis holds neither)."""
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
        rows = [f"<tr><td>{esc(labels[i])}</td>{num(st['predicted'].values[i])}{num(st['measured'].values[i])}"
                f"{num(st['difference'].values[i])}</tr>" for i in order]
        out.append(table(["context set", "predicted", "measured", "difference"], rows))
        out.append(img(figs.structure_bars_png([labels[i] for i in order], st["predicted"].values[order],
                                               st["measured"].values[order]), "predicted and measured structure"))
    if over is not None:
        steps = np.asarray(over["step"].values, dtype=np.float64)
        out.append(img(figs.tv_over_training_png(steps, np.asarray(over["tv"].values, dtype=np.float64)),
                       "predicted vs measured structure over training"))
        out.append('<p class="caption">Total-variation distance between the predicted structure at each training '
                   "step and the structure measured at that snapshot (undefined before any predicted pathway has "
                   "grown).</p>")
    return "\n".join(out)
