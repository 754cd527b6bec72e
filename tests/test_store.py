"""Bit-packed zarr stores: exact round trips, one bit per unit-sample, resume after faults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
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
    with pytest.raises(errors.StoreError, match="already holds a relu_probe gate store; pass overwrite=True"):
        rp.record(model, x, store=tmp_path / "g.zarr")
    out = rp.record(model, x[:6], store=tmp_path / "g.zarr", overwrite=True)
    assert out.sizes["sample"] == 6


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


# ---------------------------------------------------------------------- resume checks its inputs
def store_files(path):
    """Every file of a store and its bytes (the lock file's owner record aside)."""
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and f.name != ".relu_probe.lock"}


def interrupted_store(tmp_path, x, coords, *, chunk_size=8, done_chunks=2):
    """A store whose first *done_chunks* chunks are on disk, as a killed process leaves it."""
    path = tmp_path / "g.zarr"
    rp.record(KilledAt(), x, store=path, chunk_size=chunk_size, batch_size=4, coords=coords)
    import zarr

    done = zarr.open_group(str(path), mode="r+")["chunk_done"]
    done[done_chunks:] = 0
    return path


@pytest.mark.parametrize("change", ["values", "order"])
def test_resume_with_other_inputs_of_the_same_count_is_refused_before_writing(tmp_path, change):
    x = T.toy_inputs(40)
    coords = {"i": np.arange(40)}
    path = interrupted_store(tmp_path, x, coords)
    other = {"values": x.clone().index_fill_(0, torch.tensor([13]), 0.5),
             "order": x[torch.randperm(40, generator=torch.Generator().manual_seed(0))]}[change]
    before = store_files(path)
    model = KilledAt()
    with pytest.raises(errors.StoreMismatchError, match=r"with other inputs: sample chunk (0|1) \(samples (0–7|8–15)\)"):
        rp.record(model, other, store=path, resume=True, batch_size=5, coords=coords)
    assert store_files(path) == before  # nothing written
    resumed = rp.record(model, x, store=path, resume=True, batch_size=5, coords=coords)
    xr.testing.assert_identical(rp.record(model, x, coords=coords), resumed.load())


def test_resume_names_the_first_chunk_that_differs(tmp_path):
    x = T.toy_inputs(40)
    path = interrupted_store(tmp_path, x, None, done_chunks=2)
    other = x.clone()
    other[12] += 1.0  # sample 12 lies in chunk 1
    with pytest.raises(errors.StoreMismatchError, match=r"sample chunk 1 \(samples 8–15\)"):
        rp.record(KilledAt(), other, store=path, resume=True, batch_size=3)


def test_resume_with_another_batch_size_or_batch_form_is_accepted(tmp_path):
    x = T.toy_inputs(40)
    path = interrupted_store(tmp_path, x, None)
    reference = rp.record(KilledAt(), x)
    # the same samples as (input, label) tuples of another size: the fingerprints are per sample
    batches = [(b, torch.zeros(len(b))) for b in x.split(7)]
    resumed = rp.record(KilledAt(), batches, store=path, resume=True, n_samples=40)
    xr.testing.assert_identical(reference, resumed.load())


class KeywordNet(torch.nn.Module):
    """A model called with keyword tensors (the Hugging Face convention)."""

    def __init__(self):
        super().__init__()
        self.net = T.SequentialReLUNet()

    def forward(self, features, mask):
        return self.net(features * mask)


def test_resume_checks_dict_batches_by_every_keyword_tensor(tmp_path):
    x = T.toy_inputs(24)
    mask = torch.ones_like(x)
    path = tmp_path / "g.zarr"
    batches = [{"features": f, "mask": m} for f, m in zip(x.split(6), mask.split(6))]
    rp.record(KeywordNet(), batches, store=path, chunk_size=8, n_samples=24)
    import zarr

    zarr.open_group(str(path), mode="r+")["chunk_done"][1:] = 0
    other_mask = mask.clone()
    other_mask[3, 0] = 0.0  # same features, another mask in chunk 0
    other = [{"features": f, "mask": m} for f, m in zip(x.split(6), other_mask.split(6))]
    with pytest.raises(errors.StoreMismatchError, match=r"sample chunk 0 \(samples 0–7\)"):
        rp.record(KeywordNet(), other, store=path, resume=True, n_samples=24)
    resumed = rp.record(KeywordNet(), batches, store=path, resume=True, n_samples=24)
    xr.testing.assert_identical(rp.record(KeywordNet(), batches), resumed.load())


def test_resume_with_other_coords_is_refused_before_the_model_runs(tmp_path):
    x = T.toy_inputs(20)
    coords = {"context": np.arange(20) % 3, "name": np.array([f"s{i}" for i in range(20)])}
    path = interrupted_store(tmp_path, x, coords)
    model = KilledAt()
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    changed = {**coords, "context": np.where(np.arange(20) == 11, 7, coords["context"])}
    with pytest.raises(errors.StoreMismatchError, match=r"`coords\['context'\]` differs at sample 11 "
                                                        r"\(the store has 2, these coords 7\)"):
        rp.record(model, x, store=path, resume=True, coords=changed)
    with pytest.raises(errors.StoreMismatchError, match=r"no sample coord 'object' \(its coords are "
                                                        r"\['context', 'name'\]\)"):
        rp.record(model, x, store=path, resume=True, coords={"object": np.zeros(20)})
    assert calls == []
    # the same coords, or none (the store keeps its own), are accepted
    resumed = rp.record(model, x, store=path, resume=True)
    xr.testing.assert_identical(rp.record(model, x, coords=coords), resumed.load())


def test_a_refused_resume_leaves_no_chunk_flagged(tmp_path):
    """Chunks recorded before the mismatch is found (a store finished out of order) are not
    flagged done: the store is as before, and finishing it with the right inputs works."""
    x = T.toy_inputs(32)
    path = tmp_path / "g.zarr"
    rp.record(KilledAt(), x, store=path, chunk_size=8, batch_size=4)
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group["chunk_done"][0:2] = 0  # chunks 2 and 3 done (e.g. by another rank), 0 and 1 not
    other = x.clone()
    other[30] += 1.0  # chunk 3 differs: found only after chunks 0-1 were recorded
    with pytest.raises(errors.StoreMismatchError, match="sample chunk 3"):
        rp.record(KilledAt(), other, store=path, resume=True, batch_size=4)
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["chunk_done"][:], [0, 0, 1, 1])
    resumed = rp.record(KilledAt(), x, store=path, resume=True, batch_size=4)
    xr.testing.assert_identical(rp.record(KilledAt(), x), resumed.load())


# ---------------------------------------------------------------------- start-up
class Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = T.SequentialReLUNet()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def unusable_paths(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = {"parent is a file": (blocker / "g.zarr", "NotADirectoryError"),
             "name too long": (tmp_path / ("n" * 300) / "g.zarr", "File name too long")}
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases["no permission"] = (locked / "g.zarr", "Permission denied")
    return cases


def test_an_unusable_store_path_fails_before_the_first_forward(tmp_path):
    for name, (path, os_error) in unusable_paths(tmp_path).items():
        model = Counting()
        with pytest.raises(errors.StoreError) as info:
            rp.record(model, T.toy_inputs(8), store=path)
        assert str(path) in str(info.value) and os_error in str(info.value), name
        assert not isinstance(info.value, errors.ForwardError)
        assert model.calls == 0, name
        X, _, coords = rp.tasks.contextual_task(3)
        with pytest.raises(errors.StoreError, match=os_error):
            rp.TrainingMonitor(rp.tasks.paper_network(3), X, coords=coords, store=path)


HOLD_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    import relu_probe as rp
    from relu_probe import testing as T

    class Waits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = T.SequentialReLUNet()
        def forward(self, x):
            Path(sys.argv[2]).write_text("recording")
            while True:  # holds the store until it is killed
                time.sleep(0.05)

    rp.record(Waits(), T.toy_inputs(16), store=sys.argv[1], chunk_size=8, batch_size=4)
""")


def test_a_second_writer_is_refused_until_the_first_dies(tmp_path):
    path, ready = tmp_path / "g.zarr", tmp_path / "ready"
    script = tmp_path / "hold.py"
    script.write_text(HOLD_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()[1] if proc.poll() is not None else "the writer did not start"
        model, x = T.SequentialReLUNet(), T.toy_inputs(16)
        held = rf"is being written by another process \(pid {proc.pid} on host "
        for kwargs in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(errors.StoreError, match=held):
                rp.record(model, x, store=path, chunk_size=8, **kwargs)
        with pytest.raises(errors.StoreError, match=held):
            rp.TrainingMonitor(model, x, store=path, overwrite=True)
    finally:
        proc.kill()
        proc.communicate()
    # the OS released the dead writer's lock: the store can be overwritten (or resumed) now
    ds = rp.record(model, x, store=path, chunk_size=8, overwrite=True)
    np.testing.assert_array_equal(ds.gate.values[:, :3], T.SequentialReLUNet.expected_gates(x)["1"])


def test_a_newer_writer_in_the_same_process_takes_over(tmp_path):
    """Re-running a cell (or re-creating a monitor after an interrupted loop) needs no close();
    the older writer may not write anymore."""
    X, _, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3)
    old = rp.TrainingMonitor(model, X, coords=coords, store=tmp_path / "m.zarr")
    old.snapshot(0)
    new = rp.TrainingMonitor(model, X, coords=coords, store=tmp_path / "m.zarr")
    assert new.steps == [0]
    with pytest.raises(errors.StoreError, match="taken over by a newer writer in this process"):
        old.snapshot(1)
    assert new.snapshot(1)
    new.close()
    assert list(rp.load(tmp_path / "m.zarr").step.values) == [0, 1]


# ---------------------------------------------------------------------- a real write failure
FSIZE_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    import relu_probe as rp
    sys.path.insert(0, sys.argv[3])
    from test_store import fsize_case

    model, x, coords = fsize_case()
    limit = int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        rp.record(model, x, coords=coords, store=sys.argv[1], chunk_size=256, batch_size=100)
    except Exception as exc:
        print(f"{type(exc).__name__}|{isinstance(exc, rp.errors.ForwardError)}|{exc!r}|{exc.__cause__!r}")
        sys.exit(3)
""")


def fsize_case():
    """Identity readout of 512 units: gates = inputs > 0. Samples 0-511 are all off (chunk files
    of a few bytes), samples 512-1023 random (chunk files of 16 KiB: packed random bits do not
    compress)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 512, bias=False), torch.nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(512))
    x = torch.randn(1024, 512)
    x[:512] = -1.0
    return model, x, {"i": np.arange(1024)}


def run_under_fsize_limit(tmp_path, limit):
    script = tmp_path / "fsize.py"
    script.write_text(FSIZE_SCRIPT)
    path = tmp_path / "g.zarr"
    proc = subprocess.run([sys.executable, str(script), str(path), str(limit), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=300)
    return path, proc


def test_a_real_write_failure_keeps_complete_chunks_and_resume_finishes(tmp_path):
    """RLIMIT_FSIZE makes the OS refuse files over 12 KiB: the first random chunk (16 KiB) fails."""
    path, proc = run_under_fsize_limit(tmp_path, 12288)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    name, forward, message, cause = proc.stdout.strip().splitlines()[-1].split("|")
    assert name == "StoreError" and forward == "False"
    assert "sample chunk 2 (samples 512–767)" in message and "File too large" in cause
    model, x, coords = fsize_case()
    reference = rp.record(model, x, coords=coords)
    with pytest.warns(StoreIncompleteWarning, match="512 of 1024 samples"):
        partial = rp.load(path)
    xr.testing.assert_identical(reference.isel(sample=slice(0, 512)), partial.load())
    resumed = rp.record(model, x, coords=coords, store=path, resume=True, batch_size=100)
    xr.testing.assert_identical(reference, resumed.load())


def test_a_write_failure_in_the_store_metadata_is_a_store_error(tmp_path):
    """A limit below the size of the store's metadata: a StoreError naming the store and the
    OS error — not "the model's forward raised" — and nothing is left that looks complete."""
    path, proc = run_under_fsize_limit(tmp_path, 600)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    name, forward, message, cause = proc.stdout.strip().splitlines()[-1].split("|")
    assert name == "StoreError" and forward == "False", message
    assert str(path) in message and "File too large" in message + cause


def test_resume_of_a_shard_in_another_order_is_accepted(tmp_path):
    """Samples given by `sample_ids` in any order are checked in store order (the fingerprint
    holds the rows that arrive ahead until it reaches them)."""
    x = T.toy_inputs(40)
    path = interrupted_store(tmp_path, x, None)
    order = np.random.default_rng(0).permutation(40)
    resumed = rp.record(KilledAt(), x[order], store=path, resume=True, sample_ids=order, batch_size=3)
    xr.testing.assert_identical(rp.record(KilledAt(), x), resumed.load())
    path2 = interrupted_store(tmp_path / "b", x, None)
    swapped = order.copy()
    a, b = np.flatnonzero(order == 3)[0], np.flatnonzero(order == 20)[0]
    swapped[[a, b]] = swapped[[b, a]]  # samples 3 (chunk 0, on disk) and 20 get each other's inputs
    with pytest.raises(errors.StoreMismatchError, match=r"sample chunk 0 \(samples 0–7\)"):
        rp.record(KilledAt(), x[order], store=path2, resume=True, sample_ids=swapped, batch_size=3)


def test_a_store_of_another_format_version_is_named_as_such(tmp_path):
    import json

    path = tmp_path / "g.zarr"
    rp.record(T.SequentialReLUNet(), T.toy_inputs(6), store=path)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["relu_probe_store"] = 99
    meta["consolidated_metadata"] = None
    (path / "zarr.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
    with pytest.raises(errors.StoreError, match=r"is a relu_probe gate store of format version 99; this relu_probe"):
        rp.load(path)
