"""The contextual tasks of Jarvis et al. (*Make Haste Slowly*, ICLR 2025) and their networks.

The data follow the authors' generators (``gen_data.py``): ``n`` objects presented in ``k``
contexts, ``P = n·k`` samples ordered context-major (sample ``j`` is object ``j mod n`` in
context ``j // n``). Inputs are ``[object one-hot ; context one-hot × scale]``; targets stack
``k + 1`` blocks of the object hierarchy ``H``: block 0 is context-independent, block ``c``
holds context ``c``'s structure on context-``c`` samples and zeros elsewhere.

Unlike the paper's code (features × samples), arrays here are **sample-major** as PyTorch
expects: ``X`` has shape ``(P, n + k)`` and ``Y`` shape ``(P, (2n - 1)(k + 1))``.

Every constant of the paper lives here, named (Jarvis, Klein, Rosman & Saxe, arXiv 2503.06181,
and the authors' released code): widths, initial scales, learning rate, epochs and the
closed-form initial strengths. relu_probe uses them as defaults only where the public API
has always documented the paper's value (``epochs=8001``, ``lr=1e-3``, the ReLN's
initialisation); every other default comes from the network analysed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ._util.checks import check_choice, check_int, check_real
from ._util.progress import progress_bar
from .errors import ValueInputError

__all__ = [
    "ContextualTask",
    "contextual_task",
    "hierarchy",
    "ring_structure",
    "cross_structure",
    "paper_network",
    "paper_hyperparameters",
    "train_full_batch",
    "CONTEXT_SCALE",
    "PAPER_WIDTH",
    "PAPER_EPOCHS",
    "PAPER_LR",
    "PAPER_INIT_GAIN",
    "PAPER_DEEP",
    "PAPER_INIT_SCALE",
    "PAPER_CLOSED_FORM_PI0",
]

#: Context-input scale used by the authors' generators (1.0 for any other k).
CONTEXT_SCALE = {3: 1.0, 4: 1.1, 5: 1.35}

#: Hidden width of the one-hidden-layer networks in the paper, per number of contexts.
PAPER_WIDTH = {3: 700, 4: 500, 5: 600}

#: Full-batch gradient steps of the paper's one-hidden-layer runs.
PAPER_EPOCHS = 8001

#: Learning rate of every run in the paper (summed squared loss, full batch).
PAPER_LR = 1e-3

#: The paper initialises weights with std ``PAPER_INIT_GAIN / width`` (0.005 / width).
PAPER_INIT_GAIN = 0.005

#: The paper's two-hidden-layer runs: width, initial weight std and epochs.
PAPER_DEEP: dict[str, float | int] = {"width": 420, "init_std": 0.0006, "epochs": 30001}

#: The paper's ReLN initialisation (``gdln3.py``): weight std 10 × 0.0005/700 for the shared
#: pathway and 20 × 0.0005/700 for the context pathways, 100 hidden units each.
PAPER_INIT_SCALE: dict[str, float] = {"shared": PAPER_INIT_GAIN / 700, "context": 2 * PAPER_INIT_GAIN / 700}

#: Initial mode strengths ``π0`` of the paper's closed-form scripts (``closed3/4/5.py``), per
#: number of contexts: ``rp.analyze(..., closed_form_init=PAPER_CLOSED_FORM_PI0[k])``
#: reproduces the paper's closed-form curve on its tasks.
PAPER_CLOSED_FORM_PI0: dict[int, dict[str, float]] = {
    3: {"shared": 5e-9, "context": 5e-5},
    4: {"shared": 1e-8, "context": 1e-4},
    5: {"shared": 1e-9, "context": 3e-4},
}


class ContextualTask(NamedTuple):
    """A contextual task: unpacks as ``X, Y, coords``.

    Attributes
    ----------
    X : torch.Tensor, shape (P, n_objects + n_contexts), float64
        Object one-hot followed by the (scaled) context one-hot.
    Y : torch.Tensor, shape (P, (2 n_objects - 1)(n_contexts + 1)), float64
        Context-independent block followed by one block per context.
    coords : dict of str to numpy.ndarray
        Per-sample labels ``context`` and ``object`` (0-based ints), ready for
        ``rp.record(..., coords=coords)``.
    """

    X: torch.Tensor
    Y: torch.Tensor
    coords: dict[str, np.ndarray]


def hierarchy(n_objects: int = 8) -> np.ndarray:
    """The binary-tree feature matrix ``H`` of Saxe et al. (2019), shape ``(2n - 1, n)``.

    Row 0 marks all items, the next 2 rows the two halves, then 4 quarters, …, and the last
    ``n`` rows are the identity. For ``n = 8`` the squared singular values are
    15, 7, 3, 3, 1, 1, 1, 1.
    """
    n = check_int("n_objects", n_objects, minimum=2)
    if n & (n - 1):
        raise ValueInputError(f"`n_objects` must be a power of two for the hierarchy, got {n}.")
    rows = []
    group = n
    while group >= 1:
        for start in range(0, n, group):
            row = np.zeros(n)
            row[start : start + group] = 1.0
            rows.append(row)
        group //= 2
    return np.array(rows)


def ring_structure() -> np.ndarray:
    """The "ring" block of the diff task (context 2), shape ``(15, 8)``.

    Row 0 is all ones, rows 1–8 are the eight cyclic shifts of the bump
    ``(0, .33, .66, 1, 1, .66, .33, 0)`` and rows 9–14 repeat rows 1–6: a circular
    similarity structure over the objects.
    """
    bump = np.array([0.0, 0.33, 0.66, 1.0, 1.0, 0.66, 0.33, 0.0])
    shifts = [np.roll(bump, i) for i in range(8)]
    return np.vstack([np.ones(8)] + shifts + shifts[:6])


def cross_structure() -> np.ndarray:
    """The "cross" block of the diff task (context 3): ``H`` with rows 3–6 pairing objects
    (1,3), (2,4), (5,7), (6,8) instead of (1,2), (3,4), (5,6), (7,8)."""
    h = hierarchy(8)
    for row, pair in zip(range(3, 7), [(0, 2), (1, 3), (4, 6), (5, 7)]):
        h[row] = 0.0
        h[row, list(pair)] = 1.0
    return h


def contextual_task(
    n_contexts: int = 3,
    n_objects: int = 8,
    variant: str = "hierarchy",
    *,
    context_scale: float | None = None,
) -> ContextualTask:
    """Build the paper's contextual task.

    Parameters
    ----------
    n_contexts : int, default=3
        Number of contexts ``k`` (the paper uses 3, 4 and 5).
    n_objects : int, default=8
        Number of objects ``n`` (a power of two; the "diff" variant needs 8).
    variant : {"hierarchy", "diff"}, default="hierarchy"
        ``"hierarchy"``: every context block is ``H`` (folder ``diff_context_num``).
        ``"diff"``: three contexts with different structures ``H``, ring, cross
        (folder ``3_context_diff``).
    context_scale : float, optional
        Multiplier of the context one-hot. Default: the paper's 1.1 for k = 4, 1.35 for
        k = 5, 1.0 otherwise.

    Returns
    -------
    ContextualTask
        ``X, Y, coords`` — see :class:`ContextualTask`.

    Examples
    --------
    >>> X, Y, coords = contextual_task(3)
    >>> tuple(X.shape), tuple(Y.shape)
    ((24, 11), (24, 60))
    >>> float(0.5 * (Y ** 2).sum())       # loss of the zero output, L0
    96.0
    """
    k = check_int("n_contexts", n_contexts, minimum=1)
    n = check_int("n_objects", n_objects, minimum=2)
    check_choice("variant", variant, ["hierarchy", "diff"])
    if variant == "diff" and (k != 3 or n != 8):
        raise ValueInputError(
            "`variant='diff'` is defined for n_contexts=3 and n_objects=8 (H, ring, cross); "
            f"got n_contexts={k}, n_objects={n}."
        )
    scale = CONTEXT_SCALE.get(k, 1.0) if context_scale is None else check_real(
        "context_scale", context_scale, minimum=0.0, strict=True
    )
    h = hierarchy(n)
    blocks = [h, ring_structure(), cross_structure()] if variant == "diff" else [h] * k
    n_rows = h.shape[0]
    P = n * k
    X = np.zeros((P, n + k))
    Y = np.zeros((P, n_rows * (k + 1)))
    context = np.repeat(np.arange(k), n)
    obj = np.tile(np.arange(n), k)
    X[np.arange(P), obj] = 1.0
    X[np.arange(P), n + context] = scale
    Y[:, :n_rows] = h[:, obj].T
    for c in range(k):
        rows = slice(n_rows * (c + 1), n_rows * (c + 2))
        in_c = context == c
        Y[in_c, rows] = blocks[c][:, obj[in_c]].T
    coords = {"context": context, "object": obj}
    return ContextualTask(torch.from_numpy(X), torch.from_numpy(Y), coords)


def paper_hyperparameters(n_contexts: int = 3, depth: int = 1) -> dict[str, float | int]:
    """The paper's training settings for a task (arXiv 2503.06181, and the authors' code).

    Returns a dict with ``width``, ``init_std``, ``lr`` and ``epochs``. One hidden layer:
    width 700 / 500 / 600 for k = 3 / 4 / 5 (700 otherwise), ``init_std = 0.005 / width``,
    8001 epochs. Two hidden layers: width 420, ``init_std = 0.0006``, 30001 epochs.
    Learning rate 1e-3 throughout (summed squared loss, full batch).
    """
    k = check_int("n_contexts", n_contexts, minimum=1)
    check_choice("depth", depth, [1, 2])
    if depth == 2:
        return {"width": PAPER_DEEP["width"], "init_std": PAPER_DEEP["init_std"], "lr": PAPER_LR,
                "epochs": PAPER_DEEP["epochs"]}
    width = PAPER_WIDTH.get(k, 700)
    return {"width": width, "init_std": PAPER_INIT_GAIN / width, "lr": PAPER_LR, "epochs": PAPER_EPOCHS}


def paper_network(
    n_contexts: int = 3,
    n_objects: int = 8,
    *,
    depth: int = 1,
    width: int | None = None,
    init_std: float | None = None,
    seed: int | None = 0,
    dtype: torch.dtype = torch.float64,
    bias: bool = False,
    activation: Callable[[], nn.Module] | None = None,
) -> nn.Sequential:
    """The paper's bias-free ReLU network for a contextual task.

    ``depth=1``: ``Linear(n+k, width) → ReLU → Linear(width, out)``; ``depth=2`` adds a
    second ``Linear → ReLU``. Weights are drawn from ``N(0, init_std²)``; defaults from
    :func:`paper_hyperparameters`.

    ``bias=True`` gives every Linear a bias, initialised to zero (the weights are drawn
    exactly as without biases, so the two networks start from the same weights); the paper's
    networks have none. ``activation`` makes the nonlinearity another module (e.g.
    ``lambda: nn.LeakyReLU(0.1)``); default ``nn.ReLU``.
    """
    k = check_int("n_contexts", n_contexts, minimum=1)
    n = check_int("n_objects", n_objects, minimum=2)
    hp = paper_hyperparameters(k, depth)
    width = int(hp["width"]) if width is None else check_int("width", width, minimum=1)
    std = float(hp["init_std"]) if init_std is None else check_real("init_std", init_std, minimum=0.0)
    n_in, n_out = n + k, (2 * n - 1) * (k + 1)
    sizes = [n_in] + [width] * depth + [n_out]
    layers: list[nn.Module] = []
    if not isinstance(bias, (bool, np.bool_)):
        raise ValueInputError(f"`bias` must be True or False, got {bias!r}.")
    make_activation = nn.ReLU if activation is None else activation
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bool(bias)))
        if i < depth:
            act = make_activation()
            if not isinstance(act, nn.Module):
                raise ValueInputError(f"`activation` must build a torch.nn.Module, got {type(act).__name__}.")
            layers.append(act)
    model = nn.Sequential(*layers).to(dtype)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, std, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return model


def train_full_batch(
    model: nn.Module,
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    lr: float = PAPER_LR,
    epochs: int = PAPER_EPOCHS,
    callback: Callable[[int, float], None] | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Train *model* by full-batch gradient descent on the summed squared loss.

    ``L = ½ Σ_μ ‖ŷ_μ − y_μ‖²`` (summed over samples and outputs, as in the paper) with plain
    gradient descent ``W ← W − lr ∇L``.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place.
    X, Y : torch.Tensor
        Inputs ``(P, n_in)`` and targets ``(P, n_out)``.
    lr : float, default=1e-3
    epochs : int, default=8001
        Number of gradient steps.
    callback : callable, optional
        ``callback(epoch, loss)`` at each epoch, before its update, so the model holds the
        weights that produced ``loss`` (e.g. a ``TrainingMonitor.update``).
    progress : bool, optional
        Show a tqdm bar (default: only on a terminal).

    Returns
    -------
    numpy.ndarray, shape (epochs,)
        ``loss[e]`` is the loss of the forward pass of epoch ``e``, before its update, so
        ``loss[0]`` is the loss at initialisation.
    """
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    epochs = check_int("epochs", epochs, minimum=1)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueInputError("`model` has no trainable parameters to train.")
    losses = np.empty(epochs)
    model.train()
    for epoch in progress_bar(range(epochs), enabled=progress, desc="training", total=epochs):
        for p in params:
            p.grad = None
        loss = 0.5 * ((model(X) - Y) ** 2).sum()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ValueInputError(
                f"training diverged: loss is {value} at epoch {epoch}; lower `lr` (got {lr})."
            )
        losses[epoch] = value
        if callback is not None:  # before the update: the weights that produced this loss
            callback(epoch, value)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)
    for p in params:
        p.grad = None
    return losses
