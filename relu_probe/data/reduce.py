"""Grouped sums over samples that run chunk by chunk on dask-backed recordings.

Every pathway statistic reduces the (sample × unit) gates or activations to per-condition
sums. :func:`grouped_sum` does that reduction one sample chunk at a time (a dask
``blockwise`` map followed by a tree-summed reduction), so memory is bounded by the chunk
size, not by the number of samples; in-memory arrays take the same kernel in one call.

Kernels: gates loaded from a store are counted straight from their packed bits (SWAR,
:func:`relu_probe.data.bitcount.group_bit_counts`), each stored chunk read, decoded and
counted in one task where the dask chunks are the stored ones
(:class:`relu_probe.data.packed_chunks.PackedChunks`); other boolean gates are summed as
uint8 over runs of at most 255 rows (no overflow, 8× less memory traffic than widening
first) and accumulated in int64; floats go through a one-hot matrix product in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from .bitcount import choose_kernel, group_bit_counts
from .packed_chunks import PackedChunks

__all__ = ["grouped_sum", "group_codes", "register_packed", "packed_gate", "packed_unit_range"]

_RUN = 255  # rows a uint8 accumulator can sum without overflow


class _Packed(NamedTuple):
    """What a registered unpacked ``gate`` array reads: packed *bits* ``(sample, byte)`` of
    *n_units* units and, when they are a stored zarr array's chunks as stored, a reader of
    those chunks (*stored*) with the first byte column of *bits* in them."""

    bits: object
    n_units: int
    stored: PackedChunks | None = None
    first_byte: int = 0


#: dask name of an unpacked ``gate`` array -> what it unpacks; filled by :func:`relu_probe.load`
#: so reductions can read the packed bits directly (1/8 of the bytes).
_PACKED: dict[str, _Packed] = {}


def register_packed(gate: object, bits: object, n_units: int, stored: PackedChunks | None = None,
                    first_byte: int = 0) -> None:
    """Remember that dask array *gate* (sample, unit) bool unpacks *bits* (sample, byte).

    Reductions on exactly that array (not a slice of it) then run on the packed bits; given
    *stored* (the reader of the zarr array whose chunks *bits* are, from byte column
    *first_byte*), they read and count each stored chunk in one task.
    """
    if len(_PACKED) > 64:  # a small bounded registry: forget the oldest
        _PACKED.pop(next(iter(_PACKED)))
    _PACKED[gate.name] = _Packed(bits, int(n_units), stored, int(first_byte))


def packed_gate(bits: object, n_units: int, stored: PackedChunks | None = None, first_byte: int = 0) -> object:
    """The lazily unpacked bool gates ``(sample, unit)`` of dask packed *bits* ``(sample, byte)``
    (``numpy.packbits(..., bitorder="little")`` along units), registered so that reductions
    on it read *bits* (:func:`register_packed`; *stored* and *first_byte* as there)."""
    bits = bits.rechunk({1: -1})
    gate = bits.map_blocks(_unpack, n_units, dtype=bool, chunks=(bits.chunks[0], (n_units,)))
    register_packed(gate, bits, n_units, stored, first_byte)
    return gate


def _unpack(bits: np.ndarray, n_units: int) -> np.ndarray:
    return np.unpackbits(bits, axis=1, count=n_units, bitorder="little").view(bool)


def packed_unit_range(gate: object, start: int, stop: int) -> object | None:
    """Units ``start … stop - 1`` of a registered packed *gate*, itself packed and registered
    (so per-site reductions of a loaded store still read packed bits), or None when *gate* is
    not registered or the range does not start on a byte (``start % 8``) and end on one or at
    the last unit."""
    name = getattr(gate, "name", None)
    source = _PACKED.get(name)
    if source is None:
        return None
    bits, n_units, stored, first_byte = source
    if start % 8 or not 0 <= start < stop <= n_units or (stop % 8 and stop != n_units):
        return None
    return packed_gate(bits[:, start // 8 : -(-stop // 8)], stop - start, stored, first_byte + start // 8)


def _packed_partial(bits: np.ndarray, codes: np.ndarray, n_groups: int, n_units: int, count_dtype: type,
                    kernel: str) -> np.ndarray:
    """One chunk's per-group counts straight from its packed gates (:mod:`relu_probe.data.bitcount`)."""
    return group_bit_counts(bits, codes, n_groups, n_units, dtype=count_dtype, kernel=kernel)[None]


def _stored_partial(codes: np.ndarray, stored: PackedChunks, first_byte: int, n_groups: int, n_units: int,
                    count_dtype: type, kernel: str, block_id: tuple[int, ...]) -> np.ndarray:
    """Stored chunk ``block_id[0]``'s per-group counts: read, decoded and counted in one task,
    on one thread (:mod:`relu_probe.data.packed_chunks`)."""
    bits = stored.read(block_id[0], len(codes))[:, first_byte : first_byte + -(-n_units // 8)]
    return _packed_partial(bits, codes, n_groups, n_units, count_dtype, kernel)


def _count_dtype(max_rows: int) -> type:
    """The narrowest type that holds a count of *max_rows* rows (the sum tree then reads less)."""
    if max_rows <= np.iinfo(np.uint8).max:
        return np.uint8
    return np.uint16 if max_rows <= np.iinfo(np.uint16).max else np.int64


def _max_group_rows(codes: np.ndarray, chunks: Sequence[int], n_groups: int) -> int:
    """The most rows any one group has inside any one sample chunk (what a chunk's count can reach)."""
    chunk_of_row = np.repeat(np.arange(len(chunks)), chunks)
    return int(np.bincount(chunk_of_row * n_groups + codes, minlength=len(chunks) * n_groups).max(initial=0))


def group_codes(ds_or_var: xr.Dataset | xr.DataArray, by: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Integer code per sample of its combination of the *by* coords, and each coord's sorted levels.

    The code of a sample with level indices ``(i_1, …, i_n)`` is
    ``numpy.ravel_multi_index((i_1, …, i_n), (n_1, …, n_n))``; with no *by* every sample is
    in the one group 0.
    """
    if not by:
        return np.zeros(ds_or_var.sizes["sample"], dtype=np.int64), []
    codes, levels = [], []
    for name in by:
        values = np.asarray(ds_or_var[name].values)
        code, uniques = pd.factorize(values, sort=True)
        codes.append(code)
        levels.append(np.asarray(uniques))
    shape = tuple(len(level) for level in levels)
    return np.ravel_multi_index(codes, shape), levels


def _bool_sums(block: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros((n_groups, block.shape[1]), dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_block = block[order].view(np.uint8)
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    for g in range(n_groups):
        lo, hi = bounds[g], bounds[g + 1]
        for start in range(lo, hi, _RUN):
            out[g] += np.add.reduce(sorted_block[start : min(start + _RUN, hi)], axis=0, dtype=np.uint8)
    return out


def _float_sums(block: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    onehot = np.zeros((n_groups, block.shape[0]))
    onehot[codes, np.arange(block.shape[0])] = 1.0
    return onehot @ block.astype(np.float64, copy=False)


def _sums(block: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    if block.dtype == bool:
        return _bool_sums(block, codes, n_groups)
    return _float_sums(block, codes, n_groups)


def _partial(block: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    return _sums(block, codes, n_groups)[None]


def _keep(block: np.ndarray, axis: tuple, keepdims: bool) -> np.ndarray:
    return block


def _add_parts(parts: list, axis: tuple, keepdims: bool) -> np.ndarray:
    """Sum a (nested) list of ``(1, …)`` partials into a new array, adding in place after the
    first: no concatenation, so each partial is read once. Integer partials are summed in
    int64 (exact for any count)."""
    stack = [parts]
    items = []
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            items.append(item)
    dtype = np.float64 if any(i.dtype.kind == "f" for i in items) else np.int64
    if dtype == np.int64 and all(i.dtype in (np.uint8, np.uint16) for i in items) and len(items) <= 65537:
        dtype = np.uint32  # holds the sum of up to 65537 uint8 / uint16 partials, in half the bytes
    total = np.array(items[0], dtype=dtype)
    for item in items[1:]:
        np.add(total, item, out=total)
    total = total.astype(np.int64) if dtype == np.uint32 else total
    return total if keepdims else total[0]


def _sum_partials(partial):
    """Sum dask partials ``(chunk, …)`` over their first axis, 16 at a time."""
    import dask.array as da

    dtype = np.int64 if partial.dtype.kind in "iub" else np.float64
    return da.reduction(partial, _keep, _add_parts, combine=_add_parts, axis=0, concatenate=False,
                        split_every=16, dtype=dtype, meta=np.empty((0,) * (partial.ndim - 1), dtype=dtype))


def grouped_sum(var: xr.DataArray, by: Sequence[str]) -> tuple[xr.DataArray, xr.DataArray]:
    r"""Sum *var* (sample, unit) over the samples of every combination of the *by* coords.

    .. math:: S[u, b_1, …, b_n] = \sum_{x:\, by(x) = (b_1, …, b_n)} v_u(x), \qquad
              N[b_1, …, b_n] = |\{x : by(x) = (b_1, …, b_n)\}|

    With ``by=[]`` it is the sum over all samples (dims ``("unit",)``), chunk by chunk like
    the grouped sums (so :meth:`relu_probe.data.access.Recording.mean_activity` reads a loaded
    store's packed bits, never a float copy of the gates).

    Returns
    -------
    sums : xarray.DataArray
        Dims ``("unit", *by)`` (int64 for bool gates, float64 otherwise), with *var*'s unit
        coords.
    counts : xarray.DataArray
        Dims ``by``: samples per combination (0 where a combination never occurs).
    """
    by = list(by)
    codes, levels = group_codes(var, by)
    shape = tuple(len(level) for level in levels)
    n_groups = int(np.prod(shape))
    data = (var if var.dims == ("sample", "unit") else var.transpose("sample", "unit")).data
    counts = np.bincount(codes, minlength=n_groups).reshape(shape)
    packed = _PACKED.get(getattr(data, "name", None))
    if packed is not None and packed[0].shape[0] == data.shape[0] and packed[1] == data.shape[1]:
        import dask.array as da

        bits, n_units, stored, first_byte = packed
        dtype = _count_dtype(_max_group_rows(codes, bits.chunks[0], n_groups))
        options = dict(n_groups=n_groups, n_units=n_units, count_dtype=dtype, kernel=choose_kernel(bits.nbytes))
        code_array = da.from_array(codes, chunks=(bits.chunks[0],))
        if stored is not None and stored.aligned(bits.chunks[0]):
            partial = code_array.map_blocks(
                _stored_partial, stored, first_byte, **options, dtype=dtype, new_axis=[1, 2],
                chunks=((1,) * len(bits.chunks[0]), (n_groups,), (n_units,)),
                meta=np.empty((0, 0, 0), dtype=dtype),
            )
        else:
            partial = da.blockwise(
                _packed_partial, "sgu", bits, "su", code_array, "s", **options, dtype=dtype,
                new_axes={"g": n_groups}, adjust_chunks={"s": 1, "u": n_units}, concatenate=True,
            )
        sums = _sum_partials(partial).compute()
    elif hasattr(data, "dask"):
        import dask.array as da

        code_array = da.from_array(codes, chunks=(data.chunks[0],))
        out_dtype = np.int64 if data.dtype == bool else np.float64
        partial = da.blockwise(
            _partial, "sgu", data, "su", code_array, "s",
            n_groups=n_groups, new_axes={"g": n_groups}, adjust_chunks={"s": 1}, dtype=out_dtype,
        )
        sums = partial.sum(axis=0).compute()
    else:
        sums = _sums(np.asarray(data), codes, n_groups)
    levels_coords = {name: level for name, level in zip(by, levels)}
    summed = xr.DataArray(sums.T.reshape(var.sizes["unit"], *shape), dims=("unit", *by), coords=levels_coords)
    # share the unit coords' variables (no deep copy of large object arrays such as ``site``)
    summed = summed.assign_coords({k: v.variable for k, v in var.coords.items() if v.dims == ("unit",)})
    counted = xr.DataArray(counts, dims=tuple(by), coords={name: level for name, level in zip(by, levels)})
    return summed, counted
