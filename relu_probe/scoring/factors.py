"""The two factors of a two-factor score (mixed selectivity, CCGP, parallelism)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.access import Recording
from ..errors import CoordError, InputError

__all__ = ["two_factors"]


def two_factors(rec: Recording, by: Any, within: Any) -> tuple[str, str]:
    """The two factor coords of a two-factor score, given as ``by=(a, b)`` or ``by=a,
    within=b``; each must be a sample coord of the recording, and they must differ."""
    if within is None:
        if isinstance(by, str) or not isinstance(by, Sequence) or len(by) != 2:
            raise InputError(
                "give the two factors as `by=(factor_a, factor_b)` or as `by=...` plus "
                f"`within=...`; got by={by!r}, within=None."
            )
        by, within = by
    by = rec.sample_coord(by, "by")
    within = rec.sample_coord(within, "within")
    if by == within:
        raise CoordError(f"`by` and `within` must be two different coords; both are {by!r}.")
    return by, within
