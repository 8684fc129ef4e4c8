"""The public command methods, shared by the backend and its pipelines.

Each method checks and normalizes its arguments at call time (so bad input
fails where it was written, before anything is queued or touched) and hands a
:class:`~etcher_sqlite.ops.Command` plus the normalized arguments to
``_call``: the backend runs it at once, a pipeline queues it or, while
watching, runs it at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from etcher.errors import ResponseError, StoreValueError
from etcher.spec import EncodableT, KeyT
from etcher_sqlite import ops
from etcher_sqlite.ops import INT64_MAX, INT64_MIN, Call, Command

_BYTES_ONLY = {bytes}

_INDEX_CLAMP = 2**62
"""Indices are clamped here: no list gets this long, and ``lo + index`` stays a 64-bit integer."""


def to_key(name: object) -> str:
    """A store key as text (``bytes`` keys must hold UTF-8)."""
    if isinstance(name, str):
        return name
    if isinstance(name, bytes | bytearray | memoryview):
        return bytes(name).decode()
    raise TypeError(f"store keys must be str or bytes, not {type(name).__name__}")


def to_bytes(value: object) -> bytes:
    """A value or hash field as bytes, encoded the way redis-py encodes it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"store values must be bytes, str, int or float, not {type(value).__name__}")


def to_int(value: object, what: str) -> int:
    """A signed 64-bit integer argument (Redis refuses anything else)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise StoreValueError(f"{what} {value} is out of the signed 64-bit range")
    return value


def to_index(value: object, what: str) -> int:
    """A list index or bound; clamping keeps far-out-of-range values meaning the same."""
    return max(-_INDEX_CLAMP, min(_INDEX_CLAMP, to_int(value, what)))


def _count(value: object) -> int | None:
    if value is None:
        return None
    count = to_int(value, "count")
    if count < 0:
        raise StoreValueError(f"count must be positive, got {count}")
    return count


def _nonempty(items: tuple[Any, ...], command: str) -> None:
    if not items:
        raise ResponseError(f"wrong number of arguments for {command!r}")


class CommandsMixin:
    """Every data command of :class:`etcher.spec.Commands`, routed through ``_call``."""

    __slots__ = ()

    def _call(self, command: Command, call: Call) -> Any:
        raise NotImplementedError  # the backend runs commands now, a pipeline queues them

    # --- strings ------------------------------------------------------------------

    def get(self, name: KeyT) -> Any:
        """The value of string key ``name``, or ``None`` if it does not exist."""
        return self._call(ops.GET, (to_key(name),))

    def set(self, name: KeyT, value: EncodableT) -> Any:
        """Make ``name`` a string key holding ``value`` (replacing any type); returns ``True``."""
        return self._call(ops.SET, (to_key(name), to_bytes(value)))

    def incr(self, name: KeyT, amount: int = 1) -> Any:
        """Add ``amount`` to the integer in ``name`` (missing counts as 0); returns the result."""
        return self._call(ops.INCR, (to_key(name), to_int(amount, "amount")))

    def decr(self, name: KeyT, amount: int = 1) -> Any:
        """``incr(name, -amount)``."""
        return self._call(ops.INCR, (to_key(name), -to_int(amount, "amount")))

    # --- hashes -------------------------------------------------------------------

    def hget(self, name: KeyT, key: EncodableT) -> Any:
        """The value of field ``key`` of hash ``name``, or ``None``."""
        return self._call(ops.HGET, (to_key(name), to_bytes(key)))

    def hmget(self, name: KeyT, keys: Sequence[EncodableT]) -> Any:
        """The value (or ``None``) of each field in ``keys``, in order."""
        fields = tuple(to_bytes(field) for field in keys)
        _nonempty(fields, "hmget")
        return self._call(ops.HMGET, (to_key(name), fields))

    def hset(
        self,
        name: KeyT,
        key: EncodableT | None = None,
        value: EncodableT | None = None,
        mapping: Mapping[Any, EncodableT] | None = None,
    ) -> Any:
        """Set field ``key`` to ``value`` and/or every field of ``mapping``.

        Returns how many fields were added (not updated).
        """
        pairs: dict[bytes, bytes]
        if key is None and value is None and mapping:
            # Core's commits: a dict of bytes. Checking the types in C and copying the
            # dict beats normalizing field by field.
            kinds = set(map(type, mapping))
            kinds.update(map(type, mapping.values()))
            if kinds == _BYTES_ONLY:
                pairs = dict(mapping)
                return self._call(ops.HSET, (name if type(name) is str else to_key(name), pairs))
        pairs = {}
        if key is not None:
            pairs[to_bytes(key)] = to_bytes(value)
        elif value is not None:
            raise ValueError("hset got a value but no key")
        if mapping:
            for field, item in mapping.items():
                pairs[to_bytes(field)] = to_bytes(item)
        if not pairs:
            raise ValueError("hset needs a key and value, or a non-empty mapping")
        return self._call(ops.HSET, (to_key(name), pairs))

    def hdel(self, name: KeyT, *keys: EncodableT) -> Any:
        """Remove fields; returns how many existed. Removing the last one deletes the key."""
        fields = tuple(to_bytes(field) for field in keys)
        _nonempty(fields, "hdel")
        return self._call(ops.HDEL, (to_key(name), fields))

    def hreplace(self, name: KeyT, mapping: Mapping[Any, EncodableT]) -> Any:
        """Make hash ``name`` hold exactly ``mapping`` (``etcher.spec.WholeHashWrites``).

        An empty mapping deletes the key. Returns ``True``.
        """
        if not isinstance(mapping, Mapping):
            raise TypeError(f"hreplace takes a mapping, not {type(mapping).__name__}")
        pairs = {to_bytes(field): to_bytes(value) for field, value in mapping.items()}
        return self._call(ops.HREPLACE, (to_key(name), pairs))

    def hgetall(self, name: KeyT) -> Any:
        """Every field of hash ``name`` as a dict (``{}`` if missing)."""
        return self._call(ops.HGETALL, (to_key(name),))

    def hkeys(self, name: KeyT) -> Any:
        """The field names of hash ``name`` (``[]`` if missing)."""
        return self._call(ops.HKEYS, (to_key(name),))

    def hlen(self, name: KeyT) -> Any:
        """Number of fields in hash ``name`` (0 if missing)."""
        return self._call(ops.HLEN, (to_key(name),))

    def hexists(self, name: KeyT, key: EncodableT) -> Any:
        """Whether field ``key`` exists in hash ``name``."""
        return self._call(ops.HEXISTS, (to_key(name), to_bytes(key)))

    def hincrby(self, name: KeyT, key: EncodableT, amount: int = 1) -> Any:
        """Add ``amount`` to the integer in field ``key`` (missing counts as 0); returns it."""
        return self._call(ops.HINCRBY, (to_key(name), to_bytes(key), to_int(amount, "amount")))

    # --- lists --------------------------------------------------------------------

    def rpush(self, name: KeyT, *values: EncodableT) -> Any:
        """Append ``values`` in order at the tail; returns the new length."""
        items = [to_bytes(value) for value in values]
        _nonempty(values, "rpush")
        return self._call(ops.RPUSH, (to_key(name), items))

    def lpush(self, name: KeyT, *values: EncodableT) -> Any:
        """Insert each of ``values`` in turn at the head; returns the new length."""
        items = [to_bytes(value) for value in values]
        _nonempty(values, "lpush")
        return self._call(ops.LPUSH, (to_key(name), items))

    def lpop(self, name: KeyT, count: int | None = None) -> Any:
        """Remove and return the first item, or with ``count`` a list of up to that many."""
        return self._call(ops.LPOP, (to_key(name), _count(count)))

    def rpop(self, name: KeyT, count: int | None = None) -> Any:
        """Remove and return the last item, or with ``count`` up to that many, tail first."""
        return self._call(ops.RPOP, (to_key(name), _count(count)))

    def lrange(self, name: KeyT, start: int, end: int) -> Any:
        """Items ``start`` through ``end`` inclusive (negative from the end, clipped)."""
        return self._call(
            ops.LRANGE, (to_key(name), to_index(start, "start"), to_index(end, "end"))
        )

    def lindex(self, name: KeyT, index: int) -> Any:
        """The item at ``index``, or ``None`` if out of range or missing."""
        return self._call(ops.LINDEX, (to_key(name), to_index(index, "index")))

    def lset(self, name: KeyT, index: int, value: EncodableT) -> Any:
        """Replace the item at ``index``; ``StoreIndexError`` if out of range or missing."""
        return self._call(ops.LSET, (to_key(name), to_index(index, "index"), to_bytes(value)))

    def llen(self, name: KeyT) -> Any:
        """Number of items in list ``name`` (0 if missing), in O(1)."""
        return self._call(ops.LLEN, (to_key(name),))

    def ltrim(self, name: KeyT, start: int, end: int) -> Any:
        """Keep only items ``start`` through ``end`` inclusive; returns ``True``."""
        return self._call(ops.LTRIM, (to_key(name), to_index(start, "start"), to_index(end, "end")))

    # --- keys ---------------------------------------------------------------------

    def exists(self, *names: KeyT) -> Any:
        """How many of ``names`` exist (a name given twice counts twice)."""
        _nonempty(names, "exists")
        return self._call(ops.EXISTS, (tuple(to_key(name) for name in names),))

    def delete(self, *names: KeyT) -> Any:
        """Delete keys of any type; returns how many existed."""
        _nonempty(names, "delete")
        return self._call(ops.DELETE, (tuple(to_key(name) for name in names),))

    def type(self, name: KeyT) -> Any:
        """``b"string"``, ``b"hash"``, ``b"list"`` or ``b"none"``."""
        return self._call(ops.TYPE, (to_key(name),))
