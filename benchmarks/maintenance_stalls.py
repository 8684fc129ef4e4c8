"""How long maintenance stalls other clients: gc(), check() and delete_prefix beside writers.

Run on demand (never from the tests)::

    python benchmarks/maintenance_stalls.py sqlite:////tmp/stalls.db --nodes 30000
    python benchmarks/maintenance_stalls.py redis://localhost:6379/0 --nodes 30000

It fills a namespace with ``--nodes`` nodes, starts four writer processes
(each replaces small documents in a loop and records its slowest write) and,
on Redis, a pinger process (a plain client sending PING, recording the slowest
reply), then runs ``gc()``, ``check()`` and ``delete_prefix_immediately()`` of
a second namespace of the same size, one after the other. It prints how long
each maintenance call took, the longest single write of any writer and the
longest PING during each call, and the writes done meanwhile. The first row
is the baseline: writers alone, no maintenance. On a busy machine the longest
write is dominated by writers waiting for each other (compare with that row);
on SQLite the "writes" column shows whether writers kept going at all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any

from etcher import DB


def _writer(url: str, prefix: str, tag: str, stop: Any, phase: Any, out: Any) -> None:
    worst: dict[int, float] = {}
    count: dict[int, int] = {}
    with DB(url, prefix=prefix) as db:
        i = 0
        while not stop.is_set():
            p = phase.value
            t0 = time.perf_counter()
            db[f"{tag}-{i % 50}"] = {"i": i, "items": [i, {"n": i}]}
            dt = time.perf_counter() - t0
            worst[p] = max(worst.get(p, 0.0), dt)
            count[p] = count.get(p, 0) + 1
            i += 1
    out.put((worst, count))


def _pinger(url: str, stop: Any, phase: Any, out: Any) -> None:
    import redis

    client = redis.Redis.from_url(url)
    worst: dict[int, float] = {}
    while not stop.is_set():
        p = phase.value
        t0 = time.perf_counter()
        client.ping()
        dt = time.perf_counter() - t0
        worst[p] = max(worst.get(p, 0.0), dt)
        time.sleep(0.001)
    out.put((worst, None))


def _fill(db: DB, nodes: int) -> None:
    per = 1000
    for j in range(max(1, nodes // per)):
        db[f"big{j}"] = [{"k": i} for i in range(per - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--nodes", type=int, default=30_000)
    args = parser.parse_args()
    url = args.url
    with DB(url, prefix="stalls") as db, DB(url, prefix="stalls-doomed") as doomed:
        # Not clear(): one unit over a big namespace is exactly the giant WATCH to avoid.
        db.delete_prefix_immediately("stalls")
        doomed.delete_prefix_immediately("stalls-doomed")
        t0 = time.perf_counter()
        _fill(db, args.nodes)
        _fill(doomed, args.nodes)
        print(f"filled 2 x {args.nodes} nodes in {time.perf_counter() - t0:.1f} s")
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        phase = ctx.Value("i", 0)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_writer, args=(url, "stalls", f"w{w}", stop, phase, out))
            for w in range(4)
        ]
        if url.startswith(("redis://", "unix://")):
            procs.append(ctx.Process(target=_pinger, args=(url, stop, phase, out)))
        for p in procs:
            p.start()
        time.sleep(3)  # let the writers warm up (a benchmark, not a test)
        phase.value = 5  # the baseline: writers alone, for as long as a call takes
        time.sleep(5)
        names = {
            5: "(none: writers alone, 5 s)",
            1: "gc()",
            2: "check()",
            3: "delete_prefix_immediately()",
        }
        took = {5: 5.0}
        calls = {1: db.gc, 2: db.check, 3: lambda: db.delete_prefix_immediately("stalls-doomed")}
        for p_no, call in calls.items():
            phase.value = p_no
            t0 = time.perf_counter()
            try:
                result = call()
            except Exception as exc:  # a benchmark reports failures, it does not stop
                names[p_no] += f" FAILED: {type(exc).__name__}"
            else:
                if p_no in (1, 2) and not result.ok:
                    names[p_no] += f" reported {len(result.problems())} problem(s)"
            took[p_no] = time.perf_counter() - t0
        phase.value = 4
        time.sleep(1)
        stop.set()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(60)
        writes: dict[int, float] = {}
        counts: dict[int, int] = {}
        pings: dict[int, float] = {}
        for worst, count in results:
            if count is None:
                pings = worst
                continue
            for k, v in worst.items():
                writes[k] = max(writes.get(k, 0.0), v)
            for k, v in count.items():
                counts[k] = counts.get(k, 0) + v
        head = f"{'backend':<8}{'call':<40}{'took s':>8}{'writes':>8}"
        print(head + f"{'max write ms':>14}{'max ping ms':>13}")
        backend = "sqlite" if url.startswith("sqlite") else "redis"
        for p_no, name in names.items():
            ping = f"{pings[p_no] * 1000:13.1f}" if p_no in pings else f"{'-':>13}"
            print(
                f"{backend:<8}{name:<40}{took[p_no]:8.2f}{counts.get(p_no, 0):8d}"
                f"{writes.get(p_no, 0.0) * 1000:14.1f}{ping}"
            )
        db.delete_prefix_immediately("stalls")


if __name__ == "__main__":
    main()
