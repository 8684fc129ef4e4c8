"""The workloads on sqlitedict: one pickled value per key of a ``SqliteDict``.

Every logical operation ends with a blocking ``commit()`` (``autocommit=False``).
With ``autocommit=True`` a write only queues a request for sqlitedict's worker
thread and returns before it is stored, so a timing would measure a queue; an
explicit commit per operation is the same unit of durability as one etcher
assignment. ``journal_mode="WAL"`` (sqlitedict's default is a rollback journal)
so that readers and the 4-process counters are not blocked by a writer, as with
etcher and diskcache; sqlitedict itself sets ``synchronous=OFF``.

sqlitedict has no lists, counters or transactions: an append or an increment is
read the value, change it, write it back. Under 4 processes that loses updates,
and the verification reports it. Documents share nothing: a "shared" child is a
copy in each parent. The ``backend`` argument is ignored (local files).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _data as d
from _race import race
from sqlitedict import SqliteDict


def open_dict(store: str) -> SqliteDict:
    return SqliteDict(str(Path(store) / "sqlitedict.sqlite"), journal_mode="WAL")


def write_docs(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    n = d.size("docs", scale)
    docs = [d.small_doc(i) for i in range(n)]
    t0 = time.perf_counter()
    for i, doc in enumerate(docs):
        s[f"d{i}"] = doc
        s.commit()
    dt = time.perf_counter() - t0
    ok = len(s) == n and all(s[f"d{i}"] == docs[i] for i in range(0, n, max(1, n // 200)))
    return dt, ok, f"{n} docs"


def write_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    doc = d.big_doc(d.size("big_containers", scale))
    t0 = time.perf_counter()
    s["big"] = doc
    s.commit()
    dt = time.perf_counter() - t0
    return dt, s["big"] == doc, f"{d.count_containers(doc)} containers"


def _fill_docs(s: SqliteDict, n: int) -> None:
    s.update({f"d{i}": d.small_doc(i) for i in range(n)})
    s.commit()


def read_fields(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    n = d.size("docs", scale)
    _fill_docs(s, n)
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [s[f"d{i}"]["address"]["city"] for i in plan]
    dt = time.perf_counter() - t0
    return dt, got == [d.CITIES[i % len(d.CITIES)] for i in plan], f"{len(plan)} reads"


def read_doc(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    n = d.size("docs", scale)
    _fill_docs(s, n)
    plan = d.read_plan(n, d.size("reads", scale))
    t0 = time.perf_counter()
    got = [s[f"d{i}"] for i in plan]
    dt = time.perf_counter() - t0
    return dt, got == [d.small_doc(i) for i in plan], f"{len(plan)} reads"


def materialize_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    doc = d.big_doc(d.size("big_containers", scale))
    s["big"] = doc
    s.commit()
    t0 = time.perf_counter()
    got = s["big"]
    dt = time.perf_counter() - t0
    return dt, got == doc, f"{d.count_containers(doc)} containers"


def deep_edit(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    doc = d.big_doc(d.DEEP_CONTAINERS)
    s["big"] = doc
    s.commit()
    paths = d.deep_paths(doc, d.size("deep_edits", scale))
    t0 = time.perf_counter()
    for j, path in enumerate(paths):
        whole = s["big"]
        d.at(whole, path)["w"] = d.edit_value(j)
        s["big"] = whole
        s.commit()
    dt = time.perf_counter() - t0
    for j, path in enumerate(paths):
        d.at(doc, path)["w"] = d.edit_value(j)
    return dt, s["big"] == doc, f"{len(paths)} edits, whole doc rewritten each"


def list_append(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    n = d.size("appends", scale)
    s["l"] = []
    s.commit()
    t0 = time.perf_counter()
    for i in range(n):
        lst = s["l"]
        lst.append(i)
        s["l"] = lst
        s.commit()
    lst = s["l"]
    lst.extend(range(n))
    s["l"] = lst
    s.commit()
    dt = time.perf_counter() - t0
    return dt, s["l"] == list(range(n)) * 2, f"read-append-rewrite: {n} appends + extend({n})"


def list_pop_front(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    ops = d.size("popfront_ops", scale)
    total, ok, parts = 0.0, True, []
    for length in d.POP_LIST_SIZES:
        key = f"l{length}"
        s[key] = list(range(length))
        s.commit()
        t0 = time.perf_counter()
        for _ in range(ops):
            lst = s[key]
            x = lst.pop(0)
            lst.insert(0, x + 1)
            s[key] = lst
            s.commit()
        dt = time.perf_counter() - t0
        total += dt
        parts.append(f"{length}:{dt * 1e6 / ops:.0f}us/op")
        ok &= s[key] == [ops, *range(1, length)]
    return total, ok, f"{ops} pop+insert each; " + " ".join(parts)


def delete_big(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    s["anchor"] = 1
    s.commit()
    baseline = len(s)
    doc = d.big_doc(d.size("big_containers", scale))
    s["big"] = doc
    s.commit()
    t0 = time.perf_counter()
    del s["big"]
    s.commit()
    dt = time.perf_counter() - t0
    left = len(s) - baseline
    return dt, "big" not in s and left == 0, f"{left} keys left"


def replace_shared(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    nc, np_ = d.size("shared_children", scale), d.size("shared_parents", scale)
    before, after = d.dag_plan(nc, np_)
    s["kids"] = {f"k{k}": d.child_doc(k) for k in range(nc)}
    kids = s["kids"]
    for p, cs in enumerate(before):
        s[f"p{p}"] = {"kids": [kids[f"k{k}"] for k in cs]}
    s.commit()
    t0 = time.perf_counter()
    for p, cs in enumerate(after):
        s[f"p{p}"] = {"kids": [kids[f"k{k}"] for k in cs]}
        s.commit()
    for p in range(0, np_, 2):
        del s[f"p{p}"]
        s.commit()
    dt = time.perf_counter() - t0
    ok = s["kids"] == {f"k{k}": d.child_doc(k) for k in range(nc)}
    for p in range(np_):
        if p % 2 == 0:
            ok &= f"p{p}" not in s
        else:
            ok &= s[f"p{p}"] == {"kids": [d.child_doc(k) for k in after[p]]}
    return dt, ok, f"{np_} parents x 8 children, copied (no sharing)"


def _txn_child(backend: str, store: str, n: int) -> Callable[[], None]:
    s = open_dict(store)

    def work() -> None:
        for _ in range(n):  # no transactions: read, change, write back
            doc = s["c"]
            doc["n"] += 1
            s["c"] = doc
            s.commit()

    return work


def _incr_child(backend: str, store: str, n: int) -> Callable[[], None]:
    s = open_dict(store)

    def work() -> None:
        for _ in range(n):
            s["hits"] = s.get("hits", 0) + 1
            s.commit()

    return work


def txn_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    s["c"] = {"n": 0}
    s.commit()
    n = d.size("txns_per_proc", scale)
    dt = race(_txn_child, backend, store, n)
    got: Any = open_dict(store)["c"]["n"]
    return dt, got == d.PROCS * n, f"read-modify-write: {d.PROCS} procs x {n}; final {got}"


def incr_counter(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    n = d.size("incrs_per_proc", scale)
    dt = race(_incr_child, backend, store, n)
    got = open_dict(store).get("hits", 0)
    return dt, got == d.PROCS * n, f"read-modify-write: {d.PROCS} procs x {n}; final {got}"


def iterate_keys(backend: str, store: str, scale: float) -> tuple[float, bool, str]:
    s = open_dict(store)
    n = d.size("top_keys", scale)
    s.update({f"k{i}": i for i in range(n)})
    s.commit()
    t0 = time.perf_counter()
    length = len(s)
    keys = list(s.keys())
    dt = time.perf_counter() - t0
    return dt, length == n and set(keys) == {f"k{i}" for i in range(n)}, f"{n} keys"
