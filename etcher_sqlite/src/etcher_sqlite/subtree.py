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
from etcher.spec import SubtreeChunk, SubtreeVisit
from etcher_sqlite import ops, packed
from etcher_sqlite.schema import HASH, LIST

SQL_LEVEL = "SELECT name, type, value FROM keys WHERE name IN ({})"
SQL_NODE = "SELECT type, value FROM keys WHERE name = ?"
SQL_HASH_MEMBERS = "SELECT name, field, value FROM hashes WHERE name IN ({})"
# A spilled list's rows are exactly its items (trims delete the rows they drop), and
# the primary key (name, pos) gives them in order.
SQL_LIST_MEMBERS = "SELECT name, value FROM list_items WHERE name IN ({}) ORDER BY name, pos"
SQL_HEADERS = "SELECT name FROM keys WHERE name IN ({})"


class _Backend(Protocol):
    def _conn(self) -> sqlite3.Connection: ...

    def _error(self, exc: sqlite3.Error, opening: bool = False) -> EtcherError: ...


Content = dict[bytes, bytes] | list[bytes]


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
    unpack_hash, unpack_list = packed.unpack_hash, packed.unpack_list
    while level and len(contents) < limit:
        room = limit - len(contents)
        if len(level) > room:
            batch, nxt = level[:room], level[room:]
        else:
            batch, nxt = level, []
        names = [content_prefix + uid for uid in batch]
        rows = {name: (kind, blob) for name, kind, blob in ops.select_rows(conn, SQL_LEVEL, names)}
        # (uid, content, may link): a packed content with no "@" byte anywhere links nothing,
        # so most leaves skip linked() (a stray "@" only costs the look).
        got: list[tuple[str, Content, bool]] = []
        empty: list[str] = []
        hashes: dict[str, dict[bytes, bytes]] = {}
        lists: dict[str, list[bytes]] = {}
        for uid, name in zip(batch, names, strict=True):
            is_dict = uid[:1] == "D"
            row = rows.get(name)
            content: Content
            if row is None:
                content = {} if is_dict else []
                empty.append(uid)
                got.append((uid, content, False))
                continue
            kind, blob = row
            if is_dict:
                if kind != HASH:
                    raise ops.wrong_type(name, kind, HASH)
                if blob is None:
                    content = hashes[name] = {}
                    got.append((uid, content, True))
                    continue
                content = unpack_hash(blob, name)
            else:
                if kind != LIST:
                    raise ops.wrong_type(name, kind, LIST)
                if blob is None:
                    content = lists[name] = []
                    got.append((uid, content, True))
                    continue
                content = unpack_list(blob, name)
            got.append((uid, content, b"@" in blob))
        if hashes:
            for name, field, value in ops.select_in(conn, SQL_HASH_MEMBERS, list(hashes)):
                hashes[name][field] = value
        if lists:
            for name, value in ops.select_in(conn, SQL_LIST_MEMBERS, list(lists)):
                lists[name].append(value)
        if empty:
            cut = len(refs_prefix)
            headers = {
                name[cut:]
                for (name,) in ops.select_in(
                    conn, SQL_HEADERS, [refs_prefix + uid for uid in empty]
                )
            }
            absent += [uid for uid in empty if uid not in headers]
        for uid, content, links in got:
            contents[uid] = content
            if links and content:
                for child in linked(uid, content):
                    if child not in queued:
                        queued.add(child)
                        nxt.append(child)
        level = nxt
    return contents, absent, level


def visit_walk(
    conn: sqlite3.Connection,
    content_prefix: str,
    refs_prefix: str,
    root: str,
    visit: SubtreeVisit,
) -> list[str]:
    """:meth:`~etcher.spec.SubtreeVisits.visit_subtree` on ``conn``; the caller holds the snapshot.

    The caller's ``visit`` finds the links (it decodes each content anyway), so the walk
    keeps no contents, no queue of its own and no ``linked()`` pass: a level is its
    statement(s), the contents unpacked and handed over, and the next level is what
    ``visit`` appended. At most :data:`~etcher_sqlite.ops.CHUNK` nodes' rows are held at
    once. A level of one node (the first one, and every level of a chain) is read by
    ``name = ?`` without the ``IN`` list.
    """
    absent: list[str] = []
    level = [root]
    unpackb = packed._unpackb
    while level:
        out: list[str] = []
        n = len(level)
        for start in range(0, n, ops.CHUNK):
            batch = level if n <= ops.CHUNK else level[start : start + ops.CHUNK]
            rows: dict[str, tuple[int, bytes | None]] | None = None
            if len(batch) == 1:
                row = conn.execute(SQL_NODE, (content_prefix + batch[0],)).fetchone()
            else:
                names = [content_prefix + uid for uid in batch]
                rows = {
                    name: (kind, blob)
                    for name, kind, blob in ops.select_rows(conn, SQL_LEVEL, names)
                }
            spilled: dict[str, str] = {}
            empty: list[str] = []
            for uid in batch:
                name = content_prefix + uid
                if rows is not None:
                    row = rows.get(name)
                if row is None:
                    empty.append(uid)
                    continue
                kind, blob = row
                content: Content | None
                if uid[:1] == "D":
                    if kind != HASH:
                        raise ops.wrong_type(name, kind, HASH)
                    if blob is None:
                        spilled[name] = uid
                        continue
                    # packed.unpack_hash(), inline for its usual case; anything irregular
                    # goes through it again for its precise error.
                    try:
                        content = unpackb(blob, raw=True, strict_map_key=True)
                    except Exception:  # msgpack raises several unrelated types
                        content = None
                    if type(content) is not dict:
                        content = packed.unpack_hash(blob, name)
                else:
                    if kind != LIST:
                        raise ops.wrong_type(name, kind, LIST)
                    if blob is None:
                        spilled[name] = uid
                        continue
                    try:
                        content = unpackb(blob, raw=True, strict_map_key=True)
                    except Exception:  # as above
                        content = None
                    if type(content) is not list:
                        content = packed.unpack_list(blob, name)
                if content:
                    visit(uid, content, out)
            del rows
            if spilled:
                _visit_spilled(conn, spilled, visit, out)
            if empty:
                cut = len(refs_prefix)
                headers = {
                    name[cut:]
                    for (name,) in ops.select_in(
                        conn, SQL_HEADERS, [refs_prefix + uid for uid in empty]
                    )
                }
                absent += [uid for uid in empty if uid not in headers]
        level = out
    return absent


def _visit_spilled(
    conn: sqlite3.Connection, spilled: dict[str, str], visit: SubtreeVisit, out: list[str]
) -> None:
    """Visit the spilled containers of a level (``{content key: uid}``): their member rows."""
    hashes: dict[str, dict[bytes, bytes]] = {}
    lists: dict[str, list[bytes]] = {}
    for name, uid in spilled.items():
        if uid[:1] == "D":
            hashes[name] = {}
        else:
            lists[name] = []
    if hashes:
        for name, field, value in ops.select_in(conn, SQL_HASH_MEMBERS, list(hashes)):
            hashes[name][field] = value
    if lists:
        for name, value in ops.select_in(conn, SQL_LIST_MEMBERS, list(lists)):
            lists[name].append(value)
    for name, content in (*hashes.items(), *lists.items()):
        if content:
            visit(spilled[name], content, out)


class SubtreeMixin:
    """``read_subtree`` and ``visit_subtree`` for the SQLite backends."""

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

    def visit_subtree(
        self: _Backend, content_prefix: str, refs_prefix: str, root: str, visit: SubtreeVisit
    ) -> list[str] | None:
        """See :meth:`etcher.spec.SubtreeVisits.visit_subtree`: one read transaction."""
        conn = self._conn()
        try:
            if conn.in_transaction:
                return None  # this thread's unit scope: core's unit path reads it
            conn.execute("BEGIN")  # one snapshot for every statement of the walk
            try:
                return visit_walk(conn, content_prefix, refs_prefix, root, visit)
            finally:
                ops.rollback(conn)  # a read-only transaction: nothing to commit
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
