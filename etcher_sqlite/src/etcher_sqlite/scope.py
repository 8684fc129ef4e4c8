"""Unit scopes: one SQLite transaction held for a whole unit of work.

Core's optimistic path watches every key it reads, re-reads their versions at
commit and wraps each read batch in its own transaction. On SQLite a unit can
instead hold one transaction from its first read to its commit: ``BEGIN
IMMEDIATE`` (the write lock, which SQLite takes anyway at commit) for units
that write, a plain ``BEGIN`` (a WAL read snapshot, blocking nobody) for units
that only read. Nothing read can then change, so nothing needs watching.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from itertools import chain, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from etcher.errors import TransactionError
from etcher_sqlite import ops, packed
from etcher_sqlite.commands import CommandsMixin
from etcher_sqlite.ops import Call, Command, Meta
from etcher_sqlite.schema import HASH, LIST

if TYPE_CHECKING:
    from types import TracebackType


class _Holder(Protocol):
    """What a scope needs from its backend."""

    def _begin_scope(self, write: bool) -> sqlite3.Connection | None: ...

    def _end_scope(self, conn: sqlite3.Connection, commit: bool) -> None: ...

    def _error(self, exc: sqlite3.Error) -> Exception: ...

    def hgetall(self, name: str) -> Any: ...

    def hget(self, name: str, key: bytes) -> Any: ...


class UnitScope:
    """The context manager behind ``SQLiteBackend.unit_scope`` (see ``etcher.spec.UnitScopes``)."""

    __slots__ = ("_backend", "_conn", "_write")

    def __init__(self, backend: _Holder, write: bool) -> None:
        self._backend = backend
        self._write = write
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> bool:
        self._conn = self._backend._begin_scope(self._write)
        return self._conn is not None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._backend._end_scope(conn, commit=exc_type is None)

    takes_created = True
    """``commit_writes()`` takes the unit's new keys (``etcher.spec.ScopeCommits``)."""

    takes_fresh = True
    """``commit_writes()`` takes new nodes' contents apart (``etcher.spec.ScopeCommits``)."""

    def commit_writes(
        self,
        writes: list[tuple[str, tuple[Any, ...]]],
        created: Collection[str] = (),
        fresh: dict[str, Any] | None = None,
    ) -> None:
        """Apply a unit's writes in the held write scope and commit (``etcher.spec.ScopeCommits``).

        Core's writes are already bytes (keys text): pushes, pops, ``hset`` and
        ``hreplace`` of those go to the commands as they are; anything else is
        checked and normalized as the public commands do it. ``created`` are keys
        the unit made as new nodes: their rows are known to be absent, so they
        are not looked up. A big unit (a big new document) has its writes
        checked all at once and its new keys inserted without reads
        (:func:`_bulk_queue`). ``fresh``: new nodes' whole contents, ``{key: mapping
        or items}``, written as if each were an ``hset`` or ``rpush`` of a key in
        ``created`` before ``writes``; a small unit's are packed in one pass
        (:func:`_apply_small`), any other goes first into ``writes``.
        """
        conn = self._conn
        if conn is None or not self._write:
            raise TransactionError("commit_writes() needs a held write scope")
        tx: ops.Tx | None = getattr(ops.SCOPE, "tx", None)
        if tx is None or tx.conn is not conn:
            tx = ops.Tx(conn)
        try:
            if fresh:
                if (
                    len(writes) + len(fresh) <= BULK_WRITES
                    and (not writes or writes[-1][0] in _SMALL_LAST)
                    and _apply_small(tx, writes, created, fresh)
                ):
                    self._conn = None
                    self._backend._end_scope(conn, commit=True)
                    return
                writes, created = _unfresh(writes, created, fresh)
            one = writes[0] if len(writes) == 1 and not created else None
            args = one[1] if one is not None else ()
            if (
                one is not None
                and one[0] in _LIST_ONE
                and len(args) == _LIST_ONE[one[0]]
                and type(args[0]) is str
                and (len(args) == 1 or type(args[1]) is bytes)
            ):
                # The commonest small units, an append, a pop(0) or an insert(0) through
                # a handle: the one command and its row, with no run built around them.
                _list_one(tx, one[0], args[0], args[1] if len(args) == 2 else None)
            elif (
                writes
                and len(writes) <= BULK_WRITES
                # List commands come last: a pop or an insert is not tried here.
                and writes[-1][0] in _SMALL_LAST
                and _apply_small(tx, writes, created)
            ):
                pass  # a small unit of the usual shapes (a new document, rd[k] = v)
            else:
                bulk = _bulk_queue(writes) if len(writes) > BULK_WRITES else None
                runs = ops._runs(bulk) if bulk is not None else _runs(tx, writes, created)
                if len(runs) == 1:
                    # ops.apply_runs(), inline for a small unit's one run (an append, a pop).
                    runs[0][0].many(tx, runs[0][1])
                    tx.flush()
                else:
                    ops.apply_runs(tx, runs)
        except BaseException as exc:
            # The Tx may hold rows never flushed: it must not outlive this failure.
            ops.drop_scoped_tx(conn)
            if isinstance(exc, sqlite3.Error):
                raise self._backend._error(exc) from exc
            raise
        self._conn = None
        self._backend._end_scope(conn, commit=True)

    def read_item(
        self, refs: str, content: str, field: bytes
    ) -> tuple[dict[bytes, bytes], bytes | None]:
        """``(hgetall(refs), hget(content, field))`` in one statement, in the held write
        scope (``etcher.spec.ScopeCommits.read_item``): a node's header and one item,
        what a write through a handle reads first.

        The scope's row cache learns both rows as those two reads teach it. A header
        that is not a packed hash (spilled, another type) and a scope whose cache
        already holds either row take the two ordinary reads instead, with their errors.
        """
        conn = self._conn
        tx: ops.Tx | None = getattr(ops.SCOPE, "tx", None)
        if (
            conn is None
            or tx is None
            or tx.conn is not conn
            or refs == content
            or refs in tx.meta
            or content in tx.meta
        ):
            return self._backend.hgetall(refs), self._backend.hget(content, field)
        try:
            row = conn.execute(_SQL_READ_ITEM, (refs, content, field)).fetchone()
        except sqlite3.Error as exc:
            raise self._backend._error(exc) from exc
        kind, blob, lo, hi, item_kind, item_blob, item_lo, item_hi, member = row
        if kind is not None and (kind != HASH or blob is None):
            return self._backend.hgetall(refs), self._backend.hget(content, field)
        cache = tx.meta
        if kind is None:
            cache[refs] = None
            header: dict[bytes, bytes] = {}
        else:
            header = packed.unpack_hash(blob, refs)
            cache[refs] = [HASH, lo, hi, blob, None]
        if item_kind is None:
            cache[content] = None
            return header, None
        if item_kind == HASH and item_blob is not None:
            # Its decoded fields are kept too: the write that follows need not unpack them.
            fields = packed.unpack_hash(item_blob, content)
            cache[content] = [HASH, item_lo, item_hi, item_blob, fields]
            return header, fields.get(field)
        cache[content] = [item_kind, item_lo, item_hi, item_blob, None]
        if item_kind != HASH:
            raise ops.wrong_type(content, item_kind, HASH)
        return header, member

    def read_header(self, refs: str, key: str) -> dict[bytes, bytes]:
        """``hgetall(refs)`` in the held write scope, with ``key``'s row read by the same
        statement (``etcher.spec.ScopeCommits.read_header``): a write at an end of a list
        through a handle reads the node's header for liveness, then the list's row.

        The scope's row cache learns both rows, so the command on ``key`` that follows
        (a push, ``llen``, ``lindex``, the commit) reads no row of its own. A header that
        is not a packed hash (spilled, another type) and a scope whose cache already holds
        either row take the ordinary read instead, with its errors.
        """
        conn = self._conn
        tx: ops.Tx | None = getattr(ops.SCOPE, "tx", None)
        if (
            conn is None
            or tx is None
            or tx.conn is not conn
            or refs == key
            or refs in tx.meta
            or key in tx.meta
        ):
            return self._backend.hgetall(refs)  # type: ignore[no-any-return]
        try:
            row = conn.execute(_SQL_READ_HEADER, (refs, key)).fetchone()
        except sqlite3.Error as exc:
            raise self._backend._error(exc) from exc
        kind, blob, lo, hi, key_kind, key_blob, key_lo, key_hi = row
        if kind is not None and (kind != HASH or blob is None):
            return self._backend.hgetall(refs)  # type: ignore[no-any-return]
        cache = tx.meta
        # As Tx.get() keeps a row: [type, lo, hi, value, decoded content].
        cache[key] = None if key_kind is None else [key_kind, key_lo, key_hi, key_blob, None]
        if kind is None:
            cache[refs] = None
            return {}
        cache[refs] = [HASH, lo, hi, blob, None]
        # packed.unpack_hash(), inline for its usual case (one call less per append);
        # anything irregular goes through it again for its precise error.
        try:
            header = packed._unpackb(blob, raw=True, strict_map_key=True)
        except Exception:  # msgpack raises several unrelated types on bad input
            header = None
        if type(header) is not dict:
            header = packed.unpack_hash(blob, refs)
        return header  # type: ignore[no-any-return]

    def commit_fresh(
        self, writes: list[tuple[str, tuple[Any, ...]]], fresh: dict[str, Any]
    ) -> None:
        """``commit_writes(writes, (), fresh)`` for writes and contents core encoded itself
        (``etcher.spec.ScopeCommits.commit_fresh``).

        Their form is not checked again: every field, value and item is ``bytes`` and
        every fresh content a non-empty dict or list under a key nothing else writes.
        A new document's rows (every content fits its packed limits) and ``hset``/
        ``hreplace`` of hashes the scope read, each key once, are packed here and
        written in one statement (:func:`_apply_fresh`); anything else, including
        what the store refuses (a key holding another type), goes the way of
        :meth:`commit_writes`, with its checks and errors.
        """
        conn = self._conn
        tx: ops.Tx | None = getattr(ops.SCOPE, "tx", None)
        if conn is None or not self._write or tx is None or tx.conn is not conn:
            self.commit_writes(writes, (), fresh)
            return
        try:
            done = _apply_fresh(tx, writes, fresh)
        except BaseException as exc:
            ops.drop_scoped_tx(conn)
            if isinstance(exc, sqlite3.Error):
                raise self._backend._error(exc) from exc
            raise
        if not done:
            self.commit_writes(writes, (), fresh)
            return
        self._conn = None
        self._backend._end_scope(conn, commit=True)


_SQL_READ_ITEM = (
    "SELECT h.type, h.value, h.lo, h.hi, c.type, c.value, c.lo, c.hi, "
    "CASE WHEN c.value IS NULL THEN "
    "(SELECT value FROM hashes WHERE name = c.name AND field = ?3) END "
    "FROM (SELECT 1) LEFT JOIN keys AS h ON h.name = ?1 LEFT JOIN keys AS c ON c.name = ?2"
)
"""A header's ``keys`` row and a hash's row with one field (``ops.SQL_HGET``), side by side
in one row (all ``NULL`` for a key that does not exist)."""

_SQL_READ_HEADER = (
    "SELECT h.type, h.value, h.lo, h.hi, c.type, c.value, c.lo, c.hi "
    "FROM (SELECT 1) LEFT JOIN keys AS h ON h.name = ?1 LEFT JOIN keys AS c ON c.name = ?2"
)
"""Two ``keys`` rows side by side (all ``NULL`` for a key that does not exist): a node's
header and the key the scope writes next. Measured 3.3 µs against 4.3 for the two reads."""


def _apply_fresh(
    tx: ops.Tx, writes: list[tuple[str, tuple[Any, ...]]], fresh: dict[str, Any]
) -> bool:
    """Apply and flush :meth:`UnitScope.commit_fresh`'s usual shape; ``False`` (nothing
    applied) for any other.

    The fresh contents are packed by C loops (``map``), no Python per node: their
    form is core's promise. Each write is an ``hset`` or ``hreplace`` of a hash whose
    row is cached (the unit read it), each key once; its new row is packed here as
    :meth:`etcher_sqlite.ops.Tx.flush` would pack it, or left to that flush when it
    outgrows the packed limits. All rows go in one statement.
    """
    cache = tx.meta
    for name, args in writes:
        if (name != "hset" and name != "hreplace") or len(args) != 2:
            return False
        meta: Any = cache.get(args[0], _ROW)
        if meta is _ROW or (meta is not None and meta[0] != HASH):
            return False  # not read, or the general path raises the wrong type
    if len(writes) > 1 and len(set(map(_FIRST, map(_SECOND, writes)))) != len(writes):
        return False
    pack = packed.packer()
    max_entries, max_bytes = packed.MAX_ENTRIES, packed.MAX_BYTES
    version = ops._stamp()
    if fresh:
        if not cache.keys().isdisjoint(fresh):
            return False
        contents = fresh.values()
        sizes = list(map(len, contents))
        if max(sizes) > max_entries:
            return False  # (a spilled node: the general path writes its member rows)
        blobs = list(map(pack, contents))
        if max(map(len, blobs)) > max_bytes:
            return False
        kinds = map(_KINDS.__getitem__, map(type, contents))
        rows = list(zip(fresh, kinds, repeat(version), repeat(0), sizes, blobs))
    else:
        rows = []
    for name, (key, mapping) in writes:
        meta = cache[key]
        if meta is None or name == "hreplace":
            if meta is not None and meta[3] is None and meta[4] is None:
                tx.conn.execute(ops.SQL_DROP_HASH, (key,))  # spilled: its member rows go
            content = mapping  # (only read: packed here, or spilled by the flush)
        else:
            content = meta[4]
            if content is None and meta[3] is not None:
                content = packed.unpack_hash(meta[3], key)
            if content is None:  # spilled: the fields are member rows
                if len(mapping) == 1:
                    # ops._hset_spilled's one call, inline: a new item of a big dict (a
                    # store's root) is the usual write here.
                    row = (key, *next(iter(mapping.items())))
                    added = tx.conn.execute(ops.SQL_ADD_FIELD, row).rowcount
                    if not added:
                        tx.conn.execute(ops.SQL_PUT_FIELD, row)
                    meta[2] += added
                else:
                    _hset_spilled(tx, [(key, mapping)], [0], [0])
                rows.append((key, HASH, version, meta[1], meta[2], None))
                continue
            content.update(mapping)
        size = len(content)
        if size <= max_entries:
            blob = pack(content)
            if len(blob) <= max_bytes:
                rows.append((key, HASH, version, 0, size, blob))
                continue
        cache[key] = [HASH, 0, size, None, content]  # the flush spills it
        tx.dirty[key] = None
    if tx.dirty:
        tx.flush(rows)
    elif rows:
        # (the flush's first case, inline)
        if len(rows) <= _UPSERT_ROWS:
            tx.conn.execute(_UPSERT_KEYS[len(rows)], [*chain.from_iterable(rows)])
        else:
            tx.conn.executemany(ops.SQL_UPSERT_KEY, rows)
    return True


def _runs(
    tx: ops.Tx, writes: list[tuple[str, tuple[Any, ...]]], created: Collection[str]
) -> list[tuple[Command, list[Call]]]:
    """A small unit's writes as runs of one command each (consecutive writes of one command).

    A new node's first ``hset`` or ``rpush`` (``created``, its row not cached)
    goes straight into ``tx`` as its whole row, packed at flush, and makes no run.
    """
    cache, dirty = tx.meta, tx.dirty
    for key in created:
        if key not in cache:
            cache[key] = None
    runs: list[tuple[Command, list[Call]]] = []
    last: Command | None = None
    calls: list[Call] = []
    for name, args in writes:
        call: Call | None = None
        if args and type(args[0]) is str:
            key = args[0]
            if name == "hset" or (name == "hreplace" and len(args) == 2 and type(args[1]) is dict):
                mapping = args[1]
                kinds = set(map(type, mapping))
                kinds.update(map(type, mapping.values()))
                if kinds == _BYTES:
                    if (
                        name == "hset"
                        and mapping
                        and cache.get(key, _ROW) is None
                        and key in created
                    ):
                        # A new node's first write: it is the whole row (no command, no copy).
                        cache[key] = [HASH, 0, len(mapping), None, mapping]
                        dirty[key] = None
                        continue
                    call = (key, dict(mapping))
            elif name == "rpush" or name == "lpush":
                values = args[1:]
                if values and set(map(type, values)) == _BYTES:
                    if name == "rpush" and cache.get(key, _ROW) is None and key in created:
                        cache[key] = [LIST, 0, len(values), None, list(values)]
                        dirty[key] = None
                        continue
                    call = (key, list(values))
            elif name == "lpop" or name == "rpop":
                if len(args) == 1:
                    call = (key, None)
                elif len(args) == 2 and type(args[1]) is int and 0 <= args[1] <= _MAX:
                    call = args
        if call is None:
            # Anything else: the public command's own checks and normalization.
            if name == "hset":
                call = _Queue.collect("hset", args[:1], {"mapping": args[1]})
            else:
                call = _Queue.collect(name, args, {})
        command = _WRITES[name]
        if command is not last:
            last = command
            calls = []
            runs.append((command, calls))
        calls.append(call)
    return runs


def _unfresh(
    writes: list[tuple[str, tuple[Any, ...]]], created: Collection[str], fresh: dict[str, Any]
) -> tuple[list[tuple[str, tuple[Any, ...]]], Collection[str]]:
    """``fresh`` as the writes it stands for, first, and its keys among ``created``."""
    first: list[tuple[str, tuple[Any, ...]]] = []
    for key, content in fresh.items():
        if type(content) is list or type(content) is tuple:
            if content:  # (pushing nothing writes nothing)
                first.append(("rpush", (key, *content)))
        elif type(content) is not dict or content:
            # (anything else: hset's own checks say what is wrong with it)
            first.append(("hset", (key, content)))
    return first + writes, {*created, *fresh}


def _apply_small(
    tx: ops.Tx,
    writes: list[tuple[str, tuple[Any, ...]]],
    created: Collection[str],
    fresh: dict[str, Any] | None = None,
) -> bool:
    """Apply and flush a small unit's writes when they all have the usual shapes;
    ``False`` (nothing applied) when one does not.

    The usual shapes, each key written once: a new node's write (``hset`` of a
    ``{bytes: bytes}`` mapping or ``rpush`` of bytes onto a key in ``created``), and
    ``hset``/``hreplace`` of such a mapping onto a hash whose row the unit read (a
    node's header and content, written through a handle; an ``hset``'s unread row
    is read here, as the command would read it). A new node's row is
    packed here and inserted with the flush's rows, without passing through
    ``tx``'s cache; the others change ``tx``'s cached rows as ``hset_many`` and
    ``hreplace_many`` do; fields deleted from a spilled hash the unit read go as
    ``hdel_many`` deletes them. Anything else (another command or shape, an empty or
    non-bytes mapping or item, an ``hreplace`` of a key the unit did not read, a wrong
    type) takes the general path, with the public commands' checks and errors. Everything is
    checked before anything is applied, the types of all fields, values and items
    in one C pass. ``fresh`` (see :meth:`UnitScope.commit_writes`): new nodes'
    contents, packed the same way, keys neither cached nor written in ``writes``.
    """
    cache = tx.meta
    version = ops._stamp()
    pack = packed.packer()
    max_entries, max_bytes = packed.MAX_ENTRIES, packed.MAX_BYTES
    rows: list[tuple[Any, ...]] = []  # the new nodes' rows, packed
    spills: list[tuple[str, Meta]] = []  # new nodes too big to pack (the flush spills them)
    contents: list[Any] = []  # every mapping, for the type check
    items: list[Any] = []  # every pushed item tuple, for the type check
    edits: list[tuple[str, tuple[Any, ...]]] | None = None  # writes onto read hashes
    try:
        if fresh and (
            set(map(type, fresh)) != _STR
            or not cache.keys().isdisjoint(fresh)
            or not fresh.keys().isdisjoint(map(_FIRST, map(_SECOND, writes)))
        ):
            return False  # not new keys as commit_writes() takes them: the general path
        # One tight pass: every content a non-empty dict (a hash) or list (a list). (A
        # member msgpack cannot pack raises TypeError: the general path says what it is.)
        for key, content in fresh.items() if fresh else ():
            cls = type(content)
            if cls is dict:
                contents.append(content)
                kind = HASH
            elif cls is list:
                items.append(content)
                kind = LIST
            else:
                return False
            size = len(content)
            if not size:
                return False  # (an empty content is no row: the general path skips it)
            if size <= max_entries:
                blob = pack(content)
                if len(blob) <= max_bytes:
                    rows.append((key, kind, version, 0, size, blob))
                    continue
            spills.append((key, [kind, 0, size, None, content]))
        for write in writes:
            name, args = write
            key = args[0]
            if key in created and key not in cache:
                if name == "hset":
                    key, content = args
                    if type(content) is not dict or not content:
                        return False
                    contents.append(content)
                    kind = HASH
                elif name == "rpush":
                    content = list(args[1:])
                    if not content:
                        return False
                    items.append(content)
                    kind = LIST
                else:
                    return False
                size = len(content)
                if size <= max_entries:
                    blob = pack(content)
                    if len(blob) <= max_bytes:
                        rows.append((key, kind, version, 0, size, blob))
                        continue
                spills.append((key, [kind, 0, size, None, content]))
            elif name == "hset" or name == "hreplace":
                if key not in cache:
                    if name == "hreplace" or type(key) is not str:
                        return False
                    # An unread hash (the pending list a unit retiring nodes adds to):
                    # its row, read as hset would read it.
                    tx.get(key)
                key, content = args
                if type(content) is not dict or not content:
                    return False
                meta = cache[key]
                if meta is not None and meta[0] != HASH:
                    return False  # the general path raises the wrong type
                contents.append(content)
                if edits is None:
                    edits = []
                edits.append(write)
            elif name == "hdel" and len(args) > 1 and cache.get(key) is not None:
                # Fields deleted from a big (spilled) hash the unit read: a document from
                # a namespace's root. Its member rows go, as hdel_many deletes them. (A
                # packed hash's fields go the general way: a unit that read one whole
                # writes it whole, with hreplace.)
                meta = cache[key]
                if meta[0] != HASH or meta[3] is not None or meta[4] is not None:
                    return False
                items.append(args[1:])  # (the fields must be bytes: checked with the items)
                if edits is None:
                    edits = []
                edits.append(write)
            else:
                return False
    except (IndexError, TypeError, ValueError):
        return False  # not a write of these shapes (no key, an unhashable one...)
    # Keys written twice (a push onto a new list after its first) go in order, the
    # general way; and every field, value and item must be bytes.
    if len(set(map(_FIRST, map(_SECOND, writes)))) != len(writes):
        return False
    kinds = set(
        map(
            type,
            chain(
                chain.from_iterable(contents),
                chain.from_iterable(map(dict.values, contents)),
                chain.from_iterable(items),
            ),
        )
    )
    if kinds != _BYTES:
        return False
    dirty = tx.dirty
    for key, meta in spills:
        cache[key] = meta
        dirty[key] = None
    if edits is not None:
        for name, args in edits:
            if name == "hdel":
                ops.hdel_many(tx, [(args[0], args[1:])])
                continue
            key, mapping = args
            meta = cache[key]
            if meta is None:
                cache[key] = [HASH, 0, len(mapping), None, dict(mapping)]
            elif name == "hreplace":
                if meta[3] is None and meta[4] is None:
                    tx.conn.execute(ops.SQL_DROP_HASH, (key,))  # spilled: its member rows go
                cache[key] = [HASH, 0, len(mapping), None, dict(mapping)]
            else:
                content = meta[4]
                if content is None and meta[3] is not None:
                    content = meta[4] = packed.unpack_hash(meta[3], key)
                if content is None:
                    _hset_spilled(tx, [(key, mapping)], [0], [0])
                else:
                    content.update(mapping)  # (the flush counts its fields)
            dirty[key] = None
    tx.flush(rows)
    return True


_hset_spilled = ops._hset_spilled
_UPSERT_ROWS = ops.UPSERT_ROWS
_UPSERT_KEYS = ops.SQL_UPSERT_KEYS
_SMALL_LAST = frozenset(("hset", "hreplace", "rpush"))
_STR = {str}
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_WRITES = ops.WRITES
_list_one = ops.list_one
# The list commands list_one() takes, and their argument counts (one item pushed, or a pop).
_LIST_ONE = {"rpush": 2, "lpush": 2, "lpop": 1, "rpop": 1}
_BYTES = {bytes}
_KINDS: dict[type, int] = {dict: HASH, list: LIST}
_MAX = ops.INT64_MAX
_ROW = object()  # a key whose row is not cached

BULK_WRITES = 64
"""Above this many writes, :meth:`UnitScope.commit_writes` checks them all at once."""


def _bulk_queue(writes: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Command, Call]] | None:
    """The queue of a big unit's writes (a big new document: thousands of ``hset``/``rpush``).

    The types of every field, value and item are checked in one pass over all of
    them (C loops, no set per write), and contents are queued as they are, not
    copied: the commands only read them, and the unit is done with them. Each
    ``hset`` or ``rpush`` that is the only write to its key goes into one
    ``create`` call, first (:func:`etcher_sqlite.ops.create_many`: no read of
    keys that are almost always new; no other write of the batch touches them,
    so the order does not matter). ``None`` when any write has another shape, or
    any value is not ``bytes``: then the per-write path (with the public
    commands' errors) takes the whole batch.
    """
    hset, rpush = ops.HSET, ops.RPUSH
    queue: list[tuple[Command, Call]] = []
    append = queue.append
    mappings: list[dict[Any, Any]] = []
    items: list[tuple[Any, ...]] = []
    # Per key, its content while this is the key's only write (None once it is not).
    creates: dict[str, Any] = {}
    for name, args in writes:
        if name == "hset" and len(args) == 2:
            key, content = args
            if type(content) is not dict or not content:
                return None
            mappings.append(content)
        elif name == "rpush" and len(args) > 1:
            key = args[0]
            content = args[1:]
            items.append(content)
        elif name == "hreplace" and len(args) == 2 and type(args[1]) is dict:
            # A big collection's retired headers (each rewritten whole with its mark):
            # checked in the pass below with the others, not one command object each.
            key, content = args
            if type(key) is not str:
                return None
            mappings.append(content)
            _unshare(creates, key, append, hset, rpush)
            append((ops.HREPLACE, (key, content)))
            continue
        else:
            call = _Queue.collect(name, args, {})
            for other in call[0] if name == "delete" else call[:1]:
                _unshare(creates, other, append, hset, rpush)
            append((ops.WRITES[name], call))
            continue
        if type(key) is not str:
            return None
        if key in creates:
            _unshare(creates, key, append, hset, rpush)
            append((hset if type(content) is dict else rpush, (key, content)))
        else:
            creates[key] = content
    kinds = set(map(type, chain.from_iterable(mappings)))
    kinds.update(map(type, chain.from_iterable(map(dict.values, mappings))))
    kinds.update(map(type, chain.from_iterable(items)))
    if kinds and kinds != _BYTES:
        return None
    pairs = [pair for pair in creates.items() if pair[1] is not None]
    if pairs:
        queue.insert(0, (ops.CREATE, (pairs,)))
    return queue


def _unshare(
    creates: dict[str, Any],
    key: str,
    append: Callable[[tuple[Command, Call]], None],
    hset: Command,
    rpush: Command,
) -> None:
    """``key`` has another write: its first one (if it was a create) joins the queue in order."""
    first = creates.get(key)
    if first is not None:
        append((hset if type(first) is dict else rpush, (key, first)))
    creates[key] = None


class _Queue(CommandsMixin):
    """Runs a public command's argument checks and keeps the (command, call) it makes."""

    __slots__ = ("queue",)

    def __init__(self) -> None:
        self.queue: list[tuple[Command, Call]] = []

    def _call(self, command: Command, call: Call) -> Any:
        self.queue.append((command, call))
        return None

    @classmethod
    def collect(cls, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """The normalized call of public command ``name`` (its errors raised as it raises them)."""
        collector = cls()
        getattr(collector, name)(*args, **kwargs)
        ((_, call),) = collector.queue
        return call
