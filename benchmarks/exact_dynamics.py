"""Exact, width-independent dynamics against simulating the same GDLN, in one run.

For the paper's K-context hierarchy tasks (lr 1e-3, float64, one thread) and two gatings —
the mixed ReLN (full set + all (K−1)-sets, joint rule, inputs "auto") and the union of all
2^K − 1 context sets — time

- ``relu_probe.reln.exact.exact_dynamics`` (adaptive exact powers, the default) and its
  epoch-by-epoch mode (``step="exact"``), from the mean state of 100-unit pathways;
- ``rp.GDLN(...).fit`` with 100 and 1000 units per pathway (the same σ² h for every width,
  σ = 0.005/700 at 100 units);
- ``rp.race_dynamics(method="closed")`` (Eq. 1, the mode-by-mode approximation),

and print ``time(GDLN) / time(exact)`` measured in this run, with the max |ΔL| (percent of L0,
over every epoch) of the adaptive steps against epoch-by-epoch stepping, of the mean state
against the 1000-unit simulation (seed 0), and of the exact dynamics started from the
100-unit GDLN's own initial weights (``weights=``, full output space) against that very
simulation. The simulation's cost per epoch is constant, so with
``--sim-epochs E`` < epochs it is timed on E epochs and scaled to the full run (printed as
such); its loss is then compared on those E epochs.

``--tasks digits`` runs a non-paper task: scikit-learn's bundled digits (1797 samples, 64
pixels / 16, one-hot targets), contexts = digit mod 3 (unbalanced: 4, 3 and 3 classes), at
half the largest stable learning rate (:func:`relu_probe.reln.stability.max_stable_lr`).

Targets (issue 12): >= 10x at 100 units per pathway, >= 50x at 1000, within 1 % of L0.

Run: ``python benchmarks/exact_dynamics.py [--tasks 3,4,5,digits] [--epochs 8001]
[--sim-epochs 8001] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import relu_probe as rp
from relu_probe.reln.exact import MeanState, exact_dynamics

SIGMA_100 = 0.005 / 700


def best_of(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def gatings(K: int) -> dict[str, list[tuple]]:
    full = tuple(range(K))
    return {
        "ReLN": [full] + list(itertools.combinations(full, K - 1)),
        "union": [s for j in range(K, 0, -1) for s in itertools.combinations(full, j)],
    }


def load(task: str):
    """``(X, Y, context, lr)`` of a task: a paper task by its number of contexts, or digits."""
    if task == "digits":
        from sklearn.datasets import load_digits

        from relu_probe.reln.gating import resolve_gates
        from relu_probe.reln.stability import max_stable_lr

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        Y = np.eye(10)[y]
        ctx = y % 3
        bounds = [
            max_stable_lr(X, Y, resolve_gates(sets, len(X), ctx).G, np.ones((len(sets), X.shape[1])))
            for sets in gatings(3).values()
        ]
        return X, Y, ctx, 0.5 * min(bounds)
    X, Y, coords = rp.tasks.contextual_task(int(task))
    return X, Y, coords["context"], 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="3,4,5")
    parser.add_argument("--epochs", type=int, default=8001)
    parser.add_argument("--sim-epochs", type=int, default=None,
                        help="epochs of the GDLN simulations (default: all; fewer are scaled)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    epochs = args.epochs
    sim_epochs = epochs if args.sim_epochs is None else min(args.sim_epochs, epochs)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    with threadpool_limits(1):
        for task in args.tasks.split(","):
            X, Y, ctx, lr = load(task)
            K = len(np.unique(ctx))
            for name, sets in gatings(K).items():
                p = len(sets)
                state = MeanState.from_weights(SIGMA_100, SIGMA_100, 100)
                state = MeanState(np.repeat(state.a0, p), np.repeat(state.b0, p))
                kw = dict(context=ctx, inputs="auto", init=state, epochs=epochs, lr=lr)
                exact_dynamics(X, Y, sets, **{**kw, "epochs": 10})  # warm-up
                t_fast, fast = best_of(lambda: exact_dynamics(X, Y, sets, **kw), args.repeats)
                t_step, step = best_of(lambda: exact_dynamics(X, Y, sets, step="exact", **kw), 1)
                t_closed, _ = best_of(
                    lambda: rp.race_dynamics(X, Y, sets, context=ctx, inputs="auto", method="closed",
                                             rule="joint", init=float(state.pi0[0]), epochs=epochs,
                                             lr=lr),
                    args.repeats,
                )
                sims = {}
                for h in (100, 1000):
                    sigma = SIGMA_100 * np.sqrt(100 / h)
                    t_sim, g = best_of(
                        lambda: rp.GDLN(sets, hidden=h, init_scale=sigma, inputs="auto", lr=lr,
                                        epochs=sim_epochs, sv_stride=max(sim_epochs, 1), seed=0,
                                        progress=False).fit(X, Y, context=ctx),
                        1,
                    )
                    sims[h] = (t_sim * epochs / sim_epochs, g.loss_curve_)
                g0 = rp.GDLN(sets, hidden=100, init_scale=SIGMA_100, inputs="auto", epochs=1,
                             lr=1e-300, seed=0, progress=False).fit(X, Y, context=ctx)
                weights = [(w[0], w[1]) for w in g0.weights_]
                t_w, same = best_of(
                    lambda: exact_dynamics(X, Y, sets, context=ctx, inputs="auto", weights=weights,
                                           epochs=sim_epochs, lr=lr), 1)
                L0 = fast.attrs["L0"]
                err_step = 100 * np.abs(fast["loss"].values - step["loss"].values).max() / L0
                err_sim = 100 * np.abs(fast["loss"].values[:sim_epochs] - sims[1000][1]).max() / L0
                err_same = 100 * np.abs(same["loss"].values - sims[100][1]).max() / L0
                rows.append((task, name, p, t_fast, fast.attrs["n_steps"], t_step, t_closed,
                             sims[100][0], sims[1000][0], err_step, err_sim, err_same, t_w))
                print(
                    f"{task} {name:5s} ({p:2d} pathways): exact {t_fast:.3f}s "
                    f"({fast.attrs['n_steps']} steps), per-epoch {t_step:.2f}s, closed {t_closed:.3f}s, "
                    f"GDLN@100 {sims[100][0]:.1f}s, GDLN@1000 {sims[1000][0]:.1f}s"
                    + ("" if sim_epochs == epochs else f" (timed on {sim_epochs} epochs, scaled)"),
                    flush=True,
                )
    print()
    print(f"epochs {epochs}; ratios = time(GDLN) / time(exact, adaptive), measured in this run")
    print("| task | gating | pathways | exact (s) | steps | per-epoch exact (s) | closed (s) | "
          "GDLN 100/path (s) | ×100 | GDLN 1000/path (s) | ×1000 | max|ΔL| vs per-epoch (% L0) | "
          "mean state vs GDLN@1000 (% L0) | from GDLN@100's weights vs it (% L0) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for K, name, p, tf, ns, ts, tc, s100, s1000, e1, e2, e3, tw in rows:
        print(f"| {K} | {name} | {p} | {tf:.3f} | {ns} | {ts:.2f} | {tc:.3f} | {s100:.1f} | "
              f"**{s100 / tf:.0f}×** | {s1000:.1f} | **{s1000 / tf:.0f}×** | {e1:.3f} | {e2:.2f} | "
              f"{e3:.3f} ({tw:.2f} s) |")


if __name__ == "__main__":
    main()
