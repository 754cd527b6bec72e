"""Two hidden layers: where the gating structure sits, and a ReLN built from it.

Trains the paper's two-hidden-layer ReLU network (11 → 420 → 420 → 60, init std 0.0006,
lr 1e-3, 30001 epochs, as in the authors' code for arXiv 2503.06181) on the 3-context task, records its
gates, and reports the context-set masses of each hidden layer (``rp.find_pathways`` per
site). Expect layer 1 mostly shared and, in layer 2, more mass on two-context sets than on
single contexts. It then builds a ReLN from the layer-2 pathways on the paper's graph (a shared
ungated first layer, then one gated layer per pathway) and compares its loss with the ReLU
network's (staged plateaus at ≈ 96, 66 and 12). The depth equivalence is only qualitative, in
the paper too: the ReLU network takes larger, sharper steps.

    python examples/depth.py --seed 0 --out figures
    python examples/depth.py --quick          # 12001 epochs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import relu_probe as rp


def layer_masses(pw: rp.Pathways) -> dict[int, float]:
    """Mass per context-set size |S|."""
    out: dict[int, float] = {}
    for contexts, mass in zip(pw.mass["contexts"].values, pw.mass.values):
        out[len(contexts)] = out.get(len(contexts), 0.0) + float(mass)
    return dict(sorted(out.items(), reverse=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures")
    parser.add_argument("--epochs", type=int, default=None, help="default 30001 (12001 with --quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--min-mass", type=float, default=0.015,
                        help="layer-2 pathways below this mass are left out of the ReLN")
    args = parser.parse_args()
    torch.set_num_threads(1)

    X, Y, coords = rp.tasks.contextual_task(3)
    hp = rp.tasks.paper_hyperparameters(3, depth=2)
    epochs = args.epochs or (12001 if args.quick else int(hp["epochs"]))
    net = rp.tasks.paper_network(3, depth=2, seed=args.seed)
    t0 = time.perf_counter()
    relu = rp.tasks.train_full_batch(net, X, Y, lr=hp["lr"], epochs=epochs)
    print(f"ReLU 11-420-420-60 trained for {epochs} epochs in {time.perf_counter() - t0:.0f}s")
    for e in (2000, 5000, 9000, 15000, 20000, 25000, epochs - 1):
        if e < epochs:
            print(f"  loss at epoch {e:5d}: {relu[e]:7.2f}")

    ds = rp.record(net, X, coords=coords)
    imp = rp.unit_importance(net, ds, method="readout")
    sites = list(ds.attrs["sites"])
    pws = {}
    for layer, site in enumerate(sites, start=1):
        pw = rp.find_pathways(ds, by="context", within="object", importance=imp, sites=site)
        pws[layer] = pw
        print(f"\nlayer {layer} (site {site!r}) context-set masses by |S|: "
              + ", ".join(f"|S|={n}: {m:.3f}" for n, m in layer_masses(pw).items()))
        print(pw.summary()[["contexts", "n_units", "mass"]].head(8).to_string(index=False))

    # ReLN from the deeper layer's pathways, on the paper's graph (gdln_off.py): an ungated
    # shared first layer of 420 units (the trunk), then one gated layer per pathway (240 units
    # for the shared pathway, 60 per context pathway). Every weight starts at the ReLU's std
    # scaled by 1/sqrt(2) — about half of a ReLU layer's units are on at initialisation — and
    # no hand-set training schedule is used.
    pw2 = pws[max(pws)]
    sigma = float(hp["init_std"]) / np.sqrt(2.0)
    reln = rp.ReLN.from_pathways(
        pw2, X, Y, trunk=[420], hidden={"shared": 240, "context": 60}, min_mass=args.min_mass,
        trunk_init_scale=sigma, init_scale=sigma, epochs=epochs, seed=args.seed, sv_stride=100,
    )
    print("\nReLN pathways (layer 2):", [tuple(c) for c in reln.pathway_mass_["contexts"].values],
          "dropped:", reln.dropped_)
    t0 = time.perf_counter()
    reln.fit(X, Y)
    print(f"ReLN trained in {time.perf_counter() - t0:.0f}s")
    r = rp.compare_dynamics(relu, reln)
    print(f"ReLN vs ReLU: mean |ΔL| {r['mean_abs_diff']:.2f}, max {r['max_abs_diff']:.2f} at epoch "
          f"{r['max_abs_diff_epoch']}; final {relu[-1]:.3f} (ReLU) vs {reln.loss_curve_[-1]:.3f} (ReLN); "
          f"epochs to 50% of L0 {r['epochs_to_a'][0.5]} vs {r['epochs_to_b'][0.5]}")
    print("ReLN learned pathway strengths:",
          {n: round(float(v), 3) for n, v in zip(reln.pathway_names_, reln.pathway_strength().values)})

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].plot(relu, "k", lw=2.5, label="ReLU (2 hidden layers)")
    axes[0].plot(reln.loss_curve_, color="tab:blue", label="ReLN from layer-2 pathways")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend(frameon=False)
    width = 0.35
    for i, (layer, pw) in enumerate(pws.items()):
        masses = layer_masses(pw)
        sizes = [3, 2, 1]
        axes[1].bar(np.arange(3) + (i - 0.5) * width, [masses.get(n, 0.0) for n in sizes], width,
                    label=f"layer {layer}")
    axes[1].set_xticks(range(3), ["|S|=3 (shared)", "|S|=2", "|S|=1"])
    axes[1].set_ylabel("context-set mass")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(out / "depth.png", dpi=120)
    print(f"\nfigure written to {out / 'depth.png'}")


if __name__ == "__main__":
    main()
