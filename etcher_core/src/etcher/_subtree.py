"""Reading a node's whole subtree in few calls (``capabilities.subtree_reads``).

:func:`walk` is the reference walk of :meth:`etcher.spec.SubtreeReads.read_subtree`
over the plain storage Protocol: breadth-first, one batched read per level, run
*inside* the backend (so an embedded store pays no per-level round trip through
core's unit of work). A backend whose reads of one thread all see one state
while it runs (SQLite inside a read transaction) can offer it as is; a server
runs the same walk as a script where the data is (see ``etcher_redis.subtree``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from etcher.spec import SubtreeChunk

LINK = b"@"


def linked(uid: str, content: dict[bytes, bytes] | list[bytes]) -> list[str]:
    """Uids linked from a node's content; malformed items and links are skipped.

    Skipped, not raised: whoever decodes the content reports them, with context.
    Everything inline: this runs once per node a walk reads.
    """
    out: list[str] = []
    if isinstance(content, dict):
        for raw in content.values():
            # Most items are scalars: one substring test rules them out. The first bar ends
            # the sequence number (digits only), so a "|@" inside a string is not a link.
            if b"|@" in raw:
                bar = raw.find(b"|")
                if bar > 0 and raw[bar + 1 : bar + 2] == LINK:
                    child = raw[bar + 2 :]
                    if len(child) >= 2 and child[:1] in _KINDS:
                        # try, not contextlib.suppress: a context manager per link costs more.
                        try:  # noqa: SIM105
                            out.append(child.decode())
                        except UnicodeDecodeError:
                            pass
    else:
        for raw in content:
            if raw[:1] == LINK and len(raw) >= 3 and raw[1:2] in _KINDS:
                try:  # noqa: SIM105 (as above)
                    out.append(raw[1:].decode())
                except UnicodeDecodeError:
                    pass
    return out


_KINDS = (b"D", b"L")


def walk(
    pipeline: Callable[[], Any],
    content_prefix: str,
    refs_prefix: str,
    roots: Sequence[str],
    limit: int,
) -> SubtreeChunk:
    """:meth:`~etcher.spec.SubtreeReads.read_subtree` through ``pipeline()`` batches.

    ``pipeline`` makes a non-transactional pipeline of the backend; the caller
    makes every read of the walk see one state (a read transaction around it).
    """
    limit = max(1, limit)
    contents: dict[str, dict[bytes, bytes] | list[bytes]] = {}
    absent: list[str] = []
    level = list(dict.fromkeys(roots))
    queued = set(level)
    while level and len(contents) < limit:
        room = limit - len(contents)
        if len(level) > room:
            batch, nxt = level[:room], level[room:]
        else:
            batch, nxt = level, []
        pipe = pipeline()
        for uid in batch:
            if uid[:1] == "D":
                pipe.hgetall(content_prefix + uid)
            else:
                pipe.lrange(content_prefix + uid, 0, -1)
        empty: list[str] = []
        for uid, got in zip(batch, pipe.execute(), strict=True):
            contents[uid] = got
            if not got:
                empty.append(uid)
                continue
            for child in linked(uid, got):
                if child not in queued:
                    queued.add(child)
                    nxt.append(child)
        if empty:
            pipe = pipeline()
            for uid in empty:
                pipe.exists(refs_prefix + uid)
            absent += [uid for uid, n in zip(empty, pipe.execute(), strict=True) if not n]
        level = nxt
    return contents, absent, level
