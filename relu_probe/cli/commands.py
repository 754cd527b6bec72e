"""The ``relu-probe`` command line.

``relu-probe demo``
    Train the paper's contextual-task network (3 contexts by default) in seconds, record its
    gates, find its pathways, fit the ReLN, and write the HTML report; the report's path is
    the last line printed.
``relu-probe analyze --model MODULE:FACTORY [--weights FILE] --inputs FILE.npz --by COORD``
    Analyse a saved model on saved inputs (the ``.npz`` holds the inputs under ``X`` — float
    features, or integer token ids — and one array per coord under its name); ``--targets
    KEY`` also fits the ReLN. Token ids with padding come with their ``attention_mask`` (or
    ``--attention-mask KEY``): the model is then called as ``model(input_ids=X,
    attention_mask=mask)``. Keys used for nothing are named in a warning. The input
    attributions are skipped, with a note, when they
    would take longer than the rest of the analysis; ``--attribution`` computes them anyway,
    ``--no-attribution`` never. ``--model`` imports
    the factory's module, running its code. ``--weights`` is read with
    ``torch.load(weights_only=True)``; TorchScript and ``torch.export`` archives (as weights, or
    a ``.pt2`` export as the model itself) run code from the file when loaded and are refused
    unless ``--trust-archive`` is given (see :mod:`relu_probe.cli.loading`).
``relu-probe report SOURCE --out DIR``
    Write the report of a saved analysis directory, a zarr gate store or a netCDF recording.

Every command writes into ``--out`` (default ``./relu_probe_out``): ``report.html`` and the
saved analysis (``analysis/``). A bad file, a missing key or an unknown coord exits with
status 2 and one line on stderr (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._util.notes import reln_skipped
from ..errors import CLIError, ForwardError, ReluProbeError
from .parser import build_parser

__all__ = ["main", "MAX_DEMO_CONTEXTS"]

#: The most contexts ``relu-probe demo`` takes: its prediction races all 2^k − 1 context sets.
MAX_DEMO_CONTEXTS = 8


# ----------------------------------------------------------------------------- helpers


def _check_out(args: argparse.Namespace, source: Path | None = None, *, saves_analysis: bool = True) -> Path:
    """Refuse an unusable ``--out`` before any work is done.

    ``--out`` must be (or become) a directory; its ``report.html`` and (when the command
    *saves_analysis*) ``analysis/`` may hold only an earlier relu_probe report and analysis,
    replaced with ``--overwrite`` only. A file relu_probe did not write, a symbolic link, or
    an analysis holding other files is refused with or without it; so is a *source* inside
    the ``analysis/`` the command would replace. The report of a saved analysis writes only
    ``report.html`` (its ``analysis/`` is left alone).
    """
    from ..data.outputs import ANALYSIS, entry_listing, foreign_entries, output_kind
    from ..errors import StoreError
    from ..report.html import check_report_path

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a directory")
    report, analysis = out / "report.html", out / "analysis"
    try:
        check_report_path(report, where=f"--out's {str(report)!r}")
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    earlier = [p.name for p in ((report, analysis) if saves_analysis else (report,)) if p.exists()]
    if not saves_analysis:
        if earlier and not args.overwrite:
            raise CLIError(f"--out {str(out)!r} already holds a relu_probe report.html; pass --overwrite to replace "
                           "it, or choose another --out.")
        return out
    if analysis.is_symlink() or (analysis.exists() and output_kind(analysis) != ANALYSIS):
        raise CLIError(f"--out's {str(analysis)!r} exists and is not a relu_probe analysis; relu_probe never "
                       "replaces it. Choose another --out.")
    if analysis.exists():
        foreign = foreign_entries(analysis, ANALYSIS)
        if foreign:
            raise CLIError(f"--out's {str(analysis)!r} holds {entry_listing(foreign)}, "
                           "which relu_probe did not write; it replaces only its own files. Move them out or choose "
                           "another --out.")
    if source is not None and analysis.exists():
        inside = source.resolve() == analysis.resolve() or analysis.resolve() in source.resolve().parents
        if inside:
            raise CLIError(f"{str(source)!r} lies in --out's {str(analysis)!r}, which this command would replace "
                           "with its own analysis; choose another --out.")
    if earlier and not args.overwrite:
        raise CLIError(f"--out {str(out)!r} already holds a relu_probe {' and '.join(earlier)}; pass --overwrite to "
                       "replace them, or choose another --out.")
    return out


def _finish(res: Any, out: Path, title: str | None) -> Path:
    res.save(out / "analysis", overwrite=True)  # an earlier analysis there was checked by _check_out
    report = res.to_html(out / "report.html", title=title)
    return report.resolve()


def _describe_scores(res: Any) -> list[str]:
    """The analysis in a few lines: pathways and the main scores (per site when per site),
    then each learning-curve comparison."""
    import pandas as pd

    from ..report.labels import RACE_LABELS, context_set_label, score_label, site_labels

    lines = []
    sites = list(res.pathways.sites)
    several = len(sites) > 1
    table = res.scores if isinstance(res.scores, pd.DataFrame) else res.scores.to_frame(sites[0]).T
    keys = [k for k in ("shared_score", "node_reuse_score", "modularity_score", "k_minus_one_score",
                        "mixed_selectivity_score") if k in table.columns]
    for site, label in zip(sites, site_labels(sites)):
        at = f" at {label}" if several else ""
        pw = res.pathways.sel(site)
        lines.append(f"pathways{at}: " + ", ".join(
            f"{context_set_label(c)} {m:.3f}" for c, m in zip(pw.contexts, pw.mass.values)))
        lines.append(f"scores{at}: " + ", ".join(f"{score_label(k)} {table.loc[site, k]:.3f}" for k in keys))
    race = RACE_LABELS.get(str(res.dynamics.attrs.get("race_method", "")), "race") if res.dynamics is not None else ""
    closed = RACE_LABELS["closed"]
    for key, label in (("reln", "ReLN vs ReLU"), ("race", f"{race} vs ReLU"), ("closed", f"{closed} vs ReLU"),
                       ("race_vs_reln", f"{race} vs ReLN")):
        if key in res.comparison:
            c = res.comparison[key]
            lines.append(f"{label}: mean |ΔL| {c['mean_abs_diff']:.3f} ({c['mean_abs_diff_pct']:.2f}% of L0)")
    return lines


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .. import tasks

    k = args.contexts
    if k < 2:
        raise CLIError(f"--contexts must be >= 2, got {k}")
    if args.every < 0:
        raise CLIError(f"--every must be >= 0, got {args.every}")
    if args.variant == "diff" and k != 3:
        raise CLIError(f"--variant diff is defined for 3 contexts, got --contexts {k}")
    if k > MAX_DEMO_CONTEXTS:
        raise CLIError(f"--contexts must be <= {MAX_DEMO_CONTEXTS} for the demo, got {k}: its structure prediction "
                       "races context sets whose number grows as 2^k (use rp.predict_structure's beam search from "
                       "Python for more contexts)")
    _check_out(args)
    task = tasks.contextual_task(k, variant=args.variant)
    hp = tasks.paper_hyperparameters(k)
    epochs = int(hp["epochs"]) if args.epochs is None else args.epochs
    model = tasks.paper_network(k, seed=args.seed)
    n_in, n_out = task.X.shape[1], task.Y.shape[1]
    print(f"training the {k}-context {args.variant} task network ({n_in} → {hp['width']} → {n_out}, "
          f"seed {args.seed}) for {epochs} epochs …", flush=True)
    # these matrices are tiny: one thread is fastest, and several fight over busy cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(args, task, model, hp, epochs, k)
    finally:
        torch.set_num_threads(threads)


def _run_demo(args: argparse.Namespace, task: Any, model: Any, hp: dict, epochs: int, k: int) -> int:
    from .. import tasks
    from ..analysis import analyze

    monitor = None
    if args.every > 0:
        from ..monitor import TrainingMonitor

        monitor = TrainingMonitor(model, task.X, coords=task.coords, every=args.every, by="context", within="object")
    loss = tasks.train_full_batch(model, task.X, task.Y, lr=hp["lr"], epochs=epochs,
                                  callback=None if monitor is None else monitor.update)
    print(f"loss {loss[0]:.2f} → {loss[-1]:.4f}; recording, finding pathways and fitting the ReLN …", flush=True)
    n = task.X.shape[1] - k
    names = [f"object {i}" for i in range(n)] + [f"context {c}" for c in range(k)]
    title = args.title or f"Paper task: {k} contexts ({args.variant}), seed {args.seed}, {epochs} epochs"
    res = analyze(model, task.X, coords=task.coords, by="context", within="object", Y=task.Y, loss_curve=loss,
                  lr=hp["lr"], feature_names=names, closed_form_init=tasks.PAPER_CLOSED_FORM_PI0.get(k), title=title,
                  monitor=monitor, literature=not args.no_literature)
    for line in _describe_scores(res):
        print(line)
    print(_finish(res, Path(args.out), args.title))
    return 0


def _load_npz(path: str) -> dict[str, Any]:
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise CLIError(f"--inputs {path!r} does not exist")
    try:
        loaded = np.load(p, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CLIError(f"--inputs {path!r} is a single .npy array; --inputs takes an .npz archive with the inputs "
                           "under 'X' and one array per coord (numpy.savez(path, X=X, context=context, ...))")
        with loaded as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        with open(p, "rb") as handle:
            is_zip = handle.read(4) == b"PK\x03\x04"
        if not is_zip and "allow_pickle" in str(exc):  # numpy takes any other file for a pickle
            raise CLIError(f"--inputs {path!r} is not an .npz archive (numpy.savez) nor an .npy array") from exc
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise CLIError(f"--inputs {path!r} holds object arrays; save plain numeric/string arrays "
                           "(numpy.savez with numbers or fixed-width strings)") from exc
        raise CLIError(f"--inputs {path!r} is not a readable .npz file: {' '.join(str(exc).split())}") from exc
    except (OSError, EOFError) as exc:
        raise CLIError(f"--inputs {path!r} is not a readable .npz file: {' '.join(str(exc).split())}") from exc


def _key(data: dict[str, Any], key: str, option: str, path: str) -> Any:
    if key not in data:
        raise CLIError(f"{option} {key!r} is not a key of {path!r} (keys: {', '.join(sorted(data))})")
    return data[key]


def _analyze(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..analysis import analyze
    from .loading import load_model

    _check_out(args)
    data = _load_npz(args.inputs)
    if "X" not in data:
        raise CLIError(f"--inputs {args.inputs!r} has no array 'X' (the inputs); keys: {', '.join(sorted(data)) or 'none'}")
    X = data["X"]
    if X.dtype.kind not in "fiub" or X.ndim < 2:
        raise CLIError(f"'X' in {args.inputs!r} must be a numeric array (sample, ...), got dtype {X.dtype} "
                       f"and shape {X.shape}")
    P = X.shape[0]
    special = {"X"}
    Y = loss = names = None
    if args.targets:
        Y = _key(data, args.targets, "--targets", args.inputs)
        special.add(args.targets)
        if Y.shape[:1] != (P,):
            raise CLIError(f"--targets {args.targets!r} must have one row per sample ({P}), got shape {Y.shape}")
    if args.loss_curve:
        loss = _key(data, args.loss_curve, "--loss-curve", args.inputs)
        special.add(args.loss_curve)
    if args.feature_names:
        names = [str(s) for s in np.asarray(_key(data, args.feature_names, "--feature-names", args.inputs)).ravel()]
        special.add(args.feature_names)
    mask_key = args.attention_mask or ("attention_mask" if "attention_mask" in data else None)
    mask = None
    if mask_key is not None:
        mask = _key(data, mask_key, "--attention-mask", args.inputs)
        special.add(mask_key)
        if mask.ndim != 2 or mask.shape[0] != P or X.ndim != 2 or mask.shape != X.shape[:2] \
                or mask.dtype.kind not in "biu":
            raise CLIError(f"--attention-mask {mask_key!r} must be an integer or bool (sample, seq) array matching "
                           f"the token ids X {X.shape}, got dtype {mask.dtype} and shape {mask.shape}")
    coords = {k: v for k, v in data.items() if k not in special and v.ndim == 1 and v.shape[0] == P}
    from ..data.netcdf import netcdf_name_problem

    for name in coords:  # the analysis is saved to netCDF: refuse a name it cannot hold now, not at the end
        problem = netcdf_name_problem(name, coord=True)
        if problem is not None:
            raise CLIError(f"--inputs {args.inputs!r}: the coord {name!r} (a 1-D key with one value per sample) cannot "
                           f"be saved with the analysis: its name {problem}; rename the key")
    for option, name in (("--by", args.by), ("--within", args.within)):
        if name is not None and name not in coords:
            if name in data and name not in special:
                raise CLIError(f"{option} {name!r} in {args.inputs!r} has shape {data[name].shape}; a coord is a 1-D "
                               f"array with one value per sample ({P}, the rows of the inputs)")
            listed = ", ".join(sorted(coords)) or "none"
            raise CLIError(f"{option} {name!r} is not a coord in {args.inputs!r} (coords, 1-D arrays with one "
                           f"value per sample: {listed})")
    model, info, description = load_model(args.model, args.weights, trust_archive=args.trust_archive)
    unused = sorted(k for k in data if k not in special and k not in coords)
    if unused:
        print(f"relu-probe: warning: {args.inputs}: key(s) {', '.join(repr(k) for k in unused)} not used (not X, "
              f"a coord with one value per sample, or a key named by an option such as --targets or "
              "--attention-mask)", file=sys.stderr)
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = param.dtype if param is not None else torch.float32
    Xt = torch.as_tensor(X)
    if Xt.is_floating_point() or Xt.dtype == torch.bool:  # integer inputs (token ids) stay integers
        Xt = Xt.to(dtype)
    batch = args.batch_size
    if info.get("batch") is not None:
        if P % info["batch"]:
            raise CLIError(f"--model was exported with a fixed batch size of {info['batch']}, which does not divide "
                           f"the {P} samples; export with a dynamic batch dimension (torch.export.Dim)")
        batch = info["batch"]
    what = f"{P} inputs, each position a sample" if args.samples == "position" else f"{P} samples"
    inputs: Any = Xt
    if mask is not None:
        inputs = {"input_ids": Xt, "attention_mask": torch.as_tensor(mask)}
        what += f", attention mask {mask_key!r} ({int(np.count_nonzero(mask))} real tokens)"
    print(f"analysing {description} on {what} from {args.inputs} …", flush=True)
    try:
        res = analyze(model, inputs, coords=coords, by=args.by, within=args.within, Y=Y, loss_curve=loss,
                      importance=args.importance, units=args.units, samples=args.samples, lr=args.lr,
                      epochs=args.epochs,
                      literature=not args.no_literature, race_method=args.race,
                      feature_names=names, batch_size=batch, attribution=args.attribution,
                      title=args.title)
    except ForwardError as exc:
        if Xt.is_floating_point() or "dtype" not in str(exc):
            raise
        raise CLIError(f"{' '.join(str(exc).split())} ('X' in {args.inputs!r} holds integers ({X.dtype}), which are "
                       "passed to the model as token ids; save float features, e.g. X.astype('float32'), if the model "
                       "takes features)") from exc
    for line in _describe_scores(res):
        print(line)
    skipped = reln_skipped(res.notes)
    if skipped:  # --targets was given: say why it gave no ReLN
        print(f"relu-probe: note: {skipped}", file=sys.stderr)
    print(_finish(res, Path(args.out), args.title))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..analysis import Analysis, analyze

    source = Path(args.source)
    if not source.exists():
        raise CLIError(f"{args.source!r} does not exist")
    saved = source.is_dir() and (source / "summary.json").is_file()
    _check_out(args, source=source, saves_analysis=not saved)
    if saved:
        if args.by or args.within:
            raise CLIError("--by/--within apply to recordings; a saved analysis already has its pathways")
        res = Analysis.load(source)
    else:
        if source.is_dir():
            from ..data.store import load

            ds = load(source)
            ds = _monitor_step(ds, args.step, str(source))
        else:
            from ..data.netcdf import open_netcdf

            try:
                ds = open_netcdf(source)
            except (OSError, ValueError) as exc:
                raise CLIError(f"{args.source!r} is neither a saved analysis, a zarr gate store nor a netCDF "
                               f"recording: {' '.join(str(exc).split())}") from exc
        if not args.by:
            raise CLIError(f"--by is required to analyse the recording {args.source!r} (the condition coord)")
        res = analyze(None, ds, by=args.by, within=args.within, title=args.title,
                      literature=not args.no_literature)
        print(_finish(res, Path(args.out), args.title))
        return 0
    print(res.to_html(Path(args.out) / "report.html", title=args.title).resolve())
    return 0


def _monitor_step(ds: Any, step: int | None, source: str) -> Any:
    """One snapshot of a TrainingMonitor store (``--step``, default the last), else *ds* as it is."""
    if "step" not in ds.dims:
        if step is not None:
            raise CLIError(f"--step applies to a TrainingMonitor store; {source!r} is a gate store")
        return ds
    steps = [int(s) for s in ds["step"].values]
    if step is None:
        step = steps[-1]
        print(f"relu-probe: note: {source!r} is a TrainingMonitor store of {len(steps)} snapshots; reporting the "
              f"last, step {step} (choose another with --step)", file=sys.stderr)
    elif step not in steps:
        listed = ", ".join(map(str, steps[:8])) + (" …" if len(steps) > 8 else "")
        raise CLIError(f"--step {step} is not a snapshot of {source!r} (its steps: {listed})")
    return ds.sel(step=step).drop_vars([v for v in ("importance", "loss") if v in ds])


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    print(f"relu-probe: warning: {category.__name__}: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``relu-probe``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"demo": _demo, "analyze": _analyze, "report": _report}
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warnings
    try:
        return handlers[args.command](args)
    except (CLIError, ReluProbeError, OSError, ValueError, KeyError) as exc:
        if args.debug:
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"relu-probe {args.command}: error: {text}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous

