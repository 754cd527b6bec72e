"""The ReLN: the gated deep linear network whose gates are the pathways a ReLU network uses
(Jarvis, Klein, Rosman & Saxe, *Make Haste Slowly*, ICLR 2025, arXiv 2503.06181).

``ReLN.from_pathways`` turns a :class:`relu_probe.Pathways` result into a GDLN with one
pathway per discovered context set (the smallest ones, holding at most 5% of the mass
together, dropped: :func:`kept_pathways`), the shared pathway
reading every input and the others only the inputs that vary within a context (the paper's
rule; cue inputs are detected from the data). It trains with the paper's ``"residual"`` rule
by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._util.arrays import as_2d_float, check_xy, object_array
from .._util.checks import check_choice, check_real
from ..errors import InputError, ValueInputError, describe
from ..tasks import PAPER_EPOCHS, PAPER_INIT_SCALE, PAPER_LR
from .gdln import GDLN
from .gating import resolve_gates
from .spec import resolve_inputs, resolve_shared

__all__ = ["ReLN", "DEFAULT_MIN_MASS", "MIN_MASS_TAIL", "kept_pathways"]

#: The default ``min_mass`` of :meth:`ReLN.from_pathways`: a cumulative share (see
#: :func:`kept_pathways`), not a fixed mass.
DEFAULT_MIN_MASS = "auto"
#: ``min_mass="auto"``: the pathways left out of a ReLN hold at most this share of the mass.
MIN_MASS_TAIL = 0.05


def kept_pathways(mass: Any, min_mass: float | str = DEFAULT_MIN_MASS) -> np.ndarray:
    """Indices of the pathways a ReLN models, from their recorded masses.

    ``min_mass="auto"``: the largest pathways, in order of mass, until they hold at least
    ``1 - MIN_MASS_TAIL`` (95%) of the mass, and every pathway as large as the smallest of
    them (equal masses are kept or dropped together, so a symmetric structure stays
    symmetric). The tail left out — at most 5% of the mass, typically many small context sets
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
        return np.flatnonzero((mass > 0) & (mass >= floor * (1.0 - 1e-6)))
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    return np.flatnonzero(mass >= min_mass)


class ReLN(GDLN):
    """A GDLN built to imitate a ReLU network: one pathway per discovered gating.

    Same parameters as :class:`relu_probe.GDLN`, with the paper's defaults:
    ``inputs="auto"``, ``rule="residual"``, ``hidden=100`` per pathway and
    ``init_scale=None`` meaning :data:`relu_probe.tasks.PAPER_INIT_SCALE`. ``context`` stores per-sample
    context labels used by :meth:`fit` when none are passed.

    Build one from a :class:`relu_probe.Pathways` with :meth:`from_pathways`.

    Attributes
    ----------
    pathway_mass_ : xarray.DataArray or None
        Recorded mass of the kept pathways (``from_pathways`` only), renormalised to 1.
    dropped_ : list of tuple
        Context sets of the pathways left out (below ``min_mass``).
    """

    def __init__(
        self,
        gates: Any,
        *,
        hidden: int | Sequence[Any] = 100,
        depth: int | Sequence[int] = 1,
        init_scale: Any = None,
        inputs: Any = "auto",
        rule: str = "residual",
        shared: Any = None,
        trunk: Sequence[int] | None = None,
        trunk_init_scale: Any = None,
        lr: float = PAPER_LR,
        epochs: int = PAPER_EPOCHS,
        sv_stride: int = 10,
        seed: int | None = 0,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        progress: bool | None = None,
        context: Any = None,
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
            lr=lr,
            epochs=epochs,
            sv_stride=sv_stride,
            seed=seed,
            dtype=dtype,
            device=device,
            progress=progress,
        )
        self.context = context

    def fit(
        self,
        X: Any,
        Y: Any,
        *,
        context: Any = None,
        lr: float | None = None,
        epochs: int | None = None,
    ) -> ReLN:
        """Train the ReLN (see :meth:`relu_probe.GDLN.fit`); ``context`` defaults to the
        labels stored at construction."""
        ctx = self.context if context is None else context
        super().fit(X, Y, context=ctx, lr=lr, epochs=epochs)
        return self

    def _init_scale_param(self) -> Any:
        return PAPER_INIT_SCALE if self.init_scale is None else self.init_scale

    @classmethod
    def from_pathways(
        cls,
        pw: Any,
        X: Any,
        Y: Any = None,
        *,
        min_mass: float | str = DEFAULT_MIN_MASS,
        inputs: Any = "auto",
        **params: Any,
    ) -> ReLN:
        """The ReLN whose gates are the pathways of a :class:`relu_probe.Pathways` result.

        Parameters
        ----------
        pw : relu_probe.Pathways
            From :func:`relu_probe.find_pathways` on a recording of ``X`` (same samples, same
            order).
        X : array-like (sample, feature)
            The recorded inputs: used to detect cue inputs and to check the sample count.
        Y : array-like (sample, output), optional
            Targets, only checked against ``X`` here (pass them to :meth:`fit`).
        min_mass : "auto" or float, default="auto"
            Which pathways are modelled (:func:`kept_pathways`): ``"auto"`` the largest ones
            holding 95% of the recorded mass ``pw.mass`` (ties kept together); a float those
            of mass >= ``min_mass``. The others' context sets are listed in ``dropped_``.
        inputs : "auto", "all", None or masks, default="auto"
            ``"auto"``: the shared pathway (open on every sample) reads every input; every
            other pathway reads only the inputs that vary within a context — cue inputs,
            constant within each context (groups from the ``pw.by`` sample coord, else from the
            gate patterns), are left to the shared pathway. Ignored with a ``trunk`` (every
            input then goes through the shared trunk).
        **params
            Any other :class:`ReLN` parameter (``hidden``, ``init_scale``, ``rule``, ``lr``,
            ``epochs``, ``seed`` …).

        Returns
        -------
        ReLN
            Unfitted; call ``.fit(X, Y)``.
        """
        for attr in ("mass", "sample_gates"):
            if not hasattr(pw, attr):
                raise InputError(
                    f"`pw` must be a relu_probe.Pathways (from rp.find_pathways), got {describe(pw)}."
                )
        if Y is None:
            Xn = as_2d_float("X", X)
        else:
            Xn, _ = check_xy(X, Y)
        gates_da = pw.sample_gates
        if not isinstance(gates_da, xr.DataArray) or set(gates_da.dims) != {"pathway", "sample"}:
            raise InputError("`pw.sample_gates` must be a (pathway, sample) DataArray.")
        gates_da = gates_da.transpose("pathway", "sample")
        if gates_da.sizes["sample"] != Xn.shape[0]:
            raise ValueInputError(
                f"`X` has {Xn.shape[0]} samples but the pathways were found on "
                f"{gates_da.sizes['sample']}; pass the recorded inputs in their recorded order."
            )
        mass = np.asarray(pw.mass.values, dtype=np.float64)
        contexts = list(pw.mass["contexts"].values) if "contexts" in pw.mass.coords else [None] * len(mass)
        keep = kept_pathways(mass, min_mass)
        if keep.size == 0:
            raise ValueInputError(
                f"no pathway has mass >= `min_mass` ({min_mass}); largest mass is "
                f"{mass.max() if mass.size else 0.0:.3g}. Lower `min_mass`."
            )
        dropped = [contexts[i] for i in range(len(mass)) if i not in set(keep.tolist())]
        G = gates_da.isel(pathway=keep).astype(np.float64)
        by = getattr(pw, "by", None)
        context = None
        if by is not None and by in gates_da.coords and gates_da[by].dims == ("sample",):
            context = np.asarray(gates_da[by].values)
        if params.get("trunk"):
            inputs = None  # every input goes through the shared trunk
        elif isinstance(inputs, str) and inputs == "auto":
            # resolved now, from the pathways' own gates and context labels
            gating = resolve_gates(G, Xn.shape[0], warn_empty=False)
            inputs = resolve_inputs("auto", gating, resolve_shared(params.get("shared"), gating), Xn, context)
        params.setdefault("context", context)
        model = cls(G, inputs=inputs, **params)
        kept_mass = mass[keep] / mass[keep].sum()
        model.pathway_mass_ = xr.DataArray(
            kept_mass,
            dims=("pathway",),
            coords={"pathway": np.arange(keep.size), "contexts": ("pathway", object_array([contexts[i] for i in keep]))},
            name="mass",
        )
        model.dropped_ = dropped
        return model

    @classmethod
    def _saved_arrays(cls) -> tuple[str, ...]:
        return (*super()._saved_arrays(), "pathway_mass_")

    @classmethod
    def _saved_values(cls) -> tuple[str, ...]:
        return (*super()._saved_values(), "dropped_")
