"""Scale: record → store → per-site pathways → scores for >= 10^5 units and >= 10^4 samples.

The model is a BERT with ReLU feed-forwards built from a config
(:func:`relu_probe.testing.bert_token_classifier`, randomly initialised: the point is the
pipeline's cost, not the structure found) on the multi-task sequence task
(:func:`relu_probe.testing.multitask_sequences`): every sequence appears under every task, so
the tasks are the contexts and the sequences the items. Tokens are the samples
(``samples="position"``): ``tasks × sequences × (1 + length)`` of them, and every feed-forward
neuron of every layer is a unit (``layers × ffn``).

Each size runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own:

1. ``rp.record(model, batches, samples="position", coords=..., store=path)``: the gates
   streamed to a bit-packed zarr store (1 bit per unit-sample), a chunk at a time;
   (a plain ``torch.no_grad()`` forward over the same batches is timed first, for scale);
2. ``rp.load(path)``: the store, lazily (dask);
3. ``rp.unit_importance(model, ds, method="readout")``;
4. ``rp.find_pathways(ds, by="task", within="sequence", importance=imp)`` per site (with
   ``per_site=True`` where ``find_pathways`` has it, else on each site's units in turn);
5. ``rp.scores(pw, ds, literature=False)``.

Memory: the gates are read one sample chunk at a time, so what grows with the number of
samples is only the per-sample coords; the decomposition holds ``units × items × contexts``
cells. ``--compare`` runs a second size with twice the tokens per item (sequences twice as
long, same items, half as many sequences per batch: the same tokens per batch) to show that
peak RSS does not follow the number of samples.

Run: ``python benchmarks/scale.py [--layers 4] [--ffn 25600] [--sequences 64] [--length 64]
[--threads 2] [--compare]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict:
    """One size, in this process: the time of each stage and the peak RSS."""
    import numpy as np
    import torch

    import relu_probe as rp
    from relu_probe.data.access import as_recording
    from relu_probe.testing import bert_token_classifier, multitask_sequences

    torch.set_num_threads(args.threads)
    task = multitask_sequences(args.sequences, tasks=("parity", "magnitude", "repeat"), length=args.length,
                               seed=0)
    model = bert_token_classifier(task, layers=args.layers, hidden=args.hidden, ffn=args.ffn, heads=4)
    rss_model = _rss_mb()
    root = Path(tempfile.mkdtemp(prefix="relu_probe_scale_"))
    times: dict[str, float] = {}
    rss: dict[str, float] = {}
    try:
        batches = task.batches(args.batch)
        start = time.perf_counter()
        with torch.no_grad():
            for batch in batches:
                model(**batch)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        rp.record(model, batches, samples="position", coords=task.coords,
                  store=root / "gates.zarr", progress=False)
        times["record to store"] = time.perf_counter() - start
        rss["record to store"] = _rss_mb()
        start = time.perf_counter()
        ds = rp.load(root / "gates.zarr")
        times["load"] = time.perf_counter() - start
        rss["load"] = _rss_mb()
        n_samples, n_units = ds.sizes["sample"], ds.sizes["unit"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            imp = rp.unit_importance(model, ds, method="readout")
            times["importance"] = time.perf_counter() - start
            rss["importance"] = _rss_mb()
            start = time.perf_counter()
            if "per_site" in inspect.signature(rp.find_pathways).parameters:
                pathways = [rp.find_pathways(ds, by="task", within="sequence", importance=imp, per_site=True)]
            else:  # per-site pathways before find_pathways had them: each site's units in turn
                rec = as_recording(ds)
                sites = list(dict.fromkeys(ds["site"].values.tolist()))
                pathways, parts = [], []
                for site in sites:
                    part = rec.select_sites(site)  # still reduced from the packed bits
                    site_imp = imp.sel(unit=part.ds["unit"].values)
                    parts.append(part)
                    pathways.append(rp.find_pathways(part, by="task", within="sequence",
                                                     importance=site_imp / site_imp.sum()))
            times["pathways (per site)"] = time.perf_counter() - start
            rss["pathways (per site)"] = _rss_mb()
            start = time.perf_counter()
            if len(pathways) == 1:
                table = rp.scores(pathways[0], ds, literature=False)
            else:
                table = [rp.scores(pw, part, literature=False) for pw, part in zip(pathways, parts)]
            times["scores"] = time.perf_counter() - start
            rss["scores"] = _rss_mb()
        gate_mb = n_samples * -(-n_units // 8) / 2**20
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"samples": int(n_samples), "units": int(n_units), "items": args.sequences, "times": times, "rss_after": rss,
            "total_s": sum(times.values()), "plain_forward_s": plain, "peak_rss_mb": _rss_mb(), "rss_after_model_mb": rss_model,
            "packed_mb": gate_mb, "bool_mb": gate_mb * 8}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=25600, help="feed-forward width (units per layer)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--sequences", type=int, default=64, help="value sequences (items) per task")
    parser.add_argument("--length", type=int, default=64, help="value tokens per sequence")
    parser.add_argument("--batch", type=int, default=32, help="recording batch size (sequences)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="also run sequences twice as long (2x samples)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run(args)))
        return
    # the second size: sequences twice as long, half as many per batch (the same tokens per batch)
    sizes = [(args.length, args.batch), (2 * args.length + 1, max(1, args.batch // 2))] if args.compare \
        else [(args.length, args.batch)]
    for length, batch in sizes:
        argv_child = [sys.executable, __file__, "--child", "--layers", str(args.layers), "--ffn", str(args.ffn),
                      "--hidden", str(args.hidden), "--sequences", str(args.sequences), "--length", str(length),
                      "--batch", str(batch), "--threads", str(args.threads)]
        out = subprocess.run(argv_child, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in r["times"].items())
        stages += f" (a plain forward over the same batches: {r['plain_forward_s']:.1f} s)"
        print(f"{r['units']} units × {r['samples']} samples ({r['items']} items × 3 tasks, {length + 1} tokens "
              f"each; gates {r['packed_mb']:.0f} MB packed, {r['bool_mb']:.0f} MB as bool): total "
              f"{r['total_s']:.1f} s — {stages}; peak RSS {r['peak_rss_mb']:.0f} MB "
              f"({r['rss_after_model_mb']:.0f} MB after building the model; after each stage: "
              + ", ".join(f"{k} {v:.0f}" for k, v in r["rss_after"].items()) + " MB)")


if __name__ == "__main__":
    main()
