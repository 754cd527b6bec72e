"""What a ReLN must know about the ReLU network it stands for: whether its layers have biases
and the slope of its units (ReLU or LeakyReLU), read off the model or the recording.

For a network ``x → Linear → act → Linear → act → … → Linear → y`` (an MLP, the networks a
ReLN models), the Linear feeding site ``ℓ`` holds that layer's *hidden bias* (a constant
input every pathway of the layer reads) and the Linear after the last site holds the *output
bias* (the ungated direct path); :mod:`relu_probe.reln.spec` documents both. A site's slope is
``negative_slope`` of its ``nn.LeakyReLU`` module (0 for ``nn.ReLU``), or the recording's
per-site ``site_slopes`` attr when it has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..data.schema import site_attr
from ..errors import InputError, ValueInputError, describe

__all__ = ["NetworkFacts", "SLOPES_ATTR", "network_facts"]

#: The recording attr holding one LeakyReLU slope per site (0 for ReLU), when recorded.
SLOPES_ATTR = "site_slopes"


@dataclass(frozen=True)
class NetworkFacts:
    """Per site (in the order asked for): ``hidden_bias`` (the Linear feeding it has a bias),
    ``slopes`` (its units' negative slope, 0 for ReLU) — ``None`` where unknown — and whether
    the readout after the last site has a bias (``output_bias``, ``None`` if unknown)."""

    hidden_bias: tuple[bool | None, ...]
    slopes: tuple[float | None, ...]
    output_bias: bool | None


def network_facts(sites: Sequence[str], *, model: Any = None, recording: Any = None) -> NetworkFacts:
    """Read biases and slopes of *sites* off ``model`` (a ``torch.nn.Module``) and / or a
    recording's attrs (module docstring). What neither tells is ``None``."""
    sites = [str(s) for s in sites]
    slopes: list[float | None] = [None] * len(sites)
    hidden: list[bool | None] = [None] * len(sites)
    output: bool | None = None
    if recording is not None:
        recorded = [str(s) for s in site_attr(recording, "sites")]
        values = site_attr(recording, SLOPES_ATTR) if SLOPES_ATTR in getattr(recording, "attrs", {}) else []
        if len(values) == len(recorded):
            for i, site in enumerate(sites):
                if site in recorded:
                    slopes[i] = float(values[recorded.index(site)])
    if model is None:
        return NetworkFacts(tuple(hidden), tuple(slopes), output)
    if not isinstance(model, nn.Module):
        raise InputError(f"`model` must be the recorded torch.nn.Module, got {describe(model)}.")
    order = list(model.named_modules())
    position = {name: i for i, (name, _) in enumerate(order)}
    for i, site in enumerate(sites):
        module = dict(order).get(site)
        if slopes[i] is None and module is not None:
            if isinstance(module, nn.LeakyReLU):
                slopes[i] = float(module.negative_slope)
            elif isinstance(module, nn.ReLU):
                slopes[i] = 0.0
        if module is not None:
            before = [m for m in order[: position[site]] if isinstance(m[1], nn.Linear)]
            hidden[i] = None if not before else before[-1][1].bias is not None
    last = dict(order).get(sites[-1]) if sites else None
    if last is not None:
        after = [m for m in order[position[sites[-1]] + 1:] if isinstance(m[1], nn.Linear)]
        output = None if not after else after[0][1].bias is not None
    return NetworkFacts(tuple(hidden), tuple(slopes), output)


def require_slopes(facts: NetworkFacts, sites: Sequence[str], leak: Any) -> list[float]:
    """The slope of every site: ``leak`` when given, else what the network says; a site whose
    slope is unknown is refused unless it is known to be a ReLU."""
    if leak is not None:
        return list(leak) if not isinstance(leak, (int, float)) else [float(leak)] * len(sites)
    unknown = [s for s, v in zip(sites, facts.slopes) if v is None and "leaky" in str(s).lower()]
    if unknown:
        raise ValueInputError(
            f"site(s) {unknown} are LeakyReLUs of unknown slope: a leaky unit is not a ReLU, so the ReLN "
            "needs its slope. Pass `model=` (an nn.LeakyReLU module tells it), a recording with a "
            f"{SLOPES_ATTR!r} attr, or `leak=` (one slope per site)."
        )
    return [0.0 if v is None else float(v) for v in facts.slopes]
