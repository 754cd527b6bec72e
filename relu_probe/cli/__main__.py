"""``python -m relu_probe.cli``: the ``relu-probe`` command line."""

import sys

from .commands import main

sys.exit(main())
