"""The session layer: handles and both faces of a namespace (DB, transactor) share one session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from etcher import DB, RD
from etcher._transactions import Transactor
from etcher.errors import ClosedError


@pytest.fixture
def db(store_url: Callable[[str], str]) -> Iterator[DB]:
    store = DB(store_url("session"))
    yield store
    store.close()


def test_handles_report_the_face_they_came_through(db: DB) -> None:
    db["doc"] = {"inner": {"x": 1}}
    assert db["doc"]["inner"].db is db
    t = db.transactor()
    assert t["doc"]["inner"].db is t
    assert RD(t, {"made": 1}).db is t
    assert t == db and hash(t) == hash(db)


def test_a_transactor_replaces_the_whole_namespace_from_json(db: DB) -> None:
    db["old"] = 1
    t = db.transactor()
    t.import_json((), '{"a": {"b": [1, 2]}}')
    assert db() == {"a": {"b": [1, 2]}}
    assert isinstance(t, Transactor)


def test_a_transactor_of_a_closed_db_is_closed_too(db: DB) -> None:
    db["k"] = 1
    t = db.transactor()
    db.close()
    with pytest.raises(ClosedError):
        t["k"]
    with pytest.raises(ClosedError):
        t["k"] = 2
