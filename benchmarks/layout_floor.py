"""What SQLite itself needs for etcher's everyday operations, next to etcher and diskcache.

Run: ``python benchmarks/layout_floor.py [--rounds 5] [--n 2000]``.

The harness's ``floor`` implementation (benchmarks/_floor_wl.py) is the cheapest
way to store the *data*: one row per field. This tool answers a different
question, the one a missed speed target has to answer: how fast could etcher be
on this machine if its own Python cost nothing? Each operation is written here
as the bare ``sqlite3`` statements that etcher's layout needs for it, on a file
created by etcher-sqlite itself (same tables, same ``WAL``/``synchronous``
settings), with the same packing (MessagePack) and value tags, and with no
Python around them beyond building the rows:

- a node is two keys (content ``c:`` and header ``h``/back-references ``r:``),
  each a ``keys`` row with a fresh random version (what ``WATCH`` compares);
- a new entry in a dict takes the parent's next insertion sequence (a header
  field, so the parent's header row is rewritten);
- a write through a handle first checks that the node is still live (its
  header row), because another process may have collected it;
- a read of a whole document is one snapshot (``BEGIN``…``COMMIT``).

``write_doc (one key)`` is the same write with each dict node's header kept in
its content row (one key per node): what that layout change could buy at most.

The targets against etcher 0.2.3 that are still missed (and Redis's) get their layout
floor from ``benchmarks/layout_replay.py``, which replays the statements a run of etcher
issued for the harness's own phase, so it needs no hand-written copy of each operation.

Every figure is CPU time per operation (``time.process_time``), median over
rounds, all measured in one process one after the other, so the ratios hold on
a shared machine even when the absolute times drift.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
from _data import big_doc
from _report import layout_floor_table
from hotpath import cpu_per_op, diskcache_ops, etcher_ops, small_doc

from etcher import DB

UPSERT = (
    "INSERT INTO keys (name, type, version, lo, hi, value) VALUES (?, ?, ?, 0, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET type = excluded.type, version = excluded.version, "
    "lo = excluded.lo, hi = excluded.hi, value = excluded.value"
)
_UPSERT_HEAD, _UPSERT_TAIL = UPSERT.split(" ON CONFLICT", 1)


def upsert_rows(c: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Whole ``keys`` rows in one statement of as many VALUES, as etcher writes a few."""
    values = ", (?, ?, ?, 0, ?, ?)" * (len(rows) - 1)
    c.execute(_UPSERT_HEAD + values + " ON CONFLICT" + _UPSERT_TAIL, [x for r in rows for x in r])


ADD_FIELD = (
    "INSERT INTO hashes (name, field, value) VALUES (?, ?, ?) "
    "ON CONFLICT (name, field) DO UPDATE SET value = excluded.value"
)
HASH, LIST = 2, 3
C, R = "{default}:c:", "{default}:r:"


def _version() -> int:
    return random.getrandbits(63)


def _decode(raw: bytes) -> Any:
    # Only the tags the small document uses: the floor may be as lean as possible.
    tag, payload = raw[:1], raw[1:]
    if tag == b"s":
        return payload.decode()
    if tag == b"i":
        return int(payload)
    raise ValueError(raw)


def _item(raw: bytes) -> bytes:
    return raw[raw.index(b"|") + 1 :]


class LayoutFloor:
    """etcher's layout driven by bare statements on an etcher-sqlite file."""

    def __init__(self, path: str, one_key: bool = False) -> None:
        DB(f"sqlite:///{path}").close()  # etcher-sqlite creates the file and its tables
        self.c = sqlite3.connect(path, isolation_level=None)
        self.c.execute("PRAGMA synchronous = NORMAL")
        self.one_key = one_key
        self.token = os.urandom(8).hex()
        self.n = 0
        self.pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        self.root_seq = 0
        self.c.execute("BEGIN IMMEDIATE")
        self.c.execute(
            UPSERT, (R + "Droot", HASH, _version(), 2, self.pack(self._header(b"d", 0, None)))
        )
        # The root of a store with thousands of entries is spilled: its fields are member rows.
        self.c.execute(UPSERT, (C + "Droot", HASH, _version(), 0, None))
        self.c.execute("COMMIT")

    def _uid(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.token}{self.n:x}"

    def _header(self, kind: bytes, seq: int, parent: str | None) -> dict[bytes, bytes]:
        head = {b"#k": kind, b"#s": b"%d" % seq}
        if parent is not None:
            head[parent.encode()] = b"1"
        return head

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        c = self.c
        a, b, lst = self._uid("D"), self._uid("D"), self._uid("L")
        top = {
            b"sname": b"1|s" + doc["name"].encode(),
            b"saddress": b"2|@" + b.encode(),
            b"stags": b"3|@" + lst.encode(),
        }
        addr = {
            b"scity": b"1|s" + doc["address"]["city"].encode(),
            b"szip": b"2|s" + doc["address"]["zip"].encode(),
        }
        items = [b"s" + t.encode() for t in doc["tags"]]
        c.execute("BEGIN IMMEDIATE")
        # The old value of the field (to release what it linked) and the root's header.
        c.execute(
            "SELECT value FROM hashes WHERE name = ? AND field = ?",
            (C + "Droot", b"s" + key.encode()),
        ).fetchone()
        c.execute("SELECT value FROM keys WHERE name = ?", (R + "Droot",)).fetchone()
        self.root_seq += 1
        c.execute(
            ADD_FIELD, (C + "Droot", b"s" + key.encode(), b"%d|@%s" % (self.root_seq, a.encode()))
        )
        c.execute(
            "UPDATE keys SET hi = hi + 1, version = ? WHERE name = ?", (_version(), C + "Droot")
        )
        c.execute(
            UPSERT,
            (R + "Droot", HASH, _version(), 2, self.pack(self._header(b"d", self.root_seq, None))),
        )
        if self.one_key:
            rows = [
                (C + a, HASH, _version(), 6, self.pack({**top, **self._header(b"d", 4, "Droot")})),
                (C + b, HASH, _version(), 5, self.pack({**addr, **self._header(b"d", 3, a)})),
                (C + lst, LIST, _version(), 2, self.pack(items)),
                (R + lst, HASH, _version(), 3, self.pack(self._header(b"l", 0, a))),
            ]
        else:
            rows = [
                (C + a, HASH, _version(), 3, self.pack(top)),
                (R + a, HASH, _version(), 3, self.pack(self._header(b"d", 4, "Droot"))),
                (C + b, HASH, _version(), 2, self.pack(addr)),
                (R + b, HASH, _version(), 3, self.pack(self._header(b"d", 3, a))),
                (C + lst, LIST, _version(), 2, self.pack(items)),
                (R + lst, HASH, _version(), 3, self.pack(self._header(b"l", 0, a))),
            ]
        upsert_rows(c, rows)
        c.execute("COMMIT")

    def _root_field(self, key: str) -> str:
        row = self.c.execute(
            "SELECT value FROM hashes WHERE name = ? AND field = ?",
            (C + "Droot", b"s" + key.encode()),
        ).fetchone()
        return _item(row[0])[1:].decode()

    def read_doc(self, key: str) -> dict[str, Any]:
        c = self.c
        uid = self._root_field(key)
        c.execute("BEGIN")
        (blob,) = c.execute("SELECT value FROM keys WHERE name = ?", (C + uid,)).fetchone()
        top = msgpack.unpackb(blob, raw=True)
        children = [_item(v)[1:].decode() for v in top.values() if b"|@" in v]
        rows = c.execute(
            f"SELECT name, value FROM keys WHERE name IN ({','.join('?' * len(children))})",
            [C + u for u in children],
        ).fetchall()
        c.execute("COMMIT")
        nodes = {name[len(C) :]: msgpack.unpackb(value, raw=True) for name, value in rows}

        def build(content: Any) -> Any:
            if isinstance(content, list):
                return [_decode(v) for v in content]
            out = {}
            for field, raw in sorted(
                content.items(), key=lambda kv: int(kv[1][: kv[1].index(b"|")])
            ):
                value = _item(raw)
                out[field[1:].decode()] = (
                    build(nodes[value[1:].decode()]) if value[:1] == b"@" else _decode(value)
                )
            return out

        return build(top)

    def read_field3(self, key: str, f1: str, f2: str) -> Any:
        c = self.c
        uid = self._root_field(key)
        (blob,) = c.execute("SELECT value FROM keys WHERE name = ?", (C + uid,)).fetchone()
        uid = _item(msgpack.unpackb(blob, raw=True)[b"s" + f1.encode()])[1:].decode()
        (blob,) = c.execute("SELECT value FROM keys WHERE name = ?", (C + uid,)).fetchone()
        return _decode(_item(msgpack.unpackb(blob, raw=True)[b"s" + f2.encode()]))

    def append(self, uid: str, value: int) -> None:
        # A list past 128 items is spilled (one row per item), as every list here soon is.
        c = self.c
        c.execute("BEGIN IMMEDIATE")
        c.execute("SELECT value FROM keys WHERE name = ?", (R + uid,)).fetchone()  # still live?
        (hi,) = c.execute("SELECT hi FROM keys WHERE name = ?", (C + uid,)).fetchone()
        c.execute(
            "INSERT INTO list_items (name, pos, value) VALUES (?, ?, ?)",
            (C + uid, hi, b"i%d" % value),
        )
        c.execute(
            "UPDATE keys SET hi = ?, version = ? WHERE name = ?", (hi + 1, _version(), C + uid)
        )
        c.execute("COMMIT")

    def set_scalar(self, uid: str, field: str, value: int) -> None:
        c = self.c
        c.execute("BEGIN IMMEDIATE")
        c.execute("SELECT value FROM keys WHERE name = ?", (R + uid,)).fetchone()  # still live?
        (blob,) = c.execute("SELECT value FROM keys WHERE name = ?", (C + uid,)).fetchone()
        content = msgpack.unpackb(blob, raw=True)
        name = b"s" + field.encode()
        old = content[name]
        content[name] = old[: old.index(b"|") + 1] + b"i%d" % value
        c.execute(UPSERT, (C + uid, HASH, _version(), len(content), self.pack(content)))
        c.execute("COMMIT")

    def new_node(self, kind: str, content: dict[bytes, bytes] | list[bytes]) -> str:
        uid = self._uid(kind)
        self.c.execute("BEGIN IMMEDIATE")
        upsert_rows(
            self.c,
            [
                (
                    C + uid,
                    LIST if kind == "L" else HASH,
                    _version(),
                    max(1, len(content)),
                    self.pack(content),
                ),
                (
                    R + uid,
                    HASH,
                    _version(),
                    2,
                    self.pack(self._header(kind.lower().encode(), 0, None)),
                ),
            ],
        )
        self.c.execute("COMMIT")
        return uid


def _value(raw: bytes) -> Any:
    """Every tag a stored scalar can have (links are resolved by the caller)."""
    tag = raw[:1]
    if tag == b"s":
        return raw[1:].decode()
    if tag == b"i":
        return int(raw[1:])
    if tag == b"f":
        return float(raw[1:])
    if tag == b"x":
        return int(raw[1:], 16)
    return {b"T": True, b"F": False, b"N": None}[tag]


def _members(c: sqlite3.Connection, name: str, kind: int) -> Any:
    if kind == HASH:
        return dict(c.execute("SELECT field, value FROM hashes WHERE name = ?", (name,)))
    return [
        v for (v,) in c.execute("SELECT value FROM list_items WHERE name = ? ORDER BY pos", (name,))
    ]


def floor_materialize(c: sqlite3.Connection, key: str) -> Any:
    """``db[key]()`` as bare statements: one snapshot, one query per level, then build."""
    c.execute("BEGIN")
    (kind, blob) = c.execute(
        "SELECT type, value FROM keys WHERE name = ?", (C + "Droot",)
    ).fetchone()
    root = msgpack.unpackb(blob, raw=True) if blob is not None else _members(c, C + "Droot", kind)
    top = _item(root[b"s" + key.encode()])[1:].decode()
    contents: dict[str, Any] = {}
    level = [top]
    while level:
        nxt: list[str] = []
        for start in range(0, len(level), 500):
            chunk = [C + u for u in level[start : start + 500]]
            rows = c.execute(
                f"SELECT name, type, value FROM keys WHERE name IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for name, kind, blob in rows:
                content = (
                    msgpack.unpackb(blob, raw=True) if blob is not None else _members(c, name, kind)
                )
                contents[name[len(C) :]] = content
                for raw in content.values() if kind == HASH else content:
                    at = raw.find(b"@")
                    if at >= 0 and (at == 0 or raw[at - 1 : at] == b"|"):
                        nxt.append(raw[at + 1 :].decode())
        level = nxt
    c.execute("COMMIT")

    def build(uid: str) -> Any:
        content = contents[uid]
        if isinstance(content, list):
            return [build(v[1:].decode()) if v[:1] == b"@" else _value(v) for v in content]
        out = {}
        for field, raw in sorted(content.items(), key=lambda kv: int(kv[1][: kv[1].index(b"|")])):
            v = _item(raw)
            name = field[1:].decode() if field[:1] == b"s" else int(field[1:])
            out[name] = build(v[1:].decode()) if v[:1] == b"@" else _value(v)
        return out

    return build(top)


BIG = 1000
"""Containers of the big document (the harness's materialize_big at scale 0.1)."""


def big_ops(tmp: str) -> dict[str, dict[str, Callable[[int], Any]]]:
    """materialize_big for etcher, its layout floor (on etcher's own file) and diskcache."""
    from diskcache import Cache

    doc = big_doc(BIG)
    path = str(Path(tmp) / "big.db")
    db = DB(f"sqlite:///{path}")
    db["big"] = doc
    handle = db["big"]
    conn = sqlite3.connect(path, isolation_level=None)
    assert floor_materialize(conn, "big") == doc  # the floor does the real work
    cache = Cache(str(Path(tmp) / "bigdc"))
    cache["big"] = doc
    return {
        "etcher": {"materialize_big": lambda i: handle()},
        "floor": {"materialize_big": lambda i: floor_materialize(conn, "big")},
        "diskcache": {"materialize_big": lambda i: cache["big"]},
    }


def floor_ops(path: str, n: int, one_key: bool = False) -> dict[str, Callable[[int], Any]]:
    f = LayoutFloor(path, one_key)
    for i in range(n):
        f.write_doc(f"r{i}", small_doc(i))
    lst = f.new_node("L", [])
    f.c.execute("UPDATE keys SET value = NULL, hi = 0 WHERE name = ?", (C + lst,))
    rd = f.new_node("D", {b"sn": b"1|i0"})
    if one_key:
        return {"write_doc": lambda i: f.write_doc(f"w{i}", small_doc(i))}
    # The floor must do the real work: check it reads back what it wrote.
    assert f.read_doc("r7") == small_doc(7)
    assert f.read_field3("r7", "address", "city") == "Oslo"
    return {
        "write_doc": lambda i: f.write_doc(f"w{i}", small_doc(i)),
        "read_doc": lambda i: f.read_doc(f"r{i}"),
        "read_field3": lambda i: f.read_field3(f"r{i}", "address", "city"),
        "append": lambda i: f.append(lst, i),
        "set_scalar": lambda i: f.set_scalar(rd, "n", i),
    }


TARGETS = {
    "write_doc": 0.7,
    "read_doc": 0.3,
    "read_field3": 1.0,
    "append": 1.0,
    "materialize_big": 0.3,
}
"""Issue 13's speed targets against diskcache, per operation here (``None``: no target)."""


def measure(n: int, rounds: int) -> list[dict[str, Any]]:
    """One row per operation: CPU µs of etcher, the layout floor(s) and diskcache."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        size = n * rounds
        sets = {
            "etcher": etcher_ops(DB(f"sqlite:///{Path(tmp) / 'etcher.db'}"), size),
            "floor": floor_ops(str(Path(tmp) / "floor.db"), size),
            "floor_one_key": floor_ops(str(Path(tmp) / "floor1.db"), size, one_key=True),
            "diskcache": diskcache_ops(tmp, size),
        }
        for op in sets["floor"]:
            row: dict[str, Any] = {"op": op, "target": TARGETS.get(op)}
            for name, ops in sets.items():
                if op in ops:
                    row[name] = cpu_per_op(ops[op], n, rounds) * 1e6
            rows.append(row)
        big = big_ops(tmp)
        times = max(1, n // 100)  # each call reads 1,000 containers
        row = {"op": "materialize_big", "target": TARGETS["materialize_big"]}
        for name, ops in big.items():
            row[name] = cpu_per_op(ops["materialize_big"], times, rounds) * 1e6
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    rows = measure(args.n, args.rounds)
    print("\n".join(layout_floor_table(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
