"""DbmStore: etcher's storage Protocol on the standard library's ``dbm.dumb`` files.

A second example of a third-party backend, deliberately not dict-shaped: the
data lives in files, several processes may open it at once, and the store has
its own transaction model that the Protocol's ``watch()`` is built on.

The transaction model, in four rules:

* **One lock file per store** (``<path>.lock``, ``fcntl.flock``). Every command,
  every ``watch()`` read and every ``execute()`` runs as one *transaction*: take
  the lock, open the dbm files, work on an in-memory overlay of the records it
  touches, write the overlay back (only if everything succeeded), close, unlock.
  ``flock`` excludes other processes *and* other backend objects of this process
  (each has its own open file); a thread lock orders the threads sharing one
  backend object.
* **Every record carries a version**, stamped from a store-wide counter kept in
  the store itself. A write gives the key the next number; a delete removes the
  record. Because the counter never goes back, a key that is deleted and created
  again gets a version it never had before: ``watch()`` cannot mistake it for
  the key it saw.
* **watch() remembers versions; execute() checks them inside its own write
  transaction**, under the same lock that then applies the batch, so no other
  client can write between the check and the apply.
* **A batch is all or nothing** (``atomic_batches``): a failing command discards
  the overlay. Commands check everything before they change the overlay, so in a
  non-transactional pipeline the failing command itself changes nothing either.

Not crash-safe: ``dbm.dumb`` rewrites its index file in place. It is an example
of the *shape* of a backend, not a database to keep data in.
"""

from __future__ import annotations

import dbm.dumb
import fcntl
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

from etcher.errors import (
    BackendUnavailable,
    ReadOnlyStore,
    ResponseError,
    StoreIndexError,
    StoreValueError,
    TransactionError,
    WatchError,
    WrongTypeError,
)
from etcher.globs import glob_to_regex  # Redis SCAN MATCH rules, shared by backends
from etcher.spec import Capabilities

SCHEME = "dbmstore"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_COUNTER = re.compile(rb"0|-?[1-9][0-9]{0,18}")  # Redis' canonical integer text, nothing more
_CLOCK = b"\xff:clock"  # 0xff never occurs in UTF-8, so no etcher key can collide with it
_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
_LEN = struct.Struct(">I")
_VERSION = struct.Struct(">Q")

Record = tuple[bytes, int, Any]  # (kind b"s"/b"h"/b"l", version, value)


# --- records ------------------------------------------------------------------------------


def _pack_items(items: Sequence[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(item)) + item for item in items)


def _unpack_items(data: bytes) -> list[bytes]:
    items, at = [], 0
    while at < len(data):
        (size,) = _LEN.unpack_from(data, at)
        items.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return items


def _pack(kind: bytes, version: int, value: Any) -> bytes:
    if kind == b"s":
        body = value
    elif kind == b"h":
        body = _pack_items([part for pair in value.items() for part in pair])
    else:
        body = _pack_items(value)
    return kind + _VERSION.pack(version) + body


def _unpack(raw: bytes) -> Record:
    kind, (version,), body = raw[:1], _VERSION.unpack_from(raw, 1), raw[9:]
    if kind == b"s":
        return kind, version, body
    items = _unpack_items(body)
    if kind == b"h":
        return kind, version, dict(zip(items[::2], items[1::2], strict=True))
    return kind, version, items


# --- arguments ----------------------------------------------------------------------------


def _key(name: object) -> bytes:
    if isinstance(name, str):
        return name.encode("utf-8")
    if isinstance(name, bytes):
        name.decode("utf-8")  # refuse bytes that are not UTF-8 text
        return name
    raise TypeError(f"a key must be str or bytes, not {type(name).__name__}")


def _value(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"a value must be bytes, str or int, not {type(value).__name__}")


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise StoreValueError(f"{what} is out of the signed 64-bit range")
    return value


def _add(current: bytes | None, amount: int, what: str) -> int:
    """Redis INCRBY: ``current`` must be canonical decimal text; the sum must fit 64 bits."""
    base = 0
    if current is not None:
        if not _COUNTER.fullmatch(current) or not INT64_MIN <= int(current) <= INT64_MAX:
            raise StoreValueError(f"{what} is not an integer or out of range")
        base = int(current)
    if not INT64_MIN <= base + amount <= INT64_MAX:
        raise StoreValueError("increment or decrement would overflow")
    return base + amount


def _span(start: int, end: int, length: int) -> tuple[int, int]:
    """LRANGE's inclusive ``start..end`` (negatives from the end) as a clipped slice."""
    if start < 0:
        start = max(start + length, 0)
    if end < 0:
        end += length
    end = min(end, length - 1)
    return (start, end + 1) if start <= end else (0, 0)


# --- one transaction ------------------------------------------------------------------------

_MISSING: Any = object()


class _Txn:
    """The records one transaction read or wrote, over the open dbm files."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.overlay: dict[bytes, Record | None] = {}
        self.clock: int | None = None  # read from the store on the first write
        self.dirty = False

    def record(self, key: bytes) -> Record | None:
        found = self.overlay.get(key, _MISSING)
        if found is _MISSING:
            raw = self.db.get(key)
            found = None if raw is None else _unpack(raw)
            self.overlay[key] = found
        return found  # type: ignore[no-any-return]

    def version(self, key: bytes) -> int | None:
        found = self.record(key)
        return None if found is None else found[1]

    def value(self, key: bytes, kind: bytes) -> Any:
        found = self.record(key)
        if found is None:
            return None
        if found[0] != kind:
            raise WrongTypeError(_WRONGTYPE)
        return found[2]

    def put(self, key: bytes, kind: bytes, value: Any) -> None:
        if kind != b"s" and not value:
            self.delete(key)  # an empty hash or list does not exist
            return
        if self.clock is None:
            raw = self.db.get(_CLOCK)
            self.clock = 0 if raw is None else int(raw)
        self.clock += 1
        self.overlay[key] = (kind, self.clock, value)
        self.dirty = True

    def delete(self, key: bytes) -> bool:
        existed = self.record(key) is not None
        if existed:
            self.overlay[key] = None
            self.dirty = True
        return existed

    def commit(self) -> None:
        if not self.dirty:
            return  # read only: the files stay untouched
        for key, found in self.overlay.items():
            if found is None:
                if key in self.db:
                    del self.db[key]
            else:
                self.db[key] = _pack(*found)
        if self.clock is not None:
            self.db[_CLOCK] = str(self.clock).encode()


# --- the commands, on a transaction ------------------------------------------------------------


class _Ops:
    """Each command checks everything before it changes the transaction's overlay."""

    @staticmethod
    def get(t: _Txn, k: bytes) -> Any:
        return t.value(k, b"s")

    @staticmethod
    def set(t: _Txn, k: bytes, value: bytes) -> bool:
        t.put(k, b"s", value)
        return True

    @staticmethod
    def incr(t: _Txn, k: bytes, amount: int) -> int:
        result = _add(t.value(k, b"s"), amount, "value")
        t.put(k, b"s", str(result).encode())
        return result

    @staticmethod
    def hget(t: _Txn, k: bytes, field: bytes) -> Any:
        return (t.value(k, b"h") or {}).get(field)

    @staticmethod
    def hmget(t: _Txn, k: bytes, fields: list[bytes]) -> list[Any]:
        found = t.value(k, b"h") or {}
        return [found.get(f) for f in fields]

    @staticmethod
    def hset(t: _Txn, k: bytes, pairs: list[tuple[bytes, bytes]]) -> int:
        current = dict(t.value(k, b"h") or {})
        added = len({f for f, _ in pairs} - current.keys())
        current.update(pairs)
        t.put(k, b"h", current)
        return added

    @staticmethod
    def hdel(t: _Txn, k: bytes, fields: list[bytes]) -> int:
        current = dict(t.value(k, b"h") or {})
        removed = sum(current.pop(f, None) is not None for f in set(fields))
        if removed:
            t.put(k, b"h", current)
        return removed

    @staticmethod
    def hgetall(t: _Txn, k: bytes) -> dict[bytes, bytes]:
        return dict(t.value(k, b"h") or {})

    @staticmethod
    def hkeys(t: _Txn, k: bytes) -> list[bytes]:
        return list(t.value(k, b"h") or {})

    @staticmethod
    def hlen(t: _Txn, k: bytes) -> int:
        return len(t.value(k, b"h") or {})

    @staticmethod
    def hexists(t: _Txn, k: bytes, field: bytes) -> bool:
        return field in (t.value(k, b"h") or {})

    @staticmethod
    def hincrby(t: _Txn, k: bytes, field: bytes, amount: int) -> int:
        current = dict(t.value(k, b"h") or {})
        result = _add(current.get(field), amount, "hash value")
        current[field] = str(result).encode()
        t.put(k, b"h", current)
        return result

    @staticmethod
    def rpush(t: _Txn, k: bytes, values: list[bytes]) -> int:
        items = [*(t.value(k, b"l") or []), *values]
        t.put(k, b"l", items)
        return len(items)

    @staticmethod
    def lpush(t: _Txn, k: bytes, values: list[bytes]) -> int:
        items = [*reversed(values), *(t.value(k, b"l") or [])]
        t.put(k, b"l", items)
        return len(items)

    @staticmethod
    def lpop(t: _Txn, k: bytes, count: int | None) -> Any:
        return _Ops._pop(t, k, count, left=True)

    @staticmethod
    def rpop(t: _Txn, k: bytes, count: int | None) -> Any:
        return _Ops._pop(t, k, count, left=False)

    @staticmethod
    def _pop(t: _Txn, k: bytes, count: int | None, *, left: bool) -> Any:
        if count is not None and count < 0:
            raise ResponseError("value is out of range, must be positive")
        items = t.value(k, b"l")
        if items is None:
            return None
        n = min(1 if count is None else count, len(items))
        taken = items[:n] if left else items[::-1][:n]
        if n:
            t.put(k, b"l", items[n:] if left else items[: len(items) - n])
        return taken[0] if count is None else taken

    @staticmethod
    def lrange(t: _Txn, k: bytes, start: int, end: int) -> list[bytes]:
        items = t.value(k, b"l") or []
        lo, hi = _span(start, end, len(items))
        return list(items[lo:hi])

    @staticmethod
    def lindex(t: _Txn, k: bytes, index: int) -> Any:
        items = t.value(k, b"l") or []
        return items[index] if -len(items) <= index < len(items) else None

    @staticmethod
    def lset(t: _Txn, k: bytes, index: int, value: bytes) -> bool:
        items = t.value(k, b"l")
        if items is None:
            raise StoreIndexError("no such key")
        if not -len(items) <= index < len(items):
            raise StoreIndexError("index out of range")
        items = list(items)
        items[index] = value
        t.put(k, b"l", items)
        return True

    @staticmethod
    def llen(t: _Txn, k: bytes) -> int:
        return len(t.value(k, b"l") or [])

    @staticmethod
    def ltrim(t: _Txn, k: bytes, start: int, end: int) -> bool:
        items = t.value(k, b"l")
        if items is not None:
            lo, hi = _span(start, end, len(items))
            t.put(k, b"l", items[lo:hi])
        return True

    @staticmethod
    def exists(t: _Txn, keys: list[bytes]) -> int:
        return sum(t.record(k) is not None for k in keys)

    @staticmethod
    def delete(t: _Txn, keys: list[bytes]) -> int:
        return sum(t.delete(k) for k in dict.fromkeys(keys))

    @staticmethod
    def type(t: _Txn, k: bytes) -> bytes:
        found = t.record(k)
        return (
            b"none" if found is None else {b"s": b"string", b"h": b"hash", b"l": b"list"}[found[0]]
        )


_TYPE_NAMES = {b"s": b"string", b"h": b"hash", b"l": b"list"}

_READS = frozenset(
    {"get", "hget", "hmget", "hgetall", "hkeys", "hlen", "hexists", "lrange", "lindex", "llen"}
    | {"exists", "type"}
)

Call = tuple[str, tuple[Any, ...]]


class _Api:
    """The public command methods: each checks its arguments, then hands them to ``_call``."""

    def _call(self, command: str, args: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    def get(self, name: Any) -> Any:
        return self._call("get", (_key(name),))

    def set(self, name: Any, value: Any) -> Any:
        return self._call("set", (_key(name), _value(value)))

    def incr(self, name: Any, amount: int = 1) -> Any:
        return self._call("incr", (_key(name), _int(amount, "amount")))

    def decr(self, name: Any, amount: int = 1) -> Any:
        return self._call("incr", (_key(name), -_int(amount, "amount")))

    def hget(self, name: Any, key: Any) -> Any:
        return self._call("hget", (_key(name), _value(key)))

    def hmget(self, name: Any, keys: Sequence[Any]) -> Any:
        return self._call("hmget", (_key(name), [_value(k) for k in keys]))

    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
    ) -> Any:
        pairs = [] if key is None else [(_value(key), _value(value))]
        pairs += [(_value(f), _value(v)) for f, v in (mapping or {}).items()]
        if not pairs:
            raise ValueError("hset() needs a field and a value, or a non-empty mapping")
        return self._call("hset", (_key(name), pairs))

    def hdel(self, name: Any, *keys: Any) -> Any:
        return self._call("hdel", (_key(name), [_value(k) for k in keys]))

    def hgetall(self, name: Any) -> Any:
        return self._call("hgetall", (_key(name),))

    def hkeys(self, name: Any) -> Any:
        return self._call("hkeys", (_key(name),))

    def hlen(self, name: Any) -> Any:
        return self._call("hlen", (_key(name),))

    def hexists(self, name: Any, key: Any) -> Any:
        return self._call("hexists", (_key(name), _value(key)))

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Any:
        return self._call("hincrby", (_key(name), _value(key), _int(amount, "amount")))

    def rpush(self, name: Any, *values: Any) -> Any:
        return self._call("rpush", (_key(name), [_value(v) for v in values]))

    def lpush(self, name: Any, *values: Any) -> Any:
        return self._call("lpush", (_key(name), [_value(v) for v in values]))

    def lpop(self, name: Any, count: int | None = None) -> Any:
        return self._call("lpop", (_key(name), None if count is None else _int(count, "count")))

    def rpop(self, name: Any, count: int | None = None) -> Any:
        return self._call("rpop", (_key(name), None if count is None else _int(count, "count")))

    def lrange(self, name: Any, start: int, end: int) -> Any:
        return self._call("lrange", (_key(name), _int(start, "start"), _int(end, "end")))

    def lindex(self, name: Any, index: int) -> Any:
        return self._call("lindex", (_key(name), _int(index, "index")))

    def lset(self, name: Any, index: int, value: Any) -> Any:
        return self._call("lset", (_key(name), _int(index, "index"), _value(value)))

    def llen(self, name: Any) -> Any:
        return self._call("llen", (_key(name),))

    def ltrim(self, name: Any, start: int, end: int) -> Any:
        return self._call("ltrim", (_key(name), _int(start, "start"), _int(end, "end")))

    def exists(self, *names: Any) -> Any:
        return self._call("exists", ([_key(n) for n in names],))

    def delete(self, *names: Any) -> Any:
        return self._call("delete", ([_key(n) for n in names],))

    def type(self, name: Any) -> Any:
        return self._call("type", (_key(name),))


# --- backend and pipeline ---------------------------------------------------------------------


class DbmStoreBackend(_Api):
    """etcher's storage Protocol on ``dbm.dumb`` files guarded by one lock file.

    Open it with ``DbmStoreBackend.from_path("data/store")`` or the URL
    ``dbmstore:///data/store`` (three slashes: a relative path) or
    ``dbmstore:////srv/store`` (four: an absolute one). The files are
    ``store.dat``, ``store.dir`` and ``store.lock`` next to each other; the folder
    must exist. ``readonly=True`` opens an existing store for reading only.

    Every object is one connection: open as many as you like, in one process or
    many (each holds its own lock-file handle, so they exclude each other the
    same way two processes do). Share one object between threads freely.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        multiprocess=True,
        atomic_batches=True,
        maintenance=False,
        snapshot_reads=True,
    )

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        folder = self.path.parent
        if not folder.is_dir():
            raise BackendUnavailable(
                f"cannot open {self.path}: folder {folder} does not exist (create it first)"
            )
        if readonly and not self.path.with_suffix(self.path.suffix + ".dir").exists():
            raise BackendUnavailable(f"cannot open {self.path} read-only: there is no store there")
        lock_path = str(self.path) + ".lock"
        try:
            flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
            self._lock_fd: int | None = os.open(lock_path, flags, 0o644)
        except OSError as exc:
            raise BackendUnavailable(f"cannot open the lock file {lock_path}: {exc}") from exc
        self._thread_lock = threading.RLock()

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **options: Any) -> Self:
        """Open the store at ``path`` (``str`` or :class:`pathlib.Path`); options: ``readonly``."""
        unknown = set(options) - {"readonly"}
        if unknown:
            raise TypeError(f"dbmstore takes only the option 'readonly', not {sorted(unknown)}")
        return cls(path, readonly=bool(options.get("readonly", False)))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``dbmstore:///relative/path`` or ``dbmstore:////absolute/path``."""
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME or parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                f"{url!r} is not a dbmstore URL: use dbmstore:///relative/path "
                "or dbmstore:////absolute/path"
            )
        path = unquote(parts.path)[1:]  # the slash after the (empty) host is not part of it
        if not path:
            raise ValueError(f"{url!r} names no file: use dbmstore:///relative/path")
        return cls.from_path(path, **options)

    # --- transactions

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[_Txn]:
        """Hold the store (thread lock, then the lock file) around one transaction."""
        if write and self.readonly:
            raise ReadOnlyStore(f"{self.path} was opened read-only")
        with self._thread_lock:
            if self._lock_fd is None:
                raise BackendUnavailable("this dbmstore backend was closed")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                # Opened per transaction: another process may have written since, and a
                # dbm.dumb object only reads its index when it is opened.
                with dbm.dumb.open(str(self.path), "r" if self.readonly else "c") as db:
                    txn = _Txn(db)
                    yield txn
                    txn.commit()
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _call(self, command: str, args: tuple[Any, ...]) -> Any:
        with self._transaction(write=command not in _READS) as t:
            return getattr(_Ops, command)(t, *args)

    def _versions(self, keys: list[bytes]) -> dict[bytes, int | None]:
        with self._transaction(write=False) as t:
            return {k: t.version(k) for k in keys}

    def _run_batch(
        self,
        queue: list[Call],
        watched: dict[bytes, int | None],
        transaction: bool,
        raise_on_error: bool,
        after_check: Callable[[], None] | None,
    ) -> list[Any]:
        write = any(command not in _READS for command, _ in queue)
        with self._transaction(write=write) as t:
            # The check and the apply share this one write transaction: nobody can
            # write between them, because nobody else can hold the lock file.
            if any(t.version(k) != seen for k, seen in watched.items()):
                raise WatchError("a watched key was modified")
            if watched and after_check is not None:
                after_check()
            results: list[Any] = []
            for command, args in queue:
                try:
                    results.append(getattr(_Ops, command)(t, *args))
                except (ResponseError, ValueError, TypeError) as exc:
                    if transaction:
                        raise  # leaves the transaction before its commit: nothing is applied
                    results.append(exc)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    # --- the rest of the Protocol

    def pipeline(self, transaction: bool = True) -> DbmStorePipeline:
        """A new pipeline (one per thread)."""
        return DbmStorePipeline(self, transaction)

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        """Every key matching the Redis glob ``match``, read in one transaction."""
        pattern = None if match is None else glob_to_regex(match)
        with self._transaction(write=False) as t:
            keys = [k for k in t.db if k != _CLOCK]
        for k in keys:
            if pattern is None or pattern.fullmatch(k):
                yield k

    def maintenance(self) -> None:
        """Nothing to do (``dbm.dumb`` has no compaction)."""

    def close(self) -> None:
        """Release the lock file; the backend cannot be used afterwards."""
        with self._thread_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __repr__(self) -> str:
        return f"<DbmStoreBackend {self.path}>"


class DbmStorePipeline(_Api):
    """A batch of commands, optionally a watched transaction, with redis-py's modes."""

    def __init__(self, backend: DbmStoreBackend, transaction: bool) -> None:
        self._backend = backend
        self._transaction = transaction
        self._queue: list[Call] = []
        self._watched: dict[bytes, int | None] = {}
        self._explicit = False
        # The kit's optional hook (etcher.testing.storage.INTERLEAVE_HOOK): called between
        # the watch check and the apply, inside the write transaction.
        self.etcher_after_watch_check: Callable[[], None] | None = None

    def _call(self, command: str, args: tuple[Any, ...]) -> Any:
        if self._watched and not self._explicit:
            return self._backend._call(command, args)  # immediate mode
        self._queue.append((command, args))
        return self

    def watch(self, *names: Any) -> bool:
        """Remember each key's version; ``execute()`` fails if any changed since."""
        if self._explicit:
            raise TransactionError("Cannot issue a WATCH after a MULTI")
        if not names:
            raise ResponseError("wrong number of arguments for 'watch' command")
        for k, version in self._backend._versions([_key(n) for n in names]).items():
            self._watched.setdefault(k, version)
        return True

    def unwatch(self) -> bool:
        """Forget every watched key."""
        self._watched.clear()
        return True

    def multi(self) -> None:
        """Queue the commands that follow for ``execute()``."""
        if self._explicit:
            raise TransactionError("Cannot issue nested calls to MULTI")
        if self._queue:
            raise TransactionError("Commands without an initial WATCH have already been issued")
        self._explicit = True

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Check the watched keys and apply the queue in one write transaction."""
        queue, watched = self._queue, self._watched
        try:
            if not queue and not watched:
                return []
            return self._backend._run_batch(
                queue, watched, self._transaction, raise_on_error, self.etcher_after_watch_check
            )
        finally:
            self.reset()

    def reset(self) -> None:
        """Drop the queue and the watches."""
        self._queue = []
        self._watched = {}
        self._explicit = False

    def __len__(self) -> int:
        return len(self._queue)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


__all__ = ["SCHEME", "DbmStoreBackend", "DbmStorePipeline"]
