"""Bit-packed zarr gate stores: stream, resume, and load lazily.

A store is a zarr group (needs the ``io`` extra: zarr, dask) holding

* ``gate_bits`` (sample, unit_byte) uint8 — gates packed 8 per byte along the unit axis
  (``numpy.packbits(..., bitorder="little")``): one bit per unit per sample;
* ``gate_rate`` / ``activation`` (sample, unit) float32 when recorded;
* the dataset's coords (``sample``, user coords, ``site``, ``neuron`` …) and attrs;
* ``chunk_done`` (chunk,) uint8 — 1 once every row of that sample chunk is on disk;
* ``chunk_inputs`` (chunk, fingerprint_byte) uint8 — the fingerprint of the inputs each
  chunk was recorded from (:mod:`relu_probe.data.fingerprint`);
* relu_probe's marker ``.relu_probe`` and writer lock ``.relu_probe.lock`` (zarr ignores both).

Rows are written a whole chunk at a time, and a chunk's ``chunk_done`` flag only after its
data and fingerprint, so an interrupted stream (a killed process, a full disk) leaves every
flagged chunk complete; ``record(..., store=path, resume=True)`` checks the inputs of the
flagged chunks against their fingerprints, the coords against the store's, and rewrites
only the unflagged chunks. Each flag is its own zarr chunk, written atomically by zarr's
local store (temporary file + rename). Ranks of a ``torchrun`` job write disjoint whole
chunks of the same store (region writes) under one lock.

:func:`load` returns a dask-backed ``xarray.Dataset`` whose ``gate`` reads as bool.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import ReluProbeWarning, StoreError, StoreMismatchError, ValueInputError
from .fingerprint import FINGERPRINT_BYTES, BatchInputs, ChunkHasher
from .lock import Job
from .outputs import GATE_STORE, MARKER_NAME, MONITOR_STORE, claim_output, open_output, output_kind
from .packed_chunks import PackedChunks
from .reduce import packed_gate
from .schema import plain_attr

__all__ = [
    "load",
    "pack_gates",
    "unpack_gates",
    "ZarrSink",
    "default_chunk_rows",
    "StoreIncompleteWarning",
    "committed_steps",
    "first_difference",
    "import_zarr",
    "mark_complete",
    "read_layout",
]

FORMAT_VERSION = 1
#: attrs that must agree between a store and the model recording into it
LAYOUT_ATTRS = ("model_class", "sites", "site_shapes", "site_kinds", "units", "samples", "threshold", "variables",
                "n_units")
#: values of layout attrs that stores written before the attr existed have implicitly
_LAYOUT_DEFAULTS = {"samples": "input"}
_INTERNAL_ATTRS = ("relu_probe_store", "n_units", "chunk_rows", "variables", "n_samples", "complete")
#: the per-snapshot arrays of a TrainingMonitor store
MONITOR_STEP_ARRAYS = ("step", "gate_bits", "gate_rate", "activation", "importance", "loss")
#: attrs of a TrainingMonitor store that are not the dataset's
_MONITOR_ATTRS = ("relu_probe_store_kind", "every", "probe_fingerprint", "monitor_importance")
#: default size of one packed chunk
CHUNK_BYTES = 8 * 2**20


class StoreIncompleteWarning(ReluProbeWarning):
    """:func:`load` met a store whose stream did not finish; only complete chunks are returned."""


def import_zarr() -> Any:
    """The zarr package, or a clear error naming the ``io`` extra when it is missing."""
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StoreError(
            "gate stores need zarr and dask: pip install 'relu_probe[io]'"
        ) from exc
    return zarr


def pack_gates(gates: np.ndarray) -> np.ndarray:
    """Pack a ``(rows, units)`` bool array into ``(rows, ceil(units / 8))`` uint8 (little bit order)."""
    return np.packbits(np.asarray(gates, dtype=bool), axis=1, bitorder="little")


def unpack_gates(bits: np.ndarray, n_units: int) -> np.ndarray:
    """Inverse of :func:`pack_gates`: ``(rows, n_bytes)`` uint8 → ``(rows, n_units)`` bool."""
    return np.unpackbits(bits, axis=1, count=n_units, bitorder="little").view(bool)


def default_chunk_rows(row_bytes: int, n_samples: int) -> int:
    """Rows per chunk so that the largest stored variable's chunk is about 8 MiB."""
    rows = max(64, CHUNK_BYTES // max(row_bytes, 1))
    return int(max(1, min(rows, 65536, n_samples)))


def _store_vars(specs: Mapping[str, tuple[int, np.dtype]]) -> dict[str, tuple[tuple[str, str], int, str]]:
    """zarr array name → (dims, width, dtype) for the sink's (sample, unit) variable specs
    (per-row coords, width None, are sample coords)."""
    out = {}
    for name, (width, dtype) in specs.items():
        if width is None:
            continue
        if name == "gate":
            out["gate_bits"] = (("sample", "unit_byte"), (width + 7) // 8, "uint8")
        else:
            out[name] = (("sample", "unit"), width, np.dtype(dtype).str)
    return out


class ZarrSink:
    """A recording sink that streams whole sample chunks into a zarr store.

    The store path is claimed when the sink is made — before the model runs: it is created
    (an unwritable or unusable path raises :class:`StoreError` here), checked (only a
    relu_probe store may be replaced, see :mod:`relu_probe.data.outputs`) and locked against a
    second writer (:mod:`relu_probe.data.lock`; the lock is released by :meth:`release`, or by
    the operating system when the process dies).

    Parameters
    ----------
    path : str or Path
        Store directory.
    n_inputs : int
        Number of samples this call records.
    sample_ids : array of int, optional
        Sample ids of this call's samples, in input order. On create they become the store's
        ``sample`` coord (default ``0 … n-1``); on resume they pick the store rows to fill
        (a rank's shard), and without them the inputs must be the whole store.
    coords : mapping
        Per-sample user coords of this call's samples. On create they are stored; on resume
        each must equal the store's coord at these samples.
    attrs_for : callable
        ``attrs_for(specs) -> (attrs, unit_coords)`` — the dataset attrs and unit coords,
        built once the recorder knows its sites (at :meth:`configure`).
    mode : {"create", "overwrite", "resume"}
    chunk_rows : int, optional
        Rows per chunk on create (default :func:`default_chunk_rows`).
    job : relu_probe.data.lock.Job, optional
        The job this process writes the store with (the ranks of ``record_distributed``):
        they share the store's lock, and ``job.check()`` runs before each batch.
    input_coords : mapping, optional
        A ``samples="position"`` recording: the user's coords are per *input* (this mapping;
        *coords* is then empty), and the rows are kept (input, position) pairs whose
        ``input`` / ``position`` / ``token`` coords the recorder writes with the gates. Each
        chunk is written with these coords and the user's coords broadcast to its rows
        (``coords[name][input]``). The number of rows is known once the sites are:
        *n_inputs* is None and ``size_for()`` (set by the recorder) gives it at
        :meth:`configure`.
    n_source_inputs : int, optional
        With *input_coords*: the number of inputs.
    counted_rows : int, optional
        With *input_coords*: the number of rows the caller stated (``n_samples=``).

    Notes
    -----
    Resuming checks the inputs as they stream by: every recorded chunk carries the
    fingerprint of its inputs (:mod:`relu_probe.data.fingerprint`), and a chunk already on disk
    whose inputs now differ raises :class:`StoreMismatchError` naming it, before the batch
    is run. Chunks recorded by a resume are flagged done only once every chunk already on
    disk has been checked, so a refused resume never leaves its chunks in the store.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_inputs: int | None,
        sample_ids: np.ndarray | None,
        coords: Mapping[str, np.ndarray],
        attrs_for: Any,
        mode: str,
        chunk_rows: int | None = None,
        job: Job | None = None,
        input_coords: Mapping[str, np.ndarray] | None = None,
        n_source_inputs: int | None = None,
        counted_rows: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.job = job
        token = None if job is None else job.token
        self.coords = dict(coords)
        self.position = input_coords is not None
        self.input_coords = {k: np.asarray(v.astype(str)) if v.dtype.kind == "O" else v
                             for k, v in (input_coords or {}).items()}
        self.n_source_inputs = n_source_inputs
        self.counted_rows = counted_rows
        self.size_for: Any = None
        self.row_specs: dict[str, np.dtype] = {}
        self.attrs_for = attrs_for
        self.mode = mode
        self.specs: dict[str, tuple[int, np.dtype]] = {}
        self._arrays: dict[str, Any] = {}
        self._done: np.ndarray | None = None
        self._staging: dict[int, dict[str, np.ndarray]] = {}
        self._hasher: ChunkHasher | None = None
        self._deferred: list[tuple[np.ndarray, BatchInputs]] = []
        self._fingerprints: dict[int, np.ndarray] = {}
        self._unverified: set[int] = set()
        self._unflagged: list[int] = []
        self._stored_inputs: np.ndarray | None = None
        self._rows: np.ndarray | None = None
        self._block: dict[str, np.ndarray] | None = None
        self.n_written = 0
        if mode == "resume":
            try:
                exists = self.path.exists()
            except OSError as exc:
                raise StoreError(f"`store` {str(self.path)!r} cannot be used: {type(exc).__name__}: {exc}") from exc
            if not exists:
                raise StoreError(f"`store` {str(self.path)!r} does not exist, so there is nothing to resume.")
            self.lock = open_output(self.path, kind=GATE_STORE, argument="store", job=token)
            try:
                self._open_existing(n_inputs, sample_ids)
            except BaseException:
                self.lock.release()
                raise
        else:
            self.n_samples = None
            if n_inputs is not None:
                self._set_size(int(n_inputs), sample_ids)
            self.chunk_rows = chunk_rows
            self.lock = claim_output(
                self.path, kind=GATE_STORE, overwrite=mode == "overwrite", argument="store", lock=True, job=token,
                exists_hint="pass overwrite=True to replace it or resume=True to continue an interrupted recording.",
            )

    # ------------------------------------------------------------------ set-up
    def _set_size(self, n: int, sample_ids: np.ndarray | None = None) -> None:
        """A new store's number of samples (and their ids)."""
        self.n_samples = int(n)
        self.sample_ids = np.arange(n, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
        if len(np.unique(self.sample_ids)) != len(self.sample_ids):
            raise ValueInputError("`sample_ids` must be unique.")
        self.rows = np.arange(self.n_samples, dtype=np.int64)

    def _sized_rows(self) -> int:
        """The rows of a ``samples="position"`` recording, once the sites are known."""
        n = None if self.size_for is None else self.size_for()
        if n is None:
            raise ValueInputError(
                f"`store` {str(self.path)!r} needs the number of samples before recording: with "
                "samples='position' it is counted from in-memory dict batches (attention_mask / input_ids) or "
                "taken as inputs × positions; pass `n_samples=` (the number of kept positions)."
            )
        return int(n)

    def _open_existing(self, n_inputs: int | None, sample_ids: np.ndarray | None) -> None:
        """Resume: read the store's rows, flags and input fingerprints; check the coords."""
        try:
            group = import_zarr().open_group(str(self.path), mode="r")
            attrs = dict(group.attrs)
        except Exception as exc:
            raise StoreMismatchError(
                f"`store` {str(self.path)!r} holds no readable gate store (its creation was interrupted "
                f"before any sample was written?): {exc}. Record again with overwrite=True."
            ) from None
        if attrs.get("relu_probe_store") != FORMAT_VERSION or "chunk_inputs" not in group:
            raise StoreMismatchError(
                f"`store` {str(self.path)!r} carries no input fingerprints (written by an older relu_probe), "
                "so a resume cannot check that it gets the same inputs; record it again with overwrite=True."
            )
        self.n_samples = int(attrs["n_samples"])
        self.chunk_rows = int(attrs["chunk_rows"])
        self.sample_ids = np.asarray(group["sample"][:], dtype=np.int64)
        if sample_ids is None:
            if n_inputs is not None and n_inputs != self.n_samples:
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with different inputs: it holds "
                    f"{self.n_samples} samples, these inputs have {n_inputs}. Pass `sample_ids=` "
                    "to fill part of a store."
                )
            self.rows = np.arange(self.n_samples, dtype=np.int64)
        else:
            self.rows = self.rows_for_ids(np.asarray(sample_ids))
        self._done = np.asarray(group["chunk_done"][:], dtype=bool)
        self._stored_inputs = np.asarray(group["chunk_inputs"][:], dtype=np.uint8)
        self._hasher = ChunkHasher(self.chunk_rows, self.n_samples)
        self._check_coords(group)
        touched = np.unique(self.rows // self.chunk_rows)
        self._unverified = {int(c) for c in touched if self._done[c]}
        counts = np.bincount(self.rows // self.chunk_rows, minlength=len(self._done))
        for chunk in sorted(self._unverified):
            if counts[chunk] != self._chunk_length(chunk):
                raise StoreMismatchError(
                    f"`sample_ids` cover only part of sample chunk {chunk} of `store` {str(self.path)!r} "
                    f"(rows {chunk * self.chunk_rows}–{chunk * self.chunk_rows + self._chunk_length(chunk) - 1}), "
                    "which is already recorded: its input fingerprint covers the whole chunk, so these "
                    f"inputs cannot be checked against it. Pass whole chunks ({self.chunk_rows} rows each)."
                )

    def _check_coords(self, group: Any) -> None:
        """Each coord passed on resume must equal the store's at this call's samples (with
        per-input coords, the store's at the rows of the chunks on disk, through their
        ``input`` coord)."""
        if self.position:
            self._check_input_coords(group)
        for name, given in self.coords.items():
            if name not in group or name in ("sample", "unit") or group[name].shape != (self.n_samples,):
                stored = sorted(k for k in group.array_keys() if group[k].shape == (self.n_samples,)
                                and k != "sample")
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with other coords: it has no sample coord {name!r} "
                    f"(its coords are {stored})."
                )
            values = np.asarray(group[name][:])[self.rows]
            bad = first_difference(values, np.asarray(given))
            if bad is not None:
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with other coords: `coords[{name!r}]` differs at "
                    f"sample {int(self.sample_ids[self.rows[bad]])} (the store has {plain_attr(values[bad])!r}, "
                    f"these coords {plain_attr(np.asarray(given)[bad])!r}). Resume with the coords of the "
                    "original recording (or omit them: the store keeps its own)."
                )

    def _check_input_coords(self, group: Any) -> None:
        """Resume of a ``samples="position"`` store: the per-input coords, broadcast to the rows
        already on disk, must equal the store's."""
        if not self.input_coords:
            return
        rows = np.flatnonzero(np.repeat(self._done, self.chunk_rows)[: self.n_samples])
        if "input" not in group:
            raise StoreMismatchError(
                f"resuming `store` {str(self.path)!r} with samples='position', but it was recorded with one "
                "sample per input (it has no `input` coord)."
            )
        inputs = np.asarray(group["input"][:])[rows]
        for name, given in self.input_coords.items():
            if name not in group or group[name].shape != (self.n_samples,):
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with other coords: it has no sample coord {name!r}."
                )
            if len(rows) and inputs.max() >= len(given):
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with other inputs: its samples come from "
                    f"{int(inputs.max()) + 1} or more inputs, `coords[{name!r}]` has {len(given)} values."
                )
            values = np.asarray(group[name][:])[rows]
            bad = first_difference(values, np.asarray(given)[inputs])
            if bad is not None:
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with other coords: `coords[{name!r}]` differs at input "
                    f"{int(inputs[bad])} (the store has {plain_attr(values[bad])!r}, these coords "
                    f"{plain_attr(np.asarray(given)[inputs[bad]])!r}). Resume with the coords of the original "
                    "recording (or omit them: the store keeps its own)."
                )

    def configure(self, specs: Mapping[str, tuple[int, np.dtype]]) -> None:
        """Create (or open and validate) the store once the recorder knows its units."""
        self.lock.check()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: string dtypes / consolidated metadata notes
            try:
                self._configure(specs)
            except OSError as exc:
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(
                    f"writing the metadata of `store` {str(self.path)!r} failed: {type(exc).__name__}: {exc}"
                ) from exc

    def _configure(self, specs: Mapping[str, tuple[int, np.dtype]]) -> None:
        zarr = import_zarr()
        self.specs = dict(specs)
        self.row_specs = {k: np.dtype(d) for k, (w, d) in specs.items() if w is None}
        attrs, unit_coords = self.attrs_for(self.specs)
        width = next(iter(specs.values()))[0]
        if self.position and self.mode != "resume":
            self._set_size(self._sized_rows())
        elif self.position:
            n = self._sized_rows()
            if n != self.n_samples:
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with different inputs: it holds {self.n_samples} "
                    f"samples, these inputs give {n} kept positions."
                )
        row_bytes = max(
            w if n == "gate_bits" else w * np.dtype(d).itemsize for n, (_, w, d) in _store_vars(specs).items()
        )
        attrs = {
            **attrs,
            "relu_probe_store": FORMAT_VERSION,
            "n_units": int(width),
            "variables": sorted(specs),
            "n_samples": self.n_samples,
        }
        if self.mode == "resume":
            group = zarr.open_group(str(self.path), mode="r+")
            self._validate(group, attrs)
        else:
            self.chunk_rows = self.chunk_rows or default_chunk_rows(row_bytes, self.n_samples)
            attrs["chunk_rows"] = int(self.chunk_rows)
            attrs["complete"] = False
            self._create(attrs, unit_coords)
            group = zarr.open_group(str(self.path), mode="r+")
            self._done = np.zeros(-(-self.n_samples // self.chunk_rows), dtype=bool)
            self._hasher = ChunkHasher(self.chunk_rows, self.n_samples)
            for rows, inputs in self._deferred:  # batches seen before the chunk size was known
                self._hash(rows, inputs)
            self._deferred = []
        for name in (*_store_vars(specs), *self.row_specs, *self.input_coords):
            self._arrays[name] = group[name]
        self._done_array = group["chunk_done"]
        self._inputs_array = group["chunk_inputs"]
        self._group = group

    def _create(self, attrs: dict, unit_coords: Mapping[str, np.ndarray]) -> None:
        zarr = import_zarr()
        coords: dict[str, Any] = {"sample": ("sample", self.sample_ids)}
        coords.update({k: ("sample", v) for k, v in self.coords.items()})
        encoding = {}
        for name, dtype in [*self.row_specs.items(), *((k, v.dtype) for k, v in self.input_coords.items())]:
            # written chunk by chunk with the gates (placeholders until then)
            coords[name] = ("sample", np.zeros(self.n_samples, dtype))
            encoding[name] = {"chunks": (self.chunk_rows,)}
        coords["unit"] = ("unit", np.arange(attrs["n_units"], dtype=np.int64))
        coords.update({k: ("unit", v) for k, v in unit_coords.items()})
        skeleton = xr.Dataset(coords=coords, attrs=attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's note that vlen strings are an extension
            # mode "a": the directory already holds relu_probe's marker and lock (nothing else)
            skeleton.to_zarr(str(self.path), mode="a", consolidated=False, encoding=encoding)
        group = zarr.open_group(str(self.path), mode="r+")
        rows = self.chunk_rows
        for name, (dims, width, dtype) in _store_vars(self.specs).items():
            group.create_array(
                name, shape=(self.n_samples, width), chunks=(rows, width), dtype=dtype,
                dimension_names=list(dims), fill_value=0,
            )
        n_chunks = -(-self.n_samples // rows)
        group.create_array("chunk_done", shape=(n_chunks,), chunks=(1,), dtype="uint8",
                           dimension_names=["chunk"], fill_value=0)
        group.create_array("chunk_inputs", shape=(n_chunks, FINGERPRINT_BYTES), chunks=(1, FINGERPRINT_BYTES),
                           dtype="uint8", dimension_names=["chunk", "fingerprint_byte"], fill_value=0)
        zarr.consolidate_metadata(str(self.path))

    def _validate(self, group: Any, attrs: Mapping[str, Any]) -> None:
        stored = dict(group.attrs)
        def value(source: Mapping[str, Any], key: str) -> Any:
            return plain_attr(source.get(key, _LAYOUT_DEFAULTS.get(key)))

        differ = [
            f"its {key} is {value(stored, key)!r}, this recording's is {value(attrs, key)!r}"
            for key in LAYOUT_ATTRS
            if value(stored, key) != value(attrs, key)
        ]
        if differ:
            only_shapes = all(value(stored, key) == value(attrs, key) for key in LAYOUT_ATTRS if key != "site_shapes")
            hint = (" Only the per-sample shapes differ: the same model on inputs of another size, e.g. token "
                    "batches padded to another length (element units need one padded length throughout; "
                    "samples='position' or units='channel' do not)." if only_shapes else "")
            raise StoreMismatchError(
                f"`store` {str(self.path)!r} was written by a different model or site layout: "
                + "; ".join(differ) + "." + hint + " Record into a new store (or pass overwrite=True)."
            )

    # ------------------------------------------------------------------ rows
    def _chunk_length(self, chunk: int) -> int:
        return min(self.chunk_rows, self.n_samples - chunk * self.chunk_rows)

    def rows_for_ids(self, ids: np.ndarray) -> np.ndarray:
        """Store rows of the given sample ids (error if any id is not in the store)."""
        index = {int(v): i for i, v in enumerate(self.sample_ids)}
        try:
            return np.fromiter((index[int(i)] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as exc:
            raise StoreMismatchError(
                f"`sample_ids` contains {exc.args[0]}, which is not a sample of `store` {str(self.path)!r}."
            ) from None

    def set_rows(self, rows: np.ndarray, inputs: BatchInputs) -> None:
        """Rows that the next batch's samples go to, with the batch's inputs
        (:func:`relu_probe.recording.fingerprint.batch_inputs`). Their fingerprints are computed here;
        a chunk already on disk is checked against the store as soon as all its rows were
        seen, before the batch that completes it is run."""
        if self.job is not None:
            self.job.check()
        self._rows = np.asarray(rows, dtype=np.int64)
        if len(inputs.rows) != len(self._rows):
            raise StoreError(f"internal: {len(self._rows)} rows set with inputs of {len(inputs.rows)} samples")
        if self._hasher is None:  # a new store's chunk size is known once the sites are
            self._deferred.append((self._rows, inputs))
        else:
            self._hash(self._rows, inputs)

    def _hash(self, rows: np.ndarray, inputs: BatchInputs) -> None:
        for chunk, fingerprint in self._hasher.add(rows, inputs).items():
            if chunk not in self._unverified:
                self._fingerprints[chunk] = fingerprint  # written with the chunk's data
                continue
            if not np.array_equal(fingerprint, self._stored_inputs[chunk]):
                start = chunk * self.chunk_rows
                raise StoreMismatchError(
                    f"resuming `store` {str(self.path)!r} with other inputs: sample chunk {chunk} (samples "
                    f"{start}–{start + self._chunk_length(chunk) - 1}) was recorded from inputs with other "
                    "values, order, dtype or shape (token batches padded to another length count as other "
                    "inputs). Resume with the inputs of the original recording, or record into a new store. "
                    "Nothing of this call was kept."
                )
            self._unverified.discard(chunk)
            if not self._unverified:
                self._flag(self._unflagged)
                self._unflagged = []

    def rows_done(self, rows: np.ndarray) -> bool:
        """Whether every given row lies in a chunk already on disk."""
        if self._done is None:
            return False
        return bool(self._done[np.asarray(rows) // self.chunk_rows].all())

    def reserve(self, n: int) -> dict[str, np.ndarray]:
        self._block = {k: np.empty(_row_shape(n, w), d) for k, (w, d) in self.specs.items()}
        return self._block

    def commit(self, n: int) -> None:
        rows = self._rows
        if rows is None or len(rows) != n:
            if self.position and rows is not None:
                raise ValueInputError(
                    f"a batch gave {n} samples (kept positions) but {len(rows)} were expected from its "
                    "attention_mask / input_ids: the recorded sites' positions are not the batch's sequence "
                    "positions; select the sequence sites with `sites=`."
                )
            raise StoreError(f"internal: {n} samples committed but {0 if rows is None else len(rows)} rows set")
        block = self._block
        chunks = rows // self.chunk_rows
        for chunk in np.unique(chunks):
            if self._done[chunk]:
                continue  # already on disk from an earlier run
            sel = chunks == chunk
            start = chunk * self.chunk_rows
            length = self._chunk_length(int(chunk))
            stage = self._staging.get(chunk)
            if stage is None:
                stage = self._staging[chunk] = {k: np.zeros(_row_shape(length, w), d) for k, (w, d) in self.specs.items()}
                stage[_FILLED] = np.zeros(length, bool)
            local = rows[sel] - start
            for name in self.specs:
                stage[name][local] = block[name][sel]
            stage[_FILLED][local] = True
            if stage[_FILLED].all():
                self._flush(int(chunk))
        self._rows = self._block = None

    def _flush(self, chunk: int) -> None:
        """Write a complete chunk: its data, then its input fingerprint, then its done flag
        (withheld while chunks already on disk are still to be checked)."""
        self.lock.check()
        stage = self._staging.pop(chunk)
        start = chunk * self.chunk_rows
        stop = start + len(stage[_FILLED])
        try:
            for name, data in stage.items():
                if name == _FILLED:
                    continue
                if name == "gate":
                    self._arrays["gate_bits"][start:stop] = pack_gates(data)
                else:
                    self._arrays[name][start:stop] = data
            for name, values in self.input_coords.items():  # per-input coords, broadcast to the rows
                self._arrays[name][start:stop] = values[stage["input"]]
            self._inputs_array[chunk] = self._fingerprints.pop(chunk)
        except OSError as exc:
            raise self._write_error(chunk, start, stop, exc) from exc
        if self._unverified:
            self._unflagged.append(chunk)
        else:
            self._flag([chunk])
        self.n_written += stop - start

    def discard_pending(self) -> None:
        """Forget the rows of partly filled chunks (nothing of them is on disk yet)."""
        self._staging.clear()

    def _flag(self, chunks: list[int]) -> None:
        for chunk in chunks:
            try:
                self._done_array[chunk] = 1
            except OSError as exc:
                start = chunk * self.chunk_rows
                raise self._write_error(chunk, start, start + self._chunk_length(chunk), exc) from exc
            self._done[chunk] = True

    def _write_error(self, chunk: int, start: int, stop: int, exc: OSError) -> StoreError:
        return StoreError(
            f"writing sample chunk {chunk} (samples {start}–{stop - 1}) to `store` {str(self.path)!r} "
            f"failed: {exc}. Chunks written before it are intact; free space and call record(..., "
            "resume=True) with the same inputs to finish."
        )

    def close(self, *, require: np.ndarray | None = None) -> None:
        """Check that every chunk this process touched is complete; mark the store complete
        when all chunks are; release the lock."""
        try:
            if self._done is None:
                return
            if self._staging:
                pending = sorted(self._staging)
                raise StoreError(
                    f"the inputs ended with sample chunk(s) {pending} of `store` {str(self.path)!r} only "
                    "partly recorded: the inputs have fewer samples than the store expects."
                )
            mark_complete(self.path)
        finally:
            self.release()

    def release(self) -> None:
        """Release the store's writer lock (idempotent)."""
        self.lock.release()


_FILLED = "__filled__"


def _row_shape(rows: int, width: int | None) -> tuple[int, ...]:
    return (rows,) if width is None else (rows, width)



def mark_complete(path: str | os.PathLike) -> bool:
    """Set the store's ``complete`` attr once every chunk is flagged done; return whether it is."""
    zarr = import_zarr()
    group = zarr.open_group(str(path), mode="r+")
    if not np.asarray(group["chunk_done"][:], dtype=bool).all():
        return False
    if not group.attrs.get("complete"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group.attrs["complete"] = True
            zarr.consolidate_metadata(str(path))
    return True


def first_difference(stored: np.ndarray, given: np.ndarray) -> int | None:
    """Index of the first element where two coord arrays differ (NaN equals NaN), or None."""
    if len(stored) != len(given):
        return 0
    if stored.dtype.kind in "biuf" and given.dtype.kind in "biuf":
        same = stored == given
        if stored.dtype.kind == "f" or given.dtype.kind == "f":
            same |= np.isnan(stored.astype(float)) & np.isnan(given.astype(float))
    else:
        same = np.fromiter((plain_attr(a) == plain_attr(b) and type(plain_attr(a)) is type(plain_attr(b))
                            for a, b in zip(stored.astype(object), given.astype(object))), bool, len(stored))
    bad = np.flatnonzero(~same)
    return int(bad[0]) if len(bad) else None


def load(path: str | os.PathLike, *, chunks: Mapping[str, int] | None = None) -> xr.Dataset:
    """Open a gate store lazily (dask-backed); ``gate`` reads as bool.

    Parameters
    ----------
    path : str or Path
        A store written by ``rp.record(..., store=path)``.
    chunks : mapping, optional
        Dask chunks along ``sample`` (default: the store's chunks).

    Returns
    -------
    xarray.Dataset
        The same layout as :func:`relu_probe.record` returns, with dask arrays. If the
        stream did not finish, only the leading complete chunks are returned and a
        :class:`StoreIncompleteWarning` says how many samples are missing.
    """
    zarr = import_zarr()
    path = Path(path)
    if not path.exists():
        raise StoreError(f"`path` {str(path)!r} does not exist.")
    kind = output_kind(path)
    if kind == MONITOR_STORE:
        return _load_monitor(path)
    if kind == GATE_STORE and not (path / "zarr.json").exists():
        raise StoreError(
            f"`path` {str(path)!r} holds no samples yet: its recording stopped before the store was "
            "written (record into it again; it needs no overwrite=True)."
        )
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise StoreError(f"`path` {str(path)!r} is not a zarr store: {exc}") from exc
    version = group.attrs.get("relu_probe_store")
    if version is None:
        raise StoreError(f"`path` {str(path)!r} is not a relu_probe gate store (no relu_probe_store attr).")
    if version != FORMAT_VERSION:
        raise StoreError(
            f"`path` {str(path)!r} is a relu_probe gate store of format version {plain_attr(version)!r}; this "
            f"relu_probe ({__version__}) reads format version {FORMAT_VERSION}. Read it with the relu_probe that "
            "wrote it, or record it again."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(str(path), consolidated=True, chunks={} if chunks is None else dict(chunks))
    attrs = dict(ds.attrs)
    n_units = int(attrs["n_units"])
    rows = int(attrs["chunk_rows"])
    done = np.asarray(group["chunk_done"][:], dtype=bool)
    n_samples = int(attrs["n_samples"])
    complete_rows = n_samples if done.all() else int(np.argmin(done)) * rows
    if complete_rows < n_samples:
        warnings.warn(
            f"store {str(path)!r} is incomplete: {complete_rows} of {n_samples} samples are complete "
            f"({int(done.sum())} of {len(done)} chunks); finish it with record(..., resume=True).",
            StoreIncompleteWarning,
            stacklevel=2,
        )
    ds = ds.isel(sample=slice(0, complete_rows)).drop_vars(["chunk_done", "chunk_inputs"], errors="ignore")
    stored = None
    if "gate_bits" in ds:
        ds["gate_bits"] = (ds["gate_bits"].dims, _packed_bits(group, complete_rows, chunks))
        stored = PackedChunks.of(group["gate_bits"])  # reductions read chunks as stored where aligned
    return _finish(ds, attrs, n_units, stored)


def _packed_bits(group: Any, rows: int, chunks: Mapping[str, int] | None) -> Any:
    """The packed gates as a dask array read straight from the zarr array (``dask.array.from_zarr``):
    one task per chunk, without xarray's lazily indexed backend array in between (which costs
    about 5 % of an out-of-core reduction's time)."""
    import dask.array as da

    bits = da.from_zarr(group["gate_bits"])
    if chunks and "sample" in chunks:
        bits = bits.rechunk({0: chunks["sample"]})
    return bits[:rows]


def _decode_bits(ds: xr.Dataset, n_units: int, stored: PackedChunks | None = None) -> xr.Dataset:
    """Replace ``gate_bits`` (…, unit_byte) uint8 by a lazily unpacked ``gate`` (…, unit) bool
    (*stored*: the reader of its stored chunks, for reductions, :func:`~relu_probe.data.reduce.packed_gate`)."""
    import dask.array as da

    if "gate_bits" not in ds:
        return ds
    var = ds["gate_bits"]
    bits = var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))
    if bits.ndim == 2:
        gate = packed_gate(bits, n_units, stored)  # reductions then read the packed bits
    else:
        bits = bits.rechunk({bits.ndim - 1: -1})
        gate = bits.map_blocks(_unpack_last, n_units, dtype=bool, chunks=(*bits.chunks[:-1], (n_units,)))
    dims = (*var.dims[:-1], "unit")
    ds = ds.drop_vars("gate_bits")
    ds["gate"] = (dims, gate)
    ds["gate"].attrs["long_name"] = "ReLU input > threshold"
    return ds


def _unpack_last(bits: np.ndarray, n_units: int) -> np.ndarray:
    flat = bits.reshape(-1, bits.shape[-1])
    return unpack_gates(flat, n_units).reshape(*bits.shape[:-1], n_units)


def read_layout(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """``(chunk_rows, sample_ids)`` of the record store at *path*: how its rows are chunked and
    which sample id each row holds (so that writers can take whole chunks of it)."""
    group = import_zarr().open_group(str(path), mode="r")
    return int(group.attrs["chunk_rows"]), np.asarray(group["sample"][:], dtype=np.int64)


def committed_steps(path: Path) -> int:
    """Number of snapshots a TrainingMonitor store holds.

    An append is committed by rewriting the store's consolidated metadata (one atomic file
    replace; :mod:`relu_probe.data.monitor_store`), so the ``step`` length recorded there is the
    number of complete snapshots, whatever an interrupted append left in the arrays. A store
    without consolidated metadata holds none — unless it predates that rule (no relu_probe
    marker), where the steps present in every variable count.
    """
    try:
        root = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    meta = (root.get("consolidated_metadata") or {}).get("metadata")
    if meta is not None:
        return int(meta["step"]["shape"][0]) if "step" in meta else 0
    if (path / MARKER_NAME).exists():
        return 0
    group = import_zarr().open_group(str(path), mode="r", use_consolidated=False)
    names = [n for n in MONITOR_STEP_ARRAYS if n in group]
    return min(group[n].shape[0] for n in names) if names else 0


def _load_monitor(path: Path) -> xr.Dataset:
    n_steps = committed_steps(path)
    if n_steps == 0:
        raise StoreError(
            f"`path` {str(path)!r} is a TrainingMonitor store without a complete snapshot yet (none was "
            "taken, or the first one was interrupted); continue the monitor on it to write one."
        )
    consolidated = "consolidated_metadata" in json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(str(path), consolidated=bool(consolidated), chunks={})
    attrs = dict(ds.attrs)
    ds = ds.isel(step=slice(0, n_steps))
    ds = _finish(ds, attrs, int(attrs["n_units"]))
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in _MONITOR_ATTRS}
    return ds


def _finish(ds: xr.Dataset, attrs: dict, n_units: int, stored: PackedChunks | None = None) -> xr.Dataset:
    ds = _decode_bits(ds, n_units, stored)
    for name in ds.coords:  # coords are small: read them now, strings as objects (as recorded)
        values = ds[name]
        data = np.asarray(values.values, dtype=object) if values.dtype.kind in ("T", "U", "O") else values.values
        ds = ds.assign_coords({name: (values.dims, data)})
    for name, long_name in (("gate_rate", "fraction of positions with ReLU input > threshold"),
                            ("activation", "post-ReLU activation")):
        if name in ds:
            ds[name].attrs = {"long_name": long_name}
    ds.attrs = {k: plain_attr(v) for k, v in attrs.items() if k not in _INTERNAL_ATTRS}
    ordered = [v for v in ("gate", "gate_rate", "activation", "importance", "loss") if v in ds.data_vars]
    return ds[ordered]
