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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from etcher.db import DB
from etcher.errors import TransactionError
from etcher.graph import Graph
from etcher.unit import DirectReader, RetryPolicy, Unit

T = TypeVar("T")


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
        if self._unit is None:
            return super()._mutate(fn)
        return fn(Graph(self._layout, self._unit))

    def _snapshot(self, fn: Callable[[Graph], T]) -> T:
        if self._unit is None:
            return super()._snapshot(fn)
        return fn(Graph(self._layout, self._unit))

    def _release_pin(self, uid: str, pid: int | None = None) -> None:
        self._parent._release_pin(uid, pid)

    def incr(self, key: str, amount: int = 1) -> int:
        """Add to a counter; inside a transaction the change is applied with it."""
        if self._unit is None:
            return super().incr(key, amount)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("the increment must be an int")
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
        """Begin a transaction: from now on every read through this transactor is watched."""
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
        and propagates without a retry.
        """
        policy = retry or self._retry
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

    return policy.call(attempt)


__all__ = ["Transactor", "transact", "transaction"]
