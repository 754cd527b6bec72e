"""Reading a store's packed gates one stored chunk at a time, for out-of-core reductions.

A reduction of packed gates (:func:`relu_probe.data.reduce.grouped_sum`) reads every sample
chunk once and counts it. Through zarr's general read path (``dask.array.from_zarr``) each
chunk passes through zarr's asynchronous codec pipeline: the file is read and decoded on
zarr's own threads, each into a fresh buffer, and the result is copied into a third fresh
array before it is counted. :class:`PackedChunks` instead reads a chunk's stored bytes on the
calling thread (a local store's file straight into a per-thread buffer that is reused from
chunk to chunk; any other store through zarr's store interface) and decodes them with
numcodecs' Zstd codec, so that one dask task reads, decodes and counts a chunk. It applies
only to the layout relu_probe writes (zarr format 3, ``BytesCodec`` then at most one
``ZstdCodec``, chunks spanning every byte column); :meth:`PackedChunks.of` returns None for
anything else, and the reduction then reads through zarr's own path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError

__all__ = ["PackedChunks"]

_SCRATCH = threading.local()  # per thread: the buffer that stored bytes are read into


def _scratch(size: int) -> np.ndarray:
    """This thread's read buffer, at least *size* bytes (reused: no fresh pages per chunk)."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = _SCRATCH.buffer = np.empty(size, dtype=np.uint8)
    return buffer


def _read_file(path: Path) -> np.ndarray | None:
    """The bytes of file *path* in this thread's read buffer (None when there is no file)."""
    try:
        with open(path, "rb", buffering=0) as f:
            size = f.seek(0, 2)
            f.seek(0)
            buffer = _scratch(size)
            view = memoryview(buffer)
            done = 0
            while done < size:
                n = f.readinto(view[done:size])
                if not n:
                    break
                done += n
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return buffer[:done]


class PackedChunks:
    """The stored sample chunks of a zarr array of packed gates ``(sample, byte)`` uint8.

    Parameters
    ----------
    array : zarr.Array
        The packed gates; its layout must be one :meth:`of` accepts.
    zstd : bool
        Whether the chunks are Zstd-compressed (else stored raw).

    Use :meth:`of` to build one: it checks the layout.
    """

    def __init__(self, array: Any, zstd: bool) -> None:
        self.array = array
        self.zstd = zstd
        self.chunk_rows = int(array.metadata.chunk_grid.chunk_shape[0])
        self.width = int(array.shape[1])
        self.fill_value = int(array.metadata.fill_value)
        try:  # a local directory store: its files are read on the calling thread
            from zarr.storage import LocalStore

            local = isinstance(array.store, LocalStore)
        except ImportError:
            local = False
        self.directory = Path(array.store.root) / array.store_path.path if local else None

    @classmethod
    def of(cls, array: Any) -> PackedChunks | None:
        """A reader of *array*'s chunks, or None when its layout is not the one relu_probe
        writes (zarr format 3, 2-D uint8, regular chunks spanning every column, codecs
        ``BytesCodec`` then at most one ``ZstdCodec``)."""
        try:
            from zarr.codecs import BytesCodec, ZstdCodec
            from zarr.core.chunk_grids import RegularChunkGrid

            meta = array.metadata
            if meta.zarr_format != 3 or len(array.shape) != 2 or np.dtype(array.dtype) != np.uint8:
                return None
            grid = meta.chunk_grid
            if not isinstance(grid, RegularChunkGrid) or grid.chunk_shape[1] != array.shape[1]:
                return None
            codecs = tuple(meta.codecs)
        except (ImportError, AttributeError):  # another zarr version: its own read path serves
            return None
        if not codecs or not isinstance(codecs[0], BytesCodec):
            return None
        rest = codecs[1:]
        if rest and (len(rest) > 1 or not isinstance(rest[0], ZstdCodec)):
            return None
        return cls(array, zstd=bool(rest))

    def aligned(self, row_chunks: tuple[int, ...]) -> bool:
        """Whether dask chunks *row_chunks* (along samples, from row 0) are this array's stored
        chunks, the last one possibly cut short."""
        if not row_chunks or sum(row_chunks) > self.array.shape[0]:
            return False
        return all(c == self.chunk_rows for c in row_chunks[:-1]) and 0 < row_chunks[-1] <= self.chunk_rows

    def read(self, index: int, rows: int) -> np.ndarray:
        """The first *rows* rows of stored chunk *index*: ``(rows, width)`` uint8, valid until
        this thread's next read.

        A chunk that was never written (zarr skips chunks equal to the fill value) reads as
        the fill value. Raises StoreError when the stored chunk does not decode to the chunk's
        size (a damaged store): a :class:`~relu_probe.errors.StoreError`."""
        from numcodecs import Zstd

        key = self.array.metadata.encode_chunk_key((index, 0))
        raw = _read_file(self.directory / key) if self.directory is not None else self._get(key)
        size = self.chunk_rows * self.width
        if raw is None:
            return np.full((rows, self.width), self.fill_value, dtype=np.uint8)
        data = np.frombuffer(Zstd().decode(raw), dtype=np.uint8) if self.zstd else raw.view(np.uint8)
        if data.size != size:
            raise StoreError(
                f"stored chunk {key!r} of {self.array.store_path} decodes to {data.size} bytes, expected "
                f"{size} ({self.chunk_rows} rows × {self.width} bytes): the store is damaged."
            )
        return data.reshape(self.chunk_rows, self.width)[:rows]

    def _get(self, key: str) -> np.ndarray | None:
        """The stored bytes of chunk *key* through zarr's store (any store zarr reads)."""
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        stored = sync((self.array.store_path / key).get(prototype=default_buffer_prototype()))
        return None if stored is None else stored.as_numpy_array()
