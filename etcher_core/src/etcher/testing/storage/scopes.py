"""Storage conformance, ``unit_scope()`` of locking backends (:class:`ScopeConformance`)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from etcher.errors import EtcherError, WatchError
from etcher.spec import StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess

# --------------------------------------------------------------------------- threads


class ScopeConformance:
    """``unit_scope()`` of backends declaring ``locking_units`` (see ``etcher.spec.UnitScopes``)."""

    @pytest.mark.etcher_requires("locking_units")
    def test_scope_commits_everything_on_exit(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h = key("s"), key("h")
        with backend.unit_scope(True) as held:  # type: ignore[attr-defined]
            assert held is True
            backend.set(s, b"1")
            pipe = backend.pipeline()
            pipe.multi()
            pipe.hset(h, b"f", b"v")
            pipe.incr(key("n"))
            assert pipe.execute() == [1, 1]
            # Reads inside the scope see its own writes, directly and through pipelines.
            assert backend.get(s) == b"1"
            assert backend.pipeline(transaction=False).hgetall(h).execute() == [{b"f": b"v"}]
        assert raw.get(s) == b"1"
        assert raw.hgetall(h) == {b"f": b"v"}
        assert raw.get(key("n")) == b"1"

    @pytest.mark.etcher_requires("locking_units")
    def test_scope_rolls_everything_back_on_error(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h = key("s"), key("h")
        backend.set(s, b"before")
        scope = backend.unit_scope(True)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="boom"), scope:
            backend.set(s, b"during")
            pipe = backend.pipeline()
            pipe.multi()
            pipe.hset(h, b"f", b"v")
            pipe.execute()
            raise RuntimeError("boom")
        assert raw.get(s) == b"before"
        assert raw.exists(h) == 0
        backend.set(s, b"after")  # the backend is usable again
        assert raw.get(s) == b"after"

    @pytest.mark.etcher_requires("locking_units")
    def test_commit_writes_applies_in_order_and_commits(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        """``commit_writes()`` (``etcher.spec.ScopeCommits``), where a write scope offers it."""
        s, h, lst, gone = key("s"), key("h"), key("l"), key("gone")
        backend.set(gone, b"x")
        backend.hset(h, mapping={b"old": b"1", b"keep": b"2"})
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_writes"):
            pytest.skip("this backend's scopes do not offer commit_writes()")
        assert held.__enter__() is True
        held.commit_writes(
            [
                ("delete", (gone,)),
                ("set", (s, b"v")),
                ("hdel", (h, b"old")),
                ("hset", (h, {b"new": b"3"})),
                ("rpush", (lst, b"a", b"b", b"c")),
                ("lpush", (lst, b"z")),
                ("lpop", (lst,)),
                ("rpop", (lst, 1)),
                ("lset", (lst, 0, b"A")),
                ("ltrim", (lst, 0, 0)),
                # Public-command input is normalized as the commands do it.
                ("hset", (h, {"text": 7})),
            ]
        )
        held.__exit__(None, None, None)  # the scope was already committed: nothing to do
        assert raw.exists(gone) == 0
        assert raw.get(s) == b"v"
        assert raw.hgetall(h) == {b"keep": b"2", b"new": b"3", b"text": b"7"}
        assert raw.lrange(lst, 0, -1) == [b"A"]
        backend.set(s, b"after")  # the backend is usable again
        assert raw.get(s) == b"after"

    @pytest.mark.etcher_requires("locking_units")
    @pytest.mark.parametrize("command", ["rpush", "lpush", "rpop", "lpop"])
    @pytest.mark.parametrize("before", [0, 1, 2, 127, 128, 129, 300, "spilled-1"])
    def test_commit_writes_of_one_list_command(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, command: str, before: Any
    ) -> None:
        """A unit whose only write is one item pushed or popped (an append, an
        ``insert(0, x)``, a ``pop(0)`` or ``pop()`` through a handle), on lists of every size.

        A backend may give these commonest units a path of their own; each must
        land like the command, on a missing, small, just-full and big list alike
        (``"spilled-1"``: one item left of a big list), bump the list's version
        (a watcher conflicts), and leave a list that keeps taking pushes and pops
        at both ends.
        """
        lst = key("l")
        if before == "spilled-1":
            backend.rpush(lst, *[b"%d" % i for i in range(300)])
            backend.ltrim(lst, 0, 0)
            before = 1
        elif before:
            backend.rpush(lst, *[b"%d" % i for i in range(before)])
        items = raw.lrange(lst, 0, -1)
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_writes"):
            pytest.skip("this backend's scopes do not offer commit_writes()")
        watcher = backend.pipeline()
        watcher.watch(lst)
        assert held.__enter__() is True
        held.commit_writes([(command, (lst, b"new") if command.endswith("push") else (lst,))])
        held.__exit__(None, None, None)
        expected = {
            "rpush": [*items, b"new"],
            "lpush": [b"new", *items],
            "rpop": items[:-1],
            "lpop": items[1:],
        }[command]
        assert raw.lrange(lst, 0, -1) == expected
        assert backend.llen(lst) == len(expected)  # the row's length moved too
        assert raw.exists(lst) == (1 if expected else 0)
        if items or command.endswith("push"):
            watcher.multi()
            watcher.get(key("other"))
            with pytest.raises(WatchError):
                watcher.execute()
        else:
            watcher.reset()
        backend.rpush(lst, b"after")
        backend.lpush(lst, b"before")
        assert raw.lrange(lst, 0, -1) == [b"before", *expected, b"after"]
        assert backend.lpop(lst) == b"before"
        assert backend.rpop(lst) == b"after"
        assert raw.lrange(lst, 0, -1) == expected

    @pytest.mark.etcher_requires("locking_units")
    @pytest.mark.parametrize("command", ["rpush", "lpush", "rpop", "lpop"])
    def test_commit_writes_of_one_list_command_on_a_hash_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, command: str
    ) -> None:
        h = key("h")
        backend.hset(h, b"f", b"v")
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_writes"):
            pytest.skip("this backend's scopes do not offer commit_writes()")
        with pytest.raises(EtcherError), held:
            held.commit_writes([(command, (h, b"x") if command.endswith("push") else (h,))])
        assert raw.hgetall(h) == {b"f": b"v"}
        backend.hset(h, b"g", b"w")  # the backend is usable again
        assert raw.hgetall(h) == {b"f": b"v", b"g": b"w"}

    @pytest.mark.etcher_requires("locking_units")
    def test_commit_writes_of_created_keys_apply_in_order(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        """``created`` (``ScopeCommits.takes_created``): the unit's new keys, never looked up.

        A scope may write them without reading their rows, but every later write
        of the same key in the batch still applies after it, in order.
        """
        h, h2, lst, lst2, t = key("h"), key("h2"), key("l"), key("l2"), key("t")
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not getattr(held, "takes_created", False):
            pytest.skip("this backend's scopes do not take created keys")
        assert held.__enter__() is True
        held.commit_writes(
            [
                ("hdel", (h2, b"gone")),  # a field the unit set and deleted again
                ("hset", (h, {b"a": b"1", b"b": b"2"})),
                ("hset", (h2, {b"k": b"v"})),
                ("hset", (h, {b"b": b"3"})),
                ("rpush", (lst, b"x", b"y")),
                ("rpush", (lst, b"z")),
                ("lpop", (lst,)),
                ("lpush", (lst2, b"p", b"q")),
                ("hset", (t, {"text": 7})),  # normalized as the public command does it
            ],
            {h, h2, lst, lst2, t},
        )
        held.__exit__(None, None, None)
        assert raw.hgetall(h) == {b"a": b"1", b"b": b"3"}
        assert raw.hgetall(h2) == {b"k": b"v"}
        assert raw.lrange(lst, 0, -1) == [b"y", b"z"]
        assert raw.lrange(lst2, 0, -1) == [b"q", b"p"]
        assert raw.hgetall(t) == {b"text": b"7"}

    @pytest.mark.etcher_requires("locking_units")
    def test_commit_writes_of_created_keys_refused_leaves_the_store_untouched(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        h, lst, s = key("h"), key("l"), key("s")
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not getattr(held, "takes_created", False):
            pytest.skip("this backend's scopes do not take created keys")
        writes = [
            ("set", (s, b"1")),
            ("hset", (h, {b"f": b"v"})),
            ("rpush", (lst, b"x")),
            ("rpush", (lst, object())),  # not a storable value
        ]
        with pytest.raises((EtcherError, TypeError, ValueError)), held:
            held.commit_writes(writes, {h, lst})
        assert raw.exists(s, h, lst) == 0
        backend.rpush(lst, b"after")  # the backend is usable again
        assert raw.lrange(lst, 0, -1) == [b"after"]

    @pytest.mark.etcher_requires("locking_units")
    @pytest.mark.parametrize(
        ("command", "on", "args"),
        [
            ("rpush", "h", (b"x",)),  # wrong type: the key holds a hash
            ("rpush", "l", ()),  # nothing to push
            ("hset", "h", ({},)),  # nothing to set
            ("rpush", "l", (object(),)),  # not a storable value
        ],
    )
    def test_commit_writes_refused_leaves_the_store_untouched(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        command: str,
        on: str,
        args: tuple[Any, ...],
    ) -> None:
        h, lst, s = key("h"), key("l"), key("s")
        backend.hset(h, b"f", b"v")
        writes = [("set", (s, b"1")), (command, (h if on == "h" else lst, *args))]
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_writes"):
            pytest.skip("this backend's scopes do not offer commit_writes()")
        # What the public command raises for it: a storage error, TypeError or ValueError.
        with pytest.raises((EtcherError, TypeError, ValueError)), held:
            held.commit_writes(writes)
        assert raw.exists(key("s")) == 0
        assert raw.exists(lst) == 0
        assert raw.hgetall(h) == {b"f": b"v"}
        backend.set(lst, b"after")  # the backend is usable again
        assert raw.get(lst) == b"after"

    @pytest.mark.etcher_requires("locking_units")
    def test_read_batch_answers_as_a_pipeline(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        """``read_batch(hashes, singles, lists)`` (``etcher.spec.UnitScopes``), where the
        backend offers it: in a held scope, what a pipeline of the same reads returns,
        a new object for each answer (a key read twice too)."""
        if not hasattr(backend, "read_batch"):
            pytest.skip("this backend offers no read_batch()")
        h1, h2, l1, l2, s, nothing = (key(n) for n in ("h1", "h2", "l1", "l2", "s", "none"))
        backend.hset(h1, mapping={b"#k": b"d", b"#s": b"2"})
        backend.hset(h2, mapping={b"f%d" % i: b"%d|v" % i for i in range(300)})  # big
        backend.rpush(l1, b"a", b"b")
        backend.rpush(l2, *[b"%d" % i for i in range(300)])
        backend.set(s, b"x")
        hashes, singles, lists = (
            [h1, h2, nothing, h1],
            [(h1, b"#s"), (h2, b"f7"), (h2, b"gone"), (nothing, b"f")],
            [l1, l2, nothing],
        )
        pipe = backend.pipeline(transaction=False)
        for k in hashes:
            pipe.hgetall(k)
        for k, f in singles:
            pipe.hget(k, f)
        for k in lists:
            pipe.lrange(k, 0, -1)
        want = pipe.execute()
        for write in (True, False):
            with backend.unit_scope(write) as held:  # type: ignore[attr-defined]
                assert held
                got = backend.read_batch(hashes, singles, lists)
                assert got == want
                # One object per answer: a unit keeps each dict it read and edits it.
                assert got[0] is not got[3]
        # A key of another type: the error a pipeline's read raises (etcher's own error).
        batches: list[tuple[list[str], list[tuple[str, bytes]], list[str]]] = [
            ([s], [], []),
            ([], [(s, b"f")], []),
            ([], [], [s]),
        ]
        for batch in batches:
            with pytest.raises(EtcherError), backend.unit_scope(True):  # type: ignore[attr-defined]
                backend.read_batch(*batch)
        assert raw.lrange(l1, 0, -1) == [b"a", b"b"]  # (reads write nothing)

    @pytest.mark.etcher_requires("locking_units")
    def test_read_item_returns_what_the_two_reads_return(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        """``read_item(refs, content, field)`` (``etcher.spec.ScopeCommits``), where a
        write scope offers it: ``(hgetall(refs), hget(content, field))``."""
        h, c, s, nothing = key("h"), key("c"), key("s"), key("nothing")
        backend.hset(h, mapping={b"#k": b"d", b"#s": b"2"})
        backend.hset(c, mapping={b"f": b"1|v", b"g": b"2|w"})
        backend.set(s, b"x")
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "read_item"):
            pytest.skip("this backend's scopes do not offer read_item()")
        with held:
            assert held.read_item(h, c, b"g") == ({b"#k": b"d", b"#s": b"2"}, b"2|w")
        for refs, content, field, want in [
            (h, c, b"none", ({b"#k": b"d", b"#s": b"2"}, None)),
            (nothing, c, b"f", ({}, b"1|v")),
            (h, nothing, b"f", ({b"#k": b"d", b"#s": b"2"}, None)),
        ]:
            held = backend.unit_scope(True)  # type: ignore[attr-defined]
            with held:
                assert held.read_item(refs, content, field) == want
        for refs, content in [(s, c), (h, s)]:  # another type: the read's error
            held = backend.unit_scope(True)  # type: ignore[attr-defined]
            with pytest.raises(EtcherError), held:
                held.read_item(refs, content, b"f")
        assert raw.hgetall(c) == {b"f": b"1|v", b"g": b"2|w"}  # (reads write nothing)

    @pytest.mark.etcher_requires("locking_units")
    def test_read_header_returns_what_hgetall_returns(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        """``read_header(refs, key)`` (``etcher.spec.ScopeCommits``), where a write scope
        offers it: ``hgetall(refs)``; the commands on ``key`` after it in the scope (the
        length, its end items, a push committed) answer, raise and write as without it."""
        h, big, nothing, s = key("h"), key("big"), key("nothing"), key("s")
        small, long, hashed = key("small"), key("long"), key("hashed")
        header = {b"#k": b"l", b"Dparent": b"1"}
        backend.hset(h, mapping=header)
        spilled = {b"f%d" % i: b"%d" % i for i in range(300)}  # past any packed form
        backend.hset(big, mapping=spilled)
        backend.set(s, b"x")
        backend.rpush(small, b"a", b"b")
        backend.rpush(long, *[b"%d" % i for i in range(300)])
        backend.hset(hashed, mapping={b"f": b"v"})
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "read_header"):
            pytest.skip("this backend's scopes do not offer read_header()")
        for refs, want in [(h, header), (nothing, {}), (big, spilled)]:
            for lst, items in [
                (small, [b"a", b"b"]),
                (long, [b"%d" % i for i in range(300)]),
                (key("none"), []),
            ]:
                held = backend.unit_scope(True)  # type: ignore[attr-defined]
                with held:
                    assert held.read_header(refs, lst) == want
                    assert backend.llen(lst) == len(items)
                    assert backend.lindex(lst, 0) == (items[0] if items else None)
                    assert backend.lindex(lst, -1) == (items[-1] if items else None)
                    held.commit_writes([("rpush", (lst, b"new"))])
                assert raw.lrange(lst, 0, -1) == [*items, b"new"]
                backend.rpop(lst)  # as it was, for the next header
                if not items:
                    assert raw.exists(lst) == 0
            # The key read ahead holds another type: its own commands raise, as always.
            for other in (s, hashed):
                held = backend.unit_scope(True)  # type: ignore[attr-defined]
                with pytest.raises(EtcherError), held:
                    assert held.read_header(refs, other) == want
                    backend.llen(other)
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        with pytest.raises(EtcherError), held:
            held.read_header(s, small)  # a header of another type: hgetall's error
        assert raw.lrange(small, 0, -1) == [b"a", b"b"]
        assert raw.get(s) == b"x"

    @pytest.mark.etcher_requires("locking_units")
    def test_commit_fresh_applies_as_commit_writes(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        """``commit_fresh(writes, fresh)`` (``etcher.spec.ScopeCommits``), where a write
        scope offers it: the header and content read in the scope, then written with
        new nodes' contents, as ``commit_writes(writes, (), fresh)``; a key holding
        another type refuses it all."""
        h, c, s, d, lst = key("h"), key("c"), key("s"), key("d"), key("l")
        backend.hset(h, mapping={b"#k": b"d", b"#s": b"1"})
        backend.hset(c, mapping={b"f": b"0|v"})
        backend.set(s, b"x")
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        if not hasattr(held, "commit_fresh"):
            pytest.skip("this backend's scopes do not offer commit_fresh()")
        assert held.__enter__() is True
        backend.hgetall(h)
        backend.hget(c, b"g")
        held.commit_fresh(
            [("hreplace", (h, {b"#k": b"d", b"#s": b"2"})), ("hset", (c, {b"g": b"1|@D"}))],
            {d: {b"a": b"0|i1"}, lst: [b"i1", b"i2"]},
        )
        held.__exit__(None, None, None)  # the scope was already committed: nothing to do
        assert raw.hgetall(h) == {b"#k": b"d", b"#s": b"2"}
        assert raw.hgetall(c) == {b"f": b"0|v", b"g": b"1|@D"}
        assert raw.hgetall(d) == {b"a": b"0|i1"}
        assert raw.lrange(lst, 0, -1) == [b"i1", b"i2"]
        held = backend.unit_scope(True)  # type: ignore[attr-defined]
        with pytest.raises(EtcherError), held:
            backend.hgetall(h)
            backend.get(s)
            held.commit_fresh(
                [("hset", (h, {b"#s": b"3"})), ("hset", (s, {b"f": b"v"}))],
                {key("d2"): {b"a": b"0|i1"}},
            )
        assert raw.hgetall(h) == {b"#k": b"d", b"#s": b"2"}
        assert raw.exists(key("d2")) == 0
        assert raw.get(s) == b"x"

    @pytest.mark.etcher_requires("locking_units")
    def test_a_scope_inside_a_scope_is_refused(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s = key("s")
        outer = backend.unit_scope(True)  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError), outer:
            backend.set(s, b"outer")
            with backend.unit_scope(False) as inner:  # type: ignore[attr-defined]
                assert inner is False
            # Leaving the refused scope must not have ended the outer one.
            raise RuntimeError("roll the outer scope back")
        assert raw.exists(s) == 0

    @pytest.mark.etcher_requires("locking_units")
    def test_read_scope_is_a_snapshot(
        self, backend: StorageBackend, second_backend: StorageBackend, key: KeyMaker
    ) -> None:
        s = key("s")
        backend.set(s, b"old")
        with backend.unit_scope(False) as held:  # type: ignore[attr-defined]
            assert held is True
            assert backend.get(s) == b"old"
            second_backend.set(s, b"new")
            assert backend.get(s) == b"old"
            assert backend.pipeline(transaction=False).get(s).execute() == [b"old"]
        assert backend.get(s) == b"new"

    @pytest.mark.etcher_requires("locking_units")
    def test_write_scope_keeps_other_writers_out(
        self, backend: StorageBackend, second_backend: StorageBackend, key: KeyMaker
    ) -> None:
        s, other = key("s"), key("other")
        backend.set(s, b"0")
        writer = threading.Thread(target=second_backend.set, args=(other, b"late"))
        with backend.unit_scope(True):  # type: ignore[attr-defined]
            value = backend.get(s)
            writer.start()
            # The other writer must wait for the scope: it is still blocked after a while.
            writer.join(0.3)
            assert writer.is_alive()
            assert backend.get(other) is None
            backend.set(s, value + b"1")
        writer.join(30)
        assert not writer.is_alive()
        assert second_backend.get(s) == b"01"
        assert second_backend.get(other) == b"late"
