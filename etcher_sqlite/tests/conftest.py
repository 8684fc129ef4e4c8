"""Fixtures for the SQLite backend's own tests."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcher_sqlite import SQLiteBackend


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the store under test lives."""
    return tmp_path / "store.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteBackend]:
    """A fresh file store."""
    backend = SQLiteBackend(db_path)
    yield backend
    backend.close()


@pytest.fixture
def other(store: SQLiteBackend, db_path: Path) -> Iterator[SQLiteBackend]:
    """A second, independent backend on the same file ("another client")."""
    backend = SQLiteBackend(db_path)
    yield backend
    backend.close()


@pytest.fixture
def raw(store: SQLiteBackend, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the store's file, to look under the hood."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    conn.close()


RunPython = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_python() -> RunPython:
    """Run a snippet in a fresh interpreter (``sys.argv[1:]`` = the extra args); fail on error."""

    def run(code: str, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            pytest.fail(f"subprocess failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    return run


def start_python(code: str, *args: object) -> subprocess.Popen[str]:
    """Start a snippet in a fresh interpreter without waiting for it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def start() -> Callable[..., subprocess.Popen[str]]:
    """:func:`start_python` as a fixture (test modules cannot import conftest)."""
    return start_python
