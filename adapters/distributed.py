"""Multi-process recording with ``torch.distributed`` (``torchrun``): every rank records a
disjoint, chunk-aligned shard of the inputs into one zarr gate store.

Run the same script on every rank::

    # torchrun --nproc_per_node=4 record_job.py
    import torch.distributed as dist
    from relu_probe.adapters.distributed import record_distributed

    dist.init_process_group("gloo")            # or "nccl"
    ds = record_distributed(model, X, "gates.zarr", coords=coords, overwrite=True)

Rank 0 creates the store (coords, attrs, empty arrays); after a barrier each rank fills the
sample chunks of its shard through explicit sample ids (zarr region writes — no two ranks
touch one chunk); after a final barrier every rank returns the lazily loaded store, which
is identical to a single-process ``rp.record(..., store=...)``. An interrupted job is
resumed by running it again with ``resume=True``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..data.store import StoreIncompleteWarning, load, read_layout
from ..errors import InputError, StoreError, ValueInputError, describe
from ..recording.inputs import DEFAULT_BATCH_SIZE
from ..recording.model import unwrap_model
from ..recording.recorder import create_store, record

__all__ = ["record_distributed", "shard_rows"]


def shard_rows(n_samples: int, chunk_rows: int, rank: int, world_size: int) -> np.ndarray:
    """Rows of rank *rank*: a contiguous run of whole chunks (``n_chunks * r // W`` to
    ``n_chunks * (r + 1) // W``), so ranks never share a chunk."""
    n_chunks = -(-n_samples // chunk_rows)
    first = n_chunks * rank // world_size
    last = n_chunks * (rank + 1) // world_size
    return np.arange(first * chunk_rows, min(last * chunk_rows, n_samples), dtype=np.int64)


def _take(inputs: Any, rows: np.ndarray) -> Any:
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        return inputs[torch.as_tensor(rows) if isinstance(inputs, torch.Tensor) else rows]
    if isinstance(inputs, torch.utils.data.Dataset):
        return torch.utils.data.Subset(inputs, rows.tolist())
    raise InputError(
        "`inputs` of record_distributed must be a Tensor, a numpy array or a map-style "
        f"torch Dataset (so each rank can take its shard), got {describe(inputs)}."
    )


def record_distributed(
    model: torch.nn.Module,
    inputs: Any,
    store: str | os.PathLike,
    *,
    coords: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    group: Any = None,
    **record_kwargs: Any,
) -> xr.Dataset:
    """Record *inputs* with every rank of the current process group into one store.

    Parameters
    ----------
    model : torch.nn.Module
        The same model on every rank (on each rank's device).
    inputs : Tensor, ndarray or map-style torch Dataset
        All samples, the same on every rank; each rank takes its shard. Dataset items are
        batched with a ``DataLoader(batch_size=...)``.
    store : path
        Store directory, on a file system every rank can reach.
    coords : mapping, optional
        Per-sample coords of all samples.
    batch_size, chunk_size :
        As in :func:`relu_probe.record` (``chunk_size`` defaults to ~8 MiB chunks).
    overwrite, resume : bool
        Replace an existing store, or continue an interrupted job (only unfinished chunks
        are recorded).
    group : ProcessGroup, optional
        The process group (default: the world).
    **record_kwargs :
        Passed to :func:`relu_probe.record` (``sites``, ``values``, ``units`` …).

    Returns
    -------
    xarray.Dataset
        The whole store, lazily loaded, on every rank.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueInputError(
            "record_distributed needs an initialised torch.distributed process group: launch with "
            "torchrun and call torch.distributed.init_process_group(...) first (or use rp.record)."
        )
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    n = len(inputs)
    if n == 0:
        raise ValueInputError("`inputs` is empty: it holds no samples.")
    loader_kwargs = {"batch_size": batch_size or DEFAULT_BATCH_SIZE}

    def batches(data: Any) -> Any:
        return torch.utils.data.DataLoader(data, **loader_kwargs) if isinstance(data, torch.utils.data.Dataset) else data

    module = unwrap_model(model)
    failure: list[Any] = [None]
    if rank == 0 and not resume:
        try:
            _create_store(module, inputs, store, coords=coords, n=n, batch_size=batch_size,
                          chunk_size=chunk_size, overwrite=overwrite, batches=batches, **record_kwargs)
        except Exception as exc:  # every rank must learn of it, or the others wait forever
            failure[0] = f"{type(exc).__name__}: {exc}"
            dist.broadcast_object_list(failure, src=0, group=group)
            raise
    dist.broadcast_object_list(failure, src=0, group=group)
    if failure[0] is not None:
        raise StoreError(f"rank 0 could not create the store {str(store)!r}: {failure[0]}")
    chunk_rows, sample_ids = read_layout(store)
    rows = shard_rows(n, chunk_rows, rank, world)
    if len(rows):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreIncompleteWarning)  # other ranks are still writing
            record(module, batches(_take(inputs, rows)), store=store, resume=True,
                   sample_ids=sample_ids[rows], batch_size=batch_size,
                   **{k: v for k, v in record_kwargs.items() if k != "sample_ids"})
    dist.barrier(group)
    return load(store)


#: The record() options that fix a store's layout (passed on to create_store).
_LAYOUT_OPTIONS = ("sites", "values", "units", "channel_dim", "activations", "input_key", "eval_mode")


def _create_store(module: torch.nn.Module, inputs: Any, store: Any, *, coords: Any, n: int,
                  batch_size: int | None, chunk_size: int | None, overwrite: bool, batches: Any,
                  **record_kwargs: Any) -> None:
    """Rank 0: discover the sites on the first batch and write the store skeleton."""
    first = _take(inputs, np.arange(min(n, batch_size or DEFAULT_BATCH_SIZE)))
    create_store(module, batches(first), store, n_samples=n, coords=coords, chunk_size=chunk_size,
                 overwrite=overwrite, batch_size=batch_size,
                 **{k: v for k, v in record_kwargs.items() if k in _LAYOUT_OPTIONS})
