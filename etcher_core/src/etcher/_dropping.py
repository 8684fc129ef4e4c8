"""Deleting a whole namespace beside its writers, in bounded steps.

One ``DEL`` of every key a scan listed is neither atomic against writers (a
node written between the scan and the ``DEL`` survives as an orphan) nor
cheap (a namespace of 36,000 keys is one command that holds a Redis server
for its whole run). Instead:

1. **The fence** (the moment the namespace is deleted): one small unit drops
   the root, the namespace metadata, its pending-garbage list and its
   counters. A write through the DB's mapping API reads the root, so one
   racing with the fence conflicts and retries; afterwards it finds no root
   and starts a new, empty namespace (as after any ``delete_prefix_*``).
2. **The sweep**: the old tree is now unreachable and is reclaimed in units
   of at most :data:`~etcher._check.CHUNK` nodes, top-down. A node goes only
   when no existing parent links to it: each unit reads the node's header and
   its parents' headers, drops back-references of parents that are gone (and
   recounts those of the root against the *new* root), and deletes the node
   if none is left. A writer that still holds a handle inside the old tree
   either commits before the unit that deletes that node (which then reads
   what it linked and reclaims it too) or fails as on any collected node; a
   node relinked into the new namespace keeps its parents and survives.
3. Nodes still held only by each other (cycles) go through the liveness proof
   of :meth:`Graph.collect <etcher._graph.Graph.collect>`; what the scan listed
   before the fence and no node owns (content without a header, keys etcher
   did not write) is deleted last.

So the store never holds a half-deleted namespace that a reader could see
as data, nothing of the old namespace is left behind, and no step touches
more than a bounded number of keys except the fence's counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from etcher._codec import item_value, link_target
from etcher._graph import Graph
from etcher._layout import HEADER_FIELDS, NAMESPACES_KEY, PIN, ROOT, Layout, is_dict, is_node_uid
from etcher._unit import RetryPolicy
from etcher.errors import StoreCorrupt
from etcher.spec import StorageBackend

CHUNK = 200


def _links(uid: str, content: Any) -> Counter[str]:
    """Links held by a node's content, skipping damaged items (the node is going anyway)."""
    out: Counter[str] = Counter()
    raws = map(item_value, content.values()) if is_dict(uid) else content
    for raw in raws:
        try:
            child = link_target(raw)
        except StoreCorrupt:
            continue
        if child is not None:
            out[child] += 1
    return out


def _parents(header: dict[bytes, bytes]) -> dict[str, int]:
    return {
        f.decode(errors="replace"): int(v)
        for f, v in header.items()
        if f not in HEADER_FIELDS and v.isdigit()
    }


class NamespaceDeleter:
    """One deletion of namespace ``prefix`` (see the module docstring)."""

    def __init__(
        self,
        backend: StorageBackend,
        retry: RetryPolicy,
        prefix: str,
        chunk: int = CHUNK,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> None:
        self.backend = backend
        self.retry = retry
        self.layout = Layout(prefix)
        self.chunk = chunk
        self.progress = progress
        self.deleted = 0

    def _unit(self, fn: Callable[[Graph], Any]) -> Any:
        layout = self.layout
        return self.retry.run(self.backend, lambda u: fn(Graph(layout, u)))

    def run(self) -> int:
        """Delete the namespace; return how many keys were deleted."""
        layout = self.layout
        before = [
            raw.decode(errors="replace")
            for raw in self.backend.scan_iter(match=layout.scan, count=self.chunk)
        ]
        counters = [k for k in before if k.startswith(layout.counter_prefix)]
        top, pending = self._unit(lambda g: self._fence(g, counters[: self.chunk]))
        # Unregistered right after the fence: a writer that re-creates the namespace
        # from now on registers it again.
        self.backend.hdel(NAMESPACES_KEY, layout.prefix.encode())
        for i in range(self.chunk, len(counters), self.chunk):
            self._unit(partial(self._drop_counters, keys=counters[i : i + self.chunk]))
        scanned = [
            k[len(layout.refs_prefix) :]
            for k in before
            if k.startswith(layout.refs_prefix) and is_node_uid(k[len(layout.refs_prefix) :])
        ]
        suspects = self._sweep([*top, *pending, *scanned])
        self._resolve(suspects)
        self._leftovers(before)
        return self.deleted

    # --- steps ------------------------------------------------------------------
    def _fence(self, g: Graph, counters: list[str]) -> tuple[list[str], list[str]]:
        layout, u = self.layout, g.unit
        u.load(hashes=[layout.refs(ROOT), layout.content(ROOT), layout.meta, layout.pending])
        top: list[str] = []
        n = 0
        if u.hgetall(layout.refs(ROOT)):
            content = u.hgetall(layout.content(ROOT))
            top = [c for c in _links(ROOT, content) if c != ROOT]
            n += 1 + bool(content)
            g.drop_node(ROOT)
        pending = [f.decode(errors="replace") for f in u.hgetall(layout.pending)]
        for key in (layout.meta, layout.pending):
            if u.hgetall(key):
                n += 1
                u.drop_hash(key)
        n += self._drop_counters(g, counters)
        self.deleted += n
        return top, pending

    def _drop_counters(self, g: Graph, keys: list[str]) -> int:
        for key in keys:
            g.unit.set(key, None)
        return len(keys)

    def _sweep(self, queue: list[str]) -> set[str]:
        """Reclaim every queued node no existing parent holds; return the others."""
        suspects: set[str] = set()
        at = 0
        while at < len(queue):
            part = queue[at : at + self.chunk]
            at += len(part)  # not the chunk size: the queue grows as nodes are freed
            batch = list(dict.fromkeys(u for u in part if u != ROOT))
            if not batch:
                continue
            held, freed = self._unit(partial(self._sweep_batch, batch=batch))
            suspects -= set(batch)
            suspects |= held
            queue.extend(freed)
            if self.progress is not None:
                self.progress("delete", at, len(queue))
        return suspects

    def _sweep_batch(self, g: Graph, batch: list[str]) -> tuple[set[str], list[str]]:
        layout, u = self.layout, g.unit
        refs = layout.refs
        u.load(hashes=[refs(x) for x in batch])
        headers = {x: u.hgetall(refs(x)) for x in batch}
        parents = {x: _parents(h) for x, h in headers.items() if h}
        above = {p for ps in parents.values() for p in ps if p != ROOT}
        u.load(hashes=[refs(p) for p in above])
        root_links: Counter[str] = Counter()
        if any(ROOT in ps for ps in parents.values()):
            u.load(hashes=[refs(ROOT), layout.content(ROOT)])
            if u.hgetall(refs(ROOT)):
                root_links = _links(ROOT, u.hgetall(layout.content(ROOT)))
        held: set[str] = set()
        dead: list[str] = []
        for x, ps in parents.items():
            left = 0
            for p in ps:
                if p == ROOT:
                    # The old root is gone; only the new root's own links count now.
                    if root_links[x]:
                        u.hset(refs(x), ROOT.encode(), b"%d" % root_links[x])
                        left += 1
                    else:
                        u.hdel(refs(x), ROOT.encode())
                elif u.hgetall(refs(p)):
                    left += 1
                else:
                    u.hdel(refs(x), p.encode())  # that parent was reclaimed
            if left:
                held.add(x)
            else:
                dead.append(x)
        # Parents inside this batch that die here free their children: look again next round.
        freed: list[str] = []
        contents = g.read_contents(dead)
        for x in dead:
            freed.extend(c for c in _links(x, contents[x]) if c != ROOT)
            self.deleted += 1 + bool(contents[x])
            g.drop_node(x)
        dead_set = set(dead)
        freed.extend(x for x in held if any(p in dead_set for p in parents[x]))
        return held, freed

    def _resolve(self, suspects: set[str]) -> None:
        """Cycles of the old tree: the liveness proof decides, in bounded batches."""
        ordered = sorted(suspects)
        for i in range(0, len(ordered), self.chunk):
            batch = ordered[i : i + self.chunk]
            self.deleted += self._unit(partial(self._collect, batch=batch))

    def _collect(self, g: Graph, batch: list[str]) -> int:
        g.unit.load(hashes=[self.layout.refs(x) for x in batch])
        for x in batch:
            header = g.unit.hgetall(self.layout.refs(x))
            if header.get(PIN) is not None:
                # A handle's pin does not outlive its namespace.
                g.unit.hdel(self.layout.refs(x), PIN)
        g.candidates = set(batch)
        return 2 * len(g.collect())

    def _leftovers(self, before: Iterable[str]) -> None:
        """Keys listed before the fence that no existing node owns."""
        layout = self.layout
        fenced = {layout.meta, layout.pending, layout.refs(ROOT), layout.content(ROOT)}
        keys = [k for k in before if k not in fenced and not k.startswith(layout.counter_prefix)]
        present = []
        for i in range(0, len(keys), self.chunk):
            part = keys[i : i + self.chunk]
            pipe = self.backend.pipeline(transaction=False)
            for key in part:
                pipe.exists(key)
            present += [k for k, n in zip(part, pipe.execute(), strict=True) if n]
        for i in range(0, len(present), self.chunk):
            part = present[i : i + self.chunk]
            self.deleted += self._unit(partial(self._drop_unowned, keys=part))

    def _drop_unowned(self, g: Graph, keys: list[str]) -> int:
        layout, u = self.layout, g.unit
        owners: dict[str, str] = {}
        for key in keys:
            for head in (layout.refs_prefix, layout.content_prefix):
                if key.startswith(head) and is_node_uid(key[len(head) :]):
                    owners[key] = key[len(head) :]
        # A node that exists (relinked into the new namespace, or proven alive) keeps its keys.
        alive = set()
        pipe = self.backend.pipeline(transaction=False)
        checks = sorted({layout.refs(x) for x in owners.values()})
        for key in checks:
            pipe.type(key)
        hashes = [k for k, t in zip(checks, pipe.execute(), strict=True) if t == b"hash"]
        u.load(hashes=hashes)
        for key in hashes:
            if u.hgetall(key):
                alive.add(key[len(layout.refs_prefix) :])
        n = 0
        for key in keys:
            if owners.get(key) in alive:
                continue
            u.drop_hash(key)
            u.list_op(key, "delete")
            u.set(key, None)
            n += 1
        return n


def delete_namespace(
    backend: StorageBackend,
    retry: RetryPolicy,
    prefix: str,
    chunk: int = CHUNK,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> int:
    """Delete namespace ``prefix`` beside its writers; return the number of keys deleted."""
    return NamespaceDeleter(backend, retry, prefix, chunk, progress).run()
