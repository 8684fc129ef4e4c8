"""Checked commits on Redis: the kit's families, NOSCRIPT reloads and who may claim them."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from etcher import DB
from etcher.errors import WrongTypeError
from etcher.spec import UnlinkOutcome
from etcher.testing import BackendFactory, BackendFixtures
from etcher.testing._harness.instrument import CountingBackend
from etcher.testing.scripting import (
    UNLINK_SHAPES,
    CheckedCommitConcurrency,
    CheckedCommitConformance,
)
from etcher_redis import scripting
from etcher_redis.backend import RedisBackend

pytestmark = pytest.mark.redis


class RedisFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(self, redis_server_url: str) -> BackendFactory:
        return functools.partial(RedisBackend.from_url, redis_server_url)


class TestRedisCheckedCommits(CheckedCommitConformance, RedisFixtures):
    pass


class TestRedisCheckedCommitConcurrency(CheckedCommitConcurrency):
    pins_unlink_round_trips = True  # the round trips per shape are ours to keep

    @pytest.fixture
    def store_url(self, redis_server_url: str) -> str:
        return redis_server_url


class _RefusingRedisBackend(RedisBackend):
    """Declares ``unlink_commits`` but refuses every such commit, writing nothing: what the
    contract always allows (core then reads first)."""

    def unlinking_commit(self, checks: Any, writes: Any, plan: Any) -> UnlinkOutcome:
        return UnlinkOutcome("refused", [])


# Shapes etcher's script takes in one round trip: a refusing backend differs on each.
_TAKEN = [shape for shape, trips in UNLINK_SHAPES.items() if trips][:4]


@pytest.mark.parametrize("shape", _TAKEN)
def test_a_backend_refusing_every_unlinking_commit_passes_the_kit(
    redis_server_url: str, shape: str
) -> None:
    """The kit compares what each shape leaves; the round trips per shape are pinned only
    where a subclass asks (``pins_unlink_round_trips``, etcher's own Redis backends), so
    a third-party backend that refuses more than etcher's script still passes."""
    backend = _RefusingRedisBackend.from_url(redis_server_url)
    try:
        kit = CheckedCommitConcurrency()
        kit.test_an_unlinking_commit_leaves_what_reading_first_leaves(
            redis_server_url, (backend, []), shape, 0
        )
        pinned = TestRedisCheckedCommitConcurrency()
        with pytest.raises(AssertionError):
            pinned.test_an_unlinking_commit_leaves_what_reading_first_leaves(
                redis_server_url, (backend, []), shape, 0
            )
    finally:
        backend.close()


# --- Redis specifics ------------------------------------------------------------------


@pytest.fixture
def counting(redis_server_url: str) -> Iterator[CountingBackend]:
    inner = RedisBackend.from_url(redis_server_url)
    yield CountingBackend(inner)
    inner.close()


def test_the_script_is_sent_again_after_script_flush(backend: RedisBackend) -> None:
    db = DB(backend=backend, prefix="noscript")
    try:
        db["l"] = [1]
        handle = db["l"]
        backend.script_flush()
        handle.append(2)  # EVALSHA answers NOSCRIPT: the script's text goes instead
        assert backend.script_exists(scripting.SCRIPT_SHA) == [True]
        # Flushed between a unit's reads and its commit.
        doc = db.transactor()
        doc.watch()
        value = doc["l"]()
        backend.script_flush()
        doc.multi()
        doc["l"].append(len(value))
        doc.execute()
        assert db["l"]() == [1, 2, 2]
    finally:
        db.delete_prefix_immediately("noscript")


def test_a_failing_script_leaves_the_store_untouched(backend: RedisBackend) -> None:
    db = DB(backend=backend, prefix="badwrite")
    try:
        db["d"] = {"a": 1}
        before = sorted(backend.scan_iter(match="{badwrite}*"))
        contents = {k: backend.type(k) for k in before}
        # A unit whose last write meets a key of the wrong type (damaged store).
        from etcher._unit import Unit

        unit = Unit(backend)
        key = before[0].decode()
        unit.hgetall(key)
        unit.hset(key, b"x", b"1")
        unit.list_op(key, "rpush", b"boom")
        with pytest.raises(WrongTypeError):
            unit.commit()
        assert sorted(backend.scan_iter(match="{badwrite}*")) == before
        assert {k: backend.type(k) for k in before} == contents
        assert backend.hget(key, b"x") is None
        assert db["d"]() == {"a": 1}
    finally:
        db.delete_prefix_immediately("badwrite")


def test_fakeredis_claims_checked_commits_only_when_it_runs_lua() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    import importlib.util

    backend = RedisBackend.from_client(fakeredis.FakeRedis())
    has_lua = importlib.util.find_spec("lupa") is not None
    assert backend.capabilities.checked_commits is has_lua
    assert backend.capabilities.subtree_reads is has_lua
    assert RedisBackend.capabilities.checked_commits  # the class (a real server) does
    db = DB(backend=backend, prefix="fake")
    db["l"] = [1]
    db["l"].append(2)
    assert db["l"]() == [1, 2]


SMALL = {"name": "x", "address": {"city": "P", "zip": 1}, "tags": [1, 2]}


def test_round_trips_of_small_operations(counting: CountingBackend) -> None:
    """Without contention, on nodes of a few fields (see docs/performance.md, round 2)."""
    db = DB(backend=counting, prefix="trips")
    try:
        db["doc"] = SMALL
        db["doc2"] = SMALL
        doc = db["doc"]
        address, tags = doc["address"], doc["tags"]
        trips = {}
        for name, op in [
            ("assign small doc", lambda: db.__setitem__("other", SMALL)),
            ("assign scalar", lambda: db.__setitem__("n", 5)),
            ("field write (handle)", lambda: address.__setitem__("city", "Q")),
            ("field read (handle)", lambda: address["city"]),
            ("append (handle)", lambda: tags.append(3)),
            ("extend (handle)", lambda: tags.extend([4, 5])),
            ("materialize (handle)", lambda: doc()),
            # A scalar first: a delete that met a link skips guessing for the next one
            # (the back-off, see test_round_trips.py).
            ("delete scalar", lambda: db.__delitem__("n")),
            ("replace small doc", lambda: db.__setitem__("other", SMALL)),
            ("delete small doc", lambda: db.__delitem__("other")),
            ("pop small doc", lambda: db.pop("doc2")),
        ]:
            counting.reset()
            op()
            # Less a first try that guessed wrong (refused by its checks, nothing applied).
            trips[name] = counting.round_trips - counting.refused
            assert counting.watched_keys == 0, name
            if name.endswith("small doc"):
                assert counting.refused == 0, name
        assert trips == {
            "assign small doc": 1,  # nothing read first (capabilities.item_writes)
            "assign scalar": 1,
            "field write (handle)": 1,
            "field read (handle)": 1,
            "append (handle)": 1,
            "extend (handle)": 1,
            "materialize (handle)": 1,  # one subtree walk (etcher_redis/subtree.py)
            # The commit collects the small document itself (capabilities.unlink_commits):
            # before round 6, the item with the unlinked subtree, then the commit (2).
            "replace small doc": 1,
            "delete small doc": 1,
            "pop small doc": 1,
            "delete scalar": 1,  # nothing read first: the commit checks it links nothing
        }, trips
        assert db["doc"]() == {
            "name": "x",
            "address": {"city": "Q", "zip": 1},
            "tags": [1, 2, 3, 4, 5],
        }
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("trips")


def test_a_lone_write_that_fails_raises_and_applies_nothing(backend: RedisBackend) -> None:
    """A commit of one write runs it without the dry run: Redis's refusal is the report."""
    from etcher.errors import ResponseError, StoreIndexError

    backend.hset("h", "a", "1")
    backend.rpush("l", "x")
    before = (backend.hgetall("h"), backend.lrange("l", 0, -1), sorted(backend.keys()))
    for writes, error in [
        ([("rpush", ("h", b"x"))], WrongTypeError),
        ([("hset", ("l", b"f", b"v"))], WrongTypeError),
        ([("lset", ("l", 1, b"v"))], StoreIndexError),
        ([("lset", ("missing", 0, b"v"))], StoreIndexError),
        ([("hset", ("h", b"odd"))], ResponseError),
        ([("rpush", ("l",))], ResponseError),
    ]:
        with pytest.raises(error):
            backend.checked_commit([("hexists", ("h", b"a"), True)], writes)
        assert (backend.hgetall("h"), backend.lrange("l", 0, -1), sorted(backend.keys())) == before
    assert backend.checked_commit([("hexists", ("h", b"a"), True)], [("lset", ("l", 0, b"y"))])
    assert backend.lrange("l", 0, -1) == [b"y"]


def test_encode_declares_the_keys_and_nothing_else() -> None:
    """Two checks and one write that do not fit the short layout: ``KEYS`` holds exactly
    the keys they name (a cluster refuses any other as another slot's), and the
    unlinking commit's item comes first."""
    checks = [("hgetall", ("{n}:r:D1",), {b"#k": b"d"}), ("hget", ("{n}:c:D1", b"f"), b"0|1")]
    writes = [("hset", ("{n}:c:D1", b"f", b"0|2"))]
    assert scripting.encode(checks, writes)[0] == ["{n}:r:D1", "{n}:c:D1"]
    keys = scripting.encode(checks, writes, first="{n}:c:D0")[0]
    assert keys == ["{n}:c:D0", "{n}:r:D1", "{n}:c:D1"]


def test_a_list_items_unlinking_commit_takes_the_item_where_it_is_then(
    backend: RedisBackend,
) -> None:
    """``UnlinkPlan.position`` at the script's level: a negative position counts from the end
    of the list as stored when the commit runs; the item leaves the list whichever side
    moves; a position outside the list, an empty item, or a write of the unit to the same
    list refuses with nothing written; with ``present`` (a delete) a position outside the
    list answers ``missing``, nothing written.
    """
    from etcher.spec import UnlinkPlan

    prefix = "{list-plan}:"
    key = prefix + "c:L1"
    backend.delete(key)
    backend.rpush(key, *[b"i%d" % i for i in range(7)])

    def plan(index: int, contents: bool = True, present: bool = False) -> UnlinkPlan:
        return UnlinkPlan(
            prefix + "c:", prefix + "r:", prefix + "g", "L1", b"", ("root", "L1"), None,
            64, 2048, contents, index, present,
        )  # fmt: skip

    try:
        got = backend.unlinking_commit([], [], plan(-2))
        assert (got.status, got.item) == ("applied", b"i5")
        got = backend.unlinking_commit([], [], plan(1))
        assert (got.status, got.item) == ("applied", b"i1")
        got = backend.unlinking_commit([], [], plan(3))  # the tail side moves
        assert (got.status, got.item) == ("applied", b"i4")
        assert backend.lrange(key, 0, -1) == [b"i0", b"i2", b"i3", b"i6"]
        for bad in (4, -5):
            assert backend.unlinking_commit([], [], plan(bad)).status == "refused"
            # With present (a delete): answered missing, nothing written, writes included.
            writes = [("rpush", (key, b"x"))]
            assert backend.unlinking_commit([], writes, plan(bad, False, True)).status == (
                "missing"
            )
        assert backend.lrange(key, 0, -1) == [b"i0", b"i2", b"i3", b"i6"]
        writes = [("rpush", (key, b"x"))]
        assert backend.unlinking_commit([], writes, plan(0)).status == "refused"
        backend.lset(key, 1, b"")
        assert backend.unlinking_commit([], [], plan(1)).status == "refused"
        assert backend.lrange(key, 0, -1) == [b"i0", b"", b"i3", b"i6"]
    finally:
        backend.delete(key)


def test_a_dict_items_unlinking_commit_with_present_answers_a_missing_item(
    backend: RedisBackend,
) -> None:
    """``UnlinkPlan.present`` at the script's level: a missing field answers ``missing``
    after the checks hold and before any write (the unit's writes are not applied: not
    even a field delete that would change nothing); a failed check is still a conflict;
    a present field is deleted and collected as without it, and a missing one without
    ``present`` applies the writes."""
    from etcher.spec import UnlinkPlan

    prefix = "{dict-plan}:"
    content, header = prefix + "c:D1", prefix + "r:D1"
    backend.delete(content, header)
    backend.hset(content, mapping={b"sa": b"0|i1"})
    backend.hset(header, mapping={b"#k": b"d", b"#s": b"1"})

    def plan(field: bytes, present: bool) -> UnlinkPlan:
        return UnlinkPlan(
            prefix + "c:", prefix + "r:", prefix + "g", "D1", field, ("root", "D1"), None,
            64, 2048, False, None, present,
        )  # fmt: skip

    live = [("exists", (header,), 1), ("hexists", (header, b"#d"), False)]
    try:
        writes = [("hdel", (content, b"sgone")), ("hset", (header, b"#s", b"9"))]
        got = backend.unlinking_commit(live, writes, plan(b"sgone", True))
        assert got.status == "missing"
        assert backend.hgetall(header) == {b"#k": b"d", b"#s": b"1"}
        dead = [("exists", (header,), 1), ("hexists", (header, b"#d"), True)]
        assert backend.unlinking_commit(dead, writes, plan(b"sgone", True)).status == "conflict"
        got = backend.unlinking_commit(live, writes, plan(b"sgone", False))
        assert got.status == "applied"
        assert backend.hget(header, b"#s") == b"9"
        got = backend.unlinking_commit(live, [("hdel", (content, b"sa"))], plan(b"sa", True))
        assert got.status == "applied"
        assert backend.hgetall(content) == {}
    finally:
        backend.delete(content, header)


def test_a_count_raised_unread_meets_another_write_of_its_unit(backend: RedisBackend) -> None:
    """``Unit.assume_link`` raises a header's count on the server without reading it; if
    another write of the same unit then meets that header (it would be computed from a
    value the unit never read), the commit is not sent: a conflict, whose retry reads."""
    from etcher._unit import Unit
    from etcher.errors import WatchError

    header = "{blind}:r:D1"
    backend.delete(header)
    backend.hset(header, mapping={b"#k": b"d", b"D0": b"1"})
    try:
        for other in ("hset", "drop"):
            unit = Unit(backend)
            unit.speculate = True
            assert unit.assume_link(header, b"#d", b"D2", 2, b"#p")
            if other == "hset":
                unit.hset(header, b"D2", b"7")
            else:
                unit.drop_hash(header)
            with pytest.raises(WatchError):
                unit.commit()
        unit = Unit(backend)
        unit.speculate = True
        assert unit.assume_link(header, b"#d", b"D2", 2, b"#p")
        unit.commit()
        assert backend.hgetall(header) == {b"#k": b"d", b"D0": b"1", b"D2": b"2"}
        # A unit that read the header already counts as usual (reads, then writes).
        unit = Unit(backend)
        unit.speculate = True
        unit.hget(header, b"D0")
        assert not unit.assume_link(header, b"#d", b"D2", 1, b"#p")
        unit.close()
    finally:
        backend.delete(header, header + "x")
