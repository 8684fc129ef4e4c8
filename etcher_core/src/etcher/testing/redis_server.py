"""A real Redis server for tests: found, spawned on a unix socket, or skipped.

The ``redis_url`` fixture (session-scoped, exposed by the ``etcher.testing``
plugin) picks the first that works:

1. ``ETCHER_TEST_REDIS_URL``: an existing server; its database is flushed
   before and after the run (so point it at a database you can lose).
2. ``redis-server`` on ``PATH`` (or ``ETCHER_REDIS_SERVER=/path/to/redis-server``):
   spawned with no TCP port, a unix socket in a private temporary directory,
   and no persistence; stopped at the end of the run.
3. Otherwise the tests that need it are skipped, unless ``ETCHER_REQUIRE_REDIS=1``
   (CI sets it) turns that skip into a failure, so nothing passes by skipping.

:class:`RedisServer` is the same machinery as a plain class, for tests that
kill and restart a server mid-run. Only the standard library is imported
here; redis-py is imported lazily, and only to flush an external server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

URL_ENV = "ETCHER_TEST_REDIS_URL"
REQUIRE_ENV = "ETCHER_REQUIRE_REDIS"
EXECUTABLE_ENV = "ETCHER_REDIS_SERVER"

_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~104-108 bytes depending on the OS


class RedisServerError(RuntimeError):
    """``redis-server`` could not be started (the message carries the end of its log)."""


def find_redis_server() -> str | None:
    """The ``redis-server`` to run: ``ETCHER_REDIS_SERVER``, else one on ``PATH``, else None."""
    configured = os.environ.get(EXECUTABLE_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("redis-server")


def redis_required() -> bool:
    """Whether ``ETCHER_REQUIRE_REDIS`` asks for a failure instead of a skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _ping(path: str) -> bool:
    """Whether a server answers ``PING`` on unix socket ``path`` (raw RESP, no client library)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on a unix socket, which can be stopped, killed and restarted.

    The socket path (and so :attr:`url`) stays the same across restarts, so
    clients can reconnect. Data does not survive a restart unless
    ``appendonly=True`` (then the append-only file lives in :attr:`directory`).

    >>> server = RedisServer()                    # doctest: +SKIP
    >>> url = server.start()                      # 'unix:///tmp/etcher-redis-.../redis.sock'
    >>> server.kill(); server.start()             # crash and come back on the same URL
    >>> server.stop()
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        executable: str | None = None,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 20.0,
    ) -> None:
        self._owns_directory = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="etcher-redis-") if directory is None else directory
        )
        socket_dir = self.directory
        if len(str(socket_dir / "redis.sock")) > _MAX_SOCKET_PATH:
            # A deep pytest tmp dir can exceed the AF_UNIX path limit: keep the
            # data where asked, put only the socket in a short private directory.
            socket_dir = Path(tempfile.mkdtemp(prefix="etcher-redis-"))
        self._socket_dir = socket_dir
        self.executable = executable
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        """The unix socket the server listens on."""
        return self._socket_dir / "redis.sock"

    @property
    def url(self) -> str:
        """``unix:///.../redis.sock`` (valid whether or not the server is running)."""
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        """The server's log file (read it when something goes wrong)."""
        return self.directory / "redis.log"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The ``redis-server`` command line this server runs."""
        executable = self.executable or find_redis_server()
        if executable is None:
            raise RedisServerError(f"redis-server not found on PATH (or set {EXECUTABLE_ENV})")
        return [
            executable,
            "--port", "0",  # no TCP listener at all: tests stay on the unix socket
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> str:
        """Start the server (if not running), wait until it answers, and return :attr:`url`."""
        if self.running:
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left behind by a killed server
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.startup_timeout
        while not _ping(str(self.socket_path)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._fail_start()
            time.sleep(0.02)
        return self.url

    def _fail_start(self) -> None:
        process, self._process = self._process, None
        stderr = b""
        if process is not None:
            if process.poll() is None:
                process.kill()
            _, stderr = process.communicate()
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RedisServerError(
            f"redis-server did not start on {self.socket_path}:\n"
            f"{stderr.decode(errors='replace')}{log}"
        )

    def stop(self) -> None:
        """Shut the server down cleanly (idempotent)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def restart(self) -> str:
        """Stop and start again on the same socket; returns :attr:`url`."""
        self.stop()
        return self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def close(self) -> None:
        """Stop the server and remove the directory it created (if it created one)."""
        self.stop()
        if self._socket_dir != self.directory:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"


def _flushdb(url: str) -> None:
    try:
        import redis  # only needed for an external server, so imported late
    except ImportError:  # pragma: no cover - redis-py is a dependency of every Redis backend
        pytest.fail(f"{URL_ENV} is set but redis-py is not installed to flush it", pytrace=False)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _unavailable(reason: str) -> None:
    if redis_required():
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires a real Redis server", pytrace=False)
    pytest.skip(f"{reason} (set {URL_ENV}, or install redis-server; {REQUIRE_ENV}=1 fails instead)")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server for this test run (see the module docstring for the order)."""
    external = os.environ.get(URL_ENV)
    if external:
        _flushdb(external)
        yield external
        _flushdb(external)
        return
    if find_redis_server() is None:
        _unavailable("no Redis server: redis-server is not installed")
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def make_redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Factory of private :class:`RedisServer` objects (started), all closed after the test.

    For tests that stop, kill or restart a server without disturbing the
    session-wide ``redis_url`` one. Skips (or fails) like ``redis_url``.
    """
    if find_redis_server() is None:
        _unavailable("no Redis server: redis-server is not installed")
    servers: list[RedisServer] = []

    def make(*, appendonly: bool = False, extra_args: tuple[str, ...] = ()) -> RedisServer:
        server = RedisServer(
            tmp_path / f"redis{len(servers)}", appendonly=appendonly, extra_args=extra_args
        )
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()
