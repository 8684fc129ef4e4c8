"""Storage conformance, whole-hash writes: ``hreplace()`` (:class:`WholeHashConformance`).

For backends declaring ``capabilities.whole_hash_writes`` (see
:class:`etcher.spec.WholeHashWrites`); every test is skipped with a reason on
other backends. Core sends ``hreplace`` for a small hash it read whole and
edited (a node header gaining or losing a back-reference), so a backend that
merged it wrongly with what it stored would corrupt back-references: each test
reads the result back through ``raw``, never through the backend's own cache.
Big hashes are included because a store may keep them in another shape (SQLite
spills a hash past 128 fields to one row per field): replacing one by a small
hash, and a small one by a big one, must leave exactly the new fields.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from etcher.errors import WrongTypeError
from etcher.spec import StorageBackend, WholeHashWrites
from etcher.testing.fixtures import KeyMaker, RawAccess

requires = pytest.mark.etcher_requires("whole_hash_writes")

BIG = 300
"""Fields of the big hashes below: more than any packed form a backend is likely to keep."""


def _whole(backend: StorageBackend) -> WholeHashWrites:
    return cast(WholeHashWrites, backend)


def _big(tag: bytes, n: int = BIG) -> dict[bytes, bytes]:
    return {b"%s%d" % (tag, i): b"v%d" % i for i in range(n)}


class WholeHashConformance:
    """``hreplace()`` directly, on pipelines and through ``commit_writes()``."""

    @requires
    def test_hreplace_leaves_exactly_the_new_fields(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h = key("h")
        backend.hset(h, mapping={b"gone": b"1", b"kept": b"2", b"also-gone": b"3"})
        assert _whole(backend).hreplace(h, {b"kept": b"20", b"new": b"4"}) is True
        assert raw.hgetall(h) == {b"kept": b"20", b"new": b"4"}
        assert backend.hlen(h) == 2
        assert backend.hget(h, b"gone") is None
        # Field commands go on from the replaced content.
        assert backend.hset(h, b"more", b"5") == 1
        assert backend.hdel(h, b"new") == 1
        assert raw.hgetall(h) == {b"kept": b"20", b"more": b"5"}

    @requires
    def test_hreplace_creates_a_missing_hash(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h = key("h")
        assert _whole(backend).hreplace(h, {b"a": b"1"}) is True
        assert raw.type(h) == b"hash"
        assert raw.hgetall(h) == {b"a": b"1"}

    @requires
    def test_hreplace_with_nothing_deletes_the_key(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h, missing = key("h"), key("missing")
        backend.hset(h, mapping={b"a": b"1", b"b": b"2"})
        _whole(backend).hreplace(h, {})
        _whole(backend).hreplace(missing, {})
        assert raw.exists(h, missing) == 0
        assert raw.type(h) == b"none"
        assert backend.hlen(h) == 0

    @requires
    @pytest.mark.parametrize(("before", "after"), [(BIG, 3), (3, BIG), (BIG, BIG + 7)])
    def test_hreplace_between_small_and_big_hashes(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, before: int, after: int
    ) -> None:
        h = key("h")
        backend.hset(h, mapping=_big(b"old", before))
        new = _big(b"new", after)
        _whole(backend).hreplace(h, new)
        assert raw.hgetall(h) == new
        assert backend.hlen(h) == after
        assert backend.hget(h, b"old0") is None
        assert backend.hdel(h, b"new0", b"old1") == 1
        assert backend.hlen(h) == after - 1

    @requires
    def test_hreplace_normalizes_like_hset(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h = key("h")
        _whole(backend).hreplace(h, {"text": 7, b"raw": "é"})
        assert raw.hgetall(h) == {b"text": b"7", b"raw": "é".encode()}

    @requires
    @pytest.mark.parametrize("other", ["list", "string"])
    def test_hreplace_of_another_type_changes_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, other: str
    ) -> None:
        k = key("k")
        if other == "list":
            backend.rpush(k, b"x", b"y")
        else:
            backend.set(k, b"v")
        with pytest.raises(WrongTypeError):
            _whole(backend).hreplace(k, {b"a": b"1"})
        with pytest.raises(WrongTypeError):
            _whole(backend).hreplace(k, {})
        if other == "list":
            assert raw.lrange(k, 0, -1) == [b"x", b"y"]
        else:
            assert raw.get(k) == b"v"

    @requires
    def test_hreplace_queued_on_a_transactional_pipeline(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h, s = key("h"), key("s")
        backend.hset(h, mapping=_big(b"f"))
        pipe = backend.pipeline(transaction=True)
        pipe.multi()
        pipe.hget(h, b"f0")
        cast(Any, pipe).hreplace(h, {b"only": b"1"})
        pipe.hgetall(h)
        pipe.set(s, b"v")
        assert pipe.execute() == [b"v0", True, {b"only": b"1"}, True]
        assert raw.hgetall(h) == {b"only": b"1"}
        assert raw.get(s) == b"v"

    @requires
    @pytest.mark.etcher_requires("locking_units")
    @pytest.mark.parametrize("size", [3, BIG])
    def test_hreplace_through_commit_writes_after_reads_in_the_scope(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, size: int
    ) -> None:
        """What core does: read several hashes whole in a write scope, commit them replaced."""
        hs = [key(f"h{i}") for i in range(6)]
        for h in hs:
            backend.hset(h, mapping=_big(b"f", size))
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_writes"):
            pytest.skip("this backend's scopes do not offer commit_writes()")
        assert held.__enter__() is True
        pipe = backend.pipeline(transaction=False)
        for h in hs:
            pipe.hgetall(h)
        read = pipe.execute()
        assert read == [_big(b"f", size)] * len(hs)
        held.commit_writes(
            [
                ("hreplace", (hs[0], {b"f0": b"changed"})),
                ("hreplace", (hs[1], {})),
                ("hreplace", (hs[2], {**_big(b"f", size), b"extra": b"1"})),
                ("hreplace", (hs[3], {"text": 7})),  # normalized as the command does it
                ("hset", (hs[4], {b"f0": b"set"})),
            ]
        )
        held.__exit__(None, None, None)
        assert raw.hgetall(hs[0]) == {b"f0": b"changed"}
        assert raw.exists(hs[1]) == 0
        assert raw.hgetall(hs[2]) == {**_big(b"f", size), b"extra": b"1"}
        assert raw.hgetall(hs[3]) == {b"text": b"7"}
        assert raw.hgetall(hs[4]) == {**_big(b"f", size), b"f0": b"set"}
        assert raw.hgetall(hs[5]) == _big(b"f", size)
        assert backend.hlen(hs[0]) == 1

    @requires
    @pytest.mark.etcher_requires("locking_units")
    def test_hreplace_refused_in_commit_writes_leaves_the_store_untouched(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h, lst = key("h"), key("l")
        backend.hset(h, mapping={b"a": b"1"})
        backend.rpush(lst, b"x")
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_writes"):
            pytest.skip("this backend's scopes do not offer commit_writes()")
        with pytest.raises(WrongTypeError), held:
            held.commit_writes([("hreplace", (h, {b"b": b"2"})), ("hreplace", (lst, {b"c": b"3"}))])
        assert raw.hgetall(h) == {b"a": b"1"}
        assert raw.lrange(lst, 0, -1) == [b"x"]
