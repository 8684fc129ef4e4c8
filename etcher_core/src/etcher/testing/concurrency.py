"""Concurrency conformance: no lost update, ever, across threads and processes.

These tests open the store under test by URL in several threads and child
processes, so they need a ``store_url`` fixture naming a store that other
processes can open (e.g. ``sqlite:////tmp/x.db``, ``unix:///tmp/redis.sock``)::

    class TestMyKVConcurrency(ConcurrencyConformance):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mykv://{tmp_path}/store"

Worker functions live at module level so ``spawn``-started processes can
import them. Every worker opens its own ``DB``; nothing is shared but the store.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from etcher.db import DB
from etcher.errors import WatchError

PROCESSES = 4
INCREMENTS = 250


def _ctx() -> Any:
    # spawn: children never inherit open connections, locks or threads of the test runner.
    return multiprocessing.get_context("spawn")


def _run_processes(target: Callable[..., Any], args_list: list[tuple[Any, ...]]) -> None:
    ctx = _ctx()
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    for p in procs:
        if p.is_alive():
            p.kill()
            raise AssertionError("a worker process hung")
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"


# --------------------------------------------------------------------------- workers


def transact_increments(url: str, prefix: str, key: str, n: int) -> None:
    """Increment ``db[key]["n"]`` ``n`` times, each in a retried transaction."""
    with DB(url, prefix=prefix) as db:

        def bump(t: Any) -> None:
            t[key]["n"] = t[key]["n"] + 1

        for _ in range(n):
            db.transact(bump)


def published_transact_increments(url: str, prefix: str, key: str, n: int) -> None:
    """The same with the published transactor API (``t.transact(fn)``)."""
    with DB(url, prefix=prefix) as db:
        t = db.transactor()

        def txn() -> None:
            value = t[key]["n"]
            t.multi()
            t[key]["n"] = value + 1

        for _ in range(n):
            t.transact(txn)


def incr_counter(url: str, prefix: str, key: str, n: int) -> None:
    """``db.incr(key)`` ``n`` times."""
    with DB(url, prefix=prefix) as db:
        for _ in range(n):
            db.incr(key)


def plain_write(url: str, prefix: str, key: str, value: int) -> None:
    """One plain (non-transactional) write of ``db[key]["n"]``."""
    with DB(url, prefix=prefix) as db:
        db[key]["n"] = value


def overwrite_loop(url: str, prefix: str, rounds: int) -> None:
    """Replace ``db["doc"]`` with a new consistent version ``rounds`` times."""
    with DB(url, prefix=prefix) as db:
        for i in range(rounds):
            db["doc"] = make_version(i)
        db["done"] = True


def read_loop(url: str, prefix: str, result_path: str) -> None:
    """Materialize ``db["doc"]`` until the writer is done; check every snapshot is whole."""
    reads = 0
    with DB(url, prefix=prefix) as db:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done, doc = db.transact(lambda t: (t.get("done", False), t["doc"]()))
            check_version(doc)
            whole = db()
            check_version(whole["doc"])
            reads += 1
            if done:
                break
    with open(result_path, "w") as fh:
        fh.write(str(reads))


def make_version(i: int) -> dict[str, Any]:
    """A document whose every part carries the same version number."""
    return {
        "version": i,
        "items": [i] * 20,
        "nested": {"v": i, "deep": {"v": i, "list": [{"v": i}, {"v": i}]}},
        "shared": [{"v": i}] * 3,
    }


def check_version(doc: dict[str, Any]) -> None:
    """Raise ``AssertionError`` unless ``doc`` is exactly one version."""
    i = doc["version"]
    assert doc == make_version(i), f"torn read: {doc!r}"
    assert doc["shared"][0] is doc["shared"][1], "shared structure lost"


# --------------------------------------------------------------------------- handle lifetime

LIFETIME_LOCKSTEP = 5
"""Rounds in which the writer replaces the document between a reader's fetch and its use."""
LIFETIME_FREE_ROUNDS = 60
"""Replacements the writer then makes while the reader loops freely."""
SYNC_TIMEOUT = 120.0


def lifetime_version(i: int) -> dict[str, Any]:
    """A document of a few levels whose every part carries version ``i``."""
    leaf = {"v": i}
    return {
        "version": i,
        "nested": {"v": i, "deep": {"v": i, "list": [{"v": i}, {"v": i, "more": [i]}]}},
        "items": [i] * 10 + [leaf, leaf],
    }


def check_lifetime_version(doc: dict[str, Any]) -> int:
    """Return the version of ``doc``; ``AssertionError`` unless it is exactly one version."""
    i = doc["version"]
    assert doc == lifetime_version(i), f"torn read: {doc!r}"
    assert doc["items"][-1] is doc["items"][-2], "shared structure lost"
    return int(i)


def _search_items(items: Any, i: int) -> None:
    """The list searches on version ``i``'s items list, all answered from that version."""
    assert i in items and {"v": i} in items and (i + 1) not in items
    assert items.index(i) == 0 and items.index({"v": i}) == 10
    assert items.count(i) == 10 and items.count({"v": i}) == 2


def _acquire(sem: Any) -> None:
    if not sem.acquire(timeout=SYNC_TIMEOUT):
        raise AssertionError("the other side of the test stopped answering")


def _report(result_path: str, text: str) -> None:
    with open(result_path, "w") as fh:
        fh.write(text)


def lifetime_reader(url: str, prefix: str, sync: tuple[Any, Any, Any], result_path: str) -> None:
    """Use the documented read idioms while ``lifetime_writer`` keeps replacing ``db["big"]``."""
    got, replaced, finished = sync
    reads = 0
    try:
        with DB(url, prefix=prefix) as db:
            for _ in range(LIFETIME_LOCKSTEP):
                big = db["big"]
                items, deep = big["items"], big["nested"]["deep"]
                version = big["version"]
                got.release()
                _acquire(replaced)  # the writer has replaced (and unlinked) what we hold
                assert check_lifetime_version(big()) == version, "an old handle read newer data"
                assert deep["list"][1]["more"][0] == version
                _search_items(items, version)
                reads += 1
            deadline = time.monotonic() + 240
            while not finished.is_set() and time.monotonic() < deadline:
                version = check_lifetime_version(db["big"]())
                big = db["big"]
                assert big["nested"]["deep"]["list"][1]["more"][0] == big["version"]
                items = db["big"]["items"]
                _search_items(items, items[0])
                reads += 1
        _report(result_path, f"ok {reads}")
    except BaseException:
        _report(result_path, traceback.format_exc())
        for _ in range(LIFETIME_LOCKSTEP):
            got.release()  # let the writer finish instead of waiting for us
        raise


def lifetime_writer(url: str, prefix: str, sync: tuple[Any, Any, Any], result_path: str) -> None:
    """Replace ``db["big"]`` in lockstep with the reader, then freely; then set ``finished``."""
    got, replaced, finished = sync
    try:
        with DB(url, prefix=prefix) as db:
            n = 0
            for _ in range(LIFETIME_LOCKSTEP):
                _acquire(got)
                n += 1
                db["big"] = lifetime_version(n)
                replaced.release()
            for _ in range(LIFETIME_FREE_ROUNDS):
                n += 1
                db["big"] = lifetime_version(n)
        _report(result_path, f"ok {n}")
    except BaseException:
        _report(result_path, traceback.format_exc())
        for _ in range(LIFETIME_LOCKSTEP):
            replaced.release()  # let the reader finish instead of waiting for us
        raise
    finally:
        finished.set()


# --------------------------------------------------------------------------- conformance


class ConcurrencyConformance:
    """Lost-update and isolation tests for backends with ``capabilities.multiprocess``."""

    @pytest.fixture
    def store_url(self) -> str:
        """A URL other processes can open; authors must override this fixture."""
        pytest.skip("override the store_url fixture to run the concurrency conformance tests")

    @pytest.fixture
    def ns(self, store_url: str) -> Any:
        prefix = f"conc-*?[]-{uuid.uuid4().hex[:8]}"
        db = DB(store_url, prefix=prefix)
        yield prefix
        db.delete_prefix_immediately(prefix)
        db.close()

    def _db(self, store_url: str, ns: str) -> DB:
        return DB(store_url, prefix=ns)

    def test_processes_transact_one_counter_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0}
        args = [(store_url, ns, "c", INCREMENTS)] * PROCESSES
        _run_processes(transact_increments, args)
        with self._db(store_url, ns) as db:
            assert db["c"]["n"] == PROCESSES * INCREMENTS
            assert db.check().ok

    def test_processes_published_transact_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0}
        _run_processes(published_transact_increments, [(store_url, ns, "c", 100)] * 2)
        with self._db(store_url, ns) as db:
            assert db["c"]["n"] == 200

    def test_threads_transact_one_counter_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0}
            errors: list[BaseException] = []

            def worker() -> None:
                try:
                    for _ in range(INCREMENTS):
                        db.transact(lambda t: t["c"].update(n=t["c"]["n"] + 1))
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=worker) for _ in range(PROCESSES)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert not errors, errors
            assert db["c"]["n"] == PROCESSES * INCREMENTS

    def test_threads_plain_mutations_are_never_lost(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["log"] = []

            def worker(tag: int) -> None:
                for i in range(50):
                    db["log"].append([tag, i])

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(PROCESSES)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            log = db["log"]()
            assert len(log) == PROCESSES * 50
            for t in range(PROCESSES):
                assert [i for tag, i in log if tag == t] == list(range(50))
            assert db.check().ok

    def test_processes_incr_exactly(self, store_url: str, ns: str) -> None:
        _run_processes(incr_counter, [(store_url, ns, "hits", INCREMENTS)] * PROCESSES)
        with self._db(store_url, ns) as db:
            assert db.count("hits") == PROCESSES * INCREMENTS

    def test_disjoint_transactions_interleaved_both_commit(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["a"] = {"n": 0}
            db["b"] = {"n": 0}
            t1, t2 = db.transactor(), db.transactor()
            t1.watch()
            t2.watch()
            a = t1["a"]["n"]
            b = t2["b"]["n"]
            t1.multi()
            t2.multi()
            t1["a"]["n"] = a + 1
            t2["b"]["n"] = b + 1
            t1.execute()
            t2.execute()
            assert (db["a"]["n"], db["b"]["n"]) == (1, 1)

    def test_same_key_interleaved_one_conflict_then_retry(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["a"] = {"n": 0}
            t1, t2 = db.transactor(), db.transactor()
            t1.watch()
            t2.watch()
            v1, v2 = t1["a"]["n"], t2["a"]["n"]
            t1.multi()
            t2.multi()
            t1["a"]["n"] = v1 + 1
            t2["a"]["n"] = v2 + 1
            t1.execute()
            with pytest.raises(WatchError):
                t2.execute()
            assert db["a"]["n"] == 1
            t2.transact(lambda: t2["a"].update(n=t2["a"]["n"] + 1))
            assert db["a"]["n"] == 2

    def test_plain_write_from_other_process_conflicts(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["k"] = {"n": 1}
            t = db.transactor()
            t.watch()
            value = t["k"]["n"]
            _run_processes(plain_write, [(store_url, ns, "k", 99)])
            t.multi()
            t["k"]["n"] = value + 1
            with pytest.raises(WatchError):
                t.execute()
            assert db["k"]["n"] == 99

    def test_reader_never_sees_a_torn_overwrite(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        with self._db(store_url, ns) as db:
            db["doc"] = make_version(-1)
        result = os.path.join(str(tmp_path), "reads.txt")
        ctx = _ctx()
        reader = ctx.Process(target=read_loop, args=(store_url, ns, result))
        writer = ctx.Process(target=overwrite_loop, args=(store_url, ns, 150))
        reader.start()
        writer.start()
        writer.join(timeout=300)
        reader.join(timeout=300)
        assert writer.exitcode == 0
        assert reader.exitcode == 0, "the reader saw a torn document or raised"
        with open(result) as fh:
            assert int(fh.read()) > 0
        with self._db(store_url, ns) as db:
            assert db["doc"]() == make_version(149)
            assert db.check().ok

    @pytest.mark.parametrize("start", ["thread", "fork", "spawn"])
    def test_read_idioms_never_fail_beside_a_replacing_writer(
        self, store_url: str, ns: str, tmp_path: Any, start: str
    ) -> None:
        """``db[k]()``, chained reads and list searches survive concurrent replacements.

        The writer replaces the document between a reader's fetching a handle
        and using it (in lockstep, then freely): an old handle must read its
        own version, whole, within the grace period (docs/concepts.md).
        """
        with self._db(store_url, ns) as db:
            if start != "thread" and not db.backend.capabilities.multiprocess:
                pytest.skip(f"{type(db.backend).__name__} cannot be shared between processes")
            db["big"] = lifetime_version(0)
        results = [os.path.join(str(tmp_path), name) for name in ("reader", "writer")]
        if start == "thread":
            sync: tuple[Any, Any, Any] = (
                threading.Semaphore(0),
                threading.Semaphore(0),
                threading.Event(),
            )
            workers: list[Any] = [
                threading.Thread(target=lifetime_reader, args=(store_url, ns, sync, results[0])),
                threading.Thread(target=lifetime_writer, args=(store_url, ns, sync, results[1])),
            ]
        else:
            ctx: Any = multiprocessing.get_context(start)
            sync = (ctx.Semaphore(0), ctx.Semaphore(0), ctx.Event())
            workers = [
                ctx.Process(target=lifetime_reader, args=(store_url, ns, sync, results[0])),
                ctx.Process(target=lifetime_writer, args=(store_url, ns, sync, results[1])),
            ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=300)
        for w in workers:
            if w.is_alive():
                if start != "thread":
                    w.kill()
                raise AssertionError(f"a {start} worker hung")
        outcomes = []
        for path in results:
            with open(path) as fh:
                outcomes.append(fh.read())
        assert outcomes[0].startswith("ok"), f"the reader failed:\n{outcomes[0]}"
        assert outcomes[1].startswith("ok"), f"the writer failed:\n{outcomes[1]}"
        assert int(outcomes[0].split()[1]) >= LIFETIME_LOCKSTEP
        last = LIFETIME_LOCKSTEP + LIFETIME_FREE_ROUNDS
        with self._db(store_url, ns) as db:
            assert db["big"]() == lifetime_version(last)
            report = db.check()
            assert report.ok, str(report)
