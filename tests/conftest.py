"""Test-session settings: thread count, time limits, and no skips under CI (see ``_deps``)."""

import pytest
import torch
from _deps import fail_skip_under_ci, in_ci


def pytest_addoption(parser):
    parser.addini(
        "slow_timeout",
        "per-test time limit in seconds for tests marked `slow` that set no `timeout` marker "
        "(the `timeout` ini option of pytest-timeout covers the others)",
        default="600",
    )


def pytest_configure(config):
    # The paper's networks are tiny: intra-op threads only contend with dask's threads and
    # with the other processes some tests start, on machines with few cores.
    torch.set_num_threads(1)
    if in_ci() and not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(
            "CI=true but pytest-timeout is not installed (it is part of the test extra: pip install -e '.[test]')"
        )


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("timeout"):
        return
    slow_limit = float(config.getini("slow_timeout"))
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(slow_limit))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    fail_skip_under_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    fail_skip_under_ci(report)
    return report
