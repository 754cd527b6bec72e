r"""Predict, from the data alone, the pathway structure a one-hidden-layer ReLU network learns.

Idea (Jarvis et al. 2025, arXiv 2503.06181; Saxe, Sodhani & Lewallen 2022, arXiv 2207.10430):
a ReLU network trained from a small initialisation behaves like a gated deep linear network
whose pathways race for the structure in the data; the pathways that win the race are the
ones the network uses. :func:`predict_structure` races *every* candidate context set at once
— the union GDLN with one pathway per non-empty set ``S`` of contexts (``2^K − 1`` of them),
open on the samples whose context is in ``S`` — under the exact dynamics of
:func:`relu_probe.reln.exact.exact_dynamics` (``rule="joint"``: all pathways fit one shared
error), prunes the sets that do not grow, and reports each surviving set's share.

Inputs follow the paper's ReLN convention: the pathway open on every context reads every
input; the others read only the inputs that vary within a context (cue inputs, constant in
each context, are detected from the data).

Predicted mass
--------------
:func:`relu_probe.find_pathways` (``by="context"``, ``within="object"``, readout importance)
measures a set's mass as ``Σ_{(u,o): S(u,o)=S} ‖W2[:, u]‖ Σ_{c∈S} a_u(o, c)``, normalised: the
readout-weighted activity of the units that are on exactly in the contexts of ``S``. The
predicted counterpart of pathway ``S`` with final map ``M_S`` is

.. math:: m_S = \frac{σ_1(M_S)\, ρ_S}{\sum_{S'} σ_1(M_{S'})\, ρ_{S'}},
          \qquad ρ_S = \frac{1}{|C|}\sum_{(c, o) \in C} g_S(c)

the strength of the pathway's leading mode times the share of (context, item) cells ``C`` it
is open on: in the rich regime the units a pathway recruits are dominated by its leading mode
(its readout norm times activation grows with ``σ_1``) and they are on exactly on the
pathway's samples. Each cell counts once, whatever its number of samples, as in the
measured mass (:func:`relu_probe.find_pathways` balances its cells); every sample still
drives the dynamics, as in training. With one sample per cell ``ρ_S`` is the fraction of
samples the pathway is open on.

Limitation: fixed gating
------------------------
The race keeps every pathway's gates fixed, as a GDLN does. A ReLU network's units change
their active context sets while they learn: on the paper's 5-context hierarchy task most
(unit, item) cells leave their initial set within the first hundred epochs, nearly all of the
readout-weighted activity then sits on units open in every context (the shared pathway, which
learns first), and the context sets are formed out of those units once the shared mode is
learned (more than 90 % of the final mass of the 4- and 3-context sets sits on cells that
were open in every context before). Those sets start from the shared pathway's scale, not
from their own initial state, so the network's race is less decisive than the GDLN's: the
slower sets (there, the 3-context sets) are predicted below what the trained network uses,
and the faster ones above. Predicted masses move towards the measured ones as the initial
scale grows, which is how that head start acts.

Search
------
Up to ``max_exhaustive`` contexts (default 6, i.e. at most 63 pathways) all ``2^K − 1`` sets
race together. Beyond, a greedy top-down growth over the lattice of sets: start from the full
set and its ``K`` children (sets with one context removed); race them; keep the children that grow
(pruning rule below; at most ``beam`` of them, largest first); their children not raced yet
join the next race together with the kept sets; repeat until no new set survives. A set
enters only when a superset survived, which is how the race unfolds on the paper's tasks
(the full set and the ``K−1``-sets win, smaller sets lose).

Pruning: a set *does not grow* when its mass stays below ``min_mass`` (default 1 %) of the
strongest set's — two orders of magnitude below the pathway that carries most; such sets are
dropped and the survivors raced again, so the reported dynamics are those of the pruned ReLN.
The threshold is relative to the strongest set, not to the total, so that many small sets
that do grow (e.g. the ten 3-of-5 sets of a 5-context task) are not pruned for being many.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._util.arrays import check_xy, object_array
from .._util.checks import check_choice, check_int, check_real
from ..data.schema import context_set_label
from ..errors import InputError, ValueInputError, describe
from .exact import DEFAULT_RTOL, MeanState, exact_dynamics, mean_state_of
from .gating import _sorted_tuple, context_labels, cue_inputs, resolve_gates
from .init import DEFAULT_N_UNITS, DEFAULT_RELATIVE_INIT, InitRule, items_of
from .schedule import Schedule, resolve_schedule, stability_problem
from .spec import resolve_spec

__all__ = [
    "PredictedStructure",
    "predict_structure",
    "compare_structure",
    "structure_mass",
    "ContextSetRace",
    "predict_from",
    "structure_table",
    "DEFAULT_MIN_MASS",
    "DEFAULT_RELATIVE_INIT",
]

#: A set whose predicted mass stays below this fraction of the strongest set's does not grow
#: and is pruned (two orders of magnitude: it carries nothing a measurement could resolve).
DEFAULT_MIN_MASS = 0.01

#: Number of contexts up to which every context set races (2^K − 1 pathways).
DEFAULT_MAX_EXHAUSTIVE = 6


# ---------------------------------------------------------------------------- pieces
def structure_mass(maps: np.ndarray, gates: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``m_S ∝ σ_1(M_S) ρ_S`` (module docstring), normalised; zeros when nothing grew.
    *weights* (sample,), summing to 1, weigh the samples in ``ρ_S`` (default: equally;
    :meth:`ContextSetRace.cell_weights` for the cell-balanced share)."""
    top = np.linalg.svd(np.asarray(maps, dtype=np.float64), compute_uv=False)[..., 0]
    gates = np.asarray(gates, dtype=np.float64)
    rho = gates.mean(axis=1) if weights is None else gates @ np.asarray(weights, dtype=np.float64)
    raw = top * rho
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


def _all_sets(values: tuple) -> list[tuple]:
    return [s for j in range(len(values), 0, -1) for s in itertools.combinations(values, j)]


def _children(S: tuple) -> list[tuple]:
    return [tuple(v for v in S if v != drop) for drop in S] if len(S) > 1 else []


class ContextSetRace:
    """Data, contexts, items and the initial state shared by every race of one prediction.

    Context-set pathways ``S`` are open on the samples whose context is in ``S``
    (:meth:`gates`); with ``inputs="auto"`` all but the full set read only the non-cue
    inputs (:meth:`masks`); their mean initial state comes from one
    :class:`~relu_probe.reln.init.InitRule` (:meth:`state`), so that every race of a
    prediction or a ranking starts each set from the same state; :meth:`race` runs the exact
    dynamics (:func:`relu_probe.reln.exact.exact_dynamics`) of a list of sets.
    """

    def __init__(
        self,
        X: Any,
        Y: Any,
        context: Any,
        within: Any,
        inputs: str,
        network: Any,
        init_std: Any,
        width: Any,
        n_units: int,
        init_scale: Any = None,
        hidden: int = 100,
    ) -> None:
        self.X, self.Y = check_xy(X, Y)
        if context is None:
            raise ValueInputError("`context` is required: one context label per sample.")
        self.context = context_labels(context, self.X.shape[0])
        self.values = _sorted_tuple(np.unique(self.context))
        if len(self.values) < 2:
            raise ValueInputError(
                f"`context` must have at least two distinct values, got {list(self.values)}."
            )
        check_choice("inputs", inputs, ["auto", "all"])
        self.inputs = inputs
        _, inv = np.unique(self.context, return_inverse=True)
        self.cue = cue_inputs(self.X, inv.reshape(-1))
        if inputs == "auto" and self.cue.all():
            raise ValueInputError(
                "`inputs='auto'`: every input is constant within each context, so the context "
                "pathways would read nothing; use inputs='all'."
            )
        self.items = items_of(self.X, self.context, self.cue, within)
        self.scale = None
        if init_scale is not None:
            if network is not None or init_std is not None or width is not None:
                raise ValueInputError("pass either `init_scale` (a GDLN's weight std) or `network` / "
                                      "`init_std` and `width` (a ReLU network's), not both.")
            self.scale = (init_scale, check_int("hidden", hidden, minimum=1))
            return
        self.init = InitRule(
            self.X, self.Y, self.context, self.items, self.masks,
            network=network, init_std=init_std, width=width, n_units=n_units,
        )

    def cell_weights(self) -> np.ndarray:
        """Sample weights (sample,) that give every (context, item) cell the same total,
        ``1 / (|C| · n_cell)``: the weighting of ``ρ_S`` (module docstring)."""
        cell, _ = pd.MultiIndex.from_arrays([self.context, self.items]).factorize()
        counts = np.bincount(cell)
        return 1.0 / (counts.size * counts[cell])

    def masks(self, sets: Sequence[tuple]) -> np.ndarray:
        m = np.ones((len(sets), self.X.shape[1]))
        if self.inputs == "auto":
            for i, S in enumerate(sets):
                if len(S) < len(self.values):
                    m[i] = ~self.cue
        return m

    def gates(self, sets: Sequence[tuple]) -> np.ndarray:
        return np.array([np.isin(self.context, np.asarray(S, dtype=self.context.dtype)) for S in sets], dtype=float)

    def state(self, sets: Sequence[tuple]) -> MeanState:
        """The mean initial state of these sets: from the init rule, or with ``init_scale``
        that of a GDLN with ``hidden`` units per pathway and those weight stds (one value or
        ``{"shared": …, "context": …}``, the full set being the shared pathway)."""
        if self.scale is None:
            return self.init.state(list(sets))
        scale, hidden = self.scale
        spec = resolve_spec(self.gates(sets), self.X, shared=[len(S) == len(self.values) for S in sets],
                            hidden=hidden, init_scale=scale, Y=self.Y)
        return mean_state_of(None, spec)

    def candidate(self, name: str, value: Any) -> tuple[tuple, ...]:
        """A gating as a tuple of context sets (duplicates dropped, order kept): a list of
        context sets, or a (pathway, sample) 0/1 array whose every row is open on whole
        contexts (:func:`relu_probe.reln.gating.resolve_gates`)."""
        gating = resolve_gates(value, self.X.shape[0], self.context, name=name)
        sets: list[tuple] = []
        for p, (S, row) in enumerate(zip(gating.contexts, gating.G)):
            if not S or not np.array_equal(row, self.gates([S])[0]):
                raise ValueInputError(
                    f"`{name}`: pathway {p} is not open on whole contexts (its gate varies within a "
                    "context, or it is closed everywhere); gatings are ranked as context sets."
                )
            if S not in sets:
                sets.append(S)
        return tuple(sets)

    def schedule(self, sets: Sequence[tuple], *, rule: str, lr: float | None, epochs: int | None,
                 check_lr: bool = True) -> Schedule:
        """The learning rate and epochs of a race of these sets: given (``lr`` checked against
        their largest stable rate), or derived from the data and their initial state
        (:func:`relu_probe.reln.schedule.resolve_schedule`)."""
        spec = resolve_spec(self.gates(sets), self.X, shared=[len(S) == len(self.values) for S in sets],
                            inputs=self.masks(sets))
        def curve(rate: float, horizon: int) -> np.ndarray:  # the exact loss curve, to measure the epochs
            return self.race(sets, lr=rate, epochs=horizon, rule=rule, sv_stride=horizon, check_lr=False)["loss"].values

        return resolve_schedule(stability_problem(spec, self.X, rule), self.Y, lr=lr, epochs=epochs,
                                pi0=self.state(sets).pi0 if epochs is None else None, check_lr=check_lr,
                                what="the prediction", curve=curve)

    def race(self, sets: Sequence[tuple], **kw: Any) -> xr.Dataset:
        return exact_dynamics(
            self.X, self.Y, self.gates(sets), inputs=self.masks(sets), init=self.state(sets),
            context=None, **kw,
        ).assign_coords(contexts=("pathway", object_array(sets)), name=("pathway", [context_set_label(S) for S in sets]))


# ---------------------------------------------------------------------------- result
class PredictedStructure:
    """The pathway structure predicted by :func:`predict_structure`.

    Attributes
    ----------
    mass : xarray.DataArray (pathway,)
        Predicted mass of each surviving context set (module docstring of
        :mod:`relu_probe.reln.predict`), summing to 1; coords ``contexts``, ``n_contexts``.
    dynamics : xarray.Dataset
        Exact dynamics of the surviving pathways (``loss`` over ``epoch``,
        ``singular_values`` over ``sv_epoch``, final ``maps``; see
        :func:`relu_probe.reln.exact.exact_dynamics`).
    race : xarray.Dataset
        The last race that included the pruned sets (the union race for ``K ≤
        max_exhaustive``), with ``mass`` over its pathways.
    pruned : list of tuple
        Context sets that did not grow (mass below ``min_mass``).
    context_values : tuple
    method : {"exhaustive", "greedy"}
    """

    def __init__(
        self,
        *,
        mass: xr.DataArray,
        dynamics: xr.Dataset,
        race: xr.Dataset,
        pruned: list[tuple],
        context_values: tuple,
        method: str,
        min_mass: float,
    ) -> None:
        self.mass = mass
        self.dynamics = dynamics
        self.race = race
        self.pruned = pruned
        self.context_values = context_values
        self.method = method
        self.min_mass = min_mass

    @property
    def contexts(self) -> list[tuple]:
        return list(self.mass["contexts"].values)

    @property
    def loss(self) -> xr.DataArray:
        """Predicted loss curve of the surviving pathways (epoch)."""
        return self.dynamics["loss"]

    @property
    def singular_values(self) -> xr.DataArray:
        """Predicted singular values of every surviving pathway (pathway, mode, sv_epoch)."""
        return self.dynamics["singular_values"]

    def mass_over_time(self) -> xr.DataArray:
        """Predicted mass (pathway, sv_epoch): ``σ_1(t) ρ_S`` normalised at every epoch."""
        sv = self.dynamics["singular_values"].isel(mode=0)
        gates = self.dynamics["gates"]
        rho = (gates * self.dynamics["cell_weight"]).sum("sample") if "cell_weight" in self.dynamics \
            else gates.mean("sample")
        raw = sv * rho
        total = raw.sum("pathway")
        out = (raw / total.where(total > 0)).fillna(0.0)
        return out.rename("mass")

    def summary(self) -> pd.DataFrame:
        """One row per surviving set: ``pathway, contexts, n_contexts, mass`` (as
        :meth:`relu_probe.Pathways.summary`), largest sets first."""
        return pd.DataFrame(
            {
                "pathway": self.mass["pathway"].values,
                "contexts": list(self.mass["contexts"].values),
                "n_contexts": self.mass["n_contexts"].values,
                "mass": self.mass.values,
            }
        )

    def __repr__(self) -> str:
        head = (
            f"PredictedStructure({self.method}, {self.mass.sizes['pathway']} pathways over "
            f"{len(self.context_values)} contexts, {len(self.pruned)} pruned)"
        )
        return f"{head}\n{self.summary().to_string(index=False)}"


def _mass_array(sets: Sequence[tuple], mass: np.ndarray) -> xr.DataArray:
    order = sorted(range(len(sets)), key=lambda i: (-len(sets[i]), -mass[i], sets[i]))
    s = [sets[i] for i in order]
    return xr.DataArray(
        np.asarray(mass, dtype=np.float64)[order],
        dims=("pathway",),
        coords={
            "pathway": np.arange(len(s)),
            "contexts": ("pathway", object_array(s)),
            "n_contexts": ("pathway", np.array([len(S) for S in s], dtype=np.int64)),
        },
        name="mass",
    )


# ---------------------------------------------------------------------------- public
def predict_structure(
    X: Any,
    Y: Any,
    *,
    context: Any,
    within: Any = None,
    network: Any = None,
    init_std: Any = None,
    width: int | None = None,
    lr: float | None = None,
    epochs: int | None = None,
    inputs: str = "auto",
    min_mass: float = DEFAULT_MIN_MASS,
    max_exhaustive: int = DEFAULT_MAX_EXHAUSTIVE,
    beam: int | None = None,
    rtol: float = DEFAULT_RTOL,
    sv_stride: int = 10,
    n_units: int = DEFAULT_N_UNITS,
) -> PredictedStructure:
    r"""Predict which context-set pathways a one-hidden-layer ReLU network will learn.

    The race, search, pruning and the predicted mass are described in
    :mod:`relu_probe.reln.predict`. Training is full-batch gradient descent on the summed loss
    ``½ Σ ‖y − f(x)‖²`` at rate ``lr`` for ``epochs`` steps, from the network's
    initialisation.

    Parameters
    ----------
    X, Y : array-like (sample, feature), (sample, output)
    context : array-like (sample,)
        Context label of every sample (the ``by`` coord of :func:`relu_probe.find_pathways`).
    within : array-like (sample,), optional
        Item label of every sample (``within``); default: samples with equal non-cue inputs.
    network : torch.nn.Module, optional
        The *untrained* one-hidden-layer ReLU network (``Linear → ReLU → Linear``): the
        pathways' initial state comes from its own units (:mod:`relu_probe.reln.init`).
    init_std, width : optional
        Or the initial weight std (one value, or input- and output-layer values) and the
        hidden width of the network to be trained (Gaussian units, :mod:`relu_probe.reln.init`).
        ``init_std="pytorch"``: PyTorch's default ``nn.Linear`` initialisation. Default:
        :data:`relu_probe.reln.init.DEFAULT_RELATIVE_INIT` (a small initialisation).
    lr, epochs : optional
        Learning rate and number of full-batch steps. Default: derived from the data for the
        first race (:mod:`relu_probe.reln.schedule`: a share of its largest stable rate, and
        the epochs for every mode that matters to converge), then kept for every race of the
        prediction; noted in ``dynamics.attrs``. The paper's are ``rp.tasks.PAPER_LR`` /
        ``rp.tasks.PAPER_EPOCHS``.
    inputs : {"auto", "all"}, default="auto"
        ``"auto"``: the full-set pathway reads every input, the others only the inputs that
        vary within a context.
    min_mass : float, default=0.01
        Sets whose predicted mass is below ``min_mass`` × the strongest set's are pruned.
    max_exhaustive : int, default=6
        Up to this many contexts every set races; beyond, the greedy growth.
    beam : int, optional
        Greedy growth: most new sets kept per round (default: no limit).
    rtol : float
        Tolerance of the adaptive exact steps.
    sv_stride : int, default=10
        Predicted singular values (and :meth:`PredictedStructure.mass_over_time`) every
        ``sv_stride`` epochs and at the last.
    n_units : int, default=20000
        Gaussian units drawn to estimate the initial state (without ``network``).

    Returns
    -------
    PredictedStructure

    Examples
    --------
    >>> import relu_probe as rp
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> pred = rp.predict_structure(X, Y, context=coords["context"])       # doctest: +SKIP
    >>> pred.summary()[["contexts", "mass"]].round(2)                     # doctest: +SKIP
    """
    setup = ContextSetRace(X, Y, context, within, inputs, network, init_std, width, n_units)
    return predict_from(setup, lr=lr, epochs=epochs, min_mass=min_mass, max_exhaustive=max_exhaustive, beam=beam,
                        rtol=rtol, sv_stride=sv_stride)


def predict_from(
    setup: ContextSetRace,
    *,
    lr: float | None,
    epochs: int | None,
    min_mass: float = DEFAULT_MIN_MASS,
    max_exhaustive: int = DEFAULT_MAX_EXHAUSTIVE,
    beam: int | None = None,
    rtol: float = DEFAULT_RTOL,
    sv_stride: int = 10,
) -> PredictedStructure:
    """:func:`predict_structure` on a prepared :class:`ContextSetRace` (its data, contexts and
    initial state); the other arguments as there."""
    if lr is not None:
        lr = check_real("lr", lr, minimum=0.0, strict=True)
    if epochs is not None:
        epochs = check_int("epochs", epochs, minimum=1)
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    if min_mass >= 1.0:
        raise ValueInputError(f"`min_mass` must be < 1 (a share of the total mass), got {min_mass}.")
    max_exhaustive = check_int("max_exhaustive", max_exhaustive, minimum=1)
    if beam is not None:
        beam = check_int("beam", beam, minimum=1)
    sv_stride = check_int("sv_stride", sv_stride, minimum=1)
    K = len(setup.values)
    derived: dict[str, Any] = {}
    if lr is None or epochs is None:  # derived once, for the first race, and kept for every race
        first = _all_sets(setup.values) if K <= max_exhaustive else [setup.values, *_children(setup.values)]
        schedule = setup.schedule(first, rule="joint", lr=lr, epochs=epochs)
        lr, epochs = schedule.lr, schedule.epochs
        derived = {**schedule.attrs(), "lr_bound": schedule.lr_bound}
    kw = {"lr": lr, "epochs": epochs, "rule": "joint", "rtol": rtol, "sv_stride": sv_stride}
    weights = setup.cell_weights()
    if K <= max_exhaustive:
        sets = _all_sets(setup.values)
        race = setup.race(sets, **kw)
        mass = structure_mass(race["maps"].values, race["gates"].values, weights)
        method = "exhaustive"
    else:
        race, sets, mass = _greedy(setup, kw, min_mass, beam)
        method = "greedy"
    race = race.assign(mass=("pathway", mass))
    keep = [i for i, m in enumerate(mass) if m >= min_mass * mass.max()]
    pruned = [sets[i] for i in range(len(sets)) if i not in keep]
    kept = [sets[i] for i in keep]
    final = setup.race(kept, **kw) if pruned else race
    final = final.assign(cell_weight=("sample", weights))
    for ds in (race, final):
        ds.attrs.update(derived)
    m_final = structure_mass(final["maps"].values, final["gates"].values, weights)
    return PredictedStructure(
        mass=_mass_array(kept, m_final),
        dynamics=final,
        race=race,
        pruned=pruned,
        context_values=setup.values,
        method=method,
        min_mass=min_mass,
    )


def _greedy(
    setup: ContextSetRace, kw: dict[str, Any], min_mass: float, beam: int | None
) -> tuple[xr.Dataset, list[tuple], np.ndarray]:
    """Top-down growth over the lattice of context sets (module docstring)."""
    weights = setup.cell_weights()
    full = setup.values
    active: list[tuple] = [full]
    frontier = _children(full)
    tried = {full, *frontier}
    race = None
    sets: list[tuple] = []
    mass = np.zeros(0)
    while frontier:
        sets = active + frontier
        race = setup.race(sets, **kw)
        mass = structure_mass(race["maps"].values, race["gates"].values, weights)
        share = dict(zip(sets, mass))
        floor = min_mass * max(share.values())
        grown = sorted((S for S in frontier if share[S] >= floor), key=lambda S: -share[S])
        if beam is not None:
            grown = grown[:beam]
        active = [S for S in active if share[S] >= floor] + grown
        frontier = []
        for S in grown:
            for child in _children(S):
                if child not in tried:
                    tried.add(child)
                    frontier.append(child)
    if race is None:  # one context value cannot happen (checked); K = 1 lattice
        sets = active
        race = setup.race(sets, **kw)
        mass = structure_mass(race["maps"].values, race["gates"].values, weights)
    return race, sets, mass


# ---------------------------------------------------------------------------- comparison
def _as_masses(name: str, value: Any) -> dict[tuple, float]:
    """``{context set: mass}`` from a structure, a Pathways, a DataFrame, a DataArray or a
    mapping; masses renormalised to sum to 1."""
    if isinstance(value, PredictedStructure):
        da = value.mass
    elif hasattr(value, "mass") and hasattr(value, "sample_gates"):  # rp.Pathways
        da = value.mass
    elif isinstance(value, xr.DataArray):
        da = value
    else:
        da = None
    if da is not None:
        if "contexts" not in da.coords:
            raise InputError(f"`{name}` has no 'contexts' coordinate (context set per pathway).")
        pairs = list(zip(da["contexts"].values, np.asarray(da.values, dtype=np.float64)))
    elif isinstance(value, pd.DataFrame):
        if not {"contexts", "mass"} <= set(value.columns):
            raise InputError(
                f"`{name}` as a DataFrame needs columns 'contexts' and 'mass', got {list(value.columns)}."
            )
        pairs = list(zip(value["contexts"], value["mass"].astype(float)))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise InputError(
            f"`{name}` must be a PredictedStructure, a relu_probe.Pathways, a DataFrame with "
            f"'contexts' and 'mass', a DataArray with a 'contexts' coord, or a mapping; got "
            f"{describe(value)}."
        )
    out: dict[tuple, float] = {}
    for S, m in pairs:
        key = _sorted_tuple((S,) if np.isscalar(S) else S)
        m = float(m)
        if not np.isfinite(m) or m < 0:
            raise ValueInputError(f"`{name}`: the mass of set {key} must be finite and >= 0, got {m}.")
        out[key] = out.get(key, 0.0) + m
    total = sum(out.values())
    if total <= 0:
        raise ValueInputError(f"`{name}` has no mass (all masses are zero).")
    return {k: v / total for k, v in out.items()}


def compare_structure(a: Any, b: Any) -> dict[str, Any]:
    r"""Compare two pathway structures (predicted or measured).

    With masses ``m^a_S``, ``m^b_S`` over context sets (each renormalised to sum to 1; a set
    absent from one side has mass 0 there)::

        tv = ½ Σ_S |m^a_S − m^b_S|

    Parameters
    ----------
    a, b : PredictedStructure, relu_probe.Pathways, DataFrame (``contexts``, ``mass``),
        DataArray with a ``contexts`` coord, or mapping ``{context set: mass}``

    Returns
    -------
    dict
        ``tv`` (float in [0, 1]) and ``per_set`` (DataFrame: ``contexts``, ``n_contexts``,
        ``mass_a``, ``mass_b``, ``difference`` = ``mass_a − mass_b``, largest ``|difference|``
        first).
    """
    ma, mb = _as_masses("a", a), _as_masses("b", b)
    keys = sorted(set(ma) | set(mb), key=lambda S: (-len(S), S))
    rows = [
        {"contexts": S, "n_contexts": len(S), "mass_a": ma.get(S, 0.0), "mass_b": mb.get(S, 0.0)}
        for S in keys
    ]
    table = pd.DataFrame(rows, columns=["contexts", "n_contexts", "mass_a", "mass_b"])
    table["difference"] = table["mass_a"] - table["mass_b"]
    table = table.reindex(table["difference"].abs().sort_values(ascending=False, kind="stable").index)
    return {"tv": float(0.5 * table["difference"].abs().sum()), "per_set": table.reset_index(drop=True)}


def structure_table(predicted: Any, measured: Any) -> xr.Dataset:
    """Predicted against measured pathway masses as one Dataset (for an analysis and its
    report): ``predicted``, ``measured`` and ``difference`` (``predicted − measured``) over
    ``context_set`` (coords ``label``, e.g. ``"{0,1}"``, and ``n_contexts``), largest
    ``|difference|`` first; ``attrs["tv"]`` the total-variation distance
    (:func:`compare_structure`)."""
    out = compare_structure(predicted, measured)
    table = out["per_set"]
    sets = list(table["contexts"])
    return xr.Dataset(
        {
            "predicted": ("context_set", table["mass_a"].to_numpy(dtype=np.float64)),
            "measured": ("context_set", table["mass_b"].to_numpy(dtype=np.float64)),
            "difference": ("context_set", table["difference"].to_numpy(dtype=np.float64)),
        },
        coords={
            "context_set": np.arange(len(sets)),
            "label": ("context_set", [context_set_label(S) for S in sets]),
            "n_contexts": ("context_set", np.array([len(S) for S in sets], dtype=np.int64)),
        },
        attrs={"tv": float(out["tv"])},
    )
