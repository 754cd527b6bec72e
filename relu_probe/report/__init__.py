"""The HTML report of an analysis: one self-contained file (:func:`write_report`), its figures
(:mod:`.figures`) and its words (:mod:`.labels`)."""

from .html import render_report, write_report
from .labels import SCORE_DEFINITIONS

__all__ = ["SCORE_DEFINITIONS", "render_report", "write_report"]
