"""etcher's conformance kit against MemoryBackend (a fresh named store per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from etcher.testing import BackendFactory, BackendFixtures, StorageConformance
from etcher_contrib.memory import MemoryBackend


class MemoryFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self) -> Iterator[BackendFactory]:
        name = f"conformance-{uuid.uuid4().hex}"
        yield lambda: MemoryBackend.from_url(f"memory://{name}")
        MemoryBackend.drop_store(name)


class TestMemoryStorage(StorageConformance, MemoryFixtures):
    pass
