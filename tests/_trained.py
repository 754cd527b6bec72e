"""Networks trained once per test session and shared by the slow reproductions (the paper's
two-hidden-layer network takes about 100 s to train on one core)."""

from __future__ import annotations

import functools

import numpy as np
import torch

import relu_probe as rp


@functools.lru_cache(maxsize=None)
def depth_network(seed: int = 0) -> tuple[torch.nn.Module, np.ndarray]:
    """The paper's depth network (11 → 420 → 420 → 60, init std 0.0006, lr 1e-3, 30001 epochs,
    as in the code of Jarvis et al., arXiv 2503.06181) trained on the 3-context task: the model
    and its loss curve. Treat the model as read-only (it is shared)."""
    torch.set_num_threads(1)
    X, Y, _ = rp.tasks.contextual_task(3)
    hp = rp.tasks.paper_hyperparameters(3, depth=2)
    model = rp.tasks.paper_network(3, depth=2, seed=seed)
    loss = rp.tasks.train_full_batch(model, X, Y, lr=hp["lr"], epochs=int(hp["epochs"]))
    return model, loss
