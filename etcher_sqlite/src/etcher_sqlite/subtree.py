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
SQL_NODE = "SELECT name, type, value FROM keys WHERE name = ?"
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
        if hashes or lists:
            fill_members(conn, hashes, lists)
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


def fill_members(
    conn: sqlite3.Connection,
    hashes: dict[str, dict[bytes, bytes]],
    lists: dict[str, list[bytes]],
) -> None:
    """Fill spilled containers with their member rows: ``hashes`` and ``lists`` map each
    content key to an empty dict or list, which get its fields or its items in order."""
    if hashes:
        for name, field, value in ops.select_in(conn, SQL_HASH_MEMBERS, list(hashes)):
            hashes[name][field] = value
    if lists:
        for name, value in ops.select_in(conn, SQL_LIST_MEMBERS, list(lists)):
            lists[name].append(value)


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
    statement(s), the rows unpacked and handed over as they come (the order of a level
    does not matter), and the next level is what ``visit`` appended. At most
    :data:`~etcher_sqlite.ops.CHUNK` nodes' rows are held at once. A level of one node
    (the first one, and every level of a chain) is read by ``name = ?``; the nodes a
    level's rows leave out (empty containers, missing nodes) are looked for only when
    there are fewer rows than nodes.
    """
    absent: list[str] = []
    cut = len(content_prefix)
    unpackb = packed._unpackb
    level = [root]
    while level:
        out: list[str] = []
        n = len(level)
        for start in range(0, n, ops.CHUNK):
            batch = level if n <= ops.CHUNK else level[start : start + ops.CHUNK]
            size = len(batch)
            rows: Sequence[tuple[str, int, bytes | None]]
            if size == 1:
                row = conn.execute(SQL_NODE, (content_prefix + batch[0],)).fetchone()
                rows = () if row is None else (row,)
            else:
                names = list(map(content_prefix.__add__, batch))  # no listcomp frame
                padded = 1 << (size - 1).bit_length()  # as select_in pads: few SQL texts
                if padded > size:
                    names += [names[-1]] * (padded - size)
                # ops' cache of IN texts (a C-level hit): the walk keeps no copy of its own.
                rows = conn.execute(ops._in_sql(SQL_LEVEL, padded, "?"), names).fetchall()
            if len(rows) < size:  # some have no content row: empty, or missing
                _absent(conn, batch, rows, content_prefix, refs_prefix, absent)
            spilled: dict[str, str] | None = None
            for name, kind, blob in rows:
                uid = name[cut:]
                if blob is None:  # a spilled container, or a wrong type: below
                    if (kind == HASH) if uid[:1] == "D" else (kind == LIST):
                        if spilled is None:
                            spilled = {}
                        spilled[name] = uid
                        continue
                    content: Content = _irregular(name, uid, kind, blob)
                else:
                    # packed.unpack_hash()/unpack_list(), inline for their usual case;
                    # anything irregular takes _irregular() for the precise error.
                    try:
                        content = unpackb(blob, raw=True, strict_map_key=True)
                    except Exception:  # msgpack raises several unrelated types
                        content = _irregular(name, uid, kind, blob)
                    if uid[:1] == "D":
                        if kind != HASH or type(content) is not dict:
                            content = _irregular(name, uid, kind, blob)
                    elif kind != LIST or type(content) is not list:
                        content = _irregular(name, uid, kind, blob)
                if content:
                    visit(uid, content, out)
            del rows
            if spilled:
                _visit_spilled(conn, spilled, visit, out)
        level = out
    return absent


def _irregular(name: str, uid: str, kind: int, blob: bytes | None) -> Content:
    """The error for a node's ``keys`` row that is not a packed content of its kind:
    ``WrongTypeError`` for another type, ``StoreCorrupt`` (from ``packed``) for damage."""
    if uid[:1] == "D":
        if kind != HASH:
            raise ops.wrong_type(name, kind, HASH)
        return packed.unpack_hash(blob, name)  # type: ignore[arg-type]  # raises
    if kind != LIST:
        raise ops.wrong_type(name, kind, LIST)
    return packed.unpack_list(blob, name)  # type: ignore[arg-type]  # raises


def _absent(
    conn: sqlite3.Connection,
    batch: list[str],
    rows: Sequence[tuple[str, int, bytes | None]],
    content_prefix: str,
    refs_prefix: str,
    absent: list[str],
) -> None:
    """Add to ``absent`` the nodes of ``batch`` without a content row and without a header."""
    found = {name for name, _kind, _blob in rows}
    empty = [uid for uid in batch if content_prefix + uid not in found]
    cut = len(refs_prefix)
    headers = {
        name[cut:]
        for (name,) in ops.select_in(conn, SQL_HEADERS, [refs_prefix + uid for uid in empty])
    }
    absent += [uid for uid in empty if uid not in headers]


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
    fill_members(conn, hashes, lists)
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
        try:
            # self._conn(), inline for a file store's thread (every db[k]() comes here);
            # the in-memory store has no per-thread connections and takes _conn().
            conn: sqlite3.Connection = self._local.conn  # type: ignore[attr-defined]
        except AttributeError:
            conn = self._conn()
        try:
            if conn.in_transaction:
                return None  # this thread's unit scope: core's unit path reads it
            conn.execute("BEGIN")  # one snapshot for every statement of the walk
            try:
                return visit_walk(conn, content_prefix, refs_prefix, root, visit)
            finally:
                # ops.rollback(), inline: a read-only transaction, nothing to commit. If even
                # ROLLBACK fails, the error that ended the walk is the one worth reporting.
                if conn.in_transaction:
                    try:  # noqa: SIM105
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
