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
from itertools import chain
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

    def _apply_in_scope(
        self, conn: sqlite3.Connection, queue: list[tuple[Command, Call]]
    ) -> None: ...


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

    def commit_writes(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Apply a unit's writes in the held write scope and commit (``etcher.spec.ScopeCommits``).

        Core's writes are already bytes (keys text): pushes and ``hset`` of those
        go to the commands as they are; anything else is checked and normalized
        as the public commands do it.
        """
        conn = self._conn
        if conn is None or not self._write:
            raise TransactionError("commit_writes() needs a held write scope")
        bulk = _bulk_queue(writes) if len(writes) > BULK_WRITES else None
        if bulk is not None:
            self._backend._apply_in_scope(conn, bulk)
            self._conn = None
            self._backend._end_scope(conn, commit=True)
            return
        writes_ = ops.WRITES
        queue: list[tuple[Command, Call]] = []
        for name, args in writes:
            call: Call | None = None
            if args and type(args[0]) is str:
                if name == "rpush" or name == "lpush":
                    values = args[1:]
                    if values and set(map(type, values)) == _BYTES:
                        call = (args[0], list(values))
                elif name == "hset":
                    mapping = args[1]
                    kinds = set(map(type, mapping))
                    kinds.update(map(type, mapping.values()))
                    if kinds == _BYTES:
                        call = (args[0], dict(mapping))
            if call is None:
                # Anything else: the public command's own checks and normalization.
                if name == "hset":
                    call = _Queue.collect("hset", args[:1], {"mapping": args[1]})
                else:
                    call = _Queue.collect(name, args, {})
            queue.append((writes_[name], call))
        self._backend._apply_in_scope(conn, queue)
        self._conn = None
        self._backend._end_scope(conn, commit=True)


_BYTES = {bytes}

BULK_WRITES = 64
"""Above this many writes, :meth:`UnitScope.commit_writes` checks them all at once."""


def _bulk_queue(writes: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Command, Call]] | None:
    """The queue of a big unit's writes (a big new document: thousands of ``hset``/``rpush``).

    The types of every field, value and item are checked in one pass over all of
    them (C loops, no set per write), and an ``hset`` mapping is queued as it is,
    not copied: the commands only read it, and the unit is done with it. An
    ``hset`` or ``rpush`` that is the only write to its key goes to one
    ``create`` run, first (:func:`etcher_sqlite.ops.create_many`: no read of keys
    that are almost always new; no other write of the batch touches them, so the
    order does not matter). ``None`` when any write has another shape, or any value
    is not ``bytes``: then the per-write path (with the public commands' errors)
    takes the whole batch.
    """
    hset, rpush = ops.HSET, ops.RPUSH
    queue: list[tuple[Command, Call]] = []
    append = queue.append
    mappings: list[dict[Any, Any]] = []
    items: list[list[Any]] = []
    # Per key, its create call while it is the key's only write (None once it is not).
    creates: dict[str, Call | None] = {}
    for name, args in writes:
        if name == "hset":
            if len(args) != 2 or type(args[0]) is not str:
                return None
            key, mapping = args
            if type(mapping) is not dict or not mapping:
                return None
            mappings.append(mapping)
            call: Call = (key, mapping)
            kind = HASH
        elif name == "rpush":
            if len(args) < 2 or type(args[0]) is not str:
                return None
            key = args[0]
            values = list(args[1:])
            items.append(values)
            call = (key, values)
            kind = LIST
        else:
            call = _Queue.collect(name, args, {})
            for other in call[0] if name == "delete" else call[:1]:
                first = creates.get(other)
                if first is not None:  # no longer its key's only write: queued in order
                    append((rpush if first[1] == LIST else hset, (other, first[2])))
                creates[other] = None
            append((ops.WRITES[name], call))
            continue
        if key in creates:
            first = creates[key]
            if first is not None:
                append((rpush if first[1] == LIST else hset, (key, first[2])))
                creates[key] = None
            append((rpush if kind == LIST else hset, call))
        else:
            creates[key] = (key, kind, call[1])
    kinds = set(map(type, chain.from_iterable(mappings)))
    kinds.update(map(type, chain.from_iterable(map(dict.values, mappings))))
    kinds.update(map(type, chain.from_iterable(items)))
    if kinds and kinds != _BYTES:
        return None
    create = ops.CREATE
    return [(create, call) for call in creates.values() if call is not None] + queue


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
