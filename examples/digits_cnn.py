"""A small convolutional network on scikit-learn's digits, analysed per channel.

``Conv(1→8) → ReLU → Conv(8→16) → ReLU → global average pool → Linear(16→10)`` on the 8×8
digit images (bundled with scikit-learn, no download). With ``units="channel"`` every conv
channel is one unit whose gate is the fraction of its positions that are on (``gate_rate``),
so the pathways group *channels* by the digits they respond to. Digits do not repeat across
classes, so :func:`relu_probe.find_pathways` clusters the channels' gating profiles
P(on | digit) (``method="profiles"``). The second conv layer's output is pooled before its
readout, so importance falls back to the channels' mean activity.

The report (``OUT/digits_cnn/report.html``) shows the channel pathways, their gating
profiles over digits, and for each pathway the pixels that drive it (captum integrated
gradients, drawn as 8×8 maps).

    python examples/digits_cnn.py             # ≈20 s on one CPU core
    python examples/digits_cnn.py --quick     # a smoke run
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


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 8 × 4 × 4
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16 × 2 × 2
        nn.Conv2d(16, 32, 2), nn.ReLU(),                              # 32 × 1 × 1
        nn.Flatten(), nn.Linear(32, 10),
    )


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports", help="output folder (default ./reports)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 400 images, 3 epochs")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (n, 1, 8, 8)
    labels = torch.tensor(data.target)
    order = rng.permutation(len(images))[: 400 if args.quick else None]
    split = int(0.8 * len(order))
    train, test = torch.as_tensor(order[:split]), torch.as_tensor(order[split:])
    epochs = 3 if args.quick else args.epochs

    model = build_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        acc = float((model(images[test]).argmax(1) == labels[test]).float().mean())
    print(f"held-out accuracy {acc:.3f} after {epochs} epochs")

    names = [f"pixel ({r},{c})" for r in range(8) for c in range(8)]
    res = rp.analyze(model, images[test], coords={"digit": labels[test].numpy()}, by="digit", units="channel",
                     feature_names=names, title=f"Digits CNN, per-channel units (held-out accuracy {acc:.2f})")
    print(res)
    out = Path(args.out) / "digits_cnn"
    res.save(out / "analysis", overwrite=True)
    report = res.to_html(out / "report.html")
    print(report)
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small network: one thread is fastest, and shares a busy CPU best
    main()
