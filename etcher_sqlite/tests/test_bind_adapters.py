"""``bytes`` and ``None`` parameters reach SQLite without the ``sqlite3`` module's failed
adapter lookup (an ``AttributeError`` raised and cleared per parameter), and nothing
bound changes: for this backend, for other users of ``sqlite3``, or for an adapter the
application registered itself."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import etcher_sqlite.ops  # noqa: F401  # (registers the adapters)


def test_bytes_and_none_have_identity_adapters() -> None:
    for value in (b"", b"\x00\xff packed", None):
        adapter = sqlite3.adapters[(type(value), sqlite3.PrepareProtocol)]
        assert adapter(value) is value


def test_what_a_connection_binds_is_unchanged() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        row = conn.execute(
            "SELECT ?, typeof(?), ?, typeof(?), ?", (b"\x00a", b"\x00a", None, None, b"")
        ).fetchone()
    finally:
        conn.close()
    assert row == (b"\x00a", "blob", None, "null", b"")


def test_an_adapter_the_application_registered_first_stays() -> None:
    code = (
        "import sqlite3\n"
        "mine = lambda b: b'mine'\n"
        "sqlite3.register_adapter(bytes, mine)\n"
        "import etcher_sqlite.ops\n"
        "assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)] is mine\n"
        "assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
