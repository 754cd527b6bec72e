"""What a test needs that may be missing, and what that means under CI.

A developer without an optional dependency gets a skip that names the missing piece. Under
``CI=true`` (as ``.ci/run`` and most CI services set it) a test that cannot run is a
*failure*: CI installs the whole ``test`` extra, so a missing piece there means the run did
not test what it claims. A dependency that is installed but fails to import (a broken
install, or a missing dependency *of* that package) is an error everywhere, never a skip.

``tests/conftest.py`` applies :func:`fail_skip_under_ci` to every report, so no other skip
(``pytest.skip``, ``skipif``, a third-party check raising ``SkipTest``) passes CI either.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

#: values of the ``CI`` environment variable that mean "this is a CI run"
_TRUE = {"1", "true", "yes", "on"}


def in_ci() -> bool:
    """Whether this is a CI run (``CI`` is ``true``, ``1``, ``yes`` or ``on``)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def unavailable(reason: str) -> NoReturn:
    """Stop the current test (or module) because *reason*: a skip, or under CI a failure."""
    if in_ci():
        pytest.fail(f"{reason} [CI=true: a test that cannot run is a failure, not a skip]", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(name: str) -> ModuleType:
    """Import and return module *name*, a dependency of the ``test`` extra.

    If *name* (or a package above it) is not installed, the test is :func:`unavailable`
    (skipped; failed under CI). If it is installed but importing it raises — a missing
    dependency inside it, or any other exception — that is a broken install and raises
    :class:`ImportError` naming the module, with the original exception chained.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        absent = exc.name or ""
        if not absent or not (absent == name or name.startswith(absent + ".")):
            raise _broken(name, exc) from exc
    except Exception as exc:
        raise _broken(name, exc) from exc
    unavailable(f"{name} is not installed (it is part of the test extra: pip install -e '.[test]')")


def _broken(name: str, exc: BaseException) -> ImportError:
    return ImportError(
        f"{name} is installed but importing it failed ({type(exc).__name__}: {exc}): "
        "a broken install, not a missing optional dependency"
    )


def fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under CI, turn a skipped *report* into a failed one that says why it was skipped.

    Expected failures (``xfail``) are reported as skipped by pytest too; they keep their outcome.
    """
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where a skip is a failure: {reason}"
