"""Redis Cluster scale-out: many clients on many namespaces, 1 master vs 3 (run on demand).

    python benchmarks/cluster.py [--processes 6] [--namespaces 24] [--ops 300] [--replicas 0]

Starts two private clusters on loopback ports from the tests' ``redis-server``
(one with 1 master, one with 3 masters), runs the same workload on each and
prints operations per second and the scaling factor. Each worker process owns
``namespaces / processes`` namespaces and does ``ops`` operations spread over
them (a small document written, a field read, an item appended). Also prints
the round trips one operation of each kind costs on a cluster, counted with
:class:`etcher.testing._harness.instrument.CountingBackend` (the same on 1 or 3 masters:
every unit runs on its namespace's master).

The scaling factor is bounded by the machine: every server, every client and
this script share its cores, so on 2 cores 3 masters cannot be 3x one master.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any

from etcher import DB
from etcher.testing._harness.instrument import CountingBackend
from etcher_redis.cluster import RedisClusterBackend
from etcher_redis.testing.cluster import LocalRedisCluster


def _worker(url: str, names: list[str], ops: int, start: Any, out: Any) -> None:
    backend = RedisClusterBackend.from_url(url)
    dbs = [DB(backend=backend, prefix=name) for name in names]
    for db in dbs:
        db["doc"] = {"n": 0, "items": []}
    start.wait(timeout=600)
    began = time.perf_counter()
    for i in range(ops):
        db = dbs[i % len(dbs)]
        kind = i % 3
        if kind == 0:
            db[f"k{i % 50}"] = {"i": i, "tags": ["a", "b"]}
        elif kind == 1:
            db["doc"]["n"]
        else:
            db["doc"]["items"].append(i)
    out.put(time.perf_counter() - began)
    for db in dbs:
        db.delete_prefix_immediately(db.prefix)
    backend.close()


def throughput(url: str, processes: int, namespaces: int, ops: int) -> float:
    """Operations per second of ``processes`` workers on ``namespaces`` namespaces in total."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(processes + 1), ctx.Queue()
    per = max(1, namespaces // processes)
    procs = [
        ctx.Process(
            target=_worker,
            args=(url, [f"bench-{p}-{j}" for j in range(per)], ops, start, out),
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    start.wait(timeout=600)  # every worker has opened its namespaces
    began = time.perf_counter()
    for _ in procs:
        out.get(timeout=600)
    wall = time.perf_counter() - began
    for proc in procs:
        proc.join(timeout=60)
    return processes * ops / wall


def round_trips(url: str) -> dict[str, float]:
    """Round trips per operation of each kind, on a cluster (averaged over 20 operations)."""
    counting = CountingBackend(RedisClusterBackend.from_url(url))
    db = DB(backend=counting, prefix="bench-rt")
    db["doc"] = {"n": 0, "items": []}
    kinds = {
        "write a small document": lambda i: db.__setitem__(f"k{i}", {"i": i, "tags": ["a"]}),
        "read one field": lambda i: db["doc"]["n"],
        "append to a list": lambda i: db["doc"]["items"].append(i),
        "materialize a document": lambda i: db["doc"](),
    }
    result = {}
    for name, op in kinds.items():
        counting.reset()
        for i in range(20):
            op(i)
        result[name] = counting.round_trips / 20
    db.delete_prefix_immediately("bench-rt")
    db.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--namespaces", type=int, default=24)
    parser.add_argument("--ops", type=int, default=300, help="operations per worker")
    parser.add_argument("--replicas", type=int, default=0, help="replicas per master")
    args = parser.parse_args()
    results = {}
    for masters in (1, 3):
        with LocalRedisCluster(masters=masters, replicas=args.replicas) as cluster:
            results[masters] = throughput(cluster.url, args.processes, args.namespaces, args.ops)
            if masters == 3:
                trips = round_trips(cluster.url)
    print(
        f"{args.processes} processes, {args.namespaces} namespaces, {args.ops} ops each, "
        f"{args.replicas} replica(s) per master"
    )
    for masters, ops in results.items():
        print(f"  {masters} master(s): {ops:8.0f} ops/s")
    print(f"  scaling factor 3 vs 1 masters: {results[3] / results[1]:.2f}x")
    print("round trips per operation (cluster):")
    for name, count in trips.items():
        print(f"  {name:24s} {count:.1f}")


if __name__ == "__main__":
    main()
