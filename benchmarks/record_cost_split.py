"""Where recording's cost goes: a record's fixed cost and its cost per batch.

For one model of ``record_overhead.py``, interleaved rounds time

* a plain ``torch.no_grad()`` forward and ``rp.record`` over the first batch only, and over
  all ``n`` batches;
* two floors over all batches, pre-hooks on the same ReLU calls that do nothing but
  ``numpy.greater(input, 0, out=buffer)``: into one reused buffer per call (already mapped,
  in cache where it fits), and into the rows of a fresh ``(samples, units)`` result whose
  pages a helper thread maps while the model runs, as ``rp.record`` does.

With ``d(k)`` the median over rounds of (method − plain forward) on ``k`` batches, the
per-batch cost is ``(d(n) − d(1)) / (n − 1)`` and the fixed cost (sites, the dataset, the
first pass's discovery) is ``d(1)`` less one batch. Both clocks are shown: wall time
(``time.perf_counter``) and the main thread's CPU time (``time.thread_time``), which moves
less with other load on a shared machine and leaves out the sink's page-mapping helper.

Run: ``python benchmarks/record_cost_split.py [--model resnet18] [--rounds 21]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

import relu_probe as rp
from record_overhead import Case, call, mlp_case, plain, resnet_case
from relu_probe.recording.sinks import _fresh_array, _Populator


def relu_input_shapes(case: Case) -> list[tuple[int, ...]]:
    """Per-sample shape of every ReLU call's input, in call order (one forward of the first batch)."""
    shapes: list[tuple[int, ...]] = []
    handles = [m.register_forward_pre_hook(lambda _m, a: shapes.append(tuple(a[0].shape[1:]))) for m in case.relus]
    try:
        with torch.no_grad():
            call(case.model, case.batches[0])
    finally:
        for h in handles:
            h.remove()
    return shapes


def compare_hooks(case: Case, fresh: bool) -> Callable[[], None]:
    """The floor: each ReLU input compared into a buffer, nothing else (see module docstring)."""
    width = sum(int(np.prod(s)) for s in relu_input_shapes(case))
    reused: dict[int, np.ndarray] = {}  # call index -> its buffer

    def run() -> None:
        rows = populator = None
        if fresh:
            rows = _fresh_array((case.n_samples, width), np.dtype(bool))
            populator = _Populator([rows])  # mapped by a helper thread while the model runs, as in rp.record
        at = {"call": 0, "row": 0, "unit": 0}

        def hook(module: torch.nn.Module, args: tuple) -> None:
            x = args[0].detach().numpy()
            if rows is None:
                out = reused.setdefault(at["call"], np.empty(x.shape, bool))
            else:
                n = x[0].size
                out = rows[at["row"]:at["row"] + len(x), at["unit"]:at["unit"] + n].view()
                out.shape = x.shape
                at["unit"] += n
            np.greater(x, 0, out=out)
            at["call"] += 1

        handles = [m.register_forward_pre_hook(hook) for m in case.relus]
        try:
            with torch.no_grad():
                for b in case.batches:
                    at["call"], at["unit"] = 0, 0
                    call(case.model, b)
                    at["row"] += len(b)
        finally:
            for h in handles:
                h.remove()
            if populator is not None:
                populator.finish()

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=("mlp", "resnet18"))
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    case = {"mlp": lambda: mlp_case(4096, 256), "resnet18": lambda: resnet_case(512, 64, 32)}[args.model]()
    first = Case(case.name, case.model, case.batches[:1], case.relus, case.calls, len(case.batches[0]))
    runs: dict[str, Callable[[], object]] = {
        "plain, 1 batch": lambda: plain(first),
        "record, 1 batch": lambda: rp.record(case.model, first.batches, progress=False),
        "plain": lambda: plain(case),
        "record": lambda: rp.record(case.model, case.batches, progress=False),
        "compare into a reused buffer": compare_hooks(case, fresh=False),
        "compare into fresh, mapped rows": compare_hooks(case, fresh=True),
    }
    for fn in runs.values():  # warm-up
        fn()
    clocks = {"wall": time.perf_counter, "main-thread CPU": time.thread_time}
    times: dict[str, dict[str, list[float]]] = {c: {k: [] for k in runs} for c in clocks}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            start = {c: clock() for c, clock in clocks.items()}
            fn()
            for c, clock in clocks.items():
                times[c][key].append(clock() - start[c])
    n = len(case.batches)
    print(f"torch {torch.__version__}, threads 1, {args.rounds} interleaved rounds; {case.name}, "
          f"{case.n_samples} samples in {n} batches")
    for c in clocks:
        t = times[c]

        def extra(key: str, base: str = "plain") -> float:
            return statistics.median(a - b for a, b in zip(t[key], t[base])) * 1e3

        d1, dn = extra("record, 1 batch", "plain, 1 batch"), extra("record")
        per_batch = (dn - d1) / (n - 1)
        plain_ms = statistics.median(t["plain"]) * 1e3
        print(f"\n{c}: plain forward {plain_ms:.1f} ms ({plain_ms / n:.1f} ms per batch)")
        print(f"  record: +{dn:.1f} ms = fixed {d1 - per_batch:.1f} ms + {n} x {per_batch:.2f} ms per batch "
              f"({per_batch / (plain_ms / n):.1%} of a batch); record / plain "
              f"{statistics.median(a / b for a, b in zip(t['record'], t['plain'])):.3f}")
        for key in ("compare into a reused buffer", "compare into fresh, mapped rows"):
            e = extra(key)
            print(f"  {key}: +{e:.1f} ms ({e / n:.2f} ms per batch); / plain "
                  f"{statistics.median(a / b for a, b in zip(t[key], t['plain'])):.3f}")


if __name__ == "__main__":
    main()
