"""Version stamps: a forked child never repeats its parent's (a private generator draws them)."""

from __future__ import annotations

import multiprocessing
import sys

import pytest

from etcher_sqlite import ops


def _stamps(conn: multiprocessing.connection.Connection) -> None:
    conn.send([ops.new_version() for _ in range(3)])
    conn.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork() is POSIX-only")
def test_a_forked_child_draws_other_stamps_than_its_parent() -> None:
    # (A spawned child imports etcher_sqlite afresh: its generator has a seed of its own.)
    ops.new_version()  # the generator is in use before the fork
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_stamps, args=(there,))
    child.start()
    there.close()  # a child that dies early makes recv() fail instead of wait forever
    try:
        theirs = here.recv()
    finally:
        child.join(timeout=30)
    mine = [ops.new_version() for _ in range(3)]
    assert not set(mine) & set(theirs)
    assert all(0 <= stamp < 2**63 for stamp in mine + theirs)
