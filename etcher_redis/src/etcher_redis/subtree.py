"""Server-side subtree reads on Redis (``capabilities.subtree_reads``): one Lua script.

A document costs one round trip per :data:`etcher._materialize.SUBTREE_LIMIT`
nodes instead of one per level. The script walks breadth-first from the roots
it is given, reading each node's content key (``HGETALL`` for a dict,
``LRANGE`` for a list) and following the links in it, exactly as
:func:`etcher._subtree.walk` does; a script runs atomically, so each answer is
one state of the store. A walk that needs several calls is checked by the
caller's unit like any other read (each node read is re-read at its end).

The keys the walk visits are found on the way, so the script cannot declare
them all in ``KEYS``. Only the first root's content key is declared, which is
what routes the call on Redis Cluster. Undeclared keys are accepted by a
single Redis server, and on a cluster they are too as long as they live in the
declared key's slot: every key of a namespace carries the namespace's
``{P}`` hash tag, so the whole walk stays in that one slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis

from etcher.spec import SubtreeChunk
from etcher_redis.client import READ_ONLY_SCRIPTS, ReadOnlyScript

WALK = """
local cp, rp = ARGV[1], ARGV[2]
local limit = tonumber(ARGV[3])
if limit < 1 then limit = 1 end
local queue, queued = {}, {}
for i = 4, #ARGV do
  local u = ARGV[i]
  if not queued[u] then queued[u] = true; queue[#queue + 1] = u end
end
local function push(raw)
  -- a link is "@" and a uid of at least two characters starting with D or L
  if string.byte(raw, 1) == 64 and #raw >= 3 then
    local k = string.byte(raw, 2)
    if k == 68 or k == 76 then
      local child = string.sub(raw, 2)
      if not queued[child] then queued[child] = true; queue[#queue + 1] = child end
    end
  end
end
local out, absent = {}, {}
local head, n = 1, 0
while head <= #queue and n < limit do
  local uid = queue[head]
  head = head + 1
  n = n + 1
  local key = cp .. uid
  local content
  if string.byte(uid, 1) == 68 then
    content = redis.call("HGETALL", key)
    for i = 2, #content, 2 do
      local raw = content[i]
      local bar = string.find(raw, "|", 1, true)
      if bar and bar > 1 then push(string.sub(raw, bar + 1)) end
    end
  else
    content = redis.call("LRANGE", key, 0, -1)
    for i = 1, #content do push(content[i]) end
  end
  if #content == 0 and redis.call("EXISTS", rp .. uid) == 0 then absent[#absent + 1] = uid end
  out[#out + 1] = uid
  out[#out + 1] = content
end
local frontier = {}
for i = head, #queue do frontier[#frontier + 1] = queue[i] end
return {out, absent, frontier}
"""


WALK_SHA = hashlib.sha1(WALK.encode()).hexdigest()
READ_ONLY_SCRIPTS.update((WALK_SHA, WALK))
_EVALSHA, _EVAL = ReadOnlyScript("EVALSHA"), ReadOnlyScript("EVAL")


def _no_script(exc: BaseException) -> bool:
    """Whether ``exc`` (possibly translated to etcher's errors) is Redis's NOSCRIPT reply."""
    while exc is not None:
        if isinstance(exc, redis.exceptions.NoScriptError):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def walk(
    client: Any, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
) -> SubtreeChunk:
    """One call of the walk script on ``client`` (an :class:`~etcher_redis.client.EtcherRedis`).

    See :meth:`etcher.spec.SubtreeReads.read_subtree`. The script only reads,
    so the call is named :class:`~etcher_redis.client.ReadOnlyScript`: a reply
    lost with its connection is read again under redis-py's retry policy
    instead of being reported as a write of unknown outcome.
    """
    roots = list(roots)
    keys = [content_prefix + roots[0]] if roots else []
    args = [content_prefix, refs_prefix, limit, *roots]
    try:
        reply = client.execute_command(_EVALSHA, WALK_SHA, len(keys), *keys, *args)
    except Exception as exc:
        if not _no_script(exc):
            raise
        # Not in this server's script cache yet (or flushed): EVAL runs it and caches it.
        reply = client.execute_command(_EVAL, WALK, len(keys), *keys, *args)
    flat, absent, frontier = reply
    contents: dict[str, dict[bytes, bytes] | list[bytes]] = {}
    for i in range(0, len(flat), 2):
        uid = flat[i].decode(errors="replace")
        raw = flat[i + 1]
        if uid[:1] == "D":
            contents[uid] = dict(zip(raw[::2], raw[1::2], strict=True))
        else:
            contents[uid] = raw
    return (
        contents,
        [x.decode(errors="replace") for x in absent],
        [x.decode(errors="replace") for x in frontier],
    )


class SubtreeMixin:
    """``read_subtree`` for a redis-py client (:meth:`etcher.spec.SubtreeReads.read_subtree`)."""

    def read_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """See :meth:`etcher.spec.SubtreeReads.read_subtree`."""
        return walk(self, content_prefix, refs_prefix, roots, limit)
