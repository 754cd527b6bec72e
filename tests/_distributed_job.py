"""Run by tests/test_distributed.py under torchrun: record a store with every rank."""

import sys

import numpy as np
import torch
import torch.distributed as dist

import relu_probe as rp
from relu_probe.adapters.distributed import record_distributed

store, mode = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
torch.manual_seed(0)
task = rp.tasks.contextual_task(3)
model = rp.tasks.paper_network(3, seed=0, init_std=0.3)
X = task.X.repeat(5, 1)                      # 120 samples
coords = {k: np.tile(v, 5) for k, v in task.coords.items()}
ds = record_distributed(model, X, store, coords=coords, batch_size=7, chunk_size=16,
                        values=True, overwrite=(mode == "overwrite"), resume=(mode == "resume"))
assert ds.sizes["sample"] == 120
print(f"rank {dist.get_rank()} ok: {ds.sizes}", flush=True)
dist.destroy_process_group()
