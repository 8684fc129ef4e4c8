"""Container conformance: caller code (sort keys, ``__eq__``, iterators) runs once, outside
etcher's units of work (:class:`UserCodeConformance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etcher._containers import RD, RL
from etcher._db import DB
from etcher.testing.containers._common import (
    ContainerFixtures,
    assert_clean,
)


class _Probe:
    """A value whose ``__eq__`` is caller code: it counts calls and may write to the store."""

    def __init__(self, equal_to: Any, on_compare: Callable[[], None]) -> None:
        self.equal_to = equal_to
        self.on_compare = on_compare
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        self.calls += 1
        self.on_compare()
        return bool(other == self.equal_to)

    __hash__ = None  # type: ignore[assignment]


class UserCodeConformance(ContainerFixtures):
    """Caller code (sort keys, ``__eq__``, iterators) runs once, outside etcher's units of work.

    Such code may write to the store: its writes are kept (never rolled back
    with, or folded into, the operation that called it) and it is never
    called again because a unit was retried.
    """

    def test_sort_key_runs_once_per_item_and_may_write(self, db: DB) -> None:
        db["l"] = [{"n": 3}, {"n": 1}, {"n": 2}, 5]
        db["log"] = []
        calls: list[Any] = []

        def key(v: Any) -> Any:
            calls.append(v)
            db["log"].append(len(calls))
            if isinstance(v, dict):
                db["l"][0]["seen"] = len(calls)  # writes to a node the sort reads
                return v["n"]
            return v

        db["l"].sort(key=key)
        assert len(calls) == 4, "the key runs exactly once per item"
        assert db["log"]() == [1, 2, 3, 4]
        got = db["l"]()
        assert [x if isinstance(x, int) else x["n"] for x in got] == [1, 2, 3, 5]
        assert_clean(db)

    def test_sort_key_that_changes_the_list_raises_like_list(self, db: DB) -> None:
        db["l"] = [3, 1, 2]
        calls: list[Any] = []

        def key(v: Any) -> Any:
            calls.append(v)
            if len(calls) == 1:
                db["l"].append(0)
            return v

        with pytest.raises(ValueError, match="modified during sort"):
            db["l"].sort(key=key)
        assert calls == [3, 1, 2]
        assert db["l"]() == [3, 1, 2, 0], "the key's own write is kept, the sort is not applied"
        assert_clean(db)

    def test_sort_key_that_writes_then_raises_keeps_its_writes(self, db: DB) -> None:
        db["l"] = [3, 1, 2]
        db["side"] = 0

        def key(v: Any) -> Any:
            db["side"] = db["side"] + 1
            if db["side"] == 2:
                raise LookupError("key failed")
            return v

        with pytest.raises(LookupError):
            db["l"].sort(key=key)
        assert db["side"] == 2 and db["l"]() == [3, 1, 2]
        assert_clean(db)

    def test_remove_with_writing_eq_compares_each_item_once(self, db: DB) -> None:
        db["l"] = [0, 1, 2, 3]
        probe = _Probe(2, lambda: db["l"].append("x"))
        db["l"].remove(probe)
        assert probe.calls == 3, "compared with 0, 1 and 2, once each"
        assert db["l"]() == [0, 1, 3, "x", "x", "x"]
        missing = _Probe("absent", lambda: db["l"].append("y"))
        with pytest.raises(ValueError):
            db["l"].remove(missing)
        assert missing.calls == 6
        assert db["l"]() == [0, 1, 3, "x", "x", "x", *["y"] * 6]
        assert_clean(db)

    def test_remove_with_eq_that_writes_then_raises_keeps_its_writes(self, db: DB) -> None:
        db["l"] = [0, 1, 2]
        db["log"] = []

        def on_compare() -> None:
            db["log"].append(1)
            if len(db["log"]) == 2:
                raise LookupError("eq failed")

        with pytest.raises(LookupError):
            db["l"].remove(_Probe(2, on_compare))
        assert db["log"]() == [1, 1] and db["l"]() == [0, 1, 2]
        assert_clean(db)

    def test_remove_of_a_node_by_content_with_caller_eq(self, db: DB) -> None:
        db["l"] = [{"a": 1}, [1, 2], {"a": 2}]

        class Doc(dict):  # type: ignore[type-arg]
            calls = 0

            def __eq__(self, other: object) -> bool:
                Doc.calls += 1
                db["touched"] = Doc.calls
                return dict.__eq__(self, other)

            __hash__ = None

        db["l"].remove(Doc(a=2))
        assert db["l"]() == [{"a": 1}, [1, 2]]
        assert_clean(db)

    @pytest.mark.parametrize("what", ["in", "index", "count"])
    def test_searches_with_writing_eq_keep_the_writes(self, db: DB, what: str) -> None:
        db["l"] = [0, 1, 2, 3]
        probe = _Probe(2, lambda: db["l"].append("x"))
        rl = db["l"]
        if what == "in":
            assert probe in rl
        elif what == "index":
            assert rl.index(probe) == 2
        else:
            assert rl.count(probe) == 1
        assert db["l"]()[:4] == [0, 1, 2, 3]
        assert len(db["l"]) == 4 + probe.calls
        assert_clean(db)

    def test_iterators_that_write_run_once_and_keep_their_writes(self, db: DB) -> None:
        db["l"] = ["start"]
        db["d"] = {}
        runs: list[str] = []

        def items(tag: str) -> Iterator[Any]:
            runs.append(tag)
            for i in range(3):
                db["l"].append(f"{tag}{i}")
                yield i

        db["l"].extend(items("e"))
        rl = db["l"]
        rl += items("i")
        db["d"].update((f"k{i}", i) for i in items("u"))
        made = RL(db, items("c"))
        db["made"] = made
        assert runs == ["e", "i", "u", "c"], "each iterator is consumed exactly once"
        stored = db["l"]()
        for tag in "eiuc":
            assert [x for x in stored if isinstance(x, str) and x[0] == tag] == [
                f"{tag}0",
                f"{tag}1",
                f"{tag}2",
            ]
        assert stored.count(0) == 2 and db["d"]() == {"k0": 0, "k1": 1, "k2": 2}
        assert db["made"]() == [0, 1, 2]
        assert_clean(db)

    def test_caller_code_inside_a_transaction_sees_the_transaction(self, db: DB) -> None:
        db["l"] = [3, 1, 2]
        with db.transaction() as t:
            rl = t["l"]
            rl.sort(key=lambda v: -v)
            assert rl() == [3, 2, 1]
            probe = _Probe(2, lambda: None)
            rl.remove(probe)
            assert rl() == [3, 1] and probe.calls == 2

            def key(v: Any) -> Any:
                t["l"].append(9)
                return v

            with pytest.raises(ValueError, match="modified during sort"):
                rl.sort(key=key)
        assert db["l"]() == [3, 1, 9, 9]
        assert_clean(db)

    def test_container_subclasses_are_read_once_outside_units(self, db: DB) -> None:
        db["log"] = []
        calls: list[str] = []

        class Doc(dict):  # type: ignore[type-arg]
            def items(self) -> Any:
                calls.append("items")
                db["touched"] = len(calls)  # writes what the assignment reads (the root)
                return super().items()

        class Row(list):  # type: ignore[type-arg]
            def __iter__(self) -> Any:
                calls.append("iter")
                db["log"].append(len(calls))
                return super().__iter__()

        shared = Row([1, 2])
        db["doc"] = {"a": Doc(x=shared, y=shared), "b": Row([Doc(z=1)])}
        assert sorted(calls) == ["items", "items", "iter", "iter"], "each is read exactly once"
        assert db["doc"]() == {"a": {"x": [1, 2], "y": [1, 2]}, "b": [{"z": 1}]}
        assert db["doc"]["a"]["x"].uid == db["doc"]["a"]["y"].uid, "sharing is kept"
        calls.clear()
        with pytest.raises(TypeError):
            db["bad"] = Doc(ok=1, bad={1})
        assert calls == ["items"] and db["touched"] == 1, "the caller's own write is kept"
        assert "bad" not in db
        assert_clean(db)

    def test_unlinked_constructors_read_caller_mappings_outside_units(self, db: DB) -> None:
        from collections.abc import Mapping as MappingABC

        db["log"] = []

        class Source(MappingABC[str, Any]):
            def __init__(self, data: dict[str, Any]) -> None:
                self.data = data

            def __getitem__(self, key: str) -> Any:
                db["log"].append(key)
                return self.data[key]

            def __iter__(self) -> Iterator[str]:
                return iter(self.data)

            def __len__(self) -> int:
                return len(self.data)

        made = RD(db, Source({"a": 1, "b": [2]}))
        db["made"] = made
        assert db["made"]() == {"a": 1, "b": [2]}
        with pytest.raises(TypeError):
            RD(db, Source({"c": 1, "d": {1}}))
        assert db["log"]() == ["a", "b", "c", "d"], "every read of the source is kept, once"
        assert_clean(db)
