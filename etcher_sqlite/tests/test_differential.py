"""Random command sequences give the same results and state as Redis.

The reference is fakeredis (always available) and, when the conformance kit can
provide one, a real ``redis-server``. Single commands must agree exactly,
errors included (by kind). A pipeline must agree when Redis runs it without
errors; when Redis reports an error inside ``EXEC``, SQLite must raise the same
kind of error and apply nothing (its batches are atomic; Redis's are not).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcher.errors import StoreIndexError, StoreValueError, WrongTypeError
from etcher_sqlite import SQLiteBackend

KEYS = ["a", "b", "c"]
key = st.sampled_from(KEYS)
field = st.sampled_from(["f", "g", "h"])
value = st.sampled_from(["0", "1", "-1", "x", "9223372036854775807", "", "01", "é"])
amount = st.sampled_from([0, 1, -1, 7, 2**62, -(2**62)])
index = st.integers(-4, 4)
count = st.one_of(st.none(), st.integers(1, 3))

COMMANDS = {
    "get": st.tuples(st.just("get"), key),
    "set": st.tuples(st.just("set"), key, value),
    "incr": st.tuples(st.just("incr"), key, amount),
    "decr": st.tuples(st.just("decr"), key, amount),
    "type": st.tuples(st.just("type"), key),
    "exists": st.tuples(st.just("exists"), key, key),
    "delete": st.tuples(st.just("delete"), key, key),
    "hget": st.tuples(st.just("hget"), key, field),
    "hmget": st.tuples(st.just("hmget"), key, st.lists(field, min_size=1, max_size=3)),
    "hset": st.tuples(st.just("hset"), key, field, value),
    "hset_mapping": st.tuples(
        st.just("hset_mapping"), key, st.dictionaries(field, value, min_size=1)
    ),
    "hset_both": st.tuples(st.just("hset_both"), key, field, value, st.dictionaries(field, value)),
    "hdel": st.tuples(st.just("hdel"), key, field, field),
    "hgetall": st.tuples(st.just("hgetall"), key),
    "hkeys": st.tuples(st.just("hkeys"), key),
    "hlen": st.tuples(st.just("hlen"), key),
    "hexists": st.tuples(st.just("hexists"), key, field),
    "hincrby": st.tuples(st.just("hincrby"), key, field, amount),
    "rpush": st.tuples(st.just("rpush"), key, value, value),
    "lpush": st.tuples(st.just("lpush"), key, value),
    "lpop": st.tuples(st.just("lpop"), key, count),
    "rpop": st.tuples(st.just("rpop"), key, count),
    "lrange": st.tuples(st.just("lrange"), key, index, index),
    "lindex": st.tuples(st.just("lindex"), key, index),
    "lset": st.tuples(st.just("lset"), key, index, value),
    "llen": st.tuples(st.just("llen"), key),
    "ltrim": st.tuples(st.just("ltrim"), key, index, index),
}
command = st.one_of(*COMMANDS.values())
# Runs of one command are executed together (executemany) and deserve their own draws.
run = st.sampled_from(sorted(COMMANDS)).flatmap(
    lambda name: st.lists(COMMANDS[name], min_size=2, max_size=5)
)
step = st.one_of(command, st.lists(command, min_size=1, max_size=5), run)


def apply(client: Any, cmd: tuple[Any, ...], prefix: str) -> Any:
    name, target, *args = cmd
    target = prefix + target
    if name in ("exists", "delete"):
        return getattr(client, name)(target, *(prefix + k for k in args))
    if name == "hset":
        return client.hset(target, args[0], args[1])
    if name == "hset_mapping":
        return client.hset(target, mapping=args[0])
    if name == "hset_both":
        return client.hset(target, args[0], args[1], mapping=args[2])
    if name in ("lpop", "rpop") and args[0] is None:
        return getattr(client, name)(target)
    return getattr(client, name)(target, *args)


def kind(error: BaseException) -> str:
    if isinstance(error, WrongTypeError) or "WRONGTYPE" in str(error):
        return "wrongtype"
    if isinstance(error, StoreIndexError) or "index out of range" in str(error):
        return "index"
    if "no such key" in str(error):
        return "index"
    if isinstance(error, StoreValueError) or "integer" in str(error) or "overflow" in str(error):
        return "value"
    return f"other: {error!r}"


def outcome(client: Any, cmd: tuple[Any, ...], prefix: str) -> Any:
    try:
        result = apply(client, cmd, prefix)
    except (redis.ResponseError, WrongTypeError, StoreIndexError, StoreValueError) as exc:
        return ("error", kind(exc))
    return normalize(cmd[0], result)


def normalize(name: str, result: Any) -> Any:
    if name == "hkeys":
        return sorted(result)
    if name == "hexists":
        return bool(result)
    return result


def dump(client: Any, prefix: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name in KEYS:
        full = prefix + name
        kind_ = client.type(full)
        if kind_ == b"string":
            state[name] = client.get(full)
        elif kind_ == b"hash":
            state[name] = client.hgetall(full)
        elif kind_ == b"list":
            state[name] = client.lrange(full, 0, -1)
    return state


def load(client: Any, state: dict[str, Any], prefix: str) -> None:
    client.delete(*(prefix + name for name in KEYS))
    for name, content in state.items():
        if isinstance(content, bytes):
            client.set(prefix + name, content)
        elif isinstance(content, dict):
            client.hset(prefix + name, mapping=content)
        else:
            client.rpush(prefix + name, *content)


def run_program(ours: SQLiteBackend, reference: Any, program: list[Any]) -> None:
    prefix = f"d{uuid.uuid4().hex}:"
    try:
        for item in program:
            if isinstance(item, tuple):
                assert outcome(ours, item, prefix) == outcome(reference, item, prefix), item
            else:
                run_pipeline(ours, reference, item, prefix)
            assert dump(ours, prefix) == dump(reference, prefix), item
    finally:
        ours.delete(*(prefix + name for name in KEYS))
        reference.delete(*(prefix + name for name in KEYS))


def run_pipeline(ours: SQLiteBackend, reference: Any, cmds: list[Any], prefix: str) -> None:
    ref_pipe = reference.pipeline()
    for cmd in cmds:
        apply(ref_pipe, cmd, prefix)
    expected = ref_pipe.execute(raise_on_error=False)
    errors = [kind(result) for result in expected if isinstance(result, Exception)]
    before = dump(ours, prefix)
    pipe = ours.pipeline()
    for cmd in cmds:
        apply(pipe, cmd, prefix)
    if not errors:
        results = pipe.execute()
        assert [normalize(c[0], r) for c, r in zip(cmds, results, strict=True)] == [
            normalize(c[0], r) for c, r in zip(cmds, expected, strict=True)
        ], cmds
        return
    with pytest.raises((WrongTypeError, StoreIndexError, StoreValueError)) as info:
        pipe.execute()
    assert kind(info.value) in errors, cmds
    assert dump(ours, prefix) == before, cmds  # atomic: nothing applied
    load(reference, before, prefix)  # bring the reference back in step


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteBackend]:
    store = SQLiteBackend(Path(tmp_path_factory.mktemp("diff")) / "diff.db")
    yield store
    store.close()


@pytest.fixture(scope="module")
def fake() -> Any:
    return fakeredis.FakeRedis()


@settings(max_examples=300, deadline=None)
@given(program=st.lists(step, min_size=1, max_size=12))
def test_same_as_fakeredis(ours: SQLiteBackend, fake: Any, program: list[Any]) -> None:
    run_program(ours, fake, program)


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.redis
@settings(
    max_examples=300,
    deadline=None,
    # One client serves every example; each example works under its own key prefix.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(program=st.lists(step, min_size=1, max_size=12))
def test_same_as_real_redis(ours: SQLiteBackend, real_redis: Any, program: list[Any]) -> None:
    run_program(ours, real_redis, program)


@pytest.mark.redis
def test_pop_with_count_zero_like_real_redis(ours: SQLiteBackend, real_redis: Any) -> None:
    """Not in the random programs: Redis 6.2 and 7 disagree here; etcher follows Redis 7 ([])."""
    prefix = f"z{uuid.uuid4().hex}:"
    real_redis.rpush(prefix + "l", 1)
    ours.rpush(prefix + "l", 1)
    try:
        assert ours.lpop(prefix + "l", 0) == []
        assert ours.lpop(prefix + "missing", 0) is None
        assert real_redis.lpop(prefix + "missing", 0) is None
    finally:
        real_redis.delete(prefix + "l")
        ours.delete(prefix + "l")
