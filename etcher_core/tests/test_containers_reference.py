"""The container conformance kit on the reference backend, and checks of the kit.

Besides running the whole kit on :mod:`etcher.testing.reference`, this proves the kit is
worth running: it leaves a store as it found it, and it fails against
deliberately broken backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from etcher.testing.containers import (
    BASE,
    ContainerConformance,
    DBFactory,
    ListConformance,
    NamespaceConformance,
)
from etcher.testing.fixtures import BackendFactory, BackendFixtures, KeyMaker
from etcher.testing.reference import ReferenceBackend, drop_store
from etcher.testing.storage import KeyCommands


class ReferenceFixtures(BackendFixtures):
    """Every test gets its own named store, so a second connection shares it."""

    @pytest.fixture
    def make_backend(self) -> Iterator[BackendFactory]:
        name = f"containers-{uuid.uuid4().hex}"
        yield lambda: ReferenceBackend.from_url(f"ref://{name}")
        drop_store(name)


class TestContainersReference(ContainerConformance, ReferenceFixtures):
    """RD/RL/DB semantics on the reference backend."""


# --------------------------------------------------------------------------- the kit itself


class GlobScanBackend(ReferenceBackend):
    """Broken on purpose: scans treat ``*``, ``?`` and ``[`` in a prefix as patterns."""

    def scan_iter(self, match: str | None = None, count: int | None = None, **kw: Any) -> Any:
        if match is not None:
            match = match.replace("\\", "")
        return super().scan_iter(match=match, count=count, **kw)


class ReversedListBackend(ReferenceBackend):
    """Broken on purpose: whole-list reads come back in reverse order."""

    def lrange(self, name: Any, start: int, end: int) -> Any:
        items = super().lrange(name, start, end)
        return items[::-1] if (start, end) == (0, -1) else items


def test_the_kit_leaves_the_store_as_it_found_it() -> None:
    backend = ReferenceBackend()
    backend.set("user:data", b"keep me")
    factory = DBFactory(backend, None)
    db = factory()
    db["x"] = {"a": [1, {"b": 2}]}
    other = factory(db.prefix + "-other", link_field="id")
    other["y"] = [db.prefix]
    factory.discard(factory())
    factory.cleanup()
    assert sorted(backend.scan_iter()) == [b"user:data"]
    assert backend.get("user:data") == b"keep me"


def test_the_kit_catches_glob_matching_in_scans() -> None:
    factory = DBFactory(GlobScanBackend(), None)
    try:
        with pytest.raises(AssertionError):
            NamespaceConformance().test_delete_prefix_only_deletes_its_own(factory, "a*", "ab")
    finally:
        factory.cleanup()


def test_the_kit_catches_misordered_list_reads() -> None:
    factory = DBFactory(ReversedListBackend(), None)
    try:
        db = factory()
        db["l"] = list(BASE)
        with pytest.raises(AssertionError):
            ListConformance().test_slice_reads_match_list((list(BASE), db["l"]))
    finally:
        factory.cleanup()


def test_the_kit_catches_lost_deletes() -> None:
    class NoDeleteBackend(ReferenceBackend):
        """Broken on purpose: deleting keys outside a transaction does nothing."""

        def delete(self, *names: Any) -> int:
            return 0

    # Namespace deletion goes through transactional units, so the storage kit is what
    # catches a broken direct ``delete``.
    backend = NoDeleteBackend()
    key = KeyMaker(f"kit-{uuid.uuid4().hex[:8]}:")
    try:
        with pytest.raises(AssertionError):
            KeyCommands().test_delete_counts_keys_of_every_type(backend, backend, key)
    finally:
        backend.close()
