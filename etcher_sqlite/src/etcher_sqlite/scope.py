"""Unit scopes: one SQLite transaction held for a whole unit of work.

Core's optimistic path watches every key it reads, re-reads their versions at
commit and wraps each read batch in its own transaction. On SQLite a unit can
instead hold one transaction from its first read to its commit: ``BEGIN
IMMEDIATE`` (the write lock, which SQLite takes anyway at commit) for units
that write, a plain ``BEGIN`` (a WAL read snapshot, blocking nobody) for units
that only read. Nothing read can then change, so nothing needs watching.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Protocol

from etcher.errors import TransactionError
from etcher_sqlite import ops
from etcher_sqlite.commands import CommandsMixin
from etcher_sqlite.ops import Call, Command
from etcher_sqlite.schema import HASH, LIST

if TYPE_CHECKING:
    from types import TracebackType


class _Holder(Protocol):
    """What a scope needs from its backend."""

    def _begin_scope(self, write: bool) -> sqlite3.Connection | None: ...

    def _end_scope(self, conn: sqlite3.Connection, commit: bool) -> None: ...

    def _error(self, exc: sqlite3.Error) -> Exception: ...


class UnitScope:
    """The context manager behind ``SQLiteBackend.unit_scope`` (see ``etcher.spec.UnitScopes``)."""

    __slots__ = ("_backend", "_conn", "_write")

    def __init__(self, backend: _Holder, write: bool) -> None:
        self._backend = backend
        self._write = write
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> bool:
        self._conn = self._backend._begin_scope(self._write)
        return self._conn is not None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._backend._end_scope(conn, commit=exc_type is None)

    takes_created = True
    """``commit_writes()`` takes the unit's new keys (``etcher.spec.ScopeCommits``)."""

    def commit_writes(
        self, writes: list[tuple[str, tuple[Any, ...]]], created: Collection[str] = ()
    ) -> None:
        """Apply a unit's writes in the held write scope and commit (``etcher.spec.ScopeCommits``).

        Core's writes are already bytes (keys text): pushes, pops and ``hset`` of
        those go to the commands as they are; anything else is checked and
        normalized as the public commands do it. ``created`` are keys the unit
        made as new nodes: their rows are known to be absent, so they are not
        looked up.
        """
        conn = self._conn
        if conn is None or not self._write:
            raise TransactionError("commit_writes() needs a held write scope")
        tx: ops.Tx | None = getattr(ops.SCOPE, "tx", None)
        if tx is None or tx.conn is not conn:
            tx = ops.Tx(conn)
        cache, dirty = tx.meta, tx.dirty
        backend = self._backend
        try:
            if created:
                for key in created:
                    if key not in cache:
                        cache[key] = None
            # Consecutive writes of one command form a run, handed to its batched form.
            runs: list[tuple[Command, list[Call]]] = []
            last: Command | None = None
            calls: list[Call] = []
            for name, args in writes:
                call: Call | None = None
                if args and type(args[0]) is str:
                    key = args[0]
                    if name == "hset":
                        mapping = args[1]
                        kinds = set(map(type, mapping))
                        kinds.update(map(type, mapping.values()))
                        if kinds == _BYTES:
                            if mapping and cache.get(key, _ROW) is None and key in created:
                                # A new node's first write: it is the whole row, packed at
                                # flush (no command, no copy).
                                cache[key] = [HASH, 0, len(mapping), None, mapping]
                                dirty[key] = None
                                continue
                            call = (key, dict(mapping))
                    elif name == "rpush" or name == "lpush":
                        values = args[1:]
                        if values and set(map(type, values)) == _BYTES:
                            if name == "rpush" and cache.get(key, _ROW) is None and key in created:
                                cache[key] = [LIST, 0, len(values), None, list(values)]
                                dirty[key] = None
                                continue
                            call = (key, list(values))
                    elif name == "lpop" or name == "rpop":
                        if len(args) == 1:
                            call = (key, None)
                        elif len(args) == 2 and type(args[1]) is int and 0 <= args[1] <= _MAX:
                            call = args
                if call is None:
                    # Anything else: the public command's own checks and normalization.
                    if name == "hset":
                        call = _Queue.collect("hset", args[:1], {"mapping": args[1]})
                    else:
                        call = _Queue.collect(name, args, {})
                command = _WRITES[name]
                if command is not last:
                    last = command
                    calls = []
                    runs.append((command, calls))
                calls.append(call)
            if len(runs) == 1:
                # ops.apply_runs(), inline for a small unit's one run (an append, a pop).
                runs[0][0].many(tx, runs[0][1])
                tx.flush()
            else:
                ops.apply_runs(tx, runs)
        except BaseException as exc:
            # The Tx may hold rows never flushed: it must not outlive this failure.
            ops.drop_scoped_tx(conn)
            if isinstance(exc, sqlite3.Error):
                raise backend._error(exc) from exc
            raise
        self._conn = None
        backend._end_scope(conn, commit=True)


_WRITES = ops.WRITES
_BYTES = {bytes}
_MAX = ops.INT64_MAX
_ROW = object()  # a key whose row is not cached


class _Queue(CommandsMixin):
    """Runs a public command's argument checks and keeps the (command, call) it makes."""

    __slots__ = ("queue",)

    def __init__(self) -> None:
        self.queue: list[tuple[Command, Call]] = []

    def _call(self, command: Command, call: Call) -> Any:
        self.queue.append((command, call))
        return None

    @classmethod
    def collect(cls, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """The normalized call of public command ``name`` (its errors raised as it raises them)."""
        collector = cls()
        getattr(collector, name)(*args, **kwargs)
        ((_, call),) = collector.queue
        return call
