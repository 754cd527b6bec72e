"""The bytes a model call is fingerprinted by (the format: :mod:`relu_probe.data.fingerprint`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import torch

from ..data.fingerprint import BatchInputs, RowStream
from .inputs import Batch

__all__ = ["batch_inputs", "fingerprint_of", "token_inputs"]

#: Bytes of each input's digest in the fingerprint rows of a ``samples="position"`` recording.
_DIGEST_BYTES = 16


def _as_bytes(tensor: torch.Tensor, size: int) -> np.ndarray:
    """``(size, k)`` uint8 view of a tensor's bytes, one row per sample (a copy only if the
    tensor is not contiguous or not on the host)."""
    flat = tensor.detach().reshape(size, -1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    flat = flat.resolve_conj().resolve_neg().contiguous()
    return flat.view(torch.uint8).numpy().reshape(size, -1)


def batch_inputs(batch: Batch) -> BatchInputs:
    """What :class:`relu_probe.data.fingerprint.ChunkHasher` hashes of one model call."""
    layout: list[str] = []
    parts: list[np.ndarray] = []
    shared = hashlib.sha256()
    items = [(f"arg{i}", v) for i, v in enumerate(batch.args)] + sorted(batch.kwargs.items())
    for name, value in items:
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and len(value) == batch.size:
            layout.append(f"{name}:{value.dtype}:{tuple(value.shape[1:])}")
            parts.append(_as_bytes(value, batch.size))
        elif isinstance(value, torch.Tensor):  # shared by every sample of the call
            layout.append(f"{name}:{value.dtype}:{tuple(value.shape)}=shared")
            shared.update(_as_bytes(value.reshape(1, -1), 1).tobytes())
        elif value is None or isinstance(value, (bool, int, float, str)):
            layout.append(f"{name}={value!r}")
        else:
            layout.append(f"{name}:{type(value).__qualname__}")
    rows = parts[0] if len(parts) == 1 else (
        np.concatenate(parts, axis=1) if parts else np.zeros((batch.size, 0), np.uint8))
    return BatchInputs(";".join(layout).encode() + shared.digest(), np.ascontiguousarray(rows))


def token_inputs(inputs: BatchInputs, keep: np.ndarray, positions: int) -> BatchInputs:
    """The fingerprint rows of the kept (input, position) pairs of one call
    (``samples="position"``): row ``k`` is the first 16 bytes of SHA-256 over the bytes of the
    input ``keep[k] // positions`` (:func:`batch_inputs`), then the position
    ``keep[k] % positions`` as a little-endian int64. Each input is hashed once, however many
    of its positions are kept."""
    digests = np.empty((len(inputs.rows), _DIGEST_BYTES), np.uint8)
    for i, row in enumerate(inputs.rows):
        digests[i] = np.frombuffer(hashlib.sha256(row).digest(), np.uint8, _DIGEST_BYTES)
    keep = np.asarray(keep, dtype=np.int64)
    where = (keep % positions).astype("<i8").view(np.uint8).reshape(len(keep), 8)
    rows = np.concatenate([digests[keep // positions], where], axis=1)
    return BatchInputs(inputs.layout + b";positions", np.ascontiguousarray(rows))


def fingerprint_of(batches: Iterable[Batch]) -> tuple[np.ndarray, int]:
    """Fingerprint of all samples of *batches*, in order, and how many there are."""
    stream = RowStream()
    for batch in batches:
        inputs = batch_inputs(batch)
        stream.feed(stream.next, inputs.layout, inputs.rows)
    return stream.fingerprint(), stream.next
