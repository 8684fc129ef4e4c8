"""List commands, including their dense-position layout."""

from __future__ import annotations

import sqlite3

import pytest

from etcher.errors import ResponseError, StoreIndexError, StoreValueError, WrongTypeError
from etcher_sqlite import SQLiteBackend, packed


@pytest.fixture(autouse=True, params=["packed", "spilled"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test on containers packed in their key's row, then spilled to member rows."""
    if request.param == "spilled":
        monkeypatch.setattr(packed, "MAX_ENTRIES", 0)
    return str(request.param)


def items(store: SQLiteBackend, name: str = "l") -> list[bytes]:
    result: list[bytes] = store.lrange(name, 0, -1)
    return result


def test_missing_list_reads_as_empty(store: SQLiteBackend) -> None:
    assert store.llen("l") == 0
    assert store.lrange("l", 0, -1) == []
    assert store.lindex("l", 0) is None
    assert store.lpop("l") is None
    assert store.rpop("l") is None
    assert store.lpop("l", 3) is None
    assert store.rpop("l", 3) is None


def test_rpush_lpush_order_and_lengths(store: SQLiteBackend) -> None:
    assert store.rpush("l", "x") == 1
    assert store.lpush("l", "a", "b") == 3
    assert store.rpush("l", "y", "z") == 5
    assert items(store) == [b"b", b"a", b"x", b"y", b"z"]


def test_push_needs_values(store: SQLiteBackend) -> None:
    with pytest.raises(ResponseError):
        store.rpush("l")
    with pytest.raises(ResponseError):
        store.lpush("l")
    assert store.exists("l") == 0


def test_lpop_rpop_one(store: SQLiteBackend) -> None:
    store.rpush("l", 1, 2, 3)
    assert store.lpop("l") == b"1"
    assert store.rpop("l") == b"3"
    assert store.lpop("l") == b"2"
    assert store.exists("l") == 0
    assert store.type("l") == b"none"


def test_pop_with_count(store: SQLiteBackend) -> None:
    store.rpush("l", 1, 2, 3, 4, 5)
    assert store.lpop("l", 2) == [b"1", b"2"]
    assert store.rpop("l", 2) == [b"5", b"4"]  # tail first
    assert store.lpop("l", 0) == []
    assert store.rpop("l", 10) == [b"3"]
    assert store.exists("l") == 0


def test_pop_count_must_be_positive(store: SQLiteBackend) -> None:
    store.rpush("l", 1)
    with pytest.raises(StoreValueError):
        store.lpop("l", -1)
    assert items(store) == [b"1"]


def test_lrange_is_inclusive_and_clipped(store: SQLiteBackend) -> None:
    store.rpush("l", *range(10))
    model = [str(i).encode() for i in range(10)]
    cases = [(0, -1), (2, 4), (-3, -1), (-100, 2), (5, 100), (8, 2), (-1, -5), (10, 20), (0, 0)]
    for start, end in cases:
        s = max(start + 10 if start < 0 else start, 0)
        e = end + 10 if end < 0 else end
        assert store.lrange("l", start, end) == model[s : e + 1], (start, end)


def test_lrange_with_huge_bounds(store: SQLiteBackend) -> None:
    store.rpush("l", 1, 2)
    assert store.lrange("l", -(2**63), 2**63 - 1) == [b"1", b"2"]
    with pytest.raises(StoreValueError):
        store.lrange("l", 0, 2**64)


def test_lindex_positive_and_negative(store: SQLiteBackend) -> None:
    store.rpush("l", "a", "b", "c")
    assert [store.lindex("l", i) for i in (0, 1, 2, 3, -1, -3, -4)] == [
        b"a",
        b"b",
        b"c",
        None,
        b"c",
        b"a",
        None,
    ]


def test_lset(store: SQLiteBackend) -> None:
    store.rpush("l", "a", "b", "c")
    assert store.lset("l", 1, "B") is True
    assert store.lset("l", -1, "C") is True
    assert items(store) == [b"a", b"B", b"C"]


@pytest.mark.parametrize("index", [3, -4, 100])
def test_lset_out_of_range(store: SQLiteBackend, index: int) -> None:
    store.rpush("l", "a", "b", "c")
    with pytest.raises(StoreIndexError):
        store.lset("l", index, "x")
    assert items(store) == [b"a", b"b", b"c"]


def test_lset_missing_key(store: SQLiteBackend) -> None:
    with pytest.raises(StoreIndexError):
        store.lset("l", 0, "x")
    assert store.exists("l") == 0


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (1, 3, [1, 2, 3]),
        (0, -1, [0, 1, 2, 3, 4]),
        (-2, -1, [3, 4]),
        (-100, 1, [0, 1]),
        (3, 100, [3, 4]),
        (4, 4, [4]),
    ],
)
def test_ltrim(store: SQLiteBackend, start: int, end: int, expected: list[int]) -> None:
    store.rpush("l", *range(5))
    assert store.ltrim("l", start, end) is True
    assert items(store) == [str(i).encode() for i in expected]
    assert store.llen("l") == len(expected)


@pytest.mark.parametrize(("start", "end"), [(3, 1), (5, 10), (-1, -3), (0, -6)])
def test_ltrim_to_nothing_deletes_the_key(
    store: SQLiteBackend, raw: sqlite3.Connection, start: int, end: int
) -> None:
    store.rpush("l", *range(5))
    store.ltrim("l", start, end)
    assert store.exists("l") == 0
    assert raw.execute("SELECT count(*) FROM list_items").fetchone()[0] == 0


def test_ltrim_missing_key(store: SQLiteBackend) -> None:
    assert store.ltrim("l", 0, 1) is True
    assert store.exists("l") == 0


def test_ltrim_removes_the_rows_outside_the_range(
    store: SQLiteBackend, raw: sqlite3.Connection
) -> None:
    store.rpush("l", *range(max(packed.MAX_ENTRIES + 1, 20)))  # spilled: a row per item
    store.ltrim("l", 5, 9)
    assert raw.execute("SELECT count(*) FROM list_items").fetchone()[0] == 5
    store.rpush("l", "x")
    store.lpush("l", "y")
    assert items(store) == [b"y", b"5", b"6", b"7", b"8", b"9", b"x"]


def test_both_ends_far_from_zero_stay_exact(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    """Thousands of pushes and pops at both ends: the positions move, the indices stay right."""
    model: list[bytes] = []
    for i in range(3000):
        store.lpush("l", f"h{i}")
        model.insert(0, f"h{i}".encode())
    for i in range(3000):
        store.rpush("l", f"t{i}")
        model.append(f"t{i}".encode())
    for _ in range(1000):
        assert store.rpop("l") == model.pop()
    assert store.lpop("l", 500) == model[:500]
    del model[:500]
    lo, hi = raw.execute("SELECT lo, hi FROM keys WHERE name = 'l'").fetchone()
    assert lo < -2000 and hi > 1000 and hi - lo == len(model)  # the list no longer starts at 0
    assert store.llen("l") == len(model)
    for i in (0, 1, 777, len(model) - 1, -1, -2, -len(model), len(model), -len(model) - 1):
        expected = model[i] if -len(model) <= i < len(model) else None
        assert store.lindex("l", i) == expected, i
    assert store.lrange("l", 2490, 2510) == model[2490:2511]
    assert store.lrange("l", -5, -1) == model[-5:]
    store.lset("l", -1, "last")
    store.lset("l", 0, "first")
    model[-1], model[0] = b"last", b"first"
    assert items(store) == model


def test_long_pushes_in_one_call(store: SQLiteBackend) -> None:
    values = [f"v{i}" for i in range(5000)]
    assert store.rpush("l", *values) == 5000
    assert store.lpush("l", *values) == 10000
    result = items(store)
    assert result[:3] == [b"v4999", b"v4998", b"v4997"]
    assert result[-1] == b"v4999"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.rpush("k", 1),
        lambda s: s.lpush("k", 1),
        lambda s: s.lpop("k"),
        lambda s: s.rpop("k", 2),
        lambda s: s.lrange("k", 0, -1),
        lambda s: s.lindex("k", 0),
        lambda s: s.lset("k", 0, 1),
        lambda s: s.llen("k"),
        lambda s: s.ltrim("k", 0, 1),
    ],
)
def test_list_commands_on_a_hash_are_wrongtype(store: SQLiteBackend, call: object) -> None:
    store.hset("k", "f", "v")
    with pytest.raises(WrongTypeError):
        call(store)  # type: ignore[operator]
    assert store.hgetall("k") == {b"f": b"v"}
