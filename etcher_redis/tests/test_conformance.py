"""etcher's conformance kit against RedisBackend on a real redis-server."""

from __future__ import annotations

import functools

import pytest

from etcher.testing import BackendFactory, BackendFixtures, StorageConformance
from etcher_redis.backend import RedisBackend

pytestmark = pytest.mark.redis


class RedisFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, redis_server_url: str) -> BackendFactory:
        return functools.partial(RedisBackend.from_url, redis_server_url)


class TestRedisStorage(StorageConformance, RedisFixtures):
    pass
