"""Commands packed in one go (``pack_command``) travel exactly as redis-py would send them."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import redis.connection
from redis._parsers.encoders import Encoder
from redis.backoff import NoBackoff
from redis.retry import Retry

from etcher import DB
from etcher.errors import WrongTypeError
from etcher_redis import client as client_module
from etcher_redis import scripting
from etcher_redis.backend import RedisBackend
from etcher_redis.client import pack_command

pytestmark = pytest.mark.redis

SAMPLES: list[tuple[Any, ...]] = [
    ("EVALSHA", "ab" * 20, 2, "{p}Dk", b"raw\r\nbytes", "", b""),
    ("HSET", "k\u00e9\u4e2d\U0001f600", b"\x00\xff", 0, -1, 2**80, -(2**70)),
    ("EVAL", "return 1", 0, *[f"f{i}" for i in range(3000)], *range(3000)),
]


def redis_py_packing(args: tuple[Any, ...]) -> bytes:
    encoder = Encoder("utf-8", "strict", False)
    return b"".join(redis.connection.PythonRespSerializer(6000, encoder.encode).pack(*args))


@pytest.fixture(params=["hiredis", "python"])
def packer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(client_module, "_hiredis_pack", None)
    elif client_module._hiredis_pack is None:
        pytest.skip("hiredis is not installed")
    return str(request.param)


@pytest.mark.parametrize("args", SAMPLES, ids=["script", "types", "long"])
def test_packed_bytes_are_redis_pys(packer: str, args: tuple[Any, ...]) -> None:
    assert pack_command(args) == redis_py_packing(args)


@pytest.mark.parametrize(
    "odd", [True, 1.5, None, memoryview(b"x"), bytearray(b"x"), "\udcff", object()]
)
def test_what_it_cannot_spell_exactly_goes_through_redis_py(packer: str, odd: Any) -> None:
    assert pack_command(("SET", "k", odd)) is None


def test_odd_arguments_still_get_redis_pys_answer(backend: RedisBackend) -> None:
    # Falls back to execute_command: redis-py refuses a bool itself.
    with pytest.raises(TypeError):
        backend.execute_packed("SET", "k", True)
    assert backend.execute_packed("SET", "k", 1.5)
    assert backend.get("k") == b"1.5"


def test_a_first_big_commit_travels_once(backend: RedisBackend) -> None:
    """The script's text goes with the first commit instead of a refused EVALSHA first."""
    sent: list[str] = []
    real = backend.execute_packed

    texts: list[Any] = []

    def record(*args: Any) -> Any:
        sent.append(str(args[0]))
        if args[0] == "EVAL":
            texts.append(args[1])
        return real(*args)

    backend.script_flush()
    backend.execute_packed = record  # type: ignore[method-assign]
    db = DB(backend=backend, prefix="once")
    try:
        db["big"] = {f"k{i}": [i, {"v": i}] for i in range(300)}
        scripts = [c for c in sent if c.startswith("EVAL")]
        # No EVALSHA refused with NOSCRIPT first, then each script's text once (the checked
        # commit's, and the unlinking commit's for an assignment), then its SHA.
        assert scripts[0] == "EVAL" and len(texts) == len(set(texts)) <= 2, scripts
        sent.clear()
        db["big"]["k1"][1]["v"] = -1
        assert [c for c in sent if c.startswith("EVAL")] == ["EVALSHA"]
        assert backend.script_exists(scripting.SCRIPT_SHA) == [True]
        assert db["big"]["k1"]() == [1, {"v": -1}]
    finally:
        db.delete_prefix_immediately("once")


def test_a_client_with_another_encoding_keeps_it(
    redis_server_url: str, backend: RedisBackend
) -> None:
    """Only UTF-8 clients are packed in one go; others encode through redis-py."""
    latin = RedisBackend.from_url(redis_server_url, encoding="latin-1")
    try:
        assert latin.execute_packed("SET", "caf\u00e9", "\u00e9")
        assert backend.get(b"caf\xe9") == b"\xe9"
        db = DB(backend=latin, prefix="latin")
        db["caf\u00e9"] = {"\u00e9": "\u00e9"}
        assert db["caf\u00e9"]() == {"\u00e9": "\u00e9"}
        db.delete_prefix_immediately("latin")
    finally:
        latin.close()


class InterruptedRead(redis.UnixDomainSocketConnection):
    """Raises KeyboardInterrupt once, instead of reading the next reply (left on the socket)."""

    armed: ClassVar[bool] = False

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if type(self).armed:
            type(self).armed = False
            raise KeyboardInterrupt
        return super().read_response(*args, **kwargs)


def test_a_commit_interrupted_before_its_reply_leaves_no_stale_reply(
    redis_server_url: str,
) -> None:
    """The connection is dropped: the next command must not read the lost commit's reply."""
    pool = redis.ConnectionPool(
        connection_class=InterruptedRead,
        path=redis_server_url.removeprefix("unix://"),
        max_connections=1,
    )
    backend = RedisBackend.from_client(redis.Redis(connection_pool=pool))
    try:
        with DB(backend=backend, prefix="intr") as db:
            db["l"] = [1]
            handle = db["l"]
            InterruptedRead.armed = True
            with pytest.raises(KeyboardInterrupt):
                handle.append(2)
            assert backend.ping() is True
            assert db["l"]() in ([1], [1, 2])
            db.delete_prefix_immediately("intr")
    finally:
        InterruptedRead.armed = False
        backend.close()
        pool.disconnect()


# --- plain batches (pipelines without a transaction) sent directly ----------------------


def _fill(client: Any) -> None:
    client.hset("h", mapping={"a": "1", "b": "\u00e9"})
    client.rpush("l", "x", "y")
    client.set("s", "v")


def _batch(pipe: Any) -> Any:
    pipe.hgetall("h")
    pipe.hget("h", "nope")
    pipe.lrange("l", 0, -1)
    pipe.exists("h", "s", "gone")
    pipe.get("s")
    pipe.hlen("h")
    pipe.set("t", 1.5)  # a float: this batch goes through redis-py's own packing
    return pipe


def test_a_batch_answers_as_redis_py_does(backend: RedisBackend, redis_server_url: str) -> None:
    _fill(backend)
    plain = redis.Redis.from_url(redis_server_url)
    try:
        batch = backend.pipeline(transaction=False)
        for command in ("hgetall", "lrange", "get"):
            getattr(batch, command)(
                *{"hgetall": ("h",), "lrange": ("l", 0, -1), "get": ("s",)}[command]
            )
        expected = plain.pipeline(transaction=False)
        expected.hgetall("h").lrange("l", 0, -1).get("s")
        assert batch.execute() == expected.execute()
        assert (
            _batch(backend.pipeline(transaction=False)).execute()
            == _batch(plain.pipeline(transaction=False)).execute()
        )
        assert len(backend.pipeline(transaction=False)) == 0
    finally:
        plain.close()


def test_an_error_in_a_batch_is_etchers_and_the_connection_goes_on(backend: RedisBackend) -> None:
    _fill(backend)
    pipe = backend.pipeline(transaction=False)
    pipe.hget("h", "a").lrange("h", 0, -1).get("s")
    with pytest.raises(WrongTypeError):
        pipe.execute()
    pipe.hget("h", "a").lrange("h", 0, -1).get("s")
    first, error, last = pipe.execute(raise_on_error=False)
    assert (first, last) == (b"1", b"v")
    assert isinstance(error, WrongTypeError)
    assert backend.get("s") == b"v"
    assert backend.pipeline(transaction=False).execute() == []


class LosingBatchReply(redis.UnixDomainSocketConnection):
    """Drops the connection once, after the first reply of the next batch of several commands."""

    armed: ClassVar[bool] = False

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        if type(self).armed:
            type(self).armed = False
            self.disconnect()
            raise redis.ConnectionError("injected: the batch's replies were lost")
        return response


def test_a_read_batch_whose_replies_were_lost_is_sent_again(redis_server_url: str) -> None:
    pool = redis.ConnectionPool(
        connection_class=LosingBatchReply,
        path=redis_server_url.removeprefix("unix://"),
        retry=Retry(NoBackoff(), 3),
    )
    backend = RedisBackend.from_client(redis.Redis(connection_pool=pool))
    try:
        backend.flushdb()
        _fill(backend)
        pipe = backend.pipeline(transaction=False)
        pipe.hget("h", "a").get("s").lrange("l", 0, -1)
        LosingBatchReply.armed = True
        assert pipe.execute() == [b"1", b"v", [b"x", b"y"]]
        assert not LosingBatchReply.armed  # the first reply was lost, and the batch resent
    finally:
        LosingBatchReply.armed = False
        backend.close()
        pool.disconnect()


def test_a_sped_up_connection_sends_redis_pys_bytes() -> None:
    """The packer etcher installs on its connections changes how fast, never what is sent."""
    from etcher_redis.client import _speed_up

    commands: list[tuple[Any, ...]] = [
        *SAMPLES,
        ("SCRIPT LOAD", "return 1"),  # redis-py splits a name with a space
        (b"CONFIG GET", "maxmemory"),
        ("SET", "k", memoryview(b"view")),
        ("SET", "k", 2.5),
        ("HSET", "h", "f", b"v" * 10_000),
    ]
    plain, fast = redis.connection.Connection(), redis.connection.Connection()
    _speed_up(fast)
    assert type(fast._command_packer).__name__ == "_Packer"
    for command in commands:
        assert b"".join(map(bytes, fast.pack_command(*command))) == b"".join(
            map(bytes, plain.pack_command(*command))
        ), command
    assert b"".join(map(bytes, fast.pack_commands(commands))) == b"".join(
        map(bytes, plain.pack_commands(commands))
    )
    latin = redis.connection.Connection(encoding="latin-1")
    _speed_up(latin)
    assert type(latin._command_packer).__name__ != "_Packer"


def test_a_client_side_cache_sees_every_command() -> None:
    """A pool with redis-py's client-side cache is never bypassed (its connections answer
    reads from memory). Its server must be Redis 7.4+, so only the decision is tested here."""
    from etcher_redis.client import _direct

    assert _direct(redis.ConnectionPool())
    cached = redis.ConnectionPool()
    cached.cache = object()
    assert not _direct(cached)
    configured = redis.ConnectionPool()
    configured.connection_kwargs["cache_config"] = object()
    assert not _direct(configured)
    assert not _direct(redis.ConnectionPool(encoding="latin-1"))


def test_a_scan_without_count_asks_for_many_keys_per_call(backend: RedisBackend) -> None:
    """Redis's default COUNT is 10: walking 5,000 keys took 500 round trips."""
    pipe = backend.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"{{scan}}:k{i}", 1)
    pipe.execute()
    backend.config_resetstat()
    assert len(list(backend.scan_iter(match="{scan}:*"))) == 5000
    calls = backend.info("commandstats")["cmdstat_scan"]["calls"]
    assert calls <= 20, calls
