"""Prometheus metrics of the bus, labelled by namespace.

Families are shared per ``(registry, prefix)``, like the cache's, so several subscribers or
caches in one process report into the same series.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["BusMetrics", "shared_families"]

_LAG_BUCKETS = (
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True)
class _Families:
    events: Counter
    lag: Histogram
    reconnects: Counter
    gaps: Counter
    malformed: Counter
    published: Counter


def _create(prefix: str, registry: CollectorRegistry) -> _Families:
    name = f"{prefix}gcache_bus_"
    return _Families(
        events=Counter(f"{name}events", "Bus events applied, by type.",
                       ("namespace", "type"), registry=registry),
        lag=Histogram(f"{name}lag_seconds",
                      "Seconds from publishing an event (Redis time) to applying it.",
                      ("namespace",), buckets=_LAG_BUCKETS, registry=registry),
        reconnects=Counter(f"{name}reconnects", "Subscriber reconnections.", ("namespace",),
                           registry=registry),
        gaps=Counter(f"{name}gaps",
                     "Times the subscriber could not prove it saw every event (LOCAL flushed).",
                     ("namespace", "reason"), registry=registry),
        malformed=Counter(f"{name}malformed", "Bus payloads skipped, by reason.",
                          ("namespace", "reason"), registry=registry),
        published=Counter(f"{name}published", "Events published, by type.",
                          ("namespace", "type"), registry=registry),
    )  # fmt: skip


F = TypeVar("F")
_shared: weakref.WeakKeyDictionary[CollectorRegistry, dict[tuple[str, str], object]] = (
    weakref.WeakKeyDictionary()
)
_shared_lock = threading.Lock()


def shared_families(
    registry: CollectorRegistry | None,
    kind: str,
    prefix: str,
    create: Callable[[str, CollectorRegistry], F],
) -> F:
    """The metric families ``create(prefix, registry)`` made, once per ``(registry, kind,
    prefix)``: a second cache or subscriber in the process reports into the same series instead
    of failing on duplicate registration. ``None`` is prometheus_client's default registry."""
    registry = REGISTRY if registry is None else registry
    with _shared_lock:
        by_key = _shared.setdefault(registry, {})
        families = by_key.get((kind, prefix))
        if families is None:
            families = by_key[(kind, prefix)] = create(prefix, registry)
    return families  # type: ignore[return-value]  # stored under its kind by this function


class BusMetrics:
    """The bus metric families, bound to one namespace."""

    def __init__(
        self, namespace: str, *, prefix: str = "", registry: CollectorRegistry | None = None
    ) -> None:
        families = shared_families(registry, "bus", prefix, _create)
        self._f = families
        self._ns = namespace
        self.lag = families.lag.labels(namespace)
        self.reconnects = families.reconnects.labels(namespace)
        # Bound once: the subscriber counts every event it applies.
        self.invalidate_events = families.events.labels(namespace, "invalidate")
        self.flush_events = families.events.labels(namespace, "flush")

    def gap(self, reason: str) -> None:
        self._f.gaps.labels(self._ns, reason).inc()

    def malformed(self, reason: str) -> None:
        self._f.malformed.labels(self._ns, reason).inc()

    def published(self, kind: str, count: int = 1) -> None:
        self._f.published.labels(self._ns, kind).inc(count)
