"""Predicted against measured pathway structure on the paper's hierarchy tasks, per seed.

For every ``K`` and seed: the paper's one-hidden-layer ReLU network
(:func:`relu_probe.tasks.paper_network`) is trained by its own loop
(:func:`relu_probe.tasks.train_full_batch`: full batch, lr 1e-3, 8001 epochs, one thread);
its masses are measured as ``rp.analyze`` measures them (``rp.record(values=True)``, readout
importance, ``rp.find_pathways(by="context", within="object")``) and compared with
``rp.predict_structure(X, Y, context=..., within=..., network=net0)`` from the untrained
copy (``rp.compare_structure``: total-variation distance). Printed: the TV and both masses
summed by set size ``|S|``.

``--scan F1,F2,...`` repeats the union race with the untrained network's weights multiplied
by each factor (initial mode strengths ``π0`` times ``F²``), to show how the predicted
structure depends on the initial scale. ``--trajectory`` retrains the network and prints,
at a few epochs, the measured masses by set size and the fraction of (unit, object) cells
whose active context set is still the one they had at initialisation, and how much of the
final mass of each set size sits on cells that were open in every context at that epoch.

Target (issue 12): TV <= 0.1 / 0.1 / 0.15 for K = 3 / 4 / 5.

Run: ``python benchmarks/predicted_structure.py [--tasks 3,4,5] [--seeds 41,42,43]
[--scan 1,3,10,30,100] [--trajectory]``
"""

from __future__ import annotations

import argparse
import copy
from collections import defaultdict

import numpy as np
import torch

import relu_probe as rp
from relu_probe.reln.init import DEFAULT_N_UNITS
from relu_probe.reln.predict import ContextSetRace, structure_mass

TRAJECTORY_EPOCHS = (0, 100, 500, 750, 1000, 2000, 4000, 8000)


def measured(net: torch.nn.Module, X: torch.Tensor, coords: dict) -> rp.Pathways:
    ds = rp.record(net, X, coords=coords, values=True, progress=False)
    imp = rp.unit_importance(net, ds, method="readout")
    return rp.find_pathways(ds, "context", "object", importance=imp)


def by_size(masses: dict) -> dict[int, float]:
    out: dict[int, float] = defaultdict(float)
    for S, m in masses.items():
        out[len(S)] += float(m)
    return {j: round(out[j], 3) for j in sorted(out, reverse=True)}


def cell_sets(W1: np.ndarray, X: np.ndarray, k: int, n: int) -> np.ndarray:
    """Pre-activations as (unit, context, object) for the task's sample order."""
    return (W1 @ X.T).reshape(len(W1), k, n)


def size_masses(W1: np.ndarray, W2: np.ndarray, X: np.ndarray, k: int, n: int) -> dict[int, float]:
    """Measured mass by set size, ``Σ ‖W2[:,u]‖ Σ_{c∈S(u,o)} a_u(o,c)`` (find_pathways' formula,
    with a unit on wherever its pre-activation is positive)."""
    A = np.maximum(cell_sets(W1, X, k, n), 0.0)
    r = np.linalg.norm(W2, axis=0)
    out: dict[int, float] = defaultdict(float)
    for u in range(len(W1)):
        for o in range(n):
            S = np.nonzero(A[u, :, o] > 0)[0]
            if len(S):
                out[len(S)] += r[u] * A[u, S, o].sum()
    total = sum(out.values())
    return {j: round(float(out[j] / total), 3) for j in sorted(out, reverse=True)}


def trajectory(k: int, seed: int) -> None:
    X, Y, coords = rp.tasks.contextual_task(k)
    net = rp.tasks.paper_network(k, seed=seed)
    n = int(np.max(coords["object"])) + 1
    Xn = X.numpy()
    on0 = cell_sets(net[0].weight.detach().numpy(), Xn, k, n) > 0
    rows = []

    def callback(epoch: int, loss: float) -> None:
        if epoch in TRAJECTORY_EPOCHS:
            W1, W2 = net[0].weight.detach().numpy(), net[2].weight.detach().numpy()
            on = cell_sets(W1, Xn, k, n) > 0
            rows.append((epoch, loss, float((on == on0).all(axis=1).mean()), size_masses(W1, W2, Xn, k, n),
                         on.all(axis=1)))

    rp.tasks.train_full_batch(net, X, Y, progress=False, callback=callback)
    W1, W2 = net[0].weight.detach().numpy(), net[2].weight.detach().numpy()
    A = np.maximum(cell_sets(W1, Xn, k, n), 0.0)
    size = (A > 0).sum(axis=1)  # (unit, object): size of the final active set
    cell_mass = np.linalg.norm(W2, axis=0)[:, None] * A.sum(axis=1)
    print("  (last column: share of the final mass of each set size on (unit, object) cells that were "
          "open in every context at that epoch)")
    for epoch, loss, same, sizes, all_open in rows:
        from_shared = {j: round(float(cell_mass[(size == j) & all_open].sum() / cell_mass[size == j].sum()), 2)
                       for j in range(k, 0, -1) if cell_mass[size == j].sum() > 0}
        print(f"  epoch {epoch:5d}  ReLU loss {loss:7.2f}  cells with their init set {same:.2f}  mass by |S| "
              f"{sizes}  {from_shared}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="3,4,5")
    ap.add_argument("--seeds", default="41,42,43", help="one seed per task, or one list for all")
    ap.add_argument("--scan", default="", help="comma-separated factors on the untrained weights")
    ap.add_argument("--trajectory", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ks = [int(v) for v in args.tasks.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    pairs = list(zip(ks, seeds)) if len(seeds) == len(ks) else [(k, s) for k in ks for s in seeds]
    for k, seed in pairs:
        X, Y, coords = rp.tasks.contextual_task(k)
        net = rp.tasks.paper_network(k, seed=seed)
        net0 = copy.deepcopy(net)
        rp.tasks.train_full_batch(net, X, Y, progress=False)
        pw = measured(net, X, coords)
        pred = rp.predict_structure(X, Y, context=coords["context"], within=coords["object"], network=net0)
        table = rp.compare_structure(pred, pw)["per_set"]
        print(f"K={k} seed={seed}: TV {rp.compare_structure(pred, pw)['tv']:.3f}  predicted by |S| "
              f"{by_size(dict(zip(table['contexts'], table['mass_a'])))}  measured "
              f"{by_size(dict(zip(table['contexts'], table['mass_b'])))}", flush=True)
        for factor in [float(v) for v in args.scan.split(",") if v]:
            scaled = copy.deepcopy(net0)
            with torch.no_grad():
                for p in scaled.parameters():
                    p.mul_(factor)
            setup = ContextSetRace(X, Y, coords["context"], coords["object"], "auto", scaled, None, None,
                                   DEFAULT_N_UNITS)
            sets = [tuple(S) for S in pred.race["contexts"].values]
            race = setup.race(sets, lr=1e-3, epochs=8001, rule="joint")
            mass = dict(zip(sets, structure_mass(race["maps"].values, race["gates"].values)))
            print(f"  weights x{factor:g} (π0 x{factor ** 2:g}), union race without pruning: TV "
                  f"{rp.compare_structure(mass, pw)['tv']:.3f}  predicted by |S| {by_size(mass)}", flush=True)
        if args.trajectory:
            trajectory(k, seed)


if __name__ == "__main__":
    main()
