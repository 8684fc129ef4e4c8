"""The subtree-read kit (etcher.testing.subtree) on SQLite files and the in-memory store."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from etcher import DB
from etcher.errors import StoreCorrupt, WrongTypeError
from etcher.spec import StorageBackend
from etcher.testing import BackendFixtures
from etcher.testing.subtree import SubtreeConformance
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend


class TestSQLiteFileSubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], StorageBackend]:
        # A partial, not a lambda: the spawned writer process unpickles it.
        return functools.partial(SQLiteBackend.from_path, tmp_path / "subtree.db")


class TestSQLiteMemorySubtree(SubtreeConformance, BackendFixtures):
    @pytest.fixture
    def make_backend(self) -> None:
        return None  # a private in-memory store has no second connection

    @pytest.fixture
    def backend(self) -> Iterator[StorageBackend]:
        store = SQLiteMemoryBackend()
        yield store
        store.close()


# --- the visiting walk (visit_subtree) on damaged rows ---------------------------------------


@pytest.mark.parametrize(
    ("node", "damage", "error", "says"),
    [
        ("a", "x'c1'", StoreCorrupt, "is damaged"),  # not MessagePack
        ("a", "list", StoreCorrupt, "not a dict"),  # MessagePack of the wrong shape
        ("l", "x'c1'", StoreCorrupt, "is damaged"),
        ("l", "dict", StoreCorrupt, "not a list"),
        ("a", "type", WrongTypeError, "holds a list, not a hash"),
        ("a", "tag", StoreCorrupt, "unknown type tag"),
    ],
)
def test_visits_report_damaged_rows_as_the_other_reads_do(
    tmp_path: Path, node: str, damage: str, error: type[Exception], says: str
) -> None:
    """A damaged node read by ``visit_subtree`` raises what ``read_subtree`` and the plain
    reads raise (the inline unpacking hands anything irregular to ``packed``), and the
    read snapshot does not stay open."""
    path = tmp_path / "damaged.db"
    store = SQLiteBackend(path)
    db = DB(backend=store)
    try:
        db["doc"] = {"a": {"b": 1}, "l": [1, 2]}
        doc: Any = db["doc"]
        name = db._layout.content(doc[node].uid)
        raw = sqlite3.connect(path, isolation_level=None)
        if damage == "type":
            raw.execute("UPDATE keys SET type = 3 WHERE name = ?", (name,))
        else:
            value: Any = {
                "x'c1'": b"\xc1",
                "list": msgpack.packb([b"x"]),
                "dict": msgpack.packb({b"x": b"y"}),
                "tag": msgpack.packb({b"sb": b"1|q"}),
            }[damage]
            raw.execute("UPDATE keys SET value = ? WHERE name = ?", (value, name))
        raw.close()
        visited: list[str] = []
        real = SQLiteBackend.visit_subtree

        def counted(self: Any, *args: Any) -> Any:
            visited.append("visit_subtree")
            return real(self, *args)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(SQLiteBackend, "visit_subtree", counted)
            with pytest.raises(error, match=says):
                doc()
        assert visited == ["visit_subtree"]
        assert not store._conn().in_transaction
        db["other"] = 1  # the store takes writes after it
    finally:
        db.close()
