"""etcher's storage conformance kit, run on the file store and the in-memory store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcher.spec import StorageBackend
from etcher.testing import BackendFixtures, StorageConformance
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend


class SQLiteFileFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], StorageBackend]:
        return lambda: SQLiteBackend.from_path(tmp_path / "kit.db")


class TestSQLiteFileConformance(StorageConformance, SQLiteFileFixtures):
    """Every kit test, with a second connection to the same file as the raw reader."""


class SQLiteMemoryFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self) -> None:
        # Each in-memory store is private, so there is no second connection to offer:
        # the kit skips (with that reason) the tests that need one.
        return None

    @pytest.fixture
    def backend(self) -> Iterator[StorageBackend]:
        store = SQLiteMemoryBackend()
        yield store
        store.close()


class TestSQLiteMemoryConformance(StorageConformance, SQLiteMemoryFixtures):
    """Every kit test the private in-memory store can take part in."""
