r"""Which input features drive each pathway: integrated gradients of pathway activity.

For pathway :math:`p` with unit memberships :math:`w_{up}` (``Pathways.membership``), the
pathway's activity on input :math:`x` is the membership-weighted sum of its units'
post-ReLU values,

.. math:: A_p(x) = \sum_u w_{up}\, a_u(x),

(for channel units :math:`a_u` is the channel's mean over positions, as recorded). Integrated
gradients (captum's ``IntegratedGradients``, Sundararajan, Taly & Yan 2017, arXiv 1703.01365)
attribute :math:`A_p(z) - A_p(z')` to the input features along the straight path from the
baseline :math:`z'` (:mod:`relu_probe.pathways.gradients`): the zero input for float inputs;
for integer inputs (token ids) the zero embedding, the attribution of each position being
the sum over its embedding dimensions. Every site of the pathway is read in the same forward
pass, call by call, so reused modules (``path#k``) and functional ReLUs are attributed like
any other site; the forward stops after the last site the pathway needs. A feature's share is

.. math:: \mathrm{share}_{pf} = \frac{\overline{|\mathrm{IG}_{pf}(x)|}}{\sum_{f'} \overline{|\mathrm{IG}_{pf'}(x)|}}

(mean over the attributed samples). A pathway whose activity does not change along the path
has no attribution (all shares 0); it is named in the notes.

**Cost.** Each pathway costs ``n_steps`` forward and backward passes over the attributed
samples. :func:`attribution_cost` times one such pass per pathway first, so a caller can
skip the attributions when they would dominate its run (:func:`relu_probe.analyze`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from .._util.arrays import object_array
from ..data.schema import site_attr
from ..errors import ValueInputError
from ..recording.model import preserved_modes, unwrap_model
from .gradients import InputPath, SiteReader, input_path, unit_reducer

__all__ = ["AttributionPlan", "attribution_cost", "default_feature_names", "pathway_attributions",
           "plan_attributions"]


def default_feature_names(shape: Sequence[int], space: str = "input") -> list[str]:
    """Names of the input features: ``x[i]`` for flat inputs; ``pixel (r, c)`` for one-channel
    images (``(1, H, W)`` or ``(H, W)``) and ``pixel (r, c), channel k`` for several channels;
    ``position i`` for token ids (*space* ``"embedding"``); ``x[i, j, …]`` otherwise."""
    shape = tuple(int(s) for s in shape)
    if space == "embedding":
        return [f"position {i}" for i in range(int(np.prod(shape)))]
    if len(shape) == 1:
        return [f"x[{i}]" for i in range(shape[0])]
    if len(shape) == 2:
        return [f"pixel ({r}, {c})" for r, c in np.ndindex(*shape)]
    if len(shape) == 3:
        if shape[0] == 1:
            return [f"pixel ({r}, {c})" for _, r, c in np.ndindex(*shape)]
        return [f"pixel ({r}, {c}), channel {k}" for k, r, c in np.ndindex(*shape)]
    return ["x[" + ", ".join(map(str, idx)) + "]" for idx in np.ndindex(*shape)]


class _Stop(Exception):
    """Raised from a site reader once every site a pathway needs has been read."""


class AttributionPlan:
    """What :func:`pathway_attributions` will compute, before it runs.

    Attributes
    ----------
    pathways : list of int
        The pathways to attribute (id order).
    samples : numpy.ndarray
        Rows of the inputs attributed.
    path : InputPath
        The integration path of those rows.
    notes : list of str
        What was left out and why.
    n_steps : int
        Integration steps per pathway.
    """

    def __init__(self, *, module: nn.Module, ds: xr.Dataset, pathways: Any, order: list[int], samples: np.ndarray,
                 path: InputPath, notes: list[str], n_steps: int) -> None:
        self.module = module
        self.ds = ds
        self.source = pathways
        self.pathways = order
        self.samples = samples
        self.path = path
        self.notes = notes
        self.n_steps = n_steps
        membership = pathways.membership.transpose("unit", "pathway").values
        self.weights = {p: membership[:, p] for p in order}
        unit_sites = ds["site"].values.astype(str)
        self.sites = [str(s) for s in site_attr(ds, "sites")]
        self.reducers = {s: unit_reducer(ds, s) for s in self.sites}
        self.pathway_sites = {
            p: [s for s in self.sites if np.any(self.weights[p][unit_sites == s] > 0)] for p in order
        }

    @property
    def n_passes(self) -> int:
        """Forward + backward passes over the attributed samples: ``n_steps`` per pathway."""
        return self.n_steps * len(self.pathways)


def plan_attributions(
    model: nn.Module,
    ds: xr.Dataset,
    pathways: Any,
    X: torch.Tensor,
    *,
    max_samples: int = 256,
    n_steps: int = 32,
    max_pathways: int = 12,
    min_mass: float = 0.01,
    random_state: int | None = 0,
) -> AttributionPlan | None:
    """Choose the pathways and samples to attribute and build their integration path (no
    gradients yet); ``None`` when there is nothing to attribute."""
    module = unwrap_model(model)
    notes: list[str] = []
    order = _largest_pathways(pathways, min_mass, max_pathways, notes)
    if not order:
        return None
    idx = _sample_subset(int(X.shape[0]), max_samples, random_state, notes)
    with preserved_modes(module, eval_mode=True):
        path = input_path(module, X[torch.as_tensor(idx)])
    return AttributionPlan(module=module, ds=ds, pathways=pathways, order=order, samples=idx, path=path, notes=notes,
                           n_steps=n_steps)


def attribution_cost(plan: AttributionPlan) -> float:
    """Estimated seconds of :func:`pathway_attributions` for *plan*: for every pathway, one
    forward and backward pass over all attributed samples, timed (after an untimed warm-up
    pass), times ``n_steps``. Pathways stop their forward at different depths, so each is
    timed; the estimate costs ``1 / n_steps`` of the attributions themselves."""
    _integrate(plan, plan.pathways[0], n_steps=1)  # warm-up: site discovery, allocator, lazy imports
    total = 0.0
    for p in plan.pathways:
        start = time.perf_counter()
        _integrate(plan, p, n_steps=1)
        total += time.perf_counter() - start
    return total * plan.n_steps


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
    plan: AttributionPlan | None = None,
) -> tuple[xr.DataArray | None, list[str]]:
    """Share of each input feature in each pathway's activity (module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        The recorded model.
    ds : xarray.Dataset
        Its recording (unit coords ``site``, ``neuron``, ``channel``, ``position``).
    pathways : relu_probe.Pathways
        Pathways of *ds*.
    X : torch.Tensor
        The inputs (float features, or integer token ids), one row per input.
    feature_names : sequence of str, optional
        One name per input feature (flattened), or per position for token ids; default
        :func:`default_feature_names`.
    max_samples : int, default=256
        At most this many rows of *X* (a seeded random subset) are attributed.
    n_steps : int, default=32
        Integration steps.
    max_pathways : int, default=12
        Attribute at most this many pathways: the largest, of mass >= *min_mass*, taking
        the sites in turn when pathways are per site.
    plan : AttributionPlan, optional
        A plan from :func:`plan_attributions` (its settings win over the ones above).

    Returns
    -------
    (shares, notes)
        A DataArray ``(pathway, feature)`` with coords ``contexts`` and ``feature_name``
        (``None`` when nothing could be attributed), and human-readable notes on what was
        left out.
    """
    if plan is None:
        plan = plan_attributions(model, ds, pathways, X, max_samples=max_samples, n_steps=n_steps,
                                 max_pathways=max_pathways, min_mass=min_mass, random_state=random_state)
    if plan is None:
        return None, ["no pathway has enough mass to attribute"]
    notes = list(plan.notes)
    end = plan.path.end
    feature_shape = tuple(end.shape[1:-1] if plan.path.space == "embedding" else end.shape[1:])
    n_features = int(np.prod(feature_shape))
    names = list(feature_names) if feature_names is not None else default_feature_names(feature_shape,
                                                                                        plan.path.space)
    if len(names) != n_features:
        what = "position of the token ids" if plan.path.space == "embedding" else "input feature"
        raise ValueInputError(f"`feature_names` must name every {what} ({n_features}), got {len(names)} names.")
    shares = np.stack([_shares(_integrate(plan, p, n_steps=plan.n_steps), plan.path.space) for p in plan.pathways])
    flat = [int(p) for p, s in zip(plan.pathways, shares) if not s.any()]
    if flat:
        notes.append(f"pathway(s) {', '.join(f'#{p}' for p in flat)}: activity constant along the integration "
                     "path, so no input attribution")
    contexts = plan.source.mass["contexts"].values
    return xr.DataArray(
        shares,
        dims=("pathway", "feature"),
        coords={
            "pathway": np.asarray(plan.pathways, dtype=np.int64),
            "contexts": ("pathway", object_array(contexts[p] for p in plan.pathways)),
            "feature": np.arange(n_features, dtype=np.int64),
            "feature_name": ("feature", np.asarray(names, dtype=object)),
        },
        name="attribution",
        attrs={
            "method": ("integrated gradients (captum IntegratedGradients"
                       + (", through the input embedding, zero-embedding baseline)" if plan.path.space == "embedding"
                          else ", zero baseline)")),
            "space": plan.path.space,
            "n_steps": int(plan.n_steps),
            "n_samples": len(plan.samples),
            "feature_shape": [int(s) for s in feature_shape],
        },
    ), notes


def _largest_pathways(pathways: Any, min_mass: float, max_pathways: int, notes: list[str]) -> list[int]:
    """The pathways to attribute, in id order: of mass >= *min_mass*, the *max_pathways*
    largest; with per-site pathways (a ``site`` coord on ``pathway``), each site's largest
    in turn, so that every layer is represented."""
    mass = np.asarray(pathways.mass.values, dtype=np.float64)
    eligible = [int(p) for p in np.argsort(-mass, kind="stable") if mass[p] >= min_mass]
    if "site" in pathways.mass.coords:
        site = pathways.mass["site"].values.astype(str)
        queues = {s: [p for p in eligible if site[p] == s] for s in dict.fromkeys(site[eligible])}
        ranked: list[int] = []
        while any(queues.values()):
            for queue in queues.values():
                if queue:
                    ranked.append(queue.pop(0))
        eligible = ranked
    order = sorted(eligible[:max_pathways])
    if len(order) < len(eligible):
        notes.append(f"input attributions computed for {len(order)} of the {len(eligible)} pathways of mass >= "
                     f"{min_mass:g} (the largest{' of each site in turn' if 'site' in pathways.mass.coords else ''})")
    return order


def _sample_subset(n: int, max_samples: int, random_state: int | None, notes: list[str]) -> np.ndarray:
    """All *n* samples, or a seeded random subset of *max_samples* of them (in order)."""
    if n <= max_samples:
        return np.arange(n)
    notes.append(f"input attributions use {max_samples} of {n} inputs (random subset)")
    return np.sort(np.random.default_rng(random_state).choice(n, size=max_samples, replace=False))


def _integrate(plan: AttributionPlan, p: int, *, n_steps: int) -> torch.Tensor:
    """Integrated gradients of pathway *p*'s activity ``A_p`` on the plan's path (signed,
    the shape of the path's end)."""
    from captum.attr import IntegratedGradients

    wanted = plan.pathway_sites[p]
    weights = plan.weights[p]
    parts: list[torch.Tensor] = []
    n_inputs = int(plan.path.end.shape[0])

    def read(site: str, out: torch.Tensor) -> None:
        reduce, units = plan.reducers[site]
        if site in wanted:
            w = torch.as_tensor(weights[units], dtype=out.dtype, device=out.device)
            parts.append((reduce(out, n_inputs) * w).sum(1))
            if len(parts) == len(wanted):
                raise _Stop

    def activity(z: torch.Tensor) -> torch.Tensor:
        parts.clear()
        try:
            plan.path.run(z)
        except _Stop:
            pass
        if len(parts) != len(wanted):
            raise ValueInputError(f"pathway #{p}: its sites {wanted} did not all fire in the forward pass.")
        return torch.stack(parts).sum(0)

    with preserved_modes(plan.module, eval_mode=True), SiteReader(plan.module, plan.sites, read) as reader:
        reader.discover(lambda: plan.path.run(plan.path.end[:1], slice(0, 1)))
        # one forward per integration step, each exactly the attributed batch
        ig = IntegratedGradients(activity)
        with torch.enable_grad():
            out = ig.attribute(plan.path.end, baselines=plan.path.start, n_steps=n_steps,
                               internal_batch_size=n_inputs)
    return out.detach()


def _shares(attribution: torch.Tensor, space: str) -> np.ndarray:
    """``share_f`` (module docstring) from signed attributions ``(N, …)``; embedding
    attributions are summed over the embedding dimension first (one value per position)."""
    if space == "embedding":
        attribution = attribution.sum(-1)
    magnitude = attribution.abs().reshape(attribution.shape[0], -1).mean(0).double().cpu().numpy()
    total = magnitude.sum()
    return magnitude / total if total > 0 else magnitude
