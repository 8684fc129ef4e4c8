"""Storage conformance, SCAN by prefix (:class:`ScanConformance`)."""

from __future__ import annotations

from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker
from etcher.testing.storage._common import (
    _scan,
)
from etcher.testing.wording import expect_equal

# --------------------------------------------------------------------------- scans


class ScanConformance:
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
