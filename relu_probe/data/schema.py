"""The recorded ``xarray.Dataset``: its names, how it is built, and how its attrs read back.

Layout (the contract of the public API): dims ``sample`` × ``unit``; ``gate`` (bool) or
``gate_rate`` (float32, channel units) and optionally ``activation`` (float32); unit coords
``site``, ``neuron`` (+ ``channel``, ``position`` when any site has positions); sample coords
``sample`` and the user's coords; attrs plain str / number / list so netCDF round-trips.
Training snapshots add a ``step`` dim and the ``importance`` and ``loss`` variables.

The names are the public contract (users write ``ds.gate.sel(unit=3)``), so they cannot
change; the constants below enumerate them for the code that builds, validates and stores
the layout. Reading a recording is :mod:`relu_probe.data.access`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .._util.arrays import plain
from .._version import __version__
from ..errors import CoordError, InputError, describe

__all__ = [
    "SAMPLE", "UNIT", "SITE", "NEURON", "CHANNEL", "POSITION", "STEP", "INPUT", "TOKEN", "TOKEN_COORDS",
    "GATE", "GATE_RATE", "ACTIVATION", "IMPORTANCE", "LOSS",
    "GATE_VARIABLES", "VARIABLES", "LONG_NAMES", "RESERVED_NAMES",
    "as_list",
    "build_dataset",
    "check_coords",
    "context_set_label",
    "dataset_attrs",
    "gate_name",
    "plain_attr",
    "site_attr",
    "unit_coords",
]

# dims
SAMPLE, UNIT, STEP = "sample", "unit", "step"
# unit coords
SITE, NEURON, CHANNEL, POSITION = "site", "neuron", "channel", "position"
# sample coords of a recording with ``samples="position"``: the input each sample (a token,
# a conv position) comes from, its position, and its token id
INPUT, TOKEN = "input", "token"
#: The sample coords a ``samples="position"`` recording writes itself (besides ``sample``).
TOKEN_COORDS = (INPUT, POSITION, TOKEN)
# data variables
GATE, GATE_RATE, ACTIVATION, IMPORTANCE, LOSS = "gate", "gate_rate", "activation", "importance", "loss"

#: The gate variable of a recording: ``gate`` (0/1), or ``gate_rate`` for channel units.
GATE_VARIABLES = (GATE, GATE_RATE)
#: Every data variable a recording (or a training snapshot) may hold, in their stored order.
VARIABLES = (GATE, GATE_RATE, ACTIVATION, IMPORTANCE, LOSS)
#: ``long_name`` attr of each recorded variable.
LONG_NAMES = {
    GATE: "ReLU input > threshold",
    GATE_RATE: "fraction of positions with ReLU input > threshold",
    ACTIVATION: "post-ReLU activation",
}
#: Names a user coord may not take (they are the dataset's own dims, coords and vars).
RESERVED_NAMES = frozenset({SAMPLE, UNIT, SITE, NEURON, CHANNEL, POSITION, GATE, GATE_RATE, ACTIVATION, STEP})


def gate_name(ds: xr.Dataset) -> str | None:
    """Name of the gate variable of *ds* (:data:`GATE_VARIABLES`), or None when it has none."""
    return next((name for name in GATE_VARIABLES if name in ds.data_vars), None)


def context_set_label(contexts: Iterable[Any]) -> str:
    """How a context set is written everywhere (pathway names, reports, tables): ``{0,1,2}``."""
    return "{" + ",".join(str(plain(c)) for c in contexts) + "}"


def plain_attr(value: Any) -> Any:
    """An attr as plain Python: numpy scalars become Python scalars, arrays, tuples and lists
    become lists (recursively), anything else is unchanged (for comparing stored attrs)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain_attr(v) for v in value]
    return plain(value)


def as_list(value: Any) -> list:
    """A list-valued attr as read back from a file: netCDF stores a one-element list as a
    scalar, so a scalar comes back as ``[scalar]``; None as ``[]``."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        return [plain(value)]
    return [plain_attr(v) for v in value]


def check_coords(coords: Mapping[str, Any] | None, n_samples: int, *, argument: str = "coords",
                 per: str = "sample", reserved: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Validate per-sample coords: a mapping of name → array-like of length *n_samples*.

    Any dtype is accepted (ints, strings, categoricals → numpy arrays). Raises
    :class:`~relu_probe.errors.CoordError` naming the coord, its length and the expected one.
    *per* names what each value belongs to in the messages (``"input"`` for the per-input
    coords of a ``samples="position"`` recording); *reserved* are further names a coord may
    not take.
    """
    reserved_names = RESERVED_NAMES | frozenset(reserved)
    if coords is None:
        return {}
    if not hasattr(coords, "items"):
        raise InputError(
            f"`{argument}` must be a mapping of coord name to per-sample values "
            f"(e.g. {{'context': labels}}), got {describe(coords)}."
        )
    out: dict[str, np.ndarray] = {}
    for name, values in coords.items():
        if not isinstance(name, str) or not name:
            raise CoordError(f"`{argument}` keys must be non-empty strings, got {name!r}.")
        if name in reserved_names:
            raise CoordError(
                f"`{argument}` cannot use the name {name!r}: it is reserved for the dataset's own "
                f"dims, coords and variables ({', '.join(sorted(reserved_names))})."
            )
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        array = np.asarray(values)
        if array.ndim == 0:
            raise CoordError(
                f"`{argument}[{name!r}]` must hold one value per {per} ({n_samples}), got a scalar {array.item()!r}."
            )
        if array.ndim != 1:
            raise CoordError(
                f"`{argument}[{name!r}]` must be 1-D (one value per {per}), got shape {array.shape}."
            )
        if len(array) != n_samples:
            raise CoordError(
                f"`{argument}[{name!r}]` has {len(array)} values, expected {n_samples} "
                f"(one per recorded {per})."
            )
        out[name] = array
    return out


def unit_coords(site_names: Sequence[str], layouts: Mapping[str, Any], units: str,
                samples: str = "input") -> dict[str, np.ndarray]:
    """Per-unit coords for sites in order: ``site``, ``neuron`` and, when any site has
    positions, ``channel`` and ``position`` (dense units: ``channel = neuron``,
    ``position = -1``; channel units: ``position = -1``).

    Element units of a conv / sequence site follow the per-sample tensor's memory order
    (:class:`relu_probe.recording.sites.SiteLayout`): channel-first ``(C, *positions)``
    gives ``channel = n // P``, ``position = n % P``; channel-last ``(*positions, C)``
    ``position = n // C``, ``channel = n % C``. With ``samples="position"`` the positions are
    samples, each unit is a channel (``neuron`` = channel index) and there are no
    ``channel`` / ``position`` unit coords (``position`` is a sample coord)."""
    site, neuron, channel, position = [], [], [], []
    any_positions = False
    for name in site_names:
        layout = layouts[name]
        n = layout.n_channels if samples == "position" else layout.n_units(units)
        site.append(np.repeat(np.array([name], dtype=object), n))
        neuron.append(np.arange(n))
        any_positions |= layout.channel_dim is not None and samples != "position"
        if layout.channel_dim is None or units == "channel" or samples == "position":
            channel.append(np.arange(n))
            position.append(np.full(n, -1))
        elif layout.channel_dim == -1:
            channel.append(np.tile(np.arange(layout.n_channels), layout.n_positions))
            position.append(np.repeat(np.arange(layout.n_positions), layout.n_channels))
        else:
            channel.append(np.repeat(np.arange(layout.n_channels), layout.n_positions))
            position.append(np.tile(np.arange(layout.n_positions), layout.n_channels))
    coords = {
        "site": np.concatenate(site) if site else np.array([], dtype=object),
        "neuron": np.concatenate(neuron).astype(np.int64) if neuron else np.array([], dtype=np.int64),
    }
    if any_positions:
        coords["channel"] = np.concatenate(channel).astype(np.int64)
        coords["position"] = np.concatenate(position).astype(np.int64)
    return coords


def dataset_attrs(
    *,
    site_names: Sequence[str],
    layouts: Mapping[str, Any],
    readouts: Mapping[str, Any],
    units: str,
    model_class: str,
    threshold: float = 0.0,
    slopes: Mapping[str, float] | None = None,
    samples: str = "input",
    other_readers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The recorded dataset's attrs (plain str / number / list values).

    ``site_readouts`` is, per site, every ``nn.Linear`` / ``nn.ConvNd`` that reads the site's
    output, as one string (:func:`join_paths`: ``"fc2 + skip"``; ``""`` for none);
    ``site_other_readers`` names, the same way, the other operations seen reading it (a
    residual sum, a pooling, …). *readouts* / *other_readers* map a site name to a path or a
    sequence of them.

    ``site_slopes`` is every site's negative-branch slope: 0 for a ReLU, α for a
    LeakyReLU(α) (its output is :math:`\alpha z` where the gate is off), NaN for other
    activations recorded on request.
    """
    slopes = slopes or {}
    return {
        "relu_probe_version": __version__,
        "model_class": model_class,
        "sites": list(site_names),
        "site_readouts": [join_paths(readouts.get(name, "")) for name in site_names],
        "site_other_readers": [join_paths((other_readers or {}).get(name, "")) for name in site_names],
        "site_shapes": ["x".join(map(str, layouts[name].shape)) for name in site_names],
        "site_kinds": [layouts[name].kind for name in site_names],
        "site_slopes": [float(slopes.get(name, 0.0)) for name in site_names],
        "units": units,
        "samples": samples,
        "threshold": float(threshold),
    }


def build_dataset(
    data: Mapping[str, np.ndarray],
    *,
    site_names: Sequence[str],
    layouts: Mapping[str, Any],
    readouts: Mapping[str, Any],
    units: str,
    model_class: str,
    coords: Mapping[str, np.ndarray],
    sample_ids: np.ndarray | None = None,
    threshold: float = 0.0,
    slopes: Mapping[str, float] | None = None,
    samples: str = "input",
    other_readers: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Assemble the recorded dataset from ``(sample, unit)`` arrays (see the module docstring);
    *coords* are per sample (with ``samples="position"`` they include :data:`TOKEN_COORDS`)."""
    n_samples = next(iter(data.values())).shape[0]
    ucoords = unit_coords(site_names, layouts, units, samples)
    n_units = len(ucoords["site"])
    ids = np.arange(n_samples, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
    variables = {name: (("sample", "unit"), array) for name, array in data.items()}
    all_coords: dict[str, Any] = {
        "sample": ("sample", ids),
        "unit": ("unit", np.arange(n_units, dtype=np.int64)),
    }
    for name, values in ucoords.items():
        # our own coords are plain numpy (site names as str objects): skip xarray's scan of
        # object arrays for dates (milliseconds for a wide recording)
        all_coords[name] = xr.Variable(("unit",), values, fastpath=True)
    for name, values in coords.items():
        all_coords[name] = ("sample", values)
    attrs = dataset_attrs(
        site_names=site_names, layouts=layouts, readouts=readouts, units=units,
        model_class=model_class, threshold=threshold, slopes=slopes, samples=samples,
        other_readers=other_readers,
    )
    ds = xr.Dataset(variables, coords=all_coords, attrs=attrs)
    for name, long_name in LONG_NAMES.items():
        if name in ds:
            ds[name].attrs["long_name"] = long_name
    return ds


#: Separates the module paths of one site in ``site_readouts`` / ``site_other_readers``.
PATH_SEPARATOR = " + "


def join_paths(paths: Any) -> str:
    """One attr string for a site's readouts (or other readers): a path, or paths joined by
    :data:`PATH_SEPARATOR`."""
    return paths if isinstance(paths, str) else PATH_SEPARATOR.join(str(p) for p in paths)


def split_paths(value: Any) -> tuple[str, ...]:
    """The paths of one ``site_readouts`` / ``site_other_readers`` entry (inverse of
    :func:`join_paths`; a store written before several readouts were kept holds one path)."""
    text = "" if value is None else str(value)
    return tuple(p for p in text.split(PATH_SEPARATOR) if p)


def site_attr(ds: xr.Dataset, key: str) -> list:
    """A per-site attr (``sites``, ``site_readouts``, ``site_other_readers``, ``site_shapes``,
    ``site_kinds``, ``site_slopes``) as a list (empty when the attr is absent).

    netCDF returns one-element list attributes as scalars; this undoes that. ``sites`` falls
    back to the unique ``site`` coord values in unit order when the attr is absent.
    """
    value = ds.attrs.get(key)
    if value is None and key == "sites" and SITE in ds.coords:
        return list(dict.fromkeys(ds[SITE].values.tolist()))
    return as_list(value)


@dataclass(frozen=True)
class SiteTable:
    """The recorded sites, as the recorder knows them after its first pass: what fixes a
    recording's units, unit coords and attrs.

    ``layouts`` maps each site name to an object with ``shape``, ``kind``, ``channel_dim``,
    ``n_channels``, ``n_positions`` and ``n_units(units)``
    (:class:`relu_probe.recording.sites.SiteLayout`).
    """

    site_names: tuple[str, ...]
    layouts: Mapping[str, Any]
    readouts: Mapping[str, Any]
    units: str
    model_class: str
    threshold: float = 0.0
    slopes: Mapping[str, float] | None = None
    samples: str = "input"
    other_readers: Mapping[str, Any] | None = None

    def attrs(self) -> dict[str, Any]:
        """The dataset attrs (:func:`dataset_attrs`)."""
        return dataset_attrs(
            site_names=self.site_names, layouts=self.layouts, readouts=self.readouts, units=self.units,
            model_class=self.model_class, threshold=self.threshold, slopes=self.slopes, samples=self.samples,
            other_readers=self.other_readers,
        )

    def unit_coords(self) -> dict[str, np.ndarray]:
        """The per-unit coords (:func:`unit_coords`)."""
        return unit_coords(self.site_names, self.layouts, self.units, self.samples)

    def dataset(
        self, data: Mapping[str, np.ndarray], coords: Mapping[str, np.ndarray], sample_ids: np.ndarray | None = None
    ) -> xr.Dataset:
        """The recorded dataset of ``(sample, unit)`` arrays *data* (:func:`build_dataset`)."""
        return build_dataset(
            data, site_names=self.site_names, layouts=self.layouts, readouts=self.readouts, units=self.units,
            model_class=self.model_class, coords=coords, sample_ids=sample_ids, threshold=self.threshold,
            slopes=self.slopes, samples=self.samples, other_readers=self.other_readers,
        )
