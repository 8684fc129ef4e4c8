"""Private in-process stores are distinct stores: DB identity and links follow the data."""

from __future__ import annotations

import uuid

import pytest

from etcher import DB, ForeignNodeError
from etcher_contrib.memory import MemoryBackend

PRIVATE = ["memory://", ":memory:", "sqlite:///:memory:"]


@pytest.mark.parametrize("url", PRIVATE)
def test_two_private_stores_are_not_equal(url: str) -> None:
    with DB(url, prefix="p") as a, DB(url, prefix="p") as b:
        a["x"] = 1
        assert (a == b) is False and (a != b) is True
        assert a == a
        assert hash(a) != hash(b)
        assert len({a, b}) == 2


@pytest.mark.parametrize("url", PRIVATE)
def test_linking_across_private_stores_is_foreign(url: str) -> None:
    with DB(url, prefix="p") as a, DB(url, prefix="p") as b:
        a["doc"] = {"v": [1]}
        b["mine"] = 1
        with pytest.raises(ForeignNodeError):
            b["y"] = {"wrap": a["doc"]}
        with pytest.raises(ForeignNodeError):
            b["y"] = a["doc"]
        assert b() == {"mine": 1}
        assert a["doc"].backrefs == {a.uid: 1}
        assert a.check().ok and b.check().ok


def test_a_named_memory_store_is_one_store() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    try:
        with DB(f"memory://{name}", prefix="p") as a, DB(f"memory://{name}", prefix="p") as b:
            assert a == b and hash(a) == hash(b)
            a["doc"] = {"v": [1]}
            b["again"] = a["doc"]  # same store, same namespace: a plain link
            assert a["again"]() == {"v": [1]}
            assert a["doc"].refcount == 2
        MemoryBackend.drop_store(name)
        # A store dropped and made again under the same name is another store.
        with DB(f"memory://{name}", prefix="p") as c, DB(f"memory://{name}", prefix="p") as d:
            assert c == d
    finally:
        MemoryBackend.drop_store(name)
