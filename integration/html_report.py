"""``--html PATH``: the report as one self-contained HTML file (inline CSS and SVG, no script,
no external asset).

It shows what the terminal report shows — verdicts, faults and /metrics as tables, and the
whole terminal text in a ``<pre>`` — plus three charts drawn with :mod:`integration.svg`:

* ``chart-reads``: reads/s (and errors/s) per second of the run;
* ``chart-layers``: the share of each second's reads served by LOCAL, REMOTE and the function;
* ``chart-latency``: the propagation-latency histogram on a log-scaled ms axis, p50/p99 marked.

Fault windows are shaded and labelled on both time charts. Every text embedded is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .model import Report
from .report import fault_table, mark, metric_table, render
from .svg import (
    Frame,
    axes,
    document,
    esc,
    legend,
    linear_ticks,
    log_ticks,
    polyline,
    vline,
    window,
)

__all__ = ["latency_chart", "layers_chart", "reads_chart", "render_html", "write_html"]

_COLORS = {
    "reads": "#1f77b4",
    "errors": "#d62728",
    "local": "#2ca02c",
    "remote": "#ff7f0e",
    "function": "#9467bd",
    "outside": "#1f77b4",
    "in_fault": "#d62728",
    "p50": "#2c3e50",
    "p99": "#c0392b",
}
_BINS_PER_DECADE = 8
_MIN_LATENCY_MS = 0.01

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; }
h1 .pass { color: #1e8449; } h1 .fail { color: #c0392b; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.FAIL td:first-child { color: #c0392b; font-weight: bold; }
tr.WARN td:first-child, tr.miss td:first-child { color: #b9770e; font-weight: bold; }
tr.ok td:first-child { color: #1e8449; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
svg.chart { display: block; margin: 8px 0 20px; background: #fff; }
svg .grid { stroke: #e5e5e5; } svg .frame { fill: none; stroke: #999; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .axis { font-size: 12px; } svg .empty { font-size: 14px; fill: #888; }
svg .fault rect { fill: #d62728; fill-opacity: 0.13; }
svg .fault line { stroke: #d62728; stroke-opacity: 0.6; }
svg .fault text { fill: #a93226; }
"""


def _time_frame(report: Report, y1: float) -> Frame:
    end = max(
        [report.workload.duration_s, *(b.t_s + 1 for b in report.series)]
        + [w[2] for w in report.fault_windows_s]
    )
    return Frame(0.0, max(end, 1.0), 0.0, y1)


def _windows(report: Report, frame: Frame) -> list[str]:
    return [
        window(frame, start, end, f"{index + 1} {kind}", index % 2)
        for index, (kind, start, end) in enumerate(report.fault_windows_s)
    ]


def _seconds(value: float) -> str:
    return f"{value:g}"


def _empty(frame: Frame, text: str) -> str:
    return (
        f'<text class="empty" x="{frame.width / 2:.0f}" y="{frame.height / 2:.0f}" '
        f'text-anchor="middle">{esc(text)}</text>'
    )


def reads_chart(report: Report) -> str:
    """Reads/s and errors/s per second, fault windows shaded."""
    top = max([b.reads for b in report.series], default=0)
    frame = _time_frame(report, max(top * 1.1, 1.0))
    body = _windows(report, frame)
    body += axes(
        frame,
        linear_ticks(frame.x0, frame.x1, 10),
        linear_ticks(0, frame.y1),
        _seconds,
        lambda v: f"{v:,.0f}",
        "seconds since the workload started",
        "reads/s",
    )
    # A bucket covers [t, t + 1): drawn at its middle.
    body.append(
        polyline(frame, [(b.t_s + 0.5, float(b.reads)) for b in report.series], _COLORS["reads"])
    )
    body.append(
        polyline(frame, [(b.t_s + 0.5, float(b.errors)) for b in report.series], _COLORS["errors"])
    )
    body.append(legend(frame, [("reads/s", _COLORS["reads"]), ("errors/s", _COLORS["errors"])]))
    if not report.series:
        body.append(_empty(frame, "no reads recorded"))
    return document(frame, "Reads per second over time", body, "chart-reads")


def layers_chart(report: Report) -> str:
    """Per-second share of reads served by each layer, fault windows shaded."""
    frame = _time_frame(report, 100.0)
    body = _windows(report, frame)
    body += axes(
        frame,
        linear_ticks(frame.x0, frame.x1, 10),
        [0.0, 25.0, 50.0, 75.0, 100.0],
        _seconds,
        lambda v: f"{v:g}%",
        "seconds since the workload started",
        "share of reads",
    )
    for name in ("local", "remote", "function"):
        points: list[tuple[float, float | None]] = []
        for b in report.series:
            count = {"local": b.local, "remote": b.remote, "function": b.function}[name]
            points.append((b.t_s + 0.5, 100.0 * count / b.reads if b.reads else None))
        body.append(polyline(frame, points, _COLORS[name]))
    body.append(
        legend(
            frame,
            [
                ("LOCAL", _COLORS["local"]),
                ("REMOTE", _COLORS["remote"]),
                ("function", _COLORS["function"]),
            ],
        )
    )
    if not report.series:
        body.append(_empty(frame, "no reads recorded"))
    return document(frame, "Hit rate per layer over time", body, "chart-layers")


def _ms_label(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g}"


def latency_chart(report: Report) -> str:
    """Histogram of propagation latencies (log-spaced bins), in and outside faults stacked."""
    values = [(max(s.latency_ms, _MIN_LATENCY_MS), s.in_fault) for s in report.latency_samples]
    title = "Propagation latency distribution (tap arrival - invalidation start)"
    if not values:
        frame = Frame(1.0, 1000.0, 0.0, 1.0, log_x=True)
        body = axes(frame, log_ticks(1.0, 1000.0), [], _ms_label, str, "latency (ms)", "samples")
        body.append(_empty(frame, "no latency samples"))
        return document(frame, title, body, "chart-latency")
    lo = 10 ** math.floor(math.log10(min(v for v, _ in values)))
    hi = 10 ** math.ceil(math.log10(max(v for v, _ in values) * 1.0001))
    bins = max(1, round(math.log10(hi / lo) * _BINS_PER_DECADE))
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)]
    outside = [0] * bins
    inside = [0] * bins
    for value, in_fault in values:
        index = min(bins - 1, int(math.log10(value / lo) / math.log10(hi / lo) * bins))
        (inside if in_fault else outside)[index] += 1
    top = max(a + b for a, b in zip(outside, inside, strict=True))
    frame = Frame(lo, hi, 0.0, top * 1.1, log_x=True)
    body = axes(
        frame,
        log_ticks(lo, hi),
        linear_ticks(0, frame.y1),
        _ms_label,
        lambda v: f"{v:,.0f}",
        "latency (ms, log scale)",
        "samples",
    )
    for index in range(bins):
        x0, x1 = frame.x(edges[index]) + 0.5, frame.x(edges[index + 1]) - 0.5
        base = 0.0
        for count, key in ((outside[index], "outside"), (inside[index], "in_fault")):
            if count:
                y_top, y_base = frame.y(base + count), frame.y(base)
                body.append(
                    f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{max(x1 - x0, 1):.1f}" '
                    f'height="{y_base - y_top:.1f}" fill="{_COLORS[key]}" fill-opacity="0.75">'
                    f"<title>{esc(_ms_label(edges[index]))} to {esc(_ms_label(edges[index + 1]))}"
                    f" ms: {count}</title></rect>"
                )
                base += count
    stats = report.latency
    if stats.p50_ms is not None:
        body.append(
            vline(frame, max(stats.p50_ms, lo), f"p50 {stats.p50_ms:,.1f} ms", _COLORS["p50"])
        )
    if stats.p99_ms is not None:
        body.append(
            vline(frame, max(stats.p99_ms, lo), f"p99 {stats.p99_ms:,.1f} ms", _COLORS["p99"])
        )
    body.append(
        legend(
            frame,
            [("outside faults", _COLORS["outside"]), ("during faults", _COLORS["in_fault"])],
        )
    )
    return document(frame, title, body, "chart-latency")


def _html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int], marks: bool = False
) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        css = f' class="{esc(row[0])}"' if marks and row else ""
        lines.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def render_html(report: Report) -> str:
    """The whole HTML document."""
    verdict = "PASS" if report.passed else "FAIL"
    verdict_rows = [
        [mark(v.ok, v.kind), v.kind, v.name, v.value, "" if v.ok else v.detail]
        for v in report.verdicts
    ]
    fault_headers, fault_rows = fault_table(report)
    metric_headers, metric_rows = metric_table(report)
    w = report.workload
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>gcache integration run — {verdict}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>gcache multi-instance integration run — <span class="{verdict.lower()}">'
        f"{verdict}</span></h1>",
        f"<p>{w.duration_s:.1f} s, {w.reads:,} reads ({w.reads_per_s:,.0f}/s), {w.writes:,} "
        f"writes, instance restarts {w.instance_restarts}; redis {esc(report.redis_url)}, "
        f"proxy {esc(report.proxy_url)}</p>",
        "<h2>Verdicts</h2>",
        _html_table(["", "kind", "check", "value", "detail"], verdict_rows, set(), marks=True),
    ]
    if report.problems:
        parts.append("<h3>Problems</h3><ul>")
        parts += [f"<li><pre>{esc(p)}</pre></li>" for p in report.problems]
        parts.append("</ul>")
    parts += [
        "<h2>Reads over time</h2>",
        reads_chart(report),
        "<h2>Hit rate per layer over time</h2>",
        layers_chart(report),
        "<h2>Propagation latency</h2>",
        latency_chart(report),
        "<h2>Faults</h2>",
        _html_table(fault_headers, fault_rows, set(range(11)) - {1}),
        "<h2>From the instances' /metrics (last scrape of each process)</h2>",
        _html_table(metric_headers, metric_rows, set(range(1, 9))),
        "<h2>Terminal report</h2>",
        f"<pre>{esc(render(report))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_html(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(render_html(report))
