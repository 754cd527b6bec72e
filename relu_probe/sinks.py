"""Where recorded gates go: :class:`MemorySink` keeps them in memory (the zarr sink is
:class:`relu_probe.store.ZarrSink`).

A sink is filled in place by the hooks: ``configure(specs)`` once the sites are known,
then per forward pass ``reserve(B)`` returns writable ``(B, n_units)`` arrays and
``commit(B)`` keeps them (a failed pass is simply not committed and its rows are reused).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps recorded passes in memory: rows are reserved, filled in place by the hooks, and
    committed once their pass completed (a failed pass's rows are simply reused).

    Storage grows in chunks (or is allocated once when the number of samples is known),
    so no per-batch concatenation happens; :meth:`arrays` joins the chunks once.
    """

    def __init__(self, expected_rows: int | None = None) -> None:
        self.expected_rows = expected_rows
        self.specs: dict[str, tuple[int, np.dtype]] = {}
        self._chunks: list[dict[str, np.ndarray]] = []
        self._used: list[int] = []
        self.n_samples = 0

    def configure(self, specs: dict[str, tuple[int, np.dtype]]) -> None:
        self.specs = dict(specs)

    def _new_chunk(self, rows: int) -> None:
        self._chunks.append({k: np.empty((rows, n), dtype) for k, (n, dtype) in self.specs.items()})
        self._used.append(0)

    def reserve(self, n: int) -> dict[str, np.ndarray]:
        if not self._chunks or self._used[-1] + n > len(next(iter(self._chunks[-1].values()))):
            remaining = (self.expected_rows or 0) - self.n_samples
            rows = remaining if remaining >= n else max(n, 8 * n, self.n_samples)
            self._new_chunk(rows)
        start = self._used[-1]
        return {k: a[start : start + n] for k, a in self._chunks[-1].items()}

    def commit(self, n: int) -> None:
        self._used[-1] += n
        self.n_samples += n

    def arrays(self) -> dict[str, np.ndarray]:
        """The committed rows, one ``(n_samples, n_units)`` array per variable."""
        parts = [{k: a[:used] for k, a in chunk.items()} for chunk, used in zip(self._chunks, self._used) if used]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in self.specs}

    def clear(self) -> None:
        self._chunks.clear()
        self._used.clear()
        self.n_samples = 0
        self.expected_rows = None
