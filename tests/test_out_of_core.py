"""Analysis of dask-backed stores: same results as in memory, memory bounded by the chunk size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from _deps import require, unavailable

import relu_probe as rp

require("zarr")
require("dask")


@pytest.fixture(scope="module")
def trained():
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, seed=0)
    rp.tasks.train_full_batch(model, X, Y, epochs=1501)
    # 10 noisy repeats of every (object, context) cell: 240 samples
    gen = torch.Generator().manual_seed(0)
    Xr = X.repeat(10, 1) + 0.02 * torch.randn(240, 11, generator=gen, dtype=torch.float64)
    coords_r = {k: np.tile(v, 10) for k, v in coords.items()}
    return model, Xr, coords_r


def test_store_analysis_equals_in_memory(tmp_path, trained):
    model, X, coords = trained
    memory = rp.record(model, X, coords=coords, values=True)
    lazy = rp.record(model, X, coords=coords, values=True, store=tmp_path / "g.zarr", chunk_size=32)
    assert lazy.activation.chunks is not None

    for by in ("context", ["context", "object"]):
        a, b = rp.gating_profile(memory, by), rp.gating_profile(lazy, by)
        np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-12)

    imp_m = rp.unit_importance(model, memory)
    imp_l = rp.unit_importance(model, lazy)
    np.testing.assert_allclose(imp_m.values, imp_l.values, rtol=1e-9)

    pw_m = rp.find_pathways(memory, "context", "object", importance=imp_m)
    pw_l = rp.find_pathways(lazy, "context", "object", importance=imp_l)
    assert list(pw_m.mass["contexts"].values) == list(pw_l.mass["contexts"].values)
    np.testing.assert_allclose(pw_m.mass.values, pw_l.mass.values, rtol=1e-9)
    np.testing.assert_array_equal(pw_m.labels.values, pw_l.labels.values)

    s_m = rp.scores(pw_m, memory, literature=False)
    s_l = rp.scores(pw_l, lazy, literature=False)
    np.testing.assert_allclose(s_m.values, s_l.values, rtol=1e-9)


def test_analysis_on_a_dask_distributed_local_cluster(tmp_path, trained):
    distributed = require("distributed")
    model, X, coords = trained
    memory = rp.record(model, X, coords=coords, values=True)
    rp.record(model, X, coords=coords, values=True, store=tmp_path / "g.zarr", chunk_size=32)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            lazy = rp.load(tmp_path / "g.zarr")
            pw_l = rp.find_pathways(lazy, "context", "object")
            s_l = rp.scores(pw_l, lazy, literature=False)
            profile_l = rp.gating_profile(lazy, "context")
    pw_m = rp.find_pathways(memory, "context", "object")
    assert list(pw_m.mass["contexts"].values) == list(pw_l.mass["contexts"].values)
    np.testing.assert_allclose(pw_m.mass.values, pw_l.mass.values, rtol=1e-9)
    np.testing.assert_allclose(rp.scores(pw_m, memory, literature=False).values, s_l.values, rtol=1e-9)
    np.testing.assert_allclose(rp.gating_profile(memory, "context").values, profile_l.values, atol=1e-12)


# Runs in a fresh interpreter. After a warm-up analysis of a tiny store (imports, first-call
# set-up) it measures each step from a clean start: it resets the kernel's peak resident size
# (Linux: writing 5 to /proc/self/clear_refs sets VmHWM to VmRSS), runs the step and records by
# how much the peak rose above the resident size at the reset. Steps: the analysis, then the
# control (every gate in memory at once).
PEAK_SCRIPT = textwrap.dedent("""
    import gc, json, re, sys
    import dask
    import relu_probe as rp

    def status(field):  # bytes; VmRSS: resident now, VmHWM: peak resident since the reset
        with open("/proc/self/status") as f:
            return int(re.search(rf"^{field}:\\s+(\\d+) kB", f.read(), re.M).group(1)) * 1024

    def analyse(path):
        ds = rp.load(path)
        rp.gating_profile(ds, ["context", "object"])
        pw = rp.find_pathways(ds, "context", "object")
        rp.scores(pw, ds, literature=False)

    def materialise(path):
        rp.load(path).gate.values

    def growth(step, path):
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = status("VmRSS")
        step(path)
        return status("VmHWM") - base

    warm_up, path = sys.argv[1:3]
    dask.config.set(scheduler="synchronous")  # one chunk in flight: the bound under test
    analyse(warm_up)
    print(json.dumps({"analyse": growth(analyse, path), "materialise": growth(materialise, path)}))
""")


def _record_wide(path, n, chunk):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4000), torch.nn.ReLU(), torch.nn.Linear(4000, 2))
    X = torch.randn(n, 8, generator=torch.Generator().manual_seed(1))
    coords = {"context": np.arange(n) % 3, "object": (np.arange(n) // 3) % 8}
    rp.record(model, X, coords=coords, store=path, chunk_size=chunk, batch_size=chunk)


def test_peak_memory_is_bounded_by_the_chunk_not_the_dataset(tmp_path):
    if not os.access("/proc/self/clear_refs", os.W_OK):
        unavailable("the peak-memory check resets the peak resident size through Linux's /proc/self/clear_refs")
    n_units, chunk, n = 4000, 500, 48000
    _record_wide(tmp_path / "warm.zarr", 64, 32)
    _record_wide(tmp_path / "g.zarr", n, chunk)
    script = tmp_path / "peak.py"
    script.write_text(PEAK_SCRIPT)

    out = subprocess.run([sys.executable, str(script), str(tmp_path / "warm.zarr"), str(tmp_path / "g.zarr")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    growth = json.loads(out.stdout.strip().splitlines()[-1])

    # Working memory for one sample chunk: its packed bits, its unpacked gates and float64
    # work copies for the reductions; the bound allows four float64 copies of the chunk.
    chunk_bound = 4 * 8 * chunk * n_units
    whole = n * n_units  # the store's gates unpacked as bool: what loading them all costs
    assert 3 * chunk_bound <= whole  # the sizes are chosen so that the bound can tell them apart
    assert growth["analyse"] < chunk_bound, (growth, chunk_bound)
    # the control: the same measurement sees an allocation of the size the bound excludes
    assert growth["materialise"] >= whole, (growth, whole)


def test_one_site_of_a_loaded_store_is_still_reduced_from_its_packed_bits(tmp_path):
    """Per-site analysis selects a site's units; a run of units starting on a byte keeps the
    packed reduction path, and any selection gives the in-memory result."""
    import torch
    from torch import nn

    from relu_probe.data import reduce
    from relu_probe.data.access import as_recording

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 11), nn.ReLU(), nn.Linear(11, 1))
    x = torch.randn(300, 4)
    coords = {"c": np.arange(300) % 3}
    stored = as_recording(rp.record(model, x, coords=coords, store=tmp_path / "s", chunk_size=64))
    memory = as_recording(rp.record(model, x, coords=coords))
    for site in ("1", "3"):  # units 0-15 and 16-26: both start on a byte
        part = stored.select_sites(site)
        assert part.ds.gate.data.name in reduce._PACKED
        np.testing.assert_array_equal(rp.gating_profile(part, "c").values,
                                      rp.gating_profile(memory.select_sites(site), "c").values)
    unaligned = stored.isel_units(np.arange(3, 20))
    assert unaligned.ds.gate.data.name not in reduce._PACKED
    np.testing.assert_array_equal(rp.gating_profile(unaligned, "c").values,
                                  rp.gating_profile(memory.isel_units(np.arange(3, 20)), "c").values)
    assert reduce.packed_unit_range(stored.ds.gate.data, 8, 12) is None  # ends inside a byte
