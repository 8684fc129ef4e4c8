"""RD and RL: handles to stored dict and list nodes that behave like ``dict`` and ``list``.

A handle holds only the database it belongs to and its node's uid; every
access reads or writes the store. Each mutating call is one atomic unit of
work (see :mod:`etcher.unit`), including the garbage collection it causes.
Values that come back are plain scalars, or new handles for nested nodes;
``handle()`` materializes a plain-Python snapshot.
"""

from __future__ import annotations

import weakref
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    MutableSequence,
    Sequence,
    ValuesView,
)
from typing import TYPE_CHECKING, Any, overload

from etcher.codec import (
    Link,
    decode_key,
    encode_key,
    item_value,
    link_target,
    lookup_key,
    safe_decode,
    split_item,
)
from etcher.equality import deep_equal
from etcher.graph import KIND_DICT, KIND_LIST, Graph, parents_of
from etcher.layout import PIN
from etcher.materialize import materialize
from etcher.writer import Writer

if TYPE_CHECKING:
    from etcher.db import DB

_NOTHING: Any = object()


def _link_of(raw: bytes | None) -> str | None:
    return None if raw is None else link_target(raw)


class Node:
    """What RD and RL share: identity, references, materializing, printing."""

    __slots__ = ("__weakref__", "_db", "_etcher_uid")

    _db: DB
    _etcher_uid: str

    def _attach(self, db: Any, uid: str | None, kind: bytes, initial: Any) -> None:
        from etcher.db import DB

        if not isinstance(db, DB):
            raise TypeError(f"{type(self).__name__}(db, ...) needs an etcher DB, not {db!r}")
        self._db = db
        if uid is not None:
            self._etcher_uid = uid
            return
        # A node made by ``RD(db)``/``RL(db)`` is not linked yet: a pin in its header keeps it
        # alive until it is linked somewhere or this handle is dropped.
        new_uid = db._uids.new("D" if kind == KIND_DICT else "L")

        def create(g: Graph) -> None:
            g.new_node(new_uid, kind, pinned=True)
            if initial:
                w = Writer(db, g)
                content = g.layout.content(new_uid)
                if kind == KIND_DICT:
                    mapping = {}
                    for seq, (k, v) in enumerate(dict(initial).items()):
                        mapping[encode_key(k, ())] = b"%d|" % seq + w.tag(v, new_uid, (k,))
                    g.u.hset_many(content, mapping)
                    g.u.hset(g.layout.refs(new_uid), b"#s", b"%d" % len(mapping))
                else:
                    g.u.create_list(content, w.tags(list(initial), new_uid))

        db._mutate(create)
        self._etcher_uid = new_uid
        weakref.finalize(self, db._release_pin, new_uid)

    # --- identity and references -------------------------------------------------
    @property
    def uid(self) -> str:
        """The node's persistent identity (stable for its lifetime, unique in the store)."""
        return self._etcher_uid

    @property
    def db(self) -> DB:
        """The database (or transaction view) this handle reads and writes through."""
        return self._db

    @property
    def backrefs(self) -> dict[str, int]:
        """``{parent uid: number of links from that parent}`` (the root's uid is ``"Droot"``)."""
        return parents_of(self._graph().header(self._etcher_uid))

    @property
    def refcount(self) -> int:
        """How many links point at this node, over all parents."""
        return sum(self.backrefs.values())

    @property
    def pinned(self) -> bool:
        """True while the node is held only by the ``RD(db)``/``RL(db)`` call that made it."""
        return PIN in self._graph().header(self._etcher_uid)

    def _same_node(self, other: Node) -> bool:
        return (
            other._etcher_uid == self._etcher_uid
            and other._db._store_id == self._db._store_id
            and other._db._layout.prefix == self._db._layout.prefix
        )

    def _graph(self) -> Graph:
        return Graph(self._db._layout, self._db._reader())

    def _alive_if_empty(self, n: int) -> int:
        """Return ``n``; when it is 0, first make sure the node exists (else stale)."""
        if not n:
            self._graph().require(self._etcher_uid)
        return n

    def _content_key(self) -> str:
        return self._db._layout.content(self._etcher_uid)

    def _value(self, raw: bytes) -> Any:
        """A stored tagged value as returned to users: a scalar, or a handle for a link."""
        decoded = safe_decode(raw)
        if type(decoded) is Link:
            return self._db._handle(decoded)
        return decoded

    def __call__(self) -> Any:
        """Materialize: a plain, detached Python snapshot of this node and all below it."""
        uid = self._etcher_uid
        return self._db._snapshot(lambda g: materialize(g, uid))

    def __repr__(self) -> str:
        from etcher.summary import summarize

        return summarize(self)

    __str__ = __repr__

    __hash__ = None  # type: ignore[assignment]  # mutable containers are unhashable

    def __copy__(self) -> Any:
        return self.copy()  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # A deep copy of persistent data is a detached snapshot: exactly what () gives.
        return self()

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{type(self).__name__} handles cannot be pickled; materialize with handle() first"
        )


class RD(Node, MutableMapping[Any, Any]):
    """A persistent dict. Behaves like ``dict``: same methods, errors and insertion order.

    >>> person = db["person"]                       # doctest: +SKIP
    >>> person["name"] = "Bob"                      # one atomic write
    >>> person()                                    # plain dict snapshot
    {'id': '123', 'name': 'Bob', 'tags': ['a', 'b']}

    ``RD(db)`` or ``RD(db, {"a": 1})`` makes a node that is not linked anywhere
    yet; it stays alive until it is linked (``db["x"] = rd``) or the handle is
    dropped, whichever comes first.
    """

    __slots__ = ()

    def __init__(self, db: Any, data: Mapping[Any, Any] | None = None, uid: str | None = None):
        self._attach(db, uid, KIND_DICT, data)

    @classmethod
    def fromkeys(cls, db: DB, keys: Iterable[Any], value: Any = None) -> RD:
        """An unlinked RD with ``keys`` all set to ``value`` (like ``dict.fromkeys``)."""
        return cls(db, dict.fromkeys(keys, value))

    # --- reads -----------------------------------------------------------------------
    def _raw_items(self) -> list[tuple[bytes, bytes]]:
        """``[(stored key, tagged value)]`` in insertion order."""
        r = self._db._reader()
        content = r.hgetall(self._content_key())
        if not content:
            self._graph().require(self._etcher_uid)
            return []
        ordered = sorted((*split_item(raw), field) for field, raw in content.items())
        return [(field, raw) for _seq, raw, field in ordered]

    def __getitem__(self, key: Any) -> Any:
        field = lookup_key(key)
        if field is None:
            raise KeyError(key)
        raw = self._db._reader().hget(self._content_key(), field)
        if raw is None:
            self._graph().require(self._etcher_uid)
            raise KeyError(key)
        return self._value(item_value(raw))

    def get(self, key: Any, default: Any = None) -> Any:
        """``self[key]`` if present, else ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        field = lookup_key(key)
        if field is None:
            return False
        if self._db._reader().hget(self._content_key(), field) is not None:
            return True
        self._graph().require(self._etcher_uid)
        return False

    def __len__(self) -> int:
        return self._alive_if_empty(self._db._reader().hlen(self._content_key()))

    def __iter__(self) -> Iterator[Any]:
        return iter([decode_key(field) for field, _raw in self._raw_items()])

    def __reversed__(self) -> Iterator[Any]:
        return iter([decode_key(field) for field, _raw in reversed(self._raw_items())])

    def keys(self) -> KeysView[Any]:
        """A view of the keys, in insertion order (read in one batch when iterated)."""
        return _RDKeys(self)

    def values(self) -> ValuesView[Any]:
        """A view of the values (read in one batch when iterated)."""
        return _RDValues(self)

    def items(self) -> ItemsView[Any, Any]:
        """A view of ``(key, value)`` pairs (read in one batch when iterated)."""
        return _RDItems(self)

    def copy(self) -> dict[Any, Any]:
        """A shallow plain-dict copy: nested nodes stay handles (use ``rd()`` for a deep copy)."""
        return {decode_key(f): self._value(raw) for f, raw in self._raw_items()}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RD) and self._same_node(other):
            return True
        if not isinstance(other, Mapping):
            return NotImplemented
        mine = self()
        theirs = other() if isinstance(other, Node) else other
        return deep_equal(mine, theirs)

    def __or__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.copy() | dict(other)

    def __ror__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(other) | self.copy()

    def __ior__(self, other: Any) -> RD:
        self.update(other)
        return self

    # --- writes ----------------------------------------------------------------------
    def _set_in(self, g: Graph, w: Writer, key: Any, value: Any) -> bytes:
        uid = self._etcher_uid
        field = encode_key(key)
        content = g.layout.content(uid)
        old = g.open_item(uid, field)
        seq = split_item(old)[0] if old is not None else g.next_seq(uid)
        tagged = w.tag(value, uid, (key,))
        g.u.hset(content, field, b"%d|" % seq + tagged)
        if old is not None:
            child = _link_of(item_value(old))
            if child is not None:
                g.remove_ref(child, uid)
        return tagged

    def __setitem__(self, key: Any, value: Any) -> None:
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            self._set_in(g, Writer(self._db, g), key, value)
            g.collect(alive=(uid,))

        self._db._mutate(op)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many keys in one atomic write (same argument forms as ``dict.update``)."""
        if isinstance(other, Node) and isinstance(other, RD):
            pairs: list[tuple[Any, Any]] = list(other.items())
        elif isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 - a keys() duck type
        else:
            pairs = []
            for i, pair in enumerate(other):
                try:
                    items = list(pair)
                except TypeError:
                    raise TypeError(
                        f"cannot convert dictionary update sequence element #{i} to a sequence"
                    ) from None
                if len(items) != 2:
                    raise ValueError(
                        f"dictionary update sequence element #{i} has length {len(items)}; "
                        "2 is required"
                    )
                pairs.append((items[0], items[1]))
        pairs.extend(kwargs.items())
        if not pairs:
            self._graph().require(self._etcher_uid, writing=True)
            return
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            w = Writer(self._db, g)
            for k, v in pairs:
                self._set_in(g, w, k, v)
            g.collect(alive=(uid,))

        self._db._mutate(op)

    def _remove_in(self, g: Graph, field: bytes, raw: bytes) -> Any:
        """Delete one stored item; return its value detached (materialized if a node)."""
        uid = self._etcher_uid
        g.u.hdel(g.layout.content(uid), field)
        tagged = item_value(raw)
        child = _link_of(tagged)
        if child is None:
            return safe_decode(tagged)
        value = materialize(g, child)
        g.remove_ref(child, uid)
        return value

    def __delitem__(self, key: Any) -> None:
        field = lookup_key(key)
        if field is None:
            raise KeyError(key)
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            content = g.layout.content(uid)
            old = g.u.hget(content, field)
            if old is None:
                raise KeyError(key)
            g.u.hdel(content, field)
            child = _link_of(item_value(old))
            if child is not None:
                g.remove_ref(child, uid)
                g.collect(alive=(uid,))

        self._db._mutate(op)

    def pop(self, key: Any, default: Any = _NOTHING) -> Any:
        """Remove ``key`` and return its value (a nested node comes back materialized)."""
        field = lookup_key(key)
        if field is None:
            if default is _NOTHING:
                raise KeyError(key)
            return default
        uid = self._etcher_uid

        def op(g: Graph) -> Any:
            g.require(uid)
            old = g.u.hget(g.layout.content(uid), field)
            if old is None:
                if default is _NOTHING:
                    raise KeyError(key)
                return default
            value = self._remove_in(g, field, old)
            g.collect(alive=(uid,))
            return value

        return self._db._mutate(op)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently inserted ``(key, value)`` pair (LIFO)."""
        uid = self._etcher_uid

        def op(g: Graph) -> tuple[Any, Any]:
            g.require(uid)
            content = g.u.hgetall(g.layout.content(uid))
            if not content:
                raise KeyError("popitem(): dictionary is empty")
            field, raw = max(content.items(), key=lambda item: split_item(item[1])[0])
            value = self._remove_in(g, field, raw)
            g.collect(alive=(uid,))
            return decode_key(field), value

        return self._db._mutate(op)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``self[key]`` if present; else store ``default`` and return it (a handle if a node)."""
        uid = self._etcher_uid
        field = encode_key(key)

        def op(g: Graph) -> bytes:
            g.require(uid)
            old = g.u.hget(g.layout.content(uid), field)
            if old is not None:
                return item_value(old)
            tagged = self._set_in(g, Writer(self._db, g), key, default)
            g.collect(alive=(uid,))
            return tagged

        return self._value(self._db._mutate(op))

    def clear(self) -> None:
        """Remove every item in one atomic write (unreachable children are collected)."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            content = g.layout.content(uid)
            items = g.u.hgetall(content)
            g.u.drop_hash(content)
            for raw in items.values():
                child = _link_of(item_value(raw))
                if child is not None:
                    g.remove_ref(child, uid)
            g.collect(alive=(uid,))

        self._db._mutate(op)


class _RDKeys(KeysView[Any]):
    _mapping: RD

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self._mapping)

    def __repr__(self) -> str:
        return f"rd_keys({list(self)!r})"


class _RDValues(ValuesView[Any]):
    _mapping: RD

    def __iter__(self) -> Iterator[Any]:
        rd = self._mapping
        return iter([rd._value(raw) for _f, raw in rd._raw_items()])

    def __reversed__(self) -> Iterator[Any]:
        return iter(list(self)[::-1])

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)

    def __repr__(self) -> str:
        return f"rd_values({list(self)!r})"


class _RDItems(ItemsView[Any, Any]):
    _mapping: RD

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        rd = self._mapping
        return iter([(decode_key(f), rd._value(raw)) for f, raw in rd._raw_items()])

    def __reversed__(self) -> Iterator[tuple[Any, Any]]:
        return iter(list(self)[::-1])

    def __repr__(self) -> str:
        return f"rd_items({list(self)!r})"


class RL(Node, MutableSequence[Any]):
    """A persistent list. Behaves like ``list``: indexing, slices, and every list method.

    Appending or popping at either end costs O(1); inserting or deleting in
    the middle moves only the shorter side; ``rl[i]`` is a point lookup.

    >>> tags = db["person"]["tags"]                 # doctest: +SKIP
    >>> tags.append("c"); tags[-1]
    'c'
    """

    __slots__ = ()

    def __init__(self, db: Any, data: Iterable[Any] | None = None, uid: str | None = None):
        self._attach(db, uid, KIND_LIST, list(data) if data is not None else None)

    # --- reads -----------------------------------------------------------------------
    def _raws(self) -> list[bytes]:
        raws = self._db._reader().lrange(self._content_key(), 0, -1)
        self._alive_if_empty(len(raws))
        return raws

    def __len__(self) -> int:
        return self._alive_if_empty(self._db._reader().llen(self._content_key()))

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._value(raw) for raw in self._raws()[index]]
        index = _as_index(index)
        # Beyond 64 bits no store can hold the index; it is simply out of range.
        raw = (
            None if abs(index) >= 1 << 62 else self._db._reader().lindex(self._content_key(), index)
        )
        if raw is None:
            self._graph().require(self._etcher_uid)
            raise IndexError("list index out of range")
        return self._value(raw)

    def __iter__(self) -> Iterator[Any]:
        return iter([self._value(raw) for raw in self._raws()])

    def __reversed__(self) -> Iterator[Any]:
        return iter([self._value(raw) for raw in reversed(self._raws())])

    def _matches(self, raw: bytes, value: Any) -> bool:
        child = _link_of(raw)
        if child is None:
            if isinstance(value, (Mapping, list, Node)):
                return False
            return bool(safe_decode(raw) == value)
        if isinstance(value, Node):
            return value._etcher_uid == child
        if not isinstance(value, (Mapping, list)):
            return False
        return deep_equal(self._db._handle(child)(), value)

    def __contains__(self, value: object) -> bool:
        return any(self._matches(raw, value) for raw in self._raws())

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of the first item equal to ``value`` (``ValueError`` if absent)."""
        raws = self._raws()
        lo, hi, _ = slice(start, stop).indices(len(raws))
        for i in range(lo, hi):
            if self._matches(raws[i], value):
                return i
        raise ValueError(f"{value!r} is not in list")

    def count(self, value: Any) -> int:
        """How many items equal ``value``."""
        return sum(1 for raw in self._raws() if self._matches(raw, value))

    def copy(self) -> list[Any]:
        """A shallow plain-list copy: nested nodes stay handles (use ``rl()`` for a deep copy)."""
        return list(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RL) and self._same_node(other):
            return True
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes, bytearray)):
            return NotImplemented
        theirs = other() if isinstance(other, Node) else other
        return deep_equal(self(), theirs)

    def __add__(self, other: Any) -> list[Any]:
        if not isinstance(other, (list, RL)):
            return NotImplemented
        return list(self) + list(other)

    def __radd__(self, other: Any) -> list[Any]:
        if not isinstance(other, list):
            return NotImplemented
        return other + list(self)

    def __mul__(self, n: Any) -> list[Any]:
        if not isinstance(n, int):
            return NotImplemented
        return list(self) * n

    __rmul__ = __mul__

    def __iadd__(self, other: Iterable[Any]) -> RL:  # type: ignore[misc]
        self.extend(other)
        return self

    def __imul__(self, n: Any) -> RL:
        if not isinstance(n, int):
            return NotImplemented
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            raws = g.u.lrange(key, 0, -1)
            links = [c for c in map(_link_of, raws) if c is not None]
            if n <= 0:
                g.u.list_op(key, "delete")
                for child in links:
                    g.remove_ref(child, uid)
                g.collect(alive=(uid,))
            elif n > 1 and raws:
                g.u.list_op(key, "rpush", *(raws * (n - 1)))
                for child in links:
                    g.add_ref(child, uid, n - 1)

        self._db._mutate(op)
        return self

    # --- writes ----------------------------------------------------------------------
    def _rewrite(self, g: Graph, removed: list[bytes], new: list[bytes]) -> None:
        """Replace the whole list with ``new``; drop the links of the ``removed`` items.

        Tags in ``new`` are either items kept from the old list (their links
        stay counted) or fresh ones a Writer already counted.
        """
        uid = self._etcher_uid
        key = g.layout.content(uid)
        g.u.list_op(key, "delete")
        if new:
            g.u.list_op(key, "rpush", *new)
        for child in map(_link_of, removed):
            if child is not None:
                g.remove_ref(child, uid)
        g.collect(alive=(uid,))

    def __setitem__(self, index: Any, value: Any) -> None:
        uid = self._etcher_uid
        if isinstance(index, slice):
            values = list(value) if not isinstance(value, RL) else value.copy()

            def slice_op(g: Graph) -> None:
                g.require(uid)
                old = g.u.lrange(g.layout.content(uid), 0, -1)
                new = list(old)
                removed = old[index]
                new[index] = Writer(self._db, g).tags(values, uid)  # list raises as list would
                self._rewrite(g, removed, new)

            self._db._mutate(slice_op)
            return
        index = _as_index(index)

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            n = g.u.llen(key)
            if not -n <= index < n:
                raise IndexError("list assignment index out of range")
            i = index + n if index < 0 else index
            old = g.u.lindex(key, i)
            tagged = Writer(self._db, g).tag(value, uid, (i,))
            g.u.list_op(key, "lset", i, tagged)
            child = _link_of(old)
            if child is not None:
                g.remove_ref(child, uid)
                g.collect(alive=(uid,))

        self._db._mutate(op)

    def __delitem__(self, index: Any) -> None:
        uid = self._etcher_uid
        if isinstance(index, slice):

            def slice_op(g: Graph) -> None:
                g.require(uid)
                old = g.u.lrange(g.layout.content(uid), 0, -1)
                new = list(old)
                removed = old[index]
                del new[index]
                if removed:
                    self._rewrite(g, removed, new)

            self._db._mutate(slice_op)
            return
        index = _as_index(index)

        def op(g: Graph) -> None:
            g.require(uid)
            n = g.u.llen(g.layout.content(uid))
            if not -n <= index < n:
                raise IndexError("list assignment index out of range")
            self._pop_in(g, index + n if index < 0 else index, n, materialize_value=False)

        self._db._mutate(op)

    def _pop_in(self, g: Graph, i: int, n: int, materialize_value: bool = True) -> Any:
        """Remove item ``i`` of ``n``, moving the shorter side; return its detached value."""
        uid = self._etcher_uid
        key = g.layout.content(uid)
        if i == n - 1:
            raw = g.u.lindex(key, -1)
            g.u.list_op(key, "rpop")
        elif i == 0:
            raw = g.u.lindex(key, 0)
            g.u.list_op(key, "lpop")
        elif i < n // 2:
            head = g.u.lrange(key, 0, i)
            raw = head[-1]
            g.u.list_op(key, "ltrim", i + 1, -1)
            g.u.list_op(key, "lpush", *reversed(head[:-1]))
        else:
            tail = g.u.lrange(key, i, -1)
            raw = tail[0]
            g.u.list_op(key, "ltrim", 0, i - 1)
            g.u.list_op(key, "rpush", *tail[1:])
        assert raw is not None
        child = _link_of(raw)
        if child is None:
            return safe_decode(raw)
        value = materialize(g, child) if materialize_value else None
        g.remove_ref(child, uid)
        g.collect(alive=(uid,))
        return value

    def pop(self, index: int = -1) -> Any:
        """Remove and return item ``index`` (default last); nested nodes come back materialized."""
        index = _as_index(index)
        uid = self._etcher_uid

        def op(g: Graph) -> Any:
            g.require(uid)
            n = g.u.llen(g.layout.content(uid))
            if not n:
                raise IndexError("pop from empty list")
            if not -n <= index < n:
                raise IndexError("pop index out of range")
            return self._pop_in(g, index + n if index < 0 else index, n)

        return self._db._mutate(op)

    def insert(self, index: int, value: Any) -> None:
        """Insert ``value`` before position ``index`` (clipped to the list, as ``list.insert``)."""
        index = _as_index(index)
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            n = g.u.llen(key)
            i = max(0, index + n) if index < 0 else min(index, n)
            tagged = Writer(self._db, g).tag(value, uid, (i,))
            if i == n:
                g.u.list_op(key, "rpush", tagged)
            elif i == 0:
                g.u.list_op(key, "lpush", tagged)
            elif i <= n // 2:
                head = g.u.lrange(key, 0, i - 1)
                g.u.list_op(key, "ltrim", i, -1)
                g.u.list_op(key, "lpush", tagged, *reversed(head))
            else:
                tail = g.u.lrange(key, i, -1)
                g.u.list_op(key, "ltrim", 0, i - 1)
                g.u.list_op(key, "rpush", tagged, *tail)

        self._db._mutate(op)

    def append(self, value: Any) -> None:
        """Add ``value`` at the end (O(1))."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            tagged = Writer(self._db, g).tag(value, uid, (-1,))
            g.u.list_op(g.layout.content(uid), "rpush", tagged)

        self._db._mutate(op)

    def extend(self, values: Iterable[Any]) -> None:
        """Append every item of ``values`` in one atomic write."""
        items = values.copy() if isinstance(values, RL) else list(values)
        if not items:
            self._graph().require(self._etcher_uid, writing=True)
            return
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            tags = Writer(self._db, g).tags(items, uid)
            g.u.list_op(key, "rpush", *tags)

        self._db._mutate(op)

    def remove(self, value: Any) -> None:
        """Remove the first item equal to ``value`` (``ValueError`` if absent)."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            raws = g.u.lrange(g.layout.content(uid), 0, -1)
            for i, raw in enumerate(raws):
                if self._matches_in(g, raw, value):
                    self._pop_in(g, i, len(raws), materialize_value=False)
                    return
            raise ValueError("list.remove(x): x not in list")

        self._db._mutate(op)

    def _matches_in(self, g: Graph, raw: bytes, value: Any) -> bool:
        child = _link_of(raw)
        if child is None or not isinstance(value, (Mapping, list)) or isinstance(value, Node):
            return self._matches(raw, value)
        return deep_equal(materialize(g, child), value)

    def clear(self) -> None:
        """Remove every item in one atomic write."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            old = g.u.lrange(g.layout.content(uid), 0, -1)
            if old:
                self._rewrite(g, old, [])

        self._db._mutate(op)

    def reverse(self) -> None:
        """Reverse the items in place (one atomic write)."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            raws = g.u.lrange(key, 0, -1)
            if len(raws) > 1:
                g.u.list_op(key, "delete")
                g.u.list_op(key, "rpush", *reversed(raws))

        self._db._mutate(op)

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        """Sort in place, stably, comparing materialized values (as ``list.sort`` would)."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            content = g.layout.content(uid)
            raws = g.u.lrange(content, 0, -1)
            if len(raws) < 2:
                return
            values = []
            for raw in raws:
                child = _link_of(raw)
                values.append(safe_decode(raw) if child is None else materialize(g, child))
            keys = values if key is None else [key(v) for v in values]
            order = sorted(range(len(raws)), key=keys.__getitem__, reverse=reverse)
            g.u.list_op(content, "delete")
            g.u.list_op(content, "rpush", *[raws[i] for i in order])

        self._db._mutate(op)


def _as_index(index: Any) -> int:
    try:
        return index.__index__()  # type: ignore[no-any-return]
    except AttributeError:
        raise TypeError(
            f"list indices must be integers or slices, not {type(index).__name__}"
        ) from None


def handle_for(db: DB, uid: str) -> RD | RL:
    """A handle of the right class for node ``uid`` (no store access)."""
    node: RD | RL = object.__new__(RD) if uid[0] == "D" else object.__new__(RL)
    node._db = db
    node._etcher_uid = uid
    return node
