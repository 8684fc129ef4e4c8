"""Container conformance: handles outlive their writes as documented
(:class:`HandleLifetimeConformance`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from etcher._db import DB
from etcher._layout import Layout
from etcher.errors import (
    StaleHandleError,
)
from etcher.spec import StorageBackend
from etcher.testing.containers._common import (
    LONG_GRACE,
    ContainerFixtures,
    DBFactory,
    dump_namespace,
    namespace_keys,
    unique_prefix,
)
from etcher.testing.models import (
    assert_same_shape,
)

# --------------------------------------------------------------------------- handle lifetime


def version_doc(tag: str) -> dict[str, Any]:
    """A document whose every level carries ``tag`` (nested dicts, lists, a shared child)."""
    leaf = {"tag": tag}
    return {
        "tag": tag,
        "sub": {"tag": tag, "deep": [tag, tag, {"tag": tag, "more": [tag]}]},
        "items": [tag, leaf, leaf, tag],
    }


def pending_count(db: DB) -> int:
    """How many unlinked nodes of ``db``'s namespace wait for a sweep (``check().pending``)."""
    report = db.check()
    assert report.ok, str(report)
    return report.pending


class HandleLifetimeConformance(ContainerFixtures):
    """Handles of unlinked nodes: readable for the grace period, never written, then swept.

    A handle names one node. When a write unlinks that node, the handle keeps
    reading the version it named (never a newer one) until the grace period
    is over; writing through it or linking it raises ``StaleHandleError``;
    after the sweep every use raises ``StaleHandleError``. ``grace=0``
    reclaims at once.
    """

    @pytest.fixture
    def later(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
        """``later(s)``: from now on the reclaimer's clock reads ``s`` seconds ahead."""
        from etcher import _reclaim as reclaim

        real = reclaim.clock

        def move(seconds: float) -> None:
            monkeypatch.setattr(reclaim, "clock", lambda: real() + seconds)

        return move

    @pytest.mark.parametrize("second_connection", [False, True])
    def test_old_handle_reads_its_own_version_after_a_replacement(
        self, db_factory: DBFactory, second_connection: bool
    ) -> None:
        db = db_factory(grace=LONG_GRACE)
        writer = db_factory(db.prefix, second_connection=second_connection, grace=LONG_GRACE)
        db["doc"] = version_doc("old")
        old = db["doc"]
        old_sub = old["sub"]
        old_items = old["items"]
        writer["doc"] = version_doc("new")
        # Every documented read idiom on the old handles sees the old version, whole.
        assert_same_shape(old(), version_doc("old"))
        got = old()
        assert got["items"][1] is got["items"][2], "shared structure lost"
        assert old["sub"]["deep"][2]["more"][0] == "old"
        assert old_sub["deep"]() == version_doc("old")["sub"]["deep"]
        assert {"tag": "old"} in old_items and "old" in old_items
        assert old_items.index({"tag": "old"}) == 1 and old_items.index("old", 1) == 3
        assert old_items.count({"tag": "old"}) == 2 and old_items.count("new") == 0
        assert len(old) == 3 and list(old) == ["tag", "sub", "items"]
        assert old.refcount == 0
        assert_same_shape(db["doc"](), version_doc("new"))
        # 7 nodes per version: doc, sub, deep, deep[2], more, items and their shared leaf.
        assert pending_count(db) == 7

    def test_old_handle_never_shows_newer_contents(self, db_factory: DBFactory) -> None:
        for grace in (0, LONG_GRACE):
            db = db_factory(grace=grace)
            db["a"] = {"v": "old", "l": ["old"]}
            old, old_list = db["a"], db["a"]["l"]
            db["a"] = {"v": "new", "l": ["new"]}
            reads = (old, old_list, lambda o=old: o["v"], lambda ol=old_list: ol[0])
            for read in reads:
                try:
                    got = read()
                except StaleHandleError:
                    assert grace == 0, "inside the grace period an old handle stays readable"
                    continue
                assert "new" not in repr(got), f"an old handle showed newer contents: {got!r}"
                assert grace > 0, "with grace=0 the old node is reclaimed at once"

    def test_pending_node_is_never_linked_or_written(self, db_factory: DBFactory) -> None:
        db = db_factory(grace=LONG_GRACE)
        other = db_factory(db.prefix, grace=0)  # same store object: links between them are fine
        db["a"] = {"d": {"x": 1}, "l": [1, {"y": 2}]}
        db["keep"] = {"n": 0}
        old = db["a"]
        old_d, old_l = old["d"], old["l"]
        db["a"] = "replaced"
        before = dump_namespace(db)
        attempts: list[Callable[[], Any]] = [
            lambda: db.__setitem__("b", old),
            lambda: db.__setitem__("b", {"deep": [old_d]}),
            lambda: db.update(b=1, c=old_l),
            lambda: db["keep"].setdefault("z", old_d),
            lambda: db["keep"].__setitem__("n", old_l[1]),
            lambda: other.__setitem__("b", old_d),
            lambda: old.__setitem__("q", 1),
            lambda: old.update(q=1),
            lambda: old.pop("d"),
            lambda: old.clear(),
            lambda: old_d.__delitem__("x"),
            lambda: old_d.setdefault("w", 1),
            lambda: old_l.append(3),
            lambda: old_l.extend([3]),
            lambda: old_l.insert(0, 3),
            lambda: old_l.pop(),
            lambda: old_l.pop(0),
            lambda: old_l.__setitem__(0, 5),
            lambda: old_l.__delitem__(slice(0, 1)),
            lambda: old_l.reverse(),
            lambda: old_l.sort(key=str),
        ]
        for attempt in attempts:
            with pytest.raises(StaleHandleError):
                attempt()
            assert dump_namespace(db) == before, "a refused write changed the store"
        with pytest.raises(StaleHandleError), db.transaction() as t:
            t["b"] = old_d
        assert dump_namespace(db) == before
        with pytest.raises(KeyError):
            db.get_via_uid(old.uid)
        # Refused, not resurrected: the old version is still readable, and still garbage.
        assert old() == {"d": {"x": 1}, "l": [1, {"y": 2}]}
        assert pending_count(db) == 4
        assert "b" not in db and db["keep"]() == {"n": 0}

    def test_pending_nodes_are_swept_after_the_grace_period(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        db = db_factory(grace=30)
        db["a"] = 0
        baseline = namespace_keys(db)
        db["a"] = {"x": [1, {"y": 2}]}
        old = db["a"]
        db["a"] = 0
        assert pending_count(db) == 3
        assert db.maintenance() == 0, "nothing has expired yet"
        assert old() == {"x": [1, {"y": 2}]}
        later(31)
        assert db.maintenance() == 3
        assert namespace_keys(db) == baseline, "every pending node and its entry are gone"
        assert pending_count(db) == 0
        with pytest.raises(StaleHandleError):
            old()
        with pytest.raises(StaleHandleError):
            old["x"]

    def test_later_writes_sweep_in_bounded_batches(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        from etcher._reclaim import SWEEP_BATCH

        db = db_factory(grace=30)
        db["n"] = 0
        baseline = namespace_keys(db)
        many = SWEEP_BATCH * 2 + 10
        db["big"] = [{"i": i} for i in range(many)]
        del db["big"]
        assert pending_count(db) == many + 1
        db["n"] = 1  # not expired: a write sweeps nothing
        assert pending_count(db) == many + 1
        later(31)
        db["n"] = 2
        assert pending_count(db) == many + 1 - SWEEP_BATCH, "one write sweeps one bounded batch"
        for i in range(3):
            db["n"] = 3 + i
        assert pending_count(db) == 0
        assert namespace_keys(db) == baseline

    def test_garbage_made_in_transactions_is_swept_by_later_writes(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        db = db_factory(grace=30)
        db["n"] = 0
        baseline = namespace_keys(db)
        with db.transaction() as t:
            t["a"] = {"x": [1]}
        old = db["a"]
        db.transact(lambda t: t.__setitem__("a", 0))
        assert pending_count(db) == 2
        assert old() == {"x": [1]}
        later(31)
        db["n"] = 1
        assert pending_count(db) == 0
        assert namespace_keys(db) == baseline

    def test_writes_sweep_garbage_left_by_another_db(
        self, db_factory: DBFactory, later: Callable[[float], None]
    ) -> None:
        first = db_factory(grace=30)
        first["a"] = {"x": {"y": [1]}}
        first["a"] = 0
        assert pending_count(first) == 3
        later(31)
        second = db_factory(first.prefix, second_connection=True, grace=30)
        second["b"] = 1
        assert pending_count(first) == 0

    def test_reclaim_all_ends_the_grace_period_now(self, db_factory: DBFactory) -> None:
        db = db_factory(grace=LONG_GRACE)
        db["a"] = {"x": [1]}
        old = db["a"]
        del db["a"]
        assert db.maintenance(reclaim_all=True) == 2
        assert pending_count(db) == 0
        with pytest.raises(StaleHandleError):
            old()
        with pytest.raises(TypeError):
            db.maintenance(reclaim_all="yes")  # type: ignore[arg-type]

    def test_grace_zero_reclaims_at_once(self, db_factory: DBFactory) -> None:
        db = db_factory(grace=0)
        assert db.grace == 0
        db["a"] = 0
        baseline = namespace_keys(db)
        db["a"] = {"x": [1]}
        old = db["a"]
        db["a"] = 0
        assert namespace_keys(db) == baseline
        assert pending_count(db) == 0
        with pytest.raises(StaleHandleError):
            old()

    @pytest.mark.parametrize(
        ("grace", "error"),
        [
            (-1, ValueError),
            (float("nan"), ValueError),
            (float("inf"), ValueError),
            ("5", TypeError),
            (True, TypeError),
            ([1], TypeError),
        ],
    )
    def test_bad_grace_is_refused_before_anything_is_written(
        self, backend: StorageBackend, grace: Any, error: type[Exception]
    ) -> None:
        prefix = unique_prefix("grace-")
        with pytest.raises(error, match="grace"):
            DB(backend=backend, prefix=prefix, grace=grace)
        assert not list(backend.scan_iter(match=Layout(prefix).scan))

    def test_default_grace_keeps_old_handles_readable(self, db: DB) -> None:
        from etcher._reclaim import DEFAULT_GRACE

        assert db.grace == DEFAULT_GRACE > 0
        db["a"] = {"v": [1]}
        old = db["a"]
        db["a"] = {"v": [2]}
        assert old() == {"v": [1]}
