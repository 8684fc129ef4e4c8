"""What the store would need under other key layouts, for the SQLite write targets.

Run: ``python benchmarks/layout_variants.py [--phases write_docs,replace_shared]
[--scale 0.1] [--rounds 7] [--old-python benchmarks/.venv-0.2.3/bin/python]``

``layout_replay.py`` measures the *layout floor*: etcher's own statements replayed
with bare ``sqlite3``. A target that floor misses is beyond etcher's layout, which
is not the same as beyond the store: issue 13's first lever is a denser layout. This
tool answers how much denser layouts would buy before anyone rewrites core for one.
It records a phase once (as ``layout_replay.py`` does) and replays the same work,
statement for statement, under each of three key layouts, on a copy of the starting
file converted to that layout:

``etcher``
    The layout as it is: ``{P}:c:<uid>`` holds a node's content, ``{P}:r:<uid>``
    its header and back-references. A node's two rows sit in two distant parts of
    the ``keys`` B-tree, and dict and list nodes in two more.
``by_node``
    The same rows named ``{P}:<uid>:c`` and ``{P}:<uid>:r``: a node's rows are
    neighbours, and since one process numbers its uids from one random token, the
    nodes it creates land in one part of the tree.
``one_key``
    ``by_node``, and a new node's header and back-references stored inside its
    content row when both are written by the same statement (a dict's fields
    merged with its items; a list's as a leading map): one row per node, the
    "one key per node where the store allows it" of the issue. The spilled root
    keeps its own header row, so this is a conservative estimate.

Each replay is verified: the rows it leaves, converted back to etcher's layout,
must equal the rows etcher left, versions included. Timing is CPU time, the least
of ``--rounds`` fresh copies, the variants interleaved; etcher 0.2.3 runs the same
phase in its own venv between rounds when ``--old-python`` is given, so each variant
reads as a ratio against 0.2.3 from one run.

What the variants do *not* model: statements a real layout change would rewrite
(a read of a node's header would read its content row instead). For write_docs the
only header read is the root's, which every variant keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import layout_replay as lr  # noqa: E402
import msgpack  # type: ignore[import-untyped]  # noqa: E402

VARIANTS = ("etcher", "by_node", "one_key")
PHASES = ("write_docs", "replace_shared")
"""The SQLite targets against 0.2.3 that etcher's layout floor misses (round 5)."""

Plan = list[tuple[int, str, Any, Any]]  # many: False, True (executemany) or lr.VALUES

_NODE_KEY = re.compile(r"^(\{[^}]*\}:)([cr]):(.+)$")
_BY_NODE_KEY = re.compile(r"^(\{[^}]*\}:)(.+):([cr])$")
_ROOT = "Droot"


def by_node_name(name: Any) -> Any:
    """``{P}:c:<uid>`` -> ``{P}:<uid>:c`` (and ``r``); anything else unchanged."""
    if type(name) is str:
        m = _NODE_KEY.match(name)
        if m:
            return f"{m.group(1)}{m.group(3)}:{m.group(2)}"
    return name


def etcher_name(name: Any) -> Any:
    """The inverse of :func:`by_node_name`."""
    if type(name) is str:
        m = _BY_NODE_KEY.match(name)
        if m:
            return f"{m.group(1)}{m.group(3)}:{m.group(2)}"
    return name


def _renamed(plan: Plan) -> Plan:
    out: Plan = []
    for conn, sql, params, many in plan:
        if many:
            params = [tuple(by_node_name(v) for v in row) for row in params]
        else:
            params = tuple(by_node_name(v) for v in params)
        out.append((conn, sql, params, many))
    return out


def _folded(plan: Plan) -> Plan | None:
    """Each new node's header row folded into its content row written by the same statement.

    ``None`` when a later statement names a folded node's header key again (a
    back-reference added or dropped): in one row per node that would rewrite the
    content row, which a replay of etcher's statements cannot model.
    """
    out: Plan = []
    folded: set[str] = set()
    for conn, sql, params, many in plan:
        if folded and not _names_none_of(params, many, folded):
            return None
        if many and sql.startswith(lr._PACKED_WRITE):
            by_name = {row[0]: row for row in params}
            rows = []
            for row in params:
                m = _NODE_KEY.match(row[0])
                if m is None or m.group(3) == _ROOT:
                    rows.append(row)
                    continue
                base, kind, uid = m.groups()
                other = by_name.get(f"{base}{'r' if kind == 'c' else 'c'}:{uid}")
                if other is None or not _foldable(row, other):
                    rows.append(row)
                elif kind == "c":
                    rows.append(_fold(row, other))
                else:  # a header row whose content row carries it
                    folded.add(row[0])
            params = rows
        out.append((conn, sql, params, many))
    return out


def _names_none_of(params: Any, many: bool, names: set[str]) -> bool:
    rows = params if many else [params]
    return not any(type(v) is str and v in names for row in rows for v in row)


def _foldable(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return type(a[5]) is lr._Packed and type(b[5]) is lr._Packed and a[2] == b[2]


def _fold(content: tuple[Any, ...], header: tuple[Any, ...]) -> tuple[Any, ...]:
    name, kind, version, lo, hi, packed = content
    items, fields = packed.content, header[5].content
    merged = {**items, **fields} if isinstance(items, dict) else [fields, *items]
    return (name, kind, version, lo, hi, lr._Packed(merged))


def plan_for(variant: str, plan: Plan) -> Plan | None:
    """The recorded ``plan`` as the given layout would run it (``None``: not modelled)."""
    if variant == "etcher":
        return plan
    if variant == "by_node":
        return _renamed(plan)
    if variant == "one_key":
        folded = _folded(plan)
        return None if folded is None else _renamed(folded)
    raise ValueError(f"unknown layout variant {variant!r}; choose from {', '.join(VARIANTS)}")


def convert_file(src: str, dst: str, variant: str) -> None:
    """A copy of the etcher-layout file ``src`` in ``variant``'s key names (compacted)."""
    shutil.copyfile(src, dst)
    conn = sqlite3.connect(dst)
    try:
        if variant != "etcher":
            conn.create_function("by_node", 1, by_node_name, deterministic=True)
            for table in ("keys", "hashes", "list_items"):
                conn.execute(f"UPDATE {table} SET name = by_node(name)")
            conn.commit()
        # Every variant is compacted alike, so none starts with a tidier B-tree.
        conn.execute("VACUUM")
    finally:
        conn.close()


def _header_of(fields: Any) -> tuple[Any, Any]:
    """A folded row's content split into (items, header and back-reference fields)."""
    if isinstance(fields, list):
        return fields[1:], fields[0]
    header = {k: v for k, v in fields.items() if not _is_item_field(k)}
    return {k: v for k, v in fields.items() if _is_item_field(k)}, header


def _is_item_field(field: bytes) -> bool:
    # Item fields carry a type tag (``s``, ``i``, ...); header fields start with
    # ``#`` and back-references are parent uids (``D...`` / ``L...``).
    return field[:1] not in (b"#", b"D", b"L")


def unfold_dump(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows left by a variant's replay, in etcher's layout (for verification)."""
    keys: list[tuple[Any, ...]] = []
    for name, kind, version, lo, hi, value in dump["keys"]:
        name = etcher_name(name)
        m = _NODE_KEY.match(name)
        if value is not None and kind in (2, 3) and m and m.group(2) == "c":
            content = msgpack.unpackb(value, raw=True, strict_map_key=True)
            items, header = _header_of(content) if _looks_folded(content, kind) else (content, None)
            if header is not None:
                keys.append((name, kind, version, lo, hi, lr._PACK(items)))
                refs = f"{m.group(1)}r:{m.group(3)}"
                keys.append((refs, 2, version, 0, len(header), lr._PACK(header)))
                continue
        keys.append((name, kind, version, lo, hi, value))
    out = {"keys": sorted(keys, key=lambda r: r[0])}
    for table in ("hashes", "list_items"):
        rows = [(etcher_name(r[0]), *r[1:]) for r in dump[table]]
        out[table] = sorted(rows, key=lambda r: (r[0], r[1]))
    return out


def _looks_folded(content: Any, kind: int) -> bool:
    if kind == 3:
        return bool(content) and isinstance(content[0], dict) and b"#k" in content[0]
    return isinstance(content, dict) and b"#k" in content


class VariantFloor:
    """One SQLite phase recorded on this etcher, replayable under every layout variant."""

    def __init__(self, tmp: str, name: str, scale: float) -> None:
        self.recorded = lr.SqlFloor(tmp, name, scale)
        self.tmp, self.name = tmp, name
        plans = {v: plan_for(v, self.recorded.plan) for v in VARIANTS}
        self.plans = {v: p for v, p in plans.items() if p is not None}
        """The variants this phase can be replayed under."""
        self.starts = {}
        for v in self.plans:
            self.starts[v] = os.path.join(tmp, f"{name}.{v}.start.db")
            convert_file(self.recorded.start, self.starts[v], v)
        self.expected = {
            t: sorted(rows, key=lambda r: (r[0], r[1]))
            for t, rows in self.recorded.expected.items()
        }

    def rows(self, variant: str) -> int:
        """How many rows the phase's inserts write under ``variant``."""
        return sum(
            len(params)
            for _, sql, params, many in self.plans[variant]
            if many and sql.lstrip().startswith("INSERT")
        )

    def _replay(self, variant: str, clock: Callable[[], float]) -> tuple[str, float]:
        path = os.path.join(self.tmp, f"{self.name}.{variant}.replay.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        shutil.copyfile(self.starts[variant], path)
        conns = []
        for _ in range(max(1, self.recorded.connections)):
            c = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            c.execute("PRAGMA journal_mode = WAL").fetchall()
            c.execute("PRAGMA synchronous = NORMAL")
            conns.append(c)
        try:
            lr.sql_warm(conns, self.plans[variant])
            t0 = clock()
            lr.sql_replay(conns, self.plans[variant])
            return path, clock() - t0
        finally:
            for c in conns:
                c.close()

    def time_once(self, variant: str) -> float:
        return self._replay(variant, time.process_time)[1]

    def verify(self, variant: str) -> bool:
        """The rows ``variant``'s replay leaves, back in etcher's layout, equal etcher's rows."""
        path, _ = self._replay(variant, time.process_time)
        return self.recorded.etcher_ok and unfold_dump(lr.sql_dump(path)) == self.expected


def measure(
    names: list[str], scale: float, rounds: int, old_python: str | None = None
) -> list[dict[str, Any]]:
    """One row per phase: seconds and rows written per variant, and 0.2.3 timed beside them."""
    out = []
    with tempfile.TemporaryDirectory(prefix="etcher-variants-") as tmp:
        for name in names:
            floor = VariantFloor(tmp, name, scale)
            times: dict[str, list[float]] = {v: [] for v in floor.plans}
            old: list[float] = []
            old_ok = True
            for _ in range(rounds):
                for v in floor.plans:
                    times[v].append(floor.time_once(v))
                if old_python:
                    got = lr.phase_times(old_python, "sqlite", [name], scale, 1, None)
                    if name in got:
                        old.append(got[name]["seconds"])
                        old_ok &= bool(got[name]["verified"])
            row: dict[str, Any] = {
                "workload": name,
                "scale": scale,
                "target": lr.TARGETS["sqlite"].get(name),
                "seconds": {v: min(t) for v, t in times.items()},
                "rows": {v: floor.rows(v) for v in floor.plans},
                "verified": {v: floor.verify(v) for v in floor.plans},
                "rounds": times,
            }
            if old:
                row["etcher023"] = min(old)
                row["verified"]["etcher023"] = old_ok and len(old) == rounds
            out.append(row)
    return out


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: each variant's floor (ms, rows written, and against 0.2.3 with the target)."""
    lines = [
        "| phase | layout | rows written | floor ms | vs 0.2.3 | target | verified |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        old = row.get("etcher023")
        for v in VARIANTS:
            if v not in row["seconds"]:
                lines.append(
                    f"| {row['workload']} | {v} | | | | | not modelled: a new node's header "
                    "is rewritten later in the phase |"
                )
                continue
            s = row["seconds"][v]
            ratio = f"{old / s:.2f}x" if old and s else "-"
            target = f"≥ {row['target']}x" if row.get("target") else "-"
            ok = "yes" if row["verified"][v] else "**FAIL**"
            lines.append(
                f"| {row['workload']} | {v} | {row['rows'][v]:,} | {s * 1e3:.1f} "
                f"| {ratio} | {target} | {ok} |"
            )
        if old:
            lines.append(f"| {row['workload']} | etcher 0.2.3 | | {old * 1e3:.1f} | 1x | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--old-python", default=None, help="interpreter of a venv with etcher 0.2.3")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    for name in args.phases.split(","):
        if name not in lr.PHASES["sqlite"]:
            ap.error(f"unknown phase {name!r}; choose from {', '.join(lr.PHASES['sqlite'])}")
    rows = measure(args.phases.split(","), args.scale, args.rounds, args.old_python)
    print("\n".join(table(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
