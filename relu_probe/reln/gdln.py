"""Gated Deep Linear Networks (Saxe, Sodhani & Lewallen 2022, arXiv 2207.10430), simulated by
full-batch gradient descent.

A GDLN here is a sum of *pathways*. Pathway ``p`` is a deep linear chain
``W_{p,L} ··· W_{p,1}`` that reads the inputs selected by its input mask ``m_p`` and is
switched on sample ``μ`` by a gate ``g_{pμ} ∈ {0, 1}``::

    ŷ_μ = Σ_p g_{pμ} · W_{p,L} ··· W_{p,1} (m_p ⊙ x_μ)

and every pathway's map ``M_p = W_{p,L} ··· W_{p,1}`` is trained by plain gradient descent
(``W ← W − lr · ∇``) on the summed loss ``L = ½ Σ_μ ‖ŷ_μ − y_μ‖²`` (the paper's loss).

Two training rules:

``"joint"``
    every pathway follows the gradient of the total loss ``L``.
``"residual"``
    the rule of the released code of Jarvis et al. (arXiv 2503.06181): the *shared* pathways
    follow ``L_s = ½ Σ_μ ‖ŷ^s_μ − y_μ‖²`` (their own prediction ``ŷ^s`` against ``Y``, as if
    alone), the other pathways follow ``L_c = ½ Σ_μ ‖ŷ^c_μ − (y_μ − sg[ŷ^s_μ])‖²``, i.e. they
    chase the live residual of the shared pathways with a stop-gradient. Since
    ``ŷ^c − (y − ŷ^s) = ŷ − y``, the context pathways see the total error and the shared
    ones only their own.

With ``hidden_bias`` every pathway also reads a constant input (its units' biases), with
``output_bias`` an ungated direct path adds a bias to every output, and ``leak`` gives the
units a LeakyReLU slope ``α`` (effective gate ``α + (1 − α) g``): :mod:`relu_probe.reln.spec`.

The pathways are resolved once into a :class:`relu_probe.reln.spec.PathwaySpec`; the weights
live in block-masked matrices trained by the hand-written gradient step of
:mod:`relu_probe.reln.blocks`.

A *layered* GDLN — ``gates`` as a mapping ``{layer: gating}``, one gated block per (layer,
pathway), each layer's blocks feeding the next layer's — is the ReLN of a ReLU network with
several hidden layers (:mod:`relu_probe.reln.layered`); it trains by the joint rule
(:mod:`relu_probe.reln.layered_blocks`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator

from .._util.arrays import as_2d_float, check_xy
from .._util.checks import check_choice, check_int, check_real
from .._util.progress import progress_bar
from ..data import netcdf
from ..errors import InputError, NotFittedError, StoreError, ValueInputError, describe
from .blocks import PathwayBlocks, gradient_step
from .dynamics import check_divergence, divergence_limit
from .gating import resolve_gates
from .layered import LayeredSpec, is_layered_gates, layered_spec_from_state, layered_spec_state, resolve_layered_spec
from .layered_blocks import LayeredBlocks, layered_step
from .spec import PathwaySpec, effective_gates, resolve_spec, spec_from_state, spec_state, warn_residual_is_joint
from .exact import exact_curve, mean_state_of
from .schedule import Schedule, StabilityProblem, resolve_schedule, stability_problem
from .stability import max_stable_lr

__all__ = ["GDLN"]

#: Fitted DataArrays a saved GDLN keeps (:meth:`GDLN.to_netcdf`).
_SAVED_ARRAYS = ("singular_values_", "maps_", "gates_", "inputs_")
#: Fitted plain values a saved GDLN keeps.
_SAVED_VALUES = ("pathway_names_", "contexts_", "n_features_in_", "n_outputs_", "n_samples_fit_", "lr_",
                 "epochs_", "L0_", "rule_")


class GDLN(BaseEstimator):
    """A gated deep linear network trained by full-batch gradient descent.

    Parameters
    ----------
    gates : array-like (pathway, sample) of 0/1, xarray.DataArray, list of context sets, or mapping
        When each pathway is open. A list of context sets (e.g. ``[(0, 1, 2), (0, 1), (1, 2),
        (0, 2)]``) needs ``context=`` labels in :meth:`fit`. A mapping ``{layer: gating}`` (in
        layer order) builds a layered GDLN: one gated block per (layer, pathway), each layer's
        blocks feeding the next layer's blocks they are ever open with
        (:mod:`relu_probe.reln.layered`; ``hidden`` and ``init_scale`` as documented there,
        ``rule="joint"`` only).
    hidden : int, sequence or mapping, default=100
        Hidden width of every pathway, one width per pathway (an int, or a list with one
        width per hidden layer), or ``{"shared": h_s, "context": h_c}``.
    depth : int or sequence of int, default=1
        Number of hidden layers of every pathway, or one per pathway.
    init_scale : float, sequence or mapping, optional
        Standard deviation of the Gaussian initial weights: one value, one per pathway, per
        pathway a list with one value per weight matrix (``depth + 1`` of them, input side
        first), or ``{"shared": σ_s, "context": σ_c}``. Default: a small initialisation relative
        to the data, ``(2 π_0)^{1/L} / √(Σ_p hidden_p)`` for the ``L`` weight matrices of a path
        with ``π_0 = 10^{-6} σ_1(M_lin)`` (:mod:`relu_probe.reln.small_init`); a missing key of a
        mapping also takes the default. The paper's ``0.005 / width`` is
        :data:`relu_probe.tasks.PAPER_INIT_GAIN`, used only when passed.
    inputs : None, "all", "auto", mask or sequence, default=None
        Which input features each pathway reads. ``None``/``"all"``: every input.
        ``"auto"``: shared pathways read every input; the others read only the inputs that
        vary within a context (cue inputs, constant within each context, are left out — the
        paper's context pathways read only the object inputs). A (pathway, feature) 0/1 mask,
        or one list of feature indices per pathway.
    rule : {"joint", "residual"}, default="joint"
        Training rule (module docstring).
    shared : indices, names or mask, optional
        The shared pathways for ``rule="residual"`` and ``inputs="auto"``. Default: the
        pathways open on every sample.
    trunk : int or sequence of int, optional
        Widths of ungated hidden layers shared by all pathways before they split (the paper's
        two-layer ReLN: ``trunk=[420]`` and one gated layer per pathway). Every pathway then
        reads the trunk's last layer; ``inputs`` must be None, "all" or "auto" (all inputs go
        through the trunk). The trunk learns from every pathway's error (both losses of the
        residual rule).
    trunk_init_scale : float or sequence, optional
        Weight std of the trunk layers (one value or one per layer); default as ``init_scale``.
    hidden_bias : bool (or one per layer of a layered GDLN), default=False
        The hidden units have biases: a constant input every pathway reads.
    output_bias : bool, default=False
        An ungated direct path adds a bias to every output (``∇_b L = Σ_μ (ŷ_μ − y_μ)``).
    bias_init_scale : float, default=0.0
        Std of the biases' initial values (0: zero-initialised).
    leak : float or sequence, default=0.0
        LeakyReLU slope ``α`` of the units (one value, one per pathway, or one per layer of a
        layered GDLN): a leaky pathway is an always-on path with gain ``α`` plus a gated one
        with gain ``1 − α``.
    gate_schedule : mapping, optional
        A layered GDLN only: ``{epoch: {layer: (pathway, sample) values in [0, 1]}}``, the
        gates used from each epoch on (e.g. the shares of each block's units a ReLU network
        had open at that training step; :mod:`relu_probe.reln.layered`). ``gates`` still name
        the blocks and their context sets (and are what ``gates_`` reports).
    warm_start : bool, default=False
        Start :meth:`fit` from the fitted ``weights_`` (and ``hidden_biases_``,
        ``output_bias_``) instead of a fresh draw — scikit-learn's convention; set them to
        start from weights of your own (e.g. a ReLU network's, to check that both take the
        same step).
    lr : float, optional
        Learning rate of gradient descent on the summed loss. Default: derived from the data
        at :meth:`fit` — a share of the largest stable rate (:meth:`max_stable_lr`,
        :mod:`relu_probe.reln.schedule`); the paper's is ``rp.tasks.PAPER_LR``. A layered
        GDLN, deep pathways or a trunk (which the bound does not cover) need it given.
    epochs : int, optional
        Number of full-batch steps. Default: derived from the data at :meth:`fit`, enough
        for every mode that matters to converge from the initial scale
        (:mod:`relu_probe.reln.schedule`); the paper's is ``rp.tasks.PAPER_EPOCHS``.
    sv_stride : int, default=10
        Record every pathway's singular values every ``sv_stride`` epochs (and at the last).
    seed : int or None, default=0
        Seed of the initial weights.
    dtype : torch.dtype, default=torch.float64
    device : str or torch.device, default="cpu"
    progress : bool, optional
        tqdm bar (default: only on a terminal).

    Attributes
    ----------
    loss_curve_ : numpy.ndarray (epochs,)
        ``L`` of the forward pass of each epoch, before its update (``loss_curve_[0]`` is the
        loss at initialisation), as :func:`relu_probe.tasks.train_full_batch`.
    singular_values_ : xarray.DataArray (pathway, mode, epoch)
        Singular values of each pathway map ``M_p`` at the recorded epochs (before that
        epoch's update).
    maps_ : xarray.DataArray (pathway, output, feature)
        Final pathway maps ``M_p`` (after the last update). With ``hidden_bias`` the last
        feature is the constant input (the map of the pathway's biases).
    weights_ : list of list of numpy.ndarray
        Final weights of each pathway, input side first (after the trunk, if any). With
        ``hidden_bias`` the first matrix's last column holds the biases. A layered GDLN:
        one full matrix per weight layer, input side first (blocks in ``spec_.block_table()``
        order).
    hidden_biases_ : list of numpy.ndarray or None
        A layered GDLN: each hidden layer's biases (None without).
    output_bias_ : numpy.ndarray (output,) or None
        The direct path's final bias (``output_bias=True``).
    trunk_weights_ : list of numpy.ndarray
        Final trunk weights (empty without a trunk).
    gates_ : xarray.DataArray (pathway, sample)
    inputs_ : xarray.DataArray (pathway, feature) bool
    shared_ : numpy.ndarray (pathway,) bool
    pathway_names_ : list of str
    contexts_ : list of tuple or None
    spec_ : relu_probe.reln.spec.PathwaySpec or relu_probe.reln.layered.LayeredSpec
        The resolved pathways: gates, shared mask, input masks, widths and initial scales
        (what :func:`relu_probe.race_dynamics` predicts the same network from).
    rule_ : str
        The rule the network was trained by.
    lr_, epochs_ : float, int
        The learning rate and epochs of the fit.
    schedule_ : relu_probe.reln.schedule.Schedule
        Where they came from (``lr_source`` / ``epochs_source``: ``"given"`` or
        ``"derived"``), the largest stable rate ``lr_bound`` and ``notes`` on a derived default.

    In a layered GDLN the per-pathway results (``singular_values_``, ``maps_``, ``gates_``,
    ``pathway_names_`` …) are per end-to-end *path* (a chain of blocks, named
    ``"{0,1,2}>{0,1}"``; :mod:`relu_probe.reln.layered`).

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> g = rp.GDLN([(0, 1, 2), (0, 1), (1, 2), (0, 2)], inputs="auto", rule="residual",
    ...             init_scale=[7.1e-6, 1.4e-5, 1.4e-5, 1.4e-5], lr=rp.tasks.PAPER_LR, epochs=200)
    >>> g = g.fit(X, Y, context=coords["context"])
    >>> g.loss_curve_.shape
    (200,)
    """

    def __init__(
        self,
        gates: Any,
        *,
        hidden: int | Sequence[Any] = 100,
        depth: int | Sequence[int] = 1,
        init_scale: float | Sequence[Any] | None = None,
        inputs: Any = None,
        rule: str = "joint",
        shared: Any = None,
        trunk: Sequence[int] | None = None,
        trunk_init_scale: float | Sequence[float] | None = None,
        hidden_bias: bool | Sequence[bool] = False,
        output_bias: bool = False,
        bias_init_scale: float = 0.0,
        leak: float | Sequence[float] = 0.0,
        gate_schedule: Mapping[int, Mapping[Any, Any]] | None = None,
        warm_start: bool = False,
        lr: float | None = None,
        epochs: int | None = None,
        sv_stride: int = 10,
        seed: int | None = 0,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        progress: bool | None = None,
    ) -> None:
        self.gates = gates
        self.hidden = hidden
        self.depth = depth
        self.init_scale = init_scale
        self.inputs = inputs
        self.trunk = trunk
        self.trunk_init_scale = trunk_init_scale
        self.rule = rule
        self.shared = shared
        self.hidden_bias = hidden_bias
        self.output_bias = output_bias
        self.bias_init_scale = bias_init_scale
        self.leak = leak
        self.gate_schedule = gate_schedule
        self.warm_start = warm_start
        self.lr = lr
        self.epochs = epochs
        self.sv_stride = sv_stride
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "loss_curve_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X, Y) first.")

    def _init_scale_param(self) -> Any:
        """The ``init_scale`` to use (subclasses may supply their own default)."""
        return self.init_scale

    def _spec(self, X: np.ndarray, context: Any, Y: Any = None) -> PathwaySpec | LayeredSpec:
        """The pathways of this network on inputs *X* (:func:`relu_probe.reln.spec.resolve_spec`,
        or :func:`relu_probe.reln.layered.resolve_layered_spec` for a mapping of layer gates)."""
        common = dict(context=context, shared=self.shared, inputs=self.inputs, hidden=self.hidden,
                      init_scale=self._init_scale_param(), hidden_bias=self.hidden_bias,
                      output_bias=self.output_bias, bias_init_scale=self.bias_init_scale, leak=self.leak, Y=Y)
        if is_layered_gates(self.gates):
            if self.trunk or not (np.isscalar(self.depth) and self.depth == 1):
                raise ValueInputError(
                    "`depth` and `trunk` do not apply to a layered GDLN (`gates` as a mapping {layer: gates}): "
                    "every layer is one gated layer of blocks; leave depth=1 and trunk=None."
                )
            return resolve_layered_spec(self.gates, X, schedule=self.gate_schedule, **common)
        if self.gate_schedule is not None:
            raise ValueInputError(
                "`gate_schedule` applies to a layered GDLN (`gates` as a mapping {layer: gates}); a one-layer "
                "network takes it as a mapping with one layer."
            )
        return resolve_spec(self.gates, X, depth=self.depth, trunk=self.trunk,
                            trunk_init_scale=self.trunk_init_scale, **common)

    def _rule(self, spec: PathwaySpec | LayeredSpec) -> str:
        """The training rule (``rule=None``: ``"joint"``)."""
        rule = "joint" if self.rule is None else self.rule
        check_choice("rule", rule, ["joint", "residual"])
        if isinstance(spec, LayeredSpec) and rule == "residual":
            raise ValueInputError(
                "rule='residual' (the shared pathway on Y, the others on its residual) is defined for one "
                "gated layer of pathways; a layered GDLN trains by rule='joint', like the ReLU network "
                "it stands for."
            )
        return rule

    def max_stable_lr(self, X: Any, Y: Any, *, context: Any = None) -> float:
        """The largest stable learning rate of this network's gating on ``(X, Y)``
        (:func:`relu_probe.reln.stability.max_stable_lr`: 2 / the sharpness of the balanced
        least-squares optimum), computed from the data alone (over the design ``[x, 1]`` with
        hidden biases, on the effective gates ``α + (1 − α) g`` of leaky units, an output
        bias's direct path included); ``inf`` for a layered GDLN, deep pathways or a trunk,
        which the bound does not cover. :meth:`fit` refuses ``lr`` at or above it."""
        Xn, Yn = check_xy(X, Y)
        spec = self._spec(Xn, context, Yn)
        problem = self._stability_problem(Xn, spec, self._rule(spec))
        if problem is None:
            return float("inf")
        return max_stable_lr(problem.X, Yn, problem.G, problem.masks, own=problem.own, linear=problem.linear)

    @staticmethod
    def _stability_problem(Xn: np.ndarray, spec: PathwaySpec | LayeredSpec, rule: str) -> StabilityProblem | None:
        """The problem the learning-rate bound and the defaults are computed on
        (:func:`relu_probe.reln.schedule.stability_problem`) for one gated layer of
        one-hidden-layer pathways without a trunk, else None."""
        if isinstance(spec, LayeredSpec) or any(d != 1 for d in spec.depths) or spec.trunk:
            return None
        return stability_problem(spec, Xn, rule)

    def _schedule(self, Xn: np.ndarray, Yn: np.ndarray, spec: PathwaySpec | LayeredSpec, rule: str, *,
                  lr: float | None, epochs: int | None, check_lr: bool) -> Schedule:
        """The fit's learning rate and epochs: given (``lr`` checked at once against the
        bound), or derived from the data and the initial scale (:mod:`relu_probe.reln.schedule`)."""
        problem = self._stability_problem(Xn, spec, rule)
        pi0 = curve = None
        if problem is not None and epochs is None:
            pi0 = mean_state_of(None, spec).pi0
            curve = exact_curve(Xn, Yn, spec, rule)
        return resolve_schedule(problem, Yn, lr=lr, epochs=epochs, pi0=pi0, check_lr=check_lr,
                                what=type(self).__name__, curve=curve)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Any,
        Y: Any,
        *,
        context: Any = None,
        lr: float | None = None,
        epochs: int | None = None,
        check_lr: bool = True,
    ) -> GDLN:
        """Train the GDLN on ``(X, Y)`` by full-batch gradient descent.

        Parameters
        ----------
        X : array-like (sample, feature)
        Y : array-like (sample, output)
        context : array-like (sample,), optional
            Per-sample context labels; required when ``gates`` is a list of context sets.
        lr, epochs : optional
            Override the constructor's values for this fit. Neither given: derived from the
            data (:mod:`relu_probe.reln.schedule`; recorded in ``schedule_``).
        check_lr : bool, default=True
            For one-hidden-layer pathways without a trunk, refuse at once an ``lr`` at or
            above the largest stable learning rate of the gating (an output bias's direct
            path included), computed from the data
            (:func:`relu_probe.reln.stability.check_learning_rate`); deeper networks are
            stopped by the divergence check when they diverge.

        Returns
        -------
        self

        Warns
        -----
        ReluProbeWarning
            ``rule="residual"`` with no shared pathway (none open on every sample, none named
            by ``shared``): every pathway then follows the total error, as with ``"joint"``.
        """
        Xn, Yn = check_xy(X, Y)
        if self.rule is not None:
            check_choice("rule", self.rule, ["joint", "residual"])
        lr = self.lr if lr is None else lr
        epochs = self.epochs if epochs is None else epochs
        if lr is not None:
            lr = check_real("lr", lr, minimum=0.0, strict=True)
        if epochs is not None:
            epochs = check_int("epochs", epochs, minimum=1)
        stride = check_int("sv_stride", self.sv_stride, minimum=1)
        spec = self._spec(Xn, context, Yn)
        rule = self._rule(spec)
        schedule = self._schedule(Xn, Yn, spec, rule, lr=lr, epochs=epochs, check_lr=check_lr)
        lr, epochs = schedule.lr, schedule.epochs
        dtype = self.dtype
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputError(f"`dtype` must be a floating torch.dtype, got {describe(dtype)}.")
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(check_int("seed", self.seed, minimum=0))
        device = torch.device(self.device)
        Yt = torch.as_tensor(Yn, dtype=dtype, device=device)
        warm = bool(self.warm_start) and hasattr(self, "weights_")
        if isinstance(spec, LayeredSpec):
            blocks: Any = LayeredBlocks(spec, Yn.shape[1], spec.gates_at(0), generator, dtype, device)
            if warm:
                blocks.load(self.weights_, self.hidden_biases_, self.output_bias_)
            Xt = torch.as_tensor(Xn, dtype=dtype, device=device)
            switches = set(spec.schedule_epochs[1:])

            def step(losses: torch.Tensor, epoch: int) -> None:
                if epoch in switches:
                    blocks.set_gates(spec.gates_at(epoch))
                layered_step(blocks, Xt, Yt, lr, losses, epoch)

            maps = blocks.path_maps
        else:
            blocks = PathwayBlocks(spec, Yn.shape[1], generator, dtype, device)
            if warm:
                blocks.load(self.weights_, self.output_bias_)
            Xt = torch.as_tensor(spec.design(Xn), dtype=dtype, device=device)
            gates_u = blocks.unit_gates(torch.as_tensor(spec.gates, dtype=dtype, device=device))
            residual = rule == "residual" and bool(spec.shared.any())
            if rule == "residual" and not residual:
                warn_residual_is_joint(spec.gating.names, stacklevel=3)

            def step(losses: torch.Tensor, epoch: int) -> None:
                gradient_step(blocks, gates_u, Xt, Yt, lr, residual, losses, epoch)

            maps = blocks.maps
        n_modes = min(Yn.shape[1], Xt.shape[1])
        losses, svs, rec_epochs = self._simulate(step, maps, spec.n_pathways, n_modes, Yt, lr=lr, epochs=epochs,
                                                 stride=stride)
        self._store_fit(blocks, spec, losses, svs, rec_epochs, Xn, Yn, context=context, lr=lr, epochs=epochs)
        self.schedule_ = schedule
        self.rule_ = rule
        return self

    def _simulate(
        self, step: Any, maps: Any, n_paths: int, n_modes: int, Y: torch.Tensor, *, lr: float, epochs: int,
        stride: int,
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Run *epochs* gradient steps (``step(losses, epoch)``); return the loss curve, the
        singular values of every pathway map (``maps()``) at the recorded epochs (every
        *stride*-th and the last, before that epoch's update) and those epochs. Stops with a
        clear error once the loss diverges (:func:`relu_probe.reln.dynamics.check_divergence`)."""
        dtype, device = Y.dtype, Y.device
        L0 = 0.5 * float((Y**2).sum())
        rec_epochs = list(range(0, epochs, stride))
        if rec_epochs[-1] != epochs - 1:
            rec_epochs.append(epochs - 1)
        rec_index = {e: i for i, e in enumerate(rec_epochs)}
        svs = torch.zeros(len(rec_epochs), n_paths, n_modes, dtype=dtype, device=device)
        losses = torch.empty(epochs, dtype=dtype, device=device)

        def check(upto: int, force: bool = False) -> None:
            check_divergence(losses[:upto].cpu().numpy(), L0, lr=lr, what="the GDLN simulation", force=force)

        with torch.no_grad():
            for epoch in progress_bar(range(epochs), enabled=self.progress, desc="GDLN", total=epochs):
                if epoch in rec_index:
                    current = maps()
                    if not bool(torch.isfinite(current).all()):
                        check(epoch, force=True)
                    svs[rec_index[epoch]] = torch.linalg.svdvals(current)[:, :n_modes]
                step(losses, epoch)
                if epoch % 100 == 99 or epoch == epochs - 1:
                    last = float(losses[epoch])
                    if not math.isfinite(last) or last > divergence_limit(L0):
                        check(epoch + 1)
        return losses, svs, rec_epochs

    def _store_fit(
        self, blocks: Any, spec: PathwaySpec | LayeredSpec, losses: torch.Tensor, svs: torch.Tensor,
        rec_epochs: list[int], X: np.ndarray, Y: np.ndarray, *, context: Any, lr: float, epochs: int,
    ) -> None:
        """Set the fitted attributes (class docstring)."""
        coords = spec.coords()
        layered = isinstance(spec, LayeredSpec)
        self.loss_curve_ = losses.cpu().numpy()
        self.singular_values_ = xr.DataArray(
            svs.permute(1, 2, 0).cpu().numpy(),
            dims=("pathway", "mode", "epoch"),
            coords={**coords, "mode": np.arange(svs.shape[2]), "epoch": np.asarray(rec_epochs)},
            name="singular_values",
            attrs={"description": "singular values of each pathway map W_L...W_1, before each epoch's update"},
        )
        final = blocks.path_maps() if layered else blocks.maps()
        self.maps_ = xr.DataArray(final.cpu().numpy(), dims=("pathway", "output", "feature"), coords=coords,
                                  name="maps")
        if layered:
            self.weights_ = blocks.numpy_weights()
            self.hidden_biases_ = blocks.numpy_biases()
            self.trunk_weights_ = []
        else:
            self.weights_ = blocks.per_pathway_weights()
            self.hidden_biases_ = None
            self.trunk_weights_ = [W.detach().cpu().numpy().copy() for W in blocks.trunk]
        out_bias = blocks.output_bias
        self.output_bias_ = None if out_bias is None else out_bias.detach().cpu().numpy().copy()
        self.gates_ = xr.DataArray(spec.gates.copy(), dims=("pathway", "sample"), coords=coords, name="gates")
        self.inputs_ = xr.DataArray(spec.design_inputs, dims=("pathway", "feature"), coords=coords, name="inputs")
        self.shared_ = (spec.path_shared if layered else spec.shared).copy()
        self.pathway_names_ = list(spec.names if layered else spec.gating.names)
        contexts = spec.contexts if layered else spec.gating.contexts
        self.contexts_ = None if contexts is None else list(contexts)
        self.context_ = None if context is None else np.asarray(context).copy()
        self.spec_ = spec
        self.n_features_in_ = X.shape[1]
        self.n_outputs_ = Y.shape[1]
        self.n_samples_fit_ = X.shape[0]
        self.lr_ = lr
        self.epochs_ = epochs
        self.L0_ = 0.5 * float(np.vdot(Y, Y))
        self._blocks = blocks

    # ------------------------------------------------------------------ use
    def predict(self, X: Any, gates: Any = None, *, context: Any = None) -> np.ndarray:
        """Outputs ``ŷ_μ = Σ_p g_{pμ} M_p (m_p ⊙ x_μ) + b`` of the trained network (effective
        gates, the design row with its constant input when there are hidden biases, the
        direct path's ``b`` when there is an output bias; a layered GDLN runs its forward pass,
        :mod:`relu_probe.reln.layered`).

        Parameters
        ----------
        X : array-like (sample, feature)
        gates : array-like (pathway, sample), list of context sets, or mapping, optional
            Gates for these samples (a layered GDLN: a mapping ``{layer: gating}`` like its
            ``gates``). Default: built from ``context`` when the pathways are context sets,
            else the training gates (then ``X`` must hold the training samples in their
            original order).
        context : array-like (sample,), optional

        Returns
        -------
        numpy.ndarray (sample, output)
        """
        self._check_fitted()
        Xn = as_2d_float("X", X)
        if Xn.shape[1] != self.n_features_in_:
            raise ValueInputError(
                f"`X` must have {self.n_features_in_} features (as in fit), got {Xn.shape[1]}."
            )
        spec = self.spec_
        if isinstance(spec, LayeredSpec):
            return self._predict_layered(spec, Xn, gates, context)
        if gates is None:
            if context is not None and self.contexts_ is not None:
                gates = self.contexts_
            elif Xn.shape[0] == self.n_samples_fit_:
                G = self.gates_.values
                gates = None
            else:
                raise ValueInputError(
                    f"`gates` (or `context=` labels) are needed to predict {Xn.shape[0]} new "
                    f"samples; the network was fitted on {self.n_samples_fit_}."
                )
        if gates is not None:
            G = resolve_gates(gates, Xn.shape[0], context, warn_empty=False, strict=False).G
            if G.shape[0] != len(self.pathway_names_):
                raise ValueInputError(
                    f"`gates` must describe {len(self.pathway_names_)} pathways, got {G.shape[0]}."
                )
            G = effective_gates(G, spec.slopes)
        maps = self.maps_.values  # (p, out, design feature)
        masks = self.inputs_.values.astype(np.float64)
        out = np.einsum("ps,poi,pi,si->so", G, maps, masks, spec.design(Xn))
        if self.output_bias_ is not None:
            out = out + self.output_bias_
        return out

    def _predict_layered(self, spec: LayeredSpec, X: np.ndarray, gates: Any, context: Any) -> np.ndarray:
        """The forward pass of a layered GDLN on *X* (gates per layer, module docstring of
        :mod:`relu_probe.reln.layered`)."""
        n = X.shape[0]
        if gates is None:
            if context is not None and spec.contexts is not None:
                gates = {name: list(g.contexts) for name, g in zip(spec.layer_names, spec.layers)}
            elif n == self.n_samples_fit_:
                gates = {name: g.G for name, g in zip(spec.layer_names, spec.layers)}
            else:
                raise ValueInputError(
                    f"`gates` (a mapping {{layer: gates}}, or `context=` labels) are needed to predict {n} new "
                    f"samples; the network was fitted on {self.n_samples_fit_}."
                )
        if not is_layered_gates(gates) or [str(k) for k in gates] != list(spec.layer_names):
            raise ValueInputError(
                f"`gates` of a layered GDLN must be a mapping with the layers {list(spec.layer_names)} in order."
            )
        h = X
        for l, (name, g) in enumerate(gates.items()):
            G = resolve_gates(g, n, context, name=f"gates[{name!r}]", warn_empty=False, strict=False).G
            if G.shape[0] != spec.layers[l].n_pathways:
                raise ValueInputError(
                    f"`gates[{name!r}]` must describe {spec.layers[l].n_pathways} blocks, got {G.shape[0]}."
                )
            z = h @ self.weights_[l].T
            if self.hidden_biases_[l] is not None:
                z = z + self.hidden_biases_[l]
            h = z * np.repeat(effective_gates(G, spec.slopes[l]), spec.widths[l], axis=0).T
        out = h @ self.weights_[-1].T
        if self.output_bias_ is not None:
            out = out + self.output_bias_
        return out

    def score(self, X: Any, Y: Any, gates: Any = None, *, context: Any = None) -> float:
        """Coefficient of determination R² of :meth:`predict` (scikit-learn convention)."""
        from sklearn.metrics import r2_score

        Xn, Yn = check_xy(X, Y)
        return float(r2_score(Yn, self.predict(Xn, gates, context=context)))

    def pathway_strength(
        self,
        *,
        measure: str = "top",
        normalize: bool = True,
        over: str = "final",
    ) -> xr.DataArray:
        """Learned strength of every pathway, from the singular values of its map.

        ``strength_p = σ_1(M_p)`` (``measure="top"``), ``Σ_α σ_α(M_p)`` (``"nuclear"``) or
        ``(Σ_α σ_α(M_p)²)^{1/2}`` (``"frobenius"``). With ``normalize=True`` the strengths
        are divided by their sum over pathways, so they sum to 1 like ``Pathways.mass`` and can
        weight the pathways in the pathway scores (``rp.scores``) in place of recorded mass.

        Parameters
        ----------
        measure : {"top", "nuclear", "frobenius"}, default="top"
        normalize : bool, default=True
        over : {"final", "epoch"}, default="final"
            ``"final"``: from the final maps, a DataArray over ``pathway``; ``"epoch"``: from
            :attr:`singular_values_`, a DataArray (pathway, epoch).

        Returns
        -------
        xarray.DataArray
            Coords ``pathway``, ``name``, ``shared`` and, when known, ``contexts`` (tuple of
            context values per pathway, as in ``Pathways.mass``); attrs ``measure``,
            ``normalized`` and, when known, ``context_values`` / ``n_contexts`` (so that
            ``rp.scores`` can score a fitted GDLN / ReLN like a ``Pathways``).
        """
        self._check_fitted()
        check_choice("measure", measure, ["top", "nuclear", "frobenius"])
        check_choice("over", over, ["final", "epoch"])
        if over == "final":
            sv = xr.DataArray(
                np.linalg.svd(self.maps_.values, compute_uv=False),
                dims=("pathway", "mode"),
                coords={k: v for k, v in self.maps_.coords.items() if "pathway" in v.dims},
            )
        else:
            sv = self.singular_values_
        if measure == "top":
            strength = sv.max("mode")
        elif measure == "nuclear":
            strength = sv.sum("mode")
        else:
            strength = np.sqrt((sv**2).sum("mode"))
        if normalize:
            total = strength.sum("pathway")
            strength = xr.where(total > 0, strength / total.where(total > 0, 1.0), 0.0)
            # keep the pathway coords that xr.where may drop
            strength = strength.assign_coords(
                {k: v for k, v in sv.coords.items() if "pathway" in v.dims and k not in strength.coords}
            )
        strength = strength.transpose("pathway", ...)
        strength.name = "pathway_strength"
        attrs: dict[str, Any] = {"measure": measure, "normalized": int(bool(normalize))}
        values = self._context_values()
        if values is not None:
            attrs["context_values"] = list(values)
            attrs["n_contexts"] = len(values)
        strength.attrs = attrs
        return strength

    def _context_values(self) -> list[Any] | None:
        """All context values (sorted) when known: from the ``context`` labels of the fit, else
        from the union of the pathways' context sets."""
        if getattr(self, "context_", None) is not None:
            vals = np.unique(self.context_).tolist()
            return list(vals)
        if self.contexts_ is not None:
            union = {c for S in self.contexts_ for c in S}
            try:
                return sorted(union)
            except TypeError:
                return list(union)
        return None


    # ------------------------------------------------------------------ persistence
    def to_netcdf(self, path: str | os.PathLike) -> None:
        """Save the fitted network to one netCDF file; :meth:`from_netcdf` restores it exactly
        (parameters, fitted attributes, weights and biases; :mod:`relu_probe.data.netcdf` groups)."""
        self._check_fitted()
        netcdf.require_netcdf4("saving a GDLN")
        groups: dict[str, Any] = {name: getattr(self, name, None) for name in self._saved_arrays()}
        arrays = {"loss_curve_": self.loss_curve_, "shared_": self.shared_, "context_": self.context_,
                  "output_bias_": self.output_bias_}
        params = self.get_params(deep=False)
        array_params, mapping_params = [], {}
        for name, value in list(params.items()):
            if isinstance(value, xr.DataArray):
                groups[f"param_{name}"] = params.pop(name)
            elif isinstance(value, (np.ndarray, torch.Tensor)):
                arrays[f"param_{name}"] = params.pop(name)
                array_params.append(name)
            elif isinstance(value, Mapping) and any(isinstance(v, xr.DataArray) for v in value.values()):
                # a layered network's gates: one group per DataArray layer
                keys = list(value)
                mapping_params[name] = keys
                plain = {}
                for i, (k, v) in enumerate(value.items()):
                    if isinstance(v, xr.DataArray):
                        groups[f"param_{name}__{i}"] = v
                    else:
                        plain[i] = v
                params[name] = plain
        for key, value in arrays.items():
            if value is not None:
                value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
                groups[key] = xr.DataArray(value, dims=tuple(f"{key}_{i}" for i in range(value.ndim)))
        spec = self.spec_
        layered = isinstance(spec, LayeredSpec)
        if layered:
            for l, w in enumerate(self.weights_):
                groups[f"layer_weight_{l}"] = xr.DataArray(np.asarray(w), dims=("out", "in"))
            for l, b in enumerate(self.hidden_biases_):
                if b is not None:
                    groups[f"layer_bias_{l}"] = xr.DataArray(np.asarray(b), dims=("out",))
        else:
            for p, layers in enumerate(self.weights_):
                for layer, w in enumerate(layers):
                    groups[f"weight_{p}_{layer}"] = xr.DataArray(np.asarray(w), dims=("out", "in"))
            for layer, w in enumerate(self.trunk_weights_):
                groups[f"trunk_weight_{layer}"] = xr.DataArray(np.asarray(w), dims=("out", "in"))
        params["dtype"] = str(params["dtype"]).replace("torch.", "")
        params["device"] = str(params["device"])
        attrs = {
            "estimator": type(self).__name__,
            "params": params,
            "array_params": array_params,
            "mapping_params": mapping_params,
            "fitted": {k: getattr(self, k) for k in self._saved_values() if hasattr(self, k)},
            "n_weights": len(self.weights_) if layered else [len(layers) for layers in self.weights_],
            "n_trunk_weights": len(self.trunk_weights_),
            "layered": layered,
            "spec": layered_spec_state(spec) if layered else spec_state(spec),
        }
        netcdf.write_groups(path, groups, attrs)

    @classmethod
    def from_netcdf(cls, path: str | os.PathLike) -> GDLN:
        """Read a network written by :meth:`to_netcdf` (of this class)."""
        groups, attrs = netcdf.read_groups(path)
        if attrs.get("estimator") != cls.__name__:
            raise StoreError(
                f"{str(path)!r} holds no saved {cls.__name__} (it holds {attrs.get('estimator') or 'something else'!r})."
            )
        params = dict(attrs["params"])
        params["dtype"] = getattr(torch, params["dtype"])
        mapping_params = attrs.get("mapping_params") or {}
        for name, keys in mapping_params.items():
            plain = params.get(name) or {}
            params[name] = {k: groups[f"param_{name}__{i}"] if f"param_{name}__{i}" in groups else plain[i]
                            for i, k in enumerate(keys)}
        for key, value in groups.items():
            if key.startswith("param_") and "__" not in key:
                name = key[len("param_"):]
                params[name] = value.values if name in attrs["array_params"] else value
        model = cls(**params)
        for name in model._saved_arrays():
            setattr(model, name, groups.get(name))
        model.loss_curve_ = groups["loss_curve_"].values
        model.shared_ = groups["shared_"].values
        model.context_ = groups["context_"].values if "context_" in groups else None
        model.output_bias_ = groups["output_bias_"].values if "output_bias_" in groups else None
        if attrs.get("layered"):
            model.weights_ = [groups[f"layer_weight_{l}"].values for l in range(attrs["n_weights"])]
            model.spec_ = layered_spec_from_state(attrs["spec"])
            model.hidden_biases_ = [groups[f"layer_bias_{l}"].values if f"layer_bias_{l}" in groups else None
                                    for l in range(model.spec_.n_layers)]
        else:
            model.weights_ = [[groups[f"weight_{p}_{layer}"].values for layer in range(n)]
                              for p, n in enumerate(attrs["n_weights"])]
            model.hidden_biases_ = None
            model.spec_ = spec_from_state(attrs["spec"], model)
        model.trunk_weights_ = [groups[f"trunk_weight_{layer}"].values for layer in range(attrs["n_trunk_weights"])]
        for key, value in attrs["fitted"].items():
            setattr(model, key, value)
        if not hasattr(model, "rule_"):
            model.rule_ = model.rule
        return model

    @classmethod
    def _saved_arrays(cls) -> tuple[str, ...]:
        return _SAVED_ARRAYS

    @classmethod
    def _saved_values(cls) -> tuple[str, ...]:
        return _SAVED_VALUES
