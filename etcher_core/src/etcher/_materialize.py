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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from etcher._codec import decoded_items, link_target, safe_decode
from etcher._graph import Graph
from etcher._layout import ROOT, is_dict
from etcher.spec import SubtreeChunk

SUBTREE_LIMIT = 2000
"""Nodes per server-side subtree read: bounds what one call holds (and blocks, on a server)."""

_FALLBACK = object()


def materialize(graph: Graph, uid: str) -> Any:
    """The plain-Python value of node ``uid`` (raises ``StaleHandleError`` if it is gone)."""
    read = getattr(graph.reader, "read_subtree", None)
    if read is not None:
        value = _by_subtrees(graph, uid, read)
        if value is not _FALLBACK:
            return value
    return _by_levels(graph, uid)


def _new(uid: str) -> Any:
    return {} if is_dict(uid) else []


def _by_subtrees(
    graph: Graph, uid: str, read: Callable[[str, str, list[str], int], SubtreeChunk | None]
) -> Any:
    """:func:`materialize` through the backend's subtree reads (``_FALLBACK`` if it has none)."""
    layout = graph.layout
    objects: dict[str, Any] = {uid: _new(uid)}
    done: set[str] = set()
    # Nodes still to read, in the order met. Each call gets at most a limit's worth of
    # them (it reads its roots first): handing a wide level's whole frontier to every
    # call would make a wide document quadratic.
    todo: deque[str] = deque([uid])
    while todo:
        frontier: list[str] = []
        while todo and len(frontier) < SUBTREE_LIMIT:
            x = todo.popleft()
            if x not in done:
                frontier.append(x)
        if not frontier:
            break
        chunk = read(layout.content_prefix, layout.refs_prefix, frontier, SUBTREE_LIMIT)
        if chunk is None:
            return _FALLBACK
        contents, absent, nxt = chunk
        if absent:
            if uid in absent:
                if uid == ROOT:
                    return _FALLBACK  # a namespace without a root: the general path knows
                graph.require_readable(uid)  # raises StaleHandleError
            graph.require_all([x for x in absent if x != uid])  # raises StoreCorrupt
            # Neither raised: the reads saw two states, which the unit's check turns into a retry.

        def resolve(raw: bytes) -> Any:
            child = link_target(raw)
            if child is not None:
                obj = objects.get(child)
                if obj is None:
                    obj = objects[child] = _new(child)
                return obj
            return safe_decode(raw)

        for node, content in contents.items():
            if node in done:
                continue
            done.add(node)
            target = objects.get(node)
            if target is None:
                target = objects[node] = _new(node)
            _fill(target, node, content, resolve)
        # Roots this call did not reach (past its limit) come back in its frontier.
        todo.extend(x for x in nxt if x not in done)
        del contents, chunk  # free this answer's raw content before the next one is read
    return objects[uid]


def _fill(
    target: Any,
    node: str,
    content: dict[bytes, bytes] | list[bytes],
    resolve: Callable[[bytes], Any],
) -> None:
    if is_dict(node):
        for key, raw in decoded_items(content):  # type: ignore[arg-type]
            target[key] = resolve(raw)
    else:
        target.extend([resolve(raw) for raw in content])


def _by_levels(graph: Graph, uid: str) -> Any:
    """:func:`materialize` one batched read per level of the document."""
    graph.require_readable(uid)
    objects: dict[str, Any] = {uid: {} if is_dict(uid) else []}
    frontier = [uid]
    while frontier:
        contents = graph.read_contents(frontier, keep=False)
        # An empty node and a missing one look alike (empty containers have no content
        # key), so the headers of the empty ones tell a dangling link apart.
        empty = [node for node in frontier if not contents[node] and node != uid]
        if empty:
            graph.require_all(empty)
        nxt: list[str] = []

        def resolve(raw: bytes, nxt: list[str] = nxt) -> Any:
            child = link_target(raw)
            if child is not None:
                obj = objects.get(child)
                if obj is None:
                    obj = {} if is_dict(child) else []
                    objects[child] = obj
                    nxt.append(child)
                return obj
            return safe_decode(raw)

        for node in frontier:
            _fill(objects[node], node, contents[node], resolve)
        del contents  # free this level's raw content before the next level is read
        frontier = nxt
    return objects[uid]
