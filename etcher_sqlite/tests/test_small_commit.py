"""A small unit's commit on SQLite: its shortcut changes nothing but the cost.

``UnitScope.commit_writes`` applies a small unit whose writes all have the usual
shapes (new nodes' ``hset``/``rpush``, ``hset``/``hreplace`` onto hashes the unit
read) through ``scope._apply_small``: new nodes' rows are packed straight into the
flush's insert and the other writes change the scope's cached rows, with no runs
or commands. Everything else goes the general way. The differential test pins that
both end in the same tables (rows, packed or spilled, and counts) or raise the same
error leaving the store untouched, over seeded batches of every shape the shortcut
takes or refuses.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.errors import WrongTypeError
from etcher_sqlite import SQLiteMemoryBackend, packed, scope
from etcher_sqlite.ops import drop_scoped_tx

_PREFILL = {
    "hash": {b"f%d" % i: b"old" for i in range(3)},
    "bighash": {b"f%d" % i: b"old" for i in range(packed.MAX_ENTRIES + 5)},
}


def _tables(backend: SQLiteMemoryBackend) -> tuple[list[Any], ...]:
    """Every row of the store, versions left out (they are fresh random stamps)."""
    conn = backend._conn()
    return (
        conn.execute("SELECT name, type, lo, hi, value FROM keys ORDER BY name").fetchall(),
        conn.execute("SELECT * FROM hashes ORDER BY name, field").fetchall(),
        conn.execute("SELECT * FROM list_items ORDER BY name, pos").fetchall(),
    )


def _prefill(backend: SQLiteMemoryBackend) -> None:
    backend.hset("hash", mapping=_PREFILL["hash"])
    backend.hset("bighash", mapping=_PREFILL["bighash"])
    backend.set("string", b"s")
    backend.rpush("list", b"a", b"b")


def _mapping(rng: random.Random, odd: bool) -> dict[Any, Any]:
    n = rng.choice([1, 2, 3, packed.MAX_ENTRIES + 1])
    size = rng.choice([3, 3, packed.MAX_BYTES])  # a value this big spills its hash
    mapping: dict[Any, Any] = {b"f%d" % i: b"v" * size for i in range(n)}
    if odd:  # what the public commands refuse or normalize
        kind = rng.choice(["empty", "str value", "int value", "str field"])
        if kind == "empty":
            mapping = {}
        elif kind == "str value":
            mapping[b"x"] = "text"
        elif kind == "int value":
            mapping[b"x"] = 7
        else:
            mapping["x"] = b"v"
    return mapping


ODD = [None, "values", "wrong type", "twice", "other command", "no key", "unread", "unread whole"]
"""What a batch has that the shortcut refuses (``None``: nothing, it takes the batch)."""


def _batch(rng: random.Random, odd: str | None) -> tuple[list[Any], set[str], list[str]]:
    """Writes, the keys "created" by the unit, and the keys read in the scope first."""
    writes: list[Any] = []
    created: set[str] = set()
    for i in range(rng.randint(1, 7)):  # a new document's nodes
        key = f"new{i}"
        created.add(key)
        if rng.random() < 0.7:
            writes.append(("hset", (key, _mapping(rng, False))))
        else:
            n = rng.choice([1, 2, packed.MAX_ENTRIES + 1])
            items: list[Any] = [b"i" * rng.choice([1, packed.MAX_BYTES])] * n
            writes.append(("rpush", (key, *items)))
    read = rng.sample(["hash", "bighash", "missing", "string", "list"], rng.randint(0, 5))
    hashes = [key for key in read if key not in ("string", "list")]  # the unit read them
    for key in rng.sample(hashes, rng.randint(0, len(hashes))):
        verb = rng.choice(["hset", "hreplace"])
        writes.append((verb, (key, _mapping(rng, False))))
    if odd == "values":
        at = rng.randrange(len(writes))
        name, args = writes[at]
        if name == "rpush":
            writes[at] = (name, (args[0], *rng.choice([[], ["text"], [b"a", 5]])))
        else:
            writes[at] = (name, (args[0], _mapping(rng, True)))
    elif odd == "wrong type":
        writes.append((rng.choice(["hset", "hreplace"]), ("string", {b"f": b"v"})))
        read.append("string")
    elif odd == "twice":
        key = rng.choice(sorted(created))
        writes.append(("rpush", (key, b"again")) if rng.random() < 0.5 else writes[0])
    elif odd == "other command":
        writes.append(("hdel", ("hash", b"f0")))
    elif odd == "no key":
        writes.append(("hset", ()))
    elif odd == "unread":  # (a usual shape: the row is read as hset reads it)
        writes.append(("hset", ("unread", {b"f": b"v"})))
    elif odd == "unread whole":  # (core sends hreplace only for a hash it read)
        writes.append(("hreplace", ("unread", {b"f": b"v"})))
    rng.shuffle(writes)
    return writes, created, sorted(set(read))


def _commit(backend: SQLiteMemoryBackend, read: list[str], call: Any) -> Any:
    """Commit as a unit would: read ``read`` in a write scope, then ``call(scope)``; the
    error it raised, or None."""
    held = backend.unit_scope(True)
    try:
        with held:
            for key in read:
                # The unit's read: the scope caches the row (a wrong type's too).
                with contextlib.suppress(WrongTypeError):
                    backend.hgetall(key)
            call(held)
    except Exception as exc:
        drop_scoped_tx()
        return exc
    return None


def _commit_batch(
    backend: SQLiteMemoryBackend, batch: tuple[list[Any], set[str], list[str]]
) -> Any:
    """Run the batch as a unit would (reads in the scope, then commit_writes); the error."""
    writes, created, read = batch
    return _commit(backend, read, lambda held: held.commit_writes(writes, created))


@pytest.mark.parametrize("seed", range(7 * 14))
def test_a_small_commit_ends_as_the_general_path_ends(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    odd = ODD[seed % len(ODD)]
    batch = _batch(rng, odd)
    taken: list[bool] = []
    small = scope._apply_small

    def spy(*args: Any) -> bool:
        taken.append(small(*args))
        return taken[-1]

    fast, general = SQLiteMemoryBackend(), SQLiteMemoryBackend()
    _prefill(fast)
    _prefill(general)
    before = _tables(fast)
    monkeypatch.setattr(scope, "_apply_small", spy)
    got = _commit_batch(fast, batch)
    monkeypatch.setattr(scope, "_apply_small", lambda *args: False)
    want = _commit_batch(general, batch)
    assert type(got) is type(want), (got, want)
    assert str(got) == str(want)
    assert _tables(fast) == (before if want is not None else _tables(general))
    if odd is None or odd == "unread":  # only the usual shapes: the shortcut took them
        assert taken == [True], batch
    elif odd != "no key":  # (that one fails before the scope's commit)
        assert True not in taken, batch


def test_a_new_document_and_a_field_set_take_the_small_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[bool] = []
    small, fresh = scope._apply_small, scope._apply_fresh

    def spy(*args: Any) -> bool:
        taken.append(small(*args))
        return taken[-1]

    def fresh_spy(*args: Any) -> bool:
        taken.append(fresh(*args))
        return taken[-1]

    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        for i in range(150):  # a spilled root, as in any real store
            db[f"d{i}"] = {"i": i}
        monkeypatch.setattr(scope, "_apply_small", spy)
        monkeypatch.setattr(scope, "_apply_fresh", fresh_spy)
        doc = {"name": "x", "n": 1, "on": True, "none": None, "tags": [0.5, "a"], "sub": {"k": 1}}
        db["doc"] = doc  # (commit_fresh: _apply_fresh)
        db["doc"]["n"] = 2
        db["doc"]["sub"] = {"k": 2}  # replaces a linked node: reads and collects it
        assert taken[:2] == [True, True]
        assert db["doc"]() == {**doc, "n": 2, "sub": {"k": 2}}
        assert db.check().ok


def _fresh_split(
    rng: random.Random, writes: list[Any], created: set[str]
) -> tuple[list[Any], dict[str, Any]]:
    """Some created keys' only write moved out of ``writes`` into ``fresh``, as a unit
    taking fresh contents passes them (a mapping, or a list of the pushed items)."""
    counts: dict[Any, int] = {}
    for _name, args in writes:
        if args:
            counts[args[0]] = counts.get(args[0], 0) + 1
    fresh: dict[str, Any] = {}
    rest: list[Any] = []
    for write in writes:
        name, args = write
        key = args[0] if args else None
        if key in created and counts[key] == 1 and name in ("hset", "rpush") and rng.random() < 0.8:
            fresh[key] = args[1] if name == "hset" else list(args[1:])
        else:
            rest.append(write)
    return rest, fresh


@pytest.mark.parametrize("seed", range(7 * 8))
def test_fresh_contents_end_as_their_writes_end(seed: int) -> None:
    """``commit_writes(writes, created, fresh)`` ends as the same batch with the fresh
    contents as leading ``hset``/``rpush`` writes does (rows or error, store untouched)."""
    rng = random.Random(1000 + seed)
    odd = ODD[seed % len(ODD)]
    writes, created, read = _batch(rng, odd)
    rest, fresh = _fresh_split(rng, writes, created)
    leading = [  # (an empty content writes nothing, where an empty write is refused)
        ("hset", (k, c)) if isinstance(c, dict) else ("rpush", (k, *c))
        for k, c in fresh.items()
        if c
    ]
    split, whole = SQLiteMemoryBackend(), SQLiteMemoryBackend()
    _prefill(split)
    _prefill(whole)
    before = _tables(split)

    got = _commit(split, read, lambda held: held.commit_writes(rest, created, fresh))
    want = _commit(whole, read, lambda held: held.commit_writes(leading + rest, created))
    assert type(got) is type(want), (got, want)
    assert str(got) == str(want)
    assert _tables(split) == (before if want is not None else _tables(whole))


def _plain(rng: random.Random, depth: int = 0) -> Any:
    """A random plain value: scalars, dicts and lists, a few levels deep."""
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return {f"k{i}": _plain(rng, depth + 1) for i in range(rng.randint(0, 4))}
    if depth < 3 and roll < 0.45:
        return [_plain(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice([1, -7, 2**70, 0.5, "s", "é", "", True, None, "x" * 950])


def _documents(rng: random.Random) -> list[Any]:
    docs: list[Any] = []
    for _ in range(6):
        doc = {"name": "n", "sub": _plain(rng), "more": _plain(rng), "tags": [_plain(rng)]}
        shape = rng.choice(["plain", "shared", "cycle", "big", "many nodes", "odd", "wide"])
        if shape == "shared":  # one object twice: one node, two links
            shared = {"s": 1}
            doc["a"], doc["b"] = shared, [shared]
        elif shape == "cycle":
            doc["self"] = doc
        elif shape == "big":
            doc["many"] = list(range(packed.MAX_ENTRIES + 3))
        elif shape == "many nodes":  # past what a plain assignment takes alone
            doc["nodes"] = [{"i": i} for i in range(rng.choice([10, 20]))]
        elif shape == "wide":  # every kind of item numbered up to and past the plain path's tables
            values = [1, "s", 0.5, True, False, None, 2**70]
            fields = rng.choice([255, 256, 257])
            wide: dict[str, Any] = {f"f{i}": values[i % len(values)] for i in range(fields - 2)}
            doc["wide"] = {**wide, "d": {"in": 1}, "l": ["l"]}
        elif shape == "odd":  # keys and values the plain path leaves to the writer
            doc[rng.choice([7, "ключ", "k"])] = rng.choice(["\ud800x", "ok", 2**80, -(2**70)])
        docs.append(doc)
    return docs


def _store_rows(path: Path, docs: list[Any], fresh: bool, commit_fresh: bool = True) -> Any:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _written_rows(path, docs, fresh, commit_fresh, monkeypatch)


def _written_rows(
    path: Path, docs: list[Any], fresh: bool, commit_fresh: bool, monkeypatch: pytest.MonkeyPatch
) -> Any:
    from etcher import _reclaim

    monkeypatch.setattr(scope.UnitScope, "takes_fresh", fresh)
    if not commit_fresh:  # a scope offering commit_writes() alone
        monkeypatch.delattr(scope.UnitScope, "commit_fresh")
    monkeypatch.setattr(_reclaim, "clock", lambda: 1.0e9)  # the same expiry stamps
    with DB(f"sqlite:///{path}") as db:
        uids = db._session.uids
        uids._start("t", 0)  # the same uids in both stores
        for i in range(140):  # a spilled root
            db[f"r{i}"] = i
        stored = []
        for i, doc in enumerate(docs):
            try:
                db[f"d{i}"] = doc
            except ValueError as exc:  # a lone surrogate: refused, the store untouched
                assert f"d{i}" not in db, exc
                continue
            stored.append(doc)
            db[f"d{i}"]["extra"] = {"e": [1, 2]}
        db["d0"] = {"replaced": [1]}  # a replacement: reads and collects the old document
        db.pop("d1", None)
        db["r0"] = "over"  # a scalar over a scalar: the item keeps its number
        db["d2"] = 5  # a scalar over a document (or a new field): the graph collects it
        with contextlib.suppress(ValueError):
            db["r1"] = "\ud800"  # refused with its path, the store untouched
        with db.transaction() as tx:  # savepoints: the unit's ordinary buffers
            tx["t"] = {"in": ["tx"]}
            with contextlib.suppress(TypeError):
                tx["bad"] = {"ok": [1], "no": object()}  # rolled back alone
            tx["t"]["more"] = {"m": stored[1]}
        assert db.check().ok
        conn = db._session.backend._conn()
        return (
            conn.execute("SELECT name, type, lo, hi, value FROM keys ORDER BY name").fetchall(),
            conn.execute("SELECT * FROM hashes ORDER BY name, field").fetchall(),
            conn.execute("SELECT * FROM list_items ORDER BY name, pos").fetchall(),
        )


@pytest.mark.parametrize("seed", range(12))
def test_documents_written_with_fresh_contents_store_the_same_rows(
    seed: int, tmp_path: Path
) -> None:
    """Whole stores written with the unit's fresh contents on and off, and on through
    ``commit_writes()`` alone (no ``commit_fresh()``), hold the same rows."""
    docs = _documents(random.Random(seed))
    on = _store_rows(tmp_path / "on.db", docs, True)
    general = _store_rows(tmp_path / "general.db", docs, True, commit_fresh=False)
    off = _store_rows(tmp_path / "off.db", docs, False)
    assert on == general
    assert on == off


def test_a_new_document_reaches_the_scope_as_fresh_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    commit = scope.UnitScope.commit_fresh

    def spy(held: Any, writes: Any, fresh: Any) -> None:
        seen.append((len(writes), sorted(map(len, fresh.values()))))
        commit(held, writes, fresh)

    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        monkeypatch.setattr(scope.UnitScope, "commit_fresh", spy)
        db["doc"] = {"a": 1, "sub": {"b": 2}, "l": [1, 2, 3]}
        # The root's header and content written; three headers, two contents, one list fresh.
        assert seen == [(2, [1, 2, 3, 3, 3, 3])], seen
        assert db["doc"]() == {"a": 1, "sub": {"b": 2}, "l": [1, 2, 3]}


FRESH_ODD = [None, None, None, "wrong type", "list", "twice", "unread", "created"]
"""What a ``commit_fresh()`` batch has that its shortcut leaves to ``commit_writes()``
(``None``: nothing; it takes the batch unless a content outgrows its packed form)."""


def _fresh_batch(
    rng: random.Random, odd: str | None
) -> tuple[list[Any], dict[str, Any], list[str]]:
    """Writes and fresh contents as core encodes them, and the keys read in the scope."""
    fresh: dict[str, Any] = {}
    for i in range(rng.randint(0, 6)):
        big = rng.random() < 0.1  # (a content past the packed limits: the general path)
        if rng.random() < 0.7:
            fresh[f"new{i}"] = _mapping(rng, False) if big else {b"f": b"v", b"g": b"w"}
        else:
            n = rng.choice([packed.MAX_ENTRIES + 1, 1]) if big else rng.choice([1, 2])
            fresh[f"new{i}"] = [b"i" * (packed.MAX_BYTES if big and n == 1 else 1)] * n
    read = rng.sample(["hash", "bighash", "missing", "string", "list"], rng.randint(0, 5))
    hashes = [key for key in read if key not in ("string", "list")]
    writes: list[Any] = [
        (rng.choice(["hset", "hreplace"]), (key, _mapping(rng, False)))
        for key in rng.sample(hashes, rng.randint(0, len(hashes)))
    ]
    if odd == "wrong type":
        writes.append((rng.choice(["hset", "hreplace"]), ("string", {b"f": b"v"})))
        read.append("string")
    elif odd == "list":
        writes.append((rng.choice(["hset", "hreplace"]), ("list", {b"f": b"v"})))
        read.append("list")
    elif odd == "twice":
        writes.append(("hset", ("hash", {b"f": b"1"})))
        writes.append((rng.choice(["hset", "hreplace"]), ("hash", {b"g": b"2"})))
        read.append("hash")
    elif odd == "unread":
        writes.append(("hset", ("unread", {b"f": b"v"})))
    elif odd == "created":  # a fresh key the scope's cache knows: not new after all
        fresh["hash"] = {b"f": b"v"}
        read.append("hash")
    rng.shuffle(writes)
    return writes, fresh, sorted(set(read))


@pytest.mark.parametrize("seed", range(8 * 10))
def test_commit_fresh_ends_as_commit_writes_ends(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``commit_fresh(writes, fresh)`` ends as ``commit_writes(writes, (), fresh)``: the
    same rows (packed or spilled, counts), or the same error with the store untouched;
    its shortcut takes every batch of the usual shape whose rows stay packed."""
    rng = random.Random(5000 + seed)
    odd = FRESH_ODD[seed % len(FRESH_ODD)]
    writes, fresh, read = _fresh_batch(rng, odd)
    taken: list[bool] = []
    shortcut = scope._apply_fresh

    def spy(*args: Any) -> bool:
        taken.append(shortcut(*args))
        return taken[-1]

    monkeypatch.setattr(scope, "_apply_fresh", spy)
    trusted, general = SQLiteMemoryBackend(), SQLiteMemoryBackend()
    _prefill(trusted)
    _prefill(general)
    before = _tables(trusted)

    got = _commit(trusted, read, lambda held: held.commit_fresh(list(writes), dict(fresh)))
    want = _commit(general, read, lambda held: held.commit_writes(list(writes), (), dict(fresh)))
    assert type(got) is type(want), (got, want)
    assert str(got) == str(want)
    assert _tables(trusted) == (before if want is not None else _tables(general))
    packs = all(
        len(c) <= packed.MAX_ENTRIES and len(packed.pack(c)) <= packed.MAX_BYTES
        for c in fresh.values()
    )
    if odd is None and packs:
        assert taken == [True], (writes, fresh)
    elif odd is not None:
        assert True not in taken, (writes, fresh)


def test_commit_writes_still_checks_fresh_contents() -> None:
    """Only ``commit_fresh()`` takes contents unchecked: ``commit_writes()`` refuses a
    fresh content ``hset``/``rpush`` refuses, writing nothing, and normalizes what they
    normalize (a ``str`` value is stored as its UTF-8 bytes)."""
    backend = SQLiteMemoryBackend()
    _prefill(backend)
    before = _tables(backend)
    for fresh in (
        {"new": {b"f": None}},
        {"new": [b"a", object()]},
        {"new": {b"f": b"v"}, "other": [None]},
    ):
        held = backend.unit_scope(True)
        with pytest.raises(TypeError, match="store values must be bytes"), held:
            backend.hgetall("hash")
            held.commit_writes([("hset", ("hash", {b"f0": b"new"}))], (), fresh)
        drop_scoped_tx()
        assert _tables(backend) == before, fresh
    held = backend.unit_scope(True)
    with held:
        backend.hgetall("hash")
        held.commit_writes([], (), {"new": {b"f": "text"}, "items": ["a", b"b"]})
    assert backend.hgetall("new") == {b"f": b"text"}
    assert backend.lrange("items", 0, -1) == [b"a", b"b"]


_SHAPES = ["missing", "hash", "bighash", "string", "list"]


@pytest.mark.parametrize("header", _SHAPES)
@pytest.mark.parametrize("content", _SHAPES)
def test_read_item_reads_as_hgetall_and_hget(header: str, content: str) -> None:
    """``UnitScope.read_item(refs, content, field)`` returns or raises what
    ``hgetall(refs)`` then ``hget(content, field)`` do, and leaves the scope's row
    cache as they leave it, for every type of each key, a field present or absent,
    and either row already cached."""
    for field in (b"f1", b"nope"):
        for cached in (None, header, content):
            outcomes = []
            for one in (True, False):
                backend = SQLiteMemoryBackend()
                _prefill(backend)
                _prefill_other(backend)
                held = backend.unit_scope(True)
                got: Any
                try:
                    with held:
                        if cached is not None:
                            with contextlib.suppress(WrongTypeError):
                                backend.hgetall(cached)
                        try:
                            if one:
                                got = held.read_item(header, content, field)
                            else:
                                got = (backend.hgetall(header), backend.hget(content, field))
                        except WrongTypeError as exc:
                            got = (type(exc), str(exc))
                        tx = scope.ops.SCOPE.tx
                        rows = {k: list(v) if v else v for k, v in tx.meta.items()}
                        raise _Done
                except _Done:
                    pass
                outcomes.append((got, rows))
            assert outcomes[0] == outcomes[1], (header, content, field, cached)


class _Done(Exception):
    """Leaves the scope, rolled back."""


def _prefill_other(backend: SQLiteMemoryBackend) -> None:
    # (fields f1 present in both hashes: an item found packed and spilled)
    backend.hset("hash", mapping={b"f1": b"one"})
    backend.hset("bighash", mapping={b"f1": b"big"})


def test_a_write_through_a_handle_reads_in_one_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rd[k] = v`` on SQLite reads the node's header and the item through
    ``UnitScope.read_item`` (one statement), for a document and for a scalar."""
    seen: list[tuple[str, str, bytes]] = []
    read = scope.UnitScope.read_item

    def spy(held: Any, refs: str, content: str, field: bytes) -> Any:
        seen.append((refs, content, field))
        return read(held, refs, content, field)

    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        db["doc"] = {"a": 1}
        monkeypatch.setattr(scope.UnitScope, "read_item", spy)
        db["doc"]["b"] = [1]
        db["doc"]["a"] = 2
        assert [field for _, _, field in seen] == [b"sb", b"sa"]
        assert db["doc"]() == {"a": 2, "b": [1]}
