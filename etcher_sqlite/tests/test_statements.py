"""What the SQLite backend's everyday operations cost in statements, and that its own
subtree walk answers exactly what the reference walk over plain commands answers.

The counts pin the per-operation work of the backend's direct paths (one statement
per level for a subtree read, ...): a change that quietly adds statements to a hot
path fails here. They count statements handed to SQLite, never time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher._layout import ROOT
from etcher._subtree import walk as reference_walk
from etcher.errors import WrongTypeError
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend, packed
from etcher_sqlite.testing import StatementCounter, count_statements


def small_doc(i: int) -> dict[str, Any]:
    """The document of ``benchmarks/hotpath.py``: three nodes, all packed."""
    return {"name": f"user{i}", "address": {"city": "Oslo", "zip": f"{i:05d}"}, "tags": ["a", "b"]}


def spilling_doc() -> dict[str, Any]:
    """Packed and spilled containers (by entries and by bytes), empties, sharing, a cycle."""
    shared = {"shared": [1, 2]}
    doc: dict[str, Any] = {
        "wide": {f"k{i}": {"i": i} if i % 40 == 0 else i for i in range(packed.MAX_ENTRIES + 5)},
        "long": [[i] if i % 50 == 0 else i for i in range(packed.MAX_ENTRIES + 5)],
        "fat": {"a": "x" * packed.MAX_BYTES, "b": shared},
        "fatlist": ["y" * packed.MAX_BYTES, shared, []],
        "e": {},
        "l": [],
        "s": shared,
    }
    doc["self"] = doc
    return doc


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[DB, SQLiteBackend, StatementCounter]]:
    with count_statements() as counter:
        backend = SQLiteBackend(tmp_path / "s.db")
        db = DB(backend=backend)
        try:
            yield db, backend, counter
        finally:
            db.close()
            backend.close()


def _reference(backend: SQLiteBackend, db: DB, roots: list[str], limit: int) -> Any:
    layout = db._layout
    with backend.unit_scope(False):
        return reference_walk(
            lambda: backend.pipeline(transaction=False),
            layout.content_prefix,
            layout.refs_prefix,
            roots,
            limit,
        )


@pytest.mark.parametrize("memory", [False, True], ids=["file", "memory"])
@pytest.mark.parametrize("limit", [1, 2, 5, 10_000])
def test_subtree_walk_equals_the_reference_walk(tmp_path: Path, memory: bool, limit: int) -> None:
    backend = SQLiteMemoryBackend() if memory else SQLiteBackend(tmp_path / "w.db")
    with DB(backend=backend, grace=0) as db:
        db["doc"] = spilling_doc()
        layout = db._layout
        roots = [ROOT, "Dno-such-node", "Lno-such-node"]
        for _ in range(500):  # the whole continuation, call by call
            got = backend.read_subtree(layout.content_prefix, layout.refs_prefix, roots, limit)
            want = _reference(backend, db, roots, limit)
            assert got == want
            assert list(got[0]) == list(want[0])  # same order of reading, too
            seen = set(got[0])
            roots = [x for x in got[2] if x not in seen]
            if not roots:
                break
        else:
            pytest.fail("the continuation made no progress")
    backend.close()


def test_subtree_walk_reads_spilled_members(counted: Any) -> None:
    db, _, _ = counted
    db["doc"] = spilling_doc()
    doc: Any = db["doc"]
    value = doc()
    assert value["wide"]["k40"] == {"i": 40} and value["wide"]["k7"] == 7
    assert value["long"][50] == [50] and len(value["long"]) == packed.MAX_ENTRIES + 5
    assert value["fat"]["b"] is value["fatlist"][1] is value["s"]
    assert value["self"] is value
    assert db.check().ok


def test_subtree_walk_refuses_a_wrong_type_like_hgetall(counted: Any) -> None:
    db, backend, _ = counted
    layout = db._layout
    backend.rpush(layout.content_prefix + "Dfake", b"x")  # a dict node holding a list
    backend.hset(layout.content_prefix + "Lfake", "f", b"x")  # a list node holding a hash
    for root in ("Dfake", "Lfake"):
        with pytest.raises(WrongTypeError):
            _reference(backend, db, [root], 10)
        with pytest.raises(WrongTypeError):
            backend.read_subtree(layout.content_prefix, layout.refs_prefix, [root], 10)
    assert not backend.pipeline().execute()  # no transaction was left open


def test_subtree_read_is_one_statement_per_level(counted: Any) -> None:
    db, backend, counter = counted
    db["doc"] = {"a": {"b": {"c": [1]}}, "d": [2]}
    layout = db._layout
    uid = db["doc"]._etcher_uid
    counter.clear()
    contents, absent, frontier = backend.read_subtree(
        layout.content_prefix, layout.refs_prefix, [uid], 100
    )
    assert len(contents) == 5 and absent == frontier == []
    # BEGIN, one SELECT per level (doc; a, d; b; c), ROLLBACK of the read snapshot.
    assert counter.total() == 6, dict(counter)
    assert counter["SELECT"] == 4


def test_spilled_and_empty_nodes_cost_one_statement_each_per_level(counted: Any) -> None:
    db, backend, counter = counted
    wide = {f"k{i}": i for i in range(packed.MAX_ENTRIES + 1)}
    db["doc"] = {"h": wide, "l": list(range(packed.MAX_ENTRIES + 1)), "e": {}, "f": []}
    layout = db._layout
    uid = db["doc"]._etcher_uid
    counter.clear()
    contents, _, _ = backend.read_subtree(layout.content_prefix, layout.refs_prefix, [uid], 100)
    assert len(contents) == 5
    # BEGIN; level 1; level 2 + its spilled hash members + spilled list members + the
    # headers of its two empty nodes; ROLLBACK.
    assert counter["SELECT"] == 5, dict(counter)
    assert counter.total() == 7, dict(counter)


def test_materializing_a_small_document(counted: Any) -> None:
    db, _, counter = counted
    db["r"] = small_doc(1)
    counter.clear()
    assert db["r"]() == small_doc(1)
    # db["r"]: one hget; ():  BEGIN, a SELECT per level (2), COMMIT.
    assert counter.total() == 5, dict(counter)


# --- hset on spilled hashes: INSERT OR IGNORE counts the new fields ------------------


def _spilled(store: SQLiteBackend, name: str) -> None:
    store.hset(name, mapping={f"f{i}": i for i in range(packed.MAX_ENTRIES + 1)})


def test_hset_on_a_spilled_hash_counts_new_and_updated_fields(tmp_path: Path) -> None:
    with SQLiteBackend(tmp_path / "h.db") as store:
        _spilled(store, "h")
        n = packed.MAX_ENTRIES + 1
        assert store.hset("h", mapping={"new1": b"a", "new2": b"b"}) == 2
        assert store.hset("h", mapping={"f0": b"changed", "new3": b"c"}) == 1
        assert store.hset("h", mapping={"f1": b"changed too"}) == 0
        assert store.hlen("h") == n + 3
        assert store.hget("h", "f0") == b"changed" and store.hget("h", "f1") == b"changed too"
        assert store.hget("h", "new3") == b"c"
        # Two spilled hashes, and one spilled hash twice, in one batch.
        _spilled(store, "g")
        pipe = store.pipeline()
        pipe.hset("h", mapping={"f2": b"x", "new4": b"d"})
        pipe.hset("g", mapping={"f2": b"y", "new4": b"e"})
        pipe.hset("h", mapping={"new4": b"again", "new5": b"f"})
        assert pipe.execute() == [1, 1, 1]
        assert store.hlen("h") == n + 5 and store.hlen("g") == n + 1
        assert store.hmget("h", ["f2", "new4", "new5"]) == [b"x", b"again", b"f"]
        assert store.hget("g", "new4") == b"e"


def test_adding_fields_to_a_spilled_hash_is_one_statement(tmp_path: Path) -> None:
    with count_statements() as counter, SQLiteBackend(tmp_path / "h.db") as store:
        _spilled(store, "h")
        counter.clear()
        assert store.hset("h", mapping={"new1": b"a", "new2": b"b"}) == 2
        # BEGIN IMMEDIATE, the key's row, the new fields, the key's row back (a flush of
        # one spilled row: a plain INSERT), COMMIT.
        assert dict(counter) == {
            "BEGIN": 1,
            "SELECT": 1,
            "INSERT(many)": 1,
            "INSERT": 1,
            "COMMIT": 1,
        }
        counter.clear()
        assert store.hset("h", mapping={"f0": b"changed"}) == 0  # an update costs one more
        assert counter["INSERT(many)"] + counter["INSERT"] == 3, dict(counter)


# --- a write scope remembers the rows it read ------------------------------------------


def test_changing_a_field_reuses_the_row_read_in_the_scope(counted: Any) -> None:
    db, _, counter = counted
    db["rd"] = {"n": 0}
    rd: Any = db["rd"]
    counter.clear()
    rd["n"] = 5
    # BEGIN IMMEDIATE, the node's header and the old field value in one statement
    # (UnitScope.read_item, which also brings the content key's row), the row written
    # back, COMMIT: no SELECT of the row again.
    assert counter.total() == 4, dict(counter)
    assert db["rd"]() == {"n": 5}


def test_the_scope_cache_never_outlives_its_scope(tmp_path: Path) -> None:
    with SQLiteBackend(tmp_path / "c.db") as store, SQLiteBackend(tmp_path / "c.db") as other:
        store.hset("h", mapping={b"a": b"1"})
        with store.unit_scope(True):
            assert store.hget("h", b"a") == b"1"  # cached
            pipe = store.pipeline()
            pipe.hset("h", mapping={b"b": b"2"})
            pipe.rpush("l", b"x")
            assert pipe.execute() == [1, 1]
            pipe.hset("h", mapping={b"a": b"3"})
            pipe.hdel("h", b"b")
            pipe.rpush("l", b"y")
            assert pipe.execute() == [0, 1, 2]  # a second batch on the cached rows
            assert store.hgetall("h") == {b"a": b"3"}
        other.hset("h", mapping={b"c": b"4"})  # another connection, after the scope
        other.rpush("l", b"z")
        with store.unit_scope(True):
            assert store.hset("h", mapping={b"d": b"5"}) == 1
            assert store.rpush("l", b"w") == 4
        assert other.hgetall("h") == {b"a": b"3", b"c": b"4", b"d": b"5"}
        assert other.lrange("l", 0, -1) == [b"x", b"y", b"z", b"w"]


def test_a_failed_batch_drops_the_scope_cache(tmp_path: Path) -> None:
    with SQLiteBackend(tmp_path / "c.db") as store:
        store.set("s", b"text")
        store.hset("h", mapping={b"a": b"1"})
        with store.unit_scope(True):
            assert store.hget("h", b"a") == b"1"
            pipe = store.pipeline()
            pipe.hset("h", mapping={b"b": b"2"})
            pipe.rpush("s", b"x")  # WRONGTYPE after the hset was applied in memory
            with pytest.raises(WrongTypeError):
                pipe.execute()
            # The unflushed hset must not leak into the next batch through the cache.
            assert store.hset("h", mapping={b"c": b"3"}) == 1
            assert store.hgetall("h") == {b"a": b"1", b"c": b"3"}
            assert store.hlen("h") == 2


# --- read-only batches (no Tx) answer what the reads one by one answer ----------------


def test_a_read_batch_equals_its_reads_one_by_one(tmp_path: Path) -> None:
    rng = random.Random(5)
    with SQLiteBackend(tmp_path / "r.db") as store:
        store.hset("packed", mapping={b"a": b"1", b"b": b"2"})
        _spilled(store, "spilled")
        store.rpush("list", b"x", b"y", b"z")
        store.rpush("biglist", *[b"%d" % i for i in range(packed.MAX_ENTRIES + 3)])
        store.set("string", b"s")
        hashes = ["packed", "spilled", "missing", "list", "string"]
        lists = ["list", "biglist", "missing", "packed", "string"]
        for _ in range(300):
            calls: list[tuple[str, tuple[Any, ...]]] = []
            for _ in range(rng.randint(2, 6)):
                kind = rng.choice(["hgetall", "hget", "lrange"])
                if kind == "hgetall":
                    calls.append((kind, (rng.choice(hashes),)))
                elif kind == "hget":
                    field = rng.choice([b"a", b"b", b"f3", b"nope"])
                    calls.append((kind, (rng.choice(hashes), field)))
                else:
                    bounds = (rng.randint(-5, 5), rng.randint(-5, 5))
                    calls.append((kind, (rng.choice(lists), *bounds)))
            want: list[Any] = []
            for name, args in calls:
                try:
                    want.append(getattr(store, name)(*args))
                except WrongTypeError:
                    want.append(WrongTypeError)
                    break
            pipe = store.pipeline()
            for name, args in calls:
                getattr(pipe, name)(*args)
            if want and want[-1] is WrongTypeError:
                with pytest.raises(WrongTypeError):
                    pipe.execute()
            else:
                assert pipe.execute() == want, calls


def test_a_big_flush_writes_and_deletes_keys_rows_in_key_order(tmp_path: Path) -> None:
    """Big batches reach the keys table in B-tree order (page locality; see ops.SORT_ABOVE)."""
    from etcher_sqlite import ops

    backend = SQLiteBackend(tmp_path / "s.db")
    db = DB(backend=backend, grace=0)
    try:
        n = ops.SORT_ABOVE * 4
        # uids end in a hex counter without padding, so creation order is not key order.
        doc = {f"k{i}": {"i": i} for i in range(n)}
        conn = backend._conn()
        # A big write's new keys go in with INSERT OR IGNORE (ops.create_many), the rest
        # of its rows with INSERT OR REPLACE: each statement's rows in key order.
        markers = ("INSERT OR REPLACE INTO keys", "INSERT OR IGNORE INTO keys", "DELETE FROM keys")
        seen: dict[str, list[str]] = {marker: [] for marker in markers}

        def trace(sql: str) -> None:
            for marker in markers:
                if sql.startswith(marker):
                    seen[marker].append(sql.split("'")[1])

        conn.set_trace_callback(trace)
        try:
            db["doc"] = doc
            del db["doc"]
        finally:
            conn.set_trace_callback(None)
        assert len(seen["INSERT OR IGNORE INTO keys"]) > ops.SORT_ABOVE
        assert len(seen["DELETE FROM keys"]) > ops.SORT_ABOVE
        for marker, names in seen.items():
            if len(names) > ops.SORT_ABOVE:
                assert names == sorted(names), f"{marker}: keys rows not in key order"
        assert len(db) == 0 and db.check().ok
    finally:
        db.close()
        backend.close()


def test_a_small_document_writes_its_rows_in_one_statement_without_executemany(
    tmp_path: Path,
) -> None:
    with count_statements() as counter:
        db = DB(f"sqlite:///{tmp_path / 'rows.db'}")
        try:
            for i in range(40):  # a spilled root: its new field is a row of its own
                db[f"r{i}"] = small_doc(i)
            counter.clear()
            db["w"] = small_doc(99)
            # the root's field, then its two keys rows and the new nodes' six as one VALUES
            assert counter["INSERT"] == 2 and counter["INSERT(many)"] == 0, dict(counter)
            assert db["w"]() == small_doc(99)
        finally:
            db.close()


@pytest.mark.parametrize("n", [1, 2, 16, 17, 40])
def test_a_flush_writes_few_rows_as_one_statement_and_many_as_executemany(
    tmp_path: Path, n: int
) -> None:
    from etcher_sqlite import ops

    names = [f"k{i:03d}" for i in range(n)]
    with count_statements() as counter:
        backend = SQLiteBackend(tmp_path / "flush.db")
        try:
            with backend.unit_scope(True):
                tx = ops.SCOPE.tx
                counter.clear()
                tx.flush([(name, 1, 7, 0, 0, name.encode()) for name in names])
                many = n > ops.UPSERT_ROWS
                assert dict(counter) == {"INSERT(many)" if many else "INSERT": 1}
            assert [backend.get(name) for name in names] == [name.encode() for name in names]
        finally:
            backend.close()
