"""What reading a small document costs on SQLite, in Python calls and statements.

Round 8 (issue 13) trimmed ``db[k]()`` of a 3-node document from 45 Python calls
to 30 (the SQLite walk issues a level's statement itself and skips ``linked()``
for contents without an ``@`` byte; core's direct read calls the backend's
``read_subtree`` without a unit made to forward it; ``hget`` below) and
``db[k]["a"]["b"]`` from 18 to 12 (the backend's ``hget`` takes this thread's
connection inline and, outside a transaction, runs its own leaner statement
instead of ``ops.hget``). Round 9 took ``db[k]()`` to 21 (the backend's
``visit_subtree`` hands each node to core's decoding as it reads it, with no
scope object around the walk and no ``linked()`` pass or answer built and walked
again), then to 15 (the walk hands a level's rows over as they come, its
connection, ``ROLLBACK`` and statement texts inline; core's visitor made in
``materialize_direct`` itself). The statements are the layout floor's: the
root's item, then ``BEGIN``, one ``SELECT`` per level and ``ROLLBACK``. Counts,
never timings.
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


def setup(db: DB) -> dict[str, Callable[[], Any]]:
    for i in range(200):  # a spilled root, as in any real store
        db[f"r{i}"] = small_doc(i)
    ops: dict[str, Callable[[], Any]] = {
        "read_doc": lambda: db["r7"](),
        "read_field3": lambda: db["r7"]["address"]["city"],
    }
    for fn in ops.values():
        for _ in range(3):  # warm: statement cache, key caches
            fn()
    return ops


# (operation, most Python calls, statements, what it returns)
CASES = {
    # The root's item; BEGIN, the document's node, its two children, COMMIT.
    "read_doc": (15, 5, small_doc(7)),
    # One hget per level.
    "read_field3": (12, 3, "Oslo"),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_small_reads_cost_few_python_calls(tmp_path: Path, op: str) -> None:
    db = DB(f"sqlite:///{tmp_path / 'small.db'}")
    try:
        fn = setup(db)[op]
        calls = python_calls(fn)
        assert calls <= CASES[op][0], f"{op}: {calls} Python calls"
        assert fn() == CASES[op][2]
    finally:
        db.close()


@pytest.mark.parametrize("op", sorted(CASES))
def test_small_reads_run_the_floor_statements(tmp_path: Path, op: str) -> None:
    with count_statements() as counter:
        db = DB(f"sqlite:///{tmp_path / 'small.db'}")
        try:
            fn = setup(db)[op]
            counter.clear()
            assert fn() == CASES[op][2]
            assert counter.total() == CASES[op][1], dict(counter)
        finally:
            db.close()
