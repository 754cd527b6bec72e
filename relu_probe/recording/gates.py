"""Turning one site's ReLU input into the rows and columns of a recording.

A site call gives a tensor ``x`` of shape ``(B, *shape)`` (after
:func:`site_view` undoes a flattened ``(B · seq, C)`` layout). Its gates ``x > threshold`` go
into the sink's ``(rows, units)`` block in one of three ways:

* ``samples="input"``, element units: row ``b``, unit ``n`` = element ``n`` of
  ``x[b].flatten()`` (the tensor's own order, so the compare writes straight into the block
  with no transpose; :class:`relu_probe.recording.sites.SiteLayout`);
* ``samples="input"``, channel units (``gate_rate``): the fraction of a channel's positions
  that are on, ``r[b, c] = |{p : x[b, c, p] > t}| / P`` — over the real positions only when
  the call's ``attention_mask`` covers the site's positions;
* ``samples="position"``: row = one kept (input, position) pair
  (:func:`relu_probe.recording.tokens.token_rows`), unit = channel:
  ``g[(b, p), c] = x[b, p, c] > t`` (channel-first conv sites are compared in memory order,
  then the bool gates transposed).

CPU float tensors are compared by ``numpy.greater`` straight into the block (or into a
scratch buffer reused across passes): several times faster than ``torch.gt`` plus a copy.
Every function also takes gates already computed (a bool array, from the discovery pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ValueInputError
from .sites import SiteLayout
from .tokens import BatchTokens

__all__ = ["PassRows", "Scratch", "site_view", "same_units", "write_gates", "write_values", "compare"]

_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


@dataclass
class PassRows:
    """How one forward pass maps to rows: *inputs* inputs; with ``samples="position"`` also
    the site's *positions* per input and the flat indices *keep* of the kept (input,
    position) pairs (None: all); *mask* ``(inputs, positions)`` bool, the real positions
    for channel-unit rates (None: all)."""

    inputs: int
    positions: int | None = None
    keep: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        if self.positions is None:
            return self.inputs
        return self.inputs * self.positions if self.keep is None else len(self.keep)


class Scratch:
    """Reusable buffers by shape (a pass's compare goes to the same memory every time); the
    *limit* most recently used shapes are kept (calls of varying sequence length)."""

    def __init__(self, limit: int = 16) -> None:
        self.limit = limit
        self._buffers: dict[tuple, np.ndarray] = {}

    def get(self, shape: tuple[int, ...], dtype: type = bool) -> np.ndarray:
        key = (tuple(int(s) for s in shape), np.dtype(dtype).str)
        buffer = self._buffers.pop(key, None)
        if buffer is None:
            buffer = np.empty(key[0], dtype)
            if len(self._buffers) >= self.limit:
                self._buffers.pop(next(iter(self._buffers)))
        self._buffers[key] = buffer  # most recently used last
        return buffer


def site_view(x: torch.Tensor, layout: SiteLayout, tokens: BatchTokens | None, site: str) -> torch.Tensor:
    """*x* as ``(B, *shape)``: a flattened ``(B · seq, C)`` site is viewed as ``(B, seq, C)``
    with ``B`` the call's batch size (the sequence length may differ between calls)."""
    if not layout.flattened:
        return x
    batch = None if tokens is None else tokens.size
    if batch is None or x.dim() != 2 or x.shape[0] % batch:
        raise ValueInputError(
            f"site {site!r} reads (batch · seq, features) rows (detected in the first batch), but this "
            f"call's ReLU input has shape {tuple(x.shape)} for a batch of {batch}; every call must "
            "carry its input_ids / attention_mask and flatten its tokens the same way."
        )
    return x.reshape(batch, x.shape[0] // batch, x.shape[1])


def same_units(layout: SiteLayout, shape: tuple[int, ...], units: str, samples: str) -> bool:
    """Whether a per-sample *shape* maps to the units of the site's first-pass *layout*:
    element units need the same shape; channel units and token samples the same channels."""
    if (units == "channel" or samples == "position") and layout.channel_dim is not None \
            and len(shape) == len(layout.shape):
        return SiteLayout(shape, layout.channel_dim).n_channels == layout.n_channels
    return shape == layout.shape


def compare(src: torch.Tensor | np.ndarray, threshold: float, out: np.ndarray) -> None:
    """``out[...] = src > threshold`` (*src* a tensor, or bool gates already computed)."""
    if isinstance(src, np.ndarray):
        out[...] = src
    elif src.device.type == "cpu" and src.dtype in _NUMPY_FLOATS:
        np.greater(src.numpy(), threshold, out=out)
    else:
        out[...] = (src > threshold).cpu().numpy()


def _values(src: torch.Tensor | np.ndarray) -> np.ndarray:
    """Post-activation values as a float32 array (a view where possible)."""
    if isinstance(src, np.ndarray):
        return src
    if src.device.type == "cpu" and src.dtype == torch.float32:
        return src.numpy()
    return src.to("cpu", torch.float32).numpy()


def _shaped(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A view of the block slice *out* with *shape* (never a copy: writes must land in the block)."""
    view = out.view()
    view.shape = shape
    return view


def _positions_last(layout: SiteLayout, batch: int) -> tuple[tuple[int, int, int], int]:
    """``(B, C, P)`` or ``(B, P, C)`` shape of a site's tensor and its positions axis."""
    c, p = layout.n_channels, layout_positions(layout)
    if layout.channel_dim == 1:
        return (batch, c, p), 2
    return (batch, p, c), 1


def layout_positions(layout: SiteLayout) -> int:
    """Positions per input of *layout* (1 for dense sites)."""
    return 1 if layout.channel_dim is None else layout.n_positions


def _pass_layout(layout: SiteLayout, src: torch.Tensor | np.ndarray) -> SiteLayout:
    """The layout of this call's tensor (its positions may differ from the first call's)."""
    shape = tuple(src.shape[1:])
    return layout if shape == layout.shape else SiteLayout(shape, layout.channel_dim, layout.flattened)


def write_gates(src: torch.Tensor | np.ndarray, layout: SiteLayout, *, units: str, samples: str,
                threshold: float, rows: PassRows, out: np.ndarray, scratch: Scratch) -> None:
    """Write one site's gates into *out*, its ``(rows, units)`` slice of the block (module
    docstring); *src* is ``(B, *shape)`` (:func:`site_view`)."""
    if samples == "input" and (units != "channel" or layout.channel_dim is None):  # the common case first
        compare(src, threshold, _shaped(out, tuple(src.shape)))
        return
    batch = src.shape[0]
    here = _pass_layout(layout, src)
    if samples == "position":
        _token_gates(src, here, threshold, rows, out, scratch)
        return
    shape, axis = _positions_last(here, batch)  # channel units of a site with positions
    on = scratch.get(tuple(src.shape))
    compare(src, threshold, on)
    on = on.reshape(shape)
    if rows.mask is not None:
        np.logical_and(on, rows.mask[:, None, :] if axis == 2 else rows.mask[:, :, None], out=on)
        out[...] = _count(on, axis) / rows.mask.sum(1)[:, None]
    else:
        out[...] = _count(on, axis) / shape[axis]


def _count(on: np.ndarray, axis: int) -> np.ndarray:
    """Gates on along *axis*: a sum of the bools as bytes into uint16 (2× faster than
    ``count_nonzero`` along an axis; exact up to 65535 positions, int64 beyond)."""
    dtype = np.uint16 if on.shape[axis] <= np.iinfo(np.uint16).max else np.int64
    return on.view(np.uint8).sum(axis, dtype=dtype)


def _token_gates(src: torch.Tensor | np.ndarray, layout: SiteLayout, threshold: float, rows: PassRows,
                 out: np.ndarray, scratch: Scratch) -> None:
    batch, c, p = src.shape[0], layout.n_channels, layout.n_positions
    if layout.channel_dim == 1:  # (B, C, *positions): compare in memory order, transpose the bools
        on = scratch.get((batch, c, p))
        compare(src.reshape(batch, c, p), threshold, on)
        tokens = on.transpose(0, 2, 1)
        if rows.keep is None:
            _shaped(out, (batch, p, c))[...] = tokens
        else:
            np.take(tokens.reshape(batch * p, c), rows.keep, axis=0, out=out)
        return
    flat = src.reshape(batch * p, c)
    if rows.keep is None:
        compare(flat, threshold, out)
    else:
        on = scratch.get((batch * p, c))
        compare(flat, threshold, on)
        np.take(on, rows.keep, axis=0, out=out)


def write_values(src: torch.Tensor | np.ndarray, layout: SiteLayout, *, units: str, samples: str,
                 rows: PassRows, out: np.ndarray) -> None:
    """Write one site's post-activation values into *out* like :func:`write_gates` (channel
    units: the mean over the (real) positions)."""
    batch = src.shape[0]
    here = _pass_layout(layout, src)
    values = _values(src)
    if samples == "position":
        c, p = here.n_channels, here.n_positions
        if here.channel_dim == 1:
            values = values.reshape(batch, c, p).transpose(0, 2, 1)
        values = values.reshape(batch * p, c)
        out[...] = values if rows.keep is None else values[rows.keep]
        return
    if units == "channel" and layout.channel_dim is not None:
        shape, axis = _positions_last(here, batch)
        values = values.reshape(shape)
        if rows.mask is not None:
            weights = rows.mask[:, None, :] if axis == 2 else rows.mask[:, :, None]
            out[...] = (values * weights).sum(axis) / rows.mask.sum(1)[:, None]
        else:
            out[...] = values.mean(axis)
        return
    _shaped(out, tuple(src.shape))[...] = values
