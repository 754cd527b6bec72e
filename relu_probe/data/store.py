"""Bit-packed zarr gate stores: stream, resume, and load lazily.

A store is a zarr group (needs the ``io`` extra: zarr, dask) holding

* ``gate_bits`` (sample, unit_byte) uint8 — gates packed 8 per byte along the unit axis
  (``numpy.packbits(..., bitorder="little")``): one bit per unit per sample;
* ``gate_rate`` / ``activation`` (sample, unit) float32 when recorded;
* the dataset's coords (``sample``, user coords, ``site``, ``neuron`` …) and attrs;
* ``chunk_done`` (chunk,) uint8 — 1 once every row of that sample chunk is on disk.

Rows are written a whole chunk at a time, and a chunk's ``chunk_done`` flag only after its
data, so an interrupted stream (a killed process, a full disk) leaves every flagged chunk
complete; ``record(..., store=path, resume=True)`` rewrites only the unflagged ones. Each
flag is its own zarr chunk, written atomically by zarr's local store. Ranks of a
``torchrun`` job write disjoint whole chunks of the same store (region writes).

:func:`load` returns a dask-backed ``xarray.Dataset`` whose ``gate`` reads as bool.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ReluProbeWarning, StoreError, StoreMismatchError, ValueInputError

__all__ = [
    "load",
    "pack_gates",
    "unpack_gates",
    "ZarrSink",
    "default_chunk_rows",
    "StoreIncompleteWarning",
    "complete_steps",
    "import_zarr",
    "read_layout",
]

FORMAT_VERSION = 1
#: attrs that must agree between a store and the model recording into it
LAYOUT_ATTRS = ("model_class", "sites", "site_shapes", "site_kinds", "units", "threshold", "variables", "n_units")
_INTERNAL_ATTRS = ("relu_probe_store", "n_units", "chunk_rows", "variables", "n_samples", "complete")
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
    """zarr array name → (dims, width, dtype) for the sink's variable specs."""
    out = {}
    for name, (width, dtype) in specs.items():
        if name == "gate":
            out["gate_bits"] = (("sample", "unit_byte"), (width + 7) // 8, "uint8")
        else:
            out[name] = (("sample", "unit"), width, np.dtype(dtype).str)
    return out


class ZarrSink:
    """A recording sink that streams whole sample chunks into a zarr store.

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
        Per-sample user coords (create only; a resumed store keeps its own).
    attrs_for : callable
        ``attrs_for(specs) -> (attrs, unit_coords)`` — the dataset attrs and unit coords,
        built once the recorder knows its sites (at :meth:`configure`).
    mode : {"create", "overwrite", "resume"}
    chunk_rows : int, optional
        Rows per chunk on create (default :func:`default_chunk_rows`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_inputs: int,
        sample_ids: np.ndarray | None,
        coords: Mapping[str, np.ndarray],
        attrs_for: Any,
        mode: str,
        chunk_rows: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.coords = dict(coords)
        self.attrs_for = attrs_for
        self.mode = mode
        self.specs: dict[str, tuple[int, np.dtype]] = {}
        self._arrays: dict[str, Any] = {}
        self._done: np.ndarray | None = None
        self._staging: dict[int, dict[str, np.ndarray]] = {}
        self._rows: np.ndarray | None = None
        self._block: dict[str, np.ndarray] | None = None
        self.n_written = 0
        self._check_target()
        if mode == "resume":
            group = import_zarr().open_group(str(self.path), mode="r")
            if group.attrs.get("relu_probe_store") != FORMAT_VERSION:
                raise StoreMismatchError(f"`store` {str(self.path)!r} is not a relu_probe gate store.")
            self.n_samples = int(group.attrs["n_samples"])
            self.chunk_rows = int(group.attrs["chunk_rows"])
            self.sample_ids = np.asarray(group["sample"][:], dtype=np.int64)
            if sample_ids is None:
                if n_inputs != self.n_samples:
                    raise StoreMismatchError(
                        f"resuming `store` {str(self.path)!r} with different inputs: it holds "
                        f"{self.n_samples} samples, these inputs have {n_inputs}. Pass `sample_ids=` "
                        "to fill part of a store."
                    )
                self.rows = np.arange(self.n_samples, dtype=np.int64)
            else:
                self.rows = self.rows_for_ids(np.asarray(sample_ids))
            self._done = np.asarray(group["chunk_done"][:], dtype=bool)
        else:
            self.n_samples = int(n_inputs)
            self.sample_ids = (
                np.arange(n_inputs, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
            )
            if len(np.unique(self.sample_ids)) != len(self.sample_ids):
                raise ValueInputError("`sample_ids` must be unique.")
            self.rows = np.arange(self.n_samples, dtype=np.int64)
            self.chunk_rows = chunk_rows

    # ------------------------------------------------------------------ set-up
    def _check_target(self) -> None:
        exists = self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir()))
        if self.mode == "create" and exists:
            raise StoreError(
                f"`store` {str(self.path)!r} already exists and is not empty; pass overwrite=True to "
                "replace it or resume=True to continue an interrupted recording."
            )
        if self.mode == "resume" and not exists:
            raise StoreError(f"`store` {str(self.path)!r} does not exist, so there is nothing to resume.")

    def configure(self, specs: Mapping[str, tuple[int, np.dtype]]) -> None:
        """Create (or open and validate) the store once the recorder knows its units."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: string dtypes / consolidated metadata notes
            self._configure(specs)

    def _configure(self, specs: Mapping[str, tuple[int, np.dtype]]) -> None:
        zarr = import_zarr()
        self.specs = dict(specs)
        attrs, unit_coords = self.attrs_for(self.specs)
        width = next(iter(specs.values()))[0]
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
            if self.mode == "overwrite" and self.path.exists():
                shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
            self.chunk_rows = self.chunk_rows or default_chunk_rows(row_bytes, self.n_samples)
            attrs["chunk_rows"] = int(self.chunk_rows)
            attrs["complete"] = False
            self._create(attrs, unit_coords)
            group = zarr.open_group(str(self.path), mode="r+")
            self._done = np.zeros(-(-self.n_samples // self.chunk_rows), dtype=bool)
        for name in _store_vars(specs):
            self._arrays[name] = group[name]
        self._done_array = group["chunk_done"]
        self._group = group

    def _create(self, attrs: dict, unit_coords: Mapping[str, np.ndarray]) -> None:
        zarr = import_zarr()
        coords: dict[str, Any] = {"sample": ("sample", self.sample_ids)}
        coords.update({k: ("sample", v) for k, v in self.coords.items()})
        coords["unit"] = ("unit", np.arange(attrs["n_units"], dtype=np.int64))
        coords.update({k: ("unit", v) for k, v in unit_coords.items()})
        skeleton = xr.Dataset(coords=coords, attrs=attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's note that vlen strings are an extension
            skeleton.to_zarr(str(self.path), mode="w", consolidated=False)
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
        zarr.consolidate_metadata(str(self.path))

    def _validate(self, group: Any, attrs: Mapping[str, Any]) -> None:
        stored = dict(group.attrs)
        differ = [
            f"its {key} is {_plain(stored.get(key))!r}, this recording's is {_plain(attrs.get(key))!r}"
            for key in LAYOUT_ATTRS
            if _plain(stored.get(key)) != _plain(attrs.get(key))
        ]
        if differ:
            raise StoreMismatchError(
                f"`store` {str(self.path)!r} was written by a different model or site layout: "
                + "; ".join(differ) + ". Record into a new store (or pass overwrite=True)."
            )

    # ------------------------------------------------------------------ rows
    def rows_for_ids(self, ids: np.ndarray) -> np.ndarray:
        """Store rows of the given sample ids (error if any id is not in the store)."""
        index = {int(v): i for i, v in enumerate(self.sample_ids)}
        try:
            return np.fromiter((index[int(i)] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as exc:
            raise StoreMismatchError(
                f"`sample_ids` contains {exc.args[0]}, which is not a sample of `store` {str(self.path)!r}."
            ) from None

    def set_rows(self, rows: np.ndarray) -> None:
        """Rows that the next committed batch's samples go to."""
        self._rows = np.asarray(rows, dtype=np.int64)

    def rows_done(self, rows: np.ndarray) -> bool:
        """Whether every given row lies in a chunk already on disk."""
        if self._done is None:
            return False
        return bool(self._done[np.asarray(rows) // self.chunk_rows].all())

    def reserve(self, n: int) -> dict[str, np.ndarray]:
        self._block = {k: np.empty((n, w), d) for k, (w, d) in self.specs.items()}
        return self._block

    def commit(self, n: int) -> None:
        rows = self._rows
        if rows is None or len(rows) != n:
            raise StoreError(f"internal: {n} samples committed but {0 if rows is None else len(rows)} rows set")
        block = self._block
        chunks = rows // self.chunk_rows
        for chunk in np.unique(chunks):
            if self._done[chunk]:
                continue  # already on disk from an earlier run
            sel = chunks == chunk
            start = chunk * self.chunk_rows
            length = min(self.chunk_rows, self.n_samples - start)
            stage = self._staging.get(chunk)
            if stage is None:
                stage = self._staging[chunk] = {k: np.zeros((length, w), d) for k, (w, d) in self.specs.items()}
                self._staging[chunk]["__filled__"] = np.zeros(length, bool)
            local = rows[sel] - start
            for name in self.specs:
                stage[name][local] = block[name][sel]
            stage["__filled__"][local] = True
            if stage["__filled__"].all():
                self._flush(int(chunk))
        self._rows = None
        self._block = None

    def _flush(self, chunk: int) -> None:
        stage = self._staging.pop(chunk)
        start = chunk * self.chunk_rows
        stop = start + len(stage["__filled__"])
        try:
            for name, data in stage.items():
                if name == "__filled__":
                    continue
                if name == "gate":
                    self._arrays["gate_bits"][start:stop] = pack_gates(data)
                else:
                    self._arrays[name][start:stop] = data
            self._done_array[chunk] = 1
        except OSError as exc:
            raise StoreError(
                f"writing sample chunk {chunk} (samples {start}–{stop - 1}) to `store` {str(self.path)!r} "
                f"failed: {exc}. Chunks written before it are intact; free space and call record(..., "
                "resume=True) with the same inputs to finish."
            ) from exc
        self._done[chunk] = True
        self.n_written += stop - start

    def discard_pending(self) -> None:
        """Forget the rows of partly filled chunks (nothing of them is on disk yet)."""
        self._staging.clear()

    def close(self, *, require: np.ndarray | None = None) -> None:
        """Check that every chunk this process touched is complete; mark the store complete
        when all chunks are."""
        if self._done is None:
            return
        if self._staging:
            pending = sorted(self._staging)
            raise StoreError(
                f"the inputs ended with sample chunk(s) {pending} of `store` {str(self.path)!r} only "
                "partly recorded: the inputs have fewer samples than the store expects."
            )
        done = np.asarray(self._done_array[:], dtype=bool)
        if done.all():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._group.attrs["complete"] = True
                import_zarr().consolidate_metadata(str(self.path))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


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
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise StoreError(f"`path` {str(path)!r} is not a zarr store: {exc}") from exc
    if group.attrs.get("relu_probe_store") != FORMAT_VERSION:
        raise StoreError(f"`path` {str(path)!r} is not a relu_probe gate store (no relu_probe_store attr).")
    if group.attrs.get("relu_probe_store_kind") == "monitor":
        return _load_monitor(path, group)
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
    ds = ds.isel(sample=slice(0, complete_rows)).drop_vars("chunk_done")
    return _finish(ds, attrs, n_units)


def _decode_bits(ds: xr.Dataset, n_units: int) -> xr.Dataset:
    """Replace ``gate_bits`` (…, unit_byte) uint8 by a lazily unpacked ``gate`` (…, unit) bool."""
    import dask.array as da

    if "gate_bits" not in ds:
        return ds
    var = ds["gate_bits"]
    bits = var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))
    bits = bits.rechunk({bits.ndim - 1: -1})
    gate = bits.map_blocks(
        _unpack_last, n_units, dtype=bool, chunks=(*bits.chunks[:-1], (n_units,))
    )
    dims = (*var.dims[:-1], "unit")
    if bits.ndim == 2:
        from .reduce import register_packed

        register_packed(gate, bits, n_units)
    ds = ds.drop_vars("gate_bits")
    ds["gate"] = (dims, gate)
    ds["gate"].attrs["long_name"] = "ReLU input > threshold"
    return ds


def _unpack_last(bits: np.ndarray, n_units: int) -> np.ndarray:
    flat = bits.reshape(-1, bits.shape[-1])
    return unpack_gates(flat, n_units).reshape(*bits.shape[:-1], n_units)


def complete_steps(group: Any) -> int:
    """Number of snapshots of a monitor store present in every step variable (an append killed
    midway leaves some variables one step longer)."""
    lengths = [group[name].shape[0] for name in ("step", "gate_bits", "gate_rate", "activation", "importance", "loss")
               if name in group]
    return min(lengths)


def read_layout(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """``(chunk_rows, sample_ids)`` of the record store at *path*: how its rows are chunked and
    which sample id each row holds (so that writers can take whole chunks of it)."""
    group = import_zarr().open_group(str(path), mode="r")
    return int(group.attrs["chunk_rows"]), np.asarray(group["sample"][:], dtype=np.int64)


def _load_monitor(path: Path, group: Any) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(str(path), consolidated=False, chunks={})
    attrs = dict(ds.attrs)
    ds = ds.isel(step=slice(0, complete_steps(group)))
    ds = _finish(ds, attrs, int(attrs["n_units"]))
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("relu_probe_store_kind", "every")}
    return ds


def _finish(ds: xr.Dataset, attrs: dict, n_units: int) -> xr.Dataset:
    ds = _decode_bits(ds, n_units)
    for name in ds.coords:  # coords are small: read them now, strings as objects (as recorded)
        values = ds[name]
        data = np.asarray(values.values, dtype=object) if values.dtype.kind in ("T", "U", "O") else values.values
        ds = ds.assign_coords({name: (values.dims, data)})
    for name, long_name in (("gate_rate", "fraction of positions with ReLU input > threshold"),
                            ("activation", "post-ReLU activation")):
        if name in ds:
            ds[name].attrs = {"long_name": long_name}
    ds.attrs = {k: _plain(v) for k, v in attrs.items() if k not in _INTERNAL_ATTRS}
    ordered = [v for v in ("gate", "gate_rate", "activation", "importance", "loss") if v in ds.data_vars]
    return ds[ordered]
