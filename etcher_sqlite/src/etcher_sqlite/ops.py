"""What each storage command does in SQL.

A small hash or list is *packed*: its whole content is one BLOB in its
``keys`` row (:mod:`etcher_sqlite.packed`); a big one is *spilled* to one row
per member in ``hashes``/``list_items`` and its ``keys.value`` is NULL.
Reads are single SQL statements (``keys``, joined with the member table only
for a spilled container), so outside a transaction each one is atomic on its
own. Writes run inside a transaction through a :class:`Tx`, which caches the
``keys`` rows it has seen (with packed content decoded), changes them in
memory and writes the changed ones back in one ``executemany``
(:meth:`Tx.flush`) before any read and before ``COMMIT``: several writes to one
packed container in a batch cost one row write. The commands core sends in bulk (set,
hset, hdel, rpush, lpush, delete) are implemented for a *run* of consecutive
calls at once, so a pipeline of a thousand ``hset`` costs a handful of statements.

Every function here expects normalized arguments (``str`` keys, ``bytes``
values, checked ints); :mod:`etcher_sqlite.commands` does that at call time.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Any

from etcher.errors import StoreIndexError, StoreValueError, WatchError, WrongTypeError
from etcher_sqlite import packed
from etcher_sqlite.schema import HASH, LIST, STRING

Meta = list[Any]
"""A cached ``keys`` row: ``[type, lo, hi, value, content]``.

``content`` is the decoded dict/list of a packed container once something
needed it (``None`` until then, and always for strings and spilled
containers). A container is spilled when both ``value`` and ``content`` are
``None``.
"""

Call = tuple[Any, ...]
"""The normalized arguments of one queued command."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_KINDS = {STRING: "string", HASH: "hash", LIST: "list"}
TYPE_NAMES = {STRING: b"string", HASH: b"hash", LIST: b"list"}

# Statements are module constants so sqlite3's per-connection statement cache
# (keyed by SQL text) prepares each one once.
SQL_META = "SELECT type, lo, hi, value FROM keys WHERE name = ?"
SQL_META_IN = "SELECT name, type, lo, hi, value FROM keys WHERE name IN ({})"
SQL_VERSION = "SELECT version FROM keys WHERE name = ?"
SQL_VERSIONS_IN = "SELECT name, version FROM keys WHERE name IN ({})"
# Every column of the row is written, so REPLACE (delete + insert of the one row of a
# WITHOUT ROWID table, no triggers or foreign keys) means the same as an upsert; it skips
# the DO UPDATE step (measured: a write_doc-sized commit of 8 rows, 72 -> 68 µs of bare
# statements).
SQL_UPSERT_KEY = (
    "INSERT OR REPLACE INTO keys (name, type, version, lo, hi, value) VALUES (?, ?, ?, ?, ?, ?)"
)
UPSERT_ROWS = 16
"""Up to this many whole ``keys`` rows are written by one statement of as many ``VALUES``
(``SQL_UPSERT_KEYS[n]``, the rows' fields in one flat list); more by ``executemany``,
which steps its statement once per row, ``sqlite3`` releasing and taking back the GIL
around each step (a small document's 8 rows: ~9,500 of 412,000 instructions)."""
SQL_UPSERT_KEYS = ["", SQL_UPSERT_KEY] + [
    SQL_UPSERT_KEY + ", (?, ?, ?, ?, ?, ?)" * (n - 1) for n in range(2, UPSERT_ROWS + 1)
]
# A bulk write's new keys (see create_many): a row that exists already is left alone.
SQL_CREATE_KEY = (
    "INSERT OR IGNORE INTO keys (name, type, version, lo, hi, value) VALUES (?, ?, ?, ?, ?, ?)"
)
SORT_ABOVE = 64
"""Rows a flush writes or deletes in key order once there are more than this many.

In key order, consecutive rows fall on the same B-tree pages, so a big batch
touches each page once instead of jumping around a table larger than SQLite's
page cache (deleting a 100,000-level chain: see docs/performance.md)."""
SQL_DELETE_KEY = "DELETE FROM keys WHERE name = ?"
SQL_DROP_HASH = "DELETE FROM hashes WHERE name = ?"
SQL_DROP_LIST = "DELETE FROM list_items WHERE name = ?"
SQL_PUT_FIELD = (
    "INSERT INTO hashes (name, field, value) VALUES (?, ?, ?) "
    "ON CONFLICT (name, field) DO UPDATE SET value = excluded.value"
)
SQL_ADD_FIELD = "INSERT OR IGNORE INTO hashes (name, field, value) VALUES (?, ?, ?)"
SQL_DEL_FIELD = "DELETE FROM hashes WHERE name = ? AND field = ?"
SQL_GET_FIELD = "SELECT value FROM hashes WHERE name = ? AND field = ?"
SQL_FIELD_EXISTS = "SELECT 1 FROM hashes WHERE name = ? AND field = ?"
SQL_FIELDS_EXIST = (
    "SELECT h.name, h.field FROM (VALUES {}) AS v "
    "JOIN hashes AS h ON h.name = v.column1 AND h.field = v.column2"
)
SQL_PUT_ITEM = "INSERT INTO list_items (name, pos, value) VALUES (?, ?, ?)"
SQL_POP_ONE = "DELETE FROM list_items WHERE name = ? AND pos = ? RETURNING value"
SQL_POP_RANGE = (
    "DELETE FROM list_items WHERE name = ? AND pos >= ? AND pos < ? RETURNING pos, value"
)
SQL_GET_ITEM = "SELECT value FROM list_items WHERE name = ? AND pos = ?"
# A pop whose item the unit already read (list_one): no RETURNING.
SQL_DEL_ITEM = "DELETE FROM list_items WHERE name = ? AND pos = ?"
SQL_SET_ITEM = "UPDATE list_items SET value = ? WHERE name = ? AND pos = ?"
SQL_TRIM_BELOW = "DELETE FROM list_items WHERE name = ? AND pos < ?"
SQL_TRIM_FROM = "DELETE FROM list_items WHERE name = ? AND pos >= ?"

SQL_GET = "SELECT type, value FROM keys WHERE name = ?"
SQL_TYPE = "SELECT type FROM keys WHERE name = ?"
SQL_LEN = "SELECT type, hi - lo FROM keys WHERE name = ?"
SQL_EXISTS_IN = "SELECT name FROM keys WHERE name IN ({})"
# The member tables are only looked at for a spilled container (k.value IS NULL); a
# packed one (or a string) answers from its keys row alone.
# hget, hgetall and lrange also return the key's lo/hi: with type and value that is
# the whole row a write scope's Tx caches (see SCOPE).
SQL_HGET = (
    "SELECT k.type, k.value, CASE WHEN k.value IS NULL THEN "
    "(SELECT value FROM hashes WHERE name = k.name AND field = ?2) END, k.lo, k.hi "
    "FROM keys AS k WHERE k.name = ?1"
)
SQL_HEXISTS = (
    "SELECT k.type, k.value, CASE WHEN k.value IS NULL THEN "
    "EXISTS (SELECT 1 FROM hashes WHERE name = k.name AND field = ?2) END "
    "FROM keys AS k WHERE k.name = ?1"
)
SQL_HMGET = (
    "SELECT k.type, k.value, h.field, h.value FROM keys AS k LEFT JOIN hashes AS h "
    "ON k.value IS NULL AND h.name = k.name AND h.field IN ({}) WHERE k.name = ?"
)
# The keys row, then a spilled hash's rows, in one statement (one snapshot). A UNION ALL
# rather than a join: each field row then carries two columns instead of six, which
# made reading a 2,000-field hash 1.4 -> 0.75 ms. A packed hash has no field rows.
SQL_HGETALL = (
    "SELECT type, value FROM keys WHERE name = ?1 "
    "UNION ALL SELECT field, value FROM hashes WHERE name = ?1"
)
# Inside a write scope the keys row is kept whole (the scope's row cache needs lo/hi).
SQL_HGETALL_SCOPED = (
    "SELECT type, value, lo, hi FROM keys WHERE name = ?1 "
    "UNION ALL SELECT field, value, NULL, NULL FROM hashes WHERE name = ?1"
)
# A list index i maps to position lo + i (i >= 0) or hi + i (i < 0). Positions
# outside [lo, hi) hold no row, so out-of-range bounds clip by themselves.
_POS = "(CASE WHEN ?{0} >= 0 THEN k.lo + ?{0} ELSE k.hi + ?{0} END)"
SQL_LINDEX = (
    "SELECT k.type, k.value, CASE WHEN k.value IS NULL THEN "
    f"(SELECT value FROM list_items WHERE name = k.name AND pos = {_POS.format(1)}) END "
    "FROM keys AS k WHERE k.name = ?2"
)
SQL_LRANGE = (
    "SELECT k.type, k.value, i.value, k.lo, k.hi FROM keys AS k LEFT JOIN list_items AS i "
    f"ON k.value IS NULL AND i.name = k.name AND i.pos BETWEEN {_POS.format(1)} "
    f"AND {_POS.format(2)} WHERE k.name = ?3 ORDER BY i.pos"
)

SQL_HGETALL_MANY = (
    "WITH v (i, name) AS (VALUES {}) SELECT v.i, k.type, k.value, h.field, h.value, k.lo, k.hi "
    "FROM v "
    "JOIN keys AS k ON k.name = v.name "
    "LEFT JOIN hashes AS h ON k.value IS NULL AND h.name = k.name"
)
_POS_V = "(CASE WHEN v.{0} >= 0 THEN k.lo + v.{0} ELSE k.hi + v.{0} END)"
SQL_LRANGE_MANY = (
    "WITH v (i, name, s, e) AS (VALUES {}) SELECT v.i, k.type, k.value, it.value FROM v "
    "JOIN keys AS k ON k.name = v.name LEFT JOIN list_items AS it ON k.value IS NULL "
    f"AND it.name = k.name AND it.pos BETWEEN {_POS_V.format('s')} AND {_POS_V.format('e')} "
    "ORDER BY v.i, it.pos"
)

CHUNK = 256
"""Most names bound in one ``IN (...)``/``VALUES`` query; larger sets go in several."""


# --- helpers ----------------------------------------------------------------------


def wrong_type(name: str, found: int, wanted: int) -> WrongTypeError:
    """The error for a command of kind ``wanted`` on a key holding a ``found``."""
    return WrongTypeError(f"WRONGTYPE key {name!r} holds a {_KINDS[found]}, not a {_KINDS[wanted]}")


def bind_bytes_and_none_as_they_are() -> None:
    """Give ``bytes`` and ``None`` parameters an identity adapter in ``sqlite3``, unless one
    is registered already (the application's, which then stays).

    The ``sqlite3`` module binds ``int``, ``float`` and ``str`` directly but looks every
    ``bytes`` and ``None`` parameter up in its adapter registry first; finding nothing, it
    asks the ``PrepareProtocol`` type for ``__adapt__``, and that type raises (then clears)
    an ``AttributeError``, a formatted message each time: about 0.3 µs per parameter, ~11 a
    small document's write (its field names, packed rows and one NULL). A registered
    adapter is found first. Both are C calls returning their argument
    (``bytes.__bytes__(b)`` is ``b`` for exact ``bytes``, and cheaper to call than the
    ``bytes`` type; ``{}.get(None)`` is ``None``), so what is bound, for this
    backend and for any other user of ``sqlite3`` in the process, is unchanged: adapters
    are looked up by exact type, and ``bytes`` and ``None`` are not among the types whose
    adapting turns the module's direct binding off.
    """
    for cls, same in ((bytes, bytes.__bytes__), (type(None), {}.get)):
        if (cls, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(cls, same)


bind_bytes_and_none_as_they_are()


AFTER_WATCH_CHECK = threading.local()
"""``hook``: the conformance kit's probe, called between the watch check and the apply.

Set by :meth:`SQLitePipeline.execute` for its thread only while the kit asks for it
(``etcher.testing.storage.INTERLEAVE_HOOK``); ``None`` otherwise.
"""

SCOPE = threading.local()
"""``tx``: the :class:`Tx` of this thread's write unit scope, or ``None``.

A write scope holds ``BEGIN IMMEDIATE`` from its first read to its commit, so no
other connection can change a row meanwhile and every change this connection makes
goes through a :class:`Tx` that is flushed before the batch ends. One Tx kept for
the whole scope therefore always matches the table: the rows its reads returned
(``hget``/``hgetall``/``lrange`` add them) and its batches wrote need no second
``SELECT`` when a later batch of the scope writes those keys (the usual unit:
read a node, then write it). It is dropped when the scope ends, when a batch using
it fails (its cache may then hold changes that were never flushed) and on any
native SQLite error (which may have rolled the transaction back), and it is only
used while the connection it belongs to is inside a transaction.
"""


def scoped_tx(conn: sqlite3.Connection) -> Tx | None:
    """The write scope's :class:`Tx` for ``conn``, if one is open and still valid."""
    tx: Tx | None = getattr(SCOPE, "tx", None)
    if tx is not None and tx.conn is conn and conn.in_transaction:
        return tx
    return None


def drop_scoped_tx(conn: sqlite3.Connection | None = None) -> None:
    """Forget this thread's scope Tx (only if it belongs to ``conn``, when given)."""
    tx = getattr(SCOPE, "tx", None)
    if tx is not None and (conn is None or tx.conn is conn):
        SCOPE.tx = None


_INTEGER = re.compile(rb"-?[1-9][0-9]{0,18}|0")


def parse_int(raw: bytes, what: str) -> int:
    """A stored counter as Redis reads it: plain base-10, no sign ``+``, spaces or leading zeros."""
    if _INTEGER.fullmatch(raw):
        value = int(raw)
        if INT64_MIN <= value <= INT64_MAX:
            return value
    raise StoreValueError(f"{what} is not an integer or out of range: {raw[:40]!r}")


def add_int(current: int, amount: int, what: str) -> int:
    """``current + amount``, refused outside the signed 64-bit range as Redis does."""
    total = current + amount
    if not INT64_MIN <= total <= INT64_MAX:
        raise StoreValueError(f"increment or decrement of {what} would overflow")
    return total


def _padded(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


@lru_cache(maxsize=64)
def _in_sql(template: str, size: int, group: str) -> str:
    return template.format(", ".join(repeat(group, size)))


def select_in(
    conn: sqlite3.Connection,
    template: str,
    items: Sequence[Any],
    group: str = "?",
    pad: Any = None,
) -> Iterator[Any]:
    """Yield the rows of ``template`` with its ``{}`` replaced by ``len(items)`` parameter groups.

    Chunks are padded to a power of two, so only a few distinct SQL texts ever
    exist and all of them stay in the statement cache. The padding repeats the
    last item (harmless in ``IN``/``VALUES`` lookups) unless ``pad`` gives an
    item that matches nothing. Rows come one chunk at a time (each chunk is
    fetched whole before the next runs), so a big batch never holds every row
    of every chunk at once.
    """
    width = group.count("?")
    for start in range(0, len(items), CHUNK):
        chunk = list(items[start : start + CHUNK])
        size = _padded(len(chunk))
        chunk.extend(repeat(chunk[-1] if pad is None else pad, size - len(chunk)))
        params: Sequence[Any] = chunk
        if width > 1:
            params = [value for item in chunk for value in item]
        yield from conn.execute(_in_sql(template, size, group), params).fetchall()


def select_rows(conn: sqlite3.Connection, template: str, items: list[Any]) -> list[Any]:
    """:func:`select_in`'s rows as one list, for single ``?`` groups and at least one item.

    A batch of at most :data:`CHUNK` items (most levels of a document) is one statement
    here, without the generator and its copies; one item is ``IN (?)``, which SQLite
    runs as ``= ?``.
    """
    n = len(items)
    if n > CHUNK:
        return list(select_in(conn, template, items))
    size = 1 << (n - 1).bit_length()  # padded as select_in pads
    if size > n:
        items = [*items, *repeat(items[-1], size - n)]
    return conn.execute(_in_sql(template, size, "?"), items).fetchall()


def versions(conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, int | None]:
    """The current ``version`` of each key (``None`` for a missing key)."""
    if len(names) == 1:
        row = conn.execute(SQL_VERSION, (names[0],)).fetchone()
        return {names[0]: None if row is None else row[0]}
    found: dict[str, int | None] = dict.fromkeys(names)
    found.update(select_in(conn, SQL_VERSIONS_IN, names))
    return found


_VERSIONS = random.Random()  # seeded from os.urandom
if hasattr(os, "register_at_fork"):
    # A forked child must not repeat its parent's stamps: it draws from a fresh seed.
    os.register_at_fork(after_in_child=_VERSIONS.seed)
_stamp = partial(_VERSIONS.getrandbits, 63)


def new_version() -> int:
    """A fresh version stamp: 63 random bits.

    Versions only need to differ from every earlier version of the same key, so a
    random stamp replaces the global write counter every commit used to bump (one
    statement and one dirtied page less). A private generator (seeded from
    ``os.urandom``, re-seeded in every forked child) rather than ``os.urandom``
    per stamp, a system call per commit; and not the ``random`` module's own,
    which a program may seed with a constant in each of its processes.
    """
    return _stamp()


class Tx:
    """One write transaction's view of the ``keys`` table.

    Commands read a key's row once (:meth:`get`/:meth:`load`), change the cached
    copy (for a packed container, its decoded content) and mark it dirty;
    :meth:`flush` packs and writes every dirty row back stamped with a fresh
    version, so a watcher sees a new version for every key this transaction touched.
    """

    __slots__ = ("conn", "dirty", "meta")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.meta: dict[str, Meta | None] = {}
        self.dirty: dict[str, None] = {}  # a dict: rows are written in the order changed

    def get(self, name: str) -> Meta | None:
        """The cached row of ``name`` (``None``: the key does not exist)."""
        try:
            return self.meta[name]
        except KeyError:
            row = self.conn.execute(SQL_META, (name,)).fetchone()
            meta = None if row is None else [*row, None]
            self.meta[name] = meta
            return meta

    def load(self, names: Iterable[str]) -> None:
        """Fetch the rows of all ``names`` not cached yet, in as few queries as possible."""
        cache = self.meta
        missing = [name for name in dict.fromkeys(names) if name not in cache]
        if len(missing) == 1:
            self.get(missing[0])
        elif missing:
            cache.update(dict.fromkeys(missing))
            for row in select_in(self.conn, SQL_META_IN, missing):
                cache[row[0]] = [row[1], row[2], row[3], row[4], None]

    def put(self, name: str, meta: Meta | None) -> None:
        """Record the new row of ``name`` (``None`` deletes the key)."""
        self.meta[name] = meta
        self.dirty[name] = None

    def flush(self, rows: list[tuple[Any, ...]] | None = None) -> None:
        """Write the dirty rows back (before a read sees the table, and before COMMIT).

        A packed container is re-packed here, once per flush however many commands
        changed it; one that outgrew the packed limits spills to member rows.
        ``rows``: whole ``keys`` rows (name, type, version, lo, hi, value) of keys
        that are not in the cache, written with the dirty ones in one statement.
        """
        dirty = self.dirty
        if not dirty:
            if rows:
                if len(rows) <= UPSERT_ROWS:
                    self.conn.execute(SQL_UPSERT_KEYS[len(rows)], [*chain.from_iterable(rows)])
                else:
                    self.conn.executemany(SQL_UPSERT_KEY, rows)
            return
        self.dirty = {}
        cache = self.meta
        if len(dirty) == 1 and rows is None:
            # One spilled container's row (an append, a pop through a handle): nothing to
            # pack, sort or batch.
            for name in dirty:
                meta = cache[name]
                if meta is not None and meta[4] is None:
                    self.conn.execute(
                        SQL_UPSERT_KEY, (name, meta[0], _stamp(), meta[1], meta[2], meta[3])
                    )
                    return
        version = _stamp()  # new_version(), inline
        pack = None
        max_entries, max_bytes = packed.MAX_ENTRIES, packed.MAX_BYTES
        if rows is None:
            rows = []
        deletes = []
        for name in dirty:
            meta = cache[name]
            if meta is None:
                deletes.append((name,))
                continue
            content = meta[4]
            if content is not None:
                size = len(content)
                if pack is None:
                    pack = packed.packer()
                blob = pack(content) if size <= max_entries else None
                if blob is None or len(blob) > max_bytes:
                    self._spill(name, meta[0], content)
                    meta[4] = blob = None
                meta[1], meta[2], meta[3] = 0, size, blob
            rows.append((name, meta[0], version, meta[1], meta[2], meta[3]))
        # By name alone (the names are unique): comparing tuples is twice as slow.
        if len(rows) > SORT_ABOVE:
            rows.sort(key=itemgetter(0))
        if len(deletes) > SORT_ABOVE:
            deletes.sort(key=itemgetter(0))
        if len(rows) <= UPSERT_ROWS:
            if rows:
                self.conn.execute(SQL_UPSERT_KEYS[len(rows)], [*chain.from_iterable(rows)])
        else:
            self.conn.executemany(SQL_UPSERT_KEY, rows)
        if deletes:
            self.conn.executemany(SQL_DELETE_KEY, deletes)

    def _spill(self, name: str, kind: int, content: dict[bytes, bytes] | list[bytes]) -> None:
        """Move a packed container's members to rows (it has none there yet)."""
        if kind == HASH:
            assert isinstance(content, dict)
            self.conn.executemany(SQL_PUT_FIELD, zip(repeat(name), content, content.values()))
        else:
            self.conn.executemany(SQL_PUT_ITEM, zip(repeat(name), range(len(content)), content))

    def existing_fields(self, pairs: list[tuple[str, bytes]]) -> set[tuple[str, bytes]]:
        """Which of the ``(name, field)`` pairs are rows of spilled hashes right now."""
        if not pairs:
            return set()
        if len(pairs) == 1:
            row = self.conn.execute(SQL_FIELD_EXISTS, pairs[0]).fetchone()
            return set(pairs) if row else set()
        return {(n, f) for n, f in select_in(self.conn, SQL_FIELDS_EXIST, pairs, "(?, ?)")}


def _meta_of(tx: Tx, name: str, wanted: int) -> Meta | None:
    meta = tx.get(name)
    if meta is not None and meta[0] != wanted:
        raise wrong_type(name, meta[0], wanted)
    return meta


def _hash_content(meta: Meta, name: str) -> dict[bytes, bytes] | None:
    """The (decoded, cached) fields of a packed hash; ``None`` if it is spilled."""
    content = meta[4]
    if content is None and meta[3] is not None:
        content = meta[4] = packed.unpack_hash(meta[3], name)
    return content  # type: ignore[no-any-return]


def _list_content(meta: Meta, name: str) -> list[bytes] | None:
    """The (decoded, cached) items of a packed list; ``None`` if it is spilled."""
    content = meta[4]
    if content is None and meta[3] is not None:
        content = meta[4] = packed.unpack_list(meta[3], name)
    return content  # type: ignore[no-any-return]


def _is_spilled(meta: Meta) -> bool:
    return meta[0] != STRING and meta[3] is None and meta[4] is None


def _new_hash() -> Meta:
    return [HASH, 0, 0, None, {}]


def _new_list() -> Meta:
    return [LIST, 0, 0, None, []]


def _clip(length: int, start: int, end: int) -> tuple[int, int]:
    """Redis's inclusive ``start``/``end`` (negative from the end) as a Python slice."""
    if start < 0:
        start = max(start + length, 0)
    if end < 0:
        end += length
    return start, max(start, min(end, length - 1) + 1)


# --- reads (one statement each, given a connection) -------------------------------


def get(conn: sqlite3.Connection, name: str) -> bytes | None:
    row = conn.execute(SQL_GET, (name,)).fetchone()
    if row is None:
        return None
    if row[0] != STRING:
        raise wrong_type(name, row[0], STRING)
    return row[1]  # type: ignore[no-any-return]


def type_(conn: sqlite3.Connection, name: str) -> bytes:
    row = conn.execute(SQL_TYPE, (name,)).fetchone()
    return b"none" if row is None else TYPE_NAMES[row[0]]


def exists(conn: sqlite3.Connection, names: tuple[str, ...]) -> int:
    if len(names) == 1:
        return 1 if conn.execute(SQL_TYPE, names).fetchone() else 0
    unique = list(dict.fromkeys(names))
    own = len(unique) > CHUNK and not conn.in_transaction
    if own:  # several queries: read them from one snapshot
        conn.execute("BEGIN")
    try:
        found = {name for (name,) in select_in(conn, SQL_EXISTS_IN, unique)}
    finally:
        if own:
            conn.execute("COMMIT")
    return sum(1 for name in names if name in found)


def _length(conn: sqlite3.Connection, name: str, wanted: int) -> int:
    row = conn.execute(SQL_LEN, (name,)).fetchone()
    if row is None:
        return 0
    if row[0] != wanted:
        raise wrong_type(name, row[0], wanted)
    return row[1]  # type: ignore[no-any-return]


def hlen(conn: sqlite3.Connection, name: str) -> int:
    return _length(conn, name, HASH)


def llen(conn: sqlite3.Connection, name: str) -> int:
    scoped = getattr(SCOPE, "tx", None) if conn.in_transaction else None
    if scoped is not None and scoped.conn is conn:
        # Inside a write scope the row comes from (and stays in) the scope's Tx: a pop or
        # an insert reads the length, and its commit then needs the same row.
        try:
            meta = scoped.meta[name]  # scoped.get(name), its usual case inline
        except KeyError:
            meta = scoped.get(name)
        if meta is None:
            return 0
        if meta[0] != LIST:
            raise wrong_type(name, meta[0], LIST)
        return meta[2] - meta[1]  # type: ignore[no-any-return]
    return _length(conn, name, LIST)


def hget(conn: sqlite3.Connection, name: str, field: bytes) -> bytes | None:
    row = conn.execute(SQL_HGET, (name, field)).fetchone()
    scoped = getattr(SCOPE, "tx", None) if conn.in_transaction else None
    if scoped is not None and (scoped.conn is not conn or name in scoped.meta):
        scoped = None
    if row is None:
        if scoped is not None:
            scoped.meta[name] = None
        return None
    if row[0] == HASH and row[1] is not None:
        content = packed.unpack_hash(row[1], name)
        if scoped is not None:
            # The scope's Tx keeps the decoded fields too (nobody else holds this dict): the
            # write that usually follows (rd[k] = v) need not unpack them again.
            scoped.meta[name] = [row[0], row[3], row[4], row[1], content]
        return content.get(field)
    if scoped is not None:
        scoped.meta[name] = [row[0], row[3], row[4], row[1], None]
    if row[0] != HASH:
        raise wrong_type(name, row[0], HASH)
    return row[2]  # type: ignore[no-any-return]


def hexists(conn: sqlite3.Connection, name: str, field: bytes) -> bool:
    row = conn.execute(SQL_HEXISTS, (name, field)).fetchone()
    if row is None:
        return False
    if row[0] != HASH:
        raise wrong_type(name, row[0], HASH)
    if row[1] is not None:
        return field in packed.unpack_hash(row[1], name)
    return bool(row[2])


def hmget(conn: sqlite3.Connection, name: str, fields: tuple[bytes, ...]) -> list[bytes | None]:
    unique = list(dict.fromkeys(fields))
    if len(unique) > CHUNK:  # too many parameters for one statement: read the whole hash
        return [hgetall(conn, name).get(field) for field in fields]
    size = _padded(len(unique))
    unique.extend(repeat(unique[-1], size - len(unique)))
    rows = conn.execute(_in_sql(SQL_HMGET, size, "?"), (*unique, name)).fetchall()
    if not rows:
        return [None] * len(fields)
    if rows[0][0] != HASH:
        raise wrong_type(name, rows[0][0], HASH)
    if rows[0][1] is not None:
        found = packed.unpack_hash(rows[0][1], name)
    else:
        found = {field: value for _, _, field, value in rows}
    return [found.get(field) for field in fields]


def hgetall(conn: sqlite3.Connection, name: str) -> dict[bytes, bytes]:
    scoped = getattr(SCOPE, "tx", None) if conn.in_transaction else None
    if scoped is not None and (scoped.conn is not conn or name in scoped.meta):
        scoped = None
    rows = conn.execute(SQL_HGETALL if scoped is None else SQL_HGETALL_SCOPED, (name,)).fetchall()
    # _keys_row(rows), its usual case inline: a node's header is read so before each write.
    head = rows[0] if rows and type(rows[0][0]) is int else _keys_row(rows)
    if scoped is not None:
        scoped.meta[name] = None if head is None else [head[0], head[2], head[3], head[1], None]
    if head is None:
        return {}
    if head[0] != HASH:
        raise wrong_type(name, head[0], HASH)
    if head[1] is not None:
        return packed.unpack_hash(head[1], name)
    if head is rows[0] and scoped is None:
        return dict(islice(rows, 1, None))  # (field, value) pairs, built in C
    return {row[0]: row[1] for row in rows if row is not head}


def _keys_row(rows: list[Any]) -> Any:
    """The ``keys`` row among :data:`SQL_HGETALL`'s rows: the one whose type is an int.

    It comes first in practice, but SQLite does not promise the order of a compound
    select's rows, and a field is always a blob, so the type tells them apart.
    """
    if not rows:
        return None
    if type(rows[0][0]) is int:
        return rows[0]
    return next((row for row in rows if type(row[0]) is int), None)


def hkeys(conn: sqlite3.Connection, name: str) -> list[bytes]:
    return list(hgetall(conn, name))


def lindex(conn: sqlite3.Connection, name: str, index: int) -> bytes | None:
    scoped = getattr(SCOPE, "tx", None) if conn.in_transaction else None
    if scoped is not None and scoped.conn is conn:
        return _lindex_scoped(scoped, name, index)
    row = conn.execute(SQL_LINDEX, (index, name)).fetchone()
    if row is None:
        return None
    if row[0] != LIST:
        raise wrong_type(name, row[0], LIST)
    if row[1] is not None:
        items = packed.unpack_list(row[1], name)
        if index < 0:
            index += len(items)
        return items[index] if 0 <= index < len(items) else None
    return row[2]  # type: ignore[no-any-return]


def _lindex_scoped(tx: Tx, name: str, index: int) -> bytes | None:
    """:func:`lindex` inside a write scope, through its :class:`Tx` (which keeps the row)."""
    try:
        meta = tx.meta[name]  # tx.get(name), its usual case inline: a pop read the length
    except KeyError:
        meta = tx.get(name)
    if meta is None:
        return None
    if meta[0] != LIST:
        raise wrong_type(name, meta[0], LIST)
    items = meta[4]  # _list_content(meta, name), inline
    if items is None and meta[3] is not None:
        items = meta[4] = packed.unpack_list(meta[3], name)
    if items is not None:
        if index < 0:
            index += len(items)
        return items[index] if 0 <= index < len(items) else None
    lo, hi = meta[1], meta[2]
    pos = (lo if index >= 0 else hi) + index
    if not lo <= pos < hi:
        return None
    row = tx.conn.execute(SQL_GET_ITEM, (name, pos)).fetchone()
    return None if row is None else row[0]  # type: ignore[no-any-return]


def lrange(conn: sqlite3.Connection, name: str, start: int, end: int) -> list[bytes]:
    rows = conn.execute(SQL_LRANGE, (start, end, name)).fetchall()
    scoped = getattr(SCOPE, "tx", None) if conn.in_transaction else None
    if scoped is not None and scoped.conn is conn and name not in scoped.meta:
        first = rows[0] if rows else None
        scoped.meta[name] = (
            None if first is None else [first[0], first[3], first[4], first[1], None]
        )
    if not rows:
        return []
    if rows[0][0] != LIST:
        raise wrong_type(name, rows[0][0], LIST)
    if rows[0][1] is not None:
        items = packed.unpack_list(rows[0][1], name)
        return items[slice(*_clip(len(items), start, end))]
    if rows[0][2] is None:  # the LEFT JOIN's empty range
        return []
    return [value for _, _, value, _, _ in rows]


def hgetall_many(conn: sqlite3.Connection, calls: list[Call]) -> list[dict[bytes, bytes]]:
    """A run of ``hgetall`` in one query (materializing reads whole levels this way).

    Inside a write scope the rows read are cached in the scope's :class:`Tx`, as
    :func:`hgetall` caches its one row: the unit's commit then writes those keys
    (node headers, mostly) without reading their rows again.
    """
    results: list[dict[bytes, bytes]] = [{} for _ in calls]
    items = [(i, name) for i, (name,) in enumerate(calls)]
    pad = (-1, None)
    scoped = getattr(SCOPE, "tx", None) if conn.in_transaction else None
    if scoped is not None and scoped.conn is not conn:
        scoped = None
    rows: dict[int, Meta] = {}
    for i, kind, blob, field, value, lo, hi in select_in(
        conn, SQL_HGETALL_MANY, items, "(?, ?)", pad
    ):
        if kind != HASH:
            raise wrong_type(calls[i][0], kind, HASH)
        if scoped is not None and i not in rows:
            rows[i] = [kind, lo, hi, blob, None]
        if blob is not None:
            results[i] = packed.unpack_hash(blob, calls[i][0])
        else:
            results[i][field] = value
    if scoped is not None:
        cache = scoped.meta
        for i, (name,) in enumerate(calls):
            if name not in cache:
                cache[name] = rows.get(i)  # None: the key does not exist
    return results


def lrange_many(conn: sqlite3.Connection, calls: list[Call]) -> list[list[bytes]]:
    """A run of ``lrange`` in one query."""
    results: list[list[bytes]] = [[] for _ in calls]
    items = [(i, *call) for i, call in enumerate(calls)]
    pad = (-1, None, 0, 0)
    for i, kind, blob, value in select_in(conn, SQL_LRANGE_MANY, items, "(?, ?, ?, ?)", pad):
        if kind != LIST:
            raise wrong_type(calls[i][0], kind, LIST)
        if blob is not None:
            name, start, end = calls[i]
            got = packed.unpack_list(blob, name)
            results[i] = got[slice(*_clip(len(got), start, end))]
        elif value is not None:  # None: the LEFT JOIN's empty range
            results[i].append(value)
    return results


# --- writes (inside a transaction, through a Tx) ----------------------------------


def _drop_members(tx: Tx, name: str, meta: Meta) -> None:
    """Delete the member rows of a spilled container that is being replaced or deleted."""
    if _is_spilled(meta):
        tx.conn.execute(SQL_DROP_HASH if meta[0] == HASH else SQL_DROP_LIST, (name,))


def set_many(tx: Tx, calls: list[Call]) -> list[bool]:
    tx.load(name for name, _ in calls)
    for name, value in calls:
        meta = tx.meta[name]
        if meta is not None:
            _drop_members(tx, name, meta)
        tx.put(name, [STRING, None, None, value, None])
    return [True] * len(calls)


def incr(tx: Tx, name: str, amount: int) -> int:
    meta = _meta_of(tx, name, STRING)
    current = 0 if meta is None else parse_int(meta[3], f"the value of {name!r}")
    total = add_int(current, amount, repr(name))
    tx.put(name, [STRING, None, None, b"%d" % total, None])
    return total


def delete_many(tx: Tx, calls: list[Call]) -> list[int]:
    tx.load(name for (names,) in calls for name in names)
    results = []
    for (names,) in calls:
        count = 0
        for name in names:
            meta = tx.meta[name]
            if meta is None:
                continue
            count += 1
            _drop_members(tx, name, meta)
            tx.put(name, None)
        results.append(count)
    return results


def _spilled_fields(tx: Tx, wanted: list[Any]) -> set[tuple[str, bytes]]:
    """Load the keys of ``wanted`` (``[(name, fields)]``), check they are hashes, and
    return which of those fields exist as rows of spilled hashes (packed hashes are
    answered from their content)."""
    tx.load(name for name, _ in wanted)
    probe: list[tuple[str, bytes]] = []
    for name, fields in wanted:
        meta = tx.meta[name]
        if meta is not None:
            if meta[0] != HASH:
                raise wrong_type(name, meta[0], HASH)
            if _hash_content(meta, name) is None:
                probe.extend((name, field) for field in fields)
    return tx.existing_fields(probe)


def hset_many(tx: Tx, calls: list[Call]) -> list[int]:
    """A run of ``hset``; each call's fields come as a ``{field: value}`` dict."""
    if len(calls) == 1:
        tx.get(calls[0][0])  # the usual run: one node's fields
    else:
        tx.load([name for name, _ in calls])
    cache = tx.meta
    spilled: list[int] = []
    for i, (name, _) in enumerate(calls):
        meta = cache[name]
        if meta is not None:
            if meta[0] != HASH:
                raise wrong_type(name, meta[0], HASH)
            if _hash_content(meta, name) is None:
                spilled.append(i)
    results = []
    for name, pairs in calls:
        meta = cache[name]
        if meta is None:
            added = len(pairs)
            meta = [HASH, 0, added, None, dict(pairs)]
        else:
            content = meta[4]
            if content is None:  # spilled: counted below
                added = 0
            else:
                before = len(content)
                content.update(pairs)
                added = len(content) - before
                meta[2] += added
        tx.put(name, meta)
        results.append(added)
    if spilled:
        _hset_spilled(tx, [calls[i] for i in spilled], spilled, results)
    return results


def _hset_spilled(tx: Tx, calls: list[Call], where: list[int], results: list[int]) -> None:
    """Write the fields of the spilled hashes of an ``hset`` run, counting the new ones."""
    conn = tx.conn
    if len(calls) == 1:
        # The common case (a unit's one change to a big hash): INSERT OR IGNORE adds the
        # new fields and its row count says how many; only if some field already
        # existed does a second statement set the values. No probe of the fields first.
        name, pairs = calls[0]
        rows = list(zip(repeat(name), pairs, pairs.values()))
        added = conn.executemany(SQL_ADD_FIELD, rows).rowcount
        if added < len(rows):
            conn.executemany(SQL_PUT_FIELD, rows)
        tx.meta[name][2] += added  # type: ignore[index]
        results[where[0]] = added
        return
    present = tx.existing_fields([(name, field) for name, pairs in calls for field in pairs])
    rows = []
    for i, (name, pairs) in zip(where, calls, strict=True):
        added = 0
        rows.extend(zip(repeat(name), pairs, pairs.values()))
        for field in pairs:
            key = (name, field)
            if key not in present:
                present.add(key)
                added += 1
        tx.meta[name][2] += added  # type: ignore[index]
        results[i] = added
    conn.executemany(SQL_PUT_FIELD, rows)


def hreplace_many(tx: Tx, calls: list[Call]) -> list[bool]:
    """A run of ``hreplace``: each hash gets exactly the ``{field: value}`` dict of its call.

    The stored content is neither read nor decoded (the point of the command,
    see ``etcher.spec.WholeHashWrites``): only the key's row is needed, to check
    its type and to drop the member rows of a spilled hash. The call's dict is
    taken over as the new content (callers hand a fresh one).
    """
    if len(calls) == 1:
        tx.get(calls[0][0])
    else:
        tx.load([name for name, _ in calls])
    cache = tx.meta
    for name, _ in calls:  # every type first: a refused run changes nothing
        meta = cache[name]
        if meta is not None and meta[0] != HASH:
            raise wrong_type(name, meta[0], HASH)
    for name, pairs in calls:
        meta = cache[name]
        if meta is not None and _is_spilled(meta):
            tx.conn.execute(SQL_DROP_HASH, (name,))
        tx.put(name, [HASH, 0, len(pairs), None, pairs] if pairs else None)
    return [True] * len(calls)


def hdel_many(tx: Tx, calls: list[Call]) -> list[int]:
    if len(calls) == 1:
        # The usual run: one field of a big (spilled) hash, a document deleted from a
        # namespace's root. The DELETE's row count says which fields existed: no probe.
        name, fields = calls[0]
        meta = tx.get(name)
        if meta is not None:
            if meta[0] != HASH:
                raise wrong_type(name, meta[0], HASH)
            if _hash_content(meta, name) is None:
                rows = [(name, field) for field in dict.fromkeys(fields)]
                removed: int = tx.conn.executemany(SQL_DEL_FIELD, rows).rowcount
                if removed:
                    meta[2] -= removed
                    tx.put(name, meta if meta[2] else None)
                return [removed]
    cache = tx.meta
    present = _spilled_fields(tx, calls)
    rows = []
    results = []
    for name, fields in calls:
        meta = cache[name]
        removed = 0
        if meta is not None:
            content = meta[4]
            for field in fields:
                if content is not None:
                    if field in content:
                        del content[field]
                        removed += 1
                else:
                    key = (name, field)
                    if key in present:
                        present.discard(key)
                        rows.append(key)
                        removed += 1
            if removed:
                meta[2] -= removed
                tx.put(name, meta if meta[2] else None)
        results.append(removed)
    if rows:
        tx.conn.executemany(SQL_DEL_FIELD, rows)
    return results


def hincrby(tx: Tx, name: str, field: bytes, amount: int) -> int:
    meta = _meta_of(tx, name, HASH)
    if meta is None:
        meta = _new_hash()
    content = _hash_content(meta, name)
    what = f"field {field[:40]!r} of {name!r}"
    if content is not None:
        raw = content.get(field)
    else:
        row = tx.conn.execute(SQL_GET_FIELD, (name, field)).fetchone()
        raw = None if row is None else row[0]
    total = add_int(0 if raw is None else parse_int(raw, f"the {what}"), amount, what)
    if content is not None:
        content[field] = b"%d" % total
    else:
        tx.conn.execute(SQL_PUT_FIELD, (name, field, b"%d" % total))
    if raw is None:
        meta[2] += 1
    tx.put(name, meta)
    return total


def _push_many(tx: Tx, calls: list[Call], head: bool) -> list[int]:
    cache = tx.meta
    if len(calls) == 1:
        if calls[0][0] not in cache:
            tx.get(calls[0][0])  # the usual run: one push (an append)
    else:
        tx.load([name for name, _ in calls])
    dirty = tx.dirty
    rows: list[tuple[str, int, bytes]] = []
    results = []
    for name, values in calls:
        meta = cache[name]
        if meta is None:
            meta = [LIST, 0, 0, None, []]  # _new_list(), inline
        elif meta[0] != LIST:
            raise wrong_type(name, meta[0], LIST)
        count = len(values)
        # _list_content(meta, name), inline: once per push
        content = meta[4]
        if content is None and meta[3] is not None:
            content = meta[4] = packed.unpack_list(meta[3], name)
        if content is not None:
            if head:  # each value goes in front of the previous one
                content[:0] = values[::-1]
            else:
                content.extend(values)
            meta[2] += count
        elif head:
            lo = meta[1]
            rows.extend(zip(repeat(name), range(lo - 1, lo - 1 - count, -1), values))
            meta[1] = lo - count
        else:
            hi = meta[2]
            rows.extend(zip(repeat(name), range(hi, hi + count), values))
            meta[2] = hi + count
        cache[name] = meta  # tx.put(name, meta), inline
        dirty[name] = None
        results.append(meta[2] - meta[1])
    if rows:
        tx.conn.executemany(SQL_PUT_ITEM, rows)
    return results


def list_one(tx: Tx, op: str, name: str, value: bytes | None) -> None:
    """A scoped unit's only write, one list command, and its flush (not the ``COMMIT``).

    ``op`` is ``"rpush"`` or ``"lpush"`` of the one item ``value``, or ``"lpop"``
    or ``"rpop"`` of one item (``value`` is ``None``): what an append, an
    ``insert(0, x)`` or a ``pop(0)``/``pop()`` through a handle commits. The same
    rows and statements as the command through a run and :meth:`Tx.flush`,
    without the run, the per-run lists and the calls between them: the row comes
    from the scope's cache (a pop or an insert read the list's length through
    it) or one ``SELECT``, and a spilled list's row is written back here.
    """
    cache = tx.meta
    try:
        meta = cache[name]
    except KeyError:
        row = tx.conn.execute(SQL_META, (name,)).fetchone()
        meta = cache[name] = None if row is None else [*row, None]
    if meta is not None and meta[0] != LIST:
        raise wrong_type(name, meta[0], LIST)
    conn = tx.conn
    if value is not None:  # a push
        if meta is None:
            cache[name] = [LIST, 0, 1, None, [value]]
            tx.dirty[name] = None
            tx.flush()
            return
        content = meta[4]
        if content is None and meta[3] is not None:
            content = meta[4] = packed.unpack_list(meta[3], name)
        if content is None:  # spilled: one item's row, then the list's
            if op == "rpush":
                hi = meta[2]
                conn.execute(SQL_PUT_ITEM, (name, hi, value))
                meta[2] = hi + 1
            else:
                lo = meta[1] - 1
                conn.execute(SQL_PUT_ITEM, (name, lo, value))
                meta[1] = lo
            conn.execute(SQL_UPSERT_KEY, (name, LIST, _stamp(), meta[1], meta[2], None))
            return
        if op == "rpush":
            content.append(value)
        else:
            content.insert(0, value)
        meta[2] += 1
    else:  # a pop
        if meta is None:
            return
        content = meta[4]
        if content is None and meta[3] is not None:
            content = meta[4] = packed.unpack_list(meta[3], name)
        if content is None:
            lo, hi = meta[1], meta[2]
            if op == "lpop":
                conn.execute(SQL_DEL_ITEM, (name, lo))
                meta[1] = lo = lo + 1
            else:
                conn.execute(SQL_DEL_ITEM, (name, hi - 1))
                meta[2] = hi = hi - 1
            if lo < hi:
                conn.execute(SQL_UPSERT_KEY, (name, LIST, _stamp(), lo, hi, None))
            else:
                cache[name] = None
                conn.execute(SQL_DELETE_KEY, (name,))
            return
        content.pop(0 if op == "lpop" else -1)
        meta[2] = len(content)
        if not content:
            cache[name] = None
    tx.dirty[name] = None
    tx.flush()


# Partials rather than wrapper functions: an append is one Python call less.
rpush_many: Callable[[Tx, list[Call]], list[int]] = partial(_push_many, head=False)
lpush_many: Callable[[Tx, list[Call]], list[int]] = partial(_push_many, head=True)


def _pop(tx: Tx, name: str, count: int | None, head: bool) -> bytes | list[bytes] | None:
    meta = _meta_of(tx, name, LIST)
    if meta is None:
        return None
    lo, hi = meta[1], meta[2]
    content = _list_content(meta, name)
    result: bytes | list[bytes]
    if content is not None:
        if count is None:
            result = content.pop(0 if head else -1)
        else:
            taken = min(count, len(content))
            if not taken:
                return []
            if head:
                result = content[:taken]
                del content[:taken]
            else:
                result = content[-taken:][::-1]
                del content[-taken:]
        meta[2] = len(content)
        tx.put(name, meta if content else None)
        return result
    conn = tx.conn
    if count is None:
        pos = lo if head else hi - 1
        result = conn.execute(SQL_POP_ONE, (name, pos)).fetchone()[0]
        taken = 1
    else:
        taken = min(count, hi - lo)
        if not taken:
            return []
        start = lo if head else hi - taken
        rows = conn.execute(SQL_POP_RANGE, (name, start, start + taken)).fetchall()
        rows.sort(reverse=not head)  # RETURNING order is unspecified
        result = [row[1] for row in rows]
    if head:
        meta[1] = lo + taken
    else:
        meta[2] = hi - taken
    tx.put(name, meta if meta[1] < meta[2] else None)
    return result


def lpop(tx: Tx, name: str, count: int | None) -> bytes | list[bytes] | None:
    return _pop(tx, name, count, head=True)


def rpop(tx: Tx, name: str, count: int | None) -> bytes | list[bytes] | None:
    return _pop(tx, name, count, head=False)


def _pops(tx: Tx, calls: list[Call], head: bool) -> list[Any]:
    # A loop of its own rather than _write()'s generic one: a pop is two calls less.
    results = []
    for name, count in calls:
        results.append(_pop(tx, name, count, head))
    return results


lpop_many: Callable[[Tx, list[Call]], list[Any]] = partial(_pops, head=True)
rpop_many: Callable[[Tx, list[Call]], list[Any]] = partial(_pops, head=False)


def lset(tx: Tx, name: str, index: int, value: bytes) -> bool:
    meta = _meta_of(tx, name, LIST)
    if meta is None:
        raise StoreIndexError(f"lset on missing key {name!r}")
    lo, hi = meta[1], meta[2]
    pos = (lo if index >= 0 else hi) + index
    if not lo <= pos < hi:
        raise StoreIndexError(f"index {index} out of range for list {name!r} of length {hi - lo}")
    content = _list_content(meta, name)
    if content is not None:
        content[pos - lo] = value
    else:
        tx.conn.execute(SQL_SET_ITEM, (value, name, pos))
    tx.put(name, meta)
    return True


def ltrim(tx: Tx, name: str, start: int, end: int) -> bool:
    meta = _meta_of(tx, name, LIST)
    if meta is None:
        return True
    lo, hi = meta[1], meta[2]
    length = hi - lo
    first, stop = _clip(length, start, end)
    if first >= stop:
        _drop_members(tx, name, meta)
        tx.put(name, None)
        return True
    content = _list_content(meta, name)
    if content is not None:
        if (first, stop) != (0, length):
            del content[stop:]
            del content[:first]
            meta[2] = len(content)
            tx.put(name, meta)
        return True
    new_lo, new_hi = lo + first, lo + stop
    if new_lo > lo:
        tx.conn.execute(SQL_TRIM_BELOW, (name, new_lo))
    if new_hi < hi:
        tx.conn.execute(SQL_TRIM_FROM, (name, new_hi))
    if (new_lo, new_hi) != (lo, hi):
        meta[1], meta[2] = new_lo, new_hi
        tx.put(name, meta)
    return True


def create_many(tx: Tx, calls: list[Call]) -> list[int]:
    """Write containers that are very likely new keys (a big new document's nodes).

    Each call is ``(pairs,)``: a list of ``(name, content)``, where content is
    the ``{field: value}`` of an ``hset`` (a dict) or the items of an ``rpush``
    (a tuple or list), the only write to its key in the batch. Rather than
    reading every key first (a ``SELECT`` per 256 keys, for rows that are not
    there), the packed rows go in with ``INSERT OR IGNORE``, all stamped with one
    fresh version: if SQLite inserted them all, none existed. Otherwise the keys
    whose row carries another version existed before, and those (and the keys
    this transaction has read, and contents too big to pack) take the ordinary
    ``hset``/``rpush`` path, which reads their rows: the result is that path's
    either way. Returns, per call, how many keys were written.
    """
    cache = tx.meta
    version = new_version()
    pack = packed.packer()
    max_entries, max_bytes = packed.MAX_ENTRIES, packed.MAX_BYTES
    rows: list[tuple[str, int, int, int, int, bytes]] = []
    append = rows.append
    slow: list[tuple[str, Any]] = []
    for (pairs,) in calls:
        for pair in pairs:
            name, content = pair
            size = len(content)
            if size <= max_entries and name not in cache:
                blob = pack(content)
                if len(blob) <= max_bytes:
                    append((name, HASH if type(content) is dict else LIST, version, 0, size, blob))
                    continue
            slow.append(pair)
    conn = tx.conn
    if len(rows) > SORT_ABOVE:
        rows.sort(key=itemgetter(0))  # B-tree order (see SORT_ABOVE); names are unique here
    if rows and conn.executemany(SQL_CREATE_KEY, rows).rowcount < len(rows):
        stamped = versions(conn, [row[0] for row in rows])
        older = {name for name, stamp in stamped.items() if stamp != version}
        slow.extend(pair for (pairs,) in calls for pair in pairs if pair[0] in older)
    if slow:
        hashes = [pair for pair in slow if type(pair[1]) is dict]
        lists = [pair for pair in slow if type(pair[1]) is not dict]
        if hashes:
            hset_many(tx, hashes)
        if lists:
            rpush_many(tx, lists)
    return [len(pairs) for (pairs,) in calls]


# --- the command table ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """How to run one storage command alone (``one``) and as a run of calls (``many``).

    ``one`` and ``many`` take a connection for reads and a :class:`Tx` for
    writes; ``many`` always runs inside a transaction and returns one result per
    call.
    """

    name: str
    write: bool
    one: Callable[..., Any]
    many: Callable[[Any, list[Call]], list[Any]]


def _read(name: str, fn: Callable[..., Any]) -> Command:
    def many(conn: sqlite3.Connection, calls: list[Call]) -> list[Any]:
        return [fn(conn, *call) for call in calls]

    return Command(name, False, fn, many)


def _write(name: str, fn: Callable[..., Any]) -> Command:
    def many(tx: Tx, calls: list[Call]) -> list[Any]:
        return [fn(tx, *call) for call in calls]

    return Command(name, True, fn, many)


def _batched(name: str, many: Callable[[Tx, list[Call]], list[Any]]) -> Command:
    def one(tx: Tx, *call: Any) -> Any:
        return many(tx, [call])[0]

    return Command(name, True, one, many)


GET = _read("get", get)
TYPE = _read("type", type_)
EXISTS = _read("exists", exists)
HGET = _read("hget", hget)
HMGET = _read("hmget", hmget)
HGETALL = Command("hgetall", False, hgetall, hgetall_many)
HKEYS = _read("hkeys", hkeys)
HLEN = _read("hlen", hlen)
HEXISTS = _read("hexists", hexists)
LRANGE = Command("lrange", False, lrange, lrange_many)
LINDEX = _read("lindex", lindex)
LLEN = _read("llen", llen)

SET = _batched("set", set_many)
DELETE = _batched("delete", delete_many)
HSET = _batched("hset", hset_many)
HDEL = _batched("hdel", hdel_many)
HREPLACE = _batched("hreplace", hreplace_many)
RPUSH = _batched("rpush", rpush_many)
LPUSH = _batched("lpush", lpush_many)
INCR = _write("incr", incr)
HINCRBY = _write("hincrby", hincrby)
LPOP = Command("lpop", True, lpop, lpop_many)
RPOP = Command("rpop", True, rpop, rpop_many)
LSET = _write("lset", lset)
LTRIM = _write("ltrim", ltrim)
CREATE = _batched("create", create_many)
"""Not a storage command: a big unit's new containers (see :func:`create_many`)."""

WRITES = {
    c.name: c for c in (SET, DELETE, HSET, HDEL, HREPLACE, RPUSH, LPUSH, LPOP, RPOP, LSET, LTRIM)
}
"""The write commands a unit commits through its scope (``UnitScope.commit_writes``)."""


# --- transactions -----------------------------------------------------------------


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already done so."""
    if conn.in_transaction:
        # If even ROLLBACK fails, the original error is still the one worth reporting.
        # try, not contextlib.suppress: every read snapshot ends here, and a context
        # manager costs three Python calls.
        try:  # noqa: SIM105
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def run_one(conn: sqlite3.Connection, command: Command, call: Call) -> Any:
    """Run one write command as its own ``BEGIN IMMEDIATE … COMMIT`` transaction.

    Inside a unit scope the command joins the scope's transaction, which
    commits or rolls back when the scope ends.
    """
    own = not conn.in_transaction
    scoped = None if own else scoped_tx(conn)
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        tx = Tx(conn) if scoped is None else scoped
        result = command.one(tx, *call)
        tx.flush()
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own:
            rollback(conn)
        elif scoped is not None:
            drop_scoped_tx(conn)
        raise
    return result


def apply_runs(tx: Tx, runs: list[tuple[Command, list[Call]]]) -> None:
    """Apply a unit's writes, as runs of one write command each, through ``tx`` and flush it.

    For a write scope's commit (``UnitScope.commit_writes``): the transaction
    stays open for the scope to commit, or to roll back on an error.
    """
    if len(runs) > 1:
        _preload(tx, runs)
    for command, calls in runs:
        command.many(tx, calls)
    tx.flush()


def run_batch(
    conn: sqlite3.Connection,
    queue: list[tuple[Command, Call]],
    watched: dict[str, int | None],
) -> list[Any]:
    """Check the watched versions and apply the whole queue as one transaction.

    A queue without writes runs in a plain (deferred) read transaction: one
    consistent snapshot without taking the write lock, and without the write
    machinery (:class:`Tx`). Consecutive calls of one command go to its
    ``many`` implementation together. Any error rolls everything back and
    propagates.
    """
    if not watched:
        for command, _ in queue:
            if command.write:
                break
        else:
            # One read is one statement, consistent on its own (and inside a unit scope
            # it is part of the scope's transaction): no BEGIN/COMMIT around it.
            if len(queue) == 1:
                command, call = queue[0]
                return [command.one(conn, *call)]
            if conn.in_transaction:
                return _read_runs(conn, queue)
            conn.execute("BEGIN")
            try:
                return _read_runs(conn, queue)
            finally:
                rollback(conn)  # a read-only snapshot: nothing to commit
    if conn.in_transaction:  # inside a unit scope: it commits or rolls back
        scoped: Tx | None = getattr(SCOPE, "tx", None)
        if scoped is None or scoped.conn is not conn:
            return _apply(conn, queue, watched, Tx(conn))
        try:
            return _apply(conn, queue, watched, scoped)
        except BaseException:
            drop_scoped_tx(conn)
            raise
    write = any(command.write for command, _ in queue)
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        results = _apply(conn, queue, watched, Tx(conn))
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return results


def _runs(queue: list[tuple[Command, Call]]) -> list[tuple[Command, list[Call]]]:
    """The queue as runs of consecutive calls of one command."""
    if not queue:
        return []
    first = queue[0][0]
    for command, _ in queue:
        if command is not first:
            break
    else:  # the usual shape of a small unit: one command
        return [(first, [call for _, call in queue])]
    runs: list[tuple[Command, list[Call]]] = []
    i, n = 0, len(queue)
    while i < n:
        command = queue[i][0]
        j = i + 1
        while j < n and queue[j][0] is command:
            j += 1
        runs.append((command, [call for _, call in queue[i:j]]))
        i = j
    return runs


def _read_runs(conn: sqlite3.Connection, queue: list[tuple[Command, Call]]) -> list[Any]:
    """A queue of reads: a lone call runs its own statement, a run its batched one."""
    results: list[Any] = []
    for command, calls in _runs(queue):
        if len(calls) == 1:
            results.append(command.one(conn, *calls[0]))
        else:
            results.extend(command.many(conn, calls))
    return results


def _apply(
    conn: sqlite3.Connection,
    queue: list[tuple[Command, Call]],
    watched: dict[str, int | None],
    tx: Tx,
) -> list[Any]:
    """The body of :func:`run_batch`, inside a transaction that the caller ends."""
    if watched:
        now = versions(conn, list(watched))
        if now != watched:
            changed = [name for name in watched if now[name] != watched[name]]
            raise WatchError(
                f"watched key(s) {', '.join(map(repr, changed[:5]))} changed since "
                "watch(); nothing was applied, run the transaction again"
            )
        hook = getattr(AFTER_WATCH_CHECK, "hook", None)
        if hook is not None:
            hook()
    runs = _runs(queue)
    if len(runs) > 1:
        _preload(tx, runs)
    results: list[Any] = []
    for command, calls in runs:
        if command.write:
            results.extend(command.many(tx, calls))
        else:
            tx.flush()  # the statement must see this transaction's pending key rows
            if len(calls) == 1:
                results.append(command.one(conn, *calls[0]))
            else:
                results.extend(command.many(conn, calls))
    tx.flush()
    return results


def _preload(tx: Tx, runs: list[tuple[Command, list[Call]]]) -> None:
    """Read the rows of every key the runs write in one query, up front.

    A unit's commit is several runs (hset, then rpush, ...); each run would
    otherwise load its own keys with a query of its own. A ``create`` run reads
    only what it must, itself.
    """
    names: list[str] = []
    writes = 0
    for command, calls in runs:
        if command.write and command is not CREATE:
            writes += 1
            if command is DELETE:
                for (keys,) in calls:
                    names.extend(keys)
            else:
                names.extend([call[0] for call in calls])
    if writes > 1:
        tx.load(names)
