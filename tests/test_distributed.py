"""Multi-process recording with torchrun (gloo on CPU) equals a single-process record."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _deps import require

import relu_probe as rp

require("zarr")
JOB = Path(__file__).with_name("_distributed_job.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(store: Path, mode: str, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(JOB), str(store), mode]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def single_process_reference(tmp_path: Path) -> xr.Dataset:
    task = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, seed=0, init_std=0.3)
    X = task.X.repeat(5, 1)
    coords = {k: np.tile(v, 5) for k, v in task.coords.items()}
    return rp.record(model, X, coords=coords, values=True, store=tmp_path / "single.zarr", chunk_size=16, batch_size=7)


def test_two_ranks_write_a_store_identical_to_one_process(tmp_path):
    proc = torchrun(tmp_path / "multi.zarr", "overwrite")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok:") == 2
    multi = rp.load(tmp_path / "multi.zarr").load()
    reference = single_process_reference(tmp_path).load()
    xr.testing.assert_identical(reference, multi)


@pytest.mark.slow
def test_resumed_job_finds_every_chunk_done(tmp_path):
    proc = torchrun(tmp_path / "multi.zarr", "overwrite")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = single_process_reference(tmp_path).load()
    proc = torchrun(tmp_path / "multi.zarr", "resume")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    xr.testing.assert_identical(reference, rp.load(tmp_path / "multi.zarr").load())


def test_shards_are_disjoint_whole_chunks():
    from relu_probe.adapters.distributed import shard_rows

    for n, rows, world in [(120, 16, 2), (100, 7, 3), (5, 16, 4)]:
        shards = [shard_rows(n, rows, r, world) for r in range(world)]
        np.testing.assert_array_equal(np.concatenate(shards), np.arange(n))
        chunks = [set(s // rows) for s in shards]
        assert all(not (a & b) for i, a in enumerate(chunks) for b in chunks[i + 1:])


def test_record_distributed_without_process_group():
    from relu_probe.adapters.distributed import record_distributed

    with pytest.raises(rp.errors.ValueInputError, match="torchrun"):
        record_distributed(rp.tasks.paper_network(3), rp.tasks.contextual_task(3).X, "x.zarr")
