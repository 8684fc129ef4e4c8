"""The concurrency conformance tests on SQLite files (threads and processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcher.testing.concurrency import ConcurrencyConformance


class TestSQLiteConcurrency(ConcurrencyConformance):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'concurrency.db'}"
