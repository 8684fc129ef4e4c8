"""The container conformance kit on the in-memory backend (fakeredis).

Moved from etcher-core's tests, which now run the kit on the reference backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from etcher.testing.containers import ContainerConformance
from etcher.testing.fixtures import BackendFactory, BackendFixtures
from etcher_contrib.memory import MemoryBackend


class MemoryFixtures(BackendFixtures):
    """Every test gets its own named in-memory store, so a second connection shares it."""

    @pytest.fixture
    def make_backend(self) -> Iterator[BackendFactory]:
        name = f"containers-{uuid.uuid4().hex}"
        yield lambda: MemoryBackend.from_url(f"memory://{name}")
        MemoryBackend.drop_store(name)


class TestContainersMemory(ContainerConformance, MemoryFixtures):
    """RD/RL/DB semantics on the memory backend."""
