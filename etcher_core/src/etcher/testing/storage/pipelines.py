"""Storage conformance, pipelines: queueing, WATCH/MULTI/EXEC (:class:`PipelineConformance`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from etcher.errors import StoreIndexError, StoreValueError, WatchError, WrongTypeError
from etcher.spec import Pipeline, StorageBackend
from etcher.testing.fixtures import KeyMaker, RawAccess
from etcher.testing.storage._common import (
    _MAKERS,
    _raises,
    _snapshot,
)
from etcher.testing.wording import expect_equal

# --------------------------------------------------------------------------- pipelines

_WRITES: dict[str, Callable[[Any, str], object]] = {
    "set": lambda b, k: b.set(k, b"other"),
    "incr": lambda b, k: b.incr(k),
    "delete": lambda b, k: b.delete(k),
}
_HASH_WRITES: dict[str, Callable[[Any, str], object]] = {
    "hset-new-field": lambda b, k: b.hset(k, b"new", b"1"),
    "hset-update": lambda b, k: b.hset(k, b"f", b"changed"),
    "hdel": lambda b, k: b.hdel(k, b"f"),
    "hincrby": lambda b, k: b.hincrby(k, b"n", 1),
    "delete": lambda b, k: b.delete(k),
    "set-over": lambda b, k: b.set(k, b"x"),
}
_LIST_WRITES: dict[str, Callable[[Any, str], object]] = {
    "rpush": lambda b, k: b.rpush(k, b"z"),
    "lpush": lambda b, k: b.lpush(k, b"z"),
    "lpop": lambda b, k: b.lpop(k),
    "rpop": lambda b, k: b.rpop(k),
    "lset": lambda b, k: b.lset(k, 0, b"z"),
    "ltrim": lambda b, k: b.ltrim(k, 0, 0),
    "delete": lambda b, k: b.delete(k),
}
_MODIFICATIONS = [
    *(pytest.param("string", w, id=f"string-{n}") for n, w in _WRITES.items()),
    *(pytest.param("hash", w, id=f"hash-{n}") for n, w in _HASH_WRITES.items()),
    *(pytest.param("list", w, id=f"list-{n}") for n, w in _LIST_WRITES.items()),
]


def _watched_transaction(pipe: Pipeline, watched: str, target: str) -> None:
    """Watch ``watched``, read it in immediate mode, then queue a write to ``target``."""
    pipe.watch(watched)
    pipe.get(target)
    pipe.multi()
    pipe.set(target, b"written by the transaction")


class PipelineConformance:
    """pipeline(): buffered batches, watch/multi/execute, conflicts, reset and reuse."""

    def test_buffered_commands_return_the_pipeline_and_results_come_in_order(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst, missing = key("s"), key("h"), key("l"), key("missing")
        pipe = backend.pipeline()
        assert pipe.set(s, b"1") is pipe
        pipe.incr(s, 4)
        pipe.get(s)
        pipe.hset(h, mapping={b"a": b"1", b"b": b"2"})
        pipe.rpush(lst, b"x", b"y")
        pipe.lrange(lst, 0, -1)
        pipe.get(missing)
        pipe.exists(s, h, lst, missing)
        assert len(pipe) == 8
        results = pipe.execute()
        assert results == [True, 5, b"5", 2, 2, [b"x", b"y"], None, 3]
        assert raw.get(s) == b"5"
        assert raw.hgetall(h) == {b"a": b"1", b"b": b"2"}
        assert raw.lrange(lst, 0, -1) == [b"x", b"y"]

    @pytest.mark.parametrize("transaction", [True, False], ids=["transaction", "plain"])
    def test_nothing_is_applied_before_execute(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, transaction: bool
    ) -> None:
        k = key("s")
        pipe = backend.pipeline(transaction=transaction)
        pipe.set(k, b"1")
        pipe.rpush(key("l"), b"x")
        assert raw.exists(k, key("l")) == 0
        assert pipe.execute() == [True, 1]
        assert raw.get(k) == b"1"

    def test_execute_with_nothing_queued_returns_empty_list(self, backend: StorageBackend) -> None:
        assert backend.pipeline().execute() == []
        assert backend.pipeline(transaction=False).execute() == []

    def test_plain_pipeline_runs_commands_in_order(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("l")
        pipe = backend.pipeline(transaction=False)
        pipe.rpush(k, b"a")
        pipe.lpush(k, b"b")
        pipe.lrange(k, 0, -1)
        pipe.lpop(k)
        pipe.llen(k)
        assert pipe.execute() == [1, 2, [b"b", b"a"], b"b", 1]
        assert raw.lrange(k, 0, -1) == [b"a"]

    def test_immediate_mode_after_watch_returns_values(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        s, h, lst = key("s"), key("h"), key("l")
        backend.set(s, b"10")
        backend.hset(h, b"f", b"v")
        backend.rpush(lst, b"x", b"y")
        pipe = backend.pipeline()
        pipe.watch(s, h)
        assert pipe.get(s) == b"10"
        assert pipe.hgetall(h) == {b"f": b"v"}
        assert pipe.lrange(lst, 0, -1) == [b"x", b"y"]
        assert pipe.get(key("missing")) is None
        pipe.multi()
        assert pipe.set(s, b"11") is pipe
        assert pipe.hset(h, b"g", b"w") is pipe
        assert pipe.execute() == [True, 1]
        assert raw.get(s) == b"11"
        assert raw.hgetall(h) == {b"f": b"v", b"g": b"w"}

    def test_multi_then_execute_without_watch(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("n")
        pipe = backend.pipeline()
        pipe.multi()
        pipe.incr(k)
        pipe.incr(k)
        assert pipe.execute() == [1, 2]
        assert raw.get(k) == b"2"

    def test_watch_conflict_from_another_connection(
        self, backend: StorageBackend, second_backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        second_backend.set(watched, b"changed elsewhere")
        with _raises(
            WatchError,
            "a write by another connection to a watched key is a conflict",
            prefix=key.prefix,
        ):
            pipe.execute()
        expect_equal(
            raw.get(watched),
            b"changed elsewhere",
            "the other connection's write stays",
            key=watched,
            prefix=key.prefix,
        )
        expect_equal(
            raw.exists(target),
            0,
            "a transaction that raised WatchError applies nothing",
            key=target,
            prefix=key.prefix,
        )

    def test_watch_conflict_from_a_plain_write_on_the_same_backend(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.set(watched, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_watch_conflict_from_another_transaction(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        loser = backend.pipeline()
        _watched_transaction(loser, watched, target)
        winner = backend.pipeline()
        winner.watch(watched)
        assert winner.get(watched) == b"0"
        winner.multi()
        winner.set(watched, b"won")
        assert winner.execute() == [True]
        with pytest.raises(WatchError):
            loser.execute()
        assert raw.get(watched) == b"won"
        assert raw.exists(target) == 0

    @pytest.mark.parametrize(("kind", "write"), _MODIFICATIONS)
    def test_every_kind_of_write_is_a_conflict(
        self,
        backend: StorageBackend,
        raw: RawAccess,
        key: KeyMaker,
        kind: str,
        write: Callable[[Any, str], object],
    ) -> None:
        # Written through the backend itself (not a second connection) so that
        # single-connection backends run this too; a pipeline never shares a
        # connection with its backend's plain commands.
        watched, target = key("watched"), key("target")
        _MAKERS[kind](backend, watched)
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        write(backend, watched)
        with _raises(
            WatchError,
            f"any write to a watched {kind} key between watch() and execute() is a conflict",
            prefix=key.prefix,
        ):
            pipe.execute()
        expect_equal(
            raw.exists(target),
            0,
            "a transaction that raised WatchError applies nothing",
            key=target,
            prefix=key.prefix,
        )

    def test_write_through_a_plain_pipeline_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        other = backend.pipeline(transaction=False)
        other.incr(watched)
        other.execute()
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_deleting_a_watched_key_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.rpush(watched, b"x")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.delete(watched)
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_creating_a_watched_missing_key_is_a_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.hset(watched, b"f", b"v")
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_watched_key_missing_and_still_missing_is_no_conflict(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        assert pipe.execute() == [True]
        assert raw.get(target) == b"written by the transaction"

    def test_unchanged_watched_keys_commit(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b, unrelated, target = key("a"), key("b"), key("unrelated"), key("target")
        backend.set(a, b"1")
        backend.rpush(b, b"x")
        pipe = backend.pipeline()
        pipe.watch(a, b)
        assert pipe.get(a) == b"1"
        pipe.multi()
        pipe.set(target, b"done")
        pipe.incr(a)
        backend.set(unrelated, b"writes elsewhere never conflict")
        backend.get(a)  # reads never conflict
        assert pipe.execute() == [True, 2]
        assert raw.get(target) == b"done"
        assert raw.get(a) == b"2"

    def test_conflict_on_any_of_several_watched_keys(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b, c, target = key("a"), key("b"), key("c"), key("target")
        for name in (a, b, c):
            backend.set(name, b"0")
        pipe = backend.pipeline()
        pipe.watch(a)
        pipe.watch(b, c)  # watch() extends the watch set
        pipe.multi()
        pipe.set(target, b"x")
        backend.set(c, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        assert raw.exists(target) == 0

    def test_empty_execute_with_watch_validates(
        self, backend: StorageBackend, key: KeyMaker
    ) -> None:
        k = key("watched")
        backend.set(k, b"0")
        pipe = backend.pipeline()
        pipe.watch(k)
        assert pipe.get(k) == b"0"
        assert pipe.execute() == []  # unchanged: passes as a read check
        pipe.watch(k)
        backend.set(k, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        pipe.watch(k)
        pipe.multi()
        backend.set(k, b"2")
        with pytest.raises(WatchError):
            pipe.execute()

    def test_pipeline_is_reusable_after_execute(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, a = key("watched"), key("a")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.multi()
        pipe.set(a, b"1")
        assert pipe.execute() == [True]
        assert len(pipe) == 0
        backend.set(watched, b"changed after the commit")  # no longer watched
        assert pipe.set(a, b"2") is pipe  # back in buffered mode
        pipe.incr(key("n"))
        assert pipe.execute() == [True, 1]
        assert raw.get(a) == b"2"

    def test_pipeline_is_reusable_after_watch_error(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        _watched_transaction(pipe, watched, target)
        backend.set(watched, b"1")
        with pytest.raises(WatchError):
            pipe.execute()
        assert len(pipe) == 0
        backend.set(watched, b"2")  # the failed watch must be gone
        assert pipe.set(target, b"second try") is pipe
        assert pipe.execute() == [True]
        assert raw.get(target) == b"second try"

    def test_retry_loop_after_watch_error_commits(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        k = key("n")
        backend.set(k, b"5")
        pipe = backend.pipeline()
        attempts = 0
        while True:
            attempts += 1
            pipe.watch(k)
            value = int(pipe.get(k))
            if attempts == 1:
                backend.incr(k, 100)  # interfere once
            pipe.multi()
            pipe.set(k, value * 2)
            try:
                pipe.execute()
                break
            except WatchError:
                assert attempts == 1
        assert attempts == 2
        assert raw.get(k) == b"210"

    def test_reset_drops_queue_and_watches(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, a, b = key("watched"), key("a"), key("b")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        pipe.set(a, b"queued then dropped")
        pipe.reset()
        assert len(pipe) == 0
        assert pipe.execute() == []
        assert raw.exists(a) == 0
        pipe.watch(watched)
        backend.set(watched, b"1")
        pipe.reset()
        pipe.multi()
        pipe.set(b, b"1")
        assert pipe.execute() == [True]
        assert raw.get(b) == b"1"

    def test_unwatch_forgets_watched_keys(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        watched, target = key("watched"), key("target")
        backend.set(watched, b"0")
        pipe = backend.pipeline()
        pipe.watch(watched)
        pipe.unwatch()
        backend.set(watched, b"1")
        pipe.multi()
        pipe.set(target, b"x")
        assert pipe.execute() == [True]
        assert raw.get(target) == b"x"

    def test_context_manager_resets_on_exit(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker
    ) -> None:
        a, b = key("a"), key("b")
        with backend.pipeline() as pipe:
            pipe.set(a, b"1")
            assert pipe.execute() == [True]
            pipe.set(b, b"never executed")
        assert raw.get(a) == b"1"
        assert raw.exists(b) == 0

    def test_failing_command_raises_its_error(self, backend: StorageBackend, key: KeyMaker) -> None:
        s = key("s")
        backend.set(s, b"text")
        pipe = backend.pipeline()
        pipe.set(key("before"), b"1")
        pipe.hset(s, b"f", b"v")
        pipe.set(key("after"), b"1")
        with pytest.raises(WrongTypeError):
            pipe.execute()
        assert len(pipe) == 0
        pipe.set(key("later"), b"1")  # still usable
        assert pipe.execute() == [True]

    @pytest.mark.etcher_requires("atomic_batches")
    @pytest.mark.parametrize("failing", ["wrong-type", "not-an-integer", "index-out-of-range"])
    def test_failing_command_applies_nothing(
        self, backend: StorageBackend, raw: RawAccess, key: KeyMaker, failing: str
    ) -> None:
        s, h, lst, created = key("s"), key("h"), key("l"), key("created")
        backend.set(s, b"text")
        backend.hset(h, b"f", b"1")
        backend.rpush(lst, b"x")
        before = [_snapshot(raw, name) for name in (s, h, lst, created)]
        pipe = backend.pipeline()
        pipe.set(s, b"overwritten")
        pipe.hset(h, b"g", b"2")
        pipe.rpush(lst, b"y")
        pipe.set(created, b"1")
        if failing == "wrong-type":
            pipe.lpush(h, b"z")
        elif failing == "not-an-integer":
            pipe.incr(key("s"))
        else:
            pipe.lset(lst, 10, b"z")
        pipe.delete(h)
        with pytest.raises((WrongTypeError, StoreValueError, StoreIndexError)):
            pipe.execute()
        expect_equal(
            [_snapshot(raw, name) for name in (s, h, lst, created)],
            before,
            "with atomic_batches, a transactional execute() whose command fails applies none of "
            "its commands (the ones before the failure are rolled back)",
            prefix=key.prefix,
        )
