"""A ResNet-18 on three tasks over the same digit images: which channels does each stage share?

The network is :func:`relu_probe.testing.resnet18` — He et al.'s ResNet-18 (arXiv 1512.03385)
in torchvision's module layout, whose ``BasicBlock`` calls ONE ``nn.ReLU`` twice, so its 9
ReLU modules make 17 recording sites (``layer1.0.relu#0``, ``layer1.0.relu#1``, …); it is
torchvision's own ``resnet18`` when torchvision imports and ``--torchvision`` is given. The
task, :func:`relu_probe.testing.digit_images`, is built here from scikit-learn's bundled
handwritten digits (no download): every 8×8 digit is enlarged onto a 32×32 RGB canvas and
shown three times, with a coloured frame that cues the task — red: is the digit odd?
green: is it 5 or more? blue: what is it modulo 3? — as in the contextual tasks of Jarvis et
al. (*Make Haste Slowly*, ICLR 2025).

After brief training, ``rp.analyze(..., by="context", within="image", units="channel")``
records every conv channel of every site (the fraction of its positions that are on), finds
the pathways of each site — which channels serve all three tasks, which two, which one —
and scores them per site; the report's layer summary shows how sharing changes from the
stem to ``layer4``. The report is ``OUT/resnet_digits/report.html``.

    python examples/resnet_digits.py                  # ≈20 s on one CPU core
    python examples/resnet_digits.py --quick          # a smoke run
    python examples/resnet_digits.py --export saved/  # also write files for the CLI:
    relu-probe analyze --model examples/resnet_digits.py:build_model --weights saved/weights.pt \\
        --inputs saved/inputs.npz --by context --within image --units channel --feature-names names
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

import relu_probe as rp
from relu_probe.testing import accuracy, digit_images, fit_classifier, resnet18

TASKS = ("parity", "magnitude", "mod 3")
WIDTH = 8  # channels of the stem and stage 1 (torchvision: 64); stages double it
COLOURS = ("red", "green", "blue")


def build_model(torchvision: bool = False) -> nn.Module:
    """The untrained network (also the CLI's ``--model examples/resnet_digits.py:build_model``)."""
    n_classes = len(digit_images(TASKS, n_images=1).classes)
    torch.manual_seed(0)
    if torchvision:
        import torchvision.models

        return torchvision.models.resnet18(num_classes=n_classes)
    return resnet18(num_classes=n_classes, width=WIDTH)


def feature_names(side: int) -> list[str]:
    """One name per input feature, channel-major as the images are: ``red (row, col)`` …"""
    return [f"{colour} ({r}, {c})" for colour in COLOURS for r in range(side) for c in range(side)]


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600, help="digit images (each shown under 3 tasks)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torchvision", action="store_true", help="torchvision's resnet18 (64 channels wide)")
    parser.add_argument("--out", default="reports", help="output folder (default ./reports)")
    parser.add_argument("--export", metavar="DIR", help="also save weights.pt and inputs.npz for `relu-probe analyze`")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 60 images, 2 epochs")
    args = parser.parse_args(argv)
    n_images, epochs = (60, 2) if args.quick else (args.images, args.epochs)

    task = digit_images(TASKS, n_images=n_images, seed=args.seed)
    image = task.coords["image"]
    held_out = np.isin(image, np.unique(image)[::4])  # a quarter of the images, under all three tasks
    train, test = torch.from_numpy(~held_out), torch.from_numpy(held_out)
    model = build_model(args.torchvision)
    losses = fit_classifier(model, task.images[train], task.labels[train], epochs=epochs, lr=3e-3, seed=args.seed)
    acc = accuracy(model, task.images[test], task.labels[test])
    print(f"training loss {losses[0]:.3f} → {losses[-1]:.3f}; held-out accuracy {acc:.3f} (chance ≈ 0.4)")

    X = task.images[test]
    coords = {k: v[held_out] for k, v in task.coords.items()}
    names = feature_names(X.shape[-1])
    res = rp.analyze(model, X, coords=coords, by="context", within="image", units="channel", feature_names=names,
                     literature=not args.quick,
                     title=f"ResNet-18 on three digit tasks: pathways per site (held-out accuracy {acc:.2f})")
    print(res)
    out = Path(args.out) / "resnet_digits"
    res.save(out / "analysis", overwrite=True)
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), export / "weights.pt")
        np.savez(export / "inputs.npz", X=X.numpy(), names=np.array(names),
                 **{k: np.asarray(v).astype(str) if np.asarray(v).dtype == object else v for k, v in coords.items()})
    report = res.to_html(out / "report.html")
    print(report)
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)  # small images: one thread is fastest, and shares a busy CPU best
    main()
