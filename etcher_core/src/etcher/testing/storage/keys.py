"""Storage conformance, keys: generic key commands, wrong-type errors, value encoding and
key text (:class:`KeyConformance`, :class:`WrongTypeConformance`,
:class:`EncodingConformance`, :class:`KeyTextConformance`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from etcher.errors import WrongTypeError
from etcher.spec import Capabilities, Pipeline, StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    _MAKERS,
    _raises,
    _scan,
    _snapshot,
)
from etcher.testing.wording import expect_equal

# --------------------------------------------------------------------------- keys


class KeyConformance:
    """exists / delete / type, key text rules, and lifecycle methods."""

    def test_satisfies_the_protocol(self, backend: StorageBackend) -> None:
        assert isinstance(backend, StorageBackend)
        assert isinstance(type(backend).capabilities, Capabilities)
        pipe = backend.pipeline()
        try:
            assert isinstance(pipe, Pipeline)
        finally:
            pipe.reset()

    def test_exists_counts_names_given_twice(self, backend: StorageBackend, key: KeyMaker) -> None:
        s, h, missing = key("s"), key("h"), key("missing")
        backend.set(s, b"1")
        backend.hset(h, b"f", b"v")
        assert backend.exists(s) == 1
        assert backend.exists(missing) == 0
        assert backend.exists(s, s, h, missing) == 3

    def test_delete_counts_keys_of_every_type(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst, missing = key("s"), key("h"), key("l"), key("missing")
        backend.set(s, b"1")
        backend.hset(h, b"f", b"v")
        backend.rpush(lst, b"x")
        assert backend.delete(s, h, lst, missing) == 3
        assert backend.exists(s, h, lst) == 0
        for name in (s, h, lst):
            assert raw.type(name) == b"none"
            assert backend.type(name) == b"none"

    def test_delete_missing_is_zero(self, backend: StorageBackend, key: KeyMaker) -> None:
        assert backend.delete(key("a"), key("b")) == 0

    def test_delete_leaves_other_keys_alone(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b = key("a"), key("a*")
        backend.set(a, b"1")
        backend.set(b, b"2")
        assert backend.delete(b) == 1
        assert raw.get(a) == b"1"

    def test_type_of_each_kind(self, backend: StorageBackend, key: KeyMaker) -> None:
        s, h, lst = key("s"), key("h"), key("l")
        backend.set(s, b"1")
        backend.hset(h, b"f", b"v")
        backend.rpush(lst, b"x")
        assert backend.type(s) == b"string"
        assert backend.type(h) == b"hash"
        assert backend.type(lst) == b"list"
        assert backend.type(key("missing")) == b"none"

    def test_bytes_keys_name_the_same_key_as_text(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k, h = key("bytes-ключ"), key("bytes-hash")
        backend.set(k.encode(), b"1")
        assert backend.get(k) == b"1"
        backend.hset(h, b"f", b"v")
        assert backend.hget(h.encode(), b"f") == b"v"
        assert backend.exists(k, k.encode()) == 2
        assert backend.delete(k.encode()) == 1
        assert backend.exists(k) == 0

    def test_keys_are_exact_text(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        # Case, trailing spaces, unicode normalisation forms and glob/SQL
        # wildcard characters all make distinct keys.
        names = ["A", "a", "a ", "é", "e\u0301", "%", "_", "*", "?", "[a]", "\\", "{x}", ":"]
        for i, name in enumerate(names):
            backend.set(key(name), str(i))
        for i, name in enumerate(names):
            assert raw.get(key(name)) == str(i).encode(), name

    def test_maintenance_keeps_the_data(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst = key("s"), key("h"), key("l")
        backend.set(s, b"1")
        backend.hset(h, b"f", b"v")
        backend.rpush(lst, b"x", b"y")
        backend.maintenance()
        assert raw.get(s) == b"1"
        assert raw.hgetall(h) == {b"f": b"v"}
        assert raw.lrange(lst, 0, -1) == [b"x", b"y"]


# --------------------------------------------------------------------------- wrong types

Op = Callable[[StorageBackend, str], object]

_STRING_OPS: dict[str, Op] = {
    "get": lambda b, k: b.get(k),
    "incr": lambda b, k: b.incr(k),
    "decr": lambda b, k: b.decr(k, 2),
}
_HASH_OPS: dict[str, Op] = {
    "hget": lambda b, k: b.hget(k, b"f"),
    "hmget": lambda b, k: b.hmget(k, [b"f"]),
    "hset": lambda b, k: b.hset(k, b"f", b"v"),
    "hset-mapping": lambda b, k: b.hset(k, mapping={b"f": b"v"}),
    "hdel": lambda b, k: b.hdel(k, b"f"),
    "hgetall": lambda b, k: b.hgetall(k),
    "hkeys": lambda b, k: b.hkeys(k),
    "hlen": lambda b, k: b.hlen(k),
    "hexists": lambda b, k: b.hexists(k, b"f"),
    "hincrby": lambda b, k: b.hincrby(k, b"f", 1),
}
_LIST_OPS: dict[str, Op] = {
    "rpush": lambda b, k: b.rpush(k, b"x"),
    "lpush": lambda b, k: b.lpush(k, b"x"),
    "lpop": lambda b, k: b.lpop(k),
    "lpop-count": lambda b, k: b.lpop(k, 2),
    "rpop": lambda b, k: b.rpop(k),
    "rpop-count": lambda b, k: b.rpop(k, 2),
    "lrange": lambda b, k: b.lrange(k, 0, -1),
    "lindex": lambda b, k: b.lindex(k, 0),
    "lset": lambda b, k: b.lset(k, 0, b"x"),
    "llen": lambda b, k: b.llen(k),
    "ltrim": lambda b, k: b.ltrim(k, 0, 0),
}
_FOREIGN_OPS: dict[str, dict[str, Op]] = {
    "string": {**_HASH_OPS, **_LIST_OPS},
    "hash": {**_STRING_OPS, **_LIST_OPS},
    "list": {**_STRING_OPS, **_HASH_OPS},
}
_WRONG_TYPE_CASES = [
    pytest.param(kind, op, id=f"{kind}-key-{name}")
    for kind, ops in _FOREIGN_OPS.items()
    for name, op in ops.items()
]


class WrongTypeConformance:
    """Every command on a key of another type raises WrongTypeError and changes nothing."""

    @pytest.mark.parametrize(("kind", "op"), _WRONG_TYPE_CASES)
    def test_wrong_type_raises_and_changes_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, kind: str, op: Op
    ) -> None:
        k = key(kind)
        _MAKERS[kind](backend, k)
        before = _snapshot(raw, k)
        rule = f"a command for another type on a {kind} key raises WrongTypeError"
        with _raises(WrongTypeError, rule, prefix=key.prefix):
            op(backend, k)
        expect_equal(
            _snapshot(raw, k),
            before,
            f"{rule} and changes nothing: (type, content) stay as they were",
            key=k,
            prefix=key.prefix,
        )

    @pytest.mark.parametrize("kind", sorted(_MAKERS))
    def test_type_neutral_commands_work_on_every_kind(
        self, backend: StorageBackend, key: KeyMaker, kind: str
    ) -> None:
        k = key(kind)
        _MAKERS[kind](backend, k)
        assert backend.type(k) == kind.encode()
        assert backend.exists(k) == 1
        assert backend.delete(k) == 1


# --------------------------------------------------------------------------- encoding


class EncodingConformance:
    """Values and fields go in as bytes, str or int and always come back as bytes."""

    def test_strings_come_back_as_bytes(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        text, number, negative = key("text"), key("int"), key("neg")
        backend.set(text, "héllo ✓")
        backend.set(number, 42)
        backend.set(negative, -7)
        assert backend.get(text) == "héllo ✓".encode()
        assert backend.get(number) == b"42"
        assert backend.get(negative) == b"-7"
        assert raw.get(text) == "héllo ✓".encode()

    def test_hash_fields_and_values_come_back_as_bytes(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k = key("h")
        backend.hset(k, "é", "ü")
        backend.hset(k, mapping={7: 8, "t": 9})
        assert backend.hgetall(k) == {"é".encode(): "ü".encode(), b"7": b"8", b"t": b"9"}
        assert sorted(backend.hkeys(k)) == sorted([b"7", b"t", "é".encode()])
        assert backend.hget(k, 7) == b"8"
        assert backend.hget(k, "7") == b"8"  # int 7 and "7" are the same field
        assert backend.hmget(k, ["é", 7]) == ["ü".encode(), b"8"]
        assert backend.hexists(k, b"7")
        assert backend.hdel(k, "7") == 1

    def test_list_items_come_back_as_bytes(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("l")
        backend.rpush(k, "a", 1, b"b", "ü")
        backend.lpush(k, -5)
        backend.lset(k, 1, 9)
        assert backend.lrange(k, 0, -1) == [b"-5", b"9", b"1", b"b", "ü".encode()]
        assert backend.lindex(k, -1) == "ü".encode()
        assert backend.lpop(k) == b"-5"
        assert backend.rpop(k, 2) == ["ü".encode(), b"b"]

    def test_every_return_is_exactly_bytes(self, backend: StorageBackend, key: KeyMaker) -> None:
        # ``type(x) is bytes`` also rejects bytearray/memoryview and str subclasses.
        s, h, lst = key("s"), key("h"), key("l")
        backend.set(s, "v")
        backend.hset(h, "f", "v")
        backend.rpush(lst, "v", "w", "x")
        values: list[object] = [
            backend.get(s),
            backend.hget(h, "f"),
            *backend.hmget(h, ["f"]),
            *backend.hgetall(h).keys(),
            *backend.hgetall(h).values(),
            *backend.hkeys(h),
            *backend.lrange(lst, 0, -1),
            backend.lindex(lst, 0),
            backend.lpop(lst),
            *backend.rpop(lst, 1),
            backend.type(s),
            *_scan(backend, key.prefix),
        ]
        expect_equal(
            [type(v).__name__ for v in values if type(v) is not bytes],
            [],
            "every value, field, item, type name and scanned key comes back as exactly bytes "
            "(not str, bytearray or memoryview)",
        )


# --------------------------------------------------------------------------- key text and length

LONG = 4096 + 17
"""Longer than any page-size or fixed-width key limit (LMDB's default is 511 bytes)."""

_BINARY_LOOKING = [
    "\x00",
    "a\x00b",
    "\r\n",
    "\t",
    "\x7f",
    "\xff",
    "\u2028",
    "\ufeff",
    "\U0001f600",
    "\\x00",
    "b'\\xff'",
    "%00",
    "\\",
    "\\\\",
]


class KeyTextConformance:
    """Long keys and fields, and key text that looks binary or escaped."""

    def test_long_keys_of_every_type(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst = key("s" * LONG), key("h" * LONG), key("l" * LONG)
        rule = f"keys of any length work ({LONG} bytes here; the kit never promises a limit)"
        backend.set(s, b"1")
        backend.hset(h, b"f", b"v")
        backend.rpush(lst, b"x")
        expect_equal(raw.get(s), b"1", rule, key=s, prefix=key.prefix)
        expect_equal(raw.hgetall(h), {b"f": b"v"}, rule, key=h, prefix=key.prefix)
        expect_equal(raw.lrange(lst, 0, -1), [b"x"], rule, key=lst, prefix=key.prefix)
        expect_equal(backend.type(h), b"hash", rule, key=h, prefix=key.prefix)
        expect_equal(
            sorted(_scan(backend, key.prefix)),
            sorted(n.encode() for n in (s, h, lst)),
            "scan_iter reports long keys whole",
            prefix=key.prefix,
        )
        pipe = backend.pipeline()
        pipe.watch(s)
        pipe.multi()
        pipe.incr(s)
        expect_equal(
            pipe.execute(),
            [2],
            "long keys can be watched and written in a batch",
            prefix=key.prefix,
        )
        expect_equal(backend.delete(s, h, lst), 3, rule, prefix=key.prefix)

    def test_long_fields_and_values(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h = key("h")
        field = b"f" * LONG
        rule = f"hash fields of any length work ({LONG} bytes here)"
        expect_equal(backend.hset(h, field, b"v" * LONG), 1, rule, prefix=key.prefix)
        expect_equal(backend.hget(h, field), b"v" * LONG, rule, prefix=key.prefix)
        expect_equal(raw.hgetall(h), {field: b"v" * LONG}, rule, prefix=key.prefix)
        expect_equal(backend.hincrby(h, field + b"n", 3), 3, rule, prefix=key.prefix)
        expect_equal(backend.hdel(h, field, field + b"n"), 2, rule, prefix=key.prefix)
        expect_equal(raw.exists(h), 0, "removing the last field deletes the key", prefix=key.prefix)

    @pytest.mark.parametrize("text", _BINARY_LOOKING, ids=[repr(t) for t in _BINARY_LOOKING])
    def test_binary_looking_key_text(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, text: str
    ) -> None:
        k, h = key(text), key("h")
        rule = "any text is a key, control characters and escape look-alikes included"
        backend.set(k, b"v")
        expect_equal(raw.get(k), b"v", rule, key=k, prefix=key.prefix)
        expect_equal(
            backend.get(k.encode()),
            b"v",
            rule + " (bytes keys name the same key)",
            key=k,
            prefix=key.prefix,
        )
        backend.hset(h, text, b"1")
        expect_equal(
            backend.hgetall(h),
            {text.encode(): b"1"},
            "hash fields are any text too",
            key=h,
            prefix=key.prefix,
        )
        found = sorted(_scan(backend, key.prefix))
        expect_equal(
            found,
            sorted([k.encode(), h.encode()]),
            "scan_iter returns each key's exact UTF-8 bytes",
            prefix=key.prefix,
        )
