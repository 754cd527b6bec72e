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

__all__ = ["BatchTokens", "batch_tokens", "count_tokens", "looks_like_mask", "padding_hints", "token_rows",
           "SAMPLE_MODES"]

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


def looks_like_mask(x: Any, ids: torch.Tensor | None) -> bool:
    """Whether *x* could be a padding mask for token ids *ids*: a tensor of the same
    ``(batch, seq)`` shape, integer or bool, holding only 0 and 1 and at least one 0."""
    if ids is None or not isinstance(x, torch.Tensor) or x is ids or tuple(x.shape) != tuple(ids.shape):
        return False
    if x.is_floating_point() or x.is_complex():
        return False
    values = x.detach()
    return bool(((values == 0) | (values == 1)).all()) and bool((values == 0).any())


def padding_hints(args: tuple, kwargs: Mapping[str, Any], left_out: tuple, *, samples: str) -> list[str]:
    """Warnings for a token batch whose padding mask relu_probe cannot use (module docstring):
    a mask-like item of a tuple batch that the model is not given, or (tokens as samples) a
    mask-like keyword other than ``attention_mask``."""
    tokens = batch_tokens(args, kwargs)
    hints = []
    for k, item in enumerate(left_out, start=1):
        if looks_like_mask(item, tokens.ids):
            hints.append(
                f"item {k} of the input batches has the shape of the token ids {tuple(item.shape)} and holds only "
                "0 / 1: an attention mask? A tuple batch is read as (input, target, …): the model is called with "
                "item 0 only, so it ran without that mask and padding positions are kept. Pass dict batches "
                "({'input_ids': ids, 'attention_mask': mask}) to give the model its mask; ignore this if the item "
                "is a target."
            )
    if samples == "position" and tokens.mask is None:
        for key, value in kwargs.items():
            if key != _IDS_KEY and looks_like_mask(value, tokens.ids):
                hints.append(
                    f"the batches' {key!r} has the shape of the token ids and holds only 0 / 1, but padding is "
                    f"dropped only where {_MASK_KEY!r} is 0 (1 = real token): every position is kept as a sample. "
                    f"If {key!r} is a padding mask, pass it (1 = real token) as {_MASK_KEY!r}."
                )
    return hints


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
