"""Where recorded gates go: :class:`MemorySink` keeps them in memory (the zarr sink is
:class:`relu_probe.data.store.ZarrSink`).

A sink is filled in place by the hooks: ``configure(specs)`` once the sites are known
(``specs`` maps each variable to ``(n_units, dtype)``, or ``(None, dtype)`` for a per-row
coord), then per forward pass ``reserve(rows)`` returns writable ``(rows, n_units)`` (or
``(rows,)``) arrays and ``commit(rows)`` keeps them (a failed pass is simply not committed
and its rows are reused).
"""

from __future__ import annotations

import _thread
import ctypes
import mmap
import os
import sys
from collections.abc import Callable

import numpy as np

__all__ = ["MemorySink"]

#: Chunks at least this large have their pages mapped ahead of the hooks (Linux only).
POPULATE_BYTES = 8 * 2**20
_MADV_POPULATE_WRITE = 23  # Linux >= 5.14
#: numpy asks for transparent huge pages (``MADV_HUGEPAGE``) on arrays at least this large.
_NUMPY_HUGEPAGE_BYTES = 4 * 2**20


def _fresh_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array for a chunk; a large one (Linux) in its own anonymous mapping.

    ``numpy.empty`` marks arrays of 4 MiB and more ``MADV_HUGEPAGE``, and with the common
    ``transparent_hugepage/defrag = madvise`` setting the kernel then compacts memory to find
    2 MiB pages when they are first touched. For a sink that is written once, that costs more
    than it saves: on the 2-core VM of ``BENCHMARKS.md`` (``enabled``/``defrag`` both
    ``madvise``) mapping a 100 MB chunk took 100–230 ms of CPU in huge pages against 30–40 ms
    in 4 KiB ones. A plain anonymous mapping gets the kernel's default page policy instead
    (4 KiB pages under ``enabled = madvise``; huge pages without direct compaction under
    ``always``). The array owns its mapping (its ``base``), which is unmapped when the last
    view is released.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < _NUMPY_HUGEPAGE_BYTES or not sys.platform.startswith("linux"):
        return np.empty(shape, dtype)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


#: Pages mapped per ``madvise`` call of the helper thread (it checks for a stop between calls).
_POPULATE_STEP = 4 * 2**20
_madvise = None


def _libc_madvise():
    """libc's ``madvise`` through ctypes (looked up once, on first use), or None."""
    global _madvise
    if _madvise is None:
        try:
            _madvise = ctypes.CDLL(None, use_errno=True).madvise
        except (OSError, AttributeError):
            _madvise = False
    return _madvise or None


def _populate(arrays: list[np.ndarray], stopped: Callable[[], bool] = lambda: False) -> None:
    """Ask the kernel to map every page of *arrays* now (``madvise(MADV_POPULATE_WRITE)``),
    :data:`_POPULATE_STEP` bytes at a time until ``stopped()``.

    Fresh memory is mapped one 4 KiB page fault at a time when first written; for a large
    recording those faults cost as much as computing the gates. Run from a helper thread
    (ctypes releases the GIL), the mapping overlaps the model's forward pass. It writes no
    data, so it cannot race with the hooks filling the same rows. Where the call is not
    supported it does nothing and the pages fault in as usual.
    """
    madvise = _libc_madvise()
    if madvise is None:
        return
    page = mmap.PAGESIZE
    for array in arrays:
        first = array.ctypes.data - array.ctypes.data % page
        end = array.ctypes.data + array.nbytes
        for start in range(first, end, _POPULATE_STEP):
            if stopped():
                return
            length = min(_POPULATE_STEP, end - start)
            if madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), _MADV_POPULATE_WRITE) != 0:
                return


class _Populator:
    """:func:`_populate` on a helper thread that the caller never waits to start.

    ``threading.Thread.start`` blocks until the new thread runs, which on a loaded machine
    (every core busy) took 5–9 ms, as long as mapping the pages; the low-level
    :func:`_thread.start_new_thread` returns at once. :meth:`finish` stops the mapping
    between two steps and waits for the thread: pages it did not reach fault in when written
    (in a forked child, where the thread does not exist, it returns at once).
    """

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self._stop = False
        self._pid = os.getpid()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._run, (arrays,))

    def _run(self, arrays: list[np.ndarray]) -> None:
        try:
            _populate(arrays, lambda: self._stop)
        finally:
            self._done.release()

    def finish(self) -> None:
        self._stop = True
        if os.getpid() != self._pid:
            return
        with self._done:
            pass


class MemorySink:
    """Keeps recorded passes in memory: rows are reserved, filled in place by the hooks, and
    committed once their pass completed (a failed pass's rows are simply reused).

    Storage is allocated once when the number of samples is known (``expected_rows``, or
    ``size_for()`` at :meth:`configure`; more rows than that still fit). Otherwise it grows
    geometrically: the first chunk holds the first batch, and each new chunk as many rows as
    are recorded so far (at least one batch), so the capacity never exceeds twice the rows
    recorded plus one batch, and no per-batch concatenation happens. :meth:`arrays` joins
    the chunks once, freeing each chunk as soon as it is copied, so the peak stays within
    that capacity plus the first chunk (about 2× the recorded data; the result alone
    afterwards). The pages of a large chunk are mapped by a helper thread while the model
    runs (:func:`_populate`).
    """

    def __init__(self, expected_rows: int | None = None) -> None:
        self.expected_rows = expected_rows
        #: optional callable giving ``expected_rows`` once the sites are known (at :meth:`configure`)
        self.size_for = None
        self.specs: dict[str, tuple[int, np.dtype]] = {}
        self._chunks: list[dict[str, np.ndarray]] = []
        self._used: list[int] = []
        self._populating: _Populator | None = None
        self.n_samples = 0

    def configure(self, specs: dict[str, tuple[int | None, np.dtype]]) -> None:
        self.specs = dict(specs)
        if self.expected_rows is None and self.size_for is not None:
            self.expected_rows = self.size_for()

    def _new_chunk(self, rows: int) -> None:
        chunk = {k: _fresh_array(_shape(rows, n), dtype) for k, (n, dtype) in self.specs.items()}
        self._chunks.append(chunk)
        self._used.append(0)
        if sys.platform.startswith("linux") and sum(a.nbytes for a in chunk.values()) >= POPULATE_BYTES:
            self._join_populate()
            self._populating = _Populator(list(chunk.values()))

    def _join_populate(self) -> None:
        if self._populating is not None:
            self._populating.finish()
            self._populating = None

    def reserve(self, n: int) -> dict[str, np.ndarray]:
        if not self._chunks or self._used[-1] + n > len(next(iter(self._chunks[-1].values()))):
            remaining = (self.expected_rows or 0) - self.n_samples
            rows = remaining if remaining >= n else max(n, self.n_samples)
            self._new_chunk(rows)
        start = self._used[-1]
        return {k: a[start : start + n] for k, a in self._chunks[-1].items()}

    def commit(self, n: int) -> None:
        self._used[-1] += n
        self.n_samples += n

    def arrays(self) -> dict[str, np.ndarray]:
        """The committed rows, one ``(n_samples, n_units)`` array per variable.

        Several chunks are joined into one array each, which then replaces them (each chunk
        is released right after it is copied).
        """
        self._join_populate()
        kept = [(chunk, used) for chunk, used in zip(self._chunks, self._used) if used]
        if len(kept) == 1:
            chunk, used = kept[0]
            return {k: a[:used] for k, a in chunk.items()}
        joined = {k: _fresh_array(_shape(self.n_samples, width), dtype) for k, (width, dtype) in self.specs.items()}
        self._chunks, self._used = [], []
        start = 0
        while kept:
            chunk, used = kept.pop(0)
            for name, array in chunk.items():
                joined[name][start : start + used] = array[:used]
            start += used
            del chunk, array  # the last references: the chunk is freed before the next is copied
        self._chunks, self._used = [joined], [self.n_samples]
        return dict(joined)

    def clear(self) -> None:
        self._join_populate()
        self._chunks.clear()
        self._used.clear()
        self.n_samples = 0
        self.expected_rows = None


def _shape(rows: int, width: int | None) -> tuple[int, ...]:
    return (rows,) if width is None else (rows, width)
