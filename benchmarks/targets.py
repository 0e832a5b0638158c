"""The project's performance targets, judged PASS or MISS against one run.

Peer targets (gcache's async LOCAL hit against other libraries' warmed hits) are judged only
for the peers that ran; a peer that is not installed has no target, and the report says it was
skipped.

Reporting only: a MISS is printed, never turned into a failing exit status. Timings on a shared
2-core machine are too noisy to gate anything on, and DESIGN keeps timing thresholds out of the
test suite for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .bus_throughput import APPLY, PUBLISH_MANY
from .peers import AIOCACHE_MEMORY, CASHEWS_MEM
from .propagation import PROPAGATION
from .runner import RunResult

__all__ = [
    "APPLY_RATE_LIMIT",
    "BUS_ON_HIT_RATIO_LIMIT",
    "LOCAL_HIT_LIMIT_US",
    "LOCAL_OVERHEAD_LIMIT_BYTES",
    "PEER_SPEEDUP_LIMIT",
    "PROPAGATION_P99_RATIO_LIMIT",
    "PUBLISH_MANY_RATE_LIMIT",
    "REMOTE_HIT_RATIO_LIMIT",
    "STAMPEDE_CALLS_LIMIT",
    "TargetResult",
    "evaluate",
]

LOCAL_HIT_LIMIT_US: Final = 2.0
"""A LOCAL hit, async or sync, costs at most this many microseconds per call."""

REMOTE_HIT_RATIO_LIMIT: Final = 1.15
"""A tracked REMOTE hit costs at most this multiple of a raw redis-py GET of the same value."""

BUS_ON_HIT_RATIO_LIMIT: Final = 1.10
"""A tracked async LOCAL hit with the bus on costs at most this multiple of the same hit with
``bus=None``."""

PROPAGATION_P99_RATIO_LIMIT: Final = 2.0
"""An invalidation stops every other replica's LOCAL layer serving the old value with a p99 at
most this multiple of a raw PUBLISH's p99 to a plain pub/sub subscriber (per transport)."""

APPLY_RATE_LIMIT: Final = 100_000.0
"""One subscriber applies at least this many single-entity invalidation events per second."""

PUBLISH_MANY_RATE_LIMIT: Final = 50_000.0
"""``Publisher.ainvalidate_many`` in batches of 1000 makes at least this many invalidations per
second."""


STAMPEDE_CALLS_LIMIT: Final = 1.0
"""1,000 concurrent misses of one key run the function at most this many times (per process,
in the worst round)."""

LOCAL_OVERHEAD_LIMIT_BYTES: Final = 300.0
"""A LOCAL entry costs less than this many bytes beyond its value (resident memory)."""

PEER_SPEEDUP_LIMIT: Final = 5.0
"""gcache's async LOCAL hit is at least this many times faster than a warmed in-memory hit of
aiocache (memory backend) and of cashews (``mem://``), each through its own decorator."""


@dataclass(frozen=True, slots=True)
class TargetResult:
    """One target, its measured value and whether the value is within the limit."""

    name: str
    title: str
    value: float
    limit: float
    unit: str
    """``"us"`` (microseconds per call), ``"x"`` (a ratio), ``"/s"`` (a rate), ``"calls"`` or
    ``"B"`` (bytes)."""
    low: float | None
    """Smallest value of a round; None when the figure is not made of rounds."""
    high: float | None
    """Largest value of a round; None when the figure is not made of rounds."""
    at_least: bool = False
    """The limit is a floor (rates), not a ceiling."""

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    @property
    def comparison(self) -> str:
        return ">=" if self.at_least else "<="


def _ratio_target(
    result: RunResult,
    scenario: str,
    name: str,
    title: str,
    limit: float,
    *,
    at_least: bool = False,
) -> TargetResult:
    # Judged on the paired, round-by-round ratio: the two were timed close together in each round
    # (interleaved block by block, for the tracked REMOTE hit: see benchmarks.runner).
    ratio = result.versus_baseline(scenario)
    assert ratio is not None, f"{scenario} has a baseline"
    return TargetResult(
        name=name,
        title=title,
        value=ratio.median,
        limit=limit,
        unit="x",
        low=ratio.minimum,
        high=ratio.maximum,
        at_least=at_least,
    )


def evaluate(result: RunResult) -> list[TargetResult]:
    """Every target: per-call ones on medians over the rounds, propagation on p99s, rates on
    medians over their rounds."""
    targets: list[TargetResult] = []
    for name, title in (
        ("async_local_hit", "async LOCAL hit"),
        ("sync_local_hit", "sync LOCAL hit"),
    ):
        summary = result.scenarios[name].summary
        targets.append(
            TargetResult(
                name=f"{name}_us",
                title=title,
                value=summary.median / 1000,
                limit=LOCAL_HIT_LIMIT_US,
                unit="us",
                low=summary.minimum / 1000,
                high=summary.maximum / 1000,
            )
        )
    targets.append(
        _ratio_target(
            result,
            "tracked_remote_hit",
            "tracked_remote_hit_vs_raw_get",
            "tracked REMOTE hit / raw GET",
            REMOTE_HIT_RATIO_LIMIT,
        )
    )
    targets.append(
        _ratio_target(
            result,
            "tracked_local_hit_bus_on",
            "tracked_local_hit_bus_on_vs_off",
            "tracked LOCAL hit, bus on / off",
            BUS_ON_HIT_RATIO_LIMIT,
        )
    )
    for peer, title in (
        (AIOCACHE_MEMORY, "aiocache memory hit / gcache async LOCAL hit"),
        (CASHEWS_MEM, "cashews mem:// hit / gcache async LOCAL hit"),
    ):
        if peer in result.scenarios:  # not installed: skipped, no target
            targets.append(
                _ratio_target(
                    result,
                    peer,
                    f"async_local_hit_speedup_vs_{peer.removeprefix('peer_')}",
                    title,
                    PEER_SPEEDUP_LIMIT,
                    at_least=True,
                )
            )
    for transport, scenario in PROPAGATION.items():
        ratio = result.propagation_p99_ratio(scenario)
        assert ratio is not None, f"{scenario} has a baseline"
        targets.append(
            TargetResult(
                name=f"{scenario}_p99_vs_raw",
                title=f"propagation p99 ({transport}) / raw PUBLISH p99",
                value=ratio,
                limit=PROPAGATION_P99_RATIO_LIMIT,
                unit="x",
                low=None,
                high=None,
            )
        )
    for scenario, title, limit in (
        (APPLY, "Subscriber apply rate (events)", APPLY_RATE_LIMIT),
        (PUBLISH_MANY, "ainvalidate_many rate (invalidations)", PUBLISH_MANY_RATE_LIMIT),
    ):
        rates = result.throughput[scenario].summary
        targets.append(
            TargetResult(
                name=f"{scenario}_per_s",
                title=title,
                value=rates.median,
                limit=limit,
                unit="/s",
                low=rates.minimum,
                high=rates.maximum,
                at_least=True,
            )
        )
    stampede = result.stampedes["gcache"]
    targets.append(
        TargetResult(
            name="stampede_gcache_calls",
            title=f"gcache function calls, {stampede.callers:,} concurrent misses",
            value=float(max(stampede.calls)),
            limit=STAMPEDE_CALLS_LIMIT,
            unit="calls",
            low=float(min(stampede.calls)),
            high=float(max(stampede.calls)),
        )
    )
    memory = result.memory["gcache"]
    targets.append(
        TargetResult(
            name="local_overhead_bytes",
            title=f"gcache LOCAL bytes per entry beyond the value ({memory.entries:,} entries)",
            value=memory.overhead_per_entry,
            limit=LOCAL_OVERHEAD_LIMIT_BYTES,
            unit="B",
            low=None,
            high=None,
        )
    )
    bound = result.bound_check
    targets.append(
        TargetResult(
            name="local_bytes_vs_bound",
            title="gcache LOCAL bytes held / max_local_bytes, filled past it",
            value=bound.bytes_accounted / bound.max_bytes,
            limit=1.0,
            unit="x",
            low=None,
            high=None,
        )
    )
    return targets
