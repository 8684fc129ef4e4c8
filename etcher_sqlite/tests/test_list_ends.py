"""List writes at an end through a handle on SQLite (``etcher._listends``, issue 13).

An append, ``insert(0, x)``, ``pop(0)`` and ``pop()`` of a scalar run as one held
write scope without a unit of work. These tests pin what that path must keep
from the general one: it hands over to the general path (and so to its errors
and graph work) whenever it cannot finish alone (a pop in the same scope), it
never runs inside an open transaction, and the work that rides on every write
unit (queued unpins, the sweep of expired garbage) still happens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from etcher import DB, RL
from etcher import _listends as listends
from etcher import _reclaim as reclaim
from etcher.errors import EtcherIndexError, StaleHandleError, StoreCorrupt
from etcher.testing.containers._common import dump_namespace
from etcher_sqlite.testing import count_statements


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DB]:
    db = DB(f"sqlite:///{tmp_path / 'ends.db'}")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def lane(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each list_end call answered (NOT_DONE included), or the exception it raised."""
    answers: list[Any] = []
    real = listends.end_write

    def spy(*args: Any) -> Any:
        try:
            answer = real(*args)
        except Exception as exc:
            answers.append(type(exc))
            raise
        answers.append(answer)
        return answer

    import etcher._session as session_module

    monkeypatch.setattr(session_module, "end_write", spy)
    return answers


def test_scalars_at_the_ends_take_the_scope_path(db: DB, lane: list[Any]) -> None:
    db["l"] = [1, 2, 3]
    lst = db["l"]
    lst.append(4)
    lst.append("five")
    lst.insert(0, 0.5)
    lst.insert(0, None)
    assert lst.pop(0) is None
    assert lst.pop() == "five"
    assert lst.pop(-1) == 4
    assert db["l"]() == [0.5, 1, 2, 3]
    assert lane == [None, None, None, None, None, "five", 4]
    assert db.check().ok


def test_popping_a_nested_container_finishes_in_the_same_scope(db: DB, lane: list[Any]) -> None:
    db["l"] = [{"a": [1, 2]}, "mid", ["x", {"y": 1}]]
    lst = db["l"]
    assert lst.pop(0) == {"a": [1, 2]}  # materialized, and its nodes unlinked
    assert lst.pop() == ["x", {"y": 1}]
    assert lane == [{"a": [1, 2]}, ["x", {"y": 1}]]
    assert db["l"]() == ["mid"]
    report = db.check()
    assert report.ok and report.pending == 4, str(report)


def test_popping_a_nested_container_is_one_transaction(tmp_path: Path) -> None:
    with count_statements() as counter:
        db = DB(f"sqlite:///{tmp_path / 'one.db'}")
        try:
            db["l"] = [{"k": i} for i in range(3)]
            lst = db["l"]
            counter.clear()
            assert lst.pop(0) == {"k": 0}
            assert counter["BEGIN"] == 1 and counter["COMMIT"] == 1, dict(counter)
            assert not counter["ROLLBACK"], dict(counter)
        finally:
            db.close()


def test_popping_an_empty_list_raises_and_writes_nothing(db: DB, lane: list[Any]) -> None:
    db["l"] = [1]
    lst = db["l"]
    assert lst.pop(0) == 1
    before = dump_namespace(db)
    for pop in (lambda: lst.pop(0), lambda: lst.pop()):
        with pytest.raises(EtcherIndexError, match="pop from empty list"):
            pop()
    assert lane == [1, EtcherIndexError, EtcherIndexError]
    assert dump_namespace(db) == before
    lst.append(2)  # the scope was left: the store takes writes again
    assert db["l"]() == [2]


def test_a_stale_handle_refuses_and_the_store_takes_writes_again(db: DB) -> None:
    db["l"] = [1, 2]
    db["other"] = []
    lst = db["l"]
    del db["l"]
    before = dump_namespace(db)
    for attempt in (lambda: lst.append(3), lambda: lst.insert(0, 3), lambda: lst.pop(0)):
        with pytest.raises(StaleHandleError):
            attempt()
    assert dump_namespace(db) == before
    db["other"].append(1)
    assert db["other"]() == [1]


def test_a_corrupt_item_popped_raises_and_leaves_the_list(db: DB) -> None:
    db["l"] = list(range(200))  # spilled: one row per item
    lst = db["l"]
    key = db._session.layout.content(lst._etcher_uid)  # type: ignore[attr-defined]
    db.backend.lset(key, 0, b"?bad")
    before = dump_namespace(db)
    with pytest.raises(StoreCorrupt):
        lst.pop(0)
    assert dump_namespace(db) == before


@pytest.mark.parametrize("damage", [b"\xc1", msgpack.packb([b"x"])])  # not MessagePack; a list
def test_a_damaged_header_refuses_the_write_and_leaves_the_list(db: DB, damage: bytes) -> None:
    """The header is read with the list's row (``UnitScope.read_header``): damage in it is
    still ``StoreCorrupt`` naming the key, and nothing is written."""
    db["l"] = [1, 2]
    lst = db["l"]
    refs = db._session.layout.refs(lst._etcher_uid)  # type: ignore[attr-defined]
    raw = sqlite3.connect(db.backend.path, isolation_level=None)  # type: ignore[attr-defined]
    raw.execute("UPDATE keys SET value = ? WHERE name = ?", (damage, refs))
    raw.close()
    for write in (lambda: lst.append(3), lambda: lst.insert(0, 0), lambda: lst.pop(0)):
        with pytest.raises(StoreCorrupt, match="is damaged"):
            write()
    assert db.backend.lrange(db._session.layout.content(lst._etcher_uid), 0, -1) == [  # type: ignore[attr-defined]
        b"i1",
        b"i2",
    ]


def test_inside_a_transaction_the_unit_buffers_them(db: DB, lane: list[Any]) -> None:
    db["l"] = [1, 2]
    with db.transaction() as t:
        lst = t["l"]
        lst.append(3)
        lst.insert(0, 0)
        assert lst.pop() == 3
        assert lst.pop(0) == 0
        lst.append(9)
        assert db["l"]() == [1, 2]  # nothing committed yet
    assert lane == []
    assert db["l"]() == [1, 2, 9]

    with pytest.raises(RuntimeError), db.transaction() as t:
        t["l"].append(10)
        raise RuntimeError("abandon")
    assert db["l"]() == [1, 2, 9]


def test_a_due_sweep_still_rides_on_the_write(
    db: DB, lane: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db["l"] = [1]
    db["doc"] = {"a": {"b": 1}}
    db["doc"] = 0  # two nodes pending for the grace period
    assert db.check().pending == 2
    real = reclaim.clock
    monkeypatch.setattr(reclaim, "clock", lambda: real() + 10 * 3600)
    db["l"].append(2)
    assert lane == []  # the general path, whose unit sweeps them
    assert db.check().pending == 0
    db["l"].append(3)
    assert lane == [None]  # nothing due any more
    assert db["l"]() == [1, 2, 3]


def test_queued_unpins_are_released_first(db: DB, lane: list[Any]) -> None:
    db["l"] = []
    floating = RL(db, [1, 2])
    header = db._session.layout.refs(floating._etcher_uid)  # type: ignore[attr-defined]
    assert db.check().pending == 0
    del floating  # queues the release of its pin
    db["l"].append(1)
    assert lane == [None]
    assert b"#d" in db.backend.hgetall(header)  # released first: unlinked, pending
    report = db.check()
    assert report.ok and report.pending == 1, str(report)


def test_a_thread_already_holding_a_scope_goes_the_general_way(db: DB, lane: list[Any]) -> None:
    db["l"] = [1]
    lst = db["l"]
    with db.backend.unit_scope(True) as held:  # type: ignore[attr-defined]
        assert held is True
        lst.append(2)
        assert lst.pop(0) == 1
    assert lane == [listends.NOT_DONE, listends.NOT_DONE]
    assert db["l"]() == [2]
