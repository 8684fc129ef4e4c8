"""Every error etcher raises is an ``EtcherError`` *and* the built-in a Python user would catch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etcher import DB, RD, RL
from etcher.errors import ClosedError, EtcherError


@pytest.fixture
def db(store_url: Callable[[str], str]) -> Iterator[DB]:
    store = DB(store_url("errors"))
    store["d"] = {"a": 1}
    store["l"] = [1, 2]
    store["empty"] = []
    yield store
    store.close()


def _setitem(target: Any, key: Any, value: Any) -> None:
    target[key] = value


def _delitem(target: Any, key: Any) -> None:
    del target[key]


CASES: list[tuple[str, Callable[[DB], Any], type[BaseException]]] = [
    ("missing key", lambda db: db["missing"], KeyError),
    ("missing nested key", lambda db: db["d"]["missing"], KeyError),
    ("del missing key", lambda db: _delitem(db, "missing"), KeyError),
    ("pop missing key", lambda db: db.pop("missing"), KeyError),
    ("popitem of empty dict", lambda db: db["d"].clear() or db["d"].popitem(), KeyError),
    ("unknown uid", lambda db: db.get_via_uid("Dnope"), KeyError),
    ("index past the end", lambda db: db["l"][99], IndexError),
    ("assign past the end", lambda db: _setitem(db["l"], 99, 0), IndexError),
    ("delete past the end", lambda db: _delitem(db["l"], 99), IndexError),
    ("pop from empty list", lambda db: db["empty"].pop(), IndexError),
    ("a set", lambda db: _setitem(db, "x", {1, 2}), TypeError),
    ("bytes", lambda db: _setitem(db, "x", b"raw"), TypeError),
    ("an object", lambda db: _setitem(db, "x", object()), TypeError),
    ("a tuple key", lambda db: _setitem(db, ("a",), 1), TypeError),
    ("an unhashable key", lambda db: db[["a"]], TypeError),
    ("a str list index", lambda db: db["l"]["a"], TypeError),
    ("a bad counter increment", lambda db: db.incr("n", "1"), TypeError),  # type: ignore[arg-type]
    ("a lone surrogate", lambda db: _setitem(db, "x", "\ud800"), ValueError),
    ("index of a missing item", lambda db: db["l"].index(42), ValueError),
    ("remove of a missing item", lambda db: db["l"].remove(42), ValueError),
    ("an empty namespace name", lambda db: DB(backend=db.backend, prefix=""), ValueError),
    ("a zero slice step", lambda db: db["l"][::0], ValueError),
    ("a str slice bound", lambda db: db["l"]["a":], TypeError),
    ("a zero step in del", lambda db: _delitem(db["l"], slice(None, None, 0)), ValueError),
    (
        "an extended slice of another size",
        lambda db: _setitem(db["l"], slice(None, None, 2), [1, 2, 3]),
        ValueError,
    ),
    ("RD of a non-iterable", lambda db: RD(db, 5), TypeError),
    ("RL of a non-iterable", lambda db: RL(db, 5), TypeError),
    ("update with a non-iterable", lambda db: db.update(5), TypeError),
    ("fromkeys of a non-iterable", lambda db: RD.fromkeys(db, 5), TypeError),
    ("extend with a non-iterable", lambda db: db["l"].extend(5), TypeError),
    ("index with a str start", lambda db: db["l"].index(1, "a"), TypeError),
    (
        "sorting a str and an int",
        lambda db: _setitem(db, "m", [1, "a"]) or db["m"].sort(),
        TypeError,
    ),
    ("a non-iterable for a slice", lambda db: _setitem(db["l"], slice(0, 1), 5), TypeError),
]


@pytest.mark.parametrize(("what", "call", "builtin"), CASES, ids=[c[0] for c in CASES])
def test_error_is_etcher_error_and_the_builtin(
    db: DB, what: str, call: Callable[[DB], Any], builtin: type[BaseException]
) -> None:
    before = db()
    with pytest.raises(builtin) as info:
        call(db)
    assert isinstance(info.value, EtcherError), f"{what}: {type(info.value).__mro__}"
    if what not in ("popitem of empty dict", "sorting a str and an int"):
        assert db() == before  # refused input leaves the store untouched


def test_an_empty_target_is_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        DB("")
    assert isinstance(info.value, EtcherError)


def test_a_missing_key_reads_like_a_dict_key_error(db: DB) -> None:
    with pytest.raises(KeyError) as info:
        db["missing"]
    assert str(info.value) == str(KeyError("missing"))


def test_reading_and_writing_a_closed_db_raise_the_same_error(db: DB) -> None:
    handle = db["d"]
    db.close()
    raised = []
    for call in (
        lambda: db["d"],
        lambda: len(db),
        lambda: "d" in db,
        lambda: handle["a"],
        lambda: db.count("n"),
        lambda: _setitem(db, "x", 1),
        lambda: _setitem(handle, "b", 2),
        lambda: db.incr("n"),
    ):
        with pytest.raises(ClosedError) as info:
            call()
        raised.append(str(info.value))
    assert isinstance(info.value, ValueError)
    assert len(set(raised)) == 1, raised
