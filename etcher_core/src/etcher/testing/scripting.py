"""Checked commits conformance: ``checked_commit()`` checks exactly, and applies all or nothing.

For backends declaring ``capabilities.checked_commits`` (see
:class:`etcher.spec.CheckedCommits`); every test is skipped with a reason on
other backends. Two families:

* :class:`CheckedCommitConformance` (with :class:`~etcher.testing.BackendFixtures`)
  calls ``checked_commit()`` directly: each kind of check holds when nothing
  changed and fails (applying nothing) when another client changed what it
  names; bad writes raise and leave the store untouched; big commits work.
* :class:`CheckedCommitConcurrency` (needs a ``store_url`` fixture, like
  :class:`~etcher.testing.concurrency.ConcurrencyConformance`) runs units of
  work in several fork- and spawn-started processes that read with every kind
  of read and write what they read plus one: a check that missed a concurrent
  change would lose an update, and the final counts would say so.

Worker functions live at module level so spawned processes can import them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, cast

import pytest

from etcher._containers import RD, RL
from etcher._db import DB
from etcher._graph import UNLINK_COMMIT_ITEMS, UNLINK_COMMIT_NODES
from etcher._unit import RetryPolicy, Unit
from etcher.errors import StaleHandleError, StoreIndexError, WatchError, WrongTypeError
from etcher.spec import CheckedCommits, StorageBackend, UnlinkReads
from etcher.testing._harness.instrument import CountingBackend
from etcher.testing.concurrency import _run_processes

PROCESSES = 3
ROUNDS = 20

requires = pytest.mark.etcher_requires("checked_commits")


def _commit(backend: StorageBackend, checks: list[Any], writes: list[Any]) -> bool:
    return cast(CheckedCommits, backend).checked_commit(checks, writes)


def _state(backend: StorageBackend, *keys: str) -> list[Any]:
    """Everything stored under ``keys``, whatever their types (to prove nothing changed)."""
    out: list[Any] = []
    for key in keys:
        kind = backend.type(key)
        if kind == b"hash":
            out.append(sorted(backend.hgetall(key).items()))
        elif kind == b"list":
            out.append(backend.lrange(key, 0, -1))
        else:
            out.append((kind, backend.get(key) if kind == b"string" else None))
    return out


@contextlib.contextmanager
def _race(
    backend: StorageBackend,
    hook: Callable[..., Any],
    store_url: str,
    start: str,
    target: Callable[..., None],
    what: str,
) -> Iterator[tuple[DB, Any, str, Callable[[Callable[[], None]], None]]]:
    """A namespace on ``hook(backend, go, done)`` and a way to race one operation in it.

    Yields ``(db, hooked, prefix, race)``: ``race(op)`` starts a process (``start``)
    running ``target(store_url, prefix, what, go, done)``, arms the hook, runs
    ``op()`` (whose read the hook pauses until the other process has written) and
    waits for the process, which must succeed. The namespace is deleted afterwards.
    """
    ctx: Any = multiprocessing.get_context(start)
    go, done = ctx.Event(), ctx.Event()
    prefix = f"scripting-{uuid.uuid4().hex}"
    hooked = hook(backend, go, done)

    def race(op: Callable[[], None]) -> None:
        proc = ctx.Process(target=target, args=(store_url, prefix, what, go, done))
        proc.start()
        try:
            hooked.armed = True
            hooked.reset()
            op()
        finally:
            proc.join(timeout=60)
        assert proc.exitcode == 0

    with DB(backend=hooked, prefix=prefix, grace=0) as db:
        try:
            yield db, hooked, prefix, race
        finally:
            db.delete_prefix_immediately(prefix)


@requires
class CheckedCommitConformance:
    """``checked_commit()`` on one backend (combine with ``BackendFixtures``)."""

    def _setup(self, backend: StorageBackend, key: Any) -> tuple[str, str, str, str]:
        h, lst, s, t = key("h"), key("l"), key("s"), key("target")
        backend.hset(h, mapping={b"a": b"1", b"b": b"2"})
        backend.rpush(lst, b"x", b"y", b"z")
        backend.set(s, b"v")
        return h, lst, s, t

    def _checks(self, h: str, lst: str, s: str, missing: str) -> list[tuple[str, Any, Any]]:
        return [
            ("get", (s,), b"v"),
            ("get", (missing,), None),
            ("hget", (h, b"a"), b"1"),
            ("hget", (h, b"zz"), None),
            ("hgetall", (h,), {b"a": b"1", b"b": b"2"}),
            ("hgetall", (missing,), {}),
            ("hlen", (h,), 2),
            ("hexists", (h, b"b"), True),
            ("hexists", (h, b"q"), False),
            ("llen", (lst,), 3),
            ("lindex", (lst, -1), b"z"),
            ("lindex", (lst, 7), None),
            ("lrange", (lst, 0, -1), [b"x", b"y", b"z"]),
            ("lrange", (lst, 1, 1), [b"y"]),
            ("lrange", (missing, 0, -1), []),
            ("exists", (h,), 1),
            ("exists", (missing,), 0),
        ]

    def test_unchanged_reads_commit_every_kind_of_write(
        self, backend: StorageBackend, key: Any
    ) -> None:
        h, lst, s, t = self._setup(backend, key)
        fresh, gone = key("fresh"), key("gone")
        backend.set(gone, b"1")
        writes = [
            ("hset", (h, b"c", b"3", b"a", b"9")),
            ("hdel", (h, b"b")),
            ("rpush", (lst, b"w")),
            ("lpush", (lst, b"a0", b"a1")),
            ("lpop", (lst,)),
            ("rpop", (lst, 1)),
            ("lset", (lst, 0, b"A")),
            ("ltrim", (lst, 0, 2)),
            ("set", (t, b"T")),
            ("delete", (gone,)),
            ("rpush", (fresh, b"1", b"2")),
        ]
        assert _commit(backend, self._checks(h, lst, s, key("missing")), writes) is True
        assert backend.hgetall(h) == {b"a": b"9", b"c": b"3"}
        # [x y z] +w -> [x y z w]; lpush a0 a1 -> [a1 a0 x y z w]; lpop -> [a0 x y z w];
        # rpop 1 -> [a0 x y z]; lset 0 -> [A x y z]; ltrim 0 2 -> [A x y]
        assert backend.lrange(lst, 0, -1) == [b"A", b"x", b"y"]
        assert backend.get(t) == b"T"
        assert backend.exists(gone) == 0
        assert backend.lrange(fresh, 0, -1) == [b"1", b"2"]

    @pytest.mark.parametrize("which", range(17))
    def test_any_changed_read_fails_the_commit_and_applies_nothing(
        self, backend: StorageBackend, second_backend: StorageBackend, key: Any, which: int
    ) -> None:
        h, lst, s, t = self._setup(backend, key)
        missing = key("missing")
        checks = self._checks(h, lst, s, missing)
        command, args, _expected = checks[which]
        # Another client changes exactly what this check reads.
        other = second_backend
        if command == "get":
            other.set(args[0], b"changed")
        elif command in ("hget", "hexists"):
            field = args[1]
            if other.hexists(args[0], field):
                other.hdel(args[0], field)
            else:
                other.hset(args[0], field, b"new")
        elif command in ("hgetall", "hlen"):
            other.hset(args[0], b"extra", b"1")
        elif command in ("llen", "lindex", "lrange"):
            if args[0] == missing:
                other.rpush(missing, b"new")
            elif command == "lindex" and args[1] == 7:
                other.rpush(args[0], *[b"p"] * 5)
            else:
                other.lset(args[0], args[1] if command == "lindex" else 1, b"changed")
        else:  # exists
            if other.exists(args[0]):
                other.delete(args[0])
            else:
                other.set(args[0], b"now")
        before = _state(backend, h, lst, s, t, missing)
        assert _commit(backend, checks, [("set", (t, b"T")), ("hset", (h, b"new", b"1"))]) is False
        assert _state(backend, h, lst, s, t, missing) == before

    def test_a_change_restoring_the_same_value_is_no_conflict(
        self, backend: StorageBackend, second_backend: StorageBackend, key: Any
    ) -> None:
        h, _lst, _s, t = self._setup(backend, key)
        second_backend.hset(h, b"a", b"other")
        second_backend.hset(h, b"a", b"1")
        assert _commit(backend, [("hgetall", (h,), {b"a": b"1", b"b": b"2"})], [("set", (t, b"1"))])
        assert backend.get(t) == b"1"

    def test_a_read_that_now_raises_fails_the_check(
        self, backend: StorageBackend, second_backend: StorageBackend, key: Any
    ) -> None:
        _h, _lst, _s, t = self._setup(backend, key)
        missing = key("missing")
        second_backend.rpush(missing, b"a list now")
        checks: list[tuple[str, tuple[Any, ...], Any]] = [
            ("hgetall", (missing,), {}),
            ("hget", (missing, b"f"), None),
        ]
        for check in checks:
            assert _commit(backend, [check], [("set", (t, b"1"))]) is False
        assert backend.exists(t) == 0

    def test_a_write_that_would_fail_raises_and_applies_nothing(
        self, backend: StorageBackend, key: Any
    ) -> None:
        h, lst, s, t = self._setup(backend, key)
        before = _state(backend, h, lst, s, t)
        ok_first = [("set", (t, b"T")), ("hset", (h, b"a", b"changed")), ("rpush", (lst, b"q"))]
        with pytest.raises(WrongTypeError):
            _commit(backend, [("get", (s,), b"v")], [*ok_first, ("rpush", (h, b"x"))])
        with pytest.raises(WrongTypeError):
            _commit(backend, [], [*ok_first, ("hset", (lst, b"f", b"v"))])
        with pytest.raises(StoreIndexError):
            _commit(backend, [], [*ok_first, ("lset", (lst, 4, b"v"))])  # 3 + 1 pushed items
        with pytest.raises(StoreIndexError):
            _commit(backend, [], [*ok_first, ("lset", (key("nolist"), 0, b"v"))])
        with pytest.raises(ValueError):
            _commit(backend, [], [*ok_first, ("incr", (t,))])
        with pytest.raises(ValueError):
            _commit(backend, [("type", (t,), b"none")], ok_first)
        assert _state(backend, h, lst, s, t) == before
        # The writes before the bad one were valid on their own: the same commit without
        # the bad write applies, and an lset made valid by an earlier push in it too.
        assert _commit(backend, [], [*ok_first, ("lset", (lst, 3, b"Q"))])
        assert backend.lrange(lst, 0, -1) == [b"x", b"y", b"z", b"Q"]

    def test_types_and_lengths_follow_earlier_writes_of_the_same_commit(
        self, backend: StorageBackend, key: Any
    ) -> None:
        h, lst, s, t = self._setup(backend, key)
        # A deleted hash may become a list; a list trimmed to nothing is gone, so lset fails.
        assert _commit(
            backend, [], [("delete", (h,)), ("rpush", (h, b"1")), ("lset", (h, 0, b"2"))]
        )
        assert backend.lrange(h, 0, -1) == [b"2"]
        before = _state(backend, h, lst, s, t)
        with pytest.raises(StoreIndexError):
            _commit(backend, [], [("ltrim", (lst, 5, 9)), ("lset", (lst, 0, b"v"))])
        assert _state(backend, h, lst, s, t) == before

    def test_a_big_commit_with_many_keys_and_long_writes(
        self, backend: StorageBackend, key: Any
    ) -> None:
        big, lst = key("big"), key("list")
        mapping = {b"f%d" % i: b"v%d" % i for i in range(3_000)}
        items = [b"i%d" % i for i in range(2_500)]
        assert _commit(
            backend,
            [("hgetall", (big,), {})],
            [
                ("hset", (big, *[x for kv in mapping.items() for x in kv])),
                ("rpush", (lst, *items)),
                ("lpush", (lst, *items[:1500])),
            ],
        )
        assert backend.hgetall(big) == mapping
        assert backend.lrange(lst, 0, -1) == items[:1500][::-1] + items
        many = [key(f"k{i}") for i in range(2_000)]
        checks: list[tuple[str, tuple[Any, ...], Any]] = [
            ("hgetall", (big,), mapping),
            ("lrange", (lst, 0, -1), items[:1500][::-1] + items),
        ]
        checks += [("get", (k,), None) for k in many]
        assert _commit(backend, checks, [("set", (k, b"1")) for k in many])
        assert backend.exists(*many) == len(many)
        assert _commit(backend, [], [("hdel", (big, *mapping))] + [("delete", (k,)) for k in many])
        assert backend.exists(big, *many) == 0

    def test_nothing_to_check_or_write(self, backend: StorageBackend) -> None:
        assert _commit(backend, [], []) is True

    # --- capabilities.item_writes: a dict item set without reading it first ---------------
    def _items(self, backend: StorageBackend, key: Any) -> tuple[str, str]:
        if not backend.capabilities.item_writes:
            pytest.skip(f"{type(backend).__name__}.capabilities.item_writes is False")
        return key("content"), key("header")

    def test_an_item_write_numbers_a_new_field_and_keeps_an_old_ones_number(
        self, backend: StorageBackend, key: Any
    ) -> None:
        content, header = self._items(backend, key)
        backend.hset(header, mapping={b"#k": b"d", b"#s": b"5"})
        backend.hset(content, b"old", b"2|i7")

        def item(field: bytes, value: bytes, seq_key: str = header) -> bool:
            check = ("unlinked_item", (content, field, seq_key, b"#s"), None)
            return _commit(
                backend, [check], [("hset_item", (content, field, value, seq_key, b"#s"))]
            )

        assert item(b"new", b"sv")
        assert backend.hget(content, b"new") == b"5|sv"
        assert backend.hget(header, b"#s") == b"6"
        assert item(b"new", b"sw")  # over a scalar: its number stays, the counter too
        assert item(b"old", b"@D1")  # the value may be a link; what it replaces may not
        assert backend.hgetall(content) == {b"new": b"5|sw", b"old": b"2|@D1"}
        assert backend.hget(header, b"#s") == b"6"
        fresh = key("fresh-header")
        assert item(b"third", b"i1", fresh)  # no counter yet: counts from 0
        assert backend.hget(content, b"third") == b"0|i1"
        assert backend.hget(fresh, b"#s") == b"1"
        # With other writes (the dry run checks every key's type first).
        other = key("other")
        assert _commit(
            backend,
            [],
            [("hset", (other, b"a", b"1")), ("hset_item", (content, b"4th", b"i4", header, b"#s"))],
        )
        assert backend.hget(content, b"4th") == b"6|i4"
        assert backend.hget(other, b"a") == b"1"
        # A counter that is no hash: refused before anything is applied.
        lst = key("list")
        backend.rpush(lst, b"x")
        before = _state(backend, content, header, other, lst)
        with pytest.raises(WrongTypeError):
            _commit(
                backend,
                [],
                [
                    ("hset", (other, b"b", b"1")),
                    ("hset_item", (content, b"5th", b"i5", lst, b"#s")),
                ],
            )
        assert _state(backend, content, header, other, lst) == before

    def test_an_item_check_fails_on_a_link_or_anything_malformed(
        self, backend: StorageBackend, key: Any
    ) -> None:
        content, header = self._items(backend, key)
        backend.hset(header, mapping={b"#k": b"d", b"#s": b"3"})
        backend.hset(content, mapping={b"link": b"1|@D9", b"bad": b"x|i1", b"empty": b"2|"})
        string = key("string")
        backend.set(string, b"v")
        t = key("t")
        failing = [
            (content, b"link", header),  # replacing a link needs the caller to unlink it
            (content, b"bad", header),
            (content, b"empty", header),
            (string, b"f", header),  # not a hash
            (content, b"new", string),  # the counter's key is not a hash
        ]
        for where, field, seq_key in failing:
            check = ("unlinked_item", (where, field, seq_key, b"#s"), None)
            assert _commit(backend, [check], [("set", (t, b"1"))]) is False, (where, field)
        backend.hset(header, b"#s", b"three")
        check = ("unlinked_item", (content, b"new", header, b"#s"), None)
        assert _commit(backend, [check], [("set", (t, b"1"))]) is False
        assert backend.exists(t) == 0
        assert backend.hget(header, b"#s") == b"three"
        backend.hset(content, b"n", b"4|i1")  # a scalar: the check holds whatever the counter
        assert _commit(backend, [("unlinked_item", (content, b"n", header, b"#s"), None)], [])

    def test_a_count_write_adds_to_a_back_reference_unread(
        self, backend: StorageBackend, key: Any
    ) -> None:
        """``("hincr", (key, field, n))`` (``item_writes``): a guessed link raises a node's
        back-reference count on the server (missing: from 0). A stored field that holds
        no count fails the commit as a check would, nothing applied, alone or with other
        writes; a key that is no hash raises and applies nothing."""
        _content, header = self._items(backend, key)
        backend.hset(header, mapping={b"#k": b"d", b"#p": b"1", b"D1": b"2"})
        live = [("exists", (header,), 1), ("hexists", (header, b"#d"), False)]
        other = key("other")
        assert _commit(backend, live, [("hincr", (header, b"D1", b"3"))])
        assert _commit(
            backend,
            live,
            [
                ("hset", (other, b"a", b"1")),
                ("hincr", (header, b"D2", b"1")),
                ("hdel", (header, b"#p")),
            ],
        )
        assert backend.hgetall(header) == {b"#k": b"d", b"D1": b"5", b"D2": b"1"}
        fresh = key("fresh")
        assert _commit(backend, [], [("hincr", (fresh, b"D1", b"1"))])
        assert backend.hgetall(fresh) == {b"D1": b"1"}
        backend.hset(header, b"D3", b"x")
        before = _state(backend, header, other)
        assert _commit(backend, live, [("hincr", (header, b"D3", b"1"))]) is False
        writes = [("hset", (other, b"b", b"2")), ("hincr", (header, b"D3", b"1"))]
        assert _commit(backend, live, writes) is False
        assert _state(backend, header, other) == before
        lst = key("list")
        backend.rpush(lst, b"x")
        with pytest.raises(WrongTypeError):
            _commit(backend, [], [("hset", (other, b"c", b"3")), ("hincr", (lst, b"D1", b"1"))])
        assert _state(backend, header, other) == before


# --------------------------------------------------------------------------- processes


def _increment(u: Unit, kind: str, key: str) -> None:
    """Read the counter with one kind of read, write it back plus one."""
    if kind == "hget":
        raw = u.hget(key, b"n")
        u.hset(key, b"n", b"%d" % (int(raw or 0) + 1))
    elif kind == "hgetall":
        fields = u.hgetall(key)
        u.hset(key, b"n", b"%d" % (int(fields.get(b"n", 0)) + 1))
    elif kind == "get":
        u.set(key, b"%d" % (int(u.get(key) or 0) + 1))
    else:  # lrange: append the list's length, so the list must come out as 0, 1, 2, ...
        items = u.lrange(key, 0, -1)
        u.list_op(key, "rpush", b"%d" % len(items))


KINDS = ("hget", "hgetall", "get", "lrange")


def checked_increments(url: str, keys: list[str], rounds: int, barrier: Any) -> None:
    """``rounds`` read-then-write units per kind of read (``keys[i]`` for ``KINDS[i]``).

    Opens the store by URL, so it works in spawned processes too.
    """
    with DB(url, prefix=f"scripting-{uuid.uuid4().hex}") as db:
        backend = db.backend
        barrier.wait(timeout=60)
        policy = RetryPolicy()
        for _ in range(rounds):
            for kind, key in zip(KINDS, keys, strict=True):

                def one(u: Unit, kind: str = kind, key: str = key) -> None:
                    _increment(u, kind, key)

                policy.run(backend, one)


class _Interleaved(CountingBackend):
    """Counts like :class:`CountingBackend`; once ``armed``, the first commit that guessed an
    item (an ``unlinked_item`` check, or an unlinking commit) first lets another process
    write (``go``) and waits for it to finish (``done``): that write lands between the
    guess and its commit.
    """

    def __init__(self, inner: StorageBackend, go: Any, done: Any) -> None:
        super().__init__(inner)
        self.go, self.done, self.armed = go, done, False

    def _interleave(self) -> None:
        self.armed = False
        self.go.set()
        assert self.done.wait(60), "the other process did not write"

    def checked_commit(self, checks: Any, writes: Any) -> bool:
        if self.armed and any(c[0] == "unlinked_item" for c in checks):
            self._interleave()
        return super().checked_commit(checks, writes)

    def unlinking_commit(self, checks: Any, writes: Any, plan: Any) -> Any:
        if self.armed:
            self._interleave()
        return super().unlinking_commit(checks, writes, plan)


def interleaved_write(url: str, prefix: str, what: str, go: Any, done: Any) -> None:
    """Wait for ``go``, make one write to ``db["d"]`` (``what``), then set ``done``."""
    with DB(url, prefix=prefix, grace=0) as db:
        assert go.wait(60)
        if what == "link":
            cast(RD, db["d"])["k"] = {"theirs": [1, 2]}
        elif what == "new key":
            cast(RD, db["d"])["before"] = "theirs"
        elif what == "remove":
            del cast(RD, db["d"])["k"]
        elif what == "add":
            cast(RD, db["d"])["gone"] = {"theirs": [1, 2]}
        else:  # "delete"
            del db["d"]
        done.set()


class _AfterUnlinkRead(CountingBackend):
    """Counts like :class:`CountingBackend`; once ``armed``, the first unlinking read
    (``read_unlinked``) lets another process write (``go``) once it has its answer, and
    waits for it to finish (``done``): that write lands between the read and the commit.
    It hides ``unlink_commits``: a small document would be collected by its commit alone,
    never read first (that path has tests of its own).
    """

    def __init__(self, inner: StorageBackend, go: Any, done: Any) -> None:
        super().__init__(inner)
        self.capabilities = dataclasses.replace(inner.capabilities, unlink_commits=False)
        self.go, self.done, self.armed = go, done, False

    def read_unlinked(self, *args: Any) -> Any:
        self.round_trips += 1
        self.commands["read_unlinked"] += 1
        got = cast(UnlinkReads, self.inner).read_unlinked(*args)
        if self.armed:
            self.armed = False
            self.go.set()
            assert self.done.wait(60), "the other process did not write"
        return got


UNLINKED_DOC: dict[str, Any] = {
    "name": "x",
    "address": {"city": "P", "zip": [1]},
    "tags": [1, {"t": 2}],
}


def subtree_write(url: str, prefix: str, what: str, go: Any, done: Any) -> None:
    """Wait for ``go``, make one write inside ``db["d"]``'s subtree (``what``), set ``done``."""
    with DB(url, prefix=prefix, grace=0) as db:
        assert go.wait(60)
        d = cast(RD, db["d"])
        if what in ("link out", "diamond, link out", "cycle, link out"):
            db["keep"] = d["address"]
        elif what == "reach twice":
            cast(RD, cast(RL, d["tags"])[1])["again"] = d["address"]
        elif what == "alias":
            db["d3"] = d  # the root links it a third time
        elif what == "unalias":
            del db["d2"]  # which linked d's document too: only "d" links it now
        elif what == "unshare":
            del db["keep"]  # which shared d's address: only d links it now
        elif what == "nest":
            cast(RL, d["tags"]).append({"new": [3]})
        else:  # "unlink"
            del cast(RD, d["address"])["zip"]
        done.set()


def handle_write(url: str, prefix: str, what: str, go: Any, done: Any) -> None:
    """Wait for ``go``, then delete ``db["keep"]`` (``collect``: at grace 0; ``retire``:
    with grace, its node ``s`` left pending) or link ``keep``'s ``s`` from ``db["other"]``
    too (``link``); then set ``done``."""
    with DB(url, prefix=prefix, grace=60 if what == "retire" else 0) as db:
        assert go.wait(60)
        if what == "link":
            db["other"] = cast(RD, db["keep"])["s"]
        else:
            del db["keep"]
        done.set()


def list_write(url: str, prefix: str, what: str, go: Any, done: Any) -> None:
    """Wait for ``go``, make one write to list ``db["l"]`` or inside its items (``what``),
    then set ``done``."""
    with DB(url, prefix=prefix, grace=0) as db:
        assert go.wait(60)
        lst = cast(RL, db["l"])
        if what == "link out":
            db["keep"] = cast(RD, lst[1])["address"]
        elif what == "nest":
            cast(RL, cast(RD, lst[1])["tags"]).append({"new": [3]})
        elif what == "insert":
            lst.insert(0, {"theirs": [0]})
        elif what == "pop":
            lst.pop(0)
        elif what == "clear":
            lst.clear()
        else:  # "delete"
            del db["l"]
        done.set()


def guessed_assignments(url: str, prefix: str, who: int, rounds: int, barrier: Any) -> None:
    """``rounds`` assignments to ``db["d"]``: new keys of this worker's, and a key all share
    that gets a document (a link) or a scalar in turn, so guesses keep meeting links.
    """
    with DB(url, prefix=prefix) as db:
        d = cast(RD, db["d"])
        barrier.wait(timeout=60)
        for i in range(rounds):
            d[f"w{who}-{i}"] = {"i": i} if i % 2 else i
            d["shared"] = {"by": who, "i": [i]} if (i + who) % 2 else i


_UID = re.compile(rb"([DL])([0-9a-f]{16})([0-9a-f]+)")


def _normalized(backend: StorageBackend, prefix: str) -> dict[bytes, Any]:
    """Every key of namespace ``prefix`` and its content, comparable across namespaces.

    The prefix becomes ``P``; a node uid (a per-DB random token and a counter) becomes
    its kind and its rank in creation order, so two namespaces built by the same
    operations compare equal whatever uids each drew (a retry draws more); an expiry
    stamp (a ``#d`` field, a pending entry) becomes ``T``.
    """
    raw: dict[bytes, Any] = {}
    base = f"{{{prefix}}}:".encode()
    pending = base + b"g"
    for key in backend.scan_iter(match=f"{{{prefix}}}:*"):
        kind = backend.type(key)
        if kind == b"hash":
            fields = backend.hgetall(key)
            if key == pending:
                fields = dict.fromkeys(fields, b"T")
            elif b"#d" in fields:
                fields[b"#d"] = b"T"
            raw[key] = fields
        elif kind == b"list":
            raw[key] = backend.lrange(key, 0, -1)
        else:
            raw[key] = backend.get(key)
    seen: dict[bytes, int] = {}
    text = repr(sorted(raw.items(), key=lambda kv: kv[0])).encode()
    for m in _UID.finditer(text):
        seen[m.group(0)] = int(m.group(3), 16)
    rank = {uid: b"%s#%d" % (uid[:1], i) for i, uid in enumerate(sorted(seen, key=seen.get))}  # type: ignore[arg-type]

    def norm(b: bytes) -> bytes:
        return _UID.sub(lambda m: rank[m.group(0)], b.replace(base, b"P:"))

    out: dict[bytes, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out[norm(key)] = {norm(f): norm(v) for f, v in value.items()}
        elif isinstance(value, list):
            out[norm(key)] = [norm(v) for v in value]
        else:
            out[norm(key)] = value
    return out


UNLINK_TREE: dict[str, Any] = {
    "a": {"b": [1, {"c": [2, "3"]}], "s": "x"},
    "l": [[], {}, [[None]]],
    "n": 1.5,
}


def _mark(db: DB, handle: Any, field: bytes) -> None:
    """Set a header field of ``handle``'s node by hand (a pin, or a pending mark)."""
    layout = db._session.layout
    db.backend.hset(layout.refs(handle.uid), field, b"1" if field == b"#p" else b"99.000")
    if field == b"#d":
        db.backend.hset(layout.pending, handle.uid.encode(), b"99.000")


@dataclasses.dataclass
class _Left:
    """What one operation left (see :func:`_what_an_operation_leaves`)."""

    answer: Any
    trips: int  # round trips of the operation alone
    simple: bool  # one unlinking commit, not refused
    dump: dict[bytes, Any]
    value: str  # repr: a live cycle would make == recurse
    ok: bool  # check()
    learnt: list[str]  # uids the sweeper learnt, sorted
    listed: list[str]  # uids the pending hash lists, sorted


def _what_an_operation_leaves(
    backend: StorageBackend,
    counting: CountingBackend,
    grace: int,
    setup: Callable[[DB, str], Callable[[], Any]],
    shape: str,
) -> _Left:
    """Run ``setup(db, shape)``'s operation through ``counting`` in a namespace of its own,
    and take what it answered and left: the comparisons of the fast and the reading path."""
    prefix = f"scripting-{uuid.uuid4().hex}"
    with DB(backend=counting, prefix=prefix, grace=grace) as db:
        try:
            op = setup(db, shape)
            counting.reset()
            answer = op()
            trips = counting.round_trips
            simple = counting.commands["unlinking_commit"] == 1 and not counting.refused
            dump = _normalized(backend, prefix)
            value = repr(db())
            ok = db.check().ok
            learnt = sorted(uid for _expiry, uid in db._session.reclaim._heap)
            listed = sorted(u.decode() for u in backend.hkeys(db._session.layout.pending))
            return _Left(answer, trips, simple, dump, value, ok, learnt, listed)
        finally:
            db.delete_prefix_immediately(prefix)


def _unlink_setup(db: DB, shape: str) -> Callable[[], Any]:
    """Store shape ``shape`` under ``db["k"]``; return the operation that unlinks it."""

    def delete() -> None:
        del db["k"]

    if shape.startswith("list, "):
        return _list_unlink_setup(db, shape.removeprefix("list, "))
    if shape.startswith("a missing key, deleted"):
        db["other"] = {"o": [1]}  # a live root and document; "k" never stored
        parent = cast(RD, db["other"]) if shape.endswith("from a document") else db

        def delete_missing() -> Any:
            with pytest.raises(KeyError):
                del parent["k"]
            return "KeyError"

        return delete_missing
    if shape.startswith("a missing key, popped"):
        db["other"] = {"o": [1]}  # a live root and document; "k" never stored

        def pop_missing() -> Any:
            if shape.endswith("with a default"):
                return db.pop("k", "the default")
            with pytest.raises(KeyError):
                db.pop("k")
            return "KeyError"

        return pop_missing
    if shape.endswith(", popped"):
        _unlink_setup(db, shape.removesuffix(", popped"))
        return lambda: db.pop("k")
    if shape == "tree, the session's first scalar over it":
        # A session that met no link yet (a fresh process) carries the plan too.
        db["k"] = UNLINK_TREE
        return lambda: db.__setitem__("k", 7)
    if shape.endswith(", a scalar over it"):
        # A scalar's assignment carries an unlink plan once its session met a link
        # (ItemGuess.met_link): one is met first, under another key.
        db["primer"] = {"p": [1]}
        db["primer"] = 0
        _unlink_setup(db, shape.removesuffix(", a scalar over it"))
        return lambda: db.__setitem__("k", 7)
    if shape == "scalar":
        db["k"] = 5
    elif shape in ("tree", "tree, replaced"):
        db["k"] = UNLINK_TREE
        if shape == "tree, replaced":
            return lambda: db.__setitem__("k", {"new": [1, {"x": 2}]})
    elif shape == "one child linked twice":
        db["k"] = {"x": {"q": 1}}
        k = cast(RD, db["k"])
        k["y"] = k["x"]
    elif shape == "a shared child":
        db["keep"] = {"s": {"x": [1]}}
        db["k"] = {"a": cast(RD, db["keep"])["s"], "b": [1]}
    elif shape == "a shared tree and a node it links":
        # Two kept nodes, one below the other: a pop's value holds both, shared.
        db["keep"] = {"s": {"x": [1, {"deep": [2]}]}}
        kept = cast(RD, cast(RD, db["keep"])["s"])
        db["k"] = {"a": kept, "b": kept["x"], "c": [3]}
    elif shape == "a shared child of a pending node":
        db["keep"] = {"s": {"x": [1]}}
        db["k"] = {"a": cast(RD, db["keep"])["s"], "b": [1]}
        _mark(db, db["keep"], b"#d")
    elif shape == "a shared child also linked from a node that is gone":
        # A back-reference naming no node (damage): nothing proves the child reachable.
        db["k"] = {"a": {"x": [1]}, "b": [1]}
        child = cast(RD, cast(RD, db["k"])["a"])
        db.backend.hset(db._session.layout.refs(child.uid), b"D00000000000000000gone", b"1")
    elif shape == "a shared top node":
        db["keep"] = {"s": {"x": [1]}}
        db["k"] = cast(RD, db["keep"])["s"]
    elif shape in (
        "a shared top node, assigned again",
        "a shared child, linked by the replacement",
    ):
        # The unit links a node the commit keeps: the dying links are counted down
        # from what the unit's writes left in its header, not deleted.
        db["keep"] = {"s": {"x": [1]}}
        s = cast(RD, db["keep"])["s"]
        if shape.startswith("a shared top node"):
            db["k"] = s
            return lambda: db.__setitem__("k", s)
        db["k"] = {"a": s, "b": [1]}
        return lambda: db.__setitem__("k", {"again": s})
    elif shape == "a top node linking itself":
        db["k"] = [1]
        top = cast(RL, db["k"])
        top.append(top)
    elif shape == "a diamond":
        # Plain data holding one object twice, at one depth: one node, two parents.
        sub: list[Any] = [1, {"z": [2]}]
        db["k"] = {"a": {"x": sub}, "b": {"y": sub}}
    elif shape == "a node at two depths":
        # ... at two depths: the shallower parent's link goes first, then the node dies.
        sub = [1, {"z": [2]}]
        db["k"] = {"a": sub, "b": {"y": sub}, "c": [{"d": {"e": sub}}]}
    elif shape == "a shared child in a diamond":
        db["keep"] = {"s": {"x": [1]}}
        s = cast(RD, db["keep"])["s"]
        db["k"] = {"a": s, "b": {"again": s}}
    elif shape == "a chain of shared children":
        db["keep"] = {"deep": {"deeper": {"s": {"x": [1]}, "t": [2]}}}
        deeper = cast(RD, cast(RD, cast(RD, db["keep"])["deep"])["deeper"])
        db["k"] = {"a": {"s": deeper["s"]}, "b": [deeper["t"]]}
    elif shape == "a cycle":
        db["k"] = {"x": {"y": 1}}
        x = cast(RD, cast(RD, db["k"])["x"])
        x["self"] = x
    elif shape == "parent pointers":
        # Each kid links the document back: the top node is in the cycle.
        db["k"] = {"kids": [{"n": 1}, {"n": 2}], "meta": {"m": [0]}}
        doc = cast(RD, db["k"])
        for kid in cast(RL, doc["kids"]):
            cast(RD, kid)["parent"] = doc
    elif shape == "a two-node cycle":
        db["k"] = {"a": {"b": {"z": [1]}}}
        a = cast(RD, cast(RD, db["k"])["a"])
        cast(RD, a["b"])["a"] = a
    elif shape == "a cycle with a tree below it":
        # What the cycle links dies with it, in the same sweep.
        db["k"] = {"x": {"data": [1, {"deep": [2, {"deeper": 3}]}]}}
        x = cast(RD, cast(RD, db["k"])["x"])
        x["self"] = x
    elif shape == "a cycle a live document reaches":
        # "keep" links a node of the cycle: the whole cycle stays, the rest dies.
        db["k"] = {"x": {"y": {"z": [1]}}, "t": [2]}
        x = cast(RD, cast(RD, db["k"])["x"])
        cast(RD, x["y"])["back"] = x
        db["keep"] = x["y"]
    elif shape in ("a cycle a deep live document reaches", "a cycle a deep pinned node reaches"):
        # No chain of parents proves it within its steps: the exact search finds the
        # live node (or the pinned one, which nothing links) at the top.
        if shape.endswith("live document reaches"):
            db["keep"] = {"n": 0}
            first = cast(RD, db["keep"])
        else:
            first = RD(db, {"n": 0})  # pinned while this handle lives
        at = first
        for i in range(1, 11):
            at["next"] = {"n": i}
            at = cast(RD, at["next"])
        db["k"] = {"x": {"y": 1}, "t": [2]}
        x = cast(RD, cast(RD, db["k"])["x"])
        x["y"] = at
        at["back"] = x

        def delete_holding() -> None:
            assert first.uid  # (the pinned node's handle lives until the delete is done)
            del db["k"]

        return delete_holding
    elif shape == "a cycle through a pinned node":
        db["k"] = {"x": {"y": [1]}}
        x = cast(RD, cast(RD, db["k"])["x"])
        x["self"] = x
        _mark(db, x, b"#p")
    elif shape == "a ring over the node bound":
        ring: list[Any] = [{"i": i} for i in range(UNLINK_COMMIT_NODES + 4)]
        db["k"] = {"ring": ring[0]}
        nodes = [cast(RD, cast(RD, db["k"])["ring"])]
        for i in range(1, len(ring)):
            nodes[-1]["next"] = {"i": i}
            nodes.append(cast(RD, nodes[-1]["next"]))
        nodes[-1]["next"] = nodes[0]
    elif shape == "linked twice by the parent":
        db["k"] = {"s": [1]}
        db["k2"] = db["k"]
    elif shape == "links the root":
        db["k"] = {"r": db._root}  # the root handle: its only parent is then k
    elif shape == "a pinned node":
        db["k"] = {"x": {"y": [1]}}
        _mark(db, cast(RD, db["k"])["x"], b"#p")
    elif shape == "a pinned top node":
        db["k"] = {"x": {"y": [1]}}
        _mark(db, db["k"], b"#p")
    elif shape == "a pending node":
        db["k"] = {"x": {"y": [1]}}
        _mark(db, cast(RD, db["k"])["x"], b"#d")
    elif shape == "over the node bound":
        db["k"] = [{"i": i} for i in range(UNLINK_COMMIT_NODES)]
    elif shape == "over the item bound":
        db["k"] = {"l": list(range(UNLINK_COMMIT_ITEMS + 1))}
    elif shape == "relinked by the replacement":
        db["k"] = {"a": {"b": [1]}, "c": [2]}
        return lambda: db.__setitem__("k", {"again": cast(RD, db["k"])["a"]})
    else:
        raise AssertionError(shape)
    return delete


def _list_unlink_setup(db: DB, shape: str) -> Callable[[], Any]:
    """Store a list under ``db["k"]``; return the ``pop``/``del`` that unlinks an item of it."""
    tree = UNLINK_TREE
    position = 1  # what a delete removes
    if shape == "tree at the end, popped":
        db["k"] = [1, {"x": 2}, tree]
        at: int | None = -1
    elif shape == "tree first, popped":
        db["k"] = [tree, 1, [2]]
        at = 0
    elif shape == "tree past the middle, popped":
        db["k"] = [1, [2], 3, tree, 4, 5]
        at = -3
    elif shape == "tree before the middle, deleted":
        db["k"] = [1, tree, "2", 3, {"four": 4}]
        at = None
    elif shape == "scalar, popped":
        db["k"] = [1, "two", 3.0]
        at = 1
    elif shape == "the only item, popped":
        db["k"] = [tree]
        at = 0
    elif shape == "a shared item, deleted":
        db["keep"] = {"s": {"x": [1]}}
        db["k"] = [1, cast(RD, db["keep"])["s"], 2]
        at = None
    elif shape in ("a shared child, popped", "a shared child, deleted"):
        db["keep"] = {"s": {"x": [1]}}
        db["k"] = [1, {"a": cast(RD, db["keep"])["s"]}, 2]
        at = 1 if shape.endswith("popped") else None
    elif shape == "a shared item, popped":
        db["keep"] = {"s": {"x": [1, {"deep": [2]}]}}
        db["k"] = [1, cast(RD, db["keep"])["s"], 2]
        at = 1
    elif shape == "a node at two depths, popped":
        sub: list[Any] = [1, {"z": [2]}]
        db["k"] = [0, {"a": sub, "b": {"y": sub}}]
        at = 1
    elif shape == "a node twice, popped":
        db["k"] = [{"a": [1]}]
        k = cast(RL, db["k"])
        k.append(k[0])
        at = -1
    elif shape in ("a cycle, popped", "a cycle, deleted"):
        db["k"] = [0, {"y": 1}]
        x = cast(RD, cast(RL, db["k"])[1])
        x["self"] = x
        at = 1 if shape.endswith("popped") else None
    elif shape == "out of range, popped":
        db["k"] = [1, {"x": 2}]
        at = 2
    elif shape == "out of range, deleted":
        db["k"] = [1, {"x": 2}]
        at, position = None, -3
    elif shape in ("empty, popped", "empty, popped first"):
        db["k"] = []
        at = -1 if shape == "empty, popped" else 0
    elif shape == "empty, popped past the end":
        db["k"] = []
        at = 3
    elif shape == "a long side to move, popped":
        db["k"] = [*range(UNLINK_COMMIT_ITEMS + 2), tree, *range(UNLINK_COMMIT_ITEMS + 2)]
        at = UNLINK_COMMIT_ITEMS + 2
    else:
        raise AssertionError(shape)
    k = cast(RL, db["k"])

    def pop() -> Any:
        try:
            if at is None:
                del k[position]
                return None
            return k.pop(at)
        except IndexError as exc:  # the same error, and nothing written, either way
            return repr(exc)

    return pop


UNLINK_SHAPES = {
    # shape: whether the commit collects it itself (True: in one round trip, or in as
    # many as the int says), or refuses (False)
    "scalar": True,
    "scalar, popped": True,
    "a missing key, popped with a default": True,
    "a missing key, popped": True,
    "a missing key, deleted": True,
    "a missing key, deleted from a document": True,
    "tree": True,
    "tree, popped": True,
    "tree, replaced": True,
    "tree, a scalar over it": True,
    "tree, the session's first scalar over it": True,
    "a cycle, a scalar over it": True,
    "one child linked twice": True,
    "a shared child": True,
    "a shared child, popped": True,
    "a shared tree and a node it links": True,
    "a shared tree and a node it links, popped": True,
    "a shared child, a scalar over it": True,
    "a shared child of a pending node": False,
    "a shared child also linked from a node that is gone": False,
    "a shared child in a diamond": True,
    "a diamond": True,
    "a diamond, popped": True,
    "a node at two depths": True,
    "a node at two depths, popped": True,
    "a node at two depths, a scalar over it": True,
    "a chain of shared children": True,
    "a shared top node": True,
    "a top node linking itself": True,
    "a top node linking itself, a scalar over it": True,
    "a shared top node, popped": True,
    "a shared top node, a scalar over it": True,
    # (the new value links the kept node again: its count raised unread, round 9)
    "a shared top node, assigned again": True,
    "a shared child, linked by the replacement": True,
    "a cycle": True,
    # (round 9: cycles, decided by the commit's exact search as Graph.collect does)
    "parent pointers": True,
    "parent pointers, a scalar over it": True,
    "a two-node cycle": True,
    "a cycle with a tree below it": True,
    "a cycle a live document reaches": True,
    "a cycle through a pinned node": True,
    "a cycle a deep live document reaches": True,
    "a cycle a deep pinned node reaches": True,
    "a cycle, popped": False,
    "a ring over the node bound": False,
    "list, a cycle, deleted": True,
    "linked twice by the parent": True,
    "linked twice by the parent, popped": True,
    "linked twice by the parent, a scalar over it": True,
    "links the root": False,
    "a pinned node": True,
    "a pinned node, popped": True,
    "a pinned top node": True,
    "a pinned top node, a scalar over it": True,
    "a pending node": False,
    "over the node bound": False,
    "over the item bound": False,
    "relinked by the replacement": False,
    "list, tree at the end, popped": True,
    "list, tree first, popped": True,
    "list, tree past the middle, popped": True,
    "list, tree before the middle, deleted": True,
    "list, scalar, popped": True,
    "list, the only item, popped": True,
    "list, a shared child, popped": True,
    "list, a shared item, popped": True,
    "list, a shared child, deleted": True,
    "list, a shared item, deleted": True,
    "list, a node twice, popped": True,
    "list, a node at two depths, popped": True,
    "list, a cycle, popped": False,
    # (the commit answers it missing; the reading path then tells empty from short)
    "list, out of range, popped": 3,
    "list, out of range, deleted": True,
    "list, empty, popped": True,
    "list, empty, popped first": True,
    "list, empty, popped past the end": 3,
    "list, a long side to move, popped": False,
}


def _link_setup(db: DB, shape: str) -> Callable[[], Any]:
    """Store what shape ``shape`` needs; return the assignment that links a handle."""
    db["keep"] = {"s": {"x": [1]}}
    s = cast(RD, db["keep"])["s"]
    if shape == "a handle, new key":
        return lambda: db.__setitem__("k", s)
    if shape == "a handle in a new document, twice":
        return lambda: db.__setitem__("k", {"a": s, "b": [s, s, {"c": s}]})
    if shape == "a handle over a scalar":
        db["k"] = 1
        return lambda: db.__setitem__("k", {"s": s})
    if shape == "a handle below the root":
        d = cast(RD, db["keep"])
        return lambda: d.__setitem__("again", s)
    if shape in ("a handle appended", "a list appended to itself"):
        db["l"] = [1]
        lst = cast(RL, db["l"])
        item = lst if shape == "a list appended to itself" else s
        return lambda: lst.append({"s": item} if shape == "a handle appended" else item)
    if shape == "the parent itself":
        d = cast(RD, db["keep"])
        return lambda: d.__setitem__("me", d)
    if shape == "a pinned node":
        pinned = RD(db, {"p": [1]})

        def link_pinned() -> None:
            db["k"] = {"p": pinned}

        return link_pinned
    if shape == "the root":
        return lambda: db.__setitem__("k", {"r": db._root})
    if shape == "a pending node":
        with DB(backend=db.backend, prefix=db.prefix, grace=60) as other:
            del other["keep"]  # s is pending now: linking it again is refused

        def link_pending() -> Any:
            with pytest.raises(StaleHandleError):
                db["k"] = {"s": s}
            return "StaleHandleError"

        return link_pending
    raise AssertionError(shape)


LINK_SHAPES = {
    # shape: round trips with item_writes (the count raised unread) where pinned
    "a handle, new key": 1,
    "a handle in a new document, twice": 1,
    "a handle over a scalar": 1,
    "a handle below the root": 1,
    "a handle appended": 1,
    "a list appended to itself": 1,
    "the parent itself": 1,
    "a pinned node": 1,
    "the root": 2,  # (the root's header is read: it is never assumed)
    "a pending node": 3,  # (the conflict, then the read that refuses it)
}


class _BeforeUnlinkCommit(CountingBackend):
    """Counts like :class:`CountingBackend`; once ``armed``, the first unlinking commit
    lets another process write (``go``) and waits for it (``done``) before it is sent."""

    def __init__(self, inner: StorageBackend, go: Any, done: Any) -> None:
        super().__init__(inner)
        self.go, self.done, self.armed = go, done, False

    def unlinking_commit(self, checks: Any, writes: Any, plan: Any) -> Any:
        if self.armed:
            self.armed = False
            self.go.set()
            assert self.done.wait(60), "the other process did not write"
        return super().unlinking_commit(checks, writes, plan)


class CheckedCommitConcurrency:
    """Checked commits beside other processes (subclass and provide ``store_url``).

    ``pins_unlink_round_trips``: a subclass sets it to ``True`` to also pin, shape by
    shape, which unlinking commits are taken in one round trip and which are refused
    (etcher's own Redis backends do). Refusing is always allowed by the contract, so a
    backend that refuses more, or takes more, is still correct: by default only the
    store each shape leaves is compared.
    """

    pins_unlink_round_trips: ClassVar[bool] = False

    @pytest.fixture
    def shared(self, store_url: str) -> Iterator[tuple[StorageBackend, list[str]]]:
        with DB(store_url, prefix=f"scripting-{uuid.uuid4().hex}") as db:
            if not db.backend.capabilities.checked_commits:
                pytest.skip(f"{type(db.backend).__name__}.capabilities.checked_commits is False")
            keys = [f"{{{db.prefix}}}:{kind}" for kind in KINDS]
            yield db.backend, keys
            db.backend.delete(*keys)

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    def test_no_lost_update_between_processes(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], start: str
    ) -> None:
        backend, keys = shared
        ctx: Any = multiprocessing.get_context(start)
        barrier = ctx.Barrier(PROCESSES)
        _run_processes(checked_increments, [(store_url, keys, ROUNDS, barrier)] * PROCESSES, start)
        total = b"%d" % (PROCESSES * ROUNDS)
        assert backend.hget(keys[0], b"n") == total
        assert backend.hget(keys[1], b"n") == total
        assert backend.get(keys[2]) == total
        assert backend.lrange(keys[3], 0, -1) == [b"%d" % i for i in range(PROCESSES * ROUNDS)]

    def test_a_change_between_read_and_commit_is_a_conflict(
        self, store_url: str, shared: tuple[StorageBackend, list[str]]
    ) -> None:
        backend, keys = shared
        key = keys[0]
        with DB(store_url, prefix="x") as other:
            unit = Unit(backend)
            assert unit.hget(key, b"n") is None
            other.backend.hset(key, b"n", b"5")
            unit.hset(key, b"n", b"1")
            with pytest.raises(WatchError):
                unit.commit()
        assert backend.hget(key, b"n") == b"5"

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize("plan", ["planned", "no plan"])
    @pytest.mark.parametrize("what", ["link", "new key", "delete"])
    def test_a_guessed_assignment_meets_a_write_made_before_its_commit(
        self,
        store_url: str,
        shared: tuple[StorageBackend, list[str]],
        start: str,
        what: str,
        plan: str,
    ) -> None:
        """``d["k"] = 1`` guesses (``item_writes``); another process writes before it commits.

        A link put in the field: a fresh session's scalar assignment carries an unlink
        plan where the store offers one (``unlink_commits``), and the commit collects
        that small document itself; without a plan (elsewhere, or once a session's
        scalars stopped carrying it) it fails the guess's check, and the retry reads,
        unlinks and collects it. Nothing leaks either way. A new key of the other's
        takes the next insertion number first: the guess holds and keeps the order. A
        deleted parent makes the assignment stale, as without the guess.
        """
        backend, _keys = shared
        if not backend.capabilities.item_writes:
            pytest.skip(f"{type(backend).__name__}.capabilities.item_writes is False")
        planned = plan == "planned" and backend.capabilities.unlink_commits
        with _race(backend, _Interleaved, store_url, start, interleaved_write, what) as raced:
            db, hooked, prefix, race = raced
            db["d"] = {"k": 0}
            d = cast(RD, db["d"])
            if not planned:
                db._session.item_guess.links = 0  # (ItemGuess.planned: no plan)

            def assign() -> None:
                if what == "delete":
                    with pytest.raises(StaleHandleError):
                        d["k"] = 1
                else:
                    d["k"] = 1

            race(assign)
            assert not hooked.armed, "the assignment did not guess"
            if what == "link":
                # Collected by the planned commit, or the guess refused by its check.
                if self.pins_unlink_round_trips or not planned:
                    assert hooked.refused == (0 if planned else 1)
                assert hooked.commits == 1
                assert db() == {"d": {"k": 1}}
            elif what == "new key":
                assert hooked.refused == 0
                assert db() == {"d": {"k": 1, "before": "theirs"}}
                assert list(cast(RD, db["d"])) == ["k", "before"]
            else:
                assert db() == {}
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:*"))
            nodes = {k for k in stored if k.startswith(f"{{{prefix}}}:r:".encode())}
            assert len(nodes) == (1 if what == "delete" else 2), stored  # root (+ d)

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize(
        ("what", "op"),
        [("link out", "delete"), ("nest", "delete"), ("unlink", "delete"), ("nest", "replace")],
    )
    def test_an_unlinking_read_meets_a_write_to_the_subtree_before_its_commit(
        self,
        store_url: str,
        shared: tuple[StorageBackend, list[str]],
        start: str,
        what: str,
        op: str,
    ) -> None:
        """``del db["d"]`` (or ``db["d"] = 5``) reads the item with the subtree it unlinks
        in one call (``unlink_reads``); another process writes inside that subtree before
        the commit: a node linked elsewhere, a new node below it, a node unlinked.

        The commit checks every answer of the read, so it is refused and the retry
        collects what the subtree is by then: nothing linked elsewhere is collected,
        nothing added below is leaked, back-references stay exact.
        """
        backend, _keys = shared
        if not backend.capabilities.unlink_reads:
            pytest.skip(f"{type(backend).__name__}.capabilities.unlink_reads is False")
        with _race(backend, _AfterUnlinkRead, store_url, start, subtree_write, what) as raced:
            db, hooked, prefix, race = raced
            db["d"] = UNLINKED_DOC

            def unlink() -> None:
                if op == "delete":
                    del db["d"]
                else:
                    db["d"] = 5

            race(unlink)
            assert not hooked.armed, "the unlinking read was not used"
            assert hooked.commits == 1
            # The commit after the interleaved write: refused by its checks.
            assert hooked.refused >= 1
            kept = {"city": "P", "zip": [1]} if what.endswith("link out") else None
            expected: dict[str, Any] = {} if op == "delete" else {"d": 5}
            if kept is not None:
                expected["keep"] = kept
            assert db() == expected
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:r:*"))
            # The root, and what "keep" holds (the address and its list).
            assert len(stored) == (3 if kept is not None else 1), stored

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize("what", ["link", "remove", "delete"])
    def test_a_guessed_delete_meets_a_write_made_before_its_commit(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], start: str, what: str
    ) -> None:
        """``del d["k"]`` over a scalar guesses it (``item_writes``): the commit checks the
        item is there and links nothing. Another process writes before that commit.

        A link put in the field fails the check: the retry reads, unlinks and collects
        it (nothing leaks). A removed key fails it too: the retry raises ``KeyError``;
        where the commit collects (``unlink_commits``) it checks no presence and answers
        the item missing instead (``plan.present``), nothing written, and the delete
        raises ``KeyError`` from that answer. A deleted parent makes the delete stale, as
        without the guess.
        """
        backend, _keys = shared
        if not backend.capabilities.item_writes:
            pytest.skip(f"{type(backend).__name__}.capabilities.item_writes is False")
        with _race(backend, _Interleaved, store_url, start, interleaved_write, what) as raced:
            db, hooked, prefix, race = raced
            db["d"] = {"k": 0, "other": 1}
            d = cast(RD, db["d"])

            def delete() -> None:
                if what == "link":
                    del d["k"]
                else:
                    with pytest.raises(KeyError if what == "remove" else StaleHandleError):
                        del d["k"]

            race(delete)
            assert not hooked.armed, "the delete did not guess"
            if self.pins_unlink_round_trips or what != "link":
                assert hooked.commits == (1 if what == "link" else 0)
            if what == "delete":
                assert db() == {}
            else:
                # The guess, refused by its check; where the commit collects a small
                # document (unlink_commits) it takes the one put there instead.
                collects = what == "link" and backend.capabilities.unlink_commits
                answers = what == "remove" and backend.capabilities.unlink_commits
                if self.pins_unlink_round_trips:
                    assert (hooked.refused, hooked.missing) == ((0, 1) if answers else (0, 0))
                elif not collects and not answers:
                    assert hooked.refused == 1
                assert db() == {"d": {"other": 1}}
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:r:*"))
            assert len(stored) == (1 if what == "delete" else 2), stored  # root (+ d)

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize("what", ["add", "delete"])
    def test_a_guessed_delete_of_a_missing_key_meets_a_write_made_before_its_commit(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], start: str, what: str
    ) -> None:
        """``del d["gone"]`` of a key that is not there guesses (``item_writes``); another
        process adds that key (a document) or deletes ``d`` before the commit.

        Added: the delete removes it (and collects the document) instead of raising
        ``KeyError``, as if it ran second. Where the commit answers a missing item
        (``unlink_commits``, ``plan.present``) it reads the item as stored then and
        takes it in the one commit; elsewhere the presence check fails and the retry
        reads. ``d`` deleted: the liveness check fails and the retry says the handle is
        stale rather than ``KeyError``. Nothing leaks either way.
        """
        backend, _keys = shared
        if not backend.capabilities.item_writes:
            pytest.skip(f"{type(backend).__name__}.capabilities.item_writes is False")
        with _race(backend, _Interleaved, store_url, start, interleaved_write, what) as raced:
            db, hooked, prefix, race = raced
            db["d"] = {"other": 1}
            d = cast(RD, db["d"])

            def delete() -> None:
                if what == "add":
                    del d["gone"]
                else:
                    with pytest.raises(StaleHandleError):
                        del d["gone"]

            race(delete)
            assert not hooked.armed, "the delete did not guess"
            if self.pins_unlink_round_trips:
                # Added: collected by the one commit; deleted: the conflict, then the read.
                assert (hooked.commits, hooked.refused, hooked.missing) == (
                    (1, 0, 0) if what == "add" else (0, 1, 0)
                )
            assert db() == ({"d": {"other": 1}} if what == "add" else {})
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:r:*"))
            assert len(stored) == (2 if what == "add" else 1), stored  # root (+ d)

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    def test_guessed_assignments_between_processes_lose_and_leak_nothing(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], start: str
    ) -> None:
        ctx: Any = multiprocessing.get_context(start)
        barrier = ctx.Barrier(PROCESSES)
        prefix = f"scripting-{uuid.uuid4().hex}"
        with DB(store_url, prefix=prefix, grace=0) as db:
            try:
                db["d"] = {"shared": 0}
                _run_processes(
                    guessed_assignments,
                    [(store_url, prefix, who, ROUNDS, barrier) for who in range(PROCESSES)],
                    start,
                )
                d = cast(RD, db["d"])
                got = d()
                for who in range(PROCESSES):
                    for i in range(ROUNDS):
                        assert got[f"w{who}-{i}"] == ({"i": i} if i % 2 else i)
                assert len(got) == PROCESSES * ROUNDS + 1
                # Every item has its own insertion number, below the node's counter: each
                # worker's keys come out in the order it wrote them.
                order = [str(k) for k in d if k != "shared"]
                for who in range(PROCESSES):
                    mine = [k for k in order if k.startswith(f"w{who}-")]
                    assert mine == [f"w{who}-{i}" for i in range(ROUNDS)]
                assert db.check().ok  # back-references exact, no node leaked
            finally:
                db.delete_prefix_immediately(prefix)

    @pytest.mark.parametrize("grace", [0, 60])
    @pytest.mark.parametrize("shape", list(UNLINK_SHAPES))
    def test_an_unlinking_commit_leaves_what_reading_first_leaves(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], shape: str, grace: int
    ) -> None:
        """``capabilities.unlink_commits``: deleting, replacing or popping ``db["k"]`` leaves
        the store exactly as the path that reads first (the capability hidden) leaves it,
        and a pop returns the same value.

        Every key, field and list item compares equal (uids by creation order, expiry
        stamps masked), with the same ``check()`` verdict, at grace 0 (deleted) and
        grace > 0 (pending, known to the sweeper). With ``pins_unlink_round_trips``
        each shape must also take the round trips :data:`UNLINK_SHAPES` gives it (the
        commit alone), or be refused by the commit and collected by the usual path
        where it gives none.
        """
        backend, _keys = shared
        if not backend.capabilities.unlink_commits:
            pytest.skip(f"{type(backend).__name__}.capabilities.unlink_commits is False")
        fast, slow = CountingBackend(backend), CountingBackend(backend)
        slow.capabilities = dataclasses.replace(backend.capabilities, unlink_commits=False)
        one, other = (
            _what_an_operation_leaves(backend, c, grace, _unlink_setup, shape) for c in (fast, slow)
        )
        # What the sweeper learnt: exactly what the pending hash lists (a hand-made
        # pending entry is no one's).
        if shape not in ("a pending node", "a shared child of a pending node"):
            assert one.learnt == one.listed
            assert other.learnt == other.listed
        assert one.dump == other.dump
        assert repr(one.answer) == repr(other.answer)  # what a pop returns (repr: a cycle)
        assert one.value == other.value
        assert one.ok == other.ok
        assert len(one.learnt) == len(other.learnt)
        if shape not in (
            "a pinned node",
            "a pending node",
            "a shared child of a pending node",
            "a shared child also linked from a node that is gone",
        ):
            assert one.ok
        if not self.pins_unlink_round_trips:
            return
        if UNLINK_SHAPES[shape]:
            assert (one.trips, one.simple) == (int(UNLINK_SHAPES[shape]), True)
        else:
            assert not one.simple

    @pytest.mark.parametrize("grace", [0, 60])
    @pytest.mark.parametrize("shape", list(LINK_SHAPES))
    def test_linking_a_handle_unread_leaves_what_reading_first_leaves(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], shape: str, grace: int
    ) -> None:
        """``capabilities.item_writes``: a guessed assignment whose value links existing
        nodes (handles) raises their back-reference counts in the commit, unread (the
        ``hincr`` write; liveness checked there). The store it leaves equals the one the
        read-first path leaves (``item_writes`` and ``unlink_commits`` hidden): counts,
        pins ended, every key and field; a pending node is refused the same way."""
        backend, _keys = shared
        if not backend.capabilities.item_writes:
            pytest.skip(f"{type(backend).__name__}.capabilities.item_writes is False")
        fast, slow = CountingBackend(backend), CountingBackend(backend)
        slow.capabilities = dataclasses.replace(
            backend.capabilities, item_writes=False, unlink_commits=False
        )
        one, other = (
            _what_an_operation_leaves(backend, c, grace, _link_setup, shape) for c in (fast, slow)
        )
        assert one.dump == other.dump
        assert one.answer == other.answer
        assert one.value == other.value
        assert (one.ok, other.ok) == (True, True)
        if self.pins_unlink_round_trips:
            assert one.trips == LINK_SHAPES[shape]

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize("what", ["collect", "retire", "link"])
    def test_a_handle_linked_unread_meets_a_write_made_before_its_commit(
        self, store_url: str, shared: tuple[StorageBackend, list[str]], start: str, what: str
    ) -> None:
        """``d["x"] = handle`` raises the handle's count in the commit, unread
        (``item_writes``); another process, just before that commit, deletes the only
        document linking the handle's node (collected at once, or pending with grace),
        or links the node from elsewhere too.

        Gone or pending: the commit's liveness check fails, nothing is written, and the
        retry, which reads, raises ``StaleHandleError``. Linked elsewhere: both counts
        hold (the commit adds to what it finds). ``check()`` is clean, nothing leaks.
        """
        backend, _keys = shared
        if not backend.capabilities.item_writes:
            pytest.skip(f"{type(backend).__name__}.capabilities.item_writes is False")
        with _race(backend, _Interleaved, store_url, start, handle_write, what) as raced:
            db, hooked, prefix, race = raced
            db["d"] = {"k": 0}
            db["keep"] = {"s": {"x": [1]}}
            d, s = cast(RD, db["d"]), cast(RD, cast(RD, db["keep"])["s"])

            def link() -> None:
                if what == "link":
                    d["x"] = s
                else:
                    with pytest.raises(StaleHandleError):
                        d["x"] = s

            race(link)
            assert not hooked.armed, "the assignment did not guess"
            if self.pins_unlink_round_trips:
                assert (hooked.commits, hooked.refused) == ((1, 0) if what == "link" else (0, 1))
            if what == "link":
                assert db() == {
                    "d": {"k": 0, "x": {"x": [1]}},
                    "keep": {"s": {"x": [1]}},
                    "other": {"x": [1]},
                }
                assert s.backrefs == {cast(RD, db["keep"]).uid: 1, d.uid: 1, db._root.uid: 1}
            else:
                assert db() == {"d": {"k": 0}}
            if what != "retire":
                assert db.check().ok
            db.maintenance(reclaim_all=True)
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:r:*"))
            # the root, d, and with "link": keep, s, its list
            assert len(stored) == (5 if what == "link" else 2), stored

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize(
        ("what", "op"),
        [
            ("link out", "delete"),
            ("nest", "delete"),
            ("unlink", "delete"),
            ("nest", "replace"),
            ("link out", "scalar"),
            ("nest", "scalar"),
            ("unshare", "delete"),
            ("unshare", "scalar"),
            ("link out", "pop"),
            ("nest", "pop"),
            ("unshare", "pop"),
            ("alias", "delete"),
            ("unalias", "delete"),
            ("unalias", "pop"),
            ("reach twice", "delete"),
            ("reach twice", "pop"),
            ("diamond, link out", "delete"),
            ("cycle", "delete"),
            ("cycle, link out", "delete"),
            ("cycle, link out", "scalar"),
        ],
    )
    def test_an_unlinking_commit_meets_a_write_to_the_subtree_before_it(
        self,
        store_url: str,
        shared: tuple[StorageBackend, list[str]],
        start: str,
        what: str,
        op: str,
    ) -> None:
        """``del db["d"]`` (or ``db["d"] = {"v": 5}``, ``db["d"] = 5``, ``db.pop("d")``)
        goes as one unlinking commit (``unlink_commits``); another process
        writes inside the subtree just before it is sent: links a node of it elsewhere,
        adds a node below it, unlinks one, deletes the other document that shared a
        node of it (which then dies with the rest), links the document again from the
        root or deletes the root's other link to it (the commit counts the root's link
        down and keeps the document, or collects it whole), reaches a node of it by a
        second path (collected all the same), or links elsewhere a node it reaches by
        two paths (kept, both links from what dies cut).

        The commit looks at the subtree as it is when it runs. Linked elsewhere, the
        node is shared with a live document: the commit keeps it (its back-reference
        from what dies removed) and collects the rest; a pop's value brings the kept
        node's tree as the commit read it. A node added or removed leaves
        a small tree, which the commit collects whole: nothing leaks, nothing linked
        elsewhere is collected, back-references stay exact.
        """
        backend, _keys = shared
        if not backend.capabilities.unlink_commits:
            pytest.skip(f"{type(backend).__name__}.capabilities.unlink_commits is False")
        with _race(backend, _BeforeUnlinkCommit, store_url, start, subtree_write, what) as raced:
            db, hooked, prefix, race = raced
            # (a scalar's assignment carries the plan: it is the session's first)
            db["d"] = UNLINKED_DOC
            if what == "unshare":
                db["keep"] = cast(RD, db["d"])["address"]
            if what in ("alias", "unalias"):
                db["d2"] = db["d"]  # the root links the document twice
            if what == "diamond, link out":
                # The address reached by two paths (at two depths) before the race.
                d = cast(RD, db["d"])
                cast(RD, cast(RL, d["tags"])[1])["again"] = d["address"]
            if what.startswith("cycle"):
                # The address links itself: a cycle the commit's exact search decides.
                address = cast(RD, cast(RD, db["d"])["address"])
                address["self"] = address
            got: list[Any] = []

            def unlink() -> None:
                if op == "delete":
                    del db["d"]
                elif op == "scalar":
                    db["d"] = 5
                elif op == "pop":
                    got.append(db.pop("d"))
                else:
                    db["d"] = {"v": 5}

            race(unlink)
            assert not hooked.armed, "the unlinking commit was not used"
            if self.pins_unlink_round_trips:
                assert hooked.commits == 1
                # Linked out, the node is shared with "keep", which the commit proves alive
                # (a chain of parents up to the root): it keeps that node, collects the rest.
                assert hooked.refused == 0
            kept = {"city": "P", "zip": [1]} if what.endswith("link out") else None
            after: dict[str, dict[str, Any]] = {
                "delete": {},
                "pop": {},
                "replace": {"d": {"v": 5}},
                "scalar": {"d": 5},
            }
            expected = after[op]
            if kept is not None:
                expected["keep"] = kept
            if what == "alias":
                # Linked by "d2" and "d3" then: the commit counts the root's link down.
                expected = {"d2": UNLINKED_DOC, "d3": UNLINKED_DOC}
            if what == "cycle, link out":
                # Kept whole, the cycle with it (linked from "keep", which is alive).
                cyclic: dict[str, Any] = {"city": "P", "zip": [1]}
                cyclic["self"] = cyclic
                expected["keep"] = cyclic
            assert repr(db()) == repr(expected)  # (repr: a live cycle)
            if op == "pop":
                # The document as the commit found it, the kept address's tree included.
                doc = json.loads(json.dumps(UNLINKED_DOC))
                if what == "nest":
                    doc["tags"].append({"new": [3]})
                if what == "reach twice":
                    doc["tags"][1]["again"] = doc["address"]
                    assert got[0]["tags"][1]["again"] is got[0]["address"]
                assert got == [doc]
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:r:*"))
            # The root, what "keep" holds (the address and its list), the new value, the
            # aliased document's 5 nodes.
            nodes = 1 + (2 if kept is not None else 0) + (op == "replace") + 5 * (what == "alias")
            assert len(stored) == nodes, stored

    @pytest.mark.parametrize("start", ["fork", "spawn"])
    @pytest.mark.parametrize(
        ("what", "op"),
        [
            ("link out", "pop"),
            ("nest", "pop"),
            ("nest", "del"),
            ("insert", "pop"),
            ("insert", "del"),
            ("pop", "pop"),
            ("delete", "pop"),
            ("clear", "pop"),
            ("clear", "del"),
        ],
    )
    def test_a_list_items_unlinking_commit_meets_a_write_before_it(
        self,
        store_url: str,
        shared: tuple[StorageBackend, list[str]],
        start: str,
        what: str,
        op: str,
    ) -> None:
        """``l.pop(1)`` (or ``del l[1]``) goes as one unlinking commit that reads the item
        where it is when it runs (``UnlinkPlan.position``); another process writes just
        before it is sent: links a node of the item's document elsewhere, adds a node
        below it, inserts an item in front, pops the first item, deletes or empties the
        list.

        The result is the other write's, then this one's: linked elsewhere, the commit
        keeps that node (a pop's answer brings its tree whole) and collects the rest;
        otherwise it removes and collects what is at position 1 by then. Deleted, the
        handle is stale and nothing is written. Emptied, the commit answers the position
        missing (``plan.present``), nothing written, and the operation raises
        ``IndexError`` with the message the reading path gives. Nothing leaks,
        back-references stay exact.
        """
        backend, _keys = shared
        if not backend.capabilities.unlink_commits:
            pytest.skip(f"{type(backend).__name__}.capabilities.unlink_commits is False")
        with _race(backend, _BeforeUnlinkCommit, store_url, start, list_write, what) as raced:
            db, hooked, prefix, race = raced
            db["l"] = [{"first": [0]}, UNLINKED_DOC, 2]
            lst = cast(RL, db["l"])
            got: list[Any] = []

            def remove() -> None:
                if what == "delete":
                    with pytest.raises(StaleHandleError):
                        lst.pop(1)
                elif what == "clear":
                    message = "pop from empty list" if op == "pop" else "index out of range"
                    with pytest.raises(IndexError, match=message):
                        if op == "pop":
                            lst.pop(1)
                        else:
                            del lst[1]
                elif op == "pop":
                    got.append(lst.pop(1))
                else:
                    del lst[1]

            race(remove)
            assert not hooked.armed, "the unlinking commit was not used"
            if self.pins_unlink_round_trips:
                assert hooked.commits == (0 if what in ("delete", "clear") else 1)
                # Linked out, the address is kept, and the pop's answer brings its tree.
                assert hooked.refused == (1 if what == "delete" else 0)
                assert hooked.missing == (1 if what == "clear" else 0)
            doc = json.loads(json.dumps(UNLINKED_DOC))
            expected: dict[str, Any]
            if what == "link out":
                expected = {"l": [{"first": [0]}, 2], "keep": {"city": "P", "zip": [1]}}
                popped: Any = doc
            elif what == "nest":
                doc["tags"].append({"new": [3]})
                expected, popped = {"l": [{"first": [0]}, 2]}, doc
            elif what == "insert":
                # Theirs went in front: position 1 is the first item then.
                expected = {"l": [{"theirs": [0]}, doc, 2]}
                popped = {"first": [0]}
            elif what == "pop":
                expected, popped = {"l": [doc]}, 2
            elif what == "clear":
                expected, popped = {"l": []}, None
            else:
                expected, popped = {}, None
            assert db() == expected
            if op == "pop" and what not in ("delete", "clear"):
                assert got == [popped]
            assert db.check().ok
            stored = set(backend.scan_iter(match=f"{{{prefix}}}:r:*"))
            nodes = {
                # the root, the list, {"first": [0]} (2), the kept address and zip
                "link out": 1 + 1 + 2 + 2,
                "nest": 1 + 1 + 2,
                "insert": 1 + 1 + 2 + 5,  # {"theirs": [0]} (2), the document (5)
                "pop": 1 + 1 + 5,
                "delete": 1,
                "clear": 1 + 1,
            }[what]
            assert len(stored) == nodes, stored

    def test_writes_after_another_process_deleted_the_namespace(
        self, store_url: str, shared: tuple[StorageBackend, list[str]]
    ) -> None:
        _deleted_namespace_case(store_url)

    def test_appending_through_a_handle_whose_list_was_deleted_is_stale(
        self, store_url: str, shared: tuple[StorageBackend, list[str]]
    ) -> None:
        # An append checks its list's header at commit instead of reading it first: a
        # failed guess must end in the same StaleHandleError, not in endless conflicts.
        prefix = f"scripting-{uuid.uuid4().hex}"
        with (
            DB(store_url, prefix=prefix) as db,
            DB(store_url, prefix=prefix, grace=0) as collector,
            DB(store_url, prefix=prefix) as other,
        ):
            try:
                db["l"] = [1]
                handle = cast(RL, db["l"])
                handle.append(2)
                del collector["l"]  # collected at once
                with pytest.raises(StaleHandleError):
                    handle.append(3)
                db["l"] = [1]
                pending = cast(RL, db["l"])
                del other["l"]  # unlinked, not yet swept: still no writes through it
                with pytest.raises(StaleHandleError):
                    pending.append(3)
                assert db() == {}
            finally:
                db.delete_prefix_immediately(prefix)


def _deleted_namespace_case(store_url: str) -> None:
    prefix = f"scripting-{uuid.uuid4().hex}"
    with DB(store_url, prefix=prefix) as db, DB(store_url, prefix=prefix) as other:
        try:
            db["x"] = 1
            db["y"] = [1]
            other.delete_prefix_immediately(prefix)
            # Each of these first assumes the namespace's root exists (checked at commit),
            # then, after the conflict, reads and recreates it (or finds the key missing).
            with pytest.raises(KeyError):
                del db["x"]
            db["z"] = 2
            assert db() == {"z": 2}
            other.delete_prefix_immediately(prefix)
            db["z"] = 3
            assert db() == {"z": 3}
            assert db.check().ok
        finally:
            db.delete_prefix_immediately(prefix)


__all__ = [
    "KINDS",
    "CheckedCommitConcurrency",
    "CheckedCommitConformance",
    "checked_increments",
    "guessed_assignments",
    "handle_write",
    "interleaved_write",
    "subtree_write",
]
