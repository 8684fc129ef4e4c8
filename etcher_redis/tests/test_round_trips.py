"""Round trips to a real Redis server grow with the depth of a document, not its size.

Counted through :class:`etcher.testing._harness.instrument.CountingBackend` (every
immediate command, ``WATCH`` and pipeline ``execute()`` is one round trip);
nothing here measures time.

Per level of a tree, a graph walk costs at most ``PER_LEVEL`` = 4 round trips:
one ``WATCH`` plus one pipelined batch to read the level, and (when
collecting) the same again for the headers of the next level. A few fixed
round trips (the root's header, the commit) come on top. Collection also reads
ahead by server-side subtree reads of up to ``SWEEP_AHEAD`` nodes, two round
trips each: a deep chain then costs its size / ``SWEEP_AHEAD`` instead of its depth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, cast

import pytest

from etcher import DB, RD, RL
from etcher._graph import SWEEP_AHEAD
from etcher._materialize import SUBTREE_LIMIT
from etcher._session import LINK_RUN
from etcher.errors import StaleHandleError
from etcher.testing._harness.instrument import CountingBackend
from etcher_redis.backend import RedisBackend

pytestmark = pytest.mark.redis

PER_LEVEL = 4
FIXED = 4
DEPTH = 6


def tree(nodes: int, depth: int, fanout: int) -> dict[str, Any]:
    """Exactly ``nodes`` dicts and lists on ``depth`` levels (dicts and lists alternate)."""
    root: dict[str, Any] = {"level": 1}
    made = 1
    frontier: list[Any] = [root]
    for level in range(2, depth + 1):
        nxt: list[Any] = []
        for parent in frontier:
            for i in range(fanout):
                if made == nodes:
                    break
                child: Any = [level, f"n{made}"] if level % 2 == 0 else {"level": level, "i": i}
                made += 1
                if isinstance(parent, dict):
                    parent[f"k{i}"] = child
                else:
                    parent.append(child)
                nxt.append(child)
        frontier = nxt
    assert made == nodes, "fanout too small for that many nodes"
    return root


def levels(value: Any) -> int:
    """Number of container levels in a plain value (iteratively)."""
    depth, frontier = 0, [value]
    while frontier:
        depth += 1
        frontier = [
            c
            for v in frontier
            for c in (v.values() if isinstance(v, dict) else v)
            if isinstance(c, dict | list)
        ]
    return depth


@pytest.fixture
def counting(redis_server_url: str) -> Iterator[CountingBackend]:
    # The 10,000-node transactions can keep a server on a loaded machine busy past
    # redis-py's default 5 s socket timeout; this test counts round trips, not seconds.
    inner = RedisBackend.from_url(redis_server_url, socket_timeout=300)
    # An empty database: what earlier tests on this (per-worker) server left behind must
    # not change the counts, whatever order pytest-xdist runs the tests in.
    inner.flushdb()
    yield CountingBackend(inner)
    inner.close()


def trips_of(counting: CountingBackend, db: DB, doc: dict[str, Any]) -> dict[str, int]:
    """Round trips of writing, materializing and deleting ``doc`` as ``db["tree"]``."""
    out = {}
    counting.reset()
    db["tree"] = doc
    out["write"] = counting.round_trips
    assert counting.commits == 1
    counting.reset()
    assert db["tree"]() == doc
    out["materialize"] = counting.round_trips
    counting.reset()
    del db["tree"]
    out["delete"] = counting.round_trips
    assert counting.commits == 1
    return out


def test_a_10000_node_tree_of_depth_6_takes_rounds_proportional_to_depth(
    counting: CountingBackend,
) -> None:
    doc = tree(nodes=10_000, depth=DEPTH, fanout=7)
    assert levels(doc) == DEPTH
    db = DB(backend=counting, prefix="round-trips", grace=0)  # counts what is left at once
    try:
        db["tree"] = doc
        stored = sum(1 for _ in counting.inner.scan_iter(match="{round-trips}:r:*"))
        assert stored == 10_000 + 1  # every node, plus the namespace root
        del db["tree"]

        big = trips_of(counting, db, doc)
        for what, trips in big.items():
            assert trips <= PER_LEVEL * DEPTH + FIXED, f"{what}: {trips} round trips"
        # Not O(n): a tree of the same depth with a tenth of the nodes costs the same.
        small_doc = tree(nodes=1_000, depth=DEPTH, fanout=4)
        assert levels(small_doc) == DEPTH
        small = trips_of(counting, db, small_doc)
        assert big["write"] == small["write"], (big, small)
        # Deleting reads ahead by subtrees of up to SWEEP_AHEAD nodes (a read and the
        # headers' batch each), which is what makes a deep chain cheap to collect.
        aheads = -(-10_000 // SWEEP_AHEAD)
        assert big["delete"] <= small["delete"] + 2 * aheads, (big, small)
        # Materializing walks the tree server-side (subtree reads), up to SUBTREE_LIMIT nodes
        # per call: a few calls for 10,000 nodes, one for a small document's whole walk.
        assert small["materialize"] <= 2, small
        walks = -(-10_000 // SUBTREE_LIMIT)
        assert big["materialize"] <= small["materialize"] + walks, (big, small)
        assert db.check().ok
        assert sum(1 for _ in counting.inner.scan_iter(match="{round-trips}:r:*")) == 1
    finally:
        db.delete_prefix_immediately("round-trips")


def test_deleting_a_subtree_is_one_commit_in_rounds_proportional_to_its_depth(
    counting: CountingBackend,
) -> None:
    db = DB(backend=counting, prefix="subtree")
    try:
        db["doc"] = {"keep": {"k": [1]}, "drop": tree(nodes=3_000, depth=DEPTH, fanout=7)}
        counting.reset()
        del db["doc"]["drop"]
        assert counting.commits == 1
        assert counting.round_trips <= PER_LEVEL * DEPTH + FIXED
        assert db["doc"]() == {"keep": {"k": [1]}}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("subtree")


def test_linking_many_handles_reads_them_in_one_batch(counting: CountingBackend) -> None:
    """A value holding handles to existing nodes checks and counts them all in one read.

    The ``replace_shared`` workload: a parent is replaced by one whose list links
    shared children through their handles. Each handle once cost a round trip of
    its own (its header: exists, not pending, its back-reference count).
    """
    db = DB(backend=counting, prefix="links")
    try:
        db["kids"] = {f"k{c}": {"cid": c, "payload": [c]} for c in range(20)}
        kids = db["kids"]
        handles = [kids[f"k{c}"] for c in range(20)]
        trips = {}
        for n in (2, 16):
            db[f"p{n}"] = {"kids": handles[:2]}  # replaced below: a link to drop each time
            counting.reset()
            db[f"p{n}"] = {"kids": handles[20 - n :]}
            assert counting.commits == 1
            # Replacing a link: a first try that guessed "no link" (one round trip,
            # refused by its check) may come before the real work.
            assert counting.refused <= 1
            trips[n] = counting.round_trips - counting.refused
        assert trips[16] == trips[2], trips
        # The root's item with what the replaced node unlinks (its content, its list's,
        # its children's headers and one header up to show those are still reachable)
        # and the new value's links' headers: one read (capabilities.unlink_reads); the
        # commit. One more (with the refused commit, not counted here) when the first
        # try guessed the field linked nothing: it read the links' headers.
        assert trips[16] <= 2 + 1, trips
        assert db["p16"]() == {"kids": [{"cid": c, "payload": [c]} for c in range(4, 20)]}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("links")


SMALL = {"name": "x", "address": {"city": "P", "zip": 1}, "tags": [1, 2]}


def test_an_assignment_that_unlinks_nothing_is_one_round_trip(counting: CountingBackend) -> None:
    """``db[k] = v`` over a missing key or a scalar: one checked commit, nothing read first.

    The commit checks that the parent is live and the field links no node, and
    takes the item's insertion number on the server (``capabilities.item_writes``).
    """
    db = DB(backend=counting, prefix="assign")
    try:
        db["doc"] = SMALL
        doc = db["doc"]
        address = doc["address"]
        trips = {}
        for name, op in [
            ("new key, small doc", lambda: db.__setitem__("a", SMALL)),
            ("new key, scalar", lambda: db.__setitem__("n", 5)),
            ("scalar over scalar", lambda: db.__setitem__("n", 6)),
            ("doc over scalar", lambda: db.__setitem__("n", {"x": [1]})),
            ("field write (handle)", lambda: address.__setitem__("city", "Q")),
            ("new field (handle)", lambda: address.__setitem__("street", "S")),
            ("nested doc (handle)", lambda: address.__setitem__("geo", [1.5, 2.5])),
        ]:
            counting.reset()
            op()
            trips[name] = (counting.round_trips, counting.commits)
        assert trips == dict.fromkeys(trips, (1, 1)), trips
        assert db() == {
            "doc": {
                "name": "x",
                "address": {"city": "Q", "zip": 1, "street": "S", "geo": [1.5, 2.5]},
                "tags": [1, 2],
            },
            "a": SMALL,
            "n": {"x": [1]},
        }
        # Insertion order comes from the numbers the server handed out.
        assert list(db) == ["doc", "a", "n"]
        assert list(db["doc"]["address"]) == ["city", "zip", "street", "geo"]
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("assign")


def test_replacing_a_link_still_reads_first_and_guessing_backs_off(
    counting: CountingBackend,
) -> None:
    """Over a field that links a small unshared document, the commit collects it alone
    (``capabilities.unlink_commits``): one round trip each time. Over one that shares
    a node with a live document, the commit keeps that node (round 7) and collects the
    rest; the new value links the shared node again, whose back-reference count the
    commit raises unread (round 9, the ``hincr`` write; it read the header first
    before: 2 round trips): 1. Over a document linking the root (which the commit
    refuses; a node reached by two paths it collects since round 8, a cycle since
    round 9), assignments that keep meeting such links stop guessing, so they cost
    what they did without the guess.
    """
    db = DB(backend=counting, prefix="replace")
    try:
        db["a"] = SMALL
        costs = []
        for _ in range(12):
            counting.reset()
            db["a"] = SMALL
            costs.append((counting.round_trips, counting.commits, counting.refused))
        assert costs == [(1, 1, 0)] * 12, costs
        db["keep"] = {"s": [1]}
        shared = db["keep"]["s"]
        db["a"] = {"s": shared}
        costs = []
        for i in range(12):
            counting.reset()
            db["a"] = {"n": i, "s": shared}
            costs.append((counting.round_trips, counting.refused))
            assert counting.commits == 1
        assert costs == [(1, 0)] * 12, costs
        assert cast(RL, shared).refcount == 2  # "keep" and "a": counted exactly
        del db["a"]
        for i in range(12):
            # A node linking the root, which the commit refuses (round 8 collects a node
            # reached twice, a diamond; round 9 a cycle).
            db[f"a{i}"] = {"s": shared, "c": {"x": [i], "r": db._root}}
        costs = []
        for i in range(12):
            counting.reset()
            db[f"a{i}"] = {"n": i, "s": shared}
            costs.append(counting.round_trips)
            assert counting.commits == 1
        # A refused commit costs itself and the handle's header, read again by the retry
        # (as a refused guess did before unlink_commits)...
        assert costs.count(max(costs)) <= 4, costs  # ...and guesses back off
        assert costs[-1] < max(costs), costs
        assert db() == {**{f"a{i}": {"n": i, "s": [1]} for i in range(12)}, "keep": {"s": [1]}}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("replace")


def test_unlinking_a_small_document_reads_its_header_and_content_together(
    counting: CountingBackend,
) -> None:
    """``del db[k]`` and ``db[k] = other`` over a small document, read first: 2 round trips.

    The item with the unlinked node's subtree (headers and contents, one
    server-side read, ``capabilities.unlink_reads``); the commit, which checks
    every answer of that read. (With ``unlink_commits``, hidden here, the commit
    alone: see test_deleting_or_replacing_a_small_tree_is_one_round_trip.)
    """
    counting.capabilities = dataclasses.replace(counting.capabilities, unlink_commits=False)
    db = DB(backend=counting, prefix="unlink")
    try:
        db["a"] = SMALL
        db["b"] = SMALL
        counting.reset()
        del db["a"]
        # A first try that guessed "a scalar" may come first (refused, nothing else read).
        assert (counting.round_trips - counting.refused, counting.commits) == (2, 1)
        counting.reset()
        db["b"] = {"other": [1]}
        # A first try that guessed "no link" may come first (refused, nothing else read).
        assert (counting.round_trips - counting.refused, counting.commits) == (2, 1)
        # A shared node that stays linked: its content was read for nothing, still correct.
        db["c"] = {"x": db["b"]}
        db["d"] = {"y": db["b"]}
        del db["c"]
        assert db() == {"b": {"other": [1]}, "d": {"y": {"other": [1]}}}
        assert db["b"].refcount == 2
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("unlink")


def test_a_refused_value_on_the_guessed_path_raises_and_writes_nothing(
    counting: CountingBackend,
) -> None:
    """A bad value met after the guess was planned: the clear error, nothing written.

    The error is checked against the guess's reads (is the parent still live, does
    the field link nothing) in one batch, as for any failed operation.
    """
    db = DB(backend=counting, prefix="refused")
    try:
        db["doc"] = {"a": 1}
        before = sorted(counting.inner.scan_iter(match="{refused}:*"))
        for bad in ({"ok": [1, {2.5: "x"}]}, {"s": {1, 2}}, object()):
            counting.reset()
            with pytest.raises(TypeError):
                db["new"] = bad
            with pytest.raises(TypeError):
                db["doc"]["a"] = bad
            assert counting.commits == 0
        assert sorted(counting.inner.scan_iter(match="{refused}:*")) == before
        assert db() == {"doc": {"a": 1}}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("refused")


def test_deleting_a_linked_document_reads_it_with_its_item_in_one_call(
    counting: CountingBackend,
) -> None:
    """``del`` (or ``pop``) of a linked document of any small shape: one read, the commit.

    The read (``capabilities.unlink_reads``) takes the item, the headers of what it
    reaches, the contents of what dies with it, and for a node that stays linked
    elsewhere one chain of parents up to a node known alive. Every answer is a
    check of the commit. A cycle needs the collection's exact search: more reads,
    same result. (``unlink_commits`` is hidden: this is the path that reads first.)
    """
    counting.capabilities = dataclasses.replace(counting.capabilities, unlink_commits=False)
    db = DB(backend=counting, prefix="shapes", grace=0)
    try:
        db["keep"] = {"shared": {"s": [1]}}
        shared = db["keep"]["shared"]
        deep: dict[str, Any] = {"v": 0}
        at = deep
        for level in range(5):
            at["next"] = {"v": level + 1, "l": [level, [level]]}
            at = at["next"]
        shapes: dict[str, Any] = {
            "deep": deep,
            "shares a node": {"a": shared, "b": [shared, {"c": 1}]},
            "a list of documents": [{"i": i} for i in range(10)],
        }
        trips = {}
        for name, doc in shapes.items():
            db[name] = doc
            counting.reset()
            del db[name]
            # Less a first try that guessed "a scalar", refused by its check.
            trips[name] = (counting.round_trips - counting.refused, counting.commits)
        # One node twice under the same parent: deleting one link keeps it.
        db["twice"] = {"a": shared, "b": shared}
        twice = db["twice"]
        counting.reset()
        del twice["a"]
        trips["one of two links"] = (counting.round_trips - counting.refused, counting.commits)
        # pop() returns the document: materialized from what the same read brought.
        db["popped"] = SMALL
        counting.reset()
        assert db.pop("popped") == SMALL
        trips["pop"] = (counting.round_trips, counting.commits)
        assert trips == dict.fromkeys(trips, (2, 1)), trips
        assert db["twice"]["b"]() == {"s": [1]}
        assert shared.backrefs == {db["keep"].uid: 1, db["twice"].uid: 1}
        db["cycle"] = {"x": 1}
        cycle = db["cycle"]
        cycle["self"] = cycle
        cycle["l"] = [cycle]
        counting.reset()
        del db["cycle"]
        assert counting.commits == 1
        assert db() == {"keep": {"shared": {"s": [1]}}, "twice": {"b": {"s": [1]}}}
        assert db.check().ok
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{shapes}:r:*"))
        assert nodes == 5  # the root, keep, shared and its list, twice: nothing leaked
    finally:
        db.delete_prefix_immediately("shapes")


def test_deleting_a_scalar_is_one_round_trip_and_deleting_links_backs_off(
    counting: CountingBackend,
) -> None:
    """``del d[k]`` over a scalar: one checked commit that checks the item is there
    (``capabilities.item_writes``). Over a small unshared document, the commit collects
    it too (``unlink_commits``): one round trip, and (round 7) over one sharing a node
    with a live document, which the commit keeps. Over one linking the root the commit
    is refused (one round trip) and the retry reads and collects; deletes that keep
    meeting such links stop guessing, so they cost what they cost without the guess.
    A missing key is still ``KeyError``.
    """
    db = DB(backend=counting, prefix="delete-guess")
    try:
        doc = cast(RD, db.setdefault("d", {}))
        for i in range(3):
            doc[f"s{i}"] = i
        costs = []
        for i in range(3):
            counting.reset()
            del doc[f"s{i}"]
            costs.append((counting.round_trips, counting.commits))
        assert costs == [(1, 1)] * 3, costs
        with pytest.raises(KeyError):
            del doc["s0"]
        for i in range(12):
            db[f"doc{i}"] = SMALL
        small_costs = []
        for i in range(12):
            counting.reset()
            del db[f"doc{i}"]
            small_costs.append((counting.round_trips, counting.commits))
        assert small_costs == [(1, 1)] * 12, small_costs
        db["keep"] = {"s": [1]}
        shared = db["keep"]["s"]
        for i in range(12):
            db[f"doc{i}"] = {"s": shared, "i": [i]}
        shared_costs = []
        for i in range(12):
            counting.reset()
            del db[f"doc{i}"]
            shared_costs.append((counting.round_trips, counting.commits, counting.refused))
        assert shared_costs == [(1, 1, 0)] * 12, shared_costs
        for i in range(12):
            # A node linking the root, which the commit refuses (it never reaches a node
            # of plan.alive; round 8 collects diamonds, round 9 cycles).
            db[f"doc{i}"] = {"s": shared, "i": [i, {"r": db._root}]}
        link_costs = []
        for i in range(12):
            counting.reset()
            del db[f"doc{i}"]
            link_costs.append(counting.round_trips)
            assert counting.commits == 1
        assert max(link_costs) <= 4, link_costs  # a refused guess costs one round trip
        assert link_costs.count(max(link_costs)) <= 4, link_costs  # ...and guesses back off
        assert link_costs[-1] == max(link_costs) - 1, link_costs
        assert db() == {"d": {}, "keep": {"s": [1]}}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("delete-guess")


@pytest.mark.parametrize("grace", [0, None])
def test_deleting_or_replacing_a_small_tree_is_one_round_trip(
    counting: CountingBackend, grace: float | None
) -> None:
    """``capabilities.unlink_commits``: the commit collects a small unshared tree itself.

    ``del db[k]``, ``del d[k]`` below the root, ``d.pop(k)`` (the value comes with the
    commit's answer) and ``d[k] = other`` over a 6-level
    chain of dicts and lists, a list of 10 documents, a document holding one node
    twice: one round trip each, nothing read first, nothing refused. What was
    unlinked is gone (grace 0) or pending and known to this DB's sweeper, which
    sweeps it all (nothing leaked, back-references exact).
    """
    db = DB(backend=counting, prefix="small-trees", grace=grace)
    try:
        deep: dict[str, Any] = {"v": 0}
        at = deep
        for level in range(5):
            at["next"] = {"v": level + 1, "l": [level, [level]]}
            at = at["next"]
        shapes: dict[str, Any] = {
            "deep": deep,
            "a list of documents": [{"i": i} for i in range(10)],
            "small": SMALL,
        }
        trips = {}
        for name, doc in shapes.items():
            db[name] = doc
            counting.reset()
            del db[name]
            trips[f"del {name}"] = (counting.round_trips, counting.commits, counting.refused)
            db[name] = doc
            counting.reset()
            db[name] = {"n": 0}
            trips[f"replace {name}"] = (counting.round_trips, counting.commits, counting.refused)
            db[f"{name} again"] = doc
            counting.reset()
            assert db.pop(f"{name} again") == doc
            trips[f"pop {name}"] = (counting.round_trips, counting.commits, counting.refused)
        db["holder"] = {"x": {"q": [1]}, "z": {"in": SMALL}}
        holder = cast(RD, db["holder"])
        holder["y"] = holder["x"]
        counting.reset()
        del holder["z"]
        trips["del below the root"] = (counting.round_trips, counting.commits, counting.refused)
        counting.reset()
        del db["holder"]
        trips["del a node linked twice"] = (
            counting.round_trips,
            counting.commits,
            counting.refused,
        )
        assert trips == dict.fromkeys(trips, (1, 1, 0)), trips
        assert db() == {key: {"n": 0} for key in shapes}
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{small-trees}:r:*"))
        assert nodes == 1 + len(shapes)  # the root and each {"n": 0}: nothing leaked
        assert not counting.inner.exists("{small-trees}:g")
    finally:
        db.delete_prefix_immediately("small-trees")


def test_replacing_a_document_that_links_handles_reads_their_headers_with_the_item(
    counting: CountingBackend,
) -> None:
    """``db[k] = {"kids": [handles]}`` over a document: the guessed commit raises the
    handles' back-reference counts unread (round 9): 1 round trip. Where it reads first
    (guesses backing off), the handles' headers (liveness, counts) come with the item
    and what it unlinks, in one read: 2.
    """
    db = DB(backend=counting, prefix="handles")
    other = DB(backend=counting.inner, prefix="handles-other")
    try:
        db["kids"] = {f"k{c}": {"cid": c} for c in range(6)}
        kids = db["kids"]
        handles = [kids[f"k{c}"] for c in range(6)]
        db["p"] = {"kids": handles[:3]}
        costs = []
        for i in range(8):
            counting.reset()
            db["p"] = {"kids": handles[i % 3 : i % 3 + 3], "n": [i]}
            costs.append(counting.round_trips)
            assert counting.commits == 1
        assert costs == [1] * 8, costs
        db._session.item_guess.skip = 8  # as guesses backing off: read first
        costs = []
        for i in range(8):
            counting.reset()
            db["p"] = {"kids": handles[i % 3 : i % 3 + 3], "n": [i]}
            costs.append(counting.round_trips)
            assert counting.commits == 1
        assert costs == [2] * 8, costs  # the read and the commit
        assert db["p"]() == {"kids": [{"cid": c} for c in range(1, 4)], "n": [7]}
        assert kids["k0"].refcount == 1
        # A handle of another namespace is refused as before, and nothing is written.
        other["x"] = {"y": 1}
        with pytest.raises(Exception, match="another database or namespace"):
            db["p"] = {"foreign": other["x"]}
        assert db["p"]() == {"kids": [{"cid": c} for c in range(1, 4)], "n": [7]}
        assert db.check().ok and other.check().ok
    finally:
        db.delete_prefix_immediately("handles")
        other.delete_prefix_immediately("handles-other")


def test_a_scalar_over_a_small_document_is_one_round_trip_once_links_were_met(
    counting: CountingBackend,
) -> None:
    """``db[k] = 0`` over a small unshared document: a session's scalar assignments carry
    an unlink plan from its start and again after each link they met
    (``ItemGuess.met_link``), so the commit collects the document alone: one round trip,
    the first included. After ``LINK_RUN`` of them in a row that collect nothing,
    scalars go without the plan again.
    """
    db = DB(backend=counting, prefix="scalar-over", grace=0)
    try:
        for i in range(12):
            db[f"d{i}"] = SMALL
        costs = []
        for i in range(12):
            counting.reset()
            db[f"d{i}"] = i
            costs.append((counting.round_trips, counting.commits, counting.refused))
        assert costs == [(1, 1, 0)] * 12, costs
        planned = []
        for i in range(LINK_RUN + 2):
            counting.reset()
            db[f"n{i}"] = i
            assert (counting.round_trips, counting.commits) == (1, 1)
            planned.append(counting.commands["unlinking_commit"])
        assert planned == [1] * LINK_RUN + [0, 0], planned
        assert db() == {**{f"d{i}": i for i in range(12)}, **{f"n{i}": i for i in range(34)}}
        assert db.check().ok
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{scalar-over}:r:*"))
        assert nodes == 1  # the root: every document was collected by its commit
    finally:
        db.delete_prefix_immediately("scalar-over")


@pytest.mark.parametrize("grace", [0, None])
def test_a_list_item_is_popped_or_deleted_in_one_round_trip(
    counting: CountingBackend, grace: float | None
) -> None:
    """``l.pop()``, ``l.pop(0)``, ``l.pop(i)`` and ``del l[i]`` (``UnlinkPlan.position``): the
    commit reads the item where it is then, removes it and collects the small unshared
    document it links. One round trip, scalar or document, nothing read first; the
    popped value comes with the answer. What was unlinked is gone or pending and known
    to the sweeper (nothing leaked). A position outside the list is the usual
    ``IndexError``, answered missing by the commit (round 9), with nothing written; a
    pop of an item holding a cycle is refused and read first, and such pops back off.
    """
    db = DB(backend=counting, prefix="list-pops", grace=grace)
    try:
        docs = [{"i": i, "sub": {"l": [i, [i]]}} for i in range(8)]
        db["l"] = [*docs, *range(6)]
        lst = cast(RL, db["l"])
        trips = {}
        for name, op, want in [
            ("pop() scalar", lambda: lst.pop(), 5),
            ("pop(0) doc", lambda: lst.pop(0), docs[0]),
            ("pop(2) doc", lambda: lst.pop(2), docs[3]),
            ("pop(-3) scalar", lambda: lst.pop(-3), 2),
            ("del l[1] doc", lambda: lst.__delitem__(1), None),
            ("pop(-5) doc", lambda: lst.pop(-5), docs[7]),
            ("del l[-1] scalar", lambda: lst.__delitem__(-1), None),
        ]:
            counting.reset()
            assert op() == want, name
            trips[name] = (counting.round_trips, counting.commits, counting.refused)
        assert trips == dict.fromkeys(trips, (1, 1, 0)), trips
        assert db["l"]() == [docs[1], docs[4], docs[5], docs[6], 0, 1, 3]
        counting.reset()
        with pytest.raises(IndexError):
            lst.pop(7)
        assert counting.commits == 0
        assert db["l"]() == [docs[1], docs[4], docs[5], docs[6], 0, 1, 3]
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{list-pops}:r:*"))
        assert nodes == 2 + 4 * 4  # the root, the list, four documents of four nodes
        assert not counting.inner.exists("{list-pops}:g")
        db["keep"] = {"s": [1]}
        shared = db["keep"]["s"]
        # Cycles (a node linking itself): refused, read first.
        db["shared"] = [{"s": shared, "i": [i]} for i in range(12)]
        held = cast(RL, db["shared"])
        for i in range(12):
            cycle = cast(RL, cast(RD, held[i])["i"])
            cycle.append(cycle)
        costs = []
        for _ in range(12):
            counting.reset()
            held.pop()
            costs.append(counting.round_trips)
            assert counting.commits == 1
        assert costs.count(max(costs)) <= 4, costs  # refused commits back off
        assert db["shared"]() == [] and db["keep"]() == {"s": [1]}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("list-pops")


@pytest.mark.parametrize("grace", [0, None])
def test_unlinking_a_node_another_document_keeps_is_one_round_trip(
    counting: CountingBackend, grace: float | None
) -> None:
    """The unlinking commit keeps a node another live document links (proven by a chain
    of parents to the root) and collects the rest: ``del db[k]`` of a document sharing
    a node, of a key linking the shared node itself, ``del l[i]`` of such an item, and
    a scalar over one are one round trip; the shared node keeps exact back-references.
    """
    db = DB(backend=counting, prefix="kept", grace=grace)
    try:
        db["keep"] = {"s": {"x": [1]}}
        shared = cast(RD, db["keep"])["s"]
        db["doc"] = {"s": shared, "t": [2]}
        db["top"] = shared
        db["l"] = [1, shared, {"s": shared}]
        lst = cast(RL, db["l"])
        trips = {}
        for name, op in [
            ("del a doc sharing a node", lambda: db.__delitem__("doc")),
            ("del a key linking the shared node", lambda: db.__delitem__("top")),
            ("del l[1], the shared node", lambda: lst.__delitem__(1)),
            ("del l[1], a doc sharing it", lambda: lst.__delitem__(1)),
        ]:
            counting.reset()
            op()
            trips[name] = (counting.round_trips, counting.commits, counting.refused)
        assert trips == dict.fromkeys(trips, (1, 1, 0)), trips
        assert db() == {"keep": {"s": {"x": [1]}}, "l": [1]}
        assert shared.refcount == 1
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{kept}:r:*"))
        assert nodes == 5  # the root, keep, s, its list, l: nothing leaked
    finally:
        db.delete_prefix_immediately("kept")


def test_a_fresh_sessions_first_scalar_over_a_small_document_is_one_round_trip(
    counting: CountingBackend,
) -> None:
    """A fresh process overwriting a document with a scalar (``db[k] = 5`` in a session
    that has met no link yet): one round trip, not the refused guess, the read and the
    commit. A fresh session's first ``LINK_RUN`` scalar assignments carry the unlink plan
    (over a scalar it costs no round trip either); a run of them that collects nothing
    stops carrying it, so a long run of scalar writes costs what it did.
    """
    with DB(backend=counting.inner, prefix="fresh", grace=0) as writer:
        for i in range(3):
            writer[f"d{i}"] = SMALL
        for i in range(LINK_RUN + 2):
            writer[f"n{i}"] = i
    db = DB(backend=counting, prefix="fresh", grace=0)
    try:
        counting.reset()
        db["d0"] = 0
        assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
        db2 = DB(backend=counting, prefix="fresh", grace=0)  # another fresh session
        costs, planned = [], []
        for i in range(LINK_RUN + 2):
            counting.reset()
            db2[f"n{i}"] = i + 1  # a scalar over a scalar
            costs.append((counting.round_trips, counting.commits, counting.refused))
            planned.append(counting.commands["unlinking_commit"])
        assert costs == [(1, 1, 0)] * (LINK_RUN + 2), costs
        assert planned == [1] * LINK_RUN + [0, 0], planned
        # ... and the plan comes back with the next link met.
        counting.reset()
        db2["d1"] = 1
        assert (counting.round_trips, counting.refused) == (3, 1)
        counting.reset()
        db2["d2"] = 2
        assert (counting.round_trips, counting.refused) == (1, 0)
        assert db() == {"d0": 0, "d1": 1, "d2": 2, **{f"n{i}": i + 1 for i in range(LINK_RUN + 2)}}
        assert db.check().ok
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{fresh}:r:*"))
        assert nodes == 1  # the root: every document was collected
    finally:
        db.delete_prefix_immediately("fresh")


@pytest.mark.parametrize("grace", [0, None])
def test_popping_what_shares_a_node_with_a_live_document_is_one_round_trip(
    counting: CountingBackend, grace: float | None
) -> None:
    """``d.pop(k)`` and ``l.pop(i)`` of a document sharing a node with a live one, or of
    the shared node itself: the commit keeps that node (proven alive by a chain of
    parents), collects the rest, and answers the kept node's tree too, read as it is:
    one round trip, the value whole (the shared node shared within it too), the shared
    node's back-references exact, nothing leaked. A kept node that reaches the parent or
    the root is refused (the value would show the parent before the pop) and read first.
    """
    db = DB(backend=counting, prefix="kept-pops", grace=grace)
    try:
        db["keep"] = {"s": {"x": [1, {"deep": [2]}]}}
        shared = cast(RD, cast(RD, db["keep"])["s"])
        whole = {"x": [1, {"deep": [2]}]}
        db["doc"] = {"s": shared, "x": shared["x"], "t": [2]}
        db["top"] = shared
        db["l"] = [1, shared, {"s": shared}]
        lst = cast(RL, db["l"])
        trips, values = {}, {}
        for name, op in [
            ("pop a doc sharing a node", lambda: db.pop("doc")),
            ("pop the shared node", lambda: db.pop("top")),
            ("l.pop(1), the shared node", lambda: lst.pop(1)),
            ("l.pop(), a doc sharing it", lambda: lst.pop()),
        ]:
            counting.reset()
            values[name] = op()
            trips[name] = (counting.round_trips, counting.commits, counting.refused)
        assert trips == dict.fromkeys(trips, (1, 1, 0)), trips
        doc = values["pop a doc sharing a node"]
        assert doc == {"s": whole, "x": whole["x"], "t": [2]}
        assert doc["x"] is doc["s"]["x"]  # shared within the value as in the store
        assert values["pop the shared node"] == whole
        assert values["l.pop(1), the shared node"] == whole
        assert values["l.pop(), a doc sharing it"] == {"s": whole}
        assert db() == {"keep": {"s": whole}, "l": [1]}
        assert shared.refcount == 1
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{kept-pops}:r:*"))
        assert nodes == 7  # the root, keep, s, its list and dict and list, l: nothing leaked
        # A kept node reaching the root: refused, then the reading path.
        shared["root"] = db._root
        db["doc"] = {"s": shared, "t": [2]}
        counting.reset()
        popped = db.pop("doc")
        assert (counting.commits, counting.refused) == (1, 1)
        assert popped["t"] == [2] and set(popped["s"]["root"]) == {"keep", "l"}
        del shared["root"]
        assert db() == {"keep": {"s": whole}, "l": [1]}
        assert db.check().ok
    finally:
        db.delete_prefix_immediately("kept-pops")


@pytest.mark.parametrize("grace", [0, None])
def test_unlinking_one_of_two_links_from_the_same_parent_is_one_round_trip(
    counting: CountingBackend, grace: float | None
) -> None:
    """``del d["a"]``, ``d.pop("a")`` or ``d["a"] = 0`` where ``d["b"]`` links the same node
    (an alias), and ``l.pop()`` of a list holding a node twice: the commit counts the
    parent's back-reference down by one and keeps the node (its parent still links it),
    one round trip; a pop's value is the node's tree. Nothing leaks.
    """
    db = DB(backend=counting, prefix="aliases", grace=grace)
    try:
        db["d"] = {"a": {"x": [1]}}
        d = cast(RD, db["d"])
        d["b"] = d["a"]
        d["c"] = d["a"]
        d["e"] = d["a"]
        db["l"] = [{"y": [2]}]
        lst = cast(RL, db["l"])
        lst.append(lst[0])
        trips, values = {}, {}
        for name, op in [
            ("del d['a']", lambda: d.__delitem__("a")),
            ("d.pop('b')", lambda: d.pop("b")),
            ("d['c'] = 0", lambda: d.__setitem__("c", 0)),
            ("l.pop()", lambda: lst.pop()),
        ]:
            counting.reset()
            values[name] = op()
            trips[name] = (counting.round_trips, counting.commits, counting.refused)
        assert trips == dict.fromkeys(trips, (1, 1, 0)), trips
        assert values["d.pop('b')"] == {"x": [1]}
        assert values["l.pop()"] == {"y": [2]}
        assert db() == {"d": {"c": 0, "e": {"x": [1]}}, "l": [{"y": [2]}]}
        assert cast(RD, d["e"]).refcount == 1
        assert cast(RD, lst[0]).refcount == 1
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{aliases}:r:*"))
        assert nodes == 7  # the root, d, its node and list, l, its node and list
    finally:
        db.delete_prefix_immediately("aliases")


@pytest.mark.parametrize("grace", [0, None])
def test_a_document_reaching_a_node_by_two_paths_is_unlinked_in_one_round_trip(
    counting: CountingBackend, grace: float | None
) -> None:
    """Plain data holding one object twice stores one node with two parents (a diamond),
    at one depth or at two. Deleting, popping or replacing such a document is one
    round trip (round 8): the commit collects level by level as the client's
    collection does, so the node dies once its last parent has; a diamond through a
    node another document keeps is kept with both links cut. Nothing leaks, and a
    pop's value holds the object twice as the same object.
    """
    db = DB(backend=counting, prefix="diamonds", grace=grace)
    try:
        db["keep"] = {"s": [1]}
        shared = cast(RD, db["keep"])["s"]
        for i in range(3):
            sub: list[Any] = [i, {"z": [i]}]
            db[f"same{i}"] = {"a": {"x": sub}, "b": {"y": sub}}
            db[f"two{i}"] = {"a": sub, "b": [{"y": sub}]}
        db["kept"] = {"a": shared, "b": {"again": shared}}
        trips, values = {}, {}
        for name, op in [
            ("del, one depth", lambda: db.__delitem__("same0")),
            ("del, two depths", lambda: db.__delitem__("two0")),
            ("pop, one depth", lambda: db.pop("same1")),
            ("pop, two depths", lambda: db.pop("two1")),
            ("a scalar over it", lambda: db.__setitem__("same2", 0)),
            ("a doc over it", lambda: db.__setitem__("two2", {"n": 1})),
            ("del, through a kept node", lambda: db.__delitem__("kept")),
        ]:
            counting.reset()
            values[name] = op()
            trips[name] = (counting.round_trips, counting.commits, counting.refused)
        assert trips == dict.fromkeys(trips, (1, 1, 0)), trips
        one, two = values["pop, one depth"], values["pop, two depths"]
        assert one == {"a": {"x": [1, {"z": [1]}]}, "b": {"y": [1, {"z": [1]}]}}
        assert one["a"]["x"] is one["b"]["y"]
        assert two == {"a": [1, {"z": [1]}], "b": [{"y": [1, {"z": [1]}]}]}
        assert two["a"] is two["b"][0]["y"]
        assert db() == {"keep": {"s": [1]}, "same2": 0, "two2": {"n": 1}}
        assert shared.refcount == 1
        assert db.check().ok
        db.maintenance(reclaim_all=True)
        nodes = sum(1 for _ in counting.inner.scan_iter(match="{diamonds}:r:*"))
        assert nodes == 4  # the root, keep, its list, two2: nothing leaked
    finally:
        db.delete_prefix_immediately("diamonds")


def test_popping_a_missing_key_is_one_round_trip(counting: CountingBackend) -> None:
    """``d.pop(k, default)`` and ``d.pop(k)`` of a key that is not there: the unlinking
    commit answers the item as it finds it, absent, so the pop answers its default (or
    raises ``KeyError``) after that one round trip, every time (it was a failed check, a
    read and a check of the read: 3, then 2 as the guess backed off), writes nothing,
    and a stale handle still raises as before."""
    db = DB(backend=counting, prefix="missing-pops")
    try:
        db["doc"] = {"a": 1, "n": {"x": [1]}}
        doc = cast(RD, db["doc"])
        before = sorted(counting.inner.scan_iter(match="{missing-pops}:*"))
        for _ in range(3):  # no backing off: each is the same single trip
            counting.reset()
            assert doc.pop("gone", "default") == "default"
            assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
            counting.reset()
            with pytest.raises(KeyError):
                doc.pop("gone")
            assert (counting.round_trips, counting.commits, counting.refused) == (1, 1, 0)
            counting.reset()
            assert db.pop("nothing", None) is None
            assert counting.round_trips == 1
        assert sorted(counting.inner.scan_iter(match="{missing-pops}:*")) == before
        assert db() == {"doc": {"a": 1, "n": {"x": [1]}}}
        # Present keys still pop their values in one trip, after the missing ones.
        counting.reset()
        assert doc.pop("n") == {"x": [1]}
        assert counting.round_trips == 1
        assert db.check().ok
        # The handle's document deleted: the commit's liveness check fails, and the
        # reading path says the handle is stale rather than answering the default.
        del db["doc"]
        with pytest.raises(StaleHandleError):
            doc.pop("gone", "default")
    finally:
        db.delete_prefix_immediately("missing-pops")


def test_deleting_a_missing_key_or_a_position_outside_a_list_is_one_round_trip(
    counting: CountingBackend,
) -> None:
    """``del d[k]`` of a key that is not there, ``del l[i]`` outside the list, ``l.pop()``
    and ``l.pop(0)`` of an empty list: the unlinking commit (``plan.present``) answers the
    item missing with nothing written, and the operation raises from that answer in that
    one round trip, every time (a missing key was a failed presence check, a read and a
    check of the read: 3; a list's was the refused commit and the reading path, 2-4 as
    the guess backed off). The store is untouched; a stale handle still raises as before,
    and an out-of-range ``pop(i)`` elsewhere reads to tell an empty list from a short one.
    """
    db = DB(backend=counting, prefix="missing-dels")
    try:
        db["doc"] = {"a": 1, "n": {"x": [1]}}
        db["l"] = [1, {"y": 2}]
        db["e"] = []
        doc, lst, empty = cast(RD, db["doc"]), cast(RL, db["l"]), cast(RL, db["e"])
        before = {
            k: counting.inner.dump(k) for k in counting.inner.scan_iter(match="{missing-dels}:*")
        }
        for _ in range(3):  # no backing off: each is the same single trip
            for op, error in [
                (lambda: doc.__delitem__("gone"), KeyError),
                (lambda: db.__delitem__("nothing"), KeyError),
                (lambda: lst.__delitem__(2), IndexError),
                (lambda: lst.__delitem__(-3), IndexError),
                (lambda: empty.__delitem__(0), IndexError),
                (empty.pop, IndexError),
                (lambda: empty.pop(0), IndexError),
            ]:
                counting.reset()
                with pytest.raises(error):
                    op()
                assert (counting.round_trips, counting.commits, counting.missing) == (1, 0, 1)
                assert counting.refused == 0
        counting.reset()
        with pytest.raises(IndexError, match="pop index out of range"):
            lst.pop(5)
        assert counting.missing == 1 and counting.commits == 0  # then read: not empty
        with pytest.raises(IndexError, match="pop from empty list"):
            empty.pop(5)
        after = {
            k: counting.inner.dump(k) for k in counting.inner.scan_iter(match="{missing-dels}:*")
        }
        assert after == before  # not a field, counter or key touched
        assert db() == {"doc": {"a": 1, "n": {"x": [1]}}, "l": [1, {"y": 2}], "e": []}
        # Present items still go in one trip each, after the missing ones.
        counting.reset()
        del doc["n"]
        del lst[1]
        assert lst.pop() == 1
        assert counting.round_trips == 3
        assert db.check().ok
        # The handles' nodes deleted: the commit's liveness check fails, and the reading
        # path says the handle is stale rather than KeyError or IndexError.
        del db["doc"]
        del db["l"]
        with pytest.raises(StaleHandleError):
            del doc["gone"]
        with pytest.raises(StaleHandleError):
            del lst[3]
    finally:
        db.delete_prefix_immediately("missing-dels")
