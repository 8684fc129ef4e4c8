"""How the cost of deep and wide documents grows with their size (issue 13).

    python benchmarks/deep_wide.py [--backend sqlite|redis|memory] [--shape chain ...]
                                   [--sizes 1000 4000 16000] [--ops store materialize delete]

For each shape and size it stores one document (``db["x"] = doc``), reads it back
(``db["x"]()``), runs ``db.check()`` and deletes it (``del db["x"]`` with grace 0, so
the delete does the key deletions too), timing each step, and prints the time per
step and the growth ratio between consecutive sizes: linear growth is a ratio close to
the size ratio (x4 size -> at most x5 time is the target). Shapes:

* ``chain``: ``{"next": {"next": ...}}``, one dict per level;
* ``lchain``: ``[[[...]]]``, one list per level;
* ``wide``: one dict of N keys, each a small dict ``{"v": i}``;
* ``long``: one list of N integers.

``--backend redis`` starts a private redis-server on a unix socket (no persistence).
``--cpu`` times this process's CPU time instead of wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from etcher import DB


def chain(n: int) -> Any:
    doc: dict[str, Any] = {"leaf": 0}
    for i in range(n - 1):
        doc = {"next": doc, "i": i}
    return doc


def lchain(n: int) -> Any:
    doc: list[Any] = [0]
    for _ in range(n - 1):
        doc = [doc]
    return doc


def wide(n: int) -> Any:
    return {f"k{i}": {"v": i} for i in range(n)}


def long(n: int) -> Any:
    return list(range(n))


SHAPES: dict[str, Callable[[int], Any]] = {
    "chain": chain,
    "lchain": lchain,
    "wide": wide,
    "long": long,
}
DEFAULT_SIZES = {
    "chain": [1000, 4000, 16000],
    "lchain": [1000, 4000, 16000],
    "wide": [10000, 40000],
    "long": [10000, 40000],
}
OPS = ("store", "materialize", "check", "delete")


class Clock:
    """Wall time, or this process's CPU time (``--cpu``: steadier on a busy machine, but
    it leaves out the time a Redis server spends)."""

    now = staticmethod(time.perf_counter)


def run(url: str, shape: str, n: int, ops: tuple[str, ...]) -> dict[str, float]:
    doc = SHAPES[shape](n)
    out: dict[str, float] = {}
    now = Clock.now
    with DB(url, grace=0) as db:
        t = now()
        db["x"] = doc
        out["store"] = now() - t
        if "materialize" in ops:
            t = now()
            value = db["x"]()
            out["materialize"] = now() - t
            if shape in ("wide", "long") and value != doc:  # chains: == recurses in CPython
                raise SystemExit(f"{shape} {n}: materialized value differs")
            del value
        if "check" in ops:
            t = now()
            report = db.check()
            out["check"] = now() - t
            if not report.ok:
                raise SystemExit(f"{shape} {n}: check() reports {report}")
        if "delete" in ops:
            t = now()
            del db["x"]
            out["delete"] = now() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "redis", "memory"], default="sqlite")
    parser.add_argument("--shape", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--sizes", nargs="+", type=int, help="override every shape's sizes")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    parser.add_argument("--redis-server", default="/usr/bin/redis-server")
    parser.add_argument("--cpu", action="store_true", help="time this process's CPU time")
    args = parser.parse_args()
    if args.cpu:
        Clock.now = staticmethod(time.process_time)
    server = None
    if args.backend == "redis":
        from run import RedisServer

        server = RedisServer(args.redis_server)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for shape in args.shape:
                sizes = args.sizes or DEFAULT_SIZES[shape]
                prev: dict[str, float] | None = None
                prev_n = 0
                for n in sizes:
                    if server is not None:
                        server.flush()
                        url = f"unix://{server.sock}"
                    elif args.backend == "sqlite":
                        url = str(Path(tmp) / f"{shape}-{n}.db")
                    else:
                        url = "memory://"
                    times = run(url, shape, n, tuple(args.ops))
                    cells = []
                    for op, sec in times.items():
                        cell = f"{op} {sec:7.3f}s"
                        if prev is not None and prev.get(op):
                            cell += f" (x{sec / prev[op]:.1f} for x{n / prev_n:.0f})"
                        cells.append(cell)
                    print(f"{args.backend:6} {shape:6} {n:>8,}: " + "  ".join(cells), flush=True)
                    prev, prev_n = times, n
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
