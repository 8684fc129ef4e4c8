"""Reading a node and everything below it back as plain Python values.

The walk goes level by level: each level's nodes are fetched in one batch,
then decoded without recursion. Every node becomes exactly one Python object,
so shared children stay shared (``a["x"] is b["x"]``) and cycles come back as
self-referential dicts and lists.

A node that was unlinked but is still inside its grace period materializes
like any other: its content and its whole subtree are kept as they were, so
the result is the version the handle named (see :mod:`etcher.reclaim`).
Consistency comes from the caller's read-only unit: every content read here
belongs to one state of the store, or the unit retries.
"""

from __future__ import annotations

from typing import Any

from etcher.codec import decode_key, link_target, safe_decode, split_item
from etcher.graph import Graph
from etcher.layout import is_dict


def materialize(graph: Graph, uid: str) -> Any:
    """The plain-Python value of node ``uid`` (raises ``StaleHandleError`` if it is gone)."""
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
            content = contents[node]
            target = objects[node]
            if is_dict(node):
                items = sorted((*split_item(raw), field) for field, raw in content.items())  # type: ignore[union-attr]
                for _seq, raw, field in items:
                    target[decode_key(field)] = resolve(raw)
            else:
                target.extend([resolve(raw) for raw in content])
        del contents  # free this level's raw content before the next level is read
        frontier = nxt
    return objects[uid]
