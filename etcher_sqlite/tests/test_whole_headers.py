"""Replacing a parent of shared children: the commit writes the children's headers whole.

``capabilities.whole_hash_writes`` (``etcher.spec.WholeHashWrites``): the unit read
each child's header whole to change one back-reference, so it hands SQLite the
new header (``hreplace``), and the rows its batched reads saw stay cached in the
write scope. The commit then neither reads those rows again nor decodes their
packed content to merge one field (round 3: ~5,900 decodes per 150 replacements
of issue 13's ``replace_shared``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher_sqlite import packed
from etcher_sqlite.scope import UnitScope


def test_a_replacement_commits_shared_headers_without_rereading_or_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = DB(str(tmp_path / "s.db"))
    db["kids"] = {f"k{i}": {"n": i} for i in range(8)}
    kids = [db["kids"][f"k{i}"] for i in range(8)]
    for p in range(6):
        db[f"p{p}"] = {"kids": kids[p % 3 :][:5]}
    headers = {db._layout.refs(k.uid) for k in kids}

    committing = False
    decoded: list[str] = []
    reread: list[str] = []
    commits: list[int] = []
    unpack, commit = packed.unpack_hash, UnitScope.commit_writes

    def spy_unpack(blob: bytes, name: str) -> Any:
        if committing:
            decoded.append(name)
        return unpack(blob, name)

    def spy_commit(scope: UnitScope, writes: Any, created: Any = (), fresh: Any = None) -> None:
        nonlocal committing
        committing = True
        commits.append(len(writes))
        conn: Any = scope._conn
        conn.set_trace_callback(
            lambda sql: reread.append(sql) if sql.startswith("SELECT") else None
        )
        try:
            commit(scope, writes, created, fresh)
        finally:
            committing = False
            conn.set_trace_callback(None)

    monkeypatch.setattr(packed, "unpack_hash", spy_unpack)
    monkeypatch.setattr(UnitScope, "commit_writes", spy_commit)
    db["p0"] = {"kids": kids[3:]}  # k0..k2 lose a parent, k5..k7 gain one
    del db["p1"]
    monkeypatch.undo()

    assert len(commits) == 2, commits  # both writes went through the spied commit
    assert not [n for n in decoded if n in headers], decoded
    assert not [sql for sql in reread if any(h in sql for h in headers)], reread
    assert str(db.check()).endswith("OK")
    assert db["p0"]() == {"kids": [{"n": i} for i in range(3, 8)]}
    for i, kid in enumerate(kids):
        holders = [p for p in ("p0", *(f"p{p}" for p in range(2, 6))) if kid in db[p]["kids"]]
        lists = {db[p]["kids"].uid: 1 for p in holders}
        assert kid.backrefs == {db["kids"].uid: 1, **lists}, i
