"""Container conformance: every example of the user guide works (:class:`UserGuideConformance`)."""

from __future__ import annotations

import asyncio

import pytest

from etcher._containers import RD, RL
from etcher._db import DB
from etcher.errors import (
    WATCH_MESSAGE,
    WatchError,
)
from etcher.testing.containers._common import (
    ContainerFixtures,
    DBFactory,
    assert_clean,
)

# --------------------------------------------------------------------------- user guide


class UserGuideConformance(ContainerFixtures):
    """Every example of the published user guide, with the printed forms it shows."""

    def test_quick_start(self, db: DB) -> None:
        db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}
        assert db["person"]["name"] == "Alice"
        assert db["person"]["tags"][0] == "a"
        assert db["person"]() == {"id": "123", "name": "Alice", "tags": ["a", "b"]}

    def test_rd_and_rl_compare_by_contents(self, db: DB) -> None:
        db["person"] = {"id": "123", "tags": ["a", "b"]}
        person = db["person"]
        assert person == {"id": "123", "tags": ["a", "b"]}
        assert person["tags"] == ["a", "b"]
        assert person is not db["person"] and person.uid == db["person"].uid
        assert isinstance(person, RD) and isinstance(person["tags"], RL)

    def test_printing_example(self, db: DB, capsys: pytest.CaptureFixture[str]) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        print(db["task"])
        assert capsys.readouterr().out == f"@{{'owner': {db['person'].uid}, 'status': 'waiting'}}\n"

    def test_printing_example_with_link_field(
        self, db_factory: DBFactory, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = db_factory(link_field="id")
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        print(db["task"])
        assert capsys.readouterr().out == "@{'owner': 123, 'status': 'waiting'}\n"
        db["alice"] = {"id": "alice"}
        print(db)
        assert capsys.readouterr().out.endswith(", 'alice': *}\n")

    def test_materializing_examples(self, db: DB, capsys: pytest.CaptureFixture[str]) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        print(db["person"])
        assert capsys.readouterr().out.startswith("@")
        p = db["person"]()
        print(p)
        assert capsys.readouterr().out == "{'id': '123', 'name': 'Alice'}\n"
        # Edit offline and write back once.
        p["name"] = "Bob"
        assert db["person"]["name"] == "Alice", "a snapshot is detached from the store"
        db["person"] = p
        assert db["person"]() == {"id": "123", "name": "Bob"}

    def test_shared_structure_example(self, db: DB) -> None:
        db["x"] = {"child": {"n": 1}}
        child = db["x"]["child"]
        db["y"] = {"a": child, "b": child}
        y = db["y"]()
        assert y["a"] is y["b"]

    def test_cycles_example(self, db: DB) -> None:
        db["a"] = {"name": "A"}
        db["b"] = {"name": "B", "friend": db["a"]}
        db["a"]["friend"] = db["b"]
        a = db["a"]()
        assert a["friend"]["friend"] is a

    def test_custom_prefixes_example(self, db_factory: DBFactory) -> None:
        base = db_factory.new_prefix()
        db1 = db_factory(base + "app1")
        db2 = db_factory(base + "app2")
        db1["x"] = {"value": 1}
        db2["x"] = {"value": 2}
        assert db1["x"]["value"] == 1
        assert db2["x"]["value"] == 2

    def test_manual_watch_multi_execute(self, db: DB) -> None:
        t = db.transactor()
        t.watch()
        t.multi()
        t["numbers"] = [1, 2, 3, 4, 5, 6]
        t.execute()
        assert db["numbers"]() == [1, 2, 3, 4, 5, 6]

    def test_manual_transaction_raises_watch_error_on_conflict(
        self, db: DB, db_factory: DBFactory
    ) -> None:
        db["numbers"] = [1, 2, 3]
        other = db_factory(db.prefix, second_connection=True)
        t = db.transactor()
        t.watch()
        xs = t["numbers"]()
        other["numbers"].append(4)  # another writer changes what t read
        t.multi()
        t["numbers"] = [*xs, 99]
        with pytest.raises(WatchError) as info:
            t.execute()
        assert str(info.value) == WATCH_MESSAGE, "every backend says the same thing"
        assert db["numbers"]() == [1, 2, 3, 4], "the failed transaction wrote nothing"

    def test_auto_retry_helper(self, db: DB, db_factory: DBFactory) -> None:
        db["numbers"] = [1, 2, 3, 4, 5, 6]
        other = db_factory(db.prefix, second_connection=True)
        t = db.transactor()
        attempts: list[int] = []

        def txn() -> None:
            xs = t["numbers"]() if "numbers" in t else []
            if not attempts:
                other["numbers"].append(0)  # force one conflict
            attempts.append(len(xs))
            t.multi()
            t["numbers"] = xs + [7, 8]

        t.transact(txn)
        assert len(attempts) == 2, "the conflicting attempt was retried"
        assert db["numbers"]() == [1, 2, 3, 4, 5, 6, 0, 7, 8]

    def test_auto_retry_helper_on_a_fresh_store(self, db: DB) -> None:
        t = db.transactor()

        def txn() -> None:
            xs = t["numbers"]() if "numbers" in t else []
            t.multi()
            t["numbers"] = xs + [7, 8]

        t.transact(txn)
        t.transact(txn)
        assert db["numbers"]() == [7, 8, 7, 8]

    def test_sharing_between_processes(self, db: DB, db_factory: DBFactory) -> None:
        # Process A
        db["counter"] = {"n": 0}
        # Process B (another DB object, on another connection when the backend has one)
        db_b = db_factory(db.prefix, second_connection=True)
        db_b["counter"]["n"] = db_b["counter"]["n"] + 1
        assert db["counter"]["n"] == 1
        assert db["counter"]() == db_b["counter"]() == {"n": 1}

    def test_maintenance(self, db: DB) -> None:
        db["x"] = {"a": [1]}
        db.maintenance()
        asyncio.run(db.maintenance_async())
        assert db["x"]() == {"a": [1]}
        assert_clean(db)
