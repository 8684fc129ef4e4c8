"""The on-disk layout of an etcher SQLite store, and opening/creating it safely.

Tables (all ``WITHOUT ROWID`` so a lookup by primary key is one B-tree descent):

``meta(key, value)``
    ``format = 'etcher'`` marks the file as an etcher store, ``schema_version``
    says which layout this is, and ``write_counter`` is the global counter every
    write transaction bumps; its value becomes the ``version`` of each key written.
``keys(name, type, version, lo, hi, value)``
    One row per live key. ``type`` is 1 (string), 2 (hash) or 3 (list).
    ``version`` changes on every write to the key and is never reused, which is
    what ``WATCH`` compares. For a list, items sit at the dense positions
    ``lo <= pos < hi``; a hash keeps ``lo = 0`` and ``hi`` = its number of
    fields, so ``hi - lo`` is the length of either container in O(1).
    ``value`` holds a string key's bytes.
``hashes(name, field, value)`` and ``list_items(name, pos, value)``
    The members of hash and list keys. A key with no members has no ``keys``
    row at all (Redis semantics: empty containers do not exist).
"""

from __future__ import annotations

import sqlite3

from etcher.errors import StoreCorrupt

SCHEMA_VERSION = 1
"""The layout written by this version of etcher-sqlite."""

FORMAT_MARKER = "etcher"
"""``meta.format`` of every etcher store."""

APPLICATION_ID = 0x45544348
"""``PRAGMA application_id`` ("ETCH"), so tools like ``file`` can tell the file apart."""

STRING, HASH, LIST = 1, 2, 3
"""The ``keys.type`` codes."""

_CREATE = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES
    ('format', '{FORMAT_MARKER}'),
    ('schema_version', {SCHEMA_VERSION}),
    ('write_counter', 0);
CREATE TABLE keys (
    name    TEXT PRIMARY KEY,
    type    INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lo      INTEGER,
    hi      INTEGER,
    value   BLOB
) WITHOUT ROWID;
CREATE TABLE hashes (
    name  TEXT NOT NULL,
    field BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (name, field)
) WITHOUT ROWID;
CREATE TABLE list_items (
    name  TEXT NOT NULL,
    pos   INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (name, pos)
) WITHOUT ROWID;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""

_TABLES = frozenset({"meta", "keys", "hashes", "list_items"})


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def check_existing(conn: sqlite3.Connection, path: str) -> bool:
    """Validate the file behind ``conn``; return False if it is still empty.

    Reads only, so a foreign database is never touched (not even switched to WAL)
    before it is recognised. Raises :class:`StoreCorrupt` naming ``path`` for an
    SQLite file that is not an etcher store or is one from a newer release.
    """
    tables = _tables(conn)
    if not tables:
        return False
    if "meta" not in tables:
        raise StoreCorrupt(
            f"{path} is an SQLite database but not an etcher store "
            f"(it has tables {', '.join(sorted(tables))}); open another file"
        )
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if rows.get("format") != FORMAT_MARKER:
        raise StoreCorrupt(
            f"{path} is an SQLite database but not an etcher store "
            f"(its meta table has no format = '{FORMAT_MARKER}' row); open another file"
        )
    version = rows.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreCorrupt(
            f"{path} uses etcher-sqlite schema {version!r}, this release reads up to "
            f"{SCHEMA_VERSION}; upgrade etcher-sqlite"
        )
    missing = _TABLES - tables
    if missing or not isinstance(rows.get("write_counter"), int):
        raise StoreCorrupt(
            f"{path} is a damaged etcher store (missing: "
            f"{', '.join(sorted(missing)) or 'write_counter'})"
        )
    return True


def create(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in an empty file, unless another process beat us to it.

    The emptiness check is repeated under ``BEGIN IMMEDIATE`` because two
    processes may open the same new file at once; only one creates the tables.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not check_existing(conn, path):
            # executescript() would COMMIT first; run the statements one by one instead.
            for statement in _CREATE.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
