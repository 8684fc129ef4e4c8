"""Which processors the Redis benchmarks run on.

On a small VM a round trip between two processes costs what waking the other's vCPU
costs: measured on the 2-core VM of docs/benchmarks.md, a bare unix-socket ping-pong
with redis-server takes ~65 µs when client and server sit on different cores and
~6.5 µs when they share one. Left to the scheduler ("free"), every Redis workload's
time moves by tens of percent with where the kernel happened to put the two
processes, and a replayed floor measured in one placement is compared with an
etcher measured in the other. Pinning makes that choice explicit:

- ``split``: the server on the last processor, the clients on the first; every round
  trip pays the cross-core wake-up, as a server on its own core (or host) would.
- ``same``: server and clients on the first processor; a round trip costs almost
  nothing and what is left is each client's own CPU.
- ``free``: no pinning (how every run before round 5 was taken).
"""

from __future__ import annotations

import os

PLACEMENTS = ("free", "split", "same")


def cpus(placement: str) -> tuple[set[int] | None, set[int] | None]:
    """(server processors, client processors) for ``placement``; None leaves one free."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; choose from {PLACEMENTS}")
    have = sorted(os.sched_getaffinity(0))
    if placement == "free" or len(have) < 2:
        return None, None
    if placement == "same":
        return {have[0]}, {have[0]}
    return {have[-1]}, {have[0]}


def pin(pid: int, processors: set[int] | None) -> None:
    """Restrict ``pid`` (0: this process, and the children it starts later) to ``processors``."""
    if processors is not None:
        os.sched_setaffinity(pid, processors)


class Pinned:
    """A block that runs this process (and what it starts) on ``processors``, then restores."""

    def __init__(self, processors: set[int] | None) -> None:
        self.processors = processors
        self.before: set[int] = set()

    def __enter__(self) -> Pinned:
        self.before = os.sched_getaffinity(0)
        pin(0, self.processors)
        return self

    def __exit__(self, *exc: object) -> None:
        os.sched_setaffinity(0, self.before)
