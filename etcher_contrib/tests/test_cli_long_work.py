"""Long work through the ``etcher`` command line: 100,000 nodes, progress bars and Ctrl-C.

Each test drives ``python -m etcher_contrib`` in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.jsonio import dumps

pytest.importorskip("etcher_sqlite", reason="the CLI tests use the SQLite backend")

NODES = 100_000


def big_value() -> dict[str, Any]:
    """99,999 nodes, so 100,000 with the namespace root: the top dict, the items list,
    49,997 item dicts and their tag lists, a dict (with a list) shared by every 1000th
    item, so the file carries $id/$ref too, and an empty dict."""
    common = {"kind": "common", "weights": [0.5, float("inf")]}
    items: list[Any] = []
    for i in range(49_997):
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


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "state.db")
        return
    import redis

    server = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(server)
    client.flushall()  # the server is shared by the session: each test starts empty
    try:
        yield server
    finally:
        client.flushall()
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


def _wait_for(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """Read the process's stderr until ``marker`` shows up; return what was read."""
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    fd = process.stderr.fileno()
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{marker!r} never appeared in: {seen[-500:]!r}"
        ready, _w, _x = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the process ended before {marker!r}: {seen[-500:]!r}"
            seen += chunk
    return seen


@pytest.mark.parametrize("phase", ["reading", "storing"])
def test_ctrl_c_during_import_leaves_old_or_new_value(
    url: str, tmp_path: Path, big_file: Path, phase: str
) -> None:
    with DB(url) as db:
        db["data"] = {"old": True}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "etcher_contrib",
            "import",
            url,
            "data",
            str(big_file),
            "--progress",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        seen = _wait_for(process, phase.encode(), timeout=120)
        time.sleep(0.3)  # well inside the phase (each takes seconds for this file)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = (seen + err).decode(errors="replace")
    assert "Traceback" not in stderr
    if process.returncode == 130:
        assert "etcher: interrupted" in stderr
    else:  # the write committed just before the signal landed
        assert process.returncode == 0, stderr[-2000:]
    with DB(url) as db:
        assert db.check().ok
        old = "old" in db["data"]
        if old:
            assert db["data"]() == {"old": True}
        else:
            assert len(db["data"]["items"]) == 49_997
            assert db["data"]["items"][0]["common"].uid == db["data"]["common"].uid
    if phase == "reading":
        assert old, "an import interrupted before it started writing changed the store"
