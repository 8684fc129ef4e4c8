"""Fault injection for reliability tests: die, or fail, at an exact point of a store write.

Private harness (see :mod:`etcher.testing._harness`): no stability promise.

A :class:`Tripwire` counts *events* (store commands, SQL statements, commands
sent over a Redis connection) and fires at the N-th one. Firing either kills
the process with ``SIGKILL`` (the default: no ``finally``, no ``atexit``, no
flush, exactly like ``kill -9``) or raises an exception, for in-process tests.

Three places to hang a tripwire, from coarse to fine:

* :class:`FaultyBackend` (here) wraps any backend object and counts every call
  that reaches the store (a command, a read made while watching, a pipeline's
  ``execute``). Works for every backend, in-process.
* ``etcher_sqlite.testing.arm_sqlite`` counts SQL statements (every row of an
  ``executemany`` too) on every SQLite connection opened afterwards in this
  process, so a kill lands *inside* a ``BEGIN IMMEDIATE … COMMIT`` batch.
* ``etcher_redis.testing.faults.arm_redis`` counts the commands redis-py writes
  to its sockets; when it fires in the middle of a ``MULTI … EXEC`` block it
  first sends the commands before the fatal one and half of that one, then
  dies, so the server sees a client vanish mid-transaction.

The two driver-level hooks live with their backends because they patch that
backend's driver (``sqlite3``, redis-py); they patch library functions for the
whole process: call them only in a child process made for the purpose (after
``os.fork()``), or undo them with the function they return.

``etcher_sqlite.testing.inject_sqlite_errors`` makes SQLite statements fail with
a chosen native error, and :func:`tiny_filesystem` mounts a small ``tmpfs`` when
the machine allows it, for a real "disk full".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from etcher.spec import Capabilities, StorageBackend

__all__ = [
    "FaultyBackend",
    "FaultyPipeline",
    "TinyFilesystem",
    "Tripwire",
    "die",
    "tiny_filesystem",
]


def die() -> NoReturn:
    """Kill this process with ``SIGKILL``: nothing after this line runs, nothing is flushed."""
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # pragma: no cover - only if SIGKILL could not be delivered


class Tripwire:
    """Counts events and fires at event number ``at`` (1-based); ``at=None`` only counts.

    :param at: the event that fires, or ``None`` to count without firing
        (a dry run, to learn how many events an operation makes).
    :param action: what firing does; default :func:`die`. Pass a callable
        that raises to inject an error in-process instead.
    """

    def __init__(self, at: int | None = None, action: Callable[[], Any] | None = None) -> None:
        if at is not None and at < 1:
            raise ValueError("events are counted from 1")
        self.at = at
        self.action: Callable[[], Any] = action or die
        self.count = 0
        self.fired = False
        self.labels: list[str] = []

    def remaining(self) -> int | None:
        """Events left before firing (1 means the next one fires); ``None`` when disarmed."""
        if self.at is None or self.fired:
            return None
        return self.at - self.count

    def hit(self, label: str = "") -> None:
        """Count one event; fire if it is the chosen one."""
        self.count += 1
        if label:
            self.labels.append(label)
        if self.at is not None and not self.fired and self.count == self.at:
            self.fired = True
            self.action()

    def disarm(self) -> None:
        """Stop firing (counting goes on)."""
        self.at = None

    def __repr__(self) -> str:
        return f"<Tripwire at={self.at} count={self.count} fired={self.fired}>"


# --------------------------------------------------------------------------- any backend


class FaultyPipeline:
    """A pipeline whose store round trips each hit the owner's tripwire first."""

    def __init__(self, owner: FaultyBackend, inner: Any) -> None:
        self._owner = owner
        self._inner = inner
        self._immediate = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._immediate:  # a read made while watching goes to the store now
                self._owner.tripwire.hit(name)
                return attr(*args, **kwargs)
            attr(*args, **kwargs)
            return self

        return call

    def watch(self, *names: Any) -> Any:
        self._owner.tripwire.hit("watch")
        self._immediate = True
        return self._inner.watch(*names)

    def multi(self) -> None:
        self._immediate = False
        self._inner.multi()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        self._immediate = False
        try:
            self._owner.tripwire.hit("execute")
        except BaseException:
            self._inner.reset()
            raise
        return self._inner.execute(raise_on_error)  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._immediate = False
        self._inner.reset()

    def unwatch(self) -> Any:
        return self._inner.unwatch()

    def __len__(self) -> int:
        return len(self._inner)

    def __enter__(self) -> FaultyPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


class FaultyBackend:
    """Wraps ``inner``; every call that reaches the store hits ``tripwire`` before it runs.

    With an action that raises, this simulates a store that fails at an exact
    point of an operation (a lost connection, a full disk) without killing
    anything, so it also works for in-memory backends.
    """

    def __init__(self, inner: StorageBackend, tripwire: Tripwire) -> None:
        self.inner = inner
        self.tripwire = tripwire
        self.capabilities: Capabilities = inner.capabilities

    def pipeline(self, transaction: bool = True) -> FaultyPipeline:
        return FaultyPipeline(self, self.inner.pipeline(transaction))

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        self.tripwire.hit("scan_iter")
        return self.inner.scan_iter(match=match, count=count)

    def close(self) -> None:
        self.inner.close()

    def maintenance(self) -> None:
        self.inner.maintenance()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.tripwire.hit(name)
            return attr(*args, **kwargs)

        return call


# --------------------------------------------------------------------------- disk full


class TinyFilesystem:
    """A mounted ``tmpfs`` of a fixed size (see :func:`tiny_filesystem`)."""

    def __init__(self, path: Path, size_kib: int) -> None:
        self.path = path
        self.size_kib = size_kib

    def resize(self, size_kib: int) -> None:
        """Grow (or shrink) the file system in place, e.g. to "free disk space"."""
        _run(["mount", "-o", f"remount,size={size_kib}k", str(self.path)])
        self.size_kib = size_kib


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def tiny_filesystem(path: str | os.PathLike[str], size_kib: int) -> Iterator[TinyFilesystem | None]:
    """Mount a ``tmpfs`` of ``size_kib`` KiB on directory ``path``; yield ``None`` if impossible.

    Needs root and a working ``mount``; anything else (no permission, no
    ``mount`` binary, a timeout) yields ``None`` so the caller can fall back to
    ``etcher_sqlite.testing.inject_sqlite_errors``. The mount is always removed on exit (lazily
    if something still holds it open).
    """
    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None or shutil.which("umount") is None:
        yield None
        return
    try:
        _run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(target)])
    except (OSError, subprocess.SubprocessError):
        yield None
        return
    try:
        yield TinyFilesystem(target, size_kib)
    finally:
        try:
            _run(["umount", str(target)])
        except (OSError, subprocess.SubprocessError):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _run(["umount", "-l", str(target)])
