"""An image task built locally: scikit-learn's handwritten digits, enlarged, under task cues.

scikit-learn ships the UCI optical-digits images (1797 images of 8×8 pixels, 16 grey
levels; ``sklearn.datasets.load_digits``), so no download is needed. Each image is enlarged
by nearest-neighbour repetition (every pixel becomes a ``scale × scale`` block), centred on
a black canvas, and copied into the three channels of an RGB image so that RGB models
(torchvision's layout included) take it as it is.

With *contexts*, every image appears once under every context, as in the contextual tasks of
Jarvis et al. (*Make Haste Slowly*, ICLR 2025, arXiv 2503.06181): the context is cued by a
coloured frame around the canvas, and the answer the network must give depends on it
(:data:`DIGIT_RULES`). Samples carry the coords ``context`` (its name), ``image`` (the
image's index in scikit-learn's set, the item that repeats across contexts) and ``digit``,
ready for ``rp.find_pathways(ds, by="context", within="image")``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._util.checks import check_int
from ..errors import ValueInputError

__all__ = ["DIGIT_RULES", "FRAME_COLOURS", "ImageTask", "digit_images", "fit_classifier", "accuracy"]

#: Per context: the answer to digits ``d`` (class index within the context) and the classes' names.
DIGIT_RULES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...]]] = {
    "parity": (lambda d: d % 2, ("even", "odd")),
    "magnitude": (lambda d: (d >= 5).astype(np.int64), ("0-4", "5-9")),
    "mod 3": (lambda d: d % 3, ("0", "1", "2")),
    "identity": (lambda d: d, tuple(str(d) for d in range(10))),
}

#: RGB colour of the frame that cues context *i* (pure primaries first, then mixtures).
FRAME_COLOURS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0))


class ImageTask(NamedTuple):
    """Images, labels and per-sample coords of :func:`digit_images`.

    Attributes
    ----------
    images : torch.Tensor, shape (n, 3, size, size), float32
        Pixel values in [0, 1] (the digit's grey level in all three channels, the frame in
        its colour).
    labels : torch.Tensor, shape (n,), int64
        Class index into :attr:`classes`.
    coords : dict of str to numpy.ndarray
        ``digit`` and ``image`` always; ``context`` with contexts.
    classes : tuple of str
        One name per output class: ``"digit 3"``, or ``"<context>: <answer>"`` with contexts
        (the classes of every context, one after another, e.g. ``"parity: odd"``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    coords: dict[str, np.ndarray]
    classes: tuple[str, ...]


def digit_images(
    contexts: Sequence[str] | None = ("parity", "magnitude", "mod 3"),
    *,
    scale: int = 3,
    border: int = 4,
    frame: int = 2,
    n_images: int | None = None,
    seed: int = 0,
) -> ImageTask:
    """scikit-learn's digits as RGB images, optionally under context cues (module docstring).

    Parameters
    ----------
    contexts : sequence of str or None, default=("parity", "magnitude", "mod 3")
        Names from :data:`DIGIT_RULES` (at most 6, one frame colour each). ``None``: plain
        10-way digit classification, no frame, one sample per image.
    scale : int, default=3
        Every 8×8 pixel becomes a ``scale × scale`` block.
    border : int, default=4
        Black margin around the enlarged digit; the image side is ``8 * scale + 2 * border``
        (32 by default).
    frame : int, default=2
        Width of the coloured cue frame, drawn in the outer pixels of the margin
        (``0 < frame <= border``; ignored without contexts).
    n_images : int, optional
        Use only this many images, drawn without replacement with *seed* (default all 1797).
    seed : int, default=0

    Returns
    -------
    ImageTask
        With contexts, sample ``j`` shows image ``j mod n`` under context ``j // n``
        (context-major), and its label is ``offset(context) + answer``.
    """
    from sklearn.datasets import load_digits

    scale = check_int("scale", scale, minimum=1)
    border = check_int("border", border, minimum=0)
    names = None if contexts is None else [str(c) for c in contexts]
    if names is not None:
        unknown = [c for c in names if c not in DIGIT_RULES]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueInputError(
                f"`contexts` must be distinct names from {sorted(DIGIT_RULES)} (or None), got {list(contexts)!r}."
            )
        if len(names) > len(FRAME_COLOURS):
            raise ValueInputError(f"`contexts` takes at most {len(FRAME_COLOURS)} contexts, got {len(names)}.")
        frame = check_int("frame", frame, minimum=1)
        if frame > border:
            raise ValueInputError(f"`frame` ({frame}) must be at most `border` ({border}) so it cannot cover the digit.")
    data = load_digits()
    index = np.arange(len(data.target))
    if n_images is not None:
        n_images = check_int("n_images", n_images, minimum=1)
        if n_images > len(index):
            raise ValueInputError(f"`n_images` must be at most {len(index)} (the digits available), got {n_images}.")
        index = np.sort(np.random.default_rng(seed).choice(index, n_images, replace=False))
    digits = data.target[index].astype(np.int64)
    grey = (data.images[index] / 16.0).astype(np.float32)
    enlarged = np.kron(grey, np.ones((scale, scale), dtype=np.float32))
    side = 8 * scale + 2 * border
    canvas = np.zeros((len(index), side, side), dtype=np.float32)
    canvas[:, border : border + 8 * scale, border : border + 8 * scale] = enlarged
    rgb = np.repeat(canvas[:, None], 3, axis=1)
    if names is None:
        coords = {"digit": digits, "image": index.astype(np.int64)}
        classes = tuple(f"digit {d}" for d in range(10))
        return ImageTask(torch.from_numpy(rgb), torch.from_numpy(digits), coords, classes)
    ring = np.ones((side, side), dtype=bool)
    ring[frame : side - frame, frame : side - frame] = False
    images, labels, classes = [], [], []
    offset = 0
    for c, name in enumerate(names):
        rule, answers = DIGIT_RULES[name]
        framed = rgb.copy()
        for channel, value in enumerate(FRAME_COLOURS[c]):
            framed[:, channel, ring] = value
        images.append(framed)
        labels.append(offset + rule(digits))
        classes += [f"{name}: {answer}" for answer in answers]
        offset += len(answers)
    n = len(index)
    coords = {
        "context": np.array(names, dtype=object)[np.repeat(np.arange(len(names)), n)],
        "image": np.tile(index.astype(np.int64), len(names)),
        "digit": np.tile(digits, len(names)),
    }
    return ImageTask(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
                     coords, tuple(classes))


def fit_classifier(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[float]:
    """Train *model* with Adam on the cross-entropy of ``model(inputs)`` against *labels*.

    Minibatches are drawn without replacement each epoch from a generator seeded with
    *seed*. The model is left in eval mode. Returns the mean training loss of each epoch.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if len(inputs) != len(labels):
        raise ValueInputError(f"`inputs` has {len(inputs)} samples but `labels` has {len(labels)}.")
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(inputs), generator=generator).split(batch_size):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(inputs))
    model.eval()
    return losses


def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256) -> float:
    """Fraction of *inputs* whose arg-max output is the label (eval mode, no autograd;
    the model's mode is restored)."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            predicted = torch.cat([model(b).argmax(1) for b in inputs.split(batch_size)])
    finally:
        model.train(training)
    return float((predicted == labels).float().mean())
