"""Optimistic transactions: the published transactor API and the Python-shaped one.

A transaction is one :class:`~etcher._unit.Unit` that spans several
operations. Everything read through it is watched, so it conflicts only when
something it actually read (or wrote) changed; everything written through it
is buffered, seen by its own later reads, and applied all at once at the end.

Published API::

    t = db.transactor()
    def txn():
        xs = t["numbers"]() if "numbers" in t else []
        t.multi()
        t["numbers"] = xs + [7, 8]
    t.transact(txn)                 # retries on WatchError

Python-shaped API::

    with db.transaction() as t:     # one attempt; WatchError on conflict
        t["n"] = t.get("n", 0) + 1

    db.transact(lambda t: t.update(n=t.get("n", 0) + 1))   # retried

Every operation inside a transaction is all or nothing on its own too: an
operation that raises (a refused value, a slice of the wrong size ...) leaves
none of its writes in the transaction, so catching its error and committing
the rest is safe. Each operation runs inside a savepoint of the unit.

Transactions do not nest. While ``with db.transaction()``, ``db.transact()``
or ``t.transact()`` runs, starting another of these on the same database (same
store and namespace) in the same thread or task raises
:class:`~etcher.errors.TransactionError` before anything is written; the
outer transaction is unaffected and can go on or be left. An inner commit
could not be undone if the outer one failed, and the outer one's retries
would commit the inner one again each time, so the inner work belongs in the
outer transaction: use its ``t``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from etcher._namespace import Namespace
from etcher._session import TransactionSession
from etcher._unit import RetryPolicy, Unit
from etcher.errors import EtcherTypeError, TransactionError

T = TypeVar("T")

# The databases (store id, namespace) with a scoped transaction open in this thread/task.
_OPEN: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("etcher_open_transactions", default=())


@contextmanager
def _only_one(db: Namespace) -> Iterator[None]:
    """Mark a scoped transaction on ``db`` as open here; refuse one nested inside another."""
    key = (db._session.store_id, db._session.prefix)
    open_now = _OPEN.get()
    if key in open_now:
        raise TransactionError(
            "a transaction on this database is already open in this thread; transactions "
            "do not nest: do this work through the outer transaction's t, so that it "
            "commits (or not) together with the rest"
        )
    token = _OPEN.set((*open_now, key))
    try:
        yield
    finally:
        try:
            _OPEN.reset(token)
        except ValueError:  # left from another context (a generator finalized elsewhere)
            _OPEN.set(tuple(k for k in _OPEN.get() if k != key))


class Transactor(Namespace):
    """A view of a DB whose reads and writes go through one transaction at a time.

    Outside ``watch()``…``execute()`` it behaves like the DB it came from.
    Handles obtained through it read and write through its transaction too.
    A transactor belongs to one thread.
    """

    _session: TransactionSession

    def __init__(self, db: Namespace) -> None:
        parent = db._session
        if isinstance(parent, TransactionSession):  # a transactor of a transactor: same DB
            parent = parent.parent
        super().__init__(TransactionSession(parent, self))
        self._queued = False

    @property
    def _unit(self) -> Unit | None:
        return self._session.unit

    def incr(self, key: str, amount: int = 1) -> int:
        """Add to a counter; inside a transaction the change is applied with it."""
        unit = self._session.unit
        if unit is None:
            return super().incr(key, amount)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise EtcherTypeError("the increment must be an int")
        ckey = self._counter_key(key)
        raw = unit.get(ckey)
        value = (int(raw) if raw is not None else 0) + amount
        unit.set(ckey, b"%d" % value)
        return value

    # --- published API -----------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """True between ``watch()`` (or ``multi()``) and ``execute()``/``reset()``."""
        return self._session.unit is not None

    def watch(self) -> None:
        """Begin a transaction: from now on every read through this transactor is watched.

        Calling it again before any write restarts the transaction; once writes
        are pending it raises :class:`~etcher.errors.TransactionError` (as
        Redis refuses ``WATCH`` inside ``MULTI``) rather than drop them.
        """
        session = self._session
        if session.unit is not None and session.unit.has_writes:
            raise TransactionError(
                "watch() with writes pending in this transaction would drop them; "
                "execute() or reset() first"
            )
        self.reset()
        session.unit = Unit(session.backend)

    def multi(self) -> None:
        """Mark the start of the writes (they are buffered until ``execute()``)."""
        session = self._session
        if session.unit is None:
            session.unit = Unit(session.backend)
        self._queued = True

    def execute(self) -> None:
        """Apply the transaction's writes atomically; ``WatchError`` if something read changed."""
        session = self._session
        unit = session.unit
        if unit is None:
            raise TransactionError("execute() without watch() or multi()")
        session.unit = None
        self._queued = False
        unit.commit()

    def reset(self) -> None:
        """Abandon the current transaction (nothing of it is written)."""
        session = self._session
        if session.unit is not None:
            session.unit.close()
        session.unit = None
        self._queued = False

    discard = reset

    def transact(self, fn: Callable[[], T], *, retry: RetryPolicy | None = None) -> T:
        """Run ``fn()`` between ``watch()`` and ``execute()``, retrying on ``WatchError``.

        An exception raised by ``fn`` aborts the attempt (nothing is written)
        and propagates without a retry. Calling it while this transactor (or a
        scoped transaction on the same database) is already in a transaction
        raises :class:`~etcher.errors.TransactionError`: transactions do not nest.
        """
        unit = self._session.unit
        if unit is not None and unit.has_writes:
            raise TransactionError(
                "transact() inside an open transaction of the same transactor; transactions "
                "do not nest: call fn() directly, its work joins the open transaction"
            )
        policy = retry or self._session.retry
        with _only_one(self):
            return policy.call(lambda: self._attempt(fn))

    def _attempt(self, fn: Callable[[], T]) -> T:
        self.watch()
        try:
            result = _call_checked(self, fn)
            self.execute()
            return result
        finally:
            self.reset()

    def transactor(self) -> Transactor:
        """A fresh transactor on the same DB."""
        return Transactor(self)

    def close(self) -> None:
        """Abandon any open transaction; the parent DB stays open."""
        self.reset()


def _call_checked(t: Transactor, fn: Callable[[], T]) -> T:
    """Call ``fn``; if it raises after reading outdated data, report a conflict instead."""
    try:
        return fn()
    except Exception as exc:
        if t._session.unit is not None:
            t._session.unit.raise_if_stale(exc)
        raise


@contextmanager
def transaction(db: Namespace) -> Iterator[Transactor]:
    """One optimistic attempt: commit on normal exit, discard on an exception.

    An exception from the block propagates, unless the block had read data
    that changed meanwhile: then it saw an inconsistent state, and the
    transaction fails with ``WatchError`` (the original error chained).
    """
    with _only_one(db):
        t = Transactor(db)
        t.watch()
        try:
            yield t
        except Exception as exc:
            try:
                if t._session.unit is not None:
                    t._session.unit.raise_if_stale(exc)
            finally:
                t.reset()
            raise
        except BaseException:
            t.reset()
            raise
        t.execute()


def transact(db: Namespace, fn: Callable[[Transactor], T], policy: RetryPolicy) -> T:
    """Run ``fn(t)`` in a fresh transaction per attempt, retrying on conflicts."""

    def attempt() -> T:
        t = Transactor(db)
        t.watch()
        try:
            result = _call_checked(t, lambda: fn(t))
            t.execute()
            return result
        finally:
            t.reset()

    with _only_one(db):
        return policy.call(attempt)


__all__ = ["Transactor", "transact", "transaction"]
