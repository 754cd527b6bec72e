"""What a model call says about its token positions: sequence length, padding, token ids.

Used for two things:

* **tokens as samples** (``rp.record(..., samples="position")``): every (input, position) of a
  sequence or conv site becomes one sample. Padding is dropped using the call's
  ``attention_mask`` (Hugging Face convention: 1 on real tokens, 0 on padding), and the
  token ids (``input_ids``) become the ``token`` coord;
* **flattened layouts**: some models (OPT, many decoders) reshape hidden states to
  ``(batch · seq, d)`` before their feed-forward, so the ReLU's first dimension is not the
  batch. A 2-D site input whose first dimension is ``batch × seq`` of a call that carries
  token ids or an attention mask is read as ``(batch, seq, d)``, rows in batch-major order
  (``row = b · seq + s``, as ``Tensor.reshape`` / ``view`` produce them).

A call *carries tokens* when it has an ``input_ids`` or ``attention_mask`` keyword tensor of
shape ``(batch, seq)``, or when its first positional argument is a 2-D integer tensor (token
ids passed positionally, ``model(ids)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ValueInputError

__all__ = ["BatchTokens", "batch_tokens", "count_tokens", "token_rows", "SAMPLE_MODES"]

#: Values of ``samples=``: one sample per input (default) or one per (input, position).
SAMPLE_MODES = ("input", "position")

_MASK_KEY = "attention_mask"
_IDS_KEY = "input_ids"


@dataclass(frozen=True)
class BatchTokens:
    """The token facts of one model call.

    Attributes
    ----------
    size : int or None
        Inputs in the call (the first dimension of its first tensor argument).
    length : int or None
        Sequence length, when the call carries tokens (module docstring).
    mask : torch.Tensor or None
        The call's ``attention_mask`` as passed (any dtype; nonzero = real token).
    ids : torch.Tensor or None
        Token ids ``(size, length)``.
    """

    size: int | None
    length: int | None
    mask: torch.Tensor | None
    ids: torch.Tensor | None

    def mask_array(self) -> np.ndarray | None:
        """The attention mask as ``(size, length)`` bool (True = real token), or None.

        Raises
        ------
        ValueInputError
            The mask is not ``(batch, seq)``.
        """
        if self.mask is None:
            return None
        if self.mask.dim() != 2:
            raise ValueInputError(
                f"`attention_mask` must be (batch, seq) to drop padding from the samples, got shape "
                f"{tuple(self.mask.shape)}; pass a 2-D mask (1 = real token, 0 = padding)."
            )
        return self.mask.detach().cpu().numpy() != 0

    def ids_array(self) -> np.ndarray | None:
        """Token ids ``(size, length)`` as int64, or None."""
        return None if self.ids is None else self.ids.detach().cpu().numpy().astype(np.int64, copy=False)


def _first_tensor(values: Iterable[Any]) -> torch.Tensor | None:
    return next((v for v in values if isinstance(v, torch.Tensor) and v.dim() > 0), None)


def _is_token_ids(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() == 2 and not x.is_floating_point() and not x.is_complex() \
        and x.dtype != torch.bool


def batch_tokens(args: tuple, kwargs: Mapping[str, Any] | None) -> BatchTokens:
    """The :class:`BatchTokens` of a call ``model(*args, **kwargs)``."""
    kwargs = kwargs or {}
    first = _first_tensor(args)
    if first is None:
        first = _first_tensor(kwargs.values())
    mask = kwargs.get(_MASK_KEY)
    mask = mask if isinstance(mask, torch.Tensor) and mask.dim() > 0 else None
    ids = kwargs.get(_IDS_KEY)
    if not _is_token_ids(ids):
        ids = args[0] if args and _is_token_ids(args[0]) else None
    length = None
    if ids is not None:
        length = int(ids.shape[1])
    elif mask is not None and mask.dim() == 2:
        length = int(mask.shape[1])
    return BatchTokens(None if first is None else int(first.shape[0]), length, mask, ids)


def token_rows(n_inputs: int, n_positions: int, mask: np.ndarray | None) -> np.ndarray:
    """Flat indices ``b · n_positions + p`` of the (input, position) pairs kept as samples:
    all of them, or those where *mask* ``(n_inputs, n_positions)`` is True; inputs in order,
    positions ascending."""
    if mask is None:
        return np.arange(n_inputs * n_positions, dtype=np.int64)
    return np.flatnonzero(mask.reshape(-1)).astype(np.int64)


def count_tokens(batches: Iterable[Any]) -> int | None:
    """Samples a ``samples="position"`` recording of in-memory dict *batches* will have, when
    the sites' positions are the batches' sequence positions: per batch the real tokens of
    its 2-D ``attention_mask``, else ``batch × seq`` of its ``input_ids``. None when a batch
    has neither."""
    total = 0
    for batch in batches:
        if not isinstance(batch, Mapping):
            return None
        mask, ids = batch.get(_MASK_KEY), batch.get(_IDS_KEY)
        if hasattr(mask, "shape") and len(mask.shape) == 2:
            array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
            total += int(np.count_nonzero(array))
        elif hasattr(ids, "shape") and len(ids.shape) == 2:
            total += int(ids.shape[0]) * int(ids.shape[1])
        else:
            return None
    return total
