"""Container conformance: shape of the data (sharing, cycles, links) and exact garbage
collection (:class:`ShapeAndGCConformance`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from etcher._containers import RD, RL
from etcher._db import DB
from etcher._layout import Layout
from etcher.errors import (
    ForeignNodeError,
    StaleHandleError,
    StoreCorrupt,
)
from etcher.testing.containers._common import (
    ContainerFixtures,
    DBFactory,
    assert_clean,
    chain_depth,
    deep_child,
    dump_namespace,
    make_deep,
    namespace_keys,
    uids_in_store,
)

# --------------------------------------------------------------------------- shape and GC


class ShapeAndGCConformance(ContainerFixtures):
    """Writes keep the shape of the data; back-references are exact; garbage is collected.

    These tests count the nodes left in the store right after a write, so their
    DB reclaims unlinked nodes at once (``grace=0``); the grace period itself is
    covered by :class:`HandleLifetimeConformance`.
    """

    deep_levels = 10_000
    """Depth of the deep-structure tests (a backend may lower it if it documents why)."""

    db_grace = 0.0

    def test_same_plain_dict_twice_in_one_write_is_one_node(self, db: DB) -> None:
        shared = {"n": 1}
        db["x"] = {"a": shared, "b": shared, "c": {"n": 1}}
        x = db["x"]
        a, b, c = x["a"], x["b"], x["c"]
        assert a.uid == b.uid != c.uid
        assert a.refcount == 2 and a.backrefs == {x.uid: 2}
        assert c.refcount == 1
        m = x()
        assert m["a"] is m["b"] and m["a"] is not m["c"]
        a["n"] = 2
        assert x["b"]["n"] == 2 and x["c"]["n"] == 1
        assert len(uids_in_store(db)) == 4
        assert_clean(db)

    def test_same_plain_list_twice_is_one_node(self, db: DB) -> None:
        shared = [1, 2]
        db["l"] = [shared, {"again": shared}, shared]
        rl = db["l"]
        assert rl[0].uid == rl[2].uid == rl[1]["again"].uid
        assert rl[0].backrefs == {rl.uid: 2, rl[1].uid: 1} and rl[0].refcount == 3
        m = rl()
        assert m[0] is m[2] is m[1]["again"]
        assert_clean(db)

    def test_sharing_holds_across_one_update(self, db: DB) -> None:
        shared = {"s": [1]}
        db.update({"a": shared, "b": [shared]})
        assert db["a"].uid == db["b"][0].uid
        assert db["a"].backrefs == {db.uid: 1, db["b"].uid: 1}
        m = db()
        assert m["a"] is m["b"][0]

    def test_separate_writes_make_separate_nodes(self, db: DB) -> None:
        value = {"n": 1}
        db["a"] = value
        db["b"] = value
        assert db["a"].uid != db["b"].uid
        db["a"]["n"] = 2
        assert db["b"]["n"] == 1
        value["n"] = 3
        assert db["a"]["n"] == 2, "writing plain data copies it; later edits stay local"

    def test_self_containing_dict_is_a_stored_cycle(self, db: DB) -> None:
        d: dict[str, Any] = {"name": "loop"}
        d["self"] = d
        db["c"] = d
        c = db["c"]
        assert c["self"].uid == c.uid and c["self"]["self"]["name"] == "loop"
        assert c.backrefs == {db.uid: 1, c.uid: 1} and c.refcount == 2
        m = c()
        assert m["self"] is m and m["name"] == "loop"
        assert len(uids_in_store(db)) == 2
        assert_clean(db)

    def test_self_containing_list_is_a_stored_cycle(self, db: DB) -> None:
        lst: list[Any] = [1]
        lst.append(lst)
        lst.append({"back": lst})
        db["l"] = lst
        rl = db["l"]
        assert rl[1].uid == rl.uid == rl[2]["back"].uid
        assert rl.backrefs == {db.uid: 1, rl.uid: 1, rl[2].uid: 1}
        m = rl()
        assert m[1] is m and m[2]["back"] is m
        assert_clean(db)

    def test_mutual_cycle_through_handles(self, db: DB) -> None:
        db["a"] = {"name": "A"}
        db["b"] = {"name": "B", "friend": db["a"]}
        db["a"]["friend"] = db["b"]
        a, b = db["a"], db["b"]
        assert a.backrefs == {db.uid: 1, b.uid: 1} and b.backrefs == {db.uid: 1, a.uid: 1}
        m = db()
        assert m["a"]["friend"] is m["b"] and m["b"]["friend"] is m["a"]
        assert_clean(db)

    def test_assigning_a_handle_links_without_copying(self, db: DB) -> None:
        db["x"] = {"v": 1}
        x = db["x"]
        db["y"] = x
        db["z"] = {"inner": x, "list": [x]}
        assert db["y"].uid == x.uid == db["z"]["inner"].uid == db["z"]["list"][0].uid
        assert x.backrefs == {db.uid: 2, db["z"].uid: 1, db["z"]["list"].uid: 1}
        db["y"]["v"] = 2
        assert x["v"] == 2 and db["z"]["inner"]["v"] == 2
        db["l"] = [1]
        db["l2"] = db["l"]
        db["l2"].append(2)
        assert db["l"]() == [1, 2] and db["l"].refcount == 2
        assert len(uids_in_store(db)) == 5
        assert_clean(db)

    def test_handle_assigned_inside_itself(self, db: DB) -> None:
        db["d"] = {}
        d = db["d"]
        d["me"] = d
        assert d["me"].uid == d.uid and d.backrefs == {db.uid: 1, d.uid: 1}
        db["l"] = []
        rl = db["l"]
        rl.append(rl)
        rl.append(rl)
        assert rl.backrefs == {db.uid: 1, rl.uid: 2}
        del rl[0]
        assert rl.backrefs == {db.uid: 1, rl.uid: 1}
        del db["d"], db["l"]
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_reassigning_a_value_to_its_own_key(self, db: DB) -> None:
        db["x"] = {"child": {"n": 1}}
        x = db["x"]
        db["x"] = x
        assert db["x"].uid == x.uid and x.backrefs == {db.uid: 1}
        x["child"] = x["child"]
        assert x["child"]() == {"n": 1} and x["child"].backrefs == {x.uid: 1}
        assert_clean(db)

    def test_replacing_a_parent_by_its_child(self, db: DB) -> None:
        db["x"] = {"child": {"grand": [1]}}
        child = db["x"]["child"]
        db["x"] = child
        assert db["x"].uid == child.uid and child.backrefs == {db.uid: 1}
        assert db() == {"x": {"grand": [1]}}
        assert len(uids_in_store(db)) == 3
        assert_clean(db)

    def _deep_round_trip(self, db: DB, as_dict: bool) -> None:
        levels = self.deep_levels
        baseline = namespace_keys(db)
        db["deep"] = make_deep(levels, as_dict)
        assert isinstance(db["deep"], RD if as_dict else RL)
        top: Any = db["deep"]
        assert (top["n"] if as_dict else top[0]) == 0
        assert (top["c"]["c"]["n"] if as_dict else top[1][1][0]) == 2
        m = top()
        assert chain_depth(m) == levels
        bottom = m
        while (nxt := deep_child(bottom)) is not None:
            bottom = nxt
        assert bottom == ({} if as_dict else [])
        del db["deep"]
        assert namespace_keys(db) == baseline, "every level was collected"
        assert_clean(db)

    def test_deep_dict_writes_reads_and_is_collected(self, db: DB) -> None:
        self._deep_round_trip(db, as_dict=True)

    def test_deep_list_writes_reads_and_is_collected(self, db: DB) -> None:
        self._deep_round_trip(db, as_dict=False)

    def test_overwrite_collects_the_old_subtree(self, db: DB) -> None:
        baseline = namespace_keys(db)
        db["x"] = {"a": [1, {"b": {}}], "c": {"d": [[]]}}
        assert len(uids_in_store(db)) == 8
        old = db["x"]["a"]
        db["x"] = "scalar now"
        assert uids_in_store(db) == {db.uid}
        assert namespace_keys(db) != baseline  # the root now holds "x"
        with pytest.raises(StaleHandleError):
            old[0]
        del db["x"]
        assert namespace_keys(db) == baseline
        assert_clean(db)

    def test_deleting_collects_cycles(self, db: DB) -> None:
        a: dict[str, Any] = {"n": "a"}
        b: dict[str, Any] = {"n": "b", "a": a}
        c: list[Any] = [a, b]
        a["b"] = b
        a["c"] = c
        c.append(c)
        db["cyc"] = {"entry": a}
        assert len(uids_in_store(db)) == 5
        db["keep"] = {"k": 1}
        del db["cyc"]
        assert uids_in_store(db) == {db.uid, db["keep"].uid}
        assert_clean(db)

    def test_ring_of_nodes_is_collected(self, db: DB) -> None:
        nodes: list[dict[str, Any]] = [{"i": i} for i in range(300)]
        for i, node in enumerate(nodes):
            node["next"] = nodes[(i + 1) % len(nodes)]
        db["ring"] = nodes[0]
        assert len(uids_in_store(db)) == 301
        db["ring"]["next"]["next"]["extra"] = {"hangs": "off the ring"}
        db["ring"] = None
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_diamond(self, db: DB) -> None:
        d = {"n": "d"}
        db["top"] = {"b": {"d": d}, "c": {"d": d}}
        top = db["top"]
        b, c, dd = top["b"], top["c"], top["b"]["d"]
        assert dd.uid == c["d"].uid and dd.backrefs == {b.uid: 1, c.uid: 1}
        del b["d"]
        assert dd.backrefs == {c.uid: 1} and dd() == {"n": "d"}
        db["side"] = dd
        assert dd.backrefs == {c.uid: 1, db.uid: 1}
        del top["c"]
        assert dd.backrefs == {db.uid: 1}
        with pytest.raises(StaleHandleError):
            c()
        del db["top"]
        assert uids_in_store(db) == {db.uid, dd.uid}
        del db["side"]
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_dag_of_diamonds_is_collected(self, db: DB) -> None:
        # Each layer links twice to the next: naive reachability would visit 2**layers paths.
        bottom: dict[str, Any] = {"end": True}
        layer: dict[str, Any] = bottom
        for i in range(60):
            layer = {"i": i, "l": layer, "r": layer}
        db["dag"] = layer
        assert len(uids_in_store(db)) == 62
        below = db["dag"]["l"]
        db["dag"]["l"] = None
        assert len(uids_in_store(db)) == 62, "the lower layers still hang off 'r'"
        assert below.backrefs == {db["dag"].uid: 1}
        del db["dag"]
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_shared_node_survives_while_any_link_remains(self, db: DB) -> None:
        db["s"] = {"shared": True}
        s = db["s"]
        db["a"] = {"x": s, "y": s}
        db["b"] = [s]
        a, b = db["a"], db["b"]
        expected = {db.uid: 1, a.uid: 2, b.uid: 1}
        assert s.backrefs == expected and s.refcount == 4
        steps: list[tuple[Callable[[], Any], Callable[[], dict[str, int]]]] = [
            (lambda: db.__delitem__("s"), lambda: {a.uid: 2, b.uid: 1}),
            (lambda: a.__delitem__("x"), lambda: {a.uid: 1, b.uid: 1}),
            (lambda: b.append(s), lambda: {a.uid: 1, b.uid: 2}),
            (lambda: b.pop(0), lambda: {a.uid: 1, b.uid: 1}),
            (lambda: a.__setitem__("y", 0), lambda: {b.uid: 1}),
            (lambda: b.insert(0, {"wrap": s}), lambda: {b.uid: 1, b[0].uid: 1}),
        ]
        for step, expected_backrefs in steps:
            step()
            backrefs = expected_backrefs()
            assert s.backrefs == backrefs and s.refcount == sum(backrefs.values())
            assert s() == {"shared": True}
            assert_clean(db)
        b.clear()
        with pytest.raises(StaleHandleError):
            s()
        assert_clean(db)

    @pytest.mark.parametrize("kind", ["dict", "list"])
    def test_stale_handle_refuses_reads_and_writes(self, db: DB, kind: str) -> None:
        db["x"] = {"a": 1} if kind == "dict" else [1, 2]
        handle = db["x"]
        uid = handle.uid
        del db["x"]
        before = dump_namespace(db)
        ops: list[Callable[[], Any]] = [
            handle,
            lambda: len(handle),
            lambda: list(handle),
            lambda: handle.backrefs,
            lambda: handle.refcount,
            lambda: handle == handle.copy(),
        ]
        if isinstance(handle, RD):
            ops += [
                lambda: handle["a"],
                lambda: "a" in handle,
                lambda: handle.get("a"),
                lambda: handle.__setitem__("a", 2),
                lambda: handle.update({}),
                lambda: handle.update(b=1),
                lambda: handle.pop("a", None),
                lambda: handle.setdefault("q", 1),
                lambda: handle.clear(),
                lambda: handle.popitem(),
            ]
        else:
            ops += [
                lambda: handle[0],
                lambda: handle[0:1],
                lambda: 1 in handle,
                lambda: handle.append(3),
                lambda: handle.extend([]),
                lambda: handle.insert(0, 1),
                lambda: handle.pop(),
                lambda: handle.pop(0),
                lambda: handle.__setitem__(0, 5),
                lambda: handle.__setitem__(slice(None), []),
                lambda: handle.__delitem__(slice(None)),
                lambda: handle.sort(),
                lambda: handle.reverse(),
                lambda: handle.clear(),
            ]
        for op in ops:
            with pytest.raises(StaleHandleError):
                op()
        with pytest.raises(StaleHandleError):
            db["again"] = handle
        with pytest.raises(StaleHandleError):
            db["wrapped"] = {"inner": [handle]}
        assert dump_namespace(db) == before, "a stale handle never resurrects or writes"
        assert uid not in uids_in_store(db)
        assert str(handle).startswith("<stale"), "printing a stale handle never fails"

    def test_pop_and_popitem_return_usable_materialized_values(self, db: DB) -> None:
        cyc: dict[str, Any] = {"n": 1}
        cyc["self"] = cyc
        db["d"] = {"sub": {"x": [1, {"y": 2}]}, "cyc": cyc, "last": [3]}
        rd = db["d"]
        sub_uid = rd["sub"].uid
        value = rd.pop("sub")
        assert type(value) is dict and value == {"x": [1, {"y": 2}]}
        value["x"].append("usable")
        assert sub_uid not in uids_in_store(db)
        key, last = rd.popitem()
        assert key == "last" and type(last) is list and last == [3]
        got = rd.pop("cyc")
        assert got["self"] is got and got["n"] == 1
        db["l"] = [{"a": 1}, [2, [3]]]
        assert db["l"].pop() == [2, [3]] and db["l"].pop(0) == {"a": 1}
        db["t"] = {"k": [1]}
        assert db.pop("t") == {"k": [1]}
        db["u"] = {"k": 1}
        assert db.popitem() == ("u", {"k": 1})
        assert uids_in_store(db) == {db.uid, rd.uid, db["l"].uid}
        assert_clean(db)

    def test_popping_a_shared_node_leaves_it_alive_elsewhere(self, db: DB) -> None:
        shared = {"s": 1}
        db["d"] = {"a": shared, "b": shared}
        rd = db["d"]
        keep = rd["b"]
        got = rd.pop("a")
        assert got == {"s": 1} and type(got) is dict
        assert keep.backrefs == {rd.uid: 1} and keep() == {"s": 1}
        got["s"] = 99
        assert keep["s"] == 1, "the popped value is a detached copy"
        assert_clean(db)

    def test_bulk_removals_collect(self, db: DB) -> None:
        db["l"] = [{"i": i} for i in range(6)]
        rl = db["l"]
        del rl[1:5:2]
        assert len(uids_in_store(db)) == 2 + 4
        rl[0:2] = []
        assert len(uids_in_store(db)) == 2 + 2
        rl *= 0
        assert uids_in_store(db) == {db.uid, rl.uid}
        db["d"] = {"a": {}, "b": []}
        db["d"].clear()
        assert uids_in_store(db) == {db.uid, rl.uid, db["d"].uid}
        db.clear()
        assert uids_in_store(db) == {db.uid}
        assert_clean(db)

    def test_many_handles_in_one_write_are_each_checked_and_counted(self, db: DB) -> None:
        # The handles of one write are checked and counted together (one batched read):
        # repeats, a pinned node and a stale handle must come out as they would one by one.
        db["kids"] = {f"k{i}": {"i": i} for i in range(4)}
        kids = db["kids"]
        h = [kids[f"k{i}"] for i in range(4)]
        pinned = RD(db, {"pinned": True})
        db["p"] = {"kids": [h[0], h[1], h[1], h[2], pinned], "also": h[0]}
        p = db["p"]
        listed = p["kids"]
        assert h[0].backrefs == {kids.uid: 1, listed.uid: 1, p.uid: 1}
        assert h[1].backrefs == {kids.uid: 1, listed.uid: 2}
        assert h[3].backrefs == {kids.uid: 1}
        assert pinned.backrefs == {listed.uid: 1}
        assert pinned.uid not in db.check().pinned, "being linked ends the pin"
        gone = kids["k3"]
        del kids["k3"]
        before = dump_namespace(db)
        with pytest.raises(StaleHandleError):
            db["q"] = {"kids": [h[0], h[1], gone, h[2]]}
        assert dump_namespace(db) == before, "a refused write leaves the store untouched"
        del db["p"]
        assert h[0].backrefs == {kids.uid: 1} and h[1].backrefs == {kids.uid: 1}
        assert pinned.uid not in uids_in_store(db), "unpinned by its link, collected with it"
        assert_clean(db)

    def test_unlinked_node_lives_until_linked_or_dropped(self, db: DB) -> None:
        rd = RD(db, {"a": {"b": 1}})
        uid = rd.uid
        report = db.check()
        assert report.ok and uid in report.pinned
        assert uid in uids_in_store(db)
        del rd
        gc.collect()
        db["tick"] = 1  # the next write releases handles dropped meanwhile
        assert uids_in_store(db) == {db.uid}
        with pytest.raises(KeyError):
            db.get_via_uid(uid)
        kept = RL(db, [1])
        db["kept"] = kept
        del kept
        gc.collect()
        db["tick"] = 2
        assert db["kept"]() == [1], "a linked node is owned by the tree, not the handle"
        assert_clean(db)

    def test_foreign_node_is_refused(self, db: DB, db_factory: DBFactory) -> None:
        other = db_factory()
        other["x"] = {"a": 1}
        db["mine"] = 1
        before = dump_namespace(db)
        with pytest.raises(ForeignNodeError) as info:
            db["y"] = {"wrap": other["x"]}
        assert "['y']['wrap']" in str(info.value)
        assert isinstance(info.value, ValueError)
        assert dump_namespace(db) == before
        assert other["x"].backrefs == {other.uid: 1}

    def test_check_detects_damage_and_gc_repairs_it(self, db: DB) -> None:
        db["x"] = {"a": {"b": 1}}
        a = db["x"]["a"]
        refs_key = ("{" + db.prefix + "}:r:" + a.uid).encode()
        parent = db["x"].uid.encode()
        # A foreign writer corrupts the back-reference count: check() must notice.
        db.backend.hset(refs_key, parent, b"5")
        report = db.check()
        assert not report.ok and report.wrong_counts and report.problems()
        repaired = db.gc()
        assert not repaired.ok, "gc() reports what it found"
        assert_clean(db)
        assert a.backrefs == {db["x"].uid: 1}
        # An orphan written by a foreign writer: reported, then collected.
        orphan = ("{" + db.prefix + "}:r:Dorphan").encode()
        db.backend.hset(orphan, b"#k", b"d")
        report = db.check()
        assert "Dorphan" in report.orphans
        db.gc()
        assert_clean(db)
        assert "Dorphan" not in uids_in_store(db)

    def test_materializing_a_dangling_link_is_an_error(self, db: DB) -> None:
        db["x"] = {"a": {"b": 1}}
        uid = db["x"]["a"].uid
        layout = Layout(db.prefix)
        db.backend.delete(layout.refs(uid), layout.content(uid))  # a foreign writer's damage
        assert not db.check().ok
        with pytest.raises((StoreCorrupt, StaleHandleError)):
            db()

    @pytest.mark.parametrize("damaged", ["removed parent", "other parent"])
    def test_collection_reports_a_damaged_count_of_a_surviving_node(
        self, db: DB, damaged: str
    ) -> None:
        """A shared node that survives a collection has its header read: a count there that
        is no count (a foreign writer's damage) is ``StoreCorrupt``, and nothing changes."""
        db["kid"] = {"n": 1}
        kid = db["kid"]
        db["a"] = [kid]
        db["b"] = [kid]
        layout = Layout(db.prefix)
        parent = db["a" if damaged == "removed parent" else "b"].uid
        db.backend.hset(layout.refs(kid.uid), parent.encode(), b"x")
        with pytest.raises(StoreCorrupt):
            del db["a"]  # kid loses a's list and survives through b's (or the root)
        assert db.backend.hget(layout.refs(kid.uid), parent.encode()) == b"x"
        assert list(db["a"]) and list(db["b"])

    def test_link_to_root_then_unlink_keeps_root(self, db: DB) -> None:
        root = db.get_via_uid(db.uid)
        db["keep"] = "me"
        db["a"] = {"r": root}
        assert root.backrefs == {db["a"].uid: 1}
        del db["a"]
        assert db() == {"keep": "me"}
        assert db.uid in uids_in_store(db)
        assert_clean(db)
