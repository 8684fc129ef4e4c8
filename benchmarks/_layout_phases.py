"""The timed phases of the harness workloads whose targets are still missed, for layout_replay.py.

Only ``from etcher import DB`` and the dict/list API (through ``_etcher_wl.open_db``),
so the same file runs under this etcher and under etcher 0.2.3 (``python
_layout_phases.py --impl-json ...`` from 0.2.3's venv). Each phase is the timed
part of the harness workload of the same name, at the same size for a scale:

- ``build(db, scale)`` makes the store the phase starts from (untimed);
- ``prepare(db, scale)`` takes the handles the workload takes before its clock
  starts (untimed);
- ``run(db, state)`` is the timed part;
- ``check(db, scale, result)`` says whether the store holds what it must afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import _data as d
from _etcher_wl import open_db


class Phase(NamedTuple):
    build: Callable[[Any, float], None]
    prepare: Callable[[Any, float], Any]
    run: Callable[[Any, Any], Any]
    check: Callable[[Any, float, Any], bool]


def _nothing(db: Any, scale: float) -> Any:
    return None


def _empty(db: Any, scale: float) -> None:
    pass


# write_docs: 400 small nested documents at scale 0.1, one assignment each. Like the
# harness, on an empty store: the first write's setting up of the store is timed too.
def _docs_prepare(db: Any, scale: float) -> Any:
    return [d.small_doc(i) for i in range(d.size("docs", scale))]


def _docs_run(db: Any, docs: Any) -> None:
    for i, doc in enumerate(docs):
        db[f"d{i}"] = doc


def _docs_check(db: Any, scale: float, result: Any) -> bool:
    n = d.size("docs", scale)
    return len(db) == n and all(
        db[f"d{i}"]() == d.small_doc(i) for i in range(0, n, max(1, n // 50))
    )


# write_big: the big mixed document (1,000 containers at scale 0.1) in one assignment.
def _big_prepare(db: Any, scale: float) -> Any:
    return d.big_doc(d.size("big_containers", scale))


def _big_run(db: Any, doc: Any) -> None:
    db["big"] = doc


def _big_check(db: Any, scale: float, result: Any) -> bool:
    return bool(db["big"]() == d.big_doc(d.size("big_containers", scale)))


# list_append: single appends through a handle, then one extend.
def _append_build(db: Any, scale: float) -> None:
    db["l"] = []


def _append_prepare(db: Any, scale: float) -> Any:
    return db["l"], d.size("appends", scale)


def _append_run(db: Any, state: Any) -> None:
    lst, n = state
    for i in range(n):
        lst.append(i)
    lst.extend(range(n))


def _append_check(db: Any, scale: float, result: Any) -> bool:
    return bool(db["l"]() == list(range(d.size("appends", scale))) * 2)


# list_pop_front: pop(0) + insert(0) on a 1,000-item list.
_POP = d.POP_LIST_SIZES[0]


def _pop_build(db: Any, scale: float) -> None:
    db["l"] = list(range(_POP))


def _pop_prepare(db: Any, scale: float) -> Any:
    return db["l"], d.size("popfront_ops", scale)


def _pop_run(db: Any, state: Any) -> None:
    lst, ops = state
    for _ in range(ops):
        x = lst.pop(0)
        lst.insert(0, x + 1)


def _pop_check(db: Any, scale: float, result: Any) -> bool:
    return bool(db["l"]() == [d.size("popfront_ops", scale), *range(1, _POP)])


# delete_big: `del db["big"]` of the big document (the sweep after the grace is not timed).
def _del_build(db: Any, scale: float) -> None:
    db["anchor"] = 1
    db["big"] = d.big_doc(d.size("big_containers", scale))


def _del_run(db: Any, state: Any) -> None:
    del db["big"]


def _del_check(db: Any, scale: float, result: Any) -> bool:
    return "big" not in db and db["anchor"] == 1


# replace_shared: replace every parent (8 shared children each), then delete every other one.
def _shared_sizes(scale: float) -> tuple[int, int]:
    return d.size("shared_children", scale), d.size("shared_parents", scale)


def _shared_build(db: Any, scale: float) -> None:
    nc, np_ = _shared_sizes(scale)
    before, _ = d.dag_plan(nc, np_)
    db["kids"] = {f"k{c}": d.child_doc(c) for c in range(nc)}
    kids = db["kids"]
    handles = {c: kids[f"k{c}"] for c in range(nc)}
    for p, cs in enumerate(before):
        db[f"p{p}"] = {"kids": [handles[c] for c in cs]}


def _shared_prepare(db: Any, scale: float) -> Any:
    nc, np_ = _shared_sizes(scale)
    kids = db["kids"]
    return {c: kids[f"k{c}"] for c in range(nc)}, d.dag_plan(nc, np_)[1]


def _shared_run(db: Any, state: Any) -> None:
    handles, after = state
    for p, cs in enumerate(after):
        db[f"p{p}"] = {"kids": [handles[c] for c in cs]}
    for p in range(0, len(after), 2):
        del db[f"p{p}"]


def _shared_check(db: Any, scale: float, result: Any) -> bool:
    nc, np_ = _shared_sizes(scale)
    _, after = d.dag_plan(nc, np_)
    ok = bool(db["kids"]() == {f"k{c}": d.child_doc(c) for c in range(nc)})
    for p in range(np_):
        if p % 2 == 0:
            ok &= f"p{p}" not in db
        elif p % 7 == 1:
            ok &= db[f"p{p}"]() == {"kids": [d.child_doc(c) for c in after[p]]}
    return ok


# iterate_keys: len(db) + keys() over many top-level keys.
def _keys_build(db: Any, scale: float) -> None:
    db.update({f"k{i}": i for i in range(d.size("top_keys", scale))})


def _keys_run(db: Any, state: Any) -> Any:
    return len(db), list(db.keys())


def _keys_check(db: Any, scale: float, result: Any) -> bool:
    n = d.size("top_keys", scale)
    length, keys = result
    return bool(length == n and set(keys) == {f"k{i}" for i in range(n)})


PHASES: dict[str, Phase] = {
    "write_docs": Phase(_empty, _docs_prepare, _docs_run, _docs_check),
    "write_big": Phase(_empty, _big_prepare, _big_run, _big_check),
    "list_append": Phase(_append_build, _append_prepare, _append_run, _append_check),
    "list_pop_front": Phase(_pop_build, _pop_prepare, _pop_run, _pop_check),
    "delete_big": Phase(_del_build, _nothing, _del_run, _del_check),
    "replace_shared": Phase(_shared_build, _shared_prepare, _shared_run, _shared_check),
    "iterate_keys": Phase(_keys_build, _nothing, _keys_run, _keys_check),
}

CLOCKS: dict[str, Callable[[], float]] = {
    # SQLite runs inside the process: its CPU time is what the store needs, and it is
    # steadier than wall time on a shared machine. Redis works in another process.
    "sqlite": time.process_time,
    "redis": time.perf_counter,
}


def time_phase(backend: str, store: str, name: str, scale: float) -> tuple[float, bool]:
    """One fresh store: build, prepare, then the timed run; (seconds, verified)."""
    phase = PHASES[name]
    db = open_db(backend, store)
    phase.build(db, scale)
    state = phase.prepare(db, scale)
    clock = CLOCKS[backend]
    t0 = clock()
    result = phase.run(db, state)
    dt = clock() - t0
    return dt, phase.check(db, scale, result)


def fresh_store(backend: str, redis_socket: str | None) -> tuple[str, Callable[[], None]]:
    """A store location nobody used yet, and how to clean it up afterwards."""
    if backend == "redis":
        import redis

        assert redis_socket is not None
        redis.Redis(unix_socket_path=redis_socket).flushall()
        return redis_socket, lambda: None
    tmp = tempfile.mkdtemp(prefix="etcher-phase-")
    return tmp, lambda: shutil.rmtree(tmp, ignore_errors=True)


def measure_impl(
    backend: str, names: list[str], scale: float, rounds: int, redis_socket: str | None
) -> dict[str, dict[str, Any]]:
    """Median seconds and verification per phase over ``rounds`` fresh stores."""
    out = {}
    for name in names:
        times, ok = [], True
        for _ in range(rounds):
            store, done = fresh_store(backend, redis_socket)
            try:
                dt, good = time_phase(backend, store, name, scale)
            finally:
                done()
            times.append(dt)
            ok &= good
        out[name] = {"seconds": statistics.median(times), "verified": ok}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="time phases with whichever etcher is installed")
    ap.add_argument("--backend", choices=sorted(CLOCKS), required=True)
    ap.add_argument("--phases", required=True, help="comma list of " + ",".join(PHASES))
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--redis-socket", default=None)
    args = ap.parse_args()
    names = [n for n in args.phases.split(",") if n]
    res = measure_impl(args.backend, names, args.scale, args.rounds, args.redis_socket)
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
