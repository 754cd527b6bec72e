"""Per-group set-bit counts of packed gates: the compiled and numpy kernels against a plain count."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from relu_probe.data import bitcount as _bitcount
from relu_probe.data.bitcount import group_bit_counts, group_bit_counts_numpy, numba_available
from relu_probe.data.store import pack_gates
from _deps import require


def _plain_counts(gates: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    return np.stack([gates[codes == g].sum(axis=0, dtype=np.int64) for g in range(n_groups)])


# rows over 255 and 15 per group exercise every flush; unit counts that are not a multiple
# of 8 or 64 exercise the tail bytes and the padding bits of the last byte
CASES = [(1, 1, 1), (7, 13, 2), (40, 64, 3), (600, 999, 3), (1100, 130, 5), (300, 8, 1), (700, 130, 2), (600, 512, 1)]


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
    require("numba")  # CI installs the io extra, which has numba
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


def test_the_kernel_is_chosen_by_size_unless_numba_is_loaded(monkeypatch):
    monkeypatch.setattr(_bitcount, "_kernel", None)  # a fresh process: numba not loaded yet
    small = _bitcount.COMPILED_MIN_BYTES - 1
    assert _bitcount.choose_kernel(small) == "numpy"
    assert _bitcount._kernel is None  # deciding did not import numba
    expected = "compiled" if importlib.util.find_spec("numba") else "numpy"
    assert _bitcount.choose_kernel(_bitcount.COMPILED_MIN_BYTES) == expected
    assert _bitcount.choose_kernel(small) == expected  # once loaded, it is used for any size
    monkeypatch.setattr(_bitcount, "_kernel", False)  # numba not installed
    assert _bitcount.choose_kernel(10 * _bitcount.COMPILED_MIN_BYTES) == "numpy"


@pytest.mark.parametrize("threshold", [0, 2**62])
def test_store_profiles_are_identical_with_either_kernel(tmp_path, monkeypatch, threshold):
    require("zarr")
    import relu_probe as rp
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 203), torch.nn.ReLU(), torch.nn.Linear(203, 77), torch.nn.ReLU())
    X = torch.randn(700, 6)
    coords = {"context": np.arange(700) % 3, "object": (np.arange(700) // 3) % 5}
    memory = rp.record(model, X, coords=coords)
    lazy = rp.record(model, X, coords=coords, store=tmp_path / "g.zarr", chunk_size=300)
    monkeypatch.setattr(_bitcount, "COMPILED_MIN_BYTES", threshold)  # 0: compiled; huge: numpy
    monkeypatch.setattr(_bitcount, "_kernel", None)
    for by in ("context", ["context", "object"]):
        np.testing.assert_array_equal(rp.gating_profile(lazy, by).values, rp.gating_profile(memory, by).values)
    assert (_bitcount._kernel is None) == (threshold > 0)
