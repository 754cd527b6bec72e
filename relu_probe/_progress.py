"""tqdm progress bars that switch themselves off when output is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def progress_enabled(enabled: bool | None) -> bool:
    """Resolve ``progress=None`` to "on only when stderr is a terminal"."""
    if enabled is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(enabled)


def progress_bar(iterable: Iterable[T], *, enabled: bool | None, **kwargs: Any) -> Iterable[T]:
    """Wrap *iterable* in a tqdm bar when :func:`progress_enabled` says so."""
    if not progress_enabled(enabled):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
