"""Analysis of dask-backed stores: same results as in memory, memory bounded by the chunk size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import relu_probe as rp

pytest.importorskip("zarr")
pytest.importorskip("dask")


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
    distributed = pytest.importorskip("distributed")
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


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    import relu_probe as rp
    path, n = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4000), torch.nn.ReLU(), torch.nn.Linear(4000, 2))
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(n, 8, generator=gen)
    coords = {"context": np.arange(n) % 3, "object": (np.arange(n) // 3) % 8}
    rp.record(model, X, coords=coords, store=path, chunk_size=1000, batch_size=1000)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import dask
    dask.config.set(scheduler="synchronous")   # one chunk in flight: the bound under test
    ds = rp.load(path)
    rp.gating_profile(ds, ["context", "object"])
    pw = rp.find_pathways(ds, "context", "object")
    rp.scores(pw, ds, literature=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kb": base, "peak_kb": peak}))
""")


def test_peak_memory_does_not_grow_with_the_number_of_samples(tmp_path):
    script = tmp_path / "peak.py"
    script.write_text(PEAK_SCRIPT)
    growth = {}
    for n in (6000, 24000):
        out = subprocess.run([sys.executable, str(script), str(tmp_path / f"g{n}.zarr"), str(n)],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        growth[n] = (result["peak_kb"] - result["base_kb"]) * 1024
    unpacked = 24000 * 4000  # bytes the gates of the large store take as bool in memory
    # analysing 4x the samples costs less than 10% of what loading them would
    assert growth[24000] - growth[6000] < 0.1 * unpacked, growth
