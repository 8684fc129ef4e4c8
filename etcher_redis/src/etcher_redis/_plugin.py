"""Registers the Redis backend with etcher (imports neither redis nor the backend)."""

from __future__ import annotations

import sys

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


@hookimpl
def etcher_claim_client(client: object) -> str | None:
    """Claim redis-py clients: ``RedisCluster`` for ``redis-cluster``, any ``Redis`` for ``redis``.

    A client can only exist if redis-py is imported already, so nothing is imported here.
    """
    cluster = sys.modules.get("redis.cluster")
    if cluster is not None and isinstance(client, cluster.RedisCluster):
        return "redis-cluster"
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(client, redis.Redis):
        return "redis"
    return None
