"""fork() and memory stores: a forked child works on its own private copy.

A memory store lives in process memory, so a child made by ``fork()`` gets a
copy of it as it was at the fork: the child can read and write that copy
through the inherited DB (with node ids of its own), and nothing it does is
seen by the parent or by other children.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

import pytest

from etcher import DB


def _in_child(fn: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            fn()
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("url", ["memory://", "sqlite:///:memory:"])
def test_forked_child_gets_a_private_copy(url: str) -> None:
    with DB(url) as db:
        db["doc"] = {"a": [1, 2]}
        parent_token = db._uids.token
        read_fd, write_fd = os.pipe()

        def child() -> None:
            os.close(read_fd)
            assert db._uids.token != parent_token  # fresh node ids in the child
            assert db["doc"]() == {"a": [1, 2]}  # the copy taken at fork time
            db["doc"]["a"].append(3)
            db["child"] = {"b": [1]}
            assert db() == {"doc": {"a": [1, 2, 3]}, "child": {"b": [1]}}
            assert db.check().ok
            os.write(write_fd, db["child"].uid.encode())

        assert _in_child(child) == 0
        os.close(write_fd)
        child_uid = os.read(read_fd, 200).decode()
        os.close(read_fd)
        assert child_uid and parent_token not in child_uid
        assert db() == {"doc": {"a": [1, 2]}}  # the parent's store is untouched
        assert db.check().ok


def test_fork_tracking_keeps_no_db_alive() -> None:
    import gc
    import weakref

    db = DB("memory://")
    db["x"] = [1]
    db.close()
    ref = weakref.ref(db)
    del db
    gc.collect()
    assert ref() is None
