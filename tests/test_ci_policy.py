"""The test suite's own rules: a missing dependency skips, but fails under CI; a broken install
is an error; under CI no skip passes; every test has a time limit.

Each case runs in a child pytest session that uses this suite's real ``conftest.py`` and
``_deps.py`` (copied beside the cases) and reports every outcome to a JSON file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

CASES = textwrap.dedent("""
    import time

    import pytest
    from _deps import require


    def test_missing_module():
        require("relu_probe_absent_module")


    def test_missing_submodule_of_a_present_package():
        require("json.relu_probe_absent")


    def test_present_module_is_returned():
        assert require("json").dumps([1]) == "[1]"


    def test_dependency_missing_inside_an_installed_package():
        require("broken_dependency_pkg")


    def test_installed_package_that_raises_on_import():
        require("broken_raising_pkg")


    def test_plain_skip():
        pytest.skip("nothing to do here")


    @pytest.mark.skipif(True, reason="never on this machine")
    def test_skipif():
        pass


    @pytest.mark.xfail(reason="a documented failure", strict=True)
    def test_expected_failure():
        assert False


    def test_hang():
        time.sleep(60)


    @pytest.mark.slow
    def test_slow_test_gets_the_slow_limit():
        time.sleep(2.5)
""")

MODULE_LEVEL = textwrap.dedent("""
    from _deps import require

    require("relu_probe_absent_module")


    def test_never_collected():
        pass
""")

RECORDER = textwrap.dedent("""
    import json, os

    outcomes = {}

    def _record(nodeid, report):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        if outcomes.get(nodeid, ("passed",))[0] == "passed":
            outcomes[nodeid] = (outcome, str(report.longrepr))

    def pytest_runtest_logreport(report):
        if report.when == "call" or report.outcome != "passed":
            _record(report.nodeid.split("::")[-1], report)

    def pytest_collectreport(report):
        if report.outcome != "passed":
            _record(report.nodeid, report)

    def pytest_sessionfinish(session):
        with open(os.environ["OUTCOMES_JSON"], "w") as f:
            json.dump(outcomes, f)
""")


@pytest.fixture(scope="module")
def child_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    shutil.copy(HERE / "conftest.py", root / "conftest.py")
    shutil.copy(HERE / "_deps.py", root / "_deps.py")
    (root / "pytest.ini").write_text(
        "[pytest]\ntimeout = 1.5\nslow_timeout = 10\nmarkers =\n    slow: long runs\n"
    )
    (root / "test_cases.py").write_text(CASES)
    (root / "test_module_level.py").write_text(MODULE_LEVEL)
    (root / "outcome_recorder.py").write_text(RECORDER)
    (root / "broken_dependency_pkg").mkdir()
    (root / "broken_dependency_pkg" / "__init__.py").write_text("import relu_probe_absent_dependency\n")
    (root / "broken_raising_pkg").mkdir()
    (root / "broken_raising_pkg" / "__init__.py").write_text("raise RuntimeError('half installed')\n")
    return root


def run_child(root: Path, ci: bool) -> dict[str, tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    env["OUTCOMES_JSON"] = str(root / f"outcomes-{ci}.json")
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "outcome_recorder",
         "--continue-on-collection-errors", "test_cases.py", "test_module_level.py"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # some cases fail in both modes
    return {name: tuple(value) for name, value in json.loads(Path(env["OUTCOMES_JSON"]).read_text()).items()}


def test_without_ci_a_missing_dependency_skips_and_a_broken_one_fails(child_suite):
    out = run_child(child_suite, ci=False)
    assert out["test_missing_module"][0] == "skipped"
    assert "relu_probe_absent_module is not installed" in out["test_missing_module"][1]
    assert out["test_missing_submodule_of_a_present_package"][0] == "skipped"
    assert out["test_module_level.py"][0] == "skipped"
    assert out["test_present_module_is_returned"][0] == "passed"
    for name, cause in (("test_dependency_missing_inside_an_installed_package", "relu_probe_absent_dependency"),
                        ("test_installed_package_that_raises_on_import", "half installed")):
        outcome, text = out[name]
        assert outcome == "failed", out[name]
        assert "is installed but importing it failed" in text and cause in text
    assert out["test_plain_skip"][0] == "skipped"
    assert out["test_skipif"][0] == "skipped"
    assert out["test_expected_failure"][0] == "xfailed"


def test_under_ci_nothing_passes_by_skipping(child_suite):
    out = run_child(child_suite, ci=True)
    outcome, text = out["test_missing_module"]
    assert outcome == "failed" and "relu_probe_absent_module is not installed" in text and "CI=true" in text
    assert out["test_missing_submodule_of_a_present_package"][0] == "failed"
    outcome, text = out["test_module_level.py"]  # a module that cannot be imported: a collection error
    assert outcome == "failed" and "relu_probe_absent_module is not installed" in text
    for name in ("test_dependency_missing_inside_an_installed_package", "test_installed_package_that_raises_on_import"):
        assert out[name][0] == "failed" and "is installed but importing it failed" in out[name][1]
    for name, reason in (("test_plain_skip", "nothing to do here"), ("test_skipif", "never on this machine")):
        outcome, text = out[name]
        assert outcome == "failed" and "skipped under CI=true" in text and reason in text
    assert out["test_expected_failure"][0] == "xfailed"  # a documented expected failure stays one
    # time limits: the default limit stops a hang; a `slow` test gets the larger slow limit
    outcome, text = out["test_hang"]
    assert outcome == "failed" and "Timeout" in text
    assert out["test_slow_test_gets_the_slow_limit"][0] == "passed"


def test_the_suite_sets_time_limits(pytestconfig):
    assert float(pytestconfig.getini("timeout")) > 0
    assert float(pytestconfig.getini("slow_timeout")) >= float(pytestconfig.getini("timeout"))
