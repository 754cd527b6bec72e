"""What the framework callbacks share: their probe settings and the monitor they start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..monitor import TrainingMonitor


class MonitorSettings:
    """Stores a :class:`relu_probe.TrainingMonitor`'s settings until the model is known.

    Attributes
    ----------
    monitor : relu_probe.TrainingMonitor or None
        Started by :meth:`start_monitor` on the first call (``None`` before).
    """

    def __init__(self, probe_inputs: Any, *, coords: Mapping[str, Any] | None = None, every: int = 100,
                 store: Any = None, **monitor_kwargs: Any) -> None:
        self.probe_inputs = probe_inputs
        self.coords = coords
        self.every = every
        self.store = store
        self.monitor_kwargs = monitor_kwargs
        self.monitor: TrainingMonitor | None = None

    def start_monitor(self, model: nn.Module) -> TrainingMonitor:
        """The monitor of *model*, created with the stored settings on the first call."""
        if self.monitor is None:
            self.monitor = TrainingMonitor(model, self.probe_inputs, coords=self.coords, every=self.every,
                                           store=self.store, **self.monitor_kwargs)
        return self.monitor
