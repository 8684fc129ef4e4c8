"""Fault injection for reliability tests: die, or fail, at an exact point of a store write.

A :class:`Tripwire` counts *events* (store commands, SQL statements, commands
sent over a Redis connection) and fires at the N-th one. Firing either kills
the process with ``SIGKILL`` (the default: no ``finally``, no ``atexit``, no
flush, exactly like ``kill -9``) or raises an exception, for in-process tests.

Three places to hang a tripwire, from coarse to fine:

* :class:`FaultyBackend` wraps any backend object and counts every call that
  reaches the store (a command, a read made while watching, a pipeline's
  ``execute``). Works for every backend, in-process.
* :func:`arm_sqlite` counts SQL statements (every row of an ``executemany``
  too) on every SQLite connection opened afterwards in this process, so a kill
  lands *inside* a ``BEGIN IMMEDIATE … COMMIT`` batch.
* :func:`arm_redis` counts the commands redis-py writes to its sockets; when
  it fires in the middle of a ``MULTI … EXEC`` block it first sends the
  commands before the fatal one and half of that one, then dies, so the server
  sees a client vanish mid-transaction.

``arm_sqlite`` and ``arm_redis`` patch library functions for the whole
process: call them only in a child process made for the purpose (after
``os.fork()``), or undo them with the function they return.

:func:`inject_sqlite_errors` makes SQLite statements fail with a chosen native
error (``SQLITE_FULL`` by default), and :func:`tiny_filesystem` mounts a small
``tmpfs`` when the machine allows it, for a real "disk full".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
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
    "arm_redis",
    "arm_sqlite",
    "die",
    "inject_sqlite_errors",
    "split_resp",
    "sqlite_error",
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


# --------------------------------------------------------------------------- SQLite


_SQL_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT", "BEGIN IMMEDIATE")


def arm_sqlite(tripwire: Tripwire, *, writes_only: bool = True) -> Callable[[], None]:
    """Hit ``tripwire`` before SQL statements of SQLite connections opened from now on.

    Uses SQLite's trace hook, which sees every statement (and every row of an
    ``executemany``) just before it runs. With ``writes_only`` (the default)
    only statements of a write count: ``BEGIN IMMEDIATE``, every row written or
    deleted, and ``COMMIT``; a kill before a plain read proves nothing new.
    Only :func:`die` makes sense as the action: SQLite swallows exceptions
    raised inside the hook. Returns a function that restores ``sqlite3.connect``.
    """
    original = sqlite3.connect

    def traced(statement: str) -> None:
        if not writes_only or statement.lstrip().upper().startswith(_SQL_WRITES):
            tripwire.hit(statement[:60])

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = original(*args, **kwargs)
        conn.set_trace_callback(traced)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]

    def undo() -> None:
        sqlite3.connect = original

    return undo


def sqlite_error(
    message: str = "database or disk is full", code: int = 13, name: str = "SQLITE_FULL"
) -> sqlite3.OperationalError:
    """A native SQLite error as the sqlite3 module would raise it (default: disk full)."""
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    exc.sqlite_errorname = name
    return exc


class _FailingConnection(sqlite3.Connection):
    """A connection whose ``execute``/``executemany`` consult a tripwire first."""

    tripwire: Tripwire

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if not sql.lstrip().upper().startswith(("ROLLBACK", "PRAGMA")):
            self.tripwire.hit(sql[:60])
        return super().execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        tripwire = self.tripwire

        def each() -> Iterator[Any]:
            for row in rows:
                tripwire.hit(sql[:60])
                yield row

        return super().executemany(sql, each())


@contextlib.contextmanager
def inject_sqlite_errors(
    tripwire: Tripwire, error: Callable[[], BaseException] = sqlite_error
) -> Iterator[Tripwire]:
    """SQLite connections opened inside the block raise ``error()`` when ``tripwire`` fires.

    Statements (and ``executemany`` rows) are the events; ``ROLLBACK`` and
    ``PRAGMA`` never fail, so the backend can always clean up. The fallback
    for a real full disk when no small file system can be mounted.
    """
    original = sqlite3.connect

    def fire() -> None:
        raise error()

    tripwire.action = fire

    class Connection(_FailingConnection):
        pass

    Connection.tripwire = tripwire

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", Connection)
        conn: sqlite3.Connection = original(*args, **kwargs)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield tripwire
    finally:
        sqlite3.connect = original


# --------------------------------------------------------------------------- Redis


def split_resp(buffer: bytes) -> list[bytes]:
    """Split packed RESP commands (``*<n>\\r\\n`` + bulk strings) into one chunk per command.

    Anything that does not parse is returned as one chunk.
    """
    chunks: list[bytes] = []
    pos, n = 0, len(buffer)
    try:
        while pos < n:
            start = pos
            if buffer[pos : pos + 1] != b"*":
                raise ValueError("not an array")
            end = buffer.index(b"\r\n", pos)
            items = int(buffer[pos + 1 : end])
            pos = end + 2
            for _ in range(items):
                if buffer[pos : pos + 1] != b"$":
                    raise ValueError("not a bulk string")
                end = buffer.index(b"\r\n", pos)
                length = int(buffer[pos + 1 : end])
                pos = end + 2 + length + 2
            if pos > n:
                raise ValueError("truncated")
            chunks.append(buffer[start:pos])
    except ValueError:
        return [buffer]
    return chunks


_REDIS_READS = frozenset(
    {b"GET", b"HGET", b"HMGET", b"HGETALL", b"HKEYS", b"HLEN", b"HEXISTS", b"LRANGE",
     b"LINDEX", b"LLEN", b"EXISTS", b"TYPE", b"SCAN", b"WATCH", b"UNWATCH", b"PING",
     b"CLIENT", b"HELLO", b"AUTH", b"SELECT", b"INFO"}
)  # fmt: skip


def _command_name(chunk: bytes) -> bytes:
    """The command of one packed RESP command (``b""`` if it does not parse)."""
    parts = chunk.split(b"\r\n", 3)
    return parts[2].upper() if len(parts) > 2 else b""


def arm_redis(tripwire: Tripwire, *, writes_only: bool = True) -> Callable[[], None]:
    """Hit ``tripwire`` for commands redis-py sends, and once after each complete send.

    When the tripwire fires on a command, the commands before it and *half*
    of it are written to the socket first, then the action runs (default:
    :func:`die`), so the server sees exactly what a client killed mid-write
    would leave. The extra event after a complete send stands for "killed
    after the server got everything, before the reply was read". With
    ``writes_only`` (the default) reads and watches are not events, and a send
    without any write has no "(sent)" event. Returns a function that undoes
    the patch.
    """
    from redis.connection import AbstractConnection

    original: Callable[..., None] = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        if isinstance(command, str):
            command = [command.encode()]
        elif isinstance(command, bytes):
            command = [command]
        buffer = b"".join(bytes(item) for item in command)
        chunks = split_resp(buffer)
        events = [
            i
            for i, c in enumerate(chunks)
            if not writes_only or _command_name(c) not in _REDIS_READS
        ]
        remaining = tripwire.remaining()
        if remaining is not None and remaining <= len(events):
            fatal = events[remaining - 1]
            sent = b"".join(chunks[:fatal]) + chunks[fatal][: len(chunks[fatal]) // 2]
            if sent:
                original(self, [sent], check_health)
            for i in events[:remaining]:
                tripwire.hit(chunks[i][:40].decode(errors="replace"))
            return  # only reached when the action does not kill or raise
        for i in events:
            tripwire.hit(chunks[i][:40].decode(errors="replace"))
        original(self, [buffer], check_health)
        if events:
            tripwire.hit("(sent)")

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]

    def undo() -> None:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]

    return undo


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
    :func:`inject_sqlite_errors`. The mount is always removed on exit (lazily
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
