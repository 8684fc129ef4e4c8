"""Per-operation cost of the SQLite backend: wall time, SQL statements, time inside SQL.

    python etcher_sqlite/tools/profile_storage.py [--profile OP]

Runs a small-document write, a field read, single appends and a materialize on a
fresh store in a temporary directory, through a ``sqlite3.Connection`` subclass
that counts and times every statement. ``--profile write`` (or read, append,
materialize) prints the top of a cProfile report for that operation. Absolute
times depend on the machine; compare runs made side by side. On a shared machine
the ``cpu`` column (this process's CPU time; WAL commits at ``synchronous=NORMAL``
do not wait for the disk) is far steadier than wall time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from etcher import DB

STATS: Counter[str] = Counter()
SQL_TIME = [0.0]


class CountingConnection(sqlite3.Connection):
    """Counts and times statements by their first word (COMMIT, INSERT, SELECT...)."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        t0 = time.perf_counter()
        try:
            return super().execute(sql, *args)
        finally:
            SQL_TIME[0] += time.perf_counter() - t0
            STATS[sql.split(None, 1)[0].upper()] += 1

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        t0 = time.perf_counter()
        try:
            return super().executemany(sql, *args)
        finally:
            SQL_TIME[0] += time.perf_counter() - t0
            STATS[sql.split(None, 1)[0].upper() + "(many)"] += 1


_connect = sqlite3.connect


def _counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs.setdefault("factory", CountingConnection)
    return _connect(*args, **kwargs)


sqlite3.connect = _counting_connect  # type: ignore[assignment]


def small_doc(i: int) -> dict[str, Any]:
    return {
        "name": f"user{i}",
        "age": 20 + i % 50,
        "email": f"user{i}@example.com",
        "active": i % 2 == 0,
        "score": i * 1.5,
        "address": {"city": ["Paris", "Oslo", "Lima"][i % 3], "zip": f"{i:05d}", "street": "Main"},
        "tags": ["a", "b", i],
    }


def big_doc(containers: int) -> dict[str, Any]:
    rng = random.Random(7)
    doc: dict[str, Any] = {}
    made = 1
    level = [doc]
    while made < containers:
        nxt = []
        for parent in level:
            for j in range(rng.randint(2, 6)):
                if made >= containers:
                    break
                child: Any = {"k": j, "s": "x" * 10} if rng.random() < 0.6 else [j, "y", 2.5]
                if isinstance(parent, dict):
                    parent[f"c{j}"] = child
                else:
                    parent.append(child)
                made += 1
                if isinstance(child, dict) or rng.random() < 0.5:
                    nxt.append(child)
        level = nxt or level
    return doc


def measure(label: str, n: int, fn: Any, prof: cProfile.Profile | None) -> None:
    STATS.clear()
    SQL_TIME[0] = 0.0
    if prof is not None:
        prof.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if prof is not None:
        prof.disable()
    per = {k: round(v / n, 2) for k, v in sorted(STATS.items())}
    total = sum(STATS.values()) / n
    print(
        f"{label:<24} {dt / n * 1e6:9.1f} us/op  cpu {cpu / n * 1e6:9.1f} us/op  "
        f"sql {SQL_TIME[0] / n * 1e6:8.1f} us/op  "
        f"{total:6.2f} stmts/op  {per}"
    )


def wal_frames_per_write(writes: int = 50) -> float:
    """Pages one small-document assignment appends to the WAL (a machine-independent cost)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.db"
        db = DB(str(path))
        for i in range(200):  # a root big enough to be spilled, as in the benchmarks
            db[f"warm{i}"] = small_doc(i)
        raw = _connect(path, isolation_level=None)
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        for i in range(writes):
            db[f"d{i}"] = small_doc(i)
        frames = (path.with_name("w.db-wal").stat().st_size - 32) / (4096 + 24)
        raw.close()
        db.close()
        return frames / writes


def diskcache_figures(n: int, big: int) -> None:
    """The same operations on diskcache (one pickled value per document; a Deque)."""
    from diskcache import Cache, Deque

    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(str(Path(tmp) / "dc"))

        def write(i: int) -> None:
            cache[f"d{i}"] = small_doc(i)

        measure("dc write small doc", n, write, None)
        measure("dc read_field", n, lambda i: cache[f"d{(i * 7) % n}"]["address"]["city"], None)
        measure("dc read small doc", n, lambda i: cache[f"d{(i * 7) % n}"], None)
        deque = Deque(directory=str(Path(tmp) / "dq"))
        measure("dc Deque append", n, lambda i: deque.append(i), None)
        cache["big"] = big_doc(big)
        measure(f"dc materialize {big}", 3, lambda i: cache["big"], None)
        cache.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", choices=["write", "read", "append", "materialize"])
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--big", type=int, default=2000)
    parser.add_argument(
        "--diskcache", action="store_true", help="also time the same operations on diskcache"
    )
    args = parser.parse_args()
    if args.diskcache:
        diskcache_figures(args.docs, args.big)
    with tempfile.TemporaryDirectory() as tmp:
        db = DB(str(Path(tmp) / "p.db"))
        profs = {
            name: cProfile.Profile() if args.profile == name else None
            for name in ("write", "read", "append", "materialize")
        }
        n = args.docs

        def write(i: int) -> None:
            db[f"d{i}"] = small_doc(i)

        measure("write small doc", n, write, profs["write"])

        def read(i: int) -> None:
            db[f"d{(i * 7) % n}"]["address"]["city"]

        measure("read_field (3 lookups)", n, read, profs["read"])
        measure("read small doc db[k]()", n, lambda i: db[f"d{(i * 7) % n}"](), None)
        db["lst"] = []
        lst = db["lst"]
        measure("list append", n, lambda i: lst.append(i), profs["append"])
        db["big"] = big_doc(args.big)
        measure(f"materialize {args.big}", 3, lambda i: db["big"](), profs["materialize"])
        print(f"{'WAL pages per write':<24} {wal_frames_per_write():9.1f}")
        t0 = time.perf_counter()
        del db["big"]
        print(f"{'delete big':<24} {(time.perf_counter() - t0) * 1e6:9.1f} us")
        for prof in profs.values():
            if prof is not None:
                pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
