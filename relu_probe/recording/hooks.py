"""The one place where relu_probe touches a model: hook registration and removal.

:class:`GateTap` attaches to a module tree and, for every forward pass of its root, turns
each ReLU call into a block of gates (``input > threshold``) and, optionally, post-ReLU
values. It works in two phases:

1. **Discovery** (the first pass): hooks on every module track the module stack (to name
   functional ReLUs by their owner), which module produced each site's input (to tell
   channel-first conv tensors from channel-last sequence tensors) and what reads each site's
   output (for readout importance): every ``Linear`` / ``ConvNd`` module called on it (or on
   a view of it: same data pointer and size) is one of its *readouts*; any other torch
   operation that reads it and returns a new tensor (a residual sum, a pooling, a norm, a
   concatenation, another ReLU) is an *other reader*. A
   :class:`torch.overrides.TorchFunctionMode` sees ``F.relu`` / ``torch.relu`` /
   ``Tensor.relu(_)`` calls and, in this pass, every other torch operation. Operations torch
   does not route through that mode (a C++ extension called on raw storage, a NumPy round
   trip) are not seen. A site output is matched by its address and size, so a freed output's
   address reused by a later tensor must not be mistaken for it: an operation whose result
   lies at a site output's address without reading it has put new data there, and that site
   output is forgotten.
2. **Steady state**: only the hooks the selected sites need remain; the function mode is
   pushed only when a functional site was selected.

Gates are computed from the ReLU's *input* in a forward pre-hook (module sites) or before the
call (functional sites), so in-place ReLUs cannot overwrite them. Every handle is kept and
:meth:`GateTap.detach` removes all of them; the root's forward hook is registered with
``always_call=True`` so a forward that raises still closes its pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import types
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from ..data.schema import INPUT, POSITION, TOKEN
from ..errors import NoSitesError, SiteNeverFiredError, ValueInputError
from .gates import PassRows, Scratch, compare, same_units, site_view, write_gates, write_values
from .sites import Site, SiteLayout, SiteSelector, select_sites, site_name
from .tokens import BatchTokens, batch_tokens, token_rows

__all__ = ["GateTap", "FUNCTIONAL_RELUS", "replaced_output"]

#: Functional ReLUs intercepted by the function mode, mapped to their site function name.
FUNCTIONAL_RELUS: dict[Any, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.relu_: "relu",
    torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu",
    F.leaky_relu: "leaky_relu",
}
for _name, _fn in (("relu_", "relu"), ("leaky_relu_", "leaky_relu")):
    if hasattr(F, _name):
        FUNCTIONAL_RELUS[getattr(F, _name)] = _fn
for _name in ("leaky_relu", "leaky_relu_"):
    if hasattr(torch._C._nn, _name):
        FUNCTIONAL_RELUS[getattr(torch._C._nn, _name)] = "leaky_relu"

#: Modules whose output has its features last: a site fed by one is a channel-last sequence site.
_CHANNEL_LAST_PRODUCERS = (nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Embedding) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)
_READOUT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class _Fire:
    """What one site call produced in the current pass."""

    key: tuple
    seq: int
    module: nn.Module
    function: str
    gate: np.ndarray | None = None  # (B, *shape) bool: the site's gates in its own layout
    value: np.ndarray | None = None  # (B, *shape) float32 post-activation values
    layout: SiteLayout | None = None
    nonfinite: int = 0
    slope: float = 0.0


@dataclass
class _PassState:
    module_calls: defaultdict = field(default_factory=lambda: defaultdict(int))
    owner_stack: list = field(default_factory=list)
    fn_ordinals: defaultdict = field(default_factory=lambda: defaultdict(int))
    fires: dict = field(default_factory=dict)
    pending_value: dict = field(default_factory=dict)
    suppress: int = 0
    seq: int = 0
    producers: dict = field(default_factory=dict)
    readouts: dict = field(default_factory=dict)
    other_readers: dict = field(default_factory=dict)
    out_keys: dict = field(default_factory=dict)  # discovery: site output (pointer, size) -> site key
    outer_exc: BaseException | None = None
    mode_pushed: bool = False
    block: dict | None = None
    rows: PassRows | None = None
    tokens: BatchTokens | None = None
    fired: set = field(default_factory=set)


class _ReluMode(TorchFunctionMode):
    """Sees functional ReLU calls and hands them to the tap (passes everything else through)."""

    def __init__(self, tap: GateTap) -> None:
        super().__init__()
        self.tap = tap

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        try:
            fn = FUNCTIONAL_RELUS.get(func)
        except TypeError:  # unhashable callables
            fn = None
        tap = self.tap
        if tap._state.suppress > 0:
            return func(*args, **kwargs)
        result = func(*args, **kwargs) if fn is None else tap._functional_call(func, fn, args, kwargs)
        if tap._discovering:  # a functional site's result is its own output, just registered: not new data
            tap._note_reader(getattr(func, "__name__", repr(func)), (args, kwargs), result if fn is None else None)
        return result


class GateTap:
    """Records gates from every forward pass of *root* until :meth:`detach`.

    Parameters
    ----------
    root : torch.nn.Module
        The (unwrapped) model whose forward passes are recorded.
    selector : site selector
        Which sites to keep (see :func:`relu_probe.sites.select_sites`).
    activation_types : tuple of nn.Module types
        Module types treated as ReLU sites.
    values : bool
        Also keep the post-activation values.
    units : {"element", "channel"}
        Unit granularity for conv and sequence sites.
    samples : {"input", "position"}
        One row per input, or one per kept (input, position) of the sites' positions
        (:mod:`relu_probe.recording.gates`); the pass's ``attention_mask`` drops padding.
    channel_dim : int or dict, optional
        Override the channel axis (1 or -1) for all sites or per site name.
    sink : object
        Receives the data: ``sink.configure(specs)`` once the sites are known (``specs``
        maps ``"gate"``/``"gate_rate"``/``"activation"`` to ``(n_units, dtype)``, and with
        ``samples="position"`` the per-row coords ``"input"``, ``"position"`` (and
        ``"token"``) to ``(None, int64)``), then per pass ``sink.reserve(rows)`` returns
        writable ``(rows, n_units)`` (``(rows,)``) arrays that the hooks fill in place, and
        ``sink.commit(rows)`` keeps them once the pass completed.
    threshold : float
        A unit is on when its pre-activation is ``> threshold``.
    check_finite : bool
        Count NaN/Inf pre-activations at every site of every pass (one extra read of each
        site's input). When False, only :attr:`output_nonfinite` is set per pass (from the
        model's output) and a caller may re-run the batch with :attr:`recount` set, which
        counts per site without recording anything.
    on_output : callable, optional
        ``on_output(site, output)`` is called, after discovery, with the live output tensor
        (autograd graph intact) of every selected site call, as soon as the call returns; a
        tensor it returns replaces that output downstream. The path-integrated gradients of
        :mod:`relu_probe.pathways.gradients` read the sites through it, one call at a time.
    """

    def __init__(
        self,
        root: nn.Module,
        *,
        selector: SiteSelector,
        activation_types: tuple[type[nn.Module], ...],
        values: bool,
        units: str,
        sink: Any,
        channel_dim: int | dict[str, int] | None = None,
        threshold: float = 0.0,
        check_finite: bool = True,
        on_output: Callable[[str, torch.Tensor], torch.Tensor | None] | None = None,
        samples: str = "input",
    ) -> None:
        self.root = root
        self.samples = samples
        self.selector = selector
        self.activation_types = activation_types
        self.values = values
        self.units = units
        self.channel_dim = channel_dim
        self.threshold = threshold
        self.sink = sink
        self.check_finite = check_finite
        self.on_output = on_output
        self.recount = False
        #: set for a pass that only discovers the sites (nothing is recorded or committed)
        self.discover_only = False
        #: inputs committed so far (the ``input`` coord of the next pass starts here)
        self.inputs_seen = 0
        self.output_nonfinite = False
        self._scratch = Scratch()
        self._token_coord = False
        #: whether the sites' positions are the calls' sequence positions (``samples="position"``)
        self.sequence_positions = False
        self.gate_var = "gate"
        #: per selected site key, its first-pass layout and unit range ``(u0, u1)`` in the rows
        self._plans: dict[tuple, tuple[SiteLayout, tuple[int, int]]] = {}
        self._handles: list[RemovableHandle] = []
        self._paths = {m: p for p, m in root.named_modules(remove_duplicate=False)}
        self._readout_paths = {p for m, p in self._paths.items() if isinstance(m, _READOUT_TYPES)}
        self._mode = _ReluMode(self)
        self._state = _PassState()
        self._discovering = True
        self.passes = 0
        self.all_sites: list[Site] = []
        self.sites: list[Site] = []
        self.layouts: dict[str, SiteLayout] = {}
        #: per site, the Linear / Conv modules reading its output (:func:`_check_readout`)
        self.readouts: dict[str, tuple[str, ...]] = {}
        #: per site, the other operations reading its output (:meth:`_note_reader`)
        self.other_readers: dict[str, tuple[str, ...]] = {}
        self.slopes: dict[str, float] = {}
        self.nonfinite: dict[str, int] = defaultdict(int)
        self.last_site: str | None = None
        self._key_to_site: dict[tuple, str] = {}
        self._selected_keys: set[tuple] = set()
        self._use_mode = True
        self._attached = False

    # ------------------------------------------------------------------ lifecycle
    def attach(self) -> GateTap:
        """Register the discovery hooks (or the steady-state ones if discovery is done)."""
        if self._attached:
            return self
        self._attached = True
        root = self.root
        # The root's hooks never change while attached: torch iterates the root's hook
        # dicts while they run, so they must not be edited from inside them.
        self._root_handles = [
            root.register_forward_pre_hook(self._begin_pass, with_kwargs=True),
            root.register_forward_pre_hook(self._pre_hook),
            root.register_forward_hook(self._post_hook, always_call=True),
            root.register_forward_hook(self._end_pass, always_call=True),
        ]
        self._register(discovery=self._discovering)
        return self

    def detach(self) -> None:
        """Remove every hook this tap registered and pop its function mode if still pushed."""
        for handle in [*self._handles, *getattr(self, "_root_handles", [])]:
            handle.remove()
        self._handles.clear()
        self._root_handles = []
        self._pop_mode()
        self._attached = False

    def _register(self, discovery: bool) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        add = self._handles.append
        act_modules = {m for m in self._paths if isinstance(m, self.activation_types)}
        if discovery:
            hooked = list(self._paths)
        else:
            selected_paths = {s.module_path for s in self.sites if s.kind == "module"}
            owners = {s.module_path for s in self.sites if s.kind == "functional"}
            hooked = [
                m
                for m, p in self._paths.items()
                if (m in act_modules and (self._use_mode or p in selected_paths)) or p in owners
            ]
        # a ReLU module's post-hook keeps its output (values), hands it to ``on_output`` and
        # pairs the function mode's suppression of the functional relu inside it: a lean
        # recording needs none of these
        lean = not discovery and not self.values and not self._use_mode and self.on_output is None
        for module in dict.fromkeys(hooked):
            if module is self.root:
                continue
            add(module.register_forward_pre_hook(self._pre_hook))
            if not (lean and module in act_modules):
                add(module.register_forward_hook(self._post_hook, always_call=True))

    def _push_mode(self) -> None:
        if not self._state.mode_pushed:
            self._mode.__enter__()
            self._state.mode_pushed = True

    def _pop_mode(self) -> None:
        if self._state.mode_pushed:
            self._state.mode_pushed = False
            self._mode.__exit__(None, None, None)

    # ------------------------------------------------------------------ pass boundaries
    def _begin_pass(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._state = _PassState(outer_exc=sys.exc_info()[1], tokens=batch_tokens(args, kwargs))
        self._state.owner_stack.append(("", 0))
        self.last_site = None
        if self._use_mode:
            self._push_mode()

    def _end_pass(self, module: nn.Module, args: tuple, output: Any) -> None:
        state = self._state
        self._pop_mode()
        if sys.exc_info()[1] is not state.outer_exc:
            return  # the forward raised: drop the partial pass, the caller sees the error
        if self.recount:
            return
        self.output_nonfinite = _has_nonfinite(output)
        if self._discovering:
            self._finish_discovery()
            if self.discover_only:
                state.block, state.fired = None, set()
                return
        self._emit(self.passes)
        self.passes += 1

    # ------------------------------------------------------------------ per-module hooks
    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        state = self._state
        path = self._paths[module]
        if module is self.root:
            call = 0
        else:
            call = state.module_calls[path]
            state.module_calls[path] = call + 1
        if isinstance(module, self.activation_types):
            if self._use_mode or self._discovering or self.values:  # paired by _post_hook
                state.suppress += 1
            key = ("module", path, call)
            if self._discovering and args:
                self._note_reader(type(module).__name__, args, None)
            if (self._discovering or key in self._selected_keys) and args and isinstance(args[0], torch.Tensor):
                self._fire(key, module, type(module).__name__, args[0],
                           _module_slope(module) if self._discovering else 0.0)
                if self.values or self._discovering or self.on_output is not None:
                    state.pending_value[id(module)] = key
            return
        if module is not self.root:
            state.owner_stack.append((path, call))
        if self._discovering and args and isinstance(args[0], torch.Tensor):
            self._check_readout(module, args[0])

    def _post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        state = self._state
        if isinstance(module, self.activation_types):
            key = state.pending_value.pop(id(module), None)
            try:
                if key is not None and isinstance(output, torch.Tensor):
                    self._store_value(key, output)  # still suppressed: the tap's own reads are no readers
            finally:
                state.suppress -= 1
            if key is not None and isinstance(output, torch.Tensor):
                return self._hand_out(key, output)
            return
        if module is not self.root and state.owner_stack:
            state.owner_stack.pop()
        if self._discovering and isinstance(output, torch.Tensor) and not list(module.children()):
            state.producers[_ptr(output)] = module

    def _functional_call(self, func: Callable, fn: str, args: tuple, kwargs: dict) -> Any:
        state = self._state
        owner_path, owner_call = state.owner_stack[-1] if state.owner_stack else ("", 0)
        ordinal_key = (owner_path, owner_call, fn)
        ordinal = state.fn_ordinals[ordinal_key]
        state.fn_ordinals[ordinal_key] = ordinal + 1
        key = ("functional", owner_path, owner_call, fn, ordinal)
        x = args[0] if args else kwargs.get("input")
        wanted = (self._discovering or key in self._selected_keys) and isinstance(x, torch.Tensor)
        if wanted:
            owner = self.root.get_submodule(owner_path) if owner_path else self.root
            self._fire(key, owner, fn, x, _functional_slope(fn, args, kwargs) if self._discovering else 0.0)
        out = func(*args, **kwargs)
        if wanted and isinstance(out, torch.Tensor):
            self._store_value(key, out)
            replaced = self._hand_out(key, out)
            if replaced is not None:
                out = replaced
        return out

    # ------------------------------------------------------------------ gate extraction
    def _fire(self, key: tuple, module: nn.Module, function: str, x: torch.Tensor, slope: float = 0.0) -> None:
        state = self._state
        if x.dim() < 2:
            raise ValueInputError(
                f"ReLU site {self._describe_key(key)!r} received a tensor of shape {tuple(x.shape)}; "
                "expected a batch dimension first (at least 2 dims)."
            )
        x = x.detach()
        nonfinite = 0
        if (self.check_finite or self.recount) and x.is_floating_point() and not bool(torch.isfinite(x.sum())):
            nonfinite = int((~torch.isfinite(x)).sum())
        if self.recount:  # a re-run only to count non-finite pre-activations per site
            if nonfinite:
                self.nonfinite[self._key_to_site[key]] += nonfinite
            return
        if self._discovering:
            fire = _Fire(key=key, seq=state.seq, module=module, function=function, slope=slope)
            state.seq += 1
            fire.layout = layout = self._layout_for(key, x)
            view = site_view(x, layout, state.tokens, self._describe_key(key))
            fire.gate = np.empty(tuple(view.shape), bool)
            compare(view, self.threshold, fire.gate)
            fire.nonfinite = nonfinite
            state.fires[key] = fire
            self.last_site = self._describe_key(key)
            return
        # steady state: called for every selected site of every pass, so kept lean
        name, layout, (u0, u1) = self._key_to_site[key], *self._plans[key]
        view = site_view(x, layout, state.tokens, name) if layout.flattened else x
        if view.shape[1:] != layout.shape and not same_units(layout, tuple(view.shape[1:]), self.units,
                                                              self.samples):
            raise ValueInputError(
                f"site {name!r} received per-sample shape {tuple(view.shape[1:])} but "
                f"{layout.shape} in the first batch; element units need a fixed shape — "
                "record with units='channel' or samples='position' for variable-length inputs."
            )
        rows = state.rows
        if state.block is None:
            state.rows = rows = self._pass_rows(tuple(view.shape), layout, name)
            state.block = self.sink.reserve(rows.n_rows)
            self._write_row_coords()
        elif rows.positions is not None or view.shape[0] != rows.inputs:
            self._check_rows(tuple(view.shape), layout, name)
        write_gates(view, layout, units=self.units, samples=self.samples, threshold=self.threshold,
                    rows=rows, out=state.block[self.gate_var][:, u0:u1], scratch=self._scratch)
        if nonfinite:
            self.nonfinite[name] += nonfinite
        state.fired.add(key)
        self.last_site = name

    def _store_value(self, key: tuple, out: torch.Tensor) -> None:
        if self.recount:
            return
        state = self._state
        if self._discovering:
            fire = state.fires.get(key)
            if fire is None:
                return
            state.out_keys[_ptr(out)] = key
            if self.values:
                view = site_view(out.detach(), fire.layout, state.tokens, self._describe_key(key))
                fire.value = view.to("cpu", torch.float32).numpy().copy()
            return
        if self.values and key in state.fired:
            u0, u1 = self._plans[key][1]
            name = self._key_to_site[key]
            layout = self.layouts[name]
            write_values(site_view(out.detach(), layout, state.tokens, name), layout, units=self.units,
                         samples=self.samples, rows=state.rows, out=state.block["activation"][:, u0:u1])

    # ------------------------------------------------------------------ rows of a pass
    def _pass_rows(self, shape: tuple[int, ...], layout: SiteLayout, name: str) -> PassRows:
        """The rows of the pass whose first recorded site *name* has tensor *shape* ``(B, …)``."""
        batch = shape[0]
        tokens = self._state.tokens
        if self.samples == "input":
            if self.units != "channel" or layout.channel_dim is None or tokens is None or tokens.mask is None:
                return PassRows(batch)
            positions = SiteLayout(shape[1:], layout.channel_dim).n_positions
            mask = tokens.mask_array()
            if mask.shape != (batch, positions):
                return PassRows(batch)  # the mask does not cover this site's positions
            empty = np.flatnonzero(~mask.any(1))
            if len(empty):
                raise ValueInputError(
                    f"input {self.inputs_seen + int(empty[0])} has no real token (its attention_mask is all 0), "
                    "so the fraction of its positions active is undefined; leave it out of `inputs`."
                )
            return PassRows(batch, mask=mask)
        positions = SiteLayout(shape[1:], layout.channel_dim).n_positions
        mask = None if tokens is None else tokens.mask_array()
        if mask is not None and mask.shape != (batch, positions):
            raise ValueInputError(
                f"site {name!r} has {positions} positions per input, but the batch's attention_mask has shape "
                f"{mask.shape}; with samples='position' the mask must be (batch, positions) to drop padding "
                "(select the sequence sites with `sites=`)."
            )
        keep = None if mask is None or mask.all() else token_rows(batch, positions, mask)
        return PassRows(batch, positions, keep)

    def _check_rows(self, shape: tuple[int, ...], layout: SiteLayout, name: str) -> None:
        rows = self._state.rows
        if shape[0] != rows.inputs:
            raise ValueInputError(
                f"site {name!r} saw {shape[0]} samples but an earlier site of the same forward "
                f"pass saw {rows.inputs}; the first dimension of every ReLU input must be the "
                "sample dimension."
            )
        if rows.positions is not None:
            positions = SiteLayout(shape[1:], layout.channel_dim).n_positions
            if positions != rows.positions:
                raise ValueInputError(
                    f"site {name!r} has {positions} positions per input in this forward pass, an earlier "
                    f"site {rows.positions}; with samples='position' every site must have the same positions."
                )

    def _write_row_coords(self) -> None:
        """The ``input``, ``position`` (and ``token``) of each row of a ``samples="position"`` pass."""
        state = self._state
        rows = state.rows
        if rows.positions is None:
            return
        flat = np.arange(rows.n_rows, dtype=np.int64) if rows.keep is None else rows.keep
        block = state.block
        np.add(flat // rows.positions, self.inputs_seen, out=block[INPUT])
        np.remainder(flat, rows.positions, out=block[POSITION])
        if self._token_coord:
            ids = None if state.tokens is None else state.tokens.ids_array()
            if ids is None or ids.shape != (rows.inputs, rows.positions):
                raise ValueInputError(
                    "the first batch carried input_ids, so every sample has a `token` coord, but this "
                    f"batch's token ids are {'missing' if ids is None else f'of shape {ids.shape}'} "
                    f"(expected ({rows.inputs}, {rows.positions})); pass input_ids with every batch."
                )
            np.take(ids.reshape(-1), flat, out=block[TOKEN])

    def _hand_out(self, key: tuple, out: torch.Tensor) -> torch.Tensor | None:
        """Give a selected site's live output to ``on_output`` (steady state only)."""
        if self.on_output is None or self._discovering or self.recount or key not in self._state.fired:
            return None
        return self.on_output(self._key_to_site[key], out)

    def _layout_for(self, key: tuple, x: torch.Tensor) -> SiteLayout:
        shape = tuple(x.shape[1:])
        if x.dim() == 2:
            tokens = self._state.tokens
            if tokens is not None and tokens.size and tokens.length and tokens.length > 1 \
                    and x.shape[0] == tokens.size * tokens.length:
                return SiteLayout((tokens.length, x.shape[1]), -1, flattened=True)
            return SiteLayout(shape, None)
        override = self.channel_dim
        if isinstance(override, dict):
            override = override.get(self._describe_key(key))
        if override is not None:
            if override not in (1, -1):
                raise ValueInputError(f"`channel_dim` must be 1 or -1, got {override!r}.")
            return SiteLayout(shape, int(override))
        producer = self._state.producers.get(_ptr(x))
        if producer is not None:
            channel_last = isinstance(producer, _CHANNEL_LAST_PRODUCERS)
        else:
            channel_last = x.dim() == 3
        return SiteLayout(shape, -1 if channel_last else 1)

    def _check_readout(self, module: nn.Module, x: torch.Tensor) -> None:
        """Discovery: a Linear / Conv called on a site's output (or a view of it) is one of the
        site's readouts — every one, in call order (a skip head reads the site too)."""
        if not isinstance(module, _READOUT_TYPES):
            return
        key = self._state.out_keys.get(_ptr(x))
        if key is None:
            return
        path = self._paths[module]
        paths = self._state.readouts.setdefault(key, [])
        if path not in paths:
            paths.append(path)

    def _note_reader(self, name: str, inputs: Any, result: Any) -> None:
        """Discovery: an operation that reads a site's output (or a view of it) and is not a
        readout. Skipped inside a Linear / Conv (that is the readout itself, see
        :meth:`_check_readout`), and when it returns the same data (a view, ``detach``, an
        eval-mode dropout: whoever reads that is checked in turn) or no tensor (``shape``,
        ``dim``). A result at a site output's address that the operation did not read is new
        data in that output's freed memory: the output is forgotten (module docstring)."""
        if result is not None and not isinstance(result, (torch.Tensor, tuple, list)):
            return  # data_ptr, shape, dim, …: reads no values, makes no tensor
        state = self._state
        targets = state.out_keys
        if not targets:
            return
        in_ptrs = set(map(_safe_ptr, _tensors(inputs)))
        outputs = set(map(_safe_ptr, _tensors(result)))
        for ptr in outputs - in_ptrs:
            if ptr in targets:
                del targets[ptr]
        owner = state.owner_stack[-1][0] if state.owner_stack else ""
        if owner in self._readout_paths:
            return
        read = {targets[p] for p in in_ptrs if p in targets}
        if not read:
            return
        if result is not None and (not outputs or outputs <= targets.keys()):
            return
        label = f"{name} (in {owner!r})" if owner else name
        for key in read:
            names = state.other_readers.setdefault(key, [])
            if label not in names:
                names.append(label)

    # ------------------------------------------------------------------ discovery result
    def _finish_discovery(self) -> None:
        state = self._state
        fires = sorted(state.fires.values(), key=lambda f: f.seq)
        module_calls = dict(state.module_calls)
        sites: list[Site] = []
        for fire in fires:
            if fire.key[0] == "module":
                _, path, call = fire.key
                name = site_name("module", path, call, module_calls.get(path, 1))
                sites.append(Site(name, "module", path, fire.module, fire.function, call))
            else:
                _, owner, call, fn, ordinal = fire.key
                name = site_name("functional", owner, call, 1, fn, ordinal, owner_calls=module_calls.get(owner, 1) or 1)
                sites.append(Site(name, "functional", owner, fire.module, fn, call))
        self.all_sites = sites
        if not sites:
            types = ", ".join(t.__name__ for t in self.activation_types)
            raise NoSitesError(
                f"`model` ({type(self.root).__name__}) has no ReLU site: no {types} module ran and no "
                "functional relu (F.relu, torch.relu, Tensor.relu, leaky_relu) was called in the "
                "forward pass. Record other activations with sites=[nn.GELU] (module type)."
            )
        self.sites = select_sites(sites, self.selector)
        chosen = {s.name for s in self.sites}
        self._key_to_site = {f.key: s.name for f, s in zip(fires, sites)}
        self._selected_keys = {k for k, n in self._key_to_site.items() if n in chosen}
        self.layouts = {s.name: f.layout for f, s in zip(fires, sites) if s.name in chosen}
        def per_site(found: dict) -> dict[str, tuple[str, ...]]:
            return {self._key_to_site[k]: tuple(v) for k, v in found.items() if self._key_to_site.get(k) in chosen}

        self.readouts = per_site(state.readouts)
        self.other_readers = per_site(state.other_readers)
        self.slopes = {s.name: f.slope for f, s in zip(fires, sites) if s.name in chosen}
        batch = {f.gate.shape[0] for k, f in state.fires.items() if k in self._selected_keys}
        if len(batch) != 1:
            detail = ", ".join(f"{self._key_to_site[k]}: {f.gate.shape[0]}" for k, f in state.fires.items())
            raise ValueInputError(
                f"sites saw different batch sizes in the first forward pass ({detail}); the first "
                "dimension of every ReLU input must be the sample dimension (a (batch · seq, features) "
                "layout is recognised when the call carries input_ids or an attention_mask)."
            )
        if self.samples == "position":
            self._check_token_sites()
        ordered = self._ordered_keys()
        self._configure_sink(ordered)
        if not self.discover_only:  # the discovery pass's own data goes to the sink like any other pass
            self._write_discovery_pass(ordered)
        state.fires = {}
        self._discovering = False
        self._use_mode = any(s.kind == "functional" for s in self.sites)
        self._register(discovery=False)

    def _configure_sink(self, ordered: list[tuple]) -> None:
        """Each selected site's unit range in the sample rows, and the sink's variables (gates or
        channel rates, activations, token coords) sized from them."""
        state = self._state
        offset = 0
        for key in ordered:
            layout = self.layouts[self._key_to_site[key]]
            n = layout.n_channels if self.samples == "position" else layout.n_units(self.units)
            self._plans[key] = (layout, (offset, offset + n))
            offset += n
        rate = self.units == "channel" and any(l.channel_dim is not None for l in self.layouts.values())
        self.gate_var = "gate_rate" if rate else "gate"
        specs: dict[str, tuple[int | None, np.dtype]] = {
            self.gate_var: (offset, np.dtype(np.float32) if rate else np.dtype(bool))}
        if self.values:
            specs["activation"] = (offset, np.dtype(np.float32))
        if self.samples == "position":
            positions = self.layouts[self._key_to_site[ordered[0]]].n_positions
            ids = None if state.tokens is None else state.tokens.ids
            self._token_coord = ids is not None and int(ids.shape[1]) == positions
            length = None if state.tokens is None else state.tokens.length
            self.sequence_positions = length is not None and length == positions
            for name in (INPUT, POSITION, *((TOKEN,) if self._token_coord else ())):
                specs[name] = (None, np.dtype(np.int64))
        self.sink.configure(specs)

    def _write_discovery_pass(self, ordered: list[tuple]) -> None:
        """The first (discovery) pass's gates and values, written to the sink like any later pass."""
        state = self._state
        first = state.fires[ordered[0]]
        state.rows = self._pass_rows(first.gate.shape, first.layout, self._key_to_site[ordered[0]])
        state.block = self.sink.reserve(state.rows.n_rows)
        self._write_row_coords()
        for key in ordered:
            fire = state.fires[key]
            name = self._key_to_site[key]
            self._check_rows(fire.gate.shape, fire.layout, name)
            u0, u1 = self._plans[key][1]
            write_gates(fire.gate, fire.layout, units=self.units, samples=self.samples, threshold=self.threshold,
                        rows=state.rows, out=state.block[self.gate_var][:, u0:u1], scratch=self._scratch)
            if self.values:
                if fire.value is None:
                    raise ValueInputError(
                        f"site {name!r} returned no tensor, so `values=True` cannot record its post-activation."
                    )
                write_values(fire.value, fire.layout, units=self.units, samples=self.samples, rows=state.rows,
                             out=state.block["activation"][:, u0:u1])
            if fire.nonfinite:
                self.nonfinite[name] += fire.nonfinite
            state.fired.add(key)

    def _check_token_sites(self) -> None:
        """``samples="position"`` needs sites with positions, the same number at every site."""
        dense = [name for name, layout in self.layouts.items() if layout.channel_dim is None]
        if dense:
            raise ValueInputError(
                f"samples='position' makes each position of a sequence or conv site a sample, but site(s) "
                f"{dense} have no positions (their input is (batch, features)); select the sites with "
                "positions with `sites=` (see rp.list_sites), or record with samples='input'."
            )
        positions = {name: layout.n_positions for name, layout in self.layouts.items()}
        if len(set(positions.values())) > 1:
            listed = ", ".join(f"{name!r}: {p}" for name, p in positions.items())
            raise ValueInputError(
                "samples='position' needs the same positions at every recorded site (one row per "
                f"(input, position)), but the sites have different numbers of positions ({listed}); "
                "select sites of one resolution with `sites=` (e.g. sites='layer3*') and record each "
                "resolution on its own."
            )

    def _emit(self, pass_index: int) -> None:
        state = self._state
        missing = [self._key_to_site[k] for k in self._selected_keys if k not in state.fired]
        if missing:
            raise SiteNeverFiredError(
                f"selected site(s) {sorted(missing)} did not fire in forward pass {pass_index}, "
                "although they fired in the first pass; recording needs the same sites in every "
                "pass (data-dependent control flow?). Select fewer sites with `sites=`."
            )
        self.sink.commit(state.rows.n_rows)
        self.inputs_seen += state.rows.inputs
        state.block = None
        state.rows = None
        state.fired = set()

    def _ordered_keys(self) -> list[tuple]:
        order = {s.name: i for i, s in enumerate(self.sites)}
        return sorted(self._selected_keys, key=lambda k: order[self._key_to_site[k]])

    def _describe_key(self, key: tuple) -> str:
        if key in self._key_to_site:
            return self._key_to_site[key]
        if key[0] == "module":
            return key[1] or "<root>"
        return f"{key[1]}::{key[3]}#{key[4]}"


@contextlib.contextmanager
def replaced_output(module: nn.Module, value: Callable[[Any], torch.Tensor]) -> Iterator[None]:
    """Inside the block, every call of *module* returns ``value(output)`` instead of its
    output (e.g. an embedding layer's output replaced by a point on an integration path);
    the hook is removed on exit, whatever happens in the block."""
    handle = module.register_forward_hook(lambda _module, _args, output: value(output))
    try:
        yield
    finally:
        handle.remove()


def _module_slope(module: nn.Module) -> float:
    """The negative-branch slope of an activation module: 0 for ``nn.ReLU``, ``negative_slope``
    for ``nn.LeakyReLU``, NaN for other (opt-in) activations, which are not piecewise linear
    with one kink at 0."""
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    return 0.0 if isinstance(module, nn.ReLU) else float("nan")


def _functional_slope(function: str, args: tuple, kwargs: dict) -> float:
    """The slope of a functional call: ``leaky_relu(x, negative_slope=0.01)``, else 0."""
    if function != "leaky_relu":
        return 0.0
    slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
    return float(slope)


#: Values searched no further for tensors in a model's output.
_LEAVES = (str, bytes, bytearray, int, float, complex, np.ndarray, nn.Module, type, types.ModuleType,
           types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _has_nonfinite(output: Any) -> bool:
    """Whether any floating tensor in a model output holds NaN or Inf.

    Tensors are found wherever a model may put them: in mappings (dicts, a Hugging Face
    ``ModelOutput``), sequences and sets (tuples, named tuples, lists), dataclass fields and
    other objects' attributes (``__dict__`` and ``__slots__``). Each object is visited once,
    so reference cycles end; modules, functions and classes are not searched.
    """
    pending, seen = [output], set()
    while pending:
        obj = pending.pop()
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
                return True
            continue
        if obj is None or isinstance(obj, _LEAVES) or id(obj) in seen:
            continue
        seen.add(id(obj))
        pending.extend(_members(obj))
    return False


def _members(obj: Any) -> list[Any]:
    """The values an output object holds (see :func:`_has_nonfinite`)."""
    if isinstance(obj, Mapping):
        return list(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if dataclasses.is_dataclass(obj):
        return [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
    attributes = getattr(obj, "__dict__", None)
    members = list(attributes.values()) if isinstance(attributes, dict) else []
    for klass in type(obj).__mro__:
        slots = getattr(klass, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__"):
                members.append(getattr(obj, name, None))
    return members


def _ptr(t: torch.Tensor) -> tuple[int, int]:
    return (t.data_ptr(), t.numel())


def _safe_ptr(t: torch.Tensor) -> tuple[int, int] | None:
    """:func:`_ptr`, or ``None`` for a tensor without plain storage (sparse, meta, fake)."""
    try:
        return _ptr(t)
    except (RuntimeError, NotImplementedError):
        return None


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in an operation's arguments or result (nested lists, tuples and dicts)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []
