"""Connection failures: refused, bad credentials, timeouts, servers that die and come back.

Every failure must surface as :class:`etcher.errors.BackendUnavailable` naming
the server (never a redis-py exception, never a password), a mutation cut off
by a lost connection must be applied entirely or not at all (and never twice),
and once the server is back the *same* DB object must work again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from etcher import DB
from etcher.errors import BackendUnavailable, WatchError
from etcher_redis.backend import RedisBackend
from etcher_redis.testing import RedisServer

pytestmark = pytest.mark.redis

MakeServer = Callable[..., RedisServer]


def tree(width: int, depth: int) -> dict[str, Any]:
    """A document of dicts and lists, ``width`` children per node, ``depth`` levels."""
    root: dict[str, Any] = {"level": 0}
    frontier: list[Any] = [root]
    for level in range(1, depth):
        nxt: list[Any] = []
        for parent in frontier:
            for i in range(width):
                child: Any = {"level": level, "i": i} if level % 2 else [level, i]
                if isinstance(parent, dict):
                    parent[f"k{i}"] = child
                else:
                    parent.append(child)
                nxt.append(child)
        frontier = nxt
    return root


def server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


# --- nothing there ----------------------------------------------------------------------


def test_nothing_listening_on_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    # A socket file nobody accepts on: connecting is refused (ECONNREFUSED).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        with pytest.raises(BackendUnavailable) as excinfo:
            DB(f"unix://{path}")
    message = str(excinfo.value)
    assert f"unix://{path}?db=0" in message
    assert isinstance(excinfo.value, ConnectionError)
    assert excinfo.value.__cause__ is not None  # the redis-py error stays attached


def test_nothing_listening_on_a_tcp_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(BackendUnavailable, match=rf"redis://127\.0\.0\.1:{port}/0"):
            DB(f"redis://127.0.0.1:{port}/0")


# --- credentials ------------------------------------------------------------------------


def configure(server: RedisServer, *command: str) -> None:
    """Send a configuration command to a running server.

    Credentials are set after the start because the kit's start-up probe is a
    plain ``PING``, which a password-protected server answers with ``NOAUTH``.
    """
    client = redis.Redis.from_url(server.url)
    try:
        client.execute_command(*command)
    finally:
        client.close()


def test_password_protected_server(make_redis_server: MakeServer) -> None:
    server = make_redis_server()
    configure(server, "CONFIG", "SET", "requirepass", "s3cret")
    with pytest.raises(BackendUnavailable, match="refused the credentials") as excinfo:
        DB(server.url)  # no password: NOAUTH
    assert server.url in str(excinfo.value)
    with pytest.raises(BackendUnavailable, match="refused the credentials") as excinfo:
        DB(server.url.replace("unix://", "unix://:wrong@"))
    assert "wrong" not in str(excinfo.value)
    with DB(server.url.replace("unix://", "unix://:s3cret@")) as db:
        db["x"] = {"ok": [1]}
        assert db["x"]() == {"ok": [1]}
    with DB(server.url, password="s3cret") as db:  # options reach redis-py too
        assert db["x"]["ok"] == [1]


def test_acl_user_and_database_number(make_redis_server: MakeServer) -> None:
    server = make_redis_server()
    configure(server, "ACL", "SETUSER", "alice", "on", ">pw-alice", "~*", "&*", "+@all")
    path = server.socket_path
    with DB(f"unix://alice:pw-alice@{path}?db=3", prefix="p") as db3:
        db3["who"] = "alice in 3"
        with DB(f"unix://alice:pw-alice@{path}?db=0", prefix="p") as db0:
            assert "who" not in db0  # database numbers keep stores apart
            db0["who"] = "alice in 0"
        assert db3["who"] == "alice in 3"
        assert "pw-alice" not in repr(db3.backend)
    with pytest.raises(BackendUnavailable, match="refused the credentials") as excinfo:
        DB(f"unix://alice:nope@{path}?db=3")
    assert "nope" not in str(excinfo.value) and f"unix://{path}?db=3" in str(excinfo.value)


# --- a server that stops answering --------------------------------------------------------


def test_timeout_on_a_stopped_server_then_recovery(make_redis_server: MakeServer) -> None:
    server = make_redis_server()
    pid = server_pid(server.url)
    with DB(server.url, prefix="t", socket_timeout=0.5) as db:
        db["a"] = {"n": 1}
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(BackendUnavailable, match="did not answer in time") as excinfo:
                db["a"]()
            assert server.url in str(excinfo.value)
            with pytest.raises(BackendUnavailable, match="did not answer in time"):
                db["a"]["n"] = 2
        finally:
            os.kill(pid, signal.SIGCONT)
        # The same DB object, without reopening anything.
        assert db["a"]() == {"n": 1}
        db["a"]["n"] = 3
        assert db["a"]["n"] == 3
        assert db.check().ok


# --- a server that dies and comes back ------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_server_dies_mid_run_and_the_same_db_works_after_restart(
    make_redis_server: MakeServer, how: str
) -> None:
    # fsync before every reply: with the default (everysec), a loaded machine can delay the
    # append-only file's write past the reply, and kill -9 then loses an acknowledged write.
    server = make_redis_server(appendonly=True, extra_args=("--appendfsync", "always"))
    db = DB(server.url, prefix="life")
    try:
        db["doc"] = {"items": [1, 2], "meta": {"v": 1}}
        handle = db["doc"]["items"]
        getattr(server, how)()
        for operation in (
            lambda: db["doc"](),
            lambda: handle.append(3),
            lambda: db.__setitem__("other", [1]),
            lambda: db.incr("hits"),
            lambda: db.transact(lambda t: t["doc"]["meta"].update(v=2)),
        ):
            with pytest.raises(BackendUnavailable) as excinfo:
                operation()
            assert server.url in str(excinfo.value)
        server.start()
        # Pooled connections died with the server; the pool replaces them transparently.
        assert db["doc"]() == {"items": [1, 2], "meta": {"v": 1}}
        handle.append(3)
        db.incr("hits")
        db.transact(lambda t: t["doc"]["meta"].update(v=2))
        assert db["doc"]() == {"items": [1, 2, 3], "meta": {"v": 2}}
        assert db.count("hits") == 1
        assert db.check().ok
    finally:
        with contextlib.suppress(BackendUnavailable):
            db.close()


class PausingConnection(redis.UnixDomainSocketConnection):
    """Holds the next big transaction at an exact point until the test has killed the server.

    ``"mid-transaction"``: half of the MULTI ... EXEC bytes are sent, the rest after the
    kill (the server dies with a half-received transaction). ``"after-exec"``: all of it
    is sent, EXEC included, and the reply read after the kill (the server may or may not
    have applied it). Either way the write fails and the store is all or nothing.
    """

    EXEC = b"*1\r\n$4\r\nEXEC\r\n"
    where: ClassVar[str | None] = None
    reached: ClassVar[threading.Event] = threading.Event()
    resume: ClassVar[threading.Event] = threading.Event()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        payload = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        cls = type(self)
        commit = payload.endswith(self.EXEC) or _is_script(payload)
        if cls.where is None or not commit or len(payload) < 100_000:
            return super().send_packed_command(command, check_health)
        where, cls.where = cls.where, None
        cut = len(payload) // 2 if where == "mid-transaction" else len(payload)
        super().send_packed_command([payload[:cut]], check_health)
        cls.reached.set()
        cls.resume.wait()
        if cut < len(payload):
            super().send_packed_command([payload[cut:]], check_health)
        return None


@pytest.mark.parametrize("where", ["mid-transaction", "after-exec"])
def test_kill_during_a_big_write_leaves_all_or_nothing(
    make_redis_server: MakeServer, where: str
) -> None:
    server = make_redis_server(appendonly=True, extra_args=("--appendfsync", "always"))
    doc = tree(width=6, depth=6)  # 9,331 nodes
    PausingConnection.where = None
    PausingConnection.reached, PausingConnection.resume = threading.Event(), threading.Event()
    pool = redis.ConnectionPool(connection_class=PausingConnection, path=str(server.socket_path))
    client = redis.Redis(connection_pool=pool)
    db = DB(redis=client, prefix="big")
    try:
        db["keep"] = {"k": [1]}
        errors: list[BaseException] = []

        def write() -> None:
            try:
                db["doc"] = doc
            except BaseException as exc:
                errors.append(exc)

        PausingConnection.where = where
        writer = threading.Thread(target=write)
        writer.start()
        try:
            assert PausingConnection.reached.wait(timeout=120), "the write never got there"
            server.kill()
        finally:
            PausingConnection.resume.set()
            writer.join()
        assert len(errors) == 1 and isinstance(errors[0], BackendUnavailable), errors
        server.start()  # replays the append-only file
        assert db["keep"]() == {"k": [1]}
        if where == "mid-transaction":
            assert "doc" not in db  # a transaction without its EXEC is never applied
        elif "doc" in db:
            assert db["doc"]() == doc
        report = db.check()
        assert report.ok, str(report)
    finally:
        PausingConnection.where = None
        with contextlib.suppress(BackendUnavailable):
            db.close()
        client.close()


# --- a connection lost at an exact point of a write -------------------------------------------


class DroppingConnection(redis.UnixDomainSocketConnection):
    """A unix socket connection that drops itself once, at the armed point.

    ``"before-exec"``: the next transaction with commands is sent without its
    ``EXEC`` and the socket closed, so the server discards it (nothing applied).
    ``"after-exec"``: the next such transaction runs and its reply is read, then
    the connection drops as if the reply had been lost (everything applied, the
    client cannot know). ``"after-reply"``: the same for the next single command.
    A checked commit (one script) counts as a transaction: ``"before-exec"`` sends
    half of it.
    """

    MULTI = b"*1\r\n$5\r\nMULTI\r\n"
    EXEC = b"*1\r\n$4\r\nEXEC\r\n"
    armed: ClassVar[str | None] = None
    fired: ClassVar[int] = 0
    _drop_on_reply = False
    _want_list = False

    @classmethod
    def arm(cls, mode: str | None) -> None:
        cls.armed, cls.fired = mode, 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        payload = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        script = _is_script(payload)
        transaction = payload.endswith(self.EXEC)
        has_writes = script or (transaction and len(payload) > len(self.MULTI) + len(self.EXEC))
        cls = type(self)
        if cls.armed == "before-exec" and has_writes:
            cls.arm(None)
            cls.fired = 1
            # Half a command (or a transaction without its EXEC): the server discards it.
            cut = len(payload) // 2 if script else len(payload) - len(self.EXEC)
            super().send_packed_command([payload[:cut]], check_health)
            self.disconnect()
            raise redis.ConnectionError("injected: connection dropped before EXEC")
        if (cls.armed == "after-exec" and has_writes) or (
            cls.armed == "after-reply" and not transaction and not script
        ):
            self._want_list = cls.armed == "after-exec" and not script
            self._drop_on_reply = True
            cls.arm(None)
            cls.fired = 1
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        # The EXEC reply is the only list among the replies to a transaction.
        if self._drop_on_reply and (isinstance(response, list) or not self._want_list):
            self._drop_on_reply = False
            self.disconnect()
            raise redis.ConnectionError("injected: connection dropped before the reply")
        return response


def _is_script(payload: bytes) -> bool:
    """Whether ``payload`` is a checked commit (one EVALSHA/EVAL of etcher's script)."""
    head = payload[:40].upper()
    return b"\r\nEVALSHA\r\n" in head or b"\r\nEVAL\r\n" in head


@pytest.fixture
def dropping(redis_server_url: str) -> Iterator[redis.Redis]:
    """A user's own client, with redis-py's automatic retries on, over DroppingConnection."""
    pool = redis.ConnectionPool(
        connection_class=DroppingConnection,
        path=redis_server_url.removeprefix("unix://"),
        retry=Retry(NoBackoff(), 3),
    )
    client = redis.Redis(connection_pool=pool)
    client.flushdb()
    yield client
    DroppingConnection.arm(None)
    client.close()


def test_lost_reply_of_a_mutation_is_reported_and_applied_once(dropping: redis.Redis) -> None:
    with DB(redis=dropping, prefix="once") as db:
        db["log"] = [1, 2]
        DroppingConnection.arm("after-exec")
        with pytest.raises(BackendUnavailable, match="whether this one was applied is unknown"):
            db["log"].append(3)  # without care, a retry would append 3 twice
        assert DroppingConnection.fired == 1
        assert db["log"]() == [1, 2, 3]
        assert db.check().ok


def test_connection_lost_before_exec_applies_nothing(dropping: redis.Redis) -> None:
    with DB(redis=dropping, prefix="none") as db:
        db["keep"] = {"k": 1}
        before = sorted(dropping.scan_iter("{none}*"))
        DroppingConnection.arm("before-exec")
        with pytest.raises(BackendUnavailable):
            db["doc"] = tree(width=5, depth=5)
        assert DroppingConnection.fired == 1
        assert sorted(dropping.scan_iter("{none}*")) == before
        assert "doc" not in db
        assert db.check().ok
        db["doc"] = {"now": "fine"}  # the same DB goes on
        assert db["doc"]() == {"now": "fine"}


def test_unwatched_transaction_is_not_sent_twice(dropping: redis.Redis) -> None:
    backend = RedisBackend.from_client(dropping)
    pipe = backend.pipeline()
    pipe.rpush("l", "x")
    DroppingConnection.arm("after-exec")
    with pytest.raises(BackendUnavailable, match="unknown"):
        pipe.execute()  # redis-py alone would retry the MULTI/EXEC block
    assert dropping.lrange("l", 0, -1) == [b"x"]


def test_lost_reply_of_a_counter_is_not_sent_twice(dropping: redis.Redis) -> None:
    with DB(redis=dropping, prefix="ctr") as db:
        DroppingConnection.arm("after-reply")
        with pytest.raises(BackendUnavailable, match="unknown"):
            db.incr("hits")
        assert db.count("hits") == 1


def test_lost_reply_of_a_read_is_retried_by_the_client(dropping: redis.Redis) -> None:
    # Reads may be sent again: the user's retry policy still applies to them.
    backend = RedisBackend.from_client(dropping)
    backend.set("k", "v")
    DroppingConnection.arm("after-reply")
    assert backend.get("k") == b"v"
    assert DroppingConnection.fired == 1


def test_lost_connection_while_watching_is_a_conflict_not_a_failure(
    dropping: redis.Redis,
) -> None:
    # Nothing was sent for commit yet: the transaction can be retried safely.
    backend = RedisBackend.from_client(dropping)
    pipe = backend.pipeline()
    pipe.watch("w")
    dropping.client_kill_filter(_id=pipe.client_id())  # the server drops the watching connection
    with pytest.raises(WatchError):
        pipe.get("w")


@pytest.mark.parametrize("then", ["read", "commit"])
def test_watches_lost_to_a_local_disconnect_are_a_conflict(
    dropping: redis.Redis, then: str
) -> None:
    # redis-py would reconnect silently without the watches and commit unchecked.
    backend = RedisBackend.from_client(dropping)
    pipe = backend.pipeline()
    pipe.watch("w")
    dropping.connection_pool.disconnect()  # e.g. another thread resets the pool
    with pytest.raises(WatchError) as info:
        if then == "read":
            pipe.get("w")
        else:
            pipe.multi()
            pipe.set("w", 1)
            pipe.execute()
    assert "watches was closed" in info.value.detail
    assert dropping.get("w") is None
    assert not pipe.watching
