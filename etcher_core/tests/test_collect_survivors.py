"""What a collection decides about each child of a dead node, from its header alone.

``_survives`` settles a lost child in one pass over its header as the unit holds it
(fields this unit deleted map to ``None``): it outlives the links it lost when it
keeps another parent or a pin, it is dead otherwise, and it does not exist when no
field is left (a dangling link, not a node to retire). A count that is no count is
damage and is reported, whether the node would survive or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from etcher import DB
from etcher._graph import Graph, _survives
from etcher.errors import StoreCorrupt

HEAD = {b"#k": b"d", b"#s": b"3"}


@pytest.mark.parametrize(
    ("header", "lost", "want"),
    [
        ({**HEAD, b"Da": b"1"}, {"Da": 1}, False),
        ({**HEAD, b"Da": b"2"}, {"Da": 2}, False),
        ({**HEAD, b"Da": b"1", b"Db": b"1"}, {"Da": 1}, True),
        ({**HEAD, b"Da": b"1", b"Db": b"1"}, {"Da": 1, "Db": 1}, False),
        ({**HEAD, b"Da": b"1", b"Db": None}, {"Da": 1}, False),  # Db unlinked by this unit
        ({**HEAD, b"Da": b"1", b"#p": b"1"}, {"Da": 1}, True),  # pinned by an RD(db) handle
        ({**HEAD, b"Db": b"1"}, {"Da": 1}, True),  # (the lost parent already gone)
        ({b"#k": b"l", b"Da": b"1"}, {"Da": 1}, False),
        ({**HEAD, **{b"Dp%d" % i: b"1" for i in range(40)}}, {"Dp3": 1}, True),
        ({}, {"Da": 1}, None),
        ({b"#k": None, b"#s": None, b"Da": None}, {"Da": 1}, None),
    ],
)
def test_a_lost_child_survives_dies_or_is_missing(
    header: dict[bytes, bytes | None], lost: dict[str, int], want: bool | None
) -> None:
    assert _survives(header, lost) is want


@pytest.mark.parametrize("count", [b"x", b"", b"-1", b"1 "])
@pytest.mark.parametrize("other", [False, True])
def test_a_damaged_count_is_store_corrupt(count: bytes, other: bool) -> None:
    header: dict[bytes, bytes | None] = {**HEAD, b"Da": b"1", b"Db": count}
    with pytest.raises(StoreCorrupt, match="back-references"):
        _survives(header, {"Da": 1} if other else {"Da": 1, "Db": 1})


@pytest.mark.parametrize("grace", [0, 60])
def test_an_unlinked_document_is_collected_without_a_search(
    grace: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replaced or deleted document lists no parent once unlinked: it is garbage at once
    (no upward search), its shared children survive through their other parents, and a
    cycle inside it goes with it."""
    searched: list[set[str]] = []
    real = Graph._prove_alive

    def spy(self: Graph, suspects: set[str], *args: Any) -> None:
        searched.append(set(suspects))
        real(self, suspects, *args)

    with DB("ref://collect-orphans", grace=grace) as db:
        db["kid"] = {"shared": 1}
        kid = db["kid"]
        loop: dict[str, Any] = {"n": 1}
        loop["self"] = loop
        db["a"] = {"kids": [kid], "own": {"x": [1, 2]}, "loop": loop}
        db["b"] = {"kids": [kid]}
        old = db["a"].uid
        monkeypatch.setattr(Graph, "_prove_alive", spy)
        db["a"] = {"new": 1}
        del db["b"]
        monkeypatch.undo()
        assert all(old not in s for s in searched)
        assert [kid.uid] in [sorted(s) for s in searched]  # the shared child is proven alive
        assert db() == {"kid": {"shared": 1}, "a": {"new": 1}}
        assert kid.backrefs == {db.uid: 1}
        db.maintenance(reclaim_all=True)
        report = db.check()
        assert report.ok and not report.orphans


@pytest.mark.parametrize("grace", [0, 60])
def test_the_root_is_never_an_orphan(grace: int, store_url: Callable[[str], str]) -> None:
    """The root lists no parent of its own: when the last link to it goes, the shortcut
    that collects parentless candidates must leave it (and all it holds) alone."""
    with DB(store_url("collect-root"), grace=grace) as db:
        db["keep"] = {"x": [1, 2]}
        db["k"] = {"r": db._root, "s": db._root}  # the root handle: the root gains a parent
        k = db["k"]
        k["r"] = 1  # the root loses one link, then the last: a candidate each time
        del k["s"]
        db.maintenance(reclaim_all=True)
        assert db() == {"keep": {"x": [1, 2]}, "k": {"r": 1}}
        del db["k"]
        db.maintenance(reclaim_all=True)
        assert db() == {"keep": {"x": [1, 2]}}
        assert db.check().ok
