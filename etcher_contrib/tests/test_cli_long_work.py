"""Long work through the ``etcher`` command line: 100,000 nodes, progress bars and Ctrl-C.

Each test drives ``python -m etcher_contrib`` in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher._jsonio import dumps

pytest.importorskip("etcher_sqlite", reason="the CLI tests use the SQLite backend")

NODES = 100_000


def big_value(items_count: int = 49_997) -> dict[str, Any]:
    """99,999 nodes, so 100,000 with the namespace root: the top dict, the items list,
    49,997 item dicts and their tag lists, a dict (with a list) shared by every 1000th
    item, so the file carries $id/$ref too, and an empty dict."""
    common = {"kind": "common", "weights": [0.5, float("inf")]}
    items: list[Any] = []
    for i in range(items_count):
        item: dict[Any, Any] = {"id": i, "tags": [i % 7, "x"], 3: "int key"}
        if i % 1000 == 0:
            item["common"] = common
        items.append(item)
    value = {"items": items, "common": common, "meta": {}}
    return value


def count_nodes(value: Any) -> int:
    seen: set[int] = set()
    stack = [value]
    while stack:
        obj = stack.pop()
        if isinstance(obj, (dict, list)) and id(obj) not in seen:
            seen.add(id(obj))
            stack.extend(obj.values() if isinstance(obj, dict) else obj)
    return len(seen)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    value = big_value()
    assert count_nodes(value) + 1 == NODES  # + the namespace root it is imported under
    path = tmp_path_factory.mktemp("big") / "big.json"
    path.write_text(dumps(value, indent=2) + "\n", encoding="utf-8")
    return path


MEDIUM_ITEMS = 2_000


@pytest.fixture(scope="module")
def medium_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same shape with 2,000 items (about 4,000 nodes): the Ctrl-C tests pause the
    command at an exact point, so they need no big file to have time to interrupt it."""
    path = tmp_path_factory.mktemp("medium") / "medium.json"
    path.write_text(dumps(big_value(MEDIUM_ITEMS), indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "state.db")
        return
    import redis

    server = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(server)
    client.flushdb()  # the server is shared by the session: each test starts empty
    try:
        yield server
    finally:
        client.flushdb()
        client.close()


def etcher(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "etcher_contrib", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert done.returncode == expect, (done.returncode, done.stdout, done.stderr[-2000:])
    return done


# --------------------------------------------------------------------------- 100,000 nodes


def test_hundred_thousand_nodes_round_trip(url: str, tmp_path: Path, big_file: Path) -> None:
    etcher("import", url, "data", str(big_file), cwd=tmp_path)
    out = tmp_path / "out.json"
    etcher("export", url, "data", "-o", str(out), cwd=tmp_path)
    assert out.read_bytes() == big_file.read_bytes()  # export -> import -> export
    assert '"common": {"$ref": 1}' in out.read_text()  # sharing survived both ways
    stats = json.loads(etcher("stats", url, "--json", cwd=tmp_path).stdout)
    assert stats[0]["nodes"] == NODES
    etcher("check", url, cwd=tmp_path)


# --------------------------------------------------------------------------- progress


def seed_medium(url: str) -> None:
    with DB(url) as db:
        db["data"] = [{"n": i} for i in range(500)]


def test_no_progress_output_when_piped(url: str, tmp_path: Path) -> None:
    seed_medium(url)
    # stderr is a pipe here, as in `etcher export URL 2>log` or under cron
    for args in (
        ("export", url, "-o", str(tmp_path / "x.json")),
        ("import", url, "copy", str(tmp_path / "x.json")),
        ("check", url),
        ("gc", url),
        ("stats", url),
    ):
        done = etcher(*args, cwd=tmp_path)
        assert done.stderr == "", args


def test_progress_bars_when_forced(url: str, tmp_path: Path) -> None:
    seed_medium(url)
    done = etcher("export", url, "-o", str(tmp_path / "x.json"), "--progress", cwd=tmp_path)
    assert "writing" in done.stderr and "node" in done.stderr
    assert "0%|" in done.stderr  # a bar with a known total (501 nodes)
    done = etcher("import", url, "copy", str(tmp_path / "x.json"), "--progress", cwd=tmp_path)
    assert "storing" in done.stderr
    done = etcher("--progress", "check", url, cwd=tmp_path)
    assert "checking" in done.stderr
    done = etcher("stats", url, "--progress", cwd=tmp_path)
    assert "counting" in done.stderr
    done = etcher("export", url, "-o", str(tmp_path / "y.json"), "--no-progress", cwd=tmp_path)
    assert done.stderr == ""


# --------------------------------------------------------------------------- Ctrl-C

# Runs the real command line with a test-only pause: at the chosen point the child says
# so on stderr and blocks reading its stdin, which the test keeps open. The test then
# sends SIGINT, so the interrupt lands exactly there, however loaded the machine is.
PAUSING_CLI = """
import os, signal, sys

# A terminal delivers Ctrl-C to the foreground program; a test run started in the
# background (nohup, "&" in a script, some CI runners) hands its children SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)

import redis.client
from etcher_contrib.cli import main
from etcher_contrib.cli.progress import Progress
from etcher_sqlite.backend import SQLiteBackend
from etcher_sqlite.pipeline import SQLitePipeline
from etcher_sqlite.scope import UnitScope
from etcher_redis.backend import RedisBackend

where = os.environ["ETCHER_TEST_PAUSE"]
state = {"phase": None, "paused": False}


def pause():
    if state["paused"]:
        return
    state["paused"] = True
    sys.stderr.write("etcher-test: paused\\n")
    sys.stderr.flush()
    sys.stdin.buffer.read(1)  # the test's SIGINT interrupts this read
    raise SystemExit("etcher-test: released without an interrupt")


stage, advance = Progress.stage, Progress.advance


def staged(self, name, total):
    state["phase"] = name
    stage(self, name, total)


def advanced(self, n):
    advance(self, n)
    if where == "reading" and state["phase"] == "reading":
        pause()  # some nodes are parsed, nothing is written yet


def pausing(execute):
    def run(self, *args, **kwargs):
        # The import's one atomic write: its pipeline carries every node.
        big = state["phase"] == "storing" and len(self) >= 1000
        if big and where == "before-commit":
            pause()
        result = execute(self, *args, **kwargs)
        if big:
            state["written"] = True
            if where == "after-commit" and isinstance(self, redis.client.Pipeline):
                pause()  # on Redis, EXEC was the commit
        return result

    return run


def pausing_commit(commit):
    def run(self, checks, writes):
        # On Redis the import's one atomic write is a checked commit (one script).
        big = state["phase"] == "storing" and len(writes) >= 1000
        if big and where == "before-commit":
            pause()
        result = commit(self, checks, writes)
        if big and result:
            state["written"] = True
            if where == "after-commit":
                pause()  # the script applied every write at once
        return result

    return run


def pausing_unlinking_commit(commit):
    def run(self, checks, writes, plan):
        # Replacing the old document can be a checked commit that also collects it.
        big = state["phase"] == "storing" and len(writes) >= 1000
        if big and where == "before-commit":
            pause()
        result = commit(self, checks, writes, plan)
        if big and result.status == "applied":
            state["written"] = True
            if where == "after-commit":
                pause()
        return result

    return run


def pausing_scope_commit(commit_writes):
    def run(self, writes, created=(), fresh=None):
        # On SQLite a unit holding its write scope commits through the scope: the
        # import's one atomic write is this call (its transaction ends inside it).
        # New nodes may come as fresh contents rather than writes.
        size = len(writes) + len(fresh or ())
        big = state["phase"] == "storing" and size >= 1000
        if big:
            if where == "before-commit":
                pause()
            state["written"] = True  # the scope's end (below) is then the commit
        return commit_writes(self, writes, created, fresh)

    return run


def ending(end_scope):
    def run(self, conn, commit):
        end_scope(self, conn, commit)
        if commit and state.get("written") and where == "after-commit":
            pause()  # on SQLite, the unit's transaction commits when its scope ends

    return run


Progress.stage, Progress.advance = staged, advanced
SQLitePipeline.execute = pausing(SQLitePipeline.execute)
SQLiteBackend._end_scope = ending(SQLiteBackend._end_scope)
UnitScope.commit_writes = pausing_scope_commit(UnitScope.commit_writes)
redis.client.Pipeline.execute = pausing(redis.client.Pipeline.execute)
RedisBackend.checked_commit = pausing_commit(RedisBackend.checked_commit)
RedisBackend.unlinking_commit = pausing_unlinking_commit(RedisBackend.unlinking_commit)
raise SystemExit(main(sys.argv[1:]))
"""


def _wait_for(process: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Read the process's stderr until ``marker`` shows up (or the process ends)."""
    assert process.stderr is not None
    seen = b""
    while marker not in seen:
        chunk = os.read(process.stderr.fileno(), 65536)
        assert chunk, f"the process ended before {marker!r}: {seen[-2000:]!r}"
        seen += chunk
    return seen


@pytest.mark.parametrize("where", ["reading", "before-commit", "after-commit"])
def test_ctrl_c_during_import_leaves_old_or_new_value(
    url: str, tmp_path: Path, medium_file: Path, where: str
) -> None:
    with DB(url) as db:
        db["data"] = {"old": True}
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSING_CLI, "import", url, "data", str(medium_file), "--progress"],
        cwd=tmp_path,
        env={**os.environ, "ETCHER_TEST_PAUSE": where},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        seen = _wait_for(process, b"etcher-test: paused")
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = (seen + err).decode(errors="replace")
    assert "Traceback" not in stderr
    assert process.returncode == 130, stderr[-2000:]
    assert "etcher: interrupted" in stderr
    with DB(url) as db:
        assert db.check().ok
        if where == "after-commit":  # the write had landed: the new value, whole
            assert len(db["data"]["items"]) == MEDIUM_ITEMS
            assert db["data"]["items"][0]["common"].uid == db["data"]["common"].uid
        else:  # interrupted before its commit: not a single node of the import
            assert db["data"]() == {"old": True}
