"""Two hidden layers: where the gating structure sits, and the layered ReLN built from it.

Trains the paper's two-hidden-layer ReLU network (11 → 420 → 420 → 60, init std 0.0006,
lr 1e-3, 30001 epochs, as in the authors' code for arXiv 2503.06181) on the 3-context task,
with a TrainingMonitor recording its gates every 250 epochs. It then reports the context-set
masses of each hidden layer (``rp.find_pathways`` per site: layer 1 mostly shared, layer 2
with more two-context than single-context mass) and builds the layered ReLN of those
pathways: one gated block per (layer, pathway), each layer's blocks feeding the next layer's
(``rp.ReLN.from_pathways`` on the per-site results), trained by gradient descent from the
ReLU network's initial weight std. Two versions are compared with the ReLU loss curve:

* fixed gates — every block open on its context set from the start;
* gates that follow training (``trajectory=`` the monitor) — every block open, on each
  sample, by the root-mean-square of the gates its units had at that stage of training.

    python examples/depth.py --seed 0 --out figures
    python examples/depth.py --quick          # 12001 epochs
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import relu_probe as rp

#: Epochs at which the loss curves are printed (the ReLU network's plateaus sit between them).
REPORT_EPOCHS = (2000, 5000, 8000, 11000, 15000, 20000, 25000, 30000)


def layer_masses(pw: rp.Pathways) -> dict[int, float]:
    """Mass per context-set size |S|."""
    out: dict[int, float] = {}
    for contexts, mass in zip(pw.mass["contexts"].values, pw.mass.values):
        out[len(contexts)] = out.get(len(contexts), 0.0) + float(mass)
    return dict(sorted(out.items(), reverse=True))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures")
    parser.add_argument("--epochs", type=int, default=None, help="default 30001 (12001 with --quick)")
    parser.add_argument("--every", type=int, default=250, help="epochs between the monitor's gate snapshots")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--min-mass", type=float, default=0.01,
                        help="pathways below this share of their layer's mass are left out of the ReLN")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    X, Y, coords = rp.tasks.contextual_task(3)
    hp = rp.tasks.paper_hyperparameters(3, depth=2)
    epochs = args.epochs or (12001 if args.quick else int(hp["epochs"]))
    net = rp.tasks.paper_network(3, depth=2, seed=args.seed)
    monitor = rp.TrainingMonitor(net, X, coords=coords, every=args.every, values=False)
    t0 = time.perf_counter()
    relu = rp.tasks.train_full_batch(net, X, Y, lr=hp["lr"], epochs=epochs,
                                     callback=lambda epoch, loss: monitor.update(epoch, loss))
    print(f"ReLU 11-420-420-60 trained for {epochs} epochs in {time.perf_counter() - t0:.0f}s")

    ds = rp.record(net, X, coords=coords)
    imp = rp.unit_importance(net, ds, method="readout")
    pws = {site: rp.find_pathways(ds, by="context", within="object", importance=imp, sites=site)
           for site in ds.attrs["sites"]}
    for layer, (site, pw) in enumerate(pws.items(), start=1):
        print(f"\nlayer {layer} (site {site!r}) context-set masses by |S|: "
              + ", ".join(f"|S|={n}: {m:.3f}" for n, m in layer_masses(pw).items()))
        print(pw.summary()[["contexts", "n_units", "mass"]].head(8).to_string(index=False))

    # the layered ReLN: widths = each layer's 420 units shared out by pathway mass, weights drawn
    # with the ReLU network's own initial std per layer (read off the monitor's step-0 copy),
    # no hand-set schedule
    common = dict(model=net, min_mass=args.min_mass, network=monitor.initial_model, lr=hp["lr"], epochs=epochs,
                  seed=args.seed, sv_stride=max(epochs // 100, 1))
    relns = {
        "fixed gates": rp.ReLN.from_pathways(pws, X, Y, **common),
        "gates following training": rp.ReLN.from_pathways(pws, X, Y, trajectory=monitor, **common),
    }
    first = relns["fixed gates"]
    print("\nReLN blocks per layer:", {site: [str(tuple(c)) for c in g["contexts"].values]
                                       for site, g in first.gates.items()}, "dropped:", first.dropped_)
    comparisons = {}
    shown = [e for e in REPORT_EPOCHS if e < epochs]
    print("\n" + " " * 26 + "".join(f"{e:>8d}" for e in shown) + "   mean |ΔL|")
    print(f"{'ReLU':26s}" + "".join(f"{relu[e]:8.2f}" for e in shown))
    for name, reln in relns.items():
        t0 = time.perf_counter()
        reln.fit(X, Y)
        comparisons[name] = rp.compare_dynamics(relu, reln.loss_curve_)
        print(f"{'ReLN, ' + name:26s}" + "".join(f"{reln.loss_curve_[e]:8.2f}" for e in shown)
              + f"   {comparisons[name]['mean_abs_diff']:.2f}   ({time.perf_counter() - t0:.0f}s)")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return {"relu": relu, "pathways": pws, "relns": relns, "comparisons": comparisons}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].plot(relu, "k", lw=2.5, label="ReLU (2 hidden layers)")
    for (name, reln), colour in zip(relns.items(), ("tab:blue", "tab:orange")):
        axes[0].plot(reln.loss_curve_, color=colour, label=f"layered ReLN, {name}")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend(frameon=False)
    width = 0.35
    for i, (site, pw) in enumerate(pws.items()):
        masses = layer_masses(pw)
        sizes = [3, 2, 1]
        axes[1].bar(np.arange(3) + (i - 0.5) * width, [masses.get(n, 0.0) for n in sizes], width,
                    label=f"layer {i + 1} (site {site})")
    axes[1].set_xticks(range(3), ["|S|=3 (shared)", "|S|=2", "|S|=1"])
    axes[1].set_ylabel("context-set mass")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(out / "depth.png", dpi=120)
    plt.close(fig)
    print(f"\nfigure written to {out / 'depth.png'}")
    return {"relu": relu, "pathways": pws, "relns": relns, "comparisons": comparisons}


if __name__ == "__main__":
    main()
