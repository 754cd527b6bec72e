"""The zarr store of a :class:`~relu_probe.TrainingMonitor`: snapshots appended atomically.

Layout: the probe set's coords and the dataset attrs once; per snapshot, one index along
``step`` of ``step``, ``gate_bits`` (step, sample, unit_byte) packed gates, ``gate_rate`` /
``activation`` (step, sample, unit), ``importance`` (step, unit) and ``loss`` (step), each
chunked one step per chunk.

An append is all-or-nothing. Snapshot *k* is written in three stages: (1) every per-step
array is resized to *k* + 1 steps, (2) row *k* of each is written (a chunk file of its own),
(3) the store's consolidated metadata — a single file, replaced atomically by zarr — is
rewritten with the new shapes. Readers (:func:`relu_probe.load`) take the shapes from the
consolidated metadata only, so until stage 3 completes they see exactly the *k* earlier
snapshots, and a process killed at any point leaves a store that reads as its last complete
snapshot. Continuing such a store resizes every array back to the committed length before
writing, which overwrites whatever the interrupted append left.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import StoreError, StoreMismatchError
from .lock import LOCK_NAME, StoreLock
from .outputs import MARKER_NAME, MONITOR_STORE, claim_output, entry_listing, foreign_entries, open_output, output_kind
from .schema import plain_attr
from .store import FORMAT_VERSION, MONITOR_STEP_ARRAYS, committed_steps, first_difference, import_zarr, pack_gates

__all__ = ["MonitorStore"]

#: attrs that must agree between a monitor store and the model continuing it
_LAYOUT = ("model_class", "sites", "site_shapes", "units", "threshold")


class MonitorStore:
    """Append-only snapshot store of one monitor; holds the store's writer lock.

    Parameters
    ----------
    path : Path
        Store directory: a new (or empty) one is created, an existing monitor store is
        continued, and any other relu_probe store is replaced only with *overwrite*.
    overwrite : bool
        Replace an existing relu_probe store at *path* (never anything else).
    every : int
        The monitor's snapshot period (kept as an attr).
    importance : str
        The monitor's ``importance`` setting (kept as an attr; a continued store must use the
        same, or its importance series would change meaning between snapshots).
    """

    def __init__(self, path: Path, *, overwrite: bool, every: int, importance: str = "readout") -> None:
        self.path = Path(path)
        self.every = every
        self.importance = importance
        continuing = not overwrite and output_kind(self.path) == MONITOR_STORE
        if continuing:
            self.lock: StoreLock = open_output(self.path, kind=MONITOR_STORE, argument="store")
        else:
            self.lock = claim_output(
                self.path, kind=MONITOR_STORE, overwrite=overwrite, argument="store", lock=True,
                exists_hint="pass overwrite=True to replace it with this TrainingMonitor's snapshots.",
            )
        try:
            self.n_steps = committed_steps(self.path)
            self.steps: list[int] = []
            if self.n_steps:
                group = self._group()
                self.steps = [int(s) for s in np.asarray(group["step"][: self.n_steps])]
        except BaseException:
            self.lock.release()
            raise

    def losses(self) -> np.ndarray:
        """The loss stored with each committed step (NaN where none was given)."""
        if not self.n_steps:
            return np.zeros(0)
        group = self._group()
        if "loss" not in group:
            return np.full(self.n_steps, np.nan)
        return np.asarray(group["loss"][: self.n_steps], dtype=np.float64)

    def _group(self) -> Any:
        """The group as on disk (per-array metadata, not the consolidated record)."""
        return import_zarr().open_group(str(self.path), mode="r+", use_consolidated=False)

    # ------------------------------------------------------------------ checks
    def check_probe(self, fingerprint: str, coords: Mapping[str, np.ndarray], *, per_input: bool = False) -> None:
        """A continued store must get the probe set it was started with (same input values
        and order, same coords). With *per_input* (``samples="position"``) the coords are per
        probe input and compared through the store's ``input`` coord."""
        if not self.n_steps:
            return
        group = self._group()
        settings = (  # (setting, attr, this monitor's value, default of older stores, why it must agree)
            ("samples", "samples", "position" if per_input else "input", "input", "their rows are other samples"),
            ("every", "every", self.every, None,
             "the gate flips between snapshots (gate_stability) are only comparable at one interval"),
            ("importance", "monitor_importance", self.importance, None,
             "the stored importance, and the pathway masses and scores over time, would change meaning midway"),
        )
        for setting, attr, given, default, why in settings:
            stored = plain_attr(group.attrs.get(attr, default))
            if stored is not None and stored != given:
                raise StoreMismatchError(
                    f"continuing `store` {str(self.path)!r} with {setting}={given!r}: its snapshots were recorded with "
                    f"{setting}={stored!r}, and {why}. Continue with {setting}={stored!r}, or record into a new store."
                )
        stored = group.attrs.get("probe_fingerprint")
        if stored is not None and stored != fingerprint:
            raise StoreMismatchError(
                f"continuing `store` {str(self.path)!r} with other probe inputs: its snapshots were taken "
                "on probe inputs with other values, order, dtype or shape. Continue with the same probe "
                "set, or record into a new store."
            )
        for name, given in coords.items():
            if name not in group:
                raise StoreMismatchError(
                    f"continuing `store` {str(self.path)!r} with other coords: it has no coord {name!r}."
                )
            values = np.asarray(group[name][:])
            given = np.asarray(given)
            if per_input and "input" in group:
                inputs = np.asarray(group["input"][:])
                if inputs.max(initial=-1) >= len(given):
                    raise StoreMismatchError(
                        f"continuing `store` {str(self.path)!r} with other coords: its samples come from "
                        f"{int(inputs.max()) + 1} probe inputs, `coords[{name!r}]` has {len(given)} values."
                    )
                given = given[inputs]
            bad = first_difference(values, given)
            if bad is not None:
                raise StoreMismatchError(
                    f"continuing `store` {str(self.path)!r} with other coords: `coords[{name!r}]` differs at "
                    f"probe sample {bad} (the store has {plain_attr(values[bad])!r}, these coords "
                    f"{plain_attr(np.asarray(given)[bad])!r})."
                )

    def _check_layout(self, group: Any, ds: xr.Dataset, out: xr.Dataset, names: list[str]) -> None:
        attrs = dict(group.attrs)
        for key in _LAYOUT:
            if key in attrs and plain_attr(attrs[key]) != plain_attr(ds.attrs.get(key)):
                raise StoreMismatchError(
                    f"`store` {str(self.path)!r} holds snapshots of another site layout: its {key} is "
                    f"{plain_attr(attrs[key])!r}, this model's is {plain_attr(ds.attrs.get(key))!r}."
                )
        stored = sorted(n for n in MONITOR_STEP_ARRAYS if n in group)
        if stored != sorted(names):
            raise StoreMismatchError(
                f"`store` {str(self.path)!r} holds the variables {stored} per snapshot, this monitor "
                f"records {sorted(names)} (another `values=` or `units=`?)."
            )
        for name in names:
            if tuple(group[name].shape[1:]) != tuple(out[name].shape[1:]):
                raise StoreMismatchError(
                    f"`store` {str(self.path)!r} holds {name} of per-step shape {tuple(group[name].shape[1:])}, "
                    f"this snapshot's is {tuple(out[name].shape[1:])} (another probe set or model?)."
                )

    # ------------------------------------------------------------------ appending
    def append(self, ds: xr.Dataset, *, fingerprint: str) -> None:
        """Append one snapshot (a dataset with ``step`` of length 1), all of it or nothing."""
        self.lock.check()
        out = ds.copy()
        if "gate" in out:
            out["gate_bits"] = (("step", "sample", "unit_byte"), pack_gates(out["gate"].values[0])[None])
            out = out.drop_vars("gate")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's notes on string dtypes / consolidated metadata
            try:
                if self.n_steps == 0:
                    self._first(out, ds.attrs, fingerprint)
                else:
                    self._next(out, ds)
            except OSError as exc:
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(
                    f"appending step {int(ds['step'][0])} to `store` {str(self.path)!r} failed: "
                    f"{type(exc).__name__}: {exc}. The snapshots before it are intact."
                ) from exc
        self.n_steps += 1
        self.steps.append(int(ds["step"][0]))

    def _first(self, out: xr.Dataset, attrs: Mapping[str, Any], fingerprint: str) -> None:
        """The first snapshot writes the whole store; its consolidated metadata commits it."""
        foreign = foreign_entries(self.path, MONITOR_STORE)
        if foreign:
            raise StoreError(
                f"`store` {str(self.path)!r} is a TrainingMonitor store without a snapshot yet, but it also holds "
                f"{entry_listing(foreign)}, which "
                "relu_probe did not write; its first snapshot replaces the store's contents, and relu_probe only "
                "deletes its own files. Move them out, or record into another store."
            )
        for entry in self.path.iterdir():  # what an interrupted first snapshot left (relu_probe's own)
            if entry.name not in (MARKER_NAME, LOCK_NAME):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        out.attrs = {**attrs, "relu_probe_store": FORMAT_VERSION, "relu_probe_store_kind": "monitor",
                     "n_units": int(out.sizes["unit"]), "every": self.every, "probe_fingerprint": fingerprint,
                     "monitor_importance": self.importance}
        encoding = {name: {"chunks": (1, *out[name].shape[1:])} for name in out.data_vars if "step" in out[name].dims}
        encoding["step"] = {"chunks": (1,)}
        # mode "a": the directory already holds relu_probe's marker and lock
        out.to_zarr(str(self.path), mode="a", consolidated=True, encoding=encoding)

    def _next(self, out: xr.Dataset, ds: xr.Dataset) -> None:
        group = self._group()
        names = [v for v in (*out.data_vars, "step") if "step" in out[v].dims]
        self._check_layout(group, ds, out, names)
        k = self.n_steps
        arrays = {name: group[name] for name in names}
        for name, array in arrays.items():  # (1) every array to k + 1 steps
            if array.shape[0] != k + 1:
                array.resize((k + 1, *array.shape[1:]))
        for name, array in arrays.items():  # (2) row k of each
            array[k] = np.asarray(out[name].values)[0]
        import_zarr().consolidate_metadata(str(self.path))  # (3) the commit

    def close(self) -> None:
        """Release the writer lock."""
        self.lock.release()

