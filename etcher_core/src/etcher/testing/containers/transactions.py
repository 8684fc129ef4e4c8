"""Container conformance: transactions, all or nothing (:class:`TransactionSafetyConformance`)."""

from __future__ import annotations

from typing import Any

import pytest

from etcher._db import DB
from etcher.testing.containers._common import (
    ContainerFixtures,
    DBFactory,
    assert_clean,
)

# --------------------------------------------------------------------------- transaction safety


class TransactionSafetyConformance(ContainerFixtures):
    """Operations inside a transaction are all or nothing; transactions do not nest."""

    # -- a failing operation inside a transaction leaves nothing behind --------------------
    def test_failed_update_in_transaction_applies_none_of_it(self, db: DB) -> None:
        db["d"] = {"z": 0}
        with db.transaction() as t:
            d = t["d"]
            with pytest.raises(TypeError):
                d.update({"a": 1, "b": {3}})
            assert d() == {"z": 0}, "the transaction must not see half of the failed update"
            d["ok"] = 1
        assert db["d"]() == {"z": 0, "ok": 1}
        assert_clean(db)

    def test_refused_deep_value_in_transaction_leaves_no_nodes(self, db: DB) -> None:
        db["keep"] = {"x": [1, 2]}
        before = db.check().nodes
        with db.transaction() as t:
            with pytest.raises(TypeError):
                t["doc"] = {"a": [1, {"b": [2, {"c": {3}}]}], "d": {"e": 1}}
            with pytest.raises(TypeError):
                t["keep"]["x"].append({"y": [1, (2,)]})
            assert "doc" not in t and t["keep"]() == {"x": [1, 2]}
            t["after"] = 1
        assert db() == {"keep": {"x": [1, 2]}, "after": 1}
        report = db.check()
        assert report.ok, str(report)
        assert report.nodes == before

    def test_extended_slice_mismatch_in_transaction_changes_nothing(self, db: DB) -> None:
        db["l"] = [{"a": 0}, 1, {"b": 2}, 3]
        with db.transaction() as t:
            rl = t["l"]
            with pytest.raises(ValueError):
                rl[::2] = [{"new": 1}]
            with pytest.raises(ValueError):
                rl[::-1] = [[1], [2], [3]]
            assert rl() == [{"a": 0}, 1, {"b": 2}, 3]
            rl.append("x")
        assert db["l"]() == [{"a": 0}, 1, {"b": 2}, 3, "x"]
        assert_clean(db)

    def test_failed_operations_in_transact_and_transactor(self, db: DB) -> None:
        db["d"] = {"n": 0, "sub": {"k": 1}}

        def fn(t: Any) -> None:
            with pytest.raises(TypeError):
                t["d"].update(n=1, bad=object())
            with pytest.raises(TypeError):
                t["d"]["sub"] = {"k": 2, "bad": {1}}
            with pytest.raises(KeyError):
                del t["d"]["missing"]
            t["d"]["m"] = 2

        db.transact(fn)
        assert db["d"]() == {"n": 0, "sub": {"k": 1}, "m": 2}
        t = db.transactor()
        t.watch()
        t.multi()
        with pytest.raises(TypeError):
            t["d"]["sub"].update({"k": 3, "s": {"set"}})
        with pytest.raises(ValueError):
            t["d"]["lst"] = ["ok", "\ud800"]
        t["d"]["sub"]["j"] = 9
        t.execute()
        assert db["d"]() == {"n": 0, "sub": {"k": 1, "j": 9}, "m": 2}
        assert_clean(db)

    def test_failed_operation_after_earlier_writes_keeps_them(self, db: DB) -> None:
        db["l"] = [1]
        with db.transaction() as t:
            t["l"].append(2)
            t["d"] = {"a": 1}
            t["d"]["a"] = 5
            with pytest.raises(TypeError):
                t["d"].update(a=6, b=[1, {2}])
            with pytest.raises(ValueError):
                t["l"][::2] = []
            assert t["l"]() == [1, 2] and t["d"]() == {"a": 5}
            with pytest.raises(TypeError):
                t["l"].extend([3, b"bytes"])
            t["l"].append(3)
        assert db() == {"l": [1, 2, 3], "d": {"a": 5}}
        assert_clean(db)

    # -- nesting ----------------------------------------------------------------------------
    def test_transact_inside_a_transaction_block_is_refused(self, db: DB) -> None:
        from etcher.errors import TransactionError

        db["n"] = 0
        ran: list[int] = []
        with db.transaction() as t:
            t["a"] = 1
            with pytest.raises(TransactionError):
                t.transact(lambda: ran.append(1))
            with pytest.raises(TransactionError):
                db.transact(lambda t2: t2.__setitem__("inner", 1))
            with pytest.raises(TransactionError), db.transaction() as t3:
                t3["inner"] = 2
            assert ran == [] and "inner" not in db and "a" not in db
            t["b"] = 2
        assert db() == {"n": 0, "a": 1, "b": 2}, "the outer transaction stays whole"

    def test_watch_inside_a_transaction_with_writes_is_refused(self, db: DB) -> None:
        from etcher.errors import TransactionError

        with db.transaction() as t:
            t["a"] = 1
            with pytest.raises(TransactionError):
                t.watch()
            t["b"] = 2
        assert db() == {"a": 1, "b": 2}, "no write of the transaction was dropped"
        t = db.transactor()
        t.watch()
        t.watch()  # nothing written yet: a restart
        t.multi()
        t["c"] = 3
        with pytest.raises(TransactionError):
            t.watch()
        t.execute()
        assert db["c"] == 3

    def test_transact_inside_transact_is_refused_and_not_retried(self, db: DB) -> None:
        from etcher.errors import TransactionError

        calls: list[str] = []

        def inner(t: Any) -> None:
            calls.append("inner")
            t["inner"] = 1

        def outer(t: Any) -> None:
            calls.append("outer")
            t["outer"] = 1
            db.transact(inner)

        with pytest.raises(TransactionError):
            db.transact(outer)
        assert calls == ["outer"] and "outer" not in db and "inner" not in db
        db.transact(lambda t: t.__setitem__("after", 1))  # nothing is left marked open
        with db.transaction() as t:
            t["again"] = 2
        assert db() == {"after": 1, "again": 2}

    def test_published_transact_inside_transact_is_refused(self, db: DB) -> None:
        from etcher.errors import TransactionError

        t = db.transactor()

        def fn() -> None:
            t["x"] = 1
            t.transact(lambda: t.__setitem__("y", 2))

        with pytest.raises(TransactionError):
            t.transact(fn)
        assert "x" not in db and "y" not in db
        t.transact(lambda: t.__setitem__("z", 3))
        assert db() == {"z": 3}

    def test_transactions_in_two_threads_both_commit(self, db: DB) -> None:
        import threading

        db["A"] = {}
        db["B"] = {}
        inside = threading.Event()
        other_done = threading.Event()
        errors: list[BaseException] = []

        def other() -> None:
            try:
                inside.wait(30)
                with db.transaction() as t:
                    t["B"]["b"] = 2
                db.transact(lambda t: t["B"].__setitem__("c", 3))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
            finally:
                other_done.set()

        thread = threading.Thread(target=other)
        thread.start()
        with db.transaction() as t:
            t["A"]["a"] = 1  # another node than the other thread's: no conflict
            inside.set()
            assert other_done.wait(30)
        thread.join(30)
        assert errors == []
        assert db() == {"A": {"a": 1}, "B": {"b": 2, "c": 3}}

    def test_transactions_on_other_namespaces_may_run_inside(
        self, db: DB, db_factory: DBFactory
    ) -> None:
        other = db_factory()
        with db.transaction() as t:
            t["a"] = 1
            other.transact(lambda t2: t2.__setitem__("b", 2))
        assert db() == {"a": 1} and other() == {"b": 2}
