"""Load a model for the command line: a factory, its weights, TorchScript and torch.export
archives.

Only a state dict is read without the user's say-so; anything that can run code from a file
needs an explicit opt-in:

* ``MODULE:FACTORY`` (``pkg.models:build`` or ``path/to/file.py:build``) imports that module —
  running its code — and calls the factory with no arguments; it must return an
  ``nn.Module``. A dotted module is looked up on ``sys.path`` plus the current directory, which
  is on ``sys.path`` only while the module is imported.
* Weights (``--weights FILE``) are a state dict saved with ``torch.save``, read with
  ``torch.load(weights_only=True)`` — PyTorch's restricted unpickler, which builds tensors
  and plain containers only and runs no pickled code (a dict holding the state dict under
  ``"state_dict"`` / ``"model_state_dict"``, as in training checkpoints, works too). Keys must
  match the factory's model exactly.
* TorchScript (``torch.jit.save``) and ``torch.export`` (``.pt2``) archives run code from the
  file when loaded: ``torch.jit.load`` compiles and runs the archive's TorchScript (a module's
  ``__setstate__`` runs on load), and ``torch.export.load`` unpickles parts of the archive
  without ``weights_only``. They load only with ``trust_archive=True`` (the CLI's
  ``--trust-archive``); otherwise they are refused before anything in them is read:

  - a TorchScript archive as weights: its ``state_dict()`` is loaded into the factory's model
    (a scripted module runs no Python hooks, so its ReLUs cannot be recorded directly; its
    weights in the eager model can);
  - a ``torch.export`` archive as weights: its ``state_dict`` is loaded likewise;
  - a ``torch.export`` archive as the model itself (``--model FILE.pt2``):
    :func:`exported_module` turns ``ExportedProgram.module()`` into a recordable module by
    replacing each ``aten.relu`` call of its graph with an ``nn.ReLU`` submodule (named after
    the graph node, e.g. ``relu``, ``relu_1``) and each ``aten.linear`` on stored weights with
    an ``nn.Linear`` sharing them (so readout importance works). The graph runs as it was
    exported (its train/eval behaviour was fixed at export), so ``train()`` / ``eval()`` are
    made no-ops instead of raising.

  An archive is recognised from the file names in its zip directory alone, without reading them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pickle
import re
import sys
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from ..errors import InputError, ReluProbeWarning, ValueInputError, describe
from .parser import TRUST_OPTION

__all__ = ["archive_kind", "exported_module", "load_factory", "load_model", "load_weights"]

_ARCHIVE_NAMES = {"torchscript": "a TorchScript archive", "export": "a torch.export archive"}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _current_directory_importable() -> Iterator[None]:
    """Put the current directory on ``sys.path`` for the duration of the block only."""
    cwd = str(Path.cwd())
    if "" in sys.path or cwd in sys.path:
        yield
        return
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)


def load_factory(spec: str, *, option: str = "--model") -> Callable[[], Any]:
    """Import ``MODULE:FACTORY`` (a dotted module or a ``.py`` path) and return the callable.

    Importing runs the module's code. A dotted module may live in the current directory,
    which is on ``sys.path`` only while it is imported (it is not left there afterwards).
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueInputError(f"{option} must be MODULE:FACTORY (e.g. mypkg.models:build), got {spec!r}.")
    path = Path(module_name)
    try:
        if module_name.endswith(".py") or path.is_file():
            if not path.is_file():
                raise ValueInputError(f"{option}: file {module_name!r} does not exist.")
            name = f"_relu_probe_factory_{abs(hash(str(path.resolve())))}"
            spec_obj = importlib.util.spec_from_file_location(name, path)
            if spec_obj is None or spec_obj.loader is None:
                raise ValueInputError(f"{option}: cannot import {module_name!r} as a Python file.")
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[name] = module
            spec_obj.loader.exec_module(module)
        else:
            with _current_directory_importable():
                module = importlib.import_module(module_name)
    except ValueInputError:
        raise
    except Exception as exc:  # the user's module failed to import
        raise ValueInputError(
            f"{option}: cannot import {module_name!r}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueInputError(f"{option}: module {module_name!r} has no attribute {attr!r}.")
    if not callable(factory):
        raise ValueInputError(f"{option}: {spec!r} is not callable (got {describe(factory)}).")
    return factory


def archive_kind(path: str | Path) -> str:
    """``"export"`` (torch.export .pt2), ``"torchscript"``, or ``"state"`` (anything else)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "state"
    if any(n.endswith(("/archive_format", "/models/model.json")) for n in names):
        return "export"
    if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
        return "torchscript"
    return "state"


def _refuse_untrusted(path: Path, kind: str, *, option: str) -> NoReturn:
    raise ValueInputError(
        f"{option} {str(path)!r} is {_ARCHIVE_NAMES[kind]}, and loading it runs code from the file; "
        f"pass {TRUST_OPTION} to load it if you trust its source (or save a state dict with "
        "torch.save(model.state_dict(), path), which loads without running code)."
    )


def _state_from_file(path: Path, *, option: str, trust_archive: bool) -> tuple[Mapping[str, torch.Tensor], str]:
    kind = archive_kind(path)
    if kind in _ARCHIVE_NAMES and not trust_archive:
        _refuse_untrusted(path, kind, option=option)
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu").state_dict(), kind
        if kind == "export":
            return dict(torch.export.load(str(path)).state_dict), kind
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = " ".join(str(exc).split())
        if "Unsupported global" not in text:
            raise ValueInputError(
                f"{option} {str(path)!r} is not a readable PyTorch state dict, TorchScript or torch.export "
                f"archive: {type(exc).__name__}: {_one_line(exc)}"
            ) from exc
        # weights_only refused a pickled object (no code was run): say what it is
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"a pickled `{found.group(1)}`" if found else "a pickled Python object"
        raise ValueInputError(
            f"{option} {str(path)!r} holds {what}, which relu_probe does not unpickle (that could run code from "
            "the file); save the weights with torch.save(model.state_dict(), path) and pass --model to build "
            "the architecture."
        ) from None
    except Exception as exc:
        raise ValueInputError(
            f"{option} {str(path)!r} is not a readable PyTorch state dict, TorchScript or torch.export "
            f"archive: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueInputError(
            f"{option} {str(path)!r} holds {describe(obj)}, not a state dict (a mapping of parameter names "
            "to tensors); save one with torch.save(model.state_dict(), path)."
        )
    return obj, "state dict"


def load_weights(
    model: nn.Module, path: str | Path, *, option: str = "--weights", trust_archive: bool = False
) -> str:
    """Load the weights in *path* into *model* (keys must match exactly); returns the file kind.

    A state dict is read with ``torch.load(weights_only=True)``. A TorchScript or torch.export
    archive runs code from the file when loaded and is refused unless *trust_archive*.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueInputError(f"{option} {str(path)!r} does not exist.")
    state, kind = _state_from_file(path, option=option, trust_archive=trust_archive)
    own = model.state_dict()
    cast = sorted({f"{state[k].dtype} → {own[k].dtype}" for k in state
                   if k in own and state[k].dtype != own[k].dtype and own[k].is_floating_point()})
    if cast:
        warnings.warn(
            f"{option} {str(path)!r} holds tensors of another dtype than the model's ({', '.join(cast)}); they are "
            "cast to the model's dtype as they load. Integer or half-precision weights of a float model may have "
            "lost precision when they were saved: check that this checkpoint is the trained model's.",
            ReluProbeWarning, stacklevel=2,
        )
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueInputError(
            f"{option} {str(path)!r} ({kind}) does not fit the model: {_one_line(exc)}"
        ) from exc
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing keys {result.missing_keys[:6]}")
        if result.unexpected_keys:
            parts.append(f"unexpected keys {result.unexpected_keys[:6]}")
        raise ValueInputError(f"{option} {str(path)!r} ({kind}) does not fit the model: " + "; ".join(parts) + ".")
    return kind


def _fetch(module: nn.Module, target: str) -> Any:
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _free_name(module: nn.Module, base: str) -> str:
    name, i = base, 0
    while hasattr(module, name):
        i += 1
        name = f"{base}_{i}"
    return name


def exported_module(program: Any) -> tuple[nn.Module, int | None]:
    """A recordable module from a ``torch.export.ExportedProgram`` (module docstring).

    Returns ``(module, batch)``: ``batch`` is the batch size the program was exported with
    when it is static (the inputs must then come in batches of exactly that size), else None.
    """
    gm = program.module()
    graph = gm.graph
    relus = {torch.ops.aten.relu.default: False, torch.ops.aten.relu_.default: True}
    linear = torch.ops.aten.linear.default
    batch = None
    for node in list(graph.nodes):
        if node.op == "placeholder" and batch is None:
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is not None and len(shape) and isinstance(shape[0], int):
                batch = int(shape[0])
        if node.op != "call_function":
            continue
        if node.target in relus:
            name = _free_name(gm, node.name)
            gm.add_submodule(name, nn.ReLU(inplace=relus[node.target]))
            node.op, node.target, node.args, node.kwargs = "call_module", name, (node.args[0],), {}
        elif node.target is linear and len(node.args) >= 2:
            x, w = node.args[0], node.args[1]
            b = node.args[2] if len(node.args) > 2 else None
            if getattr(w, "op", None) != "get_attr" or (b is not None and getattr(b, "op", None) != "get_attr"):
                continue
            weight = _fetch(gm, w.target)
            bias = _fetch(gm, b.target) if b is not None else None
            if not isinstance(weight, nn.Parameter) or (bias is not None and not isinstance(bias, nn.Parameter)):
                continue
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
            layer.weight = weight
            if bias is not None:
                layer.bias = bias
            name = _free_name(gm, node.name)
            gm.add_submodule(name, layer)
            node.op, node.target, node.args, node.kwargs = "call_module", name, (x,), {}
    graph.eliminate_dead_code()
    graph.lint()
    gm.recompile()

    def _keep(self: nn.Module, mode: bool = True) -> nn.Module:
        return self

    gm.train = types.MethodType(_keep, gm)  # type: ignore[method-assign]
    gm.eval = types.MethodType(lambda self: self, gm)  # type: ignore[method-assign]
    return gm, batch


def load_model(
    model_spec: str, weights: str | None = None, *, trust_archive: bool = False
) -> tuple[nn.Module, dict[str, Any], str]:
    """The model named on the command line: ``(module, notes, description)``.

    ``notes`` holds ``batch`` (a static export batch size, or None). A factory's module is
    imported (its code runs); a torch.export archive as the model, or an archive as weights,
    is loaded only with *trust_archive* (loading runs code from the file).
    """
    path = Path(model_spec)
    if path.is_file():
        kind = archive_kind(path)
        if weights is not None:
            raise ValueInputError("--weights applies to --model MODULE:FACTORY; an archive already holds its weights.")
        if kind == "export":
            if not trust_archive:
                _refuse_untrusted(path, kind, option="--model")
            try:
                program = torch.export.load(str(path))
            except Exception as exc:
                raise ValueInputError(
                    f"--model {str(path)!r} is not a readable torch.export archive: {type(exc).__name__}: "
                    f"{_one_line(exc)}"
                ) from exc
            module, batch = exported_module(program)
            return module, {"batch": batch}, f"torch.export archive {path.name}"
        if kind == "torchscript":
            raise ValueInputError(
                f"--model {str(path)!r} is a TorchScript archive, whose compiled graph runs no Python hooks; "
                f"pass --model MODULE:FACTORY (the eager model) with --weights {str(path)!r} {TRUST_OPTION} "
                "to record it with the archive's weights (loading the archive runs code from it)."
            )
        raise ValueInputError(
            f"--model {str(path)!r} is a file but not a torch.export archive; pass --model MODULE:FACTORY "
            "and give weights with --weights."
        )
    factory = load_factory(model_spec)
    try:
        model = factory()
    except Exception as exc:
        raise ValueInputError(
            f"--model {model_spec!r}: the factory raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise InputError(f"--model {model_spec!r} must return a torch.nn.Module, got {describe(model)}.")
    description = f"{type(model).__name__} from {model_spec}"
    if weights is not None:
        kind = load_weights(model, weights, trust_archive=trust_archive)
        description += f" with weights from {Path(weights).name} ({kind})"
    return model, {"batch": None}, description
