"""Directories relu_probe writes (gate stores, TrainingMonitor stores, saved analyses): how
they are recognised, claimed for writing, and replaced with ``overwrite=True``.

Every such directory gets a marker file, ``.relu_probe``, written first when the directory
is claimed: ``{"relu_probe_output": kind, "format_version": 1}``. A directory is relu_probe's
when its marker names a kind (or, for directories written before markers existed, when its
zarr metadata carries ``relu_probe_store`` or its ``summary.json`` is a relu_probe analysis
summary). ``overwrite=True`` deletes only such a directory, and only when everything in it is
something relu_probe writes there; anything else is refused with a message naming what is
there. :func:`claim_output` is the one place where that is decided.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import StoreError
from .lock import LOCK_NAME, StoreLock

__all__ = ["MARKER_NAME", "GATE_STORE", "MONITOR_STORE", "ANALYSIS", "ANALYSIS_FILES", "ANALYSIS_FORMAT",
           "claim_output", "entry_listing", "foreign_entries", "output_kind", "open_output", "write_marker"]

MARKER_NAME = ".relu_probe"
GATE_STORE, MONITOR_STORE, ANALYSIS = "gate store", "monitor store", "analysis"
_KINDS = (GATE_STORE, MONITOR_STORE, ANALYSIS)
#: Files of a saved analysis (``Analysis.save``).
ANALYSIS_FILES = ("recording.nc", "pathways.nc", "units.nc", "dynamics.nc", "reln.nc", "monitor.nc", "structure.nc",
                  "summary.json")
#: The ``format`` field of a saved analysis's ``summary.json``.
ANALYSIS_FORMAT = "relu_probe.Analysis"
_OWN = (MARKER_NAME, LOCK_NAME, f"{MARKER_NAME}.partial")


def write_marker(path: Path, kind: str) -> None:
    """Write the marker of *kind* into directory *path* (atomically: temp file + rename)."""
    tmp = path / f"{MARKER_NAME}.partial"
    tmp.write_text(json.dumps({"relu_probe_output": kind, "format_version": 1}), encoding="utf-8")
    os.replace(tmp, path / MARKER_NAME)


def output_kind(path: Path) -> str | None:
    """Which relu_probe output directory *path* is (``None`` if it is none)."""
    try:
        marker = json.loads((path / MARKER_NAME).read_text(encoding="utf-8"))
        if isinstance(marker, dict) and marker.get("relu_probe_output") in _KINDS:
            return marker["relu_probe_output"]
    except (OSError, ValueError):
        pass
    try:  # a zarr store written before markers existed
        attrs = json.loads((path / "zarr.json").read_text(encoding="utf-8")).get("attributes", {})
        if "relu_probe_store" in attrs:
            return MONITOR_STORE if attrs.get("relu_probe_store_kind") == "monitor" else GATE_STORE
    except (OSError, ValueError, AttributeError):
        pass
    try:  # an analysis saved before markers existed
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        if isinstance(summary, dict) and summary.get("format") == ANALYSIS_FORMAT:
            return ANALYSIS
    except (OSError, ValueError):
        pass
    return None


#: zarr's own temp file for an atomic metadata write in the store's root (``zarr.<uuid hex>.partial``)
_ZARR_TEMP = re.compile(r"zarr\.[0-9a-f]{32}\.partial")


def _zarr_members(path: Path) -> set[str] | None:
    """The top-level nodes listed in the store's consolidated metadata (None without one)."""
    try:
        root = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    meta = (root.get("consolidated_metadata") or {}).get("metadata") if isinstance(root, dict) else None
    return None if not isinstance(meta, dict) else {key.split("/")[0] for key in meta}


def _written_by_us(kind: str, path: Path) -> Callable[[Path], bool]:
    """Whether a top-level entry of the *kind* directory *path* is something relu_probe writes there.

    Its marker and lock (and the marker's temp file); for a zarr store its ``zarr.json``,
    zarr's temp files, and the store's nodes: the directories its consolidated metadata lists
    (a store whose creation was interrupted has none yet: then every directory holding a
    ``zarr.json``); for a saved analysis its files. Never a symlink.
    """
    members = _zarr_members(path) if kind != ANALYSIS else None

    def zarr_entry(entry: Path) -> bool:
        if entry.name == "zarr.json" or _ZARR_TEMP.fullmatch(entry.name):
            return entry.is_file()
        if not entry.is_dir() or not (entry / "zarr.json").is_file():
            return False
        return members is None or entry.name in members

    def analysis_entry(entry: Path) -> bool:
        return entry.name in ANALYSIS_FILES and entry.is_file()

    test = analysis_entry if kind == ANALYSIS else zarr_entry
    return lambda entry: not entry.is_symlink() and (entry.name in _OWN or test(entry))


def foreign_entries(path: Path, kind: str) -> list[Path]:
    """The top-level entries of the *kind* directory *path* that relu_probe did not write."""
    ours = _written_by_us(kind, path)
    return [entry for entry in path.iterdir() if not ours(entry)]


def entry_listing(entries: list[Path], limit: int = 5) -> str:
    """The first *limit* entries' names, quoted, sorted, directories with a trailing ``/``."""
    names = [repr(e.name + ("/" if e.is_dir() else "")) for e in sorted(entries)[:limit]]
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(names) + more


def claim_output(
    path: Path,
    *,
    kind: str,
    overwrite: bool,
    argument: str,
    exists_hint: str,
    lock: bool = False,
    job: str | None = None,
) -> StoreLock | None:
    """Make *path* an empty *kind* directory owned by this writer, before anything is computed.

    * missing, or empty (or holding only relu_probe's marker and lock): created / used;
    * a relu_probe output directory: refused unless *overwrite*, which deletes what relu_probe
      wrote there — and refuses if anything else is in it;
    * anything else (a file, a directory with other contents): refused, naming what is there.

    With *lock*, the store's writer lock is taken (before anything is deleted) and returned.
    Errors of the file system (no permission, a parent that is a file …) are raised here as
    :class:`StoreError` naming *path* and the OS error.
    """
    where = f"`{argument}` {str(path)!r}"
    try:
        if path.exists() and not path.is_dir():
            raise StoreError(f"{where} exists and is a file, not a directory; relu_probe never deletes it. "
                             "Choose another path.")
        entries = list(path.iterdir()) if path.is_dir() else []
    except OSError as exc:
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"{where} cannot be used: {type(exc).__name__}: {exc}") from exc
    found = output_kind(path) if entries else None
    if entries and all(e.name in _OWN for e in entries):
        found, entries = None, []  # a claim that was interrupted before anything was written
    if entries and found is None:
        raise StoreError(
            f"{where} is not empty and is not a relu_probe output: it holds {entry_listing(entries)}. "
            "relu_probe only replaces what it wrote itself; choose another path."
        )
    if found is not None:
        if not overwrite:
            raise StoreError(f"{where} already holds a relu_probe {found}; {exists_hint}")
        ours = _written_by_us(found, path)
        foreign = [e for e in entries if not ours(e)]
        if foreign:
            raise StoreError(
                f"{where} holds a relu_probe {found} but also {entry_listing(foreign)}, which relu_probe "
                "did not write; overwrite=True deletes only relu_probe's own files. Move them out or "
                "choose another path."
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{where} cannot be created: {type(exc).__name__}: {exc}") from exc
    held = StoreLock(path, job=job).acquire() if lock else None
    try:
        for entry in entries:  # overwrite: what relu_probe wrote, under the lock
            if entry.name == LOCK_NAME:
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        write_marker(path, kind)
    except OSError as exc:
        if held is not None:
            held.release()
        raise StoreError(f"{where} cannot be written: {type(exc).__name__}: {exc}") from exc
    return held


def open_output(path: Path, *, kind: str, argument: str, job: str | None = None) -> StoreLock:
    """Lock an existing *kind* store for continuing it (resume / a continued monitor)."""
    found = output_kind(path)
    if found != kind:
        what = f"a relu_probe {found}" if found else "not a relu_probe output"
        raise StoreError(f"`{argument}` {str(path)!r} is {what}, not a relu_probe {kind}.")
    return StoreLock(path, job=job).acquire()
