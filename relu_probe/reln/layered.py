r"""A *layered* GDLN: one gated block per (layer, pathway), each layer's blocks feeding the next
layer's — the ReLN of a ReLU network with several hidden layers.

A ReLU network :math:`f(x) = W_{L+1} D_L(x) W_L \cdots D_1(x) W_1 x` is, for fixed gates
:math:`D_\ell(x) = \mathrm{diag}(\mathbb 1[z_\ell(x) > 0])`, a gated deep linear network
(Saxe, Sodhani & Lewallen, arXiv 2207.10430; Jarvis, Klein, Rosman & Saxe, arXiv
2503.06181). Its ReLN replaces every unit's own gate by the gate of the pathway found at that
unit's layer (:func:`relu_probe.find_pathways` per site): layer :math:`\ell` holds one block
of :math:`h_{\ell p}` units per pathway :math:`p` of that layer, open on the samples where the
pathway is (gate :math:`g_{\ell p\mu}`).

The graph
---------
Nodes: the inputs :math:`x`, blocks :math:`(\ell, p)`, the outputs. Edges:

* input → every layer-1 block ``p``, through its input mask :math:`m_p` (``inputs="auto"``:
  the shared blocks read every input, the others no cue input, as in the one-layer ReLN);
* block :math:`(\ell, p)` → block :math:`(\ell+1, q)` whenever the two gates are ever open
  together, :math:`\sum_\mu g_{\ell p\mu}\, g_{\ell+1, q\mu} > 0` (a pair never open together
  carries no path: its weights would get no gradient and add nothing);
* every last-layer block → every output.

With biases (:mod:`relu_probe.reln.spec`): every block of layer :math:`\ell` reads the constant
input through its bias :math:`b_\ell` (``hidden_bias``), and an ungated direct path adds
:math:`b` to every output (``output_bias``).

Forward pass and gradient
-------------------------
With :math:`\Gamma_\ell` the (sample, unit) *effective* gates of layer :math:`\ell`
(:math:`\alpha_\ell + (1 - \alpha_\ell) g` for units of slope :math:`\alpha_\ell`; the 0/1
gates for ReLU units), :math:`M_\ell` the edge masks and :math:`a_0 = X`:

.. math::

    a_\ell = \Gamma_\ell \odot (a_{\ell-1} W_\ell^\top + \mathbf 1 b_\ell^\top),\qquad
    \hat Y = a_L W_{L+1}^\top + \mathbf 1 b^\top,\qquad
    L = \tfrac12 \lVert \hat Y - Y \rVert_F^2 .

With :math:`E = \hat Y - Y`, :math:`\delta_{L} = (E W_{L+1}) \odot \Gamma_L` and
:math:`\delta_{\ell-1} = (\delta_\ell W_\ell) \odot \Gamma_{\ell-1}`:

.. math::

    \nabla_{W_{L+1}} L = E^\top a_L,\quad \nabla_b L = E^\top \mathbf 1,\quad
    \nabla_{W_\ell} L = (\delta_\ell^\top a_{\ell-1}) \odot M_\ell,\quad
    \nabla_{b_\ell} L = \delta_\ell^\top \mathbf 1,

and every parameter steps :math:`\theta \leftarrow \theta - \eta \nabla_\theta L`
(:func:`relu_probe.reln.layered_blocks.layered_step`). This is exactly backpropagation
through the ReLU network with :math:`D_\ell(x)` replaced by :math:`\Gamma_\ell`: with one
block per unit and each unit's own gates, the layered GDLN *is* the ReLU network at those
gates (outputs and gradients equal; :mod:`relu_probe.testing` checks it). All pathways follow
the total error (the ``"joint"`` rule); the paper's residual rule is defined for one gated
layer and is refused here.

Gates that follow training
-------------------------
Fixed gates — the pathways at the end of training, open on their context sets from t = 0 —
are the ReLN of Jarvis et al. A ReLU network's gates, though, form during training (with
small initial weights its units start open on about half of the samples, and in a deep
network a layer's context gating appears only once the layer below carries context).
A ``schedule`` replaces the gates from given epochs on: at epoch ``e`` every block uses the
gate values of the last scheduled epoch ``≤ e`` (the first entry before it), values in
[0, 1] per (block, sample) — e.g. the share of the block's units that the ReLU network had
open at that training step (:meth:`relu_probe.ReLN.from_pathways` with ``trajectory=``). The
slopes still apply: a leaky block's gate is ``α + (1 − α)`` times that share.

Paths
-----
An end-to-end path is a chain of blocks :math:`(p_1, \dots, p_L)` along edges; its map is
:math:`M_{\text{path}} = W_{L+1}[:, p_L] W_L[p_L, p_{L-1}] \cdots W_1[p_1, :]` (with the
layer-1 bias as a last input column when there is one) and its gate the product of its
blocks' gates, :math:`\prod_\ell \Gamma_{\ell p_\ell\mu}`, open on the intersection of their
context sets. The fitted network reports its singular values per path (named
``"{0,1,2}>{0,1}"``: layer-1 set, then layer-2 set).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._util.arrays import object_array
from .._util.checks import check_int, check_real
from ..errors import DegenerateDataWarning, InputError, ValueInputError, describe
from .gating import Gating, resolve_gates
from .spec import (
    check_flag,
    check_slopes,
    effective_gates,
    gating_from_state,
    gating_state,
    per_role,
    resolve_inputs,
    resolve_shared,
    with_constant,
)
from .small_init import small_init_std

__all__ = [
    "LayeredSpec",
    "MAX_PATHS",
    "is_layered_gates",
    "layered_spec_from_state",
    "layered_spec_state",
    "resolve_layered_spec",
]

#: Most end-to-end paths a layered GDLN tracks (their maps are recorded during training).
MAX_PATHS = 4096

#: Separator of the layer sets in a path's name.
PATH_SEP = ">"


@dataclass(frozen=True)
class LayeredSpec:
    """Everything a layered GDLN needs to know about its blocks (module docstring).

    Attributes
    ----------
    layers : tuple of Gating
        Per hidden layer, when each of its blocks is open (``G`` of shape (pathway, sample)).
    layer_names : tuple of str
        One name per hidden layer (the recording sites of a ReLN).
    shared : tuple of numpy.ndarray (pathway,) bool
        Per layer, the blocks open on every sample (those reading every input at layer 1
        with ``inputs="auto"``).
    inputs : numpy.ndarray (layer-1 pathway, feature) bool
        Which input features each layer-1 block reads.
    widths : tuple of tuple of int
        Units per block, per layer.
    edges : tuple of numpy.ndarray
        ``edges[l]`` (pathway at layer l+2, pathway at layer l+1) bool: which blocks feed
        which (``l = 0 … L−2``).
    init_scales : tuple of float
        Initial weight std of each weight layer, input side first (``L + 1`` values).
    hidden_bias : tuple of bool
        Per hidden layer: its units have biases (a constant input every block reads).
    output_bias : bool
        The ungated direct path from the constant input to every output.
    bias_init_scale : float
        Std of the biases' initial values (0: zero-initialised).
    leak : tuple of float
        Per hidden layer, the slope ``α`` of its units (0: ReLU).
    schedule : tuple of (int, tuple of numpy.ndarray)
        Gate values in [0, 1] from given epochs on (module docstring), epochs increasing, each
        with one (pathway, sample) array per layer; empty: the fixed gates ``layers``.
    """

    layers: tuple[Gating, ...]
    layer_names: tuple[str, ...]
    shared: tuple[np.ndarray, ...]
    inputs: np.ndarray
    widths: tuple[tuple[int, ...], ...]
    edges: tuple[np.ndarray, ...]
    init_scales: tuple[float, ...]
    hidden_bias: tuple[bool, ...]
    output_bias: bool = False
    bias_init_scale: float = 0.0
    leak: tuple[float, ...] = ()
    schedule: tuple[tuple[int, tuple[np.ndarray, ...]], ...] = ()

    # ------------------------------------------------------------------ layers
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def slopes(self) -> np.ndarray:
        """(layer,) slope of every hidden layer's units."""
        return np.zeros(self.n_layers) if not self.leak else np.asarray(self.leak, dtype=np.float64)

    def layer_gates(self, layer: int) -> np.ndarray:
        """(pathway, sample) effective gates of one hidden layer's blocks."""
        return effective_gates(self.layers[layer].G, self.slopes[layer])

    def gates_at(self, epoch: int) -> list[np.ndarray]:
        """Per layer, the (pathway, sample) effective gates used at *epoch* (the schedule's
        values from its last epoch ``≤ epoch``, its first before that; the fixed gates
        without a schedule)."""
        if not self.schedule:
            return [self.layer_gates(l) for l in range(self.n_layers)]
        values = self.schedule[0][1]
        for start, entry in self.schedule:
            if start > epoch:
                break
            values = entry
        return [effective_gates(v, self.slopes[l]) for l, v in enumerate(values)]

    @property
    def schedule_epochs(self) -> list[int]:
        return [int(e) for e, _ in self.schedule]

    # ------------------------------------------------------------------ paths
    @property
    def paths(self) -> list[tuple[int, ...]]:
        """Every end-to-end chain of blocks ``(p_1, …, p_L)`` along the edges."""
        chains: list[tuple[int, ...]] = [(p,) for p in range(self.layers[0].n_pathways)]
        for edge in self.edges:
            chains = [c + (q,) for c in chains for q in np.flatnonzero(edge[:, c[-1]]).tolist()]
        return chains

    @property
    def n_pathways(self) -> int:
        """Number of end-to-end paths (what the per-"pathway" results of a layered GDLN list)."""
        return len(self.paths)

    @property
    def gates(self) -> np.ndarray:
        """(path, sample) effective gate of every path: the product of its blocks' gates."""
        per_layer = [self.layer_gates(layer) for layer in range(self.n_layers)]
        return np.array([np.prod([per_layer[l][p] for l, p in enumerate(path)], axis=0) for path in self.paths])

    @property
    def names(self) -> list[str]:
        return [PATH_SEP.join(self.layers[l].names[p] for l, p in enumerate(path)) for path in self.paths]

    @property
    def contexts(self) -> list[tuple] | None:
        """Per path, the contexts where all its blocks are open (when every layer knows its sets)."""
        if any(g.contexts is None for g in self.layers):
            return None
        out = []
        for path in self.paths:
            sets = [set(self.layers[l].contexts[p]) for l, p in enumerate(path)]
            inter = set.intersection(*sets)
            out.append(tuple(c for c in self.layers[0].contexts[path[0]] if c in inter))
        return out

    @property
    def path_shared(self) -> np.ndarray:
        """(path,) bool: every block of the path is shared."""
        return np.array([all(self.shared[l][p] for l, p in enumerate(path)) for path in self.paths], dtype=bool)

    @property
    def design_inputs(self) -> np.ndarray:
        """(path, design feature) what each path reads: its layer-1 block's inputs, and the
        layer-1 bias as a last, always-read column when layer 1 has biases."""
        first = np.array([self.inputs[path[0]] for path in self.paths], dtype=bool).reshape(-1, self.inputs.shape[1])
        if self.hidden_bias[0]:
            first = np.hstack([first, np.ones((first.shape[0], 1), dtype=bool)])
        return first

    def design(self, X: np.ndarray) -> np.ndarray:
        """*X* with a last column of ones when layer 1 has biases (the features of the path maps)."""
        return with_constant(X) if self.hidden_bias[0] else X

    def coords(self) -> dict[str, Any]:
        """Coords of every per-path result: ``pathway`` (path id), ``name``, ``contexts`` (when
        known), ``shared``, and ``blocks`` (the block of each layer, as a tuple)."""
        coords: dict[str, Any] = {
            "pathway": np.arange(self.n_pathways),
            "name": ("pathway", self.names),
        }
        contexts = self.contexts
        if contexts is not None:
            coords["contexts"] = ("pathway", object_array(contexts))
        coords["shared"] = ("pathway", self.path_shared)
        return coords

    def block_table(self) -> list[dict[str, Any]]:
        """One row per block: ``layer`` (name), ``pathway`` (index within the layer), ``name``,
        ``contexts``, ``units``, ``shared``."""
        rows = []
        for l, gating in enumerate(self.layers):
            for p in range(gating.n_pathways):
                rows.append({
                    "layer": self.layer_names[l], "pathway": p, "name": gating.names[p],
                    "contexts": None if gating.contexts is None else gating.contexts[p],
                    "units": self.widths[l][p], "shared": bool(self.shared[l][p]),
                })
        return rows


def is_layered_gates(gates: Any) -> bool:
    """``gates`` describes a layered network: a mapping ``{layer name: gating}``."""
    return isinstance(gates, Mapping)


def resolve_layered_spec(
    gates: Mapping[Any, Any],
    X: np.ndarray,
    *,
    context: Any = None,
    shared: Any = None,
    inputs: Any = None,
    hidden: Any = 100,
    init_scale: Any = None,
    hidden_bias: Any = False,
    output_bias: Any = False,
    bias_init_scale: Any = 0.0,
    leak: Any = 0.0,
    schedule: Any = None,
    Y: Any = None,
) -> LayeredSpec:
    """Resolve the parameters of a layered GDLN into a :class:`LayeredSpec`.

    Parameters
    ----------
    gates : mapping of layer name to gating
        In layer order, input side first; each gating as :class:`relu_probe.GDLN` takes it
        (a (pathway, sample) 0/1 array or DataArray, or a list of context sets with
        ``context``).
    shared : None or mapping of layer name to shared pathways
        Default: per layer, the blocks open on every sample.
    inputs : None, "all", "auto" or masks
        What the layer-1 blocks read (:func:`relu_probe.reln.spec.resolve_inputs`).
    hidden : int, mapping or sequence
        Units per block: one number for every block; ``{"shared": h_s, "context": h_c}``; or
        one entry per layer (a number, or one per block of that layer), as a sequence or a
        mapping keyed by layer name.
    init_scale : None, float or sequence
        Initial weight std: one value, or one per weight layer (``L + 1``, input side first).
        Default for every layer: the GDLN's small initialisation relative to the data,
        ``(2 π_0)^{1/(L+1)} / √(Σ_p h_{1p})`` (:mod:`relu_probe.reln.small_init`; the paper's
        ``0.005 / width`` is :data:`relu_probe.tasks.PAPER_INIT_GAIN`, used only when passed).
    hidden_bias : bool or sequence of bool
        Biases in every hidden layer, or per hidden layer.
    output_bias : bool
    bias_init_scale : float
    leak : float or sequence of float
        Slope of the units of every hidden layer, or one per layer.
    schedule : mapping of int to mapping, optional
        ``{epoch: {layer: (pathway, sample) values in [0, 1]}}``: the gates from that epoch
        on (module docstring).
    Y : array, optional
        The targets, when known: they set the default ``init_scale``.
    """
    if len(gates) == 0:
        raise ValueInputError("`gates` as a mapping {layer: gating} must name at least one layer.")
    names = [str(k) for k in gates]
    if len(set(names)) != len(names):
        raise ValueInputError(f"`gates` names the layers {names}: layer names must be distinct.")
    n_samples = X.shape[0]
    layers = [resolve_gates(g, n_samples, context, name=f"gates[{name!r}]") for name, g in zip(names, gates.values())]
    n_layers = len(layers)
    shared_masks = _shared(shared, layers, names)
    first_inputs = resolve_inputs(inputs, layers[0], shared_masks[0], X, context)
    widths = _widths(hidden, layers, names, shared_masks)
    slopes = check_slopes(leak, n_layers)
    biases = _per_layer_flags("hidden_bias", hidden_bias, n_layers)
    edges = []
    for l in range(n_layers - 1):
        lower = effective_gates(layers[l].G, slopes[l])
        upper = effective_gates(layers[l + 1].G, slopes[l + 1])
        edge = (upper @ lower.T) > 0  # (q at l+1, p at l): ever open together
        lonely = [layers[l + 1].names[q] for q in np.flatnonzero(~edge.any(axis=1)) if upper[q].any()]
        if lonely:
            warnings.warn(
                f"block(s) {lonely} of layer {names[l + 1]!r} are never open together with any block of layer "
                f"{names[l]!r}: no path reaches them, so they never learn.",
                DegenerateDataWarning,
                stacklevel=4,
            )
        edges.append(edge)
    default = small_init_std(X, Y, sum(widths[0]), n_layers + 1)
    scales = _init_scales(init_scale, n_layers, default)
    spec = LayeredSpec(
        tuple(layers), tuple(names), tuple(shared_masks), first_inputs, tuple(tuple(w) for w in widths),
        tuple(edges), tuple(scales), tuple(biases), check_flag("output_bias", output_bias),
        check_real("bias_init_scale", bias_init_scale, minimum=0.0), slopes if any(slopes) else (),
        _schedule(schedule, layers, names),
    )
    if spec.n_pathways == 0:
        raise ValueInputError("the layered network has no path from the inputs to the outputs: no block of one "
                              "layer is ever open together with a block of the next.")
    if spec.n_pathways > MAX_PATHS:
        raise ValueInputError(
            f"the layered network has {spec.n_pathways} end-to-end paths (more than {MAX_PATHS}); keep "
            "fewer pathways per layer (e.g. a larger `min_mass`)."
        )
    return spec


# ----------------------------------------------------------------------------- pieces
def _shared(shared: Any, layers: list[Gating], names: list[str]) -> list[np.ndarray]:
    if shared is None:
        return [resolve_shared(None, g) for g in layers]
    if not isinstance(shared, Mapping):
        raise InputError(
            f"`shared` of a layered network must be None or a mapping {{layer: shared pathways}}, got "
            f"{describe(shared)}."
        )
    unknown = set(map(str, shared)) - set(names)
    if unknown:
        raise ValueInputError(f"`shared` names unknown layers {sorted(unknown)}; layers: {names}.")
    given = {str(k): v for k, v in shared.items()}
    return [resolve_shared(given.get(name), g) for name, g in zip(names, layers)]


def _widths(hidden: Any, layers: list[Gating], names: list[str], shared: list[np.ndarray]) -> list[list[int]]:
    """Units per block, per layer (the ``hidden`` parameter of :func:`resolve_layered_spec`)."""
    n_layers = len(layers)
    if isinstance(hidden, Mapping) and set(map(str, hidden)) <= {"shared", "context"}:
        per_layer: list[Any] = [per_role("hidden", hidden, list(s), require_both=True) for s in shared]
    elif isinstance(hidden, Mapping):
        unknown = set(map(str, hidden)) - set(names)
        if unknown or len(hidden) != n_layers:
            raise ValueInputError(
                f"`hidden` as a mapping must give every layer {names} (or the keys 'shared' and 'context'), "
                f"got {sorted(map(str, hidden))}."
            )
        given = {str(k): v for k, v in hidden.items()}
        per_layer = [given[name] for name in names]
    elif np.isscalar(hidden):
        per_layer = [hidden] * n_layers
    else:
        per_layer = list(hidden)
        if len(per_layer) != n_layers:
            raise ValueInputError(
                f"`hidden` must give one entry per layer ({n_layers}), got {len(per_layer)}."
            )
    widths = []
    for l, (entry, gating) in enumerate(zip(per_layer, layers)):
        n = gating.n_pathways
        values = [entry] * n if np.isscalar(entry) else list(entry)
        if len(values) != n:
            raise ValueInputError(
                f"`hidden` for layer {names[l]!r} must be one width or one per block ({n}), got {len(values)}."
            )
        widths.append([check_int("hidden", v, minimum=1) for v in values])
    return widths


def _init_scales(init_scale: Any, n_layers: int, default: float) -> list[float]:
    n_weights = n_layers + 1
    if init_scale is None:
        return [default] * n_weights
    if isinstance(init_scale, Mapping):
        raise InputError(
            "`init_scale` of a layered network is one std or one per weight layer "
            f"({n_weights}, input side first), got a mapping."
        )
    if np.isscalar(init_scale):
        return [check_real("init_scale", init_scale, minimum=0.0)] * n_weights
    values = list(init_scale)
    if len(values) != n_weights:
        raise ValueInputError(
            f"`init_scale` must be one std or one per weight layer ({n_weights}: {n_layers} hidden layers + "
            f"the readout), got {len(values)} values."
        )
    return [default if v is None else check_real("init_scale", v, minimum=0.0) for v in values]


def _schedule(schedule: Any, layers: list[Gating], names: list[str]) -> tuple:
    """The ``schedule`` parameter as ((epoch, per-layer values), …), checked."""
    if schedule is None:
        return ()
    if not isinstance(schedule, Mapping) or not schedule:
        raise InputError(
            f"`schedule` must be a non-empty mapping {{epoch: {{layer: gate values}}}}, got {describe(schedule)}."
        )
    out = []
    for epoch in sorted(schedule, key=lambda e: check_int("schedule epoch", e, minimum=0)):
        entry = schedule[epoch]
        if not isinstance(entry, Mapping) or [str(k) for k in entry] != names:
            raise ValueInputError(
                f"`schedule[{epoch}]` must map every layer {names}, in order, to its gate values; got "
                f"{describe(entry)}."
            )
        values = []
        for (name, v), gating in zip(entry.items(), layers):
            arr = np.asarray(v, dtype=np.float64)
            if arr.shape != gating.G.shape:
                raise ValueInputError(
                    f"`schedule[{epoch}][{name!r}]` must have shape (pathway, sample) = {gating.G.shape}, got "
                    f"{arr.shape}."
                )
            if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
                raise ValueInputError(f"`schedule[{epoch}][{name!r}]` must hold gate values in [0, 1].")
            values.append(arr)
        out.append((int(epoch), tuple(values)))
    return tuple(out)


def _per_layer_flags(name: str, value: Any, n_layers: int) -> list[bool]:
    if isinstance(value, (bool, np.bool_)):
        return [bool(value)] * n_layers
    try:
        values = list(value)
    except TypeError:
        raise InputError(f"`{name}` must be True/False or one flag per hidden layer, got {describe(value)}.") from None
    if len(values) != n_layers:
        raise ValueInputError(f"`{name}` must give one flag per hidden layer ({n_layers}), got {len(values)}.")
    return [check_flag(name, v) for v in values]


def layered_spec_state(spec: LayeredSpec) -> dict[str, Any]:
    """Everything needed to rebuild *spec* as plain values (:func:`layered_spec_from_state`)."""
    return {
        "layers": [gating_state(g) for g in spec.layers], "layer_names": list(spec.layer_names),
        "shared": list(spec.shared), "inputs": spec.inputs, "widths": spec.widths, "edges": list(spec.edges),
        "init_scales": spec.init_scales, "hidden_bias": spec.hidden_bias, "output_bias": spec.output_bias,
        "bias_init_scale": spec.bias_init_scale, "leak": spec.leak,
        "schedule": [[e, list(v)] for e, v in spec.schedule],
    }


def layered_spec_from_state(state: Mapping[str, Any]) -> LayeredSpec:
    """Inverse of :func:`layered_spec_state`."""
    return LayeredSpec(
        tuple(gating_from_state(g) for g in state["layers"]), tuple(state["layer_names"]),
        tuple(np.asarray(s, dtype=bool) for s in state["shared"]), np.asarray(state["inputs"], dtype=bool),
        tuple(tuple(w) for w in state["widths"]), tuple(np.asarray(e, dtype=bool) for e in state["edges"]),
        tuple(state["init_scales"]), tuple(bool(b) for b in state["hidden_bias"]), bool(state["output_bias"]),
        float(state["bias_init_scale"]), tuple(state["leak"]),
        tuple((int(e), tuple(np.asarray(a, dtype=np.float64) for a in v)) for e, v in state.get("schedule", [])),
    )
