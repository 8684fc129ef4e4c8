"""Reclaiming unlinked nodes after a grace period (RCU-style).

When a write unlinks nodes, :meth:`etcher._graph.Graph.collect` deletes them at
once only if the DB's grace period is 0. Otherwise every dead node is
*pending*: its content stays as it was, its header gains ``#d`` (its expiry
time) and the namespace's pending hash ``{P}:g`` lists it (uid -> expiry).
Until the expiry:

* a handle that named it keeps reading exactly what it held. Its whole subtree
  is either pending too or still alive, so ``db[k]()``, chained reads and list
  searches never fail because another process replaced the document between
  two steps of one expression, and an old handle never shows newer contents;
* writing through it, or linking it anywhere, raises ``StaleHandleError``
  (:meth:`Graph.require` and :meth:`Graph.add_ref` see the ``#d`` field of
  the header they read anyway): a pending node never comes back.

After the expiry a *sweep* deletes its keys. Sweeping needs no graph work and
no reads: live nodes stopped counting a pending node as a parent when it died,
nothing live links to it, and uids are never reused, so deleting its keys is a
blind write that cannot conflict with anything and may safely happen twice.
Sweeps run

* piggybacked on this DB's later write units, in bounded batches (at most
  :data:`SWEEP_BATCH` nodes, plus twice what the unit itself unlinked, so a
  steady stream of replacements cannot outgrow the sweeping);
* for every expired entry, by ``db.maintenance()`` and ``db.gc()``.

Writes keep their usual round trips: each DB remembers (per process) the
pending entries it read when it was opened (in the same batch as the root's
header, which opening reads anyway) and those its own writes made. Garbage left
by a process that exits before it expires is therefore swept by the next DB
opened on the namespace, or by ``maintenance()``/``gc()`` of any DB (which read
``{P}:g`` afresh), never silently kept: ``check()`` counts it.

Expiry times are wall-clock times (``time.time()``) written by the process
that unlinked the nodes; processes sharing a store across machines need
clocks that agree to well within the grace period.
"""

from __future__ import annotations

import functools
import heapq
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from etcher._graph import Graph
from etcher._layout import Layout
from etcher.errors import EtcherTypeError, EtcherValueError

if TYPE_CHECKING:
    from etcher._unit import RetryPolicy, Unit
    from etcher.spec import StorageBackend

DEFAULT_GRACE = 5.0
"""Seconds an unlinked node stays readable through old handles (``DB(..., grace=)``)."""

SWEEP_BATCH = 64
"""Expired nodes a write unit deletes on the side, on top of twice what it unlinked."""

FULL_SWEEP_UNIT = 1024
"""Nodes deleted per unit by a full sweep (``maintenance()``/``gc()``)."""

clock: Callable[[], float] = time.time
"""The time source for expiry checks (tests replace it to move time forward)."""


def _now() -> float:
    # Looked up at each call, so a replaced ``clock`` reaches the graphs' expiry stamps too.
    return clock()


def validate_grace(grace: object) -> float:
    """Check a ``grace=`` argument; return it as seconds (``None`` means the default)."""
    if grace is None:
        return DEFAULT_GRACE
    if isinstance(grace, bool) or not isinstance(grace, (int, float)):
        raise EtcherTypeError(f"grace must be a number of seconds, not {type(grace).__name__}")
    if not math.isfinite(grace) or grace < 0:
        raise EtcherValueError(f"grace must be a finite number of seconds >= 0, not {grace!r}")
    return float(grace)


def _expiry(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0  # unreadable: the node is listed as garbage all the same, so it may go now


def pending_entries(raw: dict[bytes, bytes]) -> list[tuple[float, str]]:
    """``[(expiry, uid)]`` from the stored pending hash."""
    return [(_expiry(v), f.decode(errors="replace")) for f, v in raw.items()]


def drop_pending(g: Graph, uids: Iterable[str]) -> None:
    """Queue the deletion of pending nodes and of their pending entries in ``g``'s unit."""
    pending = g.layout.pending
    uids = list(uids)
    g.drop_nodes(uids)
    for uid in uids:
        g.unit.hdel(pending, uid.encode())


def _drop_in_unit(layout: Layout, uids: list[str], u: Unit) -> None:
    drop_pending(Graph(layout, u), uids)


class Reclaimer:
    """One DB's (per-process) view of its namespace's pending garbage, and the sweeps."""

    __slots__ = ("_heap", "_lock", "_pid", "layout")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        layout.clock = _now
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _guard(self) -> threading.Lock:
        if self._pid != os.getpid():
            # A forked child: the lock may have been held by a thread that does not exist here.
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

    def learn(self, entries: Iterable[tuple[float, str]]) -> None:
        """Note pending entries a committed unit of this DB made (``Layout.on_retire``)."""
        with self._guard():
            heap = self._heap
            entries = list(entries)
            if len(entries) > len(heap):
                # A big collection: one heapify instead of a push per entry.
                heap += entries
                heapq.heapify(heap)
            else:
                for entry in entries:
                    heapq.heappush(heap, entry)

    def reset(self, raw: dict[bytes, bytes]) -> None:
        """Know exactly the pending entries of the stored hash ``raw`` (read at open)."""
        heap = pending_entries(raw)
        heapq.heapify(heap)
        with self._guard():
            self._heap = heap

    def due(self) -> bool:
        """Whether a write unit now would sweep expired garbage (:meth:`piggyback`)."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= clock()

    def piggyback(self, g: Graph) -> list[tuple[float, str]]:
        """At the end of a write unit: queue the sweep of a bounded batch of expired nodes.

        Returns the entries taken off the heap; if the unit does not commit, the
        caller hands them back with :meth:`give_back` (nothing rescans the store).
        """
        heap = self._heap
        if not heap:
            return []
        now = clock()
        if heap[0][0] > now:
            return []
        budget = SWEEP_BATCH + 2 * len(g.retired)
        taken: list[tuple[float, str]] = []
        with self._guard():
            while heap and heap[0][0] <= now and len(taken) < budget:
                taken.append(heapq.heappop(heap))
        drop_pending(g, [uid for _expiry, uid in taken])
        return taken

    def give_back(self, taken: list[tuple[float, str]]) -> None:
        """Return entries :meth:`piggyback` took for a unit that did not commit; empty ``taken``."""
        if taken:
            self.learn(taken)
            taken.clear()

    def sweep(self, backend: StorageBackend, retry: RetryPolicy, everything: bool = False) -> int:
        """Delete every expired pending node (all of them if ``everything``); return how many.

        Works in units of at most :data:`FULL_SWEEP_UNIT` nodes, so a huge
        backlog never becomes one huge transaction.
        """
        now = clock()
        raw = backend.hgetall(self.layout.pending)
        due = [uid for expiry, uid in pending_entries(raw) if everything or expiry <= now]
        layout = self.layout
        for start in range(0, len(due), FULL_SWEEP_UNIT):
            chunk = due[start : start + FULL_SWEEP_UNIT]
            retry.run(backend, functools.partial(_drop_in_unit, layout, chunk))
        swept = set(due)
        self.reset({f: v for f, v in raw.items() if f.decode(errors="replace") not in swept})
        return len(due)
