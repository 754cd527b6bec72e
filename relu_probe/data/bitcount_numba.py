"""The compiled (numba) kernel of :func:`relu_probe.data.bitcount.group_bit_counts`.

Importing this module needs numba (the ``io`` extra); :mod:`relu_probe.data.bitcount` falls back
to numpy without it. The arithmetic is described there. Compiled functions are cached on
disk by numba (``cache=True``), so only the first use on a machine pays the compilation.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["group_bit_counts_kernel"]


@numba.njit(inline="always")
def _load_word(row, start):  # pragma: no cover - compiled
    """The 8 bytes of *row* from *start* as one little-endian uint64 (LLVM makes it one load)."""
    word = np.uint64(0)
    for k in range(8):
        word |= np.uint64(row[start + k]) << np.uint64(8 * k)
    return word


@numba.njit(inline="always")
def _transpose_bytes(v):  # pragma: no cover - compiled
    """Transpose the 8 × 8 byte matrix ``M[r][c]`` = byte *c* of ``v[r]``, in place (three
    rounds of swapping 4-, 2- and 1-byte blocks between words)."""
    lo32 = np.uint64(0x00000000FFFFFFFF)
    hi32 = np.uint64(0xFFFFFFFF00000000)
    m2 = np.uint64(0x0000FFFF0000FFFF)
    m1 = np.uint64(0x00FF00FF00FF00FF)
    for r in range(4):
        a = v[r]
        b = v[r + 4]
        v[r] = (a & lo32) | (b << np.uint64(32))
        v[r + 4] = (a >> np.uint64(32)) | (b & hi32)
    for r in (0, 1, 4, 5):
        a = v[r]
        b = v[r + 2]
        v[r] = (a & m2) | ((b & m2) << np.uint64(16))
        v[r + 2] = ((a >> np.uint64(16)) & m2) | (b & ~m2)
    for r in (0, 2, 4, 6):
        a = v[r]
        b = v[r + 1]
        v[r] = (a & m1) | ((b & m1) << np.uint64(8))
        v[r + 1] = ((a >> np.uint64(8)) & m1) | (b & ~m1)


@numba.njit(cache=True, nogil=True)
def group_bit_counts_kernel(bits, order, bounds, out):  # pragma: no cover - compiled
    """Add to ``out[g, u]`` the set bits of unit *u* over the rows ``order[bounds[g]:bounds[g+1]]``.

    *bits* (rows, n_bytes) uint8, *order* / *bounds* int64, *out* (n_groups, 8 n_bytes) int64.
    """
    n_bytes = bits.shape[1]
    n_words = n_bytes // 8
    tail = n_bytes - 8 * n_words
    m1 = np.uint64(0x1111111111111111)
    m4 = np.uint64(0x0F0F0F0F0F0F0F0F)
    four = np.uint64(4)
    word = np.empty(8, np.uint64)  # one transposed 8 × 8 block of byte lanes
    word_bytes = word.view(np.uint8)
    nibbles = np.zeros((4, n_words), np.uint64)  # 16 four-bit lanes per word and plane
    octets = np.zeros((8, n_words), np.uint64)  # 8 eight-bit lanes per word and plane
    for g in range(out.shape[0]):
        lo = bounds[g]
        hi = bounds[g + 1]
        start = lo
        while start < hi:
            stop = min(start + 255, hi)
            octets[:] = 0
            s = start
            while s < stop:
                e = min(s + 15, stop)
                nibbles[:] = 0
                for i in range(s, e):
                    row = bits[order[i]]
                    for b in range(4):
                        shift = np.uint64(b)
                        for w in range(n_words):
                            nibbles[b, w] += (_load_word(row, 8 * w) >> shift) & m1
                for b in range(4):
                    for w in range(n_words):
                        v = nibbles[b, w]
                        octets[b, w] += v & m4  # even nibbles: bit b of each byte
                        octets[b + 4, w] += (v >> four) & m4  # odd nibbles: bit b + 4
                s = e
            counts = out[g]
            for w in range(n_words):
                # byte k of plane b counts unit 64 w + 8 k + b: transposed, the 64 counts of
                # word w lie in unit order
                for b in range(8):
                    word[b] = octets[b, w]
                _transpose_bytes(word)
                base = 64 * w
                for j in range(64):
                    counts[base + j] += word_bytes[j]
            start = stop
        for i in range(lo, hi):  # the bytes after the last whole word
            row = bits[order[i]]
            for j in range(tail):
                v = row[8 * n_words + j]
                for b in range(8):
                    out[g, 64 * n_words + 8 * j + b] += (v >> b) & 1
