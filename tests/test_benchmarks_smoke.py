"""Smoke test of ``python -m benchmarks --quick``: it runs to the end and reports every figure.

No timing assertion: thresholds live in the benchmark's own PASS/MISS report, never in tests.
Passes with and without the peer libraries of the ``bench`` extra: a peer scenario (and its
target) is expected exactly when its package is installed, and reported as skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.instruction_parts import REMOTE_PARTS, SYNC_PARTS
from integration.redis_server import RedisServer

REPO_ROOT = Path(__file__).resolve().parent.parent

SCENARIOS = {
    "async_bare",
    "sync_bare",
    "reference_work",
    "async_local_hit",
    "sync_local_hit",
    "tracked_remote_hit",
    "raw_redis_get",
    "async_miss",
    "tracked_local_hit_bus_on",
    "tracked_local_hit_bus_off",
}
PEER_SCENARIOS = {
    "peer_aiocache_memory_hit": "aiocache",
    "peer_cashews_mem_hit": "cashews",
    "peer_cashews_client_side_hit": "cashews",
    "peer_dialcache_local_hit": "dialcache",
    "peer_cashews_redis_hit": "cashews",
    "peer_dialcache_tracked_remote_hit": "dialcache",
    "peer_aiocache_memory_miss": "aiocache",
    "peer_cashews_mem_miss": "cashews",
    "peer_cashews_redis_miss": "cashews",
    "peer_dialcache_miss": "dialcache",
}
"""Peer scenario -> the package it needs (optional: the ``bench`` extra)."""
PEER_TARGETS = {
    "async_local_hit_speedup_vs_aiocache_memory_hit": "aiocache",
    "async_local_hit_speedup_vs_cashews_mem_hit": "cashews",
}
THROUGHPUT = {"subscriber_apply", "publish_many"}
PROPAGATION = {"propagation_raw_publish", "propagation_streams", "propagation_pubsub"}
TARGETS = {
    "async_local_hit_us",
    "sync_local_hit_us",
    "tracked_remote_hit_vs_raw_get",
    "tracked_local_hit_bus_on_vs_off",
    "propagation_streams_p99_vs_raw",
    "propagation_pubsub_p99_vs_raw",
    "subscriber_apply_per_s",
    "publish_many_per_s",
    "stampede_gcache_calls",
    "local_overhead_bytes",
    "local_bytes_vs_bound",
}


def _installed(needs: dict[str, str]) -> set[str]:
    return {name for name, package in needs.items() if importlib.util.find_spec(package)}


def test_quick_benchmark_reports_every_scenario(tmp_path: Path) -> None:
    peers = _installed(PEER_SCENARIOS)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "PASS" in proc.stdout or "MISS" in proc.stdout

    document = json.loads(out.read_text(encoding="utf-8"))
    assert set(document["scenarios"]) == SCENARIOS | peers
    assert set(PEER_SCENARIOS) - peers <= set(document["skipped"])
    for name, skipped in document["skipped"].items():
        assert "not installed" in skipped["reason"], name
        assert f"skipped: {skipped['title']}: {skipped['reason']}" in proc.stdout, name
    for name, figures in document["scenarios"].items():
        assert figures["median_ns"] > 0, name
        assert figures["rounds"] == len(figures["per_round_ns"]) >= 1, name
        assert figures["calls"] > 0, name
    assert set(document["throughput"]) == THROUGHPUT
    for name, figures in document["throughput"].items():
        assert figures["median_per_s"] > 0, name
        assert figures["per_round"] > 0, name
        assert figures["rounds"] == len(figures["per_round_per_s"]) >= 1, name
        assert all(rate > 0 for rate in figures["per_round_per_s"]), name
    assert set(document["propagation"]) == PROPAGATION
    plan = document["plan"]
    for name, figures in document["propagation"].items():
        assert figures["samples"] == plan["replicas"] * plan["invalidations"] > 0, name
        assert 0 < figures["p50_ns"] <= figures["p99_ns"] <= figures["max_ns"], name
        if figures["baseline"] is not None:
            assert figures["p99_vs_baseline"] > 0, name
    assert set(document["targets"]) == TARGETS | _installed(PEER_TARGETS)
    for name, target in document["targets"].items():
        assert target["value"] > 0, name
        assert target["comparison"] in ("<=", ">="), name
    # gcache always takes part in the stampede, freshness and memory scenarios.
    assert "gcache" in document["stampede"] and "gcache" in document["fresh_reads"]
    assert document["fresh_reads"]["gcache"]["trials"] == plan["fresh_trials"]
    assert document["stampede"]["gcache"]["calls_per_round"]
    assert document["local_memory"]["gcache"]["entries"] == plan["memory_entries"]
    assert document["not_applicable"]
    assert document["machine"]["python_version"]
    assert document["machine"]["cpu_count"] >= 1
    assert document["machine"]["cpu_model"]


def test_profile_reports_where_one_scenario_spends_its_time() -> None:
    """``--profile SCENARIO`` prints a cProfile table of that path (async, and sync from the
    worker thread), and ``--profile list`` names the scenarios it accepts."""
    command = [sys.executable, "-m", "benchmarks", "--quick", "--profile"]
    listed = subprocess.run(
        [*command, "list"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert set(listed) >= SCENARIOS
    for scenario, function in (
        ("async_local_hit", "cached_async"),
        ("sync_local_hit", "cached_sync"),
    ):
        report = subprocess.run(
            [*command, scenario],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert "under cProfile" in report
        assert f"({function})" in report  # the cached wrapper itself is in the table


def test_think_time_reports_a_row_per_work_size() -> None:
    """``python -m benchmarks.think_time`` runs against its own server and prints one row per
    work size, the first being the bare GET it is compared with."""
    report = subprocess.run(
        [sys.executable, "-m", "benchmarks.think_time", "--rounds", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    rows = [line.split() for line in report[2:]]
    assert len(rows) == 6
    assert rows[0][0] == "0.0" and rows[0][2] == "0.0" and rows[0][3] == "-"
    assert all(float(row[0]) > 0 for row in rows[1:])


def test_instruction_parts_run_every_step(redis_server: RedisServer) -> None:
    """Every step ``python -m benchmarks.instruction_parts`` counts runs to the end as its
    callgrind child would (without valgrind, which CI may not have), the whole hits on their
    path: a REMOTE hit and LOCAL hits, checked by gcache's counters."""

    def child(part: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "benchmarks.instruction_parts", "--child", part]
        return subprocess.run(
            [*command, "--url", redis_server.url, "--calls", "20"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    parts = [*REMOTE_PARTS, *SYNC_PARTS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(parts, pool.map(child, parts), strict=True))
    failed = {part: proc.stderr for part, proc in done.items() if proc.returncode != 0}
    assert not failed
