"""The argument parser of ``relu-probe`` (commands in :mod:`relu_probe.cli.commands`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .._version import __version__

__all__ = ["DEFAULT_OUT", "TRUST_OPTION", "build_parser"]

DEFAULT_OUT = "relu_probe_out"

#: The command-line option that allows loading TorchScript and torch.export archives.
TRUST_OPTION = "--trust-archive"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``relu-probe``."""
    parser = _Parser(
        prog="relu-probe",
        description="See how trained ReLU networks compute: gates, pathways, scores and the equivalent ReLN.",
    )
    parser.add_argument("--version", action="version", version=f"relu_probe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    common.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output directory (default ./{DEFAULT_OUT}): report.html and analysis/")
    common.add_argument("--overwrite", action="store_true",
                        help="replace a relu_probe report and analysis already in --out (never anything else: "
                             "files relu_probe did not write are refused, with or without this flag)")
    common.add_argument("--title", default=None, help="title of the report")
    common.add_argument("--no-literature", action="store_true",
                        help="skip the literature scores (CCGP, parallelism, DCI), which are slow on wide networks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", parents=[common], help="the paper's contextual task end to end, with a report",
                          description="Train the paper's contextual-task network, record its gates, find its "
                          "pathways, fit the ReLN and write the HTML report (its path is the last line printed).")
    demo.add_argument("--contexts", type=int, default=3, help="number of contexts k (default 3; the paper uses 3, 4, 5)")
    demo.add_argument("--variant", choices=["hierarchy", "diff"], default="hierarchy",
                      help="context structures: all the hierarchy, or hierarchy/ring/cross (k=3 only)")
    demo.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    demo.add_argument("--epochs", type=_positive, default=None,
                      help="training epochs (the demo reproduces the paper's run, so its default is the "
                           "paper's, rp.tasks.PAPER_EPOCHS = 8001)")
    demo.add_argument("--every", type=int, default=500, metavar="N",
                      help="measure the structure every N epochs during training (default 500; 0: off)")

    an = sub.add_parser("analyze", parents=[common], help="analyse a saved model on saved inputs",
                        description="Record and analyse a saved model on inputs from an .npz file (inputs "
                        "under X, one array per coord under its name).")
    an.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                    help="a factory returning the nn.Module (pkg.module:build or path/to/file.py:build). "
                    "WARNING: relu-probe imports that module, which runs its code, and calls the factory: "
                    "name only a module you trust (your own); "
                    "or a torch.export .pt2 archive (needs --trust-archive)")
    an.add_argument("--weights", metavar="FILE",
                    help="state dict saved with torch.save, read with torch.load(weights_only=True), which "
                    "runs no code from the file; a TorchScript or torch.export archive needs --trust-archive")
    an.add_argument(TRUST_OPTION, action="store_true",
                    help="allow TorchScript and torch.export archives as --weights or --model. WARNING: "
                    "loading such an archive runs code from the file (TorchScript code, pickled objects); "
                    "use it only for files you trust")
    an.add_argument("--inputs", required=True, metavar="FILE.npz", help="inputs under X, coords under their names")
    an.add_argument("--by", required=True, metavar="COORD", help="condition coord the pathways are keyed by")
    an.add_argument("--within", metavar="COORD", help="item coord (items repeated across conditions)")
    an.add_argument("--targets", metavar="KEY", help="npz key of the targets: also fit the ReLN")
    an.add_argument("--loss-curve", metavar="KEY", help="npz key of the network's training loss per epoch")
    an.add_argument("--feature-names", metavar="KEY", help="npz key of the input feature names (strings)")
    an.add_argument("--attention-mask", metavar="KEY",
                    help="npz key of a (sample, seq) attention mask (1 = real token, 0 = padding); default: the "
                    "key 'attention_mask' when the file has one. The model is then called as "
                    "model(input_ids=X, attention_mask=MASK), and with --samples position padding is dropped")
    an.add_argument("--importance", choices=["auto", "readout", "conductance", "activity"], default="auto")
    an.add_argument("--units", choices=["element", "channel"], default="element",
                    help="conv/sequence sites: a unit per (channel, position) or per channel")
    an.add_argument("--samples", choices=["input", "position"], default="input",
                    help="what a sample is: each input (default), or each (input, position) of the sequence / "
                    "conv sites (tokens as samples; coords are per input and broadcast to its positions)")
    an.add_argument("--epochs", type=_positive, default=None,
                    help="ReLN epochs (default: the loss curve's length, else derived from the data: enough "
                         "for the ReLN to converge; noted in the report)")
    an.add_argument("--lr", type=_positive_float, default=None,
                    help="your training loop's learning rate, refused at once at or above the ReLN's largest "
                         "stable rate where one is computed (one-hidden-layer pathways; a deeper ReLN is fitted "
                         "and a divergence reported) (default: a share of that rate, derived from the data; noted "
                         "in the report)")
    an.add_argument("--race", choices=["auto", "exact", "closed", "race", "live"], default=None,
                    help="prediction of the ReLN's curve (default: the exact dynamics; the closed form is shown "
                         "beside it)")
    an.add_argument("--batch-size", type=_positive, default=None, help="recording batch size")
    attribution = an.add_mutually_exclusive_group()
    attribution.add_argument("--no-attribution", dest="attribution", action="store_const", const=False,
                             default="auto", help="skip the input attributions of the pathways")
    attribution.add_argument("--attribution", dest="attribution", action="store_const", const=True,
                             help="compute the input attributions even when they would take longer than the rest "
                             "of the analysis (by default they are then skipped, with a note)")

    rep = sub.add_parser("report", parents=[common], help="write the report of a saved analysis or recording",
                         description="Write report.html for a saved analysis directory, a zarr gate store "
                         "(rp.record(..., store=...)), one snapshot of a TrainingMonitor store (--step) or a netCDF "
                         "recording (needs --by).")
    rep.add_argument("source", metavar="STORE_OR_DIR", help="saved analysis directory, zarr gate or monitor store, or .nc file")
    rep.add_argument("--by", metavar="COORD", help="condition coord (recordings only)")
    rep.add_argument("--within", metavar="COORD", help="item coord (recordings only)")
    rep.add_argument("--step", type=int, default=None, metavar="STEP",
                     help="for a TrainingMonitor store: the snapshot step to report (default: the last one)")
    return parser
