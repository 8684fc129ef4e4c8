"""Hash commands."""

from __future__ import annotations

import sqlite3

import pytest

from etcher.errors import ResponseError, StoreValueError, WrongTypeError
from etcher_sqlite import SQLiteBackend, packed


@pytest.fixture(autouse=True, params=["packed", "spilled"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test on containers packed in their key's row, then spilled to member rows."""
    if request.param == "spilled":
        monkeypatch.setattr(packed, "MAX_ENTRIES", 0)
    return str(request.param)


def test_missing_hash_reads_as_empty(store: SQLiteBackend) -> None:
    assert store.hget("h", "f") is None
    assert store.hgetall("h") == {}
    assert store.hkeys("h") == []
    assert store.hlen("h") == 0
    assert store.hexists("h", "f") is False
    assert store.hmget("h", ["a", "b"]) == [None, None]


def test_hset_counts_added_fields_only(store: SQLiteBackend) -> None:
    assert store.hset("h", "a", 1) == 1
    assert store.hset("h", "a", 2) == 0
    assert store.hset("h", mapping={"a": 3, "b": 4, "c": 5}) == 2
    assert store.hset("h", "d", 6, mapping={"d": 7, "e": 8}) == 2
    assert store.hgetall("h") == {b"a": b"3", b"b": b"4", b"c": b"5", b"d": b"7", b"e": b"8"}
    assert store.hlen("h") == 5


def test_hset_field_kinds_are_encoded(store: SQLiteBackend) -> None:
    store.hset("h", mapping={1: "one", b"two": 2, "three": b"3"})
    assert store.hgetall("h") == {b"1": b"one", b"two": b"2", b"three": b"3"}
    assert store.hget("h", 1) == b"one"


def test_hset_with_nothing_is_a_value_error(store: SQLiteBackend) -> None:
    with pytest.raises(ValueError):
        store.hset("h")
    with pytest.raises(ValueError):
        store.hset("h", mapping={})
    with pytest.raises(ValueError):
        store.hset("h", value="orphan")
    assert store.exists("h") == 0


def test_hset_with_a_bad_value_writes_nothing(store: SQLiteBackend) -> None:
    with pytest.raises(TypeError):
        store.hset("h", mapping={"a": 1, "b": None})  # type: ignore[dict-item]
    assert store.exists("h") == 0


def test_hget_hmget_hexists_hkeys(store: SQLiteBackend) -> None:
    store.hset("h", mapping={"a": 1, "b": 2})
    assert store.hget("h", "a") == b"1"
    assert store.hget("h", "zz") is None
    assert store.hmget("h", ["b", "zz", "a", "b"]) == [b"2", None, b"1", b"2"]
    assert store.hexists("h", "a") is True
    assert store.hexists("h", "zz") is False
    assert sorted(store.hkeys("h")) == [b"a", b"b"]


def test_hmget_with_many_fields(store: SQLiteBackend) -> None:
    store.hset("h", mapping={f"f{i}": i for i in range(0, 700, 7)})
    fields = [f"f{i}" for i in range(700)]
    expected = [str(i).encode() if i % 7 == 0 else None for i in range(700)]
    assert store.hmget("h", fields) == expected


def test_hmget_needs_fields(store: SQLiteBackend) -> None:
    with pytest.raises(ResponseError):
        store.hmget("h", [])


def test_hdel_counts_and_deletes_the_empty_hash(
    store: SQLiteBackend, raw: sqlite3.Connection
) -> None:
    store.hset("h", mapping={"a": 1, "b": 2, "c": 3})
    assert store.hdel("h", "a", "zz", "a") == 1
    assert store.hlen("h") == 2
    assert store.hdel("h", "b", "c") == 2
    assert store.exists("h") == 0
    assert store.type("h") == b"none"
    assert raw.execute("SELECT count(*) FROM keys").fetchone()[0] == 0
    assert store.hdel("h", "a") == 0


def test_hdel_needs_fields(store: SQLiteBackend) -> None:
    with pytest.raises(ResponseError):
        store.hdel("h")


def test_hincrby(store: SQLiteBackend) -> None:
    assert store.hincrby("h", "n") == 1
    assert store.hincrby("h", "n", 9) == 10
    assert store.hincrby("h", "n", -10) == 0
    assert store.hgetall("h") == {b"n": b"0"}  # a field reaching 0 is kept
    assert store.hincrby("h", "m", -3) == -3
    assert store.hlen("h") == 2


def test_hincrby_on_non_integer_changes_nothing(store: SQLiteBackend) -> None:
    store.hset("h", "f", "1.5")
    with pytest.raises(StoreValueError):
        store.hincrby("h", "f")
    assert store.hget("h", "f") == b"1.5"


def test_hincrby_overflow_changes_nothing(store: SQLiteBackend) -> None:
    store.hset("h", "f", 2**63 - 1)
    with pytest.raises(StoreValueError):
        store.hincrby("h", "f", 1)
    assert store.hget("h", "f") == str(2**63 - 1).encode()


def test_hlen_is_kept_exact_through_every_write(store: SQLiteBackend) -> None:
    model: dict[str, int] = {}
    for i in range(50):
        field = f"f{i % 13}"
        if i % 3 == 0:
            store.hdel("h", field)
            model.pop(field, None)
        else:
            store.hset("h", field, i)
            model[field] = i
        assert store.hlen("h") == len(model)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.hget("k", "f"),
        lambda s: s.hmget("k", ["f"]),
        lambda s: s.hset("k", "f", 1),
        lambda s: s.hdel("k", "f"),
        lambda s: s.hgetall("k"),
        lambda s: s.hkeys("k"),
        lambda s: s.hlen("k"),
        lambda s: s.hexists("k", "f"),
        lambda s: s.hincrby("k", "f"),
    ],
)
@pytest.mark.parametrize("kind", ["string", "list"])
def test_hash_commands_on_other_types_are_wrongtype(
    store: SQLiteBackend, call: object, kind: str
) -> None:
    if kind == "string":
        store.set("k", "v")
    else:
        store.rpush("k", "v")
    with pytest.raises(WrongTypeError):
        call(store)  # type: ignore[operator]
    assert store.type("k") == kind.encode()
    assert (store.get("k") if kind == "string" else store.lrange("k", 0, -1)) in (b"v", [b"v"])


def test_hgetall_in_a_write_scope_keeps_the_key_row_for_the_writes_after_it(
    store: SQLiteBackend,
) -> None:
    # The scope caches the key row hgetall read; the writes after it build on that row.
    store.hset("h", mapping={b"a": b"1", b"b": b"2"})
    with store.unit_scope(True):
        assert store.hgetall("h") == {b"a": b"1", b"b": b"2"}
        pipe = store.pipeline()
        pipe.hset("h", mapping={b"c": b"3"})
        pipe.hdel("h", b"a")
        assert pipe.execute() == [1, 1]
        assert store.hgetall("h") == {b"b": b"2", b"c": b"3"}
    assert store.hgetall("h") == {b"b": b"2", b"c": b"3"}
    assert store.hlen("h") == 2


class _Rows:
    """A connection whose query answers ``rows``: a compound select's order is not promised."""

    in_transaction = False

    def __init__(self, rows: list[tuple[object, ...]]) -> None:
        self.rows = rows

    def execute(self, sql: str, args: tuple[object, ...]) -> _Rows:
        return self

    def fetchall(self) -> list[tuple[object, ...]]:
        return self.rows


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_hgetall_finds_the_key_row_wherever_the_query_puts_it(where: str) -> None:
    from etcher_sqlite import ops
    from etcher_sqlite.schema import HASH

    fields: list[tuple[object, ...]] = [(b"a", b"1"), (b"b", b"2")]
    at = {"first": 0, "middle": 1, "last": 2}[where]
    rows = [*fields[:at], (HASH, None), *fields[at:]]
    assert ops.hgetall(_Rows(rows), "h") == {b"a": b"1", b"b": b"2"}  # type: ignore[arg-type]
    assert ops.hgetall(_Rows(fields), "h") == {}  # type: ignore[arg-type]  # no key row
