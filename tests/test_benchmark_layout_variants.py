"""benchmarks/layout_variants.py: each variant replays etcher's work under its own key layout.

The tool's figures argue for or against a store format change, so a variant that
lost a row, kept a header twice or renamed something it should not have would
make the argument lie. These tests check the renaming round-trips, that every
variant's replay leaves etcher's rows once converted back (and that the check
notices when it does not), that one row per node writes fewer rows, and that a
phase the folding cannot model is left out rather than measured wrong. Tiny sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("etcher_sqlite")
pytest.importorskip("msgpack")

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import layout_replay as lr  # noqa: E402
import layout_variants as lv  # noqa: E402

SCALE = 0.01


@pytest.mark.parametrize(
    "name, by_node",
    [
        ("{default}:c:Dab12", "{default}:Dab12:c"),
        ("{ns}:r:Lff1", "{ns}:Lff1:r"),
        ("{default}:r:Droot", "{default}:Droot:r"),
    ],
)
def test_node_keys_are_renamed_and_back(name: str, by_node: str) -> None:
    assert lv.by_node_name(name) == by_node
    assert lv.etcher_name(by_node) == name


@pytest.mark.parametrize("other", ["{default}:m", "{default}:g", "{default}:n:hits", b"x", 3])
def test_other_keys_and_values_keep_their_names(other: object) -> None:
    assert lv.by_node_name(other) == other
    assert lv.etcher_name(other) == other


def test_every_variant_of_write_docs_leaves_etchers_rows(tmp_path: Path) -> None:
    floor = lv.VariantFloor(str(tmp_path), "write_docs", SCALE)
    assert set(floor.plans) == set(lv.VARIANTS)
    for variant in lv.VARIANTS:
        assert floor.verify(variant), variant
    # Same statements, renamed: as many rows; one per node: a row fewer per new node.
    assert floor.rows("by_node") == floor.rows("etcher")
    assert floor.rows("one_key") < floor.rows("etcher")
    statements = [(sql, many) for _, sql, _, many in floor.recorded.plan]
    for variant in ("by_node", "one_key"):
        assert [(sql, many) for _, sql, _, many in floor.plans[variant]] == statements


def test_a_variant_replay_that_loses_a_row_fails_verification(tmp_path: Path) -> None:
    floor = lv.VariantFloor(str(tmp_path), "write_docs", SCALE)
    plan = floor.plans["one_key"]
    last = max(i for i, (_, sql, _, many) in enumerate(plan) if many and "keys" in sql)
    conn, sql, rows, many = plan[last]
    plan[last] = (conn, sql, rows[:-1], many)
    assert not floor.verify("one_key")


def test_a_folded_header_that_keeps_its_own_row_fails_verification(tmp_path: Path) -> None:
    floor = lv.VariantFloor(str(tmp_path), "write_docs", SCALE)
    renamed = lv._renamed(floor.recorded.plan)
    doubled = []
    for (c, sql, rows, many), (_, _, original, _) in zip(
        floor.plans["one_key"], renamed, strict=True
    ):
        if many and sql.startswith(lr._PACKED_WRITE):
            # Each header also written as its own row again: stored twice.
            rows = rows + [r for r in original if r[0].endswith(":r") and r not in rows]
        doubled.append((c, sql, rows, many))
    floor.plans["one_key"] = doubled
    assert not floor.verify("one_key")


def test_a_phase_that_rewrites_new_headers_is_not_modelled_as_one_key(tmp_path: Path) -> None:
    floor = lv.VariantFloor(str(tmp_path), "replace_shared", SCALE)
    assert "one_key" not in floor.plans
    for variant in ("etcher", "by_node"):
        assert floor.verify(variant), variant


def test_the_table_reports_every_variant_and_the_unmodelled_one() -> None:
    rows = [
        {
            "workload": "replace_shared",
            "target": 10,
            "seconds": {"etcher": 0.02, "by_node": 0.01},
            "rows": {"etcher": 9, "by_node": 9},
            "verified": {"etcher": True, "by_node": False},
            "etcher023": 0.2,
        }
    ]
    text = "\n".join(lv.table(rows))
    assert "| replace_shared | etcher | 9 | 20.0 | 10.00x | ≥ 10x | yes |" in text
    assert "| by_node | 9 | 10.0 | 20.00x | ≥ 10x | **FAIL** |" in text
    assert "one_key | | | | | not modelled" in text


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown layout variant 'packed'"):
        lv.plan_for("packed", [])
