"""The pathways of a gated deep linear network, resolved once: :class:`PathwaySpec`.

A GDLN (:class:`relu_probe.GDLN`), its race prediction (:func:`relu_probe.race_dynamics`) and
the ReLN built from a ReLU network (:class:`relu_probe.ReLN`) describe their pathways with the
same parameters — ``gates``, ``shared``, ``inputs``, ``hidden``, ``depth``, ``init_scale``
(and a GDLN's ``trunk``). :func:`resolve_spec` turns them into one :class:`PathwaySpec`, so the
three read every parameter the same way:

``hidden``
    one width for every pathway, one per pathway (an int, or a list with one width per hidden
    layer), or ``{"shared": h_s, "context": h_c}``;
``init_scale``
    the standard deviation of the Gaussian initial weights: one value, one per pathway, per
    pathway a list with one value per weight matrix (``depth + 1`` of them, input side first:
    for one hidden layer the pair (input-layer, output-layer)), or
    ``{"shared": σ_s, "context": σ_c}`` (a missing key takes the default). The default is a
    small initialisation relative to the data, ``σ = (2 π_0)^{1/L} / √(Σ_p hidden_p)`` for
    the ``L`` weight matrices of a path, ``π_0 = 10^{-6} σ_1(M_lin)``
    (:mod:`relu_probe.reln.small_init`); the paper's ``0.005 / width`` is
    :data:`relu_probe.tasks.PAPER_INIT_GAIN`, used only when passed.

Biases and leaky units (the ReLU network's own, modelled exactly; the same fields, with the
same meaning, in a layered network's :class:`relu_probe.reln.layered.LayeredSpec`):

``hidden_bias``
    the hidden units have biases. A bias is a **constant input** ``1`` that every pathway
    reads, whatever its input mask: pathway ``p``'s first layer computes
    ``W_{p,1} (m_p ⊙ x_μ) + b_p``, i.e. it reads the design row ``[m_p ⊙ x_μ, 1]``
    (:meth:`PathwaySpec.design`). Being constant on *every* sample, it is not a cue input
    (:func:`relu_probe.reln.gating.cue_inputs`).
``output_bias``
    the readout has a bias: an **ungated direct path**, a one-layer path from the constant
    input to every output, ``ŷ_μ = Σ_p g_{pμ} M_p x̃_{pμ} + b``. With the summed loss its
    gradient is ``∇_b L = Σ_μ (ŷ_μ − y_μ)`` (one full-batch step ``b ← b − η Σ_μ (ŷ_μ −
    y_μ)``); it is open on every sample, so the residual rule counts it with the shared
    pathways.
``bias_init_scale``
    standard deviation of the biases' initial values (default 0: zero-initialised biases).
``leak``
    the slope ``α`` of each pathway's units (0 for ReLU; a ``LeakyReLU(α)`` unit computes
    ``z·(α + (1 − α)·1[z > 0])``). A leaky pathway is an always-on path with gain ``α`` plus a
    gated path with gain ``1 − α``: its *effective gate* is ``α + (1 − α) g_{pμ}``
    (:attr:`PathwaySpec.gates`), which is what the simulation and the race multiply by.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .._util.arrays import object_array, to_numpy
from .._util.checks import check_choice, check_int, check_real
from ..errors import InputError, ReluProbeWarning, ValueInputError, describe
from .gating import Gating, cue_inputs, resolve_gates, sample_groups
from .small_init import small_init_std

__all__ = [
    "PathwaySpec",
    "check_flag",
    "check_slopes",
    "default_init_scale",
    "effective_gates",
    "gating_from_state",
    "gating_state",
    "spec_from_state",
    "spec_state",
    "warn_residual_is_joint",
    "with_constant",
    "per_pathway",
    "per_role",
    "resolve_inputs",
    "resolve_shared",
    "resolve_spec",
]


@dataclass(frozen=True)
class PathwaySpec:
    """Everything a GDLN, its race and its ReLN need to know about their pathways.

    Attributes
    ----------
    gating : Gating
        When each pathway is open (``G`` of shape (pathway, sample)), its name and context set.
    shared : numpy.ndarray (pathway,) bool
        The shared pathways (the residual rule's, and those reading every input with
        ``inputs="auto"``).
    inputs : numpy.ndarray (pathway, feature) bool
        Which input features each pathway reads (with a trunk: the trunk's last layer, all).
    widths : tuple of tuple of int
        Hidden widths of each pathway, one per hidden layer.
    init_scales : tuple of tuple of float
        Initial weight std of each pathway, one per weight matrix, input side first.
    trunk, trunk_scales : tuple
        Widths and initial weight stds of ungated layers shared by all pathways (a GDLN's
        ``trunk``; empty otherwise).
    hidden_bias, output_bias : bool
        The hidden units' biases (a constant input every pathway reads) and the readout's
        bias (an ungated direct path to the outputs); module docstring.
    bias_init_scale : float
        Standard deviation of the biases' initial values (0: zero-initialised).
    leak : tuple of float
        Slope ``α`` of each pathway's units (empty: all 0, ReLU); module docstring.
    """

    gating: Gating
    shared: np.ndarray
    inputs: np.ndarray
    widths: tuple[tuple[int, ...], ...]
    init_scales: tuple[tuple[float, ...], ...]
    trunk: tuple[int, ...] = ()
    trunk_scales: tuple[float, ...] = ()
    hidden_bias: bool = False
    output_bias: bool = False
    bias_init_scale: float = 0.0
    leak: tuple[float, ...] = ()

    @property
    def n_pathways(self) -> int:
        return self.gating.n_pathways

    @property
    def slopes(self) -> np.ndarray:
        """(pathway,) slope ``α`` of every pathway's units (0 for ReLU units)."""
        return np.zeros(self.n_pathways) if not self.leak else np.asarray(self.leak, dtype=np.float64)

    @property
    def gates(self) -> np.ndarray:
        """(pathway, sample) effective gates ``α_p + (1 − α_p) g_{pμ}`` (the 0/1 gates ``G``
        for ReLU pathways): what a pathway's output is multiplied by on each sample."""
        return effective_gates(self.gating.G, self.slopes)

    def design(self, X: np.ndarray) -> np.ndarray:
        """The inputs the pathways read: *X*, and with ``hidden_bias`` a last column of ones
        (the constant input of the biases)."""
        return with_constant(X) if self.hidden_bias else X

    @property
    def design_inputs(self) -> np.ndarray:
        """(pathway, design feature) input masks: ``inputs``, and with ``hidden_bias`` a last
        column that every pathway reads."""
        if not self.hidden_bias:
            return self.inputs
        return np.hstack([self.inputs, np.ones((self.n_pathways, 1), dtype=bool)])

    @property
    def depths(self) -> list[int]:
        return [len(w) for w in self.widths]

    def coords(self) -> dict[str, Any]:
        """The pathway coords of every per-pathway result: ``pathway``, ``name``, ``contexts``
        (when known: the context set of each pathway) and ``shared``."""
        coords: dict[str, Any] = {
            "pathway": np.arange(self.n_pathways),
            "name": ("pathway", list(self.gating.names)),
        }
        if self.gating.contexts is not None:
            coords["contexts"] = ("pathway", object_array(self.gating.contexts))
        coords["shared"] = ("pathway", self.shared.copy())
        return coords


def effective_gates(G: np.ndarray, slopes: Any) -> np.ndarray:
    """``α + (1 − α) G`` row by row: the gate of a unit with slope ``α`` (LeakyReLU), open
    (1) where ``G = 1`` and passing ``α`` of its input where ``G = 0``."""
    alpha = np.broadcast_to(np.asarray(slopes, dtype=np.float64), (G.shape[0],))[:, None]
    return alpha + (1.0 - alpha) * G


def with_constant(X: np.ndarray) -> np.ndarray:
    """*X* (sample, feature) with a last column of ones: the constant input of a bias."""
    return np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)])


def check_slopes(value: Any, n: int, name: str = "leak") -> tuple[float, ...]:
    """One slope or one per item (``n``), each a LeakyReLU slope in [0, 1)."""
    raw = per_pathway(name, value, n)
    out = []
    for v in raw:
        v = 0.0 if v is None else check_real(name, v)
        if not 0.0 <= v < 1.0:
            raise ValueInputError(
                f"`{name}` must hold LeakyReLU slopes in [0, 1) (0: ReLU), got {v}; a slope of 1 or "
                "more is a linear (or sign-flipping) unit, which has no gate to model."
            )
        out.append(float(v))
    return tuple(out)


def check_flag(name: str, value: Any) -> bool:
    """A bool parameter (``hidden_bias`` / ``output_bias``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"`{name}` must be True or False, got {describe(value)}.")
    return bool(value)


def default_init_scale(widths: Sequence[Sequence[int]], X: np.ndarray, Y: Any = None, *, trunk: int = 0) -> float:
    """The default std of a weight matrix: :func:`relu_probe.reln.small_init.small_init_std`
    over ``Σ_p h_p`` (the pathways' first hidden widths: the hidden layer they share) and the
    ``L`` weight matrices of the deepest path (*trunk* trunk layers, then the pathway's)."""
    n_weights = trunk + max(len(w) for w in widths) + 1
    return small_init_std(X, Y, sum(w[0] for w in widths), n_weights)


def resolve_spec(
    gates: Any,
    X: np.ndarray,
    *,
    context: Any = None,
    shared: Any = None,
    inputs: Any = None,
    hidden: Any = 100,
    depth: Any = 1,
    init_scale: Any = None,
    trunk: Any = None,
    trunk_init_scale: Any = None,
    hidden_bias: Any = False,
    output_bias: Any = False,
    bias_init_scale: Any = 0.0,
    leak: Any = 0.0,
    Y: Any = None,
) -> PathwaySpec:
    """Resolve the pathway parameters of a GDLN / race / ReLN into a :class:`PathwaySpec`
    (the module docstring describes each parameter; the targets ``Y``, when known, set the
    default ``init_scale``)."""
    gating = resolve_gates(gates, X.shape[0], context)
    shared_mask = resolve_shared(shared, gating)
    trunk_widths = _trunk(trunk)
    if trunk_widths:
        if not (inputs is None or (isinstance(inputs, str) and inputs in ("all", "auto"))):
            raise ValueInputError(
                "`inputs` masks cannot be combined with a `trunk`: every input goes through the "
                "shared trunk; use inputs=None."
            )
        in_mask = np.ones((gating.n_pathways, X.shape[1]), dtype=bool)
    else:
        in_mask = resolve_inputs(inputs, gating, shared_mask, X, context)
    widths = resolve_widths(hidden, depth, shared_mask)
    default = default_init_scale(widths, X, Y, trunk=len(trunk_widths))
    scales = resolve_init_scales(init_scale, widths, shared_mask, default)
    trunk_scales = _trunk_scales(trunk_init_scale, trunk_widths, default)
    hidden_bias = check_flag("hidden_bias", hidden_bias)
    output_bias = check_flag("output_bias", output_bias)
    slopes = check_slopes(leak, gating.n_pathways)
    if trunk_widths and (hidden_bias or any(slopes)):
        raise ValueInputError(
            "`hidden_bias` and `leak` are not modelled together with a `trunk`; build a layered "
            "network instead (`gates` as a mapping {layer: gates}, relu_probe.reln.layered)."
        )
    return PathwaySpec(
        gating, shared_mask, in_mask, tuple(map(tuple, widths)), tuple(map(tuple, scales)),
        tuple(trunk_widths), tuple(trunk_scales), hidden_bias, output_bias,
        check_real("bias_init_scale", bias_init_scale, minimum=0.0), slopes if any(slopes) else (),
    )


# ----------------------------------------------------------------------------- pieces
def per_role(name: str, mapping: Any, shared: Sequence[bool], *, require_both: bool = False) -> list[Any]:
    """Per-pathway values from a ``{"shared": …, "context": …}`` mapping (missing roles: None).

    Raises a :class:`~relu_probe.errors.ValueInputError` naming *name* for any other key, and,
    with *require_both*, when a role the pathways need is missing.
    """
    unknown = set(mapping) - {"shared", "context"}
    if unknown:
        raise ValueInputError(
            f"`{name}` as a mapping takes keys 'shared' and 'context', got {sorted(map(str, unknown))}."
        )
    values = [mapping.get("shared" if is_shared else "context") for is_shared in shared]
    if require_both and any(v is None for v in values):
        raise ValueInputError(f"`{name}` mapping must give both 'shared' and 'context' values.")
    return values


def per_pathway(name: str, value: Any, n_pathways: int, *, kind: str = "real") -> list[Any]:
    """Broadcast a scalar or check a per-pathway sequence of length ``n_pathways``."""
    if np.isscalar(value) or value is None:
        return [value] * n_pathways
    try:
        items = list(value)
    except TypeError as exc:
        raise InputError(
            f"`{name}` must be a {kind} number or one value per pathway, got {describe(value)}."
        ) from exc
    if len(items) != n_pathways:
        raise ValueInputError(
            f"`{name}` must be a single value or one value per pathway ({n_pathways}), got "
            f"{len(items)} values."
        )
    return items


def _per_pathway_or_role(name: str, value: Any, shared: np.ndarray, *, kind: str = "real") -> list[Any]:
    if isinstance(value, Mapping):
        return per_role(name, value, list(shared))
    return per_pathway(name, value, len(shared), kind=kind)


def resolve_shared(shared: Any, gating: Gating) -> np.ndarray:
    """The shared pathways as a (pathway,) bool mask: given as indices, names or a mask;
    default the pathways open on every sample."""
    n = gating.n_pathways
    if shared is None:
        return np.all(gating.G == 1.0, axis=1)
    if isinstance(shared, (bool, np.bool_)):
        raise InputError("`shared` must be pathway indices/names or a boolean mask, got a bool.")
    arr = np.atleast_1d(np.asarray(shared))
    out = np.zeros(n, dtype=bool)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueInputError(f"`shared` as a mask must have one entry per pathway ({n}).")
        return arr.copy()
    for item in arr.tolist():
        if isinstance(item, str):
            if item not in gating.names:
                raise ValueInputError(
                    f"`shared` names pathway {item!r}, which does not exist; pathways: {gating.names}."
                )
            out[gating.names.index(item)] = True
        elif isinstance(item, int) and -n <= item < n:
            out[item] = True
        else:
            raise ValueInputError(f"`shared` must list pathway indices in [0, {n}) or names, got {item!r}.")
    return out


def resolve_inputs(inputs: Any, gating: Gating, shared: np.ndarray, X: np.ndarray, context: Any) -> np.ndarray:
    """Input masks (pathway, feature) bool from the ``inputs`` parameter.

    ``None`` / ``"all"``: every pathway reads every input. ``"auto"``: shared pathways read
    every input; the others only the inputs that vary within a context — cue inputs, constant
    within every group of samples the gates (or the context labels) cannot tell apart, are
    left out (:func:`relu_probe.reln.gating.cue_inputs`). Otherwise a (pathway, feature) 0/1
    mask, one mask for all pathways, or one list of feature indices (or mask, or None) per
    pathway.
    """
    n_paths, n_in = gating.n_pathways, X.shape[1]
    if inputs is None or (isinstance(inputs, str) and inputs == "all"):
        return np.ones((n_paths, n_in), dtype=bool)
    if isinstance(inputs, str):
        check_choice("inputs", inputs, ["all", "auto"])
        cue = cue_inputs(X, sample_groups(gating.G, context))
        if not (~cue).any():
            raise ValueInputError(
                "`inputs='auto'`: every input feature is constant within each context, so the "
                "non-shared pathways would read nothing; pass explicit `inputs` masks."
            )
        mask = np.ones((n_paths, n_in), dtype=bool)
        mask[~shared] = ~cue
        return mask
    if isinstance(inputs, xr.DataArray) or callable(getattr(inputs, "detach", None)):
        inputs = to_numpy(inputs)
    if isinstance(inputs, np.ndarray) and inputs.dtype != object:
        arr = inputs
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (n_paths, arr.shape[0]))
        if arr.ndim != 2 or arr.shape != (n_paths, n_in):
            raise ValueInputError(
                f"`inputs` must be a (pathway, feature) mask of shape ({n_paths}, {n_in}), got shape {inputs.shape}."
            )
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueInputError("`inputs` masks must contain only 0/1 or booleans.")
        return arr.astype(bool).copy()
    mask = np.zeros((n_paths, n_in), dtype=bool)
    for p, item in enumerate(per_pathway("inputs", inputs, n_paths, kind="mask")):
        if item is None or (isinstance(item, str) and item == "all"):
            mask[p] = True
            continue
        idx = np.asarray(item)
        if idx.dtype == bool and idx.shape == (n_in,):
            mask[p] = idx
            continue
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise InputError(
                f"`inputs[{p}]` must be a list of feature indices, a boolean mask of length "
                f"{n_in}, or None; got {describe(item)}."
            )
        if idx.size and (idx.min() < -n_in or idx.max() >= n_in):
            raise ValueInputError(f"`inputs[{p}]` has feature indices outside [0, {n_in}): {idx.tolist()}.")
        mask[p, idx] = True
    return mask


def resolve_widths(hidden: Any, depth: Any, shared: np.ndarray) -> list[list[int]]:
    """Hidden widths of each pathway, one per hidden layer (module docstring)."""
    n_paths = len(shared)
    depths = [check_int("depth", d, minimum=1) for d in per_pathway("depth", depth, n_paths, kind="integer")]
    if isinstance(hidden, Mapping) and (set(hidden) - {"shared", "context"} or len(hidden) != 2):
        raise ValueInputError(
            f"`hidden` as a mapping needs exactly the keys 'shared' and 'context', got {sorted(hidden)}."
        )
    widths: list[list[int]] = []
    for p, h in enumerate(_per_pathway_or_role("hidden", hidden, shared, kind="integer")):
        if np.isscalar(h):
            widths.append([check_int("hidden", h, minimum=1)] * depths[p])
            continue
        hs = [check_int("hidden", v, minimum=1) for v in h]
        if len(hs) != depths[p]:
            raise ValueInputError(f"`hidden[{p}]` lists {len(hs)} widths but pathway {p} has depth {depths[p]}.")
        widths.append(hs)
    return widths


def resolve_init_scales(init_scale: Any, widths: Sequence[Sequence[int]], shared: np.ndarray,
                        default: float) -> list[list[float]]:
    """Initial weight std of each pathway, one per weight matrix, input side first (module
    docstring); ``None`` (or a role missing from a mapping) takes *default*
    (:func:`default_init_scale`)."""
    scales: list[list[float]] = []
    for p, s in enumerate(_per_pathway_or_role("init_scale", init_scale, shared)):
        n_weights = len(widths[p]) + 1
        if s is None:
            scales.append([default] * n_weights)
        elif np.isscalar(s):
            scales.append([check_real("init_scale", s, minimum=0.0)] * n_weights)
        else:
            values = [check_real("init_scale", v, minimum=0.0) for v in s]
            if len(values) != n_weights:
                raise ValueInputError(
                    f"`init_scale[{p}]` lists {len(values)} values but pathway {p} has "
                    f"{n_weights} weight matrices (depth {n_weights - 1} + 1)."
                )
            scales.append(values)
    return scales


def _trunk(trunk: Any) -> list[int]:
    raw = [] if trunk is None else ([trunk] if np.isscalar(trunk) else list(trunk))
    return [check_int("trunk", w, minimum=1) for w in raw]


def _trunk_scales(trunk_init_scale: Any, trunk: Sequence[int], default: float) -> list[float]:
    if not trunk:
        return []
    raw = [trunk_init_scale] * len(trunk) if trunk_init_scale is None or np.isscalar(trunk_init_scale) else list(
        trunk_init_scale
    )
    if len(raw) != len(trunk):
        raise ValueInputError(
            f"`trunk_init_scale` must be one value or one per trunk layer ({len(trunk)}), got {len(raw)}."
        )
    return [default if v is None else check_real("trunk_init_scale", v, minimum=0.0) for v in raw]


# ----------------------------------------------------------------------------- rules, storage
def warn_residual_is_joint(names: Sequence[str], *, stacklevel: int = 3) -> None:
    """Warn that ``rule="residual"`` has no shared pathway to split off, so it trains (or
    predicts) exactly as ``rule="joint"``."""
    warnings.warn(
        "rule='residual' needs a shared pathway (one open on every sample, or named by `shared=`), and none "
        f"of the pathways {list(names)} is: every pathway follows the total error, so this is the 'joint' "
        "rule. Pass rule='joint' to say so, or name the shared pathways with `shared=`.",
        ReluProbeWarning,
        stacklevel=stacklevel,
    )


def gating_state(gating: Gating) -> dict[str, Any]:
    """A :class:`Gating` as plain values (for the tagged JSON of saved networks)."""
    return {"G": gating.G, "names": list(gating.names),
            "contexts": None if gating.contexts is None else [tuple(c) for c in gating.contexts]}


def gating_from_state(state: Mapping[str, Any]) -> Gating:
    contexts = state["contexts"]
    return Gating(np.asarray(state["G"], dtype=np.float64), list(state["names"]),
                  None if contexts is None else [tuple(c) for c in contexts])


def spec_state(spec: PathwaySpec) -> dict[str, Any]:
    """Everything needed to rebuild *spec* (:func:`spec_from_state`)."""
    return {
        "gating": gating_state(spec.gating), "shared": spec.shared, "inputs": spec.inputs,
        "widths": spec.widths, "init_scales": spec.init_scales, "trunk": spec.trunk,
        "trunk_scales": spec.trunk_scales, "hidden_bias": spec.hidden_bias, "output_bias": spec.output_bias,
        "bias_init_scale": spec.bias_init_scale, "leak": spec.leak,
    }


def spec_from_state(state: Mapping[str, Any], fitted: Any = None) -> PathwaySpec:
    """Inverse of :func:`spec_state`; files written before it stored the gating read it off
    the fitted network *fitted* (``gates_``, ``inputs_``, ``shared_``, ``pathway_names_``)."""
    if "gating" in state:
        gating = gating_from_state(state["gating"])
        shared, inputs = np.asarray(state["shared"], dtype=bool), np.asarray(state["inputs"], dtype=bool)
    else:
        gating = Gating(fitted.gates_.values, list(fitted.pathway_names_), fitted.contexts_)
        shared, inputs = np.asarray(fitted.shared_, dtype=bool), fitted.inputs_.values
    return PathwaySpec(
        gating, shared, inputs, tuple(map(tuple, state["widths"])), tuple(map(tuple, state["init_scales"])),
        tuple(state["trunk"]), tuple(state["trunk_scales"]), bool(state.get("hidden_bias", False)),
        bool(state.get("output_bias", False)), float(state.get("bias_init_scale", 0.0)),
        tuple(state.get("leak", ())),
    )
