"""The subtree-read kit (etcher.testing.subtree) on SQLite files and the in-memory store."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcher.spec import StorageBackend
from etcher.testing import BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend


class TestSQLiteFileSubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], StorageBackend]:
        # A partial, not a lambda: the spawned writer process unpickles it.
        return functools.partial(SQLiteBackend.from_path, tmp_path / "subtree.db")


class TestSQLiteMemorySubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self) -> None:
        return None  # a private in-memory store has no second connection

    @pytest.fixture
    def backend(self) -> Iterator[StorageBackend]:
        store = SQLiteMemoryBackend()
        yield store
        store.close()
