"""Fingerprints of recorded inputs, so that a resumed store can check it gets the same inputs.

The fingerprint of a run of samples (a store chunk, a monitor's probe set) is the first 16
bytes of SHA-256 (``hashlib``) over their inputs in sample order: a layout record — the name,
dtype and per-sample shape of every per-sample tensor the model is called with (positional
inputs, then keyword tensors by name) and a description of the call's other arguments —
whenever the layout changes, then the samples' bytes, each sample's tensors one after the
other. The hash is fed batch by batch, so it does not depend on how the inputs were batched:
a resume may use another batch size, while other values, another sample order, dtype or
per-sample shape give another fingerprint. Samples may arrive out of order (a shard given
by ``sample_ids``); those ahead of the hash are held until it reaches them.

Cost: SHA-256 reads every input byte once (about 1–2 GB/s with the CPU's SHA extensions),
plus a few Python calls per batch. Inputs on an accelerator are copied to the host to be
hashed.

This module is the format (what is hashed, per chunk); :mod:`relu_probe.recording.fingerprint`
turns a model call's tensors into the bytes it hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["FINGERPRINT_BYTES", "BatchInputs", "ChunkHasher", "RowStream"]

FINGERPRINT_BYTES = 16


@dataclass(frozen=True)
class BatchInputs:
    """The bytes one model call is fingerprinted by.

    Attributes
    ----------
    layout : bytes
        Describes the row format (and the call's arguments shared by all its samples).
    rows : ndarray of uint8, shape (B, k)
        C-contiguous; row *i* holds sample *i*'s bytes.
    """

    layout: bytes
    rows: np.ndarray


class RowStream:
    """SHA-256 over rows in row order, fed in pieces that may come in any order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._layout: bytes | None = None
        self._ahead: dict[int, tuple[bytes, np.ndarray]] = {}
        self.next = 0  #: rows hashed so far

    def feed(self, start: int, layout: bytes, rows: np.ndarray) -> None:
        """Rows *start* … *start + len(rows) − 1* with their *layout*."""
        if start != self.next:
            self._ahead[start] = (layout, rows.copy())
            return
        self._consume(layout, rows)
        while self.next in self._ahead:
            self._consume(*self._ahead.pop(self.next))

    def _consume(self, layout: bytes, rows: np.ndarray) -> None:
        if layout != self._layout:
            self._hash.update(b"\x00layout" + len(layout).to_bytes(8, "little") + layout)
            self._layout = layout
        self._hash.update(rows)
        self.next += len(rows)

    def fingerprint(self) -> np.ndarray:
        """``(16,)`` uint8 (only meaningful once every row was fed)."""
        return np.frombuffer(self._hash.digest(), np.uint8, FINGERPRINT_BYTES).copy()


class ChunkHasher:
    """Fingerprints of the chunks of a store (rows ``c * chunk_rows`` … of chunk *c*)."""

    def __init__(self, chunk_rows: int, n_rows: int) -> None:
        self.chunk_rows = chunk_rows
        self.n_rows = n_rows
        self._open: dict[int, RowStream] = {}

    def add(self, rows: np.ndarray, inputs: BatchInputs) -> dict[int, np.ndarray]:
        """Feed one batch: *rows* are its samples' store rows, in batch order. Returns the
        fingerprints of the chunks this batch completed."""
        chunks = rows // self.chunk_rows
        cuts = np.flatnonzero((np.diff(rows) != 1) | (np.diff(chunks) != 0)) + 1
        done: dict[int, np.ndarray] = {}
        for begin, end in zip([0, *cuts.tolist()], [*cuts.tolist(), len(rows)]):
            chunk = int(chunks[begin])
            stream = self._open.setdefault(chunk, RowStream())
            stream.feed(int(rows[begin]) - chunk * self.chunk_rows, inputs.layout, inputs.rows[begin:end])
            if stream.next == min(self.chunk_rows, self.n_rows - chunk * self.chunk_rows):
                done[chunk] = self._open.pop(chunk).fingerprint()
        return done
