"""Units of work: how every public operation reads and writes the store.

A :class:`Unit` is one optimistic transaction. Everything it reads from the
store is WATCHed first, everything it writes is buffered in memory (and seen
by its own later reads), and :meth:`Unit.commit` sends all writes as one
``MULTI/EXEC`` batch, which fails with ``WatchError`` if anything read has
changed meanwhile. Nothing reaches the store before the commit, so an
exception anywhere inside a unit leaves the store untouched.

:class:`DirectReader` offers the same read methods straight on the backend
(no watch, no overlay) for plain point reads outside transactions.

Reads come in two shapes: single ones (``hget`` ...) and batched
``prefetch_*`` calls that watch and read many keys in one round trip, which
is how graph walks stay at O(depth) round trips.

On a backend with ``capabilities.locking_units`` (SQLite) a unit made with
``scope=True`` (it will write) or ``scope=False`` (a read-only snapshot)
instead holds the store through ``backend.unit_scope()``: nothing it reads can
change under it, so it watches nothing and never conflicts. Profiling showed
the watch bookkeeping (a version query per watch, another at commit, and a
separate read transaction per batch) was most of the SQL an operation ran.

On a backend with ``capabilities.checked_commits`` (Redis) a unit that may
write watches nothing either: it keeps every answer it read, and
:meth:`Unit.commit` hands them with the writes to ``checked_commit()``, which
re-runs the reads on the server and applies the writes only if every answer
is unchanged (one ``EVALSHA``); otherwise the unit conflicts and is retried,
as after a ``WatchError``. That saves the ``WATCH`` round trips and Redis's
per-key watch cost, which grows with the keys a connection already watches.
On its first attempt a unit may also *assume* a node is live instead of
reading its header (:meth:`Unit.assume_live`): the assumption becomes a check
of the commit, so an append through a handle is a single round trip.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from itertools import chain
from typing import Any, Protocol, TypeVar, cast

from etcher.errors import ConflictTimeout, WatchError
from etcher.spec import (
    CheckedCommits,
    Pipeline,
    ScopeCommits,
    StorageBackend,
    SubtreeChunk,
    SubtreeReads,
    UnitScopes,
    UnlinkCommits,
    UnlinkOutcome,
    UnlinkPlan,
    UnlinkReads,
)

T = TypeVar("T")

_MISSING = object()

_DIRECT_READS = 4
"""Up to this many reads of a unit holding a scope go to the backend one by one (no pipeline)."""

WHOLE_HASH_FIELDS = 64
"""Largest hash core commits whole (``spec.WholeHashWrites``) instead of as field edits.

A bigger one (a shared child's header listing hundreds of parents) would be
rewritten entirely for a one-field change; a store keeps such hashes field by
field anyway (SQLite spills them to one row per field)."""


class UnlinkRefused(WatchError):
    """A speculating unit's unlinking commit (:meth:`Unit.assume_item` with a plan) was
    refused: what the item links is no small tree. Nothing was written, and nobody else
    wrote either, so the retry (which reads, as usual) starts at once, without back-off."""


class ItemMissing(Exception):
    """A speculating unit's unlinking commit with ``plan.present`` (a ``del``) found no such
    item (``"missing"``) and wrote nothing: the caller raises ``KeyError`` or
    ``IndexError`` as its reading path would have."""


class CallerCode(Exception):
    """Raised inside a unit when its work needs code of the caller's (a ``dict`` subclass's
    ``items()``, say). The unit is abandoned, ``work`` runs outside any unit (once), and
    the unit is redone; ``work`` leaves what it learnt in :attr:`Unit.prepared`.
    """

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__("caller code must run outside the unit of work")
        self.work = work


class Reader(Protocol):
    """The reads an operation makes: through a :class:`Unit` or a :class:`DirectReader`.

    Code that only reads (handles' single reads, graph walks) is typed with this
    protocol, so it works the same inside and outside a unit of work.
    """

    in_unit: bool
    """True inside a unit of work (reads are watched or checked; writes are buffered)."""

    def hget(self, key: str, field: bytes) -> bytes | None: ...

    def hgetall(self, key: str) -> dict[bytes, bytes]: ...

    def hlen(self, key: str) -> int: ...

    def llen(self, key: str) -> int: ...

    def lindex(self, key: str, index: int) -> bytes | None: ...

    def lrange(self, key: str, start: int, end: int) -> list[bytes]: ...

    def get(self, key: str) -> bytes | None: ...


class DirectReader:
    """Reads straight from the backend: each call is atomic on its own, nothing is watched.

    Its read methods *are* the backend's (bound once, here): a point read through
    a handle costs no call of its own on top of the backend's.
    """

    __slots__ = ("backend", "get", "hget", "hgetall", "hlen", "lindex", "llen", "lrange")

    in_unit = False

    hget: Callable[[str, bytes], bytes | None]
    hgetall: Callable[[str], dict[bytes, bytes]]
    hlen: Callable[[str], int]
    llen: Callable[[str], int]
    lindex: Callable[[str, int], bytes | None]
    lrange: Callable[[str, int, int], list[bytes]]
    get: Callable[[str], bytes | None]

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self.hget = backend.hget
        self.hgetall = backend.hgetall
        self.hlen = backend.hlen
        self.llen = backend.llen
        self.lindex = backend.lindex
        self.lrange = backend.lrange
        self.get = backend.get


class Unit:
    """One atomic, optimistic unit of work over a backend (see the module docstring)."""

    in_unit = True

    # A unit is made per public operation: what every unit starts with is a class
    # default, assigned on the instance only where it changes (fewer stores per unit).
    # The unit's pipeline, made on first use: a unit holding a scope (SQLite) reads and
    # commits without one.
    _pipe: Pipeline | None = None
    # The held scope (see the module docstring) and whether it may write.
    _scope: AbstractContextManager[bool] | None = None
    _scope_write = False
    # The held scope's commit_writes() (spec.ScopeCommits), where it offers one, and
    # whether it takes the keys this unit created (see _created).
    _scope_commit: Callable[..., None] | None = None
    _scope_created = False
    # Whether that commit_writes() also takes new nodes' contents apart (see _fresh).
    _scope_fresh = False
    needs_write_scope = False
    # Read-only units on other backends check their reads instead of watching them:
    # (command, args, digest of the result) of every read, re-read atomically at the end.
    _checked: list[tuple[str, tuple[Any, ...], int]] | None = None
    # Units that may write on a backend with checked commits keep every read's answer
    # instead (command, args, answer): the commit re-checks them as it applies the writes.
    _expect: list[tuple[str, tuple[Any, ...], Any]] | None = None
    # len(self._checked) when every checked read so far came from one atomic subtree read.
    _one_call = -1
    # The plan of an unlinking commit (assume_item), and who learns what it retired.
    _unlink: tuple[UnlinkPlan, Callable[[UnlinkOutcome], None]] | None = None
    # Headers whose back-reference counts this unit raises without reading them
    # (add_link_blind): no other write of the unit may meet them.
    _blind: set[str] | None = None
    # Whether assume_live() may skip a read (RetryPolicy.run turns it on for first
    # attempts only: a wrong guess is a conflict, and the retry must read for real).
    speculate = False
    closed = False
    # Undo records of the open savepoints (None while there is none); see savepoint().
    _undo: list[tuple[Any, ...]] | None = None

    def __init__(self, backend: StorageBackend, scope: bool | None = None) -> None:
        self.backend = backend
        self._watched: set[str] = set()
        capabilities = backend.capabilities
        if scope is not None and capabilities.locking_units:
            scopes: UnitScopes = backend  # type: ignore[assignment]  # (no cast() call)
            held = scopes.unit_scope(scope)
            if held.__enter__():
                self._scope = held
                self._scope_write = scope
                if scope:
                    commits: ScopeCommits = held  # type: ignore[assignment]  # if it offers it
                    # try/except rather than contextlib.suppress(): no context manager per unit.
                    try:
                        self._scope_commit = commits.commit_writes
                    except AttributeError:
                        pass  # the scope has no commit_writes(): commit through a pipeline
                    else:
                        self._scope_created = getattr(held, "takes_created", False) is True
                        self._scope_fresh = getattr(held, "takes_fresh", False) is True
        elif scope is False:
            self._checked = []
        elif capabilities.checked_commits:
            self._expect = []
        # Hashes: the known state of fields (from the store or written here), the keys whose
        # every field is known, the field writes to send, and keys to drop before them.
        self._fields: dict[str, dict[bytes, bytes | None]] = {}
        self._full: set[str] = set()
        self._dirty: dict[str, dict[bytes, bytes | None]] = {}
        # Keys to delete, in the order dropped (a dict, not a set): a collected subtree's keys
        # then reach the store in the order they were read, so the backend's own per-key
        # structures (SQLite's row cache) are walked in memory order, not in hash order.
        self._dropped: dict[str, None] = {}
        # Keys of the nodes this unit made (create_hash/create_list): they cannot exist in
        # the store, so a scope's commit need not look them up (spec.ScopeCommits).
        self._created: set[str] = set()
        # New nodes' contents, {key: mapping or items}, while their creation is their only
        # write, for a scope whose commit_writes() takes them apart (takes_fresh): no write
        # tuple per node, and the scope packs them in one pass. Kept out of _dirty and
        # _list_ops until another write meets the key (_settle); known in _fields/_lists.
        self._fresh: dict[str, Any] = {}
        # Lists: full contents where known, and the commands to replay at commit.
        self._lists: dict[str, list[bytes]] = {}
        self._list_ops: list[tuple[str, str, tuple[Any, ...]]] = []
        # The same ops per key, to replay on a list read after its edits (in O(its ops)).
        self._ops_by_list: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        # Strings.
        self._strings: dict[str, bytes | None] = {}
        self._string_dirty: set[str] = set()
        self.after_commit: list[Callable[[], None]] = []
        # Results of caller code run outside the unit (see CallerCode), kept across retries.
        self.prepared: dict[int, tuple[Any, Any]] = {}
        self._savepoints: list[tuple[int, int, int]] = []

    @classmethod
    def in_held_scope(cls, backend: StorageBackend, held: Any) -> Unit:
        """A write unit on ``held``: a write scope of ``backend`` the caller has entered.

        It reads and commits through the scope as a unit that took the scope
        itself (``scope=True``) does, on a scope offering ``commit_writes()``
        (:class:`etcher.spec.ScopeCommits`): committing hands it the writes,
        closing rolls it back. For :mod:`etcher._listends`, whose operation began
        in the scope and turned out to need the graph's work.
        """
        unit = cls(backend)
        unit._expect = None  # the held scope keeps every read current: nothing to check
        unit._scope = held
        unit._scope_write = True
        unit._scope_commit = held.commit_writes
        unit._scope_created = getattr(held, "takes_created", False) is True
        unit._scope_fresh = getattr(held, "takes_fresh", False) is True
        return unit

    # --- watching ---------------------------------------------------------------
    def _read(self, command: str, *args: Any) -> Any:
        """One direct read of ``args[0]``, watched or checked as this unit requires."""
        if self._scope is not None:
            # The held scope keeps the read current: nothing to watch or check (a pop reads
            # the length and the item this way).
            return getattr(self.backend, command)(*args)
        checked = self._checked
        if checked is not None:
            value = getattr(self.backend, command)(*args)
            checked.append((command, args, _digest(value)))
            return value
        expect = self._expect
        if expect is not None:
            value = getattr(self.backend, command)(*args)
            expect.append((command, args, tuple(value) if isinstance(value, list) else value))
            return value
        self._watch((args[0],))
        return getattr(self.backend, command)(*args)

    def _watch(self, keys: Iterable[str]) -> None:
        if self._scope is not None or self._checked is not None or self._expect is not None:
            return  # the scope keeps every read current / the reads are checked at the end
        new = [k for k in keys if k not in self._watched]
        if new:
            self._pipeline().watch(*new)
            self._watched.update(new)

    def _pipeline(self) -> Pipeline:
        """This unit's transactional pipeline (for watches and commits), made on first use."""
        pipe = self._pipe
        if pipe is None:
            pipe = self._pipe = self.backend.pipeline(transaction=True)
        return pipe

    def assume_live(self, key: str, dead_field: bytes) -> bool:
        """Skip reading hash ``key`` when it only has to exist and lack ``dead_field``.

        On a backend with checked commits, a unit allowed to speculate records
        exactly that as two checks of its commit instead of reading the hash
        now: a write whose only read is such a check (an append through a
        handle) becomes one round trip. Returns False when the caller must read
        (no speculation here, or the unit already knows or wrote the key). If
        the guess is wrong the commit conflicts, and the retry reads.
        """
        if (
            self._expect is None
            or not self.speculate
            or key in self._fields
            or key in self._dirty
            or key in self._dropped
        ):
            return False
        self._expect += [("exists", (key,), 1), ("hexists", (key, dead_field), False)]
        return True

    def assume_item(
        self,
        key: str,
        field: bytes,
        header: str,
        dead: bytes,
        seq: bytes,
        present: bool = False,
        unlink: tuple[UnlinkPlan, Callable[[UnlinkOutcome], None]] | None = None,
    ) -> bool:
        """Plan to set item ``field`` of hash ``key`` without reading it or its node's header.

        Only a first, speculating attempt that has read and written nothing yet, on
        a backend with ``capabilities.item_writes``: the guess that the node is live
        (``header`` exists and lacks ``dead``) and that the field links nothing is
        checked by the commit, which also numbers a new field from ``seq`` of
        ``header``. The caller then writes with :meth:`hset_item`. Returns False
        when it must read as usual. ``present``: the field must hold an item too
        (a delete, which then needs no read: a scalar unlinks nothing).

        ``unlink``: where the backend also declares ``capabilities.unlink_commits``,
        the field may link a node too. The commit then collects it when it is a small
        tree (:meth:`etcher.spec.UnlinkCommits.unlinking_commit` with this plan) and
        hands its answer (what it retired...) to the callback, after the commit; any other shape
        refuses (:class:`UnlinkRefused`) and the retry reads as usual.
        """
        if (
            self._expect is None
            or self._expect
            or not self.speculate
            or self.has_writes
            or not self.backend.capabilities.item_writes
        ):
            return False
        if unlink is not None and self.backend.capabilities.unlink_commits:
            self._unlink = unlink
            self._expect += [("exists", (header,), 1), ("hexists", (header, dead), False)]
        else:
            self._expect += [
                ("exists", (header,), 1),
                ("hexists", (header, dead), False),
                ("unlinked_item", (key, field, header, seq), None),
            ]
        if present:
            self._expect.append(("hexists", (key, field), True))
        return True

    def assume_list_item(
        self,
        header: str,
        dead: bytes,
        unlink: tuple[UnlinkPlan, Callable[[UnlinkOutcome], None]],
    ) -> bool:
        """Plan to remove a list's item at ``unlink``'s ``plan.position`` without reading it.

        As :meth:`assume_item`, for a list's ``pop`` or ``del`` of one item: only a
        first, speculating attempt that has read and written nothing yet, on a backend
        with ``capabilities.unlink_commits``. The commit checks the list is live
        (``header`` exists and lacks ``dead``), then reads the item where it is then,
        removes it and collects what it links when that is a small tree; anything
        else (a position outside the list, a shared node...) refuses
        (:class:`UnlinkRefused`) and the retry reads as usual. Nothing else may be
        written by the unit. Returns False when it must read as usual.
        """
        if (
            self._expect is None
            or self._expect
            or not self.speculate
            or self.has_writes
            or not self.backend.capabilities.unlink_commits
        ):
            return False
        self._unlink = unlink
        self._expect += [("exists", (header,), 1), ("hexists", (header, dead), False)]
        return True

    def assume_link(self, header: str, dead: bytes, field: bytes, n: int, pin: bytes) -> bool:
        """Raise count ``field`` of node header ``header`` by ``n`` without reading it.

        Only a speculating unit on a backend with ``capabilities.item_writes``, whose
        guessed item (:meth:`assume_item`) is its only other write, and that has read
        nothing of ``header``: the commit checks the node is live (``header`` exists and
        lacks ``dead``), adds ``n`` on the server (the ``hincr`` write) and deletes ``pin``
        (being linked ends a pin, as :meth:`Graph.add_ref` does). A node deleted or
        retired meanwhile fails the check, and the retry reads (and refuses to link it).
        Returns False when the caller must read as usual.
        """
        if (
            not self.backend.capabilities.item_writes
            or header in self._fields
            or header in self._dirty
            or header in self._dropped
            or not self.assume_live(header, dead)
        ):
            return False
        blind = self._blind
        if blind is None:
            blind = self._blind = set()
        blind.add(header)
        self._list_ops.append((header, "hincr", (field, b"%d" % n)))
        self._list_ops.append((header, "hdel", (pin,)))
        return True

    def hset_item(self, key: str, field: bytes, tagged: bytes, header: str, seq: bytes) -> None:
        """Set the item planned by :meth:`assume_item`; the server numbers it at commit."""
        # Kept with the commands replayed at commit (it is one): nothing reads it back.
        self._list_ops.append((key, "hset_item", (field, tagged, header, seq)))

    # --- hash reads -------------------------------------------------------------
    def hget(self, key: str, field: bytes) -> bytes | None:
        known = self._fields.get(key)
        if known is not None:
            value = known.get(field, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
            if key in self._full:
                return None
        value = self._read("hget", key, field)
        self._fields.setdefault(key, {})[field] = value
        return value  # type: ignore[no-any-return]

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        if key not in self._full:
            if self._scope is not None and key not in self._dirty:
                # load() of one hash, inline: a write through a handle reads its header so.
                stored: dict[bytes, bytes | None] = self.backend.hgetall(key)
                self._fields[key] = stored
                self._full.add(key)
                return dict(stored)  # type: ignore[arg-type]  # no None: nothing written here
            self.load(hashes=(key,))
        if key not in self._dirty:
            # Only this unit's deletions are None: none here, so a plain copy (no Python loop).
            return dict(self._fields[key])  # type: ignore[arg-type]
        return {f: v for f, v in self._fields[key].items() if v is not None}

    def hlen(self, key: str) -> int:
        if key in self._full or key in self._dirty:
            return len(self.hgetall(key))
        return self._read("hlen", key)  # type: ignore[no-any-return]

    def prefetch_hashes(self, keys: Iterable[str]) -> dict[str, dict[bytes, bytes]]:
        """Load every field of each hash in ``keys`` (one watch + one batched read)."""
        keys = list(dict.fromkeys(keys))
        self.load(hashes=keys)
        return {k: {f: v for f, v in self._fields[k].items() if v is not None} for k in keys}

    def load(
        self,
        hashes: Iterable[str] = (),
        fields: Iterable[tuple[str, bytes]] = (),
        lists: Iterable[str] = (),
    ) -> None:
        """Watch and read whole hashes, single hash fields and whole lists in one batch.

        Whatever is already known to the unit is not read again. Pending writes
        of this unit are applied on top of what the store returns, so later
        reads see them.
        """
        full = self._full
        if (
            self._scope is not None
            and not lists
            and type(hashes) is tuple
            and type(fields) is tuple
            and len(hashes) + len(fields) <= _DIRECT_READS
        ):
            # A small write through a handle (open_item, add_ref): a few direct reads inside
            # the held scope, each stored as it comes (what the general path below does with
            # lists, an iterator and three loops).
            backend, known, dirty = self.backend, self._fields, self._dirty
            for key in hashes:
                if key not in full:
                    state: dict[bytes, bytes | None] = backend.hgetall(key)
                    pending = dirty.get(key)
                    if pending:
                        state.update(pending)
                    known[key] = state
                    full.add(key)
            for key, field in fields:
                if key not in full:
                    have = known.get(key)
                    if have is None:
                        known[key] = {field: backend.hget(key, field)}
                    elif field not in have:
                        have[field] = backend.hget(key, field)
            return
        # Most calls pass one or two kinds of reads: the empty default tuples cost nothing.
        if hashes:
            hashes = [k for k in dict.fromkeys(hashes) if k not in full]
        if fields:
            known = self._fields
            singles = [(k, f) for k, f in fields if k not in full and f not in known.get(k, {})]
        else:
            singles = []
        if lists:
            lists = [k for k in dict.fromkeys(lists) if k not in self._lists]
        if not hashes and not singles and not lists:
            return
        hashes = list(hashes)
        lists = list(lists)
        results = iter(self._fetch(hashes, singles, lists))
        for key, stored in zip(hashes, results, strict=False):
            # Backends hand out a fresh dict per read: keep it rather than copy it.
            state = stored
            pending = self._dirty.get(key)
            if pending:
                state.update(pending)
            self._fields[key] = state
            self._full.add(key)
        for (key, field), value in zip(singles, results, strict=False):
            self._fields.setdefault(key, {}).setdefault(field, value)
        for key, stored in zip(lists, results, strict=False):
            items = list(stored)
            for op, args in self._ops_by_list.get(key, ()):
                _apply_list_op(items, op, args)
            self._lists[key] = items

    def _fetch(
        self, hashes: list[str], singles: list[tuple[str, bytes]], lists: list[str]
    ) -> list[Any]:
        """Whole hashes, single fields and whole lists in one batch, watched or checked."""
        if self._scope is not None and len(hashes) + len(singles) + len(lists) <= _DIRECT_READS:
            # Inside a scope a direct read is part of the held state, and a few reads need
            # no batch: skip the pipeline (a write through a handle reads one or two keys).
            backend = self.backend
            direct: list[Any] = []
            for key in hashes:
                direct.append(backend.hgetall(key))
            for key, field in singles:
                direct.append(backend.hget(key, field))
            for key in lists:
                direct.append(backend.lrange(key, 0, -1))
            return direct
        self._watch(hashes + [k for k, _f in singles] + lists)
        batch = getattr(self.backend, "read_batch", None) if self._scope is not None else None
        if batch is not None:
            # A backend running in-process reads a held scope's batch directly: the
            # pipeline's queue and command objects cost more than the statement (SQLite).
            results: list[Any] = batch(hashes, singles, lists)
        else:
            pipe = self.backend.pipeline(transaction=False)
            for key in hashes:
                pipe.hgetall(key)
            for key, field in singles:
                pipe.hget(key, field)
            for key in lists:
                pipe.lrange(key, 0, -1)
            results = pipe.execute()
        if self._checked is not None:
            calls: list[tuple[str, tuple[Any, ...]]] = [("hgetall", (k,)) for k in hashes]
            calls += [("hget", kf) for kf in singles]
            calls += [("lrange", (k, 0, -1)) for k in lists]
            self._check(calls, results)
        elif self._expect is not None:
            # Copies: load() goes on to change the dicts it keeps, with this unit's writes.
            answers = iter(results)
            expect = self._expect
            expect += [("hgetall", (k,), dict(v)) for k, v in zip(hashes, answers, strict=False)]
            expect += [("hget", kf, v) for kf, v in zip(singles, answers, strict=False)]
            expect += [
                ("lrange", (k, 0, -1), tuple(v)) for k, v in zip(lists, answers, strict=False)
            ]
        return results

    def peek(
        self, hashes: list[str], lists: list[str]
    ) -> tuple[dict[str, dict[bytes, bytes]], dict[str, list[bytes]]]:
        """Whole hashes and lists, read (and watched) like :meth:`load` but not remembered.

        For big read-only walks: the unit's cache would otherwise hold a whole
        document's raw content next to the objects built from it. Keys this
        unit already knows or has written take the ordinary path.
        """
        if any(k in self._fields or k in self._dropped for k in hashes) or any(
            k in self._lists or k in self._ops_by_list for k in lists
        ):
            return self.prefetch_hashes(hashes), self.prefetch_lists(lists)
        results = self._fetch(hashes, [], lists)
        return dict(zip(hashes, results, strict=False)), dict(
            zip(lists, results[len(hashes) :], strict=True)
        )

    def read_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk | None:
        """One server-side subtree read, or ``None`` where this unit cannot take one.

        It can on a backend with ``capabilities.subtree_reads``, once nothing was
        written here (the store would not show the pending writes), when its reads
        need no watch: a held scope keeps them current, or they are checked at the
        end (each node read is recorded as the read it stands for). A single call
        that is the unit's only read is a snapshot by itself and needs no check.
        """
        if not self.backend.capabilities.subtree_reads or self.has_writes:
            return None
        checked = self._checked
        if self._scope is None and checked is None:
            return None
        subtrees: SubtreeReads = self.backend  # type: ignore[assignment]  # per its capability
        chunk = subtrees.read_subtree(content_prefix, refs_prefix, roots, limit)
        if checked is not None:
            self._check_subtree(checked, content_prefix, refs_prefix, chunk)
        return chunk

    def adopt_subtree(self, content_prefix: str, refs_prefix: str, chunk: SubtreeChunk) -> bool:
        """Take in a subtree read made before this unit, as if :meth:`read_subtree` made it.

        Only a unit that checks its reads at the end can (nothing written, no
        scope): the check re-reads what the answer stands for, so an answer read
        a moment earlier is exactly as good. Returns whether it was taken.
        """
        checked = self._checked
        if checked is None or self._scope is not None or self.has_writes:
            return False
        self._check_subtree(checked, content_prefix, refs_prefix, chunk)
        return True

    def _check_subtree(
        self,
        checked: list[tuple[str, tuple[Any, ...], int]],
        content_prefix: str,
        refs_prefix: str,
        chunk: SubtreeChunk,
    ) -> None:
        """Record each node of a subtree answer as the read it stands for."""
        contents, absent, frontier = chunk
        alone = not checked
        gone = set(absent)
        for uid, content in contents.items():
            key = content_prefix + uid
            if uid[:1] == "D":
                checked.append(("hgetall", (key,), _digest(content)))
            else:
                checked.append(("lrange", (key, 0, -1), _digest(content)))
            if not content:
                checked.append(("exists", (refs_prefix + uid,), _digest(int(uid not in gone))))
        self._one_call = len(checked) if alone and not frontier else -1

    def preload_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> int:
        """Read ahead the contents and headers of up to ``limit`` nodes below ``roots``.

        Inside a held scope the store cannot change under the unit, so what the
        subtree read returns is exactly what :meth:`load` would read later; with
        checked commits every node read becomes an answer the commit re-checks,
        like any other read of the unit. Either way it goes into the unit's
        cache as :meth:`load` would put it there (this unit's own writes applied
        on top; keys it already knows are left alone). Returns the number of
        nodes read (0 when nothing was done: no subtree reads, or reads that
        would need watching). Collecting a deep subtree then costs a few calls
        instead of a few per level (a 25,000-level chain on Redis: 25,000
        round trips before, see docs/performance.md).
        """
        expect = self._expect
        if not self.backend.capabilities.subtree_reads or (self._scope is None and expect is None):
            return 0
        roots = [
            r
            for r in roots
            if (content_prefix + r) not in self._full and (content_prefix + r) not in self._lists
        ]
        if not roots:
            return 0
        contents, _absent, _frontier = cast(SubtreeReads, self.backend).read_subtree(
            content_prefix, refs_prefix, roots, limit
        )
        for uid, content in contents.items():
            key = content_prefix + uid
            if expect is not None:
                # The store's answers, recorded before this unit's writes go on top of them.
                if isinstance(content, dict):
                    expect.append(("hgetall", (key,), dict(content)))
                else:
                    expect.append(("lrange", (key, 0, -1), tuple(content)))
            if isinstance(content, dict):
                if key not in self._full:
                    state: dict[bytes, bytes | None] = content  # type: ignore[assignment]
                    pending = self._dirty.get(key)
                    if pending:
                        state.update(pending)
                    self._fields[key] = state
                    self._full.add(key)
            elif key not in self._lists:
                items = list(content)
                for op, args in self._ops_by_list.get(key, ()):
                    _apply_list_op(items, op, args)
                self._lists[key] = items
        self.load(hashes=[refs_prefix + uid for uid in contents])
        return len(contents)

    def read_unlinked(
        self,
        content_prefix: str,
        refs_prefix: str,
        parent: str,
        field: bytes,
        alive: Sequence[str],
        limit: int,
        also: Sequence[str] = (),
    ) -> tuple[dict[bytes, bytes], bytes | None] | None:
        """Read item ``field`` of dict node ``parent`` with what unlinking it needs, in one call.

        On a backend with ``capabilities.unlink_reads``, for a unit that has read
        and written nothing yet and whose reads need no watch (they are checked
        at the commit, or a held scope keeps them current): the item and, when
        it links a node, the headers and contents a collection of that node
        would read (:meth:`etcher.spec.UnlinkReads.read_unlinked`), and the headers
        of the nodes named in ``also``, go into this
        unit as :meth:`load` would put them there, each answer a read the commit
        checks. Returns ``parent``'s header as read (not taken in: see
        :meth:`adopt_hash`) and the item; ``None`` where the caller must read as
        usual.
        """
        expect = self._expect
        if (
            not self.backend.capabilities.unlink_reads
            or (expect is None and self._scope is None)
            or self._fields
            or self._lists
            or self.has_writes
        ):
            return None
        reads: UnlinkReads = self.backend  # type: ignore[assignment]  # per its capability
        header, item, headers, contents = reads.read_unlinked(
            content_prefix, refs_prefix, parent, field, alive, limit, also
        )
        key = content_prefix + parent
        if expect is not None:
            expect.append(("hget", (key, field), item))
            # Copies: the unit goes on to change the dicts it keeps, with its writes.
            expect += [("hgetall", (refs_prefix + u,), dict(h)) for u, h in headers.items()]
            for uid, content in contents.items():
                if isinstance(content, dict):
                    expect.append(("hgetall", (content_prefix + uid,), dict(content)))
                else:
                    expect.append(("lrange", (content_prefix + uid, 0, -1), tuple(content)))
        fields, full = self._fields, self._full
        for uid, h in headers.items():
            fields[refs_prefix + uid] = h  # type: ignore[assignment]  # no None: nothing written
            full.add(refs_prefix + uid)
        for uid, content in contents.items():
            if isinstance(content, dict):
                fields[content_prefix + uid] = content  # type: ignore[assignment]  # as above
                full.add(content_prefix + uid)
            else:
                self._lists[content_prefix + uid] = list(content)
        if key not in full:  # (the parent's whole content, read as a node's, holds the item)
            fields[key] = {field: item}
        return header, item

    def adopt_hash(self, key: str, stored: dict[bytes, bytes]) -> None:
        """Take in hash ``key`` as the caller read it from the store (:meth:`read_unlinked`'s
        parent header), as :meth:`load` would have; a key this unit knows or wrote is left
        alone. The commit checks it like any read of the unit.
        """
        if key in self._fields or key in self._dirty or key in self._dropped:
            return
        if self._expect is not None:
            self._expect.append(("hgetall", (key,), dict(stored)))
        self._fields[key] = stored  # type: ignore[assignment]  # no None: nothing written
        self._full.add(key)

    def header_and_item(
        self, header: str, key: str, field: bytes
    ) -> tuple[dict[bytes, bytes | None] | None, bytes | None]:
        """``load(hashes=(header,), fields=((key, field),))``, then ``known_hash(header)``
        and ``hget(key, field)``, in one call: a write through a handle reads so."""
        if self._scope is None:
            self.load(hashes=(header,), fields=((key, field),))
            return self.known_hash(header), self.hget(key, field)
        # load()'s direct reads in the held scope, then hget() of what they stored, inline.
        known, full, backend = self._fields, self._full, self.backend
        if header not in full:
            state: dict[bytes, bytes | None] = backend.hgetall(header)
            pending = self._dirty.get(header)
            if pending:
                state.update(pending)
            known[header] = state
            full.add(header)
        have = known.get(key)
        if have is None:
            value = backend.hget(key, field)
            known[key] = {field: value}
        else:
            value = have.get(field, _MISSING)
            if value is _MISSING:
                if key in full:
                    value = None
                else:
                    value = have[field] = backend.hget(key, field)
        return known[header], value

    def take_reads(
        self, header: str, state: dict[bytes, bytes], key: str, field: bytes, item: bytes | None
    ) -> None:
        """Take in what :meth:`header_and_item` would have read, read by the caller in this
        unit's held scope (whole hash ``header``, and ``field`` of ``key``)."""
        self._fields[header] = state  # type: ignore[assignment]  # no None: nothing written
        self._full.add(header)
        self._fields.setdefault(key, {})[field] = item

    def known_hash(self, key: str) -> dict[bytes, bytes | None] | None:
        """Every field of hash ``key`` as this unit knows it, or ``None`` if it is not all known.

        A field deleted by this unit maps to ``None``. Not a copy (a big walk
        looks up thousands of nodes it has read ahead): callers only read it.
        """
        return self._fields[key] if key in self._full else None

    def known_list(self, key: str) -> list[bytes] | None:
        """The whole of list ``key`` as this unit knows it, or ``None``; not a copy either."""
        return self._lists.get(key)

    # --- hash writes ------------------------------------------------------------
    def _settle(self, key: str) -> None:
        """A new node of :attr:`_fresh` meets another write: its creation becomes an
        ordinary pending write (as :meth:`create_hash`/:meth:`create_list` make it)."""
        content = self._fresh.pop(key)
        self._created.add(key)
        if type(content) is dict:
            self._dirty[key] = content
        else:
            pushed = tuple(content)
            self._list_ops.append((key, "rpush", pushed))
            self._ops_by_list.setdefault(key, []).append(("rpush", pushed))

    def _settle_all(self) -> None:
        for key in list(self._fresh):
            self._settle(key)

    def hset(self, key: str, field: bytes, value: bytes) -> None:
        if key in self._fresh:
            self._settle(key)
        if self._undo is not None:
            self._note_field(key, field)
        self._fields.setdefault(key, {})[field] = value
        self._dirty.setdefault(key, {})[field] = value

    def hset_many(self, key: str, mapping: dict[bytes, bytes]) -> None:
        if key in self._fresh:
            self._settle(key)
        if self._undo is not None:
            for field in mapping:
                self._note_field(key, field)
        self._fields.setdefault(key, {}).update(mapping)
        self._dirty.setdefault(key, {}).update(mapping)

    def hdel(self, key: str, field: bytes) -> None:
        if key in self._fresh:
            self._settle(key)
        if self._undo is not None:
            self._note_field(key, field)
        self._fields.setdefault(key, {})[field] = None
        self._dirty.setdefault(key, {})[field] = None

    def create_hash(self, key: str, mapping: dict[bytes, bytes]) -> None:
        """Write a hash that is known not to exist yet (a new node): no read needed.

        The unit takes ``mapping`` over (callers build it for this call). It is
        both the hash's known state and its pending write: every later write of
        a known hash changes both alike, so one dict serves, not two copies per
        node of a big document.
        """
        if key in self._fresh:
            self._settle(key)
        if self._undo is not None:
            self._note_hash(key)
        state: dict[bytes, bytes | None] = mapping  # type: ignore[assignment]
        self._fields[key] = state
        self._full.add(key)
        self._dirty[key] = state
        self._created.add(key)

    def create_hashes(self, new: dict[str, dict[bytes, bytes]]) -> None:
        """:meth:`create_hash` of every ``{key: mapping}`` in ``new``, in its order.

        A write's new nodes are registered together (four C calls, not a call per
        node); the unit takes the mappings over, as :meth:`create_hash` does.
        """
        if (
            self._undo is not None
            or not self._scope_fresh
            or not self._fresh.keys().isdisjoint(new)
            or not self._dropped.keys().isdisjoint(new)
        ):
            # (A key made twice, or after its delete: never new uids. The ordinary way,
            # where _fresh, applied before every other write, would be out of order.)
            for key, mapping in new.items():
                self.create_hash(key, mapping)
            return
        self._fields.update(new)  # type: ignore[arg-type]  # no None: all new
        self._full.update(new)
        self._fresh.update(new)

    def drop_hash(self, key: str) -> None:
        """Delete a whole hash key."""
        if key in self._fresh:
            self._settle(key)
        if self._undo is not None:
            self._note_hash(key)
        self._fields[key] = {}
        self._full.add(key)
        self._dirty.pop(key, None)
        self._dropped[key] = None

    def drop_hashes(self, keys: list[str]) -> None:
        """:meth:`drop_hash` for many keys (a collected subtree)."""
        if self._undo is not None or (self._fresh and not self._fresh.keys().isdisjoint(keys)):
            for key in keys:
                self.drop_hash(key)
            return
        fields, dirty = self._fields, self._dirty
        for key in keys:
            fields[key] = {}
            dirty.pop(key, None)
        self._full.update(keys)
        self._dropped.update(dict.fromkeys(keys))

    # --- lists ------------------------------------------------------------------
    def _list_state(self, key: str) -> list[bytes]:
        items = self._lists.get(key)
        if items is None:
            self.prefetch_lists((key,))
            items = self._lists[key]
        return items

    def prefetch_lists(self, keys: Iterable[str]) -> dict[str, list[bytes]]:
        """Load the whole of each list in ``keys`` (one watch + one batched read)."""
        keys = list(dict.fromkeys(keys))
        self.load(lists=keys)
        return {k: self._lists[k] for k in keys}

    def llen(self, key: str) -> int:
        if key in self._lists or key in self._ops_by_list:
            return len(self._list_state(key))
        if self._scope is not None:  # _read()'s first case, inline: a pop or an insert
            return self.backend.llen(key)  # type: ignore[no-any-return]
        return self._read("llen", key)  # type: ignore[no-any-return]

    def lindex(self, key: str, index: int) -> bytes | None:
        if key in self._lists or key in self._ops_by_list:
            items = self._list_state(key)
            try:
                return items[index]
            except IndexError:
                return None
        if self._scope is not None:  # _read()'s first case, inline: a pop reads its item so
            return self.backend.lindex(key, index)  # type: ignore[no-any-return]
        return self._read("lindex", key, index)  # type: ignore[no-any-return]

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        if key in self._lists or key in self._ops_by_list:
            return _redis_range(self._list_state(key), start, end)
        return self._read("lrange", key, start, end)  # type: ignore[no-any-return]

    def list_op(self, key: str, op: str, *args: Any) -> None:
        """Queue a list command (rpush, lpush, lpop, rpop, lset, ltrim or delete)."""
        if not args and op in ("rpush", "lpush"):
            return  # pushing nothing changes nothing, and Redis refuses it as malformed
        if key in self._fresh:
            self._settle(key)
        if self._undo is not None:
            self._note_list(key)
        self._list_ops.append((key, op, args))
        self._ops_by_list.setdefault(key, []).append((op, args))
        items = self._lists.get(key)
        if items is not None:
            _apply_list_op(items, op, args)

    def create_list(self, key: str, items: list[bytes]) -> None:
        """Write a list that is known not to exist yet (a new node)."""
        if key in self._fresh:
            self._settle(key)
        if self._undo is None and self._scope_fresh and items and key not in self._dropped:
            self._lists[key] = list(items)
            self._fresh[key] = items
            return
        if self._undo is not None:
            self._note_list(key)
        self._lists[key] = list(items)
        self._created.add(key)
        if items:
            pushed = tuple(items)
            self._list_ops.append((key, "rpush", pushed))
            self._ops_by_list.setdefault(key, []).append(("rpush", pushed))
        else:
            self._ops_by_list.setdefault(key, [])

    # --- strings ----------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        if key in self._strings:
            return self._strings[key]
        value = self._read("get", key)
        self._strings[key] = value
        return value  # type: ignore[no-any-return]

    def set(self, key: str, value: bytes | None) -> None:
        """Set a string key (``None`` deletes it)."""
        if self._undo is not None:
            self._undo.append(
                ("s", key, self._strings.get(key, _MISSING), key in self._string_dirty)
            )
        self._strings[key] = value
        self._string_dirty.add(key)

    # --- savepoints ----------------------------------------------------------------
    # A transaction runs many operations in one unit; each of them must be all or nothing
    # even when the caller catches its error and commits the rest. While a savepoint is
    # open every write first records how to undo itself (per field, so an operation on a
    # big, fully read hash costs O(its writes), not O(the hash)). Reads need no record:
    # what they cache is the store plus earlier writes, which stays true after an undo.

    def savepoint(self) -> None:
        """Open a savepoint (they nest): :meth:`rollback` returns the buffers to this point."""
        if self._undo is None:
            self._undo = []
        if self._fresh:
            # An undo restores _dirty and _list_ops, where these would be missing.
            self._settle_all()
        self._savepoints.append((len(self._undo), len(self._list_ops), len(self.after_commit)))

    def release(self) -> None:
        """Close the innermost savepoint, keeping what was written since."""
        self._savepoints.pop()
        if not self._savepoints:
            self._undo = None

    def rollback(self) -> None:
        """Undo every buffered write since the innermost savepoint, and close it.

        What was read stays watched: the caller saw the failed operation's
        outcome, so a change to what it read is still a conflict.
        """
        undo = self._undo
        assert undo is not None, "rollback() without savepoint()"
        mark, list_ops, callbacks = self._savepoints[-1]
        while len(undo) > mark:
            self._undo_one(undo.pop())
        del self._list_ops[list_ops:]
        del self.after_commit[callbacks:]
        self.release()

    def _note_field(self, key: str, field: bytes) -> None:
        assert self._undo is not None
        known, dirty = self._fields.get(key), self._dirty.get(key)
        self._undo.append(
            (
                "f",
                key,
                field,
                _MISSING if known is None else known.get(field, _MISSING),
                _MISSING if dirty is None else dirty.get(field, _MISSING),
                key in self._full,
            )
        )

    def _note_hash(self, key: str) -> None:
        # create_hash/drop_hash replace these dicts rather than change them: keep the old ones.
        assert self._undo is not None
        self._undo.append(
            (
                "h",
                key,
                self._fields.get(key, _MISSING),
                self._dirty.get(key, _MISSING),
                key in self._full,
                key in self._dropped,
            )
        )

    def _note_list(self, key: str) -> None:
        assert self._undo is not None
        ops = self._ops_by_list.get(key)
        self._undo.append(("l", key, -1 if ops is None else len(ops)))

    def _undo_one(self, record: tuple[Any, ...]) -> None:
        kind, key = record[0], record[1]
        if kind == "f":
            _, _, field, known, dirty, was_full = record
            _restore(self._fields, key, field, known)
            _restore(self._dirty, key, field, dirty)
            if not self._dirty.get(key, True):
                del self._dirty[key]  # an empty entry would still count as a pending write
            if not was_full:
                # A read after the write may have completed the hash, including the write.
                self._full.discard(key)
        elif kind == "h":
            _, _, known, dirty, was_full, was_dropped = record
            _put(self._fields, key, known)
            _put(self._dirty, key, dirty)
            (self._full.add if was_full else self._full.discard)(key)
            if was_dropped:
                self._dropped[key] = None
            else:
                self._dropped.pop(key, None)
        elif kind == "l":
            count = record[2]
            if count < 0:
                self._ops_by_list.pop(key, None)
            else:
                del self._ops_by_list[key][count:]
            # The cached contents include the undone ops; the next read rebuilds them from
            # the store (unchanged, or the unit conflicts) and the remaining ops.
            self._lists.pop(key, None)
        else:
            _, _, value, was_dirty = record
            _put(self._strings, key, value)
            (self._string_dirty.add if was_dirty else self._string_dirty.discard)(key)

    # --- commit -----------------------------------------------------------------
    @property
    def watching(self) -> bool:
        """Whether this unit has read (and so watches) anything."""
        return bool(self._watched)

    @property
    def has_writes(self) -> bool:
        return bool(
            self._dirty or self._dropped or self._list_ops or self._string_dirty or self._fresh
        )

    def commit(self) -> None:
        """Send every buffered write as one atomic batch; ``WatchError`` if a read went stale."""
        try:
            if self._scope is not None:
                self._commit_scope()
            elif self._expect is not None:
                if self._unlink is not None and (
                    self.has_writes or self._unlink[0].position is not None  # (its write)
                ):
                    self._commit_unlinking(self._unlink)
                elif self.has_writes:
                    if not cast(CheckedCommits, self.backend).checked_commit(
                        self._expect, self._write_commands()
                    ):
                        raise WatchError("the data changed while the unit was reading it")
                elif not self._expect_unchanged():
                    # Nothing to write: re-reading is as cheap, and not a write to the
                    # server (no WAIT for replicas, no unknown outcome on a lost reply).
                    raise WatchError("the data changed while the unit was reading it")
            elif self._checked is not None:
                if self.has_writes:
                    # Checked reads cannot guard writes: redo the work watching instead.
                    self.needs_write_scope = True
                    raise WatchError("a read-only unit needs to write; retrying with watches")
                if not self._reads_unchanged():
                    raise WatchError("the data changed while it was being read")
            elif self.has_writes or self._watched:
                pipe = self._pipeline()
                pipe.multi()
                self._queue_writes()
                pipe.execute()
        finally:
            self.close()
        for callback in self.after_commit:
            callback()

    def _commit_unlinking(self, unlink: tuple[UnlinkPlan, Callable[[UnlinkOutcome], None]]) -> None:
        """Commit through ``unlinking_commit()`` (see :meth:`assume_item`)."""
        plan, learn = unlink
        assert self._expect is not None
        commits: UnlinkCommits = self.backend  # type: ignore[assignment]  # per its capability
        outcome = commits.unlinking_commit(self._expect, self._write_commands(), plan)
        status = outcome.status
        if status == "applied":
            if outcome.retired or plan.contents:  # (an assignment over a scalar: nothing to tell)
                self.after_commit.append(lambda: learn(outcome))
            return
        if status == "refused":
            raise UnlinkRefused("the unlinked item is no small tree; reading it first")
        if status == "missing" and plan.present:
            raise ItemMissing("no such item when the commit ran")
        if status != "conflict":
            raise ValueError(f"unlinking_commit() answered {status!r}")
        raise WatchError("the data changed while the unit was reading it")

    def _queue_writes(self) -> None:
        """Queue the buffered writes on the unit's pipeline: :meth:`_scope_writes`, in order."""
        pipe = self._pipeline()
        for name, args in self._scope_writes():
            if name == "hset":
                pipe.hset(args[0], mapping=args[1])
            else:  # hreplace only where the backend declares whole_hash_writes
                getattr(pipe, name)(*args)

    def _write_commands(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The buffered writes as ``checked_commit()`` takes them, in ``_queue_writes`` order."""
        writes: list[tuple[str, tuple[Any, ...]]] = []
        if not (self._dropped or self._string_dirty or self._dirty):
            # List commands alone (an append, a pop), and no hash write a guessed item could
            # meet (_touches_item): a loop, not a comprehension (a call of its own before 3.12).
            for key, op, args in self._list_ops:
                writes.append((op, (key, *args)))
            return writes
        for key in self._dropped:
            writes.append(("delete", (key,)))
        for key in self._string_dirty:
            value = self._strings[key]
            writes.append(("delete", (key,)) if value is None else ("set", (key, value)))
        for key, fields in self._dirty.items():
            if None not in fields.values():
                # Only sets (every new node of a big write): the pairs flattened in C.
                if fields:
                    writes.append(("hset", (key, *chain.from_iterable(fields.items()))))
                continue
            dels = [f for f, v in fields.items() if v is None]
            sets = [x for f, v in fields.items() if v is not None for x in (f, v)]
            writes.append(("hdel", (key, *dels)))
            if sets:
                writes.append(("hset", (key, *sets)))
        blind = self._blind
        if blind is not None and any(k in self._dirty or k in self._dropped for k in blind):
            # Another write of this unit met a count raised without reading it.
            raise WatchError("a link that was guessed needs reading; retrying")
        for key, op, args in self._list_ops:
            if op == "hset_item" and self._touches_item(key, args):
                # Something else of this unit wrote what the guess left to the server.
                raise WatchError("an item write that was guessed needs reading; retrying")
            writes.append((op, (key, *args)))
        return writes

    def _touches_item(self, key: str, args: tuple[Any, ...]) -> bool:
        """Whether this unit's other writes touch a guessed item (:meth:`assume_item`)."""
        header, seq = args[2], args[3]
        return (
            key in self._dirty
            or key in self._dropped
            or header in self._dropped
            or seq in self._dirty.get(header, ())
        )

    def _check(self, calls: list[tuple[str, tuple[Any, ...]]], results: list[Any]) -> None:
        checked = self._checked
        assert checked is not None
        checked.extend(
            (command, args, _digest(value))
            for (command, args), value in zip(calls, results, strict=True)
        )

    def _reads_unchanged(self) -> bool:
        """Re-read everything this unit read in one atomic batch; True if all is the same.

        Then every value read is what the store held at that one moment, so the
        unit saw a consistent state even though nothing was watched. Watching
        would cost a round trip per batch, and Redis (up to 7.0) checks each
        newly watched key against every key the client already watches, so a
        walk over 100,000 nodes would be quadratic.
        """
        checked = self._checked
        if not checked or self._one_call == len(checked):
            return True
        now = self._reread(checked)
        return all(
            _digest(value) == digest for (_, _, digest), value in zip(checked, now, strict=True)
        )

    def _reread(self, reads: list[tuple[str, tuple[Any, ...], Any]]) -> list[Any]:
        """Run the recorded reads ``(command, args, answer)`` again in one atomic batch."""
        pipe = self.backend.pipeline(transaction=True)
        for command, args, _ in reads:
            if command == "unlinked_item":  # no such read: its field, to see it links nothing
                pipe.hget(*args[:2])
            else:
                getattr(pipe, command)(*args)
        return pipe.execute()

    def _expect_unchanged(self) -> bool:
        """Re-read what a checked-commit unit read, in one atomic batch; True if all is equal."""
        expect = self._expect
        if not expect:
            return True
        now = self._reread(expect)
        return all(
            _unlinked_item(value)
            if command == "unlinked_item"
            else (tuple(value) if isinstance(seen, tuple) else value) == seen
            for (command, _, seen), value in zip(expect, now, strict=True)
        )

    def _commit_scope(self) -> None:
        scope = self._scope
        assert scope is not None
        # has_writes, inline: once per write unit.
        if self._dirty or self._dropped or self._list_ops or self._string_dirty or self._fresh:
            if not self._scope_write:
                # A snapshot must not be written through: redo the work holding the lock.
                self.needs_write_scope = True
                raise WatchError("a read-only unit needs to write; retrying with the write lock")
            commit = self._scope_commit
            if commit is not None:
                # The writes go straight into the held transaction, which commits them.
                writes = self._scope_writes()
                if self._scope_fresh:
                    commit(writes, self._created, self._fresh)
                elif self._scope_created:
                    commit(writes, self._created)
                else:
                    commit(writes)
                self._scope = None
                return
            pipe = self._pipeline()
            pipe.multi()
            self._queue_writes()
            pipe.execute()
        self._scope = None
        scope.__exit__(None, None, None)

    def _scope_writes(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The buffered writes as ``ScopeCommits.commit_writes()`` takes them (``hset`` as
        ``(key, mapping)``); :meth:`_queue_writes` sends the same to a pipeline.

        An edit of a hash this unit read whole goes whole (``hreplace``) where the
        backend declares ``whole_hash_writes`` and the hash stays small
        (:data:`WHOLE_HASH_FIELDS`); a hash this unit created is already written
        whole (its pending write *is* its content).
        """
        writes: list[tuple[str, tuple[Any, ...]]] = []
        if self._dropped:
            writes.append(("delete", tuple(self._dropped)))
        for key in self._string_dirty:
            value = self._strings[key]
            writes.append(("delete", (key,)) if value is None else ("set", (key, value)))
        whole = self.backend.capabilities.whole_hash_writes
        known, full = self._fields, self._full
        append = writes.append
        for key, fields in self._dirty.items():
            state = known.get(key)
            if state is fields:
                # A hash this unit created: its pending write is its whole content.
                if None not in fields.values():
                    if fields:
                        append(("hset", (key, fields)))
                    continue
            elif whole and state is not None and key in full and len(state) <= WHOLE_HASH_FIELDS:
                if None in state.values():  # fields this unit deleted
                    state = {f: v for f, v in state.items() if v is not None}
                append(("hreplace", (key, state)))
                continue
            elif None not in fields.values():
                if fields:
                    append(("hset", (key, fields)))
                continue
            sets = {f: v for f, v in fields.items() if v is not None}
            dels = [f for f, v in fields.items() if v is None]
            if dels:
                writes.append(("hdel", (key, *dels)))
            if sets:
                writes.append(("hset", (key, sets)))
        for key, op, args in self._list_ops:
            writes.append((op, (key, *args)))
        return writes

    def reads_valid(self) -> bool:
        """Whether everything this unit read is still current (consumes the unit).

        Used when an operation fails: an error caused by reading two states of
        the store (say, a node collected between reading its link and its
        content) must become a retry, not reach the caller.
        """
        if self.closed or self._scope is not None:
            return True
        if self._expect is not None:
            try:
                return self._expect_unchanged()
            finally:
                self.close()
        if self._checked is not None:
            try:
                return self._reads_unchanged()
            finally:
                self.close()
        if not self._watched:
            return True
        try:
            pipe = self._pipeline()
            pipe.multi()
            pipe.execute()
        except WatchError:
            return False
        finally:
            self.close()
        return True

    def raise_if_stale(self, exc: BaseException) -> None:
        """Raise ``WatchError`` (chaining ``exc``) if this unit's reads went stale; consumes it."""
        if not self.reads_valid():
            raise WatchError("the operation read data that changed meanwhile") from exc

    def close(self) -> None:
        """Drop the watches and buffered writes without committing."""
        if not self.closed:
            self.closed = True
            if self._pipe is not None:
                self._pipe.reset()
            scope, self._scope = self._scope, None
            if scope is not None:
                # Leaving with an "exception" rolls back whatever the scope applied.
                scope.__exit__(WatchError, None, None)


def _put(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _restore(mapping: dict[str, dict[bytes, Any]], key: str, field: bytes, value: Any) -> None:
    if value is _MISSING:
        inner = mapping.get(key)
        if inner is not None:
            inner.pop(field, None)
    else:
        mapping.setdefault(key, {})[field] = value


def _unlinked_item(raw: bytes | None) -> bool:
    """Whether a stored dict item is missing or holds no link (``unlinked_item``)."""
    if raw is None:
        return True
    seq, _, value = raw.partition(b"|")
    return seq.isdigit() and value[:1] not in (b"", b"@")


def _digest(value: Any) -> int:
    """A fingerprint of one read's result, to tell whether a re-read returned the same."""
    if isinstance(value, dict):
        return hash(frozenset(value.items()))
    if isinstance(value, list):
        return hash(tuple(value))
    return hash(value)


def _redis_range(items: list[bytes], start: int, end: int) -> list[bytes]:
    n = len(items)
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = n + end
    return items[start : end + 1]


def _apply_list_op(items: list[bytes], op: str, args: tuple[Any, ...]) -> None:
    if op == "rpush":
        items.extend(args)
    elif op == "lpush":
        for value in args:
            items.insert(0, value)
    elif op == "lpop":
        count = args[0] if args else 1
        del items[:count]
    elif op == "rpop":
        count = args[0] if args else 1
        if count:
            del items[-count:]
    elif op == "lset":
        items[args[0]] = args[1]
    elif op == "ltrim":
        items[:] = _redis_range(items, args[0], args[1])
    elif op == "delete":
        items.clear()
    else:  # pragma: no cover - a programming error inside etcher
        raise AssertionError(f"unknown list op {op}")


class RetryPolicy:
    """How often and how patiently a conflicting unit is retried (jittered exponential backoff)."""

    __slots__ = ("base_delay", "max_attempts", "max_delay", "timeout")

    def __init__(
        self,
        max_attempts: int = 1000,
        timeout: float = 60.0,
        base_delay: float = 0.0005,
        max_delay: float = 0.05,
    ) -> None:
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.base_delay = base_delay
        self.max_delay = max_delay

    def call(self, attempt: Callable[[], T]) -> T:
        """Call ``attempt()`` until it does not raise ``WatchError``; back off in between."""
        deadline = time.monotonic() + self.timeout
        tries = 0
        while True:
            try:
                return attempt()
            except WatchError:
                tries += 1
                self._back_off(tries, deadline)

    def _back_off(self, tries: int, deadline: float) -> None:
        """Wait before attempt ``tries + 1``, or give up with :class:`ConflictTimeout`."""
        if tries >= self.max_attempts or time.monotonic() >= deadline:
            raise ConflictTimeout(
                f"gave up after {tries} conflicting attempts; other writers keep "
                "changing the same data"
            ) from None
        delay = min(self.max_delay, self.base_delay * (2 ** min(tries, 16)))
        time.sleep(random.uniform(0, delay))

    def run(self, backend: StorageBackend, fn: Callable[[Unit], T], *, write: bool = True) -> T:
        """Run ``fn`` in a fresh unit and commit it, retrying on conflicts.

        ``write=False`` declares ``fn`` read-only (it may still write, rarely:
        such an attempt is redone with a writing unit), which lets a locking
        backend read from a snapshot without taking its write lock.

        One loop rather than :meth:`call` around a closure: this runs once per
        public operation, and the closure and its frames were a good part of the
        Python an uncontended small write runs.
        """
        scope = write
        prepared: dict[int, tuple[Any, Any]] = {}
        speculate = True
        deadline = time.monotonic() + self.timeout
        tries = 0
        while True:
            unit = Unit(backend, scope)
            unit.prepared = prepared
            # Only a first attempt may guess (a wrong guess conflicts; the retry reads).
            unit.speculate, speculate = speculate, False
            # The cyclic collector is paused while the unit runs: a big write or walk makes
            # millions of short-lived, acyclic objects (freed by reference counting), and
            # each of the collector's passes would also traverse the caller's whole
            # document (storing a 100,000-level chain on SQLite: 4.6 -> 3.3 s CPU). What
            # garbage the unit leaves is collected as usual once the collector is back.
            paused = gc.isenabled()
            if paused:
                gc.disable()
            try:
                try:
                    try:
                        result = fn(unit)
                    except CallerCode:
                        raise
                    except Exception as exc:
                        unit.raise_if_stale(exc)
                        raise
                    unit.commit()
                    return result
                finally:
                    try:
                        if unit.needs_write_scope:
                            scope = True
                        if not unit.closed:  # commit() closes it
                            unit.close()
                    finally:
                        if paused:
                            gc.enable()
            except WatchError as exc:
                tries += 1
                if type(exc) is not UnlinkRefused:  # a refused plan met no other writer
                    self._back_off(tries, deadline)
            except CallerCode as needed:
                needed.work()  # outside any unit; each call settles at least one object
                deadline = time.monotonic() + self.timeout
                tries = 0
