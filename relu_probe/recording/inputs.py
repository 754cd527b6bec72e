"""Turn what users pass as ``inputs`` into model calls, one batch at a time.

Accepted forms:

* a ``torch.Tensor`` or ``numpy.ndarray`` of samples (split into ``batch_size`` chunks);
* a dict of per-sample tensors (e.g. ``{"input_ids": ids, "attention_mask": mask}``), split
  into ``batch_size`` chunks like a tensor: every tensor whose first dimension is the number
  of samples is split, other values go to every call unchanged; it is passed as keyword
  arguments (``model(**chunk)``), or only ``chunk[input_key]`` when ``input_key`` is given;
* a list / tuple of tensors (each one batch);
* a ``DataLoader`` or any iterable of batches, where a batch is a tensor, a tuple/list whose
  first item is the input, or a dict: ``batch[input_key]`` is the input when
  ``input_key`` is given, otherwise the dict is passed as keyword arguments
  (``model(**batch)``, the Hugging Face convention).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError, ValueInputError, describe
from .model import model_device, model_float_dtype

__all__ = ["Batch", "iter_batches", "count_batches", "samples_in", "check_sample_count", "DEFAULT_BATCH_SIZE"]

#: Batch size used to split a tensor when ``batch_size`` is not given.
DEFAULT_BATCH_SIZE = 1024


@dataclass
class Batch:
    """One model call: ``model(*args, **kwargs)`` on ``size`` samples."""

    args: tuple
    kwargs: dict
    size: int
    #: the items of a tuple / list batch after the input, which the model does not get (targets,
    #: or a mask the user meant for it): kept only to warn about the latter
    left_out: tuple = ()

    def head(self, n: int) -> Batch:
        """The same call on the first *n* samples (tensors of ``size`` rows are sliced)."""
        n = min(n, self.size)

        def cut(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.dim() and len(value) == self.size:
                return value[:n]
            return value

        return Batch(tuple(cut(v) for v in self.args), {k: cut(v) for k, v in self.kwargs.items()}, n)


def count_batches(inputs: Any, batch_size: int | None, input_key: str | None = None) -> int | None:
    """Number of batches *inputs* will yield, or ``None`` when it cannot be known."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        n = len(inputs) if inputs.ndim else 0
        size = batch_size or DEFAULT_BATCH_SIZE
        return -(-n // size)
    if isinstance(inputs, Mapping):
        n = _mapping_size(inputs, input_key)
        return None if n is None else -(-n // (batch_size or DEFAULT_BATCH_SIZE))
    try:
        return len(inputs)
    except TypeError:
        return None


def iter_batches(
    inputs: Any,
    *,
    model: nn.Module,
    batch_size: int | None = None,
    input_key: str | None = None,
) -> Iterator[Batch]:
    """Yield the :class:`Batch` calls for *inputs* (see the module docstring).

    Tensors are moved to the model's device; float numpy arrays take the model's dtype.

    Raises
    ------
    InputError
        *inputs* or one of its batches has an unsupported type.
    ValueInputError
        A tensor input has no sample dimension.
    """
    device = model_device(model)
    if isinstance(inputs, np.ndarray):
        inputs = _from_numpy(inputs, model)
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() == 0:
            raise ValueInputError(
                "`inputs` must have a leading sample dimension, got a 0-d tensor (a scalar)."
            )
        size = batch_size or DEFAULT_BATCH_SIZE
        for start in range(0, len(inputs), size):
            chunk = inputs[start : start + size]
            yield Batch((chunk.to(device),), {}, len(chunk))
        return
    if isinstance(inputs, Mapping):
        yield from _split_mapping(inputs, model=model, device=device, batch_size=batch_size, input_key=input_key)
        return
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
        raise InputError(
            "`inputs` must be a Tensor, a numpy array, a dict of tensors, a sequence of Tensors, a "
            f"DataLoader or an iterable of batches; got {describe(inputs)}."
        )
    for index, batch in enumerate(inputs):
        yield _as_batch(batch, index, model=model, device=device, input_key=input_key)


def _mapping_size(inputs: Mapping, input_key: str | None) -> int | None:
    """Samples in a dict of per-sample tensors: the first dimension of ``inputs[input_key]``,
    else of its first tensor (None when it holds no tensor)."""
    if input_key is not None and input_key in inputs:
        value = inputs[input_key]
        return len(value) if hasattr(value, "shape") and len(value.shape) else None
    first = next((v for v in inputs.values() if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim), None)
    return None if first is None else len(first)


def _split_mapping(inputs: Mapping, *, model: nn.Module, device: torch.device, batch_size: int | None,
                   input_key: str | None) -> Iterator[Batch]:
    """A dict of per-sample tensors as ``batch_size`` chunks (module docstring)."""
    if input_key is not None and input_key not in inputs:
        raise InputError(
            f"`input_key={input_key!r}` is not a key of the `inputs` dict; its keys are {sorted(map(str, inputs))}."
        )
    n = _mapping_size(inputs, input_key)
    if n is None:
        raise InputError(
            f"`inputs` is a dict without tensors (keys {sorted(map(str, inputs))}); expected per-sample "
            "tensors such as {'input_ids': ids, 'attention_mask': mask}."
        )
    values = {k: (_from_numpy(v, model) if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}
    size = batch_size or DEFAULT_BATCH_SIZE
    for start in range(0, n, size):
        chunk = {
            k: (v[start : start + size] if isinstance(v, torch.Tensor) and v.dim() and len(v) == n else v)
            for k, v in values.items()
        }
        yield _as_batch(chunk, start // size, model=model, device=device, input_key=input_key)


def _from_numpy(array: np.ndarray, model: nn.Module) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_floating_point():
        tensor = tensor.to(model_float_dtype(model))
    return tensor


def _as_batch(batch: Any, index: int, *, model: nn.Module, device: torch.device, input_key: str | None) -> Batch:
    if isinstance(batch, np.ndarray):
        batch = _from_numpy(batch, model)
    if isinstance(batch, torch.Tensor):
        return Batch((batch.to(device),), {}, _size(batch, index))
    if isinstance(batch, (tuple, list)) and batch:
        first = batch[0]
        if isinstance(first, np.ndarray):
            first = _from_numpy(first, model)
        if isinstance(first, torch.Tensor):
            return Batch((first.to(device),), {}, _size(first, index), left_out=tuple(batch[1:]))
        if isinstance(first, Mapping):
            return _as_batch(first, index, model=model, device=device, input_key=input_key)
        raise InputError(
            f"`inputs` batch {index} is a {type(batch).__name__} whose first item is "
            f"{describe(first)}; expected the input tensor as its first item."
        )
    if isinstance(batch, Mapping):
        if input_key is not None:
            if input_key not in batch:
                raise InputError(
                    f"`input_key={input_key!r}` is not a key of `inputs` batch {index}; "
                    f"its keys are {sorted(map(str, batch))}."
                )
            x = batch[input_key]
            if not isinstance(x, torch.Tensor):
                raise InputError(
                    f"`inputs` batch {index}[{input_key!r}] must be a Tensor, got {describe(x)}."
                )
            return Batch((x.to(device),), {}, _size(x, index))
        kwargs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        tensors = [v for v in kwargs.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
        if not tensors:
            raise InputError(
                f"`inputs` batch {index} is a dict without tensors (keys {sorted(map(str, batch))}); "
                "pass `input_key=` to name the input."
            )
        return Batch((), kwargs, len(tensors[0]))
    raise InputError(
        f"`inputs` batch {index} is {describe(batch)}; expected a Tensor, a tuple/list whose first "
        "item is the input Tensor, or a dict (with `input_key=` or model keyword arguments)."
    )


def _size(x: torch.Tensor, index: int) -> int:
    if x.dim() == 0:
        raise ValueInputError(f"`inputs` batch {index} is a 0-d tensor; expected a leading sample dimension.")
    return len(x)


def samples_in(inputs: Any, *, coords: Mapping[str, Sequence] | None, sample_ids: Any, n_samples: int | None) -> int | None:
    """Best guess of how many samples *inputs* hold, without iterating them."""
    if n_samples is not None:
        return int(n_samples)
    if sample_ids is not None:
        return len(sample_ids)
    if hasattr(inputs, "shape") and getattr(inputs, "ndim", 0):
        return int(inputs.shape[0])
    dataset = getattr(inputs, "dataset", None)
    if dataset is not None and hasattr(dataset, "__len__") and not getattr(inputs, "drop_last", False):
        return len(dataset)
    if isinstance(inputs, Mapping):
        return _mapping_size(inputs, None)
    if isinstance(inputs, (list, tuple)) and all(hasattr(b, "shape") for b in inputs):
        return int(sum(b.shape[0] for b in inputs))
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(b, Mapping) for b in inputs):
        sizes = [_mapping_size(b, None) for b in inputs]
        if all(s is not None for s in sizes):
            return int(sum(sizes))
    if coords:
        first = next(iter(coords.values()))
        if hasattr(first, "__len__"):
            return len(first)
    return None


def check_sample_count(n: int | None, argument_hint: str) -> int:
    """*n* from :func:`samples_in`, or a clear error when the inputs do not tell it (a store
    needs the number of samples before the first batch)."""
    if n is None:
        raise ValueInputError(
            "`store=` needs the number of samples up front, but it cannot be read off `inputs` "
            f"({argument_hint}); pass `n_samples=` (or `coords` / `sample_ids`)."
        )
    return n

