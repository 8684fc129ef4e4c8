"""The on-disk layout of an etcher SQLite store, and opening/creating it safely.

Tables (all ``WITHOUT ROWID`` so a lookup by primary key is one B-tree descent):

``meta(key, value)``
    ``format = 'etcher'`` marks the file as an etcher store and
    ``schema_version`` says which layout this is (also in ``PRAGMA user_version``).
``keys(name, type, version, lo, hi, value)``
    One row per live key. ``type`` is 1 (string), 2 (hash) or 3 (list).
    ``version`` is a random 63-bit stamp written with every change of the row,
    which is what ``WATCH`` compares. ``hi - lo`` is the length of a container
    in O(1). ``value`` holds a string key's bytes, or a small container's whole
    content packed (:mod:`etcher_sqlite.packed`; then ``lo = 0``, ``hi`` = its
    length). A container too big to pack has ``value`` NULL and its members in:
``hashes(name, field, value)`` and ``list_items(name, pos, value)``
    The members of spilled hash and list keys; a spilled list's items sit at the
    dense positions ``lo <= pos < hi``. A key with no members has no ``keys``
    row at all (Redis semantics: empty containers do not exist).

Schema history: version 1 (etcher-sqlite 0.3.0 before the packed format) had no
packed containers (every container was spilled) and a ``meta.write_counter``
that every write bumped and used as the version. A version 1 file is a valid
version 2 file once that counter is gone, so :func:`upgrade` converts it in
place, in one short transaction, the first time this release opens it.
"""

from __future__ import annotations

import sqlite3

from etcher.errors import StoreCorrupt

SCHEMA_VERSION = 2
"""The layout written by this version of etcher-sqlite."""

UPGRADABLE = 1
"""The oldest layout :func:`upgrade` converts in place."""

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
    ('schema_version', {SCHEMA_VERSION});
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
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StoreCorrupt(
            f"{path} uses etcher-sqlite schema {version}, this release reads up to "
            f"{SCHEMA_VERSION}; upgrade etcher-sqlite"
        )
    if not isinstance(version, int) or version < UPGRADABLE:
        raise StoreCorrupt(
            f"{path} uses etcher-sqlite schema {version!r}, this release reads "
            f"{UPGRADABLE} to {SCHEMA_VERSION}; open it with the etcher-sqlite release that "
            "wrote it, `etcher export` it there and `etcher import` it here (docs/cli.md)"
        )
    missing = _TABLES - tables
    if version == 1 and not isinstance(rows.get("write_counter"), int):
        missing = missing | {"write_counter"}
    if missing:
        raise StoreCorrupt(
            f"{path} is a damaged etcher store (missing: {', '.join(sorted(missing))})"
        )
    return True


def needs_upgrade(conn: sqlite3.Connection) -> bool:
    """Whether the (checked) store behind ``conn`` has an older layout than this release's."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return row is not None and row[0] < SCHEMA_VERSION


def upgrade(conn: sqlite3.Connection, path: str) -> None:
    """Convert a schema 1 store to schema 2 in place, in one transaction.

    Schema 1 containers are all in member rows, which schema 2 reads as spilled
    containers, so only the write counter goes (versions become random stamps;
    a key's old counter value stays its version until its next write) and the
    version numbers change. Dropping the counter also makes any process still
    running the old release fail its next write instead of writing a layout it
    no longer understands. Concurrent openers serialize on ``BEGIN IMMEDIATE``
    and the second finds nothing left to do.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if check_existing(conn, path) and needs_upgrade(conn):
            conn.execute("DELETE FROM meta WHERE key = 'write_counter'")
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,)
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


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
