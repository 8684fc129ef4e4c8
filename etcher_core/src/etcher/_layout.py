"""Where a namespace's data sits in the key space of a store.

Namespace ``P`` owns exactly the keys that start with ``{P}:``. The braces are
a Redis Cluster hash tag, so one namespace lives in one slot; since ``P`` may
not contain braces, no namespace's keys can start with another's prefix.

==========================  ========  ============================================
key                         type      holds
==========================  ========  ============================================
``{P}:c:<uid>``             hash      a dict node's items: key -> ``seq|value``
``{P}:c:<uid>``             list      a list node's items
``{P}:r:<uid>``             hash      the node's header and back-references
``{P}:n:<name>``            string    a counter (``db.incr``)
``{P}:m``                   hash      namespace metadata (layout version)
``{P}:g``                   hash      pending garbage: uid -> ASCII expiry time
``etcher:namespaces``       hash      every namespace name -> creation marker
``etcher:default``          string    the namespace ``DB(path)`` opens by default
==========================  ========  ============================================

A node exists exactly as long as its ``r`` hash does: the header fields
(``#k`` kind, ``#s`` next insertion sequence, ``#p`` pin count) keep it
non-empty even when the node holds nothing, and every other field is the uid
of a parent with the number of links from that parent.

A node unlinked while a grace period is in force is not deleted at once: it
becomes *pending* garbage. Its header gains ``#d`` (its expiry, as in
``{P}:g``), its content stays as it was, and it is listed in ``{P}:g`` until
a sweep deletes its keys after the expiry (see :mod:`etcher._reclaim`).
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable

from etcher.errors import EtcherTypeError, EtcherValueError

ROOT = "Droot"
"""The uid of every namespace's root dict."""

KIND = b"#k"
SEQ = b"#s"
PIN = b"#p"
DEAD = b"#d"
"""Header field of a pending node (unlinked, readable until swept): its expiry time."""
HEADER_FIELDS = frozenset((KIND, SEQ, PIN, DEAD))

DICT_UID = "D"
"""First character of every dict node's uid (a uid names its node's kind)."""
LIST_UID = "L"
"""First character of every list node's uid."""

NAMESPACES_KEY = "etcher:namespaces"
DEFAULT_KEY = "etcher:default"
LAYOUT_VERSION = b"1"

_PREFIX_FORBIDDEN = re.compile(r"[{}\x00-\x1f\x7f]")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def validate_prefix(prefix: object) -> str:
    """Check a namespace name; return it, or raise ``TypeError``/``ValueError``."""
    if not isinstance(prefix, str):
        raise EtcherTypeError(f"a namespace prefix must be a str, not {type(prefix).__name__}")
    if not prefix:
        raise EtcherValueError("a namespace prefix cannot be empty")
    if len(prefix) > 200:
        raise EtcherValueError("a namespace prefix is limited to 200 characters")
    bad = _PREFIX_FORBIDDEN.search(prefix)
    if bad:
        raise EtcherValueError(
            f"namespace prefix {prefix!r} contains {bad.group()!r}; braces and control "
            "characters are reserved (they delimit the namespace in the key space)"
        )
    try:
        prefix.encode()
    except UnicodeEncodeError:
        raise EtcherValueError(f"namespace prefix {prefix!r} is not valid text") from None
    return prefix


def is_dict(uid: str) -> bool:
    """True when ``uid`` names a dict node, False for a list node (the kind is in the uid)."""
    return uid[:1] == DICT_UID


def is_node_uid(uid: str) -> bool:
    """True when ``uid`` has the shape of a node uid (dict or list), e.g. in a scanned key."""
    return uid[:1] in (DICT_UID, LIST_UID)


def uid_kind(dict_node: bool) -> str:
    """The first character of a new node's uid: :data:`DICT_UID` or :data:`LIST_UID`."""
    return DICT_UID if dict_node else LIST_UID


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class Layout:
    """Key names of one namespace (pure string building, no I/O)."""

    __slots__ = (
        "clock",
        "content_prefix",
        "counter_prefix",
        "grace",
        "meta",
        "on_retire",
        "pending",
        "prefix",
        "refs_prefix",
        "scan",
    )

    def __init__(self, prefix: str, grace: float = 0.0) -> None:
        self.prefix = validate_prefix(prefix)
        base = "{" + prefix + "}:"
        self.content_prefix = base + "c:"
        self.refs_prefix = base + "r:"
        self.counter_prefix = base + "n:"
        self.meta = base + "m"
        self.pending = base + "g"
        # Seconds an unlinked node stays readable before a sweep may delete it (0: at once).
        # It rides on the layout because every Graph of the DB already holds it.
        self.grace = grace
        # Told (after commit) of every node a unit made pending: the DB's sweeper.
        self.on_retire: Callable[[list[tuple[float, str]]], None] | None = None
        # The time expiries count from; the sweeper supplies its own (tests move it).
        self.clock: Callable[[], float] = time.time
        self.scan = glob_escape(base) + "*"

    def content(self, uid: str) -> str:
        return self.content_prefix + uid

    def refs(self, uid: str) -> str:
        return self.refs_prefix + uid

    def counter(self, name: str) -> str:
        return self.counter_prefix + name

    def expiry(self) -> tuple[float, bytes]:
        """When a node unlinked now may be swept, and the stamp its header's ``#d`` and the
        pending hash carry for it (the grace period from now, to the millisecond)."""
        expiry = self.clock() + self.grace
        return expiry, b"%.3f" % expiry


class UidFactory:
    """Makes node uids: a random per-process token plus a counter.

    64 random bits per factory make a collision between two writers
    practically impossible, and the counter keeps uids short and cheap to
    make (no system call per node). The counter is written in hex after its
    number of digits (``3`` + ``1f4``), so a factory's uids sort as they were
    made: a store ordered by key name (SQLite's ``keys`` table) puts a new
    document's rows at the end of its factory's run of rows, in the pages the
    previous document dirtied, instead of splitting pages all over that run
    (``"...10"`` sorts before ``"...9"``). A child made by ``fork()`` inherits the
    factory, token and counter included, so every live factory draws a new
    token in the child (:func:`os.register_at_fork`): otherwise two children
    would make the same uids and write into each other's nodes.
    """

    __slots__ = ("__weakref__", "_lock", "_n", "_stem", "_token", "_wider")

    def __init__(self) -> None:
        self._reset()
        _FACTORIES.add(self)

    def _reset(self) -> None:
        # A lock some other thread held at fork time would never be released in the child.
        self._lock = threading.Lock()
        self._start(os.urandom(8).hex(), 0)

    def _start(self, token: str, n: int) -> None:
        """Make the next uid with ``token`` and number ``n + 1``."""
        self._token = token
        self._n = n  # the number of the latest uid made
        digits = ((n + 1).bit_length() + 3) >> 2
        # The token and the digit count, while the numbers stay below _wider.
        self._stem = f"{token}{digits:x}"
        self._wider = 16**digits

    @property
    def token(self) -> str:
        """This process's random part of every uid the factory makes."""
        return self._token

    def new(self, kind: str) -> str:
        with self._lock:
            n = self._n + 1
            if n >= self._wider:
                self._start(self._token, n - 1)  # a digit more
            self._n = n
            stem = self._stem
        return f"{kind}{stem}{n:x}"

    def mark(self) -> int:
        """Where the counter is: :meth:`rewind` takes it back there."""
        return self._n

    def rewind(self, mark: int, end: int) -> None:
        """Forget the uids made since :meth:`mark` gave ``mark`` (it gives ``end`` now),
        unless another was made since: a write that gave up before writing them leaves
        the counter as if it had never run."""
        with self._lock:
            if self._n == end:
                self._start(self._token, mark)


# Weak, so a factory lives exactly as long as the DB that made it.
_FACTORIES: weakref.WeakSet[UidFactory] = weakref.WeakSet()


def _reset_factories_in_child() -> None:
    for factory in list(_FACTORIES):
        factory._reset()


os.register_at_fork(after_in_child=_reset_factories_in_child)
