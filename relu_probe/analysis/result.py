"""The result of :func:`relu_probe.analyze`: :class:`Analysis`, its views, its report and its
files."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._util.checks import check_int
from .._util.serial import dumps, loads
from .._version import __version__
from ..data import netcdf
from ..data.outputs import ANALYSIS, ANALYSIS_FORMAT, claim_output
from ..data.schema import context_set_label
from ..errors import InputError, NotFittedError, StoreError, ValueInputError, describe
from ..pathways.result import Pathways
from ..reln.reln import ReLN
from ..report.html import write_report

__all__ = ["FORMAT", "Analysis"]

#: Name and version of the on-disk layout written by :meth:`Analysis.save` (version 2: one
#: netCDF encoding for every file, :mod:`relu_probe.data.netcdf`; each part saved by its own
#: object).
FORMAT = {"name": ANALYSIS_FORMAT, "version": 2}


class Analysis:
    """Everything :func:`analyze` measured on one network.

    Attributes
    ----------
    dataset : xarray.Dataset
        The recording (``gate`` / ``gate_rate``, ``activation`` …, see :func:`relu_probe.record`).
    importance : xarray.DataArray (unit,)
        Unit importance used, summing to 1 (``attrs["method"]``).
    pathways : relu_probe.Pathways
    scores : pandas.Series or pandas.DataFrame
        :func:`relu_probe.scores` of the pathways and the recording: a Series for one site, a
        DataFrame indexed by ``site`` (one row per site) for several.
    null_scores : pandas.DataFrame or None
        :func:`relu_probe.null_scores`: every score (``score``) next to its null baseline
        (``null_mean``, ``null_std``, ``z``, ``percentile``) with the ``by`` labels shuffled
        across items; with a monitor that saw step 0 also ``init``, the score of the network
        at initialisation. Index the score names, or ``(site, score)``.
    profile : xarray.DataArray (unit, by)
        :math:`P(\\text{on}_u \\mid by)` (:func:`relu_probe.gating_profile`).
    selectivity : xarray.DataArray (unit,) or None
        Per-unit mixed-selectivity index (needs ``within``).
    attributions : xarray.DataArray (pathway, feature) or None
        Share of each input feature in each pathway's activity (captum integrated gradients).
    reln : relu_probe.ReLN or None
        The fitted ReLN (with targets).
    dynamics : xarray.Dataset or None
        ``loss_relu``, ``loss_reln``, ``loss_race``, ``loss_closed`` (epoch); ``sv_reln``,
        ``sv_race``, ``sv_closed`` (pathway, mode, sv_epoch): the loss curves and pathway
        singular values of the ReLU network (on the summed loss's scale), the simulated ReLN,
        its prediction (``attrs["race_method"]``: ``"exact"`` for the default exact
        dynamics) and the closed form, the mode-by-mode approximation (absent when it is the
        prediction). ``attrs["lr"]`` is the rate on the summed loss, ``attrs["comparable"]``
        whether the ReLU curve could be compared epoch by epoch.
    comparison : dict
        :func:`relu_probe.compare_dynamics` results against the ReLU curve: ``"reln"``,
        ``"race"`` (the prediction) and ``"closed"``; without a comparable ReLU curve,
        ``"race_vs_reln"`` and ``"closed_vs_reln"``.
    structure : xarray.Dataset or None
        The structure predicted from the data and the initial state alone
        (:func:`relu_probe.predict_structure`) against the measured pathway masses:
        ``predicted``, ``measured``, ``difference`` over ``context_set`` (coord ``label``),
        ``attrs["tv"]`` the total-variation distance
        (:func:`relu_probe.reln.predict.structure_table`).
    monitor_structure : xarray.Dataset or None
        Predicted against measured structure at every monitor snapshot
        (:meth:`relu_probe.TrainingMonitor.structure_over_time`): ``tv`` (step) …
    monitor_scores : pandas.DataFrame or None
        Scores over training steps (index ``step``, or ``(step, site)`` for several sites),
        from a training monitor.
    monitor_pathways : xarray.DataArray (step, pathway) or None
        Pathway masses over training steps, coord ``contexts``.
    monitor_stability : xarray.Dataset or None
        Gate stability over training (:meth:`relu_probe.TrainingMonitor.gate_stability`):
        ``flip_fraction`` and ``chance_flip_fraction`` (step, site), ``stable_step`` (site;
        NaN while a site's gates still change more than the tolerance); attr ``tolerance``.
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
        scores: pd.Series | pd.DataFrame,
        profile: xr.DataArray,
        null_scores: pd.DataFrame | None = None,
        selectivity: xr.DataArray | None = None,
        attributions: xr.DataArray | None = None,
        reln: Any = None,
        dynamics: xr.Dataset | None = None,
        comparison: Mapping[str, Any] | None = None,
        structure: xr.Dataset | None = None,
        monitor_scores: pd.DataFrame | None = None,
        monitor_pathways: xr.DataArray | None = None,
        monitor_structure: xr.Dataset | None = None,
        monitor_stability: xr.Dataset | None = None,
        params: Mapping[str, Any] | None = None,
        notes: Sequence[str] | None = None,
    ) -> None:
        self.dataset = dataset
        self.importance = importance
        self.pathways = pathways
        self.scores = scores
        self.null_scores = null_scores
        self.profile = profile
        self.selectivity = selectivity
        self.attributions = attributions
        self.reln = reln
        self.dynamics = dynamics
        self.comparison = dict(comparison or {})
        self.structure = structure
        self.monitor_scores = monitor_scores
        self.monitor_pathways = monitor_pathways
        self.monitor_structure = monitor_structure
        self.monitor_stability = monitor_stability
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
            rows.append({"site": str(row["site"]), "pathway": int(row["pathway"]), "contexts": list(row["contexts"]),
                         "n_units": int(row["n_units"]), "mass": float(row["mass"]),
                         "n_disagreeing": int(row["n_disagreeing"]),
                         "sites": {str(k): float(v) for k, v in row["sites"].items()}})
        if isinstance(self.scores, pd.DataFrame):
            score_table: dict[str, Any] = {str(site): {str(k): float(v) for k, v in row.items()}
                                           for site, row in self.scores.iterrows()}
        else:
            score_table = {str(k): float(v) for k, v in self.scores.items()}
        return {
            "params": dict(self.params),
            "scores": score_table,
            "null_scores": None if self.null_scores is None else _frame_to_json(self.null_scores),
            "pathways": rows,
            "comparison": self.comparison,
            **({} if self.structure is None else {"structure_tv": float(self.structure.attrs["tv"])}),
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
            + "; ".join(
                (f"{site}: " if len(self.pathways.sites) > 1 else "")
                + ", ".join(f"{context_set_label(c)} {m:.3f}" for c, m in zip(sub.contexts, sub.mass.values))
                for site, sub in ((site, self.pathways.sel(site)) for site in self.pathways.sites)
            ),
        ]
        if isinstance(self.scores, pd.DataFrame):
            lines += [f"  scores at {site}: " + ", ".join(f"{k}={v:.3g}" for k, v in row.items())
                      for site, row in self.scores.iterrows()]
        else:
            lines.append("  scores: " + ", ".join(f"{k}={v:.3g}" for k, v in self.scores.items()))
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
        if self.structure is not None:
            lines.append(f"  predicted structure vs measured: TV {float(self.structure.attrs['tv']):.3f}")
        if self.monitor_scores is not None:
            steps = self.monitor_scores.index.get_level_values("step").unique()
            lines.append(f"  monitor: {len(steps)} snapshots (steps {int(steps.min())}–{int(steps.max())})")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ monitor
    def attach_monitor(self, monitor: Any = None, *, scores: Any = None, pathways: Any = None,
                       structure: Any = None, stability: Any = None) -> Analysis:
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
        structure : xarray.Dataset, optional
            Predicted against measured structure over training (a ``tv`` variable over
            ``step``, as :meth:`relu_probe.TrainingMonitor.structure_over_time` returns).
        stability : pandas.DataFrame, optional
            Gate stability as :meth:`relu_probe.TrainingMonitor.gate_stability` returns it;
            overrides ``monitor``'s (taken from it when it has two snapshots or more and
            binary gates).

        Returns
        -------
        self
        """
        if monitor is not None:
            if scores is None and callable(getattr(monitor, "scores", None)):
                scores = monitor.scores()
            if pathways is None and callable(getattr(monitor, "pathways_over_time", None)):
                pathways = monitor.pathways_over_time()
            if stability is None and callable(getattr(monitor, "gate_stability", None)):
                try:
                    stability = monitor.gate_stability()
                except ValueInputError:  # one snapshot, or channel units: nothing to show
                    stability = None
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
            if self.monitor_scores.index.name is None and self.monitor_scores.index.nlevels == 1:
                self.monitor_scores.index.name = "step"
            self._add_init_baseline()
        if structure is not None:
            if not isinstance(structure, xr.Dataset) or "tv" not in structure or structure["tv"].dims != ("step",):
                raise InputError(
                    "`structure` must be an xarray.Dataset with a `tv` variable over `step` (from "
                    f"TrainingMonitor.structure_over_time), got {describe(structure)}."
                )
            self.monitor_structure = structure
        if pathways is not None:
            if not isinstance(pathways, xr.DataArray) or set(pathways.dims) != {"step", "pathway"}:
                raise InputError(
                    f"`pathways` must be an xarray.DataArray with dims (step, pathway), got {describe(pathways)}"
                    + (f" with dims {pathways.dims}." if isinstance(pathways, xr.DataArray) else ".")
                )
            self.monitor_pathways = pathways.transpose("step", "pathway")
        if stability is not None:
            self.monitor_stability = _stability_dataset(stability)
        return self

    def _add_init_baseline(self) -> None:
        """Column ``init`` of :attr:`null_scores`: each score of the network at initialisation
        (the monitor's step 0), where the monitor saw it."""
        frame, null = self.monitor_scores, self.null_scores
        if frame is None or null is None:
            return
        steps = frame.index.get_level_values(0)
        if 0 not in set(steps.tolist()):
            return
        first = frame[steps == 0]
        values = []
        for key in null.index:
            site, score = key if isinstance(key, tuple) else (None, key)
            row = first.xs(site, level=1) if site is not None and first.index.nlevels > 1 else first
            values.append(float(row[score].iloc[0]) if score in row.columns and len(row) else np.nan)
        self.null_scores = null.assign(init=values)

    # ------------------------------------------------------------------ report
    def to_html(self, path: str | os.PathLike, *, title: str | None = None, max_units: int = 40) -> Path:
        """Write the self-contained HTML report (see :mod:`relu_probe.report`); returns its path."""
        return write_report(self, path, title=title, max_units=max_units)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save to a directory: netCDF files plus ``summary.json``; :meth:`load` restores it exactly.

        Every part saves itself: ``recording.nc`` (:func:`relu_probe.io.to_netcdf`),
        ``pathways.nc`` (:meth:`relu_probe.Pathways.to_dataset`), ``reln.nc`` (with targets,
        :meth:`relu_probe.GDLN.to_netcdf`); ``units.nc`` (importance, profile, selectivity,
        attributions), ``dynamics.nc``, ``structure.nc`` (the predicted structure) and
        ``monitor.nc`` (with a monitor) hold the rest, one
        netCDF group per array (:func:`relu_probe.data.netcdf.write_groups`); ``summary.json``
        holds the format, params, scores, pathway table, comparison and notes — readable
        without relu_probe.

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
        netcdf.require_netcdf4("saving an analysis")
        path = Path(path)
        claim_output(path, kind=ANALYSIS, overwrite=overwrite, argument="path",
                     exists_hint="pass overwrite=True to replace it.")
        files = ["recording.nc", "pathways.nc", "units.nc"]
        netcdf.to_netcdf(self.dataset, path / "recording.nc")
        self.pathways.to_dataset().to_netcdf(path / "pathways.nc", engine="netcdf4")
        netcdf.write_groups(path / "units.nc", {"importance": self.importance, "profile": self.profile,
                                                "selectivity": self.selectivity, "attributions": self.attributions})
        if self.dynamics is not None:
            netcdf.write_groups(path / "dynamics.nc", {"dynamics": self.dynamics})
            files.append("dynamics.nc")
        if self.reln is not None:
            self.reln.to_netcdf(path / "reln.nc")
            files.append("reln.nc")
        if (self.monitor_scores is not None or self.monitor_pathways is not None
                or self.monitor_structure is not None or self.monitor_stability is not None):
            netcdf.write_groups(path / "monitor.nc", {"scores": _frame_to_dataset(self.monitor_scores),
                                                      "pathways": self.monitor_pathways,
                                                      "structure": self.monitor_structure,
                                                      "stability": self.monitor_stability})
            files.append("monitor.nc")
        if self.structure is not None:
            netcdf.write_groups(path / "structure.nc", {"structure": self.structure})
            files.append("structure.nc")
        summary = {
            "format": FORMAT["name"],
            "format_version": FORMAT["version"],
            "relu_probe_version": __version__,
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": files,
            "scores_index": [str(k) for k in (self.scores.columns if isinstance(self.scores, pd.DataFrame)
                                              else self.scores.index)],
            "scores_name": self.scores.name if isinstance(self.scores, pd.Series) else None,
            "scores_per_site": isinstance(self.scores, pd.DataFrame),
            **self.summary(),
        }
        (path / "summary.json").write_text(dumps(summary), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Analysis:
        """Read an analysis written by :meth:`save`."""
        path = Path(path)
        meta = _read_summary(path)
        files = set(meta.get("files", []))
        missing = [f for f in ("recording.nc", "pathways.nc", "units.nc") if not (path / f).is_file()]
        missing += [f for f in files if not (path / f).is_file()]
        if missing:
            raise StoreError(f"`path` {str(path)!r} is incomplete: missing {sorted(set(missing))}.")
        with xr.open_dataset(path / "pathways.nc", engine="netcdf4") as handle:
            pathways = Pathways.from_dataset(handle.load())
        units, _ = netcdf.read_groups(path / "units.nc")
        monitor = netcdf.read_groups(path / "monitor.nc")[0] if "monitor.nc" in files else {}
        order = meta.get("scores_index")
        if meta.get("scores_per_site"):
            scores: pd.Series | pd.DataFrame = pd.DataFrame.from_dict(meta["scores"], orient="index", dtype=np.float64)
            scores = scores[order] if order else scores
            scores.index.name = "site"
        else:
            scores = pd.Series(meta["scores"], name=meta.get("scores_name", "scores"), dtype=np.float64)
            scores = scores.reindex(order or list(scores.index))
        null = meta.get("null_scores")
        return cls(
            dataset=netcdf.open_netcdf(path / "recording.nc"),
            importance=units["importance"],
            pathways=pathways,
            scores=scores,
            null_scores=None if null is None else _frame_from_json(null),
            profile=units["profile"],
            selectivity=units.get("selectivity"),
            attributions=units.get("attributions"),
            reln=ReLN.from_netcdf(path / "reln.nc") if "reln.nc" in files else None,
            dynamics=netcdf.read_groups(path / "dynamics.nc")[0]["dynamics"] if "dynamics.nc" in files else None,
            comparison=meta.get("comparison") or {},
            structure=netcdf.read_groups(path / "structure.nc")[0]["structure"] if "structure.nc" in files else None,
            monitor_scores=_frame_from_dataset(monitor.get("scores")),
            monitor_pathways=monitor.get("pathways"),
            monitor_structure=monitor.get("structure"),
            monitor_stability=monitor.get("stability"),
            params=meta.get("params") or {},
            notes=meta.get("notes") or [],
        )


def _read_summary(path: Path) -> dict[str, Any]:
    """The ``summary.json`` of a saved analysis, checked to be one this version can read."""
    meta_file = path / "summary.json"
    if not path.is_dir() or not meta_file.is_file():
        raise StoreError(f"`path` {str(path)!r} is not a saved relu_probe analysis (no summary.json).")
    try:
        meta = loads(meta_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StoreError(f"`path` {str(path)!r}: summary.json is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT["name"]:
        raise StoreError(f"`path` {str(path)!r}: summary.json is not a relu_probe analysis summary.")
    version = int(meta.get("format_version", 0))
    if version > FORMAT["version"]:
        raise StoreError(
            f"`path` {str(path)!r} was written by a newer relu_probe (format version {version}); upgrade "
            "relu_probe to read it."
        )
    if version < FORMAT["version"]:
        raise StoreError(
            f"`path` {str(path)!r} was written by an older relu_probe (format version {version}, before "
            f"relu_probe used one netCDF encoding); this version reads format {FORMAT['version']}: run the "
            "analysis again (rp.analyze) and save it."
        )
    return meta


def _frame_to_dataset(frame: pd.DataFrame | None) -> xr.Dataset | None:
    """A DataFrame (monitor scores, indexed by step or by (step, site)) as a Dataset that keeps
    its column and index names: one variable per column, the index levels included."""
    if frame is None:
        return None
    flat = frame.reset_index()
    ds = xr.Dataset({f"c{i}": (("row",), _column(flat[c])) for i, c in enumerate(flat.columns)})
    ds.attrs = {"index_names": [str(n) for n in frame.index.names], "columns": [str(c) for c in flat.columns],
                "layout": "rows"}
    return ds


def _column(values: pd.Series) -> np.ndarray:
    array = values.to_numpy()
    return array.astype(str) if array.dtype == object else array


def _frame_from_dataset(ds: xr.Dataset | None) -> pd.DataFrame | None:
    """Inverse of :func:`_frame_to_dataset` (also reads the step-indexed layout of earlier files)."""
    if ds is None:
        return None
    columns = ds.attrs["columns"]
    if ds.attrs.get("layout") != "rows":  # written before frames kept their index levels
        return pd.DataFrame({c: ds[f"c{i}"].values for i, c in enumerate(columns)},
                            index=pd.Index(ds["step"].values, name=ds.attrs["index_name"]))
    names = ds.attrs["index_names"]
    names = [names] if isinstance(names, str) else list(names)
    flat = pd.DataFrame({c: ds[f"c{i}"].values for i, c in enumerate(columns)})
    return flat.set_index(names if len(names) > 1 else names[0])


def _frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    """A table (the null scores) as JSON-ready rows, its index levels first."""
    flat = frame.reset_index()
    return {"index": [str(n) for n in frame.index.names], "columns": [str(c) for c in flat.columns],
            "rows": [[v.item() if isinstance(v, np.generic) else v for v in row] for row in flat.itertuples(index=False)]}


def _frame_from_json(data: Mapping[str, Any]) -> pd.DataFrame:
    """Inverse of :func:`_frame_to_json`."""
    flat = pd.DataFrame(data["rows"], columns=data["columns"])
    index = list(data["index"])
    return flat.set_index(index if len(index) > 1 else index[0])


def _stability_dataset(frame: Any) -> xr.Dataset:
    """Gate stability (the long DataFrame of :meth:`relu_probe.TrainingMonitor.gate_stability`)
    as a (step, site) Dataset with the per-site ``stable_step``."""
    needed = {"step", "site", "flip_fraction", "chance_flip_fraction"}
    if not isinstance(frame, pd.DataFrame) or not needed <= set(frame.columns):
        raise InputError(
            "`stability` must be the DataFrame of TrainingMonitor.gate_stability() (columns "
            f"{sorted(needed)}), got {describe(frame)}."
        )
    sites = list(dict.fromkeys(frame["site"].tolist()))
    steps = list(dict.fromkeys(frame["step"].tolist()))
    table = {name: frame.pivot(index="step", columns="site", values=name).reindex(index=steps, columns=sites)
             for name in ("flip_fraction", "chance_flip_fraction")}
    stable = frame.attrs.get("stable_step", {})
    site_values = np.empty(len(sites), dtype=object)
    site_values[:] = sites
    ds = xr.Dataset(
        {name: (("step", "site"), t.to_numpy(np.float64)) for name, t in table.items()},
        coords={"step": np.asarray(steps, dtype=np.int64), "site": site_values},
    )
    ds["stable_step"] = ("site", np.array([np.nan if stable.get(s) is None else float(stable[s]) for s in sites]))
    ds.attrs = {"tolerance": float(frame.attrs.get("tolerance", np.nan))}
    return ds
