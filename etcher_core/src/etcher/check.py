"""Checking a namespace's invariants, and repairing them by mark and sweep.

:func:`check` reads every key of the namespace and reports each violation:
unreachable nodes (orphans), links to missing nodes (dangling), headers whose
back-reference counts disagree with the links actually stored, content
without a header, undecodable values and keys that etcher did not write.
Nodes pinned by a live ``RD(db)`` handle are listed apart: they are not
garbage while the handle lives. Pending garbage (unlinked nodes waiting out
their grace period, listed in ``{P}:g``) is only counted: it is expected,
and the next sweep deletes it.

:func:`repair` fixes all of it in one atomic unit: orphans are deleted,
counts rewritten, dangling links replaced by ``None``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etcher.codec import (
    decode_key,
    encode_scalar,
    item_value,
    link_target,
    safe_decode,
    split_item,
)
from etcher.errors import StoreCorrupt
from etcher.graph import KIND_DICT, KIND_LIST, Graph
from etcher.layout import HEADER_FIELDS, KIND, PIN, ROOT
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
    pending: int = 0
    """Unlinked nodes still inside their grace period (not a problem: swept later)."""
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
            f"{len(self.pinned)} pinned, {self.pending} pending garbage, "
            f"{self.counters} counters"
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
    # Repairs for damaged data: (uid, dict field or list index, replacement or None to drop).
    bad_items: list[tuple[str, bytes | int, bytes | None]] = field(default_factory=list)
    bad_keys: list[str] = field(default_factory=list)


_EXPECTED_TYPE = {"r": b"hash", "D": b"hash", "L": b"list"}


def _scan(db: DB, report: CheckReport, g: Graph) -> _Scan:
    layout = db._layout
    header_uids: list[str] = []
    content_uids: list[str] = []
    for raw in db._backend.scan_iter(match=layout.scan):
        key = raw.decode(errors="replace")
        if key.startswith(layout.refs_prefix):
            header_uids.append(key[len(layout.refs_prefix) :])
        elif key.startswith(layout.content_prefix):
            content_uids.append(key[len(layout.content_prefix) :])
        elif key.startswith(layout.counter_prefix):
            report.counters += 1
        elif key not in (layout.meta, layout.pending):
            report.unknown_keys.append(key)
    # Pending garbage is unreachable by design and left out of every other check.
    pending = {f.decode(errors="replace") for f in g.r.hgetall(layout.pending)}
    report.pending = len(pending)
    header_uids = [u for u in header_uids if u not in pending]
    content_uids = [u for u in content_uids if u not in pending]
    report.unknown_keys += [layout.refs(u) for u in header_uids if u[:1] not in ("D", "L")]
    report.unknown_keys += [layout.content(u) for u in content_uids if u[:1] not in ("D", "L")]
    header_uids = [u for u in header_uids if u[:1] in ("D", "L")]
    content_uids = [u for u in content_uids if u[:1] in ("D", "L")]
    bad_keys = _wrong_types(db, report, header_uids, content_uids)
    header_uids = [u for u in header_uids if layout.refs(u) not in bad_keys]
    headers = g.r.prefetch_hashes([layout.refs(u) for u in header_uids])  # type: ignore[union-attr]
    by_uid = {u: headers[layout.refs(u)] for u in header_uids}
    report.headless = sorted(set(content_uids) - set(header_uids))
    readable = [u for u in header_uids if layout.content(u) not in bad_keys]
    contents: dict[str, Any] = dict(g.read_contents(readable))
    for uid in header_uids:
        contents.setdefault(uid, {} if uid[0] == "D" else [])
    scan = _Scan(by_uid, contents, {}, bad_keys=sorted(bad_keys))
    for uid in header_uids:
        kind = by_uid[uid].get(KIND)
        if kind not in (KIND_DICT, KIND_LIST) or (kind == KIND_DICT) != (uid[0] == "D"):
            report.corrupt.append(f"node {uid} has kind {kind!r}")
        for f, v in by_uid[uid].items():
            if f not in HEADER_FIELDS and not v.isdigit():
                report.corrupt.append(f"node {uid} header field {f[:40]!r} holds {v[:40]!r}")
        scan.links[uid] = _item_links(uid, contents[uid], report, scan)
    return scan


def _wrong_types(
    db: DB, report: CheckReport, header_uids: list[str], content_uids: list[str]
) -> set[str]:
    """Keys of the namespace that hold the wrong kind of value (a list where a hash belongs)."""
    layout = db._layout
    keys = [(layout.refs(u), "r") for u in header_uids]
    keys += [(layout.content(u), u[0]) for u in content_uids]
    if not keys:
        return set()
    pipe = db._backend.pipeline(transaction=False)
    for key, _kind in keys:
        pipe.type(key)
    bad = set()
    for (key, kind), found in zip(keys, pipe.execute(), strict=True):
        if found not in (_EXPECTED_TYPE[kind], b"none"):
            bad.add(key)
            want = _EXPECTED_TYPE[kind].decode()
            report.corrupt.append(f"key {key} holds a {found.decode()}, not a {want}")
    return bad


def _item_links(uid: str, content: Any, report: CheckReport, scan: _Scan) -> list[str]:
    """The links a node holds; damaged items are reported and scheduled for repair."""
    none = encode_scalar(None)
    out: list[str] = []
    items = content.items() if uid[0] == "D" else enumerate(content)
    for where, raw in items:
        try:
            if uid[0] == "D":
                decode_key(where)  # type: ignore[arg-type]  # a dict field (bytes) here
                seq, tagged = split_item(raw)
            else:
                tagged = raw
            child = link_target(tagged)
            if child is None:
                safe_decode(tagged)
            else:
                out.append(child)
        except StoreCorrupt as exc:
            report.corrupt.append(f"node {uid} item {where!r}: {exc}")
            if uid[0] == "L":
                scan.bad_items.append((uid, where, none))
            else:
                try:
                    decode_key(where)  # type: ignore[arg-type]  # a dict field (bytes) here
                    seq, _tagged = split_item(raw)
                except StoreCorrupt:
                    scan.bad_items.append((uid, where, None))  # nothing to keep: drop it
                else:
                    scan.bad_items.append((uid, where, b"%d|" % seq + none))
    return out


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
        stored = _parents(headers[uid])
        counted = actual.get(uid, Counter())
        for parent in stored.keys() | counted.keys():
            if stored.get(parent, 0) != counted.get(parent, 0):
                report.wrong_counts.append((uid, parent, stored.get(parent, 0), counted[parent]))
    return actual


def _parents(header: dict[bytes, bytes]) -> dict[str, int]:
    """Back-references of a header, skipping damaged fields (reported by the scan)."""
    out = {}
    for f, v in header.items():
        if f not in HEADER_FIELDS and v.isdigit():
            out[f.decode(errors="replace")] = int(v)
    return out


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


def _dangles(tagged: bytes, scan: _Scan) -> bool:
    try:
        child = link_target(tagged)
    except StoreCorrupt:
        return False  # repaired as a damaged item
    return child is not None and child not in scan.headers


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
    for key in [*report.unknown_keys, *scan.bad_keys]:
        u.drop_hash(key)
        u.list_op(key, "delete")
        u.set(key, None)
    for uid, where, replacement in scan.bad_items:
        if uid in orphans:
            continue
        content = layout.content(uid)
        if isinstance(where, int):
            u.list_op(content, "lset", where, replacement)
        elif replacement is None:
            u.hdel(content, where)
        else:
            u.hset(content, where, replacement)
    dangling_parents = {p for p, _c in report.dangling if p not in orphans}
    none = encode_scalar(None)
    for parent in dangling_parents:
        content = layout.content(parent)
        if parent[0] == "D":
            for f, raw in scan.contents[parent].items():
                if _dangles(item_value(raw), scan):
                    u.hset(content, f, raw[: raw.index(b"|") + 1] + none)
        else:
            for i, raw in enumerate(scan.contents[parent]):
                if _dangles(raw, scan):
                    u.list_op(content, "lset", i, none)
    for uid, header in scan.headers.items():
        if uid in orphans or uid not in scan.links:
            continue
        counted = {p: n for p, n in actual.get(uid, Counter()).items() if p not in orphans}
        stored = _parents(header)
        key = layout.refs(uid)
        for parent in stored.keys() - counted.keys():
            u.hdel(key, parent.encode())
        for parent, n in counted.items():
            if stored.get(parent) != n:
                u.hset(key, parent.encode(), b"%d" % n)
