"""How fast the parts of materializing a wide dict grow, beside etcher's own ``()`` (SQLite).

Usage::

    python benchmarks/wide_floor.py [--sizes 25000 100000] [--rounds 5]

For deep_wide.py's ``wide`` shape (one dict of N keys, each a small dict ``{"v": i}``) at
each size, CPU seconds (best of ``--rounds``) of:

* ``sql``: the statements of the children's level alone, ``IN`` lists of
  ``ops.CHUNK`` content keys in one read transaction, rows fetched, nothing decoded;
* ``python``: building the same result in plain Python from MessagePack blobs shaped
  like etcher's packed contents (one ``unpackb`` and one small dict per child), no store;
* ``etcher``: ``db["w"]()``.

Why: the growth target asks x4 the size for at most x5 the time. When a plain-Python build
of the result grows as fast as etcher's ``()``, the growth comes from the interpreter
(allocation, a map of N entries, the cache), not from etcher's walk.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable

import msgpack

from etcher import DB
from etcher_sqlite import ops
from etcher_sqlite.subtree import SQL_LEVEL


def best(rounds: int, run: Callable[[], object]) -> float:
    """The least CPU time of ``rounds`` calls of ``run``."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def sql_level(path: str, names: list[str]) -> Callable[[], None]:
    """The children's level read the way etcher's walk reads it, rows fetched and dropped."""
    conn = sqlite3.connect(path, isolation_level=None)

    def run() -> None:
        conn.execute("BEGIN")
        for start in range(0, len(names), ops.CHUNK):
            batch = names[start : start + ops.CHUNK]
            conn.execute(SQL_LEVEL.format(",".join("?" * len(batch))), batch).fetchall()
        conn.execute("ROLLBACK")

    return run


def python_build(n: int) -> Callable[[], dict[str, dict[str, int]]]:
    """The same result built from packed blobs in plain Python (the call returns it)."""
    blobs = [msgpack.packb({b"1|sv": b"1|i%d" % i}) for i in range(n)]
    keys = [f"k{i}" for i in range(n)]

    def run() -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        objects: dict[str, dict[str, int]] = {}
        for key, blob in zip(keys, blobs, strict=True):
            child: dict[str, int] = {}
            for field, value in msgpack.unpackb(blob, raw=True).items():
                child[field.partition(b"|")[2][1:].decode()] = int(value.partition(b"|")[2][1:])
            out[key] = objects[key] = child
        return out

    return run


def measure(n: int, rounds: int) -> dict[str, float]:
    """CPU seconds of the three parts for a wide dict of ``n`` keys."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "wide.db")
        db = DB(path)
        try:
            db["w"] = {f"k{i}": {"v": i} for i in range(n)}
            handle = db["w"]
            prefix = db._session.layout.content_prefix
            conn = sqlite3.connect(path)
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM keys WHERE name LIKE ? AND name != ?",
                    (prefix + "D%", prefix + handle.uid),
                )
            ]
            conn.close()
            return {
                "sql": best(rounds, sql_level(path, names)),
                "python": best(rounds, python_build(n)),
                "etcher": best(rounds, handle),
            }
        finally:
            db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[25000, 100000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    small, big = (measure(n, args.rounds) for n in args.sizes)
    for part in ("sql", "python", "etcher"):
        growth = big[part] / small[part]
        print(f"{part:7} {small[part]:.3f} s -> {big[part]:.3f} s  (x{growth:.2f} for x4)")


if __name__ == "__main__":
    main()
