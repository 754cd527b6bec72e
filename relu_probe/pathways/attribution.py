r"""Which input features drive each pathway: captum attributions of pathway activity.

For pathway :math:`p` with unit memberships :math:`w_{up}` (``Pathways.membership``), the
pathway's activity on input :math:`x` is the membership-weighted sum of its units'
post-ReLU values,

.. math:: A_p(x) = \sum_u w_{up}\, a_u(x),

(for ``units="channel"`` recordings :math:`a_u` is the channel's mean over positions, as
recorded). Integrated gradients (captum's ``NeuronIntegratedGradients`` with a zero baseline,
Sundararajan et al. 2017) attribute :math:`A_p(x) - A_p(0)` to the input features; a
pathway spread over several sites sums the per-site attributions (integrated gradients are
linear in the attributed function). A feature's share is

.. math:: \mathrm{share}_{pf} = \frac{\overline{|\mathrm{IG}_{pf}(x)|}}{\sum_{f'} \overline{|\mathrm{IG}_{pf'}(x)|}}

(mean over the attributed samples). Sites that are not a single call of one module (reused
modules, functional ReLUs) have no layer captum can hook; they are skipped with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from .._util.arrays import object_array
from ..data.schema import site_attr
from ..errors import ValueInputError
from ..recording.model import model_float_tensor, preserved_state, unwrap_model

__all__ = ["default_feature_names", "pathway_attributions"]


def default_feature_names(shape: Sequence[int]) -> list[str]:
    """``x[0]``, ``x[1]`` … for flat inputs, ``x[c, i, j]`` for shaped ones."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return [f"x[{i}]" for i in range(shape[0])]
    return ["x[" + ", ".join(map(str, idx)) + "]" for idx in np.ndindex(*shape)]


def _site_modules(module: nn.Module, ds: xr.Dataset) -> tuple[dict[str, nn.Module], list[str]]:
    named = dict(module.named_modules())
    usable: dict[str, nn.Module] = {}
    notes: list[str] = []
    for site in site_attr(ds, "sites"):
        if "#" in site or "::" in site or site not in named or site == "":
            notes.append(
                f"site {site!r} is a reused module or a functional ReLU, which captum cannot hook as "
                "a layer: its units are left out of the input attributions"
            )
            continue
        usable[site] = named[site]
    return usable, notes


def _selector(ds: xr.Dataset, site: str, weights: np.ndarray, kind: str, units: str, dtype: torch.dtype):
    """A captum ``neuron_selector``: the weighted activity of one site's units, per example."""
    mask = ds["site"].values.astype(str) == site
    w = torch.as_tensor(weights[mask], dtype=dtype)
    if kind == "dense":
        neuron = torch.as_tensor(ds["neuron"].values[mask].astype(np.int64))

        def select(out: torch.Tensor) -> torch.Tensor:
            return (out.reshape(out.shape[0], -1)[:, neuron] * w.to(out.device, out.dtype)).sum(1)

        return select
    channel = torch.as_tensor(ds["channel"].values[mask].astype(np.int64))
    position = torch.as_tensor(ds["position"].values[mask].astype(np.int64))

    def select_positions(out: torch.Tensor) -> torch.Tensor:
        cf = out if kind == "conv" else out.movedim(-1, 1)
        cf = cf.reshape(cf.shape[0], cf.shape[1], -1)  # (N, C, positions)
        if units == "channel":
            return (cf.mean(2)[:, channel] * w.to(out.device, out.dtype)).sum(1)
        return (cf[:, channel, position] * w.to(out.device, out.dtype)).sum(1)

    return select_positions


def pathway_attributions(
    model: nn.Module,
    ds: xr.Dataset,
    pathways: Any,
    X: torch.Tensor,
    *,
    feature_names: Sequence[str] | None = None,
    max_samples: int = 256,
    n_steps: int = 32,
    max_pathways: int = 12,
    min_mass: float = 0.01,
    random_state: int | None = 0,
) -> tuple[xr.DataArray | None, list[str]]:
    """Share of each input feature in each pathway's activity (module docstring).

    Returns ``(shares, notes)``: a DataArray ``(pathway, feature)`` with coords ``contexts``
    and ``feature_name`` (``None`` when nothing could be attributed), and human-readable
    notes on what was skipped.
    """
    module = unwrap_model(model)
    usable, notes = _site_modules(module, ds)
    if not usable:
        return None, notes
    order = _largest_pathways(pathways, min_mass, max_pathways, notes)
    if not order:
        return None, notes
    idx = _sample_subset(int(X.shape[0]), max_samples, random_state, notes)
    Xs = model_float_tensor(module, X[torch.as_tensor(idx)].detach())
    feature_shape = tuple(Xs.shape[1:])
    names = list(feature_names) if feature_names is not None else default_feature_names(feature_shape)
    n_features = int(np.prod(feature_shape))
    if len(names) != n_features:
        raise ValueInputError(
            f"`feature_names` must name every input feature ({n_features}), got {len(names)} names."
        )
    membership = pathways.membership.transpose("unit", "pathway").values
    with preserved_state(module, eval_mode=True), torch.enable_grad():
        shares = np.stack([_feature_shares(module, ds, usable, membership[:, p], Xs, n_steps) for p in order])
    return xr.DataArray(
        shares,
        dims=("pathway", "feature"),
        coords={
            "pathway": np.asarray(order, dtype=np.int64),
            "contexts": ("pathway", object_array(pathways.mass["contexts"].values[p] for p in order)),
            "feature": np.arange(n_features, dtype=np.int64),
            "feature_name": ("feature", np.asarray(names, dtype=object)),
        },
        name="attribution",
        attrs={
            "method": "integrated gradients (captum NeuronIntegratedGradients, zero baseline)",
            "n_steps": int(n_steps),
            "n_samples": len(idx),
            "feature_shape": [int(s) for s in feature_shape],
        },
    ), notes


def _largest_pathways(pathways: Any, min_mass: float, max_pathways: int, notes: list[str]) -> list[int]:
    """The pathways to attribute, in id order: the *max_pathways* largest of mass >= *min_mass*."""
    mass = np.asarray(pathways.mass.values, dtype=np.float64)
    order = sorted([int(p) for p in np.argsort(-mass, kind="stable") if mass[p] >= min_mass][:max_pathways])
    if len(order) < int((mass >= min_mass).sum()):
        notes.append(f"input attributions computed for the {len(order)} largest pathways only")
    return order


def _sample_subset(n: int, max_samples: int, random_state: int | None, notes: list[str]) -> np.ndarray:
    """All *n* samples, or a seeded random subset of *max_samples* of them (in order)."""
    if n <= max_samples:
        return np.arange(n)
    notes.append(f"input attributions use {max_samples} of {n} samples (random subset)")
    return np.sort(np.random.default_rng(random_state).choice(n, size=max_samples, replace=False))


def _feature_shares(module: nn.Module, ds: xr.Dataset, usable: dict[str, nn.Module], weights: np.ndarray,
                    Xs: torch.Tensor, n_steps: int) -> np.ndarray:
    """``share_f`` of one pathway (module docstring): integrated gradients of its activity
    ``A(x) = Σ_u w_u a_u(x)``, summed over the sites holding its units, then the mean
    magnitude per feature normalised to sum to 1."""
    from captum.attr import NeuronIntegratedGradients

    kinds = dict(zip(site_attr(ds, "sites"), site_attr(ds, "site_kinds")))
    units = str(ds.attrs.get("units", "element"))
    unit_sites = ds["site"].values.astype(str)
    total = torch.zeros(Xs.shape, dtype=Xs.dtype, device=Xs.device)
    for site, layer in usable.items():
        if not np.any(weights[unit_sites == site] > 0):
            continue
        select = _selector(ds, site, weights, kinds.get(site, "dense"), units, Xs.dtype)
        ig = NeuronIntegratedGradients(module, layer)
        # one forward per integration step, each exactly the attributed batch
        total += ig.attribute(Xs, neuron_selector=select, n_steps=n_steps, internal_batch_size=len(Xs)).detach()
    magnitude = total.abs().reshape(len(Xs), -1).mean(0).double().cpu().numpy()
    s = magnitude.sum()
    return magnitude / s if s > 0 else magnitude
