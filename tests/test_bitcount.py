"""Per-group set-bit counts of packed gates: the compiled and numpy kernels against a plain count."""

from __future__ import annotations

import numpy as np
import pytest

from relu_probe import _bitcount
from relu_probe._bitcount import group_bit_counts, group_bit_counts_numpy, numba_available
from relu_probe.store import pack_gates


def _plain_counts(gates: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    return np.stack([gates[codes == g].sum(axis=0, dtype=np.int64) for g in range(n_groups)])


# rows over 255 and 15 per group exercise every flush; unit counts that are not a multiple
# of 8 or 64 exercise the tail bytes and the padding bits of the last byte
CASES = [(1, 1, 1), (7, 13, 2), (40, 64, 3), (600, 999, 3), (1100, 130, 5), (300, 8, 1)]


@pytest.mark.parametrize("kernel", ["compiled", "numpy"])
@pytest.mark.parametrize("rows, n_units, n_groups", CASES)
def test_group_bit_counts_equal_a_plain_count(kernel, rows, n_units, n_groups):
    rng = np.random.default_rng(rows * 7 + n_units)
    gates = rng.random((rows, n_units)) < rng.uniform(0.05, 0.95, size=n_units)
    gates[:, :1] = True  # a unit always on: its count is the group's size exactly
    codes = rng.integers(0, n_groups, size=rows)  # unsorted groups
    if n_groups > 2:
        codes[codes == 1] = 0  # an empty group counts 0
    fn = group_bit_counts if kernel == "compiled" else group_bit_counts_numpy
    got = fn(pack_gates(gates), codes, n_groups, n_units)
    expected = _plain_counts(gates, codes, n_groups)
    assert got.dtype == np.int64 and got.shape == (n_groups, n_units)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[:, 0], np.bincount(codes, minlength=n_groups))


def test_the_compiled_kernel_is_used_where_numba_is_installed():
    pytest.importorskip("numba")  # CI installs the io extra, which has numba
    assert numba_available()


def test_without_numba_the_numpy_kernel_gives_the_same_counts(monkeypatch):
    rng = np.random.default_rng(0)
    gates = rng.random((500, 77)) < 0.5
    codes = rng.integers(0, 4, size=500)
    fast = group_bit_counts(pack_gates(gates), codes, 4, 77)
    monkeypatch.setattr(_bitcount, "_kernel", False)  # as when numba does not import
    assert not numba_available()
    np.testing.assert_array_equal(group_bit_counts(pack_gates(gates), codes, 4, 77), fast)
    np.testing.assert_array_equal(fast, _plain_counts(gates, codes, 4))
