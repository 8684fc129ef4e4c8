"""Pipelines: buffered and immediate modes, WATCH, atomic batches."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher.errors import StoreLocked, TransactionError, WatchError, WrongTypeError
from etcher_sqlite import SQLiteBackend
from etcher_sqlite.pipeline import SQLitePipeline


def test_buffered_mode_queues_and_returns_the_pipeline(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    assert pipe.set("a", 1) is pipe
    assert pipe.hset("h", "f", 1).rpush("l", "x", "y").get("a") is pipe
    assert len(pipe) == 4
    assert bool(SQLitePipeline(store)) is True  # even empty
    assert store.exists("a", "h", "l") == 0  # nothing ran yet
    assert pipe.execute() == [True, 1, 2, b"1"]
    assert len(pipe) == 0
    assert store.lrange("l", 0, -1) == [b"x", b"y"]


def test_reads_in_a_batch_see_its_earlier_writes(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.hset("h", mapping={"a": 1}).hgetall("h").hset("h", "b", 2).hlen("h").delete("h")
    pipe.exists("h").rpush("l", 1).lpush("l", 0).lrange("l", 0, -1).type("l")
    assert pipe.execute() == [1, {b"a": b"1"}, 1, 2, 1, 0, 1, 2, [b"0", b"1"], b"list"]


def test_runs_of_one_command_behave_like_single_calls(store: SQLiteBackend) -> None:
    store.hset("h0", "x", 0)
    pipe = store.pipeline()
    for i in range(5):
        pipe.hset(f"h{i % 2}", mapping={"x": i, f"y{i}": i})
    for i in range(4):
        pipe.rpush("l", i)
    pipe.lpush("l", "a", "b")
    pipe.hdel("h0", "x", "y0").hdel("h0", "x", "y2", "y4").hdel("h1", "nope")
    pipe.set("s", 1).set("s", 2).set("h1", 3)
    pipe.delete("l", "l").delete("s", "zz")
    assert pipe.execute() == [1, 2, 1, 1, 1, 1, 2, 3, 4, 6, 2, 2, 0, True, True, True, 1, 1]
    assert store.exists("h0", "h1", "s", "l") == 1
    assert store.get("h1") == b"3"


def test_empty_execute(store: SQLiteBackend) -> None:
    assert store.pipeline().execute() == []


def test_reset_and_context_manager_drop_the_queue(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.set("a", 1)
    pipe.reset()
    assert len(pipe) == 0
    assert pipe.execute() == []
    with store.pipeline() as pipe2:
        pipe2.set("a", 1)
    assert len(pipe2) == 0
    assert store.exists("a") == 0


def test_watch_switches_to_immediate_mode_until_multi(store: SQLiteBackend) -> None:
    store.set("n", 5)
    pipe = store.pipeline()
    assert pipe.watch("n") is True
    assert pipe.get("n") == b"5"  # immediate: a result, not the pipeline
    pipe.multi()
    assert pipe.set("n", 6) is pipe
    assert pipe.execute() == [True]
    assert store.get("n") == b"6"
    assert pipe.get("n") is pipe  # reset to buffered mode after execute
    pipe.reset()


def test_unwatch_forgets_the_watches(store: SQLiteBackend, other: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.watch("k")
    other.set("k", 1)
    pipe.unwatch()
    assert pipe.set("k", 2) is pipe  # back to buffered
    assert pipe.execute() == [True]


def watched_transaction(store: SQLiteBackend, interfere: Callable[[], Any]) -> list[Any]:
    pipe = store.pipeline()
    pipe.watch("k")
    value = pipe.get("k")
    interfere()
    pipe.multi()
    pipe.set("k", (value or b"") + b"+")
    pipe.set("side", "effect")
    return pipe.execute()


def test_unchanged_watch_commits(store: SQLiteBackend, other: SQLiteBackend) -> None:
    store.set("k", "a")
    assert watched_transaction(store, lambda: other.set("unrelated", 1)) == [True, True]
    assert store.get("k") == b"a+"


@pytest.mark.parametrize(
    "interference",
    [
        pytest.param(lambda o: o.set("k", "b"), id="set"),
        pytest.param(lambda o: o.set("k", "a"), id="same-value"),
        pytest.param(lambda o: o.delete("k"), id="delete"),
        pytest.param(lambda o: (o.delete("k"), o.set("k", "a")), id="delete-recreate"),
        pytest.param(lambda o: o.pipeline().set("k", "c").execute(), id="pipeline"),
        pytest.param(lambda o: (o.set("x", 1), o.set("k", "a")), id="other-then-k"),
    ],
)
def test_any_write_from_another_connection_is_a_conflict(
    store: SQLiteBackend, other: SQLiteBackend, interference: Callable[[SQLiteBackend], Any]
) -> None:
    store.set("k", "a")
    before = other.get("k")
    with pytest.raises(WatchError):
        watched_transaction(store, lambda: interference(other))
    assert store.exists("side") == 0
    assert store.get("k") != (before or b"") + b"+"


def test_container_writes_are_conflicts(store: SQLiteBackend, other: SQLiteBackend) -> None:
    store.hset("h", "f", 1)
    store.rpush("l", 1, 2)
    interferences: list[Callable[[], Any]] = [
        lambda: other.hset("h", "g", 2),
        lambda: other.hdel("h", "g"),
        lambda: other.hincrby("h", "f"),
        lambda: other.rpush("l", 3),
        lambda: other.lpop("l"),
        lambda: other.lset("l", 0, "x"),
        lambda: other.ltrim("l", 0, 0),
    ]
    for interfere in interferences:
        pipe = store.pipeline()
        pipe.watch("h", "l")
        interfere()
        pipe.multi()
        pipe.set("side", 1)
        with pytest.raises(WatchError):
            pipe.execute()
        assert store.exists("side") == 0


def test_missing_key_that_stays_missing_is_unchanged(
    store: SQLiteBackend, other: SQLiteBackend
) -> None:
    pipe = store.pipeline()
    pipe.watch("ghost")
    other.set("elsewhere", 1)
    pipe.multi()
    pipe.set("side", 1)
    assert pipe.execute() == [True]


def test_missing_key_created_meanwhile_is_a_conflict(
    store: SQLiteBackend, other: SQLiteBackend
) -> None:
    pipe = store.pipeline()
    pipe.watch("ghost")
    other.rpush("ghost", 1)
    pipe.multi()
    pipe.set("side", 1)
    with pytest.raises(WatchError):
        pipe.execute()


def test_a_no_op_write_does_not_conflict(store: SQLiteBackend, other: SQLiteBackend) -> None:
    store.hset("h", "f", 1)
    pipe = store.pipeline()
    pipe.watch("h")
    assert other.hdel("h", "missing") == 0
    pipe.multi()
    pipe.set("side", 1)
    assert pipe.execute() == [True]


def test_empty_execute_with_watches_validates_them(
    store: SQLiteBackend, other: SQLiteBackend
) -> None:
    store.set("k", 1)
    pipe = store.pipeline()
    pipe.watch("k")
    assert pipe.execute() == []
    pipe.watch("k")
    other.set("k", 2)
    with pytest.raises(WatchError):
        pipe.execute()


def test_pipeline_is_reusable_after_a_conflict(store: SQLiteBackend, other: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.watch("k")
    other.set("k", 1)
    pipe.multi()
    pipe.set("k", 2)
    with pytest.raises(WatchError):
        pipe.execute()
    assert len(pipe) == 0
    assert pipe.set("k", 3) is pipe  # buffered again, no stale watch
    assert pipe.execute() == [True]
    assert store.get("k") == b"3"


def test_a_write_made_while_watching_counts_as_a_change(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.watch("k")
    assert pipe.set("k", 1) is True  # immediate mode runs it now (as redis-py does)
    pipe.multi()
    pipe.get("k")
    with pytest.raises(WatchError):  # Redis, too, fails EXEC after touching a watched key
        pipe.execute()


def test_watching_twice_keeps_the_first_version(store: SQLiteBackend, other: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.watch("k")
    other.set("k", 1)
    pipe.watch("k")
    pipe.multi()
    with pytest.raises(WatchError):
        pipe.execute()


def test_watch_from_another_process_conflicts(
    store: SQLiteBackend, db_path: Path, run_python: Callable[..., Any]
) -> None:
    store.set("k", "a")
    pipe = store.pipeline()
    pipe.watch("k")
    run_python(
        """
        import sys
        from etcher_sqlite import SQLiteBackend
        SQLiteBackend(sys.argv[1]).set("k", "from-child")
        """,
        db_path,
    )
    pipe.multi()
    pipe.set("k", "mine")
    with pytest.raises(WatchError):
        pipe.execute()
    assert store.get("k") == b"from-child"


def test_misuse_of_multi_and_watch(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.multi()
    with pytest.raises(TransactionError):
        pipe.multi()
    with pytest.raises(TransactionError):
        pipe.watch("k")
    pipe.reset()
    pipe.set("a", 1)
    with pytest.raises(TransactionError):
        pipe.multi()


def five_commands_third_fails(pipe: SQLitePipeline) -> None:
    pipe.set("a", 1)
    pipe.rpush("l", "x")
    pipe.hset("list-key", "f", 1)  # WRONGTYPE
    pipe.hset("h", "f", 1)
    pipe.delete("victim")


@pytest.mark.parametrize("transaction", [True, False])
def test_error_mid_batch_applies_nothing(
    store: SQLiteBackend, raw: sqlite3.Connection, transaction: bool
) -> None:
    store.rpush("list-key", "v")
    store.set("victim", 1)
    rows = raw.execute("SELECT * FROM keys ORDER BY name").fetchall()
    pipe = store.pipeline(transaction=transaction)
    five_commands_third_fails(pipe)
    with pytest.raises(WrongTypeError):
        pipe.execute()
    assert store.exists("a", "l", "h") == 0
    assert store.get("victim") == b"1"
    assert store.lrange("list-key", 0, -1) == [b"v"]
    assert raw.execute("SELECT * FROM keys ORDER BY name").fetchall() == rows
    assert len(pipe) == 0  # reset after the failure


def test_error_inside_a_run_applies_nothing(store: SQLiteBackend) -> None:
    store.set("s", "x")
    pipe = store.pipeline()
    pipe.hset("h1", "f", 1).hset("h2", "f", 1).hset("s", "f", 1).hset("h3", "f", 1)
    with pytest.raises(WrongTypeError):
        pipe.execute()
    assert store.exists("h1", "h2", "h3") == 0


def test_error_in_a_late_command_undoes_earlier_runs(store: SQLiteBackend) -> None:
    store.rpush("l", 1)
    pipe = store.pipeline()
    pipe.rpush("l", 2, 3).lpop("l").set("x", 1).lset("l", 10, "boom")
    with pytest.raises(IndexError):
        pipe.execute()
    assert store.lrange("l", 0, -1) == [b"1"]
    assert store.exists("x") == 0


def test_raise_on_error_false_still_raises(store: SQLiteBackend) -> None:
    store.set("s", 1)
    pipe = store.pipeline()
    pipe.set("a", 1).hget("s", "f")
    with pytest.raises(WrongTypeError):
        pipe.execute(raise_on_error=False)
    assert store.exists("a") == 0


def test_bad_arguments_fail_at_queue_time(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    pipe.set("a", 1)
    with pytest.raises(TypeError):
        pipe.set("b", None)  # type: ignore[arg-type]
    assert len(pipe) == 1
    assert pipe.execute() == [True]


def test_read_only_batch_does_not_need_the_write_lock(store: SQLiteBackend, db_path: Path) -> None:
    store.set("a", 1)
    store.hset("h", "f", 2)
    quick = SQLiteBackend(db_path, timeout=0.05)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        pipe = quick.pipeline(transaction=False)
        pipe.get("a").hgetall("h")
        assert pipe.execute() == [b"1", {b"f": b"2"}]
        pipe = quick.pipeline()
        pipe.set("b", 1)
        with pytest.raises(StoreLocked):
            pipe.execute()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        quick.close()


def test_batch_reads_are_one_snapshot(store: SQLiteBackend, db_path: Path) -> None:
    """A write committed by another connection mid-batch is not seen by the batch."""
    store.set("a", "old")
    store.set("b", "old")
    writer = sqlite3.connect(db_path, isolation_level=None)
    seen: list[str] = []

    def snoop(statement: str) -> None:
        # Once the batch has read "a", another connection rewrites both keys.
        if "SELECT type, value FROM keys" in statement:
            seen.append(statement)
            if len(seen) == 2:
                writer.execute("UPDATE keys SET value = x'6e6577'")  # b"new"

    conn = store._conn()
    conn.set_trace_callback(snoop)
    try:
        pipe = store.pipeline(transaction=False)
        pipe.get("a").get("b")
        assert pipe.execute() == [b"old", b"old"]
        assert len(seen) == 2  # the write really happened between the two reads
    finally:
        conn.set_trace_callback(None)
        writer.close()
    assert store.get("b") == b"new"
