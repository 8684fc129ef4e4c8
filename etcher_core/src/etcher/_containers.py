"""RD and RL: handles to stored dict and list nodes that behave like ``dict`` and ``list``.

A handle holds only the database it belongs to and its node's uid; every
access reads or writes the store. Each mutating call is one atomic unit of
work (see :mod:`etcher._unit`), including the garbage collection it causes.
Values that come back are plain scalars, or new handles for nested nodes;
``handle()`` materializes a plain-Python snapshot.
"""

from __future__ import annotations

import os
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
    ValuesView,
)
from typing import TYPE_CHECKING, Any, SupportsIndex, TypeVar, overload

from etcher._codec import _DECIMAL_LIMIT as _SMALL
from etcher._codec import (
    Link,
    decode_key,
    decoded_items,
    encode_key,
    encode_scalar,
    item_value,
    join_item,
    link_target,
    lookup_key,
    ordered_items,
    safe_decode,
    split_item,
)
from etcher._equality import deep_equal
from etcher._graph import KIND_DICT, KIND_LIST, Graph, parents_of
from etcher._layout import DEAD, PIN, ROOT, SEQ, Layout, is_dict, uid_kind
from etcher._listends import APPEND, NOT_DONE, POP_FIRST, POP_LAST, PREPEND
from etcher._materialize import FALLBACK, materialize, materialize_read
from etcher._session import OrderHints, Session
from etcher._summary import summarize_dict, summarize_list
from etcher._unit import ItemMissing
from etcher._writer import Writer, assign_plain
from etcher.errors import (
    ClosedError,
    EtcherIndexError,
    EtcherKeyError,
    EtcherTypeError,
    EtcherValueError,
    StaleHandleError,
    StoreCorrupt,
    WatchError,
)
from etcher.spec import SubtreeChunk, UnlinkOutcome, UnlinkPlan

if TYPE_CHECKING:
    from etcher._namespace import Namespace
    from etcher.types import Key, Plain, Storable, StorableMapping, Stored

_T = TypeVar("_T")

_NOTHING: Any = object()

# Types whose equality with a stored item is etcher's or the interpreter's own: comparing
# them runs no caller code (exact types: a subclass may define __eq__).
_OWN_EQ: frozenset[type] = frozenset({str, int, float, bool, type(None)})
# What etcher._writer.assign_plain may take (it hands anything inside it does not take on).
_PLAIN: frozenset[type] = _OWN_EQ | {dict, list}


def _read_unlinked(g: Graph, child: str) -> None:
    """Read the header of a node about to lose a link together with its content.

    :meth:`Graph.remove_ref` reads the header, and when that was the last link
    the collection reads the content next: one batch instead of two round trips
    (deleting or replacing a small document on Redis, 5 -> 4). When the node
    stays linked elsewhere its content was read for nothing.

    Nothing at all when the header is known already: the item was read with
    what unlinking needs (:meth:`Graph.open_unlinking`), which leaves out the
    content of a node that stays linked.
    """
    refs, content = g.layout.refs(child), g.layout.content(child)
    if g.unit.known_hash(refs) is not None:
        return
    if is_dict(child):
        g.unit.load(hashes=(refs, content))
    else:
        g.unit.load(hashes=(refs,), lists=(content,))


HANDLE_SCAN = 256
"""Values :func:`_handles_in` looks at, at most (it finds hints, not every handle)."""


def _handles_in(value: Any, session: Session) -> list[str]:
    """Uids of the handles of ``session``'s namespace a plain value links (a bounded look).

    Their headers are read with the item it replaces (:meth:`Graph.open_unlinking`)
    rather than in a batch of their own when the value is written. Only plain dicts
    and lists are looked into: a subclass's iteration is caller code.
    """
    if type(value) is not dict and type(value) is not list:
        return []
    found: list[str] = []
    stack = [value]
    budget = HANDLE_SCAN
    while stack and budget > 0:
        items = stack.pop()
        for v in items.values() if type(items) is dict else items:
            budget -= 1
            if budget < 0:
                break
            cls = type(v)
            if cls is dict or cls is list:
                stack.append(v)
            # Looked up on the class, as the writer does: an instance __getattr__ is caller code.
            elif getattr(cls, "_etcher_uid", None) is not None:
                other = v._s
                if other.prefix == session.prefix and other.store_id == session.store_id:
                    found.append(v._etcher_uid)
    return found


_POPPED: Any = object()
"""What a ``pop`` committed by an unlinking commit returns from its unit (see :func:`_popped`)."""


def _popped(layout: Layout, outcome: UnlinkOutcome, listed: bool = False) -> Any:
    """The value a ``pop`` removed, from its unlinking commit's answer (``plan.contents``).

    The commit collected only a tree closed under its links, and answered every
    node's content as it was: the value is built from those, as a subtree read's.
    ``listed``: a list's item (stored as it is, without a dict item's number).
    """
    raw = outcome.item
    if raw is None:  # the commit checked the item was there
        raise StoreCorrupt("an unlinking commit answered no item for a pop")
    tagged = raw if listed else item_value(raw)
    child = _link_of(tagged)
    if child is None:
        return safe_decode(tagged)
    contents = outcome.contents or {}
    if child not in contents:
        raise StoreCorrupt(f"an unlinking commit answered no content for node {child}")
    chunk: list[SubtreeChunk] = [(contents, [], [])]

    def replay(content_prefix: str, refs_prefix: str, roots: Any, limit: int) -> Any:
        return chunk.pop() if chunk else None

    value = materialize_read(layout, child, replay)
    if value is FALLBACK:
        raise StoreCorrupt(f"an unlinking commit answered part of node {child}'s tree")
    return value


def _link_of(raw: bytes | None) -> str | None:
    return None if raw is None else link_target(raw)


class Node:
    """What RD and RL share: identity, references, materializing, printing."""

    __slots__ = ("__weakref__", "_etcher_uid", "_s")

    _s: Session
    _etcher_uid: str

    def _attach(self, db: Any, uid: str | None, kind: bytes, initial: Any) -> None:
        # Any DB or transactor: what they share is the session they run on.
        session = getattr(db, "_session", None)
        if not isinstance(session, Session):
            raise EtcherTypeError(f"{type(self).__name__}(db, ...) needs an etcher DB, not {db!r}")
        self._s = session
        if uid is not None:
            self._etcher_uid = uid
            return
        # A node made by ``RD(db)``/``RL(db)`` is not linked yet: a pin in its header keeps it
        # alive until it is linked somewhere or this handle is dropped.
        new_uid = session.uids.new(uid_kind(kind == KIND_DICT))
        if initial and kind == KIND_DICT:
            initial = dict(initial)  # a caller's mapping is read here, outside the unit

        def create(g: Graph) -> None:
            g.new_node(new_uid, kind, pinned=True)
            if initial:
                w = Writer(session, g)
                content = g.layout.content(new_uid)
                if kind == KIND_DICT:
                    mapping = {}
                    for seq, (k, v) in enumerate(initial.items()):
                        mapping[encode_key(k, ())] = join_item(seq, w.tag(v, new_uid, (k,)))
                    g.unit.hset_many(content, mapping)
                    g.unit.hset(g.layout.refs(new_uid), SEQ, b"%d" % len(mapping))
                else:
                    g.unit.create_list(content, w.tags(list(initial), new_uid))

        session.mutate(create)
        self._etcher_uid = new_uid
        weakref.finalize(self, session.release_pin, new_uid, os.getpid())

    # --- identity and references -------------------------------------------------
    @property
    def uid(self) -> str:
        """The node's persistent identity (stable for its lifetime, unique in the store)."""
        return self._etcher_uid

    @property
    def db(self) -> Namespace:
        """The database (or transaction view) this handle reads and writes through."""
        return self._s.owner  # type: ignore[no-any-return]

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
            and other._s.store_id == self._s.store_id
            and other._s.prefix == self._s.prefix
        )

    def _graph(self) -> Graph:
        s = self._s
        return Graph(s.layout, s.reader())

    def _alive_if_empty(self, n: int) -> int:
        """Return ``n``; when it is 0, first make sure the node exists (else stale)."""
        if not n:
            self._graph().require(self._etcher_uid)
        return n

    def _content_key(self) -> str:
        return self._s.layout.content(self._etcher_uid)

    def _value(self, raw: bytes) -> Stored:
        """A stored tagged value as returned to users: a scalar, or a handle for a link."""
        # The two commonest tags inline (one call per item of a loop, not two);
        # anything else, or anything malformed, through safe_decode().
        try:
            tag = raw[0]
            if tag == 0x73:  # s
                return raw[1:].decode()
            if tag == 0x69:  # i
                return int(raw[1:])
            if tag == 0x40:  # @: a link, checked as link_target() does
                uid = raw[1:].decode()
                first = uid[:1]
                if len(uid) >= 2 and (first == "D" or first == "L"):
                    node: RD | RL = object.__new__(RD) if first == "D" else object.__new__(RL)
                    node._s = self._s
                    node._etcher_uid = uid
                    return node
        except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
            pass
        decoded = safe_decode(raw)
        if type(decoded) is Link:
            return handle_for(self._s, decoded)
        return decoded  # type: ignore[no-any-return]

    def __call__(self) -> Any:
        """Materialize: a plain, detached Python snapshot of this node and all below it."""
        return self._s.materialize(self._etcher_uid)

    def __repr__(self) -> str:
        """The ``@``-prefixed one-level summary (see :mod:`etcher._summary`)."""
        try:
            return self._summary()
        except StaleHandleError:
            return f"<stale {type(self).__name__} {self._etcher_uid}>"
        except ClosedError:
            return f"<{type(self).__name__} {self._etcher_uid} of a closed DB>"

    def _summary(self) -> str:
        raise NotImplementedError

    def _link_label(self) -> Callable[[str], bytes | None] | None:
        """How a summary reads the ``link_field`` item of a child dict (None: not asked)."""
        s = self._s
        field = s.link_field
        if not field:
            return None
        wanted = encode_key(field)
        return lambda uid: s.reader().hget(s.layout.content(uid), wanted)

    __str__ = __repr__

    __hash__ = None  # type: ignore[assignment]  # mutable containers are unhashable

    def __copy__(self) -> Any:
        return self.copy()  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # A deep copy of persistent data is a detached snapshot: exactly what () gives.
        return self()

    def __reduce__(self) -> Any:
        raise EtcherTypeError(
            f"{type(self).__name__} handles cannot be pickled; materialize with handle() first"
        )


class RD(Node, MutableMapping["Key", "Stored"]):
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

    def __init__(
        self,
        db: Namespace,
        data: Mapping[str, Storable]
        | Mapping[int, Storable]
        | Mapping[Key, Storable]
        | None = None,
        uid: str | None = None,
    ):
        self._attach(db, uid, KIND_DICT, _as_dict(data) if data is not None else None)

    if TYPE_CHECKING:

        def __call__(self) -> dict[Key, Plain]:
            """Materialize: a plain, detached ``dict`` snapshot of this node and all below it."""

    @classmethod
    def fromkeys(cls, db: Namespace, keys: Iterable[Key], value: Storable = None) -> RD:
        """An unlinked RD with ``keys`` all set to ``value`` (like ``dict.fromkeys``)."""
        return cls(db, dict.fromkeys(_as_list(keys), value))

    def _summary(self) -> str:
        return summarize_dict(self._raw_items(), self._link_label())

    # --- reads -----------------------------------------------------------------------
    def _content(self) -> dict[bytes, bytes]:
        """The node's stored items, unordered (``{}`` only for a live empty dict)."""
        s = self._s
        content = s.reader().hgetall(s.layout.content_prefix + self._etcher_uid)
        if not content:
            self._graph().require(self._etcher_uid)
        return content

    def _raw_items(self) -> list[tuple[bytes, bytes]]:
        """``[(stored key, tagged value)]`` in insertion order."""
        return ordered_items(self._content())

    def _decoded_items(self) -> list[tuple[Key, bytes]]:
        """``[(key, tagged value)]`` in insertion order, keys decoded."""
        return decoded_items(self._content())

    def __getitem__(self, key: Key) -> Stored:
        if type(key) is str:
            # The usual key, looked up without lookup_key()'s hashing and type dispatch.
            try:
                field: bytes | None = b"s" + key.encode()
            except UnicodeEncodeError:
                field = None  # a lone surrogate: never stored, so never found
        else:
            field = lookup_key(key)
        if field is None:
            raise EtcherKeyError(key)
        s = self._s
        raw = s.reader().hget(s.layout.content_prefix + self._etcher_uid, field)
        if raw is None:
            self._graph().require(self._etcher_uid)
            raise EtcherKeyError(key)
        # item_value() and the common tags of safe_decode()/handle_for(), inline: one call
        # per level of ``db[k]["a"]["b"]`` instead of five.
        seq, _, value = raw.partition(b"|")
        if seq and value:
            tag = value[0]
            if tag == 0x73:  # s
                try:
                    return value[1:].decode()
                except UnicodeDecodeError:
                    pass  # safe_decode() below raises the precise StoreCorrupt
            elif tag == 0x69:  # i
                try:
                    return int(value[1:])
                except ValueError:
                    pass
            elif tag == 0x40:  # @ (a link)
                try:
                    uid = value[1:].decode()
                except UnicodeDecodeError:
                    uid = ""
                first = uid[:1]
                if len(uid) >= 2 and (first == "D" or first == "L"):
                    node: RD | RL = object.__new__(RD) if first == "D" else object.__new__(RL)
                    node._s = s
                    node._etcher_uid = uid
                    return node
        return self._value(item_value(raw))

    @overload
    def get(self, key: Key, default: None = None) -> Stored: ...
    @overload
    def get(self, key: Key, default: _T) -> Stored | _T: ...
    def get(self, key: Key, default: Any = None) -> Any:
        """``self[key]`` if present, else ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if type(key) is str:
            # The usual key, as in __getitem__: no lookup_key() hashing and dispatch.
            try:
                field = b"s" + key.encode()
            except UnicodeEncodeError:
                return False  # a lone surrogate: never stored
        else:
            looked = lookup_key(key)
            if looked is None:
                return False
            field = looked
        s = self._s
        if s.reader().hget(s.layout.content_prefix + self._etcher_uid, field) is not None:
            return True
        self._graph().require(self._etcher_uid)
        return False

    def __len__(self) -> int:
        s = self._s
        n = s.reader().hlen(s.layout.content_prefix + self._etcher_uid)
        return n if n else self._alive_if_empty(n)

    def __iter__(self) -> Iterator[Key]:
        return iter([key for key, _raw in self._decoded_items()])

    def __reversed__(self) -> Iterator[Key]:
        return iter([key for key, _raw in reversed(self._decoded_items())])

    def keys(self) -> KeysView[Key]:
        """A view of the keys, in insertion order (read in one batch when iterated)."""
        return _RDKeys(self)

    def values(self) -> ValuesView[Stored]:
        """A view of the values (read in one batch when iterated)."""
        return _RDValues(self)

    def items(self) -> ItemsView[Key, Stored]:
        """A view of ``(key, value)`` pairs (read in one batch when iterated)."""
        return _RDItems(self)

    def copy(self) -> dict[Key, Stored]:
        """A shallow plain-dict copy: nested nodes stay handles (use ``rd()`` for a deep copy)."""
        return {key: self._value(raw) for key, raw in self._decoded_items()}

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
    def _set_in(
        self,
        g: Graph,
        w: Writer | None,
        key: Any,
        value: Any,
        guess: bool = False,
        alone: bool = False,
        planned: bool = False,
    ) -> bytes:
        """Store ``value`` under ``key`` (``w``: the operation's writer, made here if None).

        ``guess``: the operation does nothing else, so it may skip reading the item
        and the header where the unit allows (:meth:`Unit.assume_item`). ``alone``:
        it does nothing else, so the item may come with what replacing it unlinks
        (:meth:`Graph.open_unlinking`). ``planned``: a scalar's guess carries an
        unlink plan too (:meth:`ItemGuess.planned`).
        """
        uid = self._etcher_uid
        # encode_key(key), its usual case inline.
        field = b"s" + key.encode() if type(key) is str and key.isascii() else encode_key(key)
        content = g.layout.content_prefix + uid
        # Where the commit can collect a small document the item links, it may: for a
        # container value (a document replaced by another), and for a scalar while
        # ``planned`` (a session's first scalars, and those after a link was met). A
        # scalar's assignment is the hot path and mostly meets a scalar or nothing,
        # where the plan costs ~4 us of client and ~1 us of server time for nothing.
        unlink = (
            g.unlink_plan(uid, field, collected=self._s.item_guess.met_link)
            if guess and g.unit.speculate and (planned or type(value) not in _OWN_EQ)
            else None
        )
        if guess and g.unit.assume_item(
            content,
            field,
            g.layout.refs(uid),
            DEAD,
            SEQ,
            unlink=unlink,
        ):
            if type(value) in _OWN_EQ:
                tagged = encode_scalar(value, (key,))
            else:
                if w is None:
                    w = Writer(self._s, g)
                    # Alone in its unit (a guess): the handles it links are counted unread.
                    w.blind = True
                tagged = w.tag(value, uid, (key,))
            g.unit.hset_item(content, field, tagged, g.layout.refs(uid), SEQ)
            return tagged
        if alone:
            old = g.open_unlinking(uid, field, also=_handles_in(value, self._s))
            seq = split_item(old)[0] if old is not None else g.next_seq(uid)
        else:
            old, seq = g.open_for_set(uid, field)
        if (
            guess
            and not g.unit.speculate  # a retry: the guess was tried
            and old is not None
            and _link_of(item_value(old)) is not None
        ):
            guesses = self._s.item_guess
            if (
                planned
                or type(value) not in _OWN_EQ
                or not g.unit.backend.capabilities.unlink_commits
            ):
                guesses.missed()
            else:
                # A scalar's guess that carried no plan: the next ones will, so no back-off.
                guesses.missed(backoff=False)
                guesses.met_link()
        if type(value) in _OWN_EQ:
            # A plain scalar links nothing: no writer (and its memo) needed.
            tagged = encode_scalar(value, (key,))
        else:
            if w is None:
                w = Writer(self._s, g)
            if old is not None and (gone := _link_of(item_value(old))) is not None:
                g.soon.add(gone)  # its header comes with the value's links, if it has any
            tagged = w.tag(value, uid, (key,))
        g.unit.hset(content, field, b"%d|" % seq + tagged)  # join_item(seq, tagged), inline
        if old is not None:
            child = _link_of(item_value(old))
            if child is not None:
                _read_unlinked(g, child)
                g.remove_ref(child, uid)
        return tagged

    def __setitem__(self, key: Key, value: Storable) -> None:
        uid = self._etcher_uid
        session = self._s
        # Only where the store can check the guess (no extra calls elsewhere: SQLite).
        capabilities = session.backend.capabilities
        if not capabilities.item_writes and not capabilities.unlink_reads:

            def plain(g: Graph) -> None:
                self._set_in(g, None, key, value)
                if g.candidates:  # only a replaced link can leave garbage behind
                    g.collect(alive=(uid,))

            if (
                capabilities.locking_units
                and type(value) in _PLAIN
                and type(key) is str
                and key.isascii()
                and assign_plain(session, uid, key, value, plain)
            ):
                return  # a scalar or a small plain document, without a unit of work
            session.mutate(plain)
            return
        guesses = session.item_guess
        guess = capabilities.item_writes and guesses.allowed()
        alone = capabilities.unlink_reads
        planned = guess and guesses.links != 0 and type(value) in _OWN_EQ and guesses.planned()

        def op(g: Graph) -> None:
            self._set_in(g, None, key, value, guess, alone, planned)
            if g.candidates:  # only a replaced link can leave garbage behind
                g.collect(alive=(uid,))

        session.mutate_guessed(op, guesses, guess)

    @overload  # type: ignore[override]  # refuses at type level what it refuses at run time
    def update(
        self,
        other: StorableMapping,
        /,
        **kwargs: Storable,
    ) -> None: ...
    @overload
    def update(self, other: Iterable[tuple[Key, Storable]], /, **kwargs: Storable) -> None: ...
    @overload
    def update(self, /, **kwargs: Storable) -> None: ...
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
            for i, pair in enumerate(_as_list(other)):
                try:
                    items = list(pair)
                except TypeError:
                    raise EtcherTypeError(
                        f"cannot convert dictionary update sequence element #{i} to a sequence"
                    ) from None
                if len(items) != 2:
                    raise EtcherValueError(
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
            w = Writer(self._s, g)
            for k, v in pairs:
                self._set_in(g, w, k, v)
            g.collect(alive=(uid,))

        self._s.mutate(op)

    def _remove_in(self, g: Graph, field: bytes, raw: bytes) -> Any:
        """Delete one stored item; return its value detached (materialized if a node)."""
        uid = self._etcher_uid
        g.unit.hdel(g.layout.content(uid), field)
        tagged = item_value(raw)
        child = _link_of(tagged)
        if child is None:
            return safe_decode(tagged)
        value = materialize(g, child)
        g.remove_ref(child, uid)
        return value

    def __delitem__(self, key: Key) -> None:
        field = lookup_key(key)
        if field is None:
            raise EtcherKeyError(key)
        uid = self._etcher_uid
        session = self._s
        capabilities = session.backend.capabilities
        # Where the store reads what is unlinked with the item (a small document's
        # delete is then one read and the commit).
        alone = capabilities.unlink_reads
        # Where the commit can check it, a first try guesses the item is a scalar: the
        # delete is then the commit alone (as an assignment guesses, see __setitem__).
        guesses = session.delete_guess
        guess = capabilities.item_writes and guesses.allowed()

        def op(g: Graph) -> None:
            content = g.layout.content(uid)
            unit = g.unit
            # Where the commit can collect a small document the item links, it may; it
            # also answers a missing item (plan.present: ItemMissing, nothing written), so
            # the guess needs no check that the field is there (which a missing key
            # failed: a conflict, a read and a check of the read).
            plan = g.unlink_plan(uid, field, present=True) if guess and unit.speculate else None
            if guess and unit.assume_item(
                content, field, g.layout.refs(uid), DEAD, SEQ, plan is None, plan
            ):
                unit.hdel(content, field)
                return
            if alone:
                old = g.open_unlinking(uid, field, header=False)
            else:
                g.require(uid)
                old = g.unit.hget(content, field)
            if old is None:
                raise EtcherKeyError(key)
            g.unit.hdel(content, field)
            child = _link_of(item_value(old))
            if child is not None:
                if guess and not unit.speculate:  # a retry: the guess was tried
                    guesses.missed()
                _read_unlinked(g, child)
                g.remove_ref(child, uid)
                g.collect(alive=(uid,))

        try:
            session.mutate_guessed(op, guesses, guess)
        except ItemMissing:
            guesses.hit()  # answered by the guess's one round trip
            raise EtcherKeyError(key) from None

    @overload  # type: ignore[override]  # returns the value materialized, not a handle
    def pop(self, key: Key) -> Plain: ...
    @overload
    def pop(self, key: Key, default: _T) -> Plain | _T: ...
    def pop(self, key: Key, default: Any = _NOTHING) -> Any:
        """Remove ``key`` and return its value (a nested node comes back materialized)."""
        field = lookup_key(key)
        if field is None:
            if default is _NOTHING:
                raise EtcherKeyError(key)
            return default
        uid = self._etcher_uid
        session = self._s
        capabilities = session.backend.capabilities
        alone = capabilities.unlink_reads  # as in __delitem__
        # Where the commit can collect a small document itself and answer what it removed
        # (capabilities.unlink_commits), a first try reads nothing: as a delete guesses.
        guesses = session.delete_guess
        guess = capabilities.unlink_commits and capabilities.item_writes and guesses.allowed()
        answers: list[UnlinkOutcome] = []

        def op(g: Graph) -> Any:
            unit = g.unit
            if guess and unit.speculate:
                planned = g.unlink_plan(uid, field, contents=True)
                if planned is not None:
                    plan, learn = planned

                    def took(outcome: UnlinkOutcome) -> None:
                        learn(outcome)
                        answers.append(outcome)

                    content = g.layout.content(uid)
                    refs = g.layout.refs(uid)
                    # Not ``present``: the commit answers the item as it finds it, None
                    # for a missing key, which is then this pop's answer in one round
                    # trip (its hdel removes nothing) instead of a failed check, a read
                    # and a check of the read.
                    if unit.assume_item(content, field, refs, DEAD, SEQ, False, (plan, took)):
                        unit.hdel(content, field)
                        return _POPPED
            if alone:
                old = g.open_unlinking(uid, field, header=False)
            else:
                g.require(uid)
                old = g.unit.hget(g.layout.content(uid), field)
            if guess and not unit.speculate and (old is None or _link_of(item_value(old))):
                guesses.missed()  # the guess was tried: a link it could not collect, or no key
            if old is None:
                if default is _NOTHING:
                    raise EtcherKeyError(key)
                return default
            value = self._remove_in(g, field, old)
            g.collect(alive=(uid,))
            return value

        result = session.mutate_guessed(op, guesses, guess)
        if result is _POPPED:
            if answers[-1].item is None:  # no such key when the commit ran
                if default is _NOTHING:
                    raise EtcherKeyError(key)
                return default
            return _popped(session.layout, answers[-1])
        return result

    def popitem(self) -> tuple[Key, Plain]:  # type: ignore[override]  # materialized value
        """Remove and return the most recently inserted ``(key, value)`` pair (LIFO).

        The first call reads the whole dict and remembers, in this process, the
        order of the items below the one it pops; later calls then cost a few
        point reads each, whatever the size of the dict, for as long as nothing
        new is inserted into it (any insertion, from anywhere, is detected and
        makes the next call read the dict again). ``db.popitem()`` on the
        namespace root reads the root each time.
        """
        uid = self._etcher_uid
        s = self._s
        # The root is re-created (its sequence restarting at 0) when its namespace is
        # deleted, so a stamp could repeat for different contents: it is never remembered.
        hints: OrderHints | None = None if uid == ROOT else s.order_hints()
        known = hints.get(uid) if hints is not None else None

        def op(g: Graph) -> tuple[tuple[Any, Any], int, Any]:
            g.require(uid)
            content = g.layout.content(uid)
            stamp = g.unit.hget(g.layout.refs(uid), SEQ)
            if known is not None and known[0] == stamp:
                # Nothing was inserted since the order was read, so every item still there
                # is among the remembered ones: the newest of those still present is the last.
                order = known[1]
                for j in range(len(order) - 1, -1, -1):
                    field, seq = order[j]
                    raw = g.unit.hget(content, field)
                    if raw is not None and split_item(raw)[0] == seq:
                        value = self._remove_in(g, field, raw)
                        g.collect(alive=(uid,))
                        return (decode_key(field), value), j, None
                raise EtcherKeyError("popitem(): dictionary is empty")
            items = g.unit.hgetall(content)
            if not items:
                raise EtcherKeyError("popitem(): dictionary is empty")
            ranked = sorted((split_item(raw)[0], field) for field, raw in items.items())
            seq, field = ranked[-1]
            value = self._remove_in(g, field, items[field])
            g.collect(alive=(uid,))
            rest = [(f, n) for n, f in ranked[:-1]]
            # The stamp read in this unit: popitem allocates no sequence number, so it is
            # still the dict's stamp when (and only if) this unit commits.
            return (decode_key(field), value), len(rest), (stamp, rest)

        try:
            result, cut, rebuilt = s.mutate(op)
        except KeyError:
            if hints is not None:
                hints.forget(uid)
            raise
        if hints is not None:
            if rebuilt is not None:
                hints.remember(uid, *rebuilt)
            else:
                hints.trim(uid, known, cut)
        return result

    def incr(self, key: Any, amount: int = 1) -> int:
        """Atomically add ``amount`` to the int at ``key``; return the new value.

        A missing key starts at 0 (and is added last, as an assignment would).
        Unlike ``rd[key] += amount`` (a read, then a separate write, so two
        processes can lose each other's updates), the read and the write are
        one unit: concurrent increments from any number of threads and
        processes all count. ``TypeError`` if the stored value is not an
        ``int`` (``bool`` included) or ``amount`` is not an ``int``.
        """
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise EtcherTypeError(f"the increment must be an int, not {type(amount).__name__}")
        field = encode_key(key)
        uid = self._etcher_uid

        def op(g: Graph) -> int:
            g.require(uid)
            content = g.layout.content(uid)
            old = g.unit.hget(content, field)
            if old is None:
                seq, current = g.next_seq(uid), 0
            else:
                seq, raw = split_item(old)
                current = safe_decode(raw)
                if type(current) is not int:
                    held = "a nested node" if type(current) is Link else type(current).__name__
                    raise EtcherTypeError(f"cannot increment {key!r}: it holds {held}, not an int")
            new: int = current + amount
            g.unit.hset(content, field, join_item(seq, Writer(self._s, g).tag(new, uid, (key,))))
            return new

        return self._s.mutate(op)

    def setdefault(self, key: Key, default: Storable = None) -> Stored:  # type: ignore[override]
        """``self[key]`` if present; else store ``default`` and return it (a handle if a node)."""
        uid = self._etcher_uid
        field = encode_key(key)

        def op(g: Graph) -> bytes:
            g.require(uid)
            old = g.unit.hget(g.layout.content(uid), field)
            if old is not None:
                return item_value(old)
            tagged = self._set_in(g, Writer(self._s, g), key, default)
            g.collect(alive=(uid,))
            return tagged

        return self._value(self._s.mutate(op))

    def clear(self) -> None:
        """Remove every item in one atomic write (unreachable children are collected)."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            content = g.layout.content(uid)
            items = g.unit.hgetall(content)
            g.unit.drop_hash(content)
            for raw in items.values():
                child = _link_of(item_value(raw))
                if child is not None:
                    g.remove_ref(child, uid)
            g.collect(alive=(uid,))

        self._s.mutate(op)


class _RDKeys(KeysView["Key"]):
    _mapping: RD

    def __reversed__(self) -> Iterator[Key]:
        return reversed(self._mapping)

    def __repr__(self) -> str:
        return f"rd_keys({list(self)!r})"


class _RDValues(ValuesView["Stored"]):
    _mapping: RD

    def __iter__(self) -> Iterator[Stored]:
        rd = self._mapping
        return iter([rd._value(raw) for _key, raw in rd._decoded_items()])

    def __reversed__(self) -> Iterator[Any]:
        return iter(list(self)[::-1])

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)

    def __repr__(self) -> str:
        return f"rd_values({list(self)!r})"


class _RDItems(ItemsView["Key", "Stored"]):
    _mapping: RD

    def __iter__(self) -> Iterator[tuple[Key, Stored]]:
        rd = self._mapping
        return iter([(key, rd._value(raw)) for key, raw in rd._decoded_items()])

    def __reversed__(self) -> Iterator[tuple[Key, Stored]]:
        return iter(list(self)[::-1])

    def __repr__(self) -> str:
        return f"rd_items({list(self)!r})"


class RL(Node, MutableSequence["Stored"]):
    """A persistent list. Behaves like ``list``: indexing, slices, and every list method.

    Appending or popping at either end costs O(1); inserting or deleting in
    the middle moves only the shorter side; ``rl[i]`` is a point lookup.

    >>> tags = db["person"]["tags"]                 # doctest: +SKIP
    >>> tags.append("c"); tags[-1]
    'c'
    """

    __slots__ = ()

    def __init__(
        self, db: Namespace, data: Iterable[Storable] | None = None, uid: str | None = None
    ):
        self._attach(db, uid, KIND_LIST, _as_list(data) if data is not None else None)

    if TYPE_CHECKING:

        def __call__(self) -> list[Plain]:
            """Materialize: a plain, detached ``list`` snapshot of this node and all below it."""

    def _summary(self) -> str:
        return summarize_list(self._raws(), self._link_label())

    # --- reads -----------------------------------------------------------------------
    def _raws(self) -> list[bytes]:
        raws = self._s.reader().lrange(self._content_key(), 0, -1)
        self._alive_if_empty(len(raws))
        return raws

    def __len__(self) -> int:
        s = self._s
        n = s.reader().llen(s.layout.content_prefix + self._etcher_uid)
        return n if n else self._alive_if_empty(n)

    @overload
    def __getitem__(self, index: SupportsIndex) -> Stored: ...
    @overload
    def __getitem__(self, index: slice) -> list[Stored]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Stored | list[Stored]:
        if isinstance(index, slice):
            raws = self._raws()  # a stale handle says so before a bad slice does
            _check_slice(index)
            return [self._value(raw) for raw in raws[index]]
        index = index if type(index) is int else _as_index(index)
        # Beyond 64 bits no store can hold the index; it is simply out of range.
        s = self._s
        raw = (
            None
            if abs(index) >= 1 << 62
            else s.reader().lindex(s.layout.content_prefix + self._etcher_uid, index)
        )
        if raw is None:
            self._graph().require(self._etcher_uid)
            raise EtcherIndexError("list index out of range")
        return self._value(raw)

    def __iter__(self) -> Iterator[Stored]:
        """Iterate by position, as a ``list`` iterator does: live, not over a snapshot.

        Items appended during the loop are visited; removing earlier items
        shifts later ones under the iterator (it may skip one, as with a list).
        Items are read in batches (growing from 64 to 4096 per round trip),
        and the loop ends at the first position past the end of the list.
        """
        uid = self._etcher_uid
        key = self._content_key()
        position = 0
        batch = _ITER_FIRST_BATCH
        while True:
            raws = self._s.reader().lrange(key, position, position + batch - 1)
            if not raws:
                if not position:
                    self._graph().require(uid)  # an empty list, or a collected node?
                return
            position += len(raws)
            for raw in raws:
                yield self._value(raw)
            batch = min(batch * 2, _ITER_MAX_BATCH)

    def _snapshot_items(self) -> list[Any]:
        """Every item (nested nodes as handles) from one read."""
        return [self._value(raw) for raw in self._raws()]

    def __reversed__(self) -> Iterator[Stored]:
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
        return deep_equal(handle_for(self._s, child)(), value)

    def __contains__(self, value: object) -> bool:
        return any(self._matches(raw, value) for raw in self._raws())

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of the first item equal to ``value`` (``ValueError`` if absent)."""
        raws = self._raws()
        _check_slice(slice(start, stop))
        lo, hi, _ = slice(start, stop).indices(len(raws))
        for i in range(lo, hi):
            if self._matches(raws[i], value):
                return i
        raise EtcherValueError(f"{value!r} is not in list")

    def count(self, value: Any) -> int:
        """How many items equal ``value``."""
        return sum(1 for raw in self._raws() if self._matches(raw, value))

    def copy(self) -> list[Stored]:
        """A shallow plain-list copy: nested nodes stay handles (use ``rl()`` for a deep copy)."""
        return self._snapshot_items()

    def __eq__(self, other: object) -> bool:
        # As ``list``: equal only to a list (or another RL) with equal items, never to a
        # tuple or a range; other types get their say through NotImplemented.
        if isinstance(other, RL):
            return self._same_node(other) or deep_equal(self(), other())
        if not isinstance(other, list):
            return NotImplemented
        return deep_equal(self(), other)

    def _ordered(self, other: object) -> tuple[list[Any], list[Any]] | None:
        """Both sides as plain lists, or None when ``list`` would not order against ``other``."""
        if isinstance(other, RL):
            return self(), other()
        if isinstance(other, list):
            return self(), other
        return None

    def __lt__(self, other: object) -> bool:
        pair = self._ordered(other)
        return NotImplemented if pair is None else pair[0] < pair[1]

    def __le__(self, other: object) -> bool:
        pair = self._ordered(other)
        return NotImplemented if pair is None else pair[0] <= pair[1]

    def __gt__(self, other: object) -> bool:
        pair = self._ordered(other)
        return NotImplemented if pair is None else pair[0] > pair[1]

    def __ge__(self, other: object) -> bool:
        pair = self._ordered(other)
        return NotImplemented if pair is None else pair[0] >= pair[1]

    def __add__(self, other: Any) -> list[Any]:
        if not isinstance(other, (list, RL)):
            return NotImplemented
        return self._snapshot_items() + (other.copy() if isinstance(other, RL) else other)

    def __radd__(self, other: Any) -> list[Any]:
        if not isinstance(other, list):
            return NotImplemented
        return other + self._snapshot_items()

    def __mul__(self, n: Any) -> list[Any]:
        if not isinstance(n, int):
            return NotImplemented
        return self._snapshot_items() * n

    __rmul__ = __mul__

    def __iadd__(self, other: Iterable[Storable]) -> RL:  # type: ignore[misc]
        self.extend(other)
        return self

    def __imul__(self, n: Any) -> RL:
        if not isinstance(n, int):
            return NotImplemented
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            raws = g.unit.lrange(key, 0, -1)
            links = [c for c in map(_link_of, raws) if c is not None]
            if n <= 0:
                g.unit.list_op(key, "delete")
                for child in links:
                    g.remove_ref(child, uid)
                g.collect(alive=(uid,))
            elif n > 1 and raws:
                g.unit.list_op(key, "rpush", *(raws * (n - 1)))
                for child in links:
                    g.add_ref(child, uid, n - 1)

        self._s.mutate(op)
        return self

    # --- writes ----------------------------------------------------------------------
    def _rewrite(self, g: Graph, removed: list[bytes], new: list[bytes]) -> None:
        """Replace the whole list with ``new``; drop the links of the ``removed`` items.

        Tags in ``new`` are either items kept from the old list (their links
        stay counted) or fresh ones a Writer already counted.
        """
        uid = self._etcher_uid
        key = g.layout.content(uid)
        g.unit.list_op(key, "delete")
        if new:
            g.unit.list_op(key, "rpush", *new)
        for child in map(_link_of, removed):
            if child is not None:
                g.remove_ref(child, uid)
        g.collect(alive=(uid,))

    @overload
    def __setitem__(self, index: SupportsIndex, value: Storable) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[Storable]) -> None: ...
    def __setitem__(self, index: Any, value: Any) -> None:
        uid = self._etcher_uid
        if isinstance(index, slice):
            values = _as_list(value)

            def slice_op(g: Graph) -> None:
                g.require(uid)
                _check_slice(index)
                old = g.unit.lrange(g.layout.content(uid), 0, -1)
                new = list(old)
                removed = old[index]
                if index.step not in (None, 1) and len(removed) != len(values):
                    raise EtcherValueError(
                        f"attempt to assign sequence of size {len(values)} "
                        f"to extended slice of size {len(removed)}"
                    )
                new[index] = Writer(self._s, g).tags(values, uid)  # list raises as list would
                self._rewrite(g, removed, new)

            self._s.mutate(slice_op)
            return
        index = _as_index(index)

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            n = g.unit.llen(key)
            if not -n <= index < n:
                raise EtcherIndexError("list assignment index out of range")
            i = index + n if index < 0 else index
            old = g.unit.lindex(key, i)
            tagged = Writer(self._s, g).tag(value, uid, (i,))
            g.unit.list_op(key, "lset", i, tagged)
            child = _link_of(old)
            if child is not None:
                g.remove_ref(child, uid)
                g.collect(alive=(uid,))

        self._s.mutate(op)

    @overload
    def __delitem__(self, index: SupportsIndex) -> None: ...
    @overload
    def __delitem__(self, index: slice) -> None: ...
    def __delitem__(self, index: Any) -> None:
        uid = self._etcher_uid
        if isinstance(index, slice):

            def slice_op(g: Graph) -> None:
                g.require(uid)
                _check_slice(index)
                old = g.unit.lrange(g.layout.content(uid), 0, -1)
                new = list(old)
                removed = old[index]
                del new[index]
                if removed:
                    self._rewrite(g, removed, new)

            self._s.mutate(slice_op)
            return
        index = _as_index(index)
        session = self._s
        guesses = session.delete_guess
        # Where the commit can remove the item and collect what it links
        # (capabilities.unlink_commits), a first try reads nothing: as a dict's delete.
        guess = session.backend.capabilities.unlink_commits and guesses.allowed()
        tried: list[bool] = []

        def op(g: Graph) -> None:
            if guess and self._remove_planned(g, index, False, tried, None):
                return
            g.require(uid)
            n = g.unit.llen(g.layout.content(uid))
            if not -n <= index < n:
                raise EtcherIndexError("list assignment index out of range")
            self._pop_in(g, index + n if index < 0 else index, n, materialize_value=False)

        try:
            session.mutate_guessed(op, guesses, guess)
        except ItemMissing:  # out of range when the commit ran, nothing written
            guesses.hit()
            raise EtcherIndexError("list assignment index out of range") from None

    def _remove_planned(
        self,
        g: Graph,
        index: int,
        contents: bool,
        tried: list[bool],
        answers: list[UnlinkOutcome] | None,
    ) -> bool:
        """Plan item ``index``'s removal as the commit alone (:meth:`Unit.assume_list_item`).

        True when planned: the commit reads the item, removes it and collects what
        it links (``contents``: and answers them to ``answers``). On a retry after
        such a plan (the commit refused: a shared or big subtree, a position outside
        the list, a long side to move), the delete streak counts a miss and the
        caller reads as usual. A position outside the list when the commit runs raises
        :class:`ItemMissing` from the commit, nothing written (``plan.present``).
        """
        unit = g.unit
        if not unit.speculate:
            if tried:
                tried.clear()
                self._s.delete_guess.missed()
            return False
        uid = self._etcher_uid
        planned = g.unlink_plan(uid, b"", contents, index, present=True)
        if planned is None:
            return False
        plan, learn = planned
        unlink: tuple[UnlinkPlan, Callable[[UnlinkOutcome], None]] = planned
        if answers is not None:

            def took(outcome: UnlinkOutcome) -> None:
                learn(outcome)
                answers.append(outcome)

            unlink = (plan, took)
        if not unit.assume_list_item(g.layout.refs(uid), DEAD, unlink):
            return False
        tried.append(True)
        return True

    def _pop_in(self, g: Graph, i: int, n: int, materialize_value: bool = True) -> Any:
        """Remove item ``i`` of ``n``, moving the shorter side; return its detached value."""
        uid = self._etcher_uid
        key = g.layout.content_prefix + uid  # layout.content(uid), inline
        if i == n - 1:
            raw = g.unit.lindex(key, -1)
            g.unit.list_op(key, "rpop")
        elif i == 0:
            raw = g.unit.lindex(key, 0)
            g.unit.list_op(key, "lpop")
        elif i < n // 2:
            head = g.unit.lrange(key, 0, i)
            if len(head) != i + 1:
                # Another writer changed the list between our two reads (Redis reads are
                # watched, not locked): the unit's commit would be refused, so retry now.
                raise WatchError("the list changed while an item was being popped")
            raw = head[-1]
            g.unit.list_op(key, "ltrim", i + 1, -1)
            g.unit.list_op(key, "lpush", *reversed(head[:-1]))
        else:
            tail = g.unit.lrange(key, i, -1)
            if len(tail) != n - i:
                raise WatchError("the list changed while an item was being popped")
            raw = tail[0]
            g.unit.list_op(key, "ltrim", 0, i - 1)
            g.unit.list_op(key, "rpush", *tail[1:])
        if raw is None:
            raise WatchError("the list changed while an item was being popped")
        if raw[:1] != b"@":  # a scalar (link_target()'s first test, inline: once per pop)
            return safe_decode(raw)
        child = link_target(raw)
        if child is None:
            return safe_decode(raw)
        value = materialize(g, child) if materialize_value else None
        g.remove_ref(child, uid)
        g.collect(alive=(uid,))
        return value

    def pop(self, index: SupportsIndex = -1) -> Plain:  # type: ignore[override]  # materialized
        """Remove and return item ``index`` (default last); nested nodes come back materialized."""
        if type(index) is not int:
            index = _as_index(index)
        uid = self._etcher_uid
        session = self._s
        guesses = session.delete_guess
        # Where the commit can remove the item, collect what it links and answer it
        # (capabilities.unlink_commits), a first try reads nothing: as a dict's pop.
        guess = session.backend.capabilities.unlink_commits and guesses.allowed()
        tried: list[bool] = []
        answers: list[UnlinkOutcome] = []

        def op(g: Graph) -> Any:
            if guess and self._remove_planned(g, index, True, tried, answers):
                return _POPPED
            g.require(uid)
            n = g.unit.llen(g.layout.content_prefix + uid)  # layout.content(uid), inline
            if not n:
                raise EtcherIndexError("pop from empty list")
            if not -n <= index < n:
                raise EtcherIndexError("pop index out of range")
            return self._pop_in(g, index + n if index < 0 else index, n)

        if (index == 0 or index == -1) and session.list_ends:
            # At an end: one held scope where the backend allows it (etcher._listends);
            # op finishes in that scope what it cannot (a popped link, an empty list).
            value = session.list_end(uid, POP_FIRST if index == 0 else POP_LAST, None, op)
            if value is not NOT_DONE:
                return value  # type: ignore[no-any-return]
        try:
            result = session.mutate_guessed(op, guesses, guess)
        except ItemMissing:  # out of range when the commit ran, nothing written
            guesses.hit()
            if index == 0 or index == -1:  # only an empty list has neither
                raise EtcherIndexError("pop from empty list") from None
            # Empty or too short: which one (the message differs), the reading path says.
            guess = False
            result = session.mutate(op)
        if result is _POPPED:
            return _popped(session.layout, answers[-1], listed=True)  # type: ignore[no-any-return]
        return result  # type: ignore[no-any-return]

    def insert(self, index: SupportsIndex, value: Storable) -> None:
        """Insert ``value`` before position ``index`` (clipped to the list, as ``list.insert``)."""
        if type(index) is not int:
            index = _as_index(index)
        uid = self._etcher_uid
        if index == 0 and type(value) in _OWN_EQ and self._s.list_ends:
            # A scalar in front: one held scope where the backend allows it (etcher._listends).
            if type(value) is int and -_SMALL < value < _SMALL:
                tagged = b"i%d" % value  # encode_scalar(), inline for the commonest item
            else:
                tagged = encode_scalar(value, (0,))
            if self._s.list_end(uid, PREPEND, tagged) is not NOT_DONE:
                return

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content_prefix + uid  # layout.content(uid), inline
            n = g.unit.llen(key)
            i = max(0, index + n) if index < 0 else min(index, n)
            if type(value) is int and -_SMALL < value < _SMALL:
                tagged = b"i%d" % value  # encode_scalar(), inline for the commonest item
            elif type(value) in _OWN_EQ:
                tagged = encode_scalar(value, (i,))  # a plain scalar: no writer needed
            else:
                tagged = Writer(self._s, g).tag(value, uid, (i,))
            if i == n:
                g.unit.list_op(key, "rpush", tagged)
            elif i == 0:
                g.unit.list_op(key, "lpush", tagged)
            elif i <= n // 2:
                head = g.unit.lrange(key, 0, i - 1)
                g.unit.list_op(key, "ltrim", i, -1)
                g.unit.list_op(key, "lpush", tagged, *reversed(head))
            else:
                tail = g.unit.lrange(key, i, -1)
                g.unit.list_op(key, "ltrim", 0, i - 1)
                g.unit.list_op(key, "rpush", tagged, *tail)

        self._s.mutate(op)

    def append(self, value: Storable) -> None:
        """Add ``value`` at the end (O(1))."""
        uid = self._etcher_uid
        # A plain scalar links nothing: encoded here, once, with no writer (and its memo).
        if type(value) is int and -_SMALL < value < _SMALL:
            scalar: bytes | None = b"i%d" % value  # encode_scalar(), inline: the commonest
        elif type(value) in _OWN_EQ:
            scalar = encode_scalar(value, (-1,))
        else:
            scalar = None
        if (
            scalar is not None
            and self._s.list_ends
            # One held scope where the backend allows it (etcher._listends).
            and self._s.list_end(uid, APPEND, scalar) is not NOT_DONE
        ):
            return

        def op(g: Graph) -> None:
            g.require(uid)
            if scalar is not None:
                tagged = scalar
            else:
                w = Writer(self._s, g)
                # Its only other write is the push: the handles it links are counted
                # unread where the commit checks them (Graph.link_many).
                w.blind = True
                tagged = w.tag(value, uid, (-1,))
            # layout.content(uid), inline: once per append
            g.unit.list_op(g.layout.content_prefix + uid, "rpush", tagged)

        self._s.mutate(op)

    def extend(self, values: Iterable[Storable]) -> None:
        """Append every item of ``values`` in one atomic write."""
        items = _as_list(values)
        if not items:
            self._graph().require(self._etcher_uid, writing=True)
            return
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            tags = Writer(self._s, g).tags(items, uid)
            g.unit.list_op(key, "rpush", *tags)

        self._s.mutate(op)

    def remove(self, value: Any) -> None:
        """Remove the first item equal to ``value`` (``ValueError`` if absent).

        When comparing with ``value`` may run code of yours (its type is not a
        plain ``str``/``int``/``float``/``bool``/``None`` or a handle), the
        comparisons run on a snapshot, outside any unit of work, once per item
        (a retry after a concurrent change compares only items not seen
        before): your ``__eq__`` may even write to the store.
        """
        if type(value) not in _OWN_EQ and type(value) not in (RD, RL):
            self._remove_comparing_outside(value)
            return
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            raws = g.unit.lrange(g.layout.content(uid), 0, -1)
            for i, raw in enumerate(raws):
                if self._matches_in(g, raw, value):
                    self._pop_in(g, i, len(raws), materialize_value=False)
                    return
            raise EtcherValueError("list.remove(x): x not in list")

        self._s.mutate(op)

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
            old = g.unit.lrange(g.layout.content(uid), 0, -1)
            if old:
                self._rewrite(g, old, [])

        self._s.mutate(op)

    def reverse(self) -> None:
        """Reverse the items in place (one atomic write)."""
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            key = g.layout.content(uid)
            raws = g.unit.lrange(key, 0, -1)
            if len(raws) > 1:
                g.unit.list_op(key, "delete")
                g.unit.list_op(key, "rpush", *reversed(raws))

        self._s.mutate(op)

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        """Sort in place, stably, comparing materialized values (as ``list.sort`` would).

        ``key`` is called once per item on a snapshot, outside any unit of
        work, and never again (your key function may even write to the store);
        if the list changed before the sorted order could be stored, nothing is
        stored and ``ValueError("list modified during sort")`` is raised, as
        ``list.sort`` does.
        """
        if key is not None:
            self._sort_by_key_outside(key, reverse)
            return
        uid = self._etcher_uid

        def op(g: Graph) -> None:
            g.require(uid)
            content = g.layout.content(uid)
            raws = g.unit.lrange(content, 0, -1)
            if len(raws) < 2:
                return
            values = []
            for raw in raws:
                child = _link_of(raw)
                values.append(safe_decode(raw) if child is None else materialize(g, child))
            try:
                order = sorted(range(len(raws)), key=values.__getitem__, reverse=reverse)
            except TypeError as exc:  # items that do not compare ('<' between str and int)
                raise EtcherTypeError(str(exc)) from None
            g.unit.list_op(content, "delete")
            g.unit.list_op(content, "rpush", *[raws[i] for i in order])

        self._s.mutate(op)

    # --- calling code that is not etcher's ----------------------------------------------
    # A unit of work may be retried (Redis-like stores) and, on SQLite, holds the write
    # transaction: code of the caller's that runs inside one would run again on every retry,
    # or have its own writes join (and die with) the operation's. So a sort key or a foreign
    # __eq__ runs between two units: the first reads a snapshot, the second checks that the
    # list still holds exactly the items read and only then writes.

    def _snapshot_raw_items(self, with_nodes: bool) -> tuple[list[bytes], dict[str, Any]]:
        """The list's raw items and (``with_nodes``) its child nodes materialized, at one moment."""
        uid = self._etcher_uid

        def read(g: Graph) -> tuple[list[bytes], dict[str, Any]]:
            g.require(uid)
            raws = g.reader.lrange(g.layout.content(uid), 0, -1)
            nodes: dict[str, Any] = {}
            if with_nodes:
                for child in map(_link_of, raws):
                    if child is not None and child not in nodes:
                        nodes[child] = materialize(g, child)
            return raws, nodes

        return self._s.snapshot(read)

    def _apply_if_unchanged(self, raws: list[bytes], write: Callable[[Graph], None]) -> bool:
        """Run ``write`` in a unit if the list still holds exactly ``raws``; say whether it did."""
        uid = self._etcher_uid

        def op(g: Graph) -> bool:
            g.require(uid)
            if g.unit.lrange(g.layout.content(uid), 0, -1) != raws:
                return False
            write(g)
            return True

        return self._s.mutate(op)

    def _sort_by_key_outside(self, key: Callable[[Any], Any], reverse: bool) -> None:
        raws, nodes = self._snapshot_raw_items(with_nodes=True)
        values = [safe_decode(raw) if (c := _link_of(raw)) is None else nodes[c] for raw in raws]
        keys = [key(v) for v in values]
        order = sorted(range(len(raws)), key=keys.__getitem__, reverse=reverse)
        if not raws:
            return
        content = self._content_key()

        def write(g: Graph) -> None:
            if order != list(range(len(order))):
                g.unit.list_op(content, "delete")
                g.unit.list_op(content, "rpush", *[raws[i] for i in order])

        if not self._apply_if_unchanged(raws, write):
            raise EtcherValueError("list modified during sort")

    def _remove_comparing_outside(self, value: Any) -> None:
        # What each comparison answered, so that a retry after a concurrent change asks
        # again only about items it has not seen: scalars by their stored form, nodes by
        # their materialized content. (The first pass compares every item, as list does.)
        scalars: dict[bytes, bool] = {}
        nodes_seen: dict[str, tuple[Any, bool]] = {}
        with_nodes = isinstance(value, (Mapping, list)) and not isinstance(value, Node)
        retrying = [False]

        def matches(raw: bytes, nodes: dict[str, Any]) -> bool:
            child = _link_of(raw)
            if child is None:
                hit = scalars.get(raw) if retrying[0] else None
                if hit is None:
                    hit = scalars[raw] = not isinstance(value, (Mapping, list, Node)) and bool(
                        safe_decode(raw) == value
                    )
                return hit
            if isinstance(value, Node):
                return value._etcher_uid == child
            if not with_nodes:
                return False
            data = nodes[child]
            before = nodes_seen.get(child) if retrying[0] else None
            if before is not None and deep_equal(before[0], data):
                return before[1]
            hit = deep_equal(data, value)
            nodes_seen[child] = (data, hit)
            return hit

        def attempt() -> None:
            raws, nodes = self._snapshot_raw_items(with_nodes)
            i = next((i for i, raw in enumerate(raws) if matches(raw, nodes)), -1)
            if i < 0:
                raise EtcherValueError("list.remove(x): x not in list")
            n = len(raws)

            def write(g: Graph) -> None:
                self._pop_in(g, i, n, materialize_value=False)

            if not self._apply_if_unchanged(raws, write):
                retrying[0] = True
                raise WatchError("the list changed while its items were compared")

        self._s.retry.call(attempt)


_ITER_FIRST_BATCH = 64
_ITER_MAX_BATCH = 4096


def _check_slice(index: slice) -> None:
    """Refuse a slice ``list`` would refuse, with the same message, as an etcher error."""
    try:
        index.indices(0)
    except TypeError as exc:
        raise EtcherTypeError(str(exc)) from None
    except ValueError as exc:
        raise EtcherValueError(str(exc)) from None


def _as_list(value: Any) -> list[Any]:
    """``list(value)`` (an RL's shallow copy), refusing a non-iterable as an etcher error."""
    if isinstance(value, RL):
        return value.copy()
    if not hasattr(value, "__iter__") and not hasattr(value, "__getitem__"):
        raise EtcherTypeError(f"{type(value).__name__!r} object is not iterable")
    return list(value)


def _as_dict(value: Any) -> dict[Any, Any]:
    """``dict(value)``, refusing what ``dict`` refuses as an etcher error."""
    if isinstance(value, Mapping):
        return dict(value)
    pairs = []
    for i, pair in enumerate(_as_list(value)):
        items = _as_list(pair) if not isinstance(pair, (str, bytes)) else list(pair)
        if len(items) != 2:
            raise EtcherValueError(
                f"dictionary update sequence element #{i} has length {len(items)}; 2 is required"
            )
        pairs.append((items[0], items[1]))
    return dict(pairs)


def _as_index(index: Any) -> int:
    try:
        return index.__index__()  # type: ignore[no-any-return]
    except AttributeError:
        raise EtcherTypeError(
            f"list indices must be integers or slices, not {type(index).__name__}"
        ) from None


def handle_for(session: Session, uid: str) -> RD | RL:
    """A handle of the right class for node ``uid`` on ``session`` (no store access)."""
    node: RD | RL = object.__new__(RD) if is_dict(uid) else object.__new__(RL)
    node._s = session
    node._etcher_uid = uid
    return node


__all__ = ["RD", "RL", "Node", "OrderHints", "handle_for"]
