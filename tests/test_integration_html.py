"""``--html``: the self-contained HTML report, built from a synthetic :class:`Report` (the real
short run's HTML is checked in ``test_integration_harness.py``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from integration.html_report import render_html, write_html
from integration.model import (
    BypassSummary,
    CheckResult,
    FaultResult,
    InstanceMetrics,
    LatencySample,
    LatencyStats,
    LayerShares,
    Report,
    SecondBucket,
    Verdict,
    WorkloadSummary,
)

EVIL = '<script>alert("x")</script> & co'


def synthetic_report() -> Report:
    faults = [("clients-kill", 2.0, 2.01), ("pause", 5.0, 7.5)]
    series = [
        SecondBucket(
            t_s=t,
            reads=900,
            local=700 if t != 6 else 0,
            remote=150,
            function=50 if t != 6 else 750,
            errors=0,
            writes=20,
            local_hit_rate=0.78,
            bypass_share=0.0,
            latency_p50_ms=1.5,
            latency_max_ms=4.0,
            in_fault=t in (2, 5, 6, 7),
        )
        for t in range(10)
    ]
    samples = [
        LatencySample(at_s=i / 10, slot=i % 3, entity=i, latency_ms=0.5 * 1.07**i, in_fault=i > 90)
        for i in range(100)
    ]
    shares = LayerShares(reads=9000, local=0.7, remote=0.2, function=0.1, error=0.0)
    latency = LatencyStats(count=100, p50_ms=14.0, p99_ms=400.0, max_ms=410.0, mean_ms=50.0)
    return Report(
        parameters={
            "instances": 3,
            "writers": 1,
            "entities": 300,
            "zipf": 1.1,
            "seed": 1,
            "read_rate": 300.0,
            "write_rate": 20.0,
            "via_instance": 0.2,
            "duration": 10.0,
            "warmup": 2.0,
            "transport": "streams",
            "max_staleness_ms": 500.0,
            "future_buffer_ms": 0,
            "local_ttl": 30.0,
            "remote_ttl": 300.0,
            "socket_timeout": 0.5,
            "function_ms": 5.0,
            "faults": [k for k, _, _ in faults],
        },
        t0_ns=0,
        redis_url="redis://127.0.0.1:1/0",
        proxy_url="redis://127.0.0.1:2/0",
        passed=True,
        verdicts=[
            Verdict(EVIL, True, "0 reads"),
            Verdict("LOCAL hit rate > 80%", False, "72%", "target", "detail & more"),
        ],
        workload=WorkloadSummary(10.0, 9000, 900.0, 200, 20.0, 160, 40, 0, 0, 0),
        layers=shares,
        layers_outside_faults=shares,
        layers_steady=shares,
        layers_from_metrics={
            "local_hits": 6300.0,
            "remote_hits": 1800.0,
            "function_calls": 900.0,
            "bus_unsynced": 10.0,
            "errors": 0.0,
            "races_refused": 1.0,
        },
        function_calls_per_read=0.1,
        latency=latency,
        latency_outside_faults=latency,
        event_coverage=1.0,
        bypass=BypassSummary(1.0, 0.03, 0.0),
        cancel_probes={"honored": 10},
        faults=[
            FaultResult(
                index=i,
                kind=kind,
                start_s=start,
                duration_s=end - start,
                recovery_s=0.2,
                reads=100,
                local_hit_rate=0.5,
                bypass_s=0.1,
                stale=0,
                metric_deltas={"bus_reconnects": 3.0},
                took_effect=True,
                effect=f"evidence <{kind}>",
                detail={},
            )
            for i, (kind, start, end) in enumerate(faults)
        ],
        metrics=[InstanceMetrics(0, 1, 9.9, {"request{layer=local}": 100.0})],
        metrics_total={"request{layer=local}": 100.0},
        check=CheckResult(bound_ms=500.0, reads=9000, constrained=5000),
        lives=[],
        series=series,
        latency_samples=samples,
        fault_windows_s=faults,
        problems=[],
    )


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str, fault_kinds: list[str]) -> None:
    """What both the synthetic and the real report must show."""
    parser = _Collect()
    parser.feed(text)
    svg_ids = {attrs.get("id") for tag, attrs in parser.tags if tag == "svg"}
    assert {"chart-reads", "chart-layers", "chart-latency"} <= svg_ids
    assert not [a for t, a in parser.tags if t in ("script", "link", "img")]
    assert not re.search(r'(src|href)="https?:', text)
    # Each time chart shades and labels every fault window.
    for chart in ("chart-reads", "chart-layers"):
        svg = re.search(rf'<svg[^>]*id="{chart}".*?</svg>', text, re.S)
        assert svg is not None
        assert svg.group(0).count('<g class="fault">') == len(fault_kinds)
        for index, kind in enumerate(fault_kinds):
            assert f">{index + 1} {kind}</text>" in svg.group(0)
    latency = re.search(r'<svg[^>]*id="chart-latency".*?</svg>', text, re.S)
    assert latency is not None
    assert "p50 " in latency.group(0) and "p99 " in latency.group(0)
    assert "log scale" in latency.group(0)
    joined = "".join(parser.text)
    assert "Verdicts" in joined and "Faults" in joined


def test_html_report_has_the_charts_and_escapes(tmp_path: Path) -> None:
    report = synthetic_report()
    path = tmp_path / "report.html"
    write_html(report, str(path))
    text = path.read_text(encoding="utf-8")
    check_html(text, ["clients-kill", "pause"])
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    assert "evidence &lt;pause&gt;" in text
    assert text.count("<polyline") >= 5  # reads, errors, LOCAL, REMOTE, function


def test_html_report_without_data() -> None:
    report = synthetic_report()
    report.series = []
    report.latency_samples = []
    report.fault_windows_s = []
    report.faults = []
    text = render_html(report)
    assert "no latency samples" in text and "no reads recorded" in text
    assert text.count("<svg") == 3
