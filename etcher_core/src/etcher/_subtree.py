"""Reading a node's whole subtree in few calls (``capabilities.subtree_reads``).

:func:`walk` is the reference walk of :meth:`etcher.spec.SubtreeReads.read_subtree`
over the plain storage Protocol: breadth-first, one batched read per level, run
*inside* the backend (so an embedded store pays no per-level round trip through
core's unit of work). A backend whose reads of one thread all see one state
while it runs (SQLite inside a read transaction) can offer it as is; a server
runs the same walk as a script where the data is (see ``etcher_redis.subtree``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from etcher.spec import SubtreeChunk

LINK = b"@"


def linked(uid: str, content: dict[bytes, bytes] | list[bytes]) -> list[str]:
    """Uids linked from a node's content; malformed items and links are skipped.

    Skipped, not raised: whoever decodes the content reports them, with context.
    """
    out: list[str] = []
    if isinstance(content, dict):
        for raw in content.values():
            # Most items are scalars: one substring test rules them out.
            if b"|@" in raw:
                bar = raw.find(b"|")
                if bar > 0 and raw[bar + 1 : bar + 2] == LINK:
                    _add(out, raw[bar + 2 :])
    else:
        for raw in content:
            if raw.startswith(LINK):
                _add(out, raw[1:])
    return out


def _add(out: list[str], child: bytes) -> None:
    if len(child) >= 2 and child[:1] in (b"D", b"L"):
        with contextlib.suppress(UnicodeDecodeError):
            out.append(child.decode())


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
        batch, rest = level[: limit - len(contents)], level[limit - len(contents) :]
        pipe = pipeline()
        for uid in batch:
            if uid[:1] == "D":
                pipe.hgetall(content_prefix + uid)
            else:
                pipe.lrange(content_prefix + uid, 0, -1)
        results = pipe.execute()
        empty = [uid for uid, got in zip(batch, results, strict=True) if not got]
        if empty:
            pipe = pipeline()
            for uid in empty:
                pipe.exists(refs_prefix + uid)
            absent += [uid for uid, n in zip(empty, pipe.execute(), strict=True) if not n]
        nxt = rest
        for uid, got in zip(batch, results, strict=True):
            contents[uid] = got
            for child in linked(uid, got):
                if child not in queued:
                    queued.add(child)
                    nxt.append(child)
        level = nxt
    return contents, absent, level
