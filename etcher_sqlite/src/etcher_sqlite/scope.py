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
from typing import TYPE_CHECKING, Protocol

from etcher_sqlite import ops

if TYPE_CHECKING:
    from types import TracebackType


class _Holder(Protocol):
    """What a scope needs from its backend."""

    def _begin_scope(self, write: bool) -> sqlite3.Connection | None: ...

    def _end_scope(self, conn: sqlite3.Connection, commit: bool) -> None: ...


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


def begin(conn: sqlite3.Connection, write: bool) -> bool:
    """Open the scope's transaction; ``False`` if this connection is already in one."""
    if conn.in_transaction:
        return False
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    if write:
        ops.SCOPE.tx = ops.Tx(conn)
    return True


def end(conn: sqlite3.Connection, commit: bool) -> None:
    """Commit (or roll back) the scope's transaction; a failed commit is rolled back."""
    ops.drop_scoped_tx(conn)
    if not commit:
        ops.rollback(conn)
        return
    try:
        conn.execute("COMMIT")
    except BaseException:
        ops.rollback(conn)
        raise
