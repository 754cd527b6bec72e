"""Learning dynamics of a ReLU network, its ReLN, and the neural-race prediction.

Reproduces the loss and singular-value panels of Jarvis et al., *Make Haste Slowly* (ICLR
2025, arXiv 2503.06181), with the settings of the authors' code:

1. trains the paper's bias-free ReLU network on ``rp.tasks.contextual_task(k)``;
2. trains two ReLNs (gated deep linear networks, ``rule="residual"``): the mixed-selective one
   (shared + every (k−1)-set of contexts) and the strictly modular one (shared + single
   contexts);
3. predicts the mixed ReLN in closed form (Eq. 1 with the code's π0 and d/(k−1)) and with the
   exact dynamics (the default of ``rp.race_dynamics``: exact gradient descent, no hidden width);
4. ranks the candidate gatings with ``rp.fastest_reln``;

prints |ΔL| against the ReLU curve and saves ``loss_k{k}.png`` and ``singular_values_k{k}.png``
into ``--out``.

    python examples/paper_dynamics.py --contexts 3 --seed 0 --out figures
    python examples/paper_dynamics.py --contexts 3 --variant diff --quick
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

import relu_probe as rp

#: The closed-form scripts' initial mode strengths (shared, context) per number of contexts.
CODE_PI0 = {3: (5e-9, 5e-5), 4: (1e-8, 1e-4), 5: (1e-9, 3e-4)}


def reln_init(k: int) -> dict[str, float]:
    """The ReLN scripts' weight std: gdln3 uses 10/20 × 0.0005/700 (shared/context); gdln4/5
    use 10 × 0.0005/(100 · #modules) for every module."""
    if k == 3:
        return {"shared": 10 * 0.0005 / 700, "context": 20 * 0.0005 / 700}
    base = 0.0005 / (100 * (k + 1))
    return {"shared": 10 * base, "context": 10 * base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=3, choices=[3, 4, 5])
    parser.add_argument("--variant", default="hierarchy", choices=["hierarchy", "diff"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures", help="folder for the figures")
    parser.add_argument("--quick", action="store_true", help="2001 epochs instead of 8001")
    args = parser.parse_args()
    k = args.contexts
    if args.variant == "diff" and k != 3:
        parser.error("--variant diff needs --contexts 3")

    torch.set_num_threads(1)
    X, Y, coords = rp.tasks.contextual_task(k, variant=args.variant)
    ctx = coords["context"]
    hp = rp.tasks.paper_hyperparameters(k)
    epochs = 2001 if args.quick else int(hp["epochs"])
    shared = tuple(range(k))
    mixed = [shared] + list(itertools.combinations(range(k), k - 1))
    modular = [shared] + [(c,) for c in range(k)]

    t0 = time.perf_counter()
    net = rp.tasks.paper_network(k, seed=args.seed)
    relu = rp.tasks.train_full_batch(net, X, Y, lr=hp["lr"], epochs=epochs)
    print(f"ReLU network ({hp['width']} units) trained in {time.perf_counter() - t0:.1f}s; "
          f"loss {relu[0]:.2f} -> {relu[-1]:.3f}")

    kw = dict(hidden=100, inputs="auto", rule="residual", init_scale=reln_init(k), lr=hp["lr"],
              epochs=epochs, seed=args.seed, sv_stride=10)
    t0 = time.perf_counter()
    g_mixed = rp.GDLN(mixed, **kw).fit(X, Y, context=ctx)
    g_modular = rp.GDLN(modular, **kw).fit(X, Y, context=ctx)
    print(f"two ReLNs simulated in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    closed = rp.race_dynamics(
        X, Y, mixed, context=ctx, rule="residual", inputs="auto", lr=hp["lr"], epochs=epochs,
        init={"shared": CODE_PI0[k][0], "context": CODE_PI0[k][1]}, d_scale="k-1", time="continuous",
        method="closed",
    )
    t_closed = time.perf_counter() - t0
    t0 = time.perf_counter()
    live = rp.race_dynamics(
        X, Y, mixed, context=ctx, rule="residual", inputs="auto", lr=hp["lr"], epochs=epochs,
        hidden=100, init_scale=reln_init(k),  # the default method: the exact dynamics
    )
    t_live = time.perf_counter() - t0
    print(f"closed form in {t_closed * 1e3:.0f} ms, exact dynamics in {t_live:.2f}s")

    print("\n|ΔL| against the ReLU curve (all epochs / late phase from epoch 1500):")
    for name, curve in [("ReLN mixed", g_mixed.loss_curve_), ("ReLN modular", g_modular.loss_curve_),
                        ("closed form", closed["loss"]), ("exact dynamics", live["loss"])]:
        r = rp.compare_dynamics(relu, curve)
        late = rp.compare_dynamics(relu, curve, start=min(1500, epochs - 1))
        to = r["epochs_to_b"]
        print(f"  {name:13s} mean {r['mean_abs_diff']:6.3f}  max {r['max_abs_diff']:6.2f} "
              f"(epoch {r['max_abs_diff_epoch']:4d})  late mean {late['mean_abs_diff']:6.3f}  "
              f"final {float(np.asarray(curve)[-1]):7.3f}  epochs to 50/10% {to[0.5]}/{to[0.1]}")
    to = rp.compare_dynamics(relu, relu)["epochs_to_a"]
    print(f"  {'ReLU':13s} final {relu[-1]:.3f}  epochs to 50/10% {to[0.5]}/{to[0.1]}")

    sv = g_mixed.singular_values_.isel(epoch=-1, mode=0)
    print("\nfinal top singular value per ReLN pathway:",
          {n: round(float(v), 4) for n, v in zip(g_mixed.pathway_names_, sv.values)})

    ranking = rp.fastest_reln(X, Y, [mixed, modular], context=ctx, lr=hp["lr"], epochs=epochs)
    print("\nfastest_reln (exact dynamics, mean predicted loss; the union of the candidates raced too):")
    for r in ranking:
        print(f"  {r['rank']}  {' '.join(r['names']):40s} mean {r['mean_loss']:7.3f}  "
              f"final {r['final_loss']:.4f}")

    plot(args, k, relu, g_mixed, g_modular, closed, live)


def plot(args, k, relu, g_mixed, g_modular, closed, live) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        print("matplotlib not installed: no figures")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"k{k}" + ("_diff" if args.variant == "diff" else "")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(relu, color="k", lw=2.5, label="ReLU network")
    ax.plot(g_mixed.loss_curve_, color="tab:blue", lw=1.5, label="ReLN mixed (shared + (k−1)-sets)")
    ax.plot(g_modular.loss_curve_, color="tab:red", lw=1.5, label="ReLN modular (shared + singles)")
    ax.plot(closed["loss"], "--", color="tab:orange", label="closed form (Eq. 1, d/(k−1))")
    ax.plot(live["loss"], ":", color="tab:green", lw=2, label="exact dynamics")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss  ½‖Ŷ − Y‖²")
    ax.set_title(f"{k} contexts ({args.variant}), seed {args.seed}")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(out / f"loss_{tag}.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    sv = g_mixed.singular_values_
    epochs_sv = sv["epoch"].values
    # singular values are unordered modes in the prediction: sort them like an SVD does
    pred = closed["singular_values"].copy(
        data=-np.sort(-closed["singular_values"].values, axis=1)
    )
    colors = plt.cm.viridis(np.linspace(0, 0.9, sv.sizes["mode"]))
    for m in range(sv.sizes["mode"]):
        axes[0].plot(epochs_sv, sv.isel(pathway=0, mode=m), color=colors[m], lw=2)
        axes[0].plot(pred["epoch"], pred.isel(pathway=0, mode=m), "--", color=colors[m], lw=1)
    axes[0].set_title("shared pathway: simulated (solid) vs closed form (dashed)")
    ctx_sim = sv.isel(pathway=slice(1, None)).mean("pathway")
    ctx_pred = pred.isel(pathway=slice(1, None)).mean("pathway")
    mod = g_modular.singular_values_.isel(pathway=slice(1, None)).mean("pathway")
    for m in range(min(8, sv.sizes["mode"])):
        axes[1].plot(epochs_sv, ctx_sim.isel(mode=m), color=colors[m], lw=2)
        axes[1].plot(pred["epoch"], ctx_pred.isel(mode=m), "--", color=colors[m], lw=1)
    axes[1].plot(epochs_sv, mod.isel(mode=0), color="tab:red", lw=1.5, label="modular: top mode")
    axes[1].set_title("context pathways (mean over pathways)")
    axes[1].legend(frameon=False)
    for a in axes:
        a.set_xlabel("epoch")
    axes[0].set_ylabel("singular value of the pathway map")
    fig.tight_layout()
    fig.savefig(out / f"singular_values_{tag}.png", dpi=120)
    plt.close(fig)
    print(f"\nfigures written to {out}/loss_{tag}.png and {out}/singular_values_{tag}.png")


if __name__ == "__main__":
    main()
