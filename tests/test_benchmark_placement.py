"""benchmarks/_placement.py: where the Redis benchmarks' server and clients run.

A round trip on a small VM costs what waking the other process's vCPU costs, so the
harness pins redis-server and its clients (see the module's docstring). These tests
check that each placement names the processors it promises, that the server and a
pinned block really run there, that the pinning is undone, and that the report says
which placement a run used.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _placement  # noqa: E402

TWO = len(os.sched_getaffinity(0)) >= 2
needs_two = pytest.mark.skipif(not TWO, reason="placements differ only with 2+ processors")


@needs_two
def test_split_puts_server_and_clients_on_different_processors() -> None:
    have = sorted(os.sched_getaffinity(0))
    assert _placement.cpus("split") == ({have[-1]}, {have[0]})


@needs_two
def test_same_puts_both_on_one_processor() -> None:
    have = sorted(os.sched_getaffinity(0))
    assert _placement.cpus("same") == ({have[0]}, {have[0]})


def test_free_pins_nothing_and_an_unknown_placement_is_refused() -> None:
    assert _placement.cpus("free") == (None, None)
    with pytest.raises(ValueError, match="unknown placement 'nowhere'"):
        _placement.cpus("nowhere")


@needs_two
def test_a_pinned_block_runs_there_with_its_children_and_restores_afterwards() -> None:
    before = os.sched_getaffinity(0)
    _server, clients = _placement.cpus("split")
    with _placement.Pinned(clients):
        assert os.sched_getaffinity(0) == clients
        pid = os.fork()
        if pid == 0:  # a child started inside the block inherits the pinning
            os._exit(0 if os.sched_getaffinity(0) == clients else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert os.sched_getaffinity(0) == before


def test_an_unpinned_block_changes_nothing() -> None:
    before = os.sched_getaffinity(0)
    with _placement.Pinned(None):
        assert os.sched_getaffinity(0) == before
    assert os.sched_getaffinity(0) == before


@needs_two
def test_the_harness_server_runs_on_the_server_processor() -> None:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary) or not __import__("importlib").util.find_spec("redis"):
        if os.environ.get("ETCHER_REQUIRE_REDIS"):
            pytest.fail("redis-server or redis-py missing")
        pytest.skip("needs redis-server and redis-py")
    from run import RedisServer

    server_cpus, _clients = _placement.cpus("split")
    server = RedisServer(binary, server_cpus)
    try:
        assert os.sched_getaffinity(server.proc.pid) == server_cpus
        assert server.client.ping()
    finally:
        server.stop()


def test_the_report_says_which_placement_the_run_used() -> None:
    import _report

    report = {
        "created": "2026-12-06T00:00:00Z",
        "scale": 0.1,
        "repeats": 1,
        "machine": {"cpu": "x", "cores": 2, "platform": "p", "python": "3.11", "sqlite": "3"},
        "versions": {},
        "results": [],
        "ratios": [],
        "placement": "split",
    }
    assert "Redis placement: **split**" in _report.markdown(report)
    report["placement"] = None  # a run without the redis backend
    assert "Redis placement" not in _report.markdown(report)
