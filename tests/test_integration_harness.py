"""The multi-instance harness (``python -m integration``), run for real but short.

``test_short_run_with_every_fault`` starts 3 instance processes, a writer and the fault
injector against a private redis-server, injects every fault once, and checks the report:
the invariants held (no stale read beyond the bound, no error surfaced) and every fault really
happened — connections were killed and the subscribers reconnected, Redis restarted and the
instances saw the gap, a pause made them bypass LOCAL, an instance was killed and came back.
Only event counts are asserted, never timings (DESIGN §7: timing thresholds belong to
benchmarks), so the test holds on a small, busy machine.

The proxy the harness puts between instances and Redis is tested on its own too.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import Redis

from integration.config import FAULT_KINDS
from integration.proxy import Proxy
from integration.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
INSTANCES = 3
FATAL = ("invariant", "sanity")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One short harness run with every fault, shared by the assertions below."""
    out = tmp_path_factory.mktemp("integration") / "report.json"
    command = [
        sys.executable,
        "-m",
        "integration",
        "--instances", str(INSTANCES),
        "--duration", "16",
        "--warmup", "2",
        "--read-rate", "150",
        "--write-rate", "15",
        "--entities", "300",
        "--max-staleness-ms", "200",
        "--faults", "all",
        "--seed", "3",
        "--json", str(out),
        "--html", str(out.with_suffix(".html")),
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=170, check=False
    )
    elapsed = time.monotonic() - started
    assert out.exists(), f"no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    data: dict[str, Any] = json.loads(out.read_text())
    data["_exit"] = result.returncode
    data["_stdout"] = result.stdout
    data["_elapsed"] = elapsed
    html_path = out.with_suffix(".html")
    data["_html"] = html_path.read_text(encoding="utf-8") if html_path.exists() else ""
    return data


def _verdict(report: dict[str, Any], text: str) -> dict[str, Any]:
    matches = [v for v in report["verdicts"] if text in v["name"]]
    assert len(matches) == 1, [v["name"] for v in report["verdicts"]]
    return matches[0]


@pytest.mark.slow
def test_short_run_holds_the_invariants(report: dict[str, Any]) -> None:
    failed = [v for v in report["verdicts"] if not v["ok"] and v["kind"] in FATAL]
    assert report["passed"] and report["_exit"] == 0, (failed, report["_stdout"])
    assert report["check"]["stale"] == []
    assert report["check"]["remote_stale"] == []
    assert report["check"]["errors"] == []
    assert _verdict(report, "stale read beyond")["ok"]
    assert _verdict(report, "no error surfaced")["ok"]
    assert report["check"]["constrained"] > 0  # the checker judged real reads
    assert "PASS" in report["_stdout"].splitlines()[0]


@pytest.mark.slow
def test_every_fault_happened(report: dict[str, Any]) -> None:
    faults = {f["kind"]: f for f in report["faults"]}
    assert sorted(faults) == sorted(FAULT_KINDS)
    for kind, fault in faults.items():
        assert fault["took_effect"], (kind, fault["effect"], fault["detail"])
    # The injector starts each fault once every bus subscriber is connected, so each of these
    # reaches every instance.
    assert faults["bus-kill"]["detail"]["killed"] >= INSTANCES
    assert faults["clients-kill"]["detail"]["killed"] >= INSTANCES
    assert faults["drop"]["detail"]["dropped"] >= INSTANCES
    assert faults["pause"]["bypass_s"] > 0
    restart = faults["restart"]["detail"]
    assert restart["new_pid"] != restart["old_pid"]
    crash = faults["crash"]["detail"]
    assert crash["new_pid"] not in (None, crash["old_pid"])


@pytest.mark.slow
def test_the_metrics_show_the_faults(report: dict[str, Any]) -> None:
    totals = report["metrics_total"]
    # bus-kill, clients-kill, drop and restart each cut every instance's bus connection (the
    # crashed process's last second of counters may be lost: hence 3, not 4, per instance).
    assert totals["bus_reconnects"] >= 3 * INSTANCES
    assert totals["bus_gaps{reason=server_restarted}"] >= 1  # restart: the gap was seen
    assert totals["disabled{reason=bus_unsynced}"] > 0  # pause: LOCAL bypassed, not served
    assert sum(v for k, v in totals.items() if k.startswith("error{")) > 0  # failed open
    assert report["layers_from_metrics"]["local_hits"] > 0
    # The crashed slot has a second incarnation that became ready and was scraped.
    restarted = [life for life in report["lives"] if life["incarnation"] > 1]
    assert restarted and all(life["ready_ns"] for life in restarted)
    assert report["workload"]["instance_restarts"] >= 1
    assert any(m["incarnation"] > 1 for m in report["metrics"])


@pytest.mark.slow
def test_every_instance_stopped_cleanly_and_the_probes_ran(report: dict[str, Any]) -> None:
    assert report["problems"] == []  # no role failed, none had to be killed at shutdown
    # Whether cancellations are honoured is reported (an "expectation"), not asserted here.
    assert sum(report["cancel_probes"].values()) > 0
    assert _verdict(report, "cancelled inside a cached call")["kind"] == "expectation"


@pytest.mark.slow
def test_html_report_of_the_run(report: dict[str, Any]) -> None:
    from tests.test_integration_html import check_html

    assert report["_html"], "no HTML report written"
    check_html(report["_html"], [kind for kind, _, _ in report["fault_windows_s"]])


@pytest.mark.slow
def test_report_has_chart_data(report: dict[str, Any]) -> None:
    series = report["series"]
    assert len(series) >= 16 and sum(b["reads"] for b in series) == report["layers"]["reads"]
    assert any(b["in_fault"] for b in series)
    assert len(report["fault_windows_s"]) == len(FAULT_KINDS)
    assert report["latency_samples"] and report["latency"]["count"] > 0


def test_proxy_relays_delays_and_drops() -> None:
    async def scenario(server: RedisServer) -> None:
        proxy = Proxy(server.host, server.port)
        await proxy.start()
        client = Redis.from_url(proxy.url)
        try:
            assert await client.ping()
            proxy.latency_s = 0.1
            started = time.monotonic()
            await client.set("k", "v")
            assert time.monotonic() - started >= 0.2  # both directions delayed
            proxy.latency_s = 0.0
            assert await client.get("k") == b"v"
            assert proxy.drop_all() >= 1
            assert proxy.stats.dropped >= 1
            try:  # the dropped connection may or may not be noticed before this command
                value = await client.get("k")
            except redis.exceptions.ConnectionError:
                value = await client.get("k")  # a new connection through the proxy
            assert value == b"v"
            assert proxy.stats.accepted >= 2
        finally:
            await client.aclose()
            await proxy.close()

    with RedisServer.start() as server:
        asyncio.run(scenario(server))


def test_module_entry_point_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "integration", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0
    for flag in ("--instances", "--faults", "--transport", "--max-staleness-ms", "--json"):
        assert flag in result.stdout
