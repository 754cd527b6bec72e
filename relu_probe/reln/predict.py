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
          \qquad ρ_S = \frac{1}{P}\sum_μ g_{Sμ}

the strength of the pathway's leading mode times the fraction of samples it is open on: in the
rich regime the units a pathway recruits are dominated by its leading mode (its readout norm
times activation grows with ``σ_1``) and they are on exactly on the pathway's samples.

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
from .exact import DEFAULT_RTOL, MeanState, exact_dynamics
from .gating import _sorted_tuple, context_labels, cue_inputs
from .init import DEFAULT_RELATIVE_INIT, InitRule, items_of

__all__ = [
    "PredictedStructure",
    "predict_structure",
    "compare_structure",
    "structure_mass",
    "rank_gatings",
    "DEFAULT_MIN_MASS",
    "DEFAULT_RELATIVE_INIT",
]

#: A set whose predicted mass stays below this fraction of the strongest set's does not grow
#: and is pruned (two orders of magnitude: it carries nothing a measurement could resolve).
DEFAULT_MIN_MASS = 0.01

#: Number of contexts up to which every context set races (2^K − 1 pathways).
DEFAULT_MAX_EXHAUSTIVE = 6


# ---------------------------------------------------------------------------- pieces
def structure_mass(maps: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """``m_S ∝ σ_1(M_S) ρ_S`` (module docstring), normalised; zeros when nothing grew."""
    top = np.linalg.svd(np.asarray(maps, dtype=np.float64), compute_uv=False)[..., 0]
    raw = top * np.asarray(gates, dtype=np.float64).mean(axis=1)
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


def _all_sets(values: tuple) -> list[tuple]:
    return [s for j in range(len(values), 0, -1) for s in itertools.combinations(values, j)]


def _children(S: tuple) -> list[tuple]:
    return [tuple(v for v in S if v != drop) for drop in S] if len(S) > 1 else []


class _Setup:
    """Data, contexts, items and the init rule shared by every race of one prediction."""

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
        self.init = InitRule(
            self.X, self.Y, self.context, self.items, self.masks,
            network=network, init_std=init_std, width=width, n_units=n_units,
        )

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
        return self.init.state(list(sets))

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
        rho = self.dynamics["gates"].mean("sample")
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
    lr: float = 1e-3,
    epochs: int = 8001,
    inputs: str = "auto",
    min_mass: float = DEFAULT_MIN_MASS,
    max_exhaustive: int = DEFAULT_MAX_EXHAUSTIVE,
    beam: int | None = None,
    rtol: float = DEFAULT_RTOL,
    n_units: int = 20000,
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
    lr, epochs : learning rate and number of full-batch steps.
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
    setup = _Setup(X, Y, context, within, inputs, network, init_std, width, n_units)
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    epochs = check_int("epochs", epochs, minimum=1)
    min_mass = check_real("min_mass", min_mass, minimum=0.0)
    if min_mass >= 1.0:
        raise ValueInputError(f"`min_mass` must be < 1 (a share of the total mass), got {min_mass}.")
    max_exhaustive = check_int("max_exhaustive", max_exhaustive, minimum=1)
    if beam is not None:
        beam = check_int("beam", beam, minimum=1)
    kw = {"lr": lr, "epochs": epochs, "rule": "joint", "rtol": rtol}
    K = len(setup.values)
    if K <= max_exhaustive:
        sets = _all_sets(setup.values)
        race = setup.race(sets, **kw)
        mass = structure_mass(race["maps"].values, race["gates"].values)
        method = "exhaustive"
    else:
        race, sets, mass = _greedy(setup, kw, min_mass, beam)
        method = "greedy"
    race = race.assign(mass=("pathway", mass))
    keep = [i for i, m in enumerate(mass) if m >= min_mass * mass.max()]
    pruned = [sets[i] for i in range(len(sets)) if i not in keep]
    kept = [sets[i] for i in keep]
    final = setup.race(kept, **kw) if pruned else race
    m_final = structure_mass(final["maps"].values, final["gates"].values)
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
    setup: _Setup, kw: dict[str, Any], min_mass: float, beam: int | None
) -> tuple[xr.Dataset, list[tuple], np.ndarray]:
    """Top-down growth over the lattice of context sets (module docstring)."""
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
        mass = structure_mass(race["maps"].values, race["gates"].values)
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
        mass = structure_mass(race["maps"].values, race["gates"].values)
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


# ---------------------------------------------------------------------------- fastest
def rank_gatings(
    X: Any,
    Y: Any,
    candidates: Sequence[Sequence[Any]] | None = None,
    *,
    context: Any,
    within: Any = None,
    network: Any = None,
    init_std: Any = None,
    width: int | None = None,
    lr: float = 1e-3,
    epochs: int = 8001,
    inputs: str = "auto",
    score: str = "mean_loss",
    parsimony: float = 0.01,
    min_mass: float = DEFAULT_MIN_MASS,
    rtol: float = DEFAULT_RTOL,
) -> dict[str, Any]:
    r"""The fastest-learning gating (ReLN) for ``(X, Y)``, from the exact dynamics.

    Without ``candidates`` the answer is :func:`predict_structure`'s search: the sets that
    win the race of all sets. With ``candidates`` (each a list of context sets), every
    candidate is raced on its own, and the union of all their sets is raced as one more
    candidate (the race then also says which of the sets it uses). Candidates are ranked by
    speed, ``score``:

    - ``"mean_loss"``: mean predicted loss over the epochs (the area under the curve);
    - ``"final_loss"``: predicted loss after ``epochs`` steps.

    **Parsimony** is a separate, named tolerance: candidates whose score is within
    ``parsimony`` (relative) of the best remaining score are ordered by their number of
    pathways first — a pathway that adds no speed is not part of the fastest ReLN. Set
    ``parsimony=0`` to rank by speed alone.

    All candidates share one per-set initial state (the same rule as
    :func:`predict_structure`), so they differ only in their gating.

    Returns
    -------
    dict
        ``ranking``: DataFrame (``rank``, ``candidate`` (tuple of sets), ``n_pathways``,
        ``score``, ``mean_loss``, ``final_loss``, ``is_union``), fastest first;
        ``best``: the winning candidate (list of sets); ``losses``: ``{candidate: loss
        curve}``; ``union``: the union race (Dataset with ``mass``) or, without candidates,
        the :class:`PredictedStructure`.
    """
    check_choice("score", score, ["mean_loss", "final_loss"])
    parsimony = check_real("parsimony", parsimony, minimum=0.0)
    if candidates is None:
        pred = predict_structure(
            X, Y, context=context, within=within, network=network, init_std=init_std,
            width=width, lr=lr, epochs=epochs, inputs=inputs, min_mass=min_mass, rtol=rtol,
        )
        loss = pred.loss.values
        cand = tuple(pred.contexts)
        table = pd.DataFrame(
            [{"rank": 0, "candidate": cand, "n_pathways": len(cand),
              "score": float(loss.mean() if score == "mean_loss" else loss[-1]),
              "mean_loss": float(loss.mean()), "final_loss": float(loss[-1]), "is_union": True}]
        )
        return {"ranking": table, "best": list(cand), "losses": {cand: loss}, "union": pred}
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence) or len(candidates) == 0:
        raise InputError(f"`candidates` must be a non-empty list of gatings (lists of context sets), got {describe(candidates)}.")
    setup = _Setup(X, Y, context, within, inputs, network, init_std, width, 20000)
    kw = {"lr": check_real("lr", lr, minimum=0.0, strict=True), "epochs": check_int("epochs", epochs, minimum=1),
          "rule": "joint", "rtol": rtol}
    norm: list[tuple] = []
    for i, cand in enumerate(candidates):
        if isinstance(cand, (str, bytes)) or not isinstance(cand, Sequence) or len(cand) == 0:
            raise InputError(f"`candidates[{i}]` must be a non-empty list of context sets, got {describe(cand)}.")
        sets = []
        for S in cand:
            key = _sorted_tuple((S,) if np.isscalar(S) else S)
            unknown = [v for v in key if v not in setup.values]
            if not key or unknown:
                raise ValueInputError(
                    f"`candidates[{i}]` has the set {S!r}: context sets must be non-empty and use "
                    f"the context values {list(setup.values)}."
                )
            if key not in sets:
                sets.append(key)
        norm.append(tuple(sets))
    union = tuple(dict.fromkeys(S for c in norm for S in c))
    rows, losses = [], {}
    union_race = None
    for cand in list(dict.fromkeys(norm)) + ([union] if union not in norm else []):
        ds = setup.race(list(cand), **kw)
        loss = ds["loss"].values
        losses[cand] = loss
        if cand == union:
            union_race = ds.assign(mass=("pathway", structure_mass(ds["maps"].values, ds["gates"].values)))
        rows.append({"candidate": cand, "n_pathways": len(cand),
                     "score": float(loss.mean() if score == "mean_loss" else loss[-1]),
                     "mean_loss": float(loss.mean()), "final_loss": float(loss[-1]), "is_union": cand == union})
    ranked = _rank(rows, parsimony)
    table = pd.DataFrame([{"rank": r, **row} for r, row in enumerate(ranked)])
    return {"ranking": table, "best": list(ranked[0]["candidate"]), "losses": losses, "union": union_race}


def _rank(rows: list[dict[str, Any]], parsimony: float) -> list[dict[str, Any]]:
    """Order by score; within ``parsimony`` (relative) of the best remaining score prefer
    fewer pathways."""
    remaining = sorted(rows, key=lambda r: r["score"])
    out = []
    while remaining:
        best = remaining[0]["score"]
        bound = best + parsimony * abs(best) if np.isfinite(best) else best
        close = [r for r in remaining if r["score"] <= bound]
        pick = min(close, key=lambda r: (r["n_pathways"], r["score"]))
        out.append(pick)
        remaining = [r for r in remaining if r is not pick]
    return out
