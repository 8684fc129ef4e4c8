"""Container conformance: namespaces and the ``DB`` object
(:class:`NamespaceConformance`, :class:`DBConformance`).
"""

from __future__ import annotations

from typing import Any

import pytest

from etcher._containers import RL
from etcher._db import DB
from etcher.errors import (
    WATCH_MESSAGE,
    ClosedError,
    WatchError,
)
from etcher.spec import StorageBackend
from etcher.testing.containers._common import (
    ContainerFixtures,
    DBFactory,
    assert_clean,
    dump_namespace,
    namespace_keys,
)

# --------------------------------------------------------------------------- namespaces and DB


class NamespaceConformance(ContainerFixtures):
    """Namespaces never see each other, and deleting one touches nothing else."""

    def test_two_prefixes_are_isolated(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        one, two = db_factory(base + "one"), db_factory(base + "two")
        one["x"] = {"v": 1}
        two["x"] = [2]
        two["only"] = 1
        assert one() == {"x": {"v": 1}} and two() == {"x": [2], "only": 1}
        assert "only" not in one
        del one["x"]
        assert two["x"]() == [2]
        assert_clean(one)
        assert_clean(two)

    @pytest.mark.parametrize(
        ("doomed", "survivor"),
        [("app", "app2"), ("a*", "ab"), ("a?", "ab"), ("[a]", "a"), ("a", "a:b"), ("a\\", "a\\b")],
    )
    def test_delete_prefix_only_deletes_its_own(
        self, db_factory: DBFactory, doomed: str, survivor: str
    ) -> None:
        base = db_factory.new_prefix()
        keeper = db_factory(base + "keeper")
        gone = db_factory(base + doomed)
        kept = db_factory(base + survivor)
        gone["x"] = {"v": [1]}
        kept["x"] = {"v": [2]}
        keeper["x"] = 3
        kept_before = dump_namespace(kept)
        # A literal prefix scan lists the namespace (deleting it need not rely on one).
        assert len(namespace_keys(keeper, base + doomed)) >= 3
        deleted = keeper.delete_prefix_immediately(base + doomed)
        assert deleted >= 3
        assert namespace_keys(keeper, base + doomed) == []
        assert base + doomed not in keeper.namespaces()
        assert dump_namespace(kept) == kept_before
        assert base + survivor in keeper.namespaces()
        assert kept["x"]() == {"v": [2]} and keeper["x"] == 3

    def test_delete_prefix_batch_only_deletes_its_own(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        keeper, gone, kept = (db_factory(base + p) for p in ("keeper", "p*", "pq"))
        gone["x"] = [{"i": i} for i in range(20)]
        kept["x"] = [1]
        kept_before = dump_namespace(kept)
        deleted = keeper.delete_prefix_batch(base + "p*", count=3)
        assert deleted >= 22
        assert namespace_keys(keeper, base + "p*") == []
        assert dump_namespace(kept) == kept_before
        with pytest.raises(ValueError):
            keeper.delete_prefix_batch(base + "pq", count=0)

    def test_deleting_own_namespace_empties_it(self, db: DB) -> None:
        db["x"] = {"a": [1]}
        db.incr("counter")
        assert db.delete_prefix_immediately(db.prefix) >= 3
        assert db() == {} and len(db) == 0 and db.count("counter") == 0
        db["y"] = 1
        assert db() == {"y": 1}
        assert_clean(db)

    def test_namespaces_are_listed(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        a, b = db_factory(base + "a"), db_factory(base + "b")
        names = a.namespaces()
        assert base + "a" in names and base + "b" in names
        a.delete_prefix_immediately(base + "b")
        assert base + "b" not in a.namespaces() and b.prefix == base + "b"

    @pytest.mark.parametrize("bad", ["", "a{b", "a}b", "a\x00b", "a\nb", "\ud800"], ids=ascii)
    def test_invalid_prefixes_are_refused(self, backend: StorageBackend, bad: str) -> None:
        with pytest.raises(ValueError):
            DB(backend=backend, prefix=bad)
        with pytest.raises(TypeError):
            DB(backend=backend, prefix=5)  # type: ignore[arg-type]


class DBConformance(ContainerFixtures):
    """The DB object: counters, nodes by uid, integrity checks, transactions, closing."""

    def test_counters(self, db: DB, db_factory: DBFactory) -> None:
        assert db.count("c") == 0
        assert db.incr("c") == 1 and db.incr("c", 5) == 6 and db.decr("c") == 5
        assert db.decr("c", 10) == -5 and db.count("c") == -5
        assert db.incr("big", 2**62) == 2**62
        other = db_factory()
        assert other.count("c") == 0, "counters belong to their namespace"
        for bad in (1.5, True, "1"):
            with pytest.raises(TypeError):
                db.incr("c", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            db.incr(5)  # type: ignore[arg-type]
        assert db.count("c") == -5
        assert "c" not in db, "counters are not items"
        assert_clean(db)

    def test_get_via_uid(self, db: DB) -> None:
        db["x"] = {"l": [1]}
        rl = db["x"]["l"]
        again = db.get_via_uid(rl.uid)
        assert isinstance(again, RL) and again.uid == rl.uid and again == [1]
        assert db.get_via_uid(rl.uid.encode()).uid == rl.uid
        assert db.get_via_uid(db.uid) == db()
        for bad in ("", "Dnope", "nonsense", "Lmissing"):
            with pytest.raises(KeyError):
                db.get_via_uid(bad)
        del db["x"]
        with pytest.raises(KeyError):
            db.get_via_uid(rl.uid)

    def test_check_report_of_a_clean_store(self, db: DB) -> None:
        db["x"] = {"a": [1, {"b": 2}]}
        report = db.check()
        assert report.ok and report.problems() == [] and report.nodes == 4
        assert report.reachable == 4 and report.prefix == db.prefix
        assert db.gc().ok
        assert db() == {"x": {"a": [1, {"b": 2}]}}

    def test_transaction_context_manager(self, db: DB) -> None:
        db["n"] = 0
        with db.transaction() as t:
            t["n"] = t["n"] + 1
            t["l"] = [1]
            assert t["n"] == 1 and t["l"]() == [1], "a transaction reads its own writes"
            assert db["n"] == 0 and "l" not in db, "nothing is visible before the commit"
        assert db["n"] == 1 and db["l"]() == [1]
        with pytest.raises(RuntimeError), db.transaction() as t:
            t["n"] = 100
            t["l"].append(2)
            raise RuntimeError("abort")
        assert db["n"] == 1 and db["l"]() == [1], "an aborted transaction writes nothing"
        assert_clean(db)

    def test_transact_retries_and_returns(self, db: DB, db_factory: DBFactory) -> None:
        db["n"] = 0
        other = db_factory(db.prefix, second_connection=True)
        calls: list[int] = []

        def bump(t: Any) -> int:
            value: int = t["n"]
            if not calls:
                other["n"] = 10
            calls.append(value)
            t["n"] = value + 1
            return value + 1

        assert db.transact(bump) == 11
        assert calls == [0, 10] and db["n"] == 11

    def test_transactions_on_disjoint_data_both_commit(self, db: DB, db_factory: DBFactory) -> None:
        # Disjoint *nodes*: a store watches whole keys, and one dict node is one key.
        db["a"] = {"v": 1}
        db["b"] = {"v": 1}
        other = db_factory(db.prefix, second_connection=True)
        with db.transaction() as t:
            t["a"]["v"] = t["a"]["v"] + 1
            other["b"]["v"] = 5  # touches nothing the transaction read or wrote
        assert db["a"]["v"] == 2 and db["b"]["v"] == 5

    def test_transaction_conflict_on_written_data(self, db: DB, db_factory: DBFactory) -> None:
        db["x"] = {"v": 0}
        other = db_factory(db.prefix, second_connection=True)
        with pytest.raises(WatchError) as info, db.transaction() as t:
            t["x"]["v"] = t["x"]["v"] + 1
            other["x"]["v"] = 50
        assert str(info.value) == WATCH_MESSAGE, "every backend says the same thing"
        assert db["x"]["v"] == 50, "no update is lost"

    def test_closed_db_refuses_work(self, db_factory: DBFactory) -> None:
        db = db_factory()
        db["x"] = 1
        db.close()
        db.close()  # idempotent
        with pytest.raises(ClosedError):
            db["y"] = 2
        with pytest.raises(ClosedError):
            db.check()
        with pytest.raises(ClosedError):  # reads say the same as writes
            db["x"]
