"""The ReLN: the gated deep linear network whose gates are the pathways a ReLU network uses
(Jarvis, Klein, Rosman & Saxe, *Make Haste Slowly*, ICLR 2025, arXiv 2503.06181).

``ReLN.from_pathways`` turns a :class:`relu_probe.Pathways` result into a GDLN with one
pathway per discovered context set (the smallest ones, holding at most 5% of the mass
together, dropped: :func:`kept_pathways`), the shared pathway
reading every input and the others only the inputs that vary within a context (the paper's
rule; cue inputs are detected from the data). It trains with the paper's ``"residual"`` rule
by default.

Initial scales come from the network imitated, never from the paper's constants: from the
untrained ReLU network (``network=``, e.g. a training monitor's step-0 copy) or its init std
and width (``init_std=``, ``width=``), each context-set pathway starts in the mean state of
the network's units that are on exactly in its contexts (:mod:`relu_probe.reln.init`); a
pathway of ``h`` units in the state ``A = a0 I``, ``B = b0 I`` gets weight stds
``σ_in = √(b0/h)``, ``σ_out = √(a0/h)``. Otherwise the documented default
(:data:`relu_probe.reln.init.DEFAULT_RELATIVE_INIT`, a small initialisation relative to the
data: the full set starts at ``π0 = 10⁻⁶ σ_1(M_lin)``, the other sets in proportion to the
share of Gaussian units they would hold). The paper's ReLN init is
:data:`relu_probe.tasks.PAPER_INIT_SCALE`, on request: ``init_scale=PAPER_INIT_SCALE``.
Pathways found *per site* of a network with several hidden layers (a mapping
``{site: Pathways}``, a list of one-site results, or one result with a ``site`` coord) give a
*layered* ReLN: one gated block per (layer, pathway), each layer's blocks feeding the next
layer's (:mod:`relu_probe.reln.layered`), trained by simulation with the joint rule — never by
the one-layer closed form.

With ``trajectory=`` (gates recorded during training, e.g. by a TrainingMonitor) the
blocks' gates follow training instead of being fixed at their final context sets. A block
stands for the units whose dominant pathway it is; on each sample its gate is the
root-mean-square of their 0/1 gates, ``√(share open)``. Through a block of ``h`` units with
random weights of std ``σ`` the forward signal's second moment is ``Σ_u g_u σ² … = share · h σ² …``
for the units' own gates, and ``g_b² · h σ² …`` for one block gate ``g_b``: the root matches
it, and a block whose units are all open or all closed gets gate 1 or 0 exactly (the share
itself would halve the signal at initialisation, where about half of a ReLU layer is open).

The ReLU network's biases and LeakyReLU slopes are modelled, not dropped
(:mod:`relu_probe.reln.spec`): read off ``model`` / ``recording``
(:mod:`relu_probe.reln.network`) or given as ``hidden_bias``, ``output_bias``, ``leak``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._util.arrays import as_2d_float, check_xy, object_array
from .._util.checks import check_choice, check_real
from ..errors import InputError, ReluProbeWarning, ValueInputError, describe
from .exact import MeanState
from .gating import cue_inputs, resolve_gates, sample_groups
from .gdln import GDLN
from .init import DEFAULT_RELATIVE_INIT, context_set_state, default_pi0, init_scales_of, layer_weight_stds
from .layered import is_layered_gates
from .network import network_facts, require_slopes
from .spec import resolve_inputs, resolve_shared, resolve_spec

__all__ = ["ReLN", "DEFAULT_MIN_MASS", "MIN_MASS_TAIL", "MIN_MASS_COMPARABLE", "kept_pathways"]

#: The default ``min_mass`` of :meth:`ReLN.from_pathways`: a cumulative share (see
#: :func:`kept_pathways`), not a fixed mass.
DEFAULT_MIN_MASS = "auto"
#: ``min_mass="auto"``: the pathways left out of a ReLN hold at most this share of the mass.
MIN_MASS_TAIL = 0.05
#: ``min_mass="auto"``: pathways of at least this fraction of the mass of the last pathway the
#: 95% needs are kept with it (comparable masses are not split; see :func:`kept_pathways`).
MIN_MASS_COMPARABLE = 0.5


def kept_pathways(mass: Any, min_mass: float | str = DEFAULT_MIN_MASS) -> np.ndarray:
    """Indices of the pathways a ReLN models, from their recorded masses.

    ``min_mass="auto"``: the largest pathways, in order of mass, until they hold at least
    ``1 - MIN_MASS_TAIL`` (95%) of the mass; with them every pathway of comparable mass, at
    least ``MIN_MASS_COMPARABLE`` (½) of the smallest one kept. Sets whose masses differ only
    by noise — the three single-context sets of a symmetric task, say, at 0.0204, 0.0197 and
    0.0196 — are then kept or dropped together, never split by which one the noise made
    largest (a factor 2 is far wider than that noise and far narrower than the gap between
    the orders of a structure's sets). The tail left out — at most 5% of the mass, typically many small context sets
    from noisy gates — would each add a pathway of its own to the ReLN. A fixed mass would
    not do: the masses of a structure shrink with the number of its sets (a (K−1) structure
    has K + 1 sets of mass about 1/(K + 1): at K = 20 every one is below 0.05). A float keeps
    the pathways of mass >= ``min_mass``.
    """
    mass = np.asarray(mass, dtype=np.float64).reshape(-1)
    if isinstance(min_mass, str):
        check_choice("min_mass", min_mass, ["auto"])
        total = mass.sum()
        if total <= 0:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(-mass, kind="stable")
        share = np.cumsum(mass[order]) / total
        last = min(int(np.searchsorted(share, 1.0 - MIN_MASS_TAIL - 1e-12)), mass.size - 1)
        floor = mass[order[last]]
        return np.flatnonzero((mass > 0) & (mass >= floor * MIN_MASS_COMPARABLE))
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    return np.flatnonzero(mass >= min_mass)


class ReLN(GDLN):
    """A GDLN built to imitate a ReLU network: one pathway per discovered gating.

    Same parameters as :class:`relu_probe.GDLN`, with the paper's structure as defaults:
    ``inputs="auto"``, ``rule=None`` meaning ``"residual"`` (``"joint"`` for a layered ReLN),
    ``hidden=100`` per pathway. ``init_scale=None`` means the default initial state of the
    module docstring, resolved at :meth:`fit` from the data (``init_source_`` says which);
    with ``depth > 1``, a ``trunk`` or a layered ReLN it is the GDLN's default
    (:mod:`relu_probe.reln.small_init`). ``lr=None`` / ``epochs=None`` are derived from the data
    at :meth:`fit` (as :class:`relu_probe.GDLN`, :mod:`relu_probe.reln.schedule`; the paper's
    are ``rp.tasks.PAPER_LR`` / ``PAPER_EPOCHS``, on request). ``context`` stores per-sample
    context labels used by :meth:`fit` when none are passed; ``items`` per-sample item labels
    for the default initial state (which samples are one item), else items are samples with
    equal non-cue inputs (so noisy repeats of an item need ``items``; :meth:`from_pathways`
    takes them from the pathways' ``within`` coord).

    Build one from a :class:`relu_probe.Pathways` with :meth:`from_pathways`.

    Attributes
    ----------
    pathway_mass_ : xarray.DataArray or None
        Recorded mass of the kept pathways (``from_pathways`` only), renormalised to 1.
    dropped_ : list of tuple, or dict of site to list of tuple
        Context sets of the pathways left out (below ``min_mass``); per site for a layered
        ReLN.
    block_mass_ : xarray.DataArray or None
        A layered ReLN built by ``from_pathways``: the recorded mass of every block (dim
        ``block``, coords ``layer`` and ``contexts``), renormalised to 1 within each layer.
    init_source_ : str
        Where the initial weight scales came from (after :meth:`fit`).
    """

    def __init__(
        self,
        gates: Any,
        *,
        hidden: int | Sequence[Any] = 100,
        depth: int | Sequence[int] = 1,
        init_scale: Any = None,
        inputs: Any = "auto",
        rule: str | None = None,
        shared: Any = None,
        trunk: Sequence[int] | None = None,
        trunk_init_scale: Any = None,
        hidden_bias: bool | Sequence[bool] = False,
        output_bias: bool = False,
        bias_init_scale: float = 0.0,
        leak: float | Sequence[float] = 0.0,
        gate_schedule: Any = None,
        warm_start: bool = False,
        lr: float | None = None,
        epochs: int | None = None,
        sv_stride: int = 10,
        seed: int | None = 0,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        progress: bool | None = None,
        context: Any = None,
        items: Any = None,
    ) -> None:
        super().__init__(
            gates,
            hidden=hidden,
            depth=depth,
            init_scale=init_scale,
            inputs=inputs,
            rule=rule,
            shared=shared,
            trunk=trunk,
            trunk_init_scale=trunk_init_scale,
            hidden_bias=hidden_bias,
            output_bias=output_bias,
            bias_init_scale=bias_init_scale,
            leak=leak,
            gate_schedule=gate_schedule,
            warm_start=warm_start,
            lr=lr,
            epochs=epochs,
            sv_stride=sv_stride,
            seed=seed,
            dtype=dtype,
            device=device,
            progress=progress,
        )
        self.context = context
        self.items = items

    def fit(
        self,
        X: Any,
        Y: Any,
        *,
        context: Any = None,
        lr: float | None = None,
        epochs: int | None = None,
        check_lr: bool = True,
    ) -> ReLN:
        """Train the ReLN (see :meth:`relu_probe.GDLN.fit`); ``context`` defaults to the
        labels stored at construction."""
        ctx = self.context if context is None else context
        if self.init_scale is None:
            self._fit_init_scale, self.init_source_ = self._default_init_scale(X, Y, ctx)
        else:
            self._fit_init_scale = self.init_scale
            self.init_source_ = getattr(self, "_given_init_source", "init_scale")
        try:
            super().fit(X, Y, context=ctx, lr=lr, epochs=epochs, check_lr=check_lr)
        finally:
            del self._fit_init_scale
        return self

    def _init_scale_param(self) -> Any:
        return getattr(self, "_fit_init_scale", self.init_scale)

    def _rule(self, spec: Any) -> str:
        if self.rule is None:
            return super()._rule(spec) if is_layered_gates(self.gates) else "residual"
        return super()._rule(spec)

    def _default_init_scale(self, X: Any, Y: Any, context: Any) -> tuple[Any, str]:
        """The default initial weight stds (class docstring) and where they came from."""
        if is_layered_gates(self.gates):
            return None, "the layered GDLN default, a small init relative to the data (relu_probe.reln.small_init)"
        Xn, Yn = check_xy(X, Y)
        spec = resolve_spec(self.gates, Xn, context=context, shared=self.shared, inputs=self.inputs,
                            hidden=self.hidden, depth=self.depth, trunk=self.trunk)
        if any(len(w) != 1 for w in spec.widths) or spec.trunk:
            return None, "the GDLN default for deep pathways or a trunk, a small init relative to the data (relu_probe.reln.small_init)"
        h = [w[0] for w in spec.widths]
        sets = spec.gating.contexts
        if context is not None and sets is not None and all(sets) and np.array_equal(
            spec.gating.G, _context_gates(sets, np.asarray(context))
        ):
            ctx = np.asarray(context)
            cue = cue_inputs(Xn, sample_groups(None, ctx))
            items = None if self.items is None else np.asarray(self.items).reshape(-1)
            if items is not None and items.shape[0] != Xn.shape[0]:
                raise ValueInputError(f"`items` has {items.shape[0]} labels but `X` has {Xn.shape[0]} samples.")
            state = context_set_state(Xn, Yn, list(sets), ctx, spec.inputs.astype(np.float64), cue, within=items)
        else:
            state = MeanState.from_pi0(np.full(spec.n_pathways, default_pi0(Xn, Yn)),
                                       source=f"default small init (π0 = {DEFAULT_RELATIVE_INIT:g} × σ1 of the "
                                              "best linear map, every pathway)")
        return init_scales_of(state, h), state.source

    @classmethod
    def from_pathways(
        cls,
        pw: Any,
        X: Any,
        Y: Any = None,
        *,
        model: Any = None,
        recording: Any = None,
        min_mass: float | str = DEFAULT_MIN_MASS,
        inputs: Any = "auto",
        network: Any = None,
        init_std: Any = None,
        width: Any = None,
        hidden: Any = None,
        hidden_bias: Any = None,
        output_bias: Any = None,
        leak: Any = None,
        trajectory: Any = None,
        **params: Any,
    ) -> ReLN:
        """The ReLN whose gates are the pathways of a :class:`relu_probe.Pathways` result.

        Parameters
        ----------
        pw : relu_probe.Pathways, mapping of site to Pathways, or sequence of Pathways
            From :func:`relu_probe.find_pathways` on a recording of ``X`` (same samples, same
            order). Pathways of one site (or pooled over sites) give a ReLN with one gated
            layer. Pathways found per site of several sites — a mapping ``{site: Pathways}``
            or a list in layer order (each from ``find_pathways(..., sites=site)``), or one
            result with a ``site`` coord along ``pathway`` — give a layered ReLN: one gated
            block per (site, pathway), connected layer to layer
            (:mod:`relu_probe.reln.layered`), trained by the joint rule.
        X : array-like (sample, feature)
            The recorded inputs: used to detect cue inputs and to check the sample count.
        Y : array-like (sample, output), optional
            Targets, only checked against ``X`` here (pass them to :meth:`fit`).
        model : torch.nn.Module, optional
            The ReLU network: its Linear layers tell whether each layer has a bias, its
            ``nn.LeakyReLU`` modules their slopes (:mod:`relu_probe.reln.network`).
        recording : xarray.Dataset, optional
            The recording the pathways came from: its per-site ``site_slopes`` attr, when
            present, gives the slopes.
        min_mass : "auto" or float, default="auto"
            Which pathways are modelled (:func:`kept_pathways`): ``"auto"`` the largest ones
            holding 95% of the recorded mass ``pw.mass`` (ties kept together); a float those
            of mass >= ``min_mass``. The others' context sets are listed in ``dropped_``.
        inputs : "auto", "all", None or masks, default="auto"
            ``"auto"``: the shared pathway (open on every sample) reads every input; every
            other pathway reads only the inputs that vary within a context — cue inputs,
            constant within each context (groups from the ``pw.by`` sample coord, else from the
            gate patterns), are left to the shared pathway; an input constant on every sample
            is a bias input, not a cue, and every pathway reads it. Layered: what the first
            layer's blocks read. Ignored with a ``trunk`` (every input then goes through the
            shared trunk).
        hidden : optional
            Units per pathway. Default: 100 per pathway (the paper's ReLN) for one layer; for
            a layered ReLN each site's width (its number of recorded units) shared out over
            the kept pathways in proportion to their mass, at least one unit each.
        hidden_bias, output_bias : bool, optional
            Model the hidden layers' biases (a constant input every pathway reads) and the
            readout's bias (an ungated direct path). Default: read off ``model`` (False when
            it cannot tell, or without a model).
        leak : float or sequence, optional
            LeakyReLU slope of each site's units. Default: read off ``recording`` /
            ``model``; a leaky site of unknown slope is refused, never taken for a ReLU.
        network : torch.nn.Module, optional
            The *untrained* ReLU network (e.g. a TrainingMonitor's step-0 copy): each
            context-set pathway starts in the mean state of its units that are on exactly in
            its contexts (:mod:`relu_probe.reln.init`). A layered ReLN, whose blocks share
            out each site's units, takes each weight layer's std from the network's
            ``nn.Linear`` layers in order (:func:`relu_probe.reln.init.layer_weight_stds`).
        init_std, width : optional
            Instead of ``network``: the network's initial weight std (one, or (input, output))
            and hidden width. A layered ReLN takes ``init_std`` alone (one std, or one per
            weight layer) and refuses ``width``.
        trajectory : xarray.Dataset or TrainingMonitor, optional
            Gates recorded during the ReLU network's training: a dataset with ``gate``
            (step, sample, unit) over the same samples and units (``TrainingMonitor
            .to_dataset()``, or the monitor itself). The ReLN is then layered (even for one
            site) and its gates follow training: from step ``t`` on (one full-batch step per
            epoch) a block's gate on sample ``μ`` is the root-mean-square of its units' gates
            at step ``t`` — the units whose dominant pathway it is (``pw.labels``) — i.e.
            ``√(share open)`` for 0/1 gates (``gate_schedule``, :mod:`relu_probe.reln.layered`;
            why the root: module docstring). A block without units keeps its fixed gate.
        **params
            Any other :class:`ReLN` parameter (``init_scale``, ``rule``, ``lr``, ``epochs``,
            ``seed`` …).

        Returns
        -------
        ReLN
            Unfitted; call ``.fit(X, Y)``.

        Warns
        -----
        ReluProbeWarning
            ``pw`` pools pathways of several sites: its one-layer ReLN mixes layers (find
            the pathways per site for a layered ReLN).
        """
        layers = _layers_of(pw)
        if Y is None:
            Xn = as_2d_float("X", X)
        else:
            Xn, _ = check_xy(X, Y)
        sites = [site for site, _ in layers]
        hidden_flags, out_flag, slopes, leak = _layer_facts(sites, model, recording, leak)
        if output_bias is None:
            output_bias = bool(out_flag)
        kept = [_kept(site, one, Xn.shape[0], min_mass) for site, one in layers]
        if trajectory is not None:
            if any(site is None for site in sites):
                raise ValueInputError(
                    "`trajectory` needs per-site pathways (each `pw` entry one site's result) to match the "
                    "recorded units to the ReLN's blocks."
                )
            params["gate_schedule"] = _schedule_from(trajectory, layers, kept, Xn.shape[0])
        if len(layers) == 1 and trajectory is None:
            if hidden_bias is None:
                hidden_bias = bool(hidden_flags[0]) if hidden_flags[0] is not None else False
            return cls._one_layer(
                layers[0], kept[0], Xn, Y, inputs=inputs, hidden=hidden, hidden_bias=hidden_bias,
                output_bias=output_bias, leak=slopes[0] if leak is None else leak[0], network=network,
                init_std=init_std, width=width, params=params,
            )
        source = _layered_scale(params, len(layers) + 1, network=network, init_std=init_std, width=width)
        if hidden_bias is None:
            hidden_bias = [bool(f) if f is not None else False for f in hidden_flags]
        model_ = cls._layered(layers, kept, Xn, inputs=inputs, hidden=hidden, hidden_bias=hidden_bias,
                              output_bias=output_bias, leak=slopes if leak is None else leak, params=params)
        if source is not None:
            model_._given_init_source = source
        return model_

    @classmethod
    def _one_layer(cls, layer: tuple[str | None, Any], kept: tuple[Any, ...], Xn: np.ndarray, Y: Any, *,
                   inputs: Any, hidden: Any, hidden_bias: bool, output_bias: bool, leak: Any, network: Any,
                   init_std: Any, width: Any, params: dict[str, Any]) -> ReLN:
        """The one-gated-layer ReLN of one site's (or pooled) kept pathways; its initial state
        from ``network`` / ``init_std`` / ``width`` when given (see :meth:`from_pathways`)."""
        site, one = layer
        G, contexts, mass, dropped, context, _ = kept
        member = getattr(one, "membership", None)
        if site is None and member is not None and "site" in member.coords:
            pooled = list(dict.fromkeys(np.asarray(member["site"].values).astype(str).tolist()))
            if len(pooled) > 1:
                warnings.warn(
                    f"`pw` pools the pathways of sites {pooled}: a one-layer ReLN of pooled pathways mixes "
                    "layers. Find the pathways per site (find_pathways per site, or a mapping {site: "
                    "Pathways}) to get a layered ReLN.",
                    ReluProbeWarning,
                    stacklevel=3,
                )
        if params.get("trunk"):
            inputs = None  # every input goes through the shared trunk
        elif isinstance(inputs, str) and inputs == "auto":
            # resolved now, from the pathways' own gates and context labels
            gating = resolve_gates(G, Xn.shape[0], warn_empty=False)
            inputs = resolve_inputs("auto", gating, resolve_shared(params.get("shared"), gating), Xn, context)
        params.setdefault("context", context)
        within = getattr(one, "within", None)
        if within is not None and within in one.sample_gates.coords:
            params.setdefault("items", np.asarray(one.sample_gates[within].values))
        params.setdefault("rule", "residual")
        hidden = 100 if hidden is None else hidden
        source = None
        if network is not None or init_std is not None or width is not None:
            if params.get("init_scale") is not None:
                raise ValueInputError("pass either `init_scale` or `network` / `init_std` and `width`, not both.")
            params["init_scale"], source = _scale_from_network(
                one, G, Xn, Y, context, inputs, {**params, "hidden": hidden},
                network=network, init_std=init_std, width=width,
            )
        model_ = cls(G, inputs=inputs, hidden=hidden, hidden_bias=hidden_bias, output_bias=output_bias, leak=leak,
                     **params)
        if source is not None:
            model_._given_init_source = source
        model_.pathway_mass_ = _mass_array(mass, contexts)
        model_.block_mass_ = None
        model_.dropped_ = dropped
        return model_

    @classmethod
    def _layered(cls, layers: list[tuple[str | None, Any]], kept: list[tuple[Any, ...]], Xn: np.ndarray, *,
                 inputs: Any, hidden: Any, hidden_bias: Any, output_bias: bool, leak: Any,
                 params: dict[str, Any]) -> ReLN:
        """The layered ReLN (one gated block per site and kept pathway, :mod:`relu_probe.reln.layered`)."""
        if params.get("trunk") or params.get("depth", 1) != 1:
            raise ValueInputError(
                "`trunk` and `depth` do not apply to a layered ReLN: its layers are the recorded sites."
            )
        sites = [site for site, _ in layers]
        gates = {site: k[0] for site, k in zip(sites, kept)}
        context = next((k[4] for k in kept if k[4] is not None), None)
        if hidden is None:
            hidden = [_mass_widths(one, site, k[2]) for (site, one), k in zip(layers, kept)]
        if isinstance(inputs, str) and inputs == "auto":
            gating = resolve_gates(kept[0][0], Xn.shape[0], warn_empty=False)
            first_shared = (params.get("shared") or {}).get(sites[0]) if isinstance(params.get("shared"), Mapping) \
                else None
            inputs = resolve_inputs("auto", gating, resolve_shared(first_shared, gating), Xn, context)
        params.setdefault("rule", "joint")
        params.setdefault("context", context)
        model_ = cls(gates, inputs=inputs, hidden=hidden, hidden_bias=hidden_bias, output_bias=output_bias,
                     leak=leak, **params)
        model_.pathway_mass_ = None
        model_.block_mass_ = xr.DataArray(
            np.concatenate([k[2] for k in kept]),
            dims=("block",),
            coords={"layer": ("block", np.concatenate([[site] * len(k[2]) for site, k in zip(sites, kept)])),
                    "contexts": ("block", object_array([c for k in kept for c in k[1]]))},
            name="mass",
        )
        model_.dropped_ = {site: k[3] for site, k in zip(sites, kept)}
        return model_

    @classmethod
    def _saved_arrays(cls) -> tuple[str, ...]:
        return (*super()._saved_arrays(), "pathway_mass_", "block_mass_")

    @classmethod
    def _saved_values(cls) -> tuple[str, ...]:
        return (*super()._saved_values(), "dropped_")


def _context_gates(sets: Sequence[tuple], context: np.ndarray) -> np.ndarray:
    """(pathway, sample) gates of context sets: open where the sample's context is in the set."""
    return np.array([np.isin(context, np.asarray(S, dtype=context.dtype)) for S in sets], dtype=np.float64)


def _layered_scale(params: dict[str, Any], n_weights: int, *, network: Any, init_std: Any,
                   width: Any) -> str | None:
    """Set ``params["init_scale"]`` of a layered ReLN from the untrained ``network`` (each
    weight layer's std, :func:`relu_probe.reln.init.layer_weight_stds`) or ``init_std`` (one
    std or one per weight layer); return where it came from (None: neither given)."""
    if width is not None:
        raise ValueInputError(
            "`width` applies to a ReLN with one gated layer (the hidden width behind `init_std`); a layered "
            f"ReLN's blocks share out each recorded site's own units, so leave width=None (got {describe(width)})."
        )
    if network is None and init_std is None:
        return None
    if params.get("init_scale") is not None:
        raise ValueInputError("pass either `init_scale` or `network` / `init_std`, not both.")
    if network is not None and init_std is not None:
        raise ValueInputError("pass either `network` or `init_std` (the initial state comes from one), not both.")
    if network is not None:
        params["init_scale"] = layer_weight_stds(network, n_weights)
        return ("the untrained network's weight std per layer (" +
                ", ".join(f"{s:.3g}" for s in params["init_scale"]) + ")")
    params["init_scale"] = init_std
    return f"init_std {init_std} per weight layer"


def _scale_from_network(pw: Any, G: xr.DataArray, X: np.ndarray, Y: Any, context: Any, inputs: Any,
                        params: dict[str, Any], *, network: Any, init_std: Any, width: Any) -> tuple[Any, str]:
    """Per-pathway initial weight stds of the ReLN of *pw*'s kept pathways *G* from the
    untrained network (or its init std and width): :func:`relu_probe.reln.init.context_set_state`."""
    sets = [tuple(c) for c in G["contexts"].values] if "contexts" in G.coords else None
    if context is None or sets is None or not all(sets):
        raise ValueInputError(
            "`network` / `init_std`: the initial state per pathway needs pathways keyed by context "
            "sets and the recording's context labels (`pw.by` as a sample coord)."
        )
    Xn = X
    Yn = np.zeros((X.shape[0], 1)) if Y is None else check_xy(X, Y)[1]
    spec = resolve_spec(G, Xn, context=context, shared=params.get("shared"), inputs=inputs,
                        hidden=params.get("hidden", 100), depth=params.get("depth", 1), trunk=params.get("trunk"))
    if any(len(w) != 1 for w in spec.widths) or spec.trunk:
        raise ValueInputError("`network` / `init_std` give the initial state of one-hidden-layer pathways only.")
    within = getattr(pw, "within", None)
    items = None
    if within is not None and within in pw.sample_gates.coords:
        items = np.asarray(pw.sample_gates[within].values)
    ctx = np.asarray(context)
    cue = cue_inputs(Xn, sample_groups(None, ctx))
    state = context_set_state(Xn, Yn, sets, ctx, spec.inputs.astype(np.float64), cue, within=items,
                              network=network, init_std=init_std, width=width)
    return init_scales_of(state, [w[0] for w in spec.widths]), state.source
# ----------------------------------------------------------------------------- helpers
def _check_pathways(pw: Any, name: str = "pw") -> None:
    for attr in ("mass", "sample_gates"):
        if not hasattr(pw, attr):
            raise InputError(
                f"`{name}` must be a relu_probe.Pathways (from rp.find_pathways), got {describe(pw)}."
            )


def _site_of(pw: Any) -> str | None:
    """The one site a Pathways result covers (None when pooled over several or unknown)."""
    member = getattr(pw, "membership", None)
    if member is None or "site" not in member.coords:
        return None
    sites = list(dict.fromkeys(np.asarray(member["site"].values).astype(str).tolist()))
    return sites[0] if len(sites) == 1 else None


def _layers_of(pw: Any) -> list[tuple[str | None, Any]]:
    """``[(site, one-site Pathways)]`` in layer order, from the forms ``from_pathways`` takes."""
    if isinstance(pw, Mapping):
        if not pw:
            raise ValueInputError("`pw` as a mapping {site: Pathways} is empty.")
        for site, one in pw.items():
            _check_pathways(one, f"pw[{site!r}]")
        return [(str(site), one) for site, one in pw.items()]
    if isinstance(pw, (list, tuple)):
        if not pw:
            raise ValueInputError("`pw` as a list of per-site Pathways is empty.")
        out = []
        for i, one in enumerate(pw):
            _check_pathways(one, f"pw[{i}]")
            site = _site_of(one)
            if site is None:
                raise ValueInputError(
                    f"`pw[{i}]` covers several sites (or none is recorded): each entry of a list must be one "
                    "site's pathways (find_pathways(..., sites=site)); pass a mapping {site: Pathways} otherwise."
                )
            out.append((site, one))
        names = [s for s, _ in out]
        if len(set(names)) != len(names):
            raise ValueInputError(f"`pw` lists the sites {names}: each site once, in layer order.")
        return out
    _check_pathways(pw)
    if "site" in pw.mass.coords and hasattr(pw, "sel"):  # per-site pathways in one result
        sites = list(dict.fromkeys(np.asarray(pw.mass["site"].values).astype(str).tolist()))
        if len(sites) > 1:
            return [(site, pw.sel(site=site)) for site in sites]
        member = getattr(pw, "membership", None)
        pooled = member is not None and "site" in member.coords and _site_of(pw) is None
        return [(None if pooled or not sites else sites[0], pw)]  # pooled (per_site=False): no one site
    return [(_site_of(pw), pw)]


def _layer_facts(sites: list[str | None], model: Any, recording: Any,
                 leak: Any) -> tuple[list[Any], Any, list[Any], list[float] | None]:
    """Per layer: whether it has a bias, the readout's bias, the recorded/model slopes (a leaky
    site of unknown slope refused), and the user's *leak* as one slope per layer (None when not
    given)."""
    facts = network_facts([s for s in sites if s is not None], model=model, recording=recording) \
        if all(s is not None for s in sites) else None
    if facts is None:
        hidden_flags, out_flag, slopes = [None] * len(sites), None, [None] * len(sites)
    else:
        hidden_flags, out_flag, slopes = list(facts.hidden_bias), facts.output_bias, list(facts.slopes)
    if leak is None:
        slopes = require_slopes(facts, sites, None) if facts is not None else [0.0] * len(sites)
        return hidden_flags, out_flag, slopes, None
    leak = [leak] * len(sites) if np.isscalar(leak) else list(leak)  # one slope for every site, or one per site
    if len(leak) != len(sites):
        raise ValueInputError(f"`leak` must be one slope or one per site ({len(sites)}), got {len(leak)}.")
    return hidden_flags, out_flag, slopes, leak


def _kept(site: str | None, pw: Any, n_samples: int, min_mass: float | str) -> tuple[Any, ...]:
    """One site's kept pathways: gates (DataArray, pathway × sample), context sets, masses
    (renormalised to 1), the dropped sets, the context labels of the samples and the kept
    pathways' indices in ``pw``."""
    where = "" if site is None else f" of site {site!r}"
    gates_da = pw.sample_gates
    if not isinstance(gates_da, xr.DataArray) or set(gates_da.dims) != {"pathway", "sample"}:
        raise InputError("`pw.sample_gates` must be a (pathway, sample) DataArray.")
    gates_da = gates_da.transpose("pathway", "sample")
    if gates_da.sizes["sample"] != n_samples:
        raise ValueInputError(
            f"`X` has {n_samples} samples but the pathways{where} were found on "
            f"{gates_da.sizes['sample']}; pass the recorded inputs in their recorded order."
        )
    mass = np.asarray(pw.mass.values, dtype=np.float64)
    contexts = list(pw.mass["contexts"].values) if "contexts" in pw.mass.coords else [None] * len(mass)
    total = mass.sum()
    share = mass / total if total > 0 else mass
    keep = kept_pathways(share, min_mass)
    if keep.size == 0:
        raise ValueInputError(
            f"no pathway{where} has mass >= `min_mass` ({min_mass}); largest mass is "
            f"{share.max() if share.size else 0.0:.3g}. Lower `min_mass`."
        )
    dropped = [contexts[i] for i in range(len(mass)) if i not in set(keep.tolist())]
    G = gates_da.isel(pathway=keep).astype(np.float64)
    by = getattr(pw, "by", None)
    context = None
    if by is not None and by in gates_da.coords and gates_da[by].dims == ("sample",):
        context = np.asarray(gates_da[by].values)
    return G, [contexts[i] for i in keep], mass[keep] / mass[keep].sum(), dropped, context, keep


def _mass_widths(pw: Any, site: str, mass: np.ndarray) -> list[int]:
    """A site's width (its recorded units) shared out over its kept pathways by mass, at least
    one unit each."""
    member = getattr(pw, "membership", None)
    if member is None:
        raise ValueInputError(f"site {site!r}: the pathways carry no `membership`, so the site's width is "
                              "unknown; pass `hidden=`.")
    n_units = int(member.sizes["unit"]) if "site" not in member.coords else int(
        (np.asarray(member["site"].values).astype(str) == site).sum())
    return [max(1, int(round(n_units * m))) for m in mass]


def _mass_array(mass: np.ndarray, contexts: list) -> xr.DataArray:
    return xr.DataArray(
        mass, dims=("pathway",),
        coords={"pathway": np.arange(mass.size), "contexts": ("pathway", object_array(contexts))},
        name="mass",
    )


def _schedule_from(trajectory: Any, layers: list[tuple[Any, Any]], kept: list[tuple[Any, ...]],
                   n_samples: int) -> dict[int, dict[str, np.ndarray]]:
    """``gate_schedule`` from recorded training gates: per step, per site, the share of each
    kept block's units (those whose dominant pathway it is) open on each sample."""
    ds = trajectory.to_dataset() if hasattr(trajectory, "to_dataset") and not isinstance(trajectory, xr.Dataset) \
        else trajectory
    if not isinstance(ds, xr.Dataset):
        raise InputError(
            f"`trajectory` must be a recording with a step dim (TrainingMonitor.to_dataset()), got {describe(trajectory)}."
        )
    var = "gate" if "gate" in ds else "gate_rate" if "gate_rate" in ds else None
    if var is None or set(ds[var].dims) != {"step", "sample", "unit"}:
        raise ValueInputError(
            "`trajectory` must hold `gate` (step, sample, unit), as TrainingMonitor.to_dataset() returns; got "
            f"variables {sorted(ds.data_vars)}."
        )
    if ds.sizes["sample"] != n_samples:
        raise ValueInputError(
            f"`trajectory` has {ds.sizes['sample']} samples but `X` has {n_samples}: record the monitor on the "
            "same inputs, in the same order."
        )
    gate = ds[var].transpose("step", "sample", "unit")
    unit_site = np.asarray(ds["site"].values).astype(str)
    unit_neuron = np.asarray(ds["neuron"].values).astype(np.int64)
    steps = [int(s) for s in ds["step"].values]
    shares: dict[str, np.ndarray] = {}
    for (site, one), k in zip(layers, kept):
        G, keep = np.asarray(k[0].values, dtype=np.float64), k[5]
        labels = one.labels
        lab_site = np.asarray(labels["site"].values).astype(str) if "site" in labels.coords else None
        lab_neuron = np.asarray(labels["neuron"].values).astype(np.int64)
        here = slice(None) if lab_site is None else lab_site == site
        neurons, owner = lab_neuron[here], np.asarray(labels.values)[here]
        where = {n: i for i, n in enumerate(unit_neuron[unit_site == site])}
        columns = np.flatnonzero(unit_site == site)
        if not columns.size:
            raise ValueInputError(f"`trajectory` has no units of site {site!r}; record the same sites.")
        values = np.broadcast_to(G, (len(steps),) + G.shape).copy()  # (step, block, sample)
        site_gate = np.asarray(gate.isel(unit=columns).values, dtype=np.float64)  # (step, sample, unit of site)
        for b, p in enumerate(keep):
            members = [where[n] for n in neurons[owner == p] if n in where]
            if members:  # the root-mean-square of the members' gates (module docstring)
                values[:, b, :] = np.sqrt((site_gate[:, :, members] ** 2).mean(axis=2))
        shares[site] = values
    return {step: {site: shares[site][i] for site, _ in layers} for i, step in enumerate(steps)}
