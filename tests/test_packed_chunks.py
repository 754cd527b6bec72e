"""Reductions of a loaded store read, decode and count each stored chunk in one task
(relu_probe.data.packed_chunks), with the same counts as a plain count of the gates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _deps import require

import relu_probe as rp
from relu_probe.errors import StoreError

require("zarr")
require("dask")

from relu_probe.data import packed_chunks  # noqa: E402
from relu_probe.data.reduce import grouped_sum  # noqa: E402


def _plain_counts(gates: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """(unit, group) counts of on-gates, one group at a time in int64."""
    return np.stack([gates[codes == g].sum(axis=0, dtype=np.int64) for g in range(n_groups)], axis=1)


@pytest.fixture
def reads(monkeypatch):
    """The (chunk, rows) of every stored-chunk read."""
    calls = []
    original = packed_chunks.PackedChunks.read

    def spy(self, index, rows):
        calls.append((index, rows))
        return original(self, index, rows)

    monkeypatch.setattr(packed_chunks.PackedChunks, "read", spy)
    return calls


def _two_site_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 203), torch.nn.ReLU(), torch.nn.Linear(203, 77), torch.nn.ReLU())


def test_stored_chunks_give_exact_counts_with_a_ragged_last_chunk_and_groups_over_255_rows(tmp_path, reads):
    model = _two_site_model()
    n, chunk = 1500, 600  # chunks of 600, 600 and 300 rows
    X = torch.randn(n, 5, generator=torch.Generator().manual_seed(1))
    coords = {"parity": np.arange(n) % 2, "context": np.arange(n) % 3}  # 300 / 200 rows per group and chunk
    lazy = rp.record(model, X, coords=coords, store=tmp_path / "g.zarr", chunk_size=chunk)
    gates = rp.record(model, X, coords=coords).gate.values
    assert 0 < gates.mean() < 1

    for name, n_groups in (("parity", 2), ("context", 3)):
        reads.clear()
        sums, counts = grouped_sum(lazy.gate, [name])
        assert sorted(reads) == [(0, 600), (1, 600), (2, 300)]  # every chunk read once, as stored
        np.testing.assert_array_equal(sums.values, _plain_counts(gates, coords[name], n_groups))
        np.testing.assert_array_equal(counts.values, np.bincount(coords[name]))
    reads.clear()
    total, _ = grouped_sum(lazy.gate, [])  # one group of 600 rows per chunk
    assert len(reads) == 3
    np.testing.assert_array_equal(total.values, gates.sum(axis=0))


def test_a_site_of_a_stored_recording_counts_its_own_byte_columns(tmp_path, reads):
    from relu_probe.data.access import as_recording

    model = _two_site_model()
    X = torch.randn(700, 5, generator=torch.Generator().manual_seed(2))
    coords = {"context": np.arange(700) % 3}
    stored = as_recording(rp.record(model, X, coords=coords, store=tmp_path / "g.zarr", chunk_size=256))
    memory = as_recording(rp.record(model, X, coords=coords))
    for site in ("1", "3"):  # units 0-202 (stored chunks' columns 0..25) and 203-279 (not byte-aligned)
        part, plain = stored.select_sites(site), memory.select_sites(site)
        sums, _ = grouped_sum(part.raw_gates(), ["context"])
        np.testing.assert_array_equal(sums.values, _plain_counts(plain.raw_gates().values, coords["context"], 3))
    part = stored.isel_units(np.arange(8, 200))  # starts on byte 1: counted from the stored chunks' columns 1..24
    reads.clear()
    sums, _ = grouped_sum(part.raw_gates(), ["context"])
    assert len(reads) == 3
    expected = _plain_counts(memory.raw_gates().values[:, 8:200], coords["context"], 3)
    np.testing.assert_array_equal(sums.values, expected)


def test_a_chunk_never_written_reads_as_all_off(tmp_path, reads):
    model = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.ReLU())
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.copy_(torch.linspace(0, 0.5, 16))
    x = torch.rand(300, 1) + 1.0
    x[100:200] = -2.0  # every gate of the second chunk is off: zarr writes no file for it
    coords = {"context": np.arange(300) % 2}
    path = tmp_path / "g.zarr"
    lazy = rp.record(model, x, coords=coords, store=path, chunk_size=100)
    assert not (path / "gate_bits" / "c" / "1" / "0").exists()
    assert (path / "gate_bits" / "c" / "0" / "0").exists()
    gates = rp.record(model, x, coords=coords).gate.values
    sums, _ = grouped_sum(lazy.gate, ["context"])
    assert sorted(reads) == [(0, 100), (1, 100), (2, 100)]
    np.testing.assert_array_equal(sums.values, _plain_counts(gates, coords["context"], 2))
    assert sums.values.sum() == 200 * 16


def test_unaligned_chunks_and_other_layouts_read_through_zarr(tmp_path, reads):
    import zarr

    model = _two_site_model()
    X = torch.randn(700, 5, generator=torch.Generator().manual_seed(3))
    coords = {"context": np.arange(700) % 3}
    rp.record(model, X, coords=coords, store=tmp_path / "g.zarr", chunk_size=300)
    gates = rp.record(model, X, coords=coords).gate.values
    rechunked = rp.load(tmp_path / "g.zarr", chunks={"sample": 250})
    sums, _ = grouped_sum(rechunked.gate, ["context"])
    assert reads == []  # dask chunks of 250 rows are not the stored chunks of 300
    np.testing.assert_array_equal(sums.values, _plain_counts(gates, coords["context"], 3))

    group = zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    blosc = group.create_array("a", shape=(10, 4), chunks=(5, 4), dtype="uint8", compressors=zarr.codecs.BloscCodec())
    narrow = group.create_array("b", shape=(10, 4), chunks=(5, 2), dtype="uint8")
    wide = group.create_array("c", shape=(10, 4), chunks=(5, 4), dtype="uint16")
    plain = group.create_array("d", shape=(10, 4), chunks=(5, 4), dtype="uint8")
    assert [packed_chunks.PackedChunks.of(a) for a in (blosc, narrow, wide)] == [None, None, None]
    assert packed_chunks.PackedChunks.of(plain) is not None


def test_a_chunk_that_decodes_to_the_wrong_size_is_refused(tmp_path):
    from numcodecs import Zstd

    model = _two_site_model()
    X = torch.randn(200, 5, generator=torch.Generator().manual_seed(4))
    path = tmp_path / "g.zarr"
    rp.record(model, X, coords={"context": np.arange(200) % 3}, store=path, chunk_size=100)
    (path / "gate_bits" / "c" / "1" / "0").write_bytes(Zstd().encode(np.ones(1000, dtype=np.uint8)))
    lazy = rp.load(path)
    with pytest.raises(StoreError, match=r"decodes to 1000 bytes, expected 3500 \(100 rows × 35 bytes\)"):
        grouped_sum(lazy.gate, ["context"])


@pytest.mark.parametrize("where", ["local", "memory"])
@pytest.mark.parametrize("compressors", ["auto", None])
def test_read_gives_zarrs_own_bytes_for_every_chunk(tmp_path, where, compressors):
    import zarr

    store = zarr.storage.LocalStore(tmp_path / "a.zarr") if where == "local" else zarr.storage.MemoryStore()
    array = zarr.create_array(store, shape=(250, 13), chunks=(64, 13), dtype="uint8", compressors=compressors)
    data = np.random.default_rng(0).integers(0, 256, size=(250, 13), dtype=np.uint8)
    data[64:128] = 0  # a chunk equal to the fill value: zarr stores nothing for it
    array[:] = data
    reader = packed_chunks.PackedChunks.of(array)
    assert reader is not None and (reader.directory is not None) == (where == "local")
    if where == "local":
        assert not (tmp_path / "a.zarr" / "c" / "1" / "0").exists() and (tmp_path / "a.zarr" / "c" / "2" / "0").exists()
    for index, start in enumerate(range(0, 250, 64)):
        rows = min(64, 250 - start)
        np.testing.assert_array_equal(reader.read(index, rows), data[start : start + rows])
