"""The model being recorded: which module to hook, and leaving it exactly as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..errors import InputError, describe

__all__ = ["batch_dependent_modules", "model_device", "model_float_dtype", "model_float_tensor", "preserved_modes",
           "preserved_state", "unwrap_model"]

#: Modules whose output in train mode depends on the batch (its statistics) or on chance.
_BATCH_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def batch_dependent_modules(model: nn.Module) -> list[str]:
    """Names of the modules in train mode whose output depends on the rest of the batch
    (batch norm without running statistics in use) or on chance (dropout)."""
    return [name or type(m).__name__ for name, m in model.named_modules()
            if isinstance(m, _BATCH_DEPENDENT) and m.training]


def unwrap_model(model: Any, *, argument: str = "model") -> nn.Module:
    """Return the module whose forward passes should be hooked.

    ``DataParallel`` / ``DistributedDataParallel`` wrappers are removed; a ``torch.compile``d
    module is replaced by its original module (``_orig_mod``), whose eager forward hooks see.
    TorchScript modules are refused: their compiled graph runs no Python hooks.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError(
            f"`{argument}` is a TorchScript module ({type(model).__name__}); its compiled graph runs "
            "no Python hooks, so its ReLUs cannot be recorded. Pass the eager nn.Module (or load a "
            "state_dict into it)."
        )
    if not isinstance(model, nn.Module):
        raise InputError(f"`{argument}` must be a torch.nn.Module, got {describe(model)}.")
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


@contextlib.contextmanager
def preserved_modes(model: nn.Module, *, eval_mode: bool) -> Iterator[None]:
    """Run the block (in eval mode if *eval_mode*) and give every module back its own
    ``training`` flag when it exits, whether it returns or raises."""
    training = {m: m.training for m in model.modules()}
    try:
        if eval_mode:
            model.eval()
        yield
    finally:
        for module, flag in training.items():
            module.training = flag


@contextlib.contextmanager
def preserved_state(model: nn.Module, *, eval_mode: bool) -> Iterator[None]:
    """Run the block without autograd, optionally in eval mode, and restore the model after.

    Every module's ``training`` flag and every parameter's ``requires_grad`` flag are exactly
    as before when the block exits, whether it returns or raises; outside eval mode so are
    the buffers (e.g. batch-norm running statistics, which a forward in train mode updates).
    """
    grads = {p: p.requires_grad for p in model.parameters()}
    buffers = [] if eval_mode else [
        (module, name, tensor, tensor.detach().clone())
        for module in model.modules() for name, tensor in module._buffers.items() if tensor is not None
    ]
    try:
        with preserved_modes(model, eval_mode=eval_mode), torch.no_grad():
            yield
    finally:
        for param, flag in grads.items():
            if param.requires_grad != flag:
                param.requires_grad_(flag)
        with torch.no_grad():
            for module, name, tensor, saved in buffers:
                if module._buffers.get(name) is tensor and tensor.shape == saved.shape:
                    tensor.copy_(saved)
                else:
                    module._buffers[name] = saved


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU if it has none)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def model_float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter (torch's default if it has none)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def model_float_tensor(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """*x* on the model's device; a floating *x* also in the model's float dtype (integer
    inputs such as token ids keep theirs)."""
    x = x.to(model_device(model))
    return x.to(model_float_dtype(model)) if x.is_floating_point() else x
