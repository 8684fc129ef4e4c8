"""Registers the Redis backend with etcher (imports neither redis nor the backend)."""

from __future__ import annotations

from etcher.hookspecs import BackendRegistrar, hookimpl


@hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Announce the ``redis`` backend for ``redis://``, ``rediss://`` and ``unix://`` URLs."""
    register(
        "redis",
        schemes=["redis", "rediss", "unix"],
        target="etcher_redis.backend:RedisBackend",
        description="a Redis-protocol server through redis-py",
    )
