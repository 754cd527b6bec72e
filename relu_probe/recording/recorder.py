"""Record ReLU gates from any PyTorch model: :func:`record`, :class:`Recorder`, :func:`list_sites`.

>>> import relu_probe as rp
>>> X, Y, coords = rp.tasks.contextual_task(3)
>>> model = rp.tasks.paper_network(3)
>>> rp.list_sites(model, X)
['1']
>>> ds = rp.record(model, X, coords=coords)
>>> ds.gate.dims, ds.sizes["unit"]
(('sample', 'unit'), 700)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from .._util.checks import check_choice, check_int
from .._util.progress import progress_bar
from ..data.schema import INPUT, TOKEN_COORDS, SiteTable, check_coords
from ..errors import (
    ForwardError,
    InputError,
    NonFiniteWarning,
    ReluProbeError,
    ReluProbeWarning,
    ValueInputError,
    describe,
)
from .fingerprint import batch_inputs, token_inputs
from .hooks import GateTap
from .inputs import Batch, check_sample_count, count_batches, iter_batches, samples_in
from .model import batch_dependent_modules, preserved_state, unwrap_model
from .sinks import MemorySink
from .sites import SiteSelector, activation_types
from .tokens import SAMPLE_MODES, batch_tokens, count_tokens, padding_hints, token_rows

__all__ = ["record", "Recorder", "list_sites", "create_store", "record_shard"]


class Recorder:
    """Record gates from the forward passes you run yourself.

    Every call of the model's forward inside the ``with`` block is one batch; the first one
    also discovers the sites. Hooks are removed on exit, whatever happens inside the block.
    The model's mode and grad flags are not changed (use it inside training loops too).

    Parameters
    ----------
    model : torch.nn.Module
        The model you will call. ``DataParallel``/``DistributedDataParallel`` wrappers are
        looked through (call the wrapper as usual); compiled and scripted models are refused
        (use :func:`record`, which records a compiled model through its original module).
    sites : str, type, callable or a list of those, optional
        Which sites to keep (exact name, glob, module type, predicate on
        :class:`relu_probe.sites.Site`); default every ReLU site.
    values : bool, default=False
        Also keep post-ReLU activations (variable ``activation``).
    units : {"element", "channel"}, default="element"
        Conv / sequence sites: one unit per (channel, position), or one per channel holding
        the fraction of active positions (variable ``gate_rate``).
    channel_dim : int or dict of str to int, optional
        Channel axis of conv/sequence site inputs (1 or -1); detected by default from the
        module that produced the input (``Linear``/``LayerNorm`` → -1, conv/norm → 1).
    activations : sequence of nn.Module types, optional
        Extra module types to record besides ``nn.ReLU`` and ``nn.LeakyReLU`` (their gate is
        also ``input > 0``). Types named in ``sites`` are added automatically.
    check_finite : bool, default=True
        Count NaN/Inf pre-activations per site in every pass (warned about by
        :func:`record`; read them in ``rec.nonfinite``).
    samples : {"input", "position"}, default="input"
        One sample per input, or one per (input, position) of the recorded sequence / conv
        sites (see :func:`record`).

    Examples
    --------
    >>> import torch, relu_probe as rp
    >>> model = rp.tasks.paper_network(3)
    >>> X, Y, coords = rp.tasks.contextual_task(3)
    >>> with rp.Recorder(model) as rec:
    ...     for batch in X.split(8):
    ...         _ = model(batch)
    >>> rec.to_dataset(coords=coords).sizes["sample"]
    24
    """

    def __init__(
        self,
        model: nn.Module,
        sites: SiteSelector = None,
        *,
        values: bool = False,
        units: str = "element",
        channel_dim: int | Mapping[str, int] | None = None,
        activations: Sequence[type[nn.Module]] = (),
        check_finite: bool = True,
        samples: str = "input",
        _sink: Any = None,
    ) -> None:
        check_choice("units", units, ["element", "channel"])
        check_choice("samples", samples, SAMPLE_MODES)
        if samples == "position" and units == "channel":
            raise ValueInputError(
                "`units='channel'` averages each channel over its positions, `samples='position'` makes "
                "each position a sample of its own; pass one of them (with samples='position' every unit "
                "is a channel already)."
            )
        if type(model).__name__ == "OptimizedModule":
            raise InputError(
                "`model` is a torch.compile'd module; hooks inside a compiled graph do not run "
                "reliably. Call and record `model._orig_mod` inside the with-block, or use "
                "rp.record(model, ...), which records through the original module."
            )
        if isinstance(model, nn.DataParallel) and len(getattr(model, "device_ids", []) or []) > 1:
            raise InputError(
                "`model` is a DataParallel over several devices: its replicas run in threads that "
                "hooks cannot follow. Call `model.module` in the with-block, or use rp.record."
            )
        self.model = model
        self.module = unwrap_model(model)
        self.sites_selector = sites
        self.values = bool(values)
        self.units = units
        self.samples = samples
        self._sink = MemorySink() if _sink is None else _sink
        self._tap = GateTap(
            self.module,
            selector=sites,
            activation_types=activation_types(sites, activations),
            values=self.values,
            units=units,
            sink=self._sink,
            channel_dim=dict(channel_dim) if isinstance(channel_dim, Mapping) else channel_dim,
            check_finite=bool(check_finite),
            samples=samples,
        )
        self._entered = False

    # -------------------------------------------------------------- context manager
    def __enter__(self) -> Recorder:
        if self._entered:
            raise ReluProbeError("this Recorder is already active; create a new one to nest.")
        self._entered = True
        self._tap.attach()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._tap.detach()
        self._entered = False

    # -------------------------------------------------------------- results
    @property
    def sites(self) -> list[str]:
        """Names of the recorded sites in first-call order (empty before the first pass)."""
        return [s.name for s in self._tap.sites]

    @property
    def all_sites(self) -> list[str]:
        """Every site found in the first pass, selected or not."""
        return [s.name for s in self._tap.all_sites]

    @property
    def n_samples(self) -> int:
        """Samples recorded so far (with ``samples="position"``: kept (input, position) pairs)."""
        return self._sink.n_samples

    @property
    def n_inputs(self) -> int:
        """Inputs recorded so far (equal to :attr:`n_samples` unless ``samples="position"``)."""
        return self._tap.inputs_seen

    @property
    def nonfinite(self) -> dict[str, int]:
        """NaN/Inf pre-activations counted per site so far."""
        return {k: v for k, v in self._tap.nonfinite.items() if v}

    @property
    def readouts(self) -> dict[str, tuple[str, ...]]:
        """Module paths of every ``Linear``/``ConvNd`` reading each site's output, where found."""
        return dict(self._tap.readouts)

    @property
    def other_readers(self) -> dict[str, tuple[str, ...]]:
        """The other operations seen reading each site's output (a residual sum, a pooling, …)."""
        return dict(self._tap.other_readers)

    def clear(self) -> None:
        """Forget the recorded batches (sites stay discovered)."""
        self._sink.clear()
        self._tap.nonfinite.clear()
        self._tap.inputs_seen = 0

    def to_dataset(
        self, coords: Mapping[str, Any] | None = None, *, sample_ids: np.ndarray | None = None
    ) -> xr.Dataset:
        """The recorded gates as an ``xarray.Dataset`` (layout in :mod:`relu_probe.data.schema`).

        Parameters
        ----------
        coords : mapping of str to array-like, optional
            Per-sample labels (any dtype), one value per recorded sample; with
            ``samples="position"`` one per recorded *input*, broadcast to its positions.
        sample_ids : array of int, optional
            Values of the ``sample`` coord (default ``0 … n-1``).
        """
        if self._sink.n_samples == 0:
            raise ValueInputError(
                "no forward pass was recorded: call the model inside `with Recorder(model) as rec:` "
                "before `rec.to_dataset()`."
            )
        if sample_ids is not None and len(sample_ids) != self._sink.n_samples:
            raise ValueInputError(
                f"`sample_ids` has {len(sample_ids)} values, expected {self._sink.n_samples}."
            )
        arrays = self._sink.arrays()
        if self.samples == "input":
            return self.site_table().dataset(arrays, check_coords(coords, self._sink.n_samples), sample_ids)
        per_input = check_coords(coords, self._tap.inputs_seen, per="input", reserved=TOKEN_COORDS)
        row_coords = {k: arrays.pop(k) for k in TOKEN_COORDS if k in arrays}
        inputs = row_coords[INPUT]
        broadcast = {name: values[inputs] for name, values in per_input.items()}
        return self.site_table().dataset(arrays, {**row_coords, **broadcast}, sample_ids)

    def site_table(self) -> SiteTable:
        """The recorded sites: what fixes the dataset's units, unit coords and attrs."""
        return SiteTable(
            site_names=tuple(self.sites), layouts=self._tap.layouts, readouts=self._tap.readouts, units=self.units,
            model_class=type(self.module).__qualname__, threshold=self._tap.threshold, slopes=self._tap.slopes, samples=self.samples,
            other_readers=self._tap.other_readers,
        )

    def attrs_for(self, specs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Dataset attrs and unit coords of the recorded sites (for sinks that write metadata)."""
        table = self.site_table()
        return table.attrs(), table.unit_coords()

    def _warn_nonfinite(self, stacklevel: int = 3) -> None:
        counts = {k: self._tap.nonfinite[k] for k in self.sites if self._tap.nonfinite.get(k)}
        if counts:
            listed = ", ".join(f"{k!r}: {v}" for k, v in counts.items())
            warnings.warn(
                f"non-finite pre-activations (NaN/Inf) at {len(counts)} site(s) — {listed}; "
                "NaN inputs are recorded as off (NaN > 0 is False).",
                NonFiniteWarning,
                stacklevel=stacklevel,
            )


def record(
    model: nn.Module,
    inputs: Any,
    *,
    sites: SiteSelector = None,
    coords: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    values: bool = False,
    units: str = "element",
    store: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    input_key: str | None = None,
    channel_dim: int | Mapping[str, int] | None = None,
    activations: Sequence[type[nn.Module]] = (),
    eval_mode: bool = True,
    sample_ids: Any = None,
    n_samples: int | None = None,
    chunk_size: int | None = None,
    check_finite: bool | str = "auto",
    samples: str = "input",
    _job: Any = None,
) -> xr.Dataset:
    """Run *model* over *inputs* and return which ReLU units are on for which sample.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; ``DataParallel``/``DDP`` wrappers are unwrapped and a ``torch.compile``d
        model is recorded through its original module.
    inputs : Tensor, ndarray, dict of Tensors, sequence of Tensors, DataLoader or iterable of batches
        See :mod:`relu_probe.recording.inputs` for the accepted batch forms; a dict such as
        ``{"input_ids": ids, "attention_mask": mask}`` is split into batches like a tensor and
        passed as keyword arguments.
    sites : selector, optional
        Exact names, globs, module types or predicates (see :func:`list_sites`).
    coords : mapping of str to array-like, optional
        Per-sample labels (e.g. ``{"context": c, "object": o}``), one per sample; with
        ``samples="position"`` one per *input*, broadcast to every position of that input.
    batch_size : int, optional
        Split a tensor input into batches of this size (default 1024).
    values : bool, default=False
        Also store post-ReLU activations as ``activation`` (float32).
    units : {"element", "channel"}, default="element"
        Conv / sequence sites: a unit per (channel, position), or a per-channel active
        fraction ``gate_rate``.
    store : path, optional
        Stream the gates to a bit-packed zarr store instead of memory (one bit per unit per
        sample, written a sample chunk at a time) and return it lazily loaded
        (:func:`relu_probe.load`). Needs the number of samples up front (read off the
        inputs, ``coords``, ``sample_ids`` or ``n_samples``). The path is created, checked
        and locked before the model runs: an unusable path raises :class:`StoreError` at
        once, and a second process writing the same store is refused until this call ends.
    resume : bool, default=False
        Continue an interrupted stream into *store* (a killed process included): chunks
        already on disk are skipped, the rest are recorded. The inputs must be the same:
        each chunk on disk carries a fingerprint of its inputs, and inputs with other values
        or order (any batch size is fine), or *coords* other than the store's, are refused
        with :class:`StoreMismatchError` naming the first chunk or coord that differs.
    overwrite : bool, default=False
        Replace an existing relu_probe store at *store*. Only a directory relu_probe wrote
        is ever deleted: any other non-empty path is refused, naming what is there.
    progress : bool, optional
        tqdm bar over batches (default: on when stderr is a terminal).
    input_key : str, optional
        Key of the input in dict batches; without it, dict batches are passed as keyword
        arguments.
    channel_dim, activations :
        See :class:`Recorder`.
    eval_mode : bool, default=True
        Record in eval mode (dropout off, batch-norm running statistics untouched). The
        model's modes and grad flags are restored afterwards either way.
    sample_ids : array of int, optional
        Values of the ``sample`` coord. With ``store`` and ``resume=True`` they select
        which store rows these inputs fill (a rank's shard in multi-process recording).
    n_samples : int, optional
        Number of samples, when a store is written from an iterable of unknown length.
    chunk_size : int, optional
        Samples per store chunk (default: about 8 MiB per chunk).
    check_finite : {"auto", True, False}, default="auto"
        NaN/Inf pre-activations are recorded as off (``NaN > 0`` is False) and reported by a
        :class:`~relu_probe.errors.NonFiniteWarning` with counts per site. ``"auto"``: check
        the model's output of every batch, and only for a batch whose output is not finite
        re-run it to count per site (no cost on clean data; a NaN that never reaches the
        output — e.g. one masked out — goes unreported, its gates are still off). ``True``:
        check every site of every batch (one extra read of each site's input). ``False``:
        no checks. In training mode (``eval_mode=False``) ``"auto"`` means ``True``, since a
        re-run would update batch-norm statistics twice.
    samples : {"input", "position"}, default="input"
        What a sample is. ``"input"``: one per input; a conv / sequence site gives a unit per
        (channel, position). ``"position"``: every (input, position) of the recorded
        sequence or conv sites is one sample — a token of a transformer, a pixel of a
        feature map — and every unit is a channel (``neuron`` = channel index). Sample
        coords ``input`` (index of the input, in input order), ``position`` (flat index
        over the site's positions, row-major for conv maps) and, when the batches carry
        ``input_ids``, ``token``; *coords* are per input and broadcast to its positions.
        Padding (``attention_mask == 0`` of the model call) is dropped. Every recorded site
        must have the same positions: select sites of one resolution with ``sites=``
        (sites without positions, or of different resolutions, are refused); not with
        ``units="channel"`` or ``sample_ids``. With *store*, the number of samples must be
        known before recording: counted from the attention masks (or ``input_ids``) of
        in-memory dict batches, or inputs × positions for tensors and lists of tensors
        (positions found on the first batch); otherwise pass ``n_samples=`` (the number of
        kept positions) together with ``coords`` or a countable ``inputs``.

    Returns
    -------
    xarray.Dataset
        ``gate`` (sample, unit) bool — the ReLU's input is > 0 — (or ``gate_rate`` for
        channel units), optional ``activation``; unit coords ``site``, ``neuron``
        (+ ``channel``, ``position``); sample coords ``sample`` and *coords* (+ ``input``,
        ``position``, ``token`` with ``samples="position"``). Dask-backed when written to a
        *store*.

    Notes
    -----
    Layouts that flatten ``(batch · seq, d)`` before a ReLU (OPT's feed-forward) are read as
    ``(batch, seq, d)`` when the call carries ``input_ids`` or an ``attention_mask``
    (:mod:`relu_probe.recording.tokens`), with either value of *samples*. With
    ``units="channel"``, a sequence site's active fraction counts only the real positions
    of the call's ``attention_mask``.

    Raises
    ------
    NoSitesError
        The model has no ReLU site (or the selection matched none).
    SiteNotFoundError
        A site named exactly does not exist (closest names listed).
    ForwardError
        The model's forward raised; the message names the batch and the last site reached.
    StoreError, StoreMismatchError
        The store exists (without ``overwrite``/``resume``), was written by another model
        layout, or is resumed with other inputs; a write failed (the chunks before it stay
        readable and ``resume=True`` finishes the store).
    """
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    module = unwrap_model(model)
    if check_finite not in ("auto", True, False):
        raise ValueInputError(f"`check_finite` must be 'auto', True or False; got {check_finite!r}.")
    if store is None and (resume or overwrite):
        raise ValueInputError("`resume` and `overwrite` apply to a `store`; pass `store=path`.")
    check_choice("samples", samples, SAMPLE_MODES)
    position = samples == "position"
    if position and sample_ids is not None:
        raise ValueInputError(
            "`sample_ids` name the samples, but with samples='position' the samples are the kept positions "
            "(the `input` coord says which input each comes from); pass per-input ids as a coord instead "
            "(coords={'input_id': ids}), which is broadcast to the positions."
        )
    every_site = check_finite is True or (check_finite == "auto" and not eval_mode)
    recount = check_finite == "auto" and not every_site
    batch_dependent = [] if eval_mode else batch_dependent_modules(module)
    if batch_dependent:
        warnings.warn(
            f"recording in train mode (eval_mode=False): {len(batch_dependent)} module(s) in train mode "
            f"({', '.join(batch_dependent[:3])}{', …' if len(batch_dependent) > 3 else ''}) make each sample's gates "
            "depend on the rest of its batch (batch norm normalises by the batch's statistics) or on chance "
            "(dropout), so the gates change with `batch_size`; their buffers (running statistics) are restored "
            "afterwards. Record in eval mode (the default) for gates that belong to the samples.",
            ReluProbeWarning,
            stacklevel=2,
        )
    if position and store is not None and not eval_mode:
        raise ValueInputError(
            "samples='position' with `store=` records in eval mode only (eval_mode=True): the store is sized "
            "from the sites' positions, found on a first pass that must not update the model."
        )
    sink = None
    if store is not None:  # claims (creates, checks, locks) the store before the model runs
        sink = _store_sink(inputs, store, coords=coords, sample_ids=sample_ids, n_samples=n_samples,
                           resume=resume, overwrite=overwrite, chunk_size=chunk_size, job=_job, samples=samples,
                           input_key=input_key)
    try:
        recorder = Recorder(
            module, sites, values=values, units=units, channel_dim=channel_dim, activations=activations,
            check_finite=every_site, samples=samples, _sink=sink,
        )
        if sink is None:  # one allocation when the number of samples can be read off the inputs
            if not position:
                recorder._sink.expected_rows = samples_in(inputs, coords=None, sample_ids=None, n_samples=n_samples)
            else:
                n_inputs = samples_in(inputs, coords=None, sample_ids=None, n_samples=None)
                recorder._sink.size_for = lambda: _position_rows(inputs, recorder, n_inputs, n_samples)
        n_seen, n_rows = _run(module, inputs, recorder, sink, batch_size=batch_size, input_key=input_key,
                              progress=progress, eval_mode=eval_mode, recount=recount)
        if n_seen == 0:
            raise ValueInputError(f"`inputs` is empty: it yielded no samples ({describe(inputs)}).")
        recorder._warn_nonfinite(stacklevel=2)
        if sink is not None:
            if n_rows != len(sink.rows):
                what = "kept positions" if position else "samples"
                raise ValueInputError(
                    f"`inputs` yielded {n_rows} {what} but {len(sink.rows)} were expected for `store` "
                    f"{str(store)!r} (from the inputs' length, `n_samples`, `sample_ids` or `coords`)."
                )
            sink.close()
    finally:
        if sink is not None:
            sink.release()  # the store's writer lock, whatever happened
    if sink is not None:
        from ..data.store import load

        return load(store)
    ids = None if sample_ids is None else np.asarray(sample_ids)
    return recorder.to_dataset(coords, sample_ids=ids)


def create_store(
    model: nn.Module,
    inputs: Any,
    store: str | os.PathLike,
    *,
    n_samples: int,
    coords: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    batch_size: int | None = None,
    sites: SiteSelector = None,
    values: bool = False,
    units: str = "element",
    channel_dim: int | Mapping[str, int] | None = None,
    activations: Sequence[type[nn.Module]] = (),
    input_key: str | None = None,
    eval_mode: bool = True,
    job: Any = None,
) -> Any:
    """Claim, lock and lay out an empty gate store for *n_samples* samples, for *model*.

    The sites are found on a forward pass over *inputs* (the first samples); the store gets
    its coords, attrs and arrays, and no chunk is left marked done unless *inputs* filled it.
    Returns the store's writer lock, still held (release it when the job ends): writers of
    the job (:class:`relu_probe.data.lock.Job`) then fill disjoint sets of whole chunks with
    :func:`record_shard` (:func:`relu_probe.data.store.read_layout` gives the chunking). This
    is how :func:`relu_probe.adapters.distributed.record_distributed` lets every rank of a job
    record into one store. The other arguments are as in :func:`record`.
    """
    module = unwrap_model(model)
    sink = _store_sink(inputs, store, coords=coords, sample_ids=None, n_samples=n_samples, resume=False,
                       overwrite=overwrite, chunk_size=chunk_size, job=job)
    try:
        recorder = Recorder(module, sites, values=values, units=units, channel_dim=channel_dim,
                            activations=activations, _sink=sink)
        _run(module, inputs, recorder, sink, batch_size=batch_size, input_key=input_key, progress=False,
             eval_mode=eval_mode)
    except BaseException:
        sink.release()
        raise
    sink.discard_pending()  # rows of unfinished chunks are recorded again by their writer
    return sink.lock


def record_shard(model: nn.Module, inputs: Any, store: str | os.PathLike, *, job: Any, sample_ids: Any,
                 **record_kwargs: Any) -> xr.Dataset:
    """Record *inputs* into the rows *sample_ids* of a store laid out by :func:`create_store`,
    as one writer of the multi-process *job* that holds its lock
    (:class:`relu_probe.data.lock.Job`); the other arguments are as in :func:`record`."""
    return record(model, inputs, store=store, resume=True, sample_ids=sample_ids, _job=job, **record_kwargs)


def _store_sink(inputs: Any, store: Any, *, coords: Any, sample_ids: Any, n_samples: Any,
                resume: bool, overwrite: bool, chunk_size: int | None, job: Any = None, samples: str = "input",
                input_key: str | None = None) -> Any:
    from ..data.store import ZarrSink

    if resume and overwrite:
        raise ValueInputError("`resume=True` and `overwrite=True` contradict each other; pass one.")
    mode = "resume" if resume else ("overwrite" if overwrite else "create")
    if samples == "position":
        n_inputs = samples_in(inputs, coords=coords, sample_ids=None, n_samples=None)
        counted = None if n_samples is None else check_int("n_samples", n_samples, minimum=1)
        if n_inputs is None:
            raise ValueInputError(
                "`store=` with samples='position' needs the number of inputs up front (for their `input` "
                f"coord and `coords`), but it cannot be read off `inputs` ({describe(inputs)}); pass `coords` "
                "(one value per input) or inputs of known length, and `n_samples=` (the number of kept positions)."
            )
        checked = check_coords(coords, n_inputs, per="input", reserved=TOKEN_COORDS)
        return ZarrSink(store, n_inputs=None, sample_ids=None, coords={}, input_coords=checked,
                        n_source_inputs=n_inputs, counted_rows=counted, attrs_for=None, mode=mode,
                        chunk_rows=chunk_size, job=job)
    n = check_sample_count(
        samples_in(inputs, coords=coords, sample_ids=sample_ids, n_samples=n_samples), describe(inputs)
    )
    ids = None if sample_ids is None else np.asarray(sample_ids)
    if ids is not None and len(ids) != n:
        raise ValueInputError(f"`sample_ids` has {len(ids)} values, expected {n} (one per sample).")
    checked = check_coords(coords, n)
    return ZarrSink(store, n_inputs=n, sample_ids=ids, coords=checked, attrs_for=None, mode=mode,
                    chunk_rows=chunk_size, job=job)


def _dict_batches(inputs: Any) -> list[Any]:
    """*inputs* as in-memory dict batches (a dict, or a list / tuple of dicts), else ``[None]``."""
    if isinstance(inputs, Mapping):
        return [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(b, Mapping) for b in inputs):
        return list(inputs)
    return [None]


def _run(module: nn.Module, inputs: Any, recorder: Recorder, sink: Any, *, batch_size: int | None,
         input_key: str | None, progress: bool | None, eval_mode: bool,
         recount: bool = False) -> tuple[int, int]:
    """Call *module* on every batch of *inputs* inside *recorder*; return the inputs seen and
    the rows (samples) they gave.

    The first batch also discovers the sites. With a store *sink*, each batch's target rows and input
    fingerprints are set first (a resumed stream checks them against the chunks on disk),
    and batches whose rows are all on disk already are skipped once the sites are known.
    With *recount*, a batch whose output is not finite is run once more, recording nothing,
    to count its non-finite pre-activations per site.
    """
    tap = recorder._tap
    position = recorder.samples == "position"
    if sink is not None:
        sink.attrs_for = recorder.attrs_for
        if position:
            sink.size_for = lambda: _position_rows(inputs, recorder, sink.n_source_inputs, sink.counted_rows)
    n_batches = count_batches(inputs, batch_size, input_key)
    start = row = 0
    padded_units = False  # element units of a padded batch: its padding positions are units
    with preserved_state(module, eval_mode=eval_mode), recorder:
        batches = iter_batches(inputs, model=module, batch_size=batch_size, input_key=input_key)
        for index, batch in enumerate(
            progress_bar(batches, enabled=progress, total=n_batches, desc="recording", unit="batch")
        ):
            if index == 0:
                for hint in padding_hints(batch.args, batch.kwargs, batch.left_out, samples=recorder.samples):
                    warnings.warn(hint, ReluProbeWarning, stacklevel=3)
            if not position and recorder.units == "element" and not padded_units:
                mask = batch_tokens(batch.args, batch.kwargs).mask
                padded_units = mask is not None and bool((mask == 0).any())
            if not recorder.sites and position and sink is not None:
                _discover(module, batch, recorder)  # the store's size depends on the sites' positions
            n_rows = batch.size
            if sink is not None:
                n_rows, fingerprint = _batch_rows(batch, recorder) if position else (batch.size, batch_inputs(batch))
                rows = sink.rows[row : row + n_rows]
                if len(rows) < n_rows:
                    what = "kept positions" if position else "samples"
                    raise ValueInputError(
                        f"`inputs` yielded more {what} than the {len(sink.rows)} expected for the store."
                    )
                sink.set_rows(rows, fingerprint)  # checks chunks already on disk
                if recorder.sites and sink.rows_done(rows):
                    start += batch.size
                    row += n_rows
                    continue
            tap.inputs_seen = start
            before = recorder.n_samples
            _call(module, batch, recorder, index, start)
            if recount and tap.output_nonfinite:
                tap.recount = True
                try:
                    module(*batch.args, **batch.kwargs)
                finally:
                    tap.recount = False
            start += batch.size
            row += recorder.n_samples - before if sink is None else n_rows
    sequence_sites = [name for name, layout in recorder._tap.layouts.items() if layout.channel_dim is not None]
    if padded_units and sequence_sites:
        warnings.warn(
            f"the batches' attention_mask marks padding, and with samples='input' and element units the sequence "
            f"site(s) {', '.join(repr(n) for n in sequence_sites[:3])}{' …' if len(sequence_sites) > 3 else ''} "
            "give a unit per (position, neuron): the units at padded positions hold the model's computation on "
            "padding and enter the pathways and scores like the others. Record with samples='position' (one "
            "sample per real token) or units='channel' (the fraction of real tokens active) to leave padding out.",
            ReluProbeWarning, stacklevel=3,
        )
    return start, row


def _call(module: nn.Module, batch: Batch, recorder: Recorder, index: int, start: int) -> None:
    """``module(batch)``; an error of the user's forward gets the batch and the last site."""
    try:
        module(*batch.args, **batch.kwargs)
    except ReluProbeError:
        raise
    except Exception as exc:  # the user's forward failed: add where it happened
        last = recorder._tap.last_site
        raise ForwardError(
            f"the model's forward raised {type(exc).__name__} on batch {index} "
            f"(samples {start}–{start + batch.size - 1}); last ReLU site reached: "
            f"{repr(last) if last else 'none (before the first ReLU)'}. Original error: {exc}"
        ) from exc


def _discover(module: nn.Module, batch: Batch, recorder: Recorder) -> None:
    """Find the sites on *batch* (the first), recording nothing: one extra forward pass, in
    eval mode only (it must not change the model). The batch is then recorded like the
    others."""
    tap = recorder._tap
    tap.discover_only = True
    try:
        _call(module, batch, recorder, 0, 0)
    finally:
        tap.discover_only = False


def _positions(recorder: Recorder) -> int:
    """Positions per input of the recorded sites (``samples="position"``, after discovery)."""
    layouts = recorder._tap.layouts
    return layouts[recorder.sites[0]].n_positions


def _follows_sequence(recorder: Recorder, length: int | None) -> bool:
    """Whether the sites' positions are the batch's sequence positions."""
    return length is not None and recorder._tap.sequence_positions


def _batch_rows(batch: Batch, recorder: Recorder) -> tuple[int, Any]:
    """The rows a ``samples="position"`` batch will fill and the fingerprint of each."""
    tokens = batch_tokens(batch.args, batch.kwargs)
    mask = tokens.mask_array()
    if recorder.sites:
        positions = tokens.length if _follows_sequence(recorder, tokens.length) else _positions(recorder)
    elif tokens.length is not None:
        positions = tokens.length
    else:  # pragma: no cover - record() refuses stores in training mode for samples="position"
        raise ValueInputError("samples='position' with a store needs the sites' positions before the first batch.")
    keep = token_rows(batch.size, positions, mask if mask is not None and mask.shape == (batch.size, positions) else None)
    return len(keep), token_inputs(batch_inputs(batch), keep, positions)


def _position_rows(inputs: Any, recorder: Recorder, n_inputs: int | None, counted: int | None) -> int | None:
    """Samples a ``samples="position"`` recording of *inputs* will have, once the sites are
    known: *counted* (``n_samples``) when given; for in-memory dict batches their real tokens
    (attention masks, else ``input_ids`` sizes) when the sites' positions are their sequence
    positions; for tensors (and dict batches without masks) inputs × positions; else None
    (an iterable whose masks are not known before it is run)."""
    if counted is not None:
        return counted
    batches = _dict_batches(inputs)
    if batches != [None]:
        if recorder._tap.sequence_positions:
            return count_tokens(batches)
        if any("attention_mask" in batch for batch in batches):
            return None
    elif not (isinstance(inputs, (torch.Tensor, np.ndarray))
              or (isinstance(inputs, (list, tuple)) and all(isinstance(b, torch.Tensor) for b in inputs))):
        return None
    return None if n_inputs is None else n_inputs * _positions(recorder)


def list_sites(
    model: nn.Module,
    example_input: Any,
    *,
    input_key: str | None = None,
    activations: Sequence[type[nn.Module]] = (),
) -> list[str]:
    """Names of every ReLU site of *model*, in the order of their first call.

    Runs one forward pass on *example_input* (a tensor batch, a tuple whose first item is the
    input, or a dict batch) in eval mode without autograd; the model is left as it was.

    Examples
    --------
    >>> import torch, relu_probe as rp
    >>> rp.list_sites(rp.tasks.paper_network(3, depth=2), torch.zeros(2, 11, dtype=torch.float64))
    ['1', '3']
    """
    module = unwrap_model(model)
    recorder = Recorder(module, None, activations=activations)
    batches = iter_batches([example_input], model=module, input_key=input_key)
    with preserved_state(module, eval_mode=True), recorder:
        for batch in batches:
            try:
                module(*batch.args, **batch.kwargs)
            except ReluProbeError:
                raise
            except Exception as exc:
                raise ForwardError(
                    f"the model's forward raised {type(exc).__name__} on `example_input`: {exc}"
                ) from exc
    return recorder.all_sites
