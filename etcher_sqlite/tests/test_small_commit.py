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


ODD = [None, "values", "wrong type", "twice", "other command", "no key", "unread"]
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
    elif odd == "unread":
        writes.append(("hset", ("unread", {b"f": b"v"})))
    rng.shuffle(writes)
    return writes, created, sorted(set(read))


def _commit(backend: SQLiteMemoryBackend, batch: tuple[list[Any], set[str], list[str]]) -> Any:
    """Run the batch as a unit would (reads in the scope, then commit_writes); the error."""
    writes, created, read = batch
    held = backend.unit_scope(True)
    try:
        with held:
            for key in read:
                # The unit's read: the scope caches the row (a wrong type's too).
                with contextlib.suppress(WrongTypeError):
                    backend.hgetall(key)
            held.commit_writes(writes, created)
    except Exception as exc:
        drop_scoped_tx()
        return exc
    return None


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
    got = _commit(fast, batch)
    monkeypatch.setattr(scope, "_apply_small", lambda *args: False)
    want = _commit(general, batch)
    assert type(got) is type(want), (got, want)
    assert str(got) == str(want)
    assert _tables(fast) == (before if want is not None else _tables(general))
    if odd is None:  # only the usual shapes: the shortcut took them
        assert taken == [True], batch
    elif odd != "no key":  # (that one fails before the scope's commit)
        assert True not in taken, batch


def test_a_new_document_and_a_field_set_take_the_small_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[bool] = []
    small = scope._apply_small

    def spy(*args: Any) -> bool:
        taken.append(small(*args))
        return taken[-1]

    with DB(f"sqlite:///{tmp_path / 's.db'}") as db:
        for i in range(150):  # a spilled root, as in any real store
            db[f"d{i}"] = {"i": i}
        monkeypatch.setattr(scope, "_apply_small", spy)
        doc = {"name": "x", "n": 1, "on": True, "none": None, "tags": [0.5, "a"], "sub": {"k": 1}}
        db["doc"] = doc
        db["doc"]["n"] = 2
        db["doc"]["sub"] = {"k": 2}  # replaces a linked node: reads and collects it
        assert taken[:2] == [True, True]
        assert db["doc"]() == {**doc, "n": 2, "sub": {"k": 2}}
        assert db.check().ok
