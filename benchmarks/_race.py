"""Several processes hammering one store at once (stdlib only: runs under any venv).

Each child first prepares (imports, opens its store), then all start together
on a barrier and each reports when its own work ended. The measured time runs
from the common start to the last end, so neither interpreter start-up nor
process exit is counted, whatever the implementation's import cost.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any

from _data import PROCS

# A hang (0.2.3's livelocked counters, a peer's crashed child) shows as a run capped at
# max(RACE_TIMEOUT, RACE_PER_OP * n): generous for a correct run at any scale, and short
# enough that three capped repeats do not dominate a default run.
RACE_TIMEOUT = 5.0
RACE_PER_OP = 0.02
READY_TIMEOUT = 120.0  # seconds for every child to import and open its store

Prepare = Callable[[str, str, int], Callable[[], None]]


def _child(prepare: Prepare, backend: str, store: str, n: int, ready: Any, ends: Any) -> None:
    work = prepare(backend, store, n)
    ready.wait(READY_TIMEOUT)
    work()
    ends.put(time.perf_counter())  # CLOCK_MONOTONIC: comparable across processes


def race(prepare: Prepare, backend: str, store: str, n: int) -> float:
    """Seconds from the common start until the last of ``PROCS`` children finished.

    ``prepare(backend, store, n)`` runs in each child and returns its work. A
    child that has not finished the cap after the start is
    killed and the run reports that cap, so a hang shows up as a failed,
    capped run rather than a wait forever.
    """
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(PROCS + 1)
    ends = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(prepare, backend, store, n, ready, ends))
        for _ in range(PROCS)
    ]
    for p in procs:
        p.start()
    ready.wait(READY_TIMEOUT)
    t0 = time.perf_counter()
    cap = max(RACE_TIMEOUT, RACE_PER_OP * n)
    finished: list[float] = []
    deadline = t0 + cap
    try:
        while len(finished) < PROCS:
            finished.append(ends.get(timeout=max(0.01, deadline - time.perf_counter())))
    except queue.Empty:
        finished.append(t0 + cap)
    for p in procs:
        p.join(max(0.0, deadline - time.perf_counter()) + 5)
        if p.is_alive():
            p.terminate()
            p.join()
    return max(finished) - t0
