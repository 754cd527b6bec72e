"""The loss convention of a user's training loop, read off the losses it logged.

A learning rate means something only with the loss it descends: on the summed loss
``½ Σ ‖y − f(x)‖²`` of full-batch gradient descent (the ReLN's, Jarvis et al. 2025,
arXiv 2503.06181) or on one reduced by a mean (torch's ``MSELoss()``: ``c = 2 / (P m)`` times
the summed loss for ``P`` samples of ``m`` outputs), which runs ``1/c`` times slower at the
same rate. :func:`training_loss_factor` finds ``c`` from the losses a training monitor kept
(:func:`relu_probe.reln.dynamics.loss_convention`), and :func:`replay_clause` says whether
full-batch gradient descent from the untrained network reproduces them
(:func:`relu_probe.reln.dynamics.replays_gradient_descent`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._util.arrays import as_2d_float
from ..errors import ValueInputError
from ..recording.model import preserved_state, unwrap_model
from .dynamics import loss_convention, model_outputs, replays_gradient_descent

__all__ = ["replay_clause", "trained_and_initial_outputs", "training_loss_factor"]


def trained_and_initial_outputs(model: Any, initial: Any, X_t: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """``f(X)`` of the trained *model* and of the *initial* one (None without it), the model left as it was."""
    with preserved_state(unwrap_model(model), eval_mode=True):
        return model_outputs(unwrap_model(model), X_t), None if initial is None else model_outputs(initial, X_t)


def replay_clause(initial: Any, X_t: torch.Tensor, Yn: np.ndarray, values: np.ndarray, steps: Any, *,
                  lr: float | None, factor: float) -> tuple[bool | None, str]:
    """Whether full-batch gradient descent at *lr* from *initial* reproduces the logged losses
    (:func:`relu_probe.reln.dynamics.replays_gradient_descent`), and a clause saying so."""
    assumed = ("; taken as full-batch gradient descent, which is not checked: minibatches, momentum or Adam "
               "would make an epoch-by-epoch comparison meaningless")
    if initial is None:
        return None, (f"; the loop itself was not replayed (no untrained copy of the network: pass `init_network=`, "
                      f"or a TrainingMonitor that saw step 0){assumed}")
    if lr is None:
        return None, f"; the loop itself was not replayed (no `lr`){assumed}"
    try:
        r = replays_gradient_descent(initial, X_t, Yn, values, lr=lr, factor=factor, steps=steps)
    except (RuntimeError, TypeError, ValueError) as exc:
        return None, f"; the first steps could not be replayed ({' '.join(str(exc).split())}){assumed}"
    if r["reproduced"] is None:
        return None, ("; the loop itself could not be replayed (no logged step early enough, or too slow to replay "
                      f"within its budget){assumed}")
    where = f"step {r['checked'][0]}" if len(r["checked"]) == 1 else f"steps {r['checked'][0]}–{r['checked'][-1]}"
    if r["reproduced"]:
        return True, f"; full-batch gradient descent at lr {lr:g} from the untrained network reproduces its {where}"
    return False, (f"; but full-batch gradient descent at lr {lr:g} from the untrained network does not reproduce "
                   f"its {where} (off by up to {100 * r['worst']:.3g} %): the loop was not plain full-batch gradient "
                   "descent (momentum or Adam, minibatches, weight decay or dropout)")


def training_loss_factor(model: Any, monitor: Any, X_t: torch.Tensor | None, Y: Any, n_samples: int, *,
                         lr: float, epochs: int | None, notes: list[str], initial: Any = None) -> tuple[float, bool]:
    """The factor ``c`` of the training loss's convention when no loss curve is given: read off
    the losses a training monitor kept at its snapshots (checked like a curve against the
    trained model and the monitor's step-0 copy, :func:`relu_probe.reln.dynamics.loss_convention`),
    else 1 (the summed loss) with a note saying that it could not be checked.

    Returns ``(c, confirmed)``: *confirmed* is False when the losses could not be checked or
    match no convention of full-batch gradient descent (then ``c = 1``; the note says why)."""
    losses = monitor.losses().dropna() if callable(getattr(monitor, "losses", None)) else None
    unchecked = (f"the learning rate {lr:g} is taken as a rate on the summed loss ½Σ‖y − f(x)‖² of full-batch "
                 "gradient descent")
    how = ("for a loss reduced by a mean (e.g. torch's `MSELoss()`, c = 2/(P·m) for P samples of m outputs) "
           "pass `lr` × c, or the predictions run 1/c times too fast")
    if losses is None or losses.size < 2:
        source = ("the training monitor kept fewer than two losses (pass `loss=` to its `update`)"
                  if losses is not None else "no loss values were given (`loss_curve=` or a training monitor)")
        notes.append(f"loss convention not checked: {source}; {unchecked}; {how}")
        return 1.0, False
    if model is None or X_t is None:
        notes.append(f"loss convention not checked (no model and input tensor given); {unchecked}; {how}")
        return 1.0, False
    Yn = as_2d_float("Y", Y, n_rows=n_samples)
    steps = losses.index.to_numpy()
    final_step = max(int(steps[-1]), epochs - 1) if epochs is not None else None
    try:
        out, first = trained_and_initial_outputs(model, initial, X_t)
        conv = loss_convention(losses.to_numpy(), Yn, out, initial_outputs=first, steps=steps, final_step=final_step)
    except (ValueInputError, RuntimeError, TypeError) as exc:
        notes.append(f"loss convention not checked ({' '.join(str(exc).split())}); {unchecked}; {how}")
        return 1.0, False
    seen = f"the training monitor's losses at {losses.size} snapshots ({conv['checked']} checked against the model)"
    if conv["convention"] is None:
        notes.append(
            f"loss convention: {seen} match none of the conventions of full-batch gradient descent (the last, "
            f"{conv['last']:.4g}, against ½Σ‖y − f(x)‖² = {conv['summed_end']:.4g} of the model; minibatches, "
            f"momentum or Adam, weight decay or another loss change the dynamics); {unchecked}, and the "
            "predictions' epochs need not correspond to the training's steps"
        )
        return 1.0, False
    replayed, clause = replay_clause(initial, X_t, Yn, losses.to_numpy(), steps, lr=lr, factor=float(conv["factor"]))
    if replayed is False:
        notes.append(f"loss convention: {seen} are {conv['description']}{clause}; {unchecked}, and the "
                     "predictions' epochs need not correspond to the training's steps")
        return 1.0, False
    if conv["convention"] == "sum":
        notes.append(f"loss convention: {seen} are the summed ½Σ‖y − f(x)‖²{clause}")
    else:
        notes.append(
            f"loss convention: {seen} are {conv['description']} = {conv['factor']:.4g} × the summed "
            f"½Σ‖y − f(x)‖²{clause}; the ReLN and predictions run on the summed loss at {conv['factor']:.4g} × lr "
            "(the time scale τ = 1/(lr·P) rescaled)"
        )
    return float(conv["factor"]), True
