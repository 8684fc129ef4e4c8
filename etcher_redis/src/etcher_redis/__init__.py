"""etcher's Redis backend: store RD/RL data on any Redis-protocol server.

Installed with ``pip install 'etcher[redis]'``; opened through etcher with a
``redis://``, ``rediss://`` or ``unix://`` URL, or ``DB(redis=client)``; a Redis
Cluster with ``redis+cluster://host:port,...`` or ``DB(redis=RedisCluster(...))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

if TYPE_CHECKING:
    from etcher_redis.backend import RedisBackend
    from etcher_redis.client import EtcherPipeline, EtcherRedis, ReplicationNotConfirmed
    from etcher_redis.cluster import RedisClusterBackend


def __getattr__(name: str) -> Any:
    # Lazy so that importing the package (e.g. for its version) does not import redis-py.
    if name == "RedisBackend":
        from etcher_redis.backend import RedisBackend

        return RedisBackend
    if name == "RedisClusterBackend":
        from etcher_redis.cluster import RedisClusterBackend

        return RedisClusterBackend
    if name in ("EtcherRedis", "EtcherPipeline", "ReplicationNotConfirmed"):
        from etcher_redis import client

        return getattr(client, name)
    raise AttributeError(f"module 'etcher_redis' has no attribute {name!r}")


__all__ = [
    "EtcherPipeline",
    "EtcherRedis",
    "RedisBackend",
    "RedisClusterBackend",
    "ReplicationNotConfirmed",
    "__version__",
]
