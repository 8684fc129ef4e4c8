"""etcher's conformance kit against DbmStoreBackend, the way an outside author runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcher.testing import (
    BackendFactory,
    BackendFixtures,
    ConcurrencyConformance,
    StorageConformance,
)
from etcher_dbmstore import DbmStoreBackend


class DbmFixtures(BackendFixtures):
    """Every test gets a fresh store file; ``make_backend`` opens more connections to it."""

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> BackendFactory:
        # from_path takes a pathlib.Path as well as a str.
        return lambda: DbmStoreBackend.from_path(tmp_path / "kit")


class TestDbmStorage(StorageConformance, DbmFixtures):
    """The whole storage Protocol."""


class TestDbmConcurrency(ConcurrencyConformance):
    """Threads and spawned child processes on one store file (the backend is ``multiprocess``)."""

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        # Four slashes: an absolute path (three would be relative to the working folder).
        return f"dbmstore:///{tmp_path}/conc"
