"""Per-group counts of set bits in bit-packed gates: the kernel of out-of-core analysis.

Gates on disk are packed 8 units per byte along the unit axis (``numpy.packbits(...,
bitorder="little")``: unit ``8 j + b`` is bit *b* of byte *j*). Every pathway statistic of a
store reduces them to

.. math:: N[g, u] = \\sum_{r:\\, \\mathrm{code}(r) = g} \\mathrm{bit}_u(r),

the number of rows of group *g* in which unit *u* is on. Both kernels below compute it with
SWAR ("SIMD within a register") arithmetic on 64-bit words, so that one addition counts
many units at once without unpacking the bits:

* a word ANDed with ``0x1111…11`` after a right shift by ``b`` (``b = 0…3``) holds 16
  four-bit lanes; lane *n* is bit ``4 n + b``. Adding up to 15 such words cannot carry
  between lanes;
* every 15 rows the four-bit lanes are split into even and odd nibbles (mask
  ``0x0F0F…0F``) and added to eight-bit lanes, which hold up to 255 rows;
* every 255 rows the eight-bit lanes are added to the int64 result.

:func:`group_bit_counts` runs that loop compiled with numba (``nogil``, so dask's threads
run chunks in parallel), at several GB/s; otherwise a numpy version of the same arithmetic
(eight one-bit lanes per byte), about 5 times slower. Both are exact integer arithmetic, so
their results are identical. :func:`choose_kernel` picks one for a reduction: starting
numba in a fresh process (importing it and loading its cached kernel) costs about 0.5 s of
CPU, what the numpy kernel needs for roughly half a gigabyte of packed gates, so the
compiled kernel is used when numba is already loaded or the reduction reads at least
:data:`COMPILED_MIN_BYTES`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COMPILED_MIN_BYTES", "choose_kernel", "group_bit_counts", "group_bit_counts_numpy", "numba_available"]

#: Packed bytes from which a reduction starts numba when it is not loaded yet (module docstring).
COMPILED_MIN_BYTES = 512 * 2**20

_RUN = 255  # rows an eight-bit lane can count without overflow
_LANES = np.uint64(0x0101010101010101)  # bit 0 of each byte of a 64-bit word

_kernel = None  # the compiled kernel, once built (None: not tried yet; False: no numba)


def numba_available() -> bool:
    """Whether the compiled kernel can be used (numba imports)."""
    return _compiled() is not False


def choose_kernel(n_bytes: int) -> str:
    """``"compiled"`` or ``"numpy"`` for a reduction over *n_bytes* packed bytes (module
    docstring); ``"numpy"`` whenever numba is not installed."""
    if _kernel is False:
        return "numpy"
    if _kernel is None and n_bytes < COMPILED_MIN_BYTES:
        return "numpy"
    return "compiled" if _compiled() is not False else "numpy"


def _compiled():
    global _kernel
    if _kernel is None:
        try:  # an optional dependency: the numpy kernel serves without it
            from .bitcount_numba import group_bit_counts_kernel
        except ImportError:
            _kernel = False
        else:
            _kernel = group_bit_counts_kernel
    return _kernel


def _grouping(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows in group order (stable) and each group's ``[start, stop)`` in that order."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    return order.astype(np.int64), bounds.astype(np.int64)


def group_bit_counts(
    bits: np.ndarray, codes: np.ndarray, n_groups: int, n_units: int, *, dtype: type = np.int64,
    kernel: str = "compiled",
) -> np.ndarray:
    """Per-group counts of set bits of packed gates (module docstring).

    Parameters
    ----------
    bits : ndarray, shape (rows, ceil(n_units / 8)), uint8
        Packed gates, little bit order.
    codes : ndarray, shape (rows,), int
        Group of every row, in ``0 … n_groups - 1``.
    n_groups, n_units : int
    dtype : numpy integer type, default=numpy.int64
        Type of the counts; a narrower one (``uint16`` for at most 65535 rows) holds the
        same counts in fewer bytes.
    kernel : {"compiled", "numpy"}, default="compiled"
        The numba kernel (the numpy one where numba is not installed) or the numpy kernel.

    Returns
    -------
    ndarray, shape (n_groups, n_units)
        ``out[g, u]`` = number of rows of group *g* whose bit *u* is set.
    """
    compiled = _compiled() if kernel == "compiled" else False
    if compiled is False:
        return group_bit_counts_numpy(bits, codes, n_groups, n_units).astype(dtype, copy=False)
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    order, bounds = _grouping(np.asarray(codes), n_groups)
    out = np.zeros((n_groups, bits.shape[1] * 8), dtype=dtype)
    compiled(bits, order, bounds, out)
    return out[:, :n_units]


def group_bit_counts_numpy(bits: np.ndarray, codes: np.ndarray, n_groups: int, n_units: int) -> np.ndarray:
    """:func:`group_bit_counts` in numpy, for when numba is not installed (same result).

    For bit plane *b*, ``(word >> b) & 0x0101…01`` leaves one 0/1 lane per byte; adding at
    most 255 rows of such words cannot carry between lanes, so one uint64 addition counts 8
    units. Byte *j*'s lane of plane *b* counts unit ``8 j + b``.
    """
    rows, n_bytes = bits.shape
    padded = -(-n_bytes // 8) * 8
    order, bounds = _grouping(np.asarray(codes), n_groups)
    words = np.zeros((rows, padded), dtype=np.uint8)
    words[:, :n_bytes] = bits[order]
    words = words.view(np.uint64)
    out = np.zeros((n_groups, padded, 8), dtype=np.int64)
    for g in range(n_groups):
        for start in range(bounds[g], bounds[g + 1], _RUN):
            run = words[start : min(start + _RUN, bounds[g + 1])]
            for b in range(8):
                lanes = np.add.reduce((run >> np.uint64(b)) & _LANES, axis=0)
                out[g, :, b] += lanes.view(np.uint8)
    return out.reshape(n_groups, padded * 8)[:, :n_units]
