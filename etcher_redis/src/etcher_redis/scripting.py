"""Checked commits on Redis: one ``EVALSHA`` checks a unit's reads and applies its writes.

A unit of work that reads with ``WATCH`` pays a round trip per ``WATCH``, and
Redis up to 7.0 compares each newly watched key with every key the connection
already watches, which makes a big unit quadratic. Here the unit reads
without watching and commits with one Lua script that re-runs every read it
made, compares the answers with what the unit saw, and only then applies the
writes (see :class:`etcher.spec.CheckedCommits` for the contract).

The script is sent by its SHA1 (``EVALSHA``); a server that does not know it
(a restart, ``SCRIPT FLUSH``, another server behind the same address) answers
``NOSCRIPT`` without running anything, and the call is repeated once with the
script's text (``EVAL``), which also caches it again.

Layout of the arguments (``KEYS`` holds every key the commit names, each once,
so Redis Cluster can route it and check that they share one slot)::

    ARGV = [number of checks, check..., number of writes, write...]
    check = op, key index, op's arguments..., the expected answer
        get/hget/lindex: [field or index], "1" value | "0" ""  (nil)
        hlen/llen/exists: count;  hexists: field, "1" | "0"
        hgetall: n, field, value, ... (n pairs);  lrange: start, end, n, item...
        lslices: n, slice size, number of slices, joined slice... (a whole list)
        unlinked_item: field, counter key index, counter field
    write = op, n, key, n arguments of the Redis command after its key
        hset_item: n = 4: field, value, counter key, counter field
        hincr: n = 2: field, count to add (a back-reference linked unread)

A write names its key itself, not by index (also in ``KEYS``): the script then
decodes no index per write, and a write's arguments go into ``ARGV`` as they
come, key first, without a copy.

All checks run before any write; then every write is validated against the
key types (and list lengths) it will meet, so a write that Redis would refuse
is reported before anything is applied: a script is not rolled back when a
command inside it fails. A commit of one write (an append, one field) skips
that dry run: when Redis refuses its only command, nothing was applied.

:data:`UNLINK_SCRIPT` (``capabilities.unlink_commits``) is the same script with the
plan of :meth:`etcher.spec.UnlinkCommits.unlinking_commit` first in ``ARGV``: after the
checks it walks the subtree the item links and refuses (``-1``) unless it is a small
tree whose only links from outside go to nodes it proves alive (kept), which it
collects after the writes (see :func:`unlinking_commit`); what no chain of parents
proves (a cycle) it decides by the exact upward search ``Graph.collect`` makes, within
the same bounds. With a plan's ``position``
the item is a list's, which the script also removes. With its ``present`` (a delete),
a missing item (a position outside the list) answers ``2`` with nothing written.

The commonest commit, an append through a handle, checks only that its node
is live (its header exists and lacks the dead field) and writes one command.
It goes in a short layout the script tells apart by its first argument
(a count is never ``g``), and which it runs without interpreting the long one::

    KEYS = [header, key];  ARGV = ["g", dead field, write op, its arguments...]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import chain
from typing import Any

import redis.exceptions

from etcher.errors import ResponseError
from etcher.spec import UnlinkOutcome, UnlinkPlan
from etcher_redis.subtree import decode_contents

# Lua's unpack() pushes every argument on a C stack limited to about 8,000
# values: long writes are split into commands of at most this many arguments.
CHUNK = 1000

_TEMPLATE = r"""
if ARGV[1] == 'g' then
  -- The short layout: one write guarded by its node's liveness (an append).
  if redis.pcall('EXISTS', KEYS[1]) ~= 1 or redis.pcall('HEXISTS', KEYS[1], ARGV[2]) ~= 0 then
    return 0
  end
  redis.call(ARGV[3], KEYS[2], unpack(ARGV, 4))
  return 1
end

local pos = 1
local function take()
  local v = ARGV[pos]
  pos = pos + 1
  return v
end
local function read(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then return nil, true end
  return r, false
end
local function same(r, flag, want)
  if flag == '0' then return r == false end
  return r == want
end

--@PLAN
local checks = tonumber(take())
-- The highest key index a check names: keys after it are named by writes alone.
local named = 0
for _ = 1, checks do
  local op = take()
  local at = tonumber(take())
  if at > named then named = at end
  local key = KEYS[at]
  local ok = false
  if op == 'get' then
    local r, e = read('GET', key)
    local flag, want = take(), take()
    ok = not e and same(r, flag, want)
  elseif op == 'hget' or op == 'lindex' then
    local arg = take()
    local r, e = read(op == 'hget' and 'HGET' or 'LINDEX', key, arg)
    local flag, want = take(), take()
    ok = not e and same(r, flag, want)
  elseif op == 'hlen' or op == 'llen' or op == 'exists' then
    local r, e = read(string.upper(op), key)
    ok = not e and r == tonumber(take())
  elseif op == 'hexists' then
    local r, e = read('HEXISTS', key, take())
    ok = not e and r == tonumber(take())
  elseif op == 'hgetall' then
    local n = tonumber(take())
    local r, e = read('HLEN', key)
    ok = not e and r == n
    if ok then
      -- HLEN succeeded, so the key is a hash (or missing, and then n is 0).
      for _ = 1, n do
        local field, want = take(), take()
        if redis.call('HGET', key, field) ~= want then
          ok = false
          break
        end
      end
    end
  elseif op == 'lrange' then
    local s, e2, n = take(), take(), tonumber(take())
    local r, e = read('LRANGE', key, s, e2)
    ok = not e and #r == n
    if ok then
      for j = 1, n do
        if r[j] ~= ARGV[pos + j - 1] then
          ok = false
          break
        end
      end
    end
    pos = pos + n
  elseif op == 'lslices' then
    -- A long list read whole, compared slice by slice: each slice's items joined by a
    -- byte no item holds (the client checked), so equal joins of equally many items
    -- mean equal items. The items never all sit in Lua at once, nor in ARGV.
    local n, size, slices = tonumber(take()), tonumber(take()), tonumber(take())
    local r, e = read('LLEN', key)
    ok = not e and r == n
    for j = 0, slices - 1 do
      if not ok then break end
      local part = redis.call('LRANGE', key, j * size, j * size + size - 1)
      ok = table.concat(part, '\255') == ARGV[pos + j]
      -- Each slice's items are garbage at once: collecting as we go keeps Lua's heap small.
      collectgarbage('step', 0)
    end
    pos = pos + slices
  elseif op == 'unlinked_item' then
    -- A stored dict item (seq|value) that links nothing, or none and a sound counter.
    local field, at2, sfield = take(), tonumber(take()), take()
    if at2 > named then named = at2 end
    local skey = KEYS[at2]
    local r, e = read('HGET', key, field)
    if not e then
      if r then
        local c = string.match(r, '^%d+|(.)')
        ok = c ~= nil and c ~= '@'
      else
        local s, e2 = read('HGET', skey, sfield)
        ok = not e2 and (s == false or string.match(s, '^%d+$') ~= nil)
      end
    end
  else
    return redis.error_reply('ERR etcher checked commit: unknown check ' .. tostring(op))
  end
  if not ok then return 0 end
end

local writes = tonumber(take())
local first = pos
--@VERIFY
-- Each write's size as the dry run decoded it, for the writes (tonumber is not free).
local sizes = {}
-- The dry run: every write checked against the key types and list lengths it will
-- meet, so Redis refuses none half way (a script is not rolled back). A lone write
-- needs none: if Redis refuses it, nothing was applied.
if writes > 1 then
  local kinds, lens = {}, {}
  -- Keys only writes name are mostly new nodes: one EXISTS per thousand (unpack's
  -- limit) that finds none of them saves a TYPE call each.
  for s = named + 1, #KEYS, 1000 do
    local e = math.min(s + 999, #KEYS)
    if redis.call('EXISTS', unpack(KEYS, s, e)) == 0 then
      for i = s, e do kinds[KEYS[i]] = 'none' end
    end
  end
  local function kind(key)
    local t = kinds[key]
    if t == nil then
      t = redis.call('TYPE', key)['ok']
      kinds[key] = t
    end
    return t
  end
  local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'
  for w = 1, writes do
    -- take(), inline: once per write of a big unit
    local op, n, key = ARGV[pos], tonumber(ARGV[pos + 1]), ARGV[pos + 2]
    sizes[w] = n
    pos = pos + 3
    local a = pos
    pos = pos + n
    if op == 'delete' then
      kinds[key], lens[key] = 'none', 0
    elseif op == 'set' then
      if n ~= 1 then return redis.error_reply('ERR etcher checked commit: set takes a value') end
      kinds[key], lens[key] = 'string', nil
    elseif op == 'hset' or op == 'hdel' then
      local t = kinds[key] or kind(key)
      if t ~= 'hash' and t ~= 'none' then return redis.error_reply(WRONGTYPE) end
      if n == 0 or (op == 'hset' and n % 2 ~= 0) then
        return redis.error_reply('ERR etcher checked commit: wrong number of arguments for ' .. op)
      end
      if op == 'hset' then kinds[key] = 'hash' end
    elseif op == 'hset_item' then
      if n ~= 4 then
        return redis.error_reply('ERR etcher checked commit: wrong number of arguments for ' .. op)
      end
      for _, k in ipairs({key, ARGV[a + 2]}) do
        local t = kind(k)
        if t ~= 'hash' and t ~= 'none' then return redis.error_reply(WRONGTYPE) end
        kinds[k] = 'hash'
      end
    elseif op == 'hincr' then
      if n ~= 2 or not string.match(ARGV[a + 1], '^%d+$') then
        return redis.error_reply('ERR etcher checked commit: hincr takes a field and a count')
      end
      local t = kinds[key] or kind(key)
      if t ~= 'hash' and t ~= 'none' then return redis.error_reply(WRONGTYPE) end
      -- A stored field holding no count fails as a check would (nothing applied yet).
      local v = t == 'hash' and redis.call('HGET', key, ARGV[a])
      if v and not string.match(v, '^%d+$') then return 0 end
      kinds[key] = 'hash'
    elseif
      op == 'rpush' or op == 'lpush' or op == 'lpop' or op == 'rpop' or op == 'lset'
      or op == 'ltrim'
    then
      local t = kinds[key] or kind(key)
      if t ~= 'list' and t ~= 'none' then return redis.error_reply(WRONGTYPE) end
      local len = lens[key]
      if len == nil then
        if t == 'list' then len = redis.call('LLEN', key) else len = 0 end
      end
      if op == 'rpush' or op == 'lpush' then
        if n == 0 then
          return redis.error_reply('ERR etcher checked commit: nothing to push')
        end
        len = len + n
      elseif op == 'lpop' or op == 'rpop' then
        local count = 1
        if n > 0 then count = tonumber(ARGV[a]) end
        len = math.max(len - count, 0)
      elseif op == 'lset' then
        if len == 0 then return redis.error_reply('ERR no such key') end
        local i = tonumber(ARGV[a])
        if i < 0 then i = i + len end
        if i < 0 or i >= len then return redis.error_reply('ERR index out of range') end
      else  -- ltrim
        local s, e = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
        if s < 0 then s = s + len end
        if e < 0 then e = e + len end
        if s < 0 then s = 0 end
        if e >= len then e = len - 1 end
        if s > e or s >= len then len = 0 else len = e - s + 1 end
      end
      lens[key] = len
      if len == 0 then kinds[key] = 'none' else kinds[key] = 'list' end
    else
      return redis.error_reply('ERR etcher checked commit: unknown write ' .. tostring(op))
    end
  end
end

pos = first
for w = 1, writes do
  local op, n, key = ARGV[pos], sizes[w] or tonumber(ARGV[pos + 1]), ARGV[pos + 2]
  pos = pos + 3
  if op == 'delete' then
    redis.call('DEL', key)
  elseif op == 'hset_item' then
    -- The item keeps its insertion number, or a new one comes from the node's counter.
    local field, value = ARGV[pos], ARGV[pos + 1]
    local skey, sfield = ARGV[pos + 2], ARGV[pos + 3]
    local old = redis.call('HGET', key, field)
    local seq = old and string.match(old, '^(%d+)|')
    if not seq then
      local count = tonumber(redis.call('HGET', skey, sfield) or '0') or 0
      seq = string.format('%d', count)
      redis.call('HSET', skey, sfield, string.format('%d', count + 1))
    end
    redis.call('HSET', key, field, seq .. '|' .. value)
  elseif op == 'hincr' then
    -- (a lone write had no dry run: a field holding no count fails it, nothing applied)
    local r = redis.pcall('HINCRBY', key, ARGV[pos], ARGV[pos + 1])
    if type(r) == 'table' and r.err then
      if writes == 1 then return 0 end
      return redis.error_reply(r.err)
    end
  else
    redis.call(op, key, unpack(ARGV, pos, pos + n - 1))
  end
  pos = pos + n
end
--@APPLY
return 1
"""

# The unlinking commit (capabilities.unlink_commits): the same script with the plan read
# first, the subtree checked after the checks, and collected after the writes.
_PLAN = r"""
-- (ARGV by position, not take(): every scalar assignment that may meet a link reads these)
local U_cp, U_rp, U_pk, U_parent, U_field = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local U_stamp = ARGV[6]
if ARGV[7] == '0' then U_stamp = nil end
local U_limit, U_budget = tonumber(ARGV[8]), tonumber(ARGV[9])
local U_want = ARGV[10] == '1'
-- A list's item at this position (negative from the end) instead of a dict's field.
local U_index = ARGV[11]
if U_index == '' then U_index = nil else U_index = tonumber(U_index) end
-- The item must be there (a delete): none answers 2, nothing written.
local U_present = ARGV[12] == '1'
local U_alive = {}
pos = 14 + tonumber(ARGV[13])
for i = 14, pos - 1 do U_alive[ARGV[i]] = true end
"""

# Refusing is -1: nothing was written (the client then reads and collects itself).
_VERIFY = r"""
-- Made only when the item links a node (most assignments meet a scalar or nothing):
-- the dying nodes' keys, the contents a pop answers;
local U_tree, U_contents
-- what dies (in order, and as a set), and the nodes reached that survive (kept);
local U_dead, U_gone, U_keep
-- each node that lost back-references: {field, count as read, ...} (Graph._sweep and
-- remove_ref delete them; the item's own link counts 1);
local U_cut
-- kept nodes alive without a chain of parents: pinned, or still linked by the parent.
local U_held
local U_start, U_item = nil, false
-- With U_index: the list's length and the item's position in it, as stored now.
local U_n, U_i = nil, nil
-- KEYS[1] is the item's hash (or list), which is read here as a check reads (not a new key)
if named < 1 then named = 1 end
do
  -- "@", then D or L and letters or digits: a uid this script may name keys with.
  local function target(v)
    if string.byte(v, 1) ~= 64 then return false end
    if string.match(v, '^@[DL]%w+$') then return string.sub(v, 2) end
    return nil
  end
  local item
  if U_index then
    local n = redis.pcall('LLEN', KEYS[1])
    if type(n) ~= 'number' then return -1 end
    local i = U_index
    if i < 0 then i = i + n end
    if i < 0 or i >= n then return U_present and 2 or -1 end
    -- The removal moves the shorter side: a long one refuses (the client moves it).
    if math.min(i, n - 1 - i) > math.min(U_budget, 4000) then return -1 end
    U_n, U_i = n, i
    item = redis.call('LINDEX', KEYS[1], i)
  else
    item = redis.pcall('HGET', U_cp .. U_parent, U_field)
    if type(item) == 'table' then return -1 end
    if not item and U_present then return 2 end
  end
  U_item = item
  if item then
    local value
    if U_index then
      if #item > 0 then value = item end
    else
      value = string.match(item, '^%d+|(.+)$')
    end
    if not value then return -1 end
    U_start = target(value)
    if U_start == nil then return -1 end
    if U_start == false then U_start = nil end
  end
  if U_i then
    -- the unit's own writes must not move the item this commit removes
    local p = pos
    for _ = 1, writes do
      local n, key = tonumber(ARGV[p + 1]), ARGV[p + 2]
      if key == KEYS[1] then return -1 end
      p = p + 3 + n
    end
  end
  if U_start then
    U_tree, U_contents, U_dead, U_gone, U_keep = {}, {}, {}, {}, {}
    U_cut, U_held = {}, {}
    if U_stamp then
      local t = redis.call('TYPE', U_pk)['ok']
      if t ~= 'hash' and t ~= 'none' then return -1 end
    end
    -- Level by level, as Graph._sweep collects: the top node loses the item's link; a
    -- node all of whose back-references come from nodes that died at the level before
    -- dies too; any other node loses those back-references and survives, unless a
    -- later level takes its last ones (a node reached at two depths). What survives
    -- is kept, and proven alive below.
    local nodes, items = 0, 0
    local heads = {}
    -- A node's content (counted against the budget) and the uids its items link; nil
    -- refuses: over the budget, not a hash or list, an item that is no value or link.
    -- The size first: a node over the budget (a long list, say) is refused before its
    -- content becomes Lua strings, which costs more per item the longer it is.
    local function read_content(ck, dict)
      local size = redis.pcall(dict and 'HLEN' or 'LLEN', ck)
      if type(size) ~= 'number' or items + (dict and 2 * size or size) > U_budget then
        return nil
      end
      local content
      if dict then
        content = redis.pcall('HGETALL', ck)
      else
        content = redis.pcall('LRANGE', ck, 0, -1)
      end
      if content.err then return nil end
      items = items + #content
      if items > U_budget then return nil end
      local links = {}
      local step, first = 1, 1
      if dict then step, first = 2, 2 end
      for i = first, #content, step do
        local v = content[i]
        if dict then
          v = string.match(v, '^%d+|(.+)$')
          if not v then return nil end
        elseif #v == 0 then
          return nil
        end
        local c = target(v)
        if c == nil then return nil end
        if c then links[#links + 1] = c end
      end
      return content, links
    end
    -- A node's header, read once and checked (nil refuses): its back-references (uid ->
    -- count, less those cut), how many, and whether it is pinned.
    local function header(u)
      local got = heads[u]
      if got then return got end
      nodes = nodes + 1
      if nodes > U_limit or U_alive[u] then return nil end
      local h = redis.pcall('HGETALL', U_rp .. u)
      if h.err or #h == 0 then return nil end
      local fields, n, kind, pinned = {}, 0, nil, false
      for i = 1, #h, 2 do
        local f, v = h[i], h[i + 1]
        if f == '#k' then
          kind = v
        elseif f == '#p' then
          pinned = true
        elseif f ~= '#s' then
          -- any other bookkeeping field (#d pending) refuses, and so does damage
          if string.byte(f, 1) == 35 or not string.match(v, '^%d+$')
            or not string.match(f, '^[DL]%w+$') then
            return nil
          end
          fields[f] = tonumber(v)
          n = n + 1
        end
      end
      if kind ~= (string.byte(u, 1) == 68 and 'd' or 'l') then return nil end
      got = {fields = fields, n = n, pinned = pinned}
      heads[u] = got
      return got
    end
    local suspect = {}
    -- Node u survives (for now) the loss of these back-references (field, count as read).
    local function survives(u, cut)
      U_cut[u] = cut
      if not suspect[u] then
        suspect[u] = true
        U_keep[#U_keep + 1] = u
      end
    end
    local top = header(U_start)
    if not top or not top.fields[U_parent] then return -1 end
    local level = {}
    if top.fields[U_parent] > 1 then
      -- The parent links it again elsewhere: only the item's link goes, and the parent
      -- (alive) still links it: kept, its count down by one (as remove_ref).
      U_held[U_start] = true
      survives(U_start, {U_parent, 1})
    else
      top.fields[U_parent] = nil
      top.n = top.n - 1
      if top.pinned or top.n > 0 then
        survives(U_start, {U_parent, 1})
        -- Pinned: it survives, as a collection keeps a pinned node (kept, no proof).
        if top.pinned then U_held[U_start] = true end
      else
        U_cut[U_start] = {U_parent, 1}
        level[1] = U_start
        U_gone[U_start] = true
      end
    end
    -- Nodes die level by level from ``level`` (false refuses).
    local function sweep(level)
    while #level > 0 do
      -- Each node of the level dies: its content, then what it links.
      local lost, order = {}, {}
      for _, u in ipairs(level) do
        local rk, ck = U_rp .. u, U_cp .. u
        local content, links = read_content(ck, string.byte(u, 1) == 68)
        if not content then return false end
        for _, c in ipairs(links) do
          if not U_gone[c] then
            local per = lost[c]
            if per == nil then
              per = {}
              lost[c] = per
              order[#order + 1] = c
            end
            per[u] = true
          end
        end
        U_tree[rk], U_tree[ck] = true, true
        U_dead[#U_dead + 1] = u
        if U_want then
          U_contents[#U_contents + 1] = u
          U_contents[#U_contents + 1] = content
        end
      end
      local nxt = {}
      for _, c in ipairs(order) do
        local h = header(c)
        if not h then return false end
        -- every parent that dies must be listed (a header without it is damage)
        local parents = 0
        for p in pairs(lost[c]) do
          if not h.fields[p] then return false end
          parents = parents + 1
        end
        if h.n == parents and not h.pinned then
          -- It dies with its header as it is (the links cut at a shallower level gone).
          U_gone[c] = true
          nxt[#nxt + 1] = c
        else
          local cut = U_cut[c] or {}
          for p in pairs(lost[c]) do
            cut[#cut + 1] = p
            cut[#cut + 1] = h.fields[p]
            h.fields[p] = nil
          end
          h.n = h.n - parents
          survives(c, cut)
          if h.pinned then U_held[c] = true end
        end
      end
      level = nxt
    end
    return true
    end
    if not sweep(level) then return -1 end
    -- A node kept (another parent links it) must be reachable without what dies: one
    -- chain of parents up to a node known alive (the root, the parent) or pinned, off the
    -- tree, within bounds. Pending nodes, a missing header refuse (nil); a dead end or a
    -- cycle leaves it open (false) for the exact search below.
    local looked = 0
    local U_proven = {}
    local function chain(s)
      local cur, path, proven = s, {[s] = true}, U_held[s] == true
      for _ = 1, proven and 0 or 8 do
        local h = redis.pcall('HGETALL', U_rp .. cur)
        if h.err or #h == 0 then return nil end
        looked = looked + #h
        if looked > U_budget then return nil end
        local up = nil
        for i = 1, #h, 2 do
          local f = h[i]
          if f == '#d' then return nil end
          if f == '#p' then
            proven = proven or cur ~= s
          elseif
            string.byte(f, 1) ~= 35 and not U_gone[f] and not path[f]
            -- the kept top node's link from the parent is the item being removed
            and not (cur == U_start and f == U_parent)
          then
            if U_alive[f] or U_proven[f] then proven = true end
            if up == nil then up = f end
          end
        end
        if proven then break end
        if up == nil then return false end
        if not string.match(up, '^[DL]%w+$') then return nil end
        path[up] = true
        cur = up
      end
      return proven
    end
    -- As Graph.collect: what no chain proves is decided exactly. The upward closure of
    -- the open nodes (every ancestor not dying, not known alive), within the node bound;
    -- what a pinned node or a parent known alive reaches inside it lives; the rest is
    -- garbage (a cycle no live node links) and dies level by level as above, which may
    -- leave more survivors to prove. A pop refuses (its value would need them all).
    local at = 1
    while true do
      local open = {}
      while at <= #U_keep do
        local s = U_keep[at]
        at = at + 1
        -- (a node that survived a level and died at a later one is no longer kept)
        if not U_gone[s] and not U_proven[s] then
          local ok = chain(s)
          if ok == nil then return -1 end
          if ok then U_proven[s] = true else open[#open + 1] = s end
        end
      end
      if #open == 0 then break end
      if U_want then return -1 end
      local parents_of, order, sources = {}, {}, {}
      local frontier = open
      while #frontier > 0 do
        local up = {}
        for _, x in ipairs(frontier) do
          if parents_of[x] == nil then
            local h = header(x)
            if not h then return -1 end
            local ps, source = {}, h.pinned
            for f in pairs(h.fields) do
              if not U_gone[f] then
                ps[#ps + 1] = f
                if U_alive[f] or U_proven[f] then
                  source = true
                elseif parents_of[f] == nil then
                  up[#up + 1] = f
                end
              end
            end
            parents_of[x] = ps
            order[#order + 1] = x
            if source then sources[#sources + 1] = x end
          end
        end
        frontier = up
      end
      local children = {}
      for _, x in ipairs(order) do
        for _, p in ipairs(parents_of[x]) do
          local c = children[p]
          if c == nil then
            c = {}
            children[p] = c
          end
          c[#c + 1] = x
        end
      end
      local reached, stack = {}, {}
      for _, x in ipairs(sources) do
        if not reached[x] then
          reached[x] = true
          stack[#stack + 1] = x
        end
      end
      while #stack > 0 do
        local x = stack[#stack]
        stack[#stack] = nil
        for _, c in ipairs(children[x] or {}) do
          if not reached[c] then
            reached[c] = true
            stack[#stack + 1] = c
          end
        end
      end
      local dead = {}
      for _, x in ipairs(order) do
        if reached[x] then
          U_proven[x] = true
        else
          U_gone[x] = true
          dead[#dead + 1] = x
        end
      end
      if not sweep(dead) then return -1 end
    end
    if U_want and #U_keep > 0 then
      -- A pop returns its value whole: what kept nodes reach is answered too, read as
      -- it is (it stays), within the same bounds. A node there with a missing,
      -- foreign-kind or pending header refuses (the client's path reports damage), and
      -- so does the parent or the root: the value would show the parent as it was
      -- before the item left it, where the client's path shows it after.
      local seen, queue, at = {}, {}, 1
      for _, u in ipairs(U_dead) do seen[u] = true end
      for _, u in ipairs(U_keep) do
        if not seen[u] then
          seen[u] = true
          queue[#queue + 1] = u
        end
      end
      while at <= #queue do
        local u = queue[at]
        at = at + 1
        if #U_dead + at - 1 > U_limit or U_alive[u] then return -1 end
        local dict = string.byte(u, 1) == 68
        local h = redis.pcall('HMGET', U_rp .. u, '#k', '#d')
        if h.err or h[1] ~= (dict and 'd' or 'l') or h[2] then return -1 end
        local content, links = read_content(U_cp .. u, dict)
        if not content then return -1 end
        for _, c in ipairs(links) do
          if not seen[c] then
            seen[c] = true
            queue[#queue + 1] = c
          end
        end
        U_contents[#U_contents + 1] = u
        U_contents[#U_contents + 1] = content
      end
    end
    -- the unit's own writes must not meet what dies (a node it links again, say)
    local p = pos
    for _ = 1, writes do
      local op, n, key = ARGV[p], tonumber(ARGV[p + 1]), ARGV[p + 2]
      if U_tree[key] or (op == 'hset_item' and U_tree[ARGV[p + 5]]) then return -1 end
      p = p + 3 + n
    end
  end
end
"""

_APPLY = r"""
if U_i then
  -- The item leaves the list; the shorter side moves (the verification bounded it).
  local key = KEYS[1]
  if U_i == 0 then
    redis.call('LPOP', key)
  elseif U_i == U_n - 1 then
    redis.call('RPOP', key)
  elseif U_i <= U_n - 1 - U_i then
    local head = redis.call('LRANGE', key, 0, U_i - 1)
    redis.call('LTRIM', key, U_i + 1, -1)
    local back = {}
    for j = #head, 1, -1 do back[#back + 1] = head[j] end
    redis.call('LPUSH', key, unpack(back))
  else
    local tail = redis.call('LRANGE', key, U_i + 1, -1)
    redis.call('LTRIM', key, 0, U_i - 1)
    redis.call('RPUSH', key, unpack(tail))
  end
end
if U_start then
  for _, u in ipairs(U_keep) do
    if not U_gone[u] then
      -- It survives: the dead parents' links go (as Graph._sweep does), counted down
      -- from what the unit's writes left there, which may have linked it again (the
      -- item's new value relinking the top node counts up from the count read).
      local rk, cut = U_rp .. u, U_cut[u]
      for j = 1, #cut, 2 do
        local f = cut[j]
        local left = (tonumber(redis.call('HGET', rk, f)) or 0) - cut[j + 1]
        if left > 0 then
          redis.call('HSET', rk, f, left)
        else
          redis.call('HDEL', rk, f)
        end
      end
    end
  end
  for _, u in ipairs(U_dead) do
    local rk = U_rp .. u
    if U_stamp then
      -- The links it lost before it died (the item's, those from a shallower level)
      -- go as the client's collection deletes them; the rest stay with the header.
      local cut = U_cut[u]
      if cut then
        for j = 1, #cut, 2 do redis.call('HDEL', rk, cut[j]) end
      end
      redis.call('HSET', rk, '#d', U_stamp)
      redis.call('HSET', U_pk, u, U_stamp)
    else
      redis.call('DEL', rk, U_cp .. u)
    end
  end
end
-- Nothing collected and nothing asked for (an assignment over a scalar): the plain answer.
if not U_start and not U_want then return 1 end
do return {1, U_dead or {}, U_item, U_contents or {}} end
"""

SCRIPT = _TEMPLATE.replace("--@PLAN\n", "").replace("--@VERIFY\n", "").replace("--@APPLY\n", "")
UNLINK_SCRIPT = (
    _TEMPLATE.replace("--@PLAN\n", _PLAN)
    .replace("--@VERIFY\n", _VERIFY)
    .replace("--@APPLY\n", _APPLY)
)
UNLINK_SCRIPT_SHA = hashlib.sha1(UNLINK_SCRIPT.encode()).hexdigest()

SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

_SPLITTABLE = frozenset({"rpush", "lpush", "hdel", "hset"})
_WRITES = frozenset(
    {
        "set",
        "delete",
        "hset",
        "hdel",
        "rpush",
        "lpush",
        "lpop",
        "rpop",
        "lset",
        "ltrim",
        "hset_item",
        "hincr",
    }
)


SLICE = 10_000
"""A whole list read of at least this many items is checked in slices of this many.

Item by item, a list of 1,000,000 items costs the script two million Lua strings
(its read and its ``ARGV``), and the cost per item grows with the count (x6 for x4
in ``benchmarks/deep_wide.py --backend redis --shape long``). Each slice instead
goes as one string and is read back a slice at a time."""

_SEPARATOR = b"\xff"
"""Joins a slice's items: UTF-8 never holds the byte, so etcher's encoded items do not."""


def _joined_slices(items: Sequence[bytes]) -> list[bytes] | None:
    """``items`` as SLICE-sized slices, each joined by :data:`_SEPARATOR`; ``None`` when
    an item holds the separator (then the items go one by one)."""
    out = []
    for start in range(0, len(items), SLICE):
        part = items[start : start + SLICE]
        joined = _SEPARATOR.join(part)
        if joined.count(_SEPARATOR) != len(part) - 1:
            return None
        out.append(joined)
    return out


def _nullable(value: Any) -> list[Any]:
    return [b"0", b""] if value is None else [b"1", value]


# Writes the short layout may carry: those the script applies as the plain Redis command.
_PLAIN_WRITES = _WRITES - {"delete", "hset_item", "hincr"}


def encode(
    checks: Sequence[tuple[str, tuple[Any, ...], Any]],
    writes: Sequence[tuple[str, tuple[Any, ...]]],
    first: Any = None,
) -> tuple[list[Any], list[Any]]:
    """``KEYS`` and ``ARGV`` of the checked-commit script (layout in the module docstring).

    ``first``: a key to declare first, before those checks name (the unlinking
    commit's item, which the script reads as checks read); then never the short
    layout, which has no room for it.
    """
    if first is None and len(checks) == 2 and len(writes) == 1:
        # The short layout (module docstring) where it applies.
        (one, on, live), (second, fields, gone) = checks
        op, args = writes[0]
        if (
            one == "exists"
            and second == "hexists"
            and live == 1
            and not gone
            and len(on) == 1
            and len(fields) == 2
            and fields[0] == on[0]
            and op in _PLAIN_WRITES
            and len(args) <= CHUNK + 1
            and args[0] != on[0]
        ):
            return [on[0], args[0]], ["g", fields[1], op, *args[1:]]
    keys: list[Any] = []
    index: dict[Any, int] = {}
    if first is not None:
        keys.append(first)
        index[first] = 1

    def key_index(key: Any) -> int:
        found = index.get(key)
        if found is None:
            keys.append(key)
            found = index[key] = len(keys)
        return found

    argv: list[Any] = [len(checks)]
    for command, args, expected in checks:
        key = args[0]
        if command == "lrange" and len(expected) >= SLICE and args[1:3] == (0, -1):
            joined = _joined_slices(expected)
            if joined is not None:
                argv += ("lslices", key_index(key), len(expected), SLICE, len(joined))
                argv += joined
                continue
        argv += (command, key_index(key))
        if command == "get":
            argv += _nullable(expected)
        elif command in ("hget", "lindex"):
            argv.append(args[1])
            argv += _nullable(expected)
        elif command in ("hlen", "llen", "exists"):
            argv.append(int(expected))
        elif command == "hexists":
            argv += (args[1], 1 if expected else 0)
        elif command == "hgetall":
            argv.append(len(expected))
            argv += chain.from_iterable(expected.items())
        elif command == "lrange":
            argv += (args[1], args[2], len(expected))
            argv += expected
        elif command == "unlinked_item":
            argv += (args[1], key_index(args[2]), args[3])
        else:
            raise ValueError(f"checked_commit cannot check {command!r}")
    counted = len(argv)
    argv.append(0)
    total = 0
    known = index.get
    for command, args in writes:
        if command not in _WRITES:
            raise ValueError(f"checked_commit cannot write {command!r}")
        # key_index(), inline: once per node of a big write
        key = args[0]
        if known(key) is None:
            keys.append(key)
            index[key] = len(keys)
        size = len(args) - 1
        if command == "hset_item":
            field, value, seq_key, seq_field = args[1:]
            key_index(seq_key)
            argv += (command, 4, key, field, value, seq_key, seq_field)
            total += 1
            continue
        if size <= CHUNK or command not in _SPLITTABLE:
            argv.append(command)
            argv.append(size)
            argv += args
            total += 1
            continue
        # CHUNK is even, so a hset's field/value pairs stay whole; pushing (or deleting
        # fields) in consecutive pieces has the effect of one command with them all.
        for start in range(1, size + 1, CHUNK):
            piece = args[start : start + CHUNK]
            argv += (command, len(piece), key)
            argv += piece
            total += 1
    argv[counted] = total
    return keys, argv


def checked_commit(
    client: Any,
    checks: Sequence[tuple[str, tuple[Any, ...], Any]],
    writes: Sequence[tuple[str, tuple[Any, ...]]],
) -> bool:
    """Run the checked-commit script on ``client``; True if it applied.

    ``client`` is an :class:`~etcher_redis.client.EtcherRedis` (its errors
    already etcher's); the arguments are packed in one go
    (:meth:`~etcher_redis.client.EtcherRedis.execute_packed`). A ``NOSCRIPT``
    answer means nothing ran: the script's text is sent instead. Until this
    client has seen the script run, the text goes first (``EVAL``, which also
    caches it on the server): a first commit that is big would otherwise
    travel twice, once refused by ``NOSCRIPT``.
    """
    keys, argv = encode(checks, writes)
    # Inline, as in unlinking_commit: this is every append's commit, whose Python calls
    # are pinned (etcher_redis/tests/test_commit_cost.py).
    loaded: set[str] = client.__dict__.setdefault("_etcher_scripts", set())
    if SCRIPT_SHA not in loaded:
        result = client.execute_packed("EVAL", SCRIPT, len(keys), *keys, *argv)
        loaded.add(SCRIPT_SHA)
        return bool(result)
    try:
        result = client.execute_packed("EVALSHA", SCRIPT_SHA, len(keys), *keys, *argv)
    except ResponseError as exc:
        if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
            raise
        result = client.execute_packed("EVAL", SCRIPT, len(keys), *keys, *argv)
    return bool(result)


_NOTHING_COLLECTED = UnlinkOutcome("applied", [])
_MISSING = UnlinkOutcome("missing", [])


def unlinking_commit(
    client: Any,
    checks: Sequence[tuple[str, tuple[Any, ...], Any]],
    writes: Sequence[tuple[str, tuple[Any, ...]]],
    plan: UnlinkPlan,
) -> UnlinkOutcome:
    """The unlinking commit (:meth:`etcher.spec.UnlinkCommits.unlinking_commit`) on ``client``.

    :data:`UNLINK_SCRIPT` is the checked-commit script with the plan's arguments
    first, the subtree checked after the unit's checks (it only reads until then),
    and the collection after the unit's writes. The nodes it visits are not in
    ``KEYS``: like the unlinking read they share the item's hash tag, so on a
    cluster they are in the slot the declared keys route to.
    """
    cp, rp, pending, parent, field, alive, stamp, limit, budget, contents, position, present = plan
    if limit < 1 or budget < 0:
        raise ValueError(f"an unlink plan needs limit >= 1 and budget >= 0, not {plan!r}")
    keys, argv = encode(checks, writes, first=cp + parent)
    # The script reads these by position (_PLAN), the checked commit's ARGV after them.
    head = [
        cp,
        rp,
        pending,
        parent,
        field,
        *((b"", b"0") if stamp is None else (stamp, b"1")),
        limit,
        budget,
        b"1" if contents else b"0",
        b"" if position is None else position,
        b"1" if present else b"0",
        len(alive),
        *alive,
        *argv,
    ]
    # The script by its text until this client ran it (which caches it on the server),
    # then by its SHA1, by its text again after NOSCRIPT. Inline: every planned
    # assignment's commit (a scalar's, too) comes here.
    loaded: set[str] = client.__dict__.setdefault("_etcher_scripts", set())
    if UNLINK_SCRIPT_SHA not in loaded:
        result = client.execute_packed("EVAL", UNLINK_SCRIPT, len(keys), *keys, *head)
        loaded.add(UNLINK_SCRIPT_SHA)
    else:
        try:
            result = client.execute_packed("EVALSHA", UNLINK_SCRIPT_SHA, len(keys), *keys, *head)
        except ResponseError as exc:
            if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
                raise
            result = client.execute_packed("EVAL", UNLINK_SCRIPT, len(keys), *keys, *head)
    if result == 0:
        return UnlinkOutcome("conflict", [])
    if result == -1:
        return UnlinkOutcome("refused", [])
    if result == 1:
        return _NOTHING_COLLECTED
    if result == 2:
        return _MISSING
    _applied, uids, item, flat = result
    retired = [uid.decode() for uid in uids]
    if not plan.contents:
        return UnlinkOutcome("applied", retired)
    return UnlinkOutcome("applied", retired, item, decode_contents(flat))


__all__ = [
    "CHUNK",
    "SCRIPT",
    "SCRIPT_SHA",
    "UNLINK_SCRIPT",
    "UNLINK_SCRIPT_SHA",
    "checked_commit",
    "encode",
    "unlinking_commit",
]
