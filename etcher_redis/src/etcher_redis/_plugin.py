"""Registers the Redis backend with etcher (imports neither redis nor the backend)."""

from __future__ import annotations

from etcher.hookspecs import BackendRegistrar, hookimpl


@hookimpl
def etcher_register_backends(register: BackendRegistrar) -> None:
    """Announce ``redis`` (``redis://``, ``rediss://``, ``unix://``) and ``redis-cluster``
    (``redis+cluster://``, ``rediss+cluster://``)."""
    register(
        "redis",
        schemes=["redis", "rediss", "unix"],
        target="etcher_redis.backend:RedisBackend",
        description="a Redis-protocol server through redis-py",
    )
    register(
        "redis-cluster",
        schemes=["redis+cluster", "rediss+cluster"],
        target="etcher_redis.cluster:RedisClusterBackend",
        description="a Redis Cluster through redis-py: namespaces spread over its masters",
    )
