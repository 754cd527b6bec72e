"""Template: analyse your own ReLU network with relu_probe. Copy this file and edit the three
functions marked EDIT.

1. ``build_model()`` returns your ``nn.Module`` (any architecture: ``nn.ReLU`` modules,
   ``F.relu`` calls, conv layers … are all recorded).
2. ``load_data()`` returns the inputs, optional targets, and per-sample labels (``coords``).
   ``by`` names the condition the pathways are keyed by (a task cue, a class …); ``within``
   names an item that appears under several conditions (leave it ``None`` otherwise).
3. ``train()`` trains the model (or load your trained weights there instead).

Then ``rp.analyze`` records the gates, finds the pathways, scores them, attributes each
pathway to the input features, and — when targets are given and the model was trained by
full-batch gradient descent on the summed squared loss — fits the equivalent gated deep linear
network (ReLN) and compares its learning curve with yours. The report lands in
``OUT/your_model/report.html``.

The stand-in task below: 12 random items, each shown under 3 contexts; the target is a shared
map of the item plus a context-specific map (context ``c`` writes to its own output block, as
in Jarvis et al., ICLR 2025).

    python examples/your_model.py
    python examples/your_model.py --export saved/      # also write files for the CLI:
    relu-probe analyze --model examples/your_model.py:build_model --weights saved/weights.pt \\
        --inputs saved/inputs.npz --by context --within item --targets Y --loss-curve loss \\
        --lr 0.01
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

import relu_probe as rp

N_ITEMS, N_CONTEXTS, N_FEATURES, N_OUT = 12, 3, 10, 6


# ----------------------------------------------------------------------------- EDIT: your model
def build_model() -> nn.Module:
    """Your network. Also usable from the command line as ``--model examples/your_model.py:build_model``."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(N_FEATURES + N_CONTEXTS, 64, bias=False), nn.ReLU(),
        nn.Linear(64, N_OUT * (N_CONTEXTS + 1), bias=False),
    ).double()
    with torch.no_grad():  # small initial weights: the rich, stage-like learning regime
        for layer in (model[0], model[2]):
            layer.weight.normal_(0.0, 0.01)
    return model


# ----------------------------------------------------------------------------- EDIT: your data
def load_data() -> tuple[torch.Tensor, torch.Tensor | None, dict[str, np.ndarray], list[str]]:
    """Inputs (sample, feature), targets (sample, output) or None, coords, feature names."""
    rng = np.random.default_rng(0)
    items = rng.normal(size=(N_ITEMS, N_FEATURES)) / np.sqrt(N_FEATURES)
    shared = rng.normal(size=(N_OUT, N_FEATURES))
    specific = rng.normal(size=(N_CONTEXTS, N_OUT, N_FEATURES))
    context = np.repeat(np.arange(N_CONTEXTS), N_ITEMS)
    item = np.tile(np.arange(N_ITEMS), N_CONTEXTS)
    X = np.concatenate([items[item], np.eye(N_CONTEXTS)[context]], axis=1)
    Y = np.zeros((len(X), N_OUT * (N_CONTEXTS + 1)))
    Y[:, :N_OUT] = items[item] @ shared.T
    for c in range(N_CONTEXTS):
        rows = context == c
        Y[rows, N_OUT * (c + 1): N_OUT * (c + 2)] = items[item[rows]] @ specific[c].T
    names = [f"feature {i}" for i in range(N_FEATURES)] + [f"cue {c}" for c in range(N_CONTEXTS)]
    return torch.from_numpy(X), torch.from_numpy(Y), {"context": context, "item": item}, names


# ----------------------------------------------------------------------------- EDIT: training
def train(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, epochs: int, lr: float) -> np.ndarray:
    """Full-batch gradient descent on the summed squared loss (what the ReLN models); returns
    the loss before each update. Replace with your own loop, or load trained weights."""
    return rp.tasks.train_full_batch(model, X, Y, lr=lr, epochs=epochs)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--out", default="reports", help="output folder (default ./reports)")
    parser.add_argument("--export", metavar="DIR", help="also save weights.pt and inputs.npz for `relu-probe analyze`")
    parser.add_argument("--quick", action="store_true", help="a smoke run (300 epochs)")
    args = parser.parse_args(argv)
    epochs = 600 if args.quick else args.epochs

    model = build_model()
    X, Y, coords, names = load_data()
    loss = train(model, X, Y, epochs, args.lr)
    print(f"loss {loss[0]:.3f} → {loss[-1]:.4f} after {epochs} epochs")

    res = rp.analyze(
        model, X, coords=coords, by="context", within="item",
        Y=Y, loss_curve=loss, lr=args.lr,         # drop this line if you have no targets
        # the ReLN's curve is predicted by the exact dynamics (no alignment assumption, which
        # random items break); the closed form is shown beside it as the mode-by-mode approximation
        feature_names=names, literature=not args.quick, title="Your model",
    )
    print(res)
    print(res.pathway_table())
    out = Path(args.out) / "your_model"
    res.save(out / "analysis", overwrite=True)      # reload with rp.Analysis.load(...)
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), export / "weights.pt")
        np.savez(export / "inputs.npz", X=X.numpy(), Y=Y.numpy(), loss=loss, **coords)
    report = res.to_html(out / "report.html")
    print(report)
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small network: one thread is fastest
    main()
