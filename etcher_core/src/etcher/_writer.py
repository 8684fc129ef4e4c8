"""Turning plain Python values into stored nodes, shape and all.

A dict or list object met twice in one write becomes one node with two
links; a structure that contains itself becomes a stored cycle; an existing
RD/RL is linked, never copied. The walk is an explicit stack, so depth is
limited only by memory. Validation happens while writing into the unit's
buffer: a bad value anywhere raises before anything reaches the store.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from etcher._codec import _DECIMAL_LIMIT as _SMALL
from etcher._codec import _FALSE, _NONE, _TRUE, encode_key, encode_link, encode_scalar, format_path
from etcher._codec import _LINK_PREFIX as _LINK
from etcher._graph import KIND_DICT, KIND_LIST, Graph
from etcher._layout import DEAD, DICT_UID, KIND, LIST_UID, SEQ
from etcher._unit import WHOLE_HASH_FIELDS as _WHOLE_FIELDS
from etcher._unit import CallerCode, Unit
from etcher.errors import ForeignNodeError

if TYPE_CHECKING:
    from etcher._session import Session


#: While set, called with the number of nodes a Writer has just written: a long import's
#: "storing" progress bar counts with it (see :func:`etcher._jsonio.import_json`).
nodes_written: ContextVar[Callable[[int], None] | None] = ContextVar(
    "etcher_nodes_written", default=None
)

_PROGRESS_STEP = 256

_FIELD_KEYS: dict[str, bytes] = {}
"""Encoded dict keys (``"name"`` -> ``b"sname"``): documents written one after the other
mostly repeat their keys, and a lookup is cheaper than encoding one again."""

_FIELD_KEYS_KEPT = 4096
"""At most this many keys are kept (keys that never repeat, ids say, are encoded each time)."""


class _At(tuple[Any, Any]):
    """The path of a value inside the written one, ``_At((parent's path, key))``.

    Paths are needed only for error messages; building each as a tuple would
    copy the whole path once per level, quadratic in the depth of the value. A
    tuple subclass with no ``__init__`` of its own: making one is a C call, not
    a Python one (two per small document).
    """

    __slots__ = ()


Path = tuple[Any, ...] | _At


def _flat(path: Path) -> tuple[Any, ...]:
    """The path as a tuple of keys and indices, from the top."""
    keys = []
    while type(path) is _At:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return (*path, *keys)


def _key(k: Any, path: Path) -> bytes:
    """The encoded dict key ``k``; an error names its path."""
    try:
        return encode_key(k)
    except (TypeError, ValueError):
        return encode_key(k, _flat(path))  # raises again, with the path


def _scalar(value: Any, path: Path) -> bytes:
    """The encoded scalar ``value``; an error names its path."""
    try:
        return encode_scalar(value)
    except (TypeError, ValueError):
        return encode_scalar(value, _flat(path))  # raises again, with the path


class Writer:
    """Writes values into one unit; one instance per public operation (its memo is per write)."""

    __slots__ = (
        "blind",
        "g",
        "keepalive",
        "links",
        "memo",
        "new",
        "new_uid",
        "progress",
        "refs_prefix",
        "session",
        "stack",
        "unit",
    )

    def __init__(self, session: Session, graph: Graph) -> None:
        self.session = session
        self.g = graph
        # Looked up once per write rather than once per node.
        self.unit = graph.unit
        self.refs_prefix = graph.layout.refs_prefix
        self.new_uid = session.uids.new
        self.memo: dict[int, str] = {}
        # The new nodes' hashes (headers and dict contents) not yet given to the unit:
        # registered together (Unit.create_hashes), before anything reads the unit.
        self.new: dict[str, dict[bytes, bytes]] = {}
        self.keepalive: list[Any] = []
        self.stack: list[tuple[Any, str, Path]] = []
        # Links to existing nodes (handles), checked and counted together once the
        # value is walked: one batched read for all of them instead of one each.
        self.links: list[tuple[str, str]] = []
        # The unit's only other write is a guessed item: handles' counts may be raised
        # unread (Graph.link_many).
        self.blind = False
        self.progress = nodes_written.get()

    def tag(self, value: Any, parent: str, path: tuple[Any, ...] = ()) -> bytes:
        """The stored form of ``value`` as a child of node ``parent``; writes any new nodes."""
        out = self._tag(value, parent, path)
        self._drain()
        return out

    def tags(self, values: list[Any], parent: str, path: tuple[Any, ...] = ()) -> list[bytes]:
        """:meth:`tag` for several values (list items), sharing one memo."""
        out: list[bytes] = []
        append = out.append
        tag = self._tag
        for i, v in enumerate(values):
            # The common scalars inline, as in _drain (rl.extend of a million ints).
            cls = type(v)
            if cls is int and -_SMALL < v < _SMALL:
                append(b"i%d" % v)
            elif cls is str and v.isascii():
                append(b"s" + v.encode())
            else:
                append(tag(v, parent, _At((path, i))))
        self._drain()
        return out

    def _tag(self, value: Any, parent: str, path: Path) -> bytes:
        cls = type(value)
        if cls is str:
            try:
                return b"s" + str.encode(value)
            except UnicodeEncodeError:
                return encode_scalar(value, _flat(path))  # raises with the path
        if cls is dict or cls is list:
            return self._container(value, cls is dict, parent, path)
        # Looked up on the class: an instance __getattr__ is caller code.
        if getattr(cls, "_etcher_uid", None) is not None:
            return self._link_handle(value, value._etcher_uid, parent, path)
        if isinstance(value, (dict, list)):
            return self._subclass(value, parent, path)
        return _scalar(value, path)

    def _subclass(self, value: Any, parent: str, path: Path) -> bytes:
        """A dict or list subclass: stored from a plain copy made outside the unit.

        Its ``items()``/``__iter__`` are caller code, which must not run inside
        a unit (it could be retried, or write through the unit's transaction).
        """
        known = self.g.unit.prepared.get(id(value))
        if known is None:
            prepared = self.g.unit.prepared
            raise CallerCode(lambda: _prepare_plain(value, prepared))
        plain = known[1]
        return self._container(plain, type(plain) is dict, parent, path)

    def _container(self, value: Any, dict_node: bool, parent: str, path: Path) -> bytes:
        uid = self.memo.get(id(value))
        if uid is None:
            uid = self.new_uid(DICT_UID if dict_node else LIST_UID)
            self.memo[id(value)] = uid
            self.keepalive.append(value)
            # A fresh node's first link goes straight into the header it is created with:
            # it cannot be pinned or pending yet, so add_ref's checks (and reads) are moot.
            self.new[self.refs_prefix + uid] = (
                {KIND: KIND_DICT, SEQ: b"%d" % len(value), parent.encode(): b"1"}
                if dict_node
                else {KIND: KIND_LIST, parent.encode(): b"1"}
            )
            self.stack.append((value, uid, path))
            return _LINK + uid.encode()  # encode_link(uid), inline: once per new node
        if self.new:  # add_ref reads the header through the unit: it must be there
            self.unit.create_hashes(self.new)
            self.new.clear()  # (not a new dict: _drain holds this one)
        self.g.add_ref(uid, parent)
        return encode_link(uid)

    def _link_handle(self, handle: Any, uid: str, parent: str, path: Path) -> bytes:
        other, mine = handle._s, self.session
        if other.store_id != mine.store_id or other.prefix != mine.prefix:
            raise ForeignNodeError(
                f"{format_path(_flat(path))} is a node of another database or namespace "
                f"({other.prefix!r}); links never cross namespaces. "
                "Assign a materialized copy instead: value()"
            )
        self.links.append((uid, parent))
        return encode_link(uid)

    def _drain(self) -> None:
        content_prefix = self.g.layout.content_prefix
        refs_prefix = self.refs_prefix
        stack = self.stack
        push = stack.append
        u = self.unit
        new = self.new
        field_keys = _FIELD_KEYS
        progress = self.progress
        tag = self._tag
        memo = self.memo
        keep = self.keepalive.append
        new_uid = self.new_uid
        done = 0
        # Per node, the common value types are encoded inline (the same bytes as
        # encode_scalar and join_item give), and a path object is made only for a nested
        # container, which keeps it for its own errors; the rest, and every error (which
        # names its path), go through the general functions. A container met for the
        # first time is created here too (what _container does, without its call): in a
        # big new document that is every node. New hashes wait in self.new, given to the
        # unit at the end (or by _container before it reads a node already met).
        while stack:
            if progress is not None:
                done += 1
                if done == _PROGRESS_STEP:
                    progress(done)
                    done = 0
            obj, uid, path = stack.pop()
            me = uid.encode()
            if uid[:1] == DICT_UID:
                mapping: dict[bytes, bytes] = {}
                for seq, (k, v) in enumerate(obj.items()):
                    if type(k) is str:
                        fkey = field_keys.get(k)
                        if fkey is None:
                            fkey = b"s" + k.encode() if k.isascii() else _key(k, path)
                            if len(field_keys) < _FIELD_KEYS_KEPT:
                                field_keys[k] = fkey
                    else:
                        fkey = _key(k, path)
                    cls = type(v)
                    if cls is str:
                        try:
                            mapping[fkey] = b"%d|s" % seq + v.encode()
                        except UnicodeEncodeError:
                            encode_scalar(v, (*_flat(path), k))  # raises with the path
                        continue
                    if cls is int:
                        if -_SMALL < v < _SMALL:
                            mapping[fkey] = b"%d|i%d" % (seq, v)
                            continue
                    elif cls is float:
                        mapping[fkey] = b"%d|f%r" % (seq, v)  # bytes %r: the float's repr()
                        continue
                    elif cls is bool:
                        mapping[fkey] = b"%d|" % seq + (_TRUE if v else _FALSE)
                        continue
                    elif v is None:
                        mapping[fkey] = b"%d|" % seq + _NONE
                        continue
                    elif cls is dict or cls is list:
                        child = memo.get(id(v))
                        if child is None:
                            if cls is dict:
                                child = new_uid(DICT_UID)
                                header = {KIND: KIND_DICT, SEQ: b"%d" % len(v), me: b"1"}
                            else:
                                child = new_uid(LIST_UID)
                                header = {KIND: KIND_LIST, me: b"1"}
                            memo[id(v)] = child
                            keep(v)
                            new[refs_prefix + child] = header
                            push((v, child, _At((path, k))))
                            mapping[fkey] = b"%d|@" % seq + child.encode()
                            continue
                    mapping[fkey] = b"%d|" % seq + tag(v, uid, _At((path, k)))  # join_item, inline
                if mapping:
                    new[content_prefix + uid] = mapping
            else:
                items: list[bytes] = []
                append = items.append
                for i, v in enumerate(obj):
                    cls = type(v)
                    if cls is int and -_SMALL < v < _SMALL:
                        append(b"i%d" % v)
                    elif cls is str and v.isascii():
                        append(b"s" + v.encode())
                    elif cls is float:
                        append(b"f%r" % v)
                    elif cls is bool:
                        append(_TRUE if v else _FALSE)
                    elif v is None:
                        append(_NONE)
                    elif (cls is dict or cls is list) and id(v) not in memo:
                        if cls is dict:
                            child = new_uid(DICT_UID)
                            header = {KIND: KIND_DICT, SEQ: b"%d" % len(v), me: b"1"}
                        else:
                            child = new_uid(LIST_UID)
                            header = {KIND: KIND_LIST, me: b"1"}
                        memo[id(v)] = child
                        keep(v)
                        new[refs_prefix + child] = header
                        push((v, child, _At((path, i))))
                        append(b"@" + child.encode())
                    else:
                        append(tag(v, uid, _At((path, i))))
                u.create_list(content_prefix + uid, items)
        if progress is not None and done:
            progress(done)
        if new:
            u.create_hashes(new)
            new.clear()
        if self.links:
            links, self.links = self.links, []
            self.g.link_many(links, self.blind)


def _prepare_plain(top: Any, prepared: dict[int, tuple[Any, Any]]) -> None:
    """Give every dict/list subclass under ``top`` a plain copy, in ``prepared`` by id.

    Runs outside any unit; each subclass is read once (``items()`` or
    iteration, as a plain write would). The copies hold the same children, so
    sharing and cycles are kept; the originals stay referenced, so their ids
    cannot be reused while ``prepared`` lives.
    """
    seen: set[int] = set()
    stack = [top]
    while stack:
        value = stack.pop()
        if id(value) in seen or not isinstance(value, (dict, list)):
            continue
        seen.add(id(value))
        plain: dict[Any, Any] | list[Any] = value
        if type(value) is not dict and type(value) is not list:
            known = prepared.get(id(value))
            if known is None:
                plain = dict(value.items()) if isinstance(value, dict) else list(value)
                prepared[id(value)] = (value, plain)
            else:
                plain = known[1]
        stack.extend(plain.values() if isinstance(plain, dict) else plain)


_PLAIN_NODES = 16
"""At most this many new nodes take :func:`assign_plain` (a small document); more take
the unit of work, which also pauses the cyclic collector for a big write."""

_SCALARS = frozenset((str, int, float, bool, type(None)))


def assign_plain(
    session: Session, uid: str, key: str, value: Any, op: Callable[[Graph], None]
) -> bool:
    """``rd[key] = value`` for a JSON scalar or a small plain tree, straight through the
    backend's write scope; ``False`` (nothing done) when the caller must run ``op``, the
    ordinary operation, through :meth:`Session.mutate` instead.

    It runs the same statements and commits the same writes as that path, in the
    same order (uids included), without a unit of work, a graph or a writer: the
    node's header and the item are read in the scope, the tree is encoded as the
    writer's drain encodes it, and the new nodes go to the scope as fresh contents
    (``ScopeCommits.takes_fresh``). The caller has checked the backend (it holds
    unit scopes offering ``commit_writes``, and declares neither ``item_writes``
    nor ``unlink_reads``) and that ``key`` is an ASCII ``str``.

    Before the scope, ``False`` for a session that is closed, in a transaction,
    with pins to release or a sweep of expired garbage due, or a progress callback
    (:data:`nodes_written`). After the two reads, anything else runs ``op`` as a
    unit of work in the same scope, its reads handed over (no statement twice): a
    node not plainly live, an item that links a node (a replacement, which the
    graph collects), a value that is not a tree of exact dicts, lists and JSON
    scalars of at most :data:`_PLAIN_NODES` nodes (a handle, a subclass, an object
    met twice, a key or scalar the writer refuses with its path). Errors are
    raised as that path raises them.
    """
    if (
        session.closed
        or session.unpins
        or not session.plain_writes
        or session.reclaim.due()
        or nodes_written.get() is not None
    ):
        return False
    backend = session.backend
    held: Any = backend.unit_scope(True)  # type: ignore[attr-defined]  # (caller checked)
    if getattr(held, "takes_fresh", False) is not True or not held.__enter__():
        return False
    layout = session.layout
    refs = layout.refs_prefix + uid
    content = layout.content_prefix + uid
    field = b"s" + key.encode()
    header: dict[bytes, bytes]
    try:
        read = getattr(held, "read_item", None)
        if read is not None:
            header, old = read(refs, content, field)
        else:
            header = backend.hgetall(refs)
            old = backend.hget(content, field)
    except BaseException as exc:
        held.__exit__(type(exc), exc, None)  # rolls the scope back
        raise
    fresh: dict[str, Any] | None = None
    top: bytes | None = None
    if header.get(KIND) is not None and DEAD not in header:
        if old is None:
            raw = header.get(SEQ)
            seq = int(raw) if raw is not None and raw.isdigit() else -1
        else:
            at = old.find(b"|")
            # A scalar item keeps its number; one that links a node is the graph's work.
            ok = at > 0 and old[:at].isdigit() and old[at + 1 : at + 2] not in (b"", b"@")
            seq = int(old[:at]) if ok else -1
        if seq < 0:
            pass
        elif type(value) is dict or type(value) is list:
            fresh = {}
            mark = session.uids.mark()
            top = _plain_tree(session, layout, uid, value, fresh)
            if top is None:
                # The uids it made go back: the unit of work makes the same ones again.
                session.uids.rewind(mark, session.uids.mark())
                fresh = None
        else:  # a JSON scalar (the caller checked its type): no new node
            try:
                top = encode_scalar(value)
            except (TypeError, ValueError):
                pass  # (a lone surrogate: the unit's encode_scalar says so, with its path)
            else:
                fresh = {}
    if fresh is None or top is None:
        return _in_unit(session, held, refs, header, content, field, old, op)
    writes: list[tuple[str, tuple[Any, ...]]] = []
    if old is None:
        header[SEQ] = b"%d" % (seq + 1)
        # The header as Unit._scope_writes sends a small hash it read whole: all of it.
        if backend.capabilities.whole_hash_writes and len(header) <= _WHOLE_FIELDS:
            writes.append(("hreplace", (refs, header)))
        else:
            writes.append(("hset", (refs, {SEQ: header[SEQ]})))
    writes.append(("hset", (content, {field: b"%d|" % seq + top})))
    try:
        commit = getattr(held, "commit_fresh", None)
        if commit is not None:
            commit(writes, fresh)
        else:
            held.commit_writes(writes, (), fresh)
    except BaseException as exc:
        held.__exit__(type(exc), exc, None)
        raise
    return True


def _in_unit(
    session: Session,
    held: Any,
    refs: str,
    header: dict[bytes, bytes],
    content: str,
    field: bytes,
    old: bytes | None,
    op: Callable[[Graph], None],
) -> bool:
    """Run ``op`` as a unit of work in ``held``, the reads :func:`assign_plain` made
    handed over as the unit's own would have been; ``False`` (rolled back) when it
    needs the retried frame of :meth:`Session.mutate` (caller code, a conflict)."""

    def run(g: Graph) -> bool:
        op(g)
        return True

    def reads(unit: Unit) -> None:
        unit.take_reads(refs, header, content, field, old)

    return session.finish_held(held, run, reads) is True


_SEQS = 256
"""Dict nodes of up to this many fields take :func:`_plain_tree` (a bigger one is spilled
by any store that packs small nodes, and takes the unit of work)."""

# Each item's number and tag, made once: ``b"%d|s" % seq`` formats bytes each time
# (~1,000 instructions; a table lookup and one join ~400). A header's count likewise.
_BARS = [b"%d|" % seq for seq in range(_SEQS)]
_STRS = [bar + b"s" for bar in _BARS]
_INTS = [bar + b"i" for bar in _BARS]
_LINKS = [bar + b"@" for bar in _BARS]
_TRUES = [bar + _TRUE for bar in _BARS]
_FALSES = [bar + _FALSE for bar in _BARS]
_NONES = [bar + _NONE for bar in _BARS]
_COUNTS = [b"%d" % n for n in range(_SEQS + 1)]


def _plain_tree(
    session: Session, layout: Any, parent: str, value: Any, fresh: dict[str, Any]
) -> bytes | None:
    """The link to ``value``'s new node, its nodes' headers and contents put in ``fresh``
    as the writer's :meth:`Writer._drain` would give them to the unit; ``None`` if the
    value is not a small plain tree (see :func:`assign_plain`)."""
    cls = type(value)
    if cls is not dict and cls is not list:
        return None
    new_uid = session.uids.new
    refs_prefix, content_prefix = layout.refs_prefix, layout.content_prefix
    field_keys = _FIELD_KEYS
    scalars = _SCALARS
    counts, strs, ints, links = _COUNTS, _STRS, _INTS, _LINKS
    if cls is dict:
        if len(value) > _SEQS:
            return None
        top = new_uid(DICT_UID)
        fresh[refs_prefix + top] = {KIND: KIND_DICT, SEQ: counts[len(value)], parent.encode(): b"1"}
    else:
        top = new_uid(LIST_UID)
        fresh[refs_prefix + top] = {KIND: KIND_LIST, parent.encode(): b"1"}
    seen = {id(value)}
    stack: list[tuple[Any, str]] = [(value, top)]
    nodes = 1
    while stack:
        obj, uid = stack.pop()
        me = uid.encode()
        if type(obj) is dict:
            mapping: dict[bytes, bytes] = {}
            for seq, (k, v) in enumerate(obj.items()):
                if type(k) is str:
                    fkey = field_keys.get(k)
                    if fkey is None:
                        if not k.isascii():
                            return None  # (the writer's _key() checks it, with a path)
                        fkey = b"s" + k.encode()
                        if len(field_keys) < _FIELD_KEYS_KEPT:
                            field_keys[k] = fkey
                elif type(k) is int:
                    fkey = encode_key(k)
                else:
                    return None
                c = type(v)
                if c is str:
                    try:
                        mapping[fkey] = strs[seq] + v.encode()
                    except UnicodeEncodeError:
                        return None
                elif c is int and -_SMALL < v < _SMALL:
                    mapping[fkey] = ints[seq] + b"%d" % v
                elif c is float:
                    mapping[fkey] = b"%d|f%r" % (seq, v)
                elif c is bool:
                    mapping[fkey] = _TRUES[seq] if v else _FALSES[seq]
                elif v is None:
                    mapping[fkey] = _NONES[seq]
                elif c is dict or c is list:
                    if id(v) in seen or nodes == _PLAIN_NODES:
                        return None  # shared, a cycle, or not small
                    seen.add(id(v))
                    nodes += 1
                    if c is dict:
                        if len(v) > _SEQS:
                            return None
                        child = new_uid(DICT_UID)
                        fresh[refs_prefix + child] = {
                            KIND: KIND_DICT,
                            SEQ: counts[len(v)],
                            me: b"1",
                        }
                    else:
                        child = new_uid(LIST_UID)
                        fresh[refs_prefix + child] = {KIND: KIND_LIST, me: b"1"}
                    stack.append((v, child))
                    mapping[fkey] = links[seq] + child.encode()
                elif c in scalars:
                    try:
                        mapping[fkey] = _BARS[seq] + encode_scalar(v)
                    except (TypeError, ValueError):
                        return None
                else:
                    return None
            if mapping:
                fresh[content_prefix + uid] = mapping
        else:
            items: list[bytes] = []
            append = items.append
            for v in obj:
                c = type(v)
                if c is int and -_SMALL < v < _SMALL:
                    append(b"i%d" % v)
                elif c is str and v.isascii():
                    append(b"s" + v.encode())
                elif c is float:
                    append(b"f%r" % v)
                elif c is bool:
                    append(_TRUE if v else _FALSE)
                elif v is None:
                    append(_NONE)
                elif c is dict or c is list:
                    if id(v) in seen or nodes == _PLAIN_NODES:
                        return None
                    seen.add(id(v))
                    nodes += 1
                    if c is dict:
                        if len(v) > _SEQS:
                            return None
                        child = new_uid(DICT_UID)
                        fresh[refs_prefix + child] = {
                            KIND: KIND_DICT,
                            SEQ: counts[len(v)],
                            me: b"1",
                        }
                    else:
                        child = new_uid(LIST_UID)
                        fresh[refs_prefix + child] = {KIND: KIND_LIST, me: b"1"}
                    stack.append((v, child))
                    append(b"@" + child.encode())
                elif c in scalars:
                    try:
                        append(encode_scalar(v))
                    except (TypeError, ValueError):
                        return None
                else:
                    return None
            if items:
                fresh[content_prefix + uid] = items
    return _LINK + top.encode()
