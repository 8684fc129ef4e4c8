"""A big collection hands its deletions to the store in the order it found the nodes.

Order is what keeps a big delete's cost linear: the store's per-key work (SQLite's
row cache of the rows the collection read) is then walked in the order it was
filled, not in the hash order of a set, which once the structures outgrow the CPU
caches made deleting a 100,000-key dict grow x5.1-x6.2 per x4 (docs/performance.md,
"Round 6: deep and wide data, growth"). Nothing here measures time.
"""

from __future__ import annotations

from typing import Any

import pytest

from etcher import DB
from etcher._unit import Unit
from etcher.testing.reference import ReferenceBackend


def test_a_units_dropped_keys_are_deleted_in_the_order_dropped() -> None:
    backend = ReferenceBackend()
    # Names in no sorted order, as node uids are.
    keys = [f"n{(i * 7919) % 1009:04d}" for i in range(200)]
    for key in keys:
        backend.hset(key, mapping={b"f": b"1"})
    unit = Unit(backend)
    unit.drop_hashes(keys[:150])
    unit.drop_hash(keys[150])
    unit.drop_hashes(keys[151:])
    unit.drop_hash(keys[3])  # dropped again: it keeps its place
    deletes = [args for name, args in unit._scope_writes() if name == "delete"]
    assert deletes == [tuple(keys)]
    unit.commit()
    assert not any(backend.exists(key) for key in keys)


def test_a_collected_wide_dict_is_deleted_in_the_order_its_members_were_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = DB(backend=ReferenceBackend(), prefix="order", grace=0)
    db["wide"] = {f"k{i}": {"v": i} for i in range(300)}
    layout = db._layout
    wide = db["wide"]._etcher_uid
    members = [db["wide"][f"k{i}"]._etcher_uid for i in range(300)]
    deleted: list[tuple[str, ...]] = []
    scope_writes = Unit._scope_writes

    def spy(unit: Unit) -> list[tuple[str, tuple[Any, ...]]]:
        writes = scope_writes(unit)
        deleted.extend(args for name, args in writes if name == "delete")
        return writes

    monkeypatch.setattr(Unit, "_scope_writes", spy)
    del db["wide"]
    monkeypatch.undo()
    assert len(deleted) == 1
    # Headers level by level, then contents in the same order.
    nodes = [wide, *members]
    assert deleted[0] == tuple([layout.refs(u) for u in nodes] + [layout.content(u) for u in nodes])
    assert db.check().ok
    assert not any(True for _ in db.backend.scan_iter(match=layout.content_prefix + "*"))
