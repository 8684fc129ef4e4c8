"""Real Redis servers and clusters for tests, and the pytest plugin that offers them.

Loaded by etcher's conformance-kit plugin (``-p etcher.testing``) whenever
etcher-redis is installed: the kit loads every module named under the
``etcher.testing`` entry-point group, and this package is registered there.
Load it alone with ``-p etcher_redis.testing``.

Fixtures (see :mod:`etcher_redis.testing.server` and :mod:`etcher_redis.testing.cluster`):

* ``redis_url`` (session): a real server for the run (``ETCHER_TEST_REDIS_URL``,
  else a private ``redis-server`` on a unix socket);
* ``redis_server_executable`` (session) and ``make_redis_server``: private servers a
  test may kill and restart;
* ``redis_cluster`` (session) and ``make_redis_cluster``: a real 6-node Redis Cluster.

Without a server, the first test that needs one fails with the explanation and the
others are deselected; ``ETCHER_SKIP_REDIS=1`` skips them instead, and says so.

:mod:`etcher_redis.testing.faults` (``arm_redis``) belongs to etcher's own
reliability tests and carries no stability promise.
"""

from __future__ import annotations

import pytest

from etcher_redis.testing import server as _server
from etcher_redis.testing.cluster import (
    LocalRedisCluster,
    free_ports,
    make_redis_cluster,
    migrate_slot,
    redis_cluster,
)
from etcher_redis.testing.server import (
    NOT_RUN,
    SKIP_ENV,
    RedisServer,
    RedisServerError,
    bundled_redis_server,
    find_redis_server,
    make_redis_server,
    redis_server_executable,
    redis_url,
    system_redis_server,
)

MARKER_HELP = (
    "redis: needs a real redis-server (fails when none can be found, unless ETCHER_SKIP_REDIS=1)"
)


class RedisSummary:
    """The end-of-run lines saying Redis tests did not run, or were skipped on request."""

    def __init__(self) -> None:
        self.not_run = 0
        self.skipped = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect the deselection count the gate left on the failing test, and skips."""
        if report.when == "setup":
            self.not_run += int(str(dict(report.user_properties).get(NOT_RUN, 0)))
        if report.skipped:
            self.skipped += 1

    @pytest.hookimpl(trylast=True)  # after the kit's per-backend counts
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Say loudly when Redis tests tested nothing."""
        if self.not_run:
            terminalreporter.line(
                f"{self.not_run} more Redis tests NOT RUN (deselected): no Redis server, see "
                f"the failure above; {SKIP_ENV}=1 skips them on purpose",
                red=True,
                bold=True,
            )
        if self.skipped and _server.redis_skipped() and _server.missing_server(url_will_do=True):
            terminalreporter.line(
                f"Redis tests SKIPPED on request ({SKIP_ENV}=1): they tested nothing",
                yellow=True,
                bold=True,
            )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``redis`` marker and the end-of-run summary (one per config)."""
    config.addinivalue_line("markers", MARKER_HELP)
    config.pluginmanager.register(RedisSummary(), f"etcher-redis-summary-{id(config)}")


def pytest_report_header(config: pytest.Config) -> str:
    """Name the Redis server the Redis tests will use (or why they cannot run)."""
    return f"etcher redis-server: {_server.server_description()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail loudly, once, when Redis tests have no server (see :func:`.server.gate_redis_items`)."""
    _server.gate_redis_items(config, items)


__all__ = [
    "LocalRedisCluster",
    "RedisServer",
    "RedisServerError",
    "bundled_redis_server",
    "find_redis_server",
    "free_ports",
    "make_redis_cluster",
    "make_redis_server",
    "migrate_slot",
    "redis_cluster",
    "redis_server_executable",
    "redis_url",
    "system_redis_server",
]
