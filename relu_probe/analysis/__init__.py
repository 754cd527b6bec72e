"""One call from a model to everything relu_probe measures: :func:`analyze` (a list of named
steps, :mod:`.analyze`) returns an :class:`Analysis` (:mod:`.result`), which writes its report
and saves itself."""

from .analyze import STEPS, analyze
from .result import FORMAT, Analysis

__all__ = ["FORMAT", "STEPS", "Analysis", "analyze"]
