"""Loading for the command line never runs code from a file without an explicit opt-in.

The proof-of-concept archives below write a marker file when they are loaded: a TorchScript
module whose ``__setstate__`` (run by ``torch.jit.load``) creates a file through
``torch.from_file(..., shared=True)``, and a ``torch.export`` archive whose weight is a pickle
(``use_pickle`` in its weights config, which ``torch.export.load`` unpickles with
``weights_only=False``) calling ``exec``. Each test also loads the archive directly to show
that the marker it did not find would have been written.
"""

from __future__ import annotations

import io
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement
from torch import nn

import relu_probe as rp
from relu_probe.cli.loading import load_factory, load_model, load_weights
from relu_probe.cli import main
from relu_probe.errors import ValueInputError

ROOT = Path(__file__).resolve().parents[1]


class MarkerOnLoad(nn.Module):
    """A scripted module whose ``__setstate__`` — run by ``torch.jit.load`` — creates a file."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2, 3))
        self.marker = marker

    def forward(self, x):
        return torch.relu(x @ self.weight.t())

    @torch.jit.export
    def __getstate__(self):
        return (self.weight, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
        written = torch.from_file(state[1], shared=True, size=6, dtype=torch.uint8)
        written.fill_(33)
        self.weight = state[0]
        self.marker = state[1]
        # use the result, or TorchScript drops the call as dead code
        self.training = state[2] and bool(written.sum() >= 0)


class ExecOnUnpickle:
    """A pickle payload that writes the marker when unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code from the archive ran')",))


def crafted_torchscript(path: Path, marker: Path) -> Path:
    torch.jit.save(torch.jit.script(MarkerOnLoad(str(marker))), path)
    return path


def crafted_export(path: Path, marker: Path) -> Path:
    """A real torch.export archive whose first weight is replaced by an ``exec`` pickle."""
    model = nn.Sequential(nn.Linear(11, 4), nn.ReLU(), nn.Linear(4, 3))
    clean = path.with_name("clean_" + path.name)
    torch.export.save(torch.export.export(model, (torch.randn(5, 11),)), clean)
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/model_weights_config.json"):
                config = json.loads(data)
                entry = next(iter(config["config"].values()))
                entry["use_pickle"], entry["path_name"] = True, "payload"
                data = json.dumps(config).encode()
                payload = io.BytesIO()
                torch.save(ExecOnUnpickle(str(marker)), payload)
                dst.writestr(info.filename.rsplit("/", 1)[0] + "/payload", payload.getvalue())
            dst.writestr(info, data)
    return path


@pytest.fixture
def cli_files(tmp_path):
    """A factory file and an inputs .npz, so that only the file under test is refused."""
    (tmp_path / "factory.py").write_text(
        "import relu_probe as rp\n\ndef build():\n    return rp.tasks.paper_network(3, width=4, seed=0)\n"
    )
    X, _, coords = rp.tasks.contextual_task(3)
    np.savez(tmp_path / "inputs.npz", X=X.numpy(), **coords)
    return tmp_path


def analyze(capsys, root, *argv):
    code = main(["analyze", "--inputs", str(root / "inputs.npz"), "--by", "context",
                 "--out", str(root / "out"), *map(str, argv)])
    return code, capsys.readouterr().err


def assert_refused(code, err, path, kind):
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path}" in err and kind in err and "runs code from the file" in err
    assert "pass --trust-archive to load it" in err


def test_crafted_torchscript_weights_are_not_loaded(capsys, cli_files):
    marker = cli_files / "marker"
    archive = crafted_torchscript(cli_files / "weights.pt", marker)
    code, err = analyze(capsys, cli_files, "--model", f"{cli_files / 'factory.py'}:build", "--weights", archive)
    assert not marker.exists()
    assert_refused(code, err, archive, "is a TorchScript archive")
    # the Python-level loader refuses it too, unless trusted explicitly
    with pytest.raises(ValueInputError, match="--trust-archive"):
        load_weights(rp.tasks.paper_network(3, width=4), archive)
    assert not marker.exists()
    # the archive is live: loading it runs its code
    torch.jit.load(str(archive))
    assert marker.exists()


def test_crafted_torchscript_as_model_is_not_loaded(capsys, cli_files):
    marker = cli_files / "marker"
    archive = crafted_torchscript(cli_files / "scripted.pt", marker)
    for trust in ([], ["--trust-archive"]):  # a scripted graph cannot be recorded either way
        code, err = analyze(capsys, cli_files, "--model", archive, *trust)
        assert code == 2 and err.count("\n") == 1 and "is a TorchScript archive" in err
        assert f"--weights '{archive}' --trust-archive" in err
    assert not marker.exists()


@pytest.mark.parametrize("as_model", [True, False], ids=["model", "weights"])
def test_crafted_export_archive_is_not_loaded(capsys, cli_files, as_model):
    marker = cli_files / "marker"
    archive = crafted_export(cli_files / "exported.pt2", marker)
    if as_model:
        argv = ["--model", archive]
    else:
        argv = ["--model", f"{cli_files / 'factory.py'}:build", "--weights", archive]
    code, err = analyze(capsys, cli_files, *argv)
    assert not marker.exists()
    assert_refused(code, err, archive, "is a torch.export archive")
    with pytest.raises(ValueInputError, match="--trust-archive"):
        if as_model:
            load_model(str(archive))
        else:
            load_weights(rp.tasks.paper_network(3, width=4), archive)
    assert not marker.exists()
    # the archive is live: torch.export.load runs the pickle before it notices anything wrong
    with pytest.raises(Exception):
        torch.export.load(str(archive))
    assert marker.exists()


def test_state_dict_needs_no_flag_and_archives_load_with_it(tmp_path):
    model = rp.tasks.paper_network(3, width=4, seed=1)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.jit.save(torch.jit.script(model), tmp_path / "scripted.pt")
    fresh = rp.tasks.paper_network(3, width=4, seed=2)
    assert load_weights(fresh, tmp_path / "state.pt") == "state dict"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], value, rtol=0, atol=0)
    fresh = rp.tasks.paper_network(3, width=4, seed=2)
    assert load_weights(fresh, tmp_path / "scripted.pt", trust_archive=True) == "torchscript"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], value, rtol=0, atol=0)


def test_help_says_what_runs_code(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust-archive allow TorchScript and torch.export archives" in text
    assert "loading such an archive runs code from the file" in text
    assert "WARNING: relu-probe imports that module, which runs its code" in text
    assert "read with torch.load(weights_only=True)" in text


FACTORY = "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Linear(2, 3), nn.ReLU())\n"


def test_current_directory_is_on_sys_path_only_while_importing_the_factory(tmp_path, monkeypatch):
    (tmp_path / "rp_cwd_factory.py").write_text(FACTORY)
    (tmp_path / "rp_cwd_broken.py").write_text("raise RuntimeError('broken module')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    try:
        factory = load_factory("rp_cwd_factory:build")
        assert sys.modules["rp_cwd_factory"].__file__ == str(tmp_path / "rp_cwd_factory.py")
        assert sys.path == before
        assert isinstance(factory(), nn.Sequential)
        with pytest.raises(ValueInputError, match="broken module"):
            load_factory("rp_cwd_broken:build")
        assert sys.path == before
    finally:
        sys.modules.pop("rp_cwd_factory", None)
        sys.modules.pop("rp_cwd_broken", None)


def test_torch_floor_excludes_releases_with_a_weights_only_bypass():
    text = (ROOT / "pyproject.toml").read_text()
    dependencies = text[text.index("dependencies = [") : text.index("]", text.index("dependencies = ["))]
    (line,) = re.findall(r'"(torch\b[^"]*)"', dependencies)
    spec = Requirement(line).specifier
    # CVE-2025-32434 (fixed in 2.6.0) and CVE-2026-24747 (fixed in 2.10.0)
    assert not spec.contains("2.5.1") and not spec.contains("2.9.1")
    assert spec.contains("2.10.0") and spec.contains(torch.__version__.split("+")[0])
