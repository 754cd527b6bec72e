"""The ``relu-probe`` command line.

``relu-probe demo`` trains the paper's contextual-task network in seconds, records its gates
and prints a summary of its sites and units. Bad input exits with status 2 and one line on
stderr (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


class CLIError(Exception):
    """A user error the CLI reports in one line (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``relu-probe``."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="relu-probe",
        description="See how trained ReLU networks compute: gates, pathways, scores and the equivalent ReLN.",
    )
    parser.add_argument("--version", action="version", version=f"relu_probe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="train the paper's contextual task network, record and summarise it")
    demo.add_argument("--contexts", type=int, default=3, help="number of contexts k (default 3)")
    demo.add_argument("--variant", choices=["hierarchy", "diff"], default="hierarchy")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: the paper's 8001)")
    return parser


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from . import record, tasks

    if args.contexts < 2:
        raise CLIError(f"--contexts must be >= 2, got {args.contexts}")
    task = tasks.contextual_task(args.contexts, variant=args.variant)
    hp = tasks.paper_hyperparameters(args.contexts)
    epochs = hp["epochs"] if args.epochs is None else args.epochs
    if epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {epochs}")
    model = tasks.paper_network(args.contexts, seed=args.seed)
    print(f"training the {args.contexts}-context {args.variant} task network "
          f"({task.X.shape[1]} → {hp['width']} → {task.Y.shape[1]}) for {epochs} epochs …", flush=True)
    losses = tasks.train_full_batch(model, task.X, task.Y, lr=hp["lr"], epochs=epochs)
    print(f"loss {losses[0]:.2f} → {losses[-1]:.4f}")
    ds = record(model, task.X, coords=task.coords)
    gate = ds["gate"]
    print(f"recorded {ds.sizes['sample']} samples × {ds.sizes['unit']} units at {len(ds.attrs['sites'])} site(s)")
    for site in ds.attrs["sites"]:
        g = gate.sel(unit=ds.site == site)
        ever = g.any("sample")
        rate_by_context = g.groupby("context").mean().mean("unit").values
        print(f"  site {site!r}: {g.sizes['unit']} units, {int(ever.sum())} ever active, "
              f"mean P(on) by context {np.round(rate_by_context, 3).tolist()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``relu-probe``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .errors import ReluProbeError

    try:
        return {"demo": _demo}[args.command](args)
    except (CLIError, ReluProbeError, OSError, ValueError, KeyError) as exc:
        if args.debug:
            raise
        print(f"relu-probe {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
