"""Server-side Lua for every REMOTE write, so each check-and-write is one atomic step.

Times are microseconds of Redis ``TIME`` (DESIGN §4). Lua numbers are doubles, exact for
integers below 2**53 (year 2255 in microseconds); they are written back with ``%.0f`` because
``tostring`` would switch to exponent notation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["FLUSH", "INVALIDATE", "WRITE", "Script", "WriteResult"]


@dataclass(frozen=True)
class Script:
    """Lua source and its SHA1, for EVALSHA with an EVAL fallback."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


class WriteResult:
    """Return codes of :data:`WRITE`."""

    STORED = 1
    STALE = 0
    """``computed_at`` is not newer than the entity's or the namespace's watermark."""
    NEWER_EXISTS = 2
    """The key holds a value computed later (a late or retried write lost the race)."""
    TOO_OLD = 3
    """The fallback ran longer than the watermark lifetime; no refusal could cover it."""


WRITE = Script(
    "write",
    """
-- KEYS[1] value key, KEYS[2] flush watermark, KEYS[3] entity watermark (tracked values only)
-- ARGV[1] computed_at, ARGV[2] ttl ms, ARGV[3] encoded value, ARGV[4] max age us
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ca = tonumber(ARGV[1])
if now - ca > tonumber(ARGV[4]) then return 3 end
local f = redis.call('GET', KEYS[2])
if f and ca <= tonumber(f) then return 0 end
local w = false
if #KEYS > 2 then
  w = redis.call('GET', KEYS[3])
  if w and ca <= tonumber(w) then return 0 end
end
local head = redis.call('GETRANGE', KEYS[1], 0, 19)
if string.sub(head, 1, 2) == 'GC' then
  local cur = tonumber(string.sub(head, 5, 20))
  if cur and cur >= ca then return 2 end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
if #KEYS > 2 then
  -- The watermark must outlive every value it guards: if it expired first, a value computed
  -- before the last invalidation would become readable again.
  if not w then
    redis.call('SET', KEYS[3], '0', 'PX', ttl)
  else
    local left = redis.call('PTTL', KEYS[3])
    if left >= 0 and left < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
  end
end
return 1
""",
)

INVALIDATE = Script(
    "invalidate",
    """
-- KEYS[1] entity watermark; ARGV[1] future buffer us, ARGV[2] minimum lifetime ms
-- W = max(W, now + buffer): a smaller buffer later never shortens an earlier one.
local t = redis.call('TIME')
local target = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= target then
  target = tonumber(cur)
elseif cur then
  redis.call('SET', KEYS[1], string.format('%.0f', target), 'KEEPTTL')
else
  redis.call('SET', KEYS[1], string.format('%.0f', target))
end
local want = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left < want then redis.call('PEXPIRE', KEYS[1], want) end
return string.format('%.0f', target)
""",
)

FLUSH = Script(
    "flush",
    """
-- KEYS[1] flush watermark; ARGV[1] future buffer us. F = max(F, now + buffer), no expiry.
local t = redis.call('TIME')
local target = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= target then return cur end
redis.call('SET', KEYS[1], string.format('%.0f', target))
return string.format('%.0f', target)
""",
)
