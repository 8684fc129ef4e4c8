"""The maintenance conformance tests on SQLite files (gc/check/delete beside writers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcher.testing.maintenance import MaintenanceConformance


class TestSQLiteMaintenance(MaintenanceConformance):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'maintenance.db'}"
