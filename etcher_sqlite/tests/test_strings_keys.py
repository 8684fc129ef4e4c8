"""String and key commands, argument encoding, and what a write leaves in the tables."""

from __future__ import annotations

import sqlite3

import pytest

from etcher.errors import ResponseError, StoreValueError, WrongTypeError
from etcher_sqlite import SQLiteBackend


def test_get_missing_is_none(store: SQLiteBackend) -> None:
    assert store.get("nope") is None


def test_set_get_roundtrip_bytes_out(store: SQLiteBackend) -> None:
    assert store.set("k", b"\x00\xffraw") is True
    assert store.get("k") == b"\x00\xffraw"


@pytest.mark.parametrize(
    ("value", "stored"),
    [("text ü", "text ü".encode()), (42, b"42"), (-7, b"-7"), (1.5, b"1.5"), (b"", b"")],
)
def test_values_are_encoded_like_redis_py(
    store: SQLiteBackend, value: object, stored: bytes
) -> None:
    store.set("k", value)  # type: ignore[arg-type]
    assert store.get("k") == stored


@pytest.mark.parametrize("value", [True, None, object(), ["x"]])
def test_unencodable_values_are_refused_and_nothing_written(
    store: SQLiteBackend, value: object
) -> None:
    with pytest.raises(TypeError):
        store.set("k", value)  # type: ignore[arg-type]
    assert store.exists("k") == 0


def test_bytes_keys_are_the_same_keys_as_text(store: SQLiteBackend) -> None:
    store.set(b"caf\xc3\xa9", "x")
    assert store.get("café") == b"x"
    assert store.exists("café", b"caf\xc3\xa9") == 2


def test_invalid_utf8_key_is_refused(store: SQLiteBackend) -> None:
    with pytest.raises(ValueError):
        store.set(b"\xff", "x")


def test_key_of_wrong_type_is_refused(store: SQLiteBackend) -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        store.get(3)  # type: ignore[arg-type]


def test_set_replaces_a_hash_and_its_fields(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    store.hset("k", mapping={"a": 1, "b": 2})
    assert store.set("k", "v") is True
    assert store.type("k") == b"string"
    assert store.get("k") == b"v"
    assert raw.execute("SELECT count(*) FROM hashes").fetchone()[0] == 0


def test_set_replaces_a_list_and_its_items(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    store.rpush("k", 1, 2, 3)
    store.set("k", "v")
    assert store.get("k") == b"v"
    assert raw.execute("SELECT count(*) FROM list_items").fetchone()[0] == 0


def test_incr_decr(store: SQLiteBackend) -> None:
    assert store.incr("n") == 1
    assert store.incr("n", 10) == 11
    assert store.decr("n") == 10
    assert store.decr("n", 15) == -5
    assert store.get("n") == b"-5"
    assert store.incr("n", 0) == -5


@pytest.mark.parametrize("value", [b"1.5", b" 1", b"1 ", b"+1", b"01", b"-0", b"", b"abc", b"1e3"])
def test_incr_refuses_what_redis_refuses(store: SQLiteBackend, value: bytes) -> None:
    store.set("n", value)
    with pytest.raises(StoreValueError):
        store.incr("n")
    assert store.get("n") == value


def test_incr_overflow_is_refused_and_changes_nothing(store: SQLiteBackend) -> None:
    store.set("n", 2**63 - 1)
    with pytest.raises(StoreValueError, match="overflow"):
        store.incr("n")
    assert store.get("n") == str(2**63 - 1).encode()
    store.set("m", -(2**63))
    with pytest.raises(StoreValueError):
        store.decr("m")
    assert store.decr("m", -1) == -(2**63) + 1


def test_incr_of_a_value_past_64_bits_is_refused(store: SQLiteBackend) -> None:
    store.set("n", 2**63)
    with pytest.raises(StoreValueError):
        store.incr("n")


def test_incr_amount_must_be_a_64_bit_int(store: SQLiteBackend) -> None:
    with pytest.raises(StoreValueError):
        store.incr("n", 2**64)
    with pytest.raises(TypeError):
        store.incr("n", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.incr("n", True)
    assert store.exists("n") == 0


def test_incr_on_a_hash_is_wrongtype(store: SQLiteBackend) -> None:
    store.hset("h", "f", 1)
    with pytest.raises(WrongTypeError):
        store.incr("h")
    assert store.hgetall("h") == {b"f": b"1"}


def test_get_on_a_list_is_wrongtype(store: SQLiteBackend) -> None:
    store.rpush("l", 1)
    with pytest.raises(WrongTypeError, match="WRONGTYPE"):
        store.get("l")


def test_type_of_each_kind(store: SQLiteBackend) -> None:
    store.set("s", 1)
    store.hset("h", "f", 1)
    store.rpush("l", 1)
    assert [store.type(k) for k in ("s", "h", "l", "none")] == [
        b"string",
        b"hash",
        b"list",
        b"none",
    ]


def test_exists_counts_duplicates(store: SQLiteBackend) -> None:
    store.set("a", 1)
    store.rpush("b", 1)
    assert store.exists("a") == 1
    assert store.exists("a", "a", "b", "zz") == 3
    assert store.exists("zz") == 0


def test_exists_with_many_names(store: SQLiteBackend) -> None:
    for i in range(0, 600, 2):
        store.set(f"k{i}", i)
    assert store.exists(*(f"k{i}" for i in range(600))) == 300


def test_delete_counts_existing_keys_once(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    store.set("s", 1)
    store.hset("h", "f", 1)
    store.rpush("l", 1, 2)
    assert store.delete("s", "h", "l", "h", "missing") == 3
    assert store.exists("s", "h", "l") == 0
    for table in ("keys", "hashes", "list_items"):
        assert raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert store.delete("s") == 0


@pytest.mark.parametrize("command", ["delete", "exists"])
def test_no_names_is_an_error(store: SQLiteBackend, command: str) -> None:
    with pytest.raises(ResponseError, match="wrong number of arguments"):
        getattr(store, command)()


def test_keys_with_any_characters(store: SQLiteBackend) -> None:
    names = ["", "*", "a?b", "[x]", "\\", "{tag}:1", "nul\x00byte", "emoji 🎉", "\U0010ffff"]
    for i, name in enumerate(names):
        store.set(name, i)
    for i, name in enumerate(names):
        assert store.get(name) == str(i).encode()
    assert store.exists(*names) == len(names)


def test_every_write_stamps_a_new_version(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    def version(name: str) -> int:
        row = raw.execute("SELECT version FROM keys WHERE name = ?", (name,)).fetchone()
        assert row is not None
        return int(row[0])

    seen = set()
    store.set("a", 1)
    seen.add(version("a"))
    for write in (
        lambda: store.set("a", 1),  # same value: still a write
        lambda: store.incr("a"),
        lambda: store.delete("a") and store.set("a", 1),  # recreated: no old version back
        lambda: store.delete("a") and store.hset("a", "f", 1),
        lambda: store.hset("a", "f", 1),
        lambda: store.hdel("a", "f") and store.rpush("a", 1),
        lambda: store.lset("a", 0, 2),
    ):
        write()
        assert version("a") not in seen
        seen.add(version("a"))
