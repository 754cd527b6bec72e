"""The relu-probe command line: demo, analyze (state dicts, TorchScript and torch.export
archives), report; exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import relu_probe as rp
from relu_probe.cli import CLIError, main

FACTORY = """
import relu_probe as rp

def build():
    return rp.tasks.paper_network(3, width=24, init_std=0.005 / 24, seed=5)

def wide():
    return rp.tasks.paper_network(3, width=30, seed=5)

def broken():
    raise RuntimeError("cannot build")

def not_a_model():
    return 42
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A factory module, trained weights in three formats, and an inputs .npz."""
    root = tmp_path_factory.mktemp("cli")
    (root / "cli_models.py").write_text(FACTORY)
    sys.path.insert(0, str(root))
    try:
        import cli_models
    finally:
        sys.path.remove(str(root))
    X, Y, coords = rp.tasks.contextual_task(3)
    model = cli_models.build()
    loss = rp.tasks.train_full_batch(model, X, Y, lr=2e-3, epochs=150)
    names = np.array([f"object {i}" for i in range(8)] + [f"context {c}" for c in range(3)])
    np.savez(root / "inputs.npz", X=X.numpy(), Y=Y.numpy(), loss=loss, names=names, **coords)
    np.savez(root / "no_x.npz", inputs=X.numpy(), **coords)
    np.savez(root / "objects.npz", X=np.array([{"a": 1}] * 24, dtype=object), allow_pickle=True)
    torch.save(model.state_dict(), root / "weights.pt")
    torch.jit.save(torch.jit.script(model), root / "scripted.pt")
    torch.export.save(torch.export.export(model, (X,)), root / "exported.pt2")
    (root / "garbage.pt").write_bytes(b"not a torch file")
    return {"root": root, "model": model, "X": X, "coords": coords, "loss": loss,
            "factory": str(root / "cli_models.py")}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def recorded_gates(files):
    ds = rp.record(files["model"], files["X"], coords=files["coords"])
    return ds["gate"].values


def test_demo_console_script_ends_with_report_path(tmp_path):
    script = Path(sys.executable).with_name("relu-probe")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "relu_probe.cli"]
    proc = subprocess.run([*cmd, "demo", "--epochs", "120", "--every", "40", "--no-literature",
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    report = (tmp_path / "out" / "report.html").resolve()
    assert last == str(report) and report.is_file()
    assert "Traceback" not in proc.stderr
    res = rp.Analysis.load(tmp_path / "out" / "analysis")
    assert res.reln is not None and res.dynamics.sizes["epoch"] == 120
    assert set(res.comparison) == {"reln", "race", "closed"}  # the closed form beside the exact prediction
    assert res.monitor_scores.index.tolist() == [0, 40, 80]
    assert "ccgp_score" not in res.scores.index


def test_demo_options(capsys, tmp_path):
    threads = torch.get_num_threads()
    code, out, err = run(capsys, "demo", "--contexts", 4, "--epochs", 80, "--seed", 2, "--out", tmp_path,
                         "--title", "four <contexts>", "--every", 0)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str((tmp_path / "report.html").resolve())
    res = rp.Analysis.load(tmp_path / "analysis")
    assert res.pathways.n_contexts == 4 and res.params["title"] == "four <contexts>"
    assert res.monitor_scores is None and "ccgp_score" in res.scores.index
    assert "four &lt;contexts&gt;" in (tmp_path / "report.html").read_text()
    assert torch.get_num_threads() == threads  # the demo's single thread is restored
    code, out, err = run(capsys, "demo", "--variant", "diff", "--contexts", 4, "--out", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "--variant diff is defined for 3 contexts" in err


def test_analyze_state_dict_with_targets(capsys, files, tmp_path):
    root = files["root"]
    code, out, err = run(capsys, "analyze", "--model", f"{files['factory']}:build", "--weights", root / "weights.pt",
                         "--inputs", root / "inputs.npz", "--by", "context", "--within", "object", "--targets", "Y",
                         "--loss-curve", "loss", "--feature-names", "names", "--lr", "2e-3", "--no-literature",
                         "--out", tmp_path)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str((tmp_path / "report.html").resolve())
    res = rp.Analysis.load(tmp_path / "analysis")
    np.testing.assert_array_equal(res.dataset["gate"].values, recorded_gates(files))
    np.testing.assert_array_equal(res.dynamics["loss_relu"].values, files["loss"])
    assert res.reln.lr_ == 2e-3 and set(res.comparison) == {"reln", "race", "closed"}
    assert res.attributions["feature_name"].values.tolist()[-1] == "context 2"


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_analyze_archives_record_the_same_gates(capsys, files, tmp_path, kind):
    root = files["root"]
    if kind == "torchscript":
        argv = ["--model", f"{files['factory']}:build", "--weights", root / "scripted.pt"]
    else:
        argv = ["--model", root / "exported.pt2"]
    # archives run code from the file when loaded: they need the explicit opt-in
    code, _, err = run(capsys, "analyze", *argv, "--inputs", root / "inputs.npz", "--by", "context",
                       "--within", "object", "--no-literature", "--out", tmp_path)
    assert code == 2 and "pass --trust-archive to load it" in err
    code, _, err = run(capsys, "analyze", *argv, "--trust-archive", "--inputs", root / "inputs.npz", "--by", "context",
                         "--within", "object", "--no-literature", "--out", tmp_path)
    assert code == 0, err
    res = rp.Analysis.load(tmp_path / "analysis")
    np.testing.assert_array_equal(res.dataset["gate"].values, recorded_gates(files))
    if kind == "export":
        # aten.relu became an nn.ReLU site and aten.linear an nn.Linear readout
        assert res.params["sites"] == ["relu"] and res.params["importance"] == "readout"
        eager = rp.unit_importance(files["model"], rp.record(files["model"], files["X"], values=True))
        np.testing.assert_allclose(res.importance.values, eager.values, rtol=1e-12)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--inputs", "{root}/missing.npz"], "--inputs '{root}/missing.npz' does not exist"),
        (["--inputs", "{root}/no_x.npz"], "has no array 'X' (the inputs); keys: context, inputs, object"),
        (["--inputs", "{root}/objects.npz"], "holds object arrays"),
        (["--inputs", "{root}/weights.pt"], "has no array 'X'"),
        (["--by", "ctx"], ("--by 'ctx' is not a coord in '{root}/inputs.npz' (coords, 1-D arrays with one value per "
                           "sample: context, object)")),
        (["--within", "item"], "--within 'item' is not a coord"),
        (["--targets", "YY"], "--targets 'YY' is not a key of '{root}/inputs.npz' (keys: X, Y, context, loss, names, object)"),
        (["--model", "{factory}:nope"], "has no attribute 'nope'"),
        (["--model", "no_such_module_xyz:build"], "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
        (["--model", "{factory}:broken"], "the factory raised RuntimeError: cannot build"),
        (["--model", "{factory}:not_a_model"], "must return a torch.nn.Module, got int 42"),
        (["--model", "build"], "--model must be MODULE:FACTORY"),
        (["--weights", "{root}/garbage.pt"], "is not a readable PyTorch state dict, TorchScript or torch.export archive"),
        (["--weights", "{root}/inputs.npz"], "is not a readable PyTorch state dict"),
        (["--model", "{factory}:wide", "--weights", "{root}/weights.pt"], "does not fit the model: Error(s) in loading"),
        (["--model", "{root}/scripted.pt"], "is a TorchScript archive, whose compiled graph runs no Python hooks"),
        (["--model", "{root}/exported.pt2"], "is a torch.export archive, and loading it runs code from the file"),
        (["--weights", "{root}/scripted.pt"], "is a TorchScript archive, and loading it runs code from the file"),
        (["--model", "{root}/weights.pt"], "is a file but not a torch.export archive"),
    ],
)
def test_analyze_errors_are_one_line(capsys, files, tmp_path, argv, message):
    root, factory = files["root"], files["factory"]
    base = {"--model": f"{factory}:build", "--inputs": str(root / "inputs.npz"), "--by": "context"}
    argv = [a.format(root=root, factory=factory) for a in argv]
    for key, value in zip(argv[::2], argv[1::2]):
        base[key] = value
    flat = [x for kv in base.items() for x in kv]
    code, _, err = run(capsys, "analyze", *flat, "--out", tmp_path)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("relu-probe analyze: error: "), err
    assert message.format(root=root) in err
    assert "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--inputs", "x.npz"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert "the following arguments are required: --model, --by" in err
    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "0"])
    assert info.value.code == 2 and "expected a positive integer, got 0" in capsys.readouterr().err
    assert main([]) == 2


def test_debug_shows_the_exception(files, capsys):
    with pytest.raises(CLIError, match="does not exist"):
        main(["analyze", "--debug", "--model", "m:f", "--inputs", "/nonexistent.npz", "--by", "c"])
    with pytest.raises(CLIError):
        main(["--debug", "demo", "--contexts", "1"])


def test_report_command(capsys, files, tmp_path):
    root = files["root"]
    assert run(capsys, "analyze", "--model", f"{files['factory']}:build", "--weights", root / "weights.pt",
               "--inputs", root / "inputs.npz", "--by", "context", "--out", tmp_path / "a")[0] == 0
    # a saved analysis
    code, out, err = run(capsys, "report", tmp_path / "a" / "analysis", "--out", tmp_path / "r1")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str((tmp_path / "r1" / "report.html").resolve())
    # the report of a saved analysis next to it: only report.html is written (with --overwrite: one is there)
    saved = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "a" / "analysis").iterdir())
    code, _, err = run(capsys, "report", tmp_path / "a" / "analysis", "--out", tmp_path / "a")
    assert code == 2 and "already holds a relu_probe report.html; pass --overwrite" in err
    code, _, err = run(capsys, "report", tmp_path / "a" / "analysis", "--out", tmp_path / "a", "--overwrite")
    assert code == 0, err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "a" / "analysis").iterdir()) == saved
    # a netCDF recording and a zarr gate store (need --by)
    ds = rp.record(files["model"], files["X"], coords=files["coords"], values=True, store=tmp_path / "gates.zarr")
    rp.io.to_netcdf(ds.load(), tmp_path / "rec.nc")
    for source in (tmp_path / "rec.nc", tmp_path / "gates.zarr"):
        code, out, err = run(capsys, "report", source, "--by", "context", "--within", "object", "--no-literature",
                             "--out", tmp_path / source.stem)
        assert code == 0, err
        res = rp.Analysis.load(tmp_path / source.stem / "analysis")
        assert res.params["importance"] == "activity"
        np.testing.assert_array_equal(res.dataset["gate"].values, recorded_gates(files))
    for argv, message in (
        ([tmp_path / "nothing"], "does not exist"),
        ([tmp_path / "rec.nc"], "--by is required"),
        ([tmp_path / "rec.nc", "--by", "colour"], "`by`='colour' is not a sample coord"),
        ([root / "inputs.npz", "--by", "context"], "is neither a saved analysis, a zarr gate store nor a netCDF"),
        ([tmp_path / "a" / "analysis", "--by", "context"], "--by/--within apply to recordings"),
        ([root, "--by", "context"], "is not a zarr store"),
    ):
        code, _, err = run(capsys, "report", *argv, "--out", tmp_path / "bad")
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)


def test_analyze_attribution_switches(capsys, files, tmp_path):
    root = files["root"]
    base = ["analyze", "--model", f"{files['factory']}:build", "--weights", root / "weights.pt", "--inputs",
            root / "inputs.npz", "--by", "context", "--within", "object", "--no-literature", "--out", tmp_path]
    code, _, err = run(capsys, *base, "--no-attribution")
    assert code == 0, err
    res = rp.Analysis.load(tmp_path / "analysis")
    assert res.attributions is None and not any("attribution" in n for n in res.notes)
    assert "No input attributions" in (tmp_path / "report.html").read_text()
    code, _, err = run(capsys, *base, "--attribution")  # the earlier results are kept without --overwrite
    assert code == 2 and "already holds a relu_probe report.html and analysis; pass --overwrite" in err
    assert rp.Analysis.load(tmp_path / "analysis").attributions is None
    code, _, err = run(capsys, *base, "--attribution", "--overwrite")
    assert code == 0, err
    assert rp.Analysis.load(tmp_path / "analysis").attributions is not None
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in base] + ["--attribution", "--no-attribution"])
    _, err = capsys.readouterr()
    assert exc.value.code == 2 and err.count("\n") == 1 and "not allowed with argument" in err


def test_a_coord_of_the_wrong_length_is_named_as_such(capsys, files, tmp_path):
    """A `--by` array that is there but 5 values short is reported with its shape and the
    number of samples expected (before: "is not a coord")."""
    root = files["root"]
    X = files["X"].numpy()
    np.savez(tmp_path / "short.npz", X=X, context=files["coords"]["context"][:-5])
    code, _, err = run(capsys, "analyze", "--model", f"{files['factory']}:build", "--inputs", tmp_path / "short.npz",
                       "--by", "context", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1, err
    assert f"--by 'context' in '{tmp_path / 'short.npz'}' has shape ({X.shape[0] - 5},)" in err
    assert f"one value per sample ({X.shape[0]}" in err
    del root


def test_out_never_loses_the_users_files(capsys, files, tmp_path):
    """--out is checked before anything runs: a report.html relu_probe did not write, a
    report.html that is a link (writing through it would change its target), or an analysis/
    holding the user's files are refused with or without --overwrite; a report of a saved
    analysis into the directory holding it is refused (it would delete the analysis's ReLN)."""
    root = files["root"]
    analyze = ["analyze", "--model", f"{files['factory']}:build", "--weights", root / "weights.pt", "--inputs",
               root / "inputs.npz", "--by", "context", "--within", "object", "--no-literature", "--no-attribution"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("<html>my own notes</html>")
    for extra in ([], ["--overwrite"]):
        code, out, err = run(capsys, *analyze, "--out", mine, *extra)
        assert code == 2 and "exists and is not a relu_probe report; relu_probe never replaces" in err
        assert "analysing" not in out  # refused before the analysis ran
    assert (mine / "report.html").read_text() == "<html>my own notes</html>"
    linked = tmp_path / "linked"
    linked.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (linked / "report.html").symlink_to(precious)
    code, _, err = run(capsys, *analyze, "--out", linked, "--overwrite")
    assert code == 2 and "is a symbolic link" in err and precious.read_text() == "keep"
    good = tmp_path / "good"
    assert run(capsys, *analyze, "--out", good)[0] == 0
    (good / "analysis" / "my_table.csv").write_text("a,b")
    code, _, err = run(capsys, *analyze, "--out", good, "--overwrite")
    assert code == 2 and "holds 'my_table.csv', which relu_probe did not write" in err
    (good / "analysis" / "my_table.csv").unlink()
    before = sorted(p.name for p in (good / "analysis").iterdir())
    code, _, err = run(capsys, "report", good / "analysis" / "recording.nc", "--by", "context", "--out", good,
                       "--overwrite")
    assert code == 2 and "lies in --out's" in err
    assert sorted(p.name for p in (good / "analysis").iterdir()) == before


def test_inputs_that_are_a_single_npy_array_get_one_line(capsys, files, tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((4, 3), np.float32))
    code, _, err = run(capsys, "analyze", "--model", f"{files['factory']}:build", "--inputs", tmp_path / "X.npy",
                       "--by", "context", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "is a single .npy array; --inputs takes an .npz archive" in err


def test_demo_refuses_more_contexts_than_it_can_race(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "--contexts", 40, "--out", tmp_path)
    assert code == 2 and "--contexts must be <= 8 for the demo, got 40" in err


@pytest.mark.parametrize("key", ["#task", "task/id", "task ", "task id"])
def test_a_coord_name_netcdf_cannot_hold_is_refused_before_the_analysis(capsys, files, tmp_path, key):
    data = dict(np.load(files["root"] / "inputs.npz"))
    data[key] = np.arange(len(data["X"]))
    np.savez(tmp_path / "inputs.npz", **data)
    code, out, err = run(capsys, "analyze", "--model", f"{files['factory']}:build", "--weights",
                         files["root"] / "weights.pt", "--inputs", tmp_path / "inputs.npz", "--by", "context",
                         "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and f"the coord {key!r}" in err and "rename the key" in err
    assert "analysing" not in out and not (tmp_path / "out" / "analysis").exists()


def test_a_pickled_whole_model_as_weights_gets_one_short_line(capsys, files, tmp_path):
    """torch.save(model) pickles the class: weights_only refuses it without running code, and
    the CLI says what it is and what to save instead (torch's message was ~1 kB, with ANSI
    escapes, suggesting weights_only=False)."""
    torch.save(files["model"], tmp_path / "whole.pt")
    code, _, err = run(capsys, "analyze", "--model", f"{files['factory']}:build", "--weights", tmp_path / "whole.pt",
                       "--inputs", files["root"] / "inputs.npz", "--by", "context", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and len(err) < 400 and "\x1b" not in err
    assert "holds a pickled `torch.nn.modules.container.Sequential`" in err
    assert "torch.save(model.state_dict(), path)" in err
    assert "weights_only=False" not in err


def test_report_of_a_monitor_store_takes_one_snapshot(capsys, tmp_path):
    X, Y, coords = rp.tasks.contextual_task(3)
    model = rp.tasks.paper_network(3, seed=1)
    with rp.TrainingMonitor(model, X, coords=coords, every=50, store=tmp_path / "mon.zarr") as mon:
        rp.tasks.train_full_batch(model, X, Y, epochs=101, callback=mon.update)
    base = ["report", tmp_path / "mon.zarr", "--by", "context", "--within", "object", "--no-literature"]
    code, out, err = run(capsys, *base, "--out", tmp_path / "last")
    assert code == 0, err
    assert "TrainingMonitor store of 3 snapshots; reporting the last, step 100" in err
    last = rp.Analysis.load(tmp_path / "last" / "analysis")
    expected = rp.load(tmp_path / "mon.zarr").sel(step=100).gate.values
    np.testing.assert_array_equal(last.dataset.gate.values, expected)
    assert run(capsys, *base, "--step", 50, "--out", tmp_path / "mid")[0] == 0
    code, _, err = run(capsys, *base, "--step", 7, "--out", tmp_path / "bad")
    assert code == 2 and "--step 7 is not a snapshot of" in err and "its steps: 0, 50, 100" in err


def test_bool_and_integer_inputs(capsys, files, tmp_path):
    """Bool features are cast to the model's float dtype like float ones; integer X is passed as
    token ids, and a model that takes features says so in one line; a file that is no .npz is
    named as such (it was reported as holding object arrays)."""
    data = dict(np.load(files["root"] / "inputs.npz"))
    common = ["analyze", "--model", f"{files['factory']}:build", "--weights", files["root"] / "weights.pt",
              "--by", "context", "--within", "object", "--no-literature", "--no-attribution"]
    np.savez(tmp_path / "bool.npz", **{**data, "X": data["X"] > 0})
    code, _, err = run(capsys, *common, "--inputs", tmp_path / "bool.npz", "--out", tmp_path / "b")
    assert code == 0, err
    np.savez(tmp_path / "int.npz", **{**data, "X": (data["X"] > 0).astype(np.int64)})
    code, _, err = run(capsys, *common, "--inputs", tmp_path / "int.npz", "--out", tmp_path / "i")
    errors_ = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors_) == 1 and "which are passed to the model as token ids" in errors_[0]
    (tmp_path / "garbage.npz").write_bytes(b"definitely not numpy")
    code, _, err = run(capsys, *common, "--inputs", tmp_path / "garbage.npz", "--out", tmp_path / "g")
    assert code == 2 and "is not an .npz archive (numpy.savez) nor an .npy array" in err


def test_weights_of_another_dtype_warn(capsys, files, tmp_path):
    half = {k: v.half() for k, v in files["model"].state_dict().items()}
    torch.save(half, tmp_path / "half.pt")
    code, _, err = run(capsys, "analyze", "--model", f"{files['factory']}:build", "--weights", tmp_path / "half.pt",
                       "--inputs", files["root"] / "inputs.npz", "--by", "context", "--no-literature",
                       "--no-attribution", "--out", tmp_path / "out")
    assert code == 0, err
    assert "holds tensors of another dtype than the model's (torch.float16 → torch.float64)" in " ".join(err.split())
