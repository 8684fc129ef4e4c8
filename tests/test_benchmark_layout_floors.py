"""benchmarks/layout_replay.py: its layout floors do etcher's work, and the report shows them.

The floors are replays of the statements (Redis: the commands) a run of etcher
issued, on the store that run started from. They bound issue 13's missed targets,
so a floor that skipped work or wrote something else would make a verdict lie:
these tests check that each replay issues the same statements as etcher, that the
tool's verification notices a replay that does not leave etcher's rows, and that
docs/benchmarks.md renders the floors and uses them in its verdicts. Tiny sizes.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("etcher_sqlite")
pytest.importorskip("msgpack")

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _layout_phases as lp  # noqa: E402
import _report  # noqa: E402
import layout_replay as lr  # noqa: E402

from etcher import DB  # noqa: E402
from etcher_sqlite.testing import count_statements  # noqa: E402

SCALE = 0.01  # every size at its minimum of 10 (the big document: 100 containers)


def _etcher_statements(tmp: Path, name: str) -> dict[str, int]:
    """What a plain run of this etcher's phase hands to SQLite, counted by etcher-sqlite's kit."""
    phase = lp.PHASES[name]
    with count_statements() as counter:
        db = DB(f"sqlite:///{tmp / 'plain.db'}")
        phase.build(db, SCALE)
        state = phase.prepare(db, SCALE)
        counter.clear()
        result = phase.run(db, state)
        counted = dict(counter)
        assert phase.check(db, SCALE, result)
        db.close()
    return counted


@pytest.mark.parametrize("name", lr.PHASES["sqlite"])
def test_sqlite_floor_issues_etchers_statements_and_leaves_its_rows(
    tmp_path: Path, name: str
) -> None:
    floor = lr.SqlFloor(str(tmp_path), name, SCALE)
    assert floor.etcher_ok
    assert floor.verify(), "the replay must leave etcher's rows and read back right"
    expected = _etcher_statements(tmp_path, name)
    assert floor.statements() == expected
    with count_statements() as counter:
        _, conns = floor._fresh()
        counter.clear()
        lr.sql_replay(conns, floor.plan)
        for c in conns:
            c.close()
    assert dict(counter) == expected, "the floor runs no fewer statements than etcher"


def test_sqlite_floor_verification_catches_a_missing_write(tmp_path: Path) -> None:
    floor = lr.SqlFloor(str(tmp_path), "write_big", SCALE)
    writes = [i for i, (_, sql, _, many) in enumerate(floor.plan) if many]
    floor.plan = [step for i, step in enumerate(floor.plan) if i != writes[-1]]
    assert not floor.verify()


def test_sqlite_floor_packs_the_rows_it_writes(tmp_path: Path) -> None:
    """The replay builds each packed container row itself, as the layout has to."""
    floor = lr.SqlFloor(str(tmp_path), "write_big", SCALE)
    packed = [
        row[5]
        for _, sql, params, many in floor.plan
        if many and sql.startswith(lr._PACKED_WRITE)
        for row in params
    ]
    assert packed and all(type(v) is lr._Packed for v in packed if v is not None)


@pytest.fixture(scope="module")
def redis_socket() -> Any:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary) or not __import__("importlib").util.find_spec("redis"):
        if os.environ.get("ETCHER_REQUIRE_REDIS"):
            pytest.fail("redis-server or redis-py missing")
        pytest.skip("needs redis-server and redis-py")
    pytest.importorskip("etcher_redis")
    from run import RedisServer

    server = RedisServer(binary)
    try:
        yield server.sock
    finally:
        server.stop()


@pytest.mark.parametrize("name", lr.PHASES["redis"])
def test_redis_floor_sends_etchers_commands_and_leaves_its_keys(
    redis_socket: str, name: str
) -> None:
    floor = lr.RedisFloor(redis_socket, name, SCALE)
    assert floor.etcher_ok
    assert floor.verify(), "the replay must leave etcher's keys and read back right"
    counts = floor.commands()
    # One checked commit (a Lua script) per unit, as etcher sends it: the floor keeps them.
    assert counts.get("EVALSHA", 0) + counts.get("EVAL", 0) >= 1
    assert counts["round trips"] == len(floor.sends)


def test_redis_floor_verification_catches_a_missing_commit(redis_socket: str) -> None:
    floor = lr.RedisFloor(redis_socket, "write_docs", SCALE)
    scripts = [i for i, cmds in enumerate(floor.sends) if cmds[0][0].upper().startswith(b"EVAL")]
    floor.sends = [cmds for i, cmds in enumerate(floor.sends) if i != scripts[-1]]
    assert not floor.verify()


def _row(backend: str, workload: str, etcher: float, floor: float, old: float) -> dict[str, Any]:
    return {
        "backend": backend,
        "workload": workload,
        "scale": SCALE,
        "target": {"etcher023": lr.TARGETS[backend][workload]},
        "etcher": etcher,
        "floor": floor,
        "etcher023": old,
        "verified": {"etcher": True, "floor": True, "etcher023": True},
        "statements": {"SELECT": 3},
    }


def _report_with_replay() -> dict[str, Any]:
    results = []
    for backend, workload, mine, old in (
        ("sqlite", "delete_big", 1.0, 9.0),  # 9x, target 30x
        ("sqlite", "iterate_keys", 1.0, 1.5),  # 1.5x, target 2x
        ("redis", "write_big", 1.0, 18.0),  # 18x, target 20x
    ):
        for impl, secs in (("current", mine), ("etcher023", old)):
            results.append(
                {
                    "backend": backend,
                    "workload": workload,
                    "impl": impl,
                    "scale": SCALE,
                    "seconds": [secs],
                    "median": secs,
                    "verified": True,
                    "notes": [],
                }
            )
    return {
        "created": "2026-12-06T00:00:00Z",
        "scale": SCALE,
        "repeats": 1,
        "machine": {"cpu": "cpu", "cores": 2, "platform": "linux", "python": "3", "sqlite": "3"},
        "versions": {},
        "results": results,
        "ratios": _report.ratios(results),
        "layout_replay": [
            _row("sqlite", "delete_big", 0.010, 0.005, 0.090),  # floor 18x < 30x
            _row("sqlite", "iterate_keys", 0.010, 0.004, 0.015),  # floor 3.75x >= 2x
            _row("redis", "write_big", 0.010, 0.004, 0.180),  # floor 45x >= 20x
        ],
    }


def test_report_renders_the_layout_floors_and_uses_them_in_verdicts() -> None:
    text = _report.markdown(_report_with_replay())
    assert "## What the store itself needs for the targets against 0.2.3" in text
    lines = text.splitlines()
    replay = [ln for ln in lines if ln.startswith(("| sqlite |", "| redis |"))]
    assert len(replay) == 3
    assert any("delete_big" in ln and "**beyond the layout floor**" in ln for ln in replay)
    assert any("iterate_keys" in ln and "| reachable |" in ln for ln in replay)
    delete = next(ln for ln in lines if ln.startswith("| delete_big |"))
    assert "not met, beyond the layout floor (layout floor: 18x)" in delete
    keys = next(ln for ln in lines if ln.startswith("| iterate_keys |"))
    assert "not met, reachable (layout floor: 3.75x)" in keys
    big = next(ln for ln in lines if ln.startswith("| write_big |"))
    assert "not met, reachable (layout floor: 45x)" in big


def test_layout_floor_rows_bound_the_diskcache_targets() -> None:
    report = _report_with_replay()
    report["layout_floor"] = [
        {"op": "write_doc", "target": 0.7, "etcher": 160.0, "floor": 70.0, "diskcache": 45.0}
    ]
    bounds = _report.layout_bounds(report)
    assert bounds[("sqlite", "write_docs", "diskcache")] == pytest.approx(45 / 70)
    assert bounds[("sqlite", "delete_big", "etcher023")] == pytest.approx(18)
    assert bounds[("redis", "write_big", "etcher023")] == pytest.approx(45)


def test_a_failed_replay_is_no_bound() -> None:
    report = _report_with_replay()
    report["layout_replay"][0]["verified"]["floor"] = False
    assert ("sqlite", "delete_big", "etcher023") not in _report.layout_bounds(report)
    assert "FAIL" in "\n".join(_report.layout_replay_table(report["layout_replay"]))


def test_the_bound_is_the_floor_against_the_0_2_3_timed_beside_it() -> None:
    """Floor and 0.2.3 timed in one tool, interleaved; the harness's ratio is only a cross-check."""
    report = _report_with_replay()
    report["layout_replay"][0]["etcher023"] = 0.05  # the tool's own 0.2.3 timing: 10x
    bounds = _report.layout_bounds(report)
    assert bounds[("sqlite", "delete_big", "etcher023")] == pytest.approx(10)
    table = "\n".join(_report.markdown(report).splitlines())
    # harness 9x, etcher / floor 2: the cross-check column says 18x
    assert "| 9.00x | 18x | 30x | **beyond the layout floor** |" in table
