"""Predict the pathways a ReLU network will learn before training it, then train it and compare.

For each of the paper's contextual tasks (Jarvis et al., *Make Haste Slowly*, ICLR 2025: 3, 4
and 5 contexts) this

1. builds the paper's one-hidden-layer ReLU network and, *before any training*, predicts from
   the data and the untrained network alone which context-set pathways it will use
   (``rp.predict_structure``: every non-empty set of contexts races under the exact learning
   dynamics of the gated deep linear network; the sets that do not grow are pruned);
2. trains the network by its own loop (full-batch gradient descent) with a
   ``rp.TrainingMonitor`` that knows the learning rate, so predicted and measured structure can
   be compared at every snapshot;
3. runs ``rp.analyze`` with the targets, the loss curve and the monitor: the report's
   "Predicted structure" section shows the prediction and the measured masses side by side,
   their total-variation distance, and that distance over training; "Learning dynamics" shows
   the exact prediction of the loss next to the ReLU network's curve.

    python examples/predict_structure.py                 # 3, 4 and 5 contexts (≈2 min on CPU)
    python examples/predict_structure.py --task 4 --seed 1
    python examples/predict_structure.py --quick         # a smoke run

What to look for: the prediction — one shared pathway and k pathways on k−1 contexts, no
single-context pathway — made before training, against what the trained network uses.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

import relu_probe as rp


def run_task(k: int, *, out: Path, seed: int, epochs: int, every: int) -> Path:
    X, Y, coords = rp.tasks.contextual_task(k)
    hp = rp.tasks.paper_hyperparameters(k)
    lr = float(hp["lr"])
    model = rp.tasks.paper_network(k, seed=seed)

    # 1. before training: the structure predicted from the data and the untrained network
    pred = rp.predict_structure(X, Y, context=coords["context"], within=coords["object"], network=model,
                                lr=lr, epochs=epochs)
    print(f"[{k} contexts] predicted before training ({len(pred.pruned)} sets pruned):")
    print(pred.summary()[["contexts", "mass"]].round(3).to_string(index=False))

    # 2. train by the network's own loop, watched by a monitor that knows the learning rate
    monitor = rp.TrainingMonitor(model, X, coords=coords, every=every, by="context", within="object",
                                 lr=lr, epochs=epochs)
    loss = rp.tasks.train_full_batch(model, X, Y, lr=lr, epochs=epochs, callback=monitor.update)

    # 3. the analysis: measured pathways, the ReLN, the predictions, the comparison
    res = rp.analyze(model, X, coords=coords, by="context", within="object", Y=Y, loss_curve=loss, lr=lr,
                     monitor=monitor, attribution=False, literature=False, null=None,
                     title=f"Predicted vs learned structure: {k} contexts, seed {seed}, {epochs} epochs")
    cmp = rp.compare_structure(pred, res.pathways)
    print(f"[{k} contexts] after training: TV(predicted, measured) = {cmp['tv']:.3f}; exact prediction of the loss: "
          f"mean |ΔL| {res.comparison['race']['mean_abs_diff']:.3f} (closed form "
          f"{res.comparison['closed']['mean_abs_diff']:.3f})")
    print(cmp["per_set"].round(3).to_string(index=False))
    res.save(out / f"{k}" / "analysis", overwrite=True)
    return res.to_html(out / f"{k}" / "report.html")


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["3", "4", "5", "all"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/predict_structure", help="output folder")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the paper's 8001)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: the 3-context task, 1200 epochs")
    args = parser.parse_args(argv)
    tasks = [3, 4, 5] if args.task == "all" else [int(args.task)]
    if args.quick and args.task == "all":
        tasks = [3]
    epochs = args.epochs if args.epochs is not None else (1200 if args.quick else int(rp.tasks.PAPER_EPOCHS))
    reports = [run_task(k, out=Path(args.out), seed=args.seed, epochs=epochs, every=300 if args.quick else 500)
               for k in tasks]
    for path in reports:
        print(path)
    return reports


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest
    main()
