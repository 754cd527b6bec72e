"""Interleaved timing rounds shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def interleaved_rounds(runs: Mapping[str, Callable[[], object]],
                       rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run every method of *runs* once per round, back to back, for *rounds* rounds.

    Interleaving makes each round's methods see the same machine load, so per-round ratios to
    a baseline are steadier than ratios of separate medians on a shared machine.

    Returns
    -------
    times, cpu : dict of list of float
        Per method, the wall time (``time.perf_counter``) and the process's CPU time
        (``time.process_time``) of each round, in seconds.
    """
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for key, fn in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
    return times, cpu
