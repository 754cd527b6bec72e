"""Gated Deep Linear Networks (Saxe, Sodhani & Lewallen 2022), simulated by full-batch
gradient descent.

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
    the rule of the paper's released code (paper-brief §4.1): the *shared* pathways follow
    ``L_s = ½ Σ_μ ‖ŷ^s_μ − y_μ‖²`` (their own prediction ``ŷ^s`` against ``Y``, as if alone),
    the other pathways follow ``L_c = ½ Σ_μ ‖ŷ^c_μ − (y_μ − sg[ŷ^s_μ])‖²``, i.e. they chase
    the live residual of the shared pathways with a stop-gradient. Since
    ``ŷ^c − (y − ŷ^s) = ŷ − y``, the context pathways see the total error and the shared
    ones only their own.

The implementation concatenates all pathways' hidden units into block-masked weight matrices
and applies hand-written gradients, so one epoch costs a handful of matrix products whatever
the number of pathways.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator

from ._gates import Gating, as_2d_float, check_xy, cue_inputs, per_pathway, per_role, resolve_gates, sample_groups
from ._progress import progress_bar
from ._validation import check_choice, check_int, check_real
from .errors import InputError, NotFittedError, ValueInputError, describe

__all__ = ["GDLN"]

#: A loss above ``DIVERGENCE_FACTOR × max(L0, 1)`` counts as a diverged simulation.
DIVERGENCE_FACTOR = 1e6


def _resolve_inputs(
    inputs: Any,
    gating: Gating,
    shared: np.ndarray,
    X: np.ndarray,
    context: Any,
) -> np.ndarray:
    """Input masks (pathway, feature) bool from the ``inputs`` parameter."""
    n_paths, n_in = gating.n_pathways, X.shape[1]
    if inputs is None or (isinstance(inputs, str) and inputs == "all"):
        return np.ones((n_paths, n_in), dtype=bool)
    if isinstance(inputs, str):
        check_choice("inputs", inputs, ["all", "auto"])
        groups = sample_groups(gating.G, context)
        cue = cue_inputs(X, groups)
        mask = np.ones((n_paths, n_in), dtype=bool)
        mask[~shared] = ~cue
        if not (~cue).any():
            raise ValueInputError(
                "`inputs='auto'`: every input feature is constant within each context, so the "
                "non-shared pathways would read nothing; pass explicit `inputs` masks."
            )
        return mask
    if isinstance(inputs, xr.DataArray):
        inputs = inputs.values
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    if isinstance(inputs, np.ndarray) and inputs.dtype != object:
        arr = inputs
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (n_paths, arr.shape[0]))
        if arr.ndim != 2 or arr.shape != (n_paths, n_in):
            raise ValueInputError(
                f"`inputs` must be a (pathway, feature) mask of shape ({n_paths}, {n_in}), got "
                f"shape {inputs.shape}."
            )
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueInputError("`inputs` masks must contain only 0/1 or booleans.")
        return arr.astype(bool).copy()
    items = per_pathway("inputs", inputs, n_paths, kind="mask")
    mask = np.zeros((n_paths, n_in), dtype=bool)
    for p, item in enumerate(items):
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
            raise ValueInputError(
                f"`inputs[{p}]` has feature indices outside [0, {n_in}): {idx.tolist()}."
            )
        mask[p, idx] = True
    return mask


def _resolve_shared(shared: Any, gating: Gating) -> np.ndarray:
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
                    f"`shared` names pathway {item!r}, which does not exist; pathways: "
                    f"{gating.names}."
                )
            out[gating.names.index(item)] = True
        elif isinstance(item, int) and -n <= item < n:
            out[item] = True
        else:
            raise ValueInputError(
                f"`shared` must list pathway indices in [0, {n}) or names, got {item!r}."
            )
    return out


class _Layout:
    """Concatenated, block-masked weights of all pathways (one group per depth)."""

    def __init__(
        self,
        widths: list[list[int]],
        scales: list[list[float]],
        in_mask: np.ndarray,
        n_out: int,
        shared: np.ndarray,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device,
        trunk: Sequence[int] = (),
        trunk_scales: Sequence[float] = (),
    ) -> None:
        self.n_paths = len(widths)
        self.dtype, self.device = dtype, device
        self.groups: list[dict[str, Any]] = []
        # shared, ungated trunk layers (drawn first), then every pathway's weights in pathway
        # order (input side first), so that a pathway's initial weights do not depend on the
        # pathways listed after it
        self.trunk: list[torch.Tensor] = []
        prev = in_mask.shape[1]
        for width, scale in zip(trunk, trunk_scales):
            self.trunk.append(
                (torch.randn(width, prev, generator=generator, dtype=dtype) * scale).to(device)
            )
            prev = width
        if self.trunk:
            in_mask = np.ones((self.n_paths, prev), dtype=bool)
        n_in = in_mask.shape[1]
        draws: list[list[torch.Tensor]] = []
        for p in range(self.n_paths):
            sizes_p = [int(in_mask[p].sum())] + list(widths[p]) + [n_out]
            draws.append(
                [
                    torch.randn(b, a, generator=generator, dtype=dtype) * scales[p][l]
                    for l, (a, b) in enumerate(zip(sizes_p[:-1], sizes_p[1:]))
                ]
            )
        depths = sorted({len(w) for w in widths})
        for depth in depths:
            # shared pathways first so that the residual rule can split columns
            members = [p for p in range(self.n_paths) if len(widths[p]) == depth]
            members.sort(key=lambda p: (not shared[p], p))
            sizes = [[widths[p][l] for p in members] for l in range(depth)]
            tot = [sum(s) for s in sizes]
            offs = [np.concatenate([[0], np.cumsum(s)]) for s in sizes]
            n_shared_units = sum(widths[p][-1] for p in members if shared[p])
            weights, masks = [], []
            # layer 0: (H_0, n_in)
            W = torch.zeros(tot[0], n_in, dtype=dtype)
            M = torch.zeros(tot[0], n_in, dtype=dtype)
            for j, p in enumerate(members):
                rows = slice(int(offs[0][j]), int(offs[0][j + 1]))
                cols = torch.from_numpy(np.flatnonzero(in_mask[p]))
                tmp = torch.zeros(sizes[0][j], n_in, dtype=dtype)
                tmp[:, cols] = draws[p][0]
                W[rows] = tmp
                M[rows] = (torch.as_tensor(in_mask[p], dtype=dtype)).expand(sizes[0][j], n_in)
            weights.append(W)
            masks.append(None if bool(M.all()) else M)
            # hidden-to-hidden layers: block diagonal (H_l, H_{l-1})
            for l in range(1, depth):
                W = torch.zeros(tot[l], tot[l - 1], dtype=dtype)
                M = torch.zeros(tot[l], tot[l - 1], dtype=dtype)
                for j, p in enumerate(members):
                    rows = slice(int(offs[l][j]), int(offs[l][j + 1]))
                    cols = slice(int(offs[l - 1][j]), int(offs[l - 1][j + 1]))
                    W[rows, cols] = draws[p][l]
                    M[rows, cols] = 1.0
                weights.append(W)
                masks.append(M)
            # output layer: (n_out, H_{L-1})
            W = torch.zeros(n_out, tot[-1], dtype=dtype)
            for j, p in enumerate(members):
                cols = slice(int(offs[-1][j]), int(offs[-1][j + 1]))
                W[:, cols] = draws[p][depth]
            weights.append(W)
            masks.append(None)
            unit_path0 = np.repeat(members, sizes[0])
            self.groups.append(
                {
                    "members": members,
                    "sizes": sizes,
                    "offs": offs,
                    "weights": [w.to(device) for w in weights],
                    "masks": [None if m is None else m.to(device) for m in masks],
                    "unit_path0": unit_path0,
                    "n_shared": int(n_shared_units),
                    "equal": all(len(set(s)) == 1 for s in sizes),
                }
            )

    def unit_gates(self, G: torch.Tensor) -> list[torch.Tensor]:
        """Per group: (sample, H_0) gate of every first-layer unit."""
        return [G[torch.from_numpy(g["unit_path0"]).to(G.device)].T.contiguous() for g in self.groups]

    def maps(self) -> torch.Tensor:
        """(pathway, output, input) maps ``W_L ··· W_1`` of every pathway."""
        out = None
        for g in self.groups:
            Ws = g["weights"]
            n_out, n_in = Ws[-1].shape[0], Ws[0].shape[1]
            if out is None:
                out = torch.zeros(self.n_paths, n_out, n_in, dtype=self.dtype, device=self.device)
            members, sizes, offs = g["members"], g["sizes"], g["offs"]
            depth = len(sizes)
            if g["equal"]:
                k = len(members)
                h = [s[0] for s in sizes]
                prod = Ws[0].reshape(k, h[0], n_in)
                for l in range(1, depth):
                    blocks = torch.stack(
                        [
                            Ws[l][offs[l][j] : offs[l][j + 1], offs[l - 1][j] : offs[l - 1][j + 1]]
                            for j in range(k)
                        ]
                    )
                    prod = blocks @ prod
                last = Ws[-1].reshape(n_out, k, h[-1]).permute(1, 0, 2)
                out[torch.as_tensor(members)] = last @ prod
            else:
                for j, p in enumerate(members):
                    prod = Ws[0][offs[0][j] : offs[0][j + 1]]
                    for l in range(1, depth):
                        prod = Ws[l][offs[l][j] : offs[l][j + 1], offs[l - 1][j] : offs[l - 1][j + 1]] @ prod
                    out[p] = Ws[-1][:, offs[-1][j] : offs[-1][j + 1]] @ prod
        assert out is not None
        if self.trunk:
            T = self.trunk[0]
            for W in self.trunk[1:]:
                T = W @ T
            out = out @ T
        return out

    def per_pathway_weights(self) -> list[list[np.ndarray]]:
        res: list[list[np.ndarray]] = [[] for _ in range(self.n_paths)]
        for g in self.groups:
            Ws, offs = g["weights"], g["offs"]
            depth = len(g["sizes"])
            for j, p in enumerate(g["members"]):
                mats = [Ws[0][offs[0][j] : offs[0][j + 1]]]
                for l in range(1, depth):
                    mats.append(Ws[l][offs[l][j] : offs[l][j + 1], offs[l - 1][j] : offs[l - 1][j + 1]])
                mats.append(Ws[-1][:, offs[-1][j] : offs[-1][j + 1]])
                res[p] = [m.detach().cpu().numpy().copy() for m in mats]
        return res


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
        paper's ``0.005 / width``); a missing key of a mapping also takes the default.
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
        lr: float = 1e-3,
        epochs: int = 8001,
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
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(X, Y) first."
            )

    def _init_scale_param(self) -> Any:
        """The ``init_scale`` to use (subclasses may supply their own default)."""
        return self.init_scale

    def _architecture(
        self, n_paths: int, shared: np.ndarray
    ) -> tuple[list[list[int]], list[list[float]]]:
        depths = [
            check_int("depth", d, minimum=1) for d in per_pathway("depth", self.depth, n_paths, kind="integer")
        ]
        widths: list[list[int]] = []
        if isinstance(self.hidden, Mapping):
            unknown = set(self.hidden) - {"shared", "context"}
            if unknown or len(self.hidden) != 2:
                raise ValueInputError(
                    "`hidden` as a mapping needs exactly the keys 'shared' and 'context', got "
                    f"{sorted(self.hidden)}."
                )
            hidden_list = [self.hidden["shared" if shared[p] else "context"] for p in range(n_paths)]
        else:
            hidden_list = per_pathway("hidden", self.hidden, n_paths, kind="integer")
        for p, h in enumerate(hidden_list):
            if np.isscalar(h):
                widths.append([check_int("hidden", h, minimum=1)] * depths[p])
            else:
                hs = [check_int("hidden", v, minimum=1) for v in h]
                if len(hs) != depths[p]:
                    raise ValueInputError(
                        f"`hidden[{p}]` lists {len(hs)} widths but pathway {p} has depth {depths[p]}."
                    )
                widths.append(hs)
        total = sum(w[0] for w in widths)
        default = 0.005 / total
        scales: list[list[float]] = []
        init_scale = self._init_scale_param()
        if isinstance(init_scale, Mapping):
            raw = per_role("init_scale", init_scale, [shared[p] for p in range(n_paths)])
        else:
            raw = per_pathway("init_scale", init_scale, n_paths)
        for p, s in enumerate(raw):
            if s is None:
                scales.append([default] * (depths[p] + 1))
            elif np.isscalar(s):
                scales.append([check_real("init_scale", s, minimum=0.0)] * (depths[p] + 1))
            else:
                ss = [check_real("init_scale", v, minimum=0.0) for v in s]
                if len(ss) != depths[p] + 1:
                    raise ValueInputError(
                        f"`init_scale[{p}]` lists {len(ss)} values but pathway {p} has "
                        f"{depths[p] + 1} weight matrices (depth {depths[p]} + 1)."
                    )
                scales.append(ss)
        return widths, scales

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Any,
        Y: Any,
        *,
        context: Any = None,
        lr: float | None = None,
        epochs: int | None = None,
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

        Returns
        -------
        self
        """
        Xn, Yn = check_xy(X, Y)
        check_choice("rule", self.rule, ["joint", "residual"])
        lr = check_real("lr", self.lr if lr is None else lr, minimum=0.0, strict=True)
        epochs = check_int("epochs", self.epochs if epochs is None else epochs, minimum=1)
        stride = check_int("sv_stride", self.sv_stride, minimum=1)
        gating = resolve_gates(self.gates, Xn.shape[0], context)
        shared = _resolve_shared(self.shared, gating)
        raw_trunk = [] if self.trunk is None else ([self.trunk] if np.isscalar(self.trunk) else self.trunk)
        trunk = [check_int("trunk", w, minimum=1) for w in raw_trunk]
        if trunk and not (self.inputs is None or (isinstance(self.inputs, str) and self.inputs in ("all", "auto"))):
            raise ValueInputError(
                "`inputs` masks cannot be combined with a `trunk`: every input goes through the "
                "shared trunk; use inputs=None."
            )
        in_mask = (
            np.ones((gating.n_pathways, Xn.shape[1]), dtype=bool)
            if trunk
            else _resolve_inputs(self.inputs, gating, shared, Xn, context)
        )
        widths, scales = self._architecture(gating.n_pathways, shared)
        trunk_scales: list[float] = []
        if trunk:
            raw_t = self.trunk_init_scale
            default_t = 0.005 / sum(w[0] for w in widths)
            if raw_t is None or np.isscalar(raw_t):
                raw_t = [raw_t] * len(trunk)
            raw_t = list(raw_t)
            if len(raw_t) != len(trunk):
                raise ValueInputError(
                    f"`trunk_init_scale` must be one value or one per trunk layer ({len(trunk)}), "
                    f"got {len(raw_t)}."
                )
            trunk_scales = [
                default_t if v is None else check_real("trunk_init_scale", v, minimum=0.0) for v in raw_t
            ]
        device = torch.device(self.device)
        dtype = self.dtype
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputError(f"`dtype` must be a floating torch.dtype, got {describe(dtype)}.")
        generator = None
        if self.seed is not None:
            generator = torch.Generator().manual_seed(check_int("seed", self.seed, minimum=0))
        layout = _Layout(
            widths, scales, in_mask, Yn.shape[1], shared, generator, dtype, device,
            trunk=trunk, trunk_scales=trunk_scales,
        )
        Xt = torch.as_tensor(Xn, dtype=dtype, device=device)
        Yt = torch.as_tensor(Yn, dtype=dtype, device=device)
        Gt = torch.as_tensor(gating.G, dtype=dtype, device=device)
        gates_u = layout.unit_gates(Gt)
        residual = self.rule == "residual" and bool(shared.any())

        L0 = 0.5 * float((Yt**2).sum())
        limit = DIVERGENCE_FACTOR * max(L0, 1.0)
        rec_epochs = list(range(0, epochs, stride))
        if rec_epochs[-1] != epochs - 1:
            rec_epochs.append(epochs - 1)
        rec_set = {e: i for i, e in enumerate(rec_epochs)}
        n_modes = min(Yn.shape[1], Xn.shape[1])
        svs = torch.zeros(len(rec_epochs), gating.n_pathways, n_modes, dtype=dtype, device=device)
        losses = torch.empty(epochs, dtype=dtype, device=device)

        with torch.no_grad():
            for epoch in progress_bar(
                range(epochs), enabled=self.progress, desc="GDLN", total=epochs
            ):
                if epoch in rec_set:
                    maps = layout.maps()
                    if not bool(torch.isfinite(maps).all()):
                        self._diverged(losses, epoch, limit, lr)
                    svs[rec_set[epoch]] = torch.linalg.svdvals(maps)[:, :n_modes]
                self._step(layout, gates_u, Xt, Yt, lr, residual, losses, epoch)
                if epoch % 100 == 99 or epoch == epochs - 1:
                    last = float(losses[epoch])
                    if not math.isfinite(last) or last > limit:
                        self._diverged(losses, epoch + 1, limit, lr)

        self.loss_curve_ = losses.cpu().numpy()
        names = gating.names
        pathway_coords: dict[str, Any] = {"pathway": np.arange(gating.n_pathways), "name": ("pathway", names)}
        if gating.contexts is not None:
            ctx = np.empty(gating.n_pathways, dtype=object)
            ctx[:] = gating.contexts
            pathway_coords["contexts"] = ("pathway", ctx)
        pathway_coords["shared"] = ("pathway", shared.copy())
        self.singular_values_ = xr.DataArray(
            svs.permute(1, 2, 0).cpu().numpy(),
            dims=("pathway", "mode", "epoch"),
            coords={**pathway_coords, "mode": np.arange(n_modes), "epoch": np.asarray(rec_epochs)},
            name="singular_values",
            attrs={"description": "singular values of each pathway map W_L...W_1, before each epoch's update"},
        )
        self.maps_ = xr.DataArray(
            layout.maps().cpu().numpy(),
            dims=("pathway", "output", "feature"),
            coords=pathway_coords,
            name="maps",
        )
        self.weights_ = layout.per_pathway_weights()
        self.trunk_weights_ = [W.detach().cpu().numpy().copy() for W in layout.trunk]
        self.gates_ = xr.DataArray(
            gating.G.copy(), dims=("pathway", "sample"), coords=pathway_coords, name="gates"
        )
        self.inputs_ = xr.DataArray(
            in_mask, dims=("pathway", "feature"), coords=pathway_coords, name="inputs"
        )
        self.shared_ = shared
        self.pathway_names_ = list(names)
        self.contexts_ = None if gating.contexts is None else list(gating.contexts)
        self.context_ = None if context is None else np.asarray(context).copy()
        self.n_features_in_ = Xn.shape[1]
        self.n_outputs_ = Yn.shape[1]
        self.n_samples_fit_ = Xn.shape[0]
        self.lr_ = lr
        self.epochs_ = epochs
        self.L0_ = L0
        self._layout = layout
        return self

    @staticmethod
    def _diverged(losses: torch.Tensor, upto: int, limit: float, lr: float) -> None:
        bad = losses[:upto]
        hits = torch.nonzero(~torch.isfinite(bad) | (bad > limit))
        first = int(hits[0, 0]) if hits.numel() else max(upto - 1, 0)
        raise ValueInputError(
            f"the GDLN simulation diverged (loss {float(bad[first]):.3g} at epoch {first}); "
            f"lower the learning rate `lr` (got {lr})."
        )

    @staticmethod
    def _step(
        layout: _Layout,
        gates_u: list[torch.Tensor],
        X: torch.Tensor,
        Y: torch.Tensor,
        lr: float,
        residual: bool,
        losses: torch.Tensor,
        epoch: int,
    ) -> None:
        acts_all = []
        Yhat = None
        Yhat_s = None
        trunk_acts = [X]
        for W in layout.trunk:
            trunk_acts.append(trunk_acts[-1] @ W.T)
        base = trunk_acts[-1]
        for g, Gu in zip(layout.groups, gates_u):
            Ws = g["weights"]
            acts = [torch.mul(base @ Ws[0].T, Gu)]
            for W in Ws[1:-1]:
                acts.append(acts[-1] @ W.T)
            out = acts[-1] @ Ws[-1].T
            Yhat = out if Yhat is None else Yhat + out
            if residual and g["n_shared"]:
                ns = g["n_shared"]
                out_s = acts[-1][:, :ns] @ Ws[-1][:, :ns].T
                Yhat_s = out_s if Yhat_s is None else Yhat_s + out_s
            acts_all.append(acts)
        E = Yhat - Y
        flat = E.reshape(-1)
        losses[epoch] = 0.5 * torch.dot(flat, flat)
        Es = (Yhat_s - Y) if residual else None
        delta_base = None
        updates: list[tuple[torch.Tensor, torch.Tensor]] = []
        for g, Gu, acts in zip(layout.groups, gates_u, acts_all):
            Ws, masks = g["weights"], g["masks"]
            ns = g["n_shared"] if residual else 0
            h = acts[-1]
            Wout = Ws[-1]
            if ns:
                # shared units back-propagate their own error, the others the total error
                dWout = E.T @ h
                dWout[:, :ns] = Es.T @ h[:, :ns]
                delta = E @ Wout
                delta[:, :ns] = Es @ Wout[:, :ns]
            else:
                dWout = E.T @ h
                delta = E @ Wout
            grads = [dWout]
            for l in range(len(Ws) - 2, 0, -1):
                gW = delta.T @ acts[l - 1]
                gW.mul_(masks[l])
                grads.append(gW)
                delta = delta @ Ws[l]
            delta.mul_(Gu)
            g0 = delta.T @ base
            if masks[0] is not None:
                g0.mul_(masks[0])
            grads.append(g0)
            if layout.trunk:
                back = delta @ Ws[0]
                delta_base = back if delta_base is None else delta_base + back
            updates.extend(zip(reversed(Ws), grads))
        if layout.trunk:
            delta = delta_base
            for l in range(len(layout.trunk) - 1, -1, -1):
                gW = delta.T @ trunk_acts[l]
                if l:
                    delta = delta @ layout.trunk[l]
                updates.append((layout.trunk[l], gW))
        for W, gW in updates:
            W.sub_(gW, alpha=lr)

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
