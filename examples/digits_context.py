"""Contextual control on real data: one network, three tasks on the same handwritten digits.

scikit-learn's bundled digits (1797 images of 8×8 pixels, no download) are shown with a task
cue, as in the contextual tasks of Jarvis et al. (*Make Haste Slowly*, ICLR 2025):

* context ``parity``: is the digit even or odd?
* context ``magnitude``: is it below 5 or not?
* context ``mod 3``: what is the digit modulo 3?

Inputs are the 64 pixels (scaled to [0, 1]) followed by the one-hot cue. As in the paper, the
targets stack a context-independent block — the digit's identity, one-hot — and one block per
context, which holds that context's answer (one-hot) on the context's samples and zeros
elsewhere. Every image appears under all three cues, so ``rp.analyze(..., by="context",
within="image")`` uses the context-set decomposition: does the network keep one pathway per
task (strictly modular), share everything, or — like the paper's networks — reuse units
across pairs of tasks?

A ``TrainingMonitor`` measures the structure on a probe set every few epochs, and the report
(``OUT/digits_context/report.html``) shows the pathways, the gating profiles, the units, the
pixels and cues that drive each pathway (captum integrated gradients), and the structure over
training. The network is trained with Adam on minibatches, not by full-batch gradient descent,
so no ReLN is fitted (see ``examples/paper_tasks.py`` for the ReLN).

    python examples/digits_context.py            # ≈30 s on one CPU core
    python examples/digits_context.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import relu_probe as rp

CONTEXTS = ("parity", "magnitude", "mod 3")


def answers(digits: np.ndarray) -> list[np.ndarray]:
    """The answer of every context (class index) for each digit."""
    return [digits % 2, (digits >= 5).astype(int), digits % 3]


def contextual_digits(images: np.ndarray, digits: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Every image under every cue: inputs (pixels, cue), targets (identity block, one block
    per context), and coords ``context`` (name), ``image`` (index) and ``digit``."""
    n, k = len(images), len(CONTEXTS)
    sizes = [2, 2, 3]
    pixels = np.tile(images, (k, 1))
    context = np.repeat(np.arange(k), n)
    X = np.concatenate([pixels, np.eye(k)[context]], axis=1)
    blocks = [np.tile(np.eye(10)[digits], (k, 1))]
    for c, (size, answer) in enumerate(zip(sizes, answers(digits))):
        block = np.zeros((n * k, size))
        rows = context == c
        block[rows] = np.eye(size)[np.tile(answer, k)[rows]]
        blocks.append(block)
    Y = np.concatenate(blocks, axis=1)
    coords = {"context": np.array(CONTEXTS, dtype=object)[context], "image": np.tile(np.arange(n), k),
              "digit": np.tile(digits, k)}
    return torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32), coords


def build_model(hidden: int = 128) -> nn.Module:
    return nn.Sequential(nn.Linear(64 + len(CONTEXTS), hidden), nn.ReLU(), nn.Linear(hidden, 17))


def accuracy(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, coords: dict) -> dict[str, float]:
    """Per-context accuracy of the context's own answer block."""
    with torch.no_grad():
        out = model(X)
    starts = [10, 12, 14, 17]
    acc = {}
    for c, name in enumerate(CONTEXTS):
        rows = coords["context"] == name
        block = slice(starts[c], starts[c + 1])
        acc[name] = float((out[rows, block].argmax(1) == Y[rows, block].argmax(1)).float().mean())
    return acc


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports", help="output folder (default ./reports)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 images, 8 epochs")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    data = load_digits()
    images, digits = data.data / 16.0, data.target
    order = rng.permutation(len(images))
    if args.quick:
        order = order[:300]
    split = int(0.8 * len(order))
    train_idx, test_idx = order[:split], order[split:]
    X, Y, _ = contextual_digits(images[train_idx], digits[train_idx])
    Xt, Yt, ct = contextual_digits(images[test_idx], digits[test_idx])
    epochs = 8 if args.quick else args.epochs

    model = build_model(args.hidden)
    # the structure is measured on the held-out images while the network learns
    monitor = rp.TrainingMonitor(model, Xt, coords=ct, every=max(1, epochs // 12), by="context", within="image")
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        monitor.update(epoch)
        for batch in torch.randperm(len(X)).split(128):
            optimiser.zero_grad()
            loss = 0.5 * ((model(X[batch]) - Y[batch]) ** 2).sum(1).mean()
            loss.backward()
            optimiser.step()
    monitor.snapshot(epochs)  # the trained network
    acc = accuracy(model, Xt, Yt, ct)
    print("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))

    names = [f"pixel ({r},{c})" for r in range(8) for c in range(8)] + [f"cue: {name}" for name in CONTEXTS]
    res = rp.analyze(model, Xt, coords=ct, by="context", within="image", feature_names=names, monitor=monitor,
                     literature=not args.quick,
                     title=f"Digits under three task cues ({args.hidden} hidden units, {epochs} epochs)")
    print(res)
    out = Path(args.out) / "digits_context"
    res.save(out / "analysis", overwrite=True)
    report = res.to_html(out / "report.html")
    print(report)
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small network: one thread is fastest, and shares a busy CPU best
    main()
