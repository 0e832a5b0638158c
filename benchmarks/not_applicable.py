"""Scenarios a peer cannot take part in, and why: printed in the report, never silently left out.

A peer that *can* run a scenario but fails it (a LOCAL layer another process never invalidates)
is measured and reported as "never" (:mod:`.fresh_read`), not listed here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["NOT_APPLICABLE"]

_ASYNC_ONLY: Final = "async-only API: no sync decorator to call from a plain thread"
_NO_BUS: Final = "no invalidation bus"

NOT_APPLICABLE: Final[tuple[tuple[str, str, str], ...]] = (
    ("sync LOCAL hit (plain thread)", "aiocache memory", _ASYNC_ONLY),
    ("sync LOCAL hit (plain thread)", "cashews (all backends)", _ASYNC_ONLY),
    ("sync LOCAL hit (plain thread)", "dialcache", _ASYNC_ONLY + " (its wrapper always awaits)"),
    ("sync LOCAL hit (plain thread)", "redis-py", "no cache"),
    ("tracked REMOTE hit", "aiocache memory, cashews mem://", "no remote layer"),
    (
        "tracked REMOTE hit",
        "cashews redis://",
        "no per-entity invalidation tracking: its untracked REMOTE hit is measured instead",
    ),
    ("1,000 concurrent misses", "redis-py", "no cache"),
    ("LOCAL memory per entry", "cashews redis://, redis-py", "no LOCAL layer"),
    (
        "LOCAL memory per entry",
        "cashews client_side",
        "its local copy is a cashews mem:// store (that row applies)",
    ),
    ("bus apply throughput", "aiocache, cashews, dialcache, redis-py", _NO_BUS),
)
"""(scenario, contender, reason)."""
