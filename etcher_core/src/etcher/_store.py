"""A whole store seen from above its namespaces: list them, count them, delete one.

:class:`~etcher._db.DB` is one namespace, and opening it writes (it picks the
store's default namespace on first use and creates the namespace root).
Tools that look at a store without choosing a namespace (the ``etcher``
command line, an admin script) use :class:`Store` instead: opening it writes
nothing, and its answers come from the store itself, so they never depend on
how etcher lays its keys out.

>>> from etcher._store import Store
>>> with Store("state.db") as store:                     # doctest: +SKIP
...     store.namespaces(), store.default_namespace
(['app1', 'default'], 'default')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etcher._layout import DEFAULT_KEY, HEADER_FIELDS, NAMESPACES_KEY, Layout, validate_prefix
from etcher._unit import RetryPolicy
from etcher.errors import ClosedError, EtcherTypeError, EtcherValueError
from etcher.spec import StorageBackend

Progress = Callable[[str, int, "int | None"], None]
"""``progress(phase, done, total)``, as for :meth:`etcher.DB.check`."""

_BATCH = 500  # keys per pipelined round trip when reading a namespace for stats


@dataclass(frozen=True)
class NamespaceStats:
    """What one namespace holds. ``bytes`` counts key names, fields and values as stored."""

    namespace: str
    nodes: int = 0
    dicts: int = 0
    lists: int = 0
    links: int = 0
    """Links between nodes, counted with multiplicity (a dict holding one child twice: 2)."""
    counters: int = 0
    """Counters made by ``db.incr``."""
    keys: int = 0
    bytes: int = 0


class Store:
    """A store (every namespace in it), opened without choosing or creating a namespace.

    :param target: what to open, in any form ``DB`` accepts: a URL, a file
        path, ``None`` (``$ETCHER_URL``, else ``etcher.db``), a ready backend
        object (borrowed: closing the Store leaves it open) or a client object.
    :param backend: a backend name for a plain path, as for ``DB``.
    :param retry: how deleting a namespace retries when writers get in the way.
    :param options: passed to the backend, as for ``DB``.

    Opening writes nothing; only :meth:`delete_prefix` changes the store.
    """

    def __init__(
        self,
        target: Any = None,
        *,
        backend: str | None = None,
        retry: RetryPolicy | None = None,
        **options: Any,
    ) -> None:
        from etcher.registry import open_store

        opened = open_store(target, backend=backend, **options)
        self._backend: StorageBackend = opened.backend
        self._owned = opened.owned
        self.identity: str = opened.identity
        """Equal for two Stores (and DBs) exactly when they reach the same data."""
        self._retry = retry or RetryPolicy()
        self._closed = False

    @property
    def backend(self) -> StorageBackend:
        """The storage backend object (for maintenance tools and tests)."""
        self._check_open()
        return self._backend

    def namespaces(self) -> list[str]:
        """The names of every namespace in the store, sorted."""
        return sorted(_text(f) for f in self.backend.hkeys(NAMESPACES_KEY))

    @property
    def default_namespace(self) -> str | None:
        """The namespace ``DB(url)`` opens, or ``None`` if no DB has chosen one yet.

        It may name a namespace that was deleted since: ``DB(url)`` then starts it again, empty.
        """
        raw = self.backend.get(DEFAULT_KEY)
        return None if raw is None else _text(raw)

    def key_count(self, namespace: str) -> int:
        """How many store keys namespace ``namespace`` has (0 if there is no such namespace).

        :raises ValueError: ``namespace`` is not a valid namespace name.
        """
        layout = Layout(validate_prefix(namespace))
        return sum(1 for key in self.backend.scan_iter(match=layout.scan) if _owns(layout, key))

    def stats(self, namespace: str, *, progress: Progress | None = None) -> NamespaceStats:
        """Count the nodes, links, counters, keys and bytes of namespace ``namespace``.

        Reads every key of the namespace in batches (not one consistent
        snapshot: beside writers the counts are approximate). ``progress`` is
        called as ``progress("read", keys_done, keys_total)``.

        :raises ValueError: ``namespace`` is not a valid namespace name.
        """
        layout = Layout(validate_prefix(namespace))
        backend = self.backend
        keys = [key for key in backend.scan_iter(match=layout.scan) if _owns(layout, key)]
        refs_prefix = layout.refs_prefix.encode()
        counter_prefix = layout.counter_prefix.encode()
        counts = dict.fromkeys(("nodes", "dicts", "lists", "links", "counters", "keys", "bytes"), 0)
        if progress is not None:
            progress("read", 0, len(keys))
        for start in range(0, len(keys), _BATCH):
            batch = [_raw(key) for key in keys[start : start + _BATCH]]
            pipe = backend.pipeline(transaction=False)
            for key in batch:
                pipe.type(key)
            kinds = pipe.execute()
            pipe = backend.pipeline(transaction=False)
            for key, kind in zip(batch, kinds, strict=True):
                if kind == b"hash":
                    pipe.hgetall(key)
                elif kind == b"list":
                    pipe.lrange(key, 0, -1)
                else:
                    pipe.get(key)
            for key, kind, value in zip(batch, kinds, pipe.execute(), strict=True):
                counts["keys"] += 1
                counts["bytes"] += len(key)
                if isinstance(value, dict):
                    counts["bytes"] += sum(len(f) + len(v) for f, v in value.items())
                elif isinstance(value, list):
                    counts["bytes"] += sum(len(v) for v in value)
                elif value is not None:
                    counts["bytes"] += len(value)
                if key.startswith(refs_prefix) and kind == b"hash":
                    uid = key[len(refs_prefix) :]
                    counts["nodes"] += 1
                    counts["dicts"] += uid[:1] == b"D"
                    counts["lists"] += uid[:1] == b"L"
                    counts["links"] += sum(
                        int(v) for f, v in value.items() if f not in HEADER_FIELDS and v.isdigit()
                    )
                elif key.startswith(counter_prefix):
                    counts["counters"] += 1
            if progress is not None:
                progress("read", min(start + _BATCH, len(keys)), len(keys))
        return NamespaceStats(namespace, **counts)

    def delete_prefix(
        self, namespace: str, *, batch: int | None = 200, progress: Progress | None = None
    ) -> int:
        """Delete namespace ``namespace`` and everything in it; return the number of keys deleted.

        The same deletion as :meth:`etcher.DB.delete_prefix_immediately`:
        the namespace vanishes at one moment, its remains are reclaimed in
        steps of at most ``batch`` nodes (``None``: no limit), and it is safe
        beside readers and writers (a write racing with it lands before it,
        and is deleted, or starts the namespace again, empty). Only keys of
        exactly that namespace are touched. Deleting a namespace that does not
        exist deletes nothing and returns 0.

        :raises ValueError: ``namespace`` is not a valid name, or ``batch`` < 1.
        :raises TypeError: ``batch`` is not an int or None.
        """
        from etcher._dropping import delete_namespace

        validate_prefix(namespace)
        if batch is not None:
            if not isinstance(batch, int) or isinstance(batch, bool):
                raise EtcherTypeError(f"batch must be an int or None, not {type(batch).__name__}")
            if batch < 1:
                raise EtcherValueError("batch must be at least 1")
        chunk = batch if batch is not None else 1 << 30
        return delete_namespace(self.backend, self._retry, namespace, chunk, progress)

    # --- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Close the backend if this Store opened it (a borrowed one stays open). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<etcher.Store {self.identity}{state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this Store is closed; open a new one")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(key: bytes | str) -> bytes:
    return key if isinstance(key, bytes) else key.encode()


def _owns(layout: Layout, key: bytes | str) -> bool:
    # scan_iter's match is a glob; the literal check keeps a namespace to exactly its own keys.
    return _raw(key).startswith(("{" + layout.prefix + "}:").encode())


__all__ = ["NamespaceStats", "Progress", "Store"]
