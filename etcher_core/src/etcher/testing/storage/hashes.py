"""Storage conformance, hashes: HSET/HGET/HINCRBY and friends (:class:`HashConformance`)."""

from __future__ import annotations

from typing import Any

import pytest

from etcher.errors import StoreValueError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    ALL_BYTES,
    INT64_MAX,
    INT64_MIN,
    NOT_COUNTER_IDS,
    NOT_COUNTERS,
    _raises,
)
from etcher.testing.wording import expect_equal

# --------------------------------------------------------------------------- hashes


class HashConformance:
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
