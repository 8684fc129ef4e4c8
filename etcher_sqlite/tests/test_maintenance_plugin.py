"""maintenance(), and registration with etcher's plugin registry."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from etcher_sqlite import SQLiteBackend


def fill(store: SQLiteBackend, count: int, size: int) -> None:
    pipe = store.pipeline()
    for i in range(count):
        pipe.hset(f"big:{i}", mapping={"blob": os.urandom(size)})
    pipe.execute()


def traced(store: SQLiteBackend, call: Any) -> list[str]:
    statements: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return statements


def test_maintenance_compacts_after_large_deletes(store: SQLiteBackend, db_path: Path) -> None:
    fill(store, 400, 8000)
    store.set("keep", "me")
    store.rpush("keep-list", 1, 2, 3)
    pipe = store.pipeline()
    pipe.delete(*(f"big:{i}" for i in range(400)))
    pipe.execute()
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    before = db_path.stat().st_size
    assert before > 3_000_000  # deleting frees pages but does not shrink the file
    store.maintenance()
    assert db_path.stat().st_size < before / 10
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated
    assert store.get("keep") == b"me"
    assert store.lrange("keep-list", 0, -1) == [b"1", b"2", b"3"]
    assert "VACUUM" not in traced(store, store.maintenance)  # nothing left to reclaim


def test_vacuum_runs_only_past_the_threshold(store: SQLiteBackend, db_path: Path) -> None:
    fill(store, 300, 8000)
    statements = traced(store, store.maintenance)
    assert "VACUUM" not in statements  # nothing free yet
    assert "PRAGMA wal_checkpoint(TRUNCATE)" in statements
    assert "PRAGMA optimize" in statements
    store.delete("big:0")  # a few free pages: far below a quarter of the file
    assert "VACUUM" not in traced(store, store.maintenance)
    pipe = store.pipeline()
    pipe.delete(*(f"big:{i}" for i in range(1, 250)))
    pipe.execute()
    size = db_path.stat().st_size
    assert "VACUUM" in traced(store, store.maintenance)
    assert db_path.stat().st_size < size / 2
    assert store.exists(*(f"big:{i}" for i in range(250, 300))) == 50


def test_maintenance_with_other_readers_and_writers(
    store: SQLiteBackend, other: SQLiteBackend
) -> None:
    fill(store, 50, 1000)
    pipe = other.pipeline()
    pipe.delete(*(f"big:{i}" for i in range(50)))
    pipe.execute()
    other.set("x", 1)
    store.maintenance()
    other.set("y", 2)
    assert store.exists("x", "y") == 2


@pytest.fixture
def plugin_module() -> Any:
    sys.modules.pop("etcher_sqlite._plugin", None)
    return importlib.import_module("etcher_sqlite._plugin")


def test_plugin_registers_the_backend(plugin_module: Any) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    plugin_module.etcher_register_backends(register=lambda *a, **k: calls.append((a, k)))
    assert calls == [
        (
            ("sqlite",),
            {
                "schemes": ["sqlite"],
                "target": "etcher_sqlite.backend:SQLiteBackend",
                "description": "SQLite file (the default, embedded)",
            },
        )
    ]


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, etcher_sqlite._plugin; "
        "heavy = [m for m in ('sqlite3', 'etcher_sqlite.backend') if m in sys.modules]; "
        "print(heavy)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_opens_sqlite_paths_and_urls(tmp_path: Path) -> None:
    registry = pytest.importorskip("etcher.registry")
    assert registry.backend_class("sqlite") is SQLiteBackend
    by_path = registry.open_backend(tmp_path / "a.db")
    by_url = registry.open_backend(f"sqlite:///{tmp_path}/a.db", timeout=3)
    try:
        assert isinstance(by_path, SQLiteBackend) and isinstance(by_url, SQLiteBackend)
        by_path.set("k", 1)
        assert by_url.get("k") == b"1"
        assert by_url.timeout == 3
    finally:
        by_path.close()
        by_url.close()
