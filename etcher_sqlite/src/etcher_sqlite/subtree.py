"""Server-side subtree reads on SQLite (``capabilities.subtree_reads``), straight on the tables.

SQLite runs in-process, so the win is not network round trips but Python work.
The walk reads the documents' ``keys`` rows one level per statement: a packed
container (most of them) comes back whole in its row, and only the spilled
ones of a level cost one more statement for their member rows (one for all the
spilled hashes of the level, one for all the spilled lists). Empty contents
(an empty container has no content key) are told apart from missing nodes by
one lookup of their header keys. No pipeline, command object or batch
machinery is involved.

It returns exactly what the reference walk (:func:`etcher._subtree.walk`, run
through ``hgetall``/``lrange``/``exists``) returns, including its limit and
frontier rules and its wrong-type errors. The whole walk runs inside one read
transaction: the caller's unit scope when this thread holds one, else a
snapshot taken for the call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

from etcher._subtree import linked
from etcher.errors import EtcherError
from etcher.spec import SubtreeChunk
from etcher_sqlite import ops, packed
from etcher_sqlite.schema import HASH, LIST

SQL_LEVEL = "SELECT name, type, value FROM keys WHERE name IN ({})"
SQL_HASH_MEMBERS = "SELECT name, field, value FROM hashes WHERE name IN ({})"
# A spilled list's rows are exactly its items (trims delete the rows they drop), and
# the primary key (name, pos) gives them in order.
SQL_LIST_MEMBERS = "SELECT name, value FROM list_items WHERE name IN ({}) ORDER BY name, pos"
SQL_HEADERS = "SELECT name FROM keys WHERE name IN ({})"


class _Backend(Protocol):
    def _conn(self) -> sqlite3.Connection: ...

    def _error(self, exc: sqlite3.Error, opening: bool = False) -> EtcherError: ...


Content = dict[bytes, bytes] | list[bytes]


def _level(
    conn: sqlite3.Connection, prefix: str, batch: list[str]
) -> tuple[list[Content], list[str]]:
    """The content of every node of ``batch`` (in order) and the nodes whose content is empty."""
    cut = len(prefix)
    rows = {
        name[cut:]: (kind, blob)
        for name, kind, blob in ops.select_in(conn, SQL_LEVEL, [prefix + uid for uid in batch])
    }
    out: list[Content] = []
    empty: list[str] = []
    hashes: dict[str, dict[bytes, bytes]] = {}
    lists: dict[str, list[bytes]] = {}
    for uid in batch:
        wanted = HASH if uid[:1] == "D" else LIST
        row = rows.get(uid)
        content: Content
        if row is None:
            content = {} if wanted == HASH else []
            empty.append(uid)
        else:
            kind, blob = row
            if kind != wanted:
                raise ops.wrong_type(prefix + uid, kind, wanted)
            if wanted == HASH:
                if blob is None:
                    content = hashes[prefix + uid] = {}
                else:
                    content = packed.unpack_hash(blob, prefix + uid)
            elif blob is None:
                content = lists[prefix + uid] = []
            else:
                content = packed.unpack_list(blob, prefix + uid)
        out.append(content)
    if hashes:
        for name, field, value in ops.select_in(conn, SQL_HASH_MEMBERS, list(hashes)):
            hashes[name][field] = value
    if lists:
        for name, value in ops.select_in(conn, SQL_LIST_MEMBERS, list(lists)):
            lists[name].append(value)
    return out, empty


def walk(
    conn: sqlite3.Connection,
    content_prefix: str,
    refs_prefix: str,
    roots: Sequence[str],
    limit: int,
) -> SubtreeChunk:
    """:meth:`~etcher.spec.SubtreeReads.read_subtree` on ``conn``; the caller holds the snapshot."""
    limit = max(1, limit)
    contents: dict[str, Content] = {}
    absent: list[str] = []
    level = list(dict.fromkeys(roots))
    queued = set(level)
    while level and len(contents) < limit:
        room = limit - len(contents)
        batch, nxt = level[:room], level[room:]
        got, empty = _level(conn, content_prefix, batch)
        if empty:
            cut = len(refs_prefix)
            headers = {
                name[cut:]
                for (name,) in ops.select_in(
                    conn, SQL_HEADERS, [refs_prefix + uid for uid in empty]
                )
            }
            absent += [uid for uid in empty if uid not in headers]
        for uid, content in zip(batch, got, strict=True):
            contents[uid] = content
            if content:
                for child in linked(uid, content):
                    if child not in queued:
                        queued.add(child)
                        nxt.append(child)
        level = nxt
    return contents, absent, level


class SubtreeMixin:
    """``read_subtree`` for the SQLite backends."""

    def read_subtree(
        self: _Backend, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """See :meth:`etcher.spec.SubtreeReads.read_subtree`."""
        conn = self._conn()
        try:
            if conn.in_transaction:  # this thread's unit scope: read its state
                return walk(conn, content_prefix, refs_prefix, roots, limit)
            conn.execute("BEGIN")  # one snapshot for every statement of the walk
            try:
                return walk(conn, content_prefix, refs_prefix, roots, limit)
            finally:
                ops.rollback(conn)  # a read-only transaction: nothing to commit
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
