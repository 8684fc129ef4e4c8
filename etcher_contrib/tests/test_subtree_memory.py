"""The subtree-read kit on the memory backend: it has no subtree reads, so the
level-by-level fallback is what runs (the capability tests skip with a reason)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_contrib.memory import MemoryBackend


class TestMemorySubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self) -> Iterator[BackendFactory]:
        name = f"subtree-{uuid.uuid4().hex}"
        yield lambda: MemoryBackend.from_url(f"memory://{name}")
        MemoryBackend.drop_store(name)
