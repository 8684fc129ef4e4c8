"""A small document's read in a new thread each time, as a thread-per-request server runs it.

Run: ``python benchmarks/thread_per_request.py [--n 300] [--rounds 3]``.

Werkzeug's threaded development server and ``socketserver.ThreadingMixIn`` start a
thread per request. etcher (and diskcache) keep one SQLite connection per thread,
so such a server meets a new thread at every request. Each figure is the median
wall time (µs) of ``db[k]()`` / ``cache[k]`` timed inside a fresh thread (thread
start-up excluded), next to the same read in one long-lived thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotpath import small_doc

from etcher import DB


def in_fresh_thread(fn: Callable[[int], Any], i: int) -> float:
    took: list[float] = []

    def run() -> None:
        t0 = time.perf_counter()
        fn(i)
        took.append(time.perf_counter() - t0)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return took[0]


def in_this_thread(fn: Callable[[int], Any], i: int) -> float:
    t0 = time.perf_counter()
    fn(i)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from diskcache import Cache

    with tempfile.TemporaryDirectory() as tmp:
        db = DB(f"sqlite:///{Path(tmp) / 'etcher.db'}")
        cache = Cache(str(Path(tmp) / "dc"))
        for i in range(args.n):
            db[f"r{i}"] = small_doc(i)
            cache[f"r{i}"] = small_doc(i)
        ops: dict[str, Callable[[int], Any]] = {
            "etcher db[k]()": lambda i: db[f"r{i}"](),
            "diskcache cache[k]": lambda i: cache[f"r{i}"],
        }
        for _ in range(args.rounds):
            cells = []
            for name, fn in ops.items():
                fresh = statistics.median(in_fresh_thread(fn, i) for i in range(args.n))
                same = statistics.median(in_this_thread(fn, i) for i in range(args.n))
                cells.append(
                    f"{name}: fresh thread {fresh * 1e6:.0f} µs, same thread {same * 1e6:.1f} µs"
                )
            print(" | ".join(cells))
        cache.close()
        db.close()


if __name__ == "__main__":
    main()
