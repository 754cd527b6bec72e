"""Measure gating structure while a network trains: :class:`TrainingMonitor`.

Every ``every`` steps the monitor records the gates (and post-ReLU values) of a fixed probe
set, the unit importance at that point of training and the training loss. Snapshots share
one layout and stack along a ``step`` dim; with ``store=`` they are appended to a zarr store
(gates bit-packed) as they are taken, so a long run keeps nothing in memory and an
interrupted one resumes where its store ends.

>>> import relu_probe as rp
>>> X, Y, coords = rp.tasks.contextual_task(3)
>>> model = rp.tasks.paper_network(3)
>>> mon = rp.TrainingMonitor(model, X, coords=coords, every=500, by="context", within="object")
>>> _ = rp.tasks.train_full_batch(model, X, Y, epochs=1001, callback=mon.update)
>>> mon.steps
[0, 500, 1000]

Given the training's learning rate (``lr=``) the monitor can also set the structure predicted
from the data and its step-0 copy of the model against the structure measured at every
snapshot (:meth:`TrainingMonitor.structure_over_time`), and :func:`relu_probe.analyze` takes
its ``lr``, ``epochs`` and initial model.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from ._util.arrays import to_numpy
from ._util.checks import check_choice, check_int, check_real
from ._util.progress import progress_bar
from .data.monitor_store import MonitorStore
from .data.schema import TOKEN_COORDS, check_coords, context_set_label
from .errors import CoordError, InputError, ReluProbeWarning, StoreMismatchError, ValueInputError
from .pathways.find import find_pathways
from .pathways.importance import default_importance_method, unit_importance
from .recording.fingerprint import fingerprint_of
from .recording.inputs import iter_batches
from .recording.model import model_float_tensor, unwrap_model
from .recording.recorder import record
from .recording.sites import SiteSelector
from .recording.tokens import SAMPLE_MODES
from .reln.convention import training_loss_factor
from .reln.init import one_hidden_layer
from .reln.predict import predict_structure
from .scoring.table import scores as all_scores

__all__ = ["TrainingMonitor", "GATE_STABILITY_TOLERANCE"]

#: Default tolerance of :meth:`TrainingMonitor.gate_stability`: a site's gating counts as fixed
#: once its flips between snapshots stay below 5 % of the flips a reshuffled gating of the
#: same sparsity would show (the reason is in that method's docstring).
GATE_STABILITY_TOLERANCE = 0.05


class TrainingMonitor:
    """Snapshot gates, importance and loss on a probe set every ``every`` training steps.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (recorded in eval mode without autograd at each snapshot;
        its train mode and grad flags are restored right after).
    probe_inputs : Tensor, array or iterable of batches
        A fixed probe set, recorded at every snapshot (see :func:`relu_probe.record`).
    coords : mapping, optional
        Per-sample labels of the probe set (e.g. ``context``, ``object``).
    every : int, default=100
        Snapshot when ``step % every == 0`` (:meth:`update`); :meth:`snapshot` forces one.
    store : path, optional
        Append snapshots to this zarr store instead of keeping them in memory. An existing
        monitor store is continued (steps already stored are skipped; the probe inputs and
        coords must be the ones it was started with), unless ``overwrite=True`` (which
        replaces only a relu_probe store). Each snapshot is appended atomically: a process
        killed during an append leaves the store with its earlier snapshots, and continuing
        it gives the same store as an uninterrupted run. The store is locked against other
        processes until :meth:`close` (or the process's end).
    by, within : str, optional
        Default coords for :meth:`scores` and :meth:`pathways_over_time`. They are checked
        here, before training: each must be a key of ``coords``, and with both every
        (by, within) combination needs a probe sample (the mixed-selectivity ANOVA of
        :meth:`scores` needs a complete design) — an incomplete design raises
        :class:`~relu_probe.errors.CoordError` now, not after training.
    sites, values, units, samples, batch_size, input_key :
        As in :func:`relu_probe.record`; ``values`` defaults to True (pathway masses and
        mixed selectivity use the activations). With ``samples="position"`` every
        (probe input, position) is a sample and ``coords`` are per probe input.
    importance : {"readout", "activity"}, default="readout"
        Unit importance stored at each snapshot; ``"readout"`` falls back to
        ``"activity"`` for models whose sites have no Linear/Conv readout.
    lr, epochs : optional
        The training loop's learning rate and number of epochs, for the predictions
        (:meth:`structure_over_time`, :func:`relu_probe.analyze` ``monitor=``).
    keep_initial : bool, default=True
        Keep a copy of the model as it is at the step-0 snapshot (:attr:`initial_model`), from
        which the predictions take the initial state (one extra copy of the model in memory).

    Attributes
    ----------
    steps : list of int
        The steps snapshotted so far (including those found in a continued store).
    last_step : int or None
        The largest step passed to :meth:`update` or :meth:`snapshot` so far (snapshotted or
        not; at least the last stored step of a continued store): the number of training
        steps is ``last_step + 1`` when :meth:`update` is called at every step.
    initial_model : torch.nn.Module or None
        A copy of the model at the step-0 snapshot taken by this monitor (None before, when
        ``keep_initial=False``, or when a continued store already held step 0).
    """

    def __init__(
        self,
        model: nn.Module,
        probe_inputs: Any,
        *,
        coords: Mapping[str, Any] | None = None,
        every: int = 100,
        store: str | os.PathLike | None = None,
        overwrite: bool = False,
        by: str | None = None,
        within: str | None = None,
        sites: SiteSelector = None,
        values: bool = True,
        units: str = "element",
        samples: str = "input",
        importance: str = "readout",
        batch_size: int | None = None,
        input_key: str | None = None,
        lr: float | None = None,
        epochs: int | None = None,
        keep_initial: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.probe_inputs = probe_inputs
        self.coords = coords
        self.every = check_int("every", every, minimum=1)
        self.store = None if store is None else Path(store)
        self.by, self.within = by, within
        check_choice("samples", samples, SAMPLE_MODES)
        # factors the recording adds (tokens as samples): accepted without a design check (a token
        # seen under only some contexts is left out of the pathways with a warning, as there)
        recorded = [n for n in (by, within) if n in TOKEN_COORDS and n not in (coords or {})] \
            if samples == "position" else []
        _check_design(coords, by, within, recorded=recorded)
        self.record_kwargs = dict(sites=sites, values=values, units=units, samples=samples, batch_size=batch_size,
                                  input_key=input_key, progress=False)
        if importance not in ("readout", "activity"):
            raise ValueInputError(f"`importance` must be 'readout' or 'activity'; got {importance!r}.")
        self.importance = importance
        self.lr = None if lr is None else check_real("lr", lr, minimum=0.0, strict=True)
        self.epochs = None if epochs is None else check_int("epochs", epochs, minimum=1)
        self.keep_initial = bool(keep_initial)
        self.initial_model: nn.Module | None = None
        self._snapshots: list[xr.Dataset] = []
        self.steps: list[int] = []
        self._store: MonitorStore | None = None
        self._fingerprint = ""
        if self.store is not None:
            self._fingerprint, n_probe = self._probe_fingerprint()
            checked = check_coords(coords, n_probe)
            self._store = MonitorStore(self.store, overwrite=overwrite, every=self.every, importance=importance)
            try:
                self._store.check_probe(self._fingerprint, checked, per_input=samples == "position")
            except BaseException:
                self._store.close()
                raise
            self.steps = list(self._store.steps)
        #: steps found in a continued store, not yet compared with this run (:meth:`_check_same_run`)
        self._continued_steps: set[int] = set(self.steps)
        self.last_step: int | None = max(self.steps) if self.steps else None

    def _probe_fingerprint(self) -> tuple[str, int]:
        """Fingerprint of the probe set (:mod:`relu_probe.recording.fingerprint`) and its size."""
        fingerprint, n = fingerprint_of(iter_batches(
            self.probe_inputs, model=unwrap_model(self.model), batch_size=self.record_kwargs["batch_size"],
            input_key=self.record_kwargs["input_key"]))
        return fingerprint.tobytes().hex(), n

    # ------------------------------------------------------------------ the store's lock
    def close(self) -> None:
        """Release the store's writer lock (snapshots on disk stay readable; a new monitor
        continues the store). Also released when the process exits or is killed."""
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> TrainingMonitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ taking snapshots
    def update(self, step: int, loss: float | None = None) -> bool:
        """Call once per training step; snapshots when ``step % every == 0``.

        Call it before the optimizer's step, with that step's loss: the snapshot then shows
        the model the loss was computed on, and the step-0 copy (:attr:`initial_model`) is
        the untrained network (:func:`relu_probe.tasks.train_full_batch` does so).

        Returns whether a snapshot was taken. Steps already snapshotted (e.g. found in a
        continued store) are skipped; the first such step of a continued store is compared
        with the store (the probe's gates must be the stored ones), so that another run is
        refused rather than merged.
        """
        step = check_int("step", step, minimum=0)
        self.last_step = step if self.last_step is None else max(self.last_step, step)
        if step % self.every:
            return False
        return self.snapshot(step, loss)

    def snapshot(self, step: int, loss: float | None = None) -> bool:
        """Record the probe set now, labelled *step* (skipped if that step exists)."""
        step = check_int("step", step, minimum=0)
        self.last_step = step if self.last_step is None else max(self.last_step, step)
        if step in self.steps:
            if step in self._continued_steps:
                self._check_same_run(step)
            return False
        if self.steps and step < self.steps[-1]:
            raise ValueInputError(
                f"`step` must increase between snapshots: got {step} after {self.steps[-1]}."
            )
        if step == 0 and self.keep_initial and self.initial_model is None:
            self.initial_model = copy.deepcopy(unwrap_model(self.model))
        ds = record(self.model, self.probe_inputs, coords=self.coords, **self.record_kwargs)
        ds["importance"] = self._importance(ds)
        loss_value = np.nan if loss is None else float(loss)
        ds = ds.expand_dims(step=[step])
        ds["loss"] = ("step", [loss_value])
        ds["importance"] = ds["importance"].astype(np.float32)
        if self._store is not None:
            self._store.append(ds, fingerprint=self._fingerprint)
        else:
            self._snapshots.append(ds)
        self.steps.append(step)
        return True

    def _check_same_run(self, step: int) -> None:
        """The first snapshot step this run reaches that a continued store already holds: the
        probe's gates now must be the stored ones, or the store holds another run (a training
        restarted from scratch would otherwise be merged, unnoticed, with the old run's later
        snapshots). Checked once per monitor."""
        self._continued_steps = set()
        stored = self.to_dataset().sel(step=step)
        now = record(self.model, self.probe_inputs, coords=self.coords, **self.record_kwargs)
        name = "gate" if "gate" in now else "gate_rate"
        differ = float(np.mean(np.asarray(stored[name].values) != np.asarray(now[name].values)))
        if differ > 0:
            raise StoreMismatchError(
                f"`store` {str(self.store)!r} already holds step {step}, and this run's gates at step {step} differ from "
                f"the stored ones in {differ:.2%} of (sample, unit) entries: the store holds another training run "
                "(a run restarted from scratch, another seed or model), and its later snapshots would be mixed with "
                "this run's. Record this run into a new store; to continue the stored run, resume training from its "
                f"own checkpoint (a nondeterministic replay also differs: then update only steps after {self.steps[-1]})."
            )

    def losses(self) -> pd.Series:
        """The training loss passed to :meth:`update` / :meth:`snapshot` at each snapshot,
        indexed by step (NaN where none was given); read from the store when one is used."""
        if self._store is not None:
            values = self._store.losses()
        else:
            values = np.array([float(ds["loss"].values[0]) for ds in self._snapshots], dtype=np.float64)
        return pd.Series(values, index=pd.Index(list(self.steps), name="step"), name="loss")

    def _importance(self, ds: xr.Dataset) -> xr.DataArray:
        method = self.importance
        if method == "readout":
            method = default_importance_method(self.model, ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-off gates at initialisation are expected
            imp = unit_importance(self.model, ds, method=method)
        return xr.DataArray(imp.values, dims=("unit",), attrs={"method": method})

    # ------------------------------------------------------------------ results
    def to_dataset(self) -> xr.Dataset:
        """All snapshots: ``gate`` (step, sample, unit) (+ ``activation``), ``importance``
        (step, unit) and ``loss`` (step); dask-backed when a store is used."""
        if not self.steps:
            raise ValueInputError("no snapshot yet: call `update(step)` during training first.")
        if self.store is not None:
            from .data.store import load

            return load(self.store)
        return xr.concat(self._snapshots, dim="step", data_vars="minimal", coords="minimal",
                         compat="override", join="override")

    def scores(self, by: str | None = None, within: str | None = None, *, literature: bool = False,
               progress: bool | None = None) -> pd.DataFrame:
        """:func:`relu_probe.scores` at every snapshot: a DataFrame indexed by ``step`` (by
        ``(step, site)`` when several sites are recorded: pathways are found per site).

        Each snapshot's pathways are found with its own importance; ``loss`` is a column too.
        """
        by, within = self._factors(by, within)
        ds = self.to_dataset()
        rows = []
        steps = list(ds["step"].values)
        seen = _SnapshotWarnings()
        for step in progress_bar(steps, enabled=progress, desc="scores"):
            snap = ds.sel(step=step).load()
            with seen.at(int(step)):
                s = all_scores(snap.drop_vars(["importance", "loss"]), by=by, within=within,
                               importance=snap["importance"], literature=literature)
            loss = float(snap["loss"])
            if isinstance(s, pd.DataFrame):
                rows.extend({"step": int(step), "site": str(site), **row.to_dict(), "loss": loss}
                            for site, row in s.iterrows())
            else:
                rows.append({"step": int(step), **s.to_dict(), "loss": loss})
        seen.emit(len(steps))
        frame = pd.DataFrame(rows)
        return frame.set_index(["step", "site"] if "site" in frame.columns else "step")

    def pathways_over_time(self, by: str | None = None, within: str | None = None, *,
                           method: str = "auto", progress: bool | None = None) -> xr.DataArray:
        """Pathway masses over training: DataArray (step, pathway).

        Pathways are identified across snapshots by their site and context set: coords
        ``site``, ``contexts`` (tuple of context values per pathway) and ``label`` (e.g.
        ``"{0,1}"``); a pathway absent at a step has mass 0 there. Masses sum to 1 per site.
        """
        by, within = self._factors(by, within)
        ds = self.to_dataset()
        per_step: list[dict[tuple, float]] = []
        site_order: list[str] = []
        seen = _SnapshotWarnings()
        for step in progress_bar(list(ds["step"].values), enabled=progress, desc="pathways"):
            snap = ds.sel(step=step).load()
            with seen.at(int(step)):
                pw = find_pathways(snap.drop_vars(["importance", "loss"]), by, within,
                                   importance=snap["importance"], method=method)
            site_order = site_order or pw.sites
            per_step.append({(str(site), tuple(c)): float(m) for site, c, m in
                             zip(pw.mass["site"].values, pw.mass["contexts"].values, pw.mass.values)})
        seen.emit(len(per_step))
        rank = {site: i for i, site in enumerate(site_order)}
        keys = sorted({k for masses in per_step for k in masses},
                      key=lambda k: (rank.get(k[0], len(rank)), -len(k[1]), k[1]))
        values = np.array([[masses.get(k, 0.0) for k in keys] for masses in per_step])
        contexts = np.empty(len(keys), dtype=object)
        contexts[:] = [k[1] for k in keys]
        labels = [context_set_label(k[1]) for k in keys]
        return xr.DataArray(
            values.reshape(len(per_step), len(keys)), dims=("step", "pathway"),
            coords={"step": ds["step"].values, "pathway": np.arange(len(keys)),
                    "site": ("pathway", np.array([k[0] for k in keys], dtype=object)),
                    "contexts": ("pathway", contexts),
                    "label": ("pathway", labels), "n_contexts": ("pathway", [len(k[1]) for k in keys])},
            name="mass",
        )

    def structure_over_time(self, Y: Any, *, X: Any = None, coords: Mapping[str, Any] | None = None,
                            lr: float | None = None, epochs: int | None = None,
                            by: str | None = None, within: str | None = None,
                            progress: bool | None = None) -> xr.Dataset:
        """Predicted against measured pathway structure at every snapshot.

        The prediction is :func:`relu_probe.predict_structure` from the data and the step-0
        copy of the model (:attr:`initial_model`; the documented default initial state without
        one), for full-batch gradient descent on the summed loss ``½ Σ ‖y − f(x)‖²`` at ``c · lr``, ``c``
        the convention of the losses passed to :meth:`update` (1 for the summed loss, ``2/(P m)`` for
        a mean-reduced one such as torch's ``MSELoss()``: :func:`relu_probe.reln.dynamics.loss_convention`;
        losses that match neither, or none given, warn and take ``c = 1``); its mass at epoch
        ``t`` is :meth:`relu_probe.PredictedStructure.mass_over_time`
        (``m_S(t) ∝ σ_1(M_S(t)) ρ_S``). The measured masses are :meth:`pathways_over_time`.

        Parameters
        ----------
        Y : array-like (sample, output)
            Targets of the probe samples (the training set of a full-batch run).
        X : array-like, optional
            Inputs; default the probe inputs (a tensor or array).
        coords : mapping, optional
            The ``by`` and ``within`` labels of the rows of ``X`` / ``Y``; default the probe
            set's coords, which fit only when ``X`` is the probe set (a monitor that probes a
            subset of the training set needs the training set's labels here).
        lr, epochs : optional
            Default: the monitor's (``epochs`` also at least the last step + 1).
        by, within : str, optional
            Coords of the probe set (default: the monitor's).

        Returns
        -------
        xarray.Dataset
            ``predicted`` and ``measured`` (step, pathway) masses over the union of context
            sets (coords ``contexts``, ``label``, ``n_contexts``); ``tv`` (step): their total
            variation distance ``½ Σ_S |m^pred_S − m^meas_S|`` (NaN while no predicted pathway has
            grown, e.g. at step 0). Attrs: ``init`` (the initial-state source), ``lr`` (the rate on
            the summed loss the prediction used), ``lr_given``, ``loss_factor`` (``c``) and
            ``notes`` (how the convention was read).

        Raises
        ------
        ValueInputError
            When the monitor's model is not a one-hidden-layer ReLU MLP (the setting the
            prediction is made for), or ``c · lr`` is at or above the ReLN's largest stable rate.
        """
        by, within = self._factors(by, within)
        if within is None:
            raise ValueInputError("`within` is needed: the structure is compared over context sets of items.")
        lr = self.lr if lr is None else check_real("lr", lr, minimum=0.0, strict=True)
        if lr is None:
            raise ValueInputError("`lr` is needed (the training loop's learning rate; pass it here or to "
                                  "TrainingMonitor(lr=...)).")
        if not self.steps:
            raise ValueInputError("no snapshot yet: call `update(step)` during training first.")
        last = int(max(self.steps[-1], self.last_step or 0)) + 1
        epochs = max(self.epochs or 0, last) if epochs is None else check_int("epochs", epochs, minimum=last)
        X = self.probe_inputs if X is None else X
        n_rows = to_numpy(Y).shape[0]
        network = unwrap_model(self.initial_model if self.initial_model is not None else self.model)
        try:
            one_hidden_layer(network, allow_biases=True)
        except (InputError, ValueInputError) as exc:
            raise ValueInputError(
                "structure_over_time predicts the structure of a one-hidden-layer ReLU MLP (Linear → ReLU → Linear, "
                f"the setting of Jarvis et al., arXiv 2503.06181), but the monitor's model is not one: it has "
                f"{str(exc).split('; got ', 1)[-1]} The measured structure over training is pathways_over_time()."
            ) from None
        if coords is None:
            n_probe = len(np.asarray(next(iter(self.coords.values())))) if self.coords else None
            if n_probe is not None and n_probe != n_rows:
                raise ValueInputError(
                    f"`Y` has {n_rows} rows but the monitor's probe set has {n_probe} samples: the prediction is "
                    "made on the training data (X, Y), so pass `coords=` with their labels (the probe set's coords "
                    "label only the probe samples)."
                )
            coords = self.coords
        coords = check_coords(coords, n_rows)
        if by not in coords or within not in coords:
            raise ValueInputError(f"the coords of X / Y need {by!r} and {within!r}; got {sorted(coords)}.")
        notes: list[str] = []
        X_t = model_float_tensor(unwrap_model(self.model), torch.as_tensor(to_numpy(X)))
        factor, confirmed = training_loss_factor(self.model, self, X_t, Y, n_rows, lr=lr, epochs=epochs, notes=notes,
                                                 initial=self.initial_model)
        if not confirmed:
            warnings.warn(f"structure_over_time: {notes[-1]}.", ReluProbeWarning, stacklevel=2)
        pred = predict_structure(to_numpy(X), to_numpy(Y), context=np.asarray(coords[by]),
                                 within=np.asarray(coords[within]), network=self.initial_model, lr=lr * factor,
                                 epochs=epochs, sv_stride=self.every)
        measured = self.pathways_over_time(by, within, progress=progress)
        predicted = pred.mass_over_time()
        keys = sorted({tuple(c) for c in measured["contexts"].values} | {tuple(c) for c in pred.contexts},
                      key=lambda k: (-len(k), k))
        steps = measured["step"].values
        meas = {tuple(c): measured.values[:, i] for i, c in enumerate(measured["contexts"].values)}
        at = predicted.sel(sv_epoch=steps, method="nearest")
        pr = {tuple(c): at.values[i] for i, c in enumerate(predicted["contexts"].values)}
        zeros = np.zeros(len(steps))
        P = np.stack([pr.get(k, zeros) for k in keys], axis=1)
        M = np.stack([meas.get(k, zeros) for k in keys], axis=1)
        grown = P.sum(axis=1) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            Pn = P / P.sum(axis=1, keepdims=True)
            Mn = M / M.sum(axis=1, keepdims=True)
        tv = np.where(grown, 0.5 * np.abs(Pn - Mn).sum(axis=1), np.nan)
        contexts = np.empty(len(keys), dtype=object)
        contexts[:] = keys
        pcoords = {"step": steps, "pathway": np.arange(len(keys)), "contexts": ("pathway", contexts),
                   "label": ("pathway", [context_set_label(k) for k in keys]),
                   "n_contexts": ("pathway", [len(k) for k in keys])}
        return xr.Dataset(
            {"predicted": (("step", "pathway"), np.where(grown[:, None], Pn, 0.0)),
             "measured": (("step", "pathway"), M), "tv": ("step", tv)},
            coords=pcoords,
            attrs={"init": str(pred.dynamics.attrs.get("init", "")), "lr": float(lr * factor), "lr_given": float(lr),
                   "loss_factor": float(factor), "notes": notes},
        )
    def gate_stability(self, tolerance: float = GATE_STABILITY_TOLERANCE) -> pd.DataFrame:
        r"""How many probe gates change from one snapshot to the next, per site.

        The ReLN models a ReLU network by a gated linear network with *fixed* gates; this
        measures directly when that holds. For consecutive snapshots :math:`t_{k-1}, t_k` and
        a site with units :math:`U` over the probe samples :math:`X`,

        .. math:: f_k = \frac{1}{|X|\,|U|} \sum_{x \in X} \sum_{u \in U}
                  [\, g_u(x, t_k) \neq g_u(x, t_{k-1}) \,]

        is the fraction of the site's probe gates that flipped (``flip_fraction``), and

        .. math:: c_k = \frac{1}{|U|} \sum_{u \in U} p_u(t_{k-1}) (1 - p_u(t_k))
                  + p_u(t_k) (1 - p_u(t_{k-1}))

        with :math:`p_u(t)` the fraction of probe samples on which unit :math:`u` is on, the
        flip fraction expected if each unit's gates at the two snapshots were drawn
        independently with those rates (``chance_flip_fraction``): the flips of a gating
        reshuffled over the probe set, the scale against which "few flips" is judged.

        A site is *stable from* snapshot :math:`t_j` when :math:`f_k \le \text{tolerance}
        \cdot c_k` for every later pair (:math:`k > j`): after :math:`t_j` its gates stay
        fixed up to that fraction of the chance level. ``stable`` marks the rows from which
        that holds; ``DataFrame.attrs["stable_step"]`` maps each site to its first stable
        step (None while the last snapshot still changes too much; :meth:`stable_steps`
        returns the same as a Series).

        Parameters
        ----------
        tolerance : float, default=0.05
            Fraction of the chance flip fraction below which a site counts as stable. The
            default, 5 %, calls a site's gating fixed once it changes 20 × less than a
            reshuffled gating of the same sparsity would. The threshold is relative so that
            it means the same for dense and sparse sites (a site whose units are on 1 % of
            the time flips at most ≈ 2 % of its gates even when re-drawn at random, so any
            absolute threshold above that would call it stable from the start). The flips
            also grow with the snapshot interval ``every``: compare monitors with the same one.

        Returns
        -------
        pandas.DataFrame
            One row per (snapshot after the first, site), sites in recording order: columns
            ``step``, ``site``, ``flip_fraction``, ``chance_flip_fraction``, ``stable``; attrs
            ``tolerance`` and ``stable_step``. Reads one snapshot at a time (a store-backed
            monitor never loads more than two).

        Raises
        ------
        ValueInputError
            Fewer than two snapshots, or channel units (``gate_rate`` is a fraction of
            positions, not a gate that flips: record ``units="element"`` or
            ``samples="position"``).
        """
        tolerance = check_real("tolerance", tolerance, minimum=0.0)
        ds = self.to_dataset()
        if "gate" not in ds:
            raise ValueInputError(
                "gate_stability() needs binary gates, but this monitor records units='channel' (gate_rate, a "
                "fraction of positions); monitor with units='element' or samples='position'."
            )
        steps = [int(s) for s in ds["step"].values]
        if len(steps) < 2:
            raise ValueInputError(
                f"gate_stability() compares consecutive snapshots and needs at least two; the monitor has {len(steps)}."
            )
        gaps = sorted(set(np.diff(steps).tolist()))
        if len(gaps) > 1:
            warnings.warn(
                f"gate_stability(): the snapshots are {', '.join(map(str, gaps))} steps apart (e.g. an extra snapshot() "
                "between update() snapshots), and the flips between two snapshots grow with the steps between them: "
                "the flip fractions of different intervals are not comparable, nor is the stable step they give.",
                ReluProbeWarning, stacklevel=2,
            )
        sites = list(dict.fromkeys(ds["site"].values.tolist()))
        site_codes = pd.Categorical(ds["site"].values, categories=sites).codes
        n_units = np.bincount(site_codes, minlength=len(sites))
        rows = []
        previous = np.asarray(ds["gate"].isel(step=0).values)
        for k in range(1, len(steps)):
            current = np.asarray(ds["gate"].isel(step=k).values)
            flips = np.bincount(site_codes, weights=np.count_nonzero(current != previous, axis=0),
                                minlength=len(sites))
            p_before, p_now = previous.mean(0), current.mean(0)
            chance_unit = p_before * (1 - p_now) + p_now * (1 - p_before)
            chance = np.bincount(site_codes, weights=chance_unit, minlength=len(sites)) / n_units
            flip_fraction = flips / (n_units * current.shape[0])
            rows += [{"step": steps[k], "site": site, "flip_fraction": float(flip_fraction[i]),
                      "chance_flip_fraction": float(chance[i])} for i, site in enumerate(sites)]
            previous = current
        frame = pd.DataFrame(rows, columns=["step", "site", "flip_fraction", "chance_flip_fraction"])
        within = frame["flip_fraction"] <= tolerance * frame["chance_flip_fraction"]
        # stable from a row on: that row and every later one of its site are within tolerance
        frame["stable"] = within.groupby(frame["site"], sort=False).transform(
            lambda w: w[::-1].cummin()[::-1]).astype(bool)
        stable_step: dict[str, int | None] = {}
        for site in sites:
            rows_of = frame[frame["site"] == site]
            if not rows_of["stable"].iloc[-1]:
                stable_step[site] = None
                continue
            first = rows_of.index[rows_of["stable"]][0]
            position = list(rows_of.index).index(first)
            # within tolerance from the pair (t_{j}, t_{j+1}) on: stable after t_j
            stable_step[site] = steps[position]
        frame.attrs = {"tolerance": tolerance, "stable_step": stable_step}
        return frame

    def stable_steps(self, tolerance: float = GATE_STABILITY_TOLERANCE) -> pd.Series:
        """The step from which each site's gates stay fixed within *tolerance*
        (:meth:`gate_stability`): a Series indexed by site, ``<NA>`` for a site whose last
        snapshots still change more."""
        stable = self.gate_stability(tolerance).attrs["stable_step"]
        return pd.Series(list(stable.values()), index=pd.Index(list(stable), name="site"), dtype="Int64",
                         name="stable_step")

    def _factors(self, by: str | None, within: str | None) -> tuple[str, str | None]:
        by = by if by is not None else self.by
        within = within if within is not None else self.within
        if by is None:
            raise ValueInputError("`by` is needed (pass it here or to TrainingMonitor(by=...)).")
        return by, within


class _SnapshotWarnings:
    """The warnings of the per-snapshot analyses, given once per kind: the same message at
    every snapshot is one warning, not one per step, and so is one whose figures change from
    step to step (the first one is shown), each with the snapshots it came from."""

    def __init__(self) -> None:
        #: (category, message with its figures masked) -> [(step, message)]
        self.kinds: dict[tuple[type, str], list[tuple[int, str]]] = {}

    @contextlib.contextmanager
    def at(self, step: int) -> Iterator[None]:
        """Collect the warnings of the block, raised at snapshot *step*."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            message = str(w.message)
            self.kinds.setdefault((w.category, re.sub(r"\d+(?:\.\d+)?", "#", message)), []).append((step, message))

    def emit(self, n_steps: int) -> None:
        """Warn once per kind collected, out of *n_steps* snapshots."""
        for (category, _), hits in self.kinds.items():
            steps = sorted({step for step, _ in hits})
            where = "every snapshot" if len(steps) == n_steps else \
                f"{len(steps)} of {n_steps} snapshots (steps {', '.join(map(str, steps[:5]))}" \
                f"{', …' if len(steps) > 5 else ''})"
            first_step, message = min(hits)
            varies = len({m for _, m in hits}) > 1
            tail = f" (figures of step {first_step}; they vary by snapshot)" if varies else ""
            warnings.warn(f"at {where}: {message}{tail}", category, stacklevel=3)


def _check_design(coords: Mapping[str, Any] | None, by: str | None, within: str | None, *,
                  recorded: Sequence[str] = ()) -> None:
    """Raise :class:`CoordError` now for ``by`` / ``within`` the probe coords cannot serve:
    a name that is not a coord, or an incomplete (by, within) design. Names in *recorded*
    (coords the recording adds, e.g. ``token`` with ``samples="position"``) are accepted; a pair
    that uses one is not checked (its design is known only once recorded, and a natural one is
    incomplete: a task's own tokens appear only under that task)."""
    names = [n for n in (by, within) if n is not None]
    if not names:
        return
    available = sorted(map(str, coords)) if isinstance(coords, Mapping) else []
    for arg, name in (("by", by), ("within", within)):
        if name is not None and name not in available and name not in recorded:
            extra = f"; {name!r} is a coord of samples='position' recordings" if name in TOKEN_COORDS else ""
            raise CoordError(
                f"`{arg}`={name!r} is not one of the probe set's coords ({available or 'none: pass coords='}"
                f"{extra})."
            )
    if any(n in recorded for n in names):
        if within is not None and within == by:
            raise CoordError(f"`within` must differ from `by`; both are {by!r}.")
        return
    for arg, name in (("by", by), ("within", within)):
        if name is None:
            continue
        labels = np.asarray(coords[name], dtype=object)
        missing = np.flatnonzero(pd.isna(labels))
        if missing.size:
            first = int(missing[0])
            raise InputError(
                f"`{arg}`={name!r}: the coord must label every sample, but sample {first} (position {first}) has "
                f"{labels[first]!r}; {missing.size} of {labels.size} probe samples have no label."
            )
    if within is None:
        return
    if within == by:
        raise CoordError(f"`within` must differ from `by`; both are {by!r}.")
    a, b = np.asarray(coords[by]), np.asarray(coords[within])
    if a.shape != b.shape:
        raise CoordError(f"coords {by!r} and {within!r} must label the same samples; got {a.shape} and {b.shape}.")
    pairs = set(zip(a.tolist(), b.tolist()))
    n_a, n_b = len(set(a.tolist())), len(set(b.tolist()))
    missing = n_a * n_b - len(pairs)
    if missing:
        raise CoordError(
            f"the probe set's ({by}, {within}) design is incomplete: {missing} of {n_a * n_b} combinations have no "
            f"sample, and the monitor's scores (the mixed-selectivity ANOVA) need every {within!r} under every "
            f"{by!r}. Give a probe set with the full design, or leave `within` unset."
        )
