"""Writers that die or race, and the checks that prove nothing was lost or corrupted.

Three harnesses live here, importable by child processes (tests run with
``--import-mode=importlib``, so workers cannot live in test modules):

* :func:`kill_campaign`: a child process (``os.fork``) runs one public
  mutation and is killed with ``SIGKILL`` after a random delay; the parent
  then reads the store and requires *exactly* the state before or after the
  mutation, and a clean ``db.check()``. Repeated hundreds of times.
* :func:`tripwire_campaign`: the same, but the child dies at store write
  number N (an SQL statement, a command on a Redis socket; see
  :mod:`etcher.testing._harness.faults`) for N = 1, 2, ... until the mutation gets
  through untouched: every single write of it has been a crash point.
* :func:`soak_worker`: one of several processes doing random reads, writes,
  deletes and transactions on shared structures for a while; the parent
  then checks that per-process transaction counts add up exactly.

Every workload operation is written once against the ``dict``/``list`` API
and run twice: on the store (through :class:`Target`) and on a plain-Python
:class:`Model`, from the same random seed. The model gives the expected
state after the operation; :func:`same` compares states exactly (types, key
order, float signs, shared nodes and cycles).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import random
import select
import signal
import struct
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from etcher._containers import RD
from etcher._db import DB
from etcher.testing._harness.faults import Tripwire

COUNTERS = ("hits", "moves")
"""Counters the workload touches (they live beside the data, so they are read apart)."""

# --------------------------------------------------------------------------- exact comparison


Settle = Callable[[DB], Callable[[], None]]
"""A campaign's ``settle`` hook: called with the campaign's own ``DB`` before each child
starts, it returns what the campaign calls once that child is dead and before it reads the
store; that call returns when everything the child sent has been applied. An in-process
store (SQLite) needs none. A server does: a command the child wrote just before it was
killed can still sit in the server's socket buffer when the campaign reads, and land after
the campaign has judged (or restored) the state, so the next check would see it from
nowhere (``etcher_redis.testing.faults.killed_clients_applied``).
"""


def same(a: Any, b: Any) -> str | None:
    """``None`` if ``a`` and ``b`` are exactly the same value, else where they first differ.

    Stricter than ``==``: scalar types must match (``1`` is not ``1.0`` nor
    ``True``), dict key order matters, ``nan`` equals ``nan`` and ``-0.0`` is
    not ``0.0``, and the *shape* must match: two paths to one object on one
    side must be two paths to one object on the other (cycles included).
    Iterative, so 10,000-deep values are fine.
    """
    pairs: dict[int, int] = {}
    back: dict[int, int] = {}
    stack: list[tuple[Any, Any, tuple[Any, ...]]] = [(a, b, ())]
    while stack:
        x, y, path = stack.pop()
        if type(x) is not type(y):
            return (
                f"{_path(path)}: {type(x).__name__} {_short(x)} != {type(y).__name__} {_short(y)}"
            )
        if isinstance(x, dict | list):
            seen = pairs.get(id(x))
            if seen is not None or back.get(id(y)) is not None:
                if seen != id(y) or back.get(id(y)) != id(x):
                    return f"{_path(path)}: shared/cyclic structure differs"
                continue
            pairs[id(x)] = id(y)
            back[id(y)] = id(x)
            if isinstance(x, dict):
                kx, ky = list(x), list(y)
                if len(kx) != len(ky) or any(
                    type(p) is not type(q) or p != q for p, q in zip(kx, ky, strict=True)
                ):
                    return f"{_path(path)}: keys {_short(kx)} != {_short(ky)}"
                stack.extend((x[k], y[k], (*path, k)) for k in reversed(kx))
            else:
                if len(x) != len(y):
                    return f"{_path(path)}: list of {len(x)} != list of {len(y)}"
                stack.extend((x[i], y[i], (*path, i)) for i in reversed(range(len(x))))
        elif isinstance(x, float):
            if math.isnan(x) and math.isnan(y):
                continue
            if x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
                return f"{_path(path)}: {x!r} != {y!r}"
        elif x != y:
            return f"{_path(path)}: {_short(x)} != {_short(y)}"
    return None


def _path(path: tuple[Any, ...]) -> str:
    return "value" + "".join(f"[{_short(p)}]" for p in path)


def _short(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"{type(value).__name__} of {len(value)}"
    try:
        text = repr(value)
    except ValueError:  # an int too large for decimal conversion
        return f"<int of {value.bit_length()} bits>"
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- model and target


class Model:
    """A plain-Python stand-in for a :class:`~etcher._db.DB`: the workload runs on it unchanged."""

    def __init__(self, data: dict[Any, Any] | None = None, counters: dict[str, int] | None = None):
        self.data: dict[Any, Any] = {} if data is None else data
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0) | (counters or {})

    def copy(self) -> Model:
        """A deep copy (sharing and cycles preserved)."""
        return Model(copy.deepcopy(self.data), dict(self.counters))

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.data[key]

    def __contains__(self, key: Any) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        return self.data.pop(key, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.data.update(*args, **kwargs)

    def transact(self, fn: Callable[[Any], Any]) -> Any:
        return fn(self)

    def incr(self, name: str, amount: int = 1) -> int:
        self.counters[name] = self.counters.get(name, 0) + amount
        return self.counters[name]

    def count(self, name: str) -> int:
        return self.counters.get(name, 0)

    def new_dict(self, data: dict[Any, Any]) -> dict[Any, Any]:
        return dict(data)


class Target:
    """A DB seen through the workload's eyes (adds ``new_dict``: an unlinked ``RD(db, ...)``)."""

    def __init__(self, db: DB) -> None:
        self.db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def __getitem__(self, key: Any) -> Any:
        return self.db[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.db[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.db[key]

    def __contains__(self, key: Any) -> bool:
        return key in self.db

    def __len__(self) -> int:
        return len(self.db)

    def new_dict(self, data: dict[Any, Any]) -> RD:
        return RD(self.db, data)


def read_state(db: DB) -> Model:
    """The whole namespace and the workload's counters, as a :class:`Model`."""
    return Model(db(), {name: db.count(name) for name in COUNTERS})


def state_diff(observed: Model, expected: Model) -> str | None:
    """Where ``observed`` differs from ``expected`` (``None`` if identical)."""
    diff = same(observed.data, expected.data)
    if diff is not None:
        return diff
    if observed.counters != expected.counters:
        return f"counters {observed.counters} != {expected.counters}"
    return None


def restore(db: DB, model: Model) -> None:
    """Make the store hold exactly ``model`` again (used between tripwire runs)."""
    db.clear()
    if model.data:
        db.update(copy.deepcopy(model.data))
    for name, value in model.counters.items():
        delta = value - db.count(name)
        if delta:
            db.incr(name, delta)


# --------------------------------------------------------------------------- the workload

_WORDS = ("alpha", "beta", "γάμμα", "δ", "emoji-\U0001f600", "", "1", "@Droot", "#k", "a|b", "*?[")


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randrange(-1000, 1000)
    if kind == 1:
        return rng.choice((2**70 + rng.randrange(99), -(2**64), 10**40))
    if kind == 2:
        return rng.choice((0.5, -0.0, float("inf"), float("nan"), 1e-300, rng.random()))
    if kind == 3:
        return rng.choice((True, False, None))
    return rng.choice(_WORDS) + str(rng.randrange(100))


def make_leaf(rng: random.Random, width: int = 3) -> dict[Any, Any]:
    """A small dict of scalars (string and int keys, as etcher allows)."""
    leaf: dict[Any, Any] = {}
    for i in range(width):
        key: Any = f"f{i}" if rng.random() < 0.7 else rng.randrange(-50, 50)
        leaf[key] = _scalar(rng)
    return leaf


def make_doc(rng: random.Random, size: int) -> dict[str, Any]:
    """A nested document of roughly ``size`` nodes: branches of leaves, tags and a shared node."""
    shared = {"shared": True, "n": rng.randrange(1000)}
    branches = []
    for i in range(max(1, size // 4)):
        branches.append(
            {
                "id": i,
                "leaf": make_leaf(rng),
                "tags": [_scalar(rng) for _ in range(rng.randrange(4))],
                "meta": {"ref": shared, "deep": {"x": [make_leaf(rng, 1)]}},
            }
        )
    return {"title": _scalar(rng), "branches": branches, "moved": [], "shared": shared}


def make_items(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """List items: dicts with a sortable ``k``."""
    return [{"k": rng.randrange(10_000), "v": make_leaf(rng, 2)} for _ in range(n)]


def make_ring(rng: random.Random, n: int) -> dict[str, Any]:
    """A cycle of ``n`` dicts plus a node shared by all of them."""
    hub: dict[str, Any] = {"hub": rng.randrange(100)}
    nodes = [{"i": i, "hub": hub} for i in range(n)]
    for i, node in enumerate(nodes):
        node["next"] = nodes[(i + 1) % n]
    return {"head": nodes[0], "hub": hub, "count": n}


Op = Callable[[Any, random.Random], Any]


def op_overwrite_doc(size: int) -> Op:
    """``root["doc"] = <new document>``: a large overwrite, collecting the old one."""

    def op(root: Any, rng: random.Random) -> None:
        root["doc"] = make_doc(rng, size)

    op.__name__ = "overwrite_doc"
    return op


def op_nested_edit(root: Any, rng: random.Random) -> None:
    """Replace one branch's leaf (a subtree swap, collecting the old leaf)."""
    if "doc" not in root:
        root["doc"] = make_doc(rng, 8)
        return
    branches = root["doc"]["branches"]
    n = len(branches)
    if not n:
        branches.append({"id": 0, "leaf": make_leaf(rng), "tags": [], "meta": {}})
        return
    branches[rng.randrange(n)]["leaf"] = make_leaf(rng, rng.randrange(1, 6))


def op_nested_update(root: Any, rng: random.Random) -> None:
    """``update()`` several fields of a nested dict in one write."""
    if "doc" not in root:
        root["doc"] = make_doc(rng, 8)
        return
    branches = root["doc"]["branches"]
    if not len(branches):
        return
    target = branches[rng.randrange(len(branches))]
    target.update({"id": rng.randrange(100), "extra": make_leaf(rng), "tags": [1, 2, 3]})


def op_list_rewrite(root: Any, rng: random.Random) -> None:
    """``lst[:] = ...``: rewrite a whole list of dicts, collecting the old items."""
    if "list" not in root:
        root["list"] = make_items(rng, 6)
        return
    root["list"][:] = make_items(rng, rng.randrange(3, 12))


def op_list_edit(root: Any, rng: random.Random) -> None:
    """One of sort, reverse, slice delete, middle insert, middle pop, slice assignment."""
    if "list" not in root:
        root["list"] = make_items(rng, 6)
        return
    lst = root["list"]
    n = len(lst)
    choice = rng.randrange(6)
    if choice == 0:
        lst.sort(key=lambda item: item["k"] if isinstance(item, dict) else -1)
    elif choice == 1:
        lst.reverse()
    elif choice == 2 and n > 2:
        a = rng.randrange(n - 1)
        del lst[a : a + rng.randrange(1, 4)]
    elif choice == 3:
        lst.insert(n // 2, {"k": rng.randrange(10_000), "v": make_leaf(rng, 2)})
    elif choice == 4 and n > 1:
        lst[1 : n // 2 + 1] = make_items(rng, rng.randrange(0, 3))
    elif n:
        lst.pop(n // 3)
    else:
        lst.append({"k": 0, "v": {}})


def _queue(root: Any) -> Any:
    """The list of scalars the end-of-list operations work on (made when missing)."""
    if "queue" not in root:
        root["queue"] = [1, 2, 3]
        return None
    return root["queue"]


def op_append_scalar(root: Any, rng: random.Random) -> None:
    """``append`` of a scalar (on SQLite: one held scope without a unit of work)."""
    q = _queue(root)
    if q is not None:
        q.append(rng.randrange(10_000))


def op_prepend_scalar(root: Any, rng: random.Random) -> None:
    """``insert(0, x)`` of a scalar."""
    q = _queue(root)
    if q is not None:
        q.insert(0, f"s{rng.randrange(100)}")


def op_pop_first(root: Any, rng: random.Random) -> None:
    """``pop(0)`` of a scalar (an append when the list is empty)."""
    q = _queue(root)
    if q is not None:
        if len(q):
            q.pop(0)
        else:
            q.append(0)


def op_pop_last(root: Any, rng: random.Random) -> None:
    """``pop()`` of a scalar (an append when the list is empty)."""
    q = _queue(root)
    if q is not None:
        if len(q):
            q.pop()
        else:
            q.append(0)


def op_pop_first_item(root: Any, rng: random.Random) -> None:
    """``pop(0)`` of the list's first item, a document (on SQLite: the graph's work done
    in the scope the end-of-list path began)."""
    if "list" in root and len(root["list"]):
        root["list"].pop(0)
    else:
        root["list"] = make_items(rng, 4)


def op_delete_subtree(root: Any, rng: random.Random) -> None:
    """Delete a branch (with its shared references) or the whole document."""
    if "doc" not in root:
        root["doc"] = make_doc(rng, 8)
        return
    branches = root["doc"]["branches"]
    if rng.random() < 0.25 or not len(branches):
        del root["doc"]
    else:
        del branches[rng.randrange(len(branches))]


def op_ring(root: Any, rng: random.Random) -> None:
    """Create a cyclic structure, or delete it (collecting the cycle)."""
    if "ring" in root:
        del root["ring"]
    else:
        root["ring"] = make_ring(rng, rng.randrange(1, 6))


def op_alias(root: Any, rng: random.Random) -> None:
    """Link an existing node from a second place (shared node across the tree)."""
    if "doc" in root and "list" in root:
        root["doc"]["alias"] = root["list"]
    elif "list" not in root:
        root["list"] = make_items(rng, 3)
    else:
        root["doc"] = make_doc(rng, 8)


def op_transaction(root: Any, rng: random.Random) -> None:
    """A transaction: move an item from the list into the document, bump a counter."""
    if "doc" not in root or "list" not in root:
        root["list"] = make_items(rng, 4)
        return
    note = rng.randrange(1000)

    def fn(t: Any) -> None:
        lst = t["list"]
        if len(lst):
            item = lst.pop(0)
            t["doc"]["moved"].append({"k": item["k"], "note": note})
        else:
            lst.extend(make_items(random.Random(note), 3))
        t.incr("moves")

    root.transact(fn)


def op_counter(root: Any, rng: random.Random) -> None:
    """``db.incr`` (atomic on its own)."""
    root.incr("hits", rng.randrange(1, 100))


def op_pinned_link(root: Any, rng: random.Random) -> None:
    """``RD(db, data)`` then link it: two writes, the first leaves a pinned node."""
    if "doc" not in root:
        root["doc"] = make_doc(rng, 8)
        return
    node = root.new_dict({"pinned": make_leaf(rng)})
    root["doc"]["adopted"] = node


def op_pop_doc(root: Any, rng: random.Random) -> None:
    """``pop`` a whole document (it comes back materialized, the nodes are collected)."""
    if "doc" in root:
        root.pop("doc")
    else:
        root["doc"] = make_doc(rng, 8)


def workload(size: int) -> list[tuple[Op, int]]:
    """The crash workload: ``(operation, weight)`` pairs; ``size`` is the big document's size."""
    return [
        (op_overwrite_doc(size), 4),
        (op_nested_edit, 3),
        (op_nested_update, 2),
        (op_list_rewrite, 3),
        (op_list_edit, 3),
        (op_delete_subtree, 2),
        (op_ring, 2),
        (op_alias, 1),
        (op_transaction, 3),
        (op_counter, 1),
        (op_pinned_link, 1),
        (op_pop_doc, 1),
        (op_append_scalar, 1),
        (op_prepend_scalar, 1),
        (op_pop_first, 1),
        (op_pop_last, 1),
        (op_pop_first_item, 1),
    ]


def seed_state(root: Any, rng: random.Random, size: int) -> None:
    """The starting state: a document, a list, a ring and a queue of scalars."""
    root["doc"] = make_doc(rng, size)
    root["list"] = make_items(rng, 8)
    root["ring"] = make_ring(rng, 3)
    root["queue"] = list(range(5))


# --------------------------------------------------------------------------- campaigns


@dataclass
class CampaignResult:
    """What a crash campaign did and found (``violations`` must stay empty)."""

    label: str
    kills: int = 0
    mid_op: int = 0
    saw_prev: int = 0
    saw_next: int = 0
    pins_dropped: int = 0
    reopens: int = 0
    events: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the test log."""
        ops = ", ".join(f"{k}={v}" for k, v in sorted(self.ops.items()))
        return (
            f"[{self.label}] kills={self.kills} (mid-operation {self.mid_op}), "
            f"store found at previous state {self.saw_prev}x / next state {self.saw_next}x, "
            f"pins left by killed writers {self.pins_dropped}, reopens {self.reopens}, "
            f"violations {len(self.violations)}; ops: {ops}"
        )


def _verify(
    db: DB, prev: Model, nxt: Model, done: bool, result: CampaignResult, what: str
) -> Model:
    """Check the store holds ``prev`` (only if the op may not have finished) or ``nxt``."""
    try:
        observed = read_state(db)
        report = db.check()
    except Exception as exc:  # a crash must never make the store unreadable
        result.violations.append(f"{what}: reading after the kill failed: {exc!r}")
        raise
    to_next = state_diff(observed, nxt)
    to_prev = state_diff(observed, prev) if to_next is not None else "n/a"
    if to_next is None:
        result.saw_next += 1
        model = nxt
    elif to_prev is None and not done:
        result.saw_prev += 1
        model = prev
    else:
        state = "finished" if done else "killed"
        result.violations.append(
            f"{what} ({state}): store is neither the previous nor the next state; "
            f"vs next: {to_next}; vs previous: {to_prev}"
        )
        model = observed
    if not report.ok:
        result.violations.append(f"{what}: db.check() after the kill: {report}")
        db.gc()
    if report.pinned:
        # Pins of RD(db) handles held by the killed writer: documented, and cleared by gc.
        result.pins_dropped += len(report.pinned)
        db.gc(drop_pins=True)
    return model


def _apply_to_model(op: Op, model: Model, seed: int) -> Model:
    nxt = model.copy()
    op(nxt, random.Random(seed))
    return nxt


def _read_available(fd: int) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def kill_campaign(
    open_db: Callable[[], DB],
    *,
    kills: int,
    seed: int = 0,
    size: int = 40,
    label: str = "",
    reopen_every: int = 50,
    max_violations: int = 5,
    settle: Settle | None = None,
) -> CampaignResult:
    """Run ``kills`` random operations in forked children, each killed with ``SIGKILL``.

    The delay before each kill is drawn between 0 and 1.3x the running mean
    duration of that operation, so most kills land while it is running (the
    rest just after, which must then show the next state). ``settle``: see
    :data:`Settle` (needed for a store behind a server).
    """
    result = CampaignResult(label)
    rng = random.Random(seed)
    ops = workload(size)
    weights = [w for _, w in ops]
    means: dict[str, float] = {}
    db = open_db()
    try:
        db.clear()
        for name in COUNTERS:
            if db.count(name):
                db.incr(name, -db.count(name))
        model = Model()
        setup_seed = rng.getrandbits(32)
        seed_state(Target(db), random.Random(setup_seed), size)
        seed_state(model, random.Random(setup_seed), size)
        model = _verify(db, model, model, True, result, "setup")
        result.saw_next = 0
        for i in range(kills):
            op = rng.choices([o for o, _ in ops], weights)[0]
            op_seed = rng.getrandbits(32)
            name = op.__name__
            result.ops[name] += 1
            nxt = _apply_to_model(op, model, op_seed)
            delay = rng.uniform(0, 1.3 * means.get(name, 0.02))
            settled = settle(db) if settle is not None else None
            done, elapsed, error = _run_and_kill(open_db, op, op_seed, delay)
            if settled is not None:
                settled()
            result.kills += 1
            if error:
                result.violations.append(
                    f"kill {i} ({name}, seed {op_seed}): child failed: {error}"
                )
            if not done:
                result.mid_op += 1
            elif elapsed is not None:
                means[name] = 0.7 * means.get(name, elapsed) + 0.3 * elapsed
            model = _verify(db, model, nxt, done, result, f"kill {i} ({name}, seed {op_seed})")
            if len(result.violations) >= max_violations:
                break
            if reopen_every and (i + 1) % reopen_every == 0:
                db.close()
                db = open_db()  # verify through a fresh connection now and then
                result.reopens += 1
    finally:
        db.close()
    return result


def _run_and_kill(
    open_db: Callable[[], DB], op: Op, op_seed: int, delay: float
) -> tuple[bool, float | None, str | None]:
    """Fork a child that runs ``op``; kill it ``delay`` s after it starts. (done, secs, error)."""
    status_r, status_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        try:
            os.close(status_r)
            os.close(hold_w)
            child_db = open_db()
            os.write(status_w, b"R")
            start = time.perf_counter()
            op(Target(child_db), random.Random(op_seed))
            os.write(status_w, b"D" + struct.pack("d", time.perf_counter() - start))
            os.read(hold_r, 1)  # wait here to be killed
        except BaseException:
            os.write(status_w, b"E" + traceback.format_exc()[-1500:].encode())
        os._exit(1)
    os.close(status_w)
    os.close(hold_r)
    try:
        ready, _, _ = select.select([status_r], [], [], 60)
        first = os.read(status_r, 1) if ready else b""
        if first == b"R":
            time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        rest = _read_available(status_r)
        if first != b"R":
            return False, None, f"child did not start: {(first + rest)[:1500]!r}"
        if rest.startswith(b"E"):
            return False, None, rest[1:].decode(errors="replace")
        if rest.startswith(b"D") and len(rest) >= 9:
            return True, struct.unpack("d", rest[1:9])[0], None
        return False, None, None
    finally:
        os.close(status_r)
        os.close(hold_w)


def tripwire_campaign(
    open_db: Callable[[], DB],
    arm: Callable[[Tripwire], Any],
    *,
    label: str = "",
    seed: int = 0,
    size: int = 3,
    rounds: int = 1,
    max_points: int = 2000,
    max_violations: int = 5,
    settle: Settle | None = None,
) -> CampaignResult:
    """Kill a child at *every* store write of each workload operation in turn.

    ``arm(tripwire)`` installs the crash points in the child before it opens
    its store (e.g. ``etcher_sqlite.testing.arm_sqlite``); counting
    starts once the store is open. For write number N = 1, 2, ... the child
    dies there; when the operation completes without reaching N, every write
    has been a crash point and the next operation starts. ``settle``: see
    :data:`Settle` (needed for a store behind a server).
    """
    result = CampaignResult(label)
    rng = random.Random(seed)
    db = open_db()
    try:
        db.clear()
        model = Model()
        for name in COUNTERS:
            if db.count(name):
                db.incr(name, -db.count(name))
        setup_seed = rng.getrandbits(32)
        seed_state(Target(db), random.Random(setup_seed), size)
        seed_state(model, random.Random(setup_seed), size)
        model = _verify(db, model, model, True, result, "setup")
        result.saw_next = 0
        sequence = [op for op, _ in workload(size)] * rounds
        for op in sequence:
            name = op.__name__
            op_seed = rng.getrandbits(32)
            prev = model
            nxt = _apply_to_model(op, prev, op_seed)
            for point in range(1, max_points + 1):
                settled = settle(db) if settle is not None else None
                killed, error = _run_tripwire(open_db, arm, op, op_seed, point)
                if settled is not None:
                    settled()
                if error:
                    result.violations.append(f"{name} write {point}: child failed: {error}")
                if killed:
                    result.kills += 1
                    result.ops[name] += 1
                what = f"{name} (seed {op_seed}) killed at write {point}"
                seen = _verify(db, prev, nxt, not killed, result, what)
                if len(result.violations) >= max_violations:
                    return result
                if not killed:
                    result.events += point - 1
                    model = seen
                    break
                if seen is nxt:
                    restore(db, prev)  # crash came after the commit: start again from prev
            else:
                result.violations.append(f"{name}: more than {max_points} writes")
    finally:
        db.close()
    return result


def _run_tripwire(
    open_db: Callable[[], DB], arm: Callable[[Tripwire], Any], op: Op, op_seed: int, point: int
) -> tuple[bool, str | None]:
    """Fork a child that dies at write ``point`` of ``op``. Returns (killed, error)."""
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(status_r)
            tripwire = Tripwire(None)
            arm(tripwire)
            child_db = open_db()
            tripwire.count = 0
            tripwire.at = point
            op(Target(child_db), random.Random(op_seed))
            tripwire.disarm()
        except BaseException:
            os.write(status_w, b"E" + traceback.format_exc()[-1500:].encode())
            code = 1
        os._exit(code)
    os.close(status_w)
    try:
        _, status = os.waitpid(pid, 0)
        output = _read_available(status_r)
    finally:
        os.close(status_r)
    error = output[1:].decode(errors="replace") if output.startswith(b"E") else None
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return True, error
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return False, error
    return False, error or f"child ended with status {status}"


# --------------------------------------------------------------------------- soak

ACCOUNTS = 5
OPENING_BALANCE = 1000
DOCS = 3


def make_version(v: int) -> dict[str, Any]:
    """A document whose every part carries version ``v`` (a torn read shows mixed versions)."""
    shared = {"v": v}
    return {"v": v, "items": [v] * 8, "nested": {"v": v, "list": [{"v": v}, shared]}, "s": shared}


def check_version(doc: Any) -> str | None:
    """``None`` if ``doc`` is one whole version, else what is wrong."""
    if not isinstance(doc, dict) or "v" not in doc:
        return f"not a versioned document: {_short(doc)}"
    diff = same(doc, make_version(doc["v"]))
    return None if diff is None else f"torn document: {diff}"


def soak_setup(db: DB, workers: int) -> None:
    """The shared structures the soak workers fight over."""
    db.clear()
    db.update(
        {
            "bank": {f"a{i}": OPENING_BALANCE for i in range(ACCOUNTS)},
            "ledger": {f"w{w}": 0 for w in range(workers)},
            "journal": [],
            "queue": [],
            "tree": {},
            **{f"doc{j}": make_version(0) for j in range(DOCS)},
        }
    )


def check_snapshot(whole: dict[str, Any], workers: int) -> list[str]:
    """Invariants that every consistent snapshot of the soak namespace satisfies."""
    problems = []
    bank = whole["bank"]
    if sum(bank.values()) != OPENING_BALANCE * ACCOUNTS:
        problems.append(f"money not conserved: {bank}")
    if sum(whole["ledger"].values()) != len(whole["journal"]):
        problems.append(
            f"ledger total {sum(whole['ledger'].values())} != journal {len(whole['journal'])}"
        )
    for j in range(DOCS):
        problem = check_version(whole[f"doc{j}"])
        if problem:
            problems.append(f"doc{j}: {problem}")
    return problems


def _transfer(a: int, b: int, amount: int, me: str, entry: str, t: Any) -> None:
    """One soak transaction: move money, count it in the ledger, log it in the journal."""
    bank = t["bank"]
    bank[f"a{a}"] = bank[f"a{a}"] - amount
    bank[f"a{b}"] = bank[f"a{b}"] + amount
    ledger = t["ledger"]
    ledger[me] = ledger[me] + 1
    t["journal"].append(entry)


def _read_doc(key: str, t: Any) -> Any:
    """A consistent read of one document (in a transaction)."""
    return t[key]()


def soak_worker(
    target: str,
    backend: str | None,
    prefix: str,
    worker: int,
    workers: int,
    seconds: float,
    seed: int,
    result_path: str,
    inherited: DB | None = None,
) -> None:
    """Random reads, writes, deletes and transactions for ``seconds``; results to JSON.

    Module-level so ``multiprocessing`` can start it with ``spawn``. A ``fork``-started
    worker may instead get the parent's open DB as ``inherited`` and use it as is, which
    is what an app preloaded before its workers fork does. Every
    committed transaction appends ``"<worker>:<n>"`` to the shared journal and
    bumps ``ledger["w<worker>"]``, so the parent can check that exactly the
    committed transactions, and each exactly once, reached the store.
    """
    rng = random.Random(seed)
    kwargs: dict[str, Any] = {"prefix": prefix}
    if backend is not None:
        kwargs["backend"] = backend
    db = inherited if inherited is not None else DB(target, **kwargs)
    out: dict[str, Any] = {
        "worker": worker,
        "committed": 0,
        "pushed": [],
        "popped": [],
        "hits": 0,
        "ops": Counter(),
        "allowed_errors": Counter(),
        "violations": [],
    }
    ops: Counter[str] = out["ops"]
    me = f"w{worker}"
    deadline = time.monotonic() + seconds
    pushes = 0
    try:
        while time.monotonic() < deadline:
            roll = rng.random()
            try:
                if roll < 0.30:
                    a, b = rng.sample(range(ACCOUNTS), 2)
                    amount = rng.randrange(1, 50)
                    entry = f"{worker}:{out['committed'] + 1}"
                    db.transact(functools.partial(_transfer, a, b, amount, me, entry))
                    out["committed"] += 1
                    ops["transfer"] += 1
                elif roll < 0.40:
                    whole = db()
                    out["violations"] += check_snapshot(whole, workers)
                    ops["snapshot"] += 1
                elif roll < 0.50:
                    j = rng.randrange(DOCS)
                    db[f"doc{j}"] = make_version(worker * 1_000_000 + rng.randrange(1_000_000))
                    ops["overwrite"] += 1
                elif roll < 0.60:
                    j = rng.randrange(DOCS)
                    doc = db.transact(functools.partial(_read_doc, f"doc{j}"))
                    problem = check_version(doc)
                    if problem:
                        out["violations"].append(f"transactional read doc{j}: {problem}")
                    ops["read_tx"] += 1
                elif roll < 0.65:
                    j = rng.randrange(DOCS)
                    # A replacement by another worker between db[...] and () must not
                    # fail this idiom: the handle keeps naming the version it found.
                    doc = db[f"doc{j}"]()
                    problem = check_version(doc)
                    if problem:
                        out["violations"].append(f"plain read doc{j}: {problem}")
                    ops["read_plain"] += 1
                elif roll < 0.73:
                    pushes += 1
                    item = f"{worker}:{pushes}"
                    db["queue"].append(item)
                    out["pushed"].append(item)
                    ops["push"] += 1
                elif roll < 0.81:
                    try:
                        out["popped"].append(db["queue"].pop(0))
                    except IndexError:
                        out["allowed_errors"]["IndexError(empty queue)"] += 1
                    ops["pop"] += 1
                elif roll < 0.90:
                    key = f"b{rng.randrange(8)}"
                    tree = db["tree"]
                    if rng.random() < 0.5:
                        tree[key] = {"x": {"y": [rng.randrange(9), {"z": key}]}, "w": worker}
                        ops["tree_set"] += 1
                    else:
                        try:
                            del tree[key]
                        except KeyError:
                            out["allowed_errors"]["KeyError(tree)"] += 1
                        ops["tree_del"] += 1
                else:
                    db.incr("hits")
                    out["hits"] += 1
                    ops["incr"] += 1
            except Exception as exc:  # anything else is a failure the parent reports
                out["violations"].append(f"{type(exc).__name__}: {exc}")
                if len(out["violations"]) > 20:
                    break
    finally:
        db.close()
        with open(result_path, "w") as fh:
            json.dump(out, fh)


def soak_maintenance_worker(
    target: str,
    backend: str | None,
    prefix: str,
    seconds: float,
    seed: int,
    result_path: str,
) -> None:
    """Maintenance beside the soak's writers for ``seconds``; results to JSON.

    Loops ``check()`` and ``gc()`` on the soak's own namespace (both must find a healthy
    store while the writers run) and fills then deletes scratch namespaces with
    ``delete_prefix_immediately`` / ``delete_prefix_batch`` (each must leave the scratch
    namespace gone and the soak's namespace untouched).
    """
    rng = random.Random(seed)
    kwargs: dict[str, Any] = {"prefix": prefix}
    if backend is not None:
        kwargs["backend"] = backend
    out: dict[str, Any] = {"ops": Counter(), "violations": []}
    ops: Counter[str] = out["ops"]
    deadline = time.monotonic() + seconds
    scratch_no = 0
    db = DB(target, **kwargs)
    try:
        while time.monotonic() < deadline and len(out["violations"]) <= 20:
            roll = rng.random()
            try:
                if roll < 0.35:
                    report = db.check()
                    if not report.ok:
                        out["violations"].append(f"check() beside writers: {report.problems()[:3]}")
                    ops["check"] += 1
                elif roll < 0.70:
                    report = db.gc()
                    if not report.ok:
                        out["violations"].append(f"gc() found damage: {report.problems()[:3]}")
                    ops["gc"] += 1
                else:
                    scratch_no += 1
                    scratch = f"{prefix}-scratch{scratch_no}"
                    with DB(target, **{**kwargs, "prefix": scratch}) as other:
                        other["doc"] = {"n": scratch_no, "items": [{"i": i} for i in range(20)]}
                    if rng.random() < 0.5:
                        db.delete_prefix_immediately(scratch)
                        ops["delete_prefix_immediately"] += 1
                    else:
                        while db.delete_prefix_batch(scratch, count=7):
                            pass
                        ops["delete_prefix_batch"] += 1
                    if scratch in db.namespaces():
                        out["violations"].append(f"namespace {scratch} still listed after delete")
            except Exception as exc:  # anything else is a failure the parent reports
                out["violations"].append(f"{type(exc).__name__}: {exc}")
    finally:
        db.close()
        with open(result_path, "w") as fh:
            json.dump(out, fh)


def soak_verify(db: DB, results: list[dict[str, Any]], workers: int) -> list[str]:
    """Everything the soak must leave true; returns the violations found."""
    problems = [f"worker {r['worker']}: {v}" for r in results for v in r["violations"]]
    report = db.check()
    if not report.ok:
        problems.append(f"db.check(): {report}")
    if report.pinned:
        problems.append(f"pinned nodes left: {report.pinned}")
    whole = db()
    problems += check_snapshot(whole, workers)
    journal = whole["journal"]
    for r in results:
        w = r["worker"]
        mine = [e for e in journal if e.split(":")[0] == str(w)]
        expected = [f"{w}:{n}" for n in range(1, r["committed"] + 1)]
        if mine != expected:
            problems.append(
                f"worker {w}: committed {r['committed']} transactions, the journal holds "
                f"{len(mine)} entries of it: {mine[:3]}...{mine[-3:]}"
            )
        if whole["ledger"][f"w{w}"] != r["committed"]:
            problems.append(
                f"worker {w}: ledger {whole['ledger'][f'w{w}']} != committed {r['committed']}"
            )
    pushed = Counter(i for r in results for i in r["pushed"])
    popped = Counter(i for r in results for i in r["popped"])
    remaining = Counter(whole["queue"])
    if any(n > 1 for n in (popped + remaining).values()):
        problems.append("a queue item was popped or kept twice")
    if popped + remaining != pushed:
        problems.append(
            f"queue: pushed {sum(pushed.values())}, popped {sum(popped.values())}, "
            f"left {sum(remaining.values())}; lost {sorted(pushed - popped - remaining)[:5]}"
        )
    hits = sum(r["hits"] for r in results)
    if db.count("hits") != hits:
        problems.append(f"hits counter {db.count('hits')} != {hits} increments")
    return problems


def iter_children(node: Any) -> Iterator[Any]:
    """Direct children of a plain value (for tests that walk deep values without recursion)."""
    if isinstance(node, dict):
        yield from node.values()
    elif isinstance(node, list):
        yield from node


__all__ = [
    "COUNTERS",
    "CampaignResult",
    "Model",
    "Settle",
    "Target",
    "check_snapshot",
    "check_version",
    "iter_children",
    "kill_campaign",
    "make_doc",
    "make_version",
    "read_state",
    "restore",
    "same",
    "soak_maintenance_worker",
    "soak_setup",
    "soak_verify",
    "soak_worker",
    "state_diff",
    "tripwire_campaign",
    "workload",
]
