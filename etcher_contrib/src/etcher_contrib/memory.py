"""The in-memory backend: etcher's Redis backend on a fakeredis server inside the process.

Useful for tests and scratch work: nothing touches the disk and nothing
survives the process. It runs the very same client code as the Redis backend
(:class:`~etcher_redis.backend.RedisBackend`), so errors, pipelines and
``WatchError`` behave exactly as they do against a real server.

``memory://`` gives every backend object a private store; ``memory://name``
gives all backends opened with that name, in this process, one shared store
that lives until the process exits or :meth:`MemoryBackend.drop_store` is called.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

import fakeredis

from etcher.spec import Capabilities
from etcher_redis.backend import RedisBackend

SCHEME = "memory"

_named_servers: dict[str, fakeredis.FakeServer] = {}
_named_lock = threading.Lock()


class MemoryBackend(RedisBackend):
    """etcher's storage Protocol in process memory (fakeredis).

    >>> MemoryBackend.from_url("memory://")          # doctest: +SKIP  (private store)
    >>> MemoryBackend.from_url("memory://scratch")   # doctest: +SKIP  (shared by name)
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=False,
        multiprocess=False,
        atomic_batches=False,
        maintenance=False,
        snapshot_reads=False,
    )

    store_name: str | None = None
    """The shared store's name, or ``None`` for a private store."""

    @classmethod
    def claims_client(cls, client: object) -> bool:
        """Whether ``client`` is a fakeredis client (``DB(redis=fakeredis.FakeRedis())``)."""
        return isinstance(client, fakeredis.FakeRedis)

    @classmethod
    def new(cls, name: str | None = None) -> Self:
        """A backend on a fresh private store, or on the shared store called ``name``."""
        if name is None:
            server = fakeredis.FakeServer()
        else:
            with _named_lock:
                server = _named_servers.setdefault(name, fakeredis.FakeServer())
        backend = cls.from_client(fakeredis.FakeRedis(server=server))
        backend.store_name = name
        backend._server = server
        return backend

    _server: fakeredis.FakeServer | None = None

    @property
    def store_identity(self) -> str | None:
        """Equal for two backends exactly when they share one in-process store.

        A private store (``memory://``) is this backend's own; a named one is
        shared by every backend opened on that name until it is dropped.
        """
        server = self._server
        return None if server is None else f"memory:{id(server)}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``memory://`` (a private store) or ``memory://name`` (a shared one).

        :raises ValueError: another scheme, a path, query or fragment after the name.
        :raises TypeError: any option (the memory backend takes none).
        """
        if options:
            raise TypeError(f"the memory backend takes no options, got {sorted(options)}")
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME or parts.path or parts.query or parts.fragment:
            raise ValueError(
                f"{url!r} is not a memory URL: use memory:// for a private store or "
                "memory://name for one shared within this process"
            )
        name = unquote(parts.netloc)
        return cls.new(name or None)

    @classmethod
    def drop_store(cls, name: str) -> bool:
        """Forget the shared store ``name`` (backends still open on it keep their data).

        :returns: whether such a store existed.
        """
        with _named_lock:
            return _named_servers.pop(name, None) is not None

    def server_label(self) -> str:
        """``memory://name``, or ``memory://`` for a private store."""
        return f"memory://{self.store_name or ''}"


__all__ = ["SCHEME", "MemoryBackend"]
