"""The SQLite storage backend: etcher's default, embedded, single-file store."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from etcher.errors import (
    BackendUnavailable,
    EtcherError,
    ReadOnlyStore,
    StorageError,
    StoreCorrupt,
    StoreLocked,
)
from etcher.spec import Capabilities, SubtreeChunk, SubtreeVisit
from etcher_sqlite import glob, ops, options, packed, schema, scope
from etcher_sqlite.commands import (
    _INDEX_CLAMP,
    CommandsMixin,
    to_bytes,
    to_index,
    to_int,
    to_key,
)
from etcher_sqlite.ops import Call, Command
from etcher_sqlite.pipeline import SQLitePipeline
from etcher_sqlite.schema import HASH
from etcher_sqlite.subtree import SubtreeMixin

if TYPE_CHECKING:
    from etcher.spec import EncodableT, KeyT, Pipeline, StorageBackend

VACUUM_FREE_SHARE = 0.25
"""``maintenance()`` runs VACUUM once free pages are at least this share of the file ..."""

VACUUM_MIN_FREE_PAGES = 64
"""... and at least this many (so tiny files are not rewritten over a few pages)."""

SCAN_BATCH = 1000
"""Keys fetched per query by ``scan_iter`` when no ``count`` hint is given."""

WAL_AUTOCHECKPOINT = 4000
"""WAL pages after which a commit checkpoints the log into the file (SQLite's default: 1000).

A checkpoint copies every page the log holds into the file and syncs both,
whatever the durability setting, so its cost is mostly those syncs. A write that
changes shared children touches ~20 pages (their headers are spread over the
key order), which reached SQLite's default every ~50 writes: measured on
``replace_shared``, about a sixth of the time went to checkpoints. At 4,000
pages (a log of up to ~16 MB) they come four times less often, and the pages
written again and again (the root, hot headers) are copied once per checkpoint
instead of four times. ``maintenance()`` still truncates the log."""

FILE_MODE = 0o644
"""Mode of a new store file: owner read-write, never group- or world-writable."""

_SQL_HGET_READ = (
    "SELECT k.type, k.value, CASE WHEN k.value IS NULL THEN "
    "(SELECT value FROM hashes WHERE name = ?1 AND field = ?2) END FROM keys AS k WHERE k.name = ?1"
)
"""``hget`` outside a transaction: ``ops.SQL_HGET`` without the columns a unit scope keeps
(measured 0.3-0.4 µs less per read, one per level of ``db[k]["a"]["b"]``)."""

_SCAN_SQL = {
    (True, True): "SELECT name FROM keys WHERE name >= ? AND name < ? ORDER BY name LIMIT ?",
    (True, False): "SELECT name FROM keys WHERE name >= ? ORDER BY name LIMIT ?",
    (False, True): "SELECT name FROM keys WHERE name > ? AND name < ? ORDER BY name LIMIT ?",
    (False, False): "SELECT name FROM keys WHERE name > ? ORDER BY name LIMIT ?",
}
_BUSY, _LOCKED, _READONLY, _CORRUPT, _CANTOPEN, _NOTADB = 5, 6, 8, 11, 14, 26
_pause = time.sleep  # (tests replace it to see the wait happen)
_READONLY_DIRECTORY = _READONLY | (6 << 8)


IDLE_CONNECTIONS = 8
"""Most connections of ended threads a store keeps for threads still to come."""


# Bound once: a finalizer may run late in interpreter shutdown.
_getpid = os.getpid


class _Idle:
    """Connections of ended threads, for the next new thread to take over.

    A thread per request (``http.server``'s ``ThreadingMixIn``, Werkzeug's threaded
    server) would otherwise open a connection for every request and prepare every
    statement anew: ~230 µs before a small document's read, which itself takes ~30.
    Filled from :meth:`_Slot.__del__`, so it takes no lock (a finalizer can run
    while its thread holds one); ``deque`` appends and pops are atomic.
    """

    __slots__ = ("conns", "open", "pid")

    def __init__(self) -> None:
        self.conns: deque[sqlite3.Connection] = deque()
        self.open = True
        self.pid = os.getpid()

    def take(self) -> sqlite3.Connection | None:
        try:
            return self.conns.pop()  # the newest: its pages are the likeliest cached
        except IndexError:
            return None

    def drain(self) -> list[sqlite3.Connection]:
        out = []
        while True:
            try:
                out.append(self.conns.popleft())
            except IndexError:
                return out


class _Slot:
    """One thread's connection, held by that thread's ``threading.local``.

    The backend only keeps weak references to slots, so a thread's slot goes
    when the thread ends; its connection then goes to the store's :class:`_Idle`
    for the next new thread, or is closed when enough are kept already.
    """

    __slots__ = ("__weakref__", "conn", "idle")

    def __init__(self, conn: sqlite3.Connection, idle: _Idle) -> None:
        self.conn = conn
        self.idle = idle

    def __del__(self) -> None:
        idle, conn = self.idle, self.conn
        # Not after fork() (the parent's connections are parked in _ORPHANS, never used
        # here), nor once the store is closed, nor in the middle of a transaction (a
        # thread that ended inside one): dropping the connection closes it, as before.
        if not idle.open or idle.pid != _getpid() or len(idle.conns) >= IDLE_CONNECTIONS:
            return
        try:
            if conn.in_transaction:
                return
        except sqlite3.Error:  # already closed
            return
        idle.conns.append(conn)
        if not idle.open:  # close() drained the pool meanwhile: close it as close() would
            for late in idle.drain():
                with contextlib.suppress(sqlite3.Error):
                    late.close()


_BACKENDS: weakref.WeakSet[SQLiteBackend] = weakref.WeakSet()
# Connections inherited through fork(): SQLite must not use (or close) them in the
# child, so they are parked here for the life of the child process.
_ORPHANS: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    ops.drop_scoped_tx()  # the forking thread's scope belongs to the parent
    for backend in list(_BACKENDS):
        backend._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SQLiteBackend(SubtreeMixin, CommandsMixin):
    """An etcher store in one SQLite file, shared safely by threads and processes.

    >>> store = SQLiteBackend("state.db", timeout=5)          # doctest: +SKIP
    >>> store.hset("{app}:node", mapping={"a": 1})            # doctest: +SKIP
    1

    ``SQLiteBackend(":memory:")`` gives a :class:`SQLiteMemoryBackend` instead.

    :param path: the database file; created (mode 0644) if missing, its
        directory must exist.
    :param timeout: seconds to wait for another writer before
        :class:`~etcher.errors.StoreLocked` (default 30).
    :param durability: ``"normal"`` (default: ``PRAGMA synchronous=NORMAL``,
        never corrupts, may lose the last commits on power loss) or ``"full"``
        (sync on every commit).

    The file runs in WAL mode, so readers never block the writer. Every thread
    gets its own connection; :meth:`close` closes them all. Every write is a
    ``BEGIN IMMEDIATE … COMMIT`` transaction that stamps the keys it changes
    with a fresh random version, which is what pipelines' ``watch``
    compares, across connections and processes alike.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        multiprocess=True,
        atomic_batches=True,
        maintenance=True,
        snapshot_reads=True,
        locking_units=True,
        subtree_reads=True,
        subtree_visits=True,
        whole_hash_writes=True,
    )

    path: str
    """Absolute path of the database file (``":memory:"`` for an in-memory store)."""

    timeout: float
    """Seconds a write waits for the lock before ``StoreLocked``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        path = args[0] if args else kwargs.get("path")
        if (
            cls is SQLiteBackend
            and isinstance(path, str | os.PathLike)
            and os.fspath(path) == options.MEMORY
        ):
            return cast(Self, object.__new__(SQLiteMemoryBackend))
        return object.__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = options.DEFAULT_TIMEOUT,
        durability: str = "normal",
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.timeout = options.timeout(timeout)
        self._synchronous = options.durability(durability)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._slots: weakref.WeakSet[_Slot] = weakref.WeakSet()
        self._idle = _Idle()
        self._closed = False
        self._create_file()
        conn = self._new_connection()
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._adopt(conn)
        self._identity = self._file_identity()
        _BACKENDS.add(self)

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **opts: Any) -> Self:
        """Open (or create) the store at ``path``; ``":memory:"`` gives an in-memory store.

        Options: ``timeout`` (seconds, default 30) and ``durability``
        (``"normal"`` or ``"full"``); any other name is a ``TypeError``.
        """
        options.check_names(opts)
        return cls(path, **opts)

    @classmethod
    def from_url(cls, url: str, **opts: Any) -> Self:
        """Open ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``.

        Options may also come in the query string (``?timeout=5&durability=full``);
        keyword options win over the URL's. Unknown names are a ``TypeError``.
        """
        path, query = options.parse_url(url)
        options.check_names(query)
        options.check_names(opts)
        return cls(path, **{**query, **opts})

    def _create_file(self) -> None:
        # Created here rather than by SQLite so the mode is ours, not a build default.
        path = self.path
        if os.path.isdir(path):
            raise BackendUnavailable(f"cannot open {path}: it is a directory, not a store file")
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise BackendUnavailable(
                f"cannot open {path}: directory {directory} does not exist (create it first)"
            )
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return
        except PermissionError:
            raise ReadOnlyStore(
                f"cannot create {path}: directory {directory} is not writable"
            ) from None
        os.close(fd)

    def _new_connection(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # close() may run on another thread
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise self._error(exc, opening=True) from exc
        try:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}").fetchall()
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, opening=True) from exc
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Recognise (or create) the store on the first connection."""
        try:
            if schema.check_existing(conn, self.path):
                writable = True
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    try:
                        self._to_wal(conn)
                    except sqlite3.OperationalError as exc:
                        if exc.sqlite_errorcode & 0xFF != _READONLY:
                            raise
                        # A read-only store keeps its journal mode and stays readable.
                        writable = False
                # An older layout that cannot be upgraded (read-only file) still reads
                # right: schema 1 is schema 2 with every container spilled.
                if writable and schema.needs_upgrade(conn):
                    try:
                        schema.upgrade(conn, self.path)
                    except sqlite3.OperationalError as exc:
                        if exc.sqlite_errorcode & 0xFF != _READONLY:
                            raise
            else:
                self._to_wal(conn)
                schema.create(conn, self.path)
        except sqlite3.Error as exc:
            raise self._error(exc, opening=True) from exc

    def _to_wal(self, conn: sqlite3.Connection) -> None:
        """``PRAGMA journal_mode = WAL``, waiting out another writer for up to ``timeout``.

        While another connection holds the write lock (another process creating the
        schema of the same new file, say: several web workers opening it at once),
        SQLite answers the switch with ``SQLITE_BUSY`` at once instead of calling its
        busy handler, so the wait the ``timeout`` promises is done here.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != _BUSY or time.monotonic() >= deadline:
                    raise
            _pause(pause)
            pause = min(2 * pause, 0.05)

    def _adopt(self, conn: sqlite3.Connection) -> None:
        slot = _Slot(conn, self._idle)
        self._slots.add(slot)
        self._local.slot = slot
        self._local.conn = conn

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise BackendUnavailable(f"the store {self.path} was closed")
            conn = self._idle.take() or self._new_connection()
            self._adopt(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        return conn

    def _after_fork(self) -> None:
        _ORPHANS.extend(slot.conn for slot in self._slots)
        self._idle.open = False
        _ORPHANS.extend(self._idle.drain())
        self._idle = _Idle()
        self._slots = weakref.WeakSet()
        self._local = threading.local()
        self._lock = threading.Lock()

    _identity: tuple[int, int] | None = None
    """(device, inode) of the store file when it was opened; None for in-memory stores."""

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _check_file(self) -> None:
        """Refuse to write when the store file was deleted or replaced since it was opened.

        SQLite keeps writing into the open (now unlinked) file and reports success,
        so every acknowledged write would be lost; one ``stat`` per commit catches it.
        """
        identity = self._identity
        if identity is None:
            return
        # The stat inline (not _file_identity()): this runs once per write.
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            now = None
        else:
            now = st.st_dev, st.st_ino
        if now is None:
            raise BackendUnavailable(
                f"{self.path} was deleted while open; writes would be lost. Reopen the store"
            )
        if now != identity:
            raise StoreCorrupt(
                f"{self.path} was replaced by another file while open; writes would go to "
                "the old file. Reopen the store"
            )

    def _error(self, exc: sqlite3.Error, opening: bool = False) -> EtcherError:
        """The etcher error for a native one, with the path and what to do."""
        # SQLite may have rolled the transaction back: the scope's row cache must go.
        ops.drop_scoped_tx()
        extended = getattr(exc, "sqlite_errorcode", None) or 0
        code = extended & 0xFF
        path = self.path
        if code in (_BUSY, _LOCKED):
            return StoreLocked(
                f"{path} stayed locked by another writer for more than {self.timeout:g} s; "
                "retry, open it with a larger timeout=, or stop the process holding the lock"
            )
        if code == _READONLY:
            what = "cannot be opened" if opening else "cannot be written"
            if extended == _READONLY_DIRECTORY:
                return ReadOnlyStore(
                    f"{path} {what}: its directory is read-only and SQLite must create "
                    "the -wal/-shm files beside it; make the directory writable"
                )
            return ReadOnlyStore(f"{path} {what}: it is read-only ({exc})")
        if code in (_CORRUPT, _NOTADB):
            return StoreCorrupt(f"{path} is not an etcher store or is damaged ({exc})")
        if code == _CANTOPEN:
            return BackendUnavailable(f"cannot open {path} ({exc})")
        if isinstance(exc, sqlite3.ProgrammingError) and self._closed:
            return BackendUnavailable(f"the store {path} was closed")
        return StorageError(f"{path}: {exc}")

    # --- running commands ---------------------------------------------------------

    def _call(self, command: Command, call: Call) -> Any:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        try:
            if command.write:
                self._check_file()
                return ops.run_one(conn, command, call)
            return command.one(conn, *call)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    # --- point reads, straight to their statement ----------------------------------
    # The hottest reads skip the command machinery (normalizers, ``_call``, the
    # command table): they check their arguments inline and run ops' function on
    # this thread's connection. The in-memory store keeps the generic path, which
    # holds its lock.

    def get(self, name: KeyT) -> Any:
        """The value of string key ``name``, or ``None`` if it does not exist."""
        if type(name) is not str:
            name = to_key(name)
        try:
            return ops.get(self._conn(), name)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def hget(self, name: KeyT, key: EncodableT) -> Any:
        """The value of field ``key`` of hash ``name``, or ``None``."""
        if type(name) is not str:
            name = to_key(name)
        if type(key) is not bytes:
            key = to_bytes(key)
        try:
            conn: sqlite3.Connection = self._local.conn  # self._conn(), inline: every level
        except AttributeError:  # of db[k]["a"]["b"] is one hget
            conn = self._conn()
        try:
            if conn.in_transaction:
                return ops.hget(conn, name, key)  # which keeps what a unit scope reads
            # Outside a transaction nothing keeps the row's bookkeeping: a leaner statement.
            row = conn.execute(_SQL_HGET_READ, (name, key)).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        if row is None:
            return None
        kind, blob, member = row
        if kind == HASH and blob is not None:
            return packed.unpack_hash(blob, name).get(key)
        if kind != HASH:
            raise ops.wrong_type(name, kind, HASH)
        return member

    def hgetall(self, name: KeyT) -> Any:
        """Every field of hash ``name`` as a dict (``{}`` if missing)."""
        if type(name) is not str:
            name = to_key(name)
        try:
            conn: sqlite3.Connection = self._local.conn  # self._conn(), inline: every write
        except AttributeError:  # reads a node's header through here
            conn = self._conn()
        try:
            return ops.hgetall(conn, name)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def hlen(self, name: KeyT) -> Any:
        """Number of fields in hash ``name`` (0 if missing)."""
        if type(name) is not str:
            name = to_key(name)
        try:
            return ops.hlen(self._conn(), name)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def llen(self, name: KeyT) -> Any:
        """Number of items in list ``name`` (0 if missing), in O(1)."""
        if type(name) is not str:
            name = to_key(name)
        try:
            conn: sqlite3.Connection = self._local.conn  # self._conn(), inline: a pop or an
        except AttributeError:  # insert through a handle reads the length so
            conn = self._conn()
        try:
            return ops.llen(conn, name)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def lindex(self, name: KeyT, index: int) -> Any:
        """The item at ``index``, or ``None`` if out of range or missing."""
        if type(name) is not str:
            name = to_key(name)
        # to_index()'s usual case inline (a pop through a handle reads its item so): an int
        # inside the clamp is itself.
        if type(index) is not int or not -_INDEX_CLAMP <= index <= _INDEX_CLAMP:
            index = to_index(index, "index")
        try:
            conn: sqlite3.Connection = self._local.conn  # self._conn(), inline
        except AttributeError:
            conn = self._conn()
        try:
            return ops.lindex(conn, name, index)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def lrange(self, name: KeyT, start: int, end: int) -> Any:
        """Items ``start`` through ``end`` inclusive (negative from the end, clipped)."""
        if type(name) is not str:
            name = to_key(name)
        start, end = to_index(start, "start"), to_index(end, "end")
        try:
            return ops.lrange(self._conn(), name, start, end)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _execute(
        self, queue: list[tuple[Command, Call]], watched: dict[str, int | None]
    ) -> list[Any]:
        conn = self._conn()
        # A unit scope checked the file when it took the write lock.
        if not conn.in_transaction and any(command.write for command, _ in queue):
            self._check_file()
        try:
            return ops.run_batch(conn, queue, watched)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _versions(self, names: list[str]) -> dict[str, int | None]:
        conn = self._conn()
        try:
            return ops.versions(conn, names)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def read_batch(
        self, hashes: Sequence[str], singles: Sequence[tuple[str, bytes]], lists: Sequence[str]
    ) -> list[Any]:
        """Whole hashes, single hash fields and whole lists, one result each, in that order.

        What a non-transactional pipeline of ``hgetall``, ``hget`` and
        ``lrange(key, 0, -1)`` returns, without the pipeline: a unit holding a
        scope reads its batches through here (core's ``Unit._fetch``). Inside
        the scope the reads are statements of its transaction; outside one they
        run in one read snapshot, as the pipeline's batch does. Keys are str
        and fields bytes (the unit's own; no argument normalizing).
        """
        conn = self._conn()
        if not conn.in_transaction:
            queue: list[tuple[Command, Call]] = [(ops.HGETALL, (k,)) for k in hashes]
            queue += [(ops.HGET, kf) for kf in singles]
            queue += [(ops.LRANGE, (k, 0, -1)) for k in lists]
            return self._execute(queue, {})
        try:
            if len(hashes) > 1:
                results: list[Any] = ops.hgetall_many(conn, [(k,) for k in hashes])
            else:
                results = [ops.hgetall(conn, k) for k in hashes]
            results += [ops.hget(conn, k, f) for k, f in singles]
            if len(lists) > 1:
                results += ops.lrange_many(conn, [(k, 0, -1) for k in lists])
            else:
                results += [ops.lrange(conn, k, 0, -1) for k in lists]
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return results

    def unit_scope(self, write: bool) -> scope.UnitScope:
        """Hold one transaction on this thread for a unit of work (``etcher.spec.UnitScopes``).

        ``write=True`` takes the write lock (``BEGIN IMMEDIATE``, waiting up to
        ``timeout`` like any write); ``write=False`` reads from a snapshot.
        """
        return scope.UnitScope(self, write)

    def _begin_scope(self, write: bool) -> sqlite3.Connection | None:
        try:
            conn: sqlite3.Connection = self._local.conn  # self._conn(), inline: once per unit
        except AttributeError:
            conn = self._conn()
        try:
            if conn.in_transaction:
                return None  # this thread already holds a scope (or a batch is open)
            if write:
                if self._identity is not None:  # _check_file()'s usual case, inline
                    try:
                        st = os.stat(self.path)
                    except FileNotFoundError:
                        self._check_file()  # raises what it says
                    else:
                        if (st.st_dev, st.st_ino) != self._identity:
                            self._check_file()  # raises what it says
                conn.execute("BEGIN IMMEDIATE")
                ops.SCOPE.tx = ops.Tx(conn)
            else:
                conn.execute("BEGIN")
            return conn
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _end_scope(self, conn: sqlite3.Connection, commit: bool) -> None:
        # The scope's Tx goes first: it must never outlive its transaction.
        tx = getattr(ops.SCOPE, "tx", None)
        if tx is not None and tx.conn is conn:
            ops.SCOPE.tx = None
        try:
            if not commit:
                ops.rollback(conn)
                return
            try:
                conn.execute("COMMIT")
            except BaseException:
                ops.rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _scan_rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        conn = self._conn()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    # --- the rest of the Protocol -------------------------------------------------

    def pipeline(self, transaction: bool = True) -> SQLitePipeline:
        """A new pipeline; see :class:`~etcher_sqlite.pipeline.SQLitePipeline`.

        ``transaction=False`` behaves the same: SQLite batches are always atomic.
        """
        return SQLitePipeline(self, transaction)

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        """Yield every key matching the Redis glob ``match`` once, as bytes, in key order.

        The literal head of the pattern (``\\``-escapes included) is read as an
        index range, so ``escaped_prefix + "*"`` never scans other keys; the rest
        of the pattern, if any, is checked in Python. ``count`` is the number of
        keys fetched per query. No transaction stays open between batches.
        """
        prefix, matcher = glob.plan(match)
        upper = glob.prefix_upper_bound(prefix)
        batch = SCAN_BATCH if count is None else max(1, to_int(count, "count"))
        return self._scan(prefix, upper, matcher, batch)

    def _scan(
        self, prefix: str, upper: str | None, matcher: glob.Matcher | None, batch: int
    ) -> Iterator[bytes]:
        first, last = True, prefix
        while True:
            sql = _SCAN_SQL[first, upper is not None]
            params = (last, upper, batch) if upper is not None else (last, batch)
            rows = self._scan_rows(sql, params)
            for (name,) in rows:
                raw = name.encode()
                if matcher is None or matcher(raw):
                    yield raw
            if len(rows) < batch:
                return
            first, last = False, rows[-1][0]

    def maintenance(self) -> None:
        """Checkpoint the WAL (truncating it), refresh planner statistics, compact if worth it.

        VACUUM runs only when free pages make up at least
        :data:`VACUUM_FREE_SHARE` of the file (and number at least
        :data:`VACUUM_MIN_FREE_PAGES`), since it rewrites the whole file.
        """
        conn = self._conn()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            conn.execute("PRAGMA optimize").fetchall()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if free >= VACUUM_MIN_FREE_PAGES and free >= pages * VACUUM_FREE_SHARE:
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        """Close every thread's connection. Using the backend afterwards raises
        :class:`~etcher.errors.BackendUnavailable`; closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._idle.open = False
            slots = list(self._slots)
            self._slots = weakref.WeakSet()
            self._local = threading.local()
        for conn in [slot.conn for slot in slots] + self._idle.drain():
            with contextlib.suppress(sqlite3.Error):  # already unusable: nothing to release
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self.path!r}{state}>"


class SQLiteMemoryBackend(SQLiteBackend):
    """A private in-memory store (``sqlite:///:memory:``): gone when closed.

    All threads share one connection behind a lock, so they see one store and
    each command or batch runs alone; nothing is visible to other processes.
    (A shared-cache in-memory database would fail with "table is locked" under
    concurrent writers instead of waiting, which is why one connection is used.)
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=False,
        multiprocess=False,
        atomic_batches=True,
        maintenance=False,
        snapshot_reads=True,
        locking_units=True,
        subtree_reads=True,
        subtree_visits=True,
        whole_hash_writes=True,
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = options.MEMORY,
        *,
        timeout: float = options.DEFAULT_TIMEOUT,
        durability: str = "normal",
    ) -> None:
        if os.fspath(path) != options.MEMORY:
            raise ValueError(f"SQLiteMemoryBackend takes no file path, got {path!r}")
        self.path = options.MEMORY
        self.timeout = options.timeout(timeout)
        self._synchronous = options.durability(durability)
        self._rlock = threading.RLock()
        self._lock = threading.Lock()
        self._closed = False
        self._shared = sqlite3.connect(
            options.MEMORY, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        schema.create(self._shared, self.path)
        _BACKENDS.add(self)

    # One shared connection behind a lock: the generic path, which takes it.
    get = CommandsMixin.get
    hget = CommandsMixin.hget
    hgetall = CommandsMixin.hgetall
    hlen = CommandsMixin.hlen
    llen = CommandsMixin.llen
    lindex = CommandsMixin.lindex
    lrange = CommandsMixin.lrange

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise BackendUnavailable("the in-memory store was closed")
        return self._shared

    def _after_fork(self) -> None:
        # The child keeps its copy of the data; only a lock held mid-fork must go.
        self._rlock = threading.RLock()

    def _call(self, command: Command, call: Call) -> Any:
        with self._rlock:
            conn = self._conn()
            try:
                if command.write:
                    return ops.run_one(conn, command, call)
                return command.one(conn, *call)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _execute(
        self, queue: list[tuple[Command, Call]], watched: dict[str, int | None]
    ) -> list[Any]:
        with self._rlock:
            return super()._execute(queue, watched)

    def _versions(self, names: list[str]) -> dict[str, int | None]:
        with self._rlock:
            return super()._versions(names)

    def read_batch(
        self, hashes: Sequence[str], singles: Sequence[tuple[str, bytes]], lists: Sequence[str]
    ) -> list[Any]:
        """See :meth:`SQLiteBackend.read_batch` (under the shared connection's lock)."""
        with self._rlock:
            return super().read_batch(hashes, singles, lists)

    def _scan_rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._rlock:
            return super()._scan_rows(sql, params)

    def read_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """See :meth:`etcher.spec.SubtreeReads.read_subtree`."""
        with self._rlock:
            return super().read_subtree(content_prefix, refs_prefix, roots, limit)

    def visit_subtree(
        self, content_prefix: str, refs_prefix: str, root: str, visit: SubtreeVisit
    ) -> list[str] | None:
        """See :meth:`etcher.spec.SubtreeVisits.visit_subtree`."""
        with self._rlock:
            return super().visit_subtree(content_prefix, refs_prefix, root, visit)

    def _begin_scope(self, write: bool) -> sqlite3.Connection | None:
        # The one shared connection stays this thread's until the scope ends.
        self._rlock.acquire()
        try:
            conn = super()._begin_scope(write)
        except BaseException:
            self._rlock.release()
            raise
        if conn is None:
            self._rlock.release()
        return conn

    def _end_scope(self, conn: sqlite3.Connection, commit: bool) -> None:
        try:
            super()._end_scope(conn, commit)
        finally:
            self._rlock.release()

    def maintenance(self) -> None:
        """Refresh planner statistics; an in-memory store has no file to compact."""
        with self._rlock:
            conn = self._conn()
            try:
                conn.execute("PRAGMA optimize").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def close(self) -> None:
        """Drop the store and its data."""
        with self._rlock:
            if not self._closed:
                self._closed = True
                self._shared.close()


if TYPE_CHECKING:
    # Static proof that the classes satisfy the Protocols they are written against.
    def _is_backend(backend: SQLiteBackend) -> StorageBackend:
        return backend

    def _is_pipeline(pipe: SQLitePipeline) -> Pipeline:
        return pipe
