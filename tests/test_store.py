"""Bit-packed zarr stores: exact round trips, one bit per unit-sample, resume after faults."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from _deps import require

import relu_probe as rp
from relu_probe import errors
from relu_probe import testing as T
from relu_probe.data.store import StoreIncompleteWarning, pack_gates, unpack_gates

require("zarr")
require("dask")


def coords_for(n):
    return {"label": np.array([f"s{i}" for i in range(n)]), "group": np.arange(n) % 3}


@pytest.mark.parametrize("factory,inputs,kwargs", [
    (T.NestedMixedNet, T.toy_inputs(50), {"values": True}),
    (T.ToyConvNet, T.ToyConvNet.images(30), {}),
    (T.ToyConvNet, T.ToyConvNet.images(30), {"units": "channel", "values": True}),
])
def test_store_round_trip_equals_in_memory_record(tmp_path, factory, inputs, kwargs):
    model = factory()
    coords = coords_for(len(inputs))
    reference = rp.record(model, inputs, coords=coords, **kwargs)
    lazy = rp.record(model, inputs, coords=coords, store=tmp_path / "g.zarr", chunk_size=8, batch_size=7, **kwargs)
    var = "gate_rate" if "gate_rate" in lazy else "gate"
    assert lazy[var].chunks is not None  # dask-backed
    if var == "gate":
        assert lazy.gate.dtype == bool
    xr.testing.assert_identical(reference, lazy.load())
    xr.testing.assert_identical(reference, rp.load(tmp_path / "g.zarr").load())
    T.assert_no_hooks(model)


def test_pack_unpack_inverse():
    rng = np.random.default_rng(0)
    for units in (1, 7, 8, 9, 700):
        gates = rng.random((13, units)) < 0.4
        packed = pack_gates(gates)
        assert packed.shape == (13, -(-units // 8)) and packed.dtype == np.uint8
        np.testing.assert_array_equal(unpack_gates(packed, units), gates)


def test_one_bit_per_unit_sample_on_disk(tmp_path):
    model = rp.tasks.paper_network(3, width=704, seed=0, init_std=1.0)
    x = torch.randn(4096, 11, dtype=torch.float64)
    rp.record(model, x, store=tmp_path / "g.zarr")
    gate_bytes = sum(f.stat().st_size for f in (tmp_path / "g.zarr" / "gate_bits").rglob("*") if f.is_file())
    bits_per_unit_sample = gate_bytes * 8 / (4096 * 704)
    assert bits_per_unit_sample <= 1.05


def test_existing_store_refused_unless_overwrite(tmp_path):
    model, x = T.SequentialReLUNet(), T.toy_inputs(10)
    rp.record(model, x, store=tmp_path / "g.zarr")
    with pytest.raises(errors.StoreError, match="already exists and is not empty; pass overwrite=True"):
        rp.record(model, x, store=tmp_path / "g.zarr")
    out = rp.record(model, x[:6], store=tmp_path / "g.zarr", overwrite=True)
    assert out.sizes["sample"] == 6


def _fail_after(monkeypatch, n_ok):
    """Make the (n_ok + 1)-th write of packed gates fail like a full disk."""
    import zarr

    original = zarr.Array.__setitem__
    calls = {"n": 0}

    def failing(self, key, value):
        if self.name.endswith("gate_bits"):
            calls["n"] += 1
            if calls["n"] > n_ok:
                raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", failing)


def test_write_error_keeps_complete_chunks_and_resume_finishes(tmp_path, monkeypatch):
    model, x = T.NestedMixedNet(), T.toy_inputs(40)
    coords = coords_for(40)
    reference = rp.record(model, x, coords=coords, values=True)
    path = tmp_path / "g.zarr"
    _fail_after(monkeypatch, n_ok=2)
    with pytest.raises(errors.StoreError, match=r"sample chunk 2 \(samples 16–23\).*resume=True") as info:
        rp.record(model, x, coords=coords, values=True, store=path, chunk_size=8, batch_size=5)
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.undo()
    with pytest.warns(StoreIncompleteWarning, match="16 of 40 samples"):
        partial = rp.load(path)
    xr.testing.assert_identical(reference.isel(sample=slice(0, 16)), partial.load())
    resumed = rp.record(model, x, coords=coords, values=True, store=path, resume=True, batch_size=5)
    xr.testing.assert_identical(reference, resumed.load())
    T.assert_no_hooks(model)


class KilledAt(torch.nn.Module):
    """SequentialReLUNet behind a wrapper that SIGKILLs its own process at forward call *kill_at*."""

    def __init__(self, kill_at=None):
        super().__init__()
        self.net = T.SequentialReLUNet()
        self.kill_at = kill_at
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.kill_at:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import relu_probe as rp
    from relu_probe import testing as T
    from test_store import KilledAt
    # batch 6 (samples 18-20) is never recorded: chunks 0-1 (samples 0-15) are on disk by then
    rp.record(KilledAt(kill_at=7), T.toy_inputs(64), store=sys.argv[1], chunk_size=8, batch_size=3,
              coords={"i": list(range(64))})
""")


def test_resume_after_killed_process_equals_one_shot(tmp_path):
    path = tmp_path / "g.zarr"
    script = tmp_path / "killed.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(path), str(Path(__file__).parent)],
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    import zarr

    done = np.asarray(zarr.open_group(str(path), mode="r")["chunk_done"][:])
    assert done[:2].all() and not done[2:].any()

    model, x = KilledAt(), T.toy_inputs(64)
    coords = {"i": list(range(64))}
    seen = []
    model.net[0].register_forward_hook(lambda m, a, o: seen.append(len(a[0])))
    resumed = rp.record(model, x, store=path, resume=True, batch_size=3, coords=coords)
    # the first batch runs (site discovery); batches wholly inside chunks 0-1 are skipped
    assert sum(seen) == 64 - 15 + 3
    reference = rp.record(model, x, coords=coords)
    xr.testing.assert_identical(reference, resumed.load())


def test_resume_with_different_inputs_or_model_is_refused(tmp_path):
    model, x = T.SequentialReLUNet(), T.toy_inputs(20)
    path = tmp_path / "g.zarr"
    rp.record(model, x, store=path, chunk_size=8)
    with pytest.raises(errors.StoreMismatchError, match="it holds 20 samples, these inputs have 12"):
        rp.record(model, x[:12], store=path, resume=True)
    with pytest.raises(errors.StoreMismatchError, match=r"its sites is \['1', '3'\], this recording's is \['layers.1', 'layers.3'\]"):
        rp.record(T.ModuleListNet(), x, store=path, resume=True)
    with pytest.raises(errors.StoreMismatchError, match="contains 99"):
        rp.record(model, x[:2], store=path, resume=True, sample_ids=[0, 99])
    with pytest.raises(errors.StoreMismatchError, match=r"its variables is \[.gate.\], this recording.s is \[.activation., .gate.\]"):
        rp.record(model, x, store=path, resume=True, values=True)


def test_resume_without_store_and_missing_store(tmp_path):
    model, x = T.SequentialReLUNet(), T.toy_inputs(4)
    with pytest.raises(errors.StoreError, match="nothing to resume"):
        rp.record(model, x, store=tmp_path / "nope.zarr", resume=True)
    with pytest.raises(errors.ValueInputError, match="apply to a `store`"):
        rp.record(model, x, resume=True)


def test_store_needs_a_sample_count_for_plain_iterables(tmp_path):
    model, x = T.SequentialReLUNet(), T.toy_inputs(9)
    with pytest.raises(errors.ValueInputError, match="pass `n_samples=`"):
        rp.record(model, (b for b in x.split(4)), store=tmp_path / "g.zarr")
    ds = rp.record(model, (b for b in x.split(4)), store=tmp_path / "g.zarr", n_samples=9)
    np.testing.assert_array_equal(ds.gate.values[:, :3], T.SequentialReLUNet.expected_gates(x)["1"])
    with pytest.raises(errors.ValueInputError, match="yielded 9 samples but 10 were expected"):
        rp.record(model, (b for b in x.split(4)), store=tmp_path / "h.zarr", n_samples=10)


def test_load_errors(tmp_path):
    with pytest.raises(errors.StoreError, match="does not exist"):
        rp.load(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(errors.StoreError):
        rp.load(tmp_path / "plain")
