"""Run by tests/test_monitor_kill.py: take TrainingMonitor snapshots into a store and SIGKILL
this process at a chosen point of one append.

    python _monitor_kill_job.py STORE STEP WRITE WHERE

Snapshots steps 0–3 (skipping those already in STORE); during the append of step STEP the
process kills itself with SIGKILL just before its WRITE-th file write (WHERE="before"), or
after that write's temporary file is complete but before it is renamed into place
(WHERE="inside") — zarr writes every file as a temporary file plus a rename.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import relu_probe as rp

N_STEPS = 4


def weights_at(step: int):
    """The "trained" model at *step*: deterministic, different gates at every step."""
    return rp.tasks.paper_network(3, seed=100 + step).state_dict()


def run(store, model, *, steps=range(N_STEPS), before_append=None):
    """Snapshot *steps* into *store* (continuing it); ``before_append(step)`` runs first."""
    X, _, coords = rp.tasks.contextual_task(3)
    mon = rp.TrainingMonitor(model, X, coords=coords, every=1, store=store)
    for step in steps:
        if step in mon.steps:
            continue
        model.load_state_dict(weights_at(step))
        if before_append is not None:
            before_append(step)
        mon.snapshot(step, loss=0.5 / (step + 1))
    mon.close()
    return mon


class WriteCounter:
    """Counts zarr's file writes (``zarr.storage._local._put``); optionally dies at one."""

    def __init__(self, kill_at: int | None = None, where: str = "before") -> None:
        import pathlib

        import zarr.storage._local as local

        self.local, self.count, self.kill_at, self.where = local, 0, kill_at, where
        self.armed = False
        self._lock = threading.Lock()
        self._put = local._put
        self._replace = pathlib.Path.replace
        self._dying = threading.local()

    def put(self, path, value, exclusive=False):
        with self._lock:
            self.count += 1 if self.armed else 0
            hit = self.armed and self.count == self.kill_at
        if hit and self.where == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        self._dying.on = hit and self.where == "inside"
        return self._put(path, value, exclusive=exclusive)

    def install(self) -> None:
        import pathlib

        def replace(path, target):
            if getattr(self._dying, "on", False):  # the temporary file is written; die before the rename
                os.kill(os.getpid(), signal.SIGKILL)
            return self._replace(path, target)

        self.local._put = self.put
        pathlib.Path.replace = replace

    def uninstall(self) -> None:
        import pathlib

        self.local._put = self._put
        pathlib.Path.replace = self._replace


if __name__ == "__main__":
    store, kill_step, kill_at, where = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    counter = WriteCounter(kill_at, where)
    counter.install()

    def arm(step):
        counter.armed = step == kill_step

    run(store, rp.tasks.paper_network(3), before_append=arm)
    print("not killed", counter.count, flush=True)
