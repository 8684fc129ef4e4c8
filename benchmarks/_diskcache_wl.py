"""The workloads on diskcache, with its native types where it has one.

A document is one pickled value under one key of a ``diskcache.Cache`` (SQLite in
WAL mode, ``synchronous=NORMAL``, one transaction per write: its defaults). Lists
that grow or shrink at the ends are a ``diskcache.Deque``, counters use the atomic
``Cache.incr``, and read-modify-write goes through ``Cache.transact()`` (which holds
SQLite's write lock), so every result here must be exact under 4 processes too.
There is no sharing between documents: a "shared" child is a copy in each parent.
The store path is a directory; the ``backend`` argument is ignored (local files).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _data as d
from _race import race
from diskcache import Cache, Deque


def open_cache(store: str) -> Cache:
    return Cache(str(Path(store) / "diskcache"))


def write_docs(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    n = d.size("docs", scale)
    docs = [d.small_doc(i) for i in range(n)]
    t0 = time.perf_counter()
    for i, doc in enumerate(docs):
        c[f"d{i}"] = doc
    dt = time.perf_counter() - t0
    ok = len(c) == n and all(c[f"d{i}"] == docs[i] for i in range(0, n, max(1, n // 200)))
    return dt, ok, f"{n} docs"


def write_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    doc = d.big_doc(d.size("big_containers", scale))
    t0 = time.perf_counter()
    c["big"] = doc
    dt = time.perf_counter() - t0
    return dt, c["big"] == doc, f"{d.count_containers(doc)} containers"


def _fill_docs(c: Cache, n: int) -> None:
    with c.transact():
        for i in range(n):
            c[f"d{i}"] = d.small_doc(i)


def read_fields(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    n = d.size("docs", scale)
    _fill_docs(c, n)
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [c[f"d{i}"]["address"]["city"] for i in plan]
    dt = time.perf_counter() - t0
    return dt, got == [d.CITIES[i % len(d.CITIES)] for i in plan], f"{len(plan)} reads"


def read_doc(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    n = d.size("docs", scale)
    _fill_docs(c, n)
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [c[f"d{i}"] for i in plan]
    dt = time.perf_counter() - t0
    return dt, got == [d.small_doc(i) for i in plan], f"{len(plan)} reads"


def materialize_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    doc = d.big_doc(d.size("big_containers", scale))
    c["big"] = doc
    t0 = time.perf_counter()
    got = c["big"]
    dt = time.perf_counter() - t0
    return dt, got == doc, f"{d.count_containers(doc)} containers"


def deep_edit(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    doc = d.big_doc(d.DEEP_CONTAINERS)
    c["big"] = doc
    paths = d.deep_paths(doc, d.size("deep_edits", scale))
    t0 = time.perf_counter()
    for j, path in enumerate(paths):
        with c.transact():  # the whole document is read and rewritten for one field
            whole = c["big"]
            d.at(whole, path)["w"] = d.edit_value(j)
            c["big"] = whole
    dt = time.perf_counter() - t0
    for j, path in enumerate(paths):
        d.at(doc, path)["w"] = d.edit_value(j)
    return dt, c["big"] == doc, f"{len(paths)} edits, whole doc rewritten each"


def list_append(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    q = Deque(directory=str(Path(store) / "deque"))
    n = d.size("appends", scale)
    t0 = time.perf_counter()
    for i in range(n):
        q.append(i)
    q.extend(range(n))
    dt = time.perf_counter() - t0
    return dt, list(q) == list(range(n)) * 2, f"Deque: {n} appends + extend({n})"


def list_pop_front(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    ops = d.size("popfront_ops", scale)
    total, ok, parts = 0.0, True, []
    for length in d.POP_LIST_SIZES:
        q = Deque(range(length), directory=str(Path(store) / f"deque{length}"))
        t0 = time.perf_counter()
        for _ in range(ops):
            x = q.popleft()
            q.appendleft(x + 1)
        dt = time.perf_counter() - t0
        total += dt
        parts.append(f"{length}:{dt * 1e6 / ops:.0f}us/op")
        ok &= list(q) == [ops, *range(1, length)]
    return total, ok, f"Deque: {ops} popleft+appendleft each; " + " ".join(parts)


def delete_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    c["anchor"] = 1
    baseline = len(c)
    doc = d.big_doc(d.size("big_containers", scale))
    c["big"] = doc
    t0 = time.perf_counter()
    del c["big"]
    dt = time.perf_counter() - t0
    left = len(c) - baseline
    return dt, "big" not in c and left == 0, f"{left} keys left"


def replace_shared(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    nc, np_ = d.size("shared_children", scale), d.size("shared_parents", scale)
    before, after = d.dag_plan(nc, np_)
    c["kids"] = {f"k{k}": d.child_doc(k) for k in range(nc)}
    kids = c["kids"]
    for p, cs in enumerate(before):
        c[f"p{p}"] = {"kids": [kids[f"k{k}"] for k in cs]}
    t0 = time.perf_counter()
    for p, cs in enumerate(after):
        c[f"p{p}"] = {"kids": [kids[f"k{k}"] for k in cs]}
    for p in range(0, np_, 2):
        del c[f"p{p}"]
    dt = time.perf_counter() - t0
    ok = c["kids"] == {f"k{k}": d.child_doc(k) for k in range(nc)}
    for p in range(np_):
        if p % 2 == 0:
            ok &= f"p{p}" not in c
        else:
            ok &= c[f"p{p}"] == {"kids": [d.child_doc(k) for k in after[p]]}
    return dt, ok, f"{np_} parents x 8 children, copied (no sharing)"


def _txn_child(backend: str, store: str, n: int) -> Callable[[], None]:
    c = open_cache(store)

    def work() -> None:
        for _ in range(n):
            with c.transact():
                doc = c["c"]
                doc["n"] += 1
                c["c"] = doc

    return work


def _incr_child(backend: str, store: str, n: int) -> Callable[[], None]:
    c = open_cache(store)

    def work() -> None:
        for _ in range(n):
            c.incr("hits")

    return work


def txn_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    c["c"] = {"n": 0}
    n = d.size("txns_per_proc", scale)
    dt = race(_txn_child, backend, store, n)
    got: Any = c["c"]["n"]
    return dt, got == d.PROCS * n, f"transact(): {d.PROCS} procs x {n}; final {got}"


def incr_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    n = d.size("incrs_per_proc", scale)
    dt = race(_incr_child, backend, store, n)
    got = c.get("hits", 0)
    return dt, got == d.PROCS * n, f"Cache.incr: {d.PROCS} procs x {n}; final {got}"


def iterate_keys(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    c = open_cache(store)
    n = d.size("top_keys", scale)
    with c.transact():
        for i in range(n):
            c[f"k{i}"] = i
    t0 = time.perf_counter()
    length = len(c)
    keys = list(c)
    dt = time.perf_counter() - t0
    return dt, length == n and set(keys) == {f"k{i}" for i in range(n)}, f"{n} keys"
