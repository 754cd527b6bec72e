"""One call from a model to everything relu_probe measures: :func:`analyze` → :class:`Analysis`.

>>> import relu_probe as rp
>>> X, Y, coords = rp.tasks.contextual_task(3)
>>> model = rp.tasks.paper_network(3)
>>> loss = rp.tasks.train_full_batch(model, X, Y, epochs=300)
>>> res = rp.analyze(model, X, coords=coords, by="context", within="object",
...                  Y=Y, loss_curve=loss)                       # doctest: +SKIP
>>> res.scores["node_reuse_score"]                               # doctest: +SKIP
>>> res.to_html("report.html"); res.save("analysis/")            # doctest: +SKIP

The pipeline (each step is also a public function):

1. :func:`relu_probe.record` the gates (and post-ReLU values) on ``inputs``;
2. :func:`relu_probe.unit_importance` (``"readout"`` when every site feeds a Linear / Conv,
   else ``"activity"``, unless given);
3. :func:`relu_probe.find_pathways` by ``by`` (and ``within``);
4. :func:`relu_probe.scores`, the per-unit :func:`relu_probe.gating_profile` and
   :func:`relu_probe.mixed_selectivity_index`;
5. with tensor inputs, the input features that drive each pathway (captum integrated
   gradients, see :mod:`relu_probe._attribution`);
6. with targets ``Y``: the ReLN (:meth:`relu_probe.ReLN.from_pathways`, trained by gradient
   descent), its closed-form race prediction (:func:`relu_probe.race_dynamics`) and, with the ReLU
   network's ``loss_curve``, :func:`relu_probe.compare_dynamics` of each against it.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ._outputs import ANALYSIS, ANALYSIS_FORMAT, claim_output
from ._progress import progress_enabled
from ._validation import check_choice, check_int, check_real
from .errors import (
    InputError,
    NotFittedError,
    ReluProbeError,
    ReluProbeWarning,
    StoreError,
    ValueInputError,
    describe,
)

__all__ = ["FORMAT", "PAPER_CLOSED_FORM_PI0", "Analysis", "analyze"]

#: Name and version of the on-disk layout written by :meth:`Analysis.save`.
FORMAT = {"name": ANALYSIS_FORMAT, "version": 1}

#: Initial mode strengths ``π0`` of the paper's closed-form scripts (``closed3/4/5.py``,
#: paper-brief §4.1), per number of contexts: pass ``closed_form_init=PAPER_CLOSED_FORM_PI0[k]``
#: to reproduce the paper's closed-form curve on its tasks.
PAPER_CLOSED_FORM_PI0: dict[int, dict[str, float]] = {
    3: {"shared": 5e-9, "context": 5e-5},
    4: {"shared": 1e-8, "context": 1e-4},
    5: {"shared": 1e-9, "context": 3e-4},
}

_IMPORTANCE = ("auto", "readout", "conductance", "activity")


class _Steps:
    """A tqdm bar over the analysis steps (off unless stderr is a terminal or asked for)."""

    def __init__(self, names: Sequence[str], enabled: bool | None) -> None:
        self.bar = None
        if progress_enabled(enabled):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc="analyze", unit="step")

    def start(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(f"analyze: {name}")

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _as_tensor(inputs: Any) -> torch.Tensor | None:
    if isinstance(inputs, torch.Tensor):
        return inputs
    if isinstance(inputs, np.ndarray) and inputs.dtype != object:
        return torch.from_numpy(inputs)
    return None


def _as_2d(name: str, value: Any, n: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"`{name}` must be a numeric array or tensor, got {describe(value)}.") from None
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueInputError(
            f"`{name}` must have one row per recorded sample ({n}), got shape {arr.shape}."
        )
    return arr.reshape(n, -1)


def _choose_importance(model: Any, ds: xr.Dataset, importance: Any) -> tuple[Any, str]:
    """Resolve ``importance="auto"``: readout when every site has a Linear/Conv readout."""
    from .dataset import site_attr

    if not isinstance(importance, str):
        return importance, "given"
    check_choice("importance", importance, _IMPORTANCE)
    if importance != "auto":
        return importance, importance
    readouts = [str(r) for r in site_attr(ds, "site_readouts")]
    if model is not None and readouts and all(readouts):
        return "readout", "readout"
    return "activity", "activity"


def analyze(
    model: Any,
    inputs: Any,
    *,
    coords: Mapping[str, Any] | None = None,
    by: str = "context",
    within: str | None = None,
    Y: Any = None,
    loss_curve: Any = None,
    importance: Any = "auto",
    method: str = "auto",
    literature: bool = True,
    sites: Any = None,
    units: str = "element",
    values: bool = True,
    X: Any = None,
    feature_names: Sequence[str] | None = None,
    attribution: bool = True,
    attribution_samples: int = 256,
    lr: float = 1e-3,
    epochs: int | None = None,
    reln_params: Mapping[str, Any] | None = None,
    closed_form_init: Any = None,
    race_method: str | None = None,
    monitor: Any = None,
    title: str | None = None,
    batch_size: int | None = None,
    record_kwargs: Mapping[str, Any] | None = None,
    random_state: int | None = 0,
    progress: bool | None = None,
) -> Analysis:
    r"""Record, decompose and score a ReLU network in one call (and fit its ReLN).

    Parameters
    ----------
    model : torch.nn.Module or None
        The trained network. ``None`` only when ``inputs`` is already a recording.
    inputs : Tensor, ndarray, DataLoader, iterable of batches, or xarray.Dataset
        What :func:`relu_probe.record` accepts, or a recording it returned (e.g. a gate store
        opened with :func:`relu_probe.load`), which is then analysed as is.
    coords : mapping of str to array-like, optional
        Per-sample labels (``context``, ``object`` …), passed to ``record``.
    by : str, default="context"
        The condition coord pathways are keyed by.
    within : str, optional
        The item coord (items repeated across conditions): enables the context-set
        decomposition, the mixed-selectivity index and the literature scores.
    Y : array-like (sample, output), optional
        Targets. When given, the ReLN is built from the pathways and trained on
        ``(X, Y)``, and its closed-form race is computed (needs tensor/array inputs, or
        ``X``).
    loss_curve : array-like (epochs,), optional
        The ReLU network's training loss, ``loss[e]`` before update ``e`` (as
        :func:`relu_probe.tasks.train_full_batch` returns): compared with the ReLN's curves
        (:func:`relu_probe.compare_dynamics`).
    importance : {"auto", "readout", "conductance", "activity"} or DataArray, default="auto"
        Unit importance. ``"auto"``: ``"readout"`` when a model is given and every site feeds
        a Linear/Conv directly, else ``"activity"``. A DataArray / array is used as is.
    method : str, default="auto"
        Pathway method for :func:`relu_probe.find_pathways`.
    literature : bool, default=True
        Also compute the literature scores (CCGP, parallelism, DCI; need ``within``). They
        fit many small decoders: switch them off for quick looks at wide networks.
    sites, units, values, batch_size :
        Passed to :func:`relu_probe.record` (``values=True`` stores post-ReLU values, which
        the pathway masses and mixed selectivity use).
    X : array-like, optional
        The input tensor when ``inputs`` is a recording (for the ReLN and attributions).
    feature_names : sequence of str, optional
        Names of the input features (flattened), for the attribution tables.
    attribution : bool, default=True
        Attribute every pathway's activity to the input features with captum (needs the model
        and tensor inputs).
    attribution_samples : int, default=256
        At most this many samples (a seeded random subset) are attributed.
    lr : float, default=1e-3
        Learning rate of the ReLN and of its closed form (use the ReLU network's).
    epochs : int, optional
        ReLN epochs; default ``len(loss_curve)``, else 8001 (the paper's).
    reln_params : mapping, optional
        Extra :meth:`relu_probe.ReLN.from_pathways` parameters (``hidden``, ``init_scale``,
        ``rule``, ``min_mass``, ``seed`` …).
    closed_form_init : float or mapping, optional
        Initial mode strength ``π0`` of the closed form (``{"shared": …, "context": …}``);
        default: the ReLN's own initial scale. :data:`PAPER_CLOSED_FORM_PI0` holds the
        paper's values for its tasks.
    race_method : {"closed", "race", "live"}, optional
        How :func:`relu_probe.race_dynamics` predicts the ReLN's curve: ``"closed"`` (Eq. 1
        per mode; the default for the paper's ``"residual"`` rule), ``"race"`` (the coupled
        race, Eq. 2; the default for ``"joint"``) or ``"live"`` (exact reduced gradient
        descent, no alignment assumption: use it when the data break Assumption 2.1).
    monitor : TrainingMonitor, optional
        Attach training-time measurements (see :meth:`Analysis.attach_monitor`).
    title : str, optional
        Title of the report.
    record_kwargs : mapping, optional
        Other :func:`relu_probe.record` arguments (``input_key``, ``eval_mode`` …).
    random_state : int or None, default=0
        Seed of the pathway clustering and the attribution subset.
    progress : bool, optional
        Progress bars (default: only on a terminal).

    Returns
    -------
    Analysis

    Notes
    -----
    The ReLN's predicted curve is :func:`relu_probe.race_dynamics` with the ReLN's gates,
    input masks and training rule: by default, for the paper's ``"residual"`` rule, the
    closed form (Eq. 1 per mode, context pathways on the shared pathway's final residual,
    ``d`` divided by the mean number of context pathways open on their samples); for
    ``"joint"`` the coupled race. Warnings of these steps (e.g. that the data break the
    alignment assumption) are kept in :attr:`Analysis.notes`.
    """
    from .dataset import site_attr
    from .importance import unit_importance
    from .pathways import find_pathways
    from .profiles import gating_profile
    from .recorder import record, unwrap_model
    from .scoring import mixed_selectivity_index
    from .scoring import scores as all_scores

    attribution_samples = check_int("attribution_samples", attribution_samples, minimum=1)
    lr = check_real("lr", lr, minimum=0.0, strict=True)
    if title is not None and not isinstance(title, str):
        raise InputError(f"`title` must be a str, got {describe(title)}.")
    if reln_params is not None and not isinstance(reln_params, Mapping):
        raise InputError(f"`reln_params` must be a mapping of ReLN parameters, got {describe(reln_params)}.")
    steps = ["record", "importance", "pathways", "scores", "selectivity", "attribution", "ReLN", "race"]
    if race_method is not None:
        check_choice("race_method", race_method, ["closed", "race", "live"])
    bar = _Steps(steps, progress)
    notes: list[str] = []
    try:
        bar.start("record")
        if isinstance(inputs, xr.Dataset):
            if coords is not None:
                raise InputError("`coords` must be omitted when `inputs` is already a recording.")
            ds = inputs
            X_t = _as_tensor(X)
        else:
            if model is None:
                raise InputError(
                    "`model` is None: pass the trained torch.nn.Module, or a recording (xarray.Dataset) "
                    "as `inputs`."
                )
            ds = record(
                model, inputs, sites=sites, coords=coords, values=values, units=units,
                batch_size=batch_size, progress=progress, **dict(record_kwargs or {}),
            )
            X_t = _as_tensor(inputs) if X is None else _as_tensor(X)
        from ._access import check_dataset

        ds = check_dataset(ds, "inputs")
        if any(getattr(v, "chunks", None) is not None for v in ds.data_vars.values()):
            ds = ds.load()
        n = ds.sizes["sample"]
        bar.done()

        bar.start("importance")
        imp_arg, imp_method = _choose_importance(model, ds, importance)
        if isinstance(imp_arg, str):
            kwargs = {"inputs": X_t} if imp_arg == "conductance" else {}
            imp = unit_importance(model if imp_arg != "activity" else None, ds, method=imp_arg, **kwargs)
        else:
            from ._access import align_importance

            imp = align_importance(imp_arg, ds)
            total = float(imp.sum())
            imp = imp / total if total > 0 else xr.full_like(imp, 1.0 / imp.size)
            imp.name = "importance"
            imp.attrs = {"method": "given"}
        bar.done()

        bar.start("pathways")
        pw = find_pathways(ds, by, within, importance=imp, method=method, random_state=random_state)
        bar.done()

        bar.start("scores")
        sc = all_scores(pw, ds, literature=bool(literature), random_state=random_state)
        bar.done()

        bar.start("selectivity")
        profile = gating_profile(ds, by)
        selectivity = mixed_selectivity_index(ds, by, within=within) if within is not None else None
        bar.done()

        bar.start("attribution")
        attributions = None
        if attribution:
            if model is None or X_t is None:
                notes.append("input attributions need the model and the inputs as one tensor; skipped")
            else:
                from ._attribution import pathway_attributions

                if feature_names is not None:
                    feature_names = [str(f) for f in feature_names]
                    n_features = int(np.prod(tuple(X_t.shape[1:])))
                    if len(feature_names) != n_features:
                        raise ValueInputError(
                            f"`feature_names` must name every input feature ({n_features}), got "
                            f"{len(feature_names)} names."
                        )
                try:
                    attributions, more = pathway_attributions(
                        unwrap_model(model), ds, pw, X_t, feature_names=feature_names,
                        max_samples=attribution_samples, random_state=random_state,
                    )
                    notes.extend(more)
                except Exception as exc:  # noqa: BLE001 - attributions are an extra: report, do not fail
                    message = f"input attributions failed ({type(exc).__name__}: {' '.join(str(exc).split())})"
                    warnings.warn(message, ReluProbeWarning, stacklevel=2)
                    notes.append(message)
        bar.done()

        reln = dynamics = None
        comparison: dict[str, Any] = {}
        relu_loss = None
        if loss_curve is not None:
            from .dynamics import as_loss_curve

            relu_loss = as_loss_curve("loss_curve", loss_curve)
        bar.start("ReLN")
        if Y is not None:
            if X_t is None:
                raise InputError(
                    "`Y` was given but the inputs are not one tensor/array: the ReLN needs the "
                    f"input matrix; pass `X=` (got inputs {describe(inputs)})."
                )
            Xn = _as_2d("X", X_t, n)
            Yn = _as_2d("Y", Y, n)
            if epochs is None:
                epochs = relu_loss.size if relu_loss is not None else 8001
            epochs = check_int("epochs", epochs, minimum=1)
            if relu_loss is not None and relu_loss.size != epochs:
                raise ValueInputError(
                    f"`epochs` ({epochs}) must equal the length of `loss_curve` ({relu_loss.size}) so the "
                    "curves can be compared epoch by epoch."
                )
            reln, dynamics, comparison = _fit_reln(
                pw, Xn, Yn, relu_loss, lr=lr, epochs=epochs, params=dict(reln_params or {}),
                closed_form_init=closed_form_init, race_method=race_method, progress=progress, notes=notes,
                bar=bar,
            )
        elif relu_loss is not None:
            dynamics = xr.Dataset({"loss_relu": ("epoch", relu_loss)},
                                  coords={"epoch": np.arange(relu_loss.size)})
            bar.done()
            bar.done()
        else:
            bar.done()
            bar.done()
    finally:
        bar.close()

    params = {
        "by": by,
        "within": within,
        "importance": imp_method,
        "pathway_method": pw.method,
        "title": title if title is not None else f"{ds.attrs.get('model_class', 'model')}: pathways by {by!r}",
        "model_class": str(ds.attrs.get("model_class", "")),
        "sites": [str(s) for s in site_attr(ds, "sites")],
        "units": str(ds.attrs.get("units", units)),
        "n_samples": int(n),
        "n_units": int(ds.sizes["unit"]),
        "lr": lr,
        "epochs": None if reln is None else int(reln.epochs_),
    }
    result = Analysis(
        dataset=ds,
        importance=imp,
        pathways=pw,
        scores=sc,
        profile=profile,
        selectivity=selectivity,
        attributions=attributions,
        reln=reln,
        dynamics=dynamics,
        comparison=comparison,
        params=params,
        notes=notes,
    )
    if monitor is not None:
        result.attach_monitor(monitor)
    return result


#: How each race method is named in reports.
RACE_LABELS = {"closed": "closed form", "race": "neural race", "live": "live race"}


def _fit_reln(pw, Xn, Yn, relu_loss, *, lr, epochs, params, closed_form_init, race_method, progress, notes, bar):
    from .dynamics import compare_dynamics
    from .race import race_dynamics
    from .reln import ReLN

    params.setdefault("progress", progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reln = ReLN.from_pathways(pw, Xn, Yn, lr=lr, epochs=epochs, **params).fit(Xn, Yn)
        bar.done()
        bar.start("race")
        sv = reln.singular_values_.rename(epoch="sv_epoch")
        data: dict[str, Any] = {"loss_reln": ("epoch", reln.loss_curve_), "sv_reln": sv}
        race = None
        method = race_method
        depth = reln.depth
        if np.isscalar(depth) and int(depth) == 1:
            rule = reln.rule
            method = method or ("closed" if rule == "residual" else "race")
            race = race_dynamics(
                Xn, Yn, reln.gates_.values, lr=lr, epochs=epochs, init=closed_form_init, rule=rule,
                method=method, context=reln.context_, inputs=reln.inputs_.values, shared=reln.shared_,
                hidden=reln.hidden, init_scale=reln._init_scale_param(),
                d_scale="overlap" if (rule == "residual" and method == "closed") else None,
            )
            data["loss_race"] = ("epoch", race["loss"].values)
            sv_race = race["singular_values"].sel(epoch=sv["sv_epoch"].values).rename(epoch="sv_epoch")
            data["sv_race"] = sv_race.drop_vars([c for c in sv_race.coords if c not in sv_race.dims])
        else:
            notes.append("the neural-race prediction covers one-hidden-layer pathways only; skipped for this ReLN")
    for w in caught:  # keep them visible, and in the report
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        text = " ".join(str(w.message).split())
        if text not in notes:
            notes.append(text)
    if relu_loss is not None:
        data["loss_relu"] = ("epoch", relu_loss)
    dynamics = xr.Dataset(data, coords={"epoch": np.arange(epochs)})
    dynamics.attrs = {"lr": lr, "L0": float(reln.L0_), "rule": reln.rule, "race_method": method or ""}
    comparison: dict[str, Any] = {}
    if relu_loss is not None:
        comparison["reln"] = compare_dynamics(relu_loss, reln.loss_curve_)
        if race is not None:
            comparison["race"] = compare_dynamics(relu_loss, race["loss"].values)
    elif race is not None:
        comparison["race_vs_reln"] = compare_dynamics(reln.loss_curve_, race["loss"].values)
    bar.done()
    return reln, dynamics, comparison


# ----------------------------------------------------------------------------- result


class Analysis:
    """Everything :func:`analyze` measured on one network.

    Attributes
    ----------
    dataset : xarray.Dataset
        The recording (``gate`` / ``gate_rate``, ``activation`` …, see :func:`relu_probe.record`).
    importance : xarray.DataArray (unit,)
        Unit importance used, summing to 1 (``attrs["method"]``).
    pathways : relu_probe.Pathways
    scores : pandas.Series
        :func:`relu_probe.scores` of the pathways and the recording.
    profile : xarray.DataArray (unit, by)
        :math:`P(\\text{on}_u \\mid by)` (:func:`relu_probe.gating_profile`).
    selectivity : xarray.DataArray (unit,) or None
        Per-unit mixed-selectivity index (needs ``within``).
    attributions : xarray.DataArray (pathway, feature) or None
        Share of each input feature in each pathway's activity (captum integrated gradients).
    reln : relu_probe.ReLN or None
        The fitted ReLN (with targets).
    dynamics : xarray.Dataset or None
        ``loss_relu``, ``loss_reln``, ``loss_race`` (epoch); ``sv_reln``, ``sv_race``
        (pathway, mode, sv_epoch): the loss curves and pathway singular values of the ReLU
        network, the simulated ReLN and its neural-race prediction (``attrs["race_method"]``:
        ``"closed"`` for the closed form).
    comparison : dict
        :func:`relu_probe.compare_dynamics` results: ``"reln"`` and ``"race"`` (the
        prediction) against the ReLU curve, or ``"race_vs_reln"`` without one.
    monitor_scores : pandas.DataFrame or None
        Scores over training steps (index ``step``), from a training monitor.
    monitor_pathways : xarray.DataArray (step, pathway) or None
        Pathway masses over training steps, coord ``contexts``.
    params : dict
        How the analysis was run (``by``, ``within``, ``importance``, ``title`` …).
    notes : list of str
        What was skipped and why.
    """

    def __init__(
        self,
        *,
        dataset: xr.Dataset,
        importance: xr.DataArray,
        pathways: Any,
        scores: pd.Series,
        profile: xr.DataArray,
        selectivity: xr.DataArray | None = None,
        attributions: xr.DataArray | None = None,
        reln: Any = None,
        dynamics: xr.Dataset | None = None,
        comparison: Mapping[str, Any] | None = None,
        monitor_scores: pd.DataFrame | None = None,
        monitor_pathways: xr.DataArray | None = None,
        params: Mapping[str, Any] | None = None,
        notes: Sequence[str] | None = None,
    ) -> None:
        self.dataset = dataset
        self.importance = importance
        self.pathways = pathways
        self.scores = scores
        self.profile = profile
        self.selectivity = selectivity
        self.attributions = attributions
        self.reln = reln
        self.dynamics = dynamics
        self.comparison = dict(comparison or {})
        self.monitor_scores = monitor_scores
        self.monitor_pathways = monitor_pathways
        self.params = dict(params or {})
        self.notes = list(notes or [])

    # ------------------------------------------------------------------ views
    @property
    def by(self) -> str:
        return self.pathways.by

    @property
    def within(self) -> str | None:
        return self.pathways.within

    @property
    def title(self) -> str:
        return str(self.params.get("title") or "relu_probe analysis")

    def pathway_table(self) -> pd.DataFrame:
        """One row per pathway: ``pathway, contexts, n_units, mass, sites`` (``Pathways.summary``)."""
        return self.pathways.summary()

    def unit_table(self, n: int | None = None) -> pd.DataFrame:
        """Per-unit selectivity, most important units first.

        Columns: ``unit, site, neuron, pathway, contexts`` (the unit's dominant pathway and its
        context set; -1 / ``()`` for negligible units), ``importance``,
        ``mixed_selectivity`` (NaN-free; absent without ``within``) and one
        ``P(on | by=c)`` column per condition.
        """
        if n is not None:
            n = check_int("n", n, minimum=1)
        labels = self.pathways.labels.values
        contexts = self.pathways.mass["contexts"].values
        imp = self.importance.values
        frame = pd.DataFrame(
            {
                "unit": self.dataset["unit"].values,
                "site": self.dataset["site"].values.astype(str) if "site" in self.dataset.coords else "",
                "neuron": self.dataset["neuron"].values if "neuron" in self.dataset.coords else -1,
                "pathway": labels,
                "contexts": [contexts[p] if p >= 0 else () for p in labels],
                "importance": imp,
            }
        )
        if self.selectivity is not None:
            frame["mixed_selectivity"] = self.selectivity.values
        prof = self.profile.transpose("unit", self.by)
        for j, c in enumerate(prof[self.by].values.tolist()):
            frame[f"P(on | {self.by}={c})"] = prof.values[:, j]
        order = np.argsort(-imp, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        return frame if n is None else frame.head(n)

    def top_features(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` input features with the largest attribution share in each attributed pathway.

        Columns ``pathway, contexts, rank, feature, name, share``.
        """
        n = check_int("n", n, minimum=1)
        if self.attributions is None:
            raise NotFittedError(
                "no input attributions in this analysis (they need the model and tensor inputs)."
            )
        rows = []
        att = self.attributions
        names = att["feature_name"].values
        for i, p in enumerate(att["pathway"].values):
            share = att.values[i]
            for rank, f in enumerate(np.argsort(-share, kind="stable")[:n]):
                rows.append({"pathway": int(p), "contexts": att["contexts"].values[i], "rank": rank + 1,
                             "feature": int(f), "name": str(names[f]), "share": float(share[f])})
        return pd.DataFrame(rows, columns=["pathway", "contexts", "rank", "feature", "name", "share"])

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest: params, scores, pathway table, dynamics comparison, notes."""
        rows = []
        for row in self.pathway_table().to_dict("records"):
            rows.append({"pathway": int(row["pathway"]), "contexts": list(row["contexts"]),
                         "n_units": int(row["n_units"]), "mass": float(row["mass"]),
                         "sites": {str(k): float(v) for k, v in row["sites"].items()}})
        return {
            "params": dict(self.params),
            "scores": {str(k): float(v) for k, v in self.scores.items()},
            "pathways": rows,
            "comparison": self.comparison,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        ds = self.dataset
        n_sites = len(self.params.get("sites") or [])
        lines = [
            f"Analysis({self.title!r})",
            (f"  recording: {ds.sizes['sample']} samples × {ds.sizes['unit']} units at {n_sites} site(s); "
             f"by={self.by!r}, within={self.within!r}; importance={self.params.get('importance')!r}"),
            f"  pathways ({self.pathways.method}): "
            + ", ".join(
                f"{_fmt_set(c)} {m:.3f}" for c, m in zip(self.pathways.contexts, self.pathways.mass.values)
            ),
            "  scores: " + ", ".join(f"{k}={v:.3g}" for k, v in self.scores.items()),
        ]
        if self.reln is not None:
            lines.append(
                f"  ReLN: {len(self.reln.pathway_names_)} pathways, rule={self.reln.rule!r}, "
                f"{self.reln.epochs_} epochs, final loss {float(self.reln.loss_curve_[-1]):.4g}"
            )
        for key, cmp in self.comparison.items():
            lines.append(
                f"  {key}: mean |ΔL| {cmp['mean_abs_diff']:.3g} ({cmp['mean_abs_diff_pct']:.2f}% of L0), "
                f"max |ΔL| {cmp['max_abs_diff']:.3g} at epoch {cmp['max_abs_diff_epoch']}"
            )
        if self.monitor_scores is not None:
            lines.append(f"  monitor: {len(self.monitor_scores)} steps")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ monitor
    def attach_monitor(self, monitor: Any = None, *, scores: Any = None, pathways: Any = None) -> Analysis:
        """Add structure-over-training measurements (for the report's training section).

        Parameters
        ----------
        monitor : object, optional
            A :class:`relu_probe.TrainingMonitor` (anything with ``scores()`` returning a
            DataFrame indexed by step and ``pathways_over_time()`` returning a (step, pathway)
            DataArray with a ``contexts`` coord).
        scores : pandas.DataFrame, optional
            Scores over steps (index = step, one column per score); overrides ``monitor``'s.
        pathways : xarray.DataArray, optional
            Pathway masses, dims ``(step, pathway)``, coord ``contexts``; overrides ``monitor``'s.

        Returns
        -------
        self
        """
        if monitor is not None:
            if scores is None and callable(getattr(monitor, "scores", None)):
                scores = monitor.scores()
            if pathways is None and callable(getattr(monitor, "pathways_over_time", None)):
                pathways = monitor.pathways_over_time()
            if scores is None and pathways is None:
                raise InputError(
                    "`monitor` must have scores() and/or pathways_over_time() (a rp.TrainingMonitor), "
                    f"got {describe(monitor)}."
                )
        if scores is not None:
            if not isinstance(scores, pd.DataFrame):
                raise InputError(f"`scores` must be a pandas DataFrame indexed by step, got {describe(scores)}.")
            numeric = scores.select_dtypes("number")
            if numeric.shape[1] == 0 or len(numeric) == 0:
                raise ValueInputError("`scores` has no numeric score columns or no steps.")
            self.monitor_scores = numeric.copy()
            if self.monitor_scores.index.name is None:
                self.monitor_scores.index.name = "step"
        if pathways is not None:
            if not isinstance(pathways, xr.DataArray) or set(pathways.dims) != {"step", "pathway"}:
                raise InputError(
                    f"`pathways` must be an xarray.DataArray with dims (step, pathway), got {describe(pathways)}"
                    + (f" with dims {pathways.dims}." if isinstance(pathways, xr.DataArray) else ".")
                )
            self.monitor_pathways = pathways.transpose("step", "pathway")
        return self

    # ------------------------------------------------------------------ report
    def to_html(self, path: str | os.PathLike, *, title: str | None = None, max_units: int = 40) -> Path:
        """Write the self-contained HTML report (see :mod:`relu_probe.report`); returns its path."""
        from .report import write_report

        return write_report(self, path, title=title, max_units=max_units)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save to a directory: netCDF files plus ``summary.json``; :meth:`load` restores it exactly.

        Files: ``recording.nc`` (:func:`relu_probe.io.to_netcdf`), ``pathways.nc``,
        ``units.nc`` (importance, profile, selectivity, attributions), ``dynamics.nc`` and
        ``reln.nc`` (with targets), ``monitor_scores.nc`` / ``monitor_pathways.nc`` (with a
        monitor), and ``summary.json`` (format, params, scores, pathway table, comparison,
        notes — readable without relu_probe).

        Parameters
        ----------
        path : str or Path
            Directory to create.
        overwrite : bool, default=False
            Replace an analysis saved there before. Only a directory relu_probe wrote is ever
            replaced (recognised by its ``.relu_probe`` marker, written first): any other
            non-empty path — or a saved analysis next to files relu_probe did not write — is
            refused, naming what is there.
        """
        from . import __version__
        from ._serial import dumps
        from .io import to_netcdf

        try:
            import netCDF4  # noqa: F401
        except ImportError:
            raise ReluProbeError(
                "saving an analysis writes netCDF files, which needs the netCDF4 package: "
                "pip install 'relu_probe[io]'"
            ) from None
        path = Path(path)
        claim_output(path, kind=ANALYSIS, overwrite=overwrite, argument="path",
                     exists_hint="pass overwrite=True to replace it.")
        files = ["recording.nc", "pathways.nc", "units.nc"]
        to_netcdf(self.dataset, path / "recording.nc")
        _write_arrays(path / "pathways.nc", {"pathways": self.pathways.to_dataset()})
        _write_arrays(path / "units.nc", {"importance": self.importance, "profile": self.profile,
                                          "selectivity": self.selectivity, "attributions": self.attributions})
        if self.dynamics is not None:
            _write_arrays(path / "dynamics.nc", {"dynamics": self.dynamics})
            files.append("dynamics.nc")
        if self.reln is not None:
            arrays, attrs = _reln_arrays(self.reln)
            _write_arrays(path / "reln.nc", arrays, attrs=attrs)
            files.append("reln.nc")
        if self.monitor_scores is not None or self.monitor_pathways is not None:
            frame = self.monitor_scores
            scores_ds = None
            attrs = {}
            if frame is not None:
                scores_ds = xr.Dataset({f"c{i}": (("step",), frame[c].to_numpy()) for i, c in enumerate(frame.columns)},
                                       coords={"step": frame.index.to_numpy()})
                attrs = {"index_name": frame.index.name, "columns": [str(c) for c in frame.columns]}
            _write_arrays(path / "monitor.nc", {"scores": scores_ds, "pathways": self.monitor_pathways}, attrs=attrs)
            files.append("monitor.nc")
        summary = {
            "format": FORMAT["name"],
            "format_version": FORMAT["version"],
            "relu_probe_version": __version__,
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": files,
            "scores_index": [str(k) for k in self.scores.index],
            "scores_name": self.scores.name,
            **self.summary(),
        }
        (path / "summary.json").write_text(dumps(summary), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Analysis:
        """Read an analysis written by :meth:`save`."""
        from ._pathway_result import Pathways
        from ._serial import loads
        from .io import open_netcdf

        path = Path(path)
        meta_file = path / "summary.json"
        if not path.is_dir() or not meta_file.is_file():
            raise StoreError(f"`path` {str(path)!r} is not a saved relu_probe analysis (no summary.json).")
        try:
            meta = loads(meta_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StoreError(f"`path` {str(path)!r}: summary.json is not valid JSON ({exc}).") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT["name"]:
            raise StoreError(f"`path` {str(path)!r}: summary.json is not a relu_probe analysis summary.")
        if int(meta.get("format_version", 0)) > FORMAT["version"]:
            raise StoreError(
                f"`path` {str(path)!r} was written by a newer relu_probe (format version "
                f"{meta['format_version']}); upgrade relu_probe to read it."
            )
        files = set(meta.get("files", []))
        missing = [f for f in ("recording.nc", "pathways.nc", "units.nc") if not (path / f).is_file()]
        missing += [f for f in files if not (path / f).is_file()]
        if missing:
            raise StoreError(f"`path` {str(path)!r} is incomplete: missing {sorted(set(missing))}.")
        dataset = open_netcdf(path / "recording.nc")
        pathways = Pathways.from_dataset(_read_arrays(path / "pathways.nc")[0]["pathways"])
        units, _ = _read_arrays(path / "units.nc")
        dynamics = _read_arrays(path / "dynamics.nc")[0]["dynamics"] if "dynamics.nc" in files else None
        reln = _reln_from_arrays(*_read_arrays(path / "reln.nc")) if "reln.nc" in files else None
        monitor_scores = monitor_pathways = None
        if "monitor.nc" in files:
            mon, attrs = _read_arrays(path / "monitor.nc")
            if "scores" in mon:
                sc_ds = mon["scores"]
                monitor_scores = pd.DataFrame(
                    {c: sc_ds[f"c{i}"].values for i, c in enumerate(attrs["columns"])},
                    index=pd.Index(sc_ds["step"].values, name=attrs["index_name"]),
                )
            monitor_pathways = mon.get("pathways")
        scores = pd.Series(meta["scores"], name=meta.get("scores_name", "scores"), dtype=np.float64)
        scores = scores.reindex(meta.get("scores_index", list(scores.index)))
        return cls(
            dataset=dataset,
            importance=units["importance"],
            pathways=pathways,
            scores=scores,
            profile=units["profile"],
            selectivity=units.get("selectivity"),
            attributions=units.get("attributions"),
            reln=reln,
            dynamics=dynamics,
            comparison=meta.get("comparison") or {},
            monitor_scores=monitor_scores,
            monitor_pathways=monitor_pathways,
            params=meta.get("params") or {},
            notes=meta.get("notes") or [],
        )


def _fmt_set(contexts: Any) -> str:
    return "{" + ",".join(str(c) for c in contexts) + "}"


_WRAPPER_ATTRS = "relu_probe_wrapper"


def _write_arrays(path: Path, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> None:
    """Write DataArrays / Datasets to one netCDF file, each in its own group (so each keeps
    exactly its own coords and name); ``None`` entries are left out."""
    from ._serial import dumps, encode_dataset

    root = xr.Dataset(attrs={_WRAPPER_ATTRS: dumps(dict(attrs or {}), indent=None)})
    root.to_netcdf(path, mode="w", engine="netcdf4")
    for key, obj in arrays.items():
        if obj is None:
            continue
        if isinstance(obj, xr.DataArray):
            ds = obj.to_dataset(name="__data__")
            meta = {"kind": "DataArray", "name": obj.name}
        else:
            ds = obj
            meta = {"kind": "Dataset"}
        enc = encode_dataset(ds)
        enc.attrs[_WRAPPER_ATTRS] = dumps(meta, indent=None)
        enc.to_netcdf(path, mode="a", group=key, engine="netcdf4")


def _read_arrays(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inverse of :func:`_write_arrays`: ``({group: DataArray or Dataset}, attrs)``."""
    import netCDF4

    from ._serial import decode_dataset, loads

    try:
        with netCDF4.Dataset(path) as handle:
            groups = list(handle.groups)
            attrs = loads(handle.getncattr(_WRAPPER_ATTRS))
        out: dict[str, Any] = {}
        for key in groups:
            with xr.open_dataset(path, group=key, engine="netcdf4") as handle:
                raw = handle.load()
            meta = loads(raw.attrs.pop(_WRAPPER_ATTRS))
            ds = decode_dataset(raw)
            if meta["kind"] == "DataArray":
                da = ds["__data__"]
                da.name = meta["name"]
                out[key] = da
            else:
                out[key] = ds
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise StoreError(f"cannot read {str(path)!r}: {exc}") from None
    return out, attrs


# ----------------------------------------------------------------------------- ReLN on disk

_RELN_FITTED = ("pathway_names_", "contexts_", "n_features_in_", "n_outputs_", "n_samples_fit_",
                "lr_", "epochs_", "L0_", "dropped_")
_RELN_ARRAYS = ("singular_values_", "maps_", "gates_", "inputs_", "pathway_mass_")


def _reln_arrays(reln: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fitted ReLN's parameters and public fitted attributes, for :func:`_write_arrays`."""
    params = reln.get_params(deep=False)
    gates = params.pop("gates")
    context = params.pop("context")
    dtype = params.pop("dtype")
    params["device"] = str(params["device"])
    arrays: dict[str, Any] = {name: getattr(reln, name, None) for name in _RELN_ARRAYS}
    plain = {"loss_curve_": np.asarray(reln.loss_curve_), "shared_": np.asarray(reln.shared_),
             "context_": getattr(reln, "context_", None), "param_context": context}
    if isinstance(gates, xr.DataArray):
        arrays["param_gates"] = gates
    else:
        plain["param_gates"] = np.asarray(gates)
    for key, value in plain.items():
        if value is not None:
            value = np.asarray(value)
            arrays[key] = xr.DataArray(value, dims=tuple(f"{key}_{i}" for i in range(value.ndim)))
    for p, layers in enumerate(reln.weights_):
        for layer, w in enumerate(layers):
            arrays[f"weight_{p}_{layer}"] = xr.DataArray(np.asarray(w), dims=("out", "in"))
    attrs = {
        "params": params,
        "dtype": str(dtype).replace("torch.", ""),
        "fitted": {k: getattr(reln, k) for k in _RELN_FITTED if hasattr(reln, k)},
        "n_weights": [len(layers) for layers in reln.weights_],
        "plain": [k for k in plain if plain[k] is not None],
    }
    return arrays, attrs


def _reln_from_arrays(arrays: Mapping[str, Any], attrs: Mapping[str, Any]) -> Any:
    from .reln import ReLN

    plain = {k: arrays[k].values for k in attrs["plain"]}
    gates = plain.get("param_gates", arrays.get("param_gates"))
    reln = ReLN(gates, context=plain.get("param_context"), dtype=getattr(torch, attrs["dtype"]),
                **attrs["params"])
    reln.loss_curve_ = plain["loss_curve_"]
    reln.shared_ = plain["shared_"]
    reln.context_ = plain.get("context_")
    for name in _RELN_ARRAYS:
        setattr(reln, name, arrays.get(name))
    reln.weights_ = [[arrays[f"weight_{p}_{layer}"].values for layer in range(n)]
                     for p, n in enumerate(attrs["n_weights"])]
    for key, value in attrs["fitted"].items():
        setattr(reln, key, value)
    return reln
