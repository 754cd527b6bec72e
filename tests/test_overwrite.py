"""overwrite=True deletes only what relu_probe wrote: record stores, monitor stores, saved analyses."""

from __future__ import annotations

import json

import numpy as np
import pytest

import relu_probe as rp
from relu_probe import errors
from relu_probe import testing as T
from _deps import require

require("zarr")


def users_folder(path):
    """A folder of the user's own files (and a sub-folder)."""
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    (path / "results").mkdir()
    (path / "results" / "table.csv").write_text("a,b\n1,2\n")
    return path


def untouched(path):
    assert (path / "notes.txt").read_text() == "my notes"
    assert (path / "results" / "table.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt", "results"]


def write_record(path):
    rp.record(T.SequentialReLUNet(), T.toy_inputs(6), store=path, overwrite=True)


def write_monitor(path):
    X, _, coords = rp.tasks.contextual_task(3)
    mon = rp.TrainingMonitor(rp.tasks.paper_network(3), X, coords=coords, store=path, overwrite=True)
    mon.snapshot(0)
    mon.close()


def write_analysis(path, _cache={}):
    if "res" not in _cache:
        X, Y, coords = rp.tasks.contextual_task(3)
        model = rp.tasks.paper_network(3, seed=0)
        rp.tasks.train_full_batch(model, X, Y, epochs=50)
        _cache["res"] = rp.analyze(model, X, coords=coords, by="context", within="object", progress=False)
    _cache["res"].save(path, overwrite=True)


WRITERS = {"record store": write_record, "monitor store": write_monitor, "analysis": write_analysis}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_folder_of_the_users_files_is_refused_and_kept(tmp_path, kind):
    folder = users_folder(tmp_path / "mine")
    with pytest.raises(errors.StoreError, match=r"is not empty and is not a relu_probe output: it holds "
                                                r"'notes.txt', 'results/'"):
        WRITERS[kind](folder)
    untouched(folder)


@pytest.mark.parametrize("kind", WRITERS)
def test_a_file_is_refused_and_kept(tmp_path, kind):
    target = tmp_path / "file.bin"
    target.write_bytes(b"\x00data")
    with pytest.raises(errors.StoreError, match="exists and is a file, not a directory"):
        WRITERS[kind](target)
    assert target.read_bytes() == b"\x00data"


@pytest.mark.parametrize("kind", WRITERS)
def test_a_lookalike_of_relu_probe_metadata_is_not_enough(tmp_path, kind):
    """A folder that merely has files named like relu_probe's (a zarr store of someone else,
    a summary.json of another tool) is not relu_probe's."""
    folder = users_folder(tmp_path / "mine")
    (folder / "summary.json").write_text(json.dumps({"format": "other-tool", "n": 3}))
    (folder / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    with pytest.raises(errors.StoreError, match="is not a relu_probe output"):
        WRITERS[kind](folder)
    assert (folder / "summary.json").exists() and (folder / "zarr.json").exists()
    untouched_names = {"notes.txt", "results", "summary.json", "zarr.json"}
    assert {p.name for p in folder.iterdir()} == untouched_names


@pytest.mark.parametrize("kind", WRITERS)
def test_relu_probe_output_with_the_users_files_inside_is_refused(tmp_path, kind):
    path = tmp_path / "out"
    WRITERS[kind](path)
    (path / "my_notes.txt").write_text("keep me")
    with pytest.raises(errors.StoreError, match=r"but also 'my_notes.txt', which relu_probe did not write"):
        WRITERS[kind](path)
    assert (path / "my_notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("first", WRITERS)
@pytest.mark.parametrize("second", WRITERS)
def test_relu_probe_outputs_are_replaced(tmp_path, first, second):
    path = tmp_path / "out"
    WRITERS[first](path)
    WRITERS[second](path)
    marker = json.loads((path / ".relu_probe").read_text())
    assert marker["relu_probe_output"] == {"record store": "gate store"}.get(second, second)
    if second == "analysis":
        assert rp.Analysis.load(path).scores.notna().any()
    else:
        assert rp.load(path).sizes["unit"] > 0


def test_without_overwrite_a_relu_probe_output_is_kept(tmp_path):
    path = tmp_path / "g.zarr"
    write_record(path)
    before = rp.load(path).load()
    with pytest.raises(errors.StoreError, match="already holds a relu_probe gate store; pass overwrite=True"):
        rp.record(T.SequentialReLUNet(), T.toy_inputs(9), store=path)
    X, _, coords = rp.tasks.contextual_task(3)
    with pytest.raises(errors.StoreError, match="already holds a relu_probe gate store; pass overwrite=True"):
        rp.TrainingMonitor(rp.tasks.paper_network(3), X, coords=coords, store=path)
    assert rp.load(path).load().identical(before)


def test_overwrite_of_a_store_written_before_markers(tmp_path):
    """A store from an older relu_probe (no marker file) is recognised by its zarr metadata."""
    path = tmp_path / "g.zarr"
    write_record(path)
    (path / ".relu_probe").unlink()
    rp.record(T.SequentialReLUNet(), T.toy_inputs(9), store=path, overwrite=True)
    assert rp.load(path).sizes["sample"] == 9


def test_an_interrupted_claim_leaves_a_directory_that_can_be_used(tmp_path):
    """A record whose model failed before any data was written leaves only relu_probe's marker
    and lock; recording there again needs no overwrite."""

    class Broken(T.SequentialReLUNet):
        def forward(self, x):
            raise RuntimeError("boom")

    path = tmp_path / "g.zarr"
    with pytest.raises(errors.ForwardError, match="boom"):
        rp.record(Broken(), T.toy_inputs(4), store=path)
    assert sorted(p.name for p in path.iterdir()) == [".relu_probe", ".relu_probe.lock"]
    ds = rp.record(T.SequentialReLUNet(), T.toy_inputs(4), store=path)
    np.testing.assert_array_equal(ds.gate.values[:, :3], T.SequentialReLUNet.expected_gates(T.toy_inputs(4))["1"])


def users_zarr_array(path):
    """The user's own zarr array (e.g. embeddings they keep beside the gates)."""
    import zarr

    array = zarr.create_array(str(path), shape=(4,), dtype="float32", fill_value=0)
    array[:] = np.arange(4, dtype=np.float32)
    return path


@pytest.mark.parametrize("kind", ["record store", "monitor store"])
@pytest.mark.parametrize("entry", ["zarr array", "temp-like file", "symlink"])
def test_overwrite_refuses_the_users_zarr_nodes_temp_files_and_links_inside_a_store(tmp_path, kind, entry):
    """Only the nodes a store's consolidated metadata lists, zarr's own ``zarr.<uuid>.partial``
    temp files and never a symlink count as relu_probe's."""
    path = tmp_path / "out"
    WRITERS[kind](path)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    if entry == "zarr array":
        users_zarr_array(path / "my_embeddings")
        name = "my_embeddings/"
    elif entry == "temp-like file":
        (path / "download.partial").write_text("half a download")
        name = "download.partial"
    else:  # a link to a zarr array of the user's, kept elsewhere
        (path / "link").symlink_to(users_zarr_array(tmp_path / "arrays.zarr"), target_is_directory=True)
        name = "link/"
    with pytest.raises(errors.StoreError, match=rf"but also '{name}', which relu_probe did not write"):
        WRITERS[kind](path)
    assert (target / "keep.txt").read_text() == "mine"
    if entry == "zarr array":
        import zarr

        assert zarr.open_array(str(path / "my_embeddings"), mode="r")[:].tolist() == [0, 1, 2, 3]
    elif entry == "temp-like file":
        assert (path / "download.partial").read_text() == "half a download"
    else:
        assert (path / "link").is_symlink() and (tmp_path / "arrays.zarr" / "zarr.json").is_file()


def test_a_monitor_store_without_a_snapshot_keeps_the_users_files(tmp_path):
    """A monitor store claimed before training stopped holds only relu_probe's marker and lock;
    files the user then put in it are refused by the first snapshot, not deleted."""
    path = tmp_path / "mon.zarr"
    X, _, coords = rp.tasks.contextual_task(3)
    rp.TrainingMonitor(rp.tasks.paper_network(3), X, coords=coords, store=path).close()
    (path / "config.yaml").write_text("lr: 0.1\n")
    (path / "my_dir").mkdir()
    (path / "my_dir" / "ckpt.pt").write_bytes(b"weights")
    mon = rp.TrainingMonitor(rp.tasks.paper_network(3), X, coords=coords, store=path)
    with pytest.raises(errors.StoreError, match=r"without a snapshot yet, but it also holds 'config.yaml', "
                                                r"'my_dir/', which relu_probe did not write"):
        mon.snapshot(0)
    mon.close()
    assert (path / "config.yaml").read_text() == "lr: 0.1\n"
    assert (path / "my_dir" / "ckpt.pt").read_bytes() == b"weights"
