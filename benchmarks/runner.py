"""The run: rounds of the per-call scenarios, then the invalidation bus's throughput and
propagation scenarios, all on one event loop.

Per-call scenarios: every scenario timed once per round.

Scenarios alternate within a round, rather than each running all its rounds back to back, so
slow drifts of the machine (another process waking up, CPU frequency, a noisy neighbour) land on
every scenario alike instead of on whichever happened to run at the time. The starting scenario
also rotates from round to round, so none is always the one that runs right after the Redis-heavy
miss, or first after a pause.

A scenario marked ``interleaved`` (the tracked REMOTE hit) is timed together with its baseline
(the raw GET) in alternating blocks of calls, on its turn, and the baseline takes no turn of its
own: a ratio judged against a 15% margin cannot have its two sides timed a second apart on a
machine whose round trip drifts by more than that over a second.

Peer libraries' hits (:mod:`.peers`), when installed, are per-call scenarios like any other,
in the same rounds; those not installed are listed as skipped.

Then the side-by-side scenarios with peers that are not per-call timings (stampede, cross-process
freshness, LOCAL memory), each in its own module.

The bus scenarios come after the rounds, each with its own alternation (see
:mod:`.bus_throughput` and :mod:`.propagation`): they load the machine differently (a
catch-up of many events, several processes), and must not run while a per-call round is timed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from .bus_throughput import RateResult, measure_throughput
from .fresh_read import FreshResult, measure_fresh_reads
from .local_memory import BoundCheck, MemoryResult, measure_local_memory
from .peers import PeerScenarios, Skipped, prepare_peer_scenarios
from .plan import Plan
from .propagation import LatencyResult, measure_propagation
from .scenarios import RAW_KEY, Scenario, prepare_scenarios
from .stampede import StampedeResult, measure_stampedes
from .stats import Summary, paired_ratios, summarize
from .subjects import Subjects

__all__ = ["RunResult", "ScenarioResult", "run"]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """Per-call times of one scenario, one sample per round."""

    name: str
    title: str
    baseline: str | None
    calls: int
    """Calls timed per round."""
    per_call_ns: tuple[float, ...]
    """Mean nanoseconds per call in each round, in round order."""

    @property
    def summary(self) -> Summary:
        return summarize(self.per_call_ns)


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything one run measured."""

    plan: Plan
    scenarios: dict[str, ScenarioResult]
    """By scenario name, in table order."""
    value_bytes: int
    """Size of the value as stored in Redis (what the REMOTE hit and the raw GET read)."""
    throughput: dict[str, RateResult]
    """The bus-throughput scenarios, by name, in table order."""
    propagation: dict[str, LatencyResult]
    """The propagation scenarios, by name, the raw baseline first."""
    stampedes: dict[str, StampedeResult]
    """1,000 concurrent misses of one key, by contender."""
    fresh_reads: dict[str, FreshResult]
    """Cross-process freshness after an update, by contender."""
    memory: dict[str, MemoryResult]
    """LOCAL memory per entry, by contender."""
    bound_check: BoundCheck
    """gcache's LOCAL layer filled past its byte bound."""
    skipped: tuple[Skipped, ...] = ()
    """Scenarios that did not run (peer libraries that are not installed)."""

    def versus_baseline(self, name: str) -> Summary | None:
        """Scenario ``name`` divided by its baseline, round by round (see
        :func:`~benchmarks.stats.paired_ratios`); None for a scenario without a baseline."""
        result = self.scenarios[name]
        if result.baseline is None:
            return None
        baseline = self.scenarios[result.baseline]
        return summarize(paired_ratios(result.per_call_ns, baseline.per_call_ns))

    def propagation_p99_ratio(self, name: str) -> float | None:
        """p99 propagation latency of ``name`` over its baseline's p99; None without one."""
        result = self.propagation[name]
        if result.baseline is None:
            return None
        return result.percentiles.p99 / self.propagation[result.baseline].percentiles.p99


async def _interleave(
    scenario: Scenario, baseline: Scenario, calls: int, blocks: int
) -> tuple[float, float]:
    """Per-call nanoseconds of ``scenario`` and ``baseline``, timed in ``blocks`` alternating
    blocks each (which of the two goes first alternates too), about ``calls`` calls each."""
    block = max(1, calls // blocks)
    elapsed = {scenario.name: 0, baseline.name: 0}
    for index in range(blocks):
        for side in (scenario, baseline) if index % 2 == 0 else (baseline, scenario):
            elapsed[side.name] += await side.measure(block)
    timed = block * blocks
    return elapsed[scenario.name] / timed, elapsed[baseline.name] / timed


def _rotated(scenarios: Sequence[Scenario], round_index: int) -> list[Scenario]:
    shift = round_index % len(scenarios)
    return [*scenarios[shift:], *scenarios[:shift]]


async def run(plan: Plan, redis_url: str, progress: Callable[[str], None]) -> RunResult:
    """Warm up, then time ``plan.rounds`` rounds of every per-call scenario against
    ``redis_url``; then the bus throughput and propagation scenarios.

    Call it with a single ``asyncio.run``: the async scenarios share this one loop (gcache keeps
    a Redis client per loop, so a loop per round would reconnect and re-warm every time).
    """
    subjects = Subjects(redis_url, CollectorRegistry())
    raw = Redis.from_url(redis_url)
    # One long-lived worker is the "plain thread" of the sync scenarios: created once, so no
    # round pays for starting a thread, and always the same one, like a sync web worker.
    sync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-sync")
    peers: PeerScenarios | None = None
    try:
        scenarios = await prepare_scenarios(subjects, raw, sync_thread)
        peers = await prepare_peer_scenarios(redis_url)
        for skipped in peers.skipped:
            progress(f"skipping {skipped.title}: {skipped.reason}")
        scenarios.extend(peers.scenarios)
        progress("warming up")
        for scenario in scenarios:
            await scenario.measure(plan.warmup_calls(scenario.io))
        samples: dict[str, list[float]] = {scenario.name: [] for scenario in scenarios}
        by_name = {scenario.name: scenario for scenario in scenarios}
        paired = {s.baseline for s in scenarios if s.interleaved}
        turns = [scenario for scenario in scenarios if scenario.name not in paired]
        for index in range(plan.rounds):
            progress(f"round {index + 1}/{plan.rounds}")
            for scenario in _rotated(turns, index):
                calls = plan.calls(scenario.io)
                if scenario.interleaved:
                    assert scenario.baseline is not None
                    baseline = by_name[scenario.baseline]
                    ours, theirs = await _interleave(
                        scenario, baseline, calls, plan.interleave_blocks
                    )
                    samples[scenario.name].append(ours)
                    samples[baseline.name].append(theirs)
                else:
                    samples[scenario.name].append(await scenario.measure(calls) / calls)
        value_bytes = await raw.strlen(RAW_KEY)
    finally:
        sync_thread.shutdown(wait=True)
        if peers is not None:
            await peers.aclose()
        await subjects.aclose()
        await raw.aclose()
    assert peers is not None  # set before the rounds, which ran
    throughput = await measure_throughput(plan, redis_url, progress)
    propagation = await measure_propagation(plan, redis_url, progress)
    stampedes, stampede_skipped = await measure_stampedes(plan, redis_url, progress)
    fresh_reads, fresh_skipped = await measure_fresh_reads(plan, redis_url, progress)
    memory, memory_skipped, bound_check = await measure_local_memory(plan, progress)
    return RunResult(
        plan=plan,
        scenarios={
            s.name: ScenarioResult(
                name=s.name,
                title=s.title,
                baseline=s.baseline,
                calls=plan.calls(s.io),
                per_call_ns=tuple(samples[s.name]),
            )
            for s in scenarios
        },
        value_bytes=value_bytes,
        throughput=throughput,
        propagation=propagation,
        stampedes=stampedes,
        fresh_reads=fresh_reads,
        memory=memory,
        bound_check=bound_check,
        skipped=(*peers.skipped, *stampede_skipped, *fresh_skipped, *memory_skipped),
    )
