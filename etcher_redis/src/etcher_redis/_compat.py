"""The private parts of redis-py this backend relies on, named in one place.

redis-py offers no public hook for three things etcher needs: waiting for
replicas on the very connection that committed (``WAIT`` counts that
connection's writes), refusing redis-py's automatic resend of a write whose
reply was lost (it could apply twice), and noticing that the connection
holding a transaction's watches was closed under it. :mod:`etcher_redis.client`
overrides the private methods below for that and reads the private state
below. They exist, with these meanings, in every redis-py release the
distribution accepts (``redis>=5,<9`` in its ``pyproject.toml``); the import
check here turns a future release that renamed one into a clear error at
import instead of a silently unsafe client.
"""

from __future__ import annotations

import redis
import redis.client
import redis.connection

PIPELINE_METHODS = ("_execute_transaction", "_disconnect_raise_on_watching")
"""Overridden on ``redis.client.Pipeline``: WAIT after a commit; no resend of a lost EXEC."""

CLIENT_METHODS = ("_send_command_parse_response", "_close_connection")
"""Overridden on ``redis.Redis``: WAIT after a single write; no resend of a lost write."""

PIPELINE_STATE = ("command_stack", "explicit_transaction", "watching")
"""Read on a pipeline: what it will send, and whether it is a transaction holding watches."""

CONNECTION_STATE = "_sock"
"""Read on a connection: ``None`` once closed (so watches held on it are gone)."""

TESTED = ">=5,<9"
"""The redis-py versions these hooks were checked against (the distribution's bound)."""


def missing_hooks() -> list[str]:
    """Every private hook above that the installed redis-py lacks (empty when all is well)."""
    missing = [
        f"redis.client.Pipeline.{name}"
        for name in PIPELINE_METHODS
        if not callable(getattr(redis.client.Pipeline, name, None))
    ]
    missing += [
        f"redis.Redis.{name}"
        for name in CLIENT_METHODS
        if not callable(getattr(redis.Redis, name, None))
    ]
    pipe = redis.client.Pipeline(redis.ConnectionPool(), {}, True, None)
    missing += [f"Pipeline().{name}" for name in PIPELINE_STATE if not hasattr(pipe, name)]
    connection = redis.connection.Connection()
    if not hasattr(connection, CONNECTION_STATE):
        missing.append(f"redis.connection.Connection().{CONNECTION_STATE}")
    return missing


def check() -> None:
    """Raise ``ImportError`` naming what is missing if the installed redis-py lacks a hook."""
    missing = missing_hooks()
    if missing:
        raise ImportError(
            f"etcher-redis needs redis-py {TESTED}; the installed redis {redis.__version__} "
            f"lacks {', '.join(missing)} (install a redis-py version in that range)"
        )


__all__ = [
    "CLIENT_METHODS",
    "PIPELINE_METHODS",
    "PIPELINE_STATE",
    "TESTED",
    "check",
    "missing_hooks",
]
