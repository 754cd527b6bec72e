"""HTML reports for the paper's contextual tasks: 3 contexts with different structures, 4 and 5 contexts.

For each task of Jarvis et al. (*Make Haste Slowly*, ICLR 2025) this trains the paper's
one-hidden-layer ReLU network with the authors' settings (full batch, lr 1e-3, 8001 epochs,
width 700 / 500 / 600), measures its pathways every 500 epochs with a
:class:`relu_probe.TrainingMonitor`, and runs :func:`relu_probe.analyze` with the targets and
the loss curve: pathways, scores, input attributions, the ReLN (the gated deep linear network
built from the discovered pathways, initialised as in the authors' ``gdln*.py``) and its
closed form (Eq. 1 with the authors' π0). Each task writes ``OUT/<task>/report.html`` and the
saved analysis ``OUT/<task>/analysis/``.

    python examples/paper_tasks.py                      # 3-diff, 4 and 5 contexts (≈1 min on CPU)
    python examples/paper_tasks.py --task 4 --seed 1
    python examples/paper_tasks.py --quick              # a smoke run (600 epochs each)

What to look for: one shared pathway plus k pathways on k−1 contexts (structured mixed
selectivity), almost no single-context mass; in the 3-diff task more single-context mass on
the ring context. (``examples/paper_dynamics.py`` studies the learning curves in depth, and
``examples/depth.py`` the two-hidden-layer network.)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

import relu_probe as rp
from relu_probe.tasks import PAPER_CLOSED_FORM_PI0

#: task name -> (number of contexts, variant)
TASKS = {"3-diff": (3, "diff"), "4": (4, "hierarchy"), "5": (5, "hierarchy")}


def reln_init_scale(k: int) -> dict[str, float]:
    """Weight std of the authors' ReLN scripts: ``gdln3.py`` 10 / 20 × 0.0005/700 (shared /
    context), ``gdln4/5.py`` 10 × 0.0005/(100 · #modules) for every module."""
    if k == 3:
        return {"shared": 10 * 0.0005 / 700, "context": 20 * 0.0005 / 700}
    base = 0.0005 / (100 * (k + 1))
    return {"shared": 10 * base, "context": 10 * base}


def run_task(name: str, *, out: Path, seed: int, epochs: int | None, every: int, literature: bool = True) -> Path:
    k, variant = TASKS[name]
    X, Y, coords = rp.tasks.contextual_task(k, variant=variant)
    hp = rp.tasks.paper_hyperparameters(k)
    epochs = int(hp["epochs"]) if epochs is None else epochs
    model = rp.tasks.paper_network(k, seed=seed)
    monitor = rp.TrainingMonitor(model, X, coords=coords, every=every, by="context", within="object")
    loss = rp.tasks.train_full_batch(model, X, Y, lr=hp["lr"], epochs=epochs, callback=monitor.update)
    names = [f"object {i}" for i in range(X.shape[1] - k)] + [f"context {c}" for c in range(k)]
    res = rp.analyze(
        model, X, coords=coords, by="context", within="object", Y=Y, loss_curve=loss, lr=hp["lr"],
        feature_names=names, reln_params={"init_scale": reln_init_scale(k)},
        closed_form_init=PAPER_CLOSED_FORM_PI0[k], monitor=monitor, literature=literature,
        title=f"Paper task {name}: {k} contexts ({variant}), seed {seed}, {epochs} epochs",
    )
    by_size: dict[int, float] = {}
    for contexts, mass in zip(res.pathways.contexts, res.pathways.mass.values):
        by_size[len(contexts)] = by_size.get(len(contexts), 0.0) + float(mass)
    sizes = ", ".join(f"|S|={s}: {m:.2f}" for s, m in sorted(by_size.items(), reverse=True))
    print(f"[{name}] loss {loss[0]:.1f} → {loss[-1]:.3g}; pathway mass by number of contexts: {sizes}")
    for key, c in res.comparison.items():
        print(f"[{name}] {key} vs ReLU: mean |ΔL| {c['mean_abs_diff']:.3f} ({c['mean_abs_diff_pct']:.2f}% of L0)")
    res.save(out / name / "analysis", overwrite=True)
    return res.to_html(out / name / "report.html")


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports", help="output folder (default ./reports)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the paper's 8001)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 600 epochs per task (unless --epochs), no literature scores")
    args = parser.parse_args(argv)
    names = list(TASKS) if args.task == "all" else [args.task]
    epochs = args.epochs if args.epochs is not None else (600 if args.quick else None)
    reports = [run_task(n, out=Path(args.out), seed=args.seed, epochs=epochs, every=200 if args.quick else 500,
                        literature=not args.quick) for n in names]
    for path in reports:
        print(path)
    return reports


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest
    main()
