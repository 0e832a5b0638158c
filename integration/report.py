"""Presenting a :class:`~integration.model.Report`: the terminal tables and the JSON file.

The terminal report is meant to be read in a design review: the run's parameters first, then
the verdicts (invariants, harness sanity, targets), the workload and layer figures, propagation
and bypass, one row per fault, and the figures scraped from the instances' Prometheus
endpoints. ``--json`` writes the whole :class:`Report` (series and samples included).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from .model import LatencyStats, LayerShares, Report, StaleRead

__all__ = ["fault_table", "mark", "metric_table", "render", "to_json", "write_json"]

_EXAMPLES = 10


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  " + "  ".join(parts).rstrip()

    rule = "  " + "  ".join("─" * w for w in widths)
    return [line(headers), rule, *(line(row) for row in rows)]


def _mark(ok: bool, kind: str) -> str:
    if ok:
        return "ok"
    return {"invariant": "FAIL", "sanity": "FAIL", "expectation": "WARN"}.get(kind, "miss")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _latency(stats: LatencyStats) -> str:
    if not stats.count:
        return "no samples"
    return (
        f"p50 {_ms(stats.p50_ms)} ms   p99 {_ms(stats.p99_ms)} ms   max {_ms(stats.max_ms)} ms"
        f"   ({stats.count:,} samples)"
    )


def _layers(shares: LayerShares) -> str:
    return (
        f"LOCAL {_pct(shares.local)}   REMOTE {_pct(shares.remote)}   "
        f"function {_pct(shares.function)}   error {_pct(shares.error)}   "
        f"({shares.reads:,} reads)"
    )


def _stale_line(stale: StaleRead) -> str:
    read = stale.read
    return (
        f"    instance {read.slot}.{read.incarnation} entity {read.entity}: read v{read.version} "
        f"({read.source}) {stale.late_ms:,.0f} ms after v{stale.write.version} was acknowledged "
        f"(via {stale.write.via}); required v{stale.required_version}"
    )


def render(report: Report) -> str:
    """The terminal report."""
    p = report.parameters
    out: list[str] = []
    verdict = "PASS" if report.passed else "FAIL"
    out.append(f"gcache multi-instance integration run — {verdict}")
    out.append("")
    out.append("Parameters")
    faults = ",".join(p["faults"]) if p["faults"] else "none"
    out += [
        f"  instances {p['instances']}   writers {p['writers']}   entities {p['entities']} "
        f"(zipf {p['zipf']:g})   seed {p['seed']}",
        f"  reads {p['read_rate']:g}/s per instance   writes {p['write_rate']:g}/s "
        f"({p['via_instance']:.0%} via an instance's ainvalidate)   duration {p['duration']:g} s "
        f"(warm-up {p['warmup']:g} s)",
        f"  transport {p['transport']}   max staleness {p['max_staleness_ms']:g} ms   "
        f"future buffer {p['future_buffer_ms']} ms   TTL LOCAL {p['local_ttl']:g} s / "
        f"REMOTE {p['remote_ttl']:g} s   socket timeout {p['socket_timeout']:g} s   "
        f"function {p['function_ms']:g} ms",
        f"  faults {faults}",
        f"  redis {report.redis_url}   proxy {report.proxy_url}",
    ]
    out.append("")
    out.append("Verdicts")
    rows = [[_mark(v.ok, v.kind), v.kind, v.name, v.value] for v in report.verdicts]
    out += _table(["", "kind", "check", "value"], rows, set())
    for v in report.verdicts:
        if not v.ok and v.detail:
            out.append(f"  {v.name}: {v.detail}")
    check = report.check
    if check.stale:
        out.append(f"  stale reads beyond the bound ({len(check.stale)}), first {_EXAMPLES}:")
        out += [_stale_line(s) for s in check.stale[:_EXAMPLES]]
    if check.remote_stale:
        out.append(f"  stale REMOTE/function reads ({len(check.remote_stale)}):")
        out += [_stale_line(s) for s in check.remote_stale[:_EXAMPLES]]
    if check.errors:
        out.append(f"  errors surfaced ({len(check.errors)}), first {_EXAMPLES}:")
        out += [
            f"    instance {r.slot}.{r.incarnation} entity {r.entity}: {r.error}"
            for r in check.errors[:_EXAMPLES]
        ]
    for problem in report.problems:
        out.append(f"  problem: {problem}")

    w = report.workload
    out.append("")
    out.append("Workload")
    out += [
        f"  {w.duration_s:.1f} s   {w.reads:,} reads ({w.reads_per_s:,.0f}/s)   "
        f"{w.writes:,} writes ({w.writes_per_s:.1f}/s)   instance restarts {w.instance_restarts}",
        f"  invalidations acknowledged: {w.via_publisher:,} via Publisher, {w.via_instance:,} "
        f"via instances   failed attempts (then retried) {w.invalidation_failures}   "
        f"never acknowledged {w.unacknowledged}",
    ]
    out.append("")
    out.append("Layers")
    out += [
        f"  all reads              {_layers(report.layers)}",
        f"  outside fault windows  {_layers(report.layers_outside_faults)}",
        f"  ... and recoveries     {_layers(report.layers_steady)}",
        f"  function calls per read {report.function_calls_per_read:.4f}",
    ]
    m = report.layers_from_metrics
    out.append(
        f"  from /metrics: LOCAL hits {m['local_hits']:,.0f}   REMOTE hits {m['remote_hits']:,.0f}"
        f"   function calls {m['function_calls']:,.0f}   bus_unsynced bypasses "
        f"{m['bus_unsynced']:,.0f}   errors counted {m['errors']:,.0f}"
    )
    out.append(
        f"  read-before-write races closed: {m['races_refused']:,.0f} function results refused "
        "by a watermark (invalidated_during_call)"
    )
    out.append("")
    out.append("Propagation (tap arrival - invalidation start)")
    out += [
        f"  all                    {_latency(report.latency)}",
        f"  outside fault windows  {_latency(report.latency_outside_faults)}",
        f"  events seen by taps    {_pct(report.event_coverage)} of (invalidation, live "
        "instance) pairs",
    ]
    if report.cancel_probes:
        out.append("")
        out.append("Cancellation probes (a cached call started as a task, cancelled after 0-3 ms)")
        out.append(
            "  " + "   ".join(f"{name} {count:,}" for name, count in report.cancel_probes.items())
        )
    b = report.bypass
    out.append("")
    out.append("LOCAL bypass (cache.bus.is_fresh() false)")
    out.append(
        f"  {b.instance_seconds:.2f} instance-s ({b.share:.2%} of instance time), "
        f"{b.outside_faults_s:.2f} s of it outside faults and recoveries"
    )

    out.append("")
    out.append("Faults")
    headers, fault_rows = fault_table(report)
    out += _table(headers, fault_rows, set(range(11)) - {1})
    out.append(
        "  reconn/gaps/errors: growth of gcache_bus_reconnects_total, gcache_bus_gaps_total and "
        "gcache_error_counter_total from the fault to its recovery (scraped once a second)"
    )

    out.append("")
    out.append("From the instances' /metrics (last scrape of each process)")
    headers, metric_rows = metric_table(report)
    out += _table(headers, metric_rows, set(range(1, 9)))
    gaps = {k: v for k, v in report.metrics_total.items() if k.startswith("bus_gaps{")}
    errors = {k: v for k, v in report.metrics_total.items() if k.startswith("error{")}
    disabled = {k: v for k, v in report.metrics_total.items() if k.startswith("disabled{")}
    for title, values in (("gaps", gaps), ("errors", errors), ("disabled", disabled)):
        if values:
            text = "   ".join(f"{k[k.index('=') + 1 : -1]} {v:,.0f}" for k, v in values.items())
            out.append(f"  {title} by label: {text}")
    return "\n".join(out)


def fault_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the faults table (one row per fault window)."""
    rows = [
        [
            str(f.index + 1),
            f.kind,
            f"{f.start_s:.1f}",
            f"{f.duration_s:.2f}",
            "not recovered" if f.recovery_s is None else f"{f.recovery_s:.3f}",
            f"{f.bypass_s:.2f}",
            f"+{f.metric_deltas.get('bus_reconnects', 0):,.0f}",
            f"+{f.metric_deltas.get('bus_gaps', 0):,.0f}",
            f"+{f.metric_deltas.get('errors', 0):,.0f}",
            f"{f.reads:,}",
            _pct(f.local_hit_rate),
            str(f.stale),
            f.effect,
        ]
        for f in report.faults
    ]
    headers = ["#", "fault", "at s", "window s", "recovery s", "bypass s", "reconn", "gaps",
               "errors", "reads", "LOCAL", "stale", "evidence"]  # fmt: skip
    return headers, rows


def metric_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-process /metrics table (a total row last)."""
    rows = [_metric_row(f"{x.slot}.{x.incarnation}", x.values) for x in report.metrics]
    rows.append(_metric_row("total", report.metrics_total))
    headers = ["inst", "req local", "req remote", "miss remote", "errors", "bus_unsynced",
               "reconnects", "gaps", "events"]  # fmt: skip
    return headers, rows


def mark(ok: bool, kind: str) -> str:
    """The verdict column: ``ok``, ``FAIL``, ``WARN`` or ``miss``."""
    return _mark(ok, kind)


def _metric_row(name: str, values: dict[str, float]) -> list[str]:
    def get(key: str) -> float:
        return values.get(key, 0.0)

    def prefixed(prefix: str) -> float:
        return sum(v for k, v in values.items() if k.startswith(prefix))

    return [
        name,
        f"{get('request{layer=local}'):,.0f}",
        f"{get('request{layer=remote}'):,.0f}",
        f"{get('miss{layer=remote}'):,.0f}",
        f"{prefixed('error{'):,.0f}",
        f"{get('disabled{reason=bus_unsynced}'):,.0f}",
        f"{get('bus_reconnects'):,.0f}",
        f"{prefixed('bus_gaps{'):,.0f}",
        f"{prefixed('bus_events{'):,.0f}",
    ]


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (every dataclass field, series and samples included)."""
    data: dict[str, Any] = dataclasses.asdict(report)
    return data


def write_json(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(to_json(report), file, indent=1)
        file.write("\n")
