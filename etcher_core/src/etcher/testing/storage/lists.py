"""Storage conformance, lists: RPUSH/LRANGE/LSET and friends (:class:`ListCommandConformance`)."""

from __future__ import annotations

from collections import deque

import pytest

from etcher.errors import StoreIndexError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    ALL_BYTES,
    FIVE,
    _fill,
    _raises,
)
from etcher.testing.wording import expect_equal

# --------------------------------------------------------------------------- lists


class ListCommandConformance:
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
