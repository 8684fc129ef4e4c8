"""What a small write through a handle costs on SQLite, in Python calls and statements.

The counts pin the round-3 trimming of the small-operation path (issue 13): a
unit holding a write scope reads a few keys straight from the backend and
commits through ``UnitScope.commit_writes`` instead of pipelines and command
objects. Before it, an append was 85 Python calls, setting a field 102 and
storing a small document 176; after round 3, 39, 61 and 120 (a pop(0) 69, an
insert(0) 52), and round 4 (new nodes' rows written without a lookup, fewer
layers on the scope's commit) brought them to 33, 53, 81, 58 and 39; an append's own
path (one push committed without a run, one row flushed by one statement, the unit's
defaults as class attributes) to 30. Round 5 took a small document from 84 to 58 and
setting a field from 53 to 46: the scope applies a small unit's usual writes without
runs (new nodes' rows packed straight into the insert), the writer hands the unit its
new hashes together, and a write through a handle checks the header it just read
inline. Also in round 5, a list write at an end through a handle runs as one held scope
without a unit of work (``etcher._listends``): an append 17, a pop(0) 24, an insert(0)
17. Round 6 took a small document from 58 to 29 and setting a field from 46 to 23: new
nodes' contents reach the scope apart (``takes_fresh``), a write through a handle reads
the header and the item and numbers a new item in one graph call, and a small plain
document or a scalar is assigned without a unit of work (``etcher._writer.assign_plain``).
Round 9: a write at an end of a list reads the node's header and the list's row in one
statement (``UnitScope.read_header``), so the length, the end item and the commit read no
row of their own: an append 17 -> 15 calls and 6 -> 5 statements, a pop(0) 24 -> 21 and
7 -> 6, an insert(0) 17 -> 15 and 6 -> 5; then the header unpacked inline: 14, 20, 14.
Counts, never timings: they do not depend on the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.testing._harness.instrument import python_calls
from etcher_sqlite.testing import count_statements


def small_doc(i: int) -> dict[str, Any]:
    return {"name": f"user{i}", "address": {"city": "Oslo", "zip": f"{i:05d}"}, "tags": ["a", "b"]}


def setup(db: DB) -> dict[str, Callable[[int], object]]:
    for i in range(200):  # a spilled root, as in any real store
        db[f"r{i}"] = small_doc(i)
    db["lst"] = list(range(200))  # a spilled list
    db["rd"] = {"n": 0}
    db["fifo"] = list(range(1000))  # the harness's pop(0)/insert(0) list
    lst, rd, fifo = db["lst"], db["rd"], db["fifo"]
    ops: dict[str, Callable[[int], object]] = {
        "append": lambda i: lst.append(i),
        "set_scalar": lambda i: rd.__setitem__("n", i),
        "write_doc": lambda i: db.__setitem__(f"w{i}", small_doc(i)),
        "pop_front": lambda i: fifo.pop(0),
        "insert_front": lambda i: fifo.insert(0, i),
    }
    for fn in ops.values():
        for i in range(5):  # warm: statement cache, pinned handles, the reclaim heap
            fn(i)
    return ops


def check_landed(db: DB, op: str) -> None:
    if op == "append":
        assert db["lst"][-1] == 1000
    elif op == "set_scalar":
        assert db["rd"]["n"] == 1000
    elif op == "pop_front":
        # Warming popped 0..4 and pushed 0..4 back in front: the call pops 4.
        assert db["fifo"][:2] == [3, 2]
        assert len(db["fifo"]) == 999
    elif op == "insert_front":
        assert db["fifo"][:2] == [1000, 4]
        assert len(db["fifo"]) == 1001
    else:
        assert db["w1000"]() == small_doc(1000)


# (operation, most Python calls, statements): the statements are the layout floor's, or
# fewer where a write through a handle reads its header and item in one statement.
CASES = {
    # BEGIN IMMEDIATE, the header (liveness) and the list's row (one statement,
    # UnitScope.read_header), the item + the row, COMMIT: one under the layout floor's 6.
    "append": (14, 5),
    # BEGIN IMMEDIATE, the header and the field (one statement, UnitScope.read_item), the
    # node's row, COMMIT.
    "set_scalar": (17, 4),
    # BEGIN IMMEDIATE, the root's header and field (one statement), new rows and field,
    # COMMIT: the new nodes' rows are not looked up (core says they are new), but packed
    # into the insert of the commit's rows (UnitScope.commit_fresh). The root's header
    # goes whole (hreplace, capabilities.whole_hash_writes). One statement under the
    # layout floor's 6, which reads the header and the field apart.
    "write_doc": (22, 5),
    # BEGIN IMMEDIATE, the header and the list's row (its length; one statement), the
    # item, its delete and the row, COMMIT: the row read for the length serves the commit.
    "pop_front": (20, 6),
    # BEGIN IMMEDIATE, the header and the list's row (one statement), the item + the row,
    # COMMIT.
    "insert_front": (14, 5),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_small_writes_cost_few_python_calls(tmp_path: Path, op: str) -> None:
    db = DB(f"sqlite:///{tmp_path / 'small.db'}")
    try:
        fn = setup(db)[op]
        calls = python_calls(lambda: fn(1000))
        assert calls <= CASES[op][0], f"{op}: {calls} Python calls"
        check_landed(db, op)
    finally:
        db.close()


@pytest.mark.parametrize("op", sorted(CASES))
def test_small_writes_run_the_floor_statements(tmp_path: Path, op: str) -> None:
    with count_statements() as counter:
        db = DB(f"sqlite:///{tmp_path / 'small.db'}")
        try:
            fn = setup(db)[op]
            counter.clear()
            fn(1000)
            assert counter.total() == CASES[op][1], dict(counter)
            check_landed(db, op)
        finally:
            db.close()
