"""The sweep that rides on a write is not lost when that write's unit has to be retried."""

from __future__ import annotations

import uuid

import pytest

from etcher import DB
from etcher import _reclaim as reclaim
from etcher._graph import Graph
from etcher._layout import ROOT
from etcher.testing.reference import drop_store


def test_a_sweep_in_an_attempt_that_did_not_commit_is_redone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"retry-{uuid.uuid4().hex}"
    now = [1_000_000.0]
    monkeypatch.setattr(reclaim, "clock", lambda: now[0])
    try:
        with DB(f"ref://{name}", grace=5) as db, DB(f"ref://{name}") as other:
            db["doc"] = {"nested": {"x": 1}}
            db["doc"] = "replaced"  # two nodes pending for 5 s
            assert db.check().pending == 2
            now[0] += 10  # past the grace period
            attempts = []

            def write(g: Graph) -> None:
                g.require(ROOT)  # read (and watch) the root's header
                attempts.append(1)
                if len(attempts) == 1:
                    # Another client changes the root: this attempt's commit conflicts,
                    # after its bounded sweep was already queued.
                    other["bump"] = len(attempts)

            db._write(write)
            assert len(attempts) == 2
            report = db.check()
            assert report.pending == 0, "the sweep of the failed attempt was dropped"
            assert report.ok and db["doc"] == "replaced" and other["bump"] == 1
    finally:
        drop_store(name)
