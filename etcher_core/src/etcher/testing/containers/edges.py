"""Safety at the edges: behaviour where a persistent container could drift from Python's.

Part of :class:`~etcher.testing.containers.ContainerConformance` (these tests
use its ``db`` and ``db_factory`` fixtures): atomic nested counters
(``rd.incr``), ``==`` and ordering exactly as ``list``/``dict`` define them,
identity of private stores, ``popitem`` cost, batched namespace deletion,
iteration that sees items appended during the loop, and list commands that
are never queued without arguments.
"""

from __future__ import annotations

from typing import Any

import pytest

from etcher._containers import RD
from etcher._db import DB
from etcher.errors import StaleHandleError
from etcher.testing.containers._common import dump_namespace, namespace_keys


def _raw_namespace(db: DB, prefix: str | None = None) -> dict[bytes, Any]:
    """Every key of a namespace with its raw content (to prove nothing changed)."""
    return dump_namespace(db, prefix)


def _namespace_keys(db: DB, prefix: str | None = None) -> list[bytes]:
    return namespace_keys(db, prefix)


class EdgeConformance:
    """Edge behaviour of RD/RL/DB (fixtures ``db`` and ``db_factory`` come from the kit)."""

    # --------------------------------------------------------------- rd.incr
    def test_rd_incr_creates_adds_and_returns(self, db: DB) -> None:
        db["c"] = {"n": 5, "other": "x"}
        c = db["c"]
        assert c.incr("n") == 6
        assert c.incr("n", 10) == 16
        assert c.incr("n", -20) == -4
        assert c.incr("new") == 1  # a missing field starts at 0
        assert c.incr(7, 2**70) == 2**70  # int keys and big ints, as everywhere
        assert list(c) == ["n", "other", "new", 7]  # insertion order: new fields last
        assert c() == {"n": -4, "other": "x", "new": 1, 7: 2**70}
        assert db.check().ok

    def test_rd_incr_refuses_non_int_and_writes_nothing(self, db: DB) -> None:
        db["c"] = {"s": "1", "f": 1.0, "b": True, "none": None, "l": [1], "d": {}}
        c = db["c"]
        before = _raw_namespace(db)
        for field in ("s", "f", "b", "none", "l", "d"):
            with pytest.raises(TypeError, match=repr(field)):
                c.incr(field)
        for amount in (1.0, True, "1", None):
            with pytest.raises(TypeError):
                c.incr("new", amount)
        with pytest.raises(TypeError):
            c.incr(("tuple", "key"))
        assert _raw_namespace(db) == before

    def test_rd_incr_on_a_collected_node_is_stale(self, db: DB) -> None:
        db["c"] = {"n": 1}
        c = db["c"]
        del db["c"]
        with pytest.raises(StaleHandleError):
            c.incr("n")

    def test_rd_incr_in_a_transaction_sees_and_is_seen(self, db: DB) -> None:
        db["c"] = {"n": 1}
        with db.transaction() as t:
            assert t["c"].incr("n") == 2
            assert t["c"]["n"] == 2
        assert db["c"]["n"] == 2
        unlinked = RD(db, {"n": 0})  # a node not linked yet counts too
        assert unlinked.incr("n") == 1 and unlinked() == {"n": 1}

    # --------------------------------------------------------------- list commands
    def test_an_empty_push_is_never_queued(self, db: DB) -> None:
        from etcher._unit import Unit
        from etcher.testing._harness.instrument import CountingBackend

        db["l"] = [1, 2]
        key = db._layout.content(db["l"].uid)
        counting = CountingBackend(db.backend)
        unit = Unit(counting)  # type: ignore[arg-type]
        assert len(unit.lrange(key, 0, -1)) == 2  # a read first, as every unit does
        unit.list_op(key, "rpush")
        unit.list_op(key, "lpush")
        unit.list_op(key, "rpush", *[])
        unit.commit()
        assert counting.commands["rpush"] == counting.commands["lpush"] == 0
        assert db["l"]() == [1, 2]

    # --------------------------------------------------------------- delete_prefix_batch
    def test_delete_prefix_batch_loop_on_own_namespace_ends(self, db: DB) -> None:
        db["x"] = {"a": [1, {"b": 2}]}
        db.incr("hits")
        calls = 0
        while db.delete_prefix_batch(db.prefix, count=2):
            calls += 1
            assert calls < 5, "delete_prefix_batch keeps reporting deleted keys"
        assert calls == 1
        assert db() == {} and db.count("hits") == 0
        assert db.delete_prefix_batch(db.prefix) == 0  # nothing left to delete
        db["y"] = [1]
        assert db() == {"y": [1]}
        assert db.check().ok

    def test_delete_prefix_batch_count_none_deletes_at_once(self, db_factory: Any) -> None:
        keeper = db_factory()
        other = db_factory()
        other["x"] = [{"i": i} for i in range(30)]
        assert keeper.delete_prefix_batch(other.prefix, count=None) >= 31
        assert _namespace_keys(keeper, other.prefix) == []
        assert other.prefix not in keeper.namespaces()
        assert keeper.delete_prefix_batch(other.prefix, count=None) == 0

    def test_delete_prefix_batch_refuses_bad_counts_and_deletes_nothing(
        self, db_factory: Any
    ) -> None:
        keeper = db_factory()
        other = db_factory()
        other["x"] = [1, {"a": 2}]
        before = _raw_namespace(keeper, other.prefix)
        for bad in (True, 1.5, "3", [1]):
            with pytest.raises(TypeError):
                keeper.delete_prefix_batch(other.prefix, count=bad)
        for bad in (0, -1):
            with pytest.raises(ValueError):
                keeper.delete_prefix_batch(other.prefix, count=bad)
        assert _raw_namespace(keeper, other.prefix) == before

    # --------------------------------------------------------------- == and ordering
    def test_rl_equality_is_list_equality(self, db: DB) -> None:
        from collections import UserList

        db["l"] = [1, 2]
        db["n"] = [[1, 2], {"a": [3]}]
        db["same"] = [1, 2]
        rl, nested, same = db["l"], db["n"], db["same"]
        plain, plain_nested = [1, 2], [[1, 2], {"a": [3]}]
        others: list[Any] = [
            [1, 2],
            (1, 2),
            range(1, 3),
            UserList([1, 2]),
            [1.0, 2.0],
            [True, 2],
            [1, 2, 3],
            "12",
            {1: 1, 2: 2},
            None,
        ]
        for other in others:
            assert (rl == other) is (plain == other), other
            assert (other == rl) is (other == plain), other
            assert (rl != other) is (plain != other), other
        assert rl == same and rl == rl and not (rl != same)
        for other in ([(1, 2), {"a": [3]}], [[1, 2], {"a": (3,)}], [[1, 2], {"a": [3]}]):
            assert (nested == other) is (plain_nested == other), other
            assert (other == nested) is (other == plain_nested), other

    def test_rd_equality_is_dict_equality(self, db: DB) -> None:
        from collections import OrderedDict, UserDict

        db["d"] = {"a": [1, 2], "b": {"c": [3]}}
        rd = db["d"]
        plain = {"a": [1, 2], "b": {"c": [3]}}
        others: list[Any] = [
            {"a": [1, 2], "b": {"c": [3]}},
            {"a": (1, 2), "b": {"c": [3]}},
            {"a": [1, 2], "b": {"c": (3,)}},
            OrderedDict([("b", {"c": [3]}), ("a", [1, 2])]),
            UserDict({"a": [1, 2], "b": {"c": [3]}}),
            [("a", [1, 2]), ("b", {"c": [3]})],
            {"a": [1, 2]},
        ]
        for other in others:
            assert (rd == other) is (plain == other), other
            assert (other == rd) is (other == plain), other
            assert (rd != other) is (plain != other), other

    def test_rl_orders_like_a_list(self, db: DB) -> None:
        import operator

        db["l"] = [1, [2, 3], "x"]
        db["other"] = [1, [2, 4]]
        rl, rl2 = db["l"], db["other"]
        plain, plain2 = [1, [2, 3], "x"], [1, [2, 4]]
        comparisons = (operator.lt, operator.le, operator.gt, operator.ge)
        for other in ([1, [2, 3], "x"], [1, [2, 4]], [1], [], [0, 5], [2], [1, [2, 3], "y"]):
            for op in comparisons:
                assert op(rl, other) is op(plain, other), (op, other)
                assert op(other, rl) is op(other, plain), (op, other)
        for op in comparisons:
            assert op(rl, rl2) is op(plain, plain2)
            assert op(rl2, rl) is op(plain2, plain)
        unordered: list[Any] = [(1, [2, 3]), "abc", 5, None, {1: 2}]
        for bad in unordered:
            for op in comparisons:
                with pytest.raises(TypeError):
                    op(rl, bad)
                with pytest.raises(TypeError):
                    op(bad, rl)
        db["mixed"] = [1, {"a": 1}]
        with pytest.raises(TypeError):
            _ = db["mixed"] < [1, {"a": 2}]  # dicts do not order, as in Python
        with pytest.raises(TypeError):
            _ = RD(db, {"a": 1}) < {"a": 2}  # type: ignore[operator]

    # --------------------------------------------------------------- live iteration
    def test_iteration_visits_items_appended_during_the_loop(self, db: DB) -> None:
        for start in ([0], list(range(300))):  # within one read batch, and across batches
            db["l"] = start
            rl, plain = db["l"], list(start)
            seen_plain = []
            for x in plain:
                seen_plain.append(x)
                if x < 5 or (len(plain) < 310 and x == 299):
                    plain.append(x + 1000)
            seen = []
            for x in rl:
                seen.append(x)
                if x < 5 or (len(rl) < 310 and x == 299):
                    rl.append(x + 1000)
            assert seen == seen_plain
            assert rl() == plain

    def test_unfinished_iterator_sees_items_appended_later(self, db: DB) -> None:
        db["l"] = [0, 1, 2, 3]
        rl, plain = db["l"], [0, 1, 2, 3]
        it, pit = iter(rl), iter(plain)
        assert next(it) == next(pit) == 0
        for target in (rl, plain):
            target.append(4)
            target.extend([5, 6])
        assert list(it) == list(pit) == [1, 2, 3, 4, 5, 6]
        assert list(it) == []
        rl.append(7)
        assert list(it) == []  # an exhausted iterator stays exhausted, as a list's does

    def test_iterating_a_collected_list_is_stale(self, db: DB) -> None:
        db["l"] = []
        rl = db["l"]
        assert list(rl) == []
        del db["l"]
        db.maintenance(reclaim_all=True)  # past any grace period: the node is gone
        with pytest.raises(StaleHandleError):
            list(rl)

    # --------------------------------------------------------------- popitem
    def test_popitem_cost_does_not_grow_with_the_dict(self, db: DB) -> None:
        from etcher.testing._harness.instrument import CountingBackend

        costs = []
        for size in (40, 800):
            counting = CountingBackend(db.backend)
            counted = DB(backend=counting, prefix=db.prefix)
            counted[f"d{size}"] = {f"k{i:04d}": i % 10 for i in range(size)}
            d = counted[f"d{size}"]
            got = [d.popitem()]  # the first call reads the dict once
            counting.reset()
            got += [d.popitem() for _ in range(20)]
            costs.append((counting.round_trips, counting.total_commands, counting.bytes_read))
            assert got == [(f"k{i:04d}", i % 10) for i in range(size - 1, size - 22, -1)]
            counted.close()
        (trips, commands, read), (big_trips, big_commands, big_read) = costs
        assert (big_trips, big_commands) == (trips, commands), costs
        assert big_read <= read + 20 * 8, f"popitem reads more of a bigger dict: {costs}"

    def test_popitem_stays_lifo_beside_other_writers(self, db: DB, db_factory: Any) -> None:
        other = db_factory(db.prefix, second_connection=True)
        plain: dict[str, Any] = {f"k{i}": i for i in range(10)}
        db["d"] = dict(plain)
        d, d2 = db["d"], other["d"]
        assert d.popitem() == plain.popitem()
        del d2["k7"]  # removed by another DB: skipped
        del plain["k7"]
        assert d.popitem() == plain.popitem() == ("k8", 8)
        d2["new"] = {"x": [1]}  # inserted by another DB: popped first
        plain["new"] = {"x": [1]}
        assert d.popitem() == plain.popitem()
        d2["k0"] = -1  # overwriting keeps the item's place
        plain["k0"] = -1
        while plain:
            assert d.popitem() == plain.popitem()
        with pytest.raises(KeyError):
            d.popitem()
        d2["again"] = 1
        assert d.popitem() == ("again", 1)
        with pytest.raises(KeyError):
            d.popitem()
        assert db.check().ok
