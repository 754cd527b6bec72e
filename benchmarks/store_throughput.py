"""Streaming gates to a bit-packed zarr store: throughput and bytes on disk.

Records the same model and inputs three ways in one run — a plain forward pass, an
in-memory ``rp.record`` and ``rp.record(..., store=path)`` — interleaved and repeated, and
reports each time as a ratio to the plain forward (median over rounds) plus the store's size in bits per
unit-sample (packed gates only, and the whole store with coords and metadata). Also timed
alone: the input fingerprints a store record computes (SHA-256 over the input bytes, so
that a resume can check its inputs), part of the store's time.

Run: ``python benchmarks/store_throughput.py [--samples N] [--repeats R]``.
Target: <= 1.05 bits per unit-sample on disk.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import relu_probe as rp
from relu_probe.data.fingerprint import ChunkHasher
from relu_probe.recording.fingerprint import batch_inputs
from relu_probe.recording.inputs import Batch


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32768)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, args.width), nn.ReLU(), nn.Linear(args.width, args.width), nn.ReLU(),
                          nn.Linear(args.width, 10)).eval()
    x = torch.randn(args.samples, 256)
    batches = list(x.split(512))
    n_units = 2 * args.width
    root = Path(tempfile.mkdtemp(prefix="relu_probe_store_"))

    def plain() -> None:
        with torch.no_grad():
            for b in batches:
                model(b)

    def memory() -> None:
        rp.record(model, x, batch_size=512, progress=False)

    def store() -> None:
        rp.record(model, x, batch_size=512, progress=False, store=root / "g.zarr", overwrite=True)

    def fingerprints() -> None:
        hasher, start = ChunkHasher(4096, len(x)), 0
        for b in batches:
            hasher.add(torch.arange(start, start + len(b)).numpy(), batch_inputs(Batch((b,), {}, len(b))))
            start += len(b)

    runs = {"plain forward": plain, "record in memory": memory, "record to zarr store": store,
            "  of which fingerprints": fingerprints}
    try:
        for fn in runs.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for key, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = {k: statistics.median(t / p for t, p in zip(v, times["plain forward"])) for k, v in times.items()}
        unit_samples = args.samples * n_units
        print(f"{args.samples} samples × {n_units} units, {args.repeats} interleaved rounds "
              f"(torch threads {args.threads}); ratio = median over rounds of time / plain forward")
        for key, value in med.items():
            rate = unit_samples / value / 1e6
            print(f"  {key:<22} {value * 1e3:8.1f} ms  ratio {ratio[key]:6.3f}  ({rate:,.0f} M unit-samples/s)")
        gate_bits = folder_bytes(root / "g.zarr" / "gate_bits") * 8 / unit_samples
        total = folder_bytes(root / "g.zarr") * 8 / unit_samples
        print(f"  on disk: packed gates {gate_bits:.4f} bits per unit-sample; whole store {total:.4f} "
              "(target <= 1.05)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
