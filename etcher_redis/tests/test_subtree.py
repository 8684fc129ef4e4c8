"""The subtree-read kit (etcher.testing.subtree) on a real redis-server (one Lua script)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from etcher import DB
from etcher._unit import Unit
from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_redis.backend import RedisBackend
from etcher_redis.subtree import LUA_HEAP_KB, WALK, WALK_SHA, WIDE

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


def test_the_walk_leaves_a_wide_first_dict_to_the_caller(backend: RedisBackend) -> None:
    """A first root that is a dict of more than WIDE fields comes back in the frontier,
    unread: turning its fields into Lua strings would cost more per field the wider it
    is. A wide dict met further down, or as a later root, and a long list are read as
    before (only the first root is measured, and only a dict)."""
    db = DB(backend=backend, prefix="wideroot", grace=0)
    wide_dict = {f"k{i}": i for i in range(WIDE + 1)}
    wide_list = [*range(WIDE), "@not-a-link"]
    db["d"] = wide_dict
    db["l"] = wide_list
    db["narrow"] = {f"k{i}": i for i in range(WIDE)}
    db["inside"] = {"w": wide_dict, "n": 1}
    cp, rp = db._layout.content_prefix, db._layout.refs_prefix
    handles: Any = {k: db[k] for k in ("d", "l", "narrow", "inside")}
    top = handles["d"].uid
    assert backend.read_subtree(cp, rp, [top], 2000) == ({}, [], [top])
    for key in ("l", "narrow"):
        uid = handles[key].uid
        assert uid in backend.read_subtree(cp, rp, [uid], 2000)[0]
    inside, w = handles["inside"].uid, handles["inside"]["w"].uid
    assert {inside, w} == set(backend.read_subtree(cp, rp, [inside], 2000)[0])
    narrow = handles["narrow"].uid
    assert set(backend.read_subtree(cp, rp, [narrow, top], 2000)[0]) == {narrow, top}
    assert handles["d"]() == wide_dict
    assert handles["l"]() == wide_list
    assert handles["inside"]() == {"w": wide_dict, "n": 1}
    db.close()


def test_a_root_left_out_that_links_nothing_needs_no_unit_of_work(
    backend: RedisBackend,
) -> None:
    """One plain read of a root the walk left out, when it links nothing, is the whole
    document: one state, nothing to re-check, no unit of work."""
    db = DB(backend=backend, prefix="leftout", grace=0)
    items = {"a": 1, "b": "@x", "c": 1.5}
    db["d"] = items
    handle: Any = db["d"]
    made: list[int] = []
    real_init, real_read = Unit.__init__, RedisBackend.read_subtree

    def counted(self: Any, *args: Any) -> None:
        made.append(1)
        real_init(self, *args)

    def declining(self: Any, cp: str, rp: str, roots: Any, limit: int) -> Any:
        contents, absent, frontier = real_read(self, cp, rp, roots, limit)
        contents.pop(handle.uid, None)
        return contents, absent, [handle.uid, *frontier]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Unit, "__init__", counted)
        mp.setattr(RedisBackend, "read_subtree", declining)
        assert handle() == items
    assert made == []
    db.close()


def test_a_walk_of_several_roots_first_collects_a_big_lua_heap(backend: RedisBackend) -> None:
    """Garbage a big script left in the server's Lua heap makes every later script's
    strings cost more; a walk call given several roots (one of a wide walk's many calls)
    collects it first once it is over LUA_HEAP_KB. A one-root call leaves it."""
    db = DB(backend=backend, prefix="luaheap", grace=0)
    db["doc"] = {"a": {"b": 1}, "c": [1]}
    handle: Any = db["doc"]
    cp, rp = db._layout.content_prefix, db._layout.refs_prefix
    roots = [handle["a"].uid, handle["c"].uid]
    garbage = """
    local t = {}
    for i = 1, 400000 do t[i] = "garbage-" .. i end
    return #t
    """
    backend.eval(garbage, 0)
    assert backend.info("memory")["used_memory_lua"] > LUA_HEAP_KB * 1024
    assert handle() == {"a": {"b": 1}, "c": [1]}  # one root
    assert backend.info("memory")["used_memory_lua"] > LUA_HEAP_KB * 1024
    assert set(backend.read_subtree(cp, rp, roots, 10)[0]) == set(roots)
    assert backend.info("memory")["used_memory_lua"] < LUA_HEAP_KB * 1024
    db.close()
