"""Multi-process recording with torchrun (gloo on CPU) equals a single-process record."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


def two_processes(store: Path, mode: str) -> list[subprocess.Popen]:
    """Start ranks 0 and 1 as plain processes (no torchrun agent that would kill the others
    when one fails)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    return [subprocess.Popen([sys.executable, str(JOB), str(store), mode], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]


def finish(procs: list[subprocess.Popen], timeout: float = 100) -> list[tuple[int, str]]:
    """Each process's exit code and output."""
    try:
        return [(p.wait(timeout=timeout), p.stdout.read()) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.communicate()


def test_a_failing_rank_stops_every_rank_quickly_and_the_store_resumes(tmp_path):
    """Rank 1 raises on its second batch; rank 0 (1 s per batch, 10 batches to go) stops at its
    next batch instead of finishing — or waiting at a barrier for the process-group timeout."""
    import zarr

    path = tmp_path / "multi.zarr"
    start = time.monotonic()
    (code0, out0), (code1, out1) = finish(two_processes(path, "fail-rank1"))
    elapsed = time.monotonic() - start
    assert code1 == 1 and "rank 1 raised" in out1 and "rank 1's model broke" in out1, out1
    assert code0 == 1 and "rank 0 raised" in out0, out0
    assert "recording failed on 1 rank(s) — rank 1: ForwardError" in out0 and "resume=True" in out0, out0
    assert elapsed < 60, f"the ranks took {elapsed:.0f} s to stop"
    done = np.asarray(zarr.open_group(str(path), mode="r")["chunk_done"][:], dtype=bool)
    assert not done[:4].all(), "rank 0 did not stop early"
    assert not done[4:].any()
    proc = torchrun(path, "resume")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    xr.testing.assert_identical(single_process_reference(tmp_path).load(), rp.load(path).load())


def test_the_ranks_share_the_store_lock_and_other_processes_are_refused(tmp_path):
    """While a job runs, its ranks write under rank 0's lock and any other process is refused."""
    path = tmp_path / "multi.zarr"
    procs = two_processes(path, "slow")
    try:
        while not (path / "zarr.json").exists() and procs[0].poll() is None:
            time.sleep(0.05)
        model = rp.tasks.paper_network(3, seed=0, init_std=0.3)
        with pytest.raises(rp.errors.StoreError, match=rf"being written by another process \(pid {procs[0].pid} "):
            rp.record(model, rp.tasks.contextual_task(3).X.repeat(5, 1), store=path, resume=True, values=True)
    finally:
        outcome = finish(procs)
    assert [code for code, _ in outcome] == [0, 0], outcome
    xr.testing.assert_identical(single_process_reference(tmp_path).load(), rp.load(path).load())


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
