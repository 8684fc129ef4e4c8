"""Conformance tests for the storage Protocol (:mod:`etcher.spec`).

Each family of commands is its own class so an author can run parts of the
kit; :class:`StorageConformance` combines them all. The classes only request
fixtures (``backend``, ``raw``, ``second_backend``, ``key`` ...) and must be
combined with a fixture provider such as :class:`etcher.testing.BackendFixtures`.

Conventions of the tests below: every key comes from ``key(...)`` (the test's
private, glob-hostile prefix); ``raw`` double-checks that a write reached the
medium; expected values are spelled out literally, never computed by the
backend under test.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from etcher.errors import EtcherError, StoreIndexError, StoreValueError, WatchError, WrongTypeError
from etcher.spec import Capabilities, Pipeline, StorageBackend
from etcher.testing.fixtures import BackendFactory, KeyMaker, RawAccess, glob_escape
from etcher.testing.wording import expect, expect_equal, shorten

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
ALL_BYTES = bytes(range(256))
"""Every byte value once: not UTF-8, contains NUL, CR/LF and 0xff."""

FIVE = [b"a", b"b", b"c", b"d", b"e"]

_COUNTER_RULE = "a counter is canonical signed 64-bit decimal text: an optional '-', then digits"
NOT_COUNTER_CASES: list[tuple[str, bytes, str]] = [
    ("letters", b"abc", _COUNTER_RULE),
    ("float", b"1.5", _COUNTER_RULE),
    ("empty", b"", "empty text is not a number"),
    ("leading-space", b" 1", "no spaces around the digits"),
    ("trailing-space", b"1 ", "no spaces around the digits"),
    ("newline", b"1\n", "no whitespace around the digits"),
    ("suffix", b"12abc", _COUNTER_RULE),
    ("underscore", b"1_000", "no '_' separators (Python's int() accepts them, Redis does not)"),
    ("non-ascii-digit", "\u0663".encode(), "ASCII digits only"),
    ("exponent", b"1e3", _COUNTER_RULE),
    ("hex", b"0x10", _COUNTER_RULE),
    ("plus-sign", b"+1", "no '+' sign (Redis INCR refuses '+1')"),
    ("plus-zero", b"+0", "no '+' sign"),
    ("leading-zeros", b"007", "no leading zeros (Redis INCR refuses '007')"),
    ("double-zero", b"00", "no leading zeros"),
    ("negative-leading-zero", b"-07", "no leading zeros"),
    ("minus-zero", b"-0", "zero is written '0', never '-0'"),
    ("lone-minus", b"-", _COUNTER_RULE),
]
"""Stored text that Redis ``INCR``/``HINCRBY`` refuse ("value is not an integer")."""
NOT_COUNTERS = [(stored, why) for _, stored, why in NOT_COUNTER_CASES]
NOT_COUNTER_IDS = [name for name, _, _ in NOT_COUNTER_CASES]


@contextmanager
def _raises(
    error: type[BaseException] | tuple[type[BaseException], ...], rule: str, *, prefix: str
) -> Iterator[None]:
    """Like ``pytest.raises``, but a missing or wrong error fails with ``rule`` in words."""
    wanted = error if isinstance(error, tuple) else (error,)
    names = " or ".join(e.__name__ for e in wanted)
    try:
        yield
    except wanted:
        return
    except Exception as exc:
        raise AssertionError(
            f"The Protocol requires: {rule}\n  expected {names}\n"
            f"  got      {type(exc).__name__}: {shorten(str(exc), prefix)}"
        ) from exc
    raise AssertionError(f"The Protocol requires: {rule}\n  expected {names}\n  got      no error")


def _expect_conflict(pipe: Any, raw: RawAccess, target: str, rule: str, *, prefix: str) -> None:
    """``execute()`` raises ``WatchError`` (``rule`` says why) and applies nothing to ``target``."""
    with _raises(WatchError, rule, prefix=prefix):
        pipe.execute()
    expect_equal(
        raw.exists(target),
        0,
        "a transaction that raised WatchError applies nothing",
        key=target,
        prefix=prefix,
    )


def _fill(backend: StorageBackend, name: str) -> None:
    """Make ``name`` the list ``a b c d e``."""
    assert backend.rpush(name, *FIVE) == len(FIVE)


def _snapshot(raw: RawAccess, name: str) -> tuple[Any, Any]:
    """Type and full content of a key, read out of band (to prove "nothing changed")."""
    kind = raw.type(name)
    if kind == b"string":
        return kind, raw.get(name)
    if kind == b"hash":
        return kind, raw.hgetall(name)
    if kind == b"list":
        return kind, raw.lrange(name, 0, -1)
    return kind, None


def _scan(backend: StorageBackend, prefix: str, count: int | None = None) -> list[bytes]:
    """Every key the backend reports under the literal ``prefix`` (duplicates kept)."""
    return list(backend.scan_iter(match=glob_escape(prefix) + "*", count=count))


# --------------------------------------------------------------------------- strings


class StringCommands:
    """get / set / incr / decr."""

    def test_get_missing_is_none(self, backend: StorageBackend, key: KeyMaker) -> None:
        assert backend.get(key("nothing")) is None

    def test_set_returns_true_and_reaches_the_medium(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("s")
        assert backend.set(k, b"value") is True
        assert backend.get(k) == b"value"
        assert raw.get(k) == b"value"
        assert raw.type(k) == b"string"

    def test_reads_see_out_of_band_writes(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        # A backend that caches reads must still see another client's write.
        k = key("s")
        raw.set(k, b"one")
        assert backend.get(k) == b"one"
        raw.set(k, b"two")
        assert backend.get(k) == b"two"

    def test_set_overwrites_string(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("s")
        backend.set(k, b"old")
        backend.set(k, b"new")
        assert backend.get(k) == b"new"
        assert raw.get(k) == b"new"

    def test_set_replaces_a_hash(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        backend.hset(k, mapping={b"f": b"v", b"g": b"w"})
        assert backend.set(k, b"now a string") is True
        assert backend.type(k) == b"string"
        assert backend.get(k) == b"now a string"
        assert raw.type(k) == b"string"
        with pytest.raises(WrongTypeError):
            backend.hget(k, b"f")

    def test_set_replaces_a_list(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.set(k, b"now a string") is True
        assert backend.type(k) == b"string"
        assert raw.get(k) == b"now a string"
        with pytest.raises(WrongTypeError):
            backend.llen(k)

    def test_empty_value_is_a_value(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("empty")
        backend.set(k, b"")
        assert backend.get(k) == b""
        assert backend.exists(k) == 1
        assert backend.type(k) == b"string"
        assert raw.get(k) == b""

    def test_binary_value_round_trips(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("bin")
        backend.set(k, ALL_BYTES)
        assert backend.get(k) == ALL_BYTES
        assert raw.get(k) == ALL_BYTES

    def test_large_value_round_trips(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("big")
        value = ALL_BYTES * 4096  # 1 MiB
        backend.set(k, value)
        assert backend.get(k) == value

    def test_incr_missing_starts_from_zero(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("n")
        assert backend.incr(k) == 1
        assert backend.get(k) == b"1"
        assert raw.get(k) == b"1"
        assert backend.type(k) == b"string"

    def test_incr_by_amount(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("n")
        assert backend.incr(k, 10) == 10
        assert backend.incr(k, 5) == 15
        assert backend.incr(k, -20) == -5
        assert backend.get(k) == b"-5"

    def test_decr(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("n")
        assert backend.decr(k) == -1
        assert backend.decr(k, 4) == -5
        assert backend.decr(k, -7) == 2
        assert backend.get(k) == b"2"

    def test_incr_on_value_set_as_text_or_int(self, backend: StorageBackend, key: KeyMaker) -> None:
        a, b = key("a"), key("b")
        backend.set(a, "41")
        backend.set(b, -3)
        assert backend.incr(a) == 42
        assert backend.incr(b) == -2

    @pytest.mark.parametrize(("stored", "why"), NOT_COUNTERS, ids=NOT_COUNTER_IDS)
    def test_incr_on_non_integer_raises_and_changes_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, stored: bytes, why: str
    ) -> None:
        # Redis accepts exactly the canonical form (optional '-', no leading zeros,
        # no '+', no spaces); Python's int() accepts far more and must not leak through.
        k = key("n")
        backend.set(k, stored)
        rule = f"incr() on {stored!r} raises StoreValueError: {why}"
        with _raises(StoreValueError, rule, prefix=key.prefix):
            backend.incr(k)
        with _raises(ValueError, rule + " (StoreValueError is a ValueError)", prefix=key.prefix):
            backend.decr(k, 2)
        expect_equal(
            raw.get(k),
            stored,
            "a failed incr/decr leaves the value as it was",
            key=k,
            prefix=key.prefix,
        )

    @pytest.mark.parametrize(
        ("start", "op", "amount"),
        [
            (INT64_MAX, "incr", 1),
            (INT64_MIN, "decr", 1),
            (1, "incr", INT64_MAX),
            (-2, "decr", INT64_MAX),
        ],
        ids=["max+1", "min-1", "1+max", "-2-max"],
    )
    def test_incr_overflow_raises_and_changes_nothing(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        start: int,
        op: str,
        amount: int,
    ) -> None:
        k = key("n")
        backend.set(k, start)
        rule = f"{op}({start}, {amount}) leaves the signed 64-bit range: StoreValueError"
        with _raises(StoreValueError, rule, prefix=key.prefix):
            getattr(backend, op)(k, amount)
        expect_equal(
            raw.get(k),
            str(start).encode(),
            rule + ", and the value stays as it was",
            key=k,
            prefix=key.prefix,
        )

    def test_incr_reaches_int64_bounds_exactly(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        hi, lo = key("hi"), key("lo")
        backend.set(hi, INT64_MAX - 1)
        backend.set(lo, INT64_MIN + 1)
        assert backend.incr(hi) == INT64_MAX
        assert backend.decr(lo) == INT64_MIN
        assert backend.get(hi) == str(INT64_MAX).encode()
        assert backend.get(lo) == str(INT64_MIN).encode()

    def test_stored_value_outside_int64_is_not_an_integer(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k = key("n")
        backend.set(k, str(INT64_MAX + 1))
        with pytest.raises(StoreValueError):
            backend.incr(k, 0)
        assert backend.get(k) == str(INT64_MAX + 1).encode()


# --------------------------------------------------------------------------- hashes


class HashCommands:
    """hset / hget / hmget / hdel / hgetall / hkeys / hlen / hexists / hincrby."""

    def test_hset_single_field_returns_added_count(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        assert backend.hset(k, b"f", b"1") == 1
        assert backend.hset(k, b"f", b"2") == 0  # an update adds nothing
        assert backend.hget(k, b"f") == b"2"
        assert raw.hgetall(k) == {b"f": b"2"}
        assert raw.type(k) == b"hash"

    def test_hset_mapping_counts_only_new_fields(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        assert backend.hset(k, mapping={b"a": b"1", b"b": b"2"}) == 2
        assert backend.hset(k, mapping={b"b": b"20", b"c": b"3"}) == 1
        assert backend.hgetall(k) == {b"a": b"1", b"b": b"20", b"c": b"3"}
        assert raw.hgetall(k) == {b"a": b"1", b"b": b"20", b"c": b"3"}

    def test_hset_field_and_mapping_together(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("h")
        assert backend.hset(k, b"a", b"1", mapping={b"b": b"2", b"c": b"3"}) == 3
        assert backend.hgetall(k) == {b"a": b"1", b"b": b"2", b"c": b"3"}

    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"mapping": {}}, {"value": b"v"}],
        ids=["nothing", "empty-mapping", "value-only"],
    )
    def test_hset_with_nothing_to_set_raises_value_error(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, kwargs: dict[str, Any]
    ) -> None:
        missing, existing = key("missing"), key("existing")
        backend.hset(existing, b"f", b"v")
        with pytest.raises(ValueError):
            backend.hset(missing, **kwargs)
        with pytest.raises(ValueError):
            backend.hset(existing, **kwargs)
        assert raw.exists(missing) == 0
        assert raw.hgetall(existing) == {b"f": b"v"}

    def test_hget_missing_key_or_field_is_none(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k = key("h")
        assert backend.hget(k, b"f") is None
        backend.hset(k, b"f", b"v")
        assert backend.hget(k, b"other") is None
        assert backend.hget(k, b"f") == b"v"

    def test_hmget_keeps_the_order_asked_for(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("h")
        backend.hset(k, mapping={b"a": b"1", b"b": b"2", b"c": b"3"})
        assert backend.hmget(k, [b"c", b"nope", b"a", b"b", b"a"]) == [b"3", None, b"1", b"2", b"1"]

    def test_hmget_missing_key_gives_nones(self, backend: StorageBackend, key: KeyMaker) -> None:
        assert backend.hmget(key("h"), [b"a", b"b"]) == [None, None]

    def test_hdel_counts_fields_that_existed(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        backend.hset(k, mapping={b"a": b"1", b"b": b"2", b"c": b"3"})
        assert backend.hdel(k, b"a", b"nope") == 1
        assert backend.hdel(k, b"a") == 0
        assert raw.hgetall(k) == {b"b": b"2", b"c": b"3"}

    def test_hdel_last_field_deletes_the_key(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        backend.hset(k, mapping={b"a": b"1", b"b": b"2"})
        assert backend.hdel(k, b"a", b"b") == 2
        rule = "removing the last field of a hash deletes the key (empty containers do not exist)"
        expect_equal(backend.exists(k), 0, rule + ": exists() is 0", key=k, prefix=key.prefix)
        expect_equal(
            backend.type(k), b"none", rule + ": type() is b'none'", key=k, prefix=key.prefix
        )
        expect_equal(backend.hgetall(k), {}, rule, key=k, prefix=key.prefix)
        expect_equal(raw.type(k), b"none", rule + " in the medium too", key=k, prefix=key.prefix)

    def test_hdel_missing_key_is_zero(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("h")
        assert backend.hdel(k, b"a") == 0
        assert backend.exists(k) == 0

    def test_hgetall_hkeys_hlen_hexists(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("h")
        backend.hset(k, mapping={b"x": b"1", b"y": b"2", b"z": b"3"})
        assert backend.hgetall(k) == {b"x": b"1", b"y": b"2", b"z": b"3"}
        assert sorted(backend.hkeys(k)) == [b"x", b"y", b"z"]
        assert backend.hlen(k) == 3
        assert backend.hexists(k, b"y")
        assert not backend.hexists(k, b"w")

    def test_reads_of_a_missing_hash_are_empty(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k = key("h")
        assert backend.hgetall(k) == {}
        assert backend.hkeys(k) == []
        assert backend.hlen(k) == 0
        assert not backend.hexists(k, b"f")
        assert backend.exists(k) == 0  # reading never creates

    def test_hincrby_creates_key_and_field(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        assert backend.hincrby(k, b"n") == 1
        assert backend.hincrby(k, b"n", 5) == 6
        assert backend.hincrby(k, b"m", -3) == -3
        assert raw.hgetall(k) == {b"n": b"6", b"m": b"-3"}

    def test_hincrby_negative(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("h")
        backend.hset(k, b"n", b"10")
        assert backend.hincrby(k, b"n", -25) == -15
        assert backend.hget(k, b"n") == b"-15"

    def test_hincrby_reaching_zero_keeps_the_field(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        assert backend.hincrby(k, b"n", 2) == 2
        assert backend.hincrby(k, b"n", -2) == 0
        assert backend.hexists(k, b"n")
        assert backend.hget(k, b"n") == b"0"
        assert backend.hlen(k) == 1
        assert raw.hgetall(k) == {b"n": b"0"}

    @pytest.mark.parametrize(("stored", "why"), NOT_COUNTERS, ids=NOT_COUNTER_IDS)
    def test_hincrby_on_non_integer_raises_and_changes_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, stored: bytes, why: str
    ) -> None:
        k = key("h")
        backend.hset(k, mapping={b"n": stored, b"other": b"1"})
        with _raises(
            StoreValueError,
            f"hincrby() on a field holding {stored!r} raises StoreValueError: {why}",
            prefix=key.prefix,
        ):
            backend.hincrby(k, b"n", 1)
        expect_equal(
            raw.hgetall(k),
            {b"n": stored, b"other": b"1"},
            "a failed hincrby leaves the hash as it was",
            key=k,
            prefix=key.prefix,
        )

    def test_hincrby_overflow_raises_and_changes_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        backend.hset(k, mapping={b"hi": str(INT64_MAX), b"lo": str(INT64_MIN)})
        with pytest.raises(StoreValueError):
            backend.hincrby(k, b"hi", 1)
        with pytest.raises(StoreValueError):
            backend.hincrby(k, b"lo", -1)
        assert raw.hgetall(k) == {b"hi": str(INT64_MAX).encode(), b"lo": str(INT64_MIN).encode()}

    def test_binary_and_empty_fields_and_values(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("h")
        content = {
            b"": b"empty field",
            b"\xff\xfe\x00": ALL_BYTES,
            b"empty value": b"",
            b"\r\n": b"\x00",
        }
        assert backend.hset(k, mapping=content) == 4
        assert backend.hgetall(k) == content
        assert raw.hgetall(k) == content
        assert sorted(backend.hkeys(k)) == sorted(content)
        assert backend.hget(k, b"") == b"empty field"
        assert backend.hget(k, b"empty value") == b""
        assert backend.hexists(k, b"")
        assert backend.hdel(k, b"") == 1
        assert backend.hlen(k) == 3

    def test_many_fields(self, backend: StorageBackend, raw: RawAccess, key: KeyMaker) -> None:
        k = key("h")
        content = {f"field{i}".encode(): str(i * i).encode() for i in range(300)}
        assert backend.hset(k, mapping=content) == 300
        assert backend.hlen(k) == 300
        assert raw.hgetall(k) == content
        assert backend.hget(k, b"field299") == b"89401"


# --------------------------------------------------------------------------- lists


class ListCommands:
    """rpush / lpush / lpop / rpop / lrange / lindex / lset / llen / ltrim."""

    def test_rpush_appends_in_order_and_returns_length(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        assert backend.rpush(k, b"a") == 1
        assert backend.rpush(k, b"b", b"c") == 3
        assert backend.lrange(k, 0, -1) == [b"a", b"b", b"c"]
        assert raw.lrange(k, 0, -1) == [b"a", b"b", b"c"]
        assert raw.type(k) == b"list"

    def test_lpush_puts_each_value_at_the_front(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        backend.rpush(k, b"x")
        assert backend.lpush(k, b"a", b"b") == 3
        assert backend.lrange(k, 0, -1) == [b"b", b"a", b"x"]
        assert raw.lrange(k, 0, -1) == [b"b", b"a", b"x"]

    def test_lpush_creates_the_list(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("l")
        assert backend.lpush(k, b"1", b"2", b"3") == 3
        assert backend.lrange(k, 0, -1) == [b"3", b"2", b"1"]

    def test_pop_single_items(self, backend: StorageBackend, raw: RawAccess, key: KeyMaker) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.lpop(k) == b"a"
        assert backend.rpop(k) == b"e"
        assert raw.lrange(k, 0, -1) == [b"b", b"c", b"d"]

    def test_pop_missing_key_is_none(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("l")
        assert backend.lpop(k) is None
        assert backend.rpop(k) is None
        assert backend.lpop(k, 2) is None
        assert backend.rpop(k, 2) is None
        assert backend.exists(k) == 0

    def test_pop_with_count(self, backend: StorageBackend, raw: RawAccess, key: KeyMaker) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.lpop(k, 2) == [b"a", b"b"]
        assert backend.rpop(k, 2) == [b"e", b"d"]  # tail first
        assert raw.lrange(k, 0, -1) == [b"c"]

    def test_pop_count_of_one_is_a_list(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.lpop(k, 1) == [b"a"]
        assert backend.rpop(k, 1) == [b"e"]

    @pytest.mark.parametrize("side", ["lpop", "rpop"])
    def test_pop_count_beyond_length_takes_all_and_deletes_key(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, side: str
    ) -> None:
        k = key("l")
        backend.rpush(k, b"1", b"2", b"3")
        expected = [b"1", b"2", b"3"] if side == "lpop" else [b"3", b"2", b"1"]
        assert getattr(backend, side)(k, 10) == expected
        assert backend.exists(k) == 0
        assert raw.type(k) == b"none"

    @pytest.mark.parametrize("side", ["lpop", "rpop"])
    def test_popping_the_last_item_deletes_the_key(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, side: str
    ) -> None:
        k = key("l")
        backend.rpush(k, b"only")
        assert getattr(backend, side)(k) == b"only"
        rule = f"{side}() of the last item deletes the key (empty containers do not exist)"
        expect_equal(backend.exists(k), 0, rule + ": exists() is 0", key=k, prefix=key.prefix)
        expect_equal(
            backend.type(k), b"none", rule + ": type() is b'none'", key=k, prefix=key.prefix
        )
        expect_equal(backend.llen(k), 0, rule, key=k, prefix=key.prefix)
        expect_equal(raw.exists(k), 0, rule + " in the medium too", key=k, prefix=key.prefix)

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            (0, -1, FIVE),
            (0, 0, [b"a"]),
            (1, 3, [b"b", b"c", b"d"]),
            (-2, -1, [b"d", b"e"]),
            (-3, 3, [b"c", b"d"]),
            (0, 100, FIVE),
            (-100, 1, [b"a", b"b"]),
            (-100, -100, []),
            (4, 4, [b"e"]),
            (3, 1, []),
            (5, 10, []),
            (-1, -2, []),
            (2, -4, []),
        ],
    )
    def test_lrange_is_inclusive_and_clipped(
        self, backend: StorageBackend, key: KeyMaker, start: int, end: int, expected: list[bytes]
    ) -> None:
        k = key("l")
        _fill(backend, k)
        expect_equal(
            backend.lrange(k, start, end),
            expected,
            f"lrange(k, {start}, {end}) on [a b c d e]: both ends inclusive, negative indices "
            "count from the end, out-of-range bounds clipped, an inverted range is []",
            key=k,
            prefix=key.prefix,
        )

    def test_lrange_missing_key_is_empty(self, backend: StorageBackend, key: KeyMaker) -> None:
        assert backend.lrange(key("l"), 0, -1) == []

    @pytest.mark.parametrize(
        ("index", "expected"),
        [
            (0, b"a"),
            (2, b"c"),
            (4, b"e"),
            (-1, b"e"),
            (-5, b"a"),
            (5, None),
            (-6, None),
            (1000, None),
            (-1000, None),
        ],
    )
    def test_lindex(
        self, backend: StorageBackend, key: KeyMaker, index: int, expected: bytes | None
    ) -> None:
        k = key("l")
        _fill(backend, k)
        expect_equal(
            backend.lindex(k, index),
            expected,
            f"lindex(k, {index}) on [a b c d e]: negative from the end, None when out of range",
            key=k,
            prefix=key.prefix,
        )

    def test_lindex_missing_key_is_none(self, backend: StorageBackend, key: KeyMaker) -> None:
        assert backend.lindex(key("l"), 0) is None

    def test_lset_positive_and_negative(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.lset(k, 0, b"A") is True
        assert backend.lset(k, -1, b"E") is True
        assert backend.lset(k, -3, b"C") is True
        assert raw.lrange(k, 0, -1) == [b"A", b"b", b"C", b"d", b"E"]

    @pytest.mark.parametrize("index", [5, -6, 100, -100])
    def test_lset_out_of_range_raises_and_changes_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, index: int
    ) -> None:
        k = key("l")
        _fill(backend, k)
        rule = f"lset(k, {index}, ...) on a 5-item list raises StoreIndexError"
        with _raises(StoreIndexError, rule, prefix=key.prefix):
            backend.lset(k, index, b"x")
        with _raises(IndexError, rule + " (an IndexError)", prefix=key.prefix):
            backend.lset(k, index, b"x")
        expect_equal(
            raw.lrange(k, 0, -1), FIVE, rule + " and changes nothing", key=k, prefix=key.prefix
        )

    def test_lset_missing_key_raises_and_creates_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        with pytest.raises(StoreIndexError):
            backend.lset(k, 0, b"x")
        assert raw.exists(k) == 0

    def test_llen(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("l")
        assert backend.llen(k) == 0
        _fill(backend, k)
        assert backend.llen(k) == 5
        backend.lpop(k)
        assert backend.llen(k) == 4

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            (1, 3, [b"b", b"c", b"d"]),
            (0, -1, FIVE),
            (-2, -1, [b"d", b"e"]),
            (-100, 1, [b"a", b"b"]),
            (2, 100, [b"c", b"d", b"e"]),
            (1, -2, [b"b", b"c", b"d"]),
        ],
    )
    def test_ltrim_keeps_the_inclusive_range(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        start: int,
        end: int,
        expected: list[bytes],
    ) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.ltrim(k, start, end) is True
        assert backend.lrange(k, 0, -1) == expected
        assert raw.lrange(k, 0, -1) == expected
        assert backend.llen(k) == len(expected)

    @pytest.mark.parametrize(("start", "end"), [(3, 1), (5, 10), (-1, -2), (100, -1)])
    def test_ltrim_to_empty_deletes_the_key(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, start: int, end: int
    ) -> None:
        k = key("l")
        _fill(backend, k)
        assert backend.ltrim(k, start, end) is True
        assert backend.exists(k) == 0
        assert backend.llen(k) == 0
        assert raw.type(k) == b"none"

    def test_ltrim_missing_key(self, backend: StorageBackend, key: KeyMaker) -> None:
        k = key("l")
        assert backend.ltrim(k, 0, 1) is True
        assert backend.exists(k) == 0

    def test_binary_and_empty_items(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        items = [b"", ALL_BYTES, b"\x00", b"", b"\xff"]
        backend.rpush(k, *items)
        assert backend.lrange(k, 0, -1) == items
        assert raw.lrange(k, 0, -1) == items
        assert backend.lindex(k, 0) == b""
        assert backend.lpop(k) == b""
        assert backend.llen(k) == 4

    def test_long_list_pushed_at_both_ends_keeps_order(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        model: deque[bytes] = deque()
        for i in range(120):
            left = [f"L{i}.{j}".encode() for j in range(i % 3 + 1)]
            right = [f"R{i}.{j}".encode() for j in range(i % 2 + 1)]
            assert backend.lpush(k, *left) == len(model) + len(left)
            model.extendleft(left)
            assert backend.rpush(k, *right) == len(model) + len(right)
            model.extend(right)
        expected = list(model)
        assert backend.llen(k) == len(expected)
        assert backend.lrange(k, 0, -1) == expected
        assert raw.lrange(k, 0, -1) == expected
        n = len(expected)
        for start, end in [(0, 9), (n // 2 - 5, n // 2 + 5), (-10, -1), (n - 1, n + 5), (17, -17)]:
            lo = start if start >= 0 else n + start
            hi = end if end >= 0 else n + end
            assert backend.lrange(k, start, end) == expected[lo : hi + 1], (start, end)
        for index in [0, 1, n // 3, n // 2, n - 2, n - 1, -1, -n, -(n // 2)]:
            assert backend.lindex(k, index) == expected[index], index
        assert backend.lpop(k, 7) == [model.popleft() for _ in range(7)]
        assert backend.rpop(k, 5) == [model.pop() for _ in range(5)]
        assert backend.lset(k, len(model) // 2, b"middle") is True
        model[len(model) // 2] = b"middle"
        assert backend.ltrim(k, 3, -4) is True
        final = list(model)[3 : len(model) - 3]
        assert backend.lrange(k, 0, -1) == final
        assert raw.lrange(k, 0, -1) == final
        assert backend.llen(k) == len(final)


# --------------------------------------------------------------------------- keys


class KeyCommands:
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
_MAKERS: dict[str, Callable[[StorageBackend, str], object]] = {
    "string": lambda b, k: b.set(k, b"7"),
    "hash": lambda b, k: b.hset(k, mapping={b"f": b"7", b"g": b"8"}),
    "list": lambda b, k: b.rpush(k, b"7", b"8"),
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


class WrongTypeErrors:
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


class ValueEncoding:
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


# --------------------------------------------------------------------------- scans


class ScanCommands:
    """scan_iter with escaped literal prefixes."""

    def test_literal_prefix_finds_exactly_its_keys(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        ns = "ns*[x]?\\:"
        inside = [
            ns + "a",
            ns + "b*",
            ns + "c?d",
            ns + "[e]",
            ns + "f\\g",
            ns + "{h}:i",
            ns,
            ns + ns,
        ]
        # Each of these would match if the pattern's escapes were ignored or
        # if a sibling prefix counted as a match.
        outside = [
            "nsQQx!:a",
            "ns*[x]?\\",
            "ns*[x]?:a",
            "ns*x?\\:a",
            "ns*[x]!\\:a",
            "nS*[x]?\\:a",
            "ns",
            "xns*[x]?\\:a",
        ]
        for name in inside + outside:
            backend.set(key(name), b"1")
        found = _scan(backend, key.prefix + ns)
        expect_equal(
            sorted(found),
            sorted((key.prefix + n).encode() for n in inside),
            "scan_iter(match=<escaped literal prefix>*) finds exactly the keys starting with that "
            "prefix: \\*, \\?, \\[, \\] and \\\\ in the pattern are literal characters",
            prefix=key.prefix,
        )

    def test_sql_wildcards_in_a_prefix_are_literal(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        for name in ["50%off", "50Xoff", "50off", "a_b", "aXb", "ab"]:
            backend.set(key(name), b"1")
        assert _scan(backend, key.prefix + "50%") == [(key.prefix + "50%off").encode()]
        assert _scan(backend, key.prefix + "a_") == [(key.prefix + "a_b").encode()]

    def test_prefix_is_case_sensitive(self, backend: StorageBackend, key: KeyMaker) -> None:
        for name in ["Abc", "abc", "ABC"]:
            backend.set(key(name), b"1")
        assert _scan(backend, key.prefix + "a") == [(key.prefix + "abc").encode()]
        upper = sorted(_scan(backend, key.prefix + "A"))
        assert upper == sorted([(key.prefix + "Abc").encode(), (key.prefix + "ABC").encode()])

    def test_non_ascii_prefix(self, backend: StorageBackend, key: KeyMaker) -> None:
        for name in ["ключ:1", "ключ:2", "ключи:3", "клю"]:
            backend.set(key(name), b"1")
        found = sorted(_scan(backend, key.prefix + "ключ:"))
        assert found == sorted((key.prefix + n).encode() for n in ["ключ:1", "ключ:2"])

    def test_every_key_once_in_small_batches(self, backend: StorageBackend, key: KeyMaker) -> None:
        names = {key(f"k{i:04d}").encode() for i in range(300)}
        for name in names:
            backend.set(name, b"v")
        found = _scan(backend, key.prefix, count=7)
        assert len(found) == len(set(found)), "a key was reported twice"
        assert set(found) == names

    def test_all_types_are_found(self, backend: StorageBackend, key: KeyMaker) -> None:
        backend.set(key("s"), b"1")
        backend.hset(key("h"), b"f", b"v")
        backend.rpush(key("l"), b"x")
        assert sorted(_scan(backend, key.prefix)) == sorted(
            key(n).encode() for n in ["h", "l", "s"]
        )

    def test_deleted_and_emptied_keys_are_gone(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        backend.set(key("s"), b"1")
        backend.hset(key("h"), b"f", b"v")
        backend.rpush(key("l"), b"x")
        backend.set(key("kept"), b"1")
        backend.delete(key("s"))
        backend.hdel(key("h"), b"f")
        backend.lpop(key("l"))
        assert _scan(backend, key.prefix) == [key("kept").encode()]

    def test_empty_prefix_scan_finds_nothing_of_ours(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        backend.set(key("a"), b"1")
        assert _scan(backend, key.prefix + "zz") == []

    def test_scan_without_pattern_includes_our_keys(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        ours = {key("a").encode(), key("b*").encode()}
        for name in ours:
            backend.set(name, b"1")
        found = [k for k in backend.scan_iter() if bytes(k).startswith(key.prefix.encode())]
        assert sorted(found) == sorted(ours)


# --------------------------------------------------------------------------- pipelines

_WRITES: dict[str, Callable[[Any, str], object]] = {
    "set": lambda b, k: b.set(k, b"other"),
    "incr": lambda b, k: b.incr(k),
    "delete": lambda b, k: b.delete(k),
}
_HASH_WRITES: dict[str, Callable[[Any, str], object]] = {
    "hset-new-field": lambda b, k: b.hset(k, b"new", b"1"),
    "hset-update": lambda b, k: b.hset(k, b"f", b"changed"),
    "hdel": lambda b, k: b.hdel(k, b"f"),
    "hincrby": lambda b, k: b.hincrby(k, b"n", 1),
    "delete": lambda b, k: b.delete(k),
    "set-over": lambda b, k: b.set(k, b"x"),
}
_LIST_WRITES: dict[str, Callable[[Any, str], object]] = {
    "rpush": lambda b, k: b.rpush(k, b"z"),
    "lpush": lambda b, k: b.lpush(k, b"z"),
    "lpop": lambda b, k: b.lpop(k),
    "rpop": lambda b, k: b.rpop(k),
    "lset": lambda b, k: b.lset(k, 0, b"z"),
    "ltrim": lambda b, k: b.ltrim(k, 0, 0),
    "delete": lambda b, k: b.delete(k),
}
_MODIFICATIONS = [
    *(pytest.param("string", w, id=f"string-{n}") for n, w in _WRITES.items()),
    *(pytest.param("hash", w, id=f"hash-{n}") for n, w in _HASH_WRITES.items()),
    *(pytest.param("list", w, id=f"list-{n}") for n, w in _LIST_WRITES.items()),
]


def _watched_transaction(pipe: Pipeline, watched: str, target: str) -> None:
    """Watch ``watched``, read it in immediate mode, then queue a write to ``target``."""
    pipe.watch(watched)
    pipe.get(target)
    pipe.multi()
    pipe.set(target, b"written by the transaction")


class PipelineCommands:
    """pipeline(): buffered batches, watch/multi/execute, conflicts, reset and reuse."""

    def test_buffered_commands_return_the_pipeline_and_results_come_in_order(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst, missing = key("s"), key("h"), key("l"), key("missing")
        pipe = backend.pipeline()
        assert pipe.set(s, b"1") is pipe
        pipe.incr(s, 4)
        pipe.get(s)
        pipe.hset(h, mapping={b"a": b"1", b"b": b"2"})
        pipe.rpush(lst, b"x", b"y")
        pipe.lrange(lst, 0, -1)
        pipe.get(missing)
        pipe.exists(s, h, lst, missing)
        assert len(pipe) == 8
        results = pipe.execute()
        assert results == [True, 5, b"5", 2, 2, [b"x", b"y"], None, 3]
        assert raw.get(s) == b"5"
        assert raw.hgetall(h) == {b"a": b"1", b"b": b"2"}
        assert raw.lrange(lst, 0, -1) == [b"x", b"y"]

    @pytest.mark.parametrize("transaction", [True, False], ids=["transaction", "plain"])
    def test_nothing_is_applied_before_execute(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, transaction: bool
    ) -> None:
        k = key("s")
        pipe = backend.pipeline(transaction=transaction)
        pipe.set(k, b"1")
        pipe.rpush(key("l"), b"x")
        assert raw.exists(k, key("l")) == 0
        assert pipe.execute() == [True, 1]
        assert raw.get(k) == b"1"

    def test_execute_with_nothing_queued_returns_empty_list(self, backend: StorageBackend) -> None:
        assert backend.pipeline().execute() == []
        assert backend.pipeline(transaction=False).execute() == []

    def test_plain_pipeline_runs_commands_in_order(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        pipe = backend.pipeline(transaction=False)
        pipe.rpush(k, b"a")
        pipe.lpush(k, b"b")
        pipe.lrange(k, 0, -1)
        pipe.lpop(k)
        pipe.llen(k)
        assert pipe.execute() == [1, 2, [b"b", b"a"], b"b", 1]
        assert raw.lrange(k, 0, -1) == [b"a"]

    def test_immediate_mode_after_watch_returns_values(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst = key("s"), key("h"), key("l")
        backend.set(s, b"10")
        backend.hset(h, b"f", b"v")
        backend.rpush(lst, b"x", b"y")
        pipe = backend.pipeline()
        pipe.watch(s, h)
        assert pipe.get(s) == b"10"
        assert pipe.hgetall(h) == {b"f": b"v"}
        assert pipe.lrange(lst, 0, -1) == [b"x", b"y"]
        assert pipe.get(key("missing")) is None
        pipe.multi()
        assert pipe.set(s, b"11") is pipe
        assert pipe.hset(h, b"g", b"w") is pipe
        assert pipe.execute() == [True, 1]
        assert raw.get(s) == b"11"
        assert raw.hgetall(h) == {b"f": b"v", b"g": b"w"}

    def test_multi_then_execute_without_watch(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("n")
        pipe = backend.pipeline()
        pipe.multi()
        pipe.incr(k)
        pipe.incr(k)
        assert pipe.execute() == [1, 2]
        assert raw.get(k) == b"2"

    def test_watch_conflict_from_another_connection(
        self, backend: StorageBackend, second_backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        second_backend.set(watched, b"changed elsewhere")
        with _raises(
            WatchError,
            "a write by another connection to a watched key is a conflict",
            prefix=key.prefix,
        ):
            pipe.execute()
        expect_equal(
            raw.get(watched),
            b"changed elsewhere",
            "the other connection's write stays",
            key=watched,
            prefix=key.prefix,
        )
        expect_equal(
            raw.exists(target),
            0,
            "a transaction that raised WatchError applies nothing",
            key=target,
            prefix=key.prefix,
        )

    def test_watch_conflict_from_a_plain_write_on_the_same_backend(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.set(watched, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_watch_conflict_from_another_transaction(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        loser = backend.pipeline()
        _watched_transaction(loser, watched, target)
        winner = backend.pipeline()
        winner.watch(watched)
        assert winner.get(watched) == b"0"
        winner.multi()
        winner.set(watched, b"won")
        assert winner.execute() == [True]
        with pytest.raises(WatchError):
            loser.execute()
        assert raw.get(watched) == b"won"
        assert raw.exists(target) == 0

    @pytest.mark.parametrize(("kind", "write"), _MODIFICATIONS)
    def test_every_kind_of_write_is_a_conflict(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        kind: str,
        write: Callable[[Any, str], object],
    ) -> None:
        # Written through the backend itself (not a second connection) so that
        # single-connection backends run this too; a pipeline never shares a
        # connection with its backend's plain commands.
        watched, target = key("watched"), key("target")
        _MAKERS[kind](backend, watched)
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        write(backend, watched)
        with _raises(
            WatchError,
            f"any write to a watched {kind} key between watch() and execute() is a conflict",
            prefix=key.prefix,
        ):
            pipe.execute()
        expect_equal(
            raw.exists(target),
            0,
            "a transaction that raised WatchError applies nothing",
            key=target,
            prefix=key.prefix,
        )

    def test_write_through_a_plain_pipeline_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        other = backend.pipeline(transaction=False)
        other.incr(watched)
        other.execute()
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_deleting_a_watched_key_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.rpush(watched, b"x")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.delete(watched)
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_creating_a_watched_missing_key_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.hset(watched, b"f", b"v")
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_watched_key_missing_and_still_missing_is_no_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        assert pipe.execute() == [True]
        assert raw.get(target) == b"written by the transaction"

    def test_unchanged_watched_keys_commit(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b, unrelated, target = key("a"), key("b"), key("unrelated"), key("target")
        backend.set(a, b"1")
        backend.rpush(b, b"x")
        pipe = backend.pipeline()
        pipe.watch(a, b)
        assert pipe.get(a) == b"1"
        pipe.multi()
        pipe.set(target, b"done")
        pipe.incr(a)
        backend.set(unrelated, b"writes elsewhere never conflict")
        backend.get(a)  # reads never conflict
        assert pipe.execute() == [True, 2]
        assert raw.get(target) == b"done"
        assert raw.get(a) == b"2"

    def test_conflict_on_any_of_several_watched_keys(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b, c, target = key("a"), key("b"), key("c"), key("target")
        for name in (a, b, c):
            backend.set(name, b"0")
        pipe = backend.pipeline()
        pipe.watch(a)
        pipe.watch(b, c)  # watch() extends the watch set
        pipe.multi()
        pipe.set(target, b"x")
        backend.set(c, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_empty_execute_with_watch_validates(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k = key("watched")
        backend.set(k, b"0")
        pipe = backend.pipeline()
        pipe.watch(k)
        assert pipe.get(k) == b"0"
        assert pipe.execute() == []  # unchanged: passes as a read check
        pipe.watch(k)
        backend.set(k, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        pipe.watch(k)
        pipe.multi()
        backend.set(k, b"2")
        with pytest.raises(WatchError):
            pipe.execute()

    def test_pipeline_is_reusable_after_execute(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, a = key("watched"), key("a")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.multi()
        pipe.set(a, b"1")
        assert pipe.execute() == [True]
        assert len(pipe) == 0
        backend.set(watched, b"changed after the commit")  # no longer watched
        assert pipe.set(a, b"2") is pipe  # back in buffered mode
        pipe.incr(key("n"))
        assert pipe.execute() == [True, 1]
        assert raw.get(a) == b"2"

    def test_pipeline_is_reusable_after_watch_error(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.set(watched, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        assert len(pipe) == 0
        backend.set(watched, b"2")  # the failed watch must be gone
        assert pipe.set(target, b"second try") is pipe
        assert pipe.execute() == [True]
        assert raw.get(target) == b"second try"

    def test_retry_loop_after_watch_error_commits(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("n")
        backend.set(k, b"5")
        pipe = backend.pipeline()
        attempts = 0
        while True:
            attempts += 1
            pipe.watch(k)
            value = int(pipe.get(k))
            if attempts == 1:
                backend.incr(k, 100)  # interfere once
            pipe.multi()
            pipe.set(k, value * 2)
            try:
                pipe.execute()
                break
            except WatchError:
                assert attempts == 1
        assert attempts == 2
        assert raw.get(k) == b"210"

    def test_reset_drops_queue_and_watches(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, a, b = key("watched"), key("a"), key("b")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        pipe.set(a, b"queued then dropped")
        pipe.reset()
        assert len(pipe) == 0
        assert pipe.execute() == []
        assert raw.exists(a) == 0
        pipe.watch(watched)
        backend.set(watched, b"1")
        pipe.reset()
        pipe.multi()
        pipe.set(b, b"1")
        assert pipe.execute() == [True]
        assert raw.get(b) == b"1"

    def test_unwatch_forgets_watched_keys(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.unwatch()
        backend.set(watched, b"1")
        pipe.multi()
        pipe.set(target, b"x")
        assert pipe.execute() == [True]
        assert raw.get(target) == b"x"

    def test_context_manager_resets_on_exit(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b = key("a"), key("b")
        with backend.pipeline() as pipe:
            pipe.set(a, b"1")
            assert pipe.execute() == [True]
            pipe.set(b, b"never executed")
        assert raw.get(a) == b"1"
        assert raw.exists(b) == 0

    def test_failing_command_raises_its_error(self, backend: StorageBackend, key: KeyMaker) -> None:
        s = key("s")
        backend.set(s, b"text")
        pipe = backend.pipeline()
        pipe.set(key("before"), b"1")
        pipe.hset(s, b"f", b"v")
        pipe.set(key("after"), b"1")
        with pytest.raises(WrongTypeError):
            pipe.execute()
        assert len(pipe) == 0
        pipe.set(key("later"), b"1")  # still usable
        assert pipe.execute() == [True]

    @pytest.mark.etcher_requires("atomic_batches")
    @pytest.mark.parametrize("failing", ["wrong-type", "not-an-integer", "index-out-of-range"])
    def test_failing_command_applies_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, failing: str
    ) -> None:
        s, h, lst, created = key("s"), key("h"), key("l"), key("created")
        backend.set(s, b"text")
        backend.hset(h, b"f", b"1")
        backend.rpush(lst, b"x")
        before = [_snapshot(raw, name) for name in (s, h, lst, created)]
        pipe = backend.pipeline()
        pipe.set(s, b"overwritten")
        pipe.hset(h, b"g", b"2")
        pipe.rpush(lst, b"y")
        pipe.set(created, b"1")
        if failing == "wrong-type":
            pipe.lpush(h, b"z")
        elif failing == "not-an-integer":
            pipe.incr(key("s"))
        else:
            pipe.lset(lst, 10, b"z")
        pipe.delete(h)
        with pytest.raises((WrongTypeError, StoreValueError, StoreIndexError)):
            pipe.execute()
        expect_equal(
            [_snapshot(raw, name) for name in (s, h, lst, created)],
            before,
            "with atomic_batches, a transactional execute() whose command fails applies none of "
            "its commands (the ones before the failure are rolled back)",
            prefix=key.prefix,
        )


# --------------------------------------------------------------------------- persistence


class Persistence:
    """Data outlives the connection that wrote it."""

    @pytest.mark.etcher_requires("persistent")
    def test_data_survives_reopening(
        self, backend: StorageBackend, make_backend: BackendFactory | None, key: KeyMaker
    ) -> None:
        if make_backend is None:
            pytest.skip(
                "reopening needs a `make_backend` factory (override it to test persistence)"
            )
        s, h, lst = key("s"), key("h"), key("l")
        first = make_backend()
        first.set(s, ALL_BYTES)
        first.hset(h, mapping={b"f": b"v", b"": b""})
        first.rpush(lst, b"a", b"b")
        pipe = first.pipeline()
        pipe.incr(key("n"), 3)
        pipe.execute()
        first.close()
        second = make_backend()
        try:
            assert second.get(s) == ALL_BYTES
            assert second.hgetall(h) == {b"f": b"v", b"": b""}
            assert second.lrange(lst, 0, -1) == [b"a", b"b"]
            assert second.get(key("n")) == b"3"
        finally:
            second.close()


# --------------------------------------------------------------------------- threads


def _run_in_threads(fn: Callable[[int], None], threads: int = 4) -> None:
    """Run ``fn(i)`` for each thread index at once; re-raise the first failure."""
    start = threading.Barrier(threads)

    def worker(i: int) -> None:
        start.wait()
        fn(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker, i) for i in range(threads)]:
            future.result()


class UnitScopes:
    """``unit_scope()`` of backends declaring ``locking_units`` (see ``etcher.spec.UnitScopes``)."""

    @pytest.mark.etcher_requires("locking_units")
    def test_scope_commits_everything_on_exit(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h = key("s"), key("h")
        with backend.unit_scope(True) as held:  # type: ignore[attr-defined]
            assert held is True
            backend.set(s, b"1")
            pipe = backend.pipeline()
            pipe.multi()
            pipe.hset(h, b"f", b"v")
            pipe.incr(key("n"))
            assert pipe.execute() == [1, 1]
            # Reads inside the scope see its own writes, directly and through pipelines.
            assert backend.get(s) == b"1"
            assert backend.pipeline(transaction=False).hgetall(h).execute() == [{b"f": b"v"}]
        assert raw.get(s) == b"1"
        assert raw.hgetall(h) == {b"f": b"v"}
        assert raw.get(key("n")) == b"1"

    @pytest.mark.etcher_requires("locking_units")
    def test_scope_rolls_everything_back_on_error(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h = key("s"), key("h")
        backend.set(s, b"before")
        scope = backend.unit_scope(True)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="boom"), scope:
            backend.set(s, b"during")
            pipe = backend.pipeline()
            pipe.multi()
            pipe.hset(h, b"f", b"v")
            pipe.execute()
            raise RuntimeError("boom")
        assert raw.get(s) == b"before"
        assert raw.exists(h) == 0
        backend.set(s, b"after")  # the backend is usable again
        assert raw.get(s) == b"after"

    @pytest.mark.etcher_requires("locking_units")
    def test_a_scope_inside_a_scope_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s = key("s")
        outer = backend.unit_scope(True)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError), outer:
            backend.set(s, b"outer")
            with backend.unit_scope(False) as inner:  # type: ignore[attr-defined]
                assert inner is False
            # Leaving the refused scope must not have ended the outer one.
            raise RuntimeError("roll the outer scope back")
        assert raw.exists(s) == 0

    @pytest.mark.etcher_requires("locking_units")
    def test_read_scope_is_a_snapshot(
        self, backend: StorageBackend, second_backend: StorageBackend, key: KeyMaker
    ) -> None:
        s = key("s")
        backend.set(s, b"old")
        with backend.unit_scope(False) as held:  # type: ignore[attr-defined]
            assert held is True
            assert backend.get(s) == b"old"
            second_backend.set(s, b"new")
            assert backend.get(s) == b"old"
            assert backend.pipeline(transaction=False).get(s).execute() == [b"old"]
        assert backend.get(s) == b"new"

    @pytest.mark.etcher_requires("locking_units")
    def test_write_scope_keeps_other_writers_out(
        self, backend: StorageBackend, second_backend: StorageBackend, key: KeyMaker
    ) -> None:
        s, other = key("s"), key("other")
        backend.set(s, b"0")
        writer = threading.Thread(target=second_backend.set, args=(other, b"late"))
        with backend.unit_scope(True):  # type: ignore[attr-defined]
            value = backend.get(s)
            writer.start()
            # The other writer must wait for the scope: it is still blocked after a while.
            writer.join(0.3)
            assert writer.is_alive()
            assert backend.get(other) is None
            backend.set(s, value + b"1")
        writer.join(30)
        assert not writer.is_alive()
        assert second_backend.get(s) == b"01"
        assert second_backend.get(other) == b"late"


class ThreadSafety:
    """One backend shared by several threads, each with its own pipelines."""

    THREADS = 4
    ROUNDS = 40

    def test_plain_commands_from_threads_lose_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        counter, h, lst = key("counter"), key("h"), key("l")

        def work(i: int) -> None:
            for j in range(self.ROUNDS):
                backend.incr(counter)
                backend.hincrby(h, b"total", 2)
                backend.hset(h, f"t{i}".encode(), str(j))
                backend.rpush(lst, f"{i}:{j}")

        _run_in_threads(work, self.THREADS)
        total = self.THREADS * self.ROUNDS
        assert raw.get(counter) == str(total).encode()
        fields = raw.hgetall(h)
        assert fields[b"total"] == str(2 * total).encode()
        assert {fields[f"t{i}".encode()] for i in range(self.THREADS)} == {
            str(self.ROUNDS - 1).encode()
        }
        items = raw.lrange(lst, 0, -1)
        assert len(items) == total
        for i in range(self.THREADS):  # each thread's pushes keep their own order
            mine = [item for item in items if item.startswith(f"{i}:".encode())]
            assert mine == [f"{i}:{j}".encode() for j in range(self.ROUNDS)]

    def test_watch_retry_loops_from_threads_lose_no_update(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k, log = key("n"), key("log")

        def work(i: int) -> None:
            pipe = backend.pipeline()
            for _ in range(self.ROUNDS // 2):
                # Bounded, so a backend that reports conflicts forever fails instead of hanging.
                for _attempt in range(10_000):
                    pipe.watch(k)
                    current = int(pipe.get(k) or b"0")
                    pipe.multi()
                    pipe.set(k, current + 1)
                    pipe.rpush(log, current + 1)
                    try:
                        pipe.execute()
                        break
                    except WatchError:
                        continue
                else:
                    raise AssertionError(f"thread {i}: every attempt raised WatchError")

        _run_in_threads(work, self.THREADS)
        total = self.THREADS * (self.ROUNDS // 2)
        assert raw.get(k) == str(total).encode()
        # Every committed read-modify-write saw the previous one: 1..total, in order.
        assert raw.lrange(log, 0, -1) == [str(n).encode() for n in range(1, total + 1)]

    def test_readers_see_transactions_whole(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b = key("a"), key("b")
        backend.set(a, 0)
        backend.set(b, 0)
        torn: list[tuple[object, object]] = []
        done = threading.Event()

        def writer() -> None:
            try:
                pipe = backend.pipeline()
                for n in range(1, 101):
                    pipe.set(a, n)
                    pipe.set(b, n)
                    pipe.execute()
            finally:
                done.set()

        def reader() -> None:
            pipe = backend.pipeline()
            reads = 0
            while not done.is_set() or reads < 5:
                pipe.get(a)
                pipe.get(b)
                first, second = pipe.execute()
                if first != second:
                    torn.append((first, second))
                reads += 1

        def work(i: int) -> None:
            if i == 0:
                writer()
            else:
                reader()

        _run_in_threads(work, 3)
        assert torn == []
        assert raw.get(a) == raw.get(b) == b"100"


# --------------------------------------------------------------------------- failures

_INT64_MAX_TEXT = str(INT64_MAX).encode()


def _error_cases() -> list[Any]:
    """Every documented error: (setup, failing call, error class, what the Protocol says)."""
    cases: list[tuple[str, Callable[[Any, str], object], Callable[[Any, str], object], type, str]]
    cases = [
        (
            "incr-overflow",
            lambda b, k: b.set(k, INT64_MAX),
            lambda b, k: b.incr(k),
            StoreValueError,
            "incr() past the signed 64-bit range raises StoreValueError",
        ),
        (
            "decr-underflow",
            lambda b, k: b.set(k, INT64_MIN),
            lambda b, k: b.decr(k),
            StoreValueError,
            "decr() past the signed 64-bit range raises StoreValueError",
        ),
        (
            "incr-plus-sign",
            lambda b, k: b.set(k, b"+1"),
            lambda b, k: b.incr(k),
            StoreValueError,
            "incr() on '+1' raises StoreValueError (not canonical decimal)",
        ),
        (
            "incr-leading-zeros",
            lambda b, k: b.set(k, b"007"),
            lambda b, k: b.incr(k, 5),
            StoreValueError,
            "incr() on '007' raises StoreValueError (not canonical decimal)",
        ),
        (
            "hincrby-overflow",
            lambda b, k: b.hset(k, b"f", _INT64_MAX_TEXT),
            lambda b, k: b.hincrby(k, b"f", 1),
            StoreValueError,
            "hincrby() past the signed 64-bit range raises StoreValueError",
        ),
        (
            "hincrby-not-integer",
            lambda b, k: b.hset(k, b"f", b"1.5"),
            lambda b, k: b.hincrby(k, b"f", 1),
            StoreValueError,
            "hincrby() on a non-integer field raises StoreValueError",
        ),
        (
            "lset-out-of-range",
            lambda b, k: b.rpush(k, b"a", b"b"),
            lambda b, k: b.lset(k, 2, b"x"),
            StoreIndexError,
            "lset() beyond the end raises StoreIndexError",
        ),
        (
            "lset-missing-key",
            lambda b, k: None,
            lambda b, k: b.lset(k, 0, b"x"),
            StoreIndexError,
            "lset() on a missing key raises StoreIndexError and creates nothing",
        ),
        (
            "hset-on-string",
            lambda b, k: b.set(k, b"text"),
            lambda b, k: b.hset(k, b"f", b"v"),
            WrongTypeError,
            "hset() on a string key raises WrongTypeError",
        ),
        (
            "rpush-on-hash",
            lambda b, k: b.hset(k, b"f", b"v"),
            lambda b, k: b.rpush(k, b"x"),
            WrongTypeError,
            "rpush() on a hash key raises WrongTypeError",
        ),
        (
            "incr-on-list",
            lambda b, k: b.rpush(k, b"1"),
            lambda b, k: b.incr(k),
            WrongTypeError,
            "incr() on a list key raises WrongTypeError",
        ),
        (
            "lpop-on-string",
            lambda b, k: b.set(k, b"text"),
            lambda b, k: b.lpop(k),
            WrongTypeError,
            "lpop() on a string key raises WrongTypeError",
        ),
    ]
    return [pytest.param(*rest, id=name) for name, *rest in cases]


_ERROR_CASES = _error_cases()


class ErrorsChangeNothing:
    """A command that fails changes nothing, however it was sent.

    Direct calls, non-transactional pipelines (with ``raise_on_error`` true and
    false), transactional batches and unit scopes: in each, the key the failing
    command names must be exactly as it was. (Whether the *other* commands of a
    batch apply is :attr:`Capabilities.atomic_batches`; see ``PipelineCommands``.)
    """

    def _check_unchanged(
        self, raw: RawAccess, k: str, before: object, rule: str, how: str, prefix: str
    ) -> None:
        expect_equal(
            _snapshot(raw, k),
            before,
            f"a failing command changes nothing ({how}): {rule}; the key's (type, content) "
            "must be what it was before the call",
            key=k,
            prefix=prefix,
        )

    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_direct_call(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
    ) -> None:
        k = key("k")
        setup(backend, k)
        before = _snapshot(raw, k)
        with _raises(error, rule, prefix=key.prefix):
            fail(backend, k)
        self._check_unchanged(raw, k, before, rule, "direct call", key.prefix)

    @pytest.mark.parametrize("raise_on_error", [True, False], ids=["raise", "no-raise"])
    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_plain_pipeline(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
        raise_on_error: bool,
    ) -> None:
        k, other = key("k"), key("other")
        setup(backend, k)
        before = _snapshot(raw, k)
        pipe = backend.pipeline(transaction=False)
        pipe.set(other, b"1")
        fail(pipe, k)
        how = f"pipeline(transaction=False).execute(raise_on_error={raise_on_error})"
        if raise_on_error:
            with _raises(
                error, f"{how} raises the failed command's error: {rule}", prefix=key.prefix
            ):
                pipe.execute()
        else:
            try:
                results = pipe.execute(raise_on_error=False)
            except error:
                pass  # a backend whose batches are all-or-nothing may raise anyway
            else:
                expect(
                    len(results) == 2 and isinstance(results[1], error),
                    f"{how} returns the failed command's error object in its slot: {rule}",
                    prefix=key.prefix,
                    details=[("got", results)],
                )
        self._check_unchanged(raw, k, before, rule, how, key.prefix)

    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_transactional_batch(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
    ) -> None:
        k, other = key("k"), key("other")
        setup(backend, k)
        before = _snapshot(raw, k)
        pipe = backend.pipeline()
        pipe.watch(other)
        pipe.multi()
        pipe.set(other, b"1")
        fail(pipe, k)
        with _raises(
            error,
            f"a transactional execute() raises the failed command's error: {rule}",
            prefix=key.prefix,
        ):
            pipe.execute()
        self._check_unchanged(raw, k, before, rule, "transactional batch", key.prefix)

    @pytest.mark.etcher_requires("locking_units")
    @pytest.mark.parametrize(("setup", "fail", "error", "rule"), _ERROR_CASES)
    def test_inside_a_unit_scope(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        setup: Any,
        fail: Any,
        error: type[Exception],
        rule: str,
    ) -> None:
        k, other = key("k"), key("other")
        setup(backend, k)
        before = _snapshot(raw, k)
        with backend.unit_scope(True) as held:  # type: ignore[attr-defined]
            expect(held, "unit_scope(True) is held when no other scope is open on the thread")
            backend.set(other, b"1")
            with _raises(
                error, f"inside a unit scope, a direct call still raises: {rule}", prefix=key.prefix
            ):
                fail(backend, k)
        self._check_unchanged(raw, k, before, rule, "inside a unit scope", key.prefix)
        expect_equal(
            raw.get(other),
            b"1",
            "a command that failed inside a unit scope does not undo the scope's other writes "
            "(the scope still commits when it is left without an exception)",
            key=other,
            prefix=key.prefix,
        )


# --------------------------------------------------------------------------- watch rules

INTERLEAVE_HOOK = "etcher_after_watch_check"
"""Optional pipeline attribute a backend may offer so the kit can test its commit path.

When the kit sets it to a zero-argument callable, ``execute()`` calls it once, *after* it
has checked the watched keys and *before* it applies anything, still inside whatever makes
the check and the apply one atomic step (a lock, a write transaction). Absent: the test
that uses it is skipped, saying so.
"""

_WAIT_FOR_OTHER_WRITER = 1.0
"""How long the interfering write is given to finish (seconds) before the batch goes on.

Not a timing assertion: a correct backend gives the right result whether the write
finished (it must then be a conflict) or was still blocked (it then applies after).
"""


class _OtherWriter:
    """Makes another client increment ``name``, once, from a thread, and waits for it a while."""

    def __init__(self, other: StorageBackend, name: str) -> None:
        self.other, self.name = other, name
        self.fired = False
        self.thread: threading.Thread | None = None
        self.done = threading.Event()
        self.errors: list[BaseException] = []

    def _write(self) -> None:
        try:
            self.other.incr(self.name)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.done.set()

    def __call__(self) -> None:
        if self.fired:
            return
        self.fired = True
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()
        # Either the write lands now (then execute() must report a conflict) or the
        # backend holds it off until the batch is committed (then it applies after).
        self.done.wait(_WAIT_FOR_OTHER_WRITER)

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join(60)
            expect(not self.thread.is_alive(), "a write blocked by a commit proceeds after it")
        if self.errors:
            raise AssertionError(f"the other client's incr() failed: {self.errors[0]!r}")


class _Tripwire(str):
    """Text whose ``encode()`` first calls ``hook``: a backend encoding it runs the hook."""

    hook: Callable[[], None] = staticmethod(lambda: None)

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        type(self).hook()
        return str(self).encode(encoding, errors)


class WatchRules:
    """Watch/commit rules that simple tests miss: recreated keys and the check-then-apply race."""

    @pytest.mark.parametrize("kind", sorted(_MAKERS))
    def test_key_deleted_and_recreated_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, kind: str
    ) -> None:
        # A version counter stored *in* the key's record restarts when the key is
        # recreated, so "same version as when watched" would wrongly mean "unchanged".
        watched, target = key("watched"), key("target")
        _MAKERS[kind](backend, watched)  # one write: the lowest version a key can have
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.multi()
        pipe.set(target, b"written by the transaction")
        backend.delete(watched)
        _MAKERS[kind](backend, watched)  # recreated, with the very same content
        with _raises(
            WatchError,
            "a watched key that was deleted and created again is a conflict, even with the "
            "same content (versions must never restart when a key is recreated)",
            prefix=key.prefix,
        ):
            pipe.execute()
        expect_equal(
            raw.exists(target),
            0,
            "a transaction that raised WatchError applies nothing",
            key=target,
            prefix=key.prefix,
        )

    def test_key_recreated_by_another_client_is_a_conflict(
        self,
        backend: StorageBackend,
        second_backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"1")
        pipe = backend.pipeline()
        pipe.watch(watched)
        assert_value = pipe.get(watched)
        expect_equal(
            assert_value,
            b"1",
            "reads after watch() run at once and return values",
            key=watched,
            prefix=key.prefix,
        )
        pipe.multi()
        pipe.set(target, b"x")
        second_backend.delete(watched)
        second_backend.set(watched, b"1")
        _expect_conflict(
            pipe,
            raw,
            target,
            "a watched key deleted and recreated by another client is a conflict",
            prefix=key.prefix,
        )

    def test_missing_key_created_by_another_client_then_deleted_and_recreated(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.multi()
        pipe.set(target, b"x")
        backend.set(watched, b"1")
        backend.delete(watched)
        backend.set(watched, b"1")
        _expect_conflict(
            pipe,
            raw,
            target,
            "a watched key that was missing and now exists is a conflict",
            prefix=key.prefix,
        )

    def _race(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        arm: Callable[[Any, _OtherWriter], Any],
    ) -> None:
        """Read-modify-write of a counter while another client increments it mid-commit."""
        counter, target = key("counter"), key("target")
        backend.set(counter, b"5")
        pipe = backend.pipeline()
        pipe.watch(counter)
        seen = int(pipe.get(counter))
        pipe.multi()
        value = arm(pipe, self.writer)
        pipe.set(counter, value if value is not None else str(seen + 1))
        pipe.set(target, b"committed")
        try:
            pipe.execute()
            committed = True
        except WatchError:
            committed = False
        self.writer.finish()
        expect(self.writer.fired, "(kit) the interfering write was never triggered")
        final = raw.get(counter)
        if committed:
            expect_equal(
                final,
                b"7",
                "watched keys are checked and the batch applied as ONE atomic step: another "
                "client's write that lands after the check must either make execute() raise "
                "WatchError or wait until the batch is committed. Here execute() committed "
                "and the other client's increment was lost (5 -> its 6 -> overwritten by our 6)",
                key=counter,
                prefix=key.prefix,
            )
        else:
            expect_equal(
                final,
                b"6",
                "after WatchError only the other client's write is there",
                key=counter,
                prefix=key.prefix,
            )
            expect_equal(
                raw.exists(target),
                0,
                "a transaction that raised WatchError applies nothing",
                key=target,
                prefix=key.prefix,
            )

    def test_write_landing_while_a_batch_commits_is_never_lost(
        self,
        backend: StorageBackend,
        second_backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
    ) -> None:
        # No backend cooperation: the queued value is text whose encode() makes another
        # client write the watched key. A backend that encodes while committing gets that
        # write in the middle of its commit; one that encodes earlier gets it before.
        self.writer = _OtherWriter(second_backend, key("counter"))

        def arm(pipe: Any, writer: _OtherWriter) -> str:
            hook = {"hook": staticmethod(writer)}
            tripwire: type[_Tripwire] = type("Tripwire", (_Tripwire,), hook)
            return tripwire("6")

        self._race(backend, raw, key, arm)

    def test_write_between_watch_check_and_apply_is_never_lost(
        self,
        backend: StorageBackend,
        second_backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
    ) -> None:
        probe = backend.pipeline()
        if not hasattr(probe, INTERLEAVE_HOOK):
            pytest.skip(
                f"{type(probe).__name__} has no `{INTERLEAVE_HOOK}` attribute: the kit cannot "
                "interleave a write between its watch check and its apply (optional; see "
                "docs/conformance-kit.md)"
            )
        self.writer = _OtherWriter(second_backend, key("counter"))

        def arm(pipe: Any, writer: _OtherWriter) -> None:
            setattr(pipe, INTERLEAVE_HOOK, writer)

        self._race(backend, raw, key, arm)

    def test_raise_on_error_false_returns_the_error_in_its_slot(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, a, b = key("s"), key("a"), key("b")
        backend.set(s, b"text")
        pipe = backend.pipeline(transaction=False)
        pipe.set(a, b"1")
        pipe.hset(s, b"f", b"v")
        pipe.set(b, b"2")
        try:
            results = pipe.execute(raise_on_error=False)
        except WrongTypeError:
            # All-or-nothing batches may raise regardless; then nothing may be applied.
            expect_equal(
                raw.exists(a, b), 0, "a batch that raised applied nothing", prefix=key.prefix
            )
        else:
            expect(
                len(results) == 3
                and results[0] is True
                and isinstance(results[1], WrongTypeError)
                and results[2] is True,
                "execute(raise_on_error=False) returns one result per command, the failed "
                "command's slot holding its error object (WrongTypeError here), as redis-py does",
                prefix=key.prefix,
                details=[("got", results)],
            )
            expect_equal(
                (raw.get(a), raw.get(b)),
                (b"1", b"2"),
                "the commands around the failed one ran",
                prefix=key.prefix,
            )
        expect_equal(
            raw.get(s), b"text", "the failed command changed nothing", key=s, prefix=key.prefix
        )
        pipe.set(a, b"again")
        expect_equal(
            pipe.execute(), [True], "the pipeline is usable after execute()", prefix=key.prefix
        )

    def test_watch_after_multi_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, target = key("a"), key("target")
        pipe = backend.pipeline()
        pipe.multi()
        pipe.set(target, b"1")
        with _raises(
            EtcherError,
            "watch() after multi() raises an etcher error (redis-py: "
            "'Cannot issue a WATCH after a MULTI')",
            prefix=key.prefix,
        ):
            pipe.watch(a)
        pipe.reset()
        expect_equal(
            raw.exists(target), 0, "a reset pipeline applies nothing", key=target, prefix=key.prefix
        )

    def test_multi_twice_is_refused(self, backend: StorageBackend, key: KeyMaker) -> None:
        pipe = backend.pipeline()
        pipe.multi()
        with _raises(
            EtcherError,
            "a second multi() raises an etcher error (redis-py: "
            "'Cannot issue nested calls to MULTI')",
            prefix=key.prefix,
        ):
            pipe.multi()
        pipe.reset()

    def test_multi_after_queued_commands_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        target = key("target")
        pipe = backend.pipeline()
        pipe.set(target, b"1")
        with _raises(
            EtcherError,
            "multi() after commands were queued raises an etcher error "
            "(redis-py: 'Commands without an initial WATCH have already been issued')",
            prefix=key.prefix,
        ):
            pipe.multi()
        pipe.reset()
        expect_equal(
            raw.exists(target), 0, "a reset pipeline applies nothing", key=target, prefix=key.prefix
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


class KeyText:
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


# --------------------------------------------------------------------------- opening by path


def _open_file_store(from_path: Callable[..., StorageBackend], path: Path) -> StorageBackend:
    """``from_path(path)``; a ``ValueError`` means the backend opens no files: skip."""
    try:
        return from_path(path)
    except ValueError as exc:
        pytest.skip(f"from_path() refuses a plain file path, so it opens no files: {exc}")


class PathOpening:
    """``from_path`` of file-based backends: ``str`` and ``pathlib.Path``, and a missing folder.

    Uses the ``from_path`` classmethod of the backend under test's class; backends
    without one (servers, in-memory stores) skip these tests with that reason.
    """

    @pytest.fixture
    def from_path(self, backend: StorageBackend) -> Callable[..., StorageBackend]:
        opener = getattr(type(backend), "from_path", None)
        if not callable(opener):
            pytest.skip(f"{type(backend).__name__} has no from_path (it does not open files)")
        return opener  # type: ignore[no-any-return]

    def test_from_path_takes_str_and_path_alike(
        self, from_path: Callable[..., StorageBackend], tmp_path: Path
    ) -> None:
        target = tmp_path / "kit-store"
        first = _open_file_store(from_path, target)
        try:
            first.set("k", b"v")
            second = from_path(str(target))
            try:
                expect_equal(
                    second.get("k"),
                    b"v",
                    "from_path() accepts a pathlib.Path and a str naming the same file "
                    "(the registry passes str, authors and the kit pass Path)",
                )
            finally:
                second.close()
        finally:
            first.close()

    def test_missing_folder_is_a_clear_error(
        self, from_path: Callable[..., StorageBackend], tmp_path: Path
    ) -> None:
        _open_file_store(from_path, tmp_path / "kit-store").close()
        folder = tmp_path / "no-such-folder"
        with _raises(
            (EtcherError, OSError),
            "from_path() in a folder that does not exist raises an error naming it "
            "(BackendUnavailable in the built-in backends)",
            prefix="",
        ):
            opened = from_path(str(folder / "store"))
            opened.close()
        expect(not folder.exists(), "opening never creates a missing folder behind the user's back")


# --------------------------------------------------------------------------- everything


class StorageConformance(
    StringCommands,
    HashCommands,
    ListCommands,
    KeyCommands,
    WrongTypeErrors,
    ValueEncoding,
    ScanCommands,
    PipelineCommands,
    Persistence,
    ThreadSafety,
    UnitScopes,
    ErrorsChangeNothing,
    WatchRules,
    KeyText,
    PathOpening,
):
    """The whole storage-Protocol suite. Combine it with a fixture provider::

    class TestMyKV(StorageConformance, MyKVFixtures):
        pass
    """


__all__ = [
    "INTERLEAVE_HOOK",
    "ErrorsChangeNothing",
    "HashCommands",
    "KeyCommands",
    "KeyText",
    "ListCommands",
    "PathOpening",
    "Persistence",
    "PipelineCommands",
    "ScanCommands",
    "StorageConformance",
    "StringCommands",
    "ThreadSafety",
    "UnitScopes",
    "ValueEncoding",
    "WatchRules",
    "WrongTypeErrors",
]
