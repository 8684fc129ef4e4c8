"""Nodes, links, back-references and garbage collection inside one unit of work.

Invariant after every commit: the nodes of a namespace are exactly those
reachable from its root (or pinned by a live ``RD(db)``/``RL(db)`` handle),
and each node's header lists every parent with the number of links it holds.

Collection runs in the same unit as the mutation that removed links:

1. A node whose last parent went away is garbage at once; its children lose
   that parent in turn, level by level (one batched read per level).
2. A node that lost *a* parent but still has others is a *suspect*: it may
   only be held by a cycle. All suspects are resolved together: their
   ancestors are gathered upward, level by level, stopping at nodes already
   known to be alive; then a forward walk from the alive ones, in memory,
   marks what is still reachable. The rest is garbage and goes through step 1.

Every node is visited at most once per collection, so the work is linear in
what is visited and the round trips grow with depth, not size.

What is found dead is deleted at once only when the DB's grace period is 0.
Otherwise each dead node is *retired*: marked pending in its header and in
the namespace's pending hash, its content left as it was, so handles still
reading it see their version whole until a later sweep deletes it
(:mod:`etcher._reclaim`). Live nodes stop counting it as a parent at once, so
back-references stay exact for everything reachable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from etcher._codec import LINK, item_value, link_target, split_item
from etcher._layout import (
    DEAD,
    DICT_UID,
    HEADER_FIELDS,
    KIND,
    LAYOUT_VERSION,
    NAMESPACES_KEY,
    PIN,
    ROOT,
    SEQ,
    Layout,
    is_dict,
)
from etcher.errors import StaleHandleError, StoreCorrupt
from etcher.spec import UnlinkOutcome, UnlinkPlan

if TYPE_CHECKING:
    from etcher._unit import Reader, Unit

KIND_DICT = b"d"
PROOF_DEPTH = 12
"""How many parent steps :meth:`Graph._prove_alive` follows before the exact search."""
KIND_LIST = b"l"
SWEEP_AHEAD = 2000
"""Nodes one read-ahead of a collection asks the backend for (``capabilities.subtree_reads``)."""
READ_AHEAD_AFTER = 3
"""Levels a collection sweeps level by level before it starts reading ahead."""
UNLINK_AHEAD = 2 * SWEEP_AHEAD
"""Keys (headers and contents) one read of :meth:`Graph.open_unlinking` may ask for."""
UNLINK_COMMIT_NODES = 64
"""Most nodes an unlinking commit collects on the server (:meth:`Graph.unlink_plan`)."""
UNLINK_COMMIT_ITEMS = 2048
"""Most items (all those nodes' fields and list items) it looks at: a bound on its time."""


def links_in(kind: str, content: dict[bytes, bytes] | list[bytes]) -> list[str]:
    """Uids linked from a node's stored content (with repeats)."""
    raws = map(item_value, content.values()) if isinstance(content, dict) else content
    return [uid for uid in map(link_target, raws) if uid is not None]


def parents_of(header: dict[bytes, bytes]) -> dict[str, int]:
    """``{parent uid: number of links}`` from a node header."""
    try:
        return {f.decode(): int(v) for f, v in header.items() if f not in HEADER_FIELDS}
    except (UnicodeDecodeError, ValueError):
        raise StoreCorrupt(f"a node header holds malformed back-references: {header!r}") from None


def _count(raw: bytes | None) -> int:
    """A counter field of a node header (missing counts as 0)."""
    if raw is None:
        return 0
    if not raw.isdigit():
        raise StoreCorrupt(f"a node header holds {raw[:40]!r} where a count belongs")
    return int(raw)


def _collected(uid: str) -> StaleHandleError:
    return StaleHandleError(
        f"node {uid} no longer exists: it was garbage-collected after its last link "
        "was removed; fetch a fresh handle from the database"
    )


class Graph:
    """Node-level operations of one namespace, bound to a unit (or a direct reader)."""

    __slots__ = ("candidates", "layout", "reader", "retired", "soon", "unit")

    def __init__(self, layout: Layout, reader: Reader) -> None:
        self.layout = layout
        self.reader = reader
        # The unit this graph writes through. A graph over a DirectReader is read-only:
        # its callers only read, so this name is never used for a write there.
        self.unit: Unit = reader  # type: ignore[assignment]  # (no cast() call per unit)
        self.candidates: set[str] = set()
        # Nodes this graph's unit made pending garbage: uid -> expiry time.
        self.retired: dict[str, float] = {}
        # Nodes about to be unlinked (:meth:`remove_ref` reads their headers): read with
        # the next batch of links instead, which saves a round trip of their own.
        self.soon: set[str] = set()

    # --- headers ---------------------------------------------------------------
    def header(self, uid: str) -> dict[bytes, bytes]:
        """The node's header; :class:`StaleHandleError` if the node no longer exists."""
        header = self.reader.hgetall(self.layout.refs(uid))
        if not header:
            raise _collected(uid)
        return header

    def require(self, uid: str, *, writing: bool | None = None) -> None:
        """Raise :class:`StaleHandleError` unless the node exists (watched inside a unit).

        When ``writing`` (default: inside a unit, which is where writes and
        links happen) a pending node counts as gone too: it must never be
        written or linked again. Plain reads let a pending node pass, as
        :meth:`require_readable` does.

        The root never goes stale: if its namespace was deleted (by
        ``delete_prefix_*``, possibly from another process) it is recreated
        empty by the next write, and reads see an empty namespace.
        """
        if uid == ROOT:
            if (
                self.reader.in_unit
                # The root carries no #d: a speculating unit checks it exists at its commit.
                and not self.unit.assume_live(self.layout.refs(ROOT), DEAD)
                and not self.reader.hgetall(self.layout.refs(ROOT))
            ):
                self.new_node(ROOT, KIND_DICT)
                self.unit.hset(self.layout.meta, b"layout", LAYOUT_VERSION)
                # The namespace registry lives outside the namespace's hash slot; one
                # MULTI/EXEC must stay in one slot (Redis Cluster), so it is noted after.
                backend, name = self.unit.backend, self.layout.prefix.encode()
                self.unit.after_commit.append(lambda: backend.hset(NAMESPACES_KEY, name, b"1"))
            return
        reader = self.reader
        key = self.layout.refs_prefix + uid  # layout.refs(uid) and header(uid), inline: hot
        if (
            reader.in_unit
            and writing is not False
            # A speculating unit checks this at its commit instead of reading now.
            and self.unit.assume_live(key, DEAD)
        ):
            return
        header = reader.hgetall(key)
        if not header:
            raise _collected(uid)
        if DEAD in header and (reader.in_unit if writing is None else writing):
            raise StaleHandleError(
                f"node {uid} was unlinked: handles may still read it for a grace period, "
                "but nothing can be written through it or link to it any more; fetch a "
                "fresh handle from the database"
            )

    def require_readable(self, uid: str) -> None:
        """Raise :class:`StaleHandleError` unless the node can still be read.

        A pending node (unlinked, not yet swept) can: a handle keeps reading
        the version it named until the grace period is over.
        """
        if uid == ROOT:
            self.require(uid)
        else:
            self.header(uid)

    def require_all(self, uids: list[str]) -> None:
        """Raise :class:`StoreCorrupt` if any of these linked nodes is missing (one batch)."""
        headers = self.unit.prefetch_hashes([self.layout.refs(x) for x in uids])
        missing = [x for x in uids if not headers[self.layout.refs(x)]]
        if missing:
            raise StoreCorrupt(
                f"namespace {self.layout.prefix!r} links to missing node(s) "
                f"{', '.join(missing[:5])}: the store was damaged (run db.check() / db.gc())"
            )

    def open_item(self, uid: str, field: bytes) -> bytes | None:
        """Check node ``uid`` exists and return its stored item ``field`` (one batch)."""
        layout, unit = self.layout, self.unit
        content, refs = layout.content_prefix + uid, layout.refs_prefix + uid
        unit.load(hashes=(refs,), fields=((content, field),))
        # require(uid), its usual outcome inline: the header was just loaded whole, so a
        # live node's has its kind and no "dead" mark (anything else: require() says what).
        header = unit.known_hash(refs)
        if header is None or header.get(KIND) is None or DEAD in header:
            self.require(uid)
        return unit.hget(content, field)

    def open_for_set(self, uid: str, field: bytes) -> tuple[bytes | None, int]:
        """:meth:`open_item`, and the item's insertion number: the one it has, or for a
        new field the next one, reserved as :meth:`next_seq` does (one call, one read)."""
        layout, unit = self.layout, self.unit
        refs = layout.refs_prefix + uid
        header, item = unit.header_and_item(refs, layout.content_prefix + uid, field)
        if header is None or header.get(KIND) is None or DEAD in header:
            self.require(uid)
            header = unit.known_hash(refs)
        if item is not None:
            return item, split_item(item)[0]
        raw = header.get(SEQ) if header is not None else unit.hget(refs, SEQ)
        seq = int(raw) if raw is not None and raw.isdigit() else _count(raw)
        unit.hset(refs, SEQ, b"%d" % (seq + 1))
        return item, seq

    def open_unlinking(
        self, uid: str, field: bytes, header: bool = True, also: Sequence[str] = ()
    ) -> bytes | None:
        """:meth:`open_item` for an item about to be replaced or deleted, and the rest in one read.

        Where the unit can (:meth:`Unit.read_unlinked`), one call reads the item
        and, when it links a node, what collecting that node will read: its
        subtree's headers and the contents of what dies with it. A small
        document's ``del db[k]`` is then that read and the commit. The node's
        own header is taken in when the unit cannot assume it live (a retry),
        and when the item links nothing and ``header`` says the caller may need
        it (a new field's number). ``also``: nodes whose headers the caller will
        read next (those its new value links: :meth:`link_many`), read in the same
        call. Otherwise this is :meth:`open_item`.
        """
        layout = self.layout
        got = self.unit.read_unlinked(
            layout.content_prefix,
            layout.refs_prefix,
            uid,
            field,
            (ROOT, uid),
            UNLINK_AHEAD,
            also,
        )
        if got is None:
            return self.open_item(uid, field)
        stored, item = got
        if not self.unit.speculate or (
            header and (item is None or item.partition(b"|")[2][:1] != b"@")
        ):
            self.unit.adopt_hash(layout.refs_prefix + uid, stored)
        self.require(uid)
        return item

    def unlink_plan(
        self,
        uid: str,
        field: bytes,
        contents: bool = False,
        position: int | None = None,
        collected: Callable[[], None] | None = None,
        present: bool = False,
    ) -> tuple[UnlinkPlan, Callable[[UnlinkOutcome], None]] | None:
        """How the commit may collect what unlinking item ``field`` of ``uid`` leaves behind.

        For :meth:`Unit.assume_item` where the backend declares
        ``capabilities.unlink_commits`` (``None`` elsewhere): the plan retires a
        small, unshared tree below the item as :meth:`_retire` would (deleted at
        grace 0, else pending with this expiry, stamped now as :meth:`_retire`
        stamps it), and the callback tells the sweeper what it retired, as
        :meth:`_retire`'s ``after_commit`` does. Anything else the server
        refuses, and the unit's retry collects it here the usual way. ``contents``:
        the answer also brings the item and what was collected (a ``pop``).
        ``position``: ``uid`` is a list, and the item is the one at that position,
        which the commit removes (:meth:`Unit.assume_list_item`). ``collected``: called
        too when the commit collected something (an assignment's streak hears of links).
        ``present``: the item must be there (a ``del``); a missing one makes the commit
        write nothing and :meth:`Unit.commit` raise :class:`~etcher._unit.ItemMissing`.
        """
        if not self.unit.backend.capabilities.unlink_commits:
            return None
        layout = self.layout
        expiry, stamp = layout.expiry() if layout.grace > 0 else (0.0, None)
        plan = UnlinkPlan(
            layout.content_prefix,
            layout.refs_prefix,
            layout.pending,
            uid,
            field,
            (ROOT, uid),
            stamp,
            UNLINK_COMMIT_NODES,
            UNLINK_COMMIT_ITEMS,
            contents,
            position,
            present,
        )

        def retired(outcome: UnlinkOutcome) -> None:
            learn = layout.on_retire
            if stamp is not None and learn is not None and outcome.retired:
                learn([(expiry, u) for u in outcome.retired])
            if collected is not None and outcome.retired:
                collected()

        return plan, retired

    def new_node(self, uid: str, kind: bytes, seq: int = 0, pinned: bool = False) -> None:
        header = {KIND: kind}
        if kind == KIND_DICT:
            header[SEQ] = b"%d" % seq
        if pinned:
            header[PIN] = b"1"
        self.unit.create_hash(self.layout.refs(uid), header)

    def next_seq(self, uid: str) -> int:
        """Reserve the next insertion sequence number of dict node ``uid``."""
        key = self.layout.refs(uid)
        raw = self.unit.hget(key, SEQ)
        seq = _count(raw)
        self.unit.hset(key, SEQ, b"%d" % (seq + 1))
        return seq

    # --- links -----------------------------------------------------------------
    def add_ref(self, child: str, parent: str, n: int = 1) -> None:
        key = self.layout.refs(child)
        field = parent.encode()
        header = self.unit.known_hash(key)
        if header is not None and header.get(DEAD) is None:
            # A live header this unit read whole (link_many's batch): served from it.
            self.unit.hset(key, field, b"%d" % (_count(header.get(field)) + n))
            if header.get(PIN) is not None:
                self.unit.hdel(key, PIN)  # linked: the tree owns it now
            return
        self.unit.load(fields=((key, field), (key, PIN), (key, DEAD)))
        if self.unit.hget(key, DEAD) is not None:
            raise StaleHandleError(
                f"node {child} was unlinked and cannot be linked again; "
                "assign a materialized copy instead: value()"
            )
        raw = self.unit.hget(key, field)
        self.unit.hset(key, field, b"%d" % (_count(raw) + n))
        if self.unit.hget(key, PIN) is not None:
            # Being linked ends the pin of an ``RD(db)`` handle: the tree owns it now.
            self.unit.hdel(key, PIN)

    def link_many(self, links: list[tuple[str, str]], blind: bool = False) -> None:
        """:meth:`require` then :meth:`add_ref` for each ``(child, parent)``, reads in one batch.

        A write linking many existing nodes (a list of handles) would otherwise
        read each child's header on its own: one statement or round trip per
        handle. What each check needs is gathered first and read together; a
        child the unit may assume live (:meth:`Unit.assume_live`) needs only
        the fields :meth:`add_ref` reads, the others their whole header, as
        :meth:`require` reads it.

        ``blind``: the unit's only other write is a guessed item (a guessed
        assignment): a child the unit may assume live gets its count raised by the
        commit itself, unread (:meth:`Unit.assume_link`), so linking a handle costs
        no read.
        """
        refs = self.layout.refs
        unit = self.unit
        whole: list[str] = []
        fields: list[tuple[str, bytes]] = []
        read: list[str] = []
        seen: set[str] = set()
        if blind:
            counts: dict[tuple[str, str], int] = {}
            for link in links:
                counts[link] = counts.get(link, 0) + 1
            left: list[tuple[str, str]] = []
            for (child, parent), n in counts.items():
                if child == ROOT or not unit.assume_link(
                    refs(child), DEAD, parent.encode(), n, PIN
                ):
                    left += [(child, parent)] * n
            if not left:
                return
            links = left
        for child, _parent in links:
            if child in seen or child == ROOT:
                continue
            seen.add(child)
            key = refs(child)
            if unit.assume_live(key, DEAD):
                fields += [(key, PIN), (key, DEAD)]
            else:
                whole.append(key)
                read.append(child)
        if self.soon:
            # A replaced value is usually garbage, and its collection reads its content
            # next: a dict's content comes in this batch too (a list's would need a
            # batch of its own, which is what the collection costs anyway).
            content = self.layout.content
            whole += [refs(x) for x in self.soon]
            whole += [content(x) for x in self.soon if is_dict(x)]
            self.soon = set()
        if fields:
            assumed = {key for key, _f in fields}
            fields += [(refs(c), p.encode()) for c, p in links if refs(c) in assumed]
        unit.load(hashes=whole, fields=fields)
        known = unit.known_hash
        for child in read:
            header = known(refs(child))
            # A live node (read whole, nothing deleted here, not pending) passes as it
            # would through require(), without the copy of its header require() reads.
            if not header or None in header.values() or DEAD in header:
                self.require(child)  # served from what was just read: it raises as it would
        for child, parent in links:
            if child == ROOT:
                self.require(child)
            self.add_ref(child, parent)  # served from the batch; refuses a pending node

    def remove_ref(self, child: str, parent: str, n: int = 1) -> None:
        self.soon.discard(child)
        key = self.layout.refs(child)
        field = parent.encode()
        # The whole header, not just this field: the collection that follows reads it
        # anyway (is any parent left?), and then finds it in the unit.
        self.unit.load(hashes=(key,))
        raw = self.unit.hget(key, field)
        left = _count(raw) - n
        if left > 0:
            self.unit.hset(key, field, b"%d" % left)
        else:
            self.unit.hdel(key, field)
        self.candidates.add(child)

    def unpin(self, uid: str) -> None:
        key = self.layout.refs(uid)
        if self.unit.hgetall(key).get(PIN) is not None:
            self.unit.hdel(key, PIN)
            self.candidates.add(uid)

    # --- content ---------------------------------------------------------------
    def read_contents(
        self, uids: Iterable[str], keep: bool = True
    ) -> dict[str, dict[bytes, bytes] | list[bytes]]:
        """Stored content of many nodes in one batch per kind.

        ``keep=False`` (read-only walks) reads without filling the unit's cache.
        """
        content = self.layout.content
        uids = list(uids)
        d = [u for u in uids if is_dict(u)]
        lst = [u for u in uids if not is_dict(u)]
        dkeys, lkeys = [content(x) for x in d], [content(x) for x in lst]
        dicts: dict[str, dict[bytes, bytes]] = {}
        lists: dict[str, list[bytes]] = {}
        if not keep and self.reader.in_unit:
            dicts, lists = self.unit.peek(dkeys, lkeys)
        else:
            if d:
                dicts = self.unit.prefetch_hashes(dkeys)
            if lst:
                lists = self.unit.prefetch_lists(lkeys)
        out: dict[str, dict[bytes, bytes] | list[bytes]] = {}
        for uid, key in zip(d, dkeys, strict=True):
            out[uid] = dicts[key]
        for uid, key in zip(lst, lkeys, strict=True):
            out[uid] = lists[key]
        return out

    def prefetch_nodes(self, uids: Iterable[str]) -> None:
        """Load the headers and contents of many nodes in one batch (inside a unit)."""
        layout = self.layout
        uids = list(uids)
        hashes = [layout.refs(x) for x in uids] + [layout.content(x) for x in uids if is_dict(x)]
        lists = [layout.content(x) for x in uids if not is_dict(x)]
        self.unit.load(hashes=hashes, lists=lists)

    def drop_node(self, uid: str) -> None:
        self.unit.drop_hash(self.layout.refs(uid))
        if is_dict(uid):
            self.unit.drop_hash(self.layout.content(uid))
        else:
            self.unit.list_op(self.layout.content(uid), "delete")

    def drop_nodes(self, uids: Collection[str]) -> None:
        """:meth:`drop_node` for many nodes (hashes dropped in bulk)."""
        refs, content = self.layout.refs, self.layout.content
        self.unit.drop_hashes(
            [refs(uid) for uid in uids] + [content(uid) for uid in uids if is_dict(uid)]
        )
        for uid in uids:
            if not is_dict(uid):
                self.unit.list_op(content(uid), "delete")

    def _retire(
        self,
        level: Collection[str],
        refs_keys: Sequence[str] | None = None,
        content_keys: Sequence[str] | None = None,
    ) -> None:
        """Dispose of dead nodes: delete them (no grace period) or make them pending.

        ``refs_keys``/``content_keys``: the nodes' header and content keys, in
        ``level``'s order, as the caller already built them (see :meth:`_sweep`).
        """
        grace = self.layout.grace
        if grace <= 0:
            if refs_keys is None or content_keys is None:
                self.drop_nodes(level)
                return
            # drop_nodes() with the caller's key objects, in the same order.
            unit = self.unit
            unit.drop_hashes(
                [*refs_keys]
                + [key for uid, key in zip(level, content_keys, strict=True) if is_dict(uid)]
            )
            for uid, key in zip(level, content_keys, strict=True):
                if not is_dict(uid):
                    unit.list_op(key, "delete")
            return
        # Only the header is touched: the content stays for handles still reading it.
        expiry, stamp = self.layout.expiry()
        if refs_keys is None:
            refs = self.layout.refs
            refs_keys = [refs(uid) for uid in level]
        unit = self.unit
        hset, retired = unit.hset, self.retired
        for uid, key in zip(level, refs_keys, strict=True):
            hset(key, DEAD, stamp)
            retired[uid] = expiry
        self.unit.hset_many(self.layout.pending, {uid.encode(): stamp for uid in level})
        learn = self.layout.on_retire
        if learn is not None:
            # Whatever unit this is (a plain write or a transaction), the sweeper hears of it.
            entries = [(expiry, uid) for uid in level]
            self.unit.after_commit.append(lambda: learn(entries))

    # --- collection ------------------------------------------------------------
    def collect(self, alive: Iterable[str] = ()) -> set[str]:
        """Collect every candidate (and what hangs off it) that is no longer reachable.

        ``alive`` names nodes the caller knows are reachable (e.g. the node it
        just edited); they end the upward searches early.
        """
        known_alive = {ROOT, *alive}
        garbage: set[str] = set()
        suspects = self.candidates
        self.candidates = set()
        refs = self.layout.refs
        # A candidate whose header (held already) lists no parent and no pin is garbage at
        # once, its last parent gone (a replaced or deleted document): no search. (What
        # a sweep hands back kept a parent: only the candidates can be such orphans.)
        orphans: set[str] = set()
        known = self.unit.known_hash
        for x in suspects - known_alive:
            held = known(refs(x))
            if held is None or PIN in held:
                continue
            values = list(held.values())
            if len(values) - values.count(None) > len(HEADER_FIELDS):
                continue  # more fields than a header has of its own: a parent is left
            present = [f for f, v in held.items() if v is not None]
            if present and HEADER_FIELDS.issuperset(present):
                orphans.add(x)
        if orphans:
            suspects = (suspects - orphans) | self._sweep(orphans, garbage)
        while suspects:
            suspects -= garbage
            suspects -= known_alive
            if not suspects:
                break
            self._prove_alive(suspects, known_alive, garbage)
            suspects -= known_alive
            if not suspects:
                break
            # Upward: gather every ancestor of the suspects that is not known to be alive.
            closure: dict[str, list[str]] = {}
            sources: list[str] = []
            frontier = suspects
            while frontier:
                headers = self.unit.prefetch_hashes([refs(x) for x in frontier])
                upward: set[str] = set()
                for x in frontier:
                    header = headers[refs(x)]
                    if not header:
                        continue  # already gone (e.g. collected earlier in this unit)
                    parents = [p for p in parents_of(header) if p not in garbage]
                    closure[x] = parents
                    if header.get(PIN) is not None or any(p in known_alive for p in parents):
                        sources.append(x)
                    for p in parents:
                        if p not in closure and p not in known_alive:
                            upward.add(p)
                frontier = upward - closure.keys()
            # Forward, in memory: what the alive nodes still reach inside the closure.
            children: dict[str, list[str]] = {}
            for x, parents in closure.items():
                for p in parents:
                    children.setdefault(p, []).append(x)
            reached = set(sources)
            stack = list(sources)
            while stack:
                for c in children.get(stack.pop(), ()):
                    if c not in reached:
                        reached.add(c)
                        stack.append(c)
            known_alive |= reached
            dead = closure.keys() - reached
            suspects = self._sweep(dead, garbage)
        return garbage

    def _prove_alive(self, suspects: set[str], known_alive: set[str], garbage: set[str]) -> None:
        """Add to ``known_alive`` the suspects (and paths) that one parent chain shows alive.

        A node shared by many parents (a child referenced from hundreds of
        documents) has a huge upward closure, yet one chain of first parents
        usually reaches the root in a few steps. Following one chain per
        suspect, all chains advancing together in one batched read per step,
        settles those cheaply; whatever is still open after ``PROOF_DEPTH``
        steps (a cycle, a long chain, a dead end) goes to the exact search.
        """
        refs = self.layout.refs
        unit = self.unit
        # Header fields are compared as stored (bytes): a shared node's header lists many
        # parents, and decoding and counting them all at every step was most of the cost
        # of replacing a parent of shared children. Only the parent stepped to is decoded.
        alive_b = {x.encode() for x in known_alive}
        dead_b = {x.encode() for x in garbage}
        paths = {s: [s] for s in suspects}
        at = {s: s for s in suspects}
        for _ in range(PROOF_DEPTH):
            if not at:
                return
            unit.load(hashes=[refs(x) for x in set(at.values())])
            moved: dict[str, str] = {}
            for s, x in at.items():
                path = paths[s]
                if x in known_alive:
                    known_alive.update(path)
                    alive_b.update(p.encode() for p in path)
                    continue
                header = unit.known_hash(refs(x))
                if not header:
                    continue  # gone: the exact search deals with it
                alive = header.get(PIN) is not None
                if not alive:
                    # A parent known alive? Looked up from the smaller side: a shared
                    # node lists many parents, and few nodes are known alive yet.
                    if len(alive_b) < len(header):
                        for f in alive_b:
                            if header.get(f) is not None:  # None: deleted by this unit
                                alive = True
                                break
                    else:
                        for f, v in header.items():
                            if v is not None and f in alive_b:
                                alive = True
                                break
                if alive:
                    known_alive.update(path)
                    alive_b.update(p.encode() for p in path)
                    continue
                # Otherwise one step up: the first parent that is not dead or on the path.
                for f, v in header.items():
                    if v is None or f in HEADER_FIELDS or f in dead_b:
                        continue
                    p = _uid(f, header)
                    if p not in path:
                        path.append(p)
                        moved[s] = p
                        break
            at = moved

    def _sweep(self, dead: set[str], garbage: set[str]) -> set[str]:
        """Retire ``dead`` nodes level by level; return the survivors that lost a parent.

        Each level reads what the unit does not hold yet in one batch; a level it
        holds already (read ahead) costs no call to the unit at all, only the
        per-node work, so a deep chain costs a few dictionary lookups per level.
        The dead are retired together at the end: nothing in between reads them.
        """
        unit = self.unit
        content_prefix, refs_prefix = self.layout.content_prefix, self.layout.refs_prefix
        known_hash, known_list = unit.known_hash, unit.known_list
        suspects: set[str] = set()
        found: list[str] = []
        # Each node's two keys are built once and that same str object serves every
        # lookup, read and drop of it, down to the backend's own caches: a dict lookup
        # with the key object the dict holds is settled by identity, while an equal copy
        # is compared byte by byte, one more cache miss per lookup once a big
        # collection's dicts outgrow the CPU caches (a 100k-key dict's delete grew x5.1
        # per x4 with copies).
        found_refs: list[str] = []
        found_contents: list[str] = []
        level = list(dead)
        level_refs = [refs_prefix + uid for uid in level]
        level_contents = [content_prefix + uid for uid in level]
        garbage |= dead
        # Read ahead where the backend walks subtrees itself (a deep chain would cost a
        # few calls per level otherwise). What is read ahead may turn out alive; reading
        # ahead stops while that exceeds what was found dead, so the waste stays linear.
        # It starts only once the sweep has gone READ_AHEAD_AFTER levels deep: most
        # collections are shallow (a small document, a parent whose children are shared
        # and survive), and reading ahead there fetches live subtrees for nothing
        # (replace_shared on Redis: 143 -> 176 ms when it started at once).
        ahead = swept = depth = 0
        cheap_reads = unit.backend.capabilities.locking_units
        reader_preload = getattr(self.reader, "preload_subtree", None)
        preload = None
        while level:
            swept += len(level)
            depth += 1
            if depth > READ_AHEAD_AFTER:
                preload = reader_preload
            found += level
            found_refs += level_refs
            found_contents += level_contents
            # What the unit holds already is used in place; the rest comes in one batch.
            held: list[dict[bytes, bytes | None] | list[bytes] | None] = [
                known_hash(key) if uid[:1] == DICT_UID else known_list(key)
                for uid, key in zip(level, level_contents, strict=True)
            ]
            if None in held:
                missing = [uid for uid, got in zip(level, held, strict=True) if got is None]
                if preload is not None and ahead <= 2 * swept + SWEEP_AHEAD:
                    # Only nodes not read yet start a read-ahead: one covers many levels.
                    ahead += preload(
                        content_prefix, refs_prefix, missing[:SWEEP_AHEAD], SWEEP_AHEAD
                    )
                # _load_contents(missing), with this level's key objects.
                unit.load(
                    hashes=[
                        key
                        for uid, key, got in zip(level, level_contents, held, strict=True)
                        if got is None and uid[:1] == DICT_UID
                    ],
                    lists=[
                        key
                        for uid, key, got in zip(level, level_contents, held, strict=True)
                        if got is None and uid[:1] != DICT_UID
                    ],
                )
                held = [
                    known_hash(key) if uid[:1] == DICT_UID else known_list(key)
                    for uid, key in zip(level, level_contents, strict=True)
                ]
            lost: dict[str, dict[str, int]] = {}
            for uid, content in zip(level, held, strict=True):
                if isinstance(content, dict):
                    # item_value() of each item, inline (it runs once per item of every
                    # dead dict): a malformed item is still StoreCorrupt, through it.
                    raws = []
                    for v in content.values():
                        if v is not None:
                            seq, _, raw = v.partition(b"|")
                            if not seq or not raw:
                                item_value(v)  # raises what it says
                            if raw[0] == LINK:
                                raws.append(raw)
                else:
                    raws = content  # type: ignore[assignment]  # a list node's items
                for raw in raws:
                    if raw and raw[0] != LINK:
                        continue  # a scalar (an empty item is damage: link_target says so)
                    child = link_target(raw)
                    if child is not None and child not in garbage:
                        per = lost.get(child)
                        if per is None:
                            lost[child] = {uid: 1}
                        else:
                            per[uid] = per.get(uid, 0) + 1
            nxt: list[str] = []
            nxt_refs: list[str] = []
            nxt_contents: list[str] = []
            if lost:
                # Most children of garbage are garbage too: over a network their contents
                # come along with their headers, so each level costs one round trip (or
                # none, read ahead). Where reads are cheap (a store held in-process) only
                # the headers: a shared child survives, and reading its content was waste
                # (replace_shared on SQLite); the dead ones' contents come with the next
                # level's batch.
                keys = [refs_prefix + c for c in lost]
                contents = [content_prefix + c for c in lost]
                headers = [known_hash(key) for key in keys]
                if None in headers:
                    missing = [c for c, got in zip(lost, headers, strict=True) if got is None]
                    if preload is not None and ahead <= 2 * swept + SWEEP_AHEAD:
                        ahead += preload(
                            content_prefix, refs_prefix, missing[:SWEEP_AHEAD], SWEEP_AHEAD
                        )
                    wanted = [key for key, got in zip(keys, headers, strict=True) if got is None]
                    if cheap_reads:
                        unit.load(hashes=wanted)
                    else:
                        # prefetch_nodes(missing), with these key objects.
                        unit.load(
                            hashes=wanted
                            + [
                                key
                                for c, key, got in zip(lost, contents, headers, strict=True)
                                if got is None and c[:1] == DICT_UID
                            ],
                            lists=[
                                key
                                for c, key, got in zip(lost, contents, headers, strict=True)
                                if got is None and c[:1] != DICT_UID
                            ],
                        )
                    headers = [known_hash(key) for key in keys]
                for (child, from_parents), header, key, content_key in zip(
                    lost.items(), headers, keys, contents, strict=True
                ):
                    if header is None:
                        continue  # a dangling link: nothing to update
                    alive = _survives(header, from_parents)
                    if alive is None:
                        continue  # a dangling link: nothing to update
                    if child != ROOT and not alive:
                        # Dead too: its header is retired with it, dead parents and all.
                        nxt.append(child)
                        nxt_refs.append(key)
                        nxt_contents.append(content_key)
                        continue
                    for parent in from_parents:
                        unit.hdel(key, parent.encode())
                    if child != ROOT:  # the root is alive by definition, whoever linked to it
                        suspects.add(child)
            garbage.update(nxt)
            level, level_refs, level_contents = nxt, nxt_refs, nxt_contents
        self._retire(found, found_refs, found_contents)
        return suspects

    def _load_contents(self, uids: list[str]) -> None:
        """Bring the contents of these nodes into the unit (one batch)."""
        content = self.layout.content
        self.unit.load(
            hashes=[content(x) for x in uids if is_dict(x)],
            lists=[content(x) for x in uids if not is_dict(x)],
        )


def _uid(field: bytes, header: dict[bytes, bytes | None]) -> str:
    """A parent's uid from its header field; :class:`StoreCorrupt` if it is no uid."""
    try:
        return field.decode()
    except UnicodeDecodeError:
        raise StoreCorrupt(f"a node header holds malformed back-references: {header!r}") from None


def _survives(header: dict[bytes, bytes | None], parents: dict[str, int]) -> bool | None:
    """Whether a node (its header as a unit holds it) outlives losing the links of ``parents``.

    True when it keeps another parent or a pin, False when not, ``None`` when the
    node does not exist (every field deleted). A collection asks this once per
    child of every dead node, so it is one pass with set operations and maps,
    compared as stored, without decoding: a shared node lists many parents.
    Every count is still checked to be one (``bytes.isdigit``, no ``int()``):
    a surviving node's header is the only one a collection reads, and damage
    there must surface as :class:`StoreCorrupt` as it does for the dead ones.
    """
    if None in header.values():  # fields deleted by this unit
        header = {f: v for f, v in header.items() if v is not None}
    if not header:
        return None
    fields = header.keys() - HEADER_FIELDS
    if not all(map(bytes.isdigit, map(header.__getitem__, fields))):  # type: ignore[arg-type]
        raise StoreCorrupt(f"a node header holds malformed back-references: {header!r}")
    if PIN in header:
        return True
    if len(fields) > len(parents):
        return True
    return not fields <= {p.encode() for p in parents}
