"""The zero-code route: run the kit against whatever ``--etcher-url`` names.

    pytest -p etcher.testing --pyargs etcher.testing --etcher-url sqlite:////tmp/kit.db

It runs the storage part, the container part and, for a backend declaring the
``multiprocess`` capability, the concurrency part (whose children open the same
URL). Every test works under its own random key prefix and deletes exactly the
keys under it afterwards, so pointing this at a store that holds other data
leaves that data alone. Without ``--etcher-url`` the whole module is skipped.
"""

from __future__ import annotations

import pytest

from etcher.spec import StorageBackend
from etcher.testing.concurrency import ConcurrencyConformance
from etcher.testing.containers import ContainerConformance
from etcher.testing.fixtures import BackendFixtures
from etcher.testing.markers import missing_capability
from etcher.testing.options import get_url
from etcher.testing.storage import StorageConformance

# A string condition is evaluated with ``config`` in scope (the test functions'
# own globals are those of etcher.testing.storage, so no helper can be named).
pytestmark = pytest.mark.skipif(
    "not config.getoption('etcher_url', None)",
    reason=(
        "no store to test: pass --etcher-url URL (with -p etcher.testing) to run the kit against it"
    ),
)


class TestStorageFromURL(StorageConformance, BackendFixtures):
    """The storage-Protocol suite against the store named by ``--etcher-url``."""


class TestContainersFromURL(ContainerConformance, BackendFixtures):
    """RD/RL/DB semantics against the store named by ``--etcher-url``."""


class TestConcurrencyFromURL(ConcurrencyConformance, BackendFixtures):
    """Threads and child processes against the URL, for backends declaring ``multiprocess``."""

    @pytest.fixture
    def store_url(self, request: pytest.FixtureRequest, backend: StorageBackend) -> str:
        """``--etcher-url`` itself: every child process opens the store by it."""
        missing = missing_capability(backend, ["multiprocess"])
        if missing is not None:
            pytest.skip(f"{missing}: other processes cannot open this store")
        url = get_url(request.config)
        assert url is not None  # the module is skipped without one
        return url
