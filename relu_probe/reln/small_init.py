r"""The default small initial scale of a GDLN / ReLN, relative to the data.

The theory of gated deep linear networks (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120;
Jarvis et al. 2025, arXiv 2503.06181) describes learning from a *small* initialisation, where
a pathway's modes start far below the strengths they reach. When neither a network nor an init
std is known, the initial mode strength of a pathway is taken relative to the structure in the
data:

.. math:: π_0 = ρ \, σ_1(M_{lin}), \qquad M_{lin} = \arg\min_M \lVert Y - X M \rVert_F

with ``ρ = DEFAULT_RELATIVE_INIT`` (``σ_1(M_lin) = 1`` when the best linear map is zero). For a
GDLN whose path from input to output crosses ``L`` weight matrices and whose pathways share a
hidden layer of ``H = Σ_p h_p`` units, every weight matrix gets the std

.. math:: σ = (2 π_0)^{1/L} / \sqrt{H}

so that each of the ``L`` factors contributes ``σ\sqrt H = (2π_0)^{1/L}``: for one hidden layer
(``L = 2``) the network, all pathways open, starts in the balanced mean state
``a_0 = b_0 = σ^2 H = 2 π_0`` whose modes grow like the paper's Eq. 1 from ``π_0``
(:meth:`relu_probe.reln.exact.MeanState.from_pi0`). The scale moves only where the plateaus
end (as ``ln π_0``), not what is learned; a user's own init (``init_scale=``, or the
network's via ``network=`` / ``init_std=``) replaces it. The paper's own
``0.005 / width`` is :data:`relu_probe.tasks.PAPER_INIT_GAIN`, used only when asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DEFAULT_RELATIVE_INIT", "default_pi0", "small_init_std"]

#: Default initial mode strength relative to the data's strongest linear mode,
#: ``π0 = DEFAULT_RELATIVE_INIT × σ_1(M_lin)``: six orders of magnitude below the structure to
#: learn, deep in the small-initialisation (rich) regime the theory describes. Measured on the
#: paper's 3-context task: the predicted structure moves by a total-variation distance
#: < 0.02 when this scale changes by six orders of magnitude (the loss curve's timing does
#: move, as ``ln π0``).
DEFAULT_RELATIVE_INIT = 1e-6


def default_pi0(X: np.ndarray, Y: Any = None) -> float:
    """``DEFAULT_RELATIVE_INIT × σ_1(M_lin)``: the default initial mode strength of a pathway
    reading every input (``M_lin`` the best linear map of the data; 1 when it is zero or
    ``Y`` is not known)."""
    if Y is None:
        return DEFAULT_RELATIVE_INIT
    coef = np.linalg.lstsq(np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64), rcond=None)[0]
    return DEFAULT_RELATIVE_INIT * (float(np.linalg.norm(coef, 2)) if np.any(coef) else 1.0)


def small_init_std(X: np.ndarray, Y: Any, hidden_width: int, n_weights: int) -> float:
    r"""The default std ``(2 π_0)^{1/L} / √H`` of every weight matrix (module docstring) for
    ``L = n_weights`` weight matrices on a path and ``H = hidden_width`` shared hidden units."""
    return float((2.0 * default_pi0(X, Y)) ** (1.0 / n_weights) / np.sqrt(hidden_width))
