"""Which pathways does a ReLU network trained on the paper's contextual task use?

Trains the paper's one-hidden-layer network (Jarvis et al., *Make Haste Slowly*, ICLR 2025,
arXiv 2503.06181, with the settings of the authors' code) on ``rp.tasks.contextual_task(k)``, records its gates, and prints
the context-set pathways and the structure scores at two points of training. Expect one
shared pathway plus k pathways on k−1 contexts each, almost no single-context mass, and
nonlinear mixed selectivity that appears only late in training.

    python examples/paper_pathways.py --contexts 3 --seed 0
"""

from __future__ import annotations

import argparse

import torch

import relu_probe as rp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=3, help="number of contexts k (3, 4 or 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--early", type=int, default=500, help="epoch of the early snapshot")
    parser.add_argument("--no-literature", action="store_true", help="skip CCGP / parallelism / DCI")
    args = parser.parse_args()

    torch.set_num_threads(1)
    X, Y, coords = rp.tasks.contextual_task(args.contexts)
    hp = rp.tasks.paper_hyperparameters(args.contexts)
    model = rp.tasks.paper_network(args.contexts, seed=args.seed)
    late = int(hp["epochs"]) - 1
    snapshots: dict[int, tuple] = {}

    def callback(epoch: int, loss: float) -> None:
        if epoch in (args.early, late):
            ds = rp.record(model, X, coords=coords, values=True)
            snapshots[epoch] = (ds, rp.unit_importance(model, ds), loss)

    rp.tasks.train_full_batch(model, X, Y, lr=hp["lr"], epochs=hp["epochs"], callback=callback)

    for epoch, (ds, imp, loss) in sorted(snapshots.items()):
        pw = rp.find_pathways(ds, "context", "object", importance=imp)
        print(f"\n=== epoch {epoch}: loss {loss:.3f} ===")
        print(pw.summary().drop(columns="sites").to_string(index=False))
        scores = rp.scores(pw, ds, literature=not args.no_literature)
        print(scores.round(3).to_string())


if __name__ == "__main__":
    main()
