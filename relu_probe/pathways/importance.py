"""How much each recorded ReLU unit matters to the network's output: ``rp.unit_importance``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from .._util.checks import check_choice, check_int
from ..data.access import Recording, align_importance, as_recording
from ..data.schema import site_attr, split_paths
from ..errors import DegenerateDataWarning, InputError, ValueInputError, describe
from ..recording.model import preserved_modes
from .gradients import input_path, output_tensor, site_conductance

__all__ = ["unit_importance", "given_importance", "default_importance", "default_importance_method",
           "readout_gaps", "IMPORTANCE_METHODS", "ACTIVITY_PROPORTIONAL"]

#: The measures :func:`unit_importance` offers.
IMPORTANCE_METHODS = ("readout", "conductance", "activity")
#: The measures proportional to each unit's mean activity over the recorded samples.
ACTIVITY_PROPORTIONAL = ("readout", "activity")


def unit_importance(
    model: nn.Module | None,
    ds: xr.Dataset,
    method: str = "readout",
    inputs: torch.Tensor | None = None,
    *,
    target: Any = None,
    baselines: Any = None,
    n_steps: int = 50,
    batch_size: int | None = None,
) -> xr.DataArray:
    r"""Importance of every recorded unit: a DataArray over ``unit``, ``>= 0``, summing to 1.

    Parameters
    ----------
    model : torch.nn.Module or None
        The recorded model (``None`` only for ``method="activity"``).
    ds : xarray.Dataset
        A recording from :func:`relu_probe.record` (dims ``sample`` × ``unit``).
    method : {"readout", "conductance", "activity"}, default="readout"
        Which measure to use — see Notes for when each applies.
    inputs : torch.Tensor, optional
        The recorded inputs, in the recorded sample order. Required for ``"conductance"``.
    target : int or tuple, optional
        ``"conductance"`` only: the output index (captum's ``target``). Default: attribute
        the per-sample scalar :math:`F(x) = \tfrac12 \lVert f(x) \rVert^2`, so every output
        counts.
    baselines : scalar or Tensor, optional
        ``"conductance"`` only: integration baseline — an input (default zero) for float
        inputs, token ids whose embedding starts the path for integer inputs (default: the
        zero embedding).
    n_steps : int, default=50
        ``"conductance"`` only: integration steps (trapezoid rule on the gradient).
    batch_size : int, optional
        ``"conductance"`` only: samples per attribution call (default: all at once).

    Returns
    -------
    xarray.DataArray
        Dims ``(unit,)`` with the dataset's unit coords (``site``, ``neuron``, …), name
        ``"importance"``, ``attrs["method"]``. Values are ``>= 0`` and sum to 1.

    Notes
    -----
    ``"readout"`` — for ReLUs whose output goes straight into ``nn.Linear`` / ``nn.ConvNd``
    modules, its *readouts*: every such module called on the site's output (or a view of it)
    in the recorded forward pass (``ds.attrs["site_readouts"]`` names them, ``"fc2 + skip"``
    for a site read by a next layer and a skip head). Importance of unit *u* is

    .. math:: I_u \propto \bigl\lVert [W_1; W_2; \dots]_{:,u} \bigr\rVert_2 \cdot \overline{|a_u|}
              = \sqrt{\textstyle\sum_k \lVert (W_k)_{:,u} \rVert_2^2} \cdot \overline{|a_u|}

    the norm of **all** the unit's outgoing weights (the readouts' weight matrices stacked)
    times its mean activation magnitude over the recorded samples (the mean post-ReLU value
    when ``values=True`` was recorded, else the mean gate rate). For a Linear readout that
    consumes the site's (flattened) output the column of the unit is used; for a Conv
    readout — and for ``units="element"`` conv units — the unit's *channel*: the norm of
    ``W[:, c]`` over output channels and kernel (with grouped convolutions, over the outputs
    of the channel's group). Cheap, exact for the paper's networks, and needs no inputs.

    A site whose output is also read by something that is not a Linear / Conv readout — a
    residual sum, a pooling, a norm, another activation (``ds.attrs["site_other_readers"]``
    names what the recording saw) — sends part of its effect down a path with no weight
    matrix to read, so its readout importance leaves that path out: it is computed over the
    readouts it has, with a :class:`UserWarning` that names the other readers. The default
    importance (:func:`default_importance_method`) is then ``"activity"``; ``"conductance"``
    follows every path. Operations that torch does not route through its function-override
    mechanism are not seen (see :mod:`relu_probe.recording.hooks`), and recordings written
    before other readers were recorded carry no ``site_other_readers``.

    Biases follow the ReLN's convention (:mod:`relu_probe.reln.spec`): a unit's activation
    includes its own bias (a constant input its pathway reads), so the bias counts through
    :math:`\overline{|a_u|}`; the readout's bias belongs to no unit (it is the ReLN's ungated
    direct path) and is left out of every unit's importance, as it is out of every pathway.

    ``"conductance"`` — for arbitrary downstream computation (residual streams, attention,
    norms, ReLUs not followed by a Linear/Conv):
    :math:`I_u \propto \operatorname{mean}_x |\mathrm{Cond}_u(x)|`, the path-integrated
    gradient flowing through unit *u* (Dhamdhere, Sundararajan & Yan 2019, arXiv 1805.12233;
    formula and quadrature in :func:`relu_probe.pathways.gradients.site_conductance`). Every
    site is read call by call in the same forward passes, so reused modules (``path#k``) and
    functional ReLUs work. Float inputs are integrated from the zero input; integer inputs
    (token ids) through the model's input embedding, from the zero embedding
    (:mod:`relu_probe.pathways.gradients`). Channel units sum the conductance over positions
    before the magnitude. Needs ``inputs``, one row per recorded sample: ``n_steps + 1``
    forward and backward passes over them.

    ``"activity"`` — data only: :math:`I_u \propto \overline{|a_u|}` (mean activation, or mean
    gate rate). This is what the pathway and score functions use when no importance is given.

    When every unit has zero importance (all gates off), the uniform importance ``1/U`` is
    returned with a :class:`~relu_probe.errors.DegenerateDataWarning`.
    """
    check_choice("method", method, IMPORTANCE_METHODS)
    rec = as_recording(ds)
    if method != "activity" and not isinstance(model, nn.Module):
        raise InputError(
            f"`model` must be the recorded torch.nn.Module for method={method!r}, got "
            f"{describe(model)}."
        )
    magnitude = rec.mean_activity()
    if method == "activity":
        raw = magnitude
    elif method == "readout":
        _warn_other_readers(rec)
        raw = _readout_norms(model, rec.ds) * magnitude
    else:
        if inputs is None:
            raise ValueInputError(
                "`inputs` is required for method='conductance': pass the recorded inputs "
                "in the recorded sample order."
            )
        raw = _conductance(model, rec.ds, inputs, target, baselines, check_int("n_steps", n_steps, minimum=1), batch_size)
    return _normalised(raw, rec, method)


def default_importance_method(model: nn.Module | None, ds: Any) -> str:
    r"""The importance :func:`relu_probe.find_pathways`, :func:`relu_probe.analyze` and the
    training monitor use when none is given: ``"readout"`` when the model is at hand and
    every recorded site's output is read by Linear / Conv readouts only
    (``ds.attrs["site_readouts"]``, and no ``ds.attrs["site_other_readers"]``), else
    ``"activity"`` (:func:`readout_gaps` says why).

    The readout importance is the principled one: a unit's share of the pathway mass is then
    :math:`\lVert W_{:,u} \rVert \sum_c a_u(o, c)`, the weighting of Jarvis et al.
    (arXiv 2503.06181) — how much of the unit's activity reaches the output. Without the
    model, or where a site's output does not go (only) into Linear / Conv layers, the
    outgoing weights do not say that and the activity importance (the unit's mean activity)
    is used.
    """
    rec = as_recording(ds)
    return "readout" if isinstance(model, nn.Module) and rec.site_names() and not readout_gaps(rec) else "activity"


def readout_gaps(ds: Any) -> dict[str, str]:
    """The recorded sites the readout importance does not cover, each with the reason: no
    Linear / Conv reads its output, or something else reads it too (named from
    ``ds.attrs["site_other_readers"]``). Empty when every site is read by readouts only."""
    gaps = {}
    for site, readouts, others in _site_readers(as_recording(ds)):
        if not readouts:
            seen = f": it goes to {', '.join(others)}" if others else " (e.g. a pooling or a residual sum comes first)"
            gaps[site] = f"no Linear / Conv reads its output{seen}"
        elif others:
            gaps[site] = (f"its output is also read by {', '.join(others)}, not only by the "
                          f"Linear / Conv {' + '.join(readouts)}")
    return gaps


def _site_readers(rec: Recording) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """``(site, readouts, other readers)`` of every site present in the recording, from
    ``site_readouts`` / ``site_other_readers`` (a recording written before other readers were
    kept has none; one without readouts has none either)."""
    sites = [str(s) for s in site_attr(rec.ds, "sites")]
    readouts = site_attr(rec.ds, "site_readouts")
    others = site_attr(rec.ds, "site_other_readers")
    readouts = readouts if len(readouts) == len(sites) else [""] * len(sites)
    others = others if len(others) == len(sites) else [""] * len(sites)
    present = set(rec.site_names())
    return [(site, split_paths(r), split_paths(o)) for site, r, o in zip(sites, readouts, others) if site in present]


def default_importance(model: nn.Module | None, ds: Any) -> xr.DataArray:
    """:func:`unit_importance` by :func:`default_importance_method` (``attrs["method"]`` says which)."""
    rec = as_recording(ds)
    method = default_importance_method(model, rec)
    return unit_importance(model if method == "readout" else None, rec, method=method)


def given_importance(importance: Any, rec: Recording, argname: str = "importance") -> xr.DataArray:
    r"""A user's per-unit importance, aligned with the recording's units (see
    :func:`relu_probe.data.access.align_importance`) and normalised to sum to 1 (uniform
    ``1/U`` when it is all zero).

    ``attrs["method"]`` is ``"given"``, except for a DataArray from :func:`unit_importance`
    (or a training monitor's stored importance) whose ``attrs["method"]`` is ``"readout"`` or
    ``"activity"``: that method is kept, so that :func:`relu_probe.find_pathways` balances it
    over (item, context) cells exactly as it balances the default importance (both are
    :math:`\propto \bar a_u`, the unit's mean activity over the recorded samples, which it
    then replaces by the mean over cells). Such an importance is taken to be computed on the
    recording it is used with."""
    imp = align_importance(importance, rec, argname)
    total = float(imp.sum())
    imp = imp / total if total > 0 else xr.full_like(imp, 1.0 / imp.size)
    imp.name = "importance"
    method = importance.attrs.get("method") if isinstance(importance, xr.DataArray) else None
    imp.attrs = {"method": method if method in ACTIVITY_PROPORTIONAL else "given"}
    return imp


def _normalised(raw: np.ndarray, rec: Recording, method: str) -> xr.DataArray:
    raw = np.asarray(raw, dtype=np.float64)
    total = raw.sum()
    if not np.isfinite(total):
        raise ValueInputError(
            f"importance ({method}) is not finite: the model's weights or the recorded "
            "activations contain NaN/Inf."
        )
    if total <= 0:
        warnings.warn(
            f"every unit has zero {method} importance (all gates off or zero readout); "
            "returning the uniform importance 1/U.",
            DegenerateDataWarning,
            stacklevel=3,
        )
        values = np.full(raw.shape, 1.0 / raw.size)
    else:
        values = raw / total
    return xr.DataArray(
        values, dims=("unit",), coords=rec.unit_coords(), name="importance", attrs={"method": method}
    )


# --------------------------------------------------------------------------- readout


def _warn_other_readers(rec: Recording) -> None:
    """Warn for the sites whose output is also read by something that is not a readout."""
    partial = [(site, readouts, others) for site, readouts, others in _site_readers(rec) if readouts and others]
    if partial:
        detail = "; ".join(f"site {site!r} is read by {', '.join(o)} besides {' + '.join(r)}"
                           for site, r, o in partial)
        warnings.warn(
            f"readout importance counts only the Linear / Conv weights reading each site, but {detail}: "
            "what reaches the output through those is left out of the units' importance. Use "
            "method='conductance' (with inputs) to follow every path, or method='activity'.",
            UserWarning,
            stacklevel=3,
        )


def _site_blocks(ds: xr.Dataset) -> list[tuple[str, tuple[str, ...], np.ndarray]]:
    """``(site, readout module paths, positions of its units in ds)`` for every site."""
    if "site" not in ds.coords:
        raise ValueInputError("`ds` has no 'site' unit coord; pass a Dataset from rp.record.")
    sites = [str(s) for s in site_attr(ds, "sites")]
    readouts = [str(r) for r in site_attr(ds, "site_readouts")]
    unit_sites = ds["site"].values.astype(str)
    if len(readouts) != len(sites):
        raise ValueInputError(
            "method='readout' needs ds.attrs['site_readouts'] (one entry per site, as "
            f"written by rp.record); got {len(readouts)} readouts for {len(sites)} sites. "
            "Use method='conductance' with inputs, or method='activity'."
        )
    blocks = []
    for site, readout in zip(sites, readouts):
        idx = np.flatnonzero(unit_sites == str(site))
        if idx.size:
            blocks.append((str(site), split_paths(readout), idx))
    return blocks


def _readout_norms(model: nn.Module, ds: xr.Dataset) -> np.ndarray:
    r"""Norm of every unit's outgoing weights over all its site's readouts,
    :math:`\sqrt{\sum_k \lVert (W_k)_{:,u} \rVert^2}` (see :func:`unit_importance`, Notes)."""
    blocks = _site_blocks(ds)
    missing = [site for site, readouts, _ in blocks if not readouts]
    if missing:
        raise ValueInputError(
            f"method='readout' needs a Linear/Conv layer consuming each site, but none was found "
            f"for site(s) {missing}. Use method='conductance' (with inputs) for arbitrary "
            "downstream computation, or method='activity'."
        )
    neuron = ds["neuron"].values.astype(np.int64) if "neuron" in ds.coords else None
    channel = ds["channel"].values.astype(np.int64) if "channel" in ds.coords else neuron
    if neuron is None:
        raise ValueInputError("`ds` has no 'neuron' unit coord; pass a Dataset from rp.record.")
    channel_units = ds.attrs.get("units", "element") == "channel"
    squares = np.zeros(ds.sizes["unit"])
    for site, paths, idx in blocks:
        for path in paths:
            squares[idx] += _readout_column_norms(model, site, path, idx, neuron, channel, channel_units) ** 2
    return np.sqrt(squares)


def _readout_column_norms(model: nn.Module, site: str, path: str, idx: np.ndarray, neuron: np.ndarray,
                          channel: np.ndarray, channel_units: bool) -> np.ndarray:
    """Norm of the weights of readout *path* reading each of the site's units *idx*."""
    try:
        layer = model.get_submodule(path)
    except AttributeError:
        raise ValueInputError(
            f"site {site!r}: its readout module {path!r} (ds.attrs['site_readouts']) is not "
            "in `model`; pass the model that was recorded."
        ) from None
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ValueInputError(f"site {site!r}: readout module {path!r} has no weight tensor.")
    w = weight.detach().to("cpu", torch.float64)
    n_ch = int(channel[idx].max()) + 1
    if isinstance(layer, nn.Linear):
        n_in = w.shape[1]
        if not channel_units and n_in == idx.size and n_in > int(neuron[idx].max()):
            return torch.linalg.vector_norm(w, dim=0).numpy()[neuron[idx]]
        if n_in == n_ch:
            return torch.linalg.vector_norm(w, dim=0).numpy()[channel[idx]]
        if n_in % n_ch == 0:  # a flattened (channel, position...) output, channel-major
            block = w.reshape(w.shape[0], n_ch, n_in // n_ch)
            return torch.linalg.vector_norm(block, dim=(0, 2)).numpy()[channel[idx]]
        raise ValueInputError(
            f"site {site!r}: readout Linear {path!r} has in_features={n_in}, which matches "
            f"neither the site's {idx.size} units nor its {n_ch} channels. Use "
            "method='conductance'."
        )
    if isinstance(layer, nn.modules.conv._ConvNd):
        if layer.transposed:
            # ConvTranspose weight: (in, out/groups, *k): input channel c is row c.
            norms = torch.linalg.vector_norm(w.flatten(1), dim=1)
        else:
            groups = layer.groups
            out_ch, in_per_group = w.shape[0], w.shape[1]
            out_per_group = out_ch // groups
            per = torch.linalg.vector_norm(
                w.reshape(groups, out_per_group, in_per_group, -1), dim=(1, 3)
            )  # (groups, in_per_group): norm over the group's outputs and kernel
            norms = per.reshape(-1)
        if norms.numel() < n_ch:
            raise ValueInputError(
                f"site {site!r}: readout conv {path!r} takes {norms.numel()} input channels but "
                f"the site has {n_ch}. Use method='conductance'."
            )
        return norms.numpy()[channel[idx]]
    raise ValueInputError(
        f"site {site!r}: readout module {path!r} is a {type(layer).__name__}, not an "
        "nn.Linear / nn.ConvNd. Use method='conductance'."
    )


# --------------------------------------------------------------------------- conductance


def _conductance(
    model: nn.Module,
    ds: xr.Dataset,
    inputs: Any,
    target: Any,
    baselines: Any,
    n_steps: int,
    batch_size: int | None,
) -> np.ndarray:
    """Mean |conductance| per unit (:func:`relu_probe.pathways.gradients.site_conductance`)."""
    if not isinstance(inputs, torch.Tensor):
        raise InputError(f"`inputs` must be a torch.Tensor for method='conductance', got {describe(inputs)}.")
    n = ds.sizes["sample"]
    if inputs.shape[0] != n:
        raise ValueInputError(
            f"`inputs` must hold the {n} recorded samples in order, got {inputs.shape[0]} rows "
            "(method='conductance' needs one input row per recorded sample)."
        )
    size = n if batch_size is None else check_int("batch_size", batch_size, minimum=1)
    with preserved_modes(model, eval_mode=True):
        path = input_path(model, inputs, baselines=baselines)  # refuses integer inputs without an embedding
        return site_conductance(path, ds, _scalar(target), n_steps=n_steps, batch_size=size)


def _scalar(target: Any) -> Callable[[Any], torch.Tensor]:
    """The per-input scalar output whose conductance is measured: ``½‖f(x)‖²`` (every output
    counts), or the output at index *target*."""
    def scalar(output: Any) -> torch.Tensor:
        y = output_tensor(output)
        if target is None:
            return 0.5 * y.reshape(y.shape[0], -1).pow(2).sum(1)
        index = (slice(None), *(target if isinstance(target, tuple) else (target,)))
        try:
            picked = y[index]
        except (IndexError, TypeError) as exc:
            raise ValueInputError(
                f"`target` {target!r} does not index the model's output of shape {tuple(y.shape)}: {exc}"
            ) from None
        return picked.reshape(y.shape[0], -1).sum(1)

    return scalar
