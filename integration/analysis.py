"""From what was recorded (:class:`RunData`) to what it means (:class:`Report`).

Definitions used by the report (all times relative to the workload's start ``t0``):

* **fault window**: ``[start, end]`` as the injector recorded it (a kill or drop lasts
  an instant; a pause lasts as long as Redis was stopped; a crash until the restarted instance
  was ready again).
* **recovery** of a fault: from its end until every instance slot has served a LOCAL hit again
  (a LOCAL hit of a tracked entry is only served while ``is_fresh()`` holds, so it implies both
  "fresh again" and "serving LOCAL hits").
* **bypass**: time during which an instance's ``cache.bus.is_fresh()`` was false (sampled every
  10 ms), i.e. LOCAL hits of tracked entries were refused.
* **propagation latency**: arrival of the bus event at an instance's tap minus the start of the
  invalidation call that produced it (the latest invalidation of that entity started before
  the arrival).
* **hit rate outside faults**: reads after the warm-up starting outside every fault window;
  **steady**: also outside each fault's recovery.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from .checker import check
from .config import RunConfig
from .model import (
    BypassSummary,
    CheckResult,
    FaultResult,
    FaultWindow,
    InstanceLife,
    InstanceMetrics,
    LatencySample,
    LatencyStats,
    LayerShares,
    ReadRecord,
    Report,
    RunData,
    SecondBucket,
    Verdict,
    WorkloadSummary,
)

__all__ = ["analyze", "latency_stats", "percentile"]

_NS = 1_000_000_000
_MATCH_HORIZON_NS = 60 * _NS
_UNRECOVERED_SPAN_NS = 5 * _NS
_HIT_RATE_TARGET = 0.80
_SCRAPE_SLACK_NS = int(1.5 * _NS)
_CALL_SLACK_S = 0.1
_LOST_CANCEL_HINT = (
    "the task finished normally after task.cancel(); on Python < 3.12 redis-py's "
    "Connection.send_packed_command (used whenever socket_timeout is set) wraps the write in "
    "asyncio.wait_for, which returns the result instead of raising when the cancellation "
    "arrives as the write completes (CPython gh-86296)"
)

Interval = tuple[int, int]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_stats(values_ms: Iterable[float]) -> LatencyStats:
    ordered = sorted(values_ms)
    if not ordered:
        return LatencyStats(0, None, None, None, None)
    return LatencyStats(
        count=len(ordered),
        p50_ms=round(percentile(ordered, 50), 3),
        p99_ms=round(percentile(ordered, 99), 3),
        max_ms=round(ordered[-1], 3),
        mean_ms=round(sum(ordered) / len(ordered), 3),
    )


def _overlap(a: Interval, b: Interval) -> int:
    """Nanoseconds the two intervals share."""
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def _touches(a: Interval, windows: Sequence[Interval]) -> bool:
    """Whether closed interval ``a`` meets any window (instantaneous windows included)."""
    return any(a[0] <= end and a[1] >= start for start, end in windows)


def _inside(t: int, windows: Sequence[Interval]) -> bool:
    return any(start <= t <= end for start, end in windows)


def _shares(reads: Sequence[ReadRecord]) -> LayerShares:
    counts = {"local": 0, "remote": 0, "function": 0, "error": 0}
    for read in reads:
        counts[read.source] += 1
    total = len(reads)

    def share(name: str) -> float:
        return round(counts[name] / total, 5) if total else 0.0

    return LayerShares(total, share("local"), share("remote"), share("function"), share("error"))


class _Timeline:
    """Per-instance facts indexed for the questions the report asks."""

    def __init__(self, data: RunData) -> None:
        self.data = data
        self.lives: dict[tuple[int, int], InstanceLife] = {
            (life.slot, life.incarnation): life for life in data.lives
        }
        self.unfresh: list[tuple[int, Interval]] = []  # (slot, interval)
        changes: dict[tuple[int, int], list[tuple[int, bool]]] = defaultdict(list)
        for change in data.fresh:
            changes[(change.slot, change.incarnation)].append((change.at_ns, change.fresh))
        for key, items in changes.items():
            end = self._end_of(key)
            for index, (at, fresh) in enumerate(items):
                if fresh:
                    continue
                until = items[index + 1][0] if index + 1 < len(items) else end
                if until > at:
                    self.unfresh.append((key[0], (at, until)))
        self.local_hits: dict[int, list[int]] = defaultdict(list)
        for read in data.reads:
            if read.source == "local":
                self.local_hits[read.slot].append(read.start_ns)

    def _end_of(self, key: tuple[int, int]) -> int:
        life = self.lives.get(key)
        if life is not None and life.exited_ns is not None:
            return min(life.exited_ns, self.data.end_ns)
        return self.data.end_ns

    def instance_time_ns(self) -> int:
        total = 0
        for key, life in self.lives.items():
            if life.ready_ns is None:
                continue
            start = max(life.ready_ns, self.data.t0_ns)
            total += max(0, self._end_of(key) - start)
        return total

    def bypass_ns(self, window: Interval | None = None) -> int:
        if window is None:
            return sum(end - start for _, (start, end) in self.unfresh)
        return sum(_overlap(interval, window) for _, interval in self.unfresh)

    def recovered_at(self, after_ns: int, slots: int) -> int | None:
        """When every slot had served a LOCAL hit at or after ``after_ns``."""
        latest = after_ns
        for slot in range(slots):
            hits = self.local_hits.get(slot, [])
            index = bisect.bisect_left(hits, after_ns)
            if index == len(hits):
                return None
            latest = max(latest, hits[index])
        return latest


_DELTA_KEYS = {
    "bus_reconnects": "bus_reconnects",
    "bus_gaps": "bus_gaps{",
    "errors": "error{",
    "bus_unsynced": "disabled{reason=bus_unsynced}",
}


class _Counters:
    """The periodic scrapes, as step functions per process incarnation."""

    def __init__(self, data: RunData) -> None:
        self._series: dict[tuple[int, int], tuple[list[int], list[dict[str, float]]]] = {}
        for point in sorted(data.scrapes, key=lambda p: p.at_ns):
            times, values = self._series.setdefault((point.slot, point.incarnation), ([], []))
            times.append(point.at_ns)
            values.append(point.values)

    def _at(self, key: tuple[int, int], prefix: str, t: int) -> float:
        times, values = self._series[key]
        index = bisect.bisect_right(times, t) - 1
        if index < 0:
            return 0.0  # not scraped yet: the process had just started, its counters near 0
        return sum(v for k, v in values[index].items() if k.startswith(prefix))

    def deltas(self, start: int, end: int) -> dict[str, float]:
        """Growth of each :data:`_DELTA_KEYS` counter between the last scrapes before
        ``start`` and ``end``, summed over every incarnation."""
        out: dict[str, float] = {}
        for name, prefix in _DELTA_KEYS.items():
            out[name] = sum(
                max(0.0, self._at(key, prefix, end) - self._at(key, prefix, start))
                for key in self._series
            )
        return out


def _latency_samples(data: RunData, windows: Sequence[Interval]) -> list[LatencySample]:
    starts: dict[int, list[int]] = defaultdict(list)
    for write in sorted(data.writes, key=lambda w: w.invalidate_ns or 0):
        if write.invalidate_ns is not None:
            starts[write.entity].append(write.invalidate_ns)
    samples: list[LatencySample] = []
    for tap in data.taps:
        try:
            entity = int(tap.entity_id)
        except ValueError:
            continue
        entity_starts = starts.get(entity)
        if not entity_starts:
            continue
        index = bisect.bisect_right(entity_starts, tap.arrival_ns) - 1
        if index < 0:
            continue
        began = entity_starts[index]
        latency = tap.arrival_ns - began
        if latency > _MATCH_HORIZON_NS:
            continue
        samples.append(
            LatencySample(
                at_s=round((tap.arrival_ns - data.t0_ns) / _NS, 4),
                slot=tap.slot,
                entity=entity,
                latency_ms=round(latency / 1e6, 3),
                in_fault=_touches((began, tap.arrival_ns), windows),
            )
        )
    return samples


def _event_coverage(data: RunData) -> float | None:
    """Share of (acknowledged invalidation, instance live around it) pairs seen by the tap."""
    arrivals: dict[tuple[int, int], list[int]] = defaultdict(list)
    for tap in data.taps:
        with_entity = tap.entity_id.isdigit()
        if with_entity:
            arrivals[(tap.slot, int(tap.entity_id))].append(tap.arrival_ns)
    expected = delivered = 0
    for write in data.writes:
        if write.ack_ns is None or write.invalidate_ns is None:
            continue
        for life in data.lives:
            if life.ready_ns is None or life.ready_ns > write.invalidate_ns:
                continue
            if life.exited_ns is not None and life.exited_ns < write.ack_ns + _NS:
                continue
            expected += 1
            times = arrivals.get((life.slot, write.entity), [])
            index = bisect.bisect_left(times, write.invalidate_ns)
            if index < len(times) and times[index] - write.invalidate_ns < _MATCH_HORIZON_NS:
                delivered += 1
    return round(delivered / expected, 5) if expected else None


def _effect(
    window: FaultWindow, config: RunConfig, timeline: _Timeline, data: RunData
) -> tuple[bool, str]:
    detail = window.detail
    if "error" in detail:
        return False, f"failed: {detail['error']}"
    kind = window.kind
    if kind in ("bus-kill", "clients-kill"):
        killed = int(detail.get("killed", 0))
        return killed > 0, f"{killed} connections killed"
    if kind == "drop":
        dropped = int(detail.get("dropped", 0))
        return dropped > 0, f"{dropped} proxied connections dropped"
    if kind == "restart":
        ok = detail.get("new_pid") not in (None, detail.get("old_pid"))
        return ok, f"redis pid {detail.get('old_pid')} -> {detail.get('new_pid')}"
    if kind == "crash":
        ok = detail.get("new_pid") not in (None, detail.get("old_pid"))
        return ok, (
            f"instance {detail.get('slot')} pid {detail.get('old_pid')} -> {detail.get('new_pid')}"
        )
    if kind == "pause":
        bypass = timeline.bypass_ns((window.start_ns, window.end_ns + _NS)) / _NS
        return bypass > 0, f"{bypass:.2f} instance-s of LOCAL bypass"
    if kind == "latency":
        slow = [
            r.end_ns - r.start_ns
            for r in data.reads
            if window.start_ns <= r.start_ns <= window.end_ns and r.source != "local"
        ]
        slowest = max(slow, default=0) / 1e6
        ok = slowest >= config.latency_ms
        return ok, f"slowest non-LOCAL read {slowest:.0f} ms"
    return True, ""


def _series(
    data: RunData,
    timeline: _Timeline,
    samples: Sequence[LatencySample],
    windows: Sequence[Interval],
) -> list[SecondBucket]:
    t0 = data.t0_ns
    # Reads that began after the end (instances stop when they see the signal) count too.
    last = max([data.end_ns, *(read.start_ns for read in data.reads[-1:])])
    seconds = max(1, math.ceil((last + 1 - t0) / _NS))
    counts = [dict.fromkeys(("local", "remote", "function", "error"), 0) for _ in range(seconds)]
    for read in data.reads:
        index = (read.start_ns - t0) // _NS
        if 0 <= index < seconds:
            counts[index][read.source] += 1
    writes = [0] * seconds
    for write in data.writes:
        index = (write.commit_ns - t0) // _NS
        if 0 <= index < seconds:
            writes[index] += 1
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for sample in samples:
        index = int(sample.at_s)
        if 0 <= index < seconds:
            latencies[index].append(sample.latency_ms)
    live = max(1, data.config.instances)
    buckets: list[SecondBucket] = []
    for index in range(seconds):
        second = (t0 + index * _NS, t0 + (index + 1) * _NS)
        c = counts[index]
        reads = sum(c.values())
        lat = sorted(latencies[index])
        buckets.append(
            SecondBucket(
                t_s=index,
                reads=reads,
                local=c["local"],
                remote=c["remote"],
                function=c["function"],
                errors=c["error"],
                writes=writes[index],
                local_hit_rate=round(c["local"] / reads, 4) if reads else None,
                bypass_share=round(timeline.bypass_ns(second) / (_NS * live), 4),
                latency_p50_ms=round(percentile(lat, 50), 3) if lat else None,
                latency_max_ms=lat[-1] if lat else None,
                in_fault=_touches(second, windows),
            )
        )
    return buckets


def _metrics(data: RunData) -> tuple[list[InstanceMetrics], dict[str, float]]:
    last: dict[tuple[int, int], InstanceMetrics] = {}
    for point in sorted(data.scrapes, key=lambda p: p.at_ns):
        last[(point.slot, point.incarnation)] = InstanceMetrics(
            point.slot, point.incarnation, round((point.at_ns - data.t0_ns) / _NS, 3), point.values
        )
    totals: dict[str, float] = defaultdict(float)
    for metrics in last.values():
        for key, value in metrics.values.items():
            totals[key] += value
    ordered = [last[key] for key in sorted(last)]
    return ordered, dict(sorted(totals.items()))


def _layers_from_metrics(totals: dict[str, float]) -> dict[str, float]:
    def get(key: str) -> float:
        return totals.get(key, 0.0)

    return {
        "local_hits": get("request{layer=local}") - get("miss{layer=local}"),
        "remote_hits": get("request{layer=remote}") - get("miss{layer=remote}"),
        "function_calls": get("fallback_count"),
        "bus_unsynced": get("disabled{reason=bus_unsynced}"),
        "races_refused": get("disabled{reason=invalidated_during_call}"),
        "errors": sum(v for k, v in totals.items() if k.startswith("error{")),
    }


def _slow_calls(data: RunData) -> tuple[int, int, float]:
    """``(slow, judged, slowest_ms)`` over the reads that reached Redis (not LOCAL hits): a
    read is slow when it took longer than ``socket_timeout`` + the function's time + a
    scheduling allowance (DESIGN §6: "result within the configured timeout + function time")."""
    config: RunConfig = data.config
    bound_ns = int((config.socket_timeout + config.function_ms / 1000 + _CALL_SLACK_S) * _NS)
    durations = [r.end_ns - r.start_ns for r in data.reads if r.source in ("remote", "function")]
    slow = sum(1 for d in durations if d > bound_ns)
    return slow, len(durations), max(durations, default=0) / 1e6


def _probe_counts(data: RunData) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for probe in data.cancel_probes:
        counts[probe.outcome] += 1
    return dict(sorted(counts.items()))


def _verdicts(
    data: RunData,
    result: CheckResult,
    faults: Sequence[FaultResult],
    steady_local: float | None,
    outside_local: float | None,
) -> list[Verdict]:
    config: RunConfig = data.config
    crashed = {int(f.detail.get("old_pid", -1)) for f in faults if f.kind == "crash"}
    unexpected = [
        life
        for life in data.lives
        if life.exited_ns is not None and life.exited_ns < data.end_ns and life.pid not in crashed
    ]
    missing = [f for f in faults if not f.took_effect]
    probes = _probe_counts(data)
    lost = probes.get("lost", 0)
    judged = sum(probes.values())
    slow, reached, slowest_ms = _slow_calls(data)
    call_bound_ms = (config.socket_timeout + config.function_ms / 1000) * 1000
    return [
        Verdict(
            f"no stale read beyond the {config.max_staleness_ms:g} ms bound",
            not result.stale,
            f"{len(result.stale)} of {result.constrained} constrained reads",
            "invariant",
            "DESIGN §3.1/§3.3: read started > bound after an acknowledged invalidation",
        ),
        Verdict(
            "REMOTE hits and function results never older than an acknowledged invalidation",
            not result.remote_stale,
            f"{len(result.remote_stale)} reads",
            "invariant",
            "DESIGN §3.1: no bound for the REMOTE layer",
        ),
        Verdict(
            "no error surfaced to callers",
            not result.errors,
            f"{len(result.errors)} of {result.reads} reads",
            "invariant",
            "DESIGN §3.6: fail open",
        ),
        Verdict(
            "no read of a version not yet written",
            not result.future,
            f"{len(result.future)} reads",
            "sanity",
            "clocks and logs are consistent",
        ),
        Verdict(
            "the checker had reads to judge",
            result.constrained > 0,
            f"{result.constrained} constrained reads",
            "sanity",
        ),
        Verdict(
            "every planned fault ran and took effect",
            len(faults) == data.planned_faults and not missing,
            f"{len(faults) - len(missing)} of {data.planned_faults}",
            "sanity",
            "; ".join(f"{f.kind}: {f.effect}" for f in missing),
        ),
        Verdict(
            "no instance exited except by an injected crash",
            not unexpected,
            f"{len(unexpected)} unexpected exits",
            "sanity",
            ", ".join(f"slot {x.slot} pid {x.pid} code {x.exitcode}" for x in unexpected),
        ),
        Verdict(
            "harness roles ran without problems",
            not data.problems,
            f"{len(data.problems)} problems",
            "sanity",
            " | ".join((p.splitlines() or [""])[0] for p in data.problems),
        ),
        Verdict(
            f"calls return within socket_timeout + function time ({call_bound_ms:g} ms)",
            not slow,
            f"{slow} of {reached} non-LOCAL reads slower; slowest {slowest_ms:,.0f} ms",
            "expectation",
            ""
            if not slow
            else f"DESIGN §6 'Redis slow (above timeout)': allowance {_CALL_SLACK_S * 1000:g} ms "
            "for scheduling; a miss awaits the REMOTE read, then the REMOTE write and its "
            "retries (remote_write_attempts), each bounded by socket_timeout only",
        ),
        Verdict(
            "a task cancelled inside a cached call ends cancelled",
            not lost,
            f"{lost} lost of {judged} probes" if judged else "no probes",
            "expectation",
            "" if not lost else _LOST_CANCEL_HINT,
        ),
        Verdict(
            f"LOCAL hit rate outside fault windows > {_HIT_RATE_TARGET:.0%}",
            outside_local is not None and outside_local > _HIT_RATE_TARGET,
            "n/a" if outside_local is None else f"{outside_local:.1%}",
            "target",
            "" if steady_local is None else f"{steady_local:.1%} also leaving out recoveries",
        ),
    ]


def analyze(data: RunData) -> Report:
    """Judge the run and compute every figure of the report."""
    config: RunConfig = data.config
    t0 = data.t0_ns
    result = check(data.reads, data.writes, config.max_staleness_ms)
    timeline = _Timeline(data)
    windows = [(f.start_ns, f.end_ns) for f in data.faults]
    stale_starts = sorted(s.read.start_ns for s in result.stale)

    counters = _Counters(data)
    fault_results: list[FaultResult] = []
    impact: list[Interval] = []
    for window in data.faults:
        recovered = timeline.recovered_at(window.end_ns, config.instances)
        until = recovered if recovered is not None else window.end_ns + _UNRECOVERED_SPAN_NS
        impact.append((window.start_ns, until))
        in_window = [r for r in data.reads if window.start_ns <= r.start_ns <= until]
        local = sum(1 for r in in_window if r.source == "local")
        took_effect, effect = _effect(window, config, timeline, data)
        fault_results.append(
            FaultResult(
                index=window.index,
                kind=window.kind,
                start_s=round((window.start_ns - t0) / _NS, 3),
                duration_s=round((window.end_ns - window.start_ns) / _NS, 3),
                recovery_s=None
                if recovered is None
                else round((recovered - window.end_ns) / _NS, 3),
                reads=len(in_window),
                local_hit_rate=round(local / len(in_window), 4) if in_window else None,
                bypass_s=round(timeline.bypass_ns((window.start_ns, until)) / _NS, 3),
                stale=bisect.bisect_right(stale_starts, until)
                - bisect.bisect_left(stale_starts, window.start_ns),
                # Scrapes come once a second: look from the one before the start to the first
                # one taken a full interval after the recovery.
                metric_deltas=counters.deltas(window.start_ns, until + _SCRAPE_SLACK_NS),
                took_effect=took_effect,
                effect=effect,
                detail=window.detail,
            )
        )

    warm = t0 + int(config.warmup * _NS)
    after_warmup = [r for r in data.reads if r.start_ns >= warm]
    outside = [r for r in after_warmup if not _inside(r.start_ns, windows)]
    steady = [r for r in outside if not _inside(r.start_ns, impact)]
    layers_outside = _shares(outside)
    layers_steady = _shares(steady)

    samples = _latency_samples(data, windows)
    metrics, totals = _metrics(data)
    duration_s = (data.end_ns - t0) / _NS
    writes = data.writes
    via_instance = sum(1 for w in writes if w.ack_ns is not None and w.via != "publisher")
    all_layers = _shares(data.reads)
    instance_time = timeline.instance_time_ns()
    bypass_total = timeline.bypass_ns()
    bypass_in_faults = sum(
        _overlap(interval, window) for _, interval in timeline.unfresh for window in impact
    )
    verdicts = _verdicts(
        data,
        result,
        fault_results,
        layers_steady.local if steady else None,
        layers_outside.local if outside else None,
    )
    return Report(
        parameters=dataclasses.asdict(config),
        t0_ns=t0,
        redis_url=data.redis_url,
        proxy_url=data.proxy_url,
        passed=all(v.ok for v in verdicts if v.kind in ("invariant", "sanity")),
        verdicts=verdicts,
        workload=_workload(data, duration_s, via_instance),
        layers=all_layers,
        layers_outside_faults=layers_outside,
        layers_steady=layers_steady,
        layers_from_metrics=_layers_from_metrics(totals),
        function_calls_per_read=round(all_layers.function, 5),
        latency=latency_stats(s.latency_ms for s in samples),
        latency_outside_faults=latency_stats(s.latency_ms for s in samples if not s.in_fault),
        event_coverage=_event_coverage(data),
        bypass=BypassSummary(
            instance_seconds=round(bypass_total / _NS, 3),
            share=round(bypass_total / instance_time, 5) if instance_time else 0.0,
            outside_faults_s=round(max(0, bypass_total - bypass_in_faults) / _NS, 3),
        ),
        cancel_probes=_probe_counts(data),
        faults=fault_results,
        metrics=metrics,
        metrics_total=totals,
        check=result,
        lives=list(data.lives),
        series=_series(data, timeline, samples, windows),
        latency_samples=samples,
        fault_windows_s=[
            (f.kind, round((f.start_ns - t0) / _NS, 3), round((f.end_ns - t0) / _NS, 3))
            for f in data.faults
        ],
        problems=list(data.problems),
    )


def _workload(data: RunData, duration_s: float, via_instance: int) -> WorkloadSummary:
    writes = data.writes
    restarts = sum(1 for life in data.lives if life.incarnation > 1)
    return WorkloadSummary(
        duration_s=round(duration_s, 3),
        reads=len(data.reads),
        reads_per_s=round(len(data.reads) / duration_s, 1) if duration_s else 0.0,
        writes=len(writes),
        writes_per_s=round(len(writes) / duration_s, 2) if duration_s else 0.0,
        via_publisher=sum(1 for w in writes if w.ack_ns is not None and w.via == "publisher"),
        via_instance=via_instance,
        invalidation_failures=sum(len(w.failures) for w in writes),
        unacknowledged=sum(1 for w in writes if w.ack_ns is None),
        instance_restarts=restarts,
    )
