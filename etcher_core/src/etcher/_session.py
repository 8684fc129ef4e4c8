"""The session: what every operation on one namespace needs, below the DB and the handles.

A :class:`Session` owns the store connection and the per-process state of
one open namespace: the backend, its :class:`~etcher._layout.Layout`, the
uid factory, the retry policy, the direct reader, the queue of pins to
release, the store identity, the garbage reclaimer and the ``popitem``
order hints. Handles (:class:`~etcher._containers.RD`/``RL``) hold a session
and call it directly; the :class:`~etcher._db.DB` façade opens one and
exposes the public API over it.

Operations go through four entry points:

* :meth:`Session.reader` for single reads (atomic each, nothing watched);
* :meth:`Session.mutate` runs ``fn(graph)`` as one retried write unit;
* :meth:`Session.snapshot` runs a read-only ``fn(graph)`` on one consistent state;
* :meth:`Session.list_end` runs a list write at an end as one held scope, where the
  backend allows it (:mod:`etcher._listends`), else answers that ``mutate`` must;
* :meth:`Session.handle` makes a handle for a uid.

A :class:`TransactionSession` is the same namespace bound to one open
transaction unit (while it has one): its reads are watched and its writes
buffered in that unit. It shares everything else with the session it was
made from.
"""

from __future__ import annotations

import collections
import gc
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from etcher._graph import Graph
from etcher._layout import DEAD, ROOT, Layout, UidFactory
from etcher._listends import NOT_DONE, end_write
from etcher._materialize import FALLBACK, materialize, materialize_direct
from etcher._reclaim import Reclaimer
from etcher._unit import CallerCode, DirectReader, Reader, RetryPolicy, Unit
from etcher.errors import ClosedError, WatchError

if TYPE_CHECKING:
    from etcher.spec import StorageBackend

T = TypeVar("T")


class OrderHints:
    """Per-process memory of dict item order, so repeated ``popitem()`` calls are O(1).

    For a few recently popped dicts it keeps ``(stamp, [(field, seq), ...])``:
    the dict's next-sequence header when the order was read, and the items
    below the last one popped, oldest first. An entry is only a hint: every
    use re-checks, inside the unit, that the stamp is unchanged (nothing was
    inserted since) and that the chosen item still holds its sequence number.
    """

    __slots__ = ("_entries", "_lock")

    LIMIT = 16
    """Dicts remembered at once (least recently used are forgotten)."""

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[
            str, tuple[bytes | None, list[tuple[bytes, int]]]
        ] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, uid: str) -> tuple[bytes | None, list[tuple[bytes, int]]] | None:
        with self._lock:
            entry = self._entries.get(uid)
            if entry is not None:
                self._entries.move_to_end(uid)
            return entry

    def remember(self, uid: str, stamp: bytes | None, order: list[tuple[bytes, int]]) -> None:
        with self._lock:
            self._entries[uid] = (stamp, order)
            self._entries.move_to_end(uid)
            while len(self._entries) > self.LIMIT:
                self._entries.popitem(last=False)

    def trim(self, uid: str, used: Any, cut: int) -> None:
        """Drop the popped item and the ones found gone above it (never re-added: a
        re-insertion changes the stamp)."""
        with self._lock:
            entry = self._entries.get(uid)
            if entry is not None and entry is used:
                del entry[1][cut:]

    def forget(self, uid: str) -> None:
        with self._lock:
            self._entries.pop(uid, None)

    def reset_after_fork(self) -> None:
        """Start empty with a fresh lock (in a forked child, where another thread of the
        parent may have held the old one: acquiring it could block forever)."""
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()


class ItemGuess:
    """Whether an assignment should first try the one-round-trip path (``assume_item``).

    That guess fails, costing a round trip, when the field links a node (a
    document replaced by another). Each failure in a row doubles how many of
    the next assignments of the session skip the guess, up to 64; one that
    works ends the streak. A heuristic only: a wrong choice costs time, never data.

    A session starts as if it had just met a link (``links`` = :data:`LINK_RUN`):
    its first scalar assignments carry an unlink plan, so a fresh process that
    overwrites a document with a scalar pays one round trip, not the refused guess,
    the read and the commit (three). A session whose first :data:`LINK_RUN`
    scalars collect nothing stops carrying it, so a long run of scalar writes
    costs what it did.
    """

    __slots__ = ("backoff", "links", "misses", "skip")

    def __init__(self) -> None:
        self.skip = 0
        self.backoff = 0
        self.misses = 0
        self.links = LINK_RUN

    def allowed(self) -> bool:
        """Whether the next assignment may guess (counts down a skip)."""
        if self.skip:
            self.skip -= 1
            return False
        return True

    def missed(self, backoff: bool = True) -> None:
        """An assignment found a link where it guessed none. ``backoff=False``: it carried
        no unlink plan, which the next ones will (:meth:`met_link`): no skip for that."""
        self.misses += 1
        if not backoff:
            return
        self.backoff = min(2 * self.backoff or 1, 64)
        self.skip = self.backoff

    def hit(self) -> None:
        """An assignment that guessed did not miss."""
        self.backoff = 0

    def met_link(self) -> None:
        """An assignment met a link it could have had collected by its commit (an unlink
        plan): the next :data:`LINK_RUN` scalar assignments carry one (:meth:`planned`)."""
        self.links = LINK_RUN

    def planned(self) -> bool:
        """Whether a scalar's assignment should carry an unlink plan (counts one down).

        The plan costs a scalar's assignment over nothing ~5 us of client and server
        time; it saves one or two round trips over a link. So only a session that met
        links lately carries it, until that many assignments in a row collected nothing.
        """
        if self.links:
            self.links -= 1
            return True
        return False


LINK_RUN = 32
"""Scalar assignments that carry an unlink plan after the last link one met (:class:`ItemGuess`)."""


class Session:
    """One open namespace of one store: the state and plumbing its operations share.

    The attributes are plain (no properties) because handles read them on
    every access. ``owner`` is the public object handles report as their
    ``.db``; ``make_handle(session, uid)`` builds a handle (given by the layer
    that defines handles, so this module does not depend on it).
    """

    __slots__ = (
        "__weakref__",
        "backend",
        "closed",
        "delete_guess",
        "direct",
        "hints",
        "item_guess",
        "layout",
        "link_field",
        "list_ends",
        "make_handle",
        "owner",
        "prefix",
        "reclaim",
        "retry",
        "store_id",
        "uids",
        "unpins",
    )

    # Whether a plain assignment may skip the unit of work (etcher._writer.assign_plain):
    # not in a transaction, whose writes its unit buffers.
    plain_writes = True

    backend: StorageBackend
    closed: bool
    delete_guess: ItemGuess
    direct: DirectReader
    hints: OrderHints
    item_guess: ItemGuess
    layout: Layout
    link_field: str
    list_ends: bool
    make_handle: Callable[[Session, str], Any]
    owner: Any
    prefix: str
    reclaim: Reclaimer
    retry: RetryPolicy
    store_id: str
    uids: UidFactory
    unpins: collections.deque[str]

    def __init__(
        self,
        backend: StorageBackend,
        store_id: str,
        prefix: str,
        *,
        grace: float,
        retry: RetryPolicy,
        link_field: str,
        make_handle: Callable[[Session, str], Any],
        owner: Any = None,
    ) -> None:
        self.backend = backend
        self.store_id = store_id
        self.retry = retry
        self.uids = UidFactory()
        self.direct = DirectReader(backend)
        self.unpins = collections.deque()
        self.hints = OrderHints()
        self.item_guess = ItemGuess()
        self.delete_guess = ItemGuess()  # deletes meet links at their own rate
        self.link_field = link_field
        self.make_handle = make_handle
        self.owner = owner
        self.closed = False
        self.layout = Layout(prefix, grace=grace)
        self.prefix = self.layout.prefix
        self.reclaim = Reclaimer(self.layout)
        self.layout.on_retire = self.reclaim.learn
        # Whether list writes at an end may run as one held scope (see list_end).
        self.list_ends = bool(backend.capabilities.locking_units)
        _LIVE_SESSIONS[id(self)] = self

    # --- the entry points handles use -------------------------------------------------
    def reader(self) -> Reader:
        """Where single reads go: the backend directly (each read atomic on its own)."""
        if self.closed:
            self._refuse()
        return self.direct

    def mutate(self, fn: Callable[[Graph], T]) -> T:
        """Run ``fn(graph)`` as one atomic, retried write unit; return its result."""
        if self.closed:
            self._refuse()
        if self.unpins:
            self.process_unpins()
        return self.write(fn)

    def mutate_guessed(self, fn: Callable[[Graph], T], guesses: ItemGuess, guess: bool) -> T:
        """:meth:`mutate` for an operation whose first try may skip its reads (``guess``,
        allowed by ``guesses``): when it did and no retry counted a miss on the way
        (``guesses.missed()``), the streak hears of a hit."""
        misses = guesses.misses
        result = self.mutate(fn)
        if guess and guesses.misses == misses:
            guesses.hit()
        return result

    def list_end(
        self,
        uid: str,
        op: str,
        item: bytes | None = None,
        fn: Callable[[Graph], Any] | None = None,
    ) -> Any:
        """Run list write ``op`` at an end of list node ``uid`` as one held scope.

        Handles call it only where :attr:`list_ends` is true (the backend holds
        unit scopes). See :func:`etcher._listends.end_write` (``op``, ``item``
        and what it returns); ``fn``, the operation as :meth:`mutate` would run
        it, finishes a pop the path cannot finish alone (a popped link, an
        empty list, a stale handle) as a unit of work in the same scope.
        Answers :data:`~etcher._listends.NOT_DONE` when the caller must run the
        operation through :meth:`mutate` instead: a sweep of expired garbage is
        due (it rides on a unit's retried frame), or the path cannot hold the
        scope.
        """
        if self.closed:
            self._refuse()
        if self.unpins:
            self.process_unpins()
        if not self.list_ends or self.reclaim.due():
            return NOT_DONE
        layout = self.layout
        return end_write(
            self.backend,
            layout.refs_prefix + uid,
            DEAD,
            layout.content_prefix + uid,
            op,
            item,
            None if fn is None else lambda held: self.finish_held(held, fn),
        )

    def finish_held(
        self,
        held: Any,
        fn: Callable[[Graph], T],
        reads: Callable[[Unit], None] | None = None,
    ) -> T | Any:
        """Run ``fn`` as a unit of work on ``held``, an entered write scope with nothing
        written, and commit it; :data:`~etcher._listends.NOT_DONE` (rolled back) when
        it needs the retried frame of :meth:`mutate` (a conflict, caller code).
        ``reads`` hands the unit what the caller already read in the scope.

        No sweep of expired garbage rides along, as it does on :meth:`write`: its
        callers (:meth:`list_end`, :func:`etcher._writer.assign_plain`) only get
        here when none was due.
        """
        unit = Unit.in_held_scope(self.backend, held)
        if reads is not None:
            reads(unit)
        paused = gc.isenabled()  # as RetryPolicy.run does: a popped document may be big
        if paused:
            gc.disable()
        try:
            result = fn(Graph(self.layout, unit))
            unit.commit()
            return result
        except (WatchError, CallerCode):
            unit.close()
            return NOT_DONE
        except BaseException:
            unit.close()
            raise
        finally:
            if paused:
                gc.enable()

    def snapshot(self, fn: Callable[[Graph], T]) -> T:
        """Run a read-only ``fn(graph)`` so that everything it reads is one consistent state."""
        if self.closed:
            self._refuse()
        layout = self.layout
        return self.retry.run(self.backend, lambda u: fn(Graph(layout, u)), write=False)

    def materialize(self, uid: str) -> Any:
        """The plain-Python value of node ``uid`` and all below it, as one consistent state.

        Where the backend can read the whole document as one state by itself
        (see :func:`etcher._materialize.materialize_direct`) no unit of work is
        made; otherwise this is :meth:`snapshot` of the walk.
        """
        if self.closed:
            self._refuse()
        handover: list[Any] = []
        value = materialize_direct(self.backend, self.layout, uid, handover)
        if value is not FALLBACK:
            return value

        def walk(g: Graph) -> Any:
            # The direct read's answer, when it handed one over, serves the first attempt only.
            return materialize(g, uid, handover.pop() if handover else None)

        return self.snapshot(walk)

    def handle(self, uid: str) -> Any:
        """A handle of the right class for node ``uid`` (no store access)."""
        return self.make_handle(self, uid)

    def release_pin(self, uid: str, pid: int | None = None) -> None:
        """Queue the release of ``uid``'s pin (its ``RD(db)`` handle was dropped)."""
        # Runs from a weakref finalizer, possibly mid-operation or at exit: only queue it.
        # A pin belongs to the process that made it: a forked child dropping its inherited
        # copy of the handle must not free a node the parent still holds.
        if pid is None or pid == os.getpid():
            self.unpins.append(uid)

    def order_hints(self) -> OrderHints | None:
        """The ``popitem`` order cache, or None where remembering an order would be wrong."""
        return self.hints

    def in_transaction(self) -> bool:
        """True while reads and writes go through an open transaction unit."""
        return False

    # --- plumbing -------------------------------------------------------------------
    def write(self, fn: Callable[[Graph], T]) -> T:
        """Run ``fn`` in a retried write unit; a bounded sweep of expired garbage rides along."""
        layout, reclaim = self.layout, self.reclaim
        taken: list[tuple[float, str]] = []  # swept by the latest attempt, if it commits

        def attempt(u: Unit) -> T:
            if taken:
                reclaim.give_back(taken)  # an earlier attempt did not commit
            g = Graph(layout, u)
            result = fn(g)
            taken.extend(reclaim.piggyback(g))
            return result

        try:
            return self.retry.run(self.backend, attempt)
        except BaseException:
            reclaim.give_back(taken)
            raise

    def process_unpins(self) -> None:
        """Release, in one write, every pin queued by dropped handles."""
        uids = []
        while self.unpins:
            uids.append(self.unpins.popleft())

        def op(g: Graph) -> None:
            for uid in uids:
                g.unpin(uid)
            g.collect()

        self.write(op)

    def check_open(self) -> None:
        if self.closed:
            self._refuse()

    def _refuse(self) -> None:
        raise ClosedError("this DB is closed; open a new DB(...) to go on")

    def init_namespace(self) -> None:
        """Make sure the namespace root exists; learn the namespace's pending garbage."""
        layout = self.layout

        def op(u: Unit) -> dict[bytes, bytes]:
            # The pending garbage rides in the batch that reads the root's header anyway.
            u.load(hashes=(layout.refs(ROOT), layout.pending))
            Graph(layout, u).require(ROOT)
            return u.hgetall(layout.pending)

        self.reclaim.reset(self.retry.run(self.backend, op))

    def _after_fork_in_child(self) -> None:
        # Releases queued before the fork are the parent's to send; node ids are reset by
        # the UidFactory itself, connections by the backend.
        self.unpins.clear()
        self.hints.reset_after_fork()


class TransactionSession(Session):
    """A session bound to one transaction unit at a time (``unit``; None between transactions).

    While a unit is open, reads are watched by it and writes are buffered in
    it; otherwise it behaves exactly like the session it was made from, whose
    backend, namespace, uid factory, reclaimer and pin queue it shares.
    """

    __slots__ = ("parent", "unit")

    plain_writes = False

    parent: Session
    unit: Unit | None

    def __init__(self, parent: Session, owner: Any) -> None:
        # Shared by reference, attribute by attribute: the transaction is the same namespace.
        self.parent = parent
        self.backend = parent.backend
        self.store_id = parent.store_id
        self.retry = parent.retry
        self.uids = parent.uids
        self.direct = parent.direct
        self.unpins = parent.unpins
        self.hints = parent.hints
        self.item_guess = parent.item_guess
        self.delete_guess = parent.delete_guess
        self.link_field = parent.link_field
        self.list_ends = parent.list_ends
        self.make_handle = parent.make_handle
        self.layout = parent.layout
        self.prefix = parent.prefix
        self.reclaim = parent.reclaim
        self.closed = False
        self.owner = owner
        self.unit = None

    def reader(self) -> Reader:
        unit = self.unit
        if unit is not None:
            return unit
        self.parent.check_open()
        return self.direct

    def mutate(self, fn: Callable[[Graph], T]) -> T:
        unit = self.unit
        if unit is None:
            return self.parent.mutate(fn)
        layout = self.layout
        return _in_savepoint(unit, lambda: fn(Graph(layout, unit)))

    def list_end(
        self,
        uid: str,
        op: str,
        item: bytes | None = None,
        fn: Callable[[Graph], Any] | None = None,
    ) -> Any:
        if self.unit is not None:
            return NOT_DONE  # inside the transaction's unit: buffered there, by mutate()
        return self.parent.list_end(uid, op, item, fn)

    def snapshot(self, fn: Callable[[Graph], T]) -> T:
        unit = self.unit
        if unit is None:
            return self.parent.snapshot(fn)
        layout = self.layout
        # Reads may write too (a deleted namespace's root is recreated): same guarantee.
        return _in_savepoint(unit, lambda: fn(Graph(layout, unit)))

    def materialize(self, uid: str) -> Any:
        if self.unit is None:
            return self.parent.materialize(uid)
        return self.snapshot(lambda g: materialize(g, uid))

    def release_pin(self, uid: str, pid: int | None = None) -> None:
        self.parent.release_pin(uid, pid)

    def order_hints(self) -> OrderHints | None:
        # Inside an open transaction nothing is committed yet: remembering would be premature.
        return None if self.unit is not None else self.parent.hints

    def in_transaction(self) -> bool:
        return self.unit is not None

    def check_open(self) -> None:
        self.parent.check_open()


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


# Weak, so tracking a session for fork() never keeps it (or its store) alive; keyed by id
# because equal sessions (same store and namespace) are still separate objects to reset.
_LIVE_SESSIONS: weakref.WeakValueDictionary[int, Session] = weakref.WeakValueDictionary()


def _reset_sessions_in_child() -> None:
    for session in list(_LIVE_SESSIONS.values()):
        session._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_sessions_in_child)


__all__ = ["OrderHints", "Session", "TransactionSession"]
