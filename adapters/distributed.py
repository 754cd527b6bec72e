"""Multi-process recording with ``torch.distributed`` (``torchrun``): every rank records a
disjoint, chunk-aligned shard of the inputs into one zarr gate store.

Run the same script on every rank::

    # torchrun --nproc_per_node=4 record_job.py
    import torch.distributed as dist
    from relu_probe.adapters.distributed import record_distributed

    dist.init_process_group("gloo")            # or "nccl"
    ds = record_distributed(model, X, "gates.zarr", coords=coords, overwrite=True)

Rank 0 creates the store (coords, attrs, empty arrays) and holds its writer lock for the
job; then each rank fills the sample chunks of its shard through explicit sample ids (zarr
region writes — no two ranks touch one chunk); every rank returns the lazily loaded store,
which is identical to a single-process ``rp.record(..., store=...)``. If any rank fails,
every rank raises as soon as the others reach the end of the phase (no rank waits for the
process-group timeout). An interrupted or failed job is resumed by running it again with
``resume=True``.
"""

from __future__ import annotations

import os
import threading
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import xarray as xr

from ..data.lock import Job
from ..data.outputs import GATE_STORE, open_output
from ..data.store import StoreIncompleteWarning, load, mark_complete, read_layout
from ..errors import InputError, StoreError, ValueInputError, describe
from ..recording.inputs import DEFAULT_BATCH_SIZE
from ..recording.model import unwrap_model
from ..recording.recorder import create_store, record_shard

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
        Per-sample coords of all samples (checked against the store's on resume).
    batch_size, chunk_size :
        As in :func:`relu_probe.record` (``chunk_size`` defaults to ~8 MiB chunks).
    overwrite, resume : bool
        Replace an existing relu_probe store, or continue an interrupted job (only unfinished
        chunks are recorded; the inputs of the finished ones are checked).
    group : ProcessGroup, optional
        The process group (default: the world).
    **record_kwargs :
        Passed to :func:`relu_probe.record` (``sites``, ``values``, ``units`` …).

    Returns
    -------
    xarray.Dataset
        The whole store, lazily loaded, on every rank.

    Raises
    ------
    StoreError
        On every rank, within the time of one collective, when any rank failed (its own
        error on the failing rank; one naming the failed ranks and their errors on the
        others). The store stays resumable: run the job again with ``resume=True``.

    Notes
    -----
    Rank 0 holds the store's writer lock for the whole job with a token shared with the
    other ranks (:mod:`relu_probe.data.lock`): the ranks write under it, any other process is
    refused. Each phase (create or open, record the shards) ends with every rank reporting
    success or failure to the others (``all_gather_object``), so no rank is left waiting at
    a barrier for one that failed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueInputError(
            "record_distributed needs an initialised torch.distributed process group: launch with "
            "torchrun and call torch.distributed.init_process_group(...) first (or use rp.record)."
        )
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    token = [uuid.uuid4().hex if rank == 0 else None]
    dist.broadcast_object_list(token, src=0, group=group)
    loader_kwargs = {"batch_size": batch_size or DEFAULT_BATCH_SIZE}
    module = unwrap_model(model)
    held: list[Any] = []

    def batches(data: Any) -> Any:
        return torch.utils.data.DataLoader(data, **loader_kwargs) if isinstance(data, torch.utils.data.Dataset) else data

    def open_store(job: Job) -> int:
        n = len(inputs)
        if n == 0:
            raise ValueInputError("`inputs` is empty: it holds no samples.")
        _take(inputs, np.arange(0))  # the type check, on every rank
        if rank == 0:
            if resume:
                held.append(open_output(Path(store), kind=GATE_STORE, argument="store", job=job.token))
            else:
                held.append(_create_store(module, inputs, store, coords=coords, n=n, batch_size=batch_size,
                                          chunk_size=chunk_size, overwrite=overwrite, batches=batches,
                                          job=job, **record_kwargs))
        return n

    def fill_shard(job: Job) -> None:
        chunk_rows, sample_ids = read_layout(store)
        rows = shard_rows(n, chunk_rows, rank, world)
        if not len(rows):
            return
        shard_coords = None if coords is None else {k: _take_coord(v, rows) for k, v in coords.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreIncompleteWarning)  # other ranks are still writing
            record_shard(module, batches(_take(inputs, rows)), store, job=job, sample_ids=sample_ids[rows],
                         coords=shard_coords, batch_size=batch_size,
                         **{k: v for k, v in record_kwargs.items() if k != "sample_ids"})

    members = None if group is None else dist.get_process_group_ranks(group)
    side = dist.new_group(members, backend="gloo", use_local_synchronization=True) if world > 1 else None
    try:
        n = _together(open_store, "opening the store", token=token[0], side=side, tag=1, store=store, group=group)
        _together(fill_shard, "recording", token=token[0], side=side, tag=2, store=store, group=group)
        if rank == 0:
            mark_complete(store)
    finally:
        for lock in held:
            lock.release()
        if side is not None:
            dist.destroy_process_group(side)
    return load(store)


class _PeerFailed(StoreError):
    """Another rank of the job failed; this rank stopped its part."""


class _Phase:
    """One phase of the job on this rank: when its part ends (done or failed), a rank tells
    every other rank at once (one point-to-point message each, on a gloo side group); a
    thread receives theirs, so :meth:`check` — run before each batch — stops a rank that is
    still working as soon as another has failed."""

    OK, FAILED = 1, 2

    def __init__(self, side: Any, tag: int) -> None:
        self.side, self.tag = side, tag
        self.rank = dist.get_rank()
        self.peers = [] if side is None else [r for r in dist.get_process_group_ranks(side) if r != self.rank]
        self.failed: list[int] = []
        self._thread = threading.Thread(target=self._listen, name="relu_probe-peers", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        for _ in self.peers:
            message = torch.zeros(1, dtype=torch.int64)
            try:
                sender = dist.recv(message, group=self.side, tag=self.tag)
            except Exception:  # a lost peer: stop too; the report gathers what is known
                self.failed.append(-1)
                return
            if int(message) != self.OK:
                self.failed.append(int(sender))

    def check(self) -> None:
        if self.failed:
            raise _PeerFailed("another rank failed")

    def end(self, ok: bool) -> None:
        for peer in self.peers:
            dist.send(torch.tensor([self.OK if ok else self.FAILED]), dst=peer, group=self.side, tag=self.tag)
        self._thread.join()


def _together(action: Any, what: str, *, token: str, side: Any, tag: int, store: Any, group: Any) -> Any:
    """Run ``action(job)`` on this rank; when it fails on any rank, raise on every rank (the
    failing rank re-raises its own error; the others, stopped early, name the failures)."""
    phase = _Phase(side, tag)
    try:
        result, error = action(Job(token, phase.check)), None
    except Exception as exc:  # told to the other ranks, then re-raised
        result, error = None, exc
    phase.end(ok=error is None)
    own = None if error is None or isinstance(error, _PeerFailed) else f"{type(error).__name__}: {error}"
    reports: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(reports, own, group=group)
    if own is not None:
        raise error
    failed = {r: m for r, m in enumerate(reports) if m is not None}
    if failed or error is not None:
        listed = "; ".join(f"rank {r}: {m}" for r, m in failed.items()) or "a rank was lost"
        raise StoreError(
            f"record_distributed stopped: {what} failed on {len(failed) or 'a'} rank(s) — {listed}. The "
            f"store {str(store)!r} keeps every chunk finished so far; run the job again with resume=True."
        ) from error
    return result


def _take_coord(values: Any, rows: np.ndarray) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)[rows]


#: The record() options that fix a store's layout (passed on to create_store).
_LAYOUT_OPTIONS = ("sites", "values", "units", "channel_dim", "activations", "input_key", "eval_mode")


def _create_store(module: torch.nn.Module, inputs: Any, store: Any, *, coords: Any, n: int,
                  batch_size: int | None, chunk_size: int | None, overwrite: bool, batches: Any,
                  job: Job, **record_kwargs: Any) -> Any:
    """Rank 0: claim and lock the store, discover the sites on the first batch and write the
    store's skeleton; return the store's lock (held for the job)."""
    first = _take(inputs, np.arange(min(n, batch_size or DEFAULT_BATCH_SIZE)))
    return create_store(module, batches(first), store, n_samples=n, coords=coords, chunk_size=chunk_size,
                        overwrite=overwrite, batch_size=batch_size, job=job,
                        **{k: v for k, v in record_kwargs.items() if k in _LAYOUT_OPTIONS})
