"""The lock-free metric cells expose exactly what prometheus_client's own types would."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gcache._fast_counter import FastCounter
from gcache._fast_histogram import FastHistogram

BUCKETS = (1e-6, 2.5e-6, 0.01, 1.0, 64.0, 16777216.0)
VALUES = (0.0, 1e-6, 2e-6, 2.5e-6, 0.5, 1.0, 63.9, 64.0, 1e9, 16777216.0)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The text format, without the ``_created`` series (a timestamp that always differs)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_histogram_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastHistogram("h", "doc", ("a", "b"), ours, buckets=BUCKETS)
    reference = Histogram("h", "doc", ("a", "b"), buckets=BUCKETS, registry=theirs)
    for labels in (("x", "y"), ("x", "z")):
        for value in VALUES[: 5 + len(labels[1])]:
            fast.labels(*labels).observe(value)
            reference.labels(*labels).observe(value)
    assert _exposition(ours) == _exposition(theirs)


def test_counter_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastCounter("c", "doc", ("a",), ours)
    reference = Counter("c", "doc", ("a",), registry=theirs)
    for label, times in (("x", 3), ("y", 1)):
        increment = fast.child(label)
        for _ in range(times):
            increment()
            reference.labels(label).inc()
    assert _exposition(ours) == _exposition(theirs)


def test_histogram_loses_no_observation_across_threads() -> None:
    registry = CollectorRegistry()
    child = FastHistogram("h", "doc", ("a",), registry, buckets=BUCKETS).labels("x")
    threads, per_thread = 8, 20_000
    start = threading.Barrier(threads)

    def observe() -> None:
        start.wait()
        for _ in range(per_thread):
            child.observe(0.5)  # exact in binary: the sum is exact too

    workers = [threading.Thread(target=observe) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    counts, total = child.snapshot()
    assert sum(counts) == threads * per_thread
    assert total == 0.5 * threads * per_thread
    assert registry.get_sample_value("h_count", {"a": "x"}) == threads * per_thread
    assert registry.get_sample_value("h_bucket", {"a": "x", "le": "1.0"}) == threads * per_thread
    assert registry.get_sample_value("h_bucket", {"a": "x", "le": "0.01"}) == 0


def test_histogram_rejects_unsorted_buckets() -> None:
    with pytest.raises(ValueError, match="ascending"):
        FastHistogram("h", "doc", ("a",), CollectorRegistry(), buckets=(1.0, 0.5))
