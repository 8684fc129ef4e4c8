"""Wall and client CPU time and round trips per small operation on Redis, one op at a time.

Run: ``python benchmarks/redis_small_ops.py --url unix:///path/redis.sock [--n 600]
[--phase NAME ...]``, e.g. with client and server on one core (``taskset -c 0``
for this process, ``taskset -p -c 0 <redis-server pid>``), and from another tree's
virtualenv to compare (``/other/.venv/bin/python benchmarks/redis_small_ops.py``):
it uses only the public API, so any tree since round 7 runs it.

Each phase stores what it needs in one session, then runs its operation ``n``
times in a fresh session (a new one every ``per`` operations where the phase is
about a session's first operations), timing each operation alone (wall:
``perf_counter``; client CPU: ``process_time``). Round trips come from a
separate pass of 40 operations through ``CountingBackend``. The database the URL
names is flushed. Prints one JSON line per phase: µs per operation, round trips
per operation.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any, cast

from etcher import DB, RD, RL
from etcher.testing._harness.instrument import CountingBackend
from etcher_redis.backend import RedisBackend

SMALL = {"name": "x", "address": {"city": "P", "zip": 1}, "tags": [1, 2]}
SHARED = {"s": {"x": [1, {"deep": [2]}]}}
PREFIX = "small-ops"


def docs(db: DB, n: int) -> None:
    for i in range(n):
        db[f"k{i}"] = SMALL


def scalars(db: DB, n: int) -> None:
    for i in range(n):
        db[f"k{i}"] = i


def nothing(db: DB, n: int) -> None:
    pass


def diamonds(db: DB, n: int) -> None:
    for i in range(n):
        sub = [i, {"z": [i]}]
        db[f"k{i}"] = {"a": sub, "b": {"y": sub}}


def sharing_docs(db: DB, n: int) -> None:
    db["keep"] = SHARED
    s = cast(RD, db["keep"])["s"]
    for i in range(n):
        db[f"k{i}"] = {"s": s, "t": [i]}


def sharing_list(db: DB, n: int) -> None:
    db["keep"] = SHARED
    s = cast(RD, db["keep"])["s"]
    db["l"] = [{"s": s, "t": [i]} for i in range(n)]


def aliases(db: DB, n: int) -> None:
    db["h"] = {f"a{i}": {"x": [i]} for i in range(n)}
    h = cast(RD, db["h"])
    for i in range(n):
        h[f"b{i}"] = h[f"a{i}"]


def parent_pointers(db: DB, n: int) -> None:
    for i in range(n):
        db[f"k{i}"] = {"kids": [{"n": i}], "meta": [i]}
        doc = cast(RD, db[f"k{i}"])
        cast(RD, cast(RL, doc["kids"])[0])["parent"] = doc


def empty_list(db: DB, n: int) -> None:
    db["e"] = []
    db["d"] = {"a": 1}


_handles: dict[int, Any] = {}


def held(db: DB, key: str) -> Any:
    """``db[key]``'s handle, read once per session (not part of the operation timed)."""
    got = _handles.get(id(db))
    if got is None or got[0] is not db:
        got = _handles[id(db)] = (db, db[key])
    return got[1]


Setup = Callable[[DB, int], None]
Op = Callable[[DB, int], Any]
PHASES: dict[str, tuple[Setup, Op, int | None]] = {
    "scalar over small doc, a fresh session's first": (
        docs,
        lambda db, i: db.__setitem__(f"k{i}", i),
        1,
    ),
    "scalar over scalar, a fresh session's first": (
        scalars,
        lambda db, i: db.__setitem__(f"k{i}", i + 1),
        1,
    ),
    "scalar over scalar, a fresh session's first 32": (
        scalars,
        lambda db, i: db.__setitem__(f"k{i}", i + 1),
        32,
    ),
    "scalar over scalar, steady": (scalars, lambda db, i: db.__setitem__(f"k{i}", i + 1), None),
    "scalar, new key, a fresh session's first 32": (
        nothing,
        lambda db, i: db.__setitem__(f"k{i}", i),
        32,
    ),
    "small doc, new key": (nothing, lambda db, i: db.__setitem__(f"k{i}", SMALL), None),
    "del small doc": (docs, lambda db, i: db.__delitem__(f"k{i}"), None),
    "del doc holding one object at two depths": (
        diamonds,
        lambda db, i: db.__delitem__(f"k{i}"),
        None,
    ),
    "d.pop(k), doc sharing a node": (sharing_docs, lambda db, i: db.pop(f"k{i}"), None),
    "l.pop(), item sharing a node": (
        sharing_list,
        lambda db, i: cast(RL, held(db, "l")).pop(),
        None,
    ),
    "del d[a], d[b] links it too": (
        aliases,
        lambda db, i: cast(RD, held(db, "h")).__delitem__(f"a{i}"),
        None,
    ),
    "del doc whose kid links it back": (
        parent_pointers,
        lambda db, i: db.__delitem__(f"k{i}"),
        None,
    ),
    "del d[k], a missing key": (
        empty_list,
        lambda db, i: _raises(KeyError, cast(RD, held(db, "d")).__delitem__, f"x{i}"),
        None,
    ),
    "l.pop(), an empty list": (
        empty_list,
        lambda db, i: _raises(IndexError, cast(RL, held(db, "e")).pop),
        None,
    ),
    "db[k] = {s: handle}, over a doc sharing it": (
        sharing_docs,
        lambda db, i: db.__setitem__(f"k{i}", {"s": held_in(db, "keep", "s"), "t": [i]}),
        None,
    ),
}


def _raises(error: type[Exception], op: Callable[..., Any], *args: Any) -> None:
    try:
        op(*args)
    except error:
        return
    raise AssertionError(f"{op} did not raise {error.__name__}")


def held_in(db: DB, key: str, field: str) -> Any:
    """``db[key][field]``'s handle, read once per session (not part of the operation timed)."""
    got = _handles.get(-id(db))
    if got is None or got[0] is not db:
        got = _handles[-id(db)] = (db, cast(RD, db[key])[field])
    return got[1]


def run(backend: Any, store: Any, setup: Setup, op: Op, per: int | None, n: int) -> list[Any]:
    """``op`` ``n`` times in fresh sessions on ``backend`` (after ``setup`` on ``store``):
    per operation (wall s, CPU s, round trips if ``backend`` counts them)."""
    store.flushdb()
    _handles.clear()
    with DB(backend=store, prefix=PREFIX, grace=5) as db:
        setup(db, n)
    out = []
    session = None
    for i in range(n):
        if session is None or (per and i % per == 0):
            session = DB(backend=backend, prefix=PREFIX, grace=5)
        if isinstance(backend, CountingBackend):
            backend.reset()
        gc.disable()
        w, c = time.perf_counter(), time.process_time()
        op(session, i)
        c, w = time.process_time() - c, time.perf_counter() - w
        gc.enable()
        trips = backend.round_trips if isinstance(backend, CountingBackend) else None
        out.append((w, c, trips))
    assert session is not None and session.check().ok
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a Redis URL (its database is flushed)")
    parser.add_argument("--n", type=int, default=600, help="operations per phase")
    parser.add_argument("--phase", action="append", choices=sorted(PHASES))
    args = parser.parse_args()
    store = RedisBackend.from_url(args.url)
    for name in args.phase or list(PHASES):
        setup, op, per = PHASES[name]
        counted = run(CountingBackend(store), store, setup, op, per, 40)
        timed = run(store, store, setup, op, per, args.n)
        print(
            json.dumps(
                {
                    "phase": name,
                    "wall_us": round(sum(t[0] for t in timed) / len(timed) * 1e6, 1),
                    "cpu_us": round(sum(t[1] for t in timed) / len(timed) * 1e6, 1),
                    "round_trips": round(sum(t[2] for t in counted) / len(counted), 2),
                }
            )
        )
    store.flushdb()


if __name__ == "__main__":
    main()
