"""Smoke test of ``python -m benchmarks --quick``: it runs to the end and reports every figure.

No timing assertion: thresholds live in the benchmark's own PASS/MISS report, never in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SCENARIOS = {
    "async_bare",
    "sync_bare",
    "async_local_hit",
    "sync_local_hit",
    "tracked_remote_hit",
    "raw_redis_get",
    "async_miss",
}
TARGETS = {"async_local_hit_us", "sync_local_hit_us", "tracked_remote_hit_vs_raw_get"}


def test_quick_benchmark_reports_every_scenario(tmp_path: Path) -> None:
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
    assert set(document["scenarios"]) == SCENARIOS
    for name, figures in document["scenarios"].items():
        assert figures["median_ns"] > 0, name
        assert figures["rounds"] == len(figures["per_round_ns"]) >= 1, name
        assert figures["calls"] > 0, name
    assert set(document["targets"]) == TARGETS
    assert document["machine"]["python_version"]
    assert document["machine"]["cpu_count"] >= 1
