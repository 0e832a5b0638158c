"""Server-side Lua of the bus: raise watermarks and announce it, in one atomic step.

An invalidation that raised ``W(e)`` but whose event was lost would leave other replicas'
LOCAL layers stale; an event without the raised watermark would let the REMOTE layer serve the
old value. So both happen in one script, together with the sequence number that lets
subscribers detect missed events.

Times are microseconds of Redis ``TIME``. Lua numbers are doubles, exact for integers below
2**53 (year 2255 in microseconds); they are written with ``%.0f`` because ``tostring`` would
switch to exponent notation. Redis 7 replicates script *effects*, so reading ``TIME`` in a
writing script is allowed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

__all__ = ["DRAIN", "FLUSH", "INVALIDATE", "Script"]


@dataclass(frozen=True)
class Script:
    """Lua source and its SHA1, for EVALSHA with an EVAL fallback."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def run(self, client: Redis, keys: list[str], args: list[Any]) -> Any:
        """Run on ``client``: EVALSHA, and EVAL once when the server does not know the script."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_ANNOUNCE = """
local function announce(body)
  if ARGV[1] == 'streams' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'd', body)
  else
    redis.call('PUBLISH', KEYS[2], body)
  end
end
"""

INVALIDATE = Script(
    "invalidate",
    _ANNOUNCE
    + """
-- KEYS[1] sequence, KEYS[2] stream or channel, then per entity its watermark and its index
-- (the set of its cached value keys: deleted here, so a REMOTE read needs no watermark check)
-- ARGV[1] transport, ARGV[2] stream max length, ARGV[3] namespace,
-- ARGV[4] minimum watermark lifetime ms, then per entity: key_type, id, future buffer us.
-- W(e) = max(W(e), now + buffer): a later, smaller buffer never shortens an earlier one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local base_ttl = tonumber(ARGV[4])
local parts, marks = {}, {}
for i = 3, #KEYS, 2 do
  local j = 5 + (i - 3) / 2 * 3
  local buffer = tonumber(ARGV[j + 2])
  local target = now + buffer
  local cur = redis.call('GET', KEYS[i])
  if cur and tonumber(cur) >= target then
    target = tonumber(cur)
  elseif cur then
    redis.call('SET', KEYS[i], string.format('%.0f', target), 'KEEPTTL')
  else
    redis.call('SET', KEYS[i], string.format('%.0f', target))
  end
  -- The watermark must outlive the values it guards and the buffer it extends into.
  local want = base_ttl + math.floor(buffer / 1000)
  if redis.call('PTTL', KEYS[i]) < want then redis.call('PEXPIRE', KEYS[i], want) end
  local listed = redis.call('SMEMBERS', KEYS[i + 1])
  for k = 1, #listed, 500 do
    redis.call('UNLINK', unpack(listed, k, math.min(k + 499, #listed)))
  end
  redis.call('UNLINK', KEYS[i + 1])
  local mark = string.format('%.0f', target)
  marks[#marks + 1] = mark
  parts[#parts + 1] = '[' .. cjson.encode(ARGV[j]) .. ',' .. cjson.encode(ARGV[j + 1]) .. ','
    .. mark .. ']'
end
local seq = redis.call('INCR', KEYS[1])
announce('{"v":1,"t":"inv","ns":' .. cjson.encode(ARGV[3]) .. ',"s":' .. seq .. ',"ts":'
  .. string.format('%.0f', now) .. ',"e":[' .. table.concat(parts, ',') .. ']}')
return marks
""",
)

FLUSH = Script(
    "flush",
    _ANNOUNCE
    + """
-- KEYS[1] sequence, KEYS[2] stream or channel, KEYS[3] flush watermark
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
