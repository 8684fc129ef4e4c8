"""The maintenance conformance tests on a named in-memory store (writer threads only).

A memory store cannot be opened from another process, so the fork/spawn
variants skip through ``capabilities.multiprocess``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from etcher.testing.maintenance import MaintenanceConformance
from etcher_contrib.memory import MemoryBackend


class TestMemoryMaintenance(MaintenanceConformance):
    @pytest.fixture
    def store_url(self) -> Iterator[str]:
        name = f"maintenance-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        MemoryBackend.drop_store(name)
