"""How much work one run does: rounds, and calls timed per round, for a full or a quick run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "PUBLISH_BATCH", "QUICK", "Plan"]

PUBLISH_BATCH = 1000
"""Entities per ``Publisher.ainvalidate_many`` call in the publish-throughput scenario."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Rounds and per-round call counts.

    Paths without I/O cost about a microsecond, so they need many calls for a round to last long
    enough (tens of milliseconds) that timer resolution and one-off interruptions do not matter;
    paths with a Redis round trip cost tens of microseconds each and need far fewer.

    The invalidation-bus scenarios have their own sizes: how many other processes follow the bus
    and how many invalidations reach them (propagation), and how much a subscriber applies and a
    publisher sends per round (throughput).
    """

    name: str
    rounds: int
    local_calls: int
    """Calls timed per round on paths without I/O (bare calls, LOCAL hits)."""
    redis_calls: int
    """Calls timed per round on paths with a Redis round trip."""
    replicas: int
    """Other processes (spawned) whose LOCAL layers an invalidation must reach."""
    invalidations: int
    """Invalidations timed per propagation scenario (each reaches every replica)."""
    throughput_rounds: int
    """Rounds of each bus-throughput scenario."""
    apply_events: int
    """Events a subscriber applies per round (each a single-entity invalidation)."""
    publish_batches: int
    """``ainvalidate_many`` calls of :data:`PUBLISH_BATCH` entities per round."""
    stampede_rounds: int
    """Rounds of the 1,000-caller stampede, per contender."""
    fresh_trials: int
    """Cross-process freshness trials per contender (fewer for one retired as "never")."""
    fresh_deadline_sec: float
    """How long a reader waits for the new value before the trial counts as "never"."""
    memory_entries: int
    """LOCAL entries stored per contender in the memory scenario."""
    interleave_blocks: int = 10
    """Blocks per round, each side, of a scenario timed interleaved with its baseline: the two
    alternate block by block, so both see the same moments of the machine."""
    memory_peers: bool = True
    """Whether the memory scenario fills the peers' layers too (a process each), or gcache's
    only (the quick run: spawning is most of its time)."""

    def __post_init__(self) -> None:
        for field in (
            "rounds",
            "local_calls",
            "redis_calls",
            "replicas",
            "invalidations",
            "throughput_rounds",
            "apply_events",
            "publish_batches",
            "stampede_rounds",
            "fresh_trials",
            "memory_entries",
            "interleave_blocks",
        ):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)!r}")
        if self.fresh_deadline_sec <= 0:
            raise ValueError(f"fresh_deadline_sec must be > 0, got {self.fresh_deadline_sec!r}")

    def calls(self, io: bool) -> int:
        """Calls per timed round for a scenario with (``io``) or without Redis round trips."""
        return self.redis_calls if io else self.local_calls

    def warmup_calls(self, io: bool) -> int:
        """Untimed calls before the first round.

        A tenth of a round opens the Redis connections, loads the Lua script, lets CPython's
        adaptive interpreter specialise the hot bytecode and brings the code into the CPU caches;
        none of that is a per-call cost, so none of it may land in round one.
        """
        return max(1, self.calls(io) // 10)


FULL = Plan(
    name="full",
    rounds=7,
    local_calls=200_000,
    redis_calls=5_000,
    replicas=8,
    invalidations=200,
    throughput_rounds=3,
    apply_events=200_000,
    publish_batches=100,
    stampede_rounds=5,
    fresh_trials=50,
    fresh_deadline_sec=1.0,
    memory_entries=1_000_000,
)
QUICK = Plan(
    name="quick",
    rounds=3,
    local_calls=20_000,
    redis_calls=500,
    replicas=2,
    invalidations=30,
    throughput_rounds=3,
    apply_events=10_000,
    publish_batches=10,
    stampede_rounds=1,
    fresh_trials=3,
    fresh_deadline_sec=0.2,
    memory_entries=20_000,
    interleave_blocks=4,
    memory_peers=False,
)
