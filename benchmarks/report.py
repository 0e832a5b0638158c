"""What a run prints (a table for people) and writes (a JSON document for tools)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .fresh_read import NEVER_STREAK
from .machine import Machine
from .not_applicable import NOT_APPLICABLE
from .runner import RunResult
from .targets import TargetResult

__all__ = ["render", "to_json", "write_json"]


def _us(ns: float, reference_ns: float) -> str:
    """Microseconds, with as many decimals as the row's magnitude needs (one format per row)."""
    us = ns / 1000
    return f"{us:.3f}" if reference_ns < 10_000 else f"{us:.1f}"


def _scenario_rows(result: RunResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, scenario in result.scenarios.items():
        s = scenario.summary
        ratio = result.versus_baseline(name)
        versus = ""
        if ratio is not None and scenario.baseline is not None:
            base = result.scenarios[scenario.baseline].title
            versus = f"{ratio.median:.2f}x {base} ({ratio.minimum:.2f}-{ratio.maximum:.2f})"
        rows.append(
            (
                scenario.title,
                f"{scenario.calls:,}",
                _us(s.median, s.median),
                f"{_us(s.minimum, s.median)}-{_us(s.maximum, s.median)}",
                _us(s.iqr, s.median),
                versus,
            )
        )
    return rows


def _propagation_rows(result: RunResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, latency in result.propagation.items():
        p = latency.percentiles
        ratio = result.propagation_p99_ratio(name)
        versus = ""
        if ratio is not None and latency.baseline is not None:
            versus = f"{ratio:.2f}x {result.propagation[latency.baseline].title}"
        rows.append(
            (
                latency.title,
                f"{p.count:,}",
                f"{p.p50 / 1000:.0f}",
                f"{p.p99 / 1000:.0f}",
                f"{p.maximum / 1000:.0f}",
                versus,
            )
        )
    return rows


def _throughput_rows(result: RunResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for rate in result.throughput.values():
        s = rate.summary
        rows.append(
            (
                rate.title,
                f"{rate.per_round:,} {rate.unit}",
                f"{s.median:,.0f}",
                f"{s.minimum:,.0f}-{s.maximum:,.0f}",
                f"{1e9 / s.median / 1000:.2f}",
            )
        )
    return rows


def _figure(value: float, unit: str) -> str:
    if unit == "us":
        return f"{value:.3f} us"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "calls":
        return f"{value:,.0f} calls"
    if unit == "B":
        return f"{value:,.0f} B"
    return f"{value:.3f}x"


def _target_rows(targets: Sequence[TargetResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for t in targets:
        value = _figure(t.value, t.unit)
        limit = f"{t.comparison} {_figure(t.limit, t.unit)}"
        if t.low is None or t.high is None:
            rounds = "(no rounds)"
        elif t.unit == "us":
            rounds = f"{t.low:.3f}-{t.high:.3f} us"
        elif t.unit in ("/s", "calls"):
            rounds = f"{t.low:,.0f}-{_figure(t.high, t.unit)}"
        else:
            rounds = f"{t.low:.3f}x-{t.high:.3f}x"
        rows.append((t.title, value, limit, "PASS" if t.met else "MISS", rounds))
    return rows


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = (
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        )
        return "  ".join(cells).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def render(result: RunResult, targets: Sequence[TargetResult], machine: Machine) -> str:
    """The human-readable report."""
    plan = result.plan
    lines = [
        f"gcache benchmarks ({plan.name}): {plan.rounds} rounds; per round "
        f"{plan.local_calls:,} calls on paths without I/O, {plan.redis_calls:,} on Redis paths",
        machine.summary(),
        f"value: {result.value_bytes} bytes in Redis; metrics on (private registry); GC on; "
        "private redis-server on loopback",
        "",
        "per-call time in microseconds: median over rounds, min-max of rounds, IQR of rounds;",
        "'vs' is the median of round-by-round ratios to the baseline (min-max of rounds)",
        "",
        *_table(
            ("scenario", "calls/round", "median", "min-max", "IQR", "vs baseline"),
            _scenario_rows(result),
            right={1, 2, 3, 4},
        ),
        *(f"skipped: {s.title}: {s.reason}" for s in result.skipped),
        "",
        *_bus_lines(result),
        "",
        *_peer_lines(result),
        "",
        *_table(
            ("target", "value", "limit", "result", "rounds"),
            _target_rows(targets),
            right={1, 2},
        ),
    ]
    return "\n".join(lines)


def _bus_lines(result: RunResult) -> list[str]:
    plan = result.plan
    return [
        f"invalidation bus throughput, {plan.throughput_rounds} rounds: median rate over rounds,",
        "min-max of rounds, and the median's cost per item",
        "",
        *_table(
            ("scenario", "per round", "median /s", "min-max /s", "us/item"),
            _throughput_rows(result),
            right={1, 2, 3, 4},
        ),
        "",
        f"invalidation bus propagation to {plan.replicas} other processes, "
        f"{plan.invalidations} invalidations each: microseconds from just before the",
        "publish to each process's LOCAL layer dropping the value (raw: its subscriber having "
        "the message);",
        "'vs' is p99 over the baseline's p99",
        "",
        *_table(
            ("scenario", "samples", "p50", "p99", "max", "vs baseline"),
            _propagation_rows(result),
            right={1, 2, 3, 4},
        ),
    ]


def _fresh_figure(trials: int, never: int, p50_ns: float | None, p99_ns: float | None) -> str:
    if p50_ns is None or p99_ns is None:
        return f"never (0 of {trials} trials)"
    seen = f"{p50_ns / 1e6:.2f} / {p99_ns / 1e6:.2f} ms"
    return seen if not never else f"{seen}; never in {never} of {trials} trials"


def _peer_lines(result: RunResult) -> list[str]:
    plan = result.plan
    stampede_rows = [
        (
            s.title,
            f"{s.callers:,}",
            ", ".join(str(c) for c in s.calls),
            f"{s.elapsed.median / 1e6:.1f}",
        )
        for s in result.stampedes.values()
    ]
    fresh_rows = []
    for f in result.fresh_reads.values():
        p = f.percentiles
        fresh_rows.append(
            (
                f.title,
                f"{f.trials}",
                _fresh_figure(
                    f.trials, f.never, None if p is None else p.p50, None if p is None else p.p99
                ),
                "-" if p is None else f"{p.maximum / 1e6:.2f}",
            )
        )
    memory_rows = [
        (m.title, f"{m.entries:,}", f"{m.overhead_per_entry:,.0f}", m.bound)
        for m in result.memory.values()
    ]
    b = result.bound_check
    deadline = next(iter(result.fresh_reads.values())).deadline_sec if result.fresh_reads else 0
    return [
        f"1,000 concurrent misses of one key on one event loop, {plan.stampede_rounds} round(s): "
        "function calls per round",
        "(1 = single-flight) and the median wall time of the stampede",
        "",
        *_table(
            ("contender", "callers", "calls per round", "median ms"),
            stampede_rows,
            right={1, 3},
        ),
        "",
        "cross-process freshness, writer and reader in two processes sharing only Redis: "
        "after the writer's update",
        "(database SET + invalidation through the library), time until the reader is served "
        "the new value, p50 / p99;",
        f"read every 1 ms, deadline {deadline:g} s (else 'never'; retired after {NEVER_STREAK} "
        "nevers without a sample)",
        "",
        *_table(("contender", "trials", "p50 / p99", "max ms"), fresh_rows, right={1, 3}),
        "",
        "LOCAL layer memory: resident bytes per entry beyond the value (the value is one object "
        "allocated before",
        "the fill); one process per contender",
        "",
        *_table(("contender", "entries", "bytes/entry", "bounded by"), memory_rows, right={1, 2}),
        f"gcache with max_local_bytes={b.max_bytes:,}, offered {b.entries_offered:,} entries: "
        f"held {b.entries_held:,}, {b.bytes_accounted:,} bytes accounted, "
        f"RSS +{b.rss_delta_bytes:,}",
        "",
        "not applicable:",
        *(f"  {scenario}: {who}: n/a: {why}" for scenario, who, why in NOT_APPLICABLE),
    ]


def to_json(
    result: RunResult, targets: Sequence[TargetResult], machine: Machine
) -> dict[str, object]:
    """Every figure of the run: per-call scenarios in nanoseconds per call, propagation in
    nanoseconds per sample, throughput in items per second (ratios are plain numbers)."""
    scenarios: dict[str, object] = {}
    for name, scenario in result.scenarios.items():
        s = scenario.summary
        ratio = result.versus_baseline(name)
        scenarios[name] = {
            "title": scenario.title,
            "median_ns": s.median,
            "min_ns": s.minimum,
            "max_ns": s.maximum,
            "q1_ns": s.q1,
            "q3_ns": s.q3,
            "iqr_ns": s.iqr,
            "rounds": len(scenario.per_call_ns),
            "calls": scenario.calls,
            "per_round_ns": list(scenario.per_call_ns),
            "baseline": scenario.baseline,
            "vs_baseline": None
            if ratio is None
            else {"median": ratio.median, "min": ratio.minimum, "max": ratio.maximum},
        }
    throughput: dict[str, object] = {}
    for name, rate in result.throughput.items():
        s = rate.summary
        throughput[name] = {
            "title": rate.title,
            "unit": rate.unit,
            "per_round": rate.per_round,
            "rounds": len(rate.elapsed_ns),
            "median_per_s": s.median,
            "min_per_s": s.minimum,
            "max_per_s": s.maximum,
            "per_round_per_s": list(rate.rates),
            "per_round_elapsed_ns": list(rate.elapsed_ns),
        }
    propagation: dict[str, object] = {}
    for name, latency in result.propagation.items():
        p = latency.percentiles
        propagation[name] = {
            "title": latency.title,
            "replicas": latency.replicas,
            "invalidations": latency.invalidations,
            "samples": p.count,
            "p50_ns": p.p50,
            "p99_ns": p.p99,
            "max_ns": p.maximum,
            "baseline": latency.baseline,
            "p99_vs_baseline": result.propagation_p99_ratio(name),
        }
    plan = result.plan
    return {
        "plan": {
            "name": plan.name,
            "rounds": plan.rounds,
            "local_calls": plan.local_calls,
            "redis_calls": plan.redis_calls,
            "replicas": plan.replicas,
            "invalidations": plan.invalidations,
            "throughput_rounds": plan.throughput_rounds,
            "apply_events": plan.apply_events,
            "publish_batches": plan.publish_batches,
            "stampede_rounds": plan.stampede_rounds,
            "fresh_trials": plan.fresh_trials,
            "fresh_deadline_sec": plan.fresh_deadline_sec,
            "memory_entries": plan.memory_entries,
        },
        "machine": machine.as_dict(),
        "value_bytes": result.value_bytes,
        "scenarios": scenarios,
        "skipped": {s.name: {"title": s.title, "reason": s.reason} for s in result.skipped},
        "throughput": throughput,
        "propagation": propagation,
        "stampede": {
            name: {
                "title": st.title,
                "callers": st.callers,
                "calls_per_round": list(st.calls),
                "elapsed_ns_per_round": list(st.elapsed_ns),
            }
            for name, st in result.stampedes.items()
        },
        "fresh_reads": {
            name: {
                "title": f.title,
                "trials": f.trials,
                "never": f.never,
                "deadline_sec": f.deadline_sec,
                "samples": len(f.latencies_ns),
                "p50_ns": None if f.percentiles is None else f.percentiles.p50,
                "p99_ns": None if f.percentiles is None else f.percentiles.p99,
                "max_ns": None if f.percentiles is None else f.percentiles.maximum,
            }
            for name, f in result.fresh_reads.items()
        },
        "local_memory": {
            name: {
                "title": m.title,
                "entries": m.entries,
                "rss_delta_bytes": m.rss_delta_bytes,
                "overhead_bytes_per_entry": m.overhead_per_entry,
                "bound": m.bound,
            }
            for name, m in result.memory.items()
        },
        "local_bound_check": {
            "max_bytes": result.bound_check.max_bytes,
            "entries_offered": result.bound_check.entries_offered,
            "entries_held": result.bound_check.entries_held,
            "bytes_accounted": result.bound_check.bytes_accounted,
            "rss_delta_bytes": result.bound_check.rss_delta_bytes,
        },
        "not_applicable": [
            {"scenario": scenario, "contender": who, "reason": why}
            for scenario, who, why in NOT_APPLICABLE
        ],
        "targets": {
            t.name: {
                "title": t.title,
                "value": t.value,
                "limit": t.limit,
                "comparison": t.comparison,
                "unit": t.unit,
                "min": t.low,
                "max": t.high,
                "met": t.met,
            }
            for t in targets
        },
    }


def write_json(path: Path, document: dict[str, object]) -> None:
    """Write ``document`` to ``path``, creating its directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
