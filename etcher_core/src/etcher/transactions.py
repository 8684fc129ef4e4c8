"""Optimistic transactions: the published transactor API and the Python-shaped one.

A transaction is one :class:`~etcher.unit.Unit` that spans several
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

from etcher.db import DB
from etcher.errors import EtcherTypeError, TransactionError
from etcher.graph import Graph
from etcher.unit import CallerCode, DirectReader, RetryPolicy, Unit

T = TypeVar("T")

# The databases (store id, namespace) with a scoped transaction open in this thread/task.
_OPEN: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("etcher_open_transactions", default=())


@contextmanager
def _only_one(db: DB) -> Iterator[None]:
    """Mark a scoped transaction on ``db`` as open here; refuse one nested inside another."""
    key = (db._store_id, db._layout.prefix)
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


def _in_savepoint(unit: Unit, call: Callable[[], T]) -> T:
    """Run one operation of a transaction so that it applies all of its writes or none."""
    while True:
        unit.savepoint()
        try:
            result = call()
        except CallerCode as needed:
            unit.rollback()
            needed.work()  # caller code: between the operation's tries, never inside one
            continue
        except BaseException:
            unit.rollback()
            raise
        unit.release()
        return result


class Transactor(DB):
    """A view of a DB whose reads and writes go through one transaction at a time.

    Outside ``watch()``…``execute()`` it behaves like the DB it came from.
    Handles obtained through it read and write through its transaction too.
    A transactor belongs to one thread.
    """

    def __init__(self, db: DB) -> None:
        # Share everything with the parent DB: same backend, namespace and uid factory. Not
        # its cached root handle, which is bound to the parent and would bypass this view.
        self.__dict__.update(db.__dict__)
        self.__dict__.pop("_root", None)
        self._parent = db
        self._owns_backend = False
        self._unit: Unit | None = None
        self._queued = False

    # --- plumbing ----------------------------------------------------------------
    def _reader(self) -> DirectReader | Unit:
        return self._unit if self._unit is not None else self._direct

    def _mutate(self, fn: Callable[[Graph], T]) -> T:
        unit = self._unit
        if unit is None:
            return super()._mutate(fn)
        return _in_savepoint(unit, lambda: fn(Graph(self._layout, unit)))

    def _snapshot(self, fn: Callable[[Graph], T]) -> T:
        unit = self._unit
        if unit is None:
            return super()._snapshot(fn)
        # Reads may write too (a deleted namespace's root is recreated): same guarantee.
        return _in_savepoint(unit, lambda: fn(Graph(self._layout, unit)))

    def _release_pin(self, uid: str, pid: int | None = None) -> None:
        self._parent._release_pin(uid, pid)

    def incr(self, key: str, amount: int = 1) -> int:
        """Add to a counter; inside a transaction the change is applied with it."""
        if self._unit is None:
            return super().incr(key, amount)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise EtcherTypeError("the increment must be an int")
        ckey = self._counter_key(key)
        raw = self._unit.get(ckey)
        value = (int(raw) if raw is not None else 0) + amount
        self._unit.set(ckey, b"%d" % value)
        return value

    # --- published API -----------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """True between ``watch()`` (or ``multi()``) and ``execute()``/``reset()``."""
        return self._unit is not None

    def watch(self) -> None:
        """Begin a transaction: from now on every read through this transactor is watched.

        Calling it again before any write restarts the transaction; once writes
        are pending it raises :class:`~etcher.errors.TransactionError` (as
        Redis refuses ``WATCH`` inside ``MULTI``) rather than drop them.
        """
        if self._unit is not None and self._unit.has_writes:
            raise TransactionError(
                "watch() with writes pending in this transaction would drop them; "
                "execute() or reset() first"
            )
        self.reset()
        self._unit = Unit(self._backend)

    def multi(self) -> None:
        """Mark the start of the writes (they are buffered until ``execute()``)."""
        if self._unit is None:
            self._unit = Unit(self._backend)
        self._queued = True

    def execute(self) -> None:
        """Apply the transaction's writes atomically; ``WatchError`` if something read changed."""
        unit = self._unit
        if unit is None:
            raise TransactionError("execute() without watch() or multi()")
        self._unit = None
        self._queued = False
        unit.commit()

    def reset(self) -> None:
        """Abandon the current transaction (nothing of it is written)."""
        if self._unit is not None:
            self._unit.close()
        self._unit = None
        self._queued = False

    discard = reset

    def transact(  # type: ignore[override]  # published signature: fn takes no argument
        self, fn: Callable[[], T], *, retry: RetryPolicy | None = None
    ) -> T:
        """Run ``fn()`` between ``watch()`` and ``execute()``, retrying on ``WatchError``.

        An exception raised by ``fn`` aborts the attempt (nothing is written)
        and propagates without a retry. Calling it while this transactor (or a
        scoped transaction on the same database) is already in a transaction
        raises :class:`~etcher.errors.TransactionError`: transactions do not nest.
        """
        if self._unit is not None and self._unit.has_writes:
            raise TransactionError(
                "transact() inside an open transaction of the same transactor; transactions "
                "do not nest: call fn() directly, its work joins the open transaction"
            )
        policy = retry or self._retry
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
        return Transactor(self._parent)

    def close(self) -> None:
        """Abandon any open transaction; the parent DB stays open."""
        self.reset()


def _call_checked(t: Transactor, fn: Callable[[], T]) -> T:
    """Call ``fn``; if it raises after reading outdated data, report a conflict instead."""
    try:
        return fn()
    except Exception as exc:
        if t._unit is not None:
            t._unit.raise_if_stale(exc)
        raise


@contextmanager
def transaction(db: DB) -> Iterator[Transactor]:
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
                if t._unit is not None:
                    t._unit.raise_if_stale(exc)
            finally:
                t.reset()
            raise
        except BaseException:
            t.reset()
            raise
        t.execute()


def transact(db: DB, fn: Callable[[Transactor], T], policy: RetryPolicy) -> T:
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
