"""CPU time and Python calls per operation on etcher's hot paths (SQLite), next to diskcache.

Run: ``python benchmarks/hotpath.py [--rounds 5] [--n 300] [--profile OP]``.

Each operation runs ``n`` times per round; the figure is the median over
rounds of CPU seconds (``time.process_time``: the machine is shared, so wall
time is noisy) per operation. ``calls/op`` counts Python-level calls
(``sys.setprofile`` "call" events) over one extra round. ``--profile OP``
prints a cProfile of one operation's round instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from etcher import DB
from etcher.testing._harness.instrument import python_calls


def small_doc(i: int) -> dict[str, Any]:
    return {"name": f"user{i}", "address": {"city": "Oslo", "zip": f"{i:05d}"}, "tags": ["a", "b"]}


def etcher_ops(db: Any, n: int) -> dict[str, Callable[[int], Any]]:
    for i in range(n):
        db[f"r{i}"] = small_doc(i)
    db["lst"] = []
    db["rd"] = {"n": 0}
    lst = db["lst"]
    rd = db["rd"]
    return {
        "write_doc": lambda i: db.__setitem__(f"w{i}", small_doc(i)),
        "read_doc": lambda i: db[f"r{i}"](),
        "read_field3": lambda i: db[f"r{i}"]["address"]["city"],
        "append": lambda i: lst.append(i),
        "incr": lambda i: db.incr("c"),
        "set_scalar": lambda i: rd.__setitem__("n", i),
    }


def diskcache_ops(store: str, n: int) -> dict[str, Callable[[int], Any]]:
    from diskcache import Cache, Deque

    c = Cache(str(Path(store) / "dc"))
    dq = Deque(directory=str(Path(store) / "dq"))
    for i in range(n):
        c[f"r{i}"] = small_doc(i)
    c["rd"] = {"n": 0}

    def set_scalar(i: int) -> None:
        doc = c["rd"]
        doc["n"] = i
        c["rd"] = doc

    return {
        "write_doc": lambda i: c.__setitem__(f"w{i}", small_doc(i)),
        "read_doc": lambda i: c[f"r{i}"],
        "read_field3": lambda i: c[f"r{i}"]["address"]["city"],
        "append": lambda i: dq.append(i),
        "incr": lambda i: c.incr("c"),
        "set_scalar": set_scalar,
    }


def cpu_per_op(fn: Callable[[int], Any], n: int, rounds: int) -> float:
    times = []
    for r in range(rounds):
        base = r * n
        t0 = time.process_time()
        for i in range(base, base + n):
            fn(i)
        times.append((time.process_time() - t0) / n)
    return statistics.median(times)


def calls_per_op(fn: Callable[[int], Any], n: int, base: int) -> float:
    def run() -> None:
        for i in range(base, base + n):
            fn(i)

    return python_calls(run) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--profile", default="")
    ap.add_argument("--no-diskcache", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as store:
        db = DB(str(Path(store) / "etcher.db"))
        ops = etcher_ops(db, args.n * (args.rounds + 2))
        if args.profile:
            prof = cProfile.Profile()
            fn = ops[args.profile]
            prof.enable()
            for i in range(args.n):
                fn(i)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return
        dc = {} if args.no_diskcache else diskcache_ops(store, args.n * (args.rounds + 2))
        print(f"{'op':<12} {'etcher µs':>10} {'calls/op':>9} {'diskcache µs':>13} {'ratio':>6}")
        for name, fn in ops.items():
            e = cpu_per_op(fn, args.n, args.rounds)
            calls = calls_per_op(fn, args.n, args.n * args.rounds)
            line = f"{name:<12} {e * 1e6:>10.1f} {calls:>9.0f}"
            if name in dc:
                k = cpu_per_op(dc[name], args.n, args.rounds)
                line += f" {k * 1e6:>13.1f} {k / e:>6.2f}"
            print(line)


if __name__ == "__main__":
    main()
