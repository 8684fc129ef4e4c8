"""etcher._store.Store: a whole store, seen without choosing (or creating) a namespace."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcher import DB
from etcher._store import NamespaceStats, Store
from etcher.errors import ClosedError

pytest.importorskip("etcher_sqlite")


@pytest.fixture(params=["sqlite", "memory"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    pytest.importorskip("etcher_contrib")
    name = "store-test-" + uuid.uuid4().hex
    yield f"memory://{name}"
    from etcher_contrib.memory import MemoryBackend

    MemoryBackend.drop_store(name)


def _all_keys(url: str) -> list[bytes]:
    with Store(url) as store:
        return sorted(store.backend.scan_iter())


def test_opening_writes_nothing(url: str) -> None:
    with Store(url) as store:
        assert store.namespaces() == []
        assert store.default_namespace is None
        assert store.key_count("default") == 0
    assert _all_keys(url) == []  # a DB would have chosen a default namespace and made its root


def test_namespaces_default_and_counts(url: str) -> None:
    with DB(url) as db:
        db["doc"] = {"tags": ["a", "b"], "n": 1}
        db.incr("visits")
    with DB(url, prefix="other") as db:
        db["x"] = 1
    with Store(url) as store:
        assert store.namespaces() == ["default", "other"]
        assert store.default_namespace == "default"
        stats = store.stats("default")
        # root, doc, tags: 3 nodes (2 dicts, 1 list) and 2 links; one counter
        assert (stats.nodes, stats.dicts, stats.lists, stats.links, stats.counters) == (
            3,
            2,
            1,
            2,
            1,
        )
        assert stats.keys == store.key_count("default") > 0 and stats.bytes > 0
        assert store.stats("missing") == NamespaceStats("missing")
        seen: list[tuple[str, int, int | None]] = []
        store.stats("other", progress=lambda *a: seen.append(a))
        assert seen[0] == ("read", 0, store.key_count("other")) and seen[-1][1] == seen[-1][2]


def test_delete_prefix_removes_exactly_one_namespace_and_recreates_nothing(url: str) -> None:
    with DB(url) as db:
        db["keep"] = {"v": [1]}
    with DB(url, prefix="scratch") as db:
        db["x"] = {"y": [1, 2]}
    with DB(url, prefix="scratch*") as db:  # a glob character is data, not a pattern
        db["x"] = 2
    with Store(url) as store:
        count = store.key_count("scratch")
        assert store.delete_prefix("scratch") == count > 0
        assert store.namespaces() == ["default", "scratch*"]
        assert store.key_count("scratch") == 0
        assert store.delete_prefix("scratch") == 0  # nothing left: nothing deleted
        assert store.delete_prefix("default", batch=1) > 0
        assert store.namespaces() == ["scratch*"]  # not re-created, unlike a DB's own namespace
    with DB(url, prefix="scratch*") as db:
        assert db["x"] == 2


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.delete_prefix("a{b"), ValueError),
        (lambda s: s.delete_prefix(""), ValueError),
        (lambda s: s.delete_prefix(5), TypeError),  # type: ignore[arg-type]
        (lambda s: s.delete_prefix("ns", batch=0), ValueError),
        (lambda s: s.delete_prefix("ns", batch=True), TypeError),
        (lambda s: s.key_count("a}"), ValueError),
        (lambda s: s.stats("tab\there"), ValueError),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    url: str, call: Callable[[Store], object], error: type[Exception]
) -> None:
    with DB(url, prefix="ns") as db:
        db["x"] = {"y": 1}
    before = _all_keys(url)
    with Store(url) as store, pytest.raises(error):
        call(store)
    assert _all_keys(url) == before


def test_a_borrowed_backend_stays_open_and_a_closed_store_refuses(tmp_path: Path) -> None:
    with DB(str(tmp_path / "b.db")) as db:
        db["x"] = 1
        store = Store(db.backend)
        assert store.identity == f"object:{id(db.backend)}"
        assert store.namespaces() == ["default"]
        store.close()
        store.close()  # idempotent
        assert db["x"] == 1  # the DB's backend was borrowed, not closed
        with pytest.raises(ClosedError):
            store.namespaces()
    with Store(tmp_path / "b.db") as owned:
        assert owned.identity == "file:" + str(tmp_path / "b.db")
        assert "b.db" in repr(owned)
