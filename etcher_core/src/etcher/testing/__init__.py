"""etcher's conformance kit: the tests every storage backend must pass.

This module is also a pytest plugin. It is never loaded automatically; opt in
with ``-p etcher.testing`` (command line or ``addopts``), or with
``pytest_plugins = ["etcher.testing"]`` in a top-level ``conftest.py``.

Subclass route (a backend author's test module)::

    import pytest
    from etcher.testing import BackendFixtures, StorageConformance
    from mykv import MyKVBackend

    class MyKVFixtures(BackendFixtures):
        @pytest.fixture
        def make_backend(self, tmp_path):
            return lambda: MyKVBackend.from_path(tmp_path / "store.kv")

    class TestMyKVStorage(StorageConformance, MyKVFixtures):
        pass

Zero-code route (any backend the registry can open)::

    pytest -p etcher.testing --pyargs etcher.testing --etcher-url mykv:///path/to/store

What the plugin adds:

* ``--etcher-url URL`` and ``--etcher-option KEY=VALUE`` (repeatable), read by
  the default ``make_backend`` fixture of :class:`BackendFixtures`;
* the ``etcher_requires(capability, ...)`` marker, turned into a skip naming the
  backend and the capability it lacks;
* the real-Redis fixtures ``redis_url`` (session) and ``make_redis_server``
  (see :mod:`etcher.testing.redis_server`), and a real 6-node Redis Cluster:
  ``redis_cluster`` (session) and ``make_redis_cluster`` (see
  :mod:`etcher.testing.redis_cluster`).

See ``docs/conformance-kit.md`` for the whole guide. The storage part lives
in :mod:`etcher.testing.storage` (``StorageConformance``), RD/RL/DB semantics on
top of a backend in :mod:`etcher.testing.containers` (``ContainerConformance``),
and multi-thread/multi-process isolation in :mod:`etcher.testing.concurrency`
(``ConcurrencyConformance``, which needs a ``store_url`` other processes can open),
and maintenance beside writers in :mod:`etcher.testing.maintenance`
(``MaintenanceConformance``, same fixture).
The kit needs the ``testing`` extra: ``pip install 'etcher-core[testing]'``.
"""

from __future__ import annotations

import pytest

from etcher.testing import redis_server as _redis
from etcher.testing import report as _report
from etcher.testing.concurrency import ConcurrencyConformance
from etcher.testing.containers import (
    CodecConformance,
    ContainerConformance,
    ContainerFixtures,
    DBConformance,
    DBFactory,
    DictConformance,
    ListConformance,
    NamespaceConformance,
    PrintingConformance,
    ShapeAndGCConformance,
    StateMachineConformance,
    UserGuideConformance,
)
from etcher.testing.edges import EdgeConformance
from etcher.testing.fixtures import (
    HOSTILE_CHARS,
    BackendFactory,
    BackendFixtures,
    KeyMaker,
    RawAccess,
    glob_escape,
)
from etcher.testing.maintenance import MaintenanceConformance
from etcher.testing.markers import MARKER_HELP, check_requirements
from etcher.testing.options import add_options
from etcher.testing.redis_cluster import LocalRedisCluster, make_redis_cluster, redis_cluster
from etcher.testing.redis_server import (
    RedisServer,
    RedisServerError,
    make_redis_server,
    redis_server_executable,
    redis_url,
)
from etcher.testing.storage import (
    ErrorsChangeNothing,
    HashCommands,
    KeyCommands,
    KeyText,
    ListCommands,
    PathOpening,
    Persistence,
    PipelineCommands,
    ScanCommands,
    StorageConformance,
    StringCommands,
    ThreadSafety,
    UnitScopes,
    ValueEncoding,
    WatchRules,
    WrongTypeErrors,
)

# --------------------------------------------------------------------------- pytest hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--etcher-url`` and ``--etcher-option``."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the kit's markers (so ``--strict-markers`` accepts them)."""
    config.addinivalue_line("markers", MARKER_HELP)
    # A plugin object per config, not module state: pytester runs nested sessions in-process.
    config.pluginmanager.register(_report.BackendTally(), "etcher-backend-tally")


def pytest_report_header(config: pytest.Config) -> str:
    """Name the Redis server the Redis tests will use (or why they cannot run)."""
    return f"etcher redis-server: {_redis.server_description()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail loudly, once, when Redis tests have no server; credit each test to a backend."""
    _redis.gate_redis_items(config, items)
    _report.tag_items(items)


@pytest.fixture(autouse=True)
def _etcher_requires(request: pytest.FixtureRequest) -> None:
    """Turn ``etcher_requires`` marks into skips that name the missing capability.

    A fixture rather than a collection hook because the capabilities belong to
    the backend *instance* the test gets, which only fixtures can see.
    """
    check_requirements(request)


__all__ = [
    "HOSTILE_CHARS",
    "BackendFactory",
    "BackendFixtures",
    "CodecConformance",
    "ConcurrencyConformance",
    "ContainerConformance",
    "ContainerFixtures",
    "DBConformance",
    "DBFactory",
    "DictConformance",
    "EdgeConformance",
    "ErrorsChangeNothing",
    "HashCommands",
    "KeyCommands",
    "KeyMaker",
    "KeyText",
    "ListCommands",
    "ListConformance",
    "LocalRedisCluster",
    "MaintenanceConformance",
    "NamespaceConformance",
    "PathOpening",
    "Persistence",
    "PipelineCommands",
    "PrintingConformance",
    "RawAccess",
    "RedisServer",
    "RedisServerError",
    "ScanCommands",
    "ShapeAndGCConformance",
    "StateMachineConformance",
    "StorageConformance",
    "StringCommands",
    "ThreadSafety",
    "UnitScopes",
    "UserGuideConformance",
    "ValueEncoding",
    "WatchRules",
    "WrongTypeErrors",
    "glob_escape",
    "make_redis_cluster",
    "make_redis_server",
    "redis_cluster",
    "redis_server_executable",
    "redis_url",
]
