"""Read-only operations see one consistent state, however they get it.

On SQLite a read holds a snapshot (a unit scope); on Redis-like stores it reads
unwatched and then re-reads everything in one atomic batch, retrying when
anything changed. Both are driven here by a writer that strikes in the middle
of a multi-level walk, which would otherwise produce a torn result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import etcher._materialize as materialize_module
import etcher._session as session_module
from etcher import DB
from etcher._graph import Graph
from etcher._unit import Unit

OLD = {"a": {"b": {"c": 1}}, "x": [1, 2]}
NEW = {"a": {"b": {"c": 2}}, "x": [1, 2, 3]}


@pytest.fixture
def two_dbs(store_url: Callable[[str], str]) -> Iterator[tuple[DB, DB]]:
    """Two DB objects (two connections where the store has them) on one fresh store."""
    url = store_url("snapshot")
    with DB(url) as reader, DB(url) as writer:
        yield reader, writer


def _strike_mid_walk(monkeypatch: pytest.MonkeyPatch, writer: DB) -> list[int]:
    """Make the second level read of every walk trigger one write (the first time only)."""
    calls = [0]
    original = Graph.read_contents

    def racing(self: Graph, uids: Any, keep: bool = True) -> Any:
        calls[0] += 1
        out = original(self, uids, keep)
        if calls[0] == 2:
            writer["doc"]["a"]["b"]["c"] = 2
            writer["doc"]["x"].append(3)
        return out

    monkeypatch.setattr(Graph, "read_contents", racing)
    return calls


def test_materialize_is_never_torn_by_a_concurrent_write(
    two_dbs: tuple[DB, DB], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = two_dbs
    reader["doc"] = OLD
    # The level-by-level walk (subtree reads, where the backend has them, are below).
    monkeypatch.setattr(Unit, "read_subtree", lambda self, *args: None)
    # The direct read asks the backend itself (no unit): send it to the unit path too.
    monkeypatch.setattr(
        session_module, "materialize_direct", lambda *args: materialize_module.FALLBACK
    )
    calls = _strike_mid_walk(monkeypatch, writer)
    value = reader["doc"]()
    if reader.backend.capabilities.locking_units:
        # A snapshot: the whole walk saw the state from before the write.
        assert value == OLD
        assert calls[0] == 3
    else:
        # Checked reads: the first walk was torn, noticed, and the walk ran again.
        assert value == NEW
        assert calls[0] == 6
    assert reader["doc"]() == NEW


def test_subtree_materialize_is_never_torn_by_a_concurrent_write(
    two_dbs: tuple[DB, DB], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = two_dbs
    backend = reader.backend
    if not backend.capabilities.subtree_reads:
        pytest.skip(f"{type(backend).__name__}.capabilities.subtree_reads is False")
    reader["doc"] = OLD
    # This path, not the visiting walk (below), where the backend has both.
    monkeypatch.setattr(
        backend, "capabilities", dataclasses.replace(backend.capabilities, subtree_visits=False)
    )
    # Two nodes per call, so one document takes several; the writer strikes after the first.
    monkeypatch.setattr(materialize_module, "SUBTREE_LIMIT", 2)
    calls = [0]
    original = type(backend).read_subtree

    def racing(self: Any, *args: Any) -> Any:
        calls[0] += 1
        out = original(self, *args)
        if calls[0] == 1:
            writer["doc"]["a"]["b"]["c"] = 2
            writer["doc"]["x"].append(3)
        return out

    monkeypatch.setattr(type(backend), "read_subtree", racing)
    value = reader["doc"]()
    assert calls[0] > 1  # the strike landed between two calls of one walk
    assert value == OLD  # SQLite: the snapshot of the scope (checked stores retry instead)
    assert reader["doc"]() == NEW


def test_visited_materialize_is_never_torn_by_a_concurrent_write(
    two_dbs: tuple[DB, DB], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = two_dbs
    backend = reader.backend
    if not backend.capabilities.subtree_visits:
        pytest.skip(f"{type(backend).__name__}.capabilities.subtree_visits is False")
    reader["doc"] = OLD
    original = type(backend).visit_subtree
    visited: list[str] = []

    def racing(self: Any, cp: str, rp: str, root: str, visit: Any) -> Any:
        def striking(uid: str, content: Any, out: list[str]) -> None:
            visit(uid, content, out)
            visited.append(uid)
            if len(visited) == 1:  # the document's first node is decoded: strike
                writer["doc"]["a"]["b"]["c"] = 2
                writer["doc"]["x"].append(3)

        return original(self, cp, rp, root, striking)

    monkeypatch.setattr(type(backend), "visit_subtree", racing)
    value = reader["doc"]()
    assert len(visited) == 4  # one walk (no retry), every node of the old document
    assert value == OLD  # one state: the walk's own snapshot
    assert reader["doc"]() == NEW


def test_a_read_only_unit_that_needs_to_write_is_redone_with_writes_allowed(
    two_dbs: tuple[DB, DB],
) -> None:
    reader, _ = two_dbs
    reader["k"] = 1
    seen: list[bool | None] = []

    def fn(unit: Unit) -> str:
        seen.append(unit.needs_write_scope)
        unit.hset("{probe}:h", b"f", b"v")
        return "done"

    assert reader._retry.run(reader.backend, fn, write=False) == "done"
    # First attempt read-only (its write refused), second with writes allowed.
    assert len(seen) == 2
    assert reader.backend.hget("{probe}:h", b"f") == b"v"
