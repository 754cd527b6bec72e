"""Smoke runs of the examples with their --quick settings: each writes its report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import relu_probe as rp

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    """The examples set one thread when run as scripts; do the same here, and restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_report(path: Path, *anchors: str) -> rp.Analysis:
    text = path.read_text(encoding="utf-8")
    for anchor in ("scores", "pathways", "profiles", "units", *anchors):
        assert f'id="{anchor}"' in text, (path, anchor)
    return rp.Analysis.load(path.parent / "analysis")


def test_paper_tasks(tmp_path):
    reports = load("paper_tasks").main(["--quick", "--epochs", "150", "--out", str(tmp_path)])
    assert [p.parent.name for p in reports] == ["3-diff", "4", "5"]
    for path, k in zip(reports, (3, 4, 5)):
        res = check_report(path, "dynamics", "training")
        assert res.pathways.n_contexts == k and res.reln is not None
        assert res.monitor_scores.index.tolist() == [0]  # every 200 epochs in quick mode


def test_digits_context(tmp_path):
    report = load("digits_context").main(["--quick", "--out", str(tmp_path)])
    res = check_report(report, "features", "training")
    assert res.pathways.context_values == ("magnitude", "mod 3", "parity")
    assert res.pathways.method == "context-sets" and res.within == "image"
    names = res.attributions["feature_name"].values.tolist()
    assert names[0] == "pixel (0,0)" and names[-1] == "cue: mod 3"


def test_digits_cnn(tmp_path):
    report = load("digits_cnn").main(["--quick", "--out", str(tmp_path)])
    res = check_report(report, "features")
    assert res.dataset.attrs["units"] == "channel" and res.dataset.sizes["unit"] == 8 + 16 + 32
    assert res.attributions.attrs["feature_shape"] == [1, 8, 8]


def test_your_model(tmp_path):
    report = load("your_model").main(["--quick", "--out", str(tmp_path), "--export", str(tmp_path / "saved")])
    res = check_report(report, "dynamics")
    assert res.dynamics.attrs["race_method"] == "exact"
    assert (tmp_path / "saved" / "weights.pt").is_file() and (tmp_path / "saved" / "inputs.npz").is_file()


def test_predict_structure(tmp_path):
    """The structure predicted before training, beside the measured one, in the report; the
    monitor's TV over training too."""
    (report,) = load("predict_structure").main(["--quick", "--out", str(tmp_path)])
    res = check_report(report, "dynamics", "structure", "training")
    assert res.structure is not None and 0.0 <= res.structure.attrs["tv"] <= 1.0
    assert set(res.structure["label"].values) >= {"{0,1,2}", "{0,1}", "{0,2}", "{1,2}"}
    assert res.monitor_structure is not None and res.monitor_structure.sizes["step"] == 4  # 0, 300, 600, 900
    assert any("step 0" in n for n in res.notes)  # the initial state came from the monitor's copy
