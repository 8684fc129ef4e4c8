"""A small, obviously-correct storage backend: the kit's "known good" reference.

Pure Python, dict based, one re-entrant lock per store; it favours clarity over
speed. It passes the whole conformance kit, and serves three purposes:

* etcher-core's own tests run on it, so core is tested with no other
  distribution installed;
* the kit's meta-tests check that the kit passes it and fails deliberately
  broken variants of it;
* it is the baseline of etcher's differential tests (the same random program
  run on every backend must give the same trace as here), and a starting point
  for a backend author (``examples/etcher-dictstore`` is the packaged version).

Stores are named: ``ReferenceBackend.from_url("ref://name")`` opens the
process-wide store ``name`` and every backend opened on that name shares it,
even after the others were closed. That lets one process exercise the kit's
"second connection" and "reopen" tests; ``ref://`` with no name gives a fresh
private store. Nothing is ever written to disk, and other processes cannot see
a store (``multiprocess`` is False).

It is not registered with etcher's backend registry: :func:`register` adds it
(scheme ``ref``) at runtime, for tests that open stores by URL.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from etcher.errors import (
    BackendUnavailable,
    StorageError,
    StoreIndexError,
    StoreValueError,
    TransactionError,
    WatchError,
    WrongTypeError,
)
from etcher.globs import glob_to_regex
from etcher.hookspecs import hookimpl
from etcher.spec import Capabilities

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(rb"0|-?[1-9][0-9]*")
_MISSING = object()

Entry = bytes | dict[bytes, bytes] | deque[bytes]


def encode_key(name: object) -> bytes:
    """A key as bytes (text is UTF-8)."""
    if isinstance(name, str):
        return name.encode()
    if isinstance(name, bytes):
        return name
    raise TypeError(f"keys are str or bytes, not {type(name).__name__}")


def encode_value(value: object) -> bytes:
    """A value or field as bytes, the way redis-py encodes it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"values are bytes, str or int, not {type(value).__name__}")


def parse_int(raw: bytes) -> int:
    """Redis' integer rule: optional "-", digits, no leading zeros, no "-0", within int64."""
    if not _INTEGER.fullmatch(raw):
        raise StoreValueError("value is not an integer or out of range")
    number = int(raw)
    if not INT64_MIN <= number <= INT64_MAX:
        raise StoreValueError("value is not an integer or out of range")
    return number


def checked_add(current: int, amount: int) -> int:
    result = current + amount
    if not INT64_MIN <= result <= INT64_MAX:
        raise StoreValueError("increment or decrement would overflow")
    return result


def list_span(length: int, start: int, end: int) -> tuple[int, int]:
    """Redis' inclusive ``start``/``end`` as a clipped Python half-open span."""
    if start < 0:
        start = max(length + start, 0)
    if end < 0:
        end = length + end
    end = min(end, length - 1)
    if start > end:
        return 0, 0
    return start, end + 1


class Store:
    """The shared state: data, a version per key (for WATCH), and the lock."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # "" for a private store
        self.data: dict[bytes, Entry] = {}
        self.versions: dict[bytes, int] = {}
        self.clock = itertools.count(1)
        self.lock = threading.RLock()

    def touch(self, key: bytes) -> None:
        """Record that ``key`` changed (any write, including a delete)."""
        self.versions[key] = next(self.clock)


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def named_store(name: str) -> Store:
    """The process-wide store called ``name`` (created on first use)."""
    with _STORES_LOCK:
        if name not in _STORES:
            _STORES[name] = Store(name)
        return _STORES[name]


def drop_store(name: str) -> None:
    """Forget a named store (tests call this to free memory)."""
    with _STORES_LOCK:
        _STORES.pop(name, None)


class ReferenceCommands:
    """The data commands, executed against ``self._store`` under its lock."""

    _store: Store

    def _check_open(self) -> None:
        pass

    def _key(self, name: Any) -> bytes:
        return encode_key(name)

    def _entry(self, name: Any, kind: type) -> Any:
        entry = self._store.data.get(self._key(name))
        if entry is not None and not isinstance(entry, kind):
            raise WrongTypeError(
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            )
        return entry

    def _write(self, key: bytes, entry: Entry | None) -> None:
        store = self._store
        if entry is None or (not isinstance(entry, bytes) and len(entry) == 0):
            store.data.pop(key, None)  # empty containers do not exist
        else:
            store.data[key] = entry
        store.touch(key)

    # --- strings
    def get(self, name: Any) -> Any:
        with self._store.lock:
            return self._entry(name, bytes)

    def set(self, name: Any, value: Any) -> Any:
        data = encode_value(value)
        with self._store.lock:
            self._write(self._key(name), data)
            return True

    def incr(self, name: Any, amount: int = 1) -> Any:
        with self._store.lock:
            current = self._entry(name, bytes)
            result = checked_add(0 if current is None else parse_int(current), amount)
            self._write(self._key(name), str(result).encode())
            return result

    def decr(self, name: Any, amount: int = 1) -> Any:
        return self.incr(name, -amount)

    # --- hashes
    def hget(self, name: Any, key: Any) -> Any:
        with self._store.lock:
            entry = self._entry(name, dict)
            return None if entry is None else entry.get(encode_value(key))

    def hmget(self, name: Any, keys: Sequence[Any]) -> Any:
        with self._store.lock:
            entry = self._entry(name, dict) or {}
            return [entry.get(encode_value(k)) for k in keys]

    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
    ) -> Any:
        pairs: list[tuple[bytes, bytes]] = []
        if key is not None:
            pairs.append((encode_value(key), encode_value(value)))
        pairs.extend((encode_value(k), encode_value(v)) for k, v in (mapping or {}).items())
        if not pairs:
            raise ValueError("'hset' with no key value pairs")
        with self._store.lock:
            entry = dict(self._entry(name, dict) or {})
            added = sum(1 for field, _ in dict(pairs).items() if field not in entry)
            entry.update(pairs)
            self._write(self._key(name), entry)
            return added

    def hreplace(self, name: Any, mapping: Mapping[Any, Any]) -> Any:
        """``etcher.spec.WholeHashWrites``: the hash holds exactly ``mapping`` afterwards."""
        entry = {encode_value(k): encode_value(v) for k, v in mapping.items()}
        with self._store.lock:
            self._entry(name, dict)  # the wrong-type check, before anything changes
            self._write(self._key(name), entry)
            return True

    def hdel(self, name: Any, *keys: Any) -> Any:
        with self._store.lock:
            entry = self._entry(name, dict)
            if entry is None:
                return 0
            entry = dict(entry)
            removed = sum(
                1 for field in {encode_value(k) for k in keys} if entry.pop(field, None) is not None
            )
            if removed:
                self._write(self._key(name), entry)
            return removed

    def hgetall(self, name: Any) -> Any:
        with self._store.lock:
            return dict(self._entry(name, dict) or {})

    def hkeys(self, name: Any) -> Any:
        with self._store.lock:
            return list(self._entry(name, dict) or {})

    def hlen(self, name: Any) -> Any:
        with self._store.lock:
            return len(self._entry(name, dict) or {})

    def hexists(self, name: Any, key: Any) -> Any:
        with self._store.lock:
            return encode_value(key) in (self._entry(name, dict) or {})

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Any:
        field = encode_value(key)
        with self._store.lock:
            entry = dict(self._entry(name, dict) or {})
            current = entry.get(field)
            result = checked_add(0 if current is None else parse_int(current), amount)
            entry[field] = str(result).encode()
            self._write(self._key(name), entry)
            return result

    # --- lists
    def _list(self, name: Any) -> deque[bytes] | None:
        entry: deque[bytes] | None = self._entry(name, deque)
        return entry

    def rpush(self, name: Any, *values: Any) -> Any:
        items = [encode_value(v) for v in values]
        with self._store.lock:
            entry = deque(self._list(name) or ())
            entry.extend(items)
            self._write(self._key(name), entry)
            return len(entry)

    def lpush(self, name: Any, *values: Any) -> Any:
        items = [encode_value(v) for v in values]
        with self._store.lock:
            entry = deque(self._list(name) or ())
            entry.extendleft(items)
            self._write(self._key(name), entry)
            return len(entry)

    def _pop(self, name: Any, count: int | None, take: Callable[[deque[bytes]], bytes]) -> Any:
        with self._store.lock:
            current = self._list(name)
            if current is None:
                return None
            entry = deque(current)
            taken = [take(entry) for _ in range(min(1 if count is None else count, len(entry)))]
            self._write(self._key(name), entry)
            return taken[0] if count is None else taken

    def lpop(self, name: Any, count: int | None = None) -> Any:
        return self._pop(name, count, deque.popleft)

    def rpop(self, name: Any, count: int | None = None) -> Any:
        return self._pop(name, count, deque.pop)

    def lrange(self, name: Any, start: int, end: int) -> Any:
        with self._store.lock:
            items = list(self._list(name) or ())
            lo, hi = list_span(len(items), start, end)
            return items[lo:hi]

    def lindex(self, name: Any, index: int) -> Any:
        with self._store.lock:
            items = self._list(name) or deque()
            if -len(items) <= index < len(items):
                return items[index]
            return None

    def lset(self, name: Any, index: int, value: Any) -> Any:
        data = encode_value(value)
        with self._store.lock:
            current = self._list(name)
            if current is None:
                raise StoreIndexError("no such key")
            if not -len(current) <= index < len(current):
                raise StoreIndexError("index out of range")
            entry = deque(current)
            entry[index] = data
            self._write(self._key(name), entry)
            return True

    def llen(self, name: Any) -> Any:
        with self._store.lock:
            return len(self._list(name) or ())

    def ltrim(self, name: Any, start: int, end: int) -> Any:
        with self._store.lock:
            current = self._list(name)
            if current is not None:
                lo, hi = list_span(len(current), start, end)
                self._write(self._key(name), deque(list(current)[lo:hi]))
            return True

    # --- keys
    def exists(self, *names: Any) -> Any:
        with self._store.lock:
            return sum(1 for n in names if self._key(n) in self._store.data)

    def delete(self, *names: Any) -> Any:
        with self._store.lock:
            removed = 0
            for key in dict.fromkeys(self._key(n) for n in names):
                if key in self._store.data:
                    self._write(key, None)
                    removed += 1
            return removed

    def type(self, name: Any) -> Any:
        with self._store.lock:
            entry = self._store.data.get(self._key(name))
        if entry is None:
            return b"none"
        return {bytes: b"string", dict: b"hash", deque: b"list"}[type(entry)]


def _keys_touched(command: str, args: tuple[Any, ...]) -> list[bytes]:
    if command in {"delete", "exists"}:
        return [encode_key(a) for a in args]
    return [encode_key(args[0])]


class ReferencePipeline:
    """redis-py's pipeline modes over a :class:`ReferenceBackend`."""

    def __init__(self, backend: ReferenceBackend, transaction: bool) -> None:
        self._backend = backend
        self._transaction = transaction
        self._queue: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._watched: dict[bytes, object] = {}
        self._immediate = False
        self._explicit = False
        # The kit's optional hook (etcher.testing.storage.INTERLEAVE_HOOK).
        self.etcher_after_watch_check: Callable[[], None] | None = None

    def __getattr__(self, command: str) -> Callable[..., Any]:
        if not hasattr(ReferenceCommands, command) or command.startswith("_"):
            raise AttributeError(command)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._immediate:
                return getattr(self._backend, command)(*args, **kwargs)
            self._queue.append((command, args, kwargs))
            return self

        return call

    def __len__(self) -> int:
        return len(self._queue)

    def watch(self, *names: Any) -> Any:
        if self._explicit:
            raise TransactionError("Cannot issue a WATCH after a MULTI")
        store = self._backend._store
        with store.lock:
            for name in names:
                key = encode_key(name)
                self._watched.setdefault(key, store.versions.get(key, _MISSING))
        self._immediate = True
        return True

    def unwatch(self) -> Any:
        self._watched.clear()
        return True

    def multi(self) -> None:
        if self._explicit:
            raise TransactionError("Cannot issue nested calls to MULTI")
        if self._queue:
            raise TransactionError("Commands without an initial WATCH have already been issued")
        self._immediate = False
        self._explicit = True

    def reset(self) -> None:
        self._queue.clear()
        self._watched.clear()
        self._immediate = False
        self._explicit = False

    def _conflict(self) -> bool:
        versions = self._backend._store.versions
        return any(versions.get(key, _MISSING) != seen for key, seen in self._watched.items())

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        store = self._backend._store
        queue = list(self._queue)
        try:
            with store.lock:
                if self._conflict():
                    raise WatchError("a watched key changed")
                if self._watched and self.etcher_after_watch_check is not None:
                    self.etcher_after_watch_check()
                return self._run(queue, raise_on_error)
        finally:
            self.reset()

    def _run(
        self, queue: list[tuple[str, tuple[Any, ...], dict[str, Any]]], raise_on_error: bool
    ) -> list[Any]:
        store = self._backend._store
        undo: dict[bytes, tuple[object, object]] = {}
        results: list[Any] = []
        for command, args, kwargs in queue:
            if self._transaction:
                for key in _keys_touched(command, args):
                    # deepcopy of a missing entry is None (never a copied sentinel).
                    undo.setdefault(
                        key, (copy.deepcopy(store.data.get(key)), store.versions.get(key, _MISSING))
                    )
            try:
                results.append(getattr(self._backend, command)(*args, **kwargs))
            except Exception as error:
                if self._transaction:
                    self._rollback(undo)
                    raise
                if raise_on_error:
                    raise
                results.append(error)
        return results

    def _rollback(self, undo: dict[bytes, tuple[object, object]]) -> None:
        store = self._backend._store
        for key, (entry, version) in undo.items():
            if entry is None:
                store.data.pop(key, None)
            else:
                store.data[key] = entry  # type: ignore[assignment]
            if version is _MISSING:
                store.versions.pop(key, None)
            else:
                store.versions[key] = version  # type: ignore[assignment]

    def __enter__(self) -> ReferencePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


class ReferenceBackend(ReferenceCommands):
    """The known-good backend. ``from_url("ref://name")`` shares store ``name``."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,  # named stores outlive their connections (within the process)
        # Named stores live in this process only: a child process cannot open them.
        multiprocess=False,
        atomic_batches=True,
        maintenance=False,
        snapshot_reads=True,
        whole_hash_writes=True,
    )
    pipeline_class: ClassVar[type[ReferencePipeline]] = ReferencePipeline

    def __init__(self, store: Store | None = None, **options: Any) -> None:
        self._store = store if store is not None else Store()
        self._closed = False
        self.options = options  # accepted and remembered (tests check they arrive), never used

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **options: Any) -> ReferenceBackend:
        """The named store for ``path`` (nothing is written to disk; the folder must exist)."""
        folder = os.path.dirname(os.fspath(path))
        if not os.path.isdir(folder):
            raise BackendUnavailable(f"cannot open {path}: folder {folder} does not exist")
        return cls(named_store("path:" + os.path.abspath(path)), **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ReferenceBackend:
        """``ref://name`` → the shared store ``name``; ``ref://`` → a private one."""
        name = urlsplit(url).netloc
        return cls(named_store(name) if name else None, **options)

    _ALWAYS = frozenset(
        {"close", "capabilities", "pipeline_class", "from_url", "from_path", "options"}
    )

    def __getattribute__(self, name: str) -> Any:
        # Every public method refuses to run after close(), like a real connection.
        if (
            not name.startswith("_")
            and name not in ReferenceBackend._ALWAYS
            and object.__getattribute__(self, "_closed")
        ):
            raise StorageError(f"{type(self).__name__} is closed")
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        name = self._store.name
        where = f"{SCHEME}://{name}" if name else "a private store"
        return f"<{type(self).__name__} {where!r}{' closed' if self._closed else ''}>"

    def pipeline(self, transaction: bool = True) -> ReferencePipeline:
        return self.pipeline_class(self, transaction)

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        with self._store.lock:
            keys = list(self._store.data)
        regex = glob_to_regex(match) if match is not None else None
        for key in keys:
            if regex is None or regex.fullmatch(key):
                yield key

    def maintenance(self) -> None:
        return None

    def close(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------- registration

BACKEND_NAME = "reference"
SCHEME = "ref"


class ReferencePlugin:
    """An etcher plugin object announcing the reference backend (``ref://name``)."""

    @hookimpl
    def etcher_register_backends(self, register: Any) -> None:
        """Register :class:`ReferenceBackend` under the ``ref`` scheme."""
        register(
            BACKEND_NAME,
            schemes=[SCHEME],
            target=ReferenceBackend,
            description="etcher's known-good reference backend, in process memory (tests only)",
        )


def register() -> None:
    """Make ``ref://name`` URLs open :class:`ReferenceBackend` in the default registry.

    Idempotent. The registry is process-wide: a test session that resets it
    (``etcher.registry.reset_registry()``) must call this again.
    """
    from etcher import registry

    if SCHEME not in registry.get_registry().schemes:
        registry.get_registry().add_plugin(ReferencePlugin(), name=BACKEND_NAME)


__all__ = [
    "BACKEND_NAME",
    "SCHEME",
    "ReferenceBackend",
    "ReferencePipeline",
    "ReferencePlugin",
    "Store",
    "drop_store",
    "named_store",
    "register",
]
