"""Run by tests/test_distributed.py under torchrun (or as two plain processes): record a
store with every rank.

    python _distributed_job.py STORE MODE      # MODE: overwrite | resume | fail-rank1 | slow

``fail-rank1``: rank 1's model raises on its second batch while rank 0 works slowly (1 s per
batch); ``slow``: rank 0 works slowly (0.4 s per batch), nothing fails. Every rank prints how
it ended and exits 1 if it raised.
"""

import sys
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

import relu_probe as rp
from relu_probe.adapters.distributed import record_distributed

store, mode = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo", timeout=timedelta(seconds=120))
rank = dist.get_rank()
torch.manual_seed(0)
task = rp.tasks.contextual_task(3)
model = rp.tasks.paper_network(3, seed=0, init_std=0.3)
X = task.X.repeat(5, 1)                      # 120 samples
coords = {k: np.tile(v, 5) for k, v in task.coords.items()}
if mode in ("fail-rank1", "slow"):
    calls = []

    def misbehave(module, args):
        calls.append(1)
        if mode == "fail-rank1" and rank == 1 and len(calls) == 2:
            raise RuntimeError("rank 1's model broke")
        if rank == 0 and len(calls) > 1:  # not the site-discovery pass
            time.sleep(1.0 if mode == "fail-rank1" else 0.4)

    model.register_forward_pre_hook(misbehave)
start = time.monotonic()
try:
    ds = record_distributed(model, X, store, coords=coords, batch_size=7, chunk_size=16,
                            values=True, overwrite=(mode != "resume"), resume=(mode == "resume"))
except Exception as exc:
    print(f"rank {rank} raised after {time.monotonic() - start:.1f} s: {type(exc).__name__}: {exc}", flush=True)
    try:  # a process group left to the interpreter's shutdown can abort (SIGABRT) once its peer is gone
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - the exit code below is what the test reads
        pass
    sys.exit(1)
assert ds.sizes["sample"] == 120
print(f"rank {rank} ok: {ds.sizes}", flush=True)
dist.destroy_process_group()
