"""Checking a namespace's invariants, and repairing them, incrementally.

Both run beside other writers and never hold the store for long:

1. **Survey.** The namespace's keys are scanned in batches outside any unit,
   then its nodes are read :data:`CHUNK` at a time, each batch in one short
   atomic read (a ``MULTI/EXEC`` of reads; on SQLite one read transaction).
   Links to nodes the scan did not list (written meanwhile) are followed and
   read too. Stitched together, the batches give *candidate* findings:
   orphans, dangling links, wrong back-reference counts, content without a
   header. Batches come from different moments, so under concurrent writes a
   candidate may be false.
2. **Verification.** Every candidate is re-read in a small unit that reads
   only the keys involved (the link holder and its targets; a node and its
   parents), and reported (or, for :func:`repair`, fixed inside that same
   unit) only if it is still wrong there. Unreachable candidates go to the
   liveness proof of :meth:`Graph.collect <etcher._graph.Graph.collect>` in
   bounded batches, so reachability is decided on one consistent state, from
   back-references, not from the stale survey.

So a finding is real at the moment its unit read it, and nothing a writer
linked meanwhile is ever removed or rewritten: it is re-read before any fix.
Undecodable data and keys etcher did not write are reported from the atomic
batch that saw them (writers never make such data). Nodes pinned by a live
``RD(db)`` handle are listed apart, and nodes listed in the namespace's
pending-garbage hash (``Layout.pending``) are neither orphans nor repaired.

``progress(phase, done, total)``, when given, is called as the work advances:
``"scan"`` (keys listed; total unknown), ``"read"`` (nodes read) and
``"verify"`` (candidates verified).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from etcher._codec import (
    decode_key,
    encode_scalar,
    item_value,
    join_item,
    link_target,
    safe_decode,
    split_item,
)
from etcher._graph import KIND_DICT, KIND_LIST, Graph
from etcher._layout import HEADER_FIELDS, KIND, PIN, ROOT, is_dict, is_node_uid
from etcher._unit import Unit
from etcher.errors import StoreCorrupt, WatchError, WrongTypeError

if TYPE_CHECKING:
    from etcher._session import Session

T = TypeVar("T")

CHUNK = 200
"""Nodes read per survey batch, and the most candidates one verifying unit takes.

A survey batch is one atomic read of at most ``2 * CHUNK`` keys (plus one
``TYPE`` batch of as many); a verifying unit reads a candidate group's keys
and what the liveness proof climbs through.
"""

Progress = Callable[[str, int, "int | None"], None]
"""``progress(phase, done, total)``: see the module docstring."""


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
        """True if no invariant is violated (pinned and pending nodes are not violations)."""
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
            f"{len(self.pinned)} pinned, {self.pending} pending, {self.counters} counters"
        )
        problems = self.problems()
        if not problems:
            return head + " - OK"
        return head + f" - {len(problems)} problem(s):\n  " + "\n  ".join(problems)


# A repair of one damaged item: (dict field or list index, replacement or None to drop).
_BadItem = tuple[bytes | int, bytes | None]


@dataclass
class _Survey:
    headers: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    links: dict[str, Counter[str]] = field(default_factory=dict)
    bad_items: dict[str, list[_BadItem]] = field(default_factory=dict)
    bad_keys: set[str] = field(default_factory=set)
    content_uids: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)


def _content_type(uid: str) -> bytes:
    """The backend type of a node's content key."""
    return b"hash" if is_dict(uid) else b"list"


def _tick(progress: Progress | None, phase: str, done: int, total: int | None) -> None:
    if progress is not None:
        progress(phase, done, total)


# --------------------------------------------------------------------------- survey


def _survey(session: Session, report: CheckReport, progress: Progress | None) -> _Survey:
    layout = session.layout
    backend = session.backend
    sv = _Survey()
    header_uids: list[str] = []
    seen = 0
    for raw in backend.scan_iter(match=layout.scan, count=CHUNK):
        key = raw.decode(errors="replace")
        seen += 1
        if seen % CHUNK == 0:
            _tick(progress, "scan", seen, None)
        if key.startswith(layout.refs_prefix):
            uid = key[len(layout.refs_prefix) :]
            if is_node_uid(uid):
                header_uids.append(uid)
            else:
                report.unknown_keys.append(key)
        elif key.startswith(layout.content_prefix):
            uid = key[len(layout.content_prefix) :]
            if is_node_uid(uid):
                sv.content_uids.add(uid)
            else:
                report.unknown_keys.append(key)
        elif key.startswith(layout.counter_prefix):
            report.counters += 1
        elif key not in (layout.meta, layout.pending):
            report.unknown_keys.append(key)
    _tick(progress, "scan", seen, seen)
    if backend.exists(layout.pending):
        sv.pending = {f.decode(errors="replace") for f in backend.hkeys(layout.pending)}
    report.pending = len(sv.pending)
    # Read the listed nodes, then whatever they link to that the scan did not list.
    queue = list(dict.fromkeys(header_uids))
    queued = set(queue)
    at = 0
    while at < len(queue):
        chunk = queue[at : at + CHUNK]
        at += len(chunk)
        _read_chunk(session, report, sv, chunk)
        for uid in chunk:
            for child in sv.links.get(uid, ()):
                if child not in queued and is_node_uid(child):
                    queued.add(child)
                    queue.append(child)
        _tick(progress, "read", at, len(queue))
    return sv


def _read_chunk(session: Session, report: CheckReport, sv: _Survey, chunk: list[str]) -> None:
    """Read one batch of nodes in one atomic read; record headers, links and damage."""
    layout = session.layout
    backend = session.backend
    keys = [(layout.refs(u), b"hash") for u in chunk]
    keys += [(layout.content(u), _content_type(u)) for u in chunk]
    pipe = backend.pipeline(transaction=False)
    for key, _expected in keys:
        pipe.type(key)
    for (key, expected), found in zip(keys, pipe.execute(), strict=True):
        if found not in (expected, b"none") and key not in sv.bad_keys:
            sv.bad_keys.add(key)
            want = expected.decode()
            report.corrupt.append(f"key {key} holds a {found.decode()}, not a {want}")
    good = [u for u in chunk if layout.refs(u) not in sv.bad_keys]
    readable = [u for u in good if layout.content(u) not in sv.bad_keys]
    pipe = backend.pipeline(transaction=True)
    for uid in good:
        pipe.hgetall(layout.refs(uid))
    for uid in readable:
        if is_dict(uid):
            pipe.hgetall(layout.content(uid))
        else:
            pipe.lrange(layout.content(uid), 0, -1)
    results = pipe.execute()
    headers = dict(zip(good, results[: len(good)], strict=True))
    contents = dict(zip(readable, results[len(good) :], strict=True))
    for uid in good:
        header = headers[uid]
        if not header:
            continue  # gone since the scan listed it, or a link target that does not exist
        sv.headers[uid] = header
        kind = header.get(KIND)
        if kind not in (KIND_DICT, KIND_LIST) or (kind == KIND_DICT) != is_dict(uid):
            report.corrupt.append(f"node {uid} has kind {kind!r}")
        for f, v in header.items():
            if f not in HEADER_FIELDS and not v.isdigit():
                report.corrupt.append(f"node {uid} header field {f[:40]!r} holds {v[:40]!r}")
        content = contents.get(uid, {} if is_dict(uid) else [])
        bad: list[_BadItem] = []
        sv.links[uid] = Counter(_item_links(uid, content, report.corrupt, bad))
        if bad:
            sv.bad_items[uid] = bad


def _item_links(uid: str, content: Any, corrupt: list[str], bad: list[_BadItem]) -> list[str]:
    """The links a node holds; damaged items are reported and their repair noted in ``bad``."""
    none = encode_scalar(None)
    out: list[str] = []
    dict_node = is_dict(uid)
    items = content.items() if dict_node else enumerate(content)
    for where, raw in items:
        try:
            if dict_node:
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
            corrupt.append(f"node {uid} item {where!r}: {exc}")
            if not dict_node:
                bad.append((where, none))
            else:
                try:
                    decode_key(where)  # type: ignore[arg-type]  # a dict field (bytes) here
                    seq, _tagged = split_item(raw)
                except StoreCorrupt:
                    bad.append((where, None))  # nothing to keep: drop it
                else:
                    bad.append((where, join_item(seq, none)))
    return out


def _parents(header: dict[bytes, bytes]) -> dict[str, int]:
    """Back-references of a header, skipping damaged fields (reported by the survey)."""
    out = {}
    for f, v in header.items():
        if f not in HEADER_FIELDS and v.isdigit():
            out[f.decode(errors="replace")] = int(v)
    return out


@dataclass
class _Candidates:
    dangling: dict[str, set[str]] = field(default_factory=dict)  # parent -> missing children
    counts: dict[str, set[str]] = field(default_factory=dict)  # parent -> children to recount
    orphans: list[str] = field(default_factory=list)
    headless: list[str] = field(default_factory=list)

    def total(self) -> int:
        return (
            sum(map(len, self.dangling.values()))
            + sum(map(len, self.counts.values()))
            + len(self.orphans)
            + len(self.headless)
        )


def _candidates(report: CheckReport, sv: _Survey) -> _Candidates:
    headers, pending = sv.headers, sv.pending
    cands = _Candidates()
    actual: dict[str, Counter[str]] = {}
    for parent, children in sv.links.items():
        if parent in pending:
            continue  # pending garbage may link to what was already reclaimed
        for child, n in children.items():
            if child in pending:
                continue
            if child not in headers:
                cands.dangling.setdefault(parent, set()).add(child)
            else:
                actual.setdefault(child, Counter())[parent] += n
    report.nodes = len(headers.keys() - pending)
    report.pinned = sorted(u for u, h in headers.items() if PIN in h)
    reached = {ROOT, *report.pinned} & headers.keys()
    stack = list(reached)
    while stack:
        for child in sv.links.get(stack.pop(), ()):
            if child in headers and child not in reached:
                reached.add(child)
                stack.append(child)
    report.reachable = len(reached)
    cands.orphans = sorted(headers.keys() - reached - pending)
    for uid, header in headers.items():
        if uid in pending:
            continue
        stored = _parents(header)
        counted = actual.get(uid, Counter())
        for parent in stored.keys() | counted.keys():
            if parent not in pending and stored.get(parent, 0) != counted.get(parent, 0):
                cands.counts.setdefault(parent, set()).add(uid)
    cands.headless = sorted(sv.content_uids - headers.keys() - pending)
    return cands


# --------------------------------------------------------------------------- verification


_NOTHING: Any = object()


def _in_unit(session: Session, fn: Callable[[Graph], T], fix: bool, damaged: Any = _NOTHING) -> T:
    """Run ``fn`` in one small unit: committed (``fix``) or only validated (a check).

    ``damaged`` is the result when the unit meets a key of the wrong type (that
    damage is reported by the survey already); without it the error propagates.
    """
    try:
        return _in_unit_once(session, fn, fix)
    except WrongTypeError:
        if damaged is _NOTHING:
            raise
        return damaged  # type: ignore[no-any-return]


def _in_unit_once(session: Session, fn: Callable[[Graph], T], fix: bool) -> T:
    layout = session.layout
    if fix:
        return session.retry.run(session.backend, lambda u: fn(Graph(layout, u)))

    def attempt() -> T:
        unit = Unit(session.backend, False)
        try:
            try:
                result = fn(Graph(layout, unit))
            except Exception as exc:
                unit.raise_if_stale(exc)
                raise
            # A check never commits (the liveness proof buffers its sweep): it only
            # needs everything it read to be one state, which this confirms.
            if not unit.reads_valid():
                raise WatchError("the data changed while it was being checked")
            return result
        finally:
            unit.close()

    return session.retry.call(attempt)


def _pending_among(g: Graph, uids: Iterable[str]) -> set[str]:
    """Which of ``uids`` are pending garbage, read inside the unit (one batch)."""
    key = g.layout.pending
    uids = list(uids)
    g.unit.load(fields=[(key, u.encode()) for u in uids])
    return {u for u in uids if g.unit.hget(key, u.encode()) is not None}


def _items(uid: str, content: Any) -> Iterable[tuple[Any, bytes, str | None]]:
    """(where, raw item, linked uid or None) of a node's content; damaged items are skipped."""
    dict_node = is_dict(uid)
    items = content.items() if dict_node else enumerate(content)
    for where, raw in items:
        try:
            child = link_target(item_value(raw) if dict_node else raw)
        except StoreCorrupt:
            continue
        yield where, raw, child


def _groups(by_parent: dict[str, set[str]]) -> list[tuple[str, list[str]]]:
    out = []
    for parent in sorted(by_parent):
        children = sorted(by_parent[parent])
        for i in range(0, len(children), CHUNK):
            out.append((parent, children[i : i + CHUNK]))
    return out


def _verify_dangling(
    g: Graph, parent: str, children: list[str], bad_keys: set[str], fix: bool
) -> list[tuple[str, str]]:
    layout = g.layout
    readable = [c for c in children if layout.refs(c) not in bad_keys]
    g.unit.load(hashes=[layout.refs(parent), *(layout.refs(c) for c in readable)])
    if not g.unit.hgetall(layout.refs(parent)):
        return []
    pending = _pending_among(g, [parent, *children])
    if parent in pending:
        return []
    gone = {
        c
        for c in children
        if c not in pending and not (c in readable and g.unit.hgetall(layout.refs(c)))
    }
    if not gone:
        return []
    content = g.read_contents([parent])[parent]
    none = encode_scalar(None)
    found: set[str] = set()
    key = layout.content(parent)
    for where, raw, child in list(_items(parent, content)):
        if child in gone:
            found.add(child)
            if not fix:
                continue
            if is_dict(parent):
                g.unit.hset(key, where, raw[: raw.index(b"|") + 1] + none)
            else:
                g.unit.list_op(key, "lset", where, none)
    return [(parent, c) for c in sorted(found)]


def _verify_counts(
    g: Graph, parent: str, children: list[str], bad_keys: set[str], fix: bool
) -> tuple[list[tuple[str, str, int, int]], set[str]]:
    layout = g.layout
    children = [c for c in children if layout.refs(c) not in bad_keys]
    parent_exists = layout.refs(parent) not in bad_keys
    g.unit.load(hashes=[layout.refs(c) for c in children])
    pending = _pending_among(g, [parent, *children])
    if parent in pending:
        return [], set()
    counted: Counter[str] = Counter()
    if (
        parent_exists
        and g.unit.hgetall(layout.refs(parent))
        and layout.content(parent) not in bad_keys
    ):
        content = g.read_contents([parent])[parent]
        counted.update(c for _w, _r, c in _items(parent, content) if c is not None)
    found = []
    for child in children:
        header = g.unit.hgetall(layout.refs(child))
        if child in pending or not header:
            continue
        stored = _parents(header).get(parent, 0)
        if stored == counted[child]:
            continue
        found.append((child, parent, stored, counted[child]))
        if fix:
            key = layout.refs(child)
            if counted[child]:
                g.unit.hset(key, parent.encode(), b"%d" % counted[child])
            else:
                g.unit.hdel(key, parent.encode())
                g.candidates.add(child)
    collected = g.collect() if fix and g.candidates else set()
    return found, collected


def _verify_orphans(
    g: Graph, batch: list[str], corrections: list[tuple[str, str, int, int]]
) -> set[str]:
    """The liveness proof of ``collect`` on ``batch``: what is unreachable now.

    ``corrections`` are back-reference counts a check found wrong (and did not
    fix): applied to this unit's view only, so a stale back-reference cannot
    make an orphan look alive. (A repair has fixed them in the store already.)
    """
    for child, parent, _stored, actual in corrections:
        key = g.layout.refs(child)
        if actual:
            g.unit.hset(key, parent.encode(), b"%d" % actual)
        else:
            g.unit.hdel(key, parent.encode())
    pending = _pending_among(g, batch)
    g.candidates = {u for u in batch if u not in pending and u != ROOT}
    garbage = g.collect()
    if not garbage:
        return garbage
    # With a grace period, collect() just made the garbage pending in this unit's view:
    # only what was pending before it is not an orphan.
    return garbage - (_pending_among(g, garbage) - g.retired.keys())


def _verify_headless(g: Graph, uid: str, fix: bool) -> bool:
    layout = g.layout
    g.prefetch_nodes([uid])
    if g.unit.hgetall(layout.refs(uid)) or _pending_among(g, [uid]):
        return False
    if not g.read_contents([uid])[uid]:
        return False
    if fix:
        g.drop_node(uid)
    return True


def _fix_items(g: Graph, uid: str) -> None:
    """Re-read node ``uid`` and repair its damaged items (it may have changed meanwhile)."""
    layout = g.layout
    g.prefetch_nodes([uid])
    if not g.unit.hgetall(layout.refs(uid)) or _pending_among(g, [uid]):
        return
    bad: list[_BadItem] = []
    _item_links(uid, g.read_contents([uid])[uid], [], bad)
    key = layout.content(uid)
    for where, replacement in bad:
        if isinstance(where, int):
            g.unit.list_op(key, "lset", where, replacement)
        elif replacement is None:
            g.unit.hdel(key, where)
        else:
            g.unit.hset(key, where, replacement)


def _drop_keys(g: Graph, keys: list[str]) -> None:
    for key in keys:
        g.unit.drop_hash(key)
        g.unit.list_op(key, "delete")
        g.unit.set(key, None)


def _run(session: Session, fix: bool, drop_pins: bool, progress: Progress | None) -> CheckReport:
    report = CheckReport(session.prefix, repaired=fix)
    sv = _survey(session, report, progress)
    cands = _candidates(report, sv)
    total = cands.total()
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        _tick(progress, "verify", done, total)

    if fix:
        # Keys of the wrong type first: no later unit can read them.
        junk = [*report.unknown_keys, *sorted(sv.bad_keys)]
        for i in range(0, len(junk), CHUNK):
            _in_unit(session, partial(_drop_keys, keys=junk[i : i + CHUNK]), fix)
    # Links first, then counts: the liveness proof below trusts back-references.
    for parent, children in _groups(cands.dangling):
        verify = partial(
            _verify_dangling, parent=parent, children=children, bad_keys=sv.bad_keys, fix=fix
        )
        report.dangling += _in_unit(session, verify, fix, [])
        step(len(children))
    collected: set[str] = set()
    for parent, children in _groups(cands.counts):
        recount = partial(
            _verify_counts, parent=parent, children=children, bad_keys=sv.bad_keys, fix=fix
        )
        found, gone = _in_unit(session, recount, fix, ([], set()))
        report.wrong_counts += found
        collected |= gone
        step(len(children))
    for uid in cands.headless:
        if session.layout.refs(uid) in sv.bad_keys:
            report.headless.append(uid)  # its header key is damaged: dropped below
            if fix:
                _in_unit(session, partial(_drop_keys, keys=[session.layout.content(uid)]), fix)
        elif _in_unit(session, partial(_verify_headless, uid=uid, fix=fix), fix, False):
            report.headless.append(uid)
        step(1)
    if fix:
        for uid in sorted(sv.bad_items):
            _in_unit(session, partial(_fix_items, uid=uid), fix, None)
        if drop_pins:
            pins = [u for u in report.pinned if u != ROOT]
            for i in range(0, len(pins), CHUNK):
                unpin = partial(_unpin, uids=pins[i : i + CHUNK])
                collected |= _in_unit(session, unpin, fix, set())
    orphans = [u for u in cands.orphans if u not in collected]
    for i in range(0, len(orphans), CHUNK):
        batch = orphans[i : i + CHUNK]
        corrections = [] if fix else report.wrong_counts
        prove = partial(_verify_orphans, batch=batch, corrections=corrections)
        collected |= _in_unit(session, prove, fix, set())
        step(len(batch))
    report.orphans = sorted(collected)
    if drop_pins:
        report.pinned = [u for u in report.pinned if u not in collected]
    report.wrong_counts.sort()
    report.dangling.sort()
    return report


def _unpin(g: Graph, uids: list[str]) -> set[str]:
    g.unit.load(hashes=[g.layout.refs(u) for u in uids])
    for uid in uids:
        g.unpin(uid)
    return g.collect()


def check(session: Session, progress: Progress | None = None) -> CheckReport:
    """Report the invariant violations of ``session``'s namespace (see the module docstring).

    Each finding was verified in one small read unit, so it was real at that
    moment; the store is never held for longer than one batch.
    """
    return _run(session, fix=False, drop_pins=False, progress=progress)


def repair(
    session: Session, drop_pins: bool = False, progress: Progress | None = None
) -> CheckReport:
    """Find and fix every violation, one small verifying unit per candidate group.

    Orphans are deleted, back-reference counts rewritten, dangling links
    replaced by ``None``, damaged items and foreign keys removed. Everything
    is re-read in the unit that fixes it, so writers running meanwhile lose
    nothing. ``drop_pins`` also releases pins (nodes of ``RD(db)`` handles).
    """
    return _run(session, fix=True, drop_pins=drop_pins, progress=progress)
