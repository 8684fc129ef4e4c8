"""The connection each thread keeps checked out for single commands (client._Held).

A one-round-trip operation (an append, a single write) takes no connection from
the pool and returns none; these tests pin the rules that keeps safe: one
thread's commands reuse one connection, two threads never share one, a forked
child opens its own, an interrupted command drops its connection's socket so
the next command reads its own reply, and close() gives every held
connection back.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any, ClassVar

import pytest
import redis

from etcher import DB
from etcher_redis.backend import RedisBackend


class Counting(redis.UnixDomainSocketConnection):
    """Records which connection objects send commands, and can interrupt a read once."""

    used: ClassVar[list[int]] = []
    interrupt: ClassVar[bool] = False

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).used.append(id(self))
        super().send_packed_command(*args, **kwargs)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if type(self).interrupt:
            type(self).interrupt = False
            raise KeyboardInterrupt
        return super().read_response(*args, **kwargs)


@pytest.fixture
def counted(redis_server_url: str) -> Any:
    pool = redis.ConnectionPool(
        connection_class=Counting, path=redis_server_url.removeprefix("unix://")
    )
    backend = RedisBackend.from_client(redis.Redis(connection_pool=pool))
    Counting.used.clear()
    yield backend, pool
    Counting.interrupt = False
    backend.close()
    pool.disconnect()


def test_single_commands_in_one_thread_use_one_connection_without_the_pool(counted: Any) -> None:
    backend, pool = counted
    backend.set("held:a", "1")
    taken = pool.get_connection
    calls: list[int] = []

    def counting_get(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return taken(*args, **kwargs)

    pool.get_connection = counting_get
    try:
        for i in range(20):
            backend.set("held:a", str(i))
            assert backend.get("held:a") == str(i).encode()
    finally:
        del pool.get_connection
    assert calls == []
    assert len(set(Counting.used)) == 1
    backend.delete("held:a")


def test_two_threads_never_share_a_held_connection(counted: Any) -> None:
    backend, _pool = counted
    backend.ping()
    mine = set(Counting.used)
    Counting.used.clear()
    both = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            both.wait(timeout=10)
            for _ in range(50):
                backend.incr("held:n")
            # Both threads alive to the end: a thread that ended gives its held
            # connection back to the pool, and the other may then rightly take it.
            both.wait(timeout=10)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    used = set(Counting.used)
    assert errors == []
    assert int(backend.get("held:n")) == 100
    # Each thread has a connection of its own, and neither is the main thread's.
    assert len(used) == 2
    assert not (used & mine)
    backend.delete("held:n")


def _child(backend: RedisBackend, out: Any) -> None:
    Counting.used.clear()
    backend.set("held:child", str(os.getpid()))
    out.send(list(Counting.used))
    out.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(counted: Any) -> None:
    backend, _pool = counted
    backend.ping()
    parent_conn = Counting.used[-1]
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(backend, send))
    child.start()
    send.close()
    used = receive.recv()
    child.join(timeout=30)
    assert child.exitcode == 0
    # id() of the inherited connection object would repeat: the child made a new one.
    assert used and parent_conn not in used
    assert backend.get("held:child") == str(child.pid).encode()
    # The parent's held connection still reads its own replies.
    assert backend.ping() is True
    backend.delete("held:child")


def test_an_interrupted_command_drops_the_held_socket(counted: Any, redis_server_url: str) -> None:
    backend, _pool = counted
    with DB(backend=backend, prefix="heldi") as db:
        db["l"] = [1]
        handle = db["l"]
        Counting.interrupt = True
        with pytest.raises(KeyboardInterrupt):
            handle.append(2)
        # The lost reply would be read as this command's (an integer, not PONG/True).
        assert backend.ping() is True
        assert backend.get("heldi:nothing") is None
        assert db["l"]() in ([1], [1, 2])
        db.delete_prefix_immediately("heldi")


def test_close_gives_held_connections_back(redis_server_url: str) -> None:
    pool = redis.ConnectionPool(
        connection_class=redis.UnixDomainSocketConnection,
        path=redis_server_url.removeprefix("unix://"),
    )
    backend = RedisBackend.from_client(redis.Redis(connection_pool=pool))
    backend.ping()
    assert len(pool._in_use_connections) == 1
    backend.close()
    assert len(pool._in_use_connections) == 0
    pool.disconnect()


def test_a_finished_thread_gives_its_connection_back(counted: Any) -> None:
    backend, pool = counted
    t = threading.Thread(target=backend.ping)
    t.start()
    t.join()
    del t
    assert len(pool._in_use_connections) == 0


class Reentrant(redis.UnixDomainSocketConnection):
    """Runs ``nested`` once between sending a command and reading its reply (a signal handler)."""

    nested: ClassVar[Any] = None

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        nested, type(self).nested = type(self).nested, None
        if nested is not None:
            nested()
        return super().read_response(*args, **kwargs)


def test_a_command_issued_while_one_is_in_flight_uses_another_connection(
    redis_server_url: str,
) -> None:
    pool = redis.ConnectionPool(
        connection_class=Reentrant, path=redis_server_url.removeprefix("unix://")
    )
    backend = RedisBackend.from_client(redis.Redis(connection_pool=pool))
    try:
        backend.delete("held:r")
        seen: list[Any] = []
        Reentrant.nested = lambda: seen.append(backend.get("held:r"))
        # INCR is never resent: sharing its connection would lose or mix up its reply.
        assert backend.incr("held:r") == 1
        assert seen in ([None], [b"1"])
        backend.delete("held:r")
    finally:
        Reentrant.nested = None
        backend.close()
        pool.disconnect()
