"""Recording sites: what they are, how they are named, and how users select them.

A *site* is one call of one ReLU during a forward pass:

* an ``nn.ReLU`` / ``nn.LeakyReLU`` module (or an opt-in activation type) is named by its
  module path, e.g. ``"encoder.1"``; a module called ``n > 1`` times per forward gives
  ``n`` sites ``"path#0" … "path#{n-1}"``;
* a functional ReLU (``F.relu``, ``torch.relu``, ``Tensor.relu_`` …) is named by the module
  whose forward called it plus a per-call ordinal: ``"block::relu#0"``,
  ``"block::leaky_relu#1"``; at the model's own forward the owner is empty
  (``"::relu#0"``); a reused owner carries its call index (``"block#1::relu#0"``).

Selection (:func:`select_sites`) accepts exact names, globs (``"layer*.relu"``), module
types (``nn.ReLU``) and predicates on :class:`Site`, alone or in a list.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
from torch import nn

from ..errors import InputError, NoSitesError, SiteNotFoundError, describe

__all__ = ["Site", "SiteLayout", "SiteSelector", "DEFAULT_ACTIVATIONS", "activation_types", "select_sites", "site_name"]

#: Module types recorded by default: their gate is ``input > 0``.
DEFAULT_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU)

SiteSelector = Union[str, type, Callable[["Site"], bool], Sequence[Union[str, type, Callable[["Site"], bool]]], None]


@dataclass(frozen=True)
class Site:
    """One recording site.

    Attributes
    ----------
    name : str
        The site's public name (see the module docstring).
    kind : {"module", "functional"}
    module_path : str
        For module sites the ReLU module's path; for functional sites the owner's path.
    module : torch.nn.Module
        The ReLU module (module sites) or the owner module (functional sites).
    function : str
        ``"relu"``/``"leaky_relu"`` for functional sites, the module class name otherwise.
    call : int
        Index of this call among the module's (or owner's) calls in one forward pass.
    """

    name: str
    kind: str
    module_path: str
    module: nn.Module = field(repr=False, compare=False)
    function: str
    call: int = 0


@dataclass
class SiteLayout:
    """How a site's input tensor maps to units.

    ``shape`` is the per-sample shape (batch dim removed). Dense sites have
    ``shape == (C,)``; conv/sequence sites have a channel axis (``channel_dim`` in the full
    tensor: 1 = channel-first, -1 = channel-last) and positions over the other axes.
    ``flattened`` marks a sequence site whose tensor arrives as ``(batch · seq, C)`` (OPT's
    feed-forward): its ``shape`` is the unflattened ``(seq, C)``
    (:mod:`relu_probe.recording.tokens`).

    Element units are numbered in the per-sample tensor's own (row-major) order: neuron
    ``n`` is element ``n`` of ``x[b].flatten()``, so a conv site ``(C, H, W)`` is
    channel-major and a sequence site ``(seq, C)`` position-major (gates are then written
    without a transpose); the ``channel`` and ``position`` coords name each unit.
    """

    shape: tuple[int, ...]
    channel_dim: int | None  # None for dense (2-D) sites
    flattened: bool = False

    @property
    def n_channels(self) -> int:
        if self.channel_dim is None:
            return self.shape[0]
        return self.shape[0] if self.channel_dim == 1 else self.shape[-1]

    @property
    def n_positions(self) -> int:
        return int(np.prod(self.shape)) // self.n_channels

    def n_units(self, units: str) -> int:
        return self.n_channels if units == "channel" else self.n_channels * self.n_positions

    @property
    def kind(self) -> str:
        if self.channel_dim is None:
            return "dense"
        return "conv" if self.channel_dim == 1 else "sequence"


def site_name(kind: str, path: str, call: int, n_calls: int, function: str = "", ordinal: int = 0,
              owner_calls: int = 1) -> str:
    """Build a site's public name from its raw key (see the module docstring)."""
    if kind == "module":
        base = path or "<root>"
        return base if n_calls == 1 else f"{base}#{call}"
    owner = path if owner_calls == 1 else f"{path}#{call}"
    return f"{owner}::{function}#{ordinal}"


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def select_sites(sites: Sequence[Site], selector: SiteSelector) -> list[Site]:
    """Return the subset of *sites* picked by *selector*, in the original order.

    Parameters
    ----------
    sites : sequence of Site
        All sites found in the forward pass, in first-call order.
    selector : str, type, callable, sequence of those, or None
        ``None`` selects every site. A ``str`` without glob characters must be an exact
        site name (or a module path whose calls are ``path#k``); a glob selects every
        matching name; a module type selects the module sites of that type (and the
        functional sites whose function name matches ``type.__name__.lower()``); a callable
        receives a :class:`Site` and returns ``bool``.

    Raises
    ------
    SiteNotFoundError
        An exact name matches no site; the message lists the closest names.
    NoSitesError
        The selection matched nothing.
    """
    if selector is None:
        return list(sites)
    items = list(selector) if isinstance(selector, (list, tuple, set, frozenset)) else [selector]
    if not items:
        raise NoSitesError("`sites` is an empty selection; pass None to record every site.")
    names = [s.name for s in sites]
    chosen: set[str] = set()
    for item in items:
        chosen.update(_match(item, sites, names))
    picked = [s for s in sites if s.name in chosen]
    if not picked:
        raise NoSitesError(
            f"`sites={selector!r}` matched no recording site; available sites: {_listing(names)}."
        )
    return picked


def _match(item: Any, sites: Sequence[Site], names: list[str]) -> set[str]:
    if isinstance(item, str):
        if _is_glob(item):
            return {n for n in names if fnmatch.fnmatchcase(n, item)}
        if item in names:
            return {item}
        calls = {n for n in names if n.startswith(item + "#") and "::" not in n[len(item):]}
        if calls:
            return calls
        close = difflib.get_close_matches(item, names, n=5, cutoff=0.4)
        hint = f" Closest sites: {', '.join(map(repr, close))}." if close else ""
        raise SiteNotFoundError(
            f"`sites` names {item!r}, which is not a recording site of this model.{hint} "
            f"All sites: {_listing(names)}."
        )
    if isinstance(item, type):
        if not issubclass(item, nn.Module):
            raise InputError(f"`sites` type must be an nn.Module subclass, got {item.__name__}.")
        fn_name = item.__name__.lower().replace("leakyrelu", "leaky_relu")
        return {
            s.name
            for s in sites
            if (s.kind == "module" and isinstance(s.module, item))
            or (s.kind == "functional" and s.function == fn_name)
        }
    if callable(item):
        return {s.name for s in sites if item(s)}
    raise InputError(
        "`sites` must be a site name, glob, nn.Module type, predicate or a list of those; "
        f"got {describe(item)}."
    )


def _listing(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def activation_types(selector: SiteSelector, extra: Iterable[type] = ()) -> tuple[type[nn.Module], ...]:
    """Module types to hook: the defaults, every module type named in *selector*, and *extra*."""
    items = list(selector) if isinstance(selector, (list, tuple, set, frozenset)) else [selector]
    named = [t for t in items if isinstance(t, type) and issubclass(t, nn.Module)]
    out: list[type[nn.Module]] = list(DEFAULT_ACTIVATIONS)
    for t in [*named, *extra]:
        if t not in out:
            out.append(t)
    return tuple(out)
