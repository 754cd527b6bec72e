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

The pathways are resolved once into a :class:`relu_probe.reln.spec.PathwaySpec`; the weights
live in block-masked matrices trained by the hand-written gradient step of
:mod:`relu_probe.reln.blocks`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
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
from ..tasks import PAPER_EPOCHS, PAPER_LR
from .blocks import PathwayBlocks, gradient_step
from .dynamics import check_divergence, divergence_limit
from .gating import Gating, resolve_gates
from .spec import PathwaySpec, resolve_spec
from .stability import check_learning_rate, max_stable_lr

__all__ = ["GDLN"]

#: Fitted DataArrays a saved GDLN keeps (:meth:`GDLN.to_netcdf`).
_SAVED_ARRAYS = ("singular_values_", "maps_", "gates_", "inputs_")
#: Fitted plain values a saved GDLN keeps.
_SAVED_VALUES = ("pathway_names_", "contexts_", "n_features_in_", "n_outputs_", "n_samples_fit_", "lr_",
                 "epochs_", "L0_")


class GDLN(BaseEstimator):
    """A gated deep linear network trained by full-batch gradient descent.

    Parameters
    ----------
    gates : array-like (pathway, sample) of 0/1, xarray.DataArray, or list of context sets
        When each pathway is open. A list of context sets (e.g. ``[(0, 1, 2), (0, 1), (1, 2),
        (0, 2)]``) needs ``context=`` labels in :meth:`fit`.
    hidden : int, sequence or mapping, default=100
        Hidden width of every pathway, one width per pathway (an int, or a list with one
        width per hidden layer), or ``{"shared": h_s, "context": h_c}``.
    depth : int or sequence of int, default=1
        Number of hidden layers of every pathway, or one per pathway.
    init_scale : float, sequence or mapping, optional
        Standard deviation of the Gaussian initial weights: one value, one per pathway, per
        pathway a list with one value per weight matrix (``depth + 1`` of them, input side
        first), or ``{"shared": σ_s, "context": σ_c}``. Default ``0.005 / Σ_p hidden_p`` (the
        paper's ``0.005 / width``); a missing key of a mapping also takes the default
        (:mod:`relu_probe.reln.spec`).
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
    lr : float, default=1e-3
        Learning rate of gradient descent on the summed loss.
    epochs : int, default=8001
        Number of full-batch steps.
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
        Final pathway maps ``M_p`` (after the last update).
    weights_ : list of list of numpy.ndarray
        Final weights of each pathway, input side first (after the trunk, if any).
    trunk_weights_ : list of numpy.ndarray
        Final trunk weights (empty without a trunk).
    gates_ : xarray.DataArray (pathway, sample)
    inputs_ : xarray.DataArray (pathway, feature) bool
    shared_ : numpy.ndarray (pathway,) bool
    pathway_names_ : list of str
    contexts_ : list of tuple or None
    spec_ : relu_probe.reln.spec.PathwaySpec
        The resolved pathways: gates, shared mask, input masks, widths and initial scales
        (what :func:`relu_probe.race_dynamics` predicts the same network from).

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> g = rp.GDLN([(0, 1, 2), (0, 1), (1, 2), (0, 2)], inputs="auto", rule="residual",
    ...             init_scale=[7.1e-6, 1.4e-5, 1.4e-5, 1.4e-5], epochs=200)
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
        lr: float = PAPER_LR,
        epochs: int = PAPER_EPOCHS,
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

    def _spec(self, X: np.ndarray, context: Any) -> PathwaySpec:
        """The pathways of this network on inputs *X* (:func:`relu_probe.reln.spec.resolve_spec`)."""
        return resolve_spec(
            self.gates, X, context=context, shared=self.shared, inputs=self.inputs, hidden=self.hidden,
            depth=self.depth, init_scale=self._init_scale_param(), trunk=self.trunk,
            trunk_init_scale=self.trunk_init_scale,
        )

    def max_stable_lr(self, X: Any, Y: Any, *, context: Any = None) -> float:
        """The largest stable learning rate of this network's gating on ``(X, Y)``
        (:func:`relu_probe.reln.stability.max_stable_lr`: 2 / the sharpness of the balanced
        least-squares optimum), computed from the data alone; ``inf`` for deep pathways or a
        trunk, which the bound does not cover. :meth:`fit` refuses ``lr`` at or above it."""
        Xn, Yn = check_xy(X, Y)
        spec = self._spec(Xn, context)
        if any(d != 1 for d in spec.depths) or spec.trunk:
            return float("inf")
        own = spec.shared if (self.rule == "residual" and bool(spec.shared.any())) else None
        return max_stable_lr(Xn, Yn, spec.gating.G, spec.inputs.astype(np.float64), own=own)

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
            Override the constructor's values for this fit.
        check_lr : bool, default=True
            For one-hidden-layer pathways without a trunk, refuse at once an ``lr`` at or
            above the largest stable learning rate of the gating, computed from the data
            (:func:`relu_probe.reln.stability.check_learning_rate`); deeper networks are
            stopped by the divergence check when they diverge.

        Returns
        -------
        self
        """
        Xn, Yn = check_xy(X, Y)
        check_choice("rule", self.rule, ["joint", "residual"])
        lr = check_real("lr", self.lr if lr is None else lr, minimum=0.0, strict=True)
        epochs = check_int("epochs", self.epochs if epochs is None else epochs, minimum=1)
        stride = check_int("sv_stride", self.sv_stride, minimum=1)
        spec = self._spec(Xn, context)
        if check_lr and all(d == 1 for d in spec.depths) and not spec.trunk:
            own = spec.shared if (self.rule == "residual" and bool(spec.shared.any())) else None
            check_learning_rate(Xn, Yn, spec.gating.G, spec.inputs.astype(np.float64), lr, own=own)
        dtype = self.dtype
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputError(f"`dtype` must be a floating torch.dtype, got {describe(dtype)}.")
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(check_int("seed", self.seed, minimum=0))
        blocks = PathwayBlocks(spec, Yn.shape[1], generator, dtype, torch.device(self.device))
        losses, svs, rec_epochs = self._simulate(blocks, spec, Xn, Yn, lr=lr, epochs=epochs, stride=stride)
        self._store_fit(blocks, spec, losses, svs, rec_epochs, Xn, Yn, context=context, lr=lr, epochs=epochs)
        return self

    def _simulate(
        self, blocks: PathwayBlocks, spec: PathwaySpec, X: np.ndarray, Y: np.ndarray, *, lr: float, epochs: int,
        stride: int,
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Run *epochs* gradient steps; return the loss curve, the singular values of every
        pathway map at the recorded epochs (every *stride*-th and the last, before that
        epoch's update) and those epochs. Stops with a clear error once the loss diverges
        (:func:`relu_probe.reln.dynamics.check_divergence`)."""
        dtype, device = blocks.dtype, blocks.device
        Xt = torch.as_tensor(X, dtype=dtype, device=device)
        Yt = torch.as_tensor(Y, dtype=dtype, device=device)
        gates_u = blocks.unit_gates(torch.as_tensor(spec.gating.G, dtype=dtype, device=device))
        residual = self.rule == "residual" and bool(spec.shared.any())
        L0 = 0.5 * float((Yt**2).sum())
        rec_epochs = list(range(0, epochs, stride))
        if rec_epochs[-1] != epochs - 1:
            rec_epochs.append(epochs - 1)
        rec_index = {e: i for i, e in enumerate(rec_epochs)}
        n_modes = min(Y.shape[1], X.shape[1])
        svs = torch.zeros(len(rec_epochs), spec.n_pathways, n_modes, dtype=dtype, device=device)
        losses = torch.empty(epochs, dtype=dtype, device=device)

        def check(upto: int, force: bool = False) -> None:
            check_divergence(losses[:upto].cpu().numpy(), L0, lr=lr, what="the GDLN simulation", force=force)

        with torch.no_grad():
            for epoch in progress_bar(range(epochs), enabled=self.progress, desc="GDLN", total=epochs):
                if epoch in rec_index:
                    maps = blocks.maps()
                    if not bool(torch.isfinite(maps).all()):
                        check(epoch, force=True)
                    svs[rec_index[epoch]] = torch.linalg.svdvals(maps)[:, :n_modes]
                gradient_step(blocks, gates_u, Xt, Yt, lr, residual, losses, epoch)
                if epoch % 100 == 99 or epoch == epochs - 1:
                    last = float(losses[epoch])
                    if not math.isfinite(last) or last > divergence_limit(L0):
                        check(epoch + 1)
        return losses, svs, rec_epochs

    def _store_fit(
        self, blocks: PathwayBlocks, spec: PathwaySpec, losses: torch.Tensor, svs: torch.Tensor,
        rec_epochs: list[int], X: np.ndarray, Y: np.ndarray, *, context: Any, lr: float, epochs: int,
    ) -> None:
        """Set the fitted attributes (class docstring)."""
        coords = spec.coords()
        gating = spec.gating
        self.loss_curve_ = losses.cpu().numpy()
        self.singular_values_ = xr.DataArray(
            svs.permute(1, 2, 0).cpu().numpy(),
            dims=("pathway", "mode", "epoch"),
            coords={**coords, "mode": np.arange(svs.shape[2]), "epoch": np.asarray(rec_epochs)},
            name="singular_values",
            attrs={"description": "singular values of each pathway map W_L...W_1, before each epoch's update"},
        )
        self.maps_ = xr.DataArray(blocks.maps().cpu().numpy(), dims=("pathway", "output", "feature"), coords=coords,
                                  name="maps")
        self.weights_ = blocks.per_pathway_weights()
        self.trunk_weights_ = [W.detach().cpu().numpy().copy() for W in blocks.trunk]
        self.gates_ = xr.DataArray(gating.G.copy(), dims=("pathway", "sample"), coords=coords, name="gates")
        self.inputs_ = xr.DataArray(spec.inputs, dims=("pathway", "feature"), coords=coords, name="inputs")
        self.shared_ = spec.shared.copy()
        self.pathway_names_ = list(gating.names)
        self.contexts_ = None if gating.contexts is None else list(gating.contexts)
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
        """Outputs ``ŷ_μ = Σ_p g_{pμ} M_p (m_p ⊙ x_μ)`` of the trained network.

        Parameters
        ----------
        X : array-like (sample, feature)
        gates : array-like (pathway, sample) or list of context sets, optional
            Gates for these samples. Default: built from ``context`` when the pathways are
            context sets, else the training gates (then ``X`` must hold the training samples
            in their original order).
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
        maps = self.maps_.values  # (p, out, in)
        masks = self.inputs_.values.astype(np.float64)
        out = np.einsum("ps,poi,pi,si->so", G, maps, masks, Xn)
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
        (parameters, fitted attributes and weights; :mod:`relu_probe.data.netcdf` groups)."""
        self._check_fitted()
        netcdf.require_netcdf4("saving a GDLN")
        groups: dict[str, Any] = {name: getattr(self, name, None) for name in self._saved_arrays()}
        arrays = {"loss_curve_": self.loss_curve_, "shared_": self.shared_, "context_": self.context_}
        params = self.get_params(deep=False)
        array_params = []
        for name, value in list(params.items()):
            if isinstance(value, xr.DataArray):
                groups[f"param_{name}"] = params.pop(name)
            elif isinstance(value, (np.ndarray, torch.Tensor)):
                arrays[f"param_{name}"] = params.pop(name)
                array_params.append(name)
        for key, value in arrays.items():
            if value is not None:
                value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
                groups[key] = xr.DataArray(value, dims=tuple(f"{key}_{i}" for i in range(value.ndim)))
        for p, layers in enumerate(self.weights_):
            for layer, w in enumerate(layers):
                groups[f"weight_{p}_{layer}"] = xr.DataArray(np.asarray(w), dims=("out", "in"))
        for layer, w in enumerate(self.trunk_weights_):
            groups[f"trunk_weight_{layer}"] = xr.DataArray(np.asarray(w), dims=("out", "in"))
        params["dtype"] = str(params["dtype"]).replace("torch.", "")
        params["device"] = str(params["device"])
        spec = self.spec_
        attrs = {
            "estimator": type(self).__name__,
            "params": params,
            "array_params": array_params,
            "fitted": {k: getattr(self, k) for k in self._saved_values() if hasattr(self, k)},
            "n_weights": [len(layers) for layers in self.weights_],
            "n_trunk_weights": len(self.trunk_weights_),
            "spec": {"widths": spec.widths, "init_scales": spec.init_scales, "trunk": spec.trunk,
                     "trunk_scales": spec.trunk_scales},
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
        for key, value in groups.items():
            if key.startswith("param_"):
                name = key[len("param_"):]
                params[name] = value.values if name in attrs["array_params"] else value
        model = cls(**params)
        for name in model._saved_arrays():
            setattr(model, name, groups.get(name))
        model.loss_curve_ = groups["loss_curve_"].values
        model.shared_ = groups["shared_"].values
        model.context_ = groups["context_"].values if "context_" in groups else None
        model.weights_ = [[groups[f"weight_{p}_{layer}"].values for layer in range(n)]
                          for p, n in enumerate(attrs["n_weights"])]
        model.trunk_weights_ = [groups[f"trunk_weight_{layer}"].values for layer in range(attrs["n_trunk_weights"])]
        for key, value in attrs["fitted"].items():
            setattr(model, key, value)
        spec = attrs["spec"]
        gating = Gating(model.gates_.values, list(model.pathway_names_), model.contexts_)
        model.spec_ = PathwaySpec(gating, model.shared_, model.inputs_.values, spec["widths"], spec["init_scales"],
                                  spec["trunk"], spec["trunk_scales"])
        return model

    @classmethod
    def _saved_arrays(cls) -> tuple[str, ...]:
        return _SAVED_ARRAYS

    @classmethod
    def _saved_values(cls) -> tuple[str, ...]:
        return _SAVED_VALUES
