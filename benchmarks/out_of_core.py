"""Out-of-core analysis throughput on a synthetic bit-packed gate store.

Builds a store of ``--units`` × ``--samples`` random gates (default 10^5 × 10^5: 1.25 GB
packed, 10 GB as bool), then, in a fresh process, times ``rp.gating_profile(ds, "context")``
on the lazily loaded store (dask's threaded scheduler, all cores) against a baseline: reading
and decompressing the same packed chunks and touching every byte. After a warm-up pass (the
page cache then holds the store for every method alike) the methods run in interleaved
rounds; each time is the median over rounds, and each ratio the median of the per-round
ratios to the baseline (also for the process's CPU time, which moves less with other load on a
shared machine). A reference row reads, decompresses and touches the same chunks through the
analysis's own chunk reader (:class:`relu_probe.data.packed_chunks.PackedChunks`, which skips
zarr's asynchronous codec pipeline): the analysis against it is the cost of counting alone.
The profile is timed with the compiled set-bit kernel (numba) and with its numpy fallback.
Also reports the analysis process's peak RSS.

Run: ``python benchmarks/out_of_core.py [--samples N] [--units U] [--rounds R] [--keep PATH [--reuse]]``.
Target: analysis at >= 0.8 x the throughput of read + decompress (time <= 1.25 x), peak
memory bounded by the chunk size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _rounds import interleaved_rounds


def build_store(path: Path, n_samples: int, n_units: int, chunk_rows: int, seed: int = 0) -> float:
    """Write a synthetic store with random packed gates; return its packed size in bytes."""
    from relu_probe.data.schema import dataset_attrs, unit_coords
    from relu_probe.data.store import ZarrSink
    from relu_probe.recording.sites import SiteLayout

    layouts = {"fc": SiteLayout((n_units,), None)}
    coords = {"context": np.arange(n_samples) % 3, "object": (np.arange(n_samples) // 3) % 8}

    def attrs_for(specs):
        attrs = dataset_attrs(site_names=["fc"], layouts=layouts, readouts={"fc": ""}, units="element",
                              model_class="Synthetic")
        return attrs, unit_coords(["fc"], layouts, "element")

    sink = ZarrSink(path, n_inputs=n_samples, sample_ids=None, coords=coords, attrs_for=attrs_for,
                    mode="overwrite", chunk_rows=chunk_rows)
    sink.configure({"gate": (n_units, np.dtype(bool))})
    rng = np.random.default_rng(seed)
    n_bytes = -(-n_units // 8)
    bits = sink._arrays["gate_bits"]
    for chunk, start in enumerate(range(0, n_samples, chunk_rows)):
        stop = min(start + chunk_rows, n_samples)
        bits[start:stop] = rng.integers(0, 256, size=(stop - start, n_bytes), dtype=np.uint8)
        sink._done_array[chunk] = 1
    sink._done[:] = True
    sink.close()
    return float(n_samples) * n_bytes


def analyse(path: str, rounds: int) -> dict:
    """In this process: the baseline read and the gating profile (both kernels) in interleaved
    rounds; medians, per-round ratios and peak RSS."""
    import dask.array as da
    import zarr

    import relu_probe as rp
    from relu_probe.data import bitcount as _bitcount
    from relu_probe.data.packed_chunks import PackedChunks

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raw = da.from_zarr(os.path.join(path, "gate_bits"))
    ds = rp.load(path)
    compiled = _bitcount._compiled()

    def baseline() -> None:
        raw.map_blocks(lambda b: np.array([[int(b.max())]]), chunks=((1,) * raw.numblocks[0], (1,))).compute()

    stored = PackedChunks.of(zarr.open_array(os.path.join(path, "gate_bits"), mode="r"))
    row_chunks = raw.chunks[0]

    def touch_stored(index: np.ndarray) -> np.ndarray:
        i = int(index[0])
        return np.array([int(stored.read(i, row_chunks[i]).max())])

    def reader() -> None:
        da.arange(len(row_chunks), chunks=1).map_blocks(touch_stored, dtype=np.int64).compute()

    def profile(kernel) -> None:
        _bitcount._kernel = kernel
        try:
            out = rp.gating_profile(ds, "context")
        finally:
            _bitcount._kernel = compiled
        assert out.shape == (ds.sizes["unit"], 3)

    runs = {"baseline": baseline, "reader": reader, "compiled": lambda: profile(compiled),
            "numpy": lambda: profile(False)}
    if compiled is False:
        del runs["compiled"]
    baseline()  # warm-up: the page cache, numba's cached kernel
    reader()
    profile(compiled)
    times, cpu = interleaved_rounds(runs, rounds)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chunk_bytes = int(raw.chunks[0][0]) * int(raw.shape[1])
    return {
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio": {k: statistics.median(t / b for t, b in zip(v, times["baseline"])) for k, v in times.items()},
        "cpu_ratio": {k: statistics.median(t / b for t, b in zip(v, cpu["baseline"])) for k, v in cpu.items()},
        "vs_reader": {k: statistics.median(t / b for t, b in zip(v, times["reader"])) for k, v in times.items()},
        "cpu_vs_reader": {k: statistics.median(t / b for t, b in zip(v, cpu["reader"])) for k, v in cpu.items()},
        "peak_rss_mb": rss1 / 1024, "rss_growth_mb": (rss1 - rss0) / 1024,
        "chunk_mb": chunk_bytes / 2**20, "packed_mb": raw.nbytes / 2**20, "rounds": rounds,
    }


LABELS = {
    "baseline": "baseline: read + decompress + touch every byte",
    "reader": "reference: the same through the analysis's chunk reader",
    "compiled": "gating_profile(ds, 'context'), compiled kernel",
    "numpy": "gating_profile(ds, 'context'), numpy kernel",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--keep", type=str, default=None, help="store path to keep (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="analyse the --keep store if it exists (no rebuild)")
    parser.add_argument("--analyse", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.analyse:
        print(json.dumps(analyse(args.analyse, args.rounds)))
        return
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="relu_probe_ooc_")) / "gates.zarr"
    try:
        if not (args.reuse and args.keep and root.exists()):
            start = time.perf_counter()
            packed = build_store(root, args.samples, args.units, args.chunk_rows)
            print(f"built {args.samples} × {args.units} store ({packed / 2**20:.0f} MB packed) in "
                  f"{time.perf_counter() - start:.1f} s")
        out = subprocess.run([sys.executable, __file__, "--analyse", str(root), "--rounds", str(args.rounds)],
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mb = r["packed_mb"]
        print(f"{r['rounds']} interleaved rounds (medians); throughput of packed gates")
        for key, seconds in r["seconds"].items():
            print(f"  {LABELS[key]:<50} {seconds:6.2f} s  {mb / seconds:6.0f} MB/s  "
                  f"time / baseline {r['ratio'][key]:.2f} = {1 / r['ratio'][key]:.2f} x its throughput "
                  f"(CPU time / baseline {r['cpu_ratio'][key]:.2f}; time / reference {r['vs_reader'][key]:.2f}, "
                  f"CPU {r['cpu_vs_reader'][key]:.2f})")
        print(f"analysis process peak RSS {r['peak_rss_mb']:.0f} MB (grew {r['rss_growth_mb']:.0f} MB); "
              f"chunk {r['chunk_mb']:.1f} MB packed, {r['chunk_mb'] * 8:.0f} MB as bool; data {mb:.0f} MB packed")
    finally:
        if not args.keep:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
