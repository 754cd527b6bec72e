"""A TrainingMonitor store survives a real SIGKILL at any point of an append.

A subprocess appends snapshots and kills itself (SIGKILL, no clean-up of any kind) at a chosen
file write of one append; the store it leaves must read as its complete snapshots, and
continuing it must give exactly the store of an uninterrupted run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

import relu_probe as rp
from _deps import require

require("zarr")
sys.path.insert(0, str(Path(__file__).parent))
import _monitor_kill_job as job  # noqa: E402

JOB = Path(job.__file__)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted store, and the number of file writes of the append of step 2."""
    path = tmp_path_factory.mktemp("ref") / "mon.zarr"
    counter = job.WriteCounter()
    counter.install()
    try:
        job.run(path, rp.tasks.paper_network(3), before_append=lambda step: setattr(counter, "armed", step == 2))
    finally:
        counter.uninstall()
    assert counter.count >= 3  # resizes, rows and the commit
    return rp.load(path).load(), counter.count


def killed_store(tmp_path, step, write, where):
    path = tmp_path / "mon.zarr"
    proc = subprocess.run([sys.executable, str(JOB), str(path), str(step), str(write), where],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, f"not killed at write {write} ({where}): {proc.stdout} {proc.stderr}"
    return path


def check_killed_during_step_2(tmp_path, reference, write, where):
    expected, _ = reference
    path = killed_store(tmp_path, 2, write, where)
    stored = rp.load(path).load()  # reads: exactly the two complete snapshots
    assert list(stored.step.values) == [0, 1]
    xr.testing.assert_identical(expected.isel(step=slice(0, 2)), stored)
    mon = job.run(path, rp.tasks.paper_network(3))  # continuing gives the uninterrupted store
    assert mon.steps == [0, 1, 2, 3]
    xr.testing.assert_identical(expected, rp.load(path).load())


def points(n_writes):
    """Kill points inside one append of *n_writes* file writes: while the arrays are resized,
    while the rows are written, and inside the commit (its file written, not yet renamed)."""
    return [(max(2, n_writes // 4), "before"), (max(2, (3 * n_writes) // 4), "before"), (n_writes, "inside")]


@pytest.mark.parametrize("point", range(3))
def test_kill_during_an_append_leaves_a_readable_store_that_continues_exactly(tmp_path, reference, point):
    write, where = points(reference[1])[point]
    check_killed_during_step_2(tmp_path, reference, write, where)


@pytest.mark.slow
def test_kill_at_every_write_of_an_append(tmp_path, reference):
    for write in range(1, reference[1] + 1):
        for where in ("before", "inside"):
            check_killed_during_step_2(tmp_path / f"{write}{where}", reference, write, where)


def test_kill_during_the_first_snapshot(tmp_path, reference):
    """No snapshot is complete: loading says so (one clear error), continuing starts afresh."""
    expected, _ = reference
    path = killed_store(tmp_path, 0, 3, "before")
    with pytest.raises(rp.errors.StoreError, match="without a complete snapshot yet"):
        rp.load(path)
    job.run(path, rp.tasks.paper_network(3))
    xr.testing.assert_identical(expected, rp.load(path).load())
