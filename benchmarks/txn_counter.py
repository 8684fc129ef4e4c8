"""Transaction throughput on shared counters (run on demand; never part of the tests).

    python benchmarks/txn_counter.py [--url sqlite:///tmp/bench.db] [--seconds 3]

Reports committed transactional increments per second for: one process on one
counter, four processes on one counter (contention), four processes on four
counters (disjoint data), and checks every final count is exact.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from typing import Any

from etcher import DB


def _worker(url: str, prefix: str, key: str, seconds: float, start: Any, out: Any) -> None:
    db = DB(url, prefix=prefix)

    def bump(t: Any) -> None:
        t[key]["n"] = t[key]["n"] + 1

    start.wait()
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        db.transact(bump)
        done += 1
    out.put((key, done))
    db.close()


def run(url: str, keys: list[str], seconds: float) -> tuple[float, bool]:
    prefix = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    db = DB(url, prefix=prefix)
    for key in set(keys):
        db[key] = {"n": 0}
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, prefix, k, seconds, start, out)) for k in keys]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every child finish importing before the clock starts
    start.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    exact = True
    # Each worker reports its own commits; per key they must add up to the stored value.
    per_key: dict[str, int] = {}
    for key, n in results:
        per_key[key] = per_key.get(key, 0) + n
    for key, n in per_key.items():
        exact &= db[key]["n"] == n
    db.delete_prefix_immediately(prefix)
    db.close()
    return sum(n for _k, n in results) / seconds, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    print(f"store: {url}")
    for label, keys in [
        ("1 process, 1 counter", ["c"]),
        ("4 processes, 1 counter", ["c"] * 4),
        ("4 processes, 4 counters", ["c0", "c1", "c2", "c3"]),
    ]:
        rate, exact = run(url, keys, args.seconds)
        print(f"{label:<26} {rate:9.0f} increments/s   exact={exact}")


if __name__ == "__main__":
    main()
