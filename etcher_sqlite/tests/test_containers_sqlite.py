"""The container conformance kit on the SQLite backend (a file per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcher.testing.containers import ContainerConformance
from etcher.testing.fixtures import BackendFactory, BackendFixtures
from etcher_sqlite.backend import SQLiteBackend


class SQLiteFixtures(BackendFixtures):
    """Every test gets its own store file; a second connection opens the same file."""

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> BackendFactory:
        path = tmp_path / "containers.db"
        return lambda: SQLiteBackend.from_path(path)


class TestContainersSQLite(ContainerConformance, SQLiteFixtures):
    """RD/RL/DB semantics on the SQLite backend."""
