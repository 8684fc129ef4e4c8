"""Conformance of server-side subtree reads (``capabilities.subtree_reads``, ``subtree_visits``).

A backend that declares ``subtree_reads`` answers
:meth:`etcher.spec.SubtreeReads.read_subtree`; materializing then asks it for
a document in a few calls instead of one round trip per level. These tests
prove both paths give identical results: the raw walk against plain
``hgetall``/``lrange`` reads, the limit and the continuation frontier, the
report of missing nodes, the materialized value against the level-by-level
read, a consistent snapshot while another client (a thread, a forked and a
spawned process) keeps replacing the document, the round trips of a small
document, and collection of a deep chain read ahead by subtrees. A backend that
also declares ``subtree_visits`` materializes through
:meth:`etcher.spec.SubtreeVisits.visit_subtree` instead; the tests of the
``read_subtree`` path turn that capability off for themselves, and the
``test_visit*`` tests check the visiting walk the same ways. Every test but
the last three skips, with a reason, on a backend without the capability::

    class TestMyKVSubtree(SubtreeConformance, MyKVFixtures): ...
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from multiprocessing.reduction import ForkingPickler
from typing import Any, cast

import pytest

from etcher import _materialize as materialize_module
from etcher._codec import encode_key, item_value, link_target
from etcher._db import DB
from etcher._layout import ROOT
from etcher._subtree import linked as links_of
from etcher._unit import Unit
from etcher.spec import StorageBackend, SubtreeReads, SubtreeVisits, UnlinkReads
from etcher.testing._harness.instrument import CountingBackend
from etcher.testing.containers import ContainerFixtures, DBFactory
from etcher.testing.fixtures import BackendFactory, BackendFixtures

READS = 12
"""Materializations the reader checks while a writer replaces the document."""
WRITER_ROUNDS = 2000
"""Upper bound on the writer's replacements (it stops as soon as the reader is done)."""


def sample() -> dict[Any, Any]:
    """A document with every shape the walk must follow: nesting, sharing, a cycle, empties."""
    shared = {"shared": True, "n": [1, 2]}
    doc: dict[Any, Any] = {
        "a": [1, "@Dnot-a-link", {"b": 2, "c": [[], {}]}],
        "s1": shared,
        "s2": [shared, shared],
        "e": {},
        "l": [],
        "deep": {"x": {"y": {"z": [0, [1, [2]]]}}},
        7: "int key",
    }
    doc["self"] = doc
    return doc


def versioned(v: int) -> dict[str, Any]:
    """A document whose every container records version ``v`` (a chain and a wide list)."""
    chain: dict[str, Any] = {"v": v}
    for _ in range(15):
        chain = {"v": v, "next": chain}
    return {"v": v, "chain": chain, "items": [{"v": v, "i": i} for i in range(12)]}


def versions(value: Any) -> set[int]:
    """Every ``"v"`` found anywhere in ``value`` (iteratively)."""
    found: set[int] = set()
    stack = [value]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if "v" in x:
                found.add(x["v"])
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return found


def same_shape(a: Any, b: Any) -> bool:
    """Whether two values are equal *and* share and cycle the same way (iteratively)."""
    pairs: dict[int, int] = {}
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, (dict, list)):
            if id(x) in pairs:
                if pairs[id(x)] != id(y):
                    return False
                continue
            pairs[id(x)] = id(y)
            if isinstance(x, dict):
                if list(x) != list(y):
                    return False
                stack.extend((x[k], y[k]) for k in x)
            else:
                if len(x) != len(y):
                    return False
                stack.extend(zip(x, y, strict=True))
        elif x != y and not (x != x and y != y):  # nan equals nan here
            return False
    return True


def reference_walk(backend: StorageBackend, db: DB) -> dict[str, Any]:
    """Contents of every node reachable from the root, read one plain command at a time."""
    layout = db._layout
    out: dict[str, Any] = {}
    stack = [ROOT]
    while stack:
        uid = stack.pop()
        if uid in out:
            continue
        key = layout.content(uid)
        content = backend.hgetall(key) if uid[0] == "D" else backend.lrange(key, 0, -1)
        out[uid] = content
        raws = map(item_value, content.values()) if uid[0] == "D" else content
        stack.extend(c for c in map(link_target, raws) if c is not None)
    return out


def reads_only(mp: pytest.MonkeyPatch, backend: StorageBackend) -> None:
    """Send materializing through ``read_subtree`` on a backend that also visits subtrees
    (for the tests of that path; ``mp`` undoes it)."""
    caps = backend.capabilities
    if caps.subtree_visits:
        mp.setattr(backend, "capabilities", dataclasses.replace(caps, subtree_visits=False))


def visit_all(
    visits: SubtreeVisits, db: DB, root: str
) -> tuple[dict[str, Any], list[str], list[str] | None]:
    """``visit_subtree`` from ``root`` with a visitor that follows every link once:
    ``(contents visited, uids in visiting order, what the call returned)``."""
    layout = db._layout
    contents: dict[str, Any] = {}
    order: list[str] = []
    named = {root}

    def visit(uid: str, content: Any, out: list[str]) -> None:
        assert uid not in contents, f"{uid} visited twice"
        assert content, f"{uid} visited with an empty content"
        contents[uid] = content
        order.append(uid)
        for child in links_of(uid, content):
            if child not in named:
                named.add(child)
                out.append(child)

    absent = visits.visit_subtree(layout.content_prefix, layout.refs_prefix, root, visit)
    return contents, order, absent


def _replace_versions(
    make_backend: BackendFactory,
    prefix: str,
    ready: Any,
    stop: Any,
    rounds: int = WRITER_ROUNDS,
) -> None:
    """Replace ``db["doc"]`` with new versions until ``stop`` (the concurrent writer)."""
    backend = make_backend()
    try:
        with DB(backend=backend, prefix=prefix, grace=0) as db:
            for v in range(1, rounds + 1):
                db["doc"] = versioned(v)
                ready.set()
                if stop.is_set():
                    break
    finally:
        backend.close()


class SubtreeConformance(ContainerFixtures, BackendFixtures):
    """Server-side subtree reads agree with the level-by-level read, and stay consistent."""

    @pytest.fixture
    def reader(self, backend: StorageBackend) -> SubtreeReads:
        if not backend.capabilities.subtree_reads:
            pytest.skip(f"{type(backend).__name__}.capabilities.subtree_reads is False")
        return backend  # type: ignore[return-value]

    def test_subtree_read_equals_plain_reads(
        self, reader: SubtreeReads, backend: StorageBackend, db: DB
    ) -> None:
        db["doc"] = sample()
        layout = db._layout
        contents, absent, frontier = reader.read_subtree(
            layout.content_prefix, layout.refs_prefix, [ROOT], 10_000
        )
        assert absent == [] and frontier == []
        assert contents == reference_walk(backend, db)
        assert next(iter(contents)) == ROOT  # the roots are read first

    @pytest.mark.parametrize("limit", [1, 2, 3, 7])
    def test_limit_and_continuation(
        self, reader: SubtreeReads, backend: StorageBackend, db: DB, limit: int
    ) -> None:
        db["doc"] = sample()
        layout = db._layout
        want = reference_walk(backend, db)
        got: dict[str, Any] = {}
        frontier = [ROOT]
        calls = 0
        while frontier:
            calls += 1
            assert calls <= len(want), "the continuation makes no progress"
            contents, absent, nxt = reader.read_subtree(
                layout.content_prefix, layout.refs_prefix, frontier, limit
            )
            assert absent == []
            assert 1 <= len(contents) <= limit
            assert frontier[0] in contents  # the first root is always read
            assert len(nxt) == len(set(nxt))
            got.update(contents)
            frontier = [x for x in nxt if x not in got]
        assert got == want

    @pytest.mark.parametrize("limit", [1, 3, 10_000])
    def test_an_unlinking_read_answers_what_is_stored(
        self, backend: StorageBackend, db: DB, limit: int
    ) -> None:
        """``read_unlinked`` (``capabilities.unlink_reads``): every answer is the stored value.

        The item and the parent's header always come back. Below a linked item, what
        comes back is a hint, but each header and content is exactly what a plain
        read gives, no more than ``limit`` of them; with room, a document linked only
        there comes back whole, and a node also linked elsewhere only by its header.
        """
        if not backend.capabilities.unlink_reads:
            pytest.skip(f"{type(backend).__name__}.capabilities.unlink_reads is False")
        reads = cast(UnlinkReads, backend)
        db["keep"] = {"shared": {"s": [1]}}
        keep: Any = db["keep"]
        db["doc"] = {"a": [1, {"b": {"c": [2]}}], "s": keep["shared"], "n": 3}
        layout = db._layout
        cp, rp = layout.content_prefix, layout.refs_prefix
        root = backend.hgetall(rp + ROOT)
        for key, linked in (("doc", True), ("missing", False), ("keep", True)):
            field = encode_key(key)
            header, item, headers, contents = reads.read_unlinked(
                cp, rp, ROOT, field, [ROOT], limit
            )
            assert header == root
            assert item == backend.hget(cp + ROOT, field)
            assert (item is not None) == linked
            if linked:
                assert headers, "the linked node's header comes back"
            for uid, stored in headers.items():
                assert stored == backend.hgetall(rp + uid)
            for uid, content in contents.items():
                if uid[:1] == "D":
                    assert content == backend.hgetall(cp + uid)
                else:
                    assert content == backend.lrange(cp + uid, 0, -1)
            assert len(headers) + len(contents) <= max(limit, 1)
            if not linked:
                assert (headers, contents) == ({}, {})
        # A scalar item, and a linked document with room to read it all.
        doc_uid = cast(Any, db["doc"]).uid
        header, item, headers, contents = reads.read_unlinked(
            cp, rp, doc_uid, encode_key("n"), [ROOT, doc_uid], 10
        )
        assert header == backend.hgetall(rp + doc_uid)
        assert item is not None and (headers, contents) == ({}, {})
        # The headers of the nodes a new value would link come too, whatever the item.
        keep_uid = keep.uid
        _, _, headers, contents = reads.read_unlinked(
            cp, rp, doc_uid, encode_key("n"), [ROOT, doc_uid], limit, [keep_uid]
        )
        assert headers == {keep_uid: backend.hgetall(rp + keep_uid)} and contents == {}
        if limit == 10_000:
            _, _, headers, contents = reads.read_unlinked(
                cp, rp, ROOT, encode_key("doc"), [ROOT], limit
            )
            doc: Any = db["doc"]
            whole = {doc.uid, doc["a"].uid, doc["a"][1].uid, doc["a"][1]["b"].uid}
            whole.add(doc["a"][1]["b"]["c"].uid)
            assert whole <= contents.keys() <= headers.keys()
            shared = keep["shared"].uid
            assert shared in headers and shared not in contents  # keep still links it

    def test_missing_nodes_are_reported(self, reader: SubtreeReads, db: DB) -> None:
        db["doc"] = {"empty": {}, "none": []}
        layout = db._layout
        doc: Any = db["doc"]
        uids = [doc["empty"]._etcher_uid, doc["none"]._etcher_uid]
        ghosts = ["Dno-such-node", "Lno-such-node"]
        contents, absent, frontier = reader.read_subtree(
            layout.content_prefix, layout.refs_prefix, [*uids, *ghosts], 100
        )
        assert contents == {uids[0]: {}, uids[1]: [], ghosts[0]: {}, ghosts[1]: []}
        assert sorted(absent) == sorted(ghosts)  # empty but existing nodes are not absent
        assert frontier == []

    def test_materialize_equals_level_by_level(self, reader: SubtreeReads, db: DB) -> None:
        doc = sample()
        db["doc"] = doc
        handle: Any = db["doc"]
        uid = handle._etcher_uid
        levels = db._session.snapshot(lambda g: materialize_module._by_levels(g, uid))
        for limit in (1, 3, materialize_module.SUBTREE_LIMIT):
            with pytest.MonkeyPatch.context() as mp:
                reads_only(mp, reader)  # type: ignore[arg-type]
                mp.setattr(materialize_module, "SUBTREE_LIMIT", limit)
                calls: list[int] = []
                real = type(reader).read_subtree

                def counted(
                    self: Any, *args: Any, real: Any = real, calls: list[int] = calls
                ) -> Any:
                    calls.append(1)
                    return real(self, *args)

                mp.setattr(type(reader), "read_subtree", counted)
                value: Any = handle()
            assert calls, "materialize did not use the subtree read"
            assert same_shape(value, levels)
            assert same_shape(value, doc)
            assert value["self"] is value and value["s1"] is value["s2"][0]

    def test_one_state_answers_need_no_unit_of_work(
        self, reader: SubtreeReads, backend: StorageBackend, db: DB
    ) -> None:
        """A document one call returns whole is one state (the spec), as is any number of
        calls inside one read scope: materializing it makes no unit of work."""
        doc = sample()
        db["doc"] = doc
        handle: Any = db["doc"]
        limits = [materialize_module.SUBTREE_LIMIT]
        if backend.capabilities.locking_units:
            limits.append(2)  # several calls, all inside one scope
        for limit in limits:
            made: list[int] = []
            real = Unit.__init__

            def counted(self: Any, *args: Any, real: Any = real, made: list[int] = made) -> None:
                made.append(1)
                real(self, *args)

            with pytest.MonkeyPatch.context() as mp:
                reads_only(mp, backend)
                mp.setattr(materialize_module, "SUBTREE_LIMIT", limit)
                mp.setattr(Unit, "__init__", counted)
                value: Any = handle()
            assert same_shape(value, doc)
            assert value["self"] is value and value["s1"] is value["s2"][0]
            assert made == [], f"materialize made a unit of work (limit {limit})"

    def test_wide_document_is_read_in_linear_work(self, reader: SubtreeReads, db: DB) -> None:
        db["wide"] = {f"k{i}": {"v": i} for i in range(60)}
        roots_sent: list[int] = []
        real = type(reader).read_subtree

        def counted(self: Any, cp: str, rp: str, roots: Any, limit: int) -> Any:
            roots_sent.append(len(roots))
            return real(self, cp, rp, roots, limit)

        with pytest.MonkeyPatch.context() as mp:
            reads_only(mp, reader)  # type: ignore[arg-type]
            mp.setattr(materialize_module, "SUBTREE_LIMIT", 5)
            mp.setattr(type(reader), "read_subtree", counted)
            wide: Any = db["wide"]
            value = wide()
        assert value == {f"k{i}": {"v": i} for i in range(60)}
        # 61 nodes, 5 per call: about 13 calls, and no root sent twice (a whole
        # frontier handed to every call would be quadratic in the width).
        assert len(roots_sent) <= 61 // 5 + 2
        assert sum(roots_sent) <= 61

    def test_a_document_of_several_calls_reads_each_node_once(
        self, reader: SubtreeReads, db: DB
    ) -> None:
        """Whether the walk holds a scope or hands its first answer to a checked unit
        (stores without scopes), no node is read twice when nothing changes."""
        db["wide"] = {f"k{i}": {"v": i} for i in range(60)}
        read: list[str] = []
        real = type(reader).read_subtree

        def counted(self: Any, *args: Any) -> Any:
            out = real(self, *args)
            read.extend(out[0])
            return out

        with pytest.MonkeyPatch.context() as mp:
            reads_only(mp, reader)  # type: ignore[arg-type]
            mp.setattr(materialize_module, "SUBTREE_LIMIT", 5)
            mp.setattr(type(reader), "read_subtree", counted)
            wide: Any = db["wide"]
            value = wide()
        assert value == {f"k{i}": {"v": i} for i in range(60)}
        assert len(read) == 61 == len(set(read)), f"{len(read)} node reads for 61 nodes"

    def test_a_write_between_two_calls_never_tears_the_result(
        self, reader: SubtreeReads, backend: StorageBackend, db: DB, second_backend: Any
    ) -> None:
        """Another client writes after the first of several calls: a scope still reads the
        old state; a store without scopes notices at the check and reads again."""
        # The write changes the root (read by the first call) and nodes read by later ones.
        old: dict[str, Any] = {"n": 1, "a": {"b": {"c": 1}}, "x": [1, 2]}
        new: dict[str, Any] = {"n": 2, "a": {"b": {"c": 2}}, "x": [1, 2, 3]}
        db["doc"] = old
        writer: Any = DB(backend=second_backend, prefix=db.prefix)
        calls = [0]
        real = type(reader).read_subtree

        def racing(self: Any, *args: Any) -> Any:
            calls[0] += 1
            out = real(self, *args)
            if calls[0] == 1:
                writer["doc"]["n"] = 2
                writer["doc"]["a"]["b"]["c"] = 2
                writer["doc"]["x"].append(3)
            return out

        try:
            with pytest.MonkeyPatch.context() as mp:
                reads_only(mp, backend)
                mp.setattr(materialize_module, "SUBTREE_LIMIT", 2)
                mp.setattr(type(reader), "read_subtree", racing)
                doc: Any = db["doc"]
                value = doc()
        finally:
            writer.close()
        assert calls[0] > 1  # the write landed between two calls of one walk
        assert value == (old if backend.capabilities.locking_units else new)
        assert doc() == new

    @pytest.mark.parametrize("where", ["top", "inside", "list"])
    def test_a_node_left_out_of_the_walk_is_read_plainly(
        self, reader: SubtreeReads, db: DB, where: str
    ) -> None:
        """A backend may leave a node it finds too wide out of a walk's answer: it comes back
        in the frontier, even as a root, and materializing reads it with plain reads."""
        wide: Any = {f"k{i}": {"v": i} for i in range(12)}
        if where == "list":
            wide = [*range(12), {"v": 1}, "@text"]
        doc = {"n": 1, "w": wide, "z": [wide]} if where == "inside" else wide
        db["doc"] = doc
        handle: Any = db["doc"]
        left_out = handle["w"].uid if where == "inside" else handle.uid
        calls = [0]
        real = type(reader).read_subtree

        def declining(self: Any, cp: str, rp: str, roots: Any, limit: int) -> Any:
            calls[0] += 1
            assert calls[0] < 50, "the walk keeps asking for the node it was refused"
            contents, absent, frontier = real(self, cp, rp, roots, limit)
            if left_out in contents:
                del contents[left_out]
                frontier = [left_out, *(x for x in frontier if x != left_out)]
            return contents, absent, frontier

        with pytest.MonkeyPatch.context() as mp:
            reads_only(mp, db.backend)
            mp.setattr(materialize_module, "SUBTREE_LIMIT", 4)
            mp.setattr(type(reader), "read_subtree", declining)
            value: Any = handle()
        assert calls[0] >= 1  # the walk was asked, and declined the node
        assert value == doc
        if where == "inside":
            assert value["w"] is value["z"][0]

    def test_a_write_after_a_plain_read_never_tears_the_result(
        self, reader: SubtreeReads, backend: StorageBackend, db: DB, second_backend: Any
    ) -> None:
        """A root left out of the walk and read plainly, then another client writes before
        the walk reads its children: the result is still one state."""
        old: dict[str, Any] = {"n": 1, "a": {"c": 1}, "b": {"c": 1}}
        new: dict[str, Any] = {"n": 2, "a": {"c": 2}, "b": {"c": 1}}
        db["doc"] = old
        doc: Any = db["doc"]
        top = doc.uid
        writer: Any = DB(backend=second_backend, prefix=db.prefix)
        calls = [0]
        real = type(reader).read_subtree

        def declining(self: Any, cp: str, rp: str, roots: Any, limit: int) -> Any:
            calls[0] += 1
            assert calls[0] < 50, "the walk keeps asking for the node it was refused"
            if calls[0] == 2:  # after the plain read of the root
                writer["doc"]["n"] = 2
                writer["doc"]["a"]["c"] = 2
            contents, absent, frontier = real(self, cp, rp, roots, limit)
            if top in contents:
                del contents[top]
                frontier = [top, *(x for x in frontier if x != top)]
            return contents, absent, frontier

        try:
            with pytest.MonkeyPatch.context() as mp:
                reads_only(mp, backend)
                mp.setattr(type(reader), "read_subtree", declining)
                value = doc()
        finally:
            writer.close()
        assert calls[0] >= 2  # the write landed between the plain read and the walk
        # Either state (a scope may start after the write), never half of each.
        assert value in (old, new)
        assert doc() == new

    @pytest.mark.parametrize("start", ["thread", "fork", "spawn"])
    def test_snapshot_beside_a_writer(
        self,
        reader: SubtreeReads,
        db_factory: DBFactory,
        make_backend: BackendFactory | None,
        start: str,
    ) -> None:
        if make_backend is None:
            pytest.skip("no second connection to write through (override make_backend)")
        if not db_factory.backend.capabilities.multiprocess and start != "thread":
            pytest.skip(f"{type(reader).__name__}.capabilities.multiprocess is False")
        if start == "spawn":
            try:
                # The pickler a spawned process's arguments go through.
                ForkingPickler.dumps(make_backend)
            except Exception:
                pytest.skip("make_backend cannot be pickled for a spawned process")
        db = db_factory(grace=0)
        ctx: Any = multiprocessing.get_context("fork" if start == "thread" else start)
        ready, stop = ctx.Event(), ctx.Event()
        args = (make_backend, db.prefix, ready, stop)
        worker: Any = (
            threading.Thread(target=_replace_versions, args=args)
            if start == "thread"
            else ctx.Process(target=_replace_versions, args=args)
        )
        worker.start()
        try:
            assert ready.wait(60), "the writer never wrote"
            # Each path the backend offers: visits (one call per document) where declared,
            # and read_subtree in small calls, so one document takes several and the
            # snapshot must span them.
            for only_reads in sorted({not db.backend.capabilities.subtree_visits, True}):
                with pytest.MonkeyPatch.context() as mp:
                    if only_reads:
                        reads_only(mp, db.backend)
                    mp.setattr(materialize_module, "SUBTREE_LIMIT", 4)
                    for _ in range(READS):
                        value: Any = db()["doc"]
                        found = versions(value)
                        assert len(found) == 1, f"one read mixed versions {sorted(found)}"
                        assert same_shape(value, versioned(found.pop()))
        finally:
            stop.set()
            worker.join(60)
        if start != "thread":
            assert worker.exitcode == 0, f"the writer exited with {worker.exitcode}"

    # --- capabilities.subtree_visits ----------------------------------------------------

    @pytest.fixture
    def visits(self, backend: StorageBackend) -> SubtreeVisits:
        if not backend.capabilities.subtree_visits:
            pytest.skip(f"{type(backend).__name__}.capabilities.subtree_visits is False")
        return backend  # type: ignore[return-value]

    def test_visit_subtree_equals_plain_reads(
        self, visits: SubtreeVisits, backend: StorageBackend, db: DB
    ) -> None:
        db["doc"] = sample()
        contents, order, absent = visit_all(visits, db, ROOT)
        assert absent == []
        # Every node with a content, each once; the empty ones are not visited.
        want = {uid: content for uid, content in reference_walk(backend, db).items() if content}
        assert contents == want
        assert order[0] == ROOT  # the root is read first

    def test_visit_subtree_of_wide_and_spilled_nodes(
        self, visits: SubtreeVisits, backend: StorageBackend, db: DB
    ) -> None:
        """Levels wider than a statement's batch, and big hashes and lists (a store may keep
        those apart from small ones)."""
        db["wide"] = {f"k{i}": {"v": i} for i in range(300)}
        db["big"] = {"h": {f"f{i}": "x" * 20 for i in range(200)}, "l": list(range(300))}
        db["links"] = [{"i": i} for i in range(200)]
        contents, _order, absent = visit_all(visits, db, ROOT)
        assert absent == []
        want = {uid: content for uid, content in reference_walk(backend, db).items() if content}
        assert contents == want
        handles: Any = db
        assert handles["wide"]() == {f"k{i}": {"v": i} for i in range(300)}
        big = {"h": {f"f{i}": "x" * 20 for i in range(200)}, "l": list(range(300))}
        assert handles["big"]() == big
        assert handles["links"]() == [{"i": i} for i in range(200)]

    def test_visit_subtree_reads_only_what_visit_names(self, visits: SubtreeVisits, db: DB) -> None:
        db["doc"] = {"a": {"b": 1}, "c": [1, {"d": 2}]}
        doc: Any = db["doc"]
        layout = db._layout
        seen: list[str] = []
        absent = visits.visit_subtree(
            layout.content_prefix,
            layout.refs_prefix,
            doc.uid,
            lambda uid, content, out: seen.append(uid),
        )
        assert absent == [] and seen == [doc.uid]
        # Naming one child of the root: that child and nothing below it.
        a = doc["a"].uid
        seen.clear()

        def only_a(uid: str, content: Any, out: list[str]) -> None:
            seen.append(uid)
            if uid == doc.uid:
                out.append(a)

        cp, rp = layout.content_prefix, layout.refs_prefix
        assert visits.visit_subtree(cp, rp, doc.uid, only_a) == []
        assert seen == [doc.uid, a]

    def test_visit_subtree_reports_missing_nodes(self, visits: SubtreeVisits, db: DB) -> None:
        db["doc"] = {"empty": {}, "none": [], "n": 1}
        doc: Any = db["doc"]
        layout = db._layout
        empties = [doc["empty"].uid, doc["none"].uid]
        ghosts = ["Dno-such-node", "Lno-such-node"]
        seen: list[str] = []

        def visit(uid: str, content: Any, out: list[str]) -> None:
            seen.append(uid)
            if uid == doc.uid:
                out.extend([*empties, *ghosts])

        absent = visits.visit_subtree(layout.content_prefix, layout.refs_prefix, doc.uid, visit)
        assert absent is not None and sorted(absent) == sorted(ghosts)
        assert seen == [doc.uid]  # empty contents are not visited
        gone = visits.visit_subtree(layout.content_prefix, layout.refs_prefix, "Dgone", visit)
        assert gone == ["Dgone"] and seen == [doc.uid]

    def test_an_error_in_visit_ends_the_walk_and_propagates(
        self, visits: SubtreeVisits, db: DB
    ) -> None:
        db["doc"] = {"a": {"b": 1}}
        layout = db._layout
        doc: Any = db["doc"]

        class Stop(Exception):
            pass

        def visit(uid: str, content: Any, out: list[str]) -> None:
            raise Stop(uid)

        with pytest.raises(Stop):
            visits.visit_subtree(layout.content_prefix, layout.refs_prefix, doc.uid, visit)
        # Nothing stays held: writes and reads go on as before.
        doc["a"]["b"] = 2
        assert doc() == {"a": {"b": 2}}

    def test_visit_subtree_inside_a_held_scope(
        self, visits: SubtreeVisits, backend: StorageBackend, db: DB
    ) -> None:
        """Inside this thread's unit scope a backend either declines (``None``, nothing
        read) or answers the scope's state; materializing there still works."""
        if not backend.capabilities.locking_units:
            pytest.skip(f"{type(backend).__name__}.capabilities.locking_units is False")
        db["doc"] = {"a": {"b": 1}}
        doc: Any = db["doc"]
        scopes = cast(Any, backend)
        with scopes.unit_scope(False) as held:
            assert held
            contents, _order, absent = visit_all(visits, db, doc.uid)
            if absent is None:
                assert contents == {}
            else:
                assert absent == [] and len(contents) == 2
            assert doc() == {"a": {"b": 1}}

    def test_materialize_by_visits_equals_level_by_level(
        self, visits: SubtreeVisits, db: DB
    ) -> None:
        doc = sample()
        db["doc"] = doc
        handle: Any = db["doc"]
        uid = handle._etcher_uid
        levels = db._session.snapshot(lambda g: materialize_module._by_levels(g, uid))
        calls: list[str] = []
        with pytest.MonkeyPatch.context() as mp:
            for name in ("visit_subtree", "read_subtree"):
                real = getattr(type(visits), name, None)
                if real is None:
                    continue

                def counted(self: Any, *args: Any, real: Any = real, name: str = name) -> Any:
                    calls.append(name)
                    return real(self, *args)

                mp.setattr(type(visits), name, counted)
            value: Any = handle()
        assert calls == ["visit_subtree"]
        assert same_shape(value, levels)
        assert same_shape(value, doc)
        assert value["self"] is value and value["s1"] is value["s2"][0]

    def test_a_write_during_a_visit_never_tears_the_result(
        self, visits: SubtreeVisits, db: DB, second_backend: Any
    ) -> None:
        """Another client writes after the walk's first node: the walk is one state."""
        old: dict[str, Any] = {"n": 1, "a": {"b": {"c": 1}}, "x": [1, 2]}
        new: dict[str, Any] = {"n": 2, "a": {"b": {"c": 2}}, "x": [1, 2, 3]}
        db["doc"] = old
        writer: Any = DB(backend=second_backend, prefix=db.prefix)
        real = type(visits).visit_subtree
        struck: list[int] = []

        def racing(self: Any, cp: str, rp: str, root: str, visit: Any) -> Any:
            def striking(uid: str, content: Any, out: list[str]) -> None:
                visit(uid, content, out)
                if not struck:
                    struck.append(1)
                    writer["doc"]["n"] = 2
                    writer["doc"]["a"]["b"]["c"] = 2
                    writer["doc"]["x"].append(3)

            return real(self, cp, rp, root, striking)

        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(type(visits), "visit_subtree", racing)
                doc: Any = db["doc"]
                value = doc()
        finally:
            writer.close()
        assert struck  # the write landed inside the walk
        assert value == old
        assert doc() == new

    def test_small_document_is_one_call(
        self, backend: StorageBackend, db_factory: DBFactory
    ) -> None:
        counting = CountingBackend(backend)
        prefix = db_factory.new_prefix()
        db = DB(backend=counting, prefix=prefix)
        try:
            db["doc"] = {"a": [1, {"b": 2}], "c": {"d": [[], {}]}}
            handle: Any = db["doc"]
            counting.reset()
            assert handle() == {"a": [1, {"b": 2}], "c": {"d": [[], {}]}}
            trips = counting.round_trips - counting.commands["unit_scope"]
            if backend.capabilities.subtree_visits:
                assert counting.commands["visit_subtree"] == 1
                assert trips == 1, dict(counting.commands)
            elif backend.capabilities.subtree_reads:
                assert counting.commands["read_subtree"] == 1
                assert trips == 1, dict(counting.commands)
            else:
                assert trips >= 4  # one per level: the fallback still works
        finally:
            db.close()

    def test_deep_chain_reads_without_recursion(
        self, backend: StorageBackend, db_factory: DBFactory
    ) -> None:
        depth = 3_000  # beyond Python's default recursion limit
        db = db_factory(grace=0)
        doc: Any = [0]
        for _ in range(depth):
            doc = {"down": [doc]}
        db["deep"] = doc
        deep: Any = db["deep"]
        value = deep()
        levels = 0
        while isinstance(value, dict):
            value = value["down"][0]
            levels += 1
        assert levels == depth and value == [0]
        del db["deep"]
        assert db.check().ok

    def test_deep_chain_is_collected_in_few_calls(
        self, backend: StorageBackend, db_factory: DBFactory
    ) -> None:
        """Deleting a chain reads it ahead by subtrees, not one round trip per level.

        Read-ahead needs reads that stay valid until the commit: a held unit
        scope (``locking_units``) or answers the commit re-checks
        (``checked_commits``). Elsewhere collection still works, level by level.
        """
        depth = 600
        counting = CountingBackend(backend)
        prefix = db_factory.new_prefix()
        db = DB(backend=counting, prefix=prefix, grace=0)
        try:
            doc: Any = {"end": True}
            for _ in range(depth):
                doc = {"down": doc}
            db["chain"] = doc
            db["keep"] = 1
            counting.reset()
            del db["chain"]
            caps = backend.capabilities
            if caps.subtree_reads and (caps.locking_units or caps.checked_commits):
                # The chain is read with its item where the backend can (unlink_reads).
                reads = counting.commands["read_subtree"] + counting.commands["read_unlinked"]
                assert reads >= 1, dict(counting.commands)
                assert counting.round_trips < depth // 10, dict(counting.commands)
            else:
                assert counting.round_trips >= depth  # level by level: the fallback
            assert list(db.keys()) == ["keep"]
            report = db.check()
            assert report.ok and report.nodes == 1, report
        finally:
            db.close()
