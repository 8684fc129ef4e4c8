"""DictStore: etcher's storage Protocol on plain Python dicts and lists.

An example of a third-party backend written from scratch against
:mod:`etcher.spec`, with no Redis library underneath. It keeps everything in
process memory:

* ``dictstore://`` opens a private store for that backend object;
* ``dictstore://name`` opens the store called ``name``, shared by every
  backend opened with that URL in this process.

Design in three lines: every store has one lock (so a backend can be shared
by threads), every key has a version number bumped by every write (so
``watch()`` can tell whether a key changed), and a pipeline runs its whole
batch under the lock (so other threads see all of it or none of it).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

from etcher.errors import (
    BackendUnavailable,
    ResponseError,
    StoreIndexError,
    StoreValueError,
    TransactionError,
    WatchError,
    WrongTypeError,
)
from etcher.globs import glob_to_regex  # Redis SCAN MATCH rules, shared by backends
from etcher.spec import Capabilities

SCHEME = "dictstore"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"-?[1-9][0-9]*|0")  # what Redis accepts as an integer: no sign, no padding

Value = bytes | dict[bytes, bytes] | list[bytes]
_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


# --- encoding ------------------------------------------------------------------------


def _key(name: object) -> str:
    if isinstance(name, str):
        return name
    if isinstance(name, bytes):
        return name.decode("utf-8")
    raise TypeError(f"a key must be str or bytes, not {type(name).__name__}")


def _encode(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"a value must be bytes, str or int, not {type(value).__name__}")


def _amount(amount: object) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"an increment must be an int, not {type(amount).__name__}")
    if not INT64_MIN <= amount <= INT64_MAX:
        raise StoreValueError("value is not an integer or out of range")
    return amount


def _add(current: bytes | None, amount: int, what: str) -> int:
    """``current`` (a stored integer, or missing) plus ``amount``, as Redis INCRBY computes it."""
    if current is None:
        base = 0
    else:
        text = current.decode("ascii", errors="replace")
        if not _INTEGER.fullmatch(text) or not INT64_MIN <= int(text) <= INT64_MAX:
            raise StoreValueError(f"{what} is not an integer or out of range")
        base = int(text)
    result = base + amount
    if not INT64_MIN <= result <= INT64_MAX:
        raise StoreValueError("increment or decrement would overflow")
    return result


def _clip(start: int, end: int, length: int) -> range:
    """The indices LRANGE/LTRIM cover for ``start..end``: inclusive, negatives from the end."""
    if start < 0:
        start = max(start + length, 0)
    if end < 0:
        end += length
    return range(start, min(end, length - 1) + 1)


# --- the key space --------------------------------------------------------------------


class _Store:
    """One key space: the data, a version per key, and the lock that guards both."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.data: dict[str, Value] = {}
        # Versions of deleted keys are kept too, so a key deleted and re-created between
        # watch() and execute() still counts as changed.
        self.versions: dict[str, int] = {}
        self._clock = itertools.count(1)

    def version(self, key: str) -> int:
        return self.versions.get(key, 0)

    def changed(self, key: str) -> None:
        self.versions[key] = next(self._clock)

    def lookup(self, key: str, kind: type) -> Any:
        value = self.data.get(key)
        if value is not None and not isinstance(value, kind):
            raise WrongTypeError(_WRONGTYPE)
        return value

    def put(self, key: str, value: Value) -> None:
        if value:
            self.data[key] = value
        else:  # an empty hash or list does not exist
            self.data.pop(key, None)
        self.changed(key)

    def remove(self, key: str) -> bool:
        if self.data.pop(key, None) is None:
            return False
        self.changed(key)
        return True


class _Commands:
    """The data commands, executed on a :class:`_Store` whose lock the caller holds.

    Each method validates everything before it changes anything, so an error
    always leaves the store as it was.
    """

    def __init__(self, store: _Store) -> None:
        self.s = store

    # strings
    def get(self, name: str) -> bytes | None:
        value: bytes | None = self.s.lookup(name, bytes)
        return value

    def set(self, name: str, value: bytes) -> bool:
        # Not put(): b"" is a real string value, unlike an empty hash or list.
        self.s.data[name] = value
        self.s.changed(name)
        return True

    def incr(self, name: str, amount: int) -> int:
        result = _add(self.s.lookup(name, bytes), amount, "value")
        self.s.data[name] = str(result).encode()
        self.s.changed(name)
        return result

    # hashes
    def hget(self, name: str, field: bytes) -> bytes | None:
        return (self.s.lookup(name, dict) or {}).get(field)

    def hmget(self, name: str, fields: list[bytes]) -> list[bytes | None]:
        found = self.s.lookup(name, dict) or {}
        return [found.get(field) for field in fields]

    def hset(self, name: str, pairs: list[tuple[bytes, bytes]]) -> int:
        current = dict(self.s.lookup(name, dict) or {})
        added = len({field for field, _ in pairs} - current.keys())
        current.update(pairs)
        self.s.put(name, current)
        return added

    def hdel(self, name: str, fields: list[bytes]) -> int:
        current = self.s.lookup(name, dict)
        if not current:
            return 0
        kept = {f: v for f, v in current.items() if f not in set(fields)}
        removed = len(current) - len(kept)
        if removed:
            self.s.put(name, kept)
        return removed

    def hgetall(self, name: str) -> dict[bytes, bytes]:
        return dict(self.s.lookup(name, dict) or {})

    def hkeys(self, name: str) -> list[bytes]:
        return list(self.s.lookup(name, dict) or {})

    def hlen(self, name: str) -> int:
        return len(self.s.lookup(name, dict) or {})

    def hexists(self, name: str, field: bytes) -> bool:
        return field in (self.s.lookup(name, dict) or {})

    def hincrby(self, name: str, field: bytes, amount: int) -> int:
        current = dict(self.s.lookup(name, dict) or {})
        result = _add(current.get(field), amount, "hash value")
        current[field] = str(result).encode()
        self.s.put(name, current)
        return result

    # lists
    def rpush(self, name: str, values: list[bytes]) -> int:
        items = list(self.s.lookup(name, list) or [])
        items.extend(values)
        self.s.put(name, items)
        return len(items)

    def lpush(self, name: str, values: list[bytes]) -> int:
        items = list(self.s.lookup(name, list) or [])
        items[:0] = reversed(values)
        self.s.put(name, items)
        return len(items)

    def lpop(self, name: str, count: int | None) -> Any:
        return self._pop(name, count, from_left=True)

    def rpop(self, name: str, count: int | None) -> Any:
        return self._pop(name, count, from_left=False)

    def _pop(self, name: str, count: int | None, *, from_left: bool) -> Any:
        items: list[bytes] | None = self.s.lookup(name, list)
        if count is not None and count < 0:
            raise ResponseError("value is out of range, must be positive")
        if items is None:
            return None
        taken = min(1 if count is None else count, len(items))
        popped = items[:taken] if from_left else items[::-1][:taken]
        if taken:
            self.s.put(name, items[taken:] if from_left else items[: len(items) - taken])
        return popped[0] if count is None else popped

    def lrange(self, name: str, start: int, end: int) -> list[bytes]:
        items = self.s.lookup(name, list) or []
        return [items[i] for i in _clip(start, end, len(items))]

    def lindex(self, name: str, index: int) -> bytes | None:
        items = self.s.lookup(name, list) or []
        if index < 0:
            index += len(items)
        return items[index] if 0 <= index < len(items) else None

    def lset(self, name: str, index: int, value: bytes) -> bool:
        items = self.s.lookup(name, list)
        if items is None:
            raise StoreIndexError("no such key")
        position = index + len(items) if index < 0 else index
        if not 0 <= position < len(items):
            raise StoreIndexError("index out of range")
        items = list(items)
        items[position] = value
        self.s.put(name, items)
        return True

    def llen(self, name: str) -> int:
        return len(self.s.lookup(name, list) or [])

    def ltrim(self, name: str, start: int, end: int) -> bool:
        items = self.s.lookup(name, list)
        if items is not None:
            self.s.put(name, [items[i] for i in _clip(start, end, len(items))])
        return True

    # keys
    def exists(self, names: list[str]) -> int:
        return sum(name in self.s.data for name in names)

    def delete(self, names: list[str]) -> int:
        return sum(self.s.remove(name) for name in names)

    def type(self, name: str) -> bytes:
        value = self.s.data.get(name)
        if value is None:
            return b"none"
        return {bytes: b"string", dict: b"hash", list: b"list"}[type(value)]


def _parse(command: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Check and normalise one call's arguments (before anything runs or is queued)."""
    if command in ("exists", "delete"):
        if not args:
            raise ResponseError(f"wrong number of arguments for '{command}' command")
        return ([_key(name) for name in args],)
    name, rest = _key(args[0]), args[1:]
    if command in ("get", "hgetall", "hkeys", "hlen", "llen", "type"):
        return (name,)
    if command == "set":
        return (name, _encode(rest[0]))
    if command == "incr":
        return (name, _amount(rest[0]))
    if command in ("hget", "hexists"):
        return (name, _encode(rest[0]))
    if command == "hmget":
        return (name, [_encode(field) for field in rest[0]])
    if command == "hset":
        field, value, mapping = rest
        pairs = [] if field is None else [(_encode(field), _encode(value))]
        pairs += [(_encode(f), _encode(v)) for f, v in (mapping or {}).items()]
        if not pairs:
            raise ValueError("hset() needs a field and value, or a non-empty mapping")
        return (name, pairs)
    if command == "hdel":
        if not rest:
            raise ResponseError("wrong number of arguments for 'hdel' command")
        return (name, [_encode(field) for field in rest])
    if command == "hincrby":
        return (name, _encode(rest[0]), _amount(rest[1]))
    if command in ("rpush", "lpush"):
        if not rest:
            raise ResponseError(f"wrong number of arguments for '{command}' command")
        return (name, [_encode(value) for value in rest])
    if command in ("lpop", "rpop"):
        count = rest[0]
        return (name, None if count is None else _amount(count))
    if command in ("lrange", "ltrim"):
        return (name, _amount(rest[0]), _amount(rest[1]))
    if command == "lindex":
        return (name, _amount(rest[0]))
    if command == "lset":
        return (name, _amount(rest[0]), _encode(rest[1]))
    raise AssertionError(f"unknown command {command}")  # pragma: no cover


class _Api:
    """The public command methods, shared by the backend and its pipelines.

    Each one funnels into :meth:`_call`, which the backend runs at once and a
    pipeline queues (or runs at once while watching).
    """

    def _call(self, command: str, *args: Any) -> Any:
        raise NotImplementedError  # defined by the backend and by its pipeline

    def get(self, name: Any) -> Any:
        return self._call("get", name)

    def set(self, name: Any, value: Any) -> Any:
        return self._call("set", name, value)

    def incr(self, name: Any, amount: int = 1) -> Any:
        return self._call("incr", name, amount)

    def decr(self, name: Any, amount: int = 1) -> Any:
        return self._call("incr", name, -_amount(amount))

    def hget(self, name: Any, key: Any) -> Any:
        return self._call("hget", name, key)

    def hmget(self, name: Any, keys: Sequence[Any]) -> Any:
        return self._call("hmget", name, keys)

    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
    ) -> Any:
        return self._call("hset", name, key, value, mapping)

    def hdel(self, name: Any, *keys: Any) -> Any:
        return self._call("hdel", name, *keys)

    def hgetall(self, name: Any) -> Any:
        return self._call("hgetall", name)

    def hkeys(self, name: Any) -> Any:
        return self._call("hkeys", name)

    def hlen(self, name: Any) -> Any:
        return self._call("hlen", name)

    def hexists(self, name: Any, key: Any) -> Any:
        return self._call("hexists", name, key)

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Any:
        return self._call("hincrby", name, key, amount)

    def rpush(self, name: Any, *values: Any) -> Any:
        return self._call("rpush", name, *values)

    def lpush(self, name: Any, *values: Any) -> Any:
        return self._call("lpush", name, *values)

    def lpop(self, name: Any, count: int | None = None) -> Any:
        return self._call("lpop", name, count)

    def rpop(self, name: Any, count: int | None = None) -> Any:
        return self._call("rpop", name, count)

    def lrange(self, name: Any, start: int, end: int) -> Any:
        return self._call("lrange", name, start, end)

    def lindex(self, name: Any, index: int) -> Any:
        return self._call("lindex", name, index)

    def lset(self, name: Any, index: int, value: Any) -> Any:
        return self._call("lset", name, index, value)

    def llen(self, name: Any) -> Any:
        return self._call("llen", name)

    def ltrim(self, name: Any, start: int, end: int) -> Any:
        return self._call("ltrim", name, start, end)

    def exists(self, *names: Any) -> Any:
        return self._call("exists", *names)

    def delete(self, *names: Any) -> Any:
        return self._call("delete", *names)

    def type(self, name: Any) -> Any:
        return self._call("type", name)


# --- backend and pipeline ---------------------------------------------------------------

_named_stores: dict[str, _Store] = {}
_named_lock = threading.Lock()


class DictStoreBackend(_Api):
    """etcher's storage Protocol on Python dicts, for one process (thread-safe)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=False,
        multiprocess=False,
        atomic_batches=False,
        maintenance=False,
        snapshot_reads=True,
    )

    def __init__(self, store: _Store | None = None, name: str | None = None) -> None:
        self._store = store or _Store()
        self._commands = _Commands(self._store)
        self._closed = False
        self.name = name

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``dictstore://`` (a private store) or ``dictstore://name`` (shared by name).

        :raises ValueError: a URL of another shape; :raises TypeError: any option.
        """
        if options:
            raise TypeError(f"dictstore takes no options, got {sorted(options)}")
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME or parts.path or parts.query or parts.fragment:
            raise ValueError(
                f"{url!r} is not a dictstore URL: use dictstore:// or dictstore://name"
            )
        name = unquote(parts.netloc)
        if not name:
            return cls()
        with _named_lock:
            store = _named_stores.setdefault(name, _Store())
        return cls(store, name)

    def _call(self, command: str, *args: Any) -> Any:
        self._check_open()
        parsed = _parse(command, args)
        with self._store.lock:
            return getattr(self._commands, command)(*parsed)

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable("this dictstore backend was closed")

    def pipeline(self, transaction: bool = True) -> DictStorePipeline:
        """A new pipeline (one per thread)."""
        self._check_open()
        return DictStorePipeline(self, transaction)

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        """Every key matching the Redis glob ``match`` (all keys without one)."""
        self._check_open()
        pattern = None if match is None else glob_to_regex(_key(match))
        with self._store.lock:
            names = list(self._store.data)
        for name in names:
            key = name.encode("utf-8")
            if pattern is None or pattern.fullmatch(key):
                yield key

    def maintenance(self) -> None:
        """Nothing to do: dicts need no housekeeping."""
        self._check_open()

    def close(self) -> None:
        """Forget this handle; a named store stays for other handles."""
        self._closed = True

    def __repr__(self) -> str:
        return f"<DictStoreBackend dictstore://{self.name or ''}>"


class DictStorePipeline(_Api):
    """A batch of commands, optionally a watched transaction, with redis-py's modes."""

    def __init__(self, backend: DictStoreBackend, transaction: bool) -> None:
        self._backend = backend
        self._transaction = transaction
        self._queue: list[tuple[str, tuple[Any, ...]]] = []
        self._watched: dict[str, int] = {}
        self._explicit = False

    def _call(self, command: str, *args: Any) -> Any:
        if self._watched and not self._explicit:
            return self._backend._call(command, *args)  # immediate mode
        self._backend._check_open()
        self._queue.append((command, _parse(command, args)))
        return self

    def watch(self, *names: Any) -> bool:
        """Remember the version of each key; ``execute()`` fails if any has changed since."""
        if self._explicit:
            raise TransactionError("watch() after multi() is not allowed")
        if not names:
            raise ResponseError("wrong number of arguments for 'watch' command")
        store = self._backend._store
        with store.lock:
            for name in names:
                self._watched.setdefault(_key(name), store.version(_key(name)))
        return True

    def unwatch(self) -> bool:
        """Forget every watched key."""
        self._watched.clear()
        return True

    def multi(self) -> None:
        """Queue the commands that follow for ``execute()``."""
        if self._explicit:
            raise TransactionError("multi() was already called")
        if self._queue:
            raise TransactionError("commands were queued before multi()")
        self._explicit = True

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Run the batch atomically, unless a watched key changed (then ``WatchError``)."""
        self._backend._check_open()
        store = self._backend._store
        commands = self._backend._commands
        results: list[Any] = []
        try:
            with store.lock:
                if any(store.version(k) != v for k, v in self._watched.items()):
                    raise WatchError("a watched key was modified")
                for command, parsed in self._queue:
                    try:
                        results.append(getattr(commands, command)(*parsed))
                    except (ResponseError, ValueError, TypeError) as exc:
                        results.append(exc)  # the rest still runs, as in Redis
        finally:
            self.reset()
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

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


__all__ = ["SCHEME", "DictStoreBackend", "DictStorePipeline"]
