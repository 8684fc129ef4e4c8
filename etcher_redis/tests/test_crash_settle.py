"""etcher_redis.testing.faults.killed_clients_applied: the crash campaigns' settle hook.

After a child is killed, the campaign reads the store; on Redis the child's last command
can still wait in the server's socket buffer and land after that read. The hook waits
until the child's connections are gone, which Redis only notices after running what they
sent. These tests pin what it waits for and what it ignores, on a private server (no
other test's connections come and go on it).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
import redis

from etcher import DB
from etcher_redis.testing.faults import killed_clients_applied
from etcher_redis.testing.server import RedisServer


@pytest.fixture
def redis_server_url(make_redis_server: Callable[..., RedisServer]) -> str:
    return make_redis_server().url


@pytest.fixture
def db(redis_server_url: str) -> Iterator[DB]:
    opened = DB(redis_server_url, prefix="settle")
    yield opened
    opened.close()


def _named_client(url: str, name: str) -> redis.Redis:
    client = redis.Redis.from_url(url, client_name=name)
    client.ping()  # connects (and names the connection) now
    return client


def test_it_waits_for_a_connection_opened_after_it_and_names_it(
    db: DB, redis_server_url: str
) -> None:
    wait = killed_clients_applied(db, name="child", timeout=0.2)
    child = _named_client(redis_server_url, "child")
    try:
        with pytest.raises(AssertionError, match=r"still open 0.2 s after .* cmd=ping"):
            wait()
    finally:
        child.close()
    wait()  # gone now: returns


def test_it_ignores_older_connections_and_other_names(db: DB, redis_server_url: str) -> None:
    older = _named_client(redis_server_url, "child")
    wait = killed_clients_applied(db, name="child", timeout=0.2)
    other = _named_client(redis_server_url, "someone-else")
    try:
        wait()  # neither the older "child" nor a newer connection of another name counts
    finally:
        older.close()
        other.close()


def test_without_a_name_every_new_connection_counts(db: DB, redis_server_url: str) -> None:
    wait = killed_clients_applied(db, timeout=0.2)
    other = _named_client(redis_server_url, "someone-else")
    try:
        with pytest.raises(AssertionError, match="name=someone-else cmd=ping"):
            wait()
    finally:
        other.close()
    wait()


def test_what_a_closed_connection_sent_is_applied_once_it_returns(
    db: DB, redis_server_url: str
) -> None:
    """A client that writes and dies without reading its reply: the write is there."""
    path = redis.Redis.from_url(redis_server_url).connection_pool.connection_kwargs.get("path")
    if not path:
        pytest.skip("the raw client below speaks to a unix socket")
    wait = killed_clients_applied(db)
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(path)
    value = b"x" * 4096
    raw.sendall(b"*3\r\n$3\r\nSET\r\n$14\r\nsettle:applied\r\n$%d\r\n%s\r\n" % (len(value), value))
    raw.close()  # never reads the reply, as a killed child
    wait()
    assert db.backend.get("settle:applied") == value  # type: ignore[attr-defined]
