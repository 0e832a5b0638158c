"""Server-side Lua for REMOTE writes, so each check-and-write is one atomic step.

Invalidation and flush scripts belong to the bus (``bus._scripts``): they raise a watermark and
announce it in the same step.

Times are microseconds of Redis ``TIME`` (DESIGN §4). Lua numbers are doubles, exact for
integers below 2**53 (year 2255 in microseconds); they are written back with ``%.0f`` because
``tostring`` would switch to exponent notation.
"""

from __future__ import annotations

from bus._scripts import Script

__all__ = ["CLOCK", "WRITE", "WriteResult"]


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
-- KEYS[1] value key, KEYS[2] flush watermark (on a Cluster: its copy in the value's slot, see
-- bus._flush_copies); tracked values also KEYS[3] entity watermark and
-- KEYS[4] entity index (the set of the entity's value keys, which invalidation deletes)
-- ARGV[1] computed_at, ARGV[2] ttl ms, ARGV[3] encoded value, ARGV[4] max age us
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ca = tonumber(ARGV[1])
if now - ca > tonumber(ARGV[4]) then return 3 end
local f = redis.call('GET', KEYS[2])
if not f then
  -- No flush watermark: a new namespace, or Redis lost its data (restarted empty), and with it
  -- every entity watermark. Nothing computed before now can be shown valid: start F at now.
  redis.call('SET', KEYS[2], string.format('%.0f', now))
  f = now
end
if ca <= tonumber(f) then return 0 end
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
  -- The index, too, must outlive every key it lists, or an invalidation would miss one.
  redis.call('SADD', KEYS[4], KEYS[1])
  if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
end
return 1
""",
)

CLOCK = Script(
    "clock",
    """
-- KEYS[1] flush watermark. Returns TIME's two fields and 1 if it created the flush watermark
-- (just below TIME) because it was absent, else 0.
-- Every process takes this sample before it stamps its first computed_at, so a new namespace
-- has a flush watermark before any value exists, and WRITE's "missing F" case means only one
-- thing: Redis lost its data (and with it the entity watermarks).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local created = redis.call('SET', KEYS[1], string.format('%.0f', now - 1), 'NX')
return {t[1], t[2], created and 1 or 0}
""",
)
