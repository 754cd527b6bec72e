"""One call from a model to everything relu_probe measures: :func:`analyze` → :class:`Analysis`.

>>> import relu_probe as rp
>>> X, Y, coords = rp.tasks.contextual_task(3)
>>> model = rp.tasks.paper_network(3)
>>> loss = rp.tasks.train_full_batch(model, X, Y, epochs=300)
>>> res = rp.analyze(model, X, coords=coords, by="context", within="object",
...                  Y=Y, loss_curve=loss)                       # doctest: +SKIP
>>> res.scores["node_reuse_score"]                               # doctest: +SKIP
>>> res.to_html("report.html"); res.save("analysis/")            # doctest: +SKIP

The pipeline is a list of named steps (:data:`STEPS`), each also a public function:

1. ``record``: :func:`relu_probe.record` the gates (and post-ReLU values) on ``inputs``;
2. ``importance``: :func:`relu_probe.unit_importance` (``"readout"`` when every site feeds a
   Linear / Conv, else ``"activity"``, unless given);
3. ``pathways``: :func:`relu_probe.find_pathways` by ``by`` (and ``within``), per site;
4. ``scores``: :func:`relu_probe.scores` (one row per site);
   ``null``: :func:`relu_probe.null_scores`, each score next to its value with the ``by``
   labels shuffled across items;
5. ``selectivity``: the per-unit :func:`relu_probe.gating_profile` and
   :func:`relu_probe.mixed_selectivity_index`;
6. ``ReLN``: with targets ``Y``, the ReLN (:meth:`relu_probe.ReLN.from_pathways`, trained by
   gradient descent);
7. ``race``: its race prediction (:func:`relu_probe.race_dynamics`) and, with the ReLU
   network's ``loss_curve``, :func:`relu_probe.compare_dynamics` of each against it;
8. ``attribution``: with tensor inputs, the input features that drive each pathway (captum
   integrated gradients, :mod:`relu_probe.pathways.attribution`). It runs last, so that its
   cost can be weighed against the rest of the run (see :func:`analyze`, ``attribution``).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from .._util.arrays import as_2d_float
from .._util.checks import check_choice, check_int, check_real
from .._util.notes import RELN_SKIPPED, merge_notes
from .._util.progress import StepBar
from ..data.access import Recording, as_recording
from ..data.schema import site_attr
from ..errors import DivergenceError, IncompleteDesignError, InputError, ReluProbeWarning, ValueInputError, describe
from ..pathways.attribution import attribution_cost, pathway_attributions, plan_attributions
from ..pathways.find import find_pathways
from ..pathways.importance import (
    IMPORTANCE_METHODS,
    default_importance_method,
    given_importance,
    readout_gaps,
    unit_importance,
)
from ..pathways.profiles import gating_profile
from ..recording.recorder import record
from ..recording.model import unwrap_model
from ..reln.convention import replay_clause, trained_and_initial_outputs, training_loss_factor
from ..reln.dynamics import as_loss_curve, compare_dynamics, loss_convention
from ..reln.init import hidden_biases, init_std_from_trained, one_hidden_layer
from ..reln.layered import LayeredSpec
from ..reln.predict import DEFAULT_MAX_EXHAUSTIVE, predict_structure, structure_table
from ..reln.race import RACE_METHODS, race_from_spec
from ..report.labels import default_title
from ..reln.reln import ReLN
from ..scoring.selectivity import mixed_selectivity_index
from ..scoring.null import null_scores
from ..scoring.table import scores
from .result import Analysis

__all__ = ["ATTRIBUTION_ALWAYS_S", "STEPS", "analyze"]

#: The steps of :func:`analyze`, in order (module docstring).
STEPS = ("record", "importance", "pathways", "scores", "null", "selectivity", "ReLN", "race", "attribution")

#: Attributions estimated to take less than this many seconds are computed even when they
#: would dominate the run: a few seconds are not worth a skipped result.
ATTRIBUTION_ALWAYS_S = 5.0


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
    per_site: bool = True,
    null: int | None = 20,
    literature: bool = True,
    sites: Any = None,
    units: str = "element",
    values: bool = True,
    samples: str = "input",
    X: Any = None,
    feature_names: Sequence[str] | None = None,
    attribution: bool | str = "auto",
    attribution_samples: int = 256,
    lr: float | None = None,
    epochs: int | None = None,
    init_network: Any = None,
    init_std: Any = None,
    reln_params: Mapping[str, Any] | None = None,
    closed_form_init: Any = None,
    race_method: str | None = None,
    predict: bool = True,
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
        :func:`relu_probe.tasks.train_full_batch` returns). Its convention is checked first
        against the model given (:func:`relu_probe.reln.dynamics.loss_convention`: the last value
        against ``½ Σ ‖Y − f(X)‖²``, summed or mean-reduced); a mean loss is rescaled (values
        divided by its factor ``c``, the predictions run at ``c × lr`` on the summed loss:
        ``τ`` rescaled), and a curve matching no convention is shown but not compared (a note
        says why). Then it is compared with the ReLN's curves (:func:`relu_probe.compare_dynamics`).
    importance : {"auto", "readout", "conductance", "activity"} or DataArray, default="auto"
        Unit importance. ``"auto"``: the default of :func:`relu_probe.find_pathways` too
        (:func:`relu_probe.pathways.importance.default_importance_method`): ``"readout"``
        when a model is given and every site feeds a Linear/Conv directly, else
        ``"activity"``. A DataArray / array is used as is.
    method : str, default="auto"
        Pathway method for :func:`relu_probe.find_pathways`.
    per_site : bool, default=True
        Pathways (and scores) per site, each site's importance normalised on its own;
        ``False`` pools all sites (mixes layers, see :func:`relu_probe.find_pathways`).
    null : int or None, default=20
        Shuffles of the null baseline (:func:`relu_probe.null_scores`, seeded by
        ``random_state``): every pathway score and the mixed selectivity next to their values
        with the ``by`` labels shuffled across items (:attr:`Analysis.null_scores`; with a
        monitor that saw step 0 also the scores at initialisation, column ``init``).
        ``None`` or 0 skips it. It repeats the decomposition and scores ``null`` times.
    literature : bool, default=True
        Also compute the literature scores (CCGP, parallelism, DCI; need ``within``). They
        fit many small decoders: switch them off for quick looks at wide networks.
    sites, units, values, batch_size :
        Passed to :func:`relu_probe.record` (``values=True`` stores post-ReLU values, which
        the pathway masses and mixed selectivity use).
    samples : {"input", "position"}, default="input"
        Passed to :func:`relu_probe.record`: with ``"position"`` every (input, position) of
        the sequence / conv sites is a sample (tokens as samples; padding dropped), and
        ``coords`` are per input, broadcast to the positions. The ReLN and the input
        attributions need one sample per input row of ``X``, so with ``"position"`` they
        run only on a recording whose samples ``X`` matches (pass ``X=``).
    X : array-like, optional
        The input tensor when ``inputs`` is a recording (for the ReLN and attributions).
    feature_names : sequence of str, optional
        Names of the input features (flattened), for the attribution tables.
    attribution : {"auto", True, False}, default="auto"
        Attribute the pathways' activity to the input features (captum integrated gradients;
        needs the model and tensor inputs). ``True`` always computes them. ``"auto"`` first
        estimates their cost — one forward and backward pass per pathway over the attributed
        samples, timed, times the integration steps
        (:func:`relu_probe.pathways.attribution.attribution_cost`)
        — and skips them, with a note, when they would *dominate the run*: when the estimate
        exceeds the time the other steps of this call took (so attributions at most double
        the run) and is over :data:`ATTRIBUTION_ALWAYS_S` seconds. ``False`` never computes
        them.
    attribution_samples : int, default=256
        At most this many samples (a seeded random subset) are attributed.
    lr : float, optional
        Learning rate of the ReLU network's training loop (for the convention of
        ``loss_curve``), refused at once at or above the ReLN's largest stable rate. Default:
        the monitor's ``lr``; else a share of that bound, derived from the data
        (:mod:`relu_probe.reln.schedule`), with a note saying so — the predictions' time axis
        is then in epochs of that rate, not of your training's.
    epochs : int, optional
        Epochs of the ReLN and the predictions; default ``len(loss_curve)``, else the
        monitor's ``epochs`` (or its last step + 1), else derived from the data (enough for
        the ReLN to converge, :mod:`relu_probe.reln.schedule`), with a note. A ReLN the
        derivation does not cover (a layered ReLN) needs both given, else it is skipped
        with a note.
    init_network : torch.nn.Module, optional
        The *untrained* network (e.g. a copy taken before training; a monitor that saw step 0
        keeps one): every pathway of the ReLN and of the predictions starts in the mean state
        of its units (:mod:`relu_probe.reln.init`; one-hidden-layer bias-free MLPs).
    init_std : float, pair or "pytorch", optional
        Or the network's initial weight std (its hidden width is read off ``model``).
        Neither (and no monitor at step 0): the documented default small initialisation
        (:data:`relu_probe.reln.init.DEFAULT_RELATIVE_INIT`), with a note.
    reln_params : mapping, optional
        Extra :meth:`relu_probe.ReLN.from_pathways` parameters (``hidden``, ``init_scale``,
        ``rule``, ``min_mass``, ``seed`` …), and ``check_lr=False`` to fit the ReLN at an
        ``lr`` at or above its largest stable rate instead of refusing it (the bound is that of
        the balanced least-squares optimum, which the ReLN may never approach within your
        epochs on ill-conditioned data; the run may then diverge, and a note says so).
    closed_form_init : float or mapping, optional
        Initial mode strength ``π0`` of the closed form (``{"shared": …, "context": …}``);
        default: the ReLN's own initial state. :data:`relu_probe.tasks.PAPER_CLOSED_FORM_PI0`
        holds the paper's fitted values for its tasks (on request only).
    race_method : {"auto", "exact", "closed", "race", "live"}, optional
        How :func:`relu_probe.race_dynamics` predicts the ReLN's curve (``loss_race``):
        default the exact dynamics (``"auto"``). The closed form (Eq. 1 per mode, the
        mode-by-mode approximation) is shown beside it (``loss_closed``) unless it is the
        method chosen.
    predict : bool, default=True
        With targets and context-set pathways of one site: also predict the structure from
        the data and the initial state alone (:func:`relu_probe.predict_structure`) and
        compare it with the measured pathways (:attr:`Analysis.structure`).
    monitor : TrainingMonitor, optional
        Attach training-time measurements (see :meth:`Analysis.attach_monitor`); its ``lr``,
        ``epochs`` and step-0 copy of the model are used when not given here.
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
    The analysis runs as the named steps of :data:`STEPS`, each a function of this module on
    the recording checked once at the start (:func:`relu_probe.data.access.as_recording`).

    The ReLN's predicted curve is :func:`relu_probe.race_dynamics` with the ReLN's gates,
    input masks, training rule and initial state: by default the exact dynamics. The closed
    form beside it is the mode-by-mode approximation (Eq. 1 per mode; with the paper's
    ``"residual"`` rule the context pathways on the shared pathway's final residual, ``d``
    divided by the mean number of context pathways open on their samples); its asymptote is
    checked against the least-squares optimum of the gates (Assumption 2.1,
    :mod:`relu_probe.reln.assumption`). Warnings of these steps and what was assumed (loss
    convention, learning rate, epochs, initial state) are kept in :attr:`Analysis.notes`.
    """
    attribution_samples = check_int("attribution_samples", attribution_samples, minimum=1)
    if not (isinstance(attribution, bool) or attribution == "auto"):
        raise InputError(f"`attribution` must be True, False or 'auto', got {describe(attribution)}.")
    started = time.perf_counter()
    if lr is not None:
        lr = check_real("lr", lr, minimum=0.0, strict=True)
    if null is not None:
        null = check_int("null", null, minimum=0)
    if title is not None and not isinstance(title, str):
        raise InputError(f"`title` must be a str, got {describe(title)}.")
    if reln_params is not None and not isinstance(reln_params, Mapping):
        raise InputError(f"`reln_params` must be a mapping of ReLN parameters, got {describe(reln_params)}.")
    if race_method is not None:
        check_choice("race_method", race_method, RACE_METHODS)
    if init_network is not None and init_std is not None:
        raise InputError("pass either `init_network` or `init_std` (the initial state comes from one), not both.")
    notes: list[str] = []
    with StepBar(STEPS, enabled=progress, desc="analyze") as bar:
        with bar.step("record"):
            rec, X_t = _record_step(model, inputs, X=X, coords=coords, sites=sites, units=units, values=values,
                                    samples=samples, batch_size=batch_size, record_kwargs=record_kwargs,
                                    progress=progress)
        with bar.step("importance"):
            imp = _importance_step(model, rec, importance, X_t, notes)
        with bar.step("pathways"), _noted(notes):
            pw = find_pathways(rec, by, within, importance=imp, method=method, per_site=per_site,
                               random_state=random_state)
        with bar.step("scores"), _noted(notes):
            sc = scores(pw, rec, literature=bool(literature), random_state=random_state)
        with bar.step("null"):
            baseline = None if not null else null_scores(pw, rec, n_shuffles=null, random_state=random_state)
        with bar.step("selectivity"):
            profile = gating_profile(rec, by)
            selectivity = None
            if within is not None:
                try:
                    selectivity = mixed_selectivity_index(rec, by, within=within)
                except IncompleteDesignError as exc:  # nested items: the two-way ANOVA is undefined
                    notes.append(f"per-unit mixed selectivity skipped: {' '.join(str(exc).split())} The "
                                 f"{within!r} values are not all crossed with the {by!r} values (nested or "
                                 f"missing cells); give a crossed design, or leave `within` unset")
        relu_loss = None if loss_curve is None else as_loss_curve("loss_curve", loss_curve)
        with bar.step("ReLN"), _noted(notes):
            training = _training(model, monitor, X_t, Y, relu_loss, rec, lr=lr, epochs=epochs,
                                 init_network=init_network, init_std=init_std, notes=notes)
            reln, Xn, Yn = _reln_step(pw, rec, X_t, Y, training, inputs=inputs, params=dict(reln_params or {}),
                                      progress=progress, notes=notes, model=model)
        with bar.step("race"), _noted(notes):
            dynamics, comparison = _race_step(reln, Xn, Yn, training, closed_form_init=closed_form_init,
                                              race_method=race_method, notes=notes)
            structure = (_structure_step(pw, rec, Xn, Yn, training, notes=notes)
                         if predict and reln is not None else None)
        with bar.step("attribution"):
            if attribution is not False and samples == "position" and X is None:
                notes.append("input attributions attribute each sample to its input row; with "
                             "samples='position' the samples are positions, not inputs: skipped")
                attribution = False
            attributions = _attribution_step(model, rec, pw, X_t, enabled=attribution, feature_names=feature_names,
                                             max_samples=attribution_samples, random_state=random_state, notes=notes,
                                             budget_s=time.perf_counter() - started)
    notes = merge_notes(notes)
    result = Analysis(
        dataset=rec.ds, importance=imp, pathways=pw, scores=sc, null_scores=baseline, profile=profile,
        selectivity=selectivity,
        attributions=attributions, reln=reln, dynamics=dynamics, comparison=comparison, structure=structure,
        notes=notes,
        params=_params(rec, pw, imp, reln, by=by, within=within, title=title, units=units,
                       lr=training.lr_user if training is not None else lr, null=null),
    )
    if monitor is not None:
        result.attach_monitor(monitor)
        if training is not None and within is not None and callable(getattr(monitor, "structure_over_time", None)):
            with _noted(notes):
                try:
                    labels = {name: rec.ds[name].values for name in (by, within)} if X_t is not None else None
                    result.attach_monitor(structure=monitor.structure_over_time(
                        Y, X=X_t if X_t is not None else X, coords=labels, lr=training.lr, by=by, within=within))
                except (ValueInputError, InputError) as exc:
                    notes.append(f"predicted structure over training skipped: {' '.join(str(exc).split())}")
    return result


# ----------------------------------------------------------------------------- the steps
def _record_step(model: Any, inputs: Any, *, X: Any, coords: Any, sites: Any, units: str, values: bool,
                 samples: str, batch_size: int | None, record_kwargs: Mapping[str, Any] | None,
                 progress: bool | None) -> tuple[Recording, torch.Tensor | None]:
    """Record *inputs* (or take the recording given as *inputs*) and check it, once: the
    checked, in-memory recording and the input tensor (``None`` when there is none; with
    ``samples="position"`` the inputs are not the samples, so only an ``X`` given)."""
    if isinstance(inputs, xr.Dataset):
        if coords is not None:
            raise InputError("`coords` must be omitted when `inputs` is already a recording.")
        ds, X_t = inputs, _as_tensor(X)
    else:
        if model is None:
            raise InputError(
                "`model` is None: pass the trained torch.nn.Module, or a recording (xarray.Dataset) as `inputs`."
            )
        ds = record(model, inputs, sites=sites, coords=coords, values=values, units=units, samples=samples,
                    batch_size=batch_size, progress=progress, **dict(record_kwargs or {}))
        X_t = _as_tensor(X) if X is not None else (_as_tensor(inputs) if samples == "input" else None)
    return as_recording(ds, "inputs").loaded(), X_t


def _importance_step(model: Any, rec: Recording, importance: Any, X_t: torch.Tensor | None,
                     notes: list[str] | None = None) -> xr.DataArray:
    """The unit importance: given (a DataArray / array), or by the method named;
    ``"auto"`` is ``"readout"`` when a model is given and every site has a Linear/Conv
    readout, else ``"activity"`` (a note names the sites without one). ``attrs["method"]``
    says which."""
    if not isinstance(importance, str):
        return given_importance(importance, rec)
    check_choice("importance", importance, ("auto", *IMPORTANCE_METHODS))
    if importance == "auto":
        importance = default_importance_method(model, rec)
        gaps = readout_gaps(rec) if importance == "activity" and model is not None else {}
        if gaps and notes is not None:
            shown = "; ".join(f"site {site!r}: {why}" for site, why in list(gaps.items())[:5])
            notes.append(f"importance: 'activity' (each unit's mean activity), not 'readout', because the "
                         f"outgoing Linear / Conv weights do not cover every site ({shown}"
                         f"{' …' if len(gaps) > 5 else ''}); importance='conductance' follows the gradient instead")
    kwargs = {"inputs": X_t} if importance == "conductance" else {}
    return unit_importance(model if importance != "activity" else None, rec, method=importance, **kwargs)


def _attribution_step(model: Any, rec: Recording, pw: Any, X_t: torch.Tensor | None, *, enabled: bool | str,
                      feature_names: Sequence[str] | None, max_samples: int, random_state: int | None,
                      notes: list[str], budget_s: float) -> xr.DataArray | None:
    """The input features that drive each pathway, unless they would dominate the run
    (``enabled="auto"``, :func:`analyze`); an extra: a failure is warned about and noted,
    never raised (bad ``feature_names`` are)."""
    if enabled is False:
        return None
    if model is None or X_t is None:
        notes.append("input attributions need the model and the inputs as one tensor; skipped")
        return None
    if feature_names is not None:
        feature_names = [str(f) for f in feature_names]
        n_features = int(np.prod(tuple(X_t.shape[1:])))
        if len(feature_names) != n_features:
            raise ValueInputError(
                f"`feature_names` must name every input feature ({n_features}), got {len(feature_names)} names."
            )
    try:
        plan = plan_attributions(unwrap_model(model), rec.ds, pw, X_t, max_samples=max_samples,
                                 random_state=random_state)
        if plan is None:
            notes.append("no pathway has enough mass for input attributions")
            return None
        if enabled == "auto":
            cost = attribution_cost(plan)
            if cost > max(budget_s, ATTRIBUTION_ALWAYS_S):
                notes.append(
                    f"input attributions skipped: estimated {cost:.0f} s ({len(plan.pathways)} pathways × "
                    f"{plan.n_steps} integration steps × {len(plan.samples)} inputs), more than the "
                    f"{budget_s:.0f} s the rest of the analysis took; pass attribution=True "
                    "(relu-probe analyze --attribution) to compute them"
                )
                return None
        attributions, more = pathway_attributions(unwrap_model(model), rec.ds, pw, X_t, feature_names=feature_names,
                                                  plan=plan)
    except Exception as exc:  # noqa: BLE001 - attributions are an extra: report, do not fail
        message = f"input attributions failed ({type(exc).__name__}: {' '.join(str(exc).split())})"
        warnings.warn(message, ReluProbeWarning, stacklevel=3)
        notes.append(message)
        return None
    notes.extend(more)
    return attributions


@dataclass
class _Training:
    """How the ReLU network was trained, as the ReLN and the predictions need it.

    ``lr`` is the rate on the summed loss ``½ Σ ‖y − f(x)‖²`` (``factor × lr_user``), ``loss``
    the ReLU curve on that scale (None when none was given), ``comparable`` whether it may be
    compared epoch by epoch, ``init`` the initial-state source for the ReLN
    (``network`` or ``init_std`` and ``width``, or empty for the default). ``lr`` / ``epochs``
    are None until the ReLN derives them from the data when neither the user nor the monitor
    gave them (:func:`_reln_step`).
    """

    lr_user: float | None
    lr: float | None
    epochs: int | None
    loss: np.ndarray | None
    comparable: bool
    init: dict[str, Any]
    lr_given: bool
    factor: float = 1.0


def _training(model: Any, monitor: Any, X_t: torch.Tensor | None, Y: Any, relu_loss: np.ndarray | None,
              rec: Recording, *, lr: float | None, epochs: int | None, init_network: Any, init_std: Any,
              notes: list[str]) -> _Training | None:
    """The learning rate, epochs, loss convention and initial state of the ReLU network's
    training, from the arguments, the monitor, or documented defaults (each noted)."""
    if Y is None:
        return None
    _note_class_labels(Y, notes)
    lr_given = lr is not None
    if lr is None and getattr(monitor, "lr", None) is not None:
        lr = float(monitor.lr)
        notes.append(f"learning rate {lr:g} from the training monitor")
        lr_given = True
    if epochs is None:
        if relu_loss is not None:
            epochs = relu_loss.size
        elif getattr(monitor, "epochs", None) is not None:
            epochs = int(monitor.epochs)
            notes.append(f"epochs {epochs} from the training monitor")
        elif getattr(monitor, "last_step", None) is not None:
            epochs = int(monitor.last_step) + 1
            notes.append(f"epochs {epochs}: the last step the training monitor was updated at + 1")
        elif getattr(monitor, "steps", None):
            epochs = int(monitor.steps[-1]) + 1
            notes.append(f"epochs {epochs}: the training monitor's last snapshot step + 1")
    if epochs is not None:
        epochs = check_int("epochs", epochs, minimum=1)
    if relu_loss is not None and relu_loss.size != epochs:
        raise ValueInputError(
            f"`epochs` ({epochs}) must equal the length of `loss_curve` ({relu_loss.size}) so the "
            "curves can be compared epoch by epoch."
        )
    factor, comparable, loss = 1.0, relu_loss is not None, relu_loss
    if relu_loss is not None:
        factor, comparable = _convention(model, monitor, X_t, Y, relu_loss, rec, notes, lr=lr,
                                         initial=_initial_network(monitor, init_network))
        if comparable and factor != 1.0:
            loss = relu_loss / factor
    elif lr is not None:
        factor, _ = training_loss_factor(model, monitor, X_t, Y, rec.n_samples, lr=lr, epochs=epochs, notes=notes,
                                              initial=_initial_network(monitor, init_network))
    init: dict[str, Any] = {}
    network = init_network
    if network is None and init_std is None and monitor is not None:
        network = getattr(monitor, "initial_model", None)
        if network is not None:
            notes.append("initial state: the training monitor's copy of the model at step 0")
    if network is not None:
        init["network"] = network
        if init_network is not None:
            notes.append("initial state: the untrained network given as `init_network`")
    elif init_std is not None:
        init["init_std"] = init_std
        init["width"] = _hidden_width(model)
        biased = model is not None and bool(np.any(hidden_biases(unwrap_model(model)) != 0))
        notes.append(f"initial state: Gaussian weights of the `init_std` given on the model's {init['width']} units"
                     + (" (its initial hidden biases are not modelled: pass the untrained copy as `init_network` "
                        "to include them)" if biased else ""))
    elif model is not None and X_t is not None:
        init.update(_init_from_trained(model, X_t, rec, notes))
    return _Training(lr_user=lr, lr=None if lr is None else lr * factor, epochs=epochs, loss=loss,
                     comparable=comparable, init=init, lr_given=lr_given, factor=factor)


def _initial_network(monitor: Any, init_network: Any) -> Any:
    """The untrained network: ``init_network`` if given, else the monitor's step-0 copy, else None."""
    if init_network is not None:
        return init_network
    return getattr(monitor, "initial_model", None) if monitor is not None else None


def _note_class_labels(Y: Any, notes: list[str]) -> None:
    """Say so when 1-D targets look like class indices (integers, more than two values): the
    ReLN fits them as one regression output, not as classes."""
    values = np.asarray(Y.detach().cpu().numpy() if isinstance(Y, torch.Tensor) else Y)
    if values.ndim != 1 or values.dtype.kind not in "iubf":
        return
    if values.dtype.kind == "f" and not (np.all(np.isfinite(values)) and np.all(values == np.round(values))):
        return
    n_values = np.unique(values).size
    if n_values > 2:
        notes.append(f"`Y` is 1-D with {n_values} integer values: the ReLN fits it as one regression output "
                     "(½Σ(y − f(x))²), not as classes; for class labels pass one-hot targets (one column per class)")


def _convention(model: Any, monitor: Any, X_t: torch.Tensor | None, Y: Any, relu_loss: np.ndarray,
                rec: Recording, notes: list[str], *, lr: float | None = None,
                initial: Any = None) -> tuple[float, bool]:
    """The factor ``c`` of the loss curve's convention and whether it may be compared."""
    if model is None or X_t is None:
        notes.append("loss curve: its convention could not be checked (no model and input tensor given); "
                     "compared epoch by epoch as the summed loss ½Σ‖y − f(x)‖² of full-batch gradient descent")
        return 1.0, True
    Yn = as_2d_float("Y", Y, n_rows=rec.n_samples)
    try:
        out, first = trained_and_initial_outputs(model, initial, X_t)
        conv = loss_convention(relu_loss, Yn, out, initial_outputs=first)
    except (ValueInputError, RuntimeError, TypeError) as exc:
        notes.append(f"loss curve: its convention could not be checked ({' '.join(str(exc).split())}); "
                     "compared epoch by epoch as the summed loss ½Σ‖y − f(x)‖²")
        return 1.0, True
    if conv["convention"] is None:
        notes.append(
            f"loss curve: its last value {conv['last']:.4g} matches none of the conventions of full-batch "
            f"gradient descent (½Σ‖y − f(x)‖² of the model is {conv['summed_end']:.4g}; summed or mean-reduced, "
            "with or without ½): an epoch-by-epoch comparison with the predictions is not meaningful "
            "(minibatches, momentum or Adam, weight decay or another loss change the dynamics), so it is "
            "shown but not compared; the ReLN and the predictions run at `lr` as given, as a rate on the "
            "summed loss"
        )
        return 1.0, False
    replayed, clause = replay_clause(initial, X_t, Yn, relu_loss, None, lr=lr, factor=float(conv["factor"]))
    if replayed is False:
        notes.append(f"loss curve: {conv['description']} ({conv['checked']} checked against the model){clause}; "
                     "an epoch-by-epoch comparison with the predictions is not meaningful, so it is shown but not "
                     "compared; the ReLN and the predictions run at `lr` as given, as a rate on the summed loss")
        return 1.0, False
    if conv["convention"] == "sum":
        notes.append(f"loss curve: ½Σ‖y − f(x)‖² summed over samples ({conv['checked']} checked against "
                     f"the model{clause}), compared epoch by epoch")
    else:
        notes.append(
            f"loss curve: {conv['description']} ({conv['checked']} checked against the model{clause}) = "
            f"{conv['factor']:.4g} × the summed ½Σ‖y − f(x)‖²; its values are divided by {conv['factor']:.4g} and "
            f"the ReLN and predictions run on the summed loss at {conv['factor']:.4g} × lr (the time scale τ = "
            "1/(lr·P) rescaled)"
        )
    return float(conv["factor"]), True


def _init_from_trained(model: Any, X_t: torch.Tensor, rec: Recording, notes: list[str]) -> dict[str, Any]:
    """``init_std`` and ``width`` read off the trained one-hidden-layer network
    (:func:`relu_probe.reln.init.init_std_from_trained`), or nothing (the documented default)."""
    try:
        found = init_std_from_trained(unwrap_model(model), as_2d_float("X", X_t, n_rows=rec.n_samples))
    except (ValueInputError, InputError):
        found = None
    if found is None:
        return {}
    (s_in, s_out), width, text = found
    notes.append(f"initial state: {text}; pass `init_network=` (the untrained copy) or `init_std=` to set it")
    return {"init_std": (s_in, s_out), "width": width}


def _hidden_width(model: Any) -> int:
    """The hidden width of a one-hidden-layer MLP (for ``init_std``)."""
    try:
        return int(one_hidden_layer(unwrap_model(model), allow_biases=True)[0].shape[0])
    except Exception as exc:  # noqa: BLE001 - re-raised as one clear error
        raise ValueInputError(
            "`init_std` needs a one-hidden-layer ReLU MLP `model` (its hidden width); for other "
            f"networks pass the untrained copy as `init_network` ({' '.join(str(exc).split())})."
        ) from None


def _reln_step(pw: Any, rec: Recording, X_t: torch.Tensor | None, Y: Any, training: _Training | None, *,
               inputs: Any, params: dict[str, Any], progress: bool | None, notes: list[str],
               model: Any = None) -> tuple[ReLN | None, np.ndarray | None, np.ndarray | None]:
    """With targets: the ReLN of the pathways, trained for the ReLU network's epochs at its
    rate on the summed loss, from its initial state; returns it with the input and target
    matrices. The learning rate is checked against the ReLN's stability bound first. The ReLU
    network's biases and LeakyReLU slopes are read off the model and the recording; pathways
    found per site of several sites give a layered ReLN."""
    if training is None:
        return None, None, None
    if X_t is None:
        raise InputError(
            "`Y` was given but the inputs are not one tensor/array: the ReLN needs the "
            f"input matrix; pass `X=` (got inputs {describe(inputs)})."
        )
    Xn = as_2d_float("X", X_t, n_rows=rec.n_samples)
    Yn = as_2d_float("Y", Y, n_rows=rec.n_samples)
    _note_unmodelled_layers(model, notes)
    check_lr = bool(params.pop("check_lr", True))
    params.setdefault("progress", progress)
    params.setdefault("model", unwrap_model(model) if model is not None else None)
    params.setdefault("recording", rec.ds)
    init = dict(training.init) if "init_scale" not in params else {}
    if "init_scale" in params and training.init:
        notes.append("initial state: reln_params['init_scale'] given, so the network's initial state is not used")
    try:
        reln = ReLN.from_pathways(pw, Xn, Yn, lr=training.lr, epochs=training.epochs, **init, **params)
    except ValueInputError as exc:
        if not init:
            raise
        notes.append(f"initial state: {' '.join(str(exc).split())}; the default is used instead")
        init = {}
        reln = ReLN.from_pathways(pw, Xn, Yn, lr=training.lr, epochs=training.epochs, **params)
    bound = reln.max_stable_lr(Xn, Yn, context=reln.context)
    if training.lr is not None and training.lr >= bound and not check_lr:
        notes.append(f"learning rate: {training.lr:g} on the summed loss is at or above {bound:.4g}, the largest "
                     "stable rate of the ReLN's least-squares optimum; fitted anyway (reln_params['check_lr'] = "
                     "False): the ReLN may diverge before reaching it")
    elif training.lr is not None and training.lr >= bound:
        raise ValueInputError(
            f"`lr` = {training.lr_user:g} (your training loop's; {training.lr:g} on the summed loss) is at or above "
            f"{bound:.4g}, the largest stable learning rate of the ReLN of these pathways (2 / the sharpness of its "
            "balanced least-squares optimum, an output bias's direct path included, computed from the data): the "
            "ReLN and its predictions cannot follow gradient descent at that rate, although the ReLU network may "
            "(its gates change as it learns; the ReLN's are fixed). Analyse without `Y` to skip the ReLN, or with "
            "reln_params={'check_lr': False} to fit it anyway (it may diverge). A smaller `lr` would give "
            "predictions of a slower run, on another time axis than a loss curve recorded at this rate, so not "
            "comparable with it epoch by epoch."
        )
    if (training.lr is None or training.epochs is None) and not math.isfinite(bound):
        missing = " and ".join(n for n, v in (("`lr`", training.lr), ("`epochs`", training.epochs)) if v is None)
        notes.append(f"{RELN_SKIPPED}: {missing} not given, and this ReLN (layered, deep pathways or a trunk) is not "
                     "covered by the data-derived defaults; pass them (your training loop's)")
        return None, None, None
    if training.lr is not None and not math.isfinite(bound):
        notes.append(f"learning rate: {training.lr:g} on the summed loss is not checked for stability: no bound is "
                     "computed for this ReLN (layered, deep pathways or a trunk); a rate it cannot follow shows as a "
                     "divergence, reported here")
    try:
        reln.fit(Xn, Yn, check_lr=False)  # the given lr was checked against `bound` above
    except DivergenceError as exc:
        notes.append(f"{RELN_SKIPPED}: {' '.join(str(exc).split())}")
        return None, None, None
    schedule = reln.schedule_
    notes.extend(schedule.notes)
    if training.lr is None:
        training.lr = float(reln.lr_)
        training.lr_user = training.lr / training.factor
    training.epochs = int(reln.epochs_)
    if not init:
        notes.append(f"initial state of the ReLN and the predictions: {reln.init_source_} (no untrained network, "
                     "init std or untouched weights to read it from; pass `init_network=` or `init_std=`)")
    return reln, Xn, Yn


#: A loss curve that ends above this fraction of its initial loss has not left its first plateau.
PLATEAU_FRACTION = 0.5


def _note_plateau(reln: ReLN, relu_loss: np.ndarray, training: _Training, notes: list[str]) -> None:
    """Say so when the ReLN is still on its initial plateau (its last loss above
    :data:`PLATEAU_FRACTION` of its first) where the ReLU network left it: an epoch-by-epoch
    comparison then mostly measures the two initial states' difference."""
    reln_loss = np.asarray(reln.loss_curve_, dtype=np.float64)
    if reln_loss.size < 2 or relu_loss.size < 2 or reln_loss[0] <= 0 or relu_loss[0] <= 0:
        return
    reln_end, relu_end = reln_loss[-1] / reln_loss[0], relu_loss[-1] / relu_loss[0]
    if reln_end <= PLATEAU_FRACTION or relu_end > PLATEAU_FRACTION:
        return
    hint = ("its initial state is the network's own, so the two differ in more than the initial scale"
            if training.init else
            f"its initial state ({reln.init_source_}) is likely far smaller than the network's: pass the untrained "
            "network (`init_network=`, or a training monitor that saw step 0)")
    notes.append(f"the ReLN ends at {100 * reln_end:.3g} % of its initial loss where the ReLU network ends at "
                 f"{100 * relu_end:.3g} % of its own: after {reln_loss.size} epochs it is still on its initial plateau; "
                 f"{hint}")


#: Layers whose computation a ReLN's gated linear pathways do not reproduce.
_UNMODELLED = {
    "convolution (weight sharing over positions)": (nn.modules.conv._ConvNd,),
    "normalisation": (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm),
    "attention": (nn.MultiheadAttention,),
    "pooling": (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd,
                nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd),
}


def _note_unmodelled_layers(model: Any, notes: list[str]) -> None:
    """Say which of the network's layers the ReLN does not model: it is a gated deep linear
    network of fully connected pathways over the flattened inputs, gated as the recorded units."""
    if model is None:
        return
    found = [kind for kind, types in _UNMODELLED.items()
             if any(isinstance(m, types) for m in unwrap_model(model).modules())]
    if found:
        notes.append(f"the ReLN is a gated deep linear network of fully connected pathways over the flattened "
                     f"inputs, gated as the recorded units: the network's {', '.join(found)} layers are not modelled, "
                     "so its dynamics are those of that gated linear network, not of the network's architecture")


def _race_step(reln: ReLN | None, X: np.ndarray | None, Y: np.ndarray | None, training: _Training | None, *,
               closed_form_init: Any, race_method: str | None,
               notes: list[str]) -> tuple[xr.Dataset | None, dict[str, Any]]:
    """The learning dynamics: the ReLU network's, the ReLN's, its prediction (by default the
    exact dynamics) and the closed form (the mode-by-mode approximation), for one-hidden-layer
    pathways without a trunk, and their comparisons with the ReLU curve."""
    relu_loss = None if training is None else training.loss
    if reln is None:
        return None, {}
    epochs = int(reln.epochs_)
    lr = training.lr
    sv = reln.singular_values_.rename(epoch="sv_epoch")
    data: dict[str, Any] = {"loss_reln": ("epoch", reln.loss_curve_), "sv_reln": sv}
    curves: dict[str, xr.Dataset] = {}
    method = race_method or "auto"
    spec = reln.spec_
    if isinstance(spec, LayeredSpec):
        method = ""
        notes.append("a layered ReLN (one gated block per layer and pathway) is trained by simulation only: the "
                     "exact dynamics and the closed form cover one gated layer of pathways, so no prediction is "
                     "run on this ReLN")
    elif all(d == 1 for d in spec.depths) and not spec.trunk:
        d_scale = "overlap" if reln.rule_ == "residual" else None
        common = dict(context=reln.context_, lr=lr, epochs=epochs, rule=reln.rule_, check_lr=False)
        race = race_from_spec(X, Y, spec, method=method, init=closed_form_init if method == "closed" else None,
                              d_scale=d_scale if method == "closed" else None, **common)
        method = str(race.attrs["method"])
        curves["race"] = race
        if method != "closed" and spec.output_bias:
            notes.append("the ReLN models the readout's bias as an ungated direct path, which the closed form "
                         "cannot race (it would count the outputs' mean twice): only the exact prediction is shown")
        elif method != "closed":
            curves["closed"] = race_from_spec(X, Y, spec, method="closed", init=closed_form_init, d_scale=d_scale,
                                              **common)
        for key, ds in curves.items():
            data[f"loss_{key}"] = ("epoch", ds["loss"].values)
            sv_pred = ds["singular_values"].sel(epoch=sv["sv_epoch"].values).rename(epoch="sv_epoch")
            data[f"sv_{key}"] = sv_pred.drop_vars([c for c in sv_pred.coords if c not in sv_pred.dims])
    else:
        method = ""
        notes.append("the neural-race prediction covers one-hidden-layer pathways without a trunk only; "
                     "skipped for this ReLN")
    if training.loss is not None:
        data["loss_relu"] = ("epoch", training.loss)
    dynamics = xr.Dataset(data, coords={"epoch": np.arange(epochs)})
    dynamics.attrs = {"lr": lr, "L0": float(reln.L0_), "rule": reln.rule_, "race_method": method,
                      "closed_method": "closed" if "closed" in curves else "",
                      "comparable": int(training.comparable)}
    comparison: dict[str, Any] = {}
    if relu_loss is not None and training.comparable:
        comparison["reln"] = compare_dynamics(relu_loss, reln.loss_curve_)
        _note_plateau(reln, relu_loss, training, notes)
        for key, ds in curves.items():
            comparison[key] = compare_dynamics(relu_loss, ds["loss"].values)
    elif curves:
        for key, ds in curves.items():
            comparison[f"{key}_vs_reln"] = compare_dynamics(reln.loss_curve_, ds["loss"].values)
    return dynamics, comparison


def _structure_step(pw: Any, rec: Recording, X: np.ndarray, Y: np.ndarray, training: _Training, *,
                    notes: list[str]) -> xr.Dataset | None:
    """The structure predicted from the data and the initial state alone
    (:func:`relu_probe.predict_structure`) against the measured pathway masses."""
    by = pw.by
    n_sites = len(site_attr(rec.ds, "sites"))
    if pw.within is None or n_sites != 1 or by not in rec.ds.coords:
        notes.append("structure prediction skipped: it covers context-set pathways (a `within` coord) of "
                     "one-hidden-layer networks (one recorded site)")
        return None
    if len(np.unique(np.asarray(rec.ds[by].values))) > DEFAULT_MAX_EXHAUSTIVE:
        notes.append(f"structure prediction skipped: more than {DEFAULT_MAX_EXHAUSTIVE} contexts (call "
                     "rp.predict_structure, which grows the sets greedily there)")
        return None
    kw = dict(training.init)
    try:
        pred = predict_structure(X, Y, context=np.asarray(rec.ds[by].values),
                                 within=np.asarray(rec.ds[pw.within].values), lr=training.lr,
                                 epochs=training.epochs, **kw)
    except ValueInputError as exc:
        if not kw:
            raise
        notes.append(f"structure prediction: {' '.join(str(exc).split())}; the default initial state is used")
        pred = predict_structure(X, Y, context=np.asarray(rec.ds[by].values),
                                 within=np.asarray(rec.ds[pw.within].values), lr=training.lr,
                                 epochs=training.epochs)
    return structure_table(pred, pw)


# ----------------------------------------------------------------------------- helpers
def _params(rec: Recording, pw: Any, imp: xr.DataArray, reln: ReLN | None, *, by: str, within: str | None,
            title: str | None, units: str, lr: float, null: int | None) -> dict[str, Any]:
    """How the analysis was run (:attr:`Analysis.params`)."""
    attrs = rec.ds.attrs
    return {
        "by": by,
        "within": within,
        "importance": imp.attrs["method"],
        "pathway_method": pw.method,
        "per_site": bool(pw.params.get("per_site", True)),
        "null_shuffles": int(null or 0),
        "title": title if title is not None else default_title(str(attrs.get("model_class", "")), by, within,
                                                               len(site_attr(rec.ds, "sites"))),
        "model_class": str(attrs.get("model_class", "")),
        "sites": [str(s) for s in site_attr(rec.ds, "sites")],
        "units": str(attrs.get("units", units)),
        "samples": str(attrs.get("samples", "input")),
        "n_samples": rec.n_samples,
        "n_units": rec.n_units,
        "lr": lr,
        "epochs": None if reln is None else int(reln.epochs_),
    }


@contextlib.contextmanager
def _noted(notes: list[str]) -> Iterator[None]:
    """Keep the warnings of the block in *notes* (once each, as one line) and let them through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        text = " ".join(str(w.message).split())
        if text not in notes:
            notes.append(text)


def _as_tensor(inputs: Any) -> torch.Tensor | None:
    if isinstance(inputs, torch.Tensor):
        return inputs
    if isinstance(inputs, np.ndarray) and inputs.dtype != object:
        return torch.from_numpy(inputs)
    return None
