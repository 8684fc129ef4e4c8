"""Namespace: the public dict-like API of one namespace, over a :class:`~etcher._session.Session`.

Both faces of a namespace share it: :class:`~etcher._db.DB` (which opens
and closes the store) and :class:`~etcher._transactions.Transactor` (which
routes everything through one transaction at a time). It holds nothing but
its session; every call is the root handle's, a counter, a check or a JSON
transfer run on that session.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, ValuesView
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from etcher._check import check, repair
from etcher._containers import RD, RL, handle_for
from etcher._dropping import delete_namespace
from etcher._jsonio import export_json, import_json
from etcher._layout import DEAD, NAMESPACES_KEY, ROOT, Layout, is_node_uid, validate_prefix
from etcher._session import Session
from etcher.errors import EtcherKeyError, EtcherTypeError, EtcherValueError

if TYPE_CHECKING:
    from etcher._check import CheckReport, Progress
    from etcher._db import DB
    from etcher._graph import Graph
    from etcher._layout import UidFactory
    from etcher._transactions import Transactor
    from etcher._unit import RetryPolicy
    from etcher.spec import StorageBackend
    from etcher.types import Key, Plain, Storable, StorableMapping, Stored

T = TypeVar("T")


class Namespace:
    """The ``dict`` API over a namespace's root, plus counters, integrity checks and JSON."""

    _session: Session
    # Kept as plain attributes for maintenance tools and tests that look inside a DB.
    _layout: Layout
    _uids: UidFactory
    _retry: RetryPolicy

    def __init__(self, session: Session) -> None:
        self._session = session
        self._layout = session.layout
        self._uids = session.uids
        self._retry = session.retry

    def close(self) -> None:
        """Release what this object holds: a DB its store, a transactor its open transaction."""
        raise NotImplementedError

    def _write(self, fn: Callable[[Graph], T]) -> T:
        """Run ``fn(graph)`` in one retried write unit (see :meth:`Session.write`)."""
        return self._session.write(fn)

    @functools.cached_property
    def _root(self) -> RD:
        # Made once: every mapping call goes through it.
        return handle_for(self._session, ROOT)  # type: ignore[return-value]

    # --- identity ------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """The namespace this DB reads and writes."""
        return self._session.prefix

    @property
    def link_field(self) -> str:
        """The dict field whose value stands for a nested dict in printed summaries."""
        return self._session.link_field

    @property
    def grace(self) -> float:
        """Seconds an unlinked node stays readable through old handles (0: reclaimed at once)."""
        return self._session.layout.grace

    @property
    def backend(self) -> StorageBackend:
        """The storage backend object (for maintenance tools and tests)."""
        return self._session.backend

    @property
    def uid(self) -> str:
        """The uid of the namespace root (``"Droot"``)."""
        return ROOT

    @property
    def refcount(self) -> int:
        """Links to the root: always 0 (the root is held by the namespace itself)."""
        return self._root.refcount

    @property
    def backrefs(self) -> dict[str, int]:
        """Back-references of the root: always empty."""
        return self._root.backrefs

    # --- mapping API over the root ---------------------------------------------------
    def __getitem__(self, key: Key) -> Stored:
        return self._root[key]

    def __setitem__(self, key: Key, value: Storable) -> None:
        self._root[key] = value

    def __delitem__(self, key: Key) -> None:
        del self._root[key]

    def __contains__(self, key: object) -> bool:
        return key in self._root

    def __len__(self) -> int:
        return len(self._root)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._root)

    def __bool__(self) -> bool:
        return len(self._root) > 0

    def __call__(self) -> dict[Key, Plain]:
        """Materialize the whole namespace as a plain dict (a consistent snapshot)."""
        return self._root()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Namespace):
            return other._session.store_id == self._session.store_id and other.prefix == self.prefix
        return self._root == other

    def __hash__(self) -> int:
        # Equal DBs (same store, same namespace) must hash alike.
        return hash((self._session.store_id, self._session.prefix))

    @overload
    def get(self, key: Key, default: None = None) -> Stored: ...
    @overload
    def get(self, key: Key, default: T) -> Stored | T: ...
    def get(self, key: Key, default: Any = None) -> Any:
        """``db[key]`` if present, else ``default``."""
        return self._root.get(key, default)

    def keys(self) -> KeysView[Key]:
        """The top-level keys, in insertion order."""
        return self._root.keys()

    def values(self) -> ValuesView[Stored]:
        """The top-level values (nested containers as handles)."""
        return self._root.values()

    def items(self) -> ItemsView[Key, Stored]:
        """The top-level ``(key, value)`` pairs."""
        return self._root.items()

    @overload
    def update(
        self,
        other: StorableMapping,
        /,
        **kwargs: Storable,
    ) -> None: ...
    @overload
    def update(self, other: Iterable[tuple[Key, Storable]], /, **kwargs: Storable) -> None: ...
    @overload
    def update(self, /, **kwargs: Storable) -> None: ...
    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many top-level keys in one atomic write."""
        self._root.update(other, **kwargs)

    def setdefault(self, key: Key, default: Storable = None) -> Stored:
        """``db[key]`` if present, else store and return ``default``."""
        return self._root.setdefault(key, default)

    @overload
    def pop(self, key: Key) -> Plain: ...
    @overload
    def pop(self, key: Key, default: T, /) -> Plain | T: ...
    def pop(self, key: Key, *default: Any) -> Any:
        """Remove ``key`` and return its (materialized) value."""
        return self._root.pop(key, *default)

    def popitem(self) -> tuple[Key, Plain]:
        """Remove and return the most recently inserted top-level item."""
        return self._root.popitem()

    def clear(self) -> None:
        """Remove everything in this namespace (one atomic write)."""
        self._root.clear()

    def copy(self) -> dict[Key, Stored]:
        """A shallow plain-dict copy of the top level (nested nodes stay handles)."""
        return self._root.copy()

    def __str__(self) -> str:
        """The ``@{...}`` summary of the namespace root (what ``print(db)`` shows)."""
        return repr(self._root)

    def __repr__(self) -> str:
        """Which store and namespace this is, e.g. ``<DB 'default' in <SQLiteBackend 'x.db'>>``."""
        store = repr(self._session.backend)
        closed = ", closed" if self._session.closed and "closed" not in store else ""
        return f"<{type(self).__name__} {self.prefix!r} in {store}{closed}>"

    # --- counters ------------------------------------------------------------------
    def _counter_key(self, key: str) -> str:
        if not isinstance(key, str):
            raise EtcherTypeError(f"counter names must be str, not {type(key).__name__}")
        try:
            key.encode()
        except UnicodeEncodeError:
            raise EtcherValueError(f"counter name {key!r} has a lone surrogate") from None
        return self._session.layout.counter(key)

    def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to counter ``key`` (created at 0); return the new value."""
        if type(amount) is not int and (not isinstance(amount, int) or isinstance(amount, bool)):
            raise EtcherTypeError("the increment must be an int")
        s = self._session
        s.check_open()
        # An ASCII str name needs no further check (it always encodes).
        name = (
            s.layout.counter_prefix + key
            if type(key) is str and key.isascii()
            else self._counter_key(key)
        )
        return int(s.backend.incr(name, amount))

    def decr(self, key: str, amount: int = 1) -> int:
        """Atomically subtract ``amount`` from counter ``key``; return the new value."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise EtcherTypeError("the decrement must be an int")
        return self.incr(key, -amount)

    def count(self, key: str) -> int:
        """The current value of counter ``key`` (0 if never incremented)."""
        raw = self._session.reader().get(self._counter_key(key))
        return int(raw) if raw is not None else 0

    # --- nodes by uid ------------------------------------------------------------------
    def get_via_uid(self, uid: str | bytes) -> RD | RL:
        """A handle to the node with this uid (``KeyError`` if no such node exists)."""
        if isinstance(uid, bytes):
            uid = uid.decode()
        if not isinstance(uid, str) or not is_node_uid(uid):
            raise EtcherKeyError(uid)
        session = self._session
        header = session.reader().hgetall(session.layout.refs(uid))
        if not header or DEAD in header:  # an unlinked node waiting to be swept is gone too
            raise EtcherKeyError(f"no node {uid!r} in namespace {self.prefix!r}")
        return handle_for(session, uid)

    # --- integrity -------------------------------------------------------------------
    def check(self, *, progress: Progress | None = None) -> CheckReport:
        """Verify this namespace's invariants; return a report (``report.ok`` is True if clean).

        Safe beside other writers: the namespace is read in small batches and
        every finding is re-verified in one small unit before it is reported,
        so each reported problem was real at one moment. ``progress(phase,
        done, total)`` is called as the work advances (see :mod:`etcher._check`).
        """
        self._session.check_open()
        return check(self._session, progress)

    def gc(self, *, drop_pins: bool = False, progress: Progress | None = None) -> CheckReport:
        """Mark-and-sweep repair, incremental; returns the report of what was found (and fixed).

        Runs beside other writers without holding the store for long: each
        problem is re-read and fixed in its own small unit, so nothing a
        writer linked meanwhile is removed or rewritten. ``drop_pins=True``
        also collects nodes pinned by ``RD(db)`` handles, e.g. ones left behind
        by a process that crashed before linking them. ``progress`` as for
        :meth:`check`.
        """
        session = self._session
        session.check_open()
        session.reclaim.sweep(session.backend, session.retry)
        return repair(session, drop_pins=drop_pins, progress=progress)

    # --- JSON ------------------------------------------------------------------------
    def export_json(self, path: Any = None, *, indent: int | None = None) -> str:
        """The value at ``path`` (default: the whole namespace) as etcher JSON text.

        Plain JSON when nothing is shared; shared nodes and cycles use
        ``{"$id": n}``/``{"$ref": n}``, int keys ``"$5"``, ``inf``/``nan``
        ``{"$float": "inf"}`` (see :mod:`etcher._jsonio` and docs/cli.md).
        ``path`` is a key or a sequence of keys/indexes from the root.

        >>> db["person"] = {"name": "Alice", "tags": ["a"]}      # doctest: +SKIP
        >>> db.export_json("person")
        '{"name": "Alice", "tags": ["a"]}'
        """
        self._session.check_open()
        return export_json(self, path, indent=indent) or ""

    def import_json(self, path: Any, source: Any) -> None:
        """Store an etcher-JSON document (text, bytes or a file) at ``path``, atomically.

        ``path`` is a key or a sequence of keys whose parent exists; ``()``
        replaces the whole namespace. Invalid input raises
        :class:`etcher._jsonio.JSONFormatError` and writes nothing.

        >>> db.import_json("person", '{"name": "Alice", "$1": "int key one"}')  # doctest: +SKIP
        >>> db["person"]()
        {'name': 'Alice', 1: 'int key one'}
        """
        self._session.check_open()
        # Every namespace object is a DB or a transactor (the two faces defined above this).
        import_json(cast("DB | Transactor", self), path, source)

    # --- namespaces ------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        """Every namespace recorded in this store."""
        return sorted(f.decode() for f in self._session.backend.hkeys(NAMESPACES_KEY))

    def delete_prefix_immediately(self, prefix: str, *, progress: Progress | None = None) -> int:
        """Delete namespace ``prefix`` entirely, atomically for its readers and writers.

        The namespace vanishes at one moment (its root is fenced off in one
        small unit); the unreachable remains are then reclaimed in bounded
        steps (see :mod:`etcher._dropping`), so the store is never held for
        long, writers racing with the deletion either land before it (and are
        deleted) or start a fresh, empty namespace, and nothing of the old
        namespace is left behind. Returns the number of keys deleted. Only
        keys of exactly that namespace are touched, whatever characters its
        name holds. Deleting this DB's own namespace empties it.
        """
        return self._delete_prefix(prefix, 200, progress)

    def delete_prefix_batch(self, prefix: str, count: int | None = 500) -> int:
        """:meth:`delete_prefix_immediately` with at most ``count`` nodes per step.

        ``count=None`` sets no limit per step. Returns how many keys were
        removed. Deleting this DB's own namespace leaves it empty and usable;
        the empty root that makes it usable is not counted, so the result is 0
        once there is nothing left and a loop such as
        ``while db.delete_prefix_batch(p): ...`` ends.
        """
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool):
                raise EtcherTypeError(f"count must be an int or None, not {type(count).__name__}")
            if count < 1:
                raise EtcherValueError("count must be at least 1")
        return self._delete_prefix(prefix, count if count is not None else 1 << 30, None)

    def _delete_prefix(self, prefix: str, chunk: int, progress: Progress | None) -> int:
        validate_prefix(prefix)
        session = self._session
        session.check_open()
        deleted = delete_namespace(session.backend, session.retry, prefix, chunk, progress)
        if prefix == self.prefix:
            session.init_namespace()
            # The empty root just re-created is not counted: deleting an empty
            # namespace must return 0, or a "while delete_prefix_batch()" loop never ends.
            layout = Layout(prefix)
            literal = ("{" + prefix + "}:").encode()
            recreated = sum(
                1
                for key in session.backend.scan_iter(match=layout.scan)
                if (key if isinstance(key, bytes) else str(key).encode()).startswith(literal)
            )
            deleted = max(0, deleted - recreated)
        return deleted

    # --- maintenance -------------------------------------------------------------------
    def maintenance(self, *, reclaim_all: bool = False) -> int:
        """Reclaim expired garbage, then backend housekeeping (SQLite: checkpoint, optimize,
        conditional VACUUM); return how many unlinked nodes were reclaimed.

        Nodes unlinked less than the grace period ago stay (old handles may
        still read them) unless ``reclaim_all=True``: then they go too, and
        handles still naming them raise ``StaleHandleError`` from now on.
        """
        session = self._session
        session.check_open()
        if not isinstance(reclaim_all, bool):
            raise EtcherTypeError("reclaim_all must be True or False")
        if session.unpins:
            session.process_unpins()
        reclaimed = session.reclaim.sweep(session.backend, session.retry, everything=reclaim_all)
        maintenance = getattr(session.backend, "maintenance", None)
        if maintenance is not None:
            maintenance()
        return reclaimed

    async def maintenance_async(self, *, reclaim_all: bool = False) -> int:
        """:meth:`maintenance` in a worker thread, for asyncio programs."""
        return await asyncio.to_thread(self.maintenance, reclaim_all=reclaim_all)
