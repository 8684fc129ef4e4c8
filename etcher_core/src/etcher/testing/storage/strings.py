"""Storage conformance, strings: GET/SET/INCR and friends (:class:`StringConformance`)."""

from __future__ import annotations

import pytest

from etcher.errors import StoreValueError, WrongTypeError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    ALL_BYTES,
    INT64_MAX,
    INT64_MIN,
    NOT_COUNTER_IDS,
    NOT_COUNTERS,
    _fill,
    _raises,
)
from etcher.testing.wording import expect_equal

# --------------------------------------------------------------------------- strings


class StringConformance:
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
