"""Reading a node and everything below it back as plain Python values.

The walk goes level by level: each level's nodes are fetched in one batch,
then decoded without recursion. Every node becomes exactly one Python object,
so shared children stay shared (``a["x"] is b["x"]``) and cycles come back as
self-referential dicts and lists.

A node that was unlinked but is still inside its grace period materializes
like any other: its content and its whole subtree are kept as they were, so
the result is the version the handle named (see :mod:`etcher._reclaim`).
Consistency comes from the caller's read-only unit: every content read here
belongs to one state of the store, or the unit retries.

Where the backend reads subtrees itself (``capabilities.subtree_reads``) the
walk asks it for up to :data:`SUBTREE_LIMIT` nodes per call, continuing from
the frontier it returns, and decodes each answer before asking for more: a
document costs a few calls whatever its depth. The level-by-level walk stays
the path for every other backend and for units that have written.

:func:`materialize_direct` needs no unit at all where the answer is one state
by construction: one subtree read that returns the whole document (the spec
makes every call one state), or, on a backend with unit scopes, any number of
them inside one read scope, or one visiting walk (``capabilities.subtree_visits``),
which decodes each node as the backend reads it. Anything else (a missing node, a
document bigger than one call on a store without scopes) hands over to the unit path.

Decoding is one pass per node straight into the result (see docs/performance.md,
"Round 3"): the common tags and links inline, anything unusual or malformed
through the codec's precise functions, which raise the exact ``StoreCorrupt``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from etcher._codec import (
    CACHE_LIMIT,
    CACHED_KEY_BYTES,
    KEYS,
    SEQS,
    decoded_items,
    link_target,
    safe_decode,
)
from etcher._graph import Graph
from etcher._layout import ROOT, Layout
from etcher._subtree import linked
from etcher.spec import SubtreeChunk, SubtreeReads, SubtreeVisits, UnitScopes

if TYPE_CHECKING:
    from etcher.spec import StorageBackend

SUBTREE_LIMIT = 2000
"""Nodes per server-side subtree read: bounds what one call holds (and blocks, on a server)."""

FALLBACK: Any = object()
"""What :func:`materialize_direct` returns when the caller must use a unit instead."""

_FALLBACK = FALLBACK

ReadSubtree = Callable[[str, str, Sequence[str], int], SubtreeChunk | None]


def materialize(graph: Graph, uid: str, first: SubtreeChunk | None = None) -> Any:
    """The plain-Python value of node ``uid`` (raises ``StaleHandleError`` if it is gone).

    ``first``: the answer of a subtree read of ``[uid]`` made outside the unit,
    used as this walk's first read if the unit can take it in (see
    :meth:`etcher._unit.Unit.adopt_subtree`), so it is not read twice.
    """
    read = getattr(graph.reader, "read_subtree", None)
    if read is not None:
        layout = graph.layout
        if (
            first is not None
            and graph.reader.in_unit
            and graph.unit.adopt_subtree(layout.content_prefix, layout.refs_prefix, first)
        ):
            read = _replaying(first, read)
        value = _by_subtrees(layout, uid, read, graph)
        if value is not _FALLBACK:
            return value
    return _by_levels(graph, uid)


def materialize_read(layout: Layout, uid: str, read: ReadSubtree) -> Any:
    """Node ``uid``'s value from ``read`` alone (answers already in hand, say), outside a
    unit; :data:`FALLBACK` if they leave part of it out."""
    return _by_subtrees(layout, uid, read, None)


def _replaying(first: SubtreeChunk, read: ReadSubtree) -> ReadSubtree:
    """``read``, except that its first call answers ``first`` (already read and recorded)."""
    pending = [first]

    def replay(content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int) -> Any:
        if pending:
            return pending.pop()
        return read(content_prefix, refs_prefix, roots, limit)

    return replay


def materialize_direct(
    backend: StorageBackend, layout: Layout, uid: str, handover: list[SubtreeChunk]
) -> Any:
    """Node ``uid``'s value read without a unit of work, or :data:`FALLBACK`.

    Only on a backend with ``capabilities.subtree_visits`` (one visiting walk) or
    ``subtree_reads``. With unit scopes the whole walk runs inside one read scope;
    without, only a document one call returns whole (frontier empty) is taken, and a
    bigger one's first answer is appended to ``handover`` for :func:`materialize` to
    adopt. A missing node falls back too: the unit path tells a stale handle from a
    corrupt store.
    """
    capabilities = backend.capabilities
    if capabilities.subtree_visits:
        # One visiting walk: each node is decoded as the backend reads it, straight into
        # its object, and the links the decoding meets first are the walk's next nodes
        # (one pass per node, nothing read is kept). Here, not in a function of its own:
        # every db[k]() comes this way.
        root: Any = {} if uid[:1] == "D" else []
        objects: dict[str, Any] = {uid: root}

        def visit(node: str, content: Any, out: list[str]) -> None:
            # fill(), inline: this runs once per node. ``out`` gets each node the first
            # time a link to it is decoded (``objects`` remembers), as the spec asks.
            target = objects[node]
            try:
                if node[:1] == "D":
                    _fill_dict(target, content, objects, out)
                else:
                    _fill_list(target, content, objects, out)
            except (IndexError, ValueError, UnicodeDecodeError):
                # Malformed somewhere: the careful way names the problem. Nodes the fast
                # pass met stay in ``out`` and in ``objects``, as the level walk keeps them.
                target.clear()
                _fill_exact(target, node, content, objects, out)

        visits: SubtreeVisits = backend  # type: ignore[assignment]  # per its capability
        absent = visits.visit_subtree(layout.content_prefix, layout.refs_prefix, uid, visit)
        # A missing node (None: this thread holds a scope): the unit path reads it, and
        # tells a stale handle from a corrupt store.
        return root if absent == [] else _FALLBACK
    if not capabilities.subtree_reads:
        return FALLBACK
    # The backend's own method, not a unit's: every call answers one state (the spec),
    # and inside the read scope below every call answers the scope's state.
    subtrees: SubtreeReads = backend  # type: ignore[assignment]  # per its capability
    read = subtrees.read_subtree
    if capabilities.locking_units:
        scopes: UnitScopes = backend  # type: ignore[assignment]  # what locking_units promises
        with scopes.unit_scope(False) as held:
            # Not held: this thread is inside another scope, whose state the unit path knows.
            return _by_subtrees(layout, uid, read, None) if held else FALLBACK
    chunk = read(layout.content_prefix, layout.refs_prefix, [uid], SUBTREE_LIMIT)
    if chunk is None or chunk[1]:
        return FALLBACK
    if uid not in chunk[0]:
        # Left out as too wide for the walk (see SubtreeReads.read_subtree): one plain read
        # of it is one state too, and all there is when it links nothing.
        content = _read_plain(backend, layout.content_prefix + uid, uid)
        if not content:
            return FALLBACK  # missing or emptied: the unit path tells which
        # Its links, each once, as the walk's frontier lists them.
        chunk = ({uid: content}, [], list(dict.fromkeys(linked(uid, content))))
    if chunk[2]:
        handover.append(chunk)
        return FALLBACK
    return _by_subtrees(layout, uid, _replaying(chunk, read), None)


def _read_plain(backend: StorageBackend, key: str, uid: str) -> dict[bytes, bytes] | list[bytes]:
    """Node ``uid``'s stored content, read by one plain command (its content key ``key``)."""
    content: dict[bytes, bytes] | list[bytes]
    content = backend.hgetall(key) if uid[:1] == "D" else backend.lrange(key, 0, -1)
    return content


def _new(uid: str) -> Any:
    return {} if uid[:1] == "D" else []


def _by_subtrees(layout: Layout, uid: str, read: ReadSubtree, graph: Graph | None) -> Any:
    """:func:`materialize` through the backend's subtree reads (``_FALLBACK`` if it has none).

    ``graph`` is None outside a unit: then a missing node is ``_FALLBACK`` too.
    """
    content_prefix, refs_prefix = layout.content_prefix, layout.refs_prefix
    chunk = read(content_prefix, refs_prefix, [uid], SUBTREE_LIMIT)
    if chunk is None:
        return _FALLBACK
    root: Any = {} if uid[:1] == "D" else []
    objects: dict[str, Any] = {uid: root}
    created: list[str] = []  # the walk finds the children itself
    contents, absent, nxt = chunk
    roots = [uid]
    done: set[str] = set()
    # Nodes still to read, in the order met. Each call gets at most a limit's worth of
    # them (it reads its roots first): handing a wide level's whole frontier to every
    # call would make a wide document quadratic.
    todo: deque[str] = deque()
    while True:  # one answer per turn: most documents are whole in the first
        if absent:
            if graph is None:
                return _FALLBACK
            if uid in absent:
                if uid == ROOT:
                    return _FALLBACK  # a namespace without a root: the general path knows
                graph.require_readable(uid)  # raises StaleHandleError
            graph.require_all([x for x in absent if x != uid])  # raises StoreCorrupt
            # Neither raised: the reads saw two states, which the unit's check turns into a retry.
        for node, content in contents.items():
            if node in done:
                continue
            done.add(node)
            target = objects.get(node)
            if target is None:
                target = objects[node] = {} if node[:1] == "D" else []
            if content:
                # fill(), inline: this runs once per node.
                try:
                    if node[:1] == "D":
                        _fill_dict(target, content, objects, created)  # type: ignore[arg-type]
                    else:
                        _fill_list(target, content, objects, created)  # type: ignore[arg-type]
                except (IndexError, ValueError, UnicodeDecodeError):
                    target.clear()
                    _fill_exact(target, node, content, objects, created)
        created.clear()
        # A root left out of the answer was too wide for the walk: it is read plainly here
        # (a read of the unit, checked like the walk's), and its links are followed from
        # its decoded content.
        wide = [x for x in dict.fromkeys(roots) if x not in contents] if nxt else None
        if wide:
            if graph is None:
                return _FALLBACK
            plain = graph.read_contents(wide, keep=False)
            empty = [x for x in wide if not plain[x]]
            if empty:
                if uid in empty:
                    graph.require_readable(uid)
                graph.require_all([x for x in empty if x != uid])
            for node in wide:
                done.add(node)
                content = plain[node]
                target = objects.get(node)
                if target is None:
                    target = objects[node] = _new(node)
                if content:
                    fill(target, node, content, objects, created)
            todo.extend(created)
            created.clear()
            del plain
        # Roots this call did not reach (past its limit) come back in its frontier.
        if nxt:
            todo.extend(x for x in nxt if x not in done)
        del contents, chunk  # free this answer's raw content before the next one is read
        frontier: list[str] = []
        while todo and len(frontier) < SUBTREE_LIMIT:
            x = todo.popleft()
            if x not in done:
                frontier.append(x)
        if not frontier:
            return root
        roots = frontier
        chunk = read(content_prefix, refs_prefix, frontier, SUBTREE_LIMIT)
        if chunk is None:
            return _FALLBACK
        contents, absent, nxt = chunk


def fill(
    target: Any,
    node: str,
    content: dict[bytes, bytes] | list[bytes],
    objects: dict[str, Any],
    created: list[str],
) -> None:
    """Decode node ``node``'s stored ``content`` into ``target`` (an empty dict or list).

    A link becomes the one object of its node in ``objects`` (made empty and
    appended to ``created`` when first met). This runs once per node of every
    materialize: the usual tags are decoded inline, in one pass, and anything
    else (rare tags, malformed items) goes through the codec's reference path.
    """
    try:
        if node[:1] == "D":
            _fill_dict(target, content, objects, created)  # type: ignore[arg-type]
        else:
            _fill_list(target, content, objects, created)  # type: ignore[arg-type]
    except (IndexError, ValueError, UnicodeDecodeError):
        # Malformed somewhere: redo the node the careful way, which names the problem.
        target.clear()
        _fill_exact(target, node, content, objects, created)


def _fill_dict(
    target: dict[Any, Any],
    content: dict[bytes, bytes],
    objects: dict[str, Any],
    created: list[str],
) -> None:
    last = -1
    ordered = True
    keys, seqs = KEYS, SEQS
    for field, raw in content.items():
        seq, _, value = raw.partition(b"|")
        # Sequence numbers and keys repeat from node to node: each spelling is checked
        # and decoded once (see etcher._codec.KEYS).
        n = seqs.get(seq)
        if n is None:
            # isdigit(): ASCII digits only (int() alone takes a sign, spaces, underscores).
            if not seq.isdigit():
                raise ValueError(raw)
            n = int(seq)
            if len(seqs) >= CACHE_LIMIT:
                seqs.clear()
            seqs[seq] = n
        if n <= last:
            ordered = False
        last = n
        key = keys.get(field)
        if key is None:
            tag = field[0]
            if tag == 0x73:  # s: by far the most common key
                key = field[1:].decode()
            elif tag == 0x69:  # i
                key = int(field[1:])
            else:
                raise ValueError(field)  # rare (huge int) or malformed: the exact path
            if len(field) <= CACHED_KEY_BYTES:
                if len(keys) >= CACHE_LIMIT:
                    keys.clear()
                keys[field] = key
        tag = value[0]
        if tag == 0x73:  # s
            target[key] = value[1:].decode()
        elif tag == 0x40:  # @: a link
            child = value[1:].decode()
            obj = objects.get(child)
            if obj is None:
                first = child[:1]
                if len(child) < 2 or (first != "D" and first != "L"):
                    raise ValueError(child)
                obj = objects[child] = {} if first == "D" else []
                created.append(child)
            target[key] = obj
        elif tag == 0x69:  # i
            target[key] = int(value[1:])
        elif tag == 0x66:  # f
            target[key] = float(value[1:])
        else:
            target[key] = safe_decode(value)
    if not ordered:
        _reorder(target, content)


def _reorder(target: dict[Any, Any], content: dict[bytes, bytes]) -> None:
    """Put ``target``, filled in the store's order of ``content``, in insertion order.

    For a store that hands a node's items out of order (a big hash, say). Two
    fields decoding to one key, or two equal sequence numbers, are corrupt:
    the exact path then decides.
    """
    seqs = [int(raw.partition(b"|")[0]) for raw in content.values()]
    if len(target) != len(seqs) or len(set(seqs)) != len(seqs):
        raise ValueError("duplicate dict items")
    items = list(target.items())
    target.clear()
    for i in sorted(range(len(seqs)), key=seqs.__getitem__):
        key, obj = items[i]
        target[key] = obj


def _fill_list(
    target: list[Any],
    content: list[bytes],
    objects: dict[str, Any],
    created: list[str],
) -> None:
    append = target.append
    for raw in content:
        tag = raw[0]
        if tag == 0x73:  # s
            append(raw[1:].decode())
        elif tag == 0x40:  # @: a link
            child = raw[1:].decode()
            obj = objects.get(child)
            if obj is None:
                first = child[:1]
                if len(child) < 2 or (first != "D" and first != "L"):
                    raise ValueError(child)
                obj = objects[child] = {} if first == "D" else []
                created.append(child)
            append(obj)
        elif tag == 0x69:  # i
            append(int(raw[1:]))
        elif tag == 0x66:  # f
            append(float(raw[1:]))
        else:
            append(safe_decode(raw))


def _fill_exact(
    target: Any,
    node: str,
    content: dict[bytes, bytes] | list[bytes],
    objects: dict[str, Any],
    created: list[str],
) -> None:
    """:func:`fill` through the codec's reference functions (each error precise)."""

    def resolve(raw: bytes) -> Any:
        child = link_target(raw)
        if child is not None:
            obj = objects.get(child)
            if obj is None:
                obj = objects[child] = _new(child)
                created.append(child)
            return obj
        return safe_decode(raw)

    if node[:1] == "D":
        for key, raw in decoded_items(content):  # type: ignore[arg-type]
            target[key] = resolve(raw)
    else:
        target.extend([resolve(raw) for raw in content])


def _by_levels(graph: Graph, uid: str) -> Any:
    """:func:`materialize` one batched read per level of the document."""
    graph.require_readable(uid)
    objects: dict[str, Any] = {uid: _new(uid)}
    frontier = [uid]
    while frontier:
        contents = graph.read_contents(frontier, keep=False)
        # An empty node and a missing one look alike (empty containers have no content
        # key), so the headers of the empty ones tell a dangling link apart.
        empty = [node for node in frontier if not contents[node] and node != uid]
        if empty:
            graph.require_all(empty)
        nxt: list[str] = []
        for node in frontier:
            content = contents[node]
            if content:
                fill(objects[node], node, content, objects, nxt)
        del contents  # free this level's raw content before the next level is read
        frontier = nxt
    return objects[uid]
