"""Server-side Lua of the bus: raise watermarks and announce it.

An invalidation that raised ``W(e)`` but whose event was lost would leave other replicas'
LOCAL layers stale; an event without the raised watermark would let the REMOTE layer serve the
old value. On a single server both happen in one script (:data:`INVALIDATE`), together with the
sequence number that lets subscribers detect missed events.

On a Redis Cluster no script can span the entity's slot and the bus's slot, so an invalidation
is two scripts, in this order: :data:`RAISE` on the entity's slot, then :data:`ANNOUNCE` on the
namespace's slot. The caller learns of success only after both; if the announcement fails, the
call raises and the caller retries (safe: ``W`` is a max). A watermark raised but not (yet)
announced makes the REMOTE layer refuse the old value at once; LOCAL layers elsewhere keep it
until the retried event arrives — the same window as an invalidation still in flight.

Times are microseconds of Redis ``TIME``. Lua numbers are doubles, exact for integers below
2**53 (year 2255 in microseconds); they are written with ``%.0f`` because ``tostring`` would
switch to exponent notation. Redis 7 replicates script *effects*, so reading ``TIME`` in a
writing script is allowed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from ._cluster import AnyRedis, ensure_initialized

__all__ = [
    "ANNOUNCE",
    "DRAIN",
    "FLUSH",
    "INVALIDATE",
    "POSITION",
    "RAISE",
    "SERVER_TIME",
    "Script",
]


@dataclass(frozen=True)
class Script:
    """Lua source and its SHA1, for EVALSHA with an EVAL fallback."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def run(self, client: AnyRedis, keys: list[str], args: list[Any]) -> Any:
        """Run on ``client``: EVALSHA, and EVAL once when the server does not know the script."""
        await ensure_initialized(client)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

_ANNOUNCE = """
local function announce(body)
  if ARGV[1] == 'streams' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'd', body)
  else
    redis.call('PUBLISH', KEYS[2], body)
  end
end
-- parts: '[key_type,id,watermark]' JSON arrays. The sequence number comes from KEYS[1].
local function announce_invalidation(parts, now)
  local seq = redis.call('INCR', KEYS[1])
  announce('{"v":1,"t":"inv","ns":' .. cjson.encode(ARGV[3]) .. ',"s":' .. seq .. ',"ts":'
    .. string.format('%.0f', now) .. ',"e":[' .. table.concat(parts, ',') .. ']}')
  return seq
end
"""

_RAISE = """
-- W(e) = max(W(e), now + buffer): a later, smaller buffer never shortens an earlier one. Then
-- the entity's indexed value keys are deleted, so a REMOTE read needs no watermark check.
local function raise(wkey, ikey, buffer, base_ttl, now)
  local target = now + buffer
  local cur = redis.call('GET', wkey)
  if cur and tonumber(cur) >= target then
    target = tonumber(cur)
  elseif cur then
    redis.call('SET', wkey, string.format('%.0f', target), 'KEEPTTL')
  else
    redis.call('SET', wkey, string.format('%.0f', target))
  end
  -- The watermark must outlive the values it guards and the buffer it extends into.
  local want = base_ttl + math.floor(buffer / 1000)
  if redis.call('PTTL', wkey) < want then redis.call('PEXPIRE', wkey, want) end
  local listed = redis.call('SMEMBERS', ikey)
  for k = 1, #listed, 500 do
    redis.call('UNLINK', unpack(listed, k, math.min(k + 499, #listed)))
  end
  redis.call('UNLINK', ikey)
  return string.format('%.0f', target)
end
"""

INVALIDATE = Script(
    "invalidate",
    _NOW
    + _ANNOUNCE
    + _RAISE
    + """
-- Single server: raise and announce in one atomic step.
-- KEYS[1] sequence, KEYS[2] stream or channel, then per entity its watermark and its index
-- ARGV[1] transport, ARGV[2] stream max length, ARGV[3] namespace,
-- ARGV[4] minimum watermark lifetime ms, then per entity: key_type, id, future buffer us.
local base_ttl = tonumber(ARGV[4])
local parts, marks = {}, {}
for i = 3, #KEYS, 2 do
  local j = 5 + (i - 3) / 2 * 3
  local mark = raise(KEYS[i], KEYS[i + 1], tonumber(ARGV[j + 2]), base_ttl, now)
  marks[#marks + 1] = mark
  parts[#parts + 1] = '[' .. cjson.encode(ARGV[j]) .. ',' .. cjson.encode(ARGV[j + 1]) .. ','
    .. mark .. ']'
end
announce_invalidation(parts, now)
return marks
""",
)

RAISE = Script(
    "raise",
    _NOW
    + _RAISE
    + """
-- Cluster, step 1 of an invalidation, on the entities' slot (every key here is in one slot).
-- KEYS: per entity its watermark and its index. ARGV[1] minimum watermark lifetime ms, then
-- per entity its future buffer us. Returns the new watermarks.
local base_ttl = tonumber(ARGV[1])
local marks = {}
for i = 1, #KEYS, 2 do
  marks[#marks + 1] = raise(KEYS[i], KEYS[i + 1], tonumber(ARGV[1 + (i + 1) / 2]), base_ttl, now)
end
return marks
""",
)

ANNOUNCE = Script(
    "announce",
    _NOW
    + _ANNOUNCE
    + """
-- Cluster, step 2 of an invalidation, on the namespace's slot: the event for watermarks that
-- step 1 raised. KEYS[1] sequence, KEYS[2] stream or channel; ARGV[1] transport, ARGV[2] stream
-- max length, ARGV[3] namespace, then per entity: key_type, id, watermark.
local parts = {}
for j = 4, #ARGV, 3 do
  parts[#parts + 1] = '[' .. cjson.encode(ARGV[j]) .. ',' .. cjson.encode(ARGV[j + 1]) .. ','
    .. ARGV[j + 2] .. ']'
end
return announce_invalidation(parts, now)
""",
)

FLUSH = Script(
    "flush",
    _ANNOUNCE
    + """
-- KEYS[1] sequence, KEYS[2] stream or channel, KEYS[3] flush watermark (all in one slot)
-- ARGV[1] transport, ARGV[2] stream max length, ARGV[3] namespace, ARGV[4] future buffer us
-- F = max(F, now + buffer), never expiring.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local target = now + tonumber(ARGV[4])
local cur = redis.call('GET', KEYS[3])
if cur and tonumber(cur) >= target then
  target = tonumber(cur)
else
  redis.call('SET', KEYS[3], string.format('%.0f', target))
end
local mark = string.format('%.0f', target)
local seq = redis.call('INCR', KEYS[1])
announce('{"v":1,"t":"flush","ns":' .. cjson.encode(ARGV[3]) .. ',"s":' .. seq .. ',"ts":'
  .. string.format('%.0f', now) .. ',"w":' .. mark .. '}')
return mark
""",
)

POSITION = Script(
    "position",
    """
-- KEYS[1] stream, KEYS[2] sequence (one slot). ARGV[1] '' for the newest entry, else an id:
-- the first entry after it. Returns {that entry's id or '', the sequence counter or '0'}: a
-- subscriber's position and its baseline, read together.
local found
if ARGV[1] == '' then
  found = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
else
  found = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', 1)
end
local id = ''
if #found > 0 then id = found[1][1] end
return {id, redis.call('GET', KEYS[2]) or '0'}
""",
)

SERVER_TIME = Script(
    "server_time",
    """
-- KEYS[1] any key: the script runs on the node that holds its slot (on a Cluster, the node whose
-- clock stamps that slot's watermarks). Returns TIME.
return redis.call('TIME')
""",
)

DRAIN = Script(
    "drain",
    """
-- KEYS[1] stream; ARGV[1] last applied id (exclusive), ARGV[2] how many at most.
-- The entries after ARGV[1] as ONE bulk string: "<id> <length>\\n<payload>" per entry, where
-- payload is the entry's d field ('' if it has none). A client parses one string instead of a
-- nested array per entry, which is most of what a subscriber spends on a busy stream.
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for i = 1, #entries do
  local fields = entries[i][2]
  local d = ''
  for j = 1, #fields, 2 do
    if fields[j] == 'd' then d = fields[j + 1] end
  end
  out[i] = entries[i][1] .. ' ' .. #d .. '\\n' .. d
end
return table.concat(out)
""",
)
