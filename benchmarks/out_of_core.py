"""Out-of-core analysis throughput on a synthetic bit-packed gate store.

Builds a store of ``--units`` × ``--samples`` random gates (default 10^5 × 10^5: 1.25 GB
packed, 10 GB as bool), then, in a fresh process, times ``rp.gating_profile(ds, "context")``
on the lazily loaded store (dask, all cores) against a baseline measured in the same run:
reading and decompressing the same packed chunks and touching every byte. Reports packed
MB/s, the ratio to the baseline and the analysis process's peak RSS.

Run: ``python benchmarks/out_of_core.py [--samples N] [--units U] [--keep PATH]``.
Target: >= 200 MB/s of packed gates on 2 cores, peak memory bounded by the chunk size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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


def analyse(path: str) -> dict:
    """In this process: time the baseline read and the gating profile; report peak RSS."""
    import dask.array as da

    import relu_probe as rp

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raw = da.from_zarr(os.path.join(path, "gate_bits"))
    start = time.perf_counter()
    raw.map_blocks(lambda b: np.array([[int(b.max())]]), chunks=((1,) * raw.numblocks[0], (1,))).compute()
    read_s = time.perf_counter() - start
    ds = rp.load(path)
    start = time.perf_counter()
    profile = rp.gating_profile(ds, "context")
    profile_s = time.perf_counter() - start
    assert profile.shape == (ds.sizes["unit"], 3)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chunk_bytes = int(raw.chunks[0][0]) * int(raw.shape[1])
    return {"read_s": read_s, "profile_s": profile_s, "peak_rss_mb": rss1 / 1024,
            "rss_growth_mb": (rss1 - rss0) / 1024, "chunk_mb": chunk_bytes / 2**20,
            "packed_mb": raw.nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=512)
    parser.add_argument("--keep", type=str, default=None, help="store path to keep (default: a temp dir)")
    parser.add_argument("--analyse", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.analyse:
        print(json.dumps(analyse(args.analyse)))
        return
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="relu_probe_ooc_")) / "gates.zarr"
    try:
        start = time.perf_counter()
        packed = build_store(root, args.samples, args.units, args.chunk_rows)
        print(f"built {args.samples} × {args.units} store ({packed / 2**20:.0f} MB packed) in "
              f"{time.perf_counter() - start:.1f} s")
        out = subprocess.run([sys.executable, __file__, "--analyse", str(root)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"baseline (read + decompress + touch every byte): {r['read_s']:.2f} s = "
              f"{r['packed_mb'] / r['read_s']:.0f} MB/s")
        print(f"gating_profile(ds, 'context'):                     {r['profile_s']:.2f} s = "
              f"{r['packed_mb'] / r['profile_s']:.0f} MB/s packed (ratio to baseline {r['profile_s'] / r['read_s']:.2f})")
        print(f"analysis process peak RSS {r['peak_rss_mb']:.0f} MB (grew {r['rss_growth_mb']:.0f} MB); "
              f"chunk {r['chunk_mb']:.1f} MB packed, {r['chunk_mb'] * 8:.0f} MB as bool; data {r['packed_mb']:.0f} MB packed")
    finally:
        if not args.keep:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
