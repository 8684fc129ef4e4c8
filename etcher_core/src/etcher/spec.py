"""The storage Protocol: the only thing etcher's core asks of a backend.

It is a strict subset of redis-py's own method names, argument shapes and
return values, so a ``redis.Redis`` (wrapped only to translate its errors)
satisfies it, and a backend author can read the Redis command documentation
for anything this page leaves open. Core calls these methods directly, never
through a plugin hook.

Conventions that hold for every method:

* **Keys** are ``str`` (any text; ``*``, ``?``, ``[``, ``{`` and ``:`` are
  ordinary characters). Backends must also accept ``bytes`` keys holding UTF-8.
* **Values and hash fields** are ``bytes`` going in *and* coming out. A backend
  must also accept ``str`` (encode it as UTF-8) and ``int`` (its decimal text),
  as redis-py does, but always returns ``bytes``.
* **Missing keys** behave as empty: ``hgetall`` of a missing key is ``{}``,
  ``llen`` is ``0``, ``lrange`` is ``[]``, ``get``/``hget``/``lindex`` return
  ``None``.
* **Empty containers do not exist**: removing the last field of a hash or the
  last item of a list deletes the key (``exists`` → 0, ``type`` → ``b"none"``).
* **Wrong type**: a hash command on a list key (and every other mismatch)
  raises :class:`etcher.errors.WrongTypeError` and changes nothing.
* **Negative indices** count from the end (``-1`` is the last item), exactly as
  in Redis; ranges are inclusive at both ends and clipped to the list.
* **Errors**: backends raise the classes of :mod:`etcher.errors`, never their
  native exceptions (``WatchError``, ``WrongTypeError``, ``StoreIndexError``,
  ``StoreValueError``, ``BackendUnavailable``, ``StoreLocked`` ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, TypeAlias, runtime_checkable

KeyT: TypeAlias = str | bytes
"""A store key: text (bytes are accepted and must hold UTF-8)."""

EncodableT: TypeAlias = bytes | str | int
"""What a backend accepts as a value or hash field; it always returns ``bytes``."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the mandatory Protocol.

    Core always has a generic path; a capability only lets it take a faster or
    stronger one. The conformance kit turns a ``False`` capability into a skip
    with a reason, e.g. ``pytest.mark.etcher_requires("persistent")``.
    """

    persistent: bool = True
    """Data survives the process that wrote it (False for in-memory stores)."""

    multiprocess: bool = True
    """Several processes can open the same store at once and see each other's writes."""

    atomic_batches: bool = False
    """A transactional ``execute()`` whose queued command fails applies *nothing*.

    Redis applies the other commands of a ``MULTI/EXEC`` block when one fails;
    SQLite rolls the whole batch back. Core never queues a command that can
    fail, so this only matters to the kit and to direct users of the Protocol.
    """

    maintenance: bool = False
    """``maintenance()`` does real work (compaction, checkpoints) rather than nothing."""

    snapshot_reads: bool = False
    """A non-transactional pipeline's reads all see one consistent state of the store."""

    locking_units: bool = False
    """The backend implements :class:`UnitScopes`: a unit of work can hold the store.

    Core then runs each operation inside ``unit_scope()`` instead of watching
    what it reads: no WATCH round trips, no version checks, no retries. Worth it
    where a lock is cheap (an embedded database); a network server should not
    hold one across round trips.
    """

    subtree_reads: bool = False
    """The backend implements :class:`SubtreeReads`: it reads a node and everything below it
    in a few calls (a script or a query walking the links where the data is), instead of
    one round trip per level of the document. Core's level-by-level read stays the fallback.
    """

    subtree_visits: bool = False
    """The backend implements :class:`SubtreeVisits`: it walks a whole document in one call,
    as one consistent state, handing each node's content to core as it reads it.

    Core then materializes a document in that one call, decoding each node while the
    walk runs (no ``{uid: content}`` answer built and walked again, no unit scope
    around it). Worth it where a whole walk in one read snapshot costs nothing extra
    (an embedded store); a server should keep to :attr:`subtree_reads`, whose calls
    are bounded. Core's other paths stay the fallback.
    """

    checked_commits: bool = False
    """The backend implements :class:`CheckedCommits`: one call checks reads and writes.

    Core then reads without ``WATCH`` and commits a writing unit with one
    ``checked_commit()`` that re-checks every answer the unit read and applies
    its writes only if all are unchanged: one round trip for the commit, none
    for watches, and no per-key watch cost on the server. Worth it where a
    round trip is dear and the server can run the check itself (a Lua script
    on Redis).
    """

    whole_hash_writes: bool = False
    """The backend implements :class:`WholeHashWrites`: ``hreplace()`` sets a hash's every field.

    Core then commits an edit of a small hash whose every field it knows (a node
    header gaining or losing a back-reference, say) as the hash's new content
    instead of field edits: a store that keeps a small hash in one value (SQLite's
    packed rows) writes it without reading and decoding the old value to merge
    the edits into. Backends without it keep receiving field edits.
    """

    item_writes: bool = False
    """With ``checked_commits``: ``checked_commit()`` also takes the ``unlinked_item`` check
    and the ``hset_item`` and ``hincr`` writes (see :class:`CheckedCommits`).

    Core can then assign a dict item without reading anything first: the commit
    checks that the field links no node and takes the item's insertion number on
    the server, so ``db[k] = v`` over a missing key or a scalar is one round trip.
    When the field does link a node the check fails and core retries the usual way. A
    value linking existing nodes (handles) raises their back-reference counts in the same
    commit, unread (``hincr``), their liveness checked there.
    """

    unlink_reads: bool = False
    """The backend implements :class:`UnlinkReads`: in one call it reads a dict item and, when
    the item links a node, the part of that node's subtree a collection would need.

    Core then reads what deleting or replacing a linked document needs in one round trip
    instead of one per level (with ``checked_commits``: a small document's ``del db[k]``
    is that read and the commit). The level-by-level read stays the fallback.
    """

    unlink_commits: bool = False
    """With ``checked_commits``: the backend implements :class:`UnlinkCommits`, a checked commit
    that also collects what unlinking one dict item leaves behind, when that is a small tree.

    Core can then delete, pop or replace (by a container) a dict item that links a small
    unshared document in one round trip, where it otherwise reads the document first
    (two). The backend collects only the simple case it can prove garbage by looking (see
    :meth:`UnlinkCommits.unlinking_commit`) and refuses anything else, after which core
    takes its usual path. Refusing everything is a correct (if slow) implementation.
    """

    def describe(self) -> dict[str, bool]:
        """The capabilities as a plain dict (for reports and error messages)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@runtime_checkable
class Commands(Protocol):
    """The data commands shared by a backend and its pipelines.

    On a backend each method runs at once and returns the value documented
    here. On a pipeline in buffered mode the same call is queued, returns the
    pipeline itself, and its result appears in the list ``execute()`` returns.
    """

    # --- strings ------------------------------------------------------------
    def get(self, name: KeyT) -> Any:
        """The value of string key ``name``, or ``None`` if it does not exist."""

    def set(self, name: KeyT, value: EncodableT) -> Any:
        """Make ``name`` a string key holding ``value``, whatever it held before.

        Replaces a hash or list too (no wrong-type error), as Redis ``SET`` does.
        Returns ``True``.
        """

    def incr(self, name: KeyT, amount: int = 1) -> Any:
        """Add ``amount`` to the integer in string key ``name`` (missing counts as 0).

        Returns the new value. A value that is not a base-10 integer, or a result
        outside the signed 64-bit range, raises ``StoreValueError`` and changes nothing.
        """

    def decr(self, name: KeyT, amount: int = 1) -> Any:
        """``incr(name, -amount)``."""

    # --- hashes -------------------------------------------------------------
    def hget(self, name: KeyT, key: EncodableT) -> Any:
        """The value of field ``key`` of hash ``name``, or ``None`` if either is missing."""

    def hmget(self, name: KeyT, keys: Sequence[EncodableT]) -> Any:
        """A list with the value (or ``None``) of each field in ``keys``, in that order."""

    def hset(
        self,
        name: KeyT,
        key: EncodableT | None = None,
        value: EncodableT | None = None,
        mapping: Mapping[Any, EncodableT] | None = None,
    ) -> Any:
        """Set one field (``key``/``value``) and/or every field in ``mapping``.

        Creates the hash if needed; returns how many fields were *added* (not
        updated). Calling it with nothing to set raises ``ValueError``.
        """

    def hdel(self, name: KeyT, *keys: EncodableT) -> Any:
        """Remove fields; returns how many existed. Removing the last field deletes the key."""

    def hgetall(self, name: KeyT) -> Any:
        """Every field of hash ``name`` as ``{field: value}`` (``{}`` if missing).

        Field order is unspecified: core never relies on it.
        """

    def hkeys(self, name: KeyT) -> Any:
        """The field names of hash ``name`` as a list (``[]`` if missing), in no set order."""

    def hlen(self, name: KeyT) -> Any:
        """Number of fields in hash ``name`` (0 if missing)."""

    def hexists(self, name: KeyT, key: EncodableT) -> Any:
        """Whether field ``key`` exists in hash ``name``."""

    def hincrby(self, name: KeyT, key: EncodableT, amount: int = 1) -> Any:
        """Add ``amount`` to the integer in field ``key`` (missing counts as 0); returns it.

        A non-integer field value raises ``StoreValueError``. A field that reaches
        0 is *kept* (as in Redis); callers delete it explicitly.
        """

    # --- lists --------------------------------------------------------------
    def rpush(self, name: KeyT, *values: EncodableT) -> Any:
        """Append ``values`` in order at the tail; returns the new length."""

    def lpush(self, name: KeyT, *values: EncodableT) -> Any:
        """Insert ``values`` one after the other at the head; returns the new length.

        ``lpush(k, a, b)`` on ``[x]`` gives ``[b, a, x]`` (each value goes to the front).
        """

    def lpop(self, name: KeyT, count: int | None = None) -> Any:
        """Remove and return the first item (``None`` if the list is missing).

        With ``count``, remove up to that many and return them as a list
        (``None`` if the list is missing). Popping the last item deletes the key.
        """

    def rpop(self, name: KeyT, count: int | None = None) -> Any:
        """As :meth:`lpop`, from the tail; with ``count`` the items come tail first."""

    def lrange(self, name: KeyT, start: int, end: int) -> Any:
        """Items ``start`` through ``end`` *inclusive*; negative indices count from the end.

        Out-of-range bounds are clipped; an empty or inverted range gives ``[]``.
        """

    def lindex(self, name: KeyT, index: int) -> Any:
        """The item at ``index`` (negative from the end), or ``None`` if out of range or missing."""

    def lset(self, name: KeyT, index: int, value: EncodableT) -> Any:
        """Replace the item at ``index``; returns ``True``.

        An index out of range, or a missing key, raises ``StoreIndexError``.
        """

    def llen(self, name: KeyT) -> Any:
        """Number of items in list ``name`` (0 if missing). Must cost O(1)."""

    def ltrim(self, name: KeyT, start: int, end: int) -> Any:
        """Keep only items ``start`` through ``end`` inclusive (``lrange`` rules); returns ``True``.

        Trimming to an empty range deletes the key.
        """

    # --- keys ---------------------------------------------------------------
    def exists(self, *names: KeyT) -> Any:
        """How many of ``names`` exist (a name given twice counts twice)."""

    def delete(self, *names: KeyT) -> Any:
        """Delete keys of any type; returns how many existed."""

    def type(self, name: KeyT) -> Any:
        """``b"string"``, ``b"hash"``, ``b"list"`` or ``b"none"`` for a missing key."""


@runtime_checkable
class Pipeline(Commands, Protocol):
    """A batch of commands, optionally an optimistic transaction (redis-py's ``Pipeline``).

    Modes, exactly as in redis-py:

    * **buffered** (the default): every command is queued and returns the
      pipeline; ``execute()`` runs them and returns their results in order.
    * **immediate**: after ``watch()`` and until ``multi()``, commands run at
      once and return their results (reads made while watching).

    A pipeline made with ``transaction=True`` applies its batch atomically:
    other clients see all of it or none of it. If any key named in ``watch()``
    was modified by anyone (any connection, any process, transactional or not)
    between the ``watch()`` call and ``execute()``, ``execute()`` raises
    :class:`etcher.errors.WatchError` and applies nothing. A watched key that
    was missing and is still missing counts as unchanged; a backend may also
    report a conflict when a key was changed and then restored (Redis does).
    ``execute()`` with ``watch()`` active but nothing queued still validates the
    watched keys (an empty ``MULTI``/``EXEC``), so it doubles as a read check.

    After ``execute()`` (or a ``WatchError``) the pipeline is reset: no
    watches, buffered mode, empty queue, and it can be used again.
    """

    def watch(self, *names: KeyT) -> Any:
        """Start (or extend) the watch set and switch to immediate mode."""

    def unwatch(self) -> Any:
        """Forget every watched key."""

    def multi(self) -> None:
        """End immediate mode: commands from now on are queued for ``execute()``."""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Run the queued commands; return one result per command.

        A command that fails raises its error (after the rest of a Redis
        transaction ran; see :attr:`Capabilities.atomic_batches`).
        """

    def reset(self) -> None:
        """Drop the queue and the watches; release any connection held."""

    def __len__(self) -> int:
        """Number of queued commands."""

    def __enter__(self) -> Pipeline: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class StorageBackend(Commands, Protocol):
    """A store etcher can keep its nodes in.

    Besides :class:`Commands`, a backend offers pipelines, literal key scans,
    lifecycle methods and a ``capabilities`` class attribute. Instances must be
    safe to share between threads (a pipeline is not: each thread makes its own).
    """

    capabilities: ClassVar[Capabilities]

    def pipeline(self, transaction: bool = True) -> Pipeline:
        """A new :class:`Pipeline`; ``transaction=False`` gives a plain batch without ``MULTI``.

        A non-transactional batch still runs its commands in order; whether
        other clients can see it half-applied is backend-specific.
        """

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        """Yield every key (as ``bytes``) matching the glob pattern ``match`` once.

        Patterns follow Redis glob rules (``*``, ``?``, ``[abc]``, and ``\\`` to
        escape the next character). Core only ever passes an *escaped literal
        prefix* followed by ``*``, so every backend must at least treat
        ``\\*``, ``\\?``, ``\\[``, ``\\]`` and ``\\\\`` as literal characters.
        ``count`` is a batch-size hint and may be ignored. Keys created or
        deleted during the scan may or may not be reported.
        """

    def maintenance(self) -> None:
        """Housekeeping (compaction, checkpoints); a no-op where there is none."""

    def close(self) -> None:
        """Release connections and files. Using the backend afterwards is an error."""


@runtime_checkable
class UnitScopes(Protocol):
    """What a backend declaring ``capabilities.locking_units`` offers in addition."""

    def unit_scope(self, write: bool) -> AbstractContextManager[bool]:
        """A context manager holding the store for one unit of work on this thread.

        ``__enter__`` returns ``True`` when the scope is held, ``False`` when it
        cannot be (say, this thread already holds one); core then falls back to
        watching. While held, on the calling thread:

        * every read (direct calls and ``execute()`` of any pipeline) sees one
          consistent state that no other client can change: ``write=True`` takes
          the store's write lock, waiting for other writers like any write does;
          ``write=False`` takes a read snapshot and must not be written through;
        * ``execute()`` applies its queue inside the scope, and direct writes do too;
        * leaving without an exception commits everything at once (errors from
          the commit propagate); leaving with one rolls everything back.

        Such a backend may also offer ``read_batch(hashes, singles, lists)``: one
        result per key, in that order, exactly what a non-transactional pipeline of
        ``hgetall(key)`` for each of ``hashes``, ``hget(key, field)`` for each
        ``(key, field)`` of ``singles`` and ``lrange(key, 0, -1)`` for each of
        ``lists`` returns, or raises; each answer a new object (core edits the
        dicts it keeps, a key read twice included). Core calls it only inside a
        held scope, with its own ``str`` keys and ``bytes`` fields, so the backend
        may skip the pipeline's queue (a store running in-process reads faster
        without it).
        """
        ...


class ScopeCommits(Protocol):
    """What a write scope from :meth:`UnitScopes.unit_scope` may offer in addition (optional).

    Core looks for ``commit_writes`` on the held ``write=True`` scope and, when it
    is there, hands it a unit's writes instead of queueing them on a pipeline
    and leaving the scope: a small write then costs no pipeline or command
    objects.
    """

    def commit_writes(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Apply ``writes`` in order inside the held scope, then commit it.

        Each write is ``(command, args)``: a :class:`Commands` write method's
        name and its positional arguments (``delete``, ``set``, ``hdel``,
        ``rpush``, ``lpush``, ``lpop``, ``rpop``, ``lset``, ``ltrim``), except
        ``hset``, whose args are ``(key, mapping)``; a backend declaring
        ``capabilities.whole_hash_writes`` also gets ``("hreplace", (key, mapping))``
        (:class:`WholeHashWrites`). Afterwards the scope is no
        longer held (its ``__exit__`` does nothing). If it raises before the
        commit, nothing was applied and the caller leaves the scope with an
        exception (rolling back); if the commit itself fails, it is rolled back.

        A scope whose ``takes_created`` attribute is ``True`` is called with a
        second argument, ``created``: keys of nodes the unit made, which cannot
        exist in the store yet (their rows need not be looked up). One whose
        ``takes_fresh`` is also ``True`` gets a third, ``fresh``: ``{key: mapping
        or list of items}``, new nodes whose whole content is their only write,
        kept out of ``writes`` (no write tuple per node); it applies each as an
        ``hset``/``rpush`` of its content before ``writes`` (an empty content
        writes nothing).

        Such a scope may also offer ``commit_fresh(writes, fresh)``: the same as
        ``commit_writes(writes, (), fresh)``, called only with writes and contents
        core encoded itself, which the scope may take without checking their form
        again: every field, value and item is ``bytes``, every fresh content is a
        non-empty ``dict`` or ``list`` whose key is new and written by nothing in
        ``writes``, and each write is an ``hset`` or ``hreplace`` (a small plain
        assignment, ``rd[k] = {...}``, sends its root's header and item so). What
        the store itself decides (a key holding another type, a node's row outgrowing
        its packed form) is still the scope's to check, with ``commit_writes``'s
        errors. Core uses it, where present, for that assignment only; everything
        else goes through ``commit_writes``.

        And ``read_item(refs, content, field)``: ``(hgetall(refs), hget(content,
        field))`` read in the held scope at once (a node's header and one of its
        items, what that assignment reads first), returning and raising exactly what
        the two reads would, in that order.

        And ``read_header(refs, key)``: ``hgetall(refs)`` read in the held scope,
        returning and raising exactly what it would. ``key`` is a key the caller reads
        or writes next in the same scope (a list's content, for a write at one of its
        ends, which first reads the node's header): the scope may read it at once, so
        that those later commands need no read of their own. Nothing about ``key`` is
        answered or raised here; its commands answer and raise as they always do.
        """
        ...


class WholeHashWrites(Protocol):
    """What a backend declaring ``capabilities.whole_hash_writes`` offers in addition.

    ``hreplace`` is a write command like ``hset``: the backend offers it directly,
    its pipelines queue it (its result in ``execute()``'s list, applied atomically
    with the rest of a transactional batch), and a write scope's
    :meth:`ScopeCommits.commit_writes` accepts ``("hreplace", (key, mapping))``.
    Core only sends it for a hash it read whole (or wrote) in the same unit, of at
    most ``WHOLE_HASH_FIELDS`` fields (:mod:`etcher._unit`), on a pipeline or
    through ``commit_writes()``; never through :meth:`CheckedCommits.checked_commit`.
    """

    def hreplace(self, name: KeyT, mapping: Mapping[Any, EncodableT]) -> Any:
        """Make hash ``name`` hold exactly ``mapping``; returns ``True``.

        Fields of the stored hash missing from ``mapping`` are removed, the others
        take their new values; a missing key is created. An empty ``mapping``
        deletes the key (empty containers do not exist). Fields and values are
        normalized as :meth:`Commands.hset` normalizes them. A key holding
        anything but a hash raises ``WrongTypeError`` and changes nothing.
        """
        ...


SubtreeChunk: TypeAlias = tuple[dict[str, dict[bytes, bytes] | list[bytes]], list[str], list[str]]
"""What :meth:`SubtreeReads.read_subtree` returns: ``(contents, absent, frontier)``."""


class SubtreeReads(Protocol):
    """What a backend declaring ``capabilities.subtree_reads`` offers in addition."""

    def read_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """The stored contents of the nodes reachable from ``roots``, at most ``limit`` of them.

        A node ``uid`` (text starting with ``D`` for a dict, ``L`` for a list) keeps
        its content in key ``content_prefix + uid``: a hash whose values are
        ``b"<seq>|<tagged value>"`` for a dict, a list of tagged values for a list.
        A tagged value starting with ``@`` links to the node whose uid follows it.
        The walk is breadth-first from ``roots`` (read first, in order), reads each
        node once and stops after ``limit`` nodes (at least one, unless every root is
        left out as below). Returns:

        * ``contents``: ``{uid: content}`` for every node read, a ``dict`` of bytes for a
          ``D`` node and a ``list`` of bytes for an ``L`` node (empty if the key is missing);
        * ``absent``: the nodes read whose content is empty *and* whose header key
          ``refs_prefix + uid`` does not exist (a dangling link, a collected node);
        * ``frontier``: uids linked from the contents returned that this call did not read,
          each once; the caller continues from them (skipping what it already has).

        A backend may leave a node it finds too wide to read well this way out of
        ``contents``, even the first root: it then comes back in ``frontier``, and a
        caller that gets a root of its call back there reads that node with plain
        reads (Redis leaves a first root that is a dict of more than 10,000 fields
        to one plain ``HGETALL``).

        Everything one call returns is one consistent state of the store. Inside a
        unit scope (:class:`UnitScopes`) every call sees the scope's state. A link
        that does not name a node is not followed (the caller reports it).
        """
        ...


SubtreeVisit: TypeAlias = Callable[[str, "dict[bytes, bytes] | list[bytes]", list[str]], None]
"""What :meth:`SubtreeVisits.visit_subtree` calls per node: ``visit(uid, content, out)``."""


class SubtreeVisits(Protocol):
    """What a backend declaring ``capabilities.subtree_visits`` offers in addition."""

    def visit_subtree(
        self, content_prefix: str, refs_prefix: str, root: str, visit: SubtreeVisit
    ) -> list[str] | None:
        """Walk node ``root``'s document, handing each node's content to ``visit`` as it is read.

        Node keys and contents are as in :meth:`SubtreeReads.read_subtree`. The walk
        reads ``root`` first, then level by level the uids ``visit`` names: for each node
        read whose content is not empty it calls ``visit(uid, content, out)`` once, and
        ``visit`` appends to ``out`` the uids of that content's links still to read. The
        caller names each uid at most once over one call and never ``root``, so the
        walk need not remember what it read; it follows exactly what ``visit`` names
        (a link ``visit`` leaves out is not read) and reads each level in any order.

        The whole walk is one consistent state of the store, however many nodes it
        reads. ``content`` is the caller's to keep. Returns the nodes read whose content
        is empty *and* whose header key ``refs_prefix + uid`` does not exist (a dangling
        link, a collected node; ``visit`` is not called for them), or ``None``, having
        read nothing, when the backend cannot take such a state by itself right now (the
        calling thread holds a unit scope): core then reads through its unit path. An
        error raised by ``visit`` ends the walk and propagates unchanged.
        """
        ...


UnlinkChunk: TypeAlias = tuple[
    dict[bytes, bytes],
    bytes | None,
    dict[str, dict[bytes, bytes]],
    dict[str, dict[bytes, bytes] | list[bytes]],
]
"""What :meth:`UnlinkReads.read_unlinked` returns: ``(parent_header, item, headers, contents)``."""


class UnlinkReads(Protocol):
    """What a backend declaring ``capabilities.unlink_reads`` offers in addition."""

    def read_unlinked(
        self,
        content_prefix: str,
        refs_prefix: str,
        parent: str,
        field: bytes,
        alive: Sequence[str],
        limit: int,
        also: Sequence[str] = (),
    ) -> UnlinkChunk:
        """Read dict item ``field`` of node ``parent`` and what unlinking it would need.

        Node keys are as in :meth:`SubtreeReads.read_subtree`; a node's *header* is
        the hash ``refs_prefix + uid``: fields starting with ``#`` are bookkeeping
        (``#p``: pinned, ``#d``: pending garbage), every other field is a parent's
        uid and the number of links it holds. Returns:

        * ``parent_header``: every field of ``parent``'s header (empty if missing);
        * ``item``: the stored item (``b"<seq>|<tagged value>"``), ``None`` if missing;
        * ``headers`` and ``contents``: when the item links a node, ``{uid: header}``
          and ``{uid: content}`` for some nodes, each exactly as stored (a missing key
          is an empty ``dict`` or ``list``). Which nodes is a hint: core reads
          whatever else it needs. A backend reads at most ``limit`` keys here, and
          should read those a collection of the linked node would read: the headers
          of the nodes reached from it, the contents of those that lose their last
          parent (no parent but dead ones, or ``parent``'s one link; never a
          pinned or pending node, nor one named in ``alive``), and for the others
          the headers up one chain of parents (the first live one each time, not
          back along the chain) until a node in ``alive``, a pinned node, or a
          parent named in ``alive``. The headers of the nodes named in ``also`` (those
          a new value links) come first, whatever the item holds; they count in
          ``limit`` too.

        Everything one call returns is one consistent state of the store.
        """
        ...


class UnlinkPlan(NamedTuple):
    """What :meth:`UnlinkCommits.unlinking_commit` unlinks, and how it retires what dies."""

    content_prefix: str
    """Node content keys are ``content_prefix + uid`` (as in :meth:`SubtreeReads.read_subtree`)."""
    refs_prefix: str
    """Node header keys are ``refs_prefix + uid`` (as in :meth:`UnlinkReads.read_unlinked`)."""
    pending: str
    """The namespace's pending-garbage hash: ``uid -> stamp`` of every node retired with grace."""
    parent: str
    """The node whose item is unlinked: a dict (its content key holds ``field``), or a
    list when ``position`` is set."""
    field: bytes
    """The item's field in ``content_prefix + parent`` (unused with ``position``)."""
    alive: tuple[str, ...]
    """Nodes never to collect (the namespace root and ``parent``): reaching one refuses."""
    stamp: bytes | None
    """``None``: delete the dead nodes' keys (no grace period). Otherwise the expiry
    stamp (ASCII seconds) to retire them with: ``#d`` in each header and an entry in
    ``pending``, their contents left as they are."""
    limit: int
    """At most this many nodes may die (a bigger subtree refuses)."""
    budget: int
    """At most this many items (dict fields and list items, all nodes together) may be
    looked at (more refuses)."""
    contents: bool = False
    """Also answer the item as it was read and the contents of the nodes collected and
    of the trees of those kept (a ``pop`` returns the value it removes)."""
    position: int | None = None
    """``None``: the item is dict item ``field``. Otherwise ``parent`` is a list and the
    item is the one at this position (negative counts from the end, as in Python), as
    stored when the commit runs; the commit also removes it from the list (a list's
    ``pop``, or ``del`` of an item)."""
    present: bool = False
    """The item must be there (a ``del``): when step 2 of
    :meth:`UnlinkCommits.unlinking_commit` finds the field missing (with ``position``: the
    position outside the list), write nothing and answer ``("missing", [])``; core then
    raises ``KeyError`` (``IndexError``) without reading first."""


class UnlinkOutcome(NamedTuple):
    """What :meth:`UnlinkCommits.unlinking_commit` returns."""

    status: str
    """``"applied"``, ``"conflict"`` (a check failed), ``"refused"`` (nothing written) or,
    with ``plan.present``, ``"missing"`` (no such item; nothing written)."""
    retired: list[str]
    """The uids collected (deleted or made pending), when applied."""
    item: bytes | None = None
    """With ``plan.contents``, when applied: the item as read before the writes (``None``
    when the field was missing: core's ``pop`` then answers its default or ``KeyError``)."""
    contents: dict[str, dict[bytes, bytes] | list[bytes]] | None = None
    """With ``plan.contents``, when applied: each collected node's content as it was,
    and that of every node a kept node reaches."""


class UnlinkCommits(Protocol):
    """What a backend declaring ``capabilities.unlink_commits`` offers in addition."""

    def unlinking_commit(
        self,
        checks: Sequence[tuple[str, tuple[Any, ...], Any]],
        writes: Sequence[tuple[str, tuple[Any, ...]]],
        plan: UnlinkPlan,
    ) -> UnlinkOutcome:
        """:meth:`CheckedCommits.checked_commit` that also collects the item ``plan`` unlinks.

        Atomically, as one step no other client sees half done:

        1. If any check fails, write nothing and return ``("conflict", [])``.
        2. Read item ``plan.field`` of hash ``plan.content_prefix + plan.parent``
           *as stored now*, before the writes (which may delete or replace it). If
           it is missing or its value (after ``<seq>|``) is not a link (``@`` and a
           uid), nothing dies: apply ``writes`` and return ``("applied", [])``. But
           if it is missing and ``plan.present`` is set, write nothing and return
           ``("missing", [])`` (core's ``del`` then raises ``KeyError``).
        3. If it links node ``X``, look at the nodes reachable from ``X`` (each node's
           content: a dict's item values, a list's items). Collect only when all of
           this holds, which proves every one of them unreachable once the item is
           gone; otherwise write nothing and return ``("refused", [])``:

           * each reached node's header exists, holds ``#k`` matching its uid's
             kind (``d`` for ``D...``, ``l`` for ``L...``), no ``#d`` (already
             pending), no other ``#`` field but ``#s`` and ``#p``, and
             back-references naming uids with decimal counts, among them
             ``plan.parent`` for ``X`` and every dying node that links it for
             any other node;
           * nodes die level by level, as core's collection decides: ``X`` loses
             the item's link (its ``plan.parent`` count down by one) and dies if
             no back-reference or pin is left; at each next level, a node linked
             from nodes that died at the level before dies if those were all its
             back-references left and it is not pinned, and otherwise loses their
             back-references and survives (a later level may still take its last
             ones: a node reached at two depths). A node that survives is *kept*
             and not looked into; it needs no further proof when pinned or still
             linked by ``plan.parent`` (``X`` linked twice), and otherwise one
             chain of parents must prove it reachable without the dying nodes:
             the chain starts at the node and steps each time to a parent that is
             neither dying nor already on the chain (nor, from ``X``, the
             parent), and ends at a node named in ``plan.alive`` or a pinned one,
             within a few steps; a pending node or a missing header on the way
             refuses. What no such chain proves (a dead end: a cycle) may be
             decided exactly, as core's collection does: the upward closure of
             those nodes (every ancestor neither dying nor known alive, within
             ``plan.limit``; pending or missing headers refuse) lives where a
             pinned node of it, or one with a parent known alive, reaches it
             through the closure's links; the rest dies (level by level as above,
             which may leave more nodes to prove the same way). A backend may
             refuse instead; a ``pop`` (``plan.contents``) needing it refuses;
           * no reached node is named in ``plan.alive``;
           * every stored item is well formed (a dict item ``<digits>|<value>``
             with a non-empty value; a link ``@`` then ``D`` or ``L`` and ASCII
             letters and digits), every key has the type its node needs, and
             ``plan.pending`` is a hash or missing;
           * at most ``plan.limit`` nodes and ``plan.budget`` items;
           * no write in ``writes`` names a key of a reached node (nor as an
             ``hset_item`` counter key).

           A backend may refuse for any other reason too (a lower bound, no
           support at all): a refusal always leaves the store as it was.
           With ``plan.position`` set, step 2 reads list ``plan.content_prefix +
           plan.parent`` instead: its item at ``plan.position`` (the raw list item, no
           ``<seq>|``), refusing when the position is outside the list (with
           ``plan.present``: answering ``("missing", [])``, nothing written; a
           missing list is an empty one), the item is
           empty, or a write of ``writes`` names that list; the back-reference
           count from ``plan.parent`` is then how many times the list holds ``X``.
           A backend may refuse a removal that would move many items.
        4. Having collected: apply ``writes`` (with ``plan.position``, then remove that
           item from the list, the others keeping their order), then for every
           collected (not kept) node either
           delete its header and content keys (``plan.stamp is None``), or set
           ``#d`` to ``plan.stamp`` in its header and ``uid -> plan.stamp`` in
           ``plan.pending``, also deleting the back-references it lost before it
           died (``X``'s ``plan.parent``, those cut at a shallower level); from each
           kept node's header delete the back-references it lost (as ``Graph``
           does for a survivor), ``X``'s ``plan.parent`` counted down by one.
           Return ``("applied", [the collected uids])``; with
           ``plan.contents``, also the item as read in step 2 (``None`` if
           missing) and ``{uid: content}`` of every collected node as it was
           (a dict's as ``{field: value}``, a list's as its items), and of every
           node a kept node reaches (itself included), read before the writes, so
           that the popped value can be built whole; a node there that is named
           in ``plan.alive`` (whose content the writes may change) or has a
           missing, pending or foreign-kind header refuses, as do the bounds.

        Errors, a lost connection and malformed writes are as in
        :meth:`CheckedCommits.checked_commit`. Core retries a conflict as any
        other, and redoes a refusal through its usual path (reads, then a
        checked commit), so an implementation that refuses a case it is not
        sure of costs a round trip, never data.
        """
        ...


@runtime_checkable
class CheckedCommits(Protocol):
    """What a backend declaring ``capabilities.checked_commits`` offers in addition."""

    def checked_commit(
        self,
        checks: Sequence[tuple[str, tuple[Any, ...], Any]],
        writes: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> bool:
        """Atomically: if every check holds, apply every write; return whether it applied.

        ``checks`` are ``(command, args, expected)``: a read of :class:`Commands`
        (``get``, ``hget``, ``hgetall``, ``hlen``, ``hexists``, ``llen``,
        ``lindex``, ``lrange``, ``exists``) with the arguments its method takes,
        and the answer that method gave. A check holds when the same read, run
        now, would give an equal answer (a read that would now raise, say a
        wrong type, does not hold). If any check fails, nothing is written and
        the result is ``False``: the caller's reads went stale (a conflict).

        ``writes`` are ``(command, args)`` with ``args`` as the Redis command
        takes them after its name: ``("hset", (key, field, value, ...))``,
        ``("hdel", (key, field, ...))``, ``("rpush"|"lpush", (key, value, ...))``,
        ``("lpop"|"rpop", (key,)|(key, count))``, ``("lset", (key, index, value))``,
        ``("ltrim", (key, start, end))``, ``("set", (key, value))`` and
        ``("delete", (key,))``. They apply in order, as one atomic step that no
        other client sees half done.

        A write that would fail (a wrong type, ``lset`` out of range or on a
        missing list) raises the matching :mod:`etcher.errors` class and
        applies *nothing*; so does a malformed call (``ValueError``). Keys may
        be many (a unit that deletes a big document names all its nodes).
        Like a transaction's ``execute()``, a call whose connection fails after
        sending raises ``BackendUnavailable`` (applied or not, unknown) and must
        not be repeated blindly.

        A backend declaring ``capabilities.item_writes`` also takes two commands
        about etcher's stored dict items (``b"<seq>|<tagged value>"``, a link's
        tagged value starting with ``@``). The check
        ``("unlinked_item", (key, field, seq_key, seq_field), None)`` holds when
        hash field ``field`` of ``key`` holds an item whose value is not a link,
        or nothing while ``seq_field`` of hash ``seq_key`` holds a decimal count
        or nothing. The write ``("hset_item", (key, field, value, seq_key,
        seq_field))`` stores ``b"<seq>|" + value`` in ``field``: ``seq`` is the
        one the field's item has, or, for a new field, the count in
        ``seq_field`` (missing: 0), which is raised by one. The write
        ``("hincr", (key, field, n))`` (``n`` ASCII digits) adds ``n`` to the decimal
        count in hash field ``field`` of ``key`` (missing field or key: from 0): a
        back-reference counted without reading it. When the stored field holds
        anything but ASCII digits the commit fails as a failed check does (nothing
        applied, ``False``; core's retry reads the damage). Core never sends another
        write of the same hash with it.
        """
        ...


__all__ = [
    "Capabilities",
    "CheckedCommits",
    "Commands",
    "EncodableT",
    "KeyT",
    "Pipeline",
    "StorageBackend",
    "SubtreeChunk",
    "SubtreeReads",
    "UnitScopes",
    "UnlinkChunk",
    "UnlinkCommits",
    "UnlinkOutcome",
    "UnlinkPlan",
    "UnlinkReads",
    "WholeHashWrites",
]
