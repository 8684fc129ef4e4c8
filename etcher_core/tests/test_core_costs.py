"""Costs and atomicity of core operations, counted through an instrumented backend.

Nothing here measures time: commits, round trips and commands are counted,
which is what the design promises (one commit per public mutation, O(depth)
round trips, GC work linear in what it visits).
"""

from __future__ import annotations

import gc as pygc
import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from etcher import DB, RD, RL, StaleHandleError, WatchError
from etcher.errors import BackendUnavailable
from etcher.testing._harness.instrument import CountingBackend
from etcher.testing.reference import ReferenceBackend

# The reference backend always; the others where they happen to be installed.
BACKENDS = ["reference"] + [
    name
    for name, package in (("memory", "etcher_contrib"), ("sqlite", "etcher_sqlite"))
    if importlib.util.find_spec(package) is not None
]


@pytest.fixture(params=BACKENDS)
def counting(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[CountingBackend]:
    if request.param == "reference":
        inner: Any = ReferenceBackend()
    elif request.param == "memory":
        from etcher_contrib.memory import MemoryBackend

        inner = MemoryBackend.from_url("memory://")
    else:
        from etcher_sqlite.backend import SQLiteBackend

        inner = SQLiteBackend.from_path(str(tmp_path / "costs.db"))
    yield CountingBackend(inner)
    inner.close()


@pytest.fixture
def db(counting: CountingBackend) -> DB:
    # These tests count what a collection deletes right away: no grace period.
    return DB(backend=counting, prefix="costs", grace=0)


def namespace_keys(db: DB) -> int:
    return sum(1 for _ in db.backend.scan_iter(match=db._layout.scan))


def make_tree(fanout: int, depth: int) -> tuple[dict[str, Any], int]:
    """A tree of dicts (and a list at every level) with ``fanout`` children per node."""
    count = 0

    def build(level: int) -> dict[str, Any]:
        nonlocal count
        count += 1
        node: dict[str, Any] = {"level": level, "name": f"n{count}"}
        if level < depth:
            node["kids"] = [build(level + 1) for _ in range(fanout)]
            count += 1  # the list node
        return node

    return build(1), count


def test_big_write_is_one_commit(db: DB, counting: CountingBackend) -> None:
    doc, nodes = make_tree(fanout=3, depth=9)
    assert nodes > 10_000
    counting.reset()
    db["x"] = doc
    assert counting.commits == 1
    assert db["x"]() == doc
    assert db.check().ok


def test_write_and_materialize_take_rounds_proportional_to_depth(
    db: DB, counting: CountingBackend
) -> None:
    doc, nodes = make_tree(fanout=5, depth=6)
    assert nodes > 4_000
    counting.reset()
    db["tree"] = doc
    write_trips = counting.round_trips
    counting.reset()
    assert db["tree"]() == doc
    read_trips = counting.round_trips
    # depth 6 with a list between levels is 12 node levels; a few fixed trips on top.
    assert write_trips <= 10
    assert read_trips <= 4 * 12 + 6


def test_delete_subtree_rounds_proportional_to_depth(db: DB, counting: CountingBackend) -> None:
    doc, _ = make_tree(fanout=5, depth=5)
    db["tree"] = doc
    baseline = namespace_keys(db)
    counting.reset()
    del db["tree"]
    assert counting.commits == 1
    # 10 node levels (dicts and lists alternate): about two round trips per level.
    assert counting.round_trips <= 2 * 10 + 8
    assert namespace_keys(db) < baseline
    assert db.check().ok
    assert "tree" not in db


def test_delete_with_a_grace_period_costs_the_same_rounds_then_sweeps_in_batches(
    counting: CountingBackend,
) -> None:
    from etcher import _reclaim as reclaim

    db = DB(backend=counting, prefix="costs-grace", grace=600)
    db["anchor"] = 1
    baseline = namespace_keys(db)
    doc, nodes = make_tree(fanout=5, depth=5)
    db["tree"] = doc
    counting.reset()
    del db["tree"]
    assert counting.commits == 1
    assert counting.round_trips <= 2 * 10 + 8
    report = db.check()
    assert report.ok and report.pending == nodes
    counting.reset()
    assert db.maintenance(reclaim_all=True) == nodes
    # Blind deletes in bounded units: one read of the pending list, then a commit per unit.
    assert counting.commits == -(-nodes // reclaim.FULL_SWEEP_UNIT)
    assert namespace_keys(db) == baseline
    assert db.check().ok


def diamond_ladder(db: DB, rungs: int) -> None:
    """Root -> top0; each rung: top -> (left, right) -> bottom = next top; last bottom -> top0."""
    tops: list[dict[str, Any]] = [{"i": i} for i in range(rungs + 1)]
    for i in range(rungs):
        left = {"side": "L", "down": tops[i + 1]}
        right = {"side": "R", "down": tops[i + 1]}
        tops[i]["left"] = left
        tops[i]["right"] = right
    tops[rungs]["back"] = tops[0]  # close the ladder into a cycle
    db["ladder"] = tops[0]


@pytest.mark.parametrize("rungs", [40])
def test_diamond_ladder_cycle_is_collected_in_linear_work(
    db: DB, counting: CountingBackend, rungs: int
) -> None:
    costs = {}
    empty = namespace_keys(db)
    for n in (rungs // 4, rungs // 2, rungs):
        diamond_ladder(db, n)
        assert db.check().ok
        counting.reset()
        del db["ladder"]
        costs[n] = counting.total_commands + counting.watched_keys
        assert namespace_keys(db) == empty, "the ladder was not fully collected"
        assert db.check().ok
    small, mid, big = costs[rungs // 4], costs[rungs // 2], costs[rungs]
    # Doubling the ladder must roughly double the work (linear), never square it.
    assert 1.5 <= mid / small <= 2.5, costs
    assert 1.5 <= big / mid <= 2.5, costs


def test_shared_node_survives_until_last_link(db: DB) -> None:
    shared = {"n": 1}
    db["a"] = {"x": shared, "y": shared}
    db["b"] = {"z": db["a"]["x"]}
    node = db["a"]["x"]
    assert node.backrefs == {db["a"].uid: 2, db["b"].uid: 1}
    assert node.refcount == 3
    del db["a"]
    assert node() == {"n": 1}
    assert node.backrefs == {db["b"].uid: 1}
    del db["b"]
    with pytest.raises(StaleHandleError):
        node["n"]
    with pytest.raises(StaleHandleError):
        node["n"] = 2
    assert db.check().ok


def test_self_cycle_collected(db: DB) -> None:
    db["cycle"] = 0
    empty = namespace_keys(db)
    a: dict[str, Any] = {"name": "a"}
    b = {"name": "b", "a": a}
    a["b"] = b
    a["self"] = a
    db["cycle"] = a
    got = db["cycle"]()
    assert got["self"] is got and got["b"]["a"] is got
    db["cycle"] = 0
    assert namespace_keys(db) == empty
    assert db.check().ok


def test_failed_commit_leaves_store_unchanged(db: DB, counting: CountingBackend) -> None:
    db["keep"] = {"v": [1, 2, 3]}
    before = db()
    keys = namespace_keys(db)
    counting.fail_on_commit = BackendUnavailable("simulated crash at commit")
    with pytest.raises(BackendUnavailable):
        db["keep"] = {"replaced": True}
    with pytest.raises(BackendUnavailable):
        db["keep"]["v"].append(4)
    counting.fail_on_commit = None
    assert db() == before
    assert namespace_keys(db) == keys
    assert db.check().ok


def test_bad_value_deep_inside_writes_nothing(db: DB, counting: CountingBackend) -> None:
    db["keep"] = {"v": 1}
    keys = namespace_keys(db)
    counting.reset()
    with pytest.raises(TypeError, match=r"\['a'\]\['b'\]\[2\]"):
        db["bad"] = {"a": {"b": [1, 2, {3}]}}
    assert counting.commits == 0
    assert namespace_keys(db) == keys
    assert "bad" not in db


def test_conflicting_writer_is_retried_not_lost(db: DB, counting: CountingBackend) -> None:
    db["n"] = {"v": 0}
    other = DB(backend=counting, prefix="costs")
    handle = db["n"]
    original = handle.__class__.__setitem__
    interfered = []

    def interfering(self: RD, key: Any, value: Any) -> None:
        if not interfered:
            interfered.append(True)
            other["n"]["w"] = "other writer"
        original(self, key, value)

    # A plain write from another DB between our read and our commit forces one retry.
    db["n"]["v"] = 1
    assert db["n"]() == {"v": 1}
    RD.__setitem__ = interfering  # type: ignore[method-assign]
    try:
        db["n"]["v"] = 2
    finally:
        RD.__setitem__ = original  # type: ignore[method-assign]
    assert db["n"]() == {"v": 2, "w": "other writer"}


def test_pinned_node_lifetime(db: DB) -> None:
    empty = namespace_keys(db)
    rd = RD(db, {"a": [1, 2]})
    report = db.check()
    assert report.ok and report.pinned == [rd.uid]
    assert rd.pinned
    db["linked"] = rd
    assert not rd.pinned
    assert db["linked"].uid == rd.uid
    del db["linked"]
    with pytest.raises(StaleHandleError):
        rd()
    rl = RL(db, [1])
    uid = rl.uid
    del rl
    pygc.collect()
    db["trigger"] = 1  # the released pin is processed by the next mutation
    del db["trigger"]
    assert not db.backend.exists(db._layout.refs(uid))
    assert namespace_keys(db) == empty
    assert db.check().ok


def test_gc_drop_pins_collects_leftover_pins(db: DB) -> None:
    rd = RD(db, {"x": 1})
    uid = rd.uid
    report = db.gc(drop_pins=True)
    assert report.repaired
    assert not db.backend.exists(db._layout.refs(uid))


def test_repair_fixes_damage(db: DB) -> None:
    db["a"] = {"child": {"n": 1}, "list": [{"m": 2}]}
    layout = db._layout
    child = db["a"]["child"].uid
    list_uid = db["a"]["list"].uid
    # Damage: an orphan node, a wrong count, a dangling link.
    db.backend.hset(layout.refs("Dorphan1"), b"#k", b"d")
    db.backend.hset(layout.refs(child), db["a"].uid.encode(), b"7")
    db.backend.delete(layout.refs(db["a"]["list"][0].uid), layout.content(db["a"]["list"][0].uid))
    report = db.check()
    assert not report.ok
    assert "Dorphan1" in report.orphans
    assert any(c == child for c, _p, _s, _a in report.wrong_counts)
    assert any(p == list_uid for p, _c in report.dangling)
    db.gc()
    assert db.check().ok
    assert db["a"]() == {"child": {"n": 1}, "list": [None]}


def test_transactor_published_api(db: DB) -> None:
    t = db.transactor()
    t.watch()
    t.multi()
    t["numbers"] = [1, 2, 3, 4, 5, 6]
    t.execute()
    assert db["numbers"]() == [1, 2, 3, 4, 5, 6]

    def txn() -> None:
        xs = t["numbers"]() if "numbers" in t else []
        t.multi()
        t["numbers"] = xs + [7, 8]

    t.transact(txn)
    assert db["numbers"]() == [1, 2, 3, 4, 5, 6, 7, 8]


def test_transaction_conflict_and_read_your_writes(db: DB) -> None:
    db["a"] = {"n": 0}
    db["b"] = {"n": 0}
    with pytest.raises(WatchError), db.transaction() as t:
        value = t["a"]["n"]
        t["a"]["n"] = value + 1
        assert t["a"]["n"] == value + 1  # read-your-writes, through a fresh handle
        db["a"]["n"] = 100  # a plain write to something the transaction read
    assert db["a"]["n"] == 100
    # Disjoint data: a write elsewhere does not conflict.
    with db.transaction() as t:
        t["a"]["n"] = t["a"]["n"] + 1
        db["b"]["n"] = 5
    assert db["a"]["n"] == 101 and db["b"]["n"] == 5


def test_exception_inside_transact_aborts_without_retry(db: DB) -> None:
    db["a"] = 1
    calls = []

    def fn(t: Any) -> None:
        calls.append(1)
        t["a"] = 2
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.transact(fn)
    assert calls == [1]
    assert db["a"] == 1


def test_default_namespace_is_remembered(counting: CountingBackend) -> None:
    first = DB(backend=counting)
    first["x"] = 1
    DB(backend=counting, prefix="other")["x"] = 2
    again = DB(backend=counting)
    assert again.prefix == first.prefix
    assert again["x"] == 1


def test_endless_conflicts_end_in_a_clear_timeout(db: DB) -> None:
    from etcher import ConflictTimeout
    from etcher._unit import RetryPolicy

    db["a"] = {"n": 0}
    attempts = []

    def always_conflicting(t: Any) -> None:
        attempts.append(1)
        value = t["a"]["n"]
        db["a"]["n"] = value + 100  # someone else keeps changing what we read
        t["a"]["n"] = value + 1

    with pytest.raises(ConflictTimeout, match="3 conflicting attempts"):
        db.transact(always_conflicting, retry=RetryPolicy(max_attempts=3, base_delay=0))
    assert len(attempts) == 3
    assert db["a"]["n"] == 300  # only the other writer's updates landed


def test_copy_module_gives_shallow_and_deep_plain_copies(db: DB) -> None:
    import copy

    db["x"] = {"a": [1, {"b": 2}]}
    shallow = copy.copy(db["x"])
    assert type(shallow) is dict and isinstance(shallow["a"], RL)
    deep = copy.deepcopy(db["x"])
    assert deep == {"a": [1, {"b": 2}]} and type(deep["a"]) is list
    deep["a"].append(3)
    assert db["x"]() == {"a": [1, {"b": 2}]}


def test_cyclic_gc_is_paused_during_a_unit_and_restored_even_when_it_raises() -> None:
    # A unit of a big write makes millions of short-lived objects: the collector's passes
    # over them (and over the caller's document) are wasted work while it runs.
    from etcher._unit import RetryPolicy

    backend = ReferenceBackend()
    seen: list[bool] = []

    def fails(unit: Any) -> None:
        seen.append(pygc.isenabled())
        raise ValueError("boom")

    assert pygc.isenabled()
    with pytest.raises(ValueError, match="boom"):
        RetryPolicy().run(backend, fails)
    assert seen == [False]
    assert pygc.isenabled()
    seen.clear()
    assert RetryPolicy().run(backend, lambda unit: seen.append(pygc.isenabled())) is None
    assert seen == [False] and pygc.isenabled()
    # A caller that turned the collector off keeps it off.
    pygc.disable()
    try:
        RetryPolicy().run(backend, lambda unit: None)
        assert not pygc.isenabled()
    finally:
        pygc.enable()


def test_a_node_emptied_and_unlinked_in_one_transaction_is_collected(db: DB) -> None:
    # The sweep reads dead nodes from the unit's own state, where a field deleted
    # earlier in the unit is a hole (None), not an item.
    db["a"] = {"keep": 1, "child": {"deep": [{"x": 1}]}, "other": [1, {"y": 2}]}
    before = namespace_keys(db)
    with db.transaction() as t:
        a = t["a"]
        del a["child"]
        a["late"] = {"z": 3}
        del a["late"]
        t["a"]["other"].pop()
        del t["a"]
    report = db.check()
    assert report.ok and report.nodes == 1
    assert "a" not in db and namespace_keys(db) < before


def test_new_nodes_written_then_rolled_back_inside_a_transaction(db: DB) -> None:
    # A new node's state and its pending write are one dict in the unit: a failed
    # operation's rollback must restore both, and the commit send what is left.
    db["base"] = {"n": 0}
    with db.transaction() as t:
        t["doc"] = {"a": {"b": 1}, "l": [1, 2]}
        doc = t["doc"]
        with pytest.raises(TypeError):
            doc["a"]["bad"] = {1, 2}  # refused: nothing of this operation stays
        doc["a"]["b"] = 2
        with pytest.raises(TypeError):
            doc.update({"c": 1, "d": object()})
        doc["a"]["e"] = 5
        del doc["a"]["b"]
    assert db["doc"]() == {"a": {"e": 5}, "l": [1, 2]}
    assert db.check().ok and db.check().nodes == 5
