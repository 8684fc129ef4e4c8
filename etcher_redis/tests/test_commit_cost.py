"""What a checked commit costs the client and the server (issue 13, round 5).

- An append through a handle checks only that its list is live and writes one
  command: it travels in the script's short layout (9 arguments instead of
  18), which the script runs without interpreting the long one. Every outcome
  (applied, refused, a Redis error) must be the long layout's.
- The script's dry run asks one ``EXISTS`` for the keys only writes name (new
  nodes) instead of a ``TYPE`` per key; a key among them that exists is still
  typed, so a write Redis would refuse is reported before anything is applied.
- A thread's held connection polls its socket on a kept poller instead of
  running the pool's ``ensure_connection`` while nothing arrived on it; a reply
  waiting on it or a close by the server still takes the pool's check (and a
  reconnect before a commit that may not be resent goes out).

Counts, never timings.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from etcher import DB
from etcher._unit import Unit
from etcher.errors import EtcherError, WrongTypeError
from etcher_redis import scripting
from etcher_redis.backend import RedisBackend
from etcher_redis.testing import RedisServer

pytestmark = pytest.mark.redis

HEADER, CONTENT = "{cost}:r:L1", "{cost}:c:L1"
LIVE = [("exists", (HEADER,), 1), ("hexists", (HEADER, b"#d"), False)]


def test_an_append_commits_in_the_short_layout(backend: RedisBackend) -> None:
    sent: list[tuple[Any, ...]] = []
    real = backend.execute_packed

    def record(*args: Any) -> Any:
        sent.append(args)
        return real(*args)

    db = DB(backend=backend, prefix="short")
    db["l"] = [1]
    handle = db["l"]
    handle.append(2)
    backend.execute_packed = record  # type: ignore[method-assign]
    handle.append(3)
    (args,) = sent
    assert args[0] == "EVALSHA" and args[2] == 2, args
    assert args[5] == "g" and args[7] == "rpush" and len(args) == 9, args
    assert db["l"]() == [1, 2, 3]


def short(argv: list[Any]) -> bool:
    return bool(argv) and argv[0] == "g"


@pytest.mark.parametrize(
    ("checks", "writes", "expected"),
    [
        (LIVE, [("rpush", (CONTENT, b"x"))], True),
        (LIVE, [("hset", (CONTENT, b"f", b"v"))], True),
        (LIVE, [("lpush", (CONTENT, *[b"x"] * scripting.CHUNK))], True),
        (LIVE, [("rpush", (CONTENT, *[b"x"] * (scripting.CHUNK + 1)))], False),
        (LIVE, [("rpush", (CONTENT, b"x")), ("rpush", (CONTENT, b"y"))], False),
        (LIVE, [("delete", (CONTENT,))], False),
        (LIVE, [("hset_item", (CONTENT, b"f", b"v", HEADER, b"#s"))], False),
        (LIVE, [("hset", (HEADER, b"f", b"v"))], False),
        ([("exists", (HEADER,), 0), LIVE[1]], [("rpush", (CONTENT, b"x"))], False),
        ([LIVE[0], ("hexists", (HEADER, b"#d"), True)], [("rpush", (CONTENT, b"x"))], False),
        ([LIVE[0], ("hexists", (CONTENT, b"#d"), False)], [("rpush", (CONTENT, b"x"))], False),
        ([LIVE[1], LIVE[0]], [("rpush", (CONTENT, b"x"))], False),
    ],
    ids=[
        "rpush",
        "hset",
        "chunk",
        "past-chunk",
        "two-writes",
        "delete",
        "item",
        "onto-header",
        "absent",
        "dead",
        "other-key",
        "order",
    ],
)
def test_only_a_liveness_guarded_single_write_takes_the_short_layout(
    checks: list[Any], writes: list[Any], expected: bool
) -> None:
    keys, argv = scripting.encode(checks, writes)
    assert short(argv) is expected
    if expected:
        assert keys == [HEADER, CONTENT]
        assert argv == ["g", b"#d", writes[0][0], *writes[0][1][1:]]


def _state(backend: RedisBackend) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (HEADER, CONTENT):
        kind = backend.type(key)
        if kind == b"hash":
            out[key] = backend.hgetall(key)
        elif kind == b"list":
            out[key] = backend.lrange(key, 0, -1)
        elif kind == b"string":
            out[key] = backend.get(key)
    return out


SETUPS: dict[str, Callable[[RedisBackend], object]] = {
    "live": lambda b: b.hset(HEADER, mapping={b"#k": b"l"}),
    "absent": lambda b: None,
    "dead": lambda b: b.hset(HEADER, mapping={b"#k": b"l", b"#d": b"1"}),
    "header-not-a-hash": lambda b: b.set(HEADER, b"x"),
    "target-a-string": lambda b: (b.hset(HEADER, mapping={b"#k": b"l"}), b.set(CONTENT, b"s")),
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize(
    "write", [("rpush", (CONTENT, b"x", b"y")), ("hset", (CONTENT, b"f", b"v"))], ids=str
)
def test_the_short_layout_answers_as_the_long_one(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, setup: str, write: Any
) -> None:
    outcomes = []
    for layout in ("short", "long"):
        backend.delete(HEADER, CONTENT)
        SETUPS[setup](backend)
        if layout == "long":
            monkeypatch.setattr(scripting, "_PLAIN_WRITES", frozenset())
        assert short(scripting.encode(LIVE, [write])[1]) is (layout == "short")
        try:
            result: Any = backend.checked_commit(LIVE, [write])
        except EtcherError as exc:
            result = type(exc)
        outcomes.append((result, _state(backend)))
    assert outcomes[0] == outcomes[1]
    result = outcomes[0][0]
    if setup == "live":
        assert result is True
    elif setup == "target-a-string":
        assert result is WrongTypeError
    else:
        assert result is False
    backend.delete(HEADER, CONTENT)


def test_a_big_write_asks_no_type_of_its_new_nodes(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    server = make_redis_server()
    stats = redis.Redis.from_url(server.url)
    try:
        with DB(server.url, prefix="dry") as db:
            db["warm"] = [1]
            stats.config_resetstat()
            # 601 new nodes, 1,202 new keys: two of the script's EXISTS chunks.
            doc = {f"k{i}": {"v": i} for i in range(600)}
            db["big"] = doc
            calls = stats.info("commandstats")
            assert db["big"]() == doc
        # The root's header and content are checked and typed; no new node is.
        assert calls.get("cmdstat_type", {}).get("calls", 0) <= 4, calls.get("cmdstat_type")
    finally:
        stats.close()


@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_key_only_a_write_names_is_still_typed_when_it_exists(
    backend: RedisBackend, where: int
) -> None:
    """A damaged store: a "new" node's key exists as a string; nothing may be applied."""
    names = [f"{{dry}}:c:N{i}" for i in range(3)]
    backend.set(names[where], b"s")
    unit = Unit(backend)
    unit.hgetall("{dry}:r:A")  # a read: the commit checks it
    for name in names:
        unit.create_hash(name, {b"a": b"1"})
    with pytest.raises(WrongTypeError):
        unit.commit()
    assert backend.get(names[where]) == b"s"
    assert backend.exists(*[n for i, n in enumerate(names) if i != where]) == 0
    backend.delete(names[where])


# --- the held connection's check before each command -----------------------------------


@pytest.fixture
def fresh(redis_server_url: str) -> Iterator[RedisBackend]:
    opened = RedisBackend.from_url(redis_server_url)
    yield opened
    opened.close()


def _held_connection(backend: RedisBackend) -> Any:
    return backend._etcher_local.held.conn


def test_a_quiet_held_connection_skips_the_pools_check(
    fresh: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("hiredis")
    pool = fresh.connection_pool
    fresh.set("cost:q", b"0")
    checks: list[Any] = []
    real = pool.ensure_connection
    monkeypatch.setattr(pool, "ensure_connection", lambda c: (checks.append(c), real(c))[1])
    for i in range(20):
        fresh.set("cost:q", str(i))
        assert fresh.get("cost:q") == str(i).encode()
    assert checks == []
    fresh.delete("cost:q")


def test_a_reply_waiting_on_a_held_connection_is_not_read_as_the_next_ones(
    fresh: RedisBackend,
) -> None:
    fresh.set("cost:w", b"v")
    conn = _held_connection(fresh)
    conn.send_command("PING")  # a reply nobody reads (a foreign use of the connection)
    # Wait until it has arrived (no sleep): the next command must not take it for its own.
    assert select.select([conn._sock], [], [], 10)[0]
    assert fresh.get("cost:w") == b"v"
    assert fresh.ping() is True
    fresh.delete("cost:w")


def test_a_held_connection_the_server_closed_reconnects_before_a_commit(
    fresh: RedisBackend, redis_server_url: str
) -> None:
    other = redis.Redis.from_url(redis_server_url)
    try:
        with DB(backend=fresh, prefix="killed") as db:
            db["l"] = [1]
            handle = db["l"]
            handle.append(2)
            # The held connection's id ("CLIENT ID", one word, goes the direct way).
            held_id = fresh.execute_command("CLIENT", "ID")
            assert other.client_kill_filter(_id=held_id) == 1
            # The server may close the socket just after answering the killer: wait (no
            # sleep) until the close has reached this end.
            assert select.select([_held_connection(fresh)._sock], [], [], 10)[0]
            handle.append(3)  # not CommitOutcomeUnknown: reconnected before sending
            assert db["l"]() == [1, 2, 3]
            db.delete_prefix_immediately("killed")
    finally:
        other.close()


def test_an_append_runs_few_of_etchers_python_calls(backend: RedisBackend) -> None:
    """etcher's own frames per append (redis-py's vary with its version): 32 before round 5."""
    import sys

    db = DB(backend=backend, prefix="calls")
    db["l"] = list(range(200))
    handle = db["l"]
    for i in range(5):  # warm: the script loaded, the thread's connection held
        handle.append(i)
    ours = 0

    def tracer(frame: Any, event: str, arg: Any) -> None:
        nonlocal ours
        if event == "call" and (
            "/etcher/" in frame.f_code.co_filename or "/etcher_redis/" in frame.f_code.co_filename
        ):
            ours += 1

    sys.setprofile(tracer)
    try:
        handle.append(1000)
    finally:
        sys.setprofile(None)
    assert ours - 1 <= 24, ours - 1  # the append itself not counted
    assert db["l"][-1] == 1000
    db.delete_prefix_immediately("calls")
