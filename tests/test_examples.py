"""Smoke runs of the examples with their --quick settings: each writes its report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from _deps import require

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
def _cli_analyze(tmp_path, example: str, *extra: str) -> rp.Analysis:
    """Run `relu-probe analyze` on what the example exported; return the saved analysis."""
    from relu_probe.cli import main

    saved = tmp_path / "saved"
    code = main(["analyze", "--model", f"{EXAMPLES / example}.py:build_model", "--weights", str(saved / "weights.pt"),
                 "--inputs", str(saved / "inputs.npz"), "--feature-names", "names", "--no-literature",
                 "--out", str(tmp_path / "cli"), *extra])
    assert code == 0
    return rp.Analysis.load(tmp_path / "cli" / "analysis")


def test_resnet_digits(tmp_path):
    report = load("resnet_digits").main(["--quick", "--out", str(tmp_path), "--export", str(tmp_path / "saved")])
    res = check_report(report, "layers")
    sites = list(res.dataset.attrs["sites"])
    assert len(sites) == 17 and "layer1.0.relu#1" in sites  # BasicBlock's reused ReLU, call by call
    assert res.dataset.attrs["units"] == "channel" and res.pathways.context_values == ("magnitude", "mod 3", "parity")
    assert not any("reused" in n for n in res.notes)
    cli = _cli_analyze(tmp_path, "resnet_digits", "--by", "context", "--within", "image", "--units", "channel")
    np.testing.assert_array_equal(cli.dataset["gate_rate"].values, res.dataset["gate_rate"].values)
    np.testing.assert_allclose(cli.pathways.mass.values, res.pathways.mass.values)


def test_transformer_tasks(tmp_path):
    require("transformers")
    example = load("transformer_tasks")
    report = example.main(["--quick", "--out", str(tmp_path), "--export", str(tmp_path / "saved")])
    res = check_report(report, "layers")
    assert res.pathways.context_values == ("magnitude", "parity", "repeat") and res.within == "sequence"
    assert [str(s) for s in res.dataset.attrs["sites"]] == [
        f"bert.encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(2)]
    # the tokens are the samples: every (sequence, position) of the 32 held-out inputs × 3 tasks
    ds = res.dataset
    assert ds.attrs["samples"] == "position" and ds.sizes["sample"] == 96 * 9
    assert {"input", "position", "token"} <= set(ds.coords)
    np.testing.assert_array_equal(ds["position"].values, np.tile(np.arange(9), 96))
    assert res.attributions is None and any("samples='position'" in n for n in res.notes)
    cli = _cli_analyze(tmp_path, "transformer_tasks", "--by", "task", "--within", "sequence", *example.CLI_RECORDING)
    np.testing.assert_allclose(cli.dataset[_gate(cli.dataset)].values, res.dataset[_gate(res.dataset)].values)
    np.testing.assert_allclose(cli.pathways.mass.values, res.pathways.mass.values)


def _gate(ds) -> str:
    return "gate_rate" if "gate_rate" in ds else "gate"
