"""Fault injection at the SQLite driver, for etcher's reliability tests (no stability promise).

Moved here from etcher-core's private harness because it patches ``sqlite3``
itself: :func:`arm_sqlite` counts the SQL statements of every connection opened
afterwards (a tripwire of :mod:`etcher.testing._harness.faults` decides when to
die), and :func:`inject_sqlite_errors` makes statements fail with a native
SQLite error (``SQLITE_FULL`` by default), for "disk full" where no small file
system can be mounted. Both patch ``sqlite3.connect`` for the whole process.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from etcher.testing._harness.faults import Tripwire

__all__ = [
    "StatementCounter",
    "arm_sqlite",
    "count_statements",
    "inject_sqlite_errors",
    "sqlite_error",
]


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

    def fire() -> None:
        raise error()

    tripwire.action = fire

    class Connection(_FailingConnection):
        pass

    Connection.tripwire = tripwire
    with _connections_made_by(Connection):
        yield tripwire


class StatementCounter(Counter[str]):
    """Statements run by SQLite connections, by first word (``SELECT``, ``INSERT`` ...).

    An ``executemany`` counts once, under its first word plus ``"(many)"``: what is
    counted is the statements the backend hands to SQLite, each with its own
    Python call and prepare/step/reset cycle, not the rows they touch.
    ``total()`` is every statement counted.
    """

    def record(self, sql: str, many: bool = False) -> None:
        """Count ``sql``."""
        self[sql.split(None, 1)[0].upper() + ("(many)" if many else "")] += 1


@contextlib.contextmanager
def count_statements() -> Iterator[StatementCounter]:
    """Count the statements of SQLite connections opened inside the block.

    Open the backend inside the block (its connections are made then); call
    ``counter.clear()`` before the operation measured.
    """
    counter = StatementCounter()

    class Counting(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            counter.record(sql)
            return super().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
            counter.record(sql, many=True)
            return super().executemany(sql, *args)

    with _connections_made_by(Counting):
        yield counter


@contextlib.contextmanager
def _connections_made_by(factory: type[sqlite3.Connection]) -> Iterator[None]:
    """Inside the block, ``sqlite3.connect`` makes ``factory`` connections unless told otherwise."""
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", factory)
        conn: sqlite3.Connection = original(*args, **kwargs)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = original
