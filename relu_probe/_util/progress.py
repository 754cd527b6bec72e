"""tqdm progress bars that switch themselves off when output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
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


class StepBar:
    """One tqdm bar over the named steps of a pipeline (off unless :func:`progress_enabled`).

    >>> with StepBar(["load", "fit"], enabled=False, desc="job") as bar:
    ...     with bar.step("load"):
    ...         pass
    """

    def __init__(self, names: Sequence[str], *, enabled: bool | None, desc: str) -> None:
        self.desc = desc
        self.bar = None
        if progress_enabled(enabled):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc=desc, unit="step")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Show *name* while the block runs; count the step done when it returns."""
        if self.bar is not None:
            self.bar.set_description(f"{self.desc}: {name}")
        yield
        if self.bar is not None:
            self.bar.update(1)

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
