"""How scalar values, dict keys and links become bytes in the store, and back.

Every stored value starts with a one-byte type tag, so nothing is ever
guessed from the text: ``"1"`` and ``1`` differ, and a string that looks like
a node id stays a string.

=====  ===========================================  =====================
tag    meaning                                      payload
=====  ===========================================  =====================
``s``  ``str``                                      UTF-8 text
``i``  ``int``                                      decimal digits
``x``  ``int`` too large for decimal conversion     hexadecimal digits
``f``  ``float``                                    ``repr()`` (``inf``, ``nan``, ``-0.0``)
``T``  ``True``                                     --
``F``  ``False``                                    --
``N``  ``None``                                     --
``@``  link to another node                         the node's uid
=====  ===========================================  =====================

Dict keys use the ``s``/``i``/``x`` tags only. The codec is pure: it never
touches the store.

These functions run once per stored value, field and item, so they are written for
speed (see docs/performance.md, "Round 2: codec"): exact-type checks before
``isinstance``, the common tags first, one function per call on the hot paths (no
helper calls), and errors caught with ``try`` (free in CPython 3.11+) rather than
tested for up front. ``benchmarks/codec_micro.py`` measures them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etcher._layout import is_node_uid
from etcher.errors import EtcherTypeError, EtcherValueError, StoreCorrupt

_TRUE = b"T"
_FALSE = b"F"
_NONE = b"N"
LINK = 0x40  # ord("@")
_LINK_PREFIX = b"@"

# Beyond this size ``str(int)`` trips CPython's int/str conversion limit; hex has no limit.
_DECIMAL_LIMIT = 1 << 1024


class Link(str):
    """The uid of a node, as found in a stored value (a ``str`` subclass for cheap handling)."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        """``"D"`` for a dict node, ``"L"`` for a list node."""
        return self[0]


def format_path(path: tuple[Any, ...]) -> str:
    """Render a path inside a value for error messages, e.g. ``value['a'][3]``."""
    return "value" + "".join(f"[{p!r}]" for p in path)


def encode_scalar(value: Any, path: tuple[Any, ...] = ()) -> bytes:
    """Encode a JSON-style scalar; raise ``TypeError``/``ValueError`` naming ``path`` otherwise."""
    cls = type(value)
    if cls is str:
        text: str = value  # typed for mypy; value.encode() is cheaper than str.encode(value)
        try:
            return b"s" + text.encode()
        except UnicodeEncodeError:
            raise EtcherValueError(
                f"{format_path(path)} is a string with a lone surrogate, which cannot be stored"
            ) from None
    if cls is int:
        if -_DECIMAL_LIMIT < value < _DECIMAL_LIMIT:
            return b"i%d" % value
        return b"x" + format(value, "x").encode()
    if cls is bool:
        return _TRUE if value else _FALSE
    if value is None:
        return _NONE
    if cls is float:
        return b"f%r" % value  # bytes %r is ascii(), which for a float is its repr()
    # Subclasses (IntEnum, str-enums, numpy scalars that subclass float ...) are stored as
    # their JSON base type, the way the json module treats them.
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        # str.__str__ gives the text itself; str() of a (str, Enum) member gives its name.
        return encode_scalar(str.__str__(value), path)
    if isinstance(value, int):
        return encode_scalar(int(value), path)
    if isinstance(value, float):
        return encode_scalar(float(value), path)
    raise EtcherTypeError(
        f"{format_path(path)} has type {cls.__name__!r}, which etcher cannot store; "
        "use str, int, float, bool, None, dict or list"
    )


def link_target(tagged: bytes) -> str | None:
    """The uid a stored value links to, or ``None`` if it is a scalar.

    Every reader finds links through this one function, so a damaged link (no
    uid, undecodable bytes, an unknown node kind) is always :class:`StoreCorrupt`.
    """
    try:
        if tagged[0] != 0x40:  # LINK, as a constant: this runs once per value read
            return None
        uid = tagged[1:].decode()
    except IndexError:
        raise StoreCorrupt("a stored value is empty") from None
    except UnicodeDecodeError:
        raise StoreCorrupt(f"stored link {tagged[:40]!r} is not valid text") from None
    if len(uid) < 2 or not is_node_uid(uid):
        raise StoreCorrupt(f"stored link {tagged[:40]!r} does not name a node")
    return uid


def split_item(raw: bytes) -> tuple[int, bytes]:
    """Split a stored dict item ``b"<seq>|<tagged value>"`` into its parts."""
    seq, _, value = raw.partition(b"|")
    # isdigit() is true for ASCII digits only, and never for b"": int() alone would also
    # take a sign, spaces or underscores, which no stored sequence number contains.
    if value and seq.isdigit():
        return int(seq), value
    raise StoreCorrupt(f"stored dict item {raw[:40]!r} is malformed")


def join_item(seq: int, tagged: bytes) -> bytes:
    """A stored dict item: insertion sequence ``seq``, then a tagged value (:func:`split_item`)."""
    return b"%d|" % seq + tagged


def item_value(raw: bytes) -> bytes:
    """The tagged value of a stored dict item, without its insertion sequence."""
    seq, _, value = raw.partition(b"|")
    if seq and value:
        return value
    raise StoreCorrupt(f"stored dict item {raw[:40]!r} is malformed")


def ordered_items(content: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """A dict node's stored items in insertion order, as ``(stored key, tagged value)``.

    The same order as sorting ``split_item()`` of every item (sequence, then value,
    then key), in one call per node instead of one per field.
    """
    rows: list[tuple[int, bytes, bytes]] = []
    append = rows.append
    for field, raw in content.items():
        seq, _, value = raw.partition(b"|")
        if not value or not seq.isdigit():
            raise StoreCorrupt(f"stored dict item {raw[:40]!r} is malformed")
        append((int(seq), value, field))
    rows.sort()
    return [(field, value) for _seq, value, field in rows]


KEYS: dict[bytes, Any] = {}
"""Decoded dict keys by their stored bytes, shared by every reader of the process.

Documents repeat their keys from node to node and from document to document;
decoding is a pure function of the bytes and keys are immutable, so the cache
needs no lock (a dict's get and set are atomic) and never goes stale."""

SEQS: dict[bytes, int] = {}
"""Checked sequence numbers of dict items by their stored bytes (as :data:`KEYS`)."""

CACHE_LIMIT = 20_000
"""Entries :data:`KEYS` or :data:`SEQS` holds at most: past it, it starts again empty,
so a wide dict's unique keys cost at most one cache's worth of memory."""

CACHED_KEY_BYTES = 64
"""Longest stored key :data:`KEYS` keeps (longer ones are rare, and would make the
cache's memory unbounded in practice)."""


def decoded_items(content: Mapping[bytes, bytes]) -> list[tuple[str | int, bytes]]:
    """:func:`ordered_items` with each key decoded: ``[(key, tagged value)]``."""
    out: list[tuple[str | int, bytes]] = []
    append = out.append
    numbers: list[int] = []
    note = numbers.append
    keys, seqs = KEYS, SEQS
    last = -1
    ordered = True
    for field, raw in content.items():
        seq, _, value = raw.partition(b"|")
        n = seqs.get(seq)
        if n is None:
            if not seq.isdigit():
                raise StoreCorrupt(f"stored dict item {raw[:40]!r} is malformed")
            n = int(seq)
            if len(seqs) >= CACHE_LIMIT:
                seqs.clear()
            seqs[seq] = n
        if not value:
            raise StoreCorrupt(f"stored dict item {raw[:40]!r} is malformed")
        if n <= last:
            ordered = False
        last = n
        note(n)
        key = keys.get(field)
        if key is None:
            try:
                tag = field[0]
                if tag == 0x73:  # s, by far the most common key
                    key = field[1:].decode()
                elif tag == 0x69:  # i
                    key = int(field[1:])
                else:
                    key = decode_key(field)
            except (IndexError, ValueError, UnicodeDecodeError):
                key = decode_key(field)  # raises the precise StoreCorrupt
            if len(field) <= CACHED_KEY_BYTES:
                if len(keys) >= CACHE_LIMIT:
                    keys.clear()
                keys[field] = key
        append((key, value))
    if ordered:
        return out
    # Out of insertion order (a big hash, say): sort by sequence number.
    if len(set(numbers)) == len(numbers):
        return [out[i] for i in sorted(range(len(numbers)), key=numbers.__getitem__)]
    # Two items with one sequence number are corrupt: the reference order breaks the tie.
    rows = sorted(
        (n, value, field, key)
        for n, (field, raw), (key, value) in zip(numbers, content.items(), out, strict=True)
    )
    return [(key, value) for _n, value, _field, key in rows]


def encode_link(uid: str) -> bytes:
    """The stored form of a link to node ``uid``."""
    return _LINK_PREFIX + uid.encode()


def decode(raw: bytes) -> Any:
    """Decode a stored value: a scalar, or a :class:`Link` for a node reference."""
    if not raw:
        raise StoreCorrupt("a stored value is empty")
    tag = raw[0]
    if tag == 0x73:  # s
        return raw[1:].decode()
    if tag == LINK:
        return Link(link_target(raw))
    if tag == 0x69:  # i
        return int(raw[1:])
    if tag == 0x4E:  # N
        return None
    if tag == 0x54:  # T
        return True
    if tag == 0x46:  # F
        return False
    if tag == 0x66:  # f
        return float(raw[1:])
    if tag == 0x78:  # x
        return int(raw[1:], 16)
    raise StoreCorrupt(f"stored value {raw[:40]!r} has an unknown type tag")


def safe_decode(raw: bytes) -> Any:
    """:func:`decode`, turning any malformed payload into :class:`StoreCorrupt`."""
    # decode()'s body again, inline: this runs once per stored scalar a reader sees.
    try:
        tag = raw[0]
    except IndexError:
        raise StoreCorrupt("a stored value is empty") from None
    try:
        if tag == 0x73:  # s
            return raw[1:].decode()
        if tag == 0x69:  # i
            return int(raw[1:])
        if tag == 0x40:  # @ (LINK): link_target()'s checks, inline
            uid = raw[1:].decode()
            if len(uid) < 2 or uid[0] not in "DL":
                raise StoreCorrupt(f"stored link {raw[:40]!r} does not name a node")
            return Link(uid)
        if tag == 0x66:  # f
            return float(raw[1:])
        if tag == 0x54:  # T
            return True
        if tag == 0x46:  # F
            return False
        if tag == 0x4E:  # N
            return None
        if tag == 0x78:  # x
            return int(raw[1:], 16)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreCorrupt(f"stored value {raw[:40]!r} cannot be decoded: {exc}") from None
    raise StoreCorrupt(f"stored value {raw[:40]!r} has an unknown type tag")


def lookup_key(key: Any) -> bytes | None:
    """The stored form of a key to *look up*, as ``dict`` would find it; None if none can match.

    ``True`` finds ``1`` and ``2.0`` finds ``2``, as in a plain dict (equal keys
    hash alike), although only ``str`` and ``int`` keys can be stored. An
    unhashable key raises ``TypeError``, as it does for a dict.
    """
    try:
        hash(key)
    except TypeError as exc:
        raise EtcherTypeError(str(exc)) from None
    if isinstance(key, bool) or (isinstance(key, float) and key.is_integer()):
        key = int(key)
    try:
        return encode_key(key)
    except (TypeError, ValueError):
        return None


def encode_key(key: Any, path: tuple[Any, ...] = ()) -> bytes:
    """Encode a dict key (``str`` or ``int``, never ``bool``)."""
    cls = type(key)
    if cls is str:
        text: str = key
        try:
            return b"s" + text.encode()
        except UnicodeEncodeError:
            raise EtcherValueError(
                f"key {key!r} in {format_path(path)} has a lone surrogate and cannot be stored"
            ) from None
    if cls is int:
        if -_DECIMAL_LIMIT < key < _DECIMAL_LIMIT:
            return b"i%d" % key
        return b"x" + format(key, "x").encode()
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise EtcherTypeError(
            f"key {key!r} in {format_path(path)} has type {cls.__name__!r}; "
            "etcher dict keys must be str or int"
        )
    plain: str | int = str.__str__(key) if isinstance(key, str) else int(key)
    return encode_key(plain, path)


def decode_key(raw: bytes) -> str | int:
    """Decode a stored dict key."""
    try:
        tag = raw[0]
    except IndexError:
        raise StoreCorrupt("a stored dict key is empty") from None
    try:
        if tag == 0x73:
            return raw[1:].decode()
        if tag == 0x69:
            return int(raw[1:])
        if tag == 0x78:
            return int(raw[1:], 16)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreCorrupt(f"stored key {raw[:40]!r} cannot be decoded: {exc}") from None
    raise StoreCorrupt(f"stored key {raw[:40]!r} has an unknown type tag")
