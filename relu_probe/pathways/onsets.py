r"""When a unit counts as *on*, and which context set a group of units means.

Every pathway method decides "on" here, so the rules are written once:

- :func:`cell_on` — a unit in one (item, context) cell (the context-set decomposition). For
  element gates (0/1 per sample) the unit is on when its gate rate over the cell's samples
  exceeds ``on_fraction`` (with one sample per cell: when its gate is on). For channel units
  (``gate_rate``, the fraction of a channel's positions that are on) the rate is compared with
  the channel's **own** largest cell rate: on when
  :math:`r_u(o, c) > \text{on\_fraction} \cdot \max_{o', c'} r_u(o', c')`.
  Which positions a channel responds to is a property of its feature (an edge detector is
  active at a few percent of an image's positions), not of the contexts it serves, so a fixed
  fraction of positions would call such a channel off everywhere; ``rate > 0`` would call
  almost every conv channel on everywhere, because nearly every channel is active at some
  position of nearly every input.
- :func:`profile_on` — a unit's gating profile :math:`P_u(c)` (the profile methods): on in
  context *c* when :math:`P_u(c) \ge \text{relative} \cdot \max_{c'} P_u(c')` **and**
  :math:`P_u(c) \ge \text{floor}`. The relative rule compares the contexts with each other; the
  absolute floor (default :data:`ON_FLOOR`, 5% of the context's samples — or, for channel
  units, of its positions) keeps a unit that is nearly always off from being "on" in the
  contexts where it fires a few times (a profile (0.03, 0.02, 0) is on nowhere).
- :func:`members_label` — the context set of a group of units (a cluster of profiles or a
  co-clustering block) is the on-set that most of its members' importance has (the weighted
  mode of the members' own on-sets), so a pathway's name is what its units do. A member whose
  own on-set is another pathway's set is moved there; one whose set is no pathway's stays in
  its group's pathway and is flagged as *disagreeing* (:attr:`relu_probe.Pathways.disagrees`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ON_FLOOR", "RELATIVE_ON", "cell_on", "profile_on", "members_label"]

#: Absolute floor of the profile "on" rule: a share of a context's samples (channel units: of
#: its positions) below which a unit is off there whatever its maximum.
ON_FLOOR = 0.05
#: Relative profile "on" rule: a context is on when the unit's profile there reaches this
#: fraction of the unit's largest profile value.
RELATIVE_ON = 0.5


def cell_on(rate: np.ndarray, on_fraction: float, *, channel_units: bool) -> np.ndarray:
    """On/off of every (unit, item, context) cell from its gate rate ``rate`` (U, O, K).

    See the module docstring: element gates compare the rate with ``on_fraction``; channel
    units (``channel_units=True``) with ``on_fraction`` times the channel's largest cell rate.
    """
    rate = np.asarray(rate, dtype=np.float64)
    if not channel_units:
        return rate > on_fraction
    top = rate.reshape(rate.shape[0], -1).max(1) if rate.size else np.zeros(rate.shape[0])
    return (rate > on_fraction * top[:, None, None]) & (rate > 0)


def profile_on(profile: np.ndarray, relative: float = RELATIVE_ON, floor: float = ON_FLOOR) -> np.ndarray:
    """On/off of every (unit, context) from the gating profile ``profile`` (U, K).

    On when the profile reaches ``relative`` times the unit's largest value and at least
    ``floor`` (module docstring). NaN profile values (contexts never seen) are off.
    """
    P = np.nan_to_num(np.asarray(profile, dtype=np.float64), nan=0.0)
    top = P.max(1, keepdims=True) if P.size else np.zeros((P.shape[0], 1))
    return (P >= relative * top) & (P >= floor) & (top > 0)


def members_label(
    on: np.ndarray, groups: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pathways named after their members.

    Parameters
    ----------
    on : bool array (U, K)
        Every unit's own on-set.
    groups : int array (U,)
        The group (cluster, block) of every unit; ``-1`` for units in none.
    weight : array (U,)
        Every unit's importance.

    Returns
    -------
    sets : bool array (P, K)
        The distinct pathway context sets: for every group, the on-set carrying the largest
        share of its members' weight (ties: the larger set, then the set of the first member);
        groups with the same set are one pathway.
    assign : int array (U,)
        The pathway of every unit (``-1`` for units in no group): the pathway whose set is the
        unit's own on-set when there is one, else its group's.
    disagrees : bool array (U,)
        Units whose own on-set differs from their pathway's set.
    """
    on = np.asarray(on, dtype=bool)
    groups = np.asarray(groups, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    U, K = on.shape
    group_ids = [int(g) for g in dict.fromkeys(groups[groups >= 0].tolist())]
    keys = [tuple(row) for row in on]
    group_set: dict[int, tuple] = {}
    for g in group_ids:
        members = np.flatnonzero(groups == g)
        totals: dict[tuple, float] = {}
        for u in members:
            totals[keys[u]] = totals.get(keys[u], 0.0) + float(weight[u])
        group_set[g] = max(totals, key=lambda s: (totals[s], sum(s)))  # ties: the first member's
    distinct = list(dict.fromkeys(group_set[g] for g in group_ids))
    index = {s: i for i, s in enumerate(distinct)}
    assign = np.full(U, -1, dtype=np.int64)
    for u in np.flatnonzero(groups >= 0):
        own = keys[u]
        assign[u] = index[own] if own in index else index[group_set[int(groups[u])]]
    disagrees = np.zeros(U, dtype=bool)
    for u in np.flatnonzero(assign >= 0):
        disagrees[u] = keys[u] != distinct[assign[u]]
    sets = np.array(distinct, dtype=bool).reshape(len(distinct), K)
    return sets, assign, disagrees
