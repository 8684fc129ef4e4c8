"""etcher's conformance kit against RedisBackend on a real redis-server.

The storage Protocol, the whole RD/RL/DB suite (with the hypothesis state
machine) and the multi-process concurrency suite, all on the kit's server.
"""

from __future__ import annotations

import functools

import pytest

from etcher.testing import BackendFactory, BackendFixtures, StorageConformance
from etcher.testing.concurrency import ConcurrencyConformance
from etcher.testing.containers import ContainerConformance
from etcher.testing.maintenance import MaintenanceConformance
from etcher_redis.backend import RedisBackend

pytestmark = pytest.mark.redis


class RedisFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, redis_server_url: str) -> BackendFactory:
        return functools.partial(RedisBackend.from_url, redis_server_url)


class TestRedisStorage(StorageConformance, RedisFixtures):
    pass


class TestRedisContainers(ContainerConformance, RedisFixtures):
    """RD/RL/DB semantics on a real server (namespaces of their own, deleted afterwards)."""


class TestRedisConcurrency(ConcurrencyConformance):
    """Threads and spawned processes on one server: the unix socket URL opens anywhere."""

    @pytest.fixture
    def store_url(self, redis_server_url: str) -> str:
        return redis_server_url


class TestRedisMaintenance(MaintenanceConformance):
    """gc/check/delete_prefix beside writer threads and processes on one server."""

    @pytest.fixture
    def store_url(self, redis_server_url: str) -> str:
        return redis_server_url
