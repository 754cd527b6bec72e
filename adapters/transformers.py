"""Hugging Face ``transformers`` glue: :class:`GatingTrainerCallback` runs a
:class:`relu_probe.TrainingMonitor` inside ``Trainer``.

Works with any model whose activation is a ReLU (``hidden_act="relu"`` in BERT-style
configs gives an ``nn.ReLU`` module in every feed-forward block). Probe batches are dicts
of tensors passed as keyword arguments (``model(**batch)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("relu_probe.adapters.transformers needs transformers: pip install 'relu_probe[hf]'") from exc

from ._monitoring import MonitorSettings

__all__ = ["GatingTrainerCallback"]


class GatingTrainerCallback(TrainerCallback, MonitorSettings):
    """Snapshot gates on a probe set every ``every`` optimizer steps of a ``Trainer`` run.

    Parameters
    ----------
    probe_inputs : iterable of dict batches, Tensor or array
        The probe set; dict batches are passed as ``model(**batch)`` (use ``input_key=`` in
        ``monitor_kwargs`` for a single input).
    coords : mapping, optional
        Per-sample labels of the probe set.
    every : int, default=100
        Snapshot when ``state.global_step % every == 0``, plus once when training ends.
    store : path, optional
        Stream snapshots to this zarr store.
    **monitor_kwargs :
        Passed to :class:`relu_probe.TrainingMonitor`.

    Attributes
    ----------
    monitor : relu_probe.TrainingMonitor
        Created when training begins.
    """

    def __init__(self, probe_inputs: Any, *, coords: Mapping[str, Any] | None = None, every: int = 100,
                 store: Any = None, **monitor_kwargs: Any) -> None:
        MonitorSettings.__init__(self, probe_inputs, coords=coords, every=every, store=store, **monitor_kwargs)
        self._last_loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.start_monitor(model).update(state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self._last_loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.monitor.update(state.global_step, loss=self._last_loss)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.monitor.snapshot(state.global_step, loss=self._last_loss)
