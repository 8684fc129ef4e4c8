"""A big write on SQLite: what it costs in statements, and that its shortcut changes nothing.

A unit with more than ``scope.BULK_WRITES`` writes (a big new document) commits
through ``scope._bulk_queue``: its new containers go to ``ops.create_many``,
which inserts their packed rows without reading them first and falls back to
the ordinary commands for any key that turns out to exist. The counts pin the
missing reads (statements, never time); the differential test pins that the
result is the ordinary commands' result, existing keys of every kind included.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.errors import WrongTypeError
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend, packed, scope
from etcher_sqlite.testing import count_statements


def tree(containers: int) -> dict[str, Any]:
    """Nested dicts and lists, every one small enough to be packed."""
    root: dict[str, Any] = {"n": 0}
    frontier: list[Any] = [root]
    made = 1
    while made < containers:
        nxt = []
        for node in frontier:
            for j in range(4):
                if made >= containers:
                    break
                child: Any = {"id": made, "w": made / 7} if made % 3 else [made, f"x{made}"]
                made += 1
                if isinstance(node, dict):
                    node[f"c{j}"] = child
                else:
                    node.append(child)
                nxt.append(child)
        frontier = nxt
    return root


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[DB, Any]]:
    with count_statements() as counter:
        backend = SQLiteBackend(tmp_path / "s.db")
        db = DB(backend=backend)
        try:
            db["warm"] = 1
            yield db, counter
        finally:
            db.close()
            backend.close()


def test_a_big_new_document_reads_none_of_its_keys(counted: tuple[DB, Any]) -> None:
    # 1,200 containers are 2,400 keys: read first, they took ten SELECTs of 256 names.
    db, counter = counted
    doc = tree(1_200)
    counter.clear()
    db["big"] = doc
    assert counter["SELECT"] <= 2, dict(counter)  # the root's row, not the new nodes'
    # The new keys' rows in one statement, the root's change in another (a few rows are
    # one multi-row INSERT, not an executemany).
    assert counter["INSERT(many)"] + counter["INSERT"] == 2, dict(counter)
    assert counter["BEGIN"] == counter["COMMIT"] == 1
    assert db["big"]() == doc
    assert db.check().ok


def test_a_big_document_with_spilled_and_shared_nodes(tmp_path: Path) -> None:
    with DB(backend=SQLiteBackend(tmp_path / "s.db"), grace=0) as db:
        shared = {"s": [1, 2]}
        doc: dict[str, Any] = {
            "wide": {f"k{i}": {"i": i} for i in range(packed.MAX_ENTRIES + 3)},
            "fat": ["y" * packed.MAX_BYTES, shared],
            "again": shared,
            "nodes": tree(300),
        }
        doc["self"] = doc
        db["doc"] = doc
        got = db["doc"]()
        assert got["wide"] == doc["wide"] and got["nodes"] == doc["nodes"]
        assert got["fat"][1] is got["again"] and got["self"] is got
        assert db["doc"]["again"].refcount == 2
        assert db.check().ok


def test_a_bad_value_in_a_big_batch_writes_nothing(tmp_path: Path) -> None:
    backend = SQLiteMemoryBackend()
    backend.hset("h", b"f", b"v")
    writes: list[tuple[str, tuple[Any, ...]]] = [
        ("hset", (f"n{i}", {b"a": b"%d" % i})) for i in range(scope.BULK_WRITES * 2)
    ]
    writes.append(("rpush", ("l", b"x", object())))  # not a storable value
    held = backend.unit_scope(True)
    with pytest.raises((TypeError, ValueError)), held:
        held.commit_writes(writes)
    assert sorted(backend.scan_iter()) == [b"h"]
    assert backend.hgetall("h") == {b"f": b"v"}


def _dump(backend: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in backend.scan_iter():
        kind = backend.type(key)
        if kind == b"hash":
            out[key] = ("hash", backend.hgetall(key))
        elif kind == b"list":
            out[key] = ("list", backend.lrange(key, 0, -1))
        else:
            out[key] = ("string", backend.get(key))
    return out


def _prefill(backend: Any, rng: random.Random, keys: list[str]) -> dict[str, str]:
    shapes = {}
    for key in keys:
        shape = shapes[key] = rng.choice(
            ["none", "none", "string", "hash", "bighash", "list", "biglist"]
        )
        if shape == "string":
            backend.set(key, b"s")
        elif shape in ("hash", "bighash"):
            n = 3 if shape == "hash" else packed.MAX_ENTRIES + 5
            backend.hset(key, mapping={b"f%d" % i: b"old" for i in range(n)})
        elif shape in ("list", "biglist"):
            n = 3 if shape == "list" else packed.MAX_ENTRIES + 5
            backend.rpush(key, *[b"old"] * n)
    return shapes


# The writes that fit a key's kind ("any": a key that does not exist).
_FITTING = {
    "string": ["set", "delete"],
    "hash": ["hset", "hset", "hdel", "delete"],
    "list": ["rpush", "rpush", "delete"],
    "any": ["hset", "rpush", "delete", "set"],
}


def _writes(rng: random.Random, shapes: dict[str, str], fresh: list[str], wrong: bool) -> list[Any]:
    writes: list[Any] = []
    rng.shuffle(fresh)
    for key in fresh:  # most of a big write: new keys, written once
        if rng.random() < 0.6:
            n = rng.choice([1, 3, packed.MAX_ENTRIES + 1])
            writes.append(("hset", (key, {b"f%d" % i: b"new" for i in range(n)})))
        else:
            n = rng.choice([1, 3, packed.MAX_ENTRIES + 1])
            size = rng.choice([1, packed.MAX_BYTES])
            writes.append(("rpush", (key, *[b"n" * size] * n)))
    created = len(writes)
    kinds = {key: shape.removeprefix("big").replace("none", "any") for key, shape in shapes.items()}
    for _ in range(40):  # and writes to keys that may exist, some of them twice
        key = rng.choice(list(kinds))
        verb = rng.choice(_FITTING["any" if wrong else kinds[key]])
        if verb == "delete":
            kinds[key] = "any"
        elif kinds[key] == "any":
            kinds[key] = {"hset": "hash", "hdel": "hash", "rpush": "list", "set": "string"}[verb]
        if verb == "hset":
            writes.append(("hset", (key, {b"f1": b"new", b"g": b"new"})))
        elif verb == "rpush":
            writes.append(("rpush", (key, b"new", b"new2")))
        elif verb == "delete":
            writes.append(("delete", (key, rng.choice(fresh))))
        elif verb == "hdel":
            writes.append(("hdel", (key, b"f1", b"f2")))
        else:
            writes.append(("set", (key, b"set")))
    # Interleaved with the new keys' writes, each list in its own order.
    merged, at = writes[:created], 0
    for write in writes[created:]:
        at = rng.randint(at, len(merged))
        merged.insert(at, write)
        at += 1
    return merged


def _reference(backend: Any, writes: list[Any]) -> None:
    pipe = backend.pipeline(transaction=True)
    for name, args in writes:
        if name == "hset":
            pipe.hset(args[0], mapping=args[1])
        else:
            getattr(pipe, name)(*args)
    pipe.execute()


@pytest.mark.parametrize("seed", range(40))
def test_a_big_batch_ends_as_the_ordinary_commands_end(seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(30)]
    fresh = [f"new{i}" for i in range(scope.BULK_WRITES + 40)]
    if seed % 4 == 0:
        keys = [key for key in keys if key.endswith("1")]  # few existing keys: no conflict
    bulk, plain = SQLiteMemoryBackend(), SQLiteMemoryBackend()
    state = rng.getstate()
    shapes = _prefill(bulk, rng, keys)
    rng.setstate(state)
    _prefill(plain, rng, keys)
    if seed % 3 == 0:  # some "new" keys exist already (another writer got there first)
        for key in fresh[::7]:
            for backend in (bulk, plain):
                backend.hset(key, b"f0", b"old")
                backend.set(key + "s", b"s")
        fresh += [key + "s" for key in fresh[::7]]
    # Writes that fit the keys' kinds, but now and then not (WrongTypeError, nothing written).
    writes = _writes(rng, shapes, fresh, wrong=seed % 5 == 4)
    before = _dump(bulk)
    expected: Exception | None = None
    try:
        _reference(plain, writes)
    except WrongTypeError as exc:
        expected = exc
    assert (expected is not None) == (seed % 5 == 4 or seed % 3 == 0), expected
    held = bulk.unit_scope(True)
    if expected is not None:
        with pytest.raises(WrongTypeError), held:
            held.commit_writes(writes)
        assert _dump(bulk) == before
    else:
        with held:
            held.commit_writes(writes)
        assert _dump(bulk) == _dump(plain)
