"""The ``relu-probe`` command line: :func:`main` (the ``relu-probe`` entry point), its parser
(:mod:`.parser`), its commands (:mod:`.commands`) and how it loads models (:mod:`.loading`)."""

from ..errors import CLIError
from .commands import main
from .parser import build_parser

__all__ = ["CLIError", "build_parser", "main"]
