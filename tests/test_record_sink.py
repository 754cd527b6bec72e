"""The in-memory sink's large chunks: exact gates, their own (not huge-page) mapping, and a
page-mapping helper that maps the chunk and stops when asked."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

import relu_probe as rp
from relu_probe.recording import sinks
from relu_probe.recording.sinks import MemorySink

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps (Linux)")


class CopyThenReLU(nn.Module):
    """``relu(x.clone())``: the ReLU's input is exactly the network's input, so its gates are
    ``x > 0``; *inplace* makes the ReLU overwrite that input."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x.clone())


def _mapping(address: int) -> dict[str, str]:
    """The /proc/self/smaps entry of the mapping holding *address* (field name -> value)."""
    entry: dict[str, str] | None = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                if entry is not None:
                    return entry
                lo, hi = (int(part, 16) for part in head.split("-"))
                entry = {} if lo <= address < hi else None
            elif entry is not None:
                name, _, value = line.partition(":")
                entry[name] = value.strip()
    if entry is None:
        raise AssertionError(f"no mapping holds address {address:#x}")
    return entry


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("batch_size", [1, 128])
def test_large_chunk_records_exact_gates(inplace, batch_size):
    # 2053 x 4103 bool gates = 8.4 MB: one chunk above POPULATE_BYTES, so it lives in its own
    # mapping and its pages are mapped by the helper while the hooks write; sizes are not
    # multiples of 8 and the last batch of 128 holds 5 samples.
    assert 2053 * 4103 >= sinks.POPULATE_BYTES
    n = 2053 if batch_size == 128 else 130  # batch size 1: fewer passes, same path (chunk of 130 x 4103)
    units = 4103 if batch_size == 128 else 65_537  # 130 x 65537 = 8.5 MB
    torch.manual_seed(3)
    x = torch.randn(n, units)
    x[:, 0] = 0.0  # exactly at the threshold: off
    x[0] = torch.where(x[0] > 0, torch.full_like(x[0], 1e-30), torch.full_like(x[0], -1e-30))  # tiny but signed
    expected = (x > 0).numpy()
    ds = rp.record(CopyThenReLU(inplace), x, batch_size=batch_size, progress=False)
    gate = ds.gate.values
    assert gate.dtype == bool and gate.shape == (n, units)
    np.testing.assert_array_equal(gate, expected)
    assert not gate[:, 0].any()


@linux_only
def test_large_chunk_is_not_marked_for_huge_pages():
    rows, width = 2048, 4096  # 8 MiB of gates
    sink = MemorySink(expected_rows=rows)
    sink.configure({"gate": (width, np.dtype(bool))})
    block = sink.reserve(rows)["gate"]
    flags = _mapping(block.ctypes.data + block.nbytes // 2)["VmFlags"].split()
    sink.clear()
    # numpy.empty marks the pages of arrays this large MADV_HUGEPAGE ("hg"), which costs
    # memory compaction when the chunk is first written
    assert "hg" not in flags


@linux_only
def test_populate_maps_the_whole_array_or_stops_between_steps():
    step = sinks._POPULATE_STEP
    # the kernel may merge adjacent anonymous mappings into one smaps entry: measure what
    # populating adds to the entry holding the array, not the entry's whole size
    def rss(array):
        return int(_mapping(array.ctypes.data)["Rss"].split()[0]) * 1024

    fresh = sinks._fresh_array((4 * step,), np.dtype(np.uint8))
    calls = []
    before = rss(fresh)
    sinks._populate([fresh], stopped=lambda: calls.append(1) or len(calls) > 1)
    assert rss(fresh) - before == pytest.approx(step, abs=64 * 1024)  # one step, then it stopped
    whole = sinks._fresh_array((4 * step,), np.dtype(np.uint8))
    before = rss(whole)
    sinks._populate([whole])
    assert rss(whole) - before == 4 * step
    assert not whole.any()  # mapped pages read as zeros: populating writes no data
