"""The subtree-read kit (etcher.testing.subtree) on a real redis-server (one Lua script)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from etcher import DB
from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_redis.backend import RedisBackend
from etcher_redis.subtree import WALK, WALK_SHA

pytestmark = pytest.mark.redis


class TestRedisSubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self, redis_server_url: str) -> BackendFactory:
        return functools.partial(RedisBackend.from_url, redis_server_url)


class LosingWalkReply(redis.UnixDomainSocketConnection):
    """Drops the connection once, right after the reply of the next subtree walk arrived."""

    armed: ClassVar[bool] = False
    fired: ClassVar[int] = 0
    _drop = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        payload = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        cls = type(self)
        if cls.armed and (WALK_SHA.encode() in payload or WALK.encode()[:40] in payload):
            cls.armed, cls.fired, self._drop = False, cls.fired + 1, True
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        if self._drop:
            self._drop = False
            self.disconnect()
            raise redis.ConnectionError("injected: the walk's reply was lost")
        return response


def test_a_lost_walk_reply_is_read_again(redis_server_url: str) -> None:
    """The walk only reads: redis-py's retry policy resends it (no CommitOutcomeUnknown)."""
    pool = redis.ConnectionPool(
        connection_class=LosingWalkReply,
        path=redis_server_url.removeprefix("unix://"),
        retry=Retry(NoBackoff(), 3),
    )
    client = redis.Redis(connection_pool=pool)
    try:
        with DB(redis=client, prefix="lostwalk") as db:
            db["doc"] = {"a": [1, {"b": 2}], "c": {"d": [3]}}
            handle = db["doc"]
            LosingWalkReply.armed = True
            assert handle() == {"a": [1, {"b": 2}], "c": {"d": [3]}}
            assert LosingWalkReply.fired == 1
            db.delete_prefix_immediately("lostwalk")
    finally:
        LosingWalkReply.armed = False
        client.close()
