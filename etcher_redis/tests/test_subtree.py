"""The subtree-read kit (etcher.testing.subtree) on a real redis-server (one Lua script)."""

from __future__ import annotations

import functools

import pytest

from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_redis.backend import RedisBackend

pytestmark = pytest.mark.redis


class TestRedisSubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self, redis_server_url: str) -> BackendFactory:
        return functools.partial(RedisBackend.from_url, redis_server_url)
