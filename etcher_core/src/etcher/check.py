"""Checking a namespace's invariants, and repairing them by mark and sweep.

:func:`check` reads every key of the namespace and reports each violation:
unreachable nodes (orphans), links to missing nodes (dangling), headers whose
back-reference counts disagree with the links actually stored, content
without a header, undecodable values and keys that etcher did not write.
Nodes pinned by a live ``RD(db)`` handle are listed apart: they are not
garbage while the handle lives.

:func:`repair` fixes all of it in one atomic unit: orphans are deleted,
counts rewritten, dangling links replaced by ``None``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etcher.codec import LINK, encode_scalar, safe_decode
from etcher.errors import StoreCorrupt
from etcher.graph import KIND_DICT, KIND_LIST, Graph, item_value, parents_of, split_item
from etcher.layout import KIND, PIN, ROOT
from etcher.unit import Unit

if TYPE_CHECKING:
    from etcher.db import DB


@dataclass
class CheckReport:
    """What :meth:`DB.check` found. ``ok`` is True when the namespace is clean."""

    prefix: str
    nodes: int = 0
    reachable: int = 0
    counters: int = 0
    pinned: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    dangling: list[tuple[str, str]] = field(default_factory=list)
    wrong_counts: list[tuple[str, str, int, int]] = field(default_factory=list)
    headless: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """True if no invariant is violated (pinned nodes are not violations)."""
        return not (
            self.orphans
            or self.dangling
            or self.wrong_counts
            or self.headless
            or self.corrupt
            or self.unknown_keys
        )

    def problems(self) -> list[str]:
        """One human-readable line per violation."""
        out = [f"orphan node {uid} (unreachable from the root)" for uid in self.orphans]
        out += [f"dangling link from {p} to missing node {c}" for p, c in self.dangling]
        out += [
            f"node {c}: header says {s} link(s) from {p}, store holds {a}"
            for c, p, s, a in self.wrong_counts
        ]
        out += [f"content without a node header: {uid}" for uid in self.headless]
        out += [f"undecodable data: {what}" for what in self.corrupt]
        out += [f"key not written by etcher: {key}" for key in self.unknown_keys]
        return out

    def __str__(self) -> str:
        head = (
            f"namespace {self.prefix!r}: {self.nodes} nodes, {self.reachable} reachable, "
            f"{len(self.pinned)} pinned, {self.counters} counters"
        )
        problems = self.problems()
        if not problems:
            return head + " - OK"
        return head + f" - {len(problems)} problem(s):\n  " + "\n  ".join(problems)


@dataclass
class _Scan:
    headers: dict[str, dict[bytes, bytes]]
    contents: dict[str, Any]
    links: dict[str, list[str]]


def _scan(db: DB, report: CheckReport, g: Graph) -> _Scan:
    layout = db._layout
    header_uids: list[str] = []
    content_uids: list[str] = []
    for raw in db._backend.scan_iter(match=layout.scan):
        key = raw.decode()
        if key.startswith(layout.refs_prefix):
            header_uids.append(key[len(layout.refs_prefix) :])
        elif key.startswith(layout.content_prefix):
            content_uids.append(key[len(layout.content_prefix) :])
        elif key.startswith(layout.counter_prefix):
            report.counters += 1
        elif key != layout.meta:
            report.unknown_keys.append(key)
    headers = g.r.prefetch_hashes([layout.refs(u) for u in header_uids])  # type: ignore[union-attr]
    by_uid = {u: headers[layout.refs(u)] for u in header_uids}
    known = [u for u in header_uids if u[:1] in ("D", "L")]
    report.unknown_keys += [layout.refs(u) for u in header_uids if u[:1] not in ("D", "L")]
    report.headless = sorted(set(content_uids) - set(header_uids))
    contents = g.read_contents(known)
    links: dict[str, list[str]] = {}
    for uid in known:
        kind = by_uid[uid].get(KIND)
        if kind not in (KIND_DICT, KIND_LIST) or (kind == KIND_DICT) != (uid[0] == "D"):
            report.corrupt.append(f"node {uid} has kind {kind!r}")
        out: list[str] = []
        content = contents[uid]
        raws = list(content.values()) if isinstance(content, dict) else content
        for raw in raws:
            try:
                tagged = item_value(raw) if uid[0] == "D" else raw
                if uid[0] == "D":
                    split_item(raw)
                if tagged[0] == LINK:
                    out.append(tagged[1:].decode())
                else:
                    safe_decode(tagged)
            except (StoreCorrupt, ValueError, IndexError, UnicodeDecodeError):
                report.corrupt.append(f"node {uid} holds {raw[:40]!r}")
        links[uid] = out
    return _Scan(by_uid, contents, links)


def _analyse(db: DB, report: CheckReport, scan: _Scan) -> dict[str, Counter[str]]:
    headers = scan.headers
    report.nodes = len(scan.links)
    actual: dict[str, Counter[str]] = {}
    for parent, children in scan.links.items():
        for child in children:
            if child not in headers:
                report.dangling.append((parent, child))
            else:
                actual.setdefault(child, Counter())[parent] += 1
    report.pinned = sorted(u for u, h in headers.items() if PIN in h)
    reached = {ROOT, *report.pinned} & headers.keys()
    stack = list(reached)
    while stack:
        for child in scan.links.get(stack.pop(), ()):
            if child in headers and child not in reached:
                reached.add(child)
                stack.append(child)
    report.reachable = len(reached)
    report.orphans = sorted(scan.links.keys() - reached)
    for uid in scan.links:
        stored = parents_of(headers[uid])
        counted = actual.get(uid, Counter())
        for parent in stored.keys() | counted.keys():
            if stored.get(parent, 0) != counted.get(parent, 0):
                report.wrong_counts.append((uid, parent, stored.get(parent, 0), counted[parent]))
    return actual


def check(db: DB) -> CheckReport:
    """Report every invariant violation of ``db``'s namespace (reads one consistent state)."""

    def run(g: Graph) -> CheckReport:
        report = CheckReport(db.prefix)
        _analyse(db, report, _scan(db, report, g))
        return report

    return db._snapshot(run)


def repair(db: DB, drop_pins: bool = False) -> CheckReport:
    """Mark and sweep: make the namespace satisfy every invariant again, atomically."""

    def run(g: Graph) -> CheckReport:
        report = CheckReport(db.prefix, repaired=True)
        scan = _scan(db, report, g)
        if drop_pins:
            for uid, header in scan.headers.items():
                if PIN in header and uid != ROOT:
                    g.u.hdel(db._layout.refs(uid), PIN)
                    header.pop(PIN)
        actual = _analyse(db, report, scan)
        _fix(db, g.u, report, scan, actual)
        return report

    return db._mutate(run)


def _fix(
    db: DB, u: Unit, report: CheckReport, scan: _Scan, actual: dict[str, Counter[str]]
) -> None:
    layout = db._layout
    orphans = set(report.orphans)
    for uid in orphans:
        Graph(layout, u).drop_node(uid)
    for uid in report.headless:
        u.drop_hash(layout.content(uid))
        u.list_op(layout.content(uid), "delete")
    for key in report.unknown_keys:
        u.drop_hash(key)
        u.list_op(key, "delete")
        u.set(key, None)
    dangling_parents = {p for p, _c in report.dangling if p not in orphans}
    none = encode_scalar(None)
    for parent in dangling_parents:
        content = layout.content(parent)
        if parent[0] == "D":
            for f, raw in scan.contents[parent].items():
                tagged = item_value(raw)
                if tagged[0] == LINK and tagged[1:].decode() not in scan.headers:
                    u.hset(content, f, raw[: raw.index(b"|") + 1] + none)
        else:
            for i, raw in enumerate(scan.contents[parent]):
                if raw[0] == LINK and raw[1:].decode() not in scan.headers:
                    u.list_op(content, "lset", i, none)
    for uid, header in scan.headers.items():
        if uid in orphans or uid not in scan.links:
            continue
        counted = {p: n for p, n in actual.get(uid, Counter()).items() if p not in orphans}
        stored = parents_of(header)
        key = layout.refs(uid)
        for parent in stored.keys() - counted.keys():
            u.hdel(key, parent.encode())
        for parent, n in counted.items():
            if stored.get(parent) != n:
                u.hset(key, parent.encode(), b"%d" % n)
