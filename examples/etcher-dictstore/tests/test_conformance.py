"""etcher's conformance kit against DictStoreBackend, run the way any outside author runs it."""

from __future__ import annotations

import uuid

import pytest

from etcher.testing import (
    BackendFactory,
    BackendFixtures,
    ContainerConformance,
    StorageConformance,
)
from etcher_dictstore import DictStoreBackend


class DictStoreFixtures(BackendFixtures):
    """Every test gets a fresh named store; ``make_backend`` opens more handles on it."""

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        url = f"dictstore://{uuid.uuid4().hex}"
        return lambda: DictStoreBackend.from_url(url)


class TestDictStoreStorage(StorageConformance, DictStoreFixtures):
    pass


class TestDictStoreContainers(ContainerConformance, DictStoreFixtures):
    """RD/RL/DB semantics on top of the store: what etcher's users will rely on."""
