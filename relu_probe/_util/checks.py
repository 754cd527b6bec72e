"""Small argument checks that produce relu_probe's standard error messages.

Each message names the argument, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

from ..errors import InputError, ValueInputError, describe


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return *value* as an ``int``; raise if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputError(f"`{name}` must be an integer, got {describe(value)}.")
    if minimum is not None and value < minimum:
        raise ValueInputError(f"`{name}` must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_real(
    name: str, value: Any, *, minimum: float | None = None, strict: bool = False
) -> float:
    """Return *value* as a ``float``; raise unless it is a finite real above *minimum*."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputError(f"`{name}` must be a real number, got {describe(value)}.")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueInputError(f"`{name}` must be finite, got {value}.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = ">" if strict else ">="
        raise ValueInputError(f"`{name}` must be {bound} {minimum}, got {value}.")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Raise unless *value* is one of *choices*; return it."""
    choices = list(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueInputError(f"`{name}` must be one of {listed}; got {value!r}.")
    return value
