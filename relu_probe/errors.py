"""The exceptions and warnings relu_probe raises.

Every error derives from :class:`ReluProbeError` *and* from the builtin exception a caller
would naturally catch (``ValueError``, ``TypeError``, ``LookupError`` …), so both
``except rp.errors.ReluProbeError`` and ``except ValueError`` work.

Messages follow one pattern: they name the argument, say what was expected and what came.
:func:`describe` renders the "what came" part consistently.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = [
    "ReluProbeError",
    "InputError",
    "ValueInputError",
    "CoordError",
    "DivergenceError",
    "IncompleteDesignError",
    "NoSitesError",
    "SiteNotFoundError",
    "SiteNeverFiredError",
    "ForwardError",
    "NotFittedError",
    "StoreError",
    "StoreMismatchError",
    "CLIError",
    "ReluProbeWarning",
    "NonFiniteWarning",
    "DegenerateDataWarning",
    "describe",
]


class ReluProbeError(Exception):
    """Base class of every error relu_probe raises."""


class InputError(ReluProbeError, TypeError):
    """An argument has the wrong type or structure (e.g. a batch that is not a tensor)."""


class ValueInputError(ReluProbeError, ValueError):
    """An argument has the right type but a bad value (empty, wrong length, out of range)."""


class DivergenceError(ValueInputError):
    """A simulated or predicted loss curve diverged at the learning rate given (too large)."""


class CoordError(ReluProbeError, ValueError):
    """A coordinate is missing, has the wrong length, or names nothing in the dataset."""


class IncompleteDesignError(CoordError):
    """A crossed-design measure (e.g. the two-way ANOVA) meets (by, within) cells with no sample."""


class NoSitesError(ReluProbeError, ValueError):
    """The model has no recordable ReLU site (or the selection matched none)."""


class SiteNotFoundError(ReluProbeError, LookupError):
    """A site selected by exact name does not exist; the message lists the closest sites."""


class SiteNeverFiredError(ReluProbeError, RuntimeError):
    """A selected site exists but was never called during the recorded forward passes."""


class ForwardError(ReluProbeError, RuntimeError):
    """The model's forward raised while recording; the original exception is chained."""


class StoreError(ReluProbeError, OSError):
    """A gate store on disk cannot be written, read or resumed."""


class StoreMismatchError(StoreError, ValueError):
    """A store was written by another model / site layout, or resumed with other inputs."""


class CLIError(ReluProbeError):
    """A user error the ``relu-probe`` command line reports in one line (exit status 2)."""


class ReluProbeWarning(UserWarning):
    """Base class of relu_probe's warnings."""


class NonFiniteWarning(ReluProbeWarning, RuntimeWarning):
    """Pre-activations contained NaN or Inf; the message gives counts per site."""


class DegenerateDataWarning(ReluProbeWarning, RuntimeWarning):
    """A score or decomposition met all-off or constant gates and returned its defined value."""


def __getattr__(name: str) -> Any:
    # NotFittedError subclasses scikit-learn's, whose import takes about a second; it is made
    # on first use, so that importing this module (every module of relu_probe does) stays cheap
    if name == "NotFittedError":
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(ReluProbeError, SklearnNotFittedError):
        """A fitted attribute was read before ``fit`` ran.

        A subclass of :class:`sklearn.exceptions.NotFittedError` (itself a ``ValueError`` and
        an ``AttributeError``), so scikit-learn's ``check_is_fitted`` conventions and
        ``except`` clauses written for scikit-learn estimators catch it too.
        """

    NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"
    globals()["NotFittedError"] = NotFittedError
    return NotFittedError


def describe(value: Any) -> str:
    """Return a short, human-readable description of *value* for error messages.

    Examples: ``Tensor of shape (4, 3) and dtype float32``, ``list of length 2``, ``str 'abc'``.
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    name = type(value).__name__
    if shape is not None and dtype is not None:
        return f"{name} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"str {text!r}"
    if isinstance(value, (int, float, bool)) or value is None:
        return f"{name} {value!r}"
    try:
        n = len(value)  # type: ignore[arg-type]
    except TypeError:
        return name
    return f"{name} of length {n}"
