"""Deep documents: far beyond Python's recursion limit, every step stays iterative.

A chain of 10,000 levels on SQLite and 3,000 on the (slow, fakeredis-based)
memory backend, 10x and 3x the default recursion limit (the benchmark
``benchmarks/deep_wide.py`` runs 100,000), is stored, read back, summarized,
checked, collected, exported and deleted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from etcher import DB

# The in-memory stores are slow per node (fakeredis-like Python), so they get less depth.
DEPTHS = {"reference": 3_000, "memory": 3_000, "sqlite": 10_000}


def chain(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": [0]}
    for i in range(depth - 1):
        doc = {"i": i, "next": doc}
    return doc


def walk(value: Any, depth: int) -> int:
    """Levels of a materialized chain (checked on the way), without recursion."""
    levels = 1
    while "next" in value:
        assert value["i"] == depth - 1 - levels
        value = value["next"]
        levels += 1
    assert value == {"leaf": [0]}
    return levels


@pytest.fixture
def store(store_kind: str, store_url: Callable[[str], str]) -> tuple[str, int]:
    """(URL, depth to test) per backend (the reference one always; sqlite/memory if installed)."""
    return store_url("deep"), DEPTHS[store_kind]


def test_deep_chain_store_read_check_delete(store: tuple[str, int]) -> None:
    url, depth = store
    assert depth >= 3 * sys.getrecursionlimit()
    with DB(url, grace=0) as db:
        db["deep"] = chain(depth)
        assert walk(db["deep"](), depth) == depth
        assert repr(db["deep"]).startswith("@{")
        assert "deep" in str(db)
        report = db.check()
        # depth dicts, the leaf's list and the root
        assert report.ok and report.nodes == depth + 2
        assert db.gc().ok
        # json.loads itself recurses per level, so the text is checked as text.
        exported = db.export_json("deep")
        assert exported.count('"next"') == depth - 1
        assert exported.startswith(f'{{"i": {depth - 2}, "next": {{"i": {depth - 3}')
        del db["deep"]
        report = db.check()
        assert report.ok and report.nodes == 1


def test_deep_list_chain(store: tuple[str, int]) -> None:
    url, depth = store
    doc: list[Any] = [0]
    for _ in range(depth - 1):
        doc = [doc]
    with DB(url, grace=0) as db:
        db["deep"] = doc
        value = db["deep"]()
        levels = 1
        while value != [0]:
            (value,) = value
            levels += 1
        assert levels == depth
        del db["deep"]
        assert db.check().ok
