"""One writer per store: :class:`StoreLock`, an advisory lock on a file inside the store.

The lock is ``flock(LOCK_EX)`` on ``<store>/.relu_probe.lock`` (POSIX ``flock(2)``): the
operating system releases it when the holding process closes the file or dies, so a killed
writer never leaves a stale lock behind. The file itself stays in the store and records the
holder (pid, host, job) for the error message a refused writer gets.

Who may write while the lock is held:

* another process — refused with a :class:`~relu_probe.errors.StoreError` naming the holder;
* the ranks of one ``torchrun`` job — rank 0 takes the lock with a *job* token it shares with
  the other ranks, which then join the lock instead of being refused (they write disjoint
  chunks under rank 0's lock);
* a newer writer in the same process (a notebook cell run again, a monitor re-created after
  an interrupted training loop) — it takes the lock over, and the older writer's next write
  raises (:meth:`StoreLock.check`). Only one writer is ever active.

Where ``fcntl`` does not exist (Windows) or the file system cannot lock, a
:class:`~relu_probe.errors.ReluProbeWarning` says that a second writer will not be detected.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReluProbeWarning, StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "Job", "StoreLock"]

#: Name of the lock file inside a store.
LOCK_NAME = ".relu_probe.lock"

#: Locks this process holds, by the store's resolved path (a writer dropped without closing
#: is collected, and its lock released, like a closed one).
_HELD: weakref.WeakValueDictionary[str, StoreLock] = weakref.WeakValueDictionary()


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Job:
    """Processes of one job writing one store together (the ranks of ``record_distributed``).

    Attributes
    ----------
    token : str
        Shared by the job's processes: one of them holds the store's lock with it, the others
        join it.
    check : callable
        Called by a writer before each batch; raises to stop this process's part of the job
        (another process of the job failed).
    """

    token: str
    check: Callable[[], None] = _nothing


class StoreLock:
    """The writer lock of one store.

    Parameters
    ----------
    store : Path
        The store directory (it must exist).
    job : str, optional
        Token shared by the processes of one job (the ranks of ``record_distributed``): a
        process whose token equals the holder's joins the lock instead of being refused.
    """

    def __init__(self, store: Path, *, job: str | None = None) -> None:
        self.store = Path(store)
        self.job = job
        self._file: Any = None
        self._key = str(self.store.resolve())
        self.state = "new"  # "held" | "joined" | "unlocked" | "superseded" | "released"

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> StoreLock:
        """Take (or join, or take over) the lock; refuse if another writer holds it."""
        previous = _HELD.get(self._key)
        if previous is not None and previous.state == "held":
            if self.job is not None and previous.job == self.job:  # this process holds it for the job
                self.state = "joined"
                return self
            # a newer writer in this process takes over
            self._file, previous._file = previous._file, None
            previous.state = "superseded"
            self.state = "held"
            _HELD[self._key] = self
            self._write_owner()
            return self
        path = self.store / LOCK_NAME
        try:
            handle = open(path, "a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(
                f"`store` {str(self.store)!r} cannot be written: opening its lock file failed with "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if fcntl is None:
            handle.close()
            self._unlocked("this platform has no fcntl.flock")
            return self
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(path)
            handle.close()
            if self.job is not None and owner.get("job") == self.job:
                self.state = "joined"
                return self
            raise StoreError(
                f"`store` {str(self.store)!r} is being written by another process ({_describe(owner)}); "
                "two writers would corrupt it. Wait until that process finishes (its lock is released "
                "when it exits, even if it is killed), or record into another path."
            ) from None
        except OSError as exc:  # e.g. a network file system without locks
            handle.close()
            self._unlocked(f"locking failed with {type(exc).__name__}: {exc}")
            return self
        self._file = handle
        self.state = "held"
        _HELD[self._key] = self
        self._write_owner()
        return self

    def release(self) -> None:
        """Release the lock (a no-op unless this object holds it)."""
        if self.state == "held":
            if _HELD.get(self._key) is self:
                del _HELD[self._key]
            if self._file is not None:
                self._file.close()  # closing the file releases the flock
                self._file = None
        if self.state != "superseded":
            self.state = "released"

    def check(self) -> None:
        """Raise if a newer writer in this process took this store over."""
        if self.state == "superseded":
            raise StoreError(
                f"`store` {str(self.store)!r} was taken over by a newer writer in this process "
                "(another record() or TrainingMonitor on the same path); this one may not write to it anymore."
            )

    def __del__(self) -> None:  # a writer that is gone holds no lock
        handle = getattr(self, "_file", None)
        if handle is not None:
            handle.close()

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ------------------------------------------------------------------ helpers
    def _write_owner(self) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "job": self.job,
                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(json.dumps(owner))
            self._file.flush()
        except OSError as exc:
            raise StoreError(
                f"`store` {str(self.store)!r} cannot be written: writing its lock file failed with "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _unlocked(self, why: str) -> None:
        self.state = "unlocked"
        warnings.warn(
            f"`store` {str(self.store)!r} cannot be locked ({why}); a second process writing it at "
            "the same time would not be detected.",
            ReluProbeWarning,
            stacklevel=4,
        )


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    if not owner.get("pid"):
        return "holder unknown"
    text = f"pid {owner['pid']} on host {owner.get('host', '?')}"
    if owner.get("since"):
        text += f", since {owner['since']}"
    return text
