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


def _target_rows(targets: Sequence[TargetResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for t in targets:
        if t.unit == "us":
            value, limit = f"{t.value:.3f} us", f"<= {t.limit:.3f} us"
            rounds = f"{t.low:.3f}-{t.high:.3f} us"
        else:
            value, limit = f"{t.value:.3f}x", f"<= {t.limit:.3f}x"
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
        "",
        *_table(
            ("target", "value", "limit", "result", "rounds"),
            _target_rows(targets),
            right={1, 2},
        ),
    ]
    return "\n".join(lines)


def to_json(
    result: RunResult, targets: Sequence[TargetResult], machine: Machine
) -> dict[str, object]:
    """Every figure of the run, in nanoseconds per call (ratios are plain numbers)."""
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
    return {
        "plan": {
            "name": result.plan.name,
            "rounds": result.plan.rounds,
            "local_calls": result.plan.local_calls,
            "redis_calls": result.plan.redis_calls,
        },
        "machine": machine.as_dict(),
        "value_bytes": result.value_bytes,
        "scenarios": scenarios,
        "targets": {
            t.name: {
                "title": t.title,
                "value": t.value,
                "limit": t.limit,
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
