"""What a run prints (a table for people) and writes (a JSON document for tools)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .machine import Machine
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
        elif t.unit == "/s":
            rounds = f"{t.low:,.0f}-{t.high:,.0f}/s"
        else:
            rounds = f"{t.low:.3f}x-{t.high:.3f}x"
        rows.append((t.title, value, limit, "PASS" if t.met else "MISS", rounds))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
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
        },
        "machine": machine.as_dict(),
        "value_bytes": result.value_bytes,
        "scenarios": scenarios,
        "skipped": {s.name: {"title": s.title, "reason": s.reason} for s in result.skipped},
        "throughput": throughput,
        "propagation": propagation,
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
