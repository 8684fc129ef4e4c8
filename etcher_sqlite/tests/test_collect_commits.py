"""Collections on SQLite: their reads and commits take the direct paths, and end the same.

A unit holding a scope reads its batches straight on the connection
(``SQLiteBackend.read_batch``, no pipeline); a unit retiring nodes has the pending
hash's row read, so a replaced document's commit takes the scope's one-pass small
path; a big delete's retired headers are queued without a command object each; an
``hdel`` from one spilled hash deletes without probing its fields first. Each test
pins one of those paths (it fails on the path it replaced) and the results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.errors import WrongTypeError
from etcher.testing._harness.instrument import CountingBackend
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend, ops, packed, scope

BIG = packed.MAX_ENTRIES + 5  # fields or items: past it a container spills


@pytest.fixture(params=["file", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteBackend]:
    made = SQLiteBackend(tmp_path / "s.db") if request.param == "file" else SQLiteMemoryBackend()
    try:
        yield made
    finally:
        made.close()


def _fill(backend: SQLiteBackend) -> None:
    backend.hset("small", mapping={b"a": b"1", b"b": b"2"})
    backend.hset("wide", mapping={b"f%d" % i: b"v%d" % i for i in range(BIG)})
    backend.hset("fat", mapping={b"x": b"y" * packed.MAX_BYTES})
    backend.rpush("list", b"a", b"b")
    backend.rpush("long", *[b"i%d" % i for i in range(BIG)])
    backend.set("string", b"s")


_HASHES = ["small", "wide", "fat", "missing", "small"]
_SINGLES = [("small", b"a"), ("small", b"zz"), ("wide", b"f7"), ("wide", b"no"), ("missing", b"a")]
_LISTS = ["list", "long", "missing"]


def _piped(backend: SQLiteBackend, hashes: list[str], singles: Any, lists: list[str]) -> Any:
    pipe = backend.pipeline(transaction=False)
    for key in hashes:
        pipe.hgetall(key)
    for key, field in singles:
        pipe.hget(key, field)
    for key in lists:
        pipe.lrange(key, 0, -1)
    return pipe.execute()


@pytest.mark.parametrize("held", [None, False, True])
@pytest.mark.parametrize(
    "shape",
    [
        (_HASHES, _SINGLES, _LISTS),
        (["wide"], [], []),
        ([], [("fat", b"x")], []),
        ([], [], ["long"]),
        (["small", "wide"], [], ["list", "long"]),
    ],
)
def test_read_batch_answers_as_a_pipeline(backend: SQLiteBackend, held: Any, shape: Any) -> None:
    """Every kind of key (packed, spilled, missing), outside a scope and in a read or write one."""
    _fill(backend)
    hashes, singles, lists = shape
    want = _piped(backend, hashes, singles, lists)
    with contextlib.ExitStack() as stack:
        if held is not None:
            assert stack.enter_context(backend.unit_scope(held))
        got = backend.read_batch(hashes, singles, lists)
    assert got == want
    assert len(got) == len(hashes) + len(singles) + len(lists)
    if len(hashes) > 1 and hashes[0] == hashes[-1]:
        assert got[0] is not got[len(hashes) - 1]  # a unit keeps and edits each dict


@pytest.mark.parametrize("held", [None, True])
def test_read_batch_refuses_a_wrong_type_as_a_pipeline_does(
    backend: SQLiteBackend, held: Any
) -> None:
    _fill(backend)
    with pytest.raises(WrongTypeError):
        _piped(backend, ["small", "list"], [], [])
    with contextlib.ExitStack() as stack:
        if held is not None:
            stack.enter_context(backend.unit_scope(held))
        with pytest.raises(WrongTypeError):
            backend.read_batch(["small", "list"], [], [])
        with pytest.raises(WrongTypeError):
            backend.read_batch([], [], ["string", "list"])


def test_a_held_unit_reads_its_batches_without_a_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting a document with many children reads their headers in one batch, direct."""
    made: list[bool] = []
    real = SQLiteBackend.pipeline

    def spy(self: SQLiteBackend, transaction: bool = True) -> Any:
        made.append(transaction)
        return real(self, transaction)

    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        db["doc"] = {f"k{i}": {"i": i, "l": [i]} for i in range(20)}
        db["other"] = {"x": 1}
        monkeypatch.setattr(SQLiteBackend, "pipeline", spy)
        del db["doc"]
        db["other"]["y"] = {"z": [1, 2]}
        db["other"]["y"] = 3  # replaces (and collects) a small subtree
        monkeypatch.undo()
        assert made == []
        assert db() == {"other": {"x": 1, "y": 3}}
        assert db.check().ok


def test_a_counted_read_batch_counts_every_key_it_reads(tmp_path: Path) -> None:
    """The kit's CountingBackend sizes a direct batch as a pipeline's: one round trip
    naming every key, so the suites' bounds on what one unit reads still hold."""
    counting = CountingBackend(SQLiteBackend(tmp_path / "c.db"))
    with DB(backend=counting) as db:
        db["doc"] = {f"k{i}": {"i": i, "l": [i]} for i in range(20)}
        counting.reset()
        del db["doc"]  # its 20 children's headers, read in one batch
        assert counting.commands["read_batch"] >= 1
        assert counting.largest_batch >= 20
        counting.reset()
        counting.read_batch(["a", "b"], [("c", b"f")], ["l"])  # type: ignore[attr-defined]
        assert (counting.round_trips, counting.largest_batch) == (1, 4)


def _spied_small(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    taken: list[bool] = []
    small = scope._apply_small

    def spy(*args: Any) -> bool:
        taken.append(small(*args))
        return taken[-1]

    monkeypatch.setattr(scope, "_apply_small", spy)
    return taken


def test_replacing_a_document_commits_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replaced document is retired (pending in the namespace's hash, a hash the unit did
    not read before): its commit still takes the scope's small path, and ends right."""
    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        assert db.grace > 0  # retiring, not deleting: the pending hash is written
        db["kid"] = {"shared": True}
        kid = db["kid"]
        for i in range(3):
            db[f"p{i}"] = {"kids": [kid], "own": {"i": i}}
        old = db["p1"]
        taken = _spied_small(monkeypatch)
        db["p1"] = {"kids": [kid, kid], "own": {"i": 10}}
        db["p2"] = {"new": [1]}
        assert taken == [True, True]
        monkeypatch.undo()
        assert old["own"]() == {"i": 1}  # the old version stays readable for the grace period
        assert db["p1"]() == {"kids": [{"shared": True}] * 2, "own": {"i": 10}}
        assert kid.backrefs == {db["p0"]["kids"].uid: 1, db["p1"]["kids"].uid: 2, db.uid: 1}
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        report = db.check()
        assert report.ok and not report.orphans


def test_a_big_delete_queues_its_headers_without_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big collection's retired headers (one ``hreplace`` each) skip the per-write
    normalizing of the public command, and every node is retired, then reclaimed."""
    collected: list[str] = []
    real = scope._Queue.collect.__func__  # type: ignore[attr-defined]

    def spy(cls: Any, name: str, args: Any, kwargs: Any) -> Any:
        collected.append(name)
        return real(cls, name, args, kwargs)

    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        db["keep"] = 1
        baseline = sum(1 for _ in db.backend.scan_iter())
        db["big"] = {f"k{i}": {"i": i, "l": [i, {"d": i}]} for i in range(100)}
        monkeypatch.setattr(scope._Queue, "collect", classmethod(spy))
        del db["big"]
        monkeypatch.undo()
        assert "hreplace" not in collected
        assert db() == {"keep": 1}
        pending = db.backend.hlen(db._layout.pending)
        assert pending == 301
        db.maintenance(reclaim_all=True)
        assert db.check().ok
        assert sum(1 for _ in db.backend.scan_iter()) == baseline


def test_hdel_of_one_spilled_hash_counts_without_probing(backend: SQLiteBackend) -> None:
    _fill(backend)
    seen: list[str] = []
    conn = backend._conn()
    conn.set_trace_callback(seen.append)
    try:
        assert backend.hdel("wide", b"f1", b"f2", b"f1", b"nope") == 2
        assert backend.hdel("wide", b"nope") == 0
    finally:
        conn.set_trace_callback(None)
    assert not [s for s in seen if s.startswith("SELECT") and "hashes" in s], seen
    assert backend.hlen("wide") == BIG - 2
    assert backend.hget("wide", b"f1") is None and backend.hget("wide", b"f3") == b"v3"
    # Down to nothing: the key goes, as for any hash.
    assert backend.hdel("wide", *backend.hkeys("wide")) == BIG - 2
    assert backend.exists("wide") == 0
    with pytest.raises(WrongTypeError):
        backend.hdel("long", b"x")
    assert backend.llen("long") == BIG


def test_hdel_in_a_unit_scope_counts_as_before(backend: SQLiteBackend) -> None:
    """The unit's way: a held scope, the hash's row cached by a read, one ``hdel``."""
    _fill(backend)
    held = backend.unit_scope(True)
    with held:
        assert backend.hget("wide", b"f5") == b"v5"  # caches the row, as a unit's read does
        held.commit_writes([("hdel", ("wide", b"f5", b"f6", b"zz"))])
    assert backend.hlen("wide") == BIG - 2
    assert backend.hget("wide", b"f5") is None
    assert ops.SCOPE.tx is None


def _tables(backend: SQLiteBackend) -> tuple[list[Any], ...]:
    """Every row of the store, versions left out (they are fresh random stamps)."""
    conn = backend._conn()
    return (
        conn.execute("SELECT name, type, lo, hi, value FROM keys ORDER BY name").fetchall(),
        conn.execute("SELECT * FROM hashes ORDER BY name, field").fetchall(),
        conn.execute("SELECT * FROM list_items ORDER BY name, pos").fetchall(),
    )


@pytest.mark.parametrize(
    "fields",
    [
        (b"f1",),
        (b"f1", b"f2", b"f1", b"nope"),
        (b"nope",),
        tuple(b"f%d" % i for i in range(BIG)),  # every field: the key goes
    ],
)
def test_a_spilled_hash_hdel_commits_in_one_pass_as_the_general_path(
    fields: tuple[bytes, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted document's entry leaves a big root in the small commit, which ends in
    the same tables as the general path, with the writes that come with it."""
    writes: list[Any] = [
        ("hdel", ("wide", *fields)),
        ("hreplace", ("small", {b"a": b"9"})),
        ("hset", ("new", {b"n": b"1"})),
    ]
    ends = []
    for small in (True, False):
        backend = SQLiteMemoryBackend()
        _fill(backend)
        taken = _spied_small(monkeypatch)
        if not small:
            monkeypatch.setattr(scope, "_apply_small", lambda *args: False)
        held = backend.unit_scope(True)
        with held:
            backend.hget("wide", b"f0")  # the unit's reads: the rows are cached
            backend.hgetall("small")
            held.commit_writes(writes, {"new"})
        if small:
            assert taken == [True]
        ends.append(_tables(backend))
        monkeypatch.undo()
        backend.close()
    assert ends[0] == ends[1]


@pytest.mark.parametrize("key", ["small", "list"])
def test_other_hdels_go_the_general_way(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A packed hash's hdel and one onto a key of another type are not the shortcut's."""
    backend = SQLiteMemoryBackend()
    _fill(backend)
    taken = _spied_small(monkeypatch)
    held = backend.unit_scope(True)
    with contextlib.ExitStack() as stack:
        if key == "list":
            stack.enter_context(pytest.raises(WrongTypeError))
        with held:
            backend.lrange(key, 0, -1) if key == "list" else backend.hgetall(key)
            held.commit_writes([("hdel", (key, b"a")), ("hset", ("new", {b"n": b"1"}))], {"new"})
    assert taken == [False]
    left = {b"b": b"2"} if key == "small" else {b"a": b"1", b"b": b"2"}
    assert backend.hgetall("small") == left
