"""Server-side subtree reads on Redis (``capabilities.subtree_reads`` and ``unlink_reads``).

A document costs one round trip per :data:`etcher._materialize.SUBTREE_LIMIT`
nodes instead of one per level. The script walks breadth-first from the roots
it is given, reading each node's content key (``HGETALL`` for a dict,
``LRANGE`` for a list) and following the links in it, exactly as
:func:`etcher._subtree.walk` does; a script runs atomically, so each answer is
one state of the store. A walk that needs several calls is checked by the
caller's unit like any other read (each node read is re-read at its end). A
first root, a dict of more than :data:`WIDE` fields, is left to the caller's plain read
(see :meth:`etcher.spec.SubtreeReads.read_subtree`).

The keys the walk visits are found on the way, so the script cannot declare
them all in ``KEYS``. Only the first root's content key is declared, which is
what routes the call on Redis Cluster. Undeclared keys are accepted by a
single Redis server, and on a cluster they are too as long as they live in the
declared key's slot: every key of a namespace carries the namespace's
``{P}`` hash tag, so the whole walk stays in that one slot.

A second script, :data:`UNLINKED` (``capabilities.unlink_reads``), serves
deleting or replacing a dict item: it reads the item and, when it links a
node, what collecting that node reads (see
:meth:`etcher.spec.UnlinkReads.read_unlinked`), so a small document's
``del db[k]`` is this call and the checked commit. Its choice of nodes only
mirrors the collection in :mod:`etcher._graph`, which decides everything
itself from the answers (each a check of the commit) and reads whatever else
it needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis

from etcher.spec import SubtreeChunk, UnlinkChunk
from etcher_redis.client import READ_ONLY_SCRIPTS, ReadOnlyScript

LUA_HEAP_KB = 16_384
"""A walk call of several roots first collects Lua's garbage when the heap holds more than
this (KiB)."""

# Garbage a big script left (a 100k-node commit: ~80 MB) makes every string a later
# script creates cost more (Lua interns them all). A call given many roots continues a
# wide walk of many calls: one full collection first is cheaper than that tax on all of
# them. A one-root call is most often the whole walk (a long list, a small document),
# which would only pay here for garbage that later scripts collect anyway.
_COLLECT = (
    f'if #ARGV > 4 and collectgarbage("count") > {LUA_HEAP_KB} then collectgarbage("collect") end'
)


WIDE = 10_000
"""A walk's first root, a dict of more fields than this, is left out of its answer (the
caller reads it with one plain HGETALL, in C, with no Lua string per field)."""

WALK = """@COLLECT@
local WIDE = @WIDE@
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
local out, absent, wide = {}, {}, {}
local head, n = 1, 0
while head <= #queue and n < limit do
  local uid = queue[head]
  head = head + 1
  local key = cp .. uid
  local content
  local dict = string.byte(uid, 1) == 68
  -- A wide first dict is left to the caller's plain read (it comes back in the frontier):
  -- turning its fields into Lua strings costs more per field the more there are. Only the
  -- first root is measured: a length for every node would be one more lookup each. A long
  -- list stays here: read plainly, the client's decoding of it grew faster (x6-8 per x4).
  if head == 2 and dict and redis.call("HLEN", key) > WIDE then
    wide[1] = uid
  elseif dict then
    n = n + 1
    content = redis.call("HGETALL", key)
    for i = 2, #content, 2 do
      local raw = content[i]
      local bar = string.find(raw, "|", 1, true)
      if bar and bar > 1 then push(string.sub(raw, bar + 1)) end
    end
  else
    n = n + 1
    content = redis.call("LRANGE", key, 0, -1)
    for i = 1, #content do push(content[i]) end
  end
  if content then
    if #content == 0 and redis.call("EXISTS", rp .. uid) == 0 then absent[#absent + 1] = uid end
    out[#out + 1] = uid
    out[#out + 1] = content
  end
end
local frontier = wide
for i = head, #queue do frontier[#frontier + 1] = queue[i] end
return {out, absent, frontier}
""".replace("@WIDE@", str(WIDE)).replace("@COLLECT@", _COLLECT)


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


def _call(client: Any, sha: str, script: str, keys: list[str], args: list[Any]) -> Any:
    """One call of a read-only script on ``client``, by its SHA1, else (NOSCRIPT) by its text.

    Named :class:`~etcher_redis.client.ReadOnlyScript`: a reply lost with its
    connection is read again under redis-py's retry policy instead of being
    reported as a write of unknown outcome.
    """
    try:
        return client.execute_command(_EVALSHA, sha, len(keys), *keys, *args)
    except Exception as exc:
        if not _no_script(exc):
            raise
        # Not in this server's script cache yet (or flushed): EVAL runs it and caches it.
        return client.execute_command(_EVAL, script, len(keys), *keys, *args)


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def decode_contents(flat: list[Any]) -> dict[str, dict[bytes, bytes] | list[bytes]]:
    """``[uid, content, ...]`` as a script returns it: a dict node's content as a flat
    field/value list, a list node's as its items."""
    contents: dict[str, dict[bytes, bytes] | list[bytes]] = {}
    for i in range(0, len(flat), 2):
        uid = flat[i].decode(errors="replace")
        raw = flat[i + 1]
        contents[uid] = _pairs(raw) if uid[:1] == "D" else raw
    return contents


def walk(
    client: Any, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
) -> SubtreeChunk:
    """One call of the walk script on ``client`` (an :class:`~etcher_redis.client.EtcherRedis`).

    See :meth:`etcher.spec.SubtreeReads.read_subtree`. The script only reads
    (see :func:`_call`).
    """
    roots = list(roots)
    keys = [content_prefix + roots[0]] if roots else []
    args = [content_prefix, refs_prefix, limit, *roots]
    flat, absent, frontier = _call(client, WALK_SHA, WALK, keys, args)
    return (
        decode_contents(flat),
        [x.decode(errors="replace") for x in absent],
        [x.decode(errors="replace") for x in frontier],
    )


LONG_LIST = 10_000
"""The unlinking read returns no list longer than this: the client reads it (one LRANGE)."""

UNLINKED = """
local LONG_LIST = @LONG_LIST@
local cp, rp, parent, field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit = tonumber(ARGV[5])
local n_alive = tonumber(ARGV[6])
local alive = {}
for i = 7, 6 + n_alive do alive[ARGV[i]] = true end
local pheader = redis.call("HGETALL", rp .. parent)
local item = redis.call("HGET", KEYS[1], field)
-- a link is "@" and a uid of at least two characters starting with D or L
local function target(raw)
  if #raw >= 3 and string.byte(raw, 1) == 64 then
    local k = string.byte(raw, 2)
    if k == 68 or k == 76 then return string.sub(raw, 2) end
  end
  return nil
end
local start = nil
if item then
  local bar = string.find(item, "|", 1, true)
  if bar and bar > 1 then start = target(string.sub(item, bar + 1)) end
end
local out_h, out_c = {}, {}
local headers, reads, dead = {}, 0, {}
local function header(u)
  local h = headers[u]
  if h == nil then
    if reads >= limit then return nil end
    reads = reads + 1
    h = redis.call("HGETALL", rp .. u)
    headers[u] = h
    out_h[#out_h + 1] = u
    out_h[#out_h + 1] = h
  end
  return h
end
-- the headers the caller also needs (the nodes its new value links), first
for i = 7 + n_alive, #ARGV do header(ARGV[i]) end
if not start then return {pheader, item, out_h, out_c} end
local seen = {[start] = true}
-- dead: no parent left but dead ones (the start: only parent's one link), not pinned,
-- not pending, not known alive
local function is_dead(u, h)
  if #h == 0 or alive[u] then return false end
  for i = 1, #h, 2 do
    local f = h[i]
    if string.byte(f, 1) == 35 then
      if f == "#p" or f == "#d" then return false end
    elseif u == start and f == parent then
      if h[i + 1] ~= "1" then return false end
    elseif not dead[f] then
      return false
    end
  end
  return true
end
local pending, waiting = {start}, {}
local function expand(u)
  if reads >= limit then return end
  reads = reads + 1
  local content
  if string.byte(u, 1) == 68 then
    content = redis.call("HGETALL", cp .. u)
    for i = 2, #content, 2 do
      local raw = content[i]
      local bar = string.find(raw, "|", 1, true)
      if bar and bar > 1 then
        local c = target(string.sub(raw, bar + 1))
        if c and not seen[c] then seen[c] = true; pending[#pending + 1] = c end
      end
    end
  else
    -- A long list is left to the client's own read: scanning its items here costs more
    -- per item the longer it is (each becomes a Lua string), a plain LRANGE does not.
    if redis.call("LLEN", cp .. u) > LONG_LIST then return end
    content = redis.call("LRANGE", cp .. u, 0, -1)
    for i = 1, #content do
      local c = target(content[i])
      if c and not seen[c] then seen[c] = true; pending[#pending + 1] = c end
    end
  end
  out_c[#out_c + 1] = u
  out_c[#out_c + 1] = content
end
-- Level by level: the new nodes' headers, then every node not found dead yet is looked
-- at again (a parent of it may have died since).
local changed = true
while (#pending > 0 or changed) and reads < limit do
  local batch = pending
  pending = {}
  for _, u in ipairs(batch) do
    if header(u) then waiting[#waiting + 1] = u end
  end
  changed = false
  local left = {}
  for _, u in ipairs(waiting) do
    if is_dead(u, headers[u]) then
      dead[u] = true
      changed = true
      expand(u)
    else
      left[#left + 1] = u
    end
  end
  waiting = left
end
-- The survivors: one chain of first live parents each, as far as a node known alive.
for _, s in ipairs(waiting) do
  local path, x = {[s] = true}, s
  for _ = 1, 12 do
    if alive[x] then break end
    local h = header(x)
    if not h or #h == 0 then break end
    local up, stop = nil, false
    for i = 1, #h, 2 do
      local f = h[i]
      if f == "#p" then stop = true; break end
      -- the start's link from parent is the one going away (when it was its only one)
      if string.byte(f, 1) ~= 35 and not (x == start and f == parent and h[i + 1] == "1") then
        if alive[f] then stop = true; break end
        if up == nil and not dead[f] and not path[f] then up = f end
      end
    end
    if stop then
      for p in pairs(path) do alive[p] = true end
      break
    end
    if up == nil then break end
    path[up] = true
    x = up
  end
end
return {pheader, item, out_h, out_c}
""".replace("@LONG_LIST@", str(LONG_LIST))

UNLINKED_SHA = hashlib.sha1(UNLINKED.encode()).hexdigest()
READ_ONLY_SCRIPTS.update((UNLINKED_SHA, UNLINKED))


def read_unlinked(
    client: Any,
    content_prefix: str,
    refs_prefix: str,
    parent: str,
    field: bytes,
    alive: Sequence[str],
    limit: int,
    also: Sequence[str] = (),
) -> UnlinkChunk:
    """One call of the unlinking read on ``client`` (:meth:`etcher.spec.UnlinkReads.read_unlinked`).

    Like :func:`walk`, the script only reads (a lost reply is read again) and
    names one key, the item's hash, which routes it on a cluster; the nodes it
    visits share that key's hash tag.
    """
    keys = [content_prefix + parent]
    args = [content_prefix, refs_prefix, parent, field, max(1, limit), len(alive), *alive, *also]
    flat_header, item, flat_headers, flat_contents = _call(
        client, UNLINKED_SHA, UNLINKED, keys, args
    )
    headers = {
        flat_headers[i].decode(errors="replace"): _pairs(flat_headers[i + 1])
        for i in range(0, len(flat_headers), 2)
    }
    return _pairs(flat_header), item, headers, decode_contents(flat_contents)


class SubtreeMixin:
    """``read_subtree`` for a redis-py client (:meth:`etcher.spec.SubtreeReads.read_subtree`)."""

    def read_subtree(
        self, content_prefix: str, refs_prefix: str, roots: Sequence[str], limit: int
    ) -> SubtreeChunk:
        """See :meth:`etcher.spec.SubtreeReads.read_subtree`."""
        return walk(self, content_prefix, refs_prefix, roots, limit)

    def read_unlinked(
        self,
        content_prefix: str,
        refs_prefix: str,
        parent: str,
        field: bytes,
        alive: Sequence[str],
        limit: int,
        also: Sequence[str] = (),
    ) -> UnlinkChunk:
        """See :meth:`etcher.spec.UnlinkReads.read_unlinked`."""
        return read_unlinked(self, content_prefix, refs_prefix, parent, field, alive, limit, also)
