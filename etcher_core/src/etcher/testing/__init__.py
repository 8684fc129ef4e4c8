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
* the test plugins installed backends register under the ``etcher.testing``
  entry-point group: etcher-redis's (:mod:`etcher_redis.testing`) brings the
  real-Redis fixtures ``redis_url`` (session), ``make_redis_server``, and a real
  6-node Redis Cluster: ``redis_cluster`` (session) and ``make_redis_cluster``.

See ``docs/conformance-kit.md`` for the whole guide. The storage part lives
in :mod:`etcher.testing.storage` (``StorageConformance``, one module per family),
RD/RL/DB semantics on top of a backend in :mod:`etcher.testing.containers`
(``ContainerConformance``, one module per family),
and multi-thread/multi-process isolation in :mod:`etcher.testing.concurrency`
(``ConcurrencyConformance``, which needs a ``store_url`` other processes can open),
and maintenance beside writers in :mod:`etcher.testing.maintenance`
(``MaintenanceConformance``, same fixture).
:mod:`etcher.testing.reference` is a small dict-based backend that passes the whole kit
(etcher-core's own tests run on it). :mod:`etcher.testing._harness` is etcher's private
test harness (crash and fault injection, differential runs): no stability promise.
The kit needs the ``testing`` extra: ``pip install 'etcher-core[testing]'``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest

from etcher.testing import report as _report
from etcher.testing._moved import moved_attribute
from etcher.testing.concurrency import ConcurrencyConformance
from etcher.testing.containers import (
    CodecConformance,
    ContainerConformance,
    ContainerFixtures,
    DBConformance,
    DBFactory,
    DictConformance,
    HandleLifetimeConformance,
    ListConformance,
    NamespaceConformance,
    PrintingConformance,
    ShapeAndGCConformance,
    StateMachineConformance,
    TransactionSafetyConformance,
    UserCodeConformance,
    UserGuideConformance,
)
from etcher.testing.containers.edges import EdgeConformance
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
from etcher.testing.storage import (
    EncodingConformance,
    ErrorIsolationConformance,
    ErrorsChangeNothing,
    HashCommands,
    HashConformance,
    KeyCommands,
    KeyConformance,
    KeyText,
    KeyTextConformance,
    ListCommandConformance,
    ListCommands,
    PathOpening,
    PathOpeningConformance,
    Persistence,
    PersistenceConformance,
    PipelineCommands,
    PipelineConformance,
    ScanCommands,
    ScanConformance,
    ScopeConformance,
    StorageConformance,
    StringCommands,
    StringConformance,
    ThreadSafety,
    ThreadSafetyConformance,
    UnitScopes,
    ValueEncoding,
    WatchConformance,
    WatchRules,
    WholeHashConformance,
    WrongTypeConformance,
    WrongTypeErrors,
)

PLUGIN_GROUP = "etcher.testing"
"""Entry-point group of the test plugins backends ship (fixtures, hooks), loaded with the kit."""


def _backend_plugins() -> list[str]:
    return sorted({ep.value for ep in entry_points(group=PLUGIN_GROUP)})


# pytest loads the modules a plugin lists here right after the plugin itself.
pytest_plugins = _backend_plugins()


def __getattr__(name: str) -> Any:
    """The 0.2 Redis names, now shipped by etcher-redis (resolved on first use)."""
    return moved_attribute(__name__, name)


# --------------------------------------------------------------------------- pytest hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--etcher-url`` and ``--etcher-option``."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the kit's markers (so ``--strict-markers`` accepts them)."""
    config.addinivalue_line("markers", MARKER_HELP)
    # A plugin object per config, not module state: pytester runs nested sessions in-process.
    config.pluginmanager.register(_report.BackendTally(), "etcher-backend-tally")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Credit each test to a backend (for the per-backend counts at the end)."""
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
    "EncodingConformance",
    "ErrorIsolationConformance",
    "ErrorsChangeNothing",
    "HandleLifetimeConformance",
    "HashCommands",
    "HashConformance",
    "KeyCommands",
    "KeyConformance",
    "KeyMaker",
    "KeyText",
    "KeyTextConformance",
    "ListCommandConformance",
    "ListCommands",
    "ListConformance",
    "MaintenanceConformance",
    "NamespaceConformance",
    "PathOpening",
    "PathOpeningConformance",
    "Persistence",
    "PersistenceConformance",
    "PipelineCommands",
    "PipelineConformance",
    "PrintingConformance",
    "RawAccess",
    "ScanCommands",
    "ScanConformance",
    "ScopeConformance",
    "ShapeAndGCConformance",
    "StateMachineConformance",
    "StorageConformance",
    "StringCommands",
    "StringConformance",
    "ThreadSafety",
    "ThreadSafetyConformance",
    "TransactionSafetyConformance",
    "UnitScopes",
    "UserCodeConformance",
    "UserGuideConformance",
    "ValueEncoding",
    "WatchConformance",
    "WatchRules",
    "WholeHashConformance",
    "WrongTypeConformance",
    "WrongTypeErrors",
    "glob_escape",
]
