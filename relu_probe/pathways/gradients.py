r"""Path-integrated gradients through recorded ReLU sites, one site call at a time.

Input attributions (:mod:`.attribution`) and conductance importance
(:func:`relu_probe.unit_importance`) both integrate gradients along the straight path

.. math:: z(\alpha) = z' + \alpha\,(z - z'), \qquad \alpha \in [0, 1],

from a baseline :math:`z'` to the inputs :math:`z` (Sundararajan, Taly & Yan 2017,
arXiv 1703.01365). :class:`InputPath` says where that path runs:

* **float inputs**: in input space, from the zero input;
* **integer inputs** (token ids): in the space of the model's input embedding
  (``model.get_input_embeddings()`` for Hugging Face models, else its one ``nn.Embedding``),
  from the zero embedding; the embedding's output is replaced by :math:`z(\alpha)` while the
  ids themselves are passed on unchanged (the approach of captum's
  ``LayerIntegratedGradients``). For BERT and OPT the zero embedding is the ``[PAD]`` token's,
  whose embedding is initialised to zero and never trained.

The recorded sites are read during those forward passes by :class:`SiteReader`, which hooks
the same sites, under the same names, as :func:`relu_probe.record` (``path#k`` for the
*k*-th call of a reused module, ``owner::relu#k`` for functional ReLUs), so a module called
several times per forward is read call by call — captum's layer methods see only one call
of a module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from ..data.schema import site_attr
from ..errors import InputError, ValueInputError, describe
from ..recording.hooks import GateTap, replaced_output
from ..recording.model import model_float_tensor
from ..recording.sites import activation_types

__all__ = ["InputPath", "SiteReader", "input_embedding", "input_path", "output_tensor", "site_conductance",
           "unit_reducer"]


# ----------------------------------------------------------------------------- the path
def input_embedding(module: nn.Module) -> nn.Module:
    """The embedding layer that turns *module*'s integer inputs into vectors.

    ``module.get_input_embeddings()`` when the model has it (Hugging Face models), else the
    model's only ``nn.Embedding``; anything else is refused, naming the candidates.
    """
    getter = getattr(module, "get_input_embeddings", None)
    if callable(getter):
        try:
            layer = getter()
        except (NotImplementedError, AttributeError):
            layer = None
        if isinstance(layer, nn.Module):
            return layer
    found = [name for name, m in module.named_modules() if isinstance(m, nn.Embedding)]
    if len(found) == 1:
        return module.get_submodule(found[0])
    raise ValueInputError(
        "the inputs are integers (token ids?), so gradients are integrated in the space of the model's "
        "input embedding, but "
        + (f"`model` has {len(found)} nn.Embedding modules ({', '.join(found)}) and no get_input_embeddings() "
           "saying which one reads the inputs." if found else "`model` has no nn.Embedding and no "
           "get_input_embeddings(); integer inputs cannot be moved along a path. Pass float inputs.")
    )


@dataclass
class InputPath:
    r"""The straight path :math:`z(\alpha) = z' + \alpha (z - z')` of one batch of inputs.

    Attributes
    ----------
    module : torch.nn.Module
        The model.
    inputs : torch.Tensor
        The inputs as given (float features, or integer token ids).
    end : torch.Tensor
        :math:`z`: the inputs (float) or their embedding (integer inputs), detached.
    start : torch.Tensor
        :math:`z'`, the baseline, the shape of *end*.
    embedding : torch.nn.Module or None
        The embedding whose output is replaced by the path (integer inputs).
    """

    module: nn.Module
    inputs: torch.Tensor
    end: torch.Tensor
    start: torch.Tensor
    embedding: nn.Module | None = None

    @property
    def space(self) -> str:
        """``"input"`` or ``"embedding"``: where the path runs."""
        return "input" if self.embedding is None else "embedding"

    def run(self, z: torch.Tensor, rows: slice | None = None) -> Any:
        """The model's output at path point *z* for the inputs ``inputs[rows]``."""
        if self.embedding is None:
            return self.module(z)
        ids = self.inputs if rows is None else self.inputs[rows]
        if z.shape[0] != ids.shape[0]:
            raise ValueInputError(f"path point has {z.shape[0]} rows for {ids.shape[0]} inputs")
        with replaced_output(self.embedding, lambda _out: z):
            return self.module(ids)

    def point(self, alpha: float, rows: slice | None = None) -> torch.Tensor:
        """:math:`z(\\alpha)` for ``inputs[rows]``."""
        start, end = (self.start, self.end) if rows is None else (self.start[rows], self.end[rows])
        return start + alpha * (end - start)


def input_path(module: nn.Module, inputs: torch.Tensor, *, baselines: Any = None) -> InputPath:
    """The integration path of *inputs* (module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        The model (already unwrapped).
    inputs : torch.Tensor
        Float inputs, or integer token ids (attributed through the input embedding).
    baselines : scalar or Tensor, optional
        Float inputs: the baseline input (broadcast to the inputs; default 0). Integer inputs:
        baseline token ids whose embedding starts the path (default: the zero embedding).
    """
    if not isinstance(inputs, torch.Tensor):
        raise InputError(f"`inputs` must be a torch.Tensor, got {describe(inputs)}.")
    x = model_float_tensor(module, inputs.detach())
    if x.is_floating_point():
        start = torch.zeros_like(x) if baselines is None else torch.as_tensor(baselines, dtype=x.dtype,
                                                                                  device=x.device).expand_as(x)
        return InputPath(module, x, x, start.clone())
    if x.dtype == torch.bool or x.is_complex():
        raise InputError(f"`inputs` must be float features or integer token ids, got dtype {x.dtype}.")
    embedding = input_embedding(module)
    seen = _Keeper()
    with torch.no_grad(), replaced_output(embedding, seen):
        module(x[:1])
    if seen.value is None:
        raise ValueInputError(
            f"the input embedding {type(embedding).__name__} was not called in the model's forward; "
            "cannot integrate along it."
        )
    with torch.no_grad():
        end = embedding(x).detach()
        if baselines is None:
            start = torch.zeros_like(end)
        else:
            ids = torch.as_tensor(baselines, device=x.device)
            if ids.is_floating_point():
                raise InputError("`baselines` for integer inputs must be token ids (integers), got floats.")
            start = embedding(ids.expand_as(x)).detach()
    return InputPath(module, x, end, start, embedding)


class _Keeper:
    """A pass-through output replacement that remembers the last output it saw."""

    value: Any = None

    def __call__(self, out: Any) -> Any:
        self.value = out
        return out


def output_tensor(output: Any) -> torch.Tensor:
    """The tensor of a model's output: itself, a Hugging Face output's ``logits`` (or first
    tensor), or the first tensor of a tuple / mapping."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    items = list(output.values()) if isinstance(output, Mapping) else list(output) if isinstance(
        output, (tuple, list)) else []
    for item in items:
        if isinstance(item, torch.Tensor):
            return item
    raise ValueInputError(f"the model's output holds no tensor to differentiate, got {describe(output)}.")


# ----------------------------------------------------------------------------- the sites
class _ScratchSink:
    """A sink that keeps nothing: the reader needs the sites' outputs, not their gates."""

    def __init__(self) -> None:
        self.specs: dict[str, tuple[int, np.dtype]] = {}
        self._block: dict[str, np.ndarray] = {}

    def configure(self, specs: dict[str, tuple[int, np.dtype]]) -> None:
        self.specs = dict(specs)

    def reserve(self, rows: int) -> dict[str, np.ndarray]:
        if not self._block or next(iter(self._block.values())).shape[0] != rows:
            self._block = {k: np.empty((rows, n), dtype) for k, (n, dtype) in self.specs.items()}
        return self._block

    def commit(self, rows: int) -> None:
        pass


class SiteReader:
    """Hands the live output of each selected site call to *read* during forward passes.

    A context manager: hooks are attached on entry and always removed on exit. The first
    forward inside the block discovers the sites (as :func:`relu_probe.record` does) and is
    not read; :meth:`discover` runs it on one input without autograd.

    Parameters
    ----------
    module : torch.nn.Module
        The (unwrapped) model.
    sites : sequence of str
        Recorded site names to read (e.g. ``ds.attrs["sites"]``).
    read : callable
        ``read(site, output)``: called with each selected site's output tensor as its call
        returns; a tensor it returns replaces the output downstream.
    """

    def __init__(self, module: nn.Module, sites: Sequence[str],
                 read: Callable[[str, torch.Tensor], torch.Tensor | None]) -> None:
        named = dict(module.named_modules())
        extra = {type(named[s.split("#")[0]]) for s in sites if "::" not in s and s.split("#")[0] in named}
        self.sites = list(sites)
        self._tap = GateTap(module, selector=list(sites), activation_types=activation_types(None, sorted(
            extra, key=lambda t: t.__name__)), values=False, units="channel", sink=_ScratchSink(), check_finite=False,
            on_output=read)

    def __enter__(self) -> SiteReader:
        self._tap.attach()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._tap.detach()

    def discover(self, run: Callable[[], Any]) -> None:
        """Run the discovery pass (*run* calls the model once) without autograd."""
        with torch.no_grad():
            run()


# ----------------------------------------------------------------------------- units
def unit_reducer(ds: xr.Dataset, site: str, *, how: str = "mean"
                 ) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], np.ndarray]:
    r"""How one site's output maps to its recorded units.

    Returns ``(reduce, units)``: ``reduce(output, n_inputs)`` gives a ``(n_inputs, n)``
    tensor, one column per recorded unit of *site* (positions ``units`` in *ds*), in the
    recorded unit order. Element units read their (channel, position) entry; units without a
    position (channel units; every unit when the positions are the samples,
    ``samples="position"``) read the channel over all positions. A site whose output's first
    dimension is a multiple of the inputs (layers that flatten ``(batch · seq, d)``, like
    OPT's) is read as ``(batch, seq, d)``. *how* says how a unit's entries combine:
    ``"mean"`` (its activity, as recorded) or ``"sum"`` (its conductance, additive over its
    entries).
    """
    units = np.flatnonzero(ds["site"].values.astype(str) == site)
    kinds = dict(zip((str(s) for s in site_attr(ds, "sites")), (str(k) for k in site_attr(ds, "site_kinds"))))
    kind = kinds.get(site, "dense")

    def unit_coord(name: str) -> torch.Tensor | None:
        if name in ds.coords and ds[name].dims == ("unit",):  # "position" is a sample coord for token samples
            return torch.as_tensor(ds[name].values[units].astype(np.int64))
        return None

    neuron = unit_coord("neuron")
    channel = unit_coord("channel")
    channel = neuron if channel is None else channel
    position = unit_coord("position")
    per_channel = position is None or bool((position < 0).all())
    pool = torch.mean if how == "mean" else torch.sum

    def reduce(out: torch.Tensor, n_inputs: int) -> torch.Tensor:
        layout = kind
        if out.shape[0] != n_inputs:
            if out.dim() != 2 or out.shape[0] % n_inputs:
                raise ValueInputError(
                    f"site {site!r} saw an output of shape {tuple(out.shape)} for {n_inputs} inputs; cannot "
                    "assign its rows to inputs."
                )
            out = out.reshape(n_inputs, out.shape[0] // n_inputs, out.shape[1])  # (batch · seq, d) → (batch, seq, d)
            layout = "sequence"
        if layout == "dense" or out.dim() == 2:
            return out.reshape(out.shape[0], -1)[:, neuron]
        cf = out if layout == "conv" else out.movedim(-1, 1)
        cf = cf.reshape(cf.shape[0], cf.shape[1], -1)  # (N, C, positions)
        if per_channel:
            return pool(cf, 2)[:, channel]
        return cf[:, channel, position]

    return reduce, units


# ----------------------------------------------------------------------------- conductance
def site_conductance(
    path: InputPath,
    ds: xr.Dataset,
    scalar: Callable[[Any], torch.Tensor],
    *,
    n_steps: int,
    batch_size: int,
) -> np.ndarray:
    r"""Mean conductance magnitude of every recorded unit; every site in one pass per step.

    For a neuron :math:`j` of a site with output :math:`y_j` and the per-input scalar
    output :math:`F`, the conductance on input :math:`z` is the path integral (Dhamdhere,
    Sundararajan & Yan 2019, arXiv 1805.12233)

    .. math:: \mathrm{Cond}_j(z) = \int_0^1 \frac{\partial F}{\partial y_j}\big(z(\alpha)\big)
              \,\frac{d y_j\big(z(\alpha)\big)}{d\alpha}\, d\alpha
              \approx \sum_{k=1}^{n} \tfrac12 (g_{k-1} + g_k)\,\big(y_j(\alpha_k) - y_j(\alpha_{k-1})\big)

    with :math:`\alpha_k = k/n` and :math:`g_k = \partial F / \partial y_j` at
    :math:`z(\alpha_k)` (the trapezoid rule on the gradient; :math:`n + 1` forward and
    backward passes). The gradient is the total derivative of :math:`F` through everything
    downstream of the neuron, later sites included. A unit's conductance is the sum over its
    neurons (a channel unit: over the channel's positions), and the result is
    :math:`\overline{|\mathrm{Cond}_u|}` over the inputs, one value per unit of *ds*.
    """
    sites = [str(s) for s in site_attr(ds, "sites")]
    reducers = {site: unit_reducer(ds, site, how="sum") for site in sites}
    n = int(path.end.shape[0])
    kept: dict[str, torch.Tensor] = {}

    def read(site: str, out: torch.Tensor) -> torch.Tensor:
        mine = out.clone()  # the reader's copy: in-place ops downstream cannot change it
        kept[site] = mine
        return mine.clone()

    total = np.zeros(ds.sizes["unit"])
    with SiteReader(path.module, sites, read) as reader:
        reader.discover(lambda: path.run(path.point(1.0, slice(0, 1)), slice(0, 1)))
        for start in range(0, n, batch_size):
            rows = slice(start, min(n, start + batch_size))
            size = rows.stop - rows.start
            cond: dict[str, torch.Tensor] = {}
            previous: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            for k in range(n_steps + 1):
                kept.clear()
                with torch.enable_grad():
                    z = path.point(k / n_steps, rows).requires_grad_(True)
                    value = scalar(path.run(z, rows)).sum()
                    missing = [s for s in sites if s not in kept]
                    if missing:
                        raise ValueInputError(f"site(s) {missing} did not fire while integrating the path.")
                    grads = torch.autograd.grad(value, [kept[s] for s in sites], allow_unused=True)
                for site, grad in zip(sites, grads):
                    y = kept[site].detach()
                    g = torch.zeros_like(y) if grad is None else grad.detach()
                    if site in previous:
                        y0, g0 = previous[site]
                        step = 0.5 * (g0 + g) * (y - y0)
                        cond[site] = step if site not in cond else cond[site] + step
                    previous[site] = (y, g)
            for site in sites:
                reduce, units = reducers[site]
                total[units] += reduce(cond[site], size).abs().sum(0).double().cpu().numpy()
    return total / max(n, 1)
