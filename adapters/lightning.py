"""PyTorch Lightning glue: :class:`GatingCallback` runs a :class:`relu_probe.TrainingMonitor`
on the module being trained.

>>> from relu_probe.adapters.lightning import GatingCallback
>>> cb = GatingCallback(X, coords=coords, every=100, by="context", within="object")
>>> trainer = lightning.Trainer(callbacks=[cb], max_steps=1000)      # doctest: +SKIP
>>> trainer.fit(module, loader)                                     # doctest: +SKIP
>>> cb.monitor.scores()                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the classic package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as exc:
        raise ImportError(
            "relu_probe.adapters.lightning needs PyTorch Lightning: pip install 'relu_probe[lightning]'"
        ) from exc

from ._monitoring import MonitorSettings

__all__ = ["GatingCallback"]


class GatingCallback(Callback, MonitorSettings):
    """Snapshot gates on a probe set every ``every`` optimizer steps of a Lightning run.

    Parameters
    ----------
    probe_inputs : Tensor, array or iterable of batches
        The probe set (recorded on the module's device).
    coords : mapping, optional
        Per-sample labels of the probe set.
    every : int, default=100
        Snapshot when ``trainer.global_step % every == 0``, plus once when training ends.
    store : path, optional
        Stream snapshots to this zarr store (see :class:`relu_probe.TrainingMonitor`).
    **monitor_kwargs :
        Passed to :class:`relu_probe.TrainingMonitor` (``by``, ``within``, ``sites`` …).

    Attributes
    ----------
    monitor : relu_probe.TrainingMonitor
        Created when training starts (``None`` before).
    """

    def __init__(self, probe_inputs: Any, *, coords: Mapping[str, Any] | None = None, every: int = 100,
                 store: Any = None, **monitor_kwargs: Any) -> None:
        Callback.__init__(self)
        MonitorSettings.__init__(self, probe_inputs, coords=coords, every=every, store=store, **monitor_kwargs)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.start_monitor(pl_module).update(trainer.global_step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.monitor.update(trainer.global_step, loss=_loss_of(outputs))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.monitor.snapshot(trainer.global_step)


def _loss_of(outputs: Any) -> float | None:
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    try:
        return float(loss)
    except (TypeError, ValueError, RuntimeError):
        return None
