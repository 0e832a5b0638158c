"""The nine Prometheus metrics of the README, and per-function handles bound to their labels.

Label lookups (``metric.labels(...)``) cost about a microsecond, so each decorated function binds
the children it needs once, at decoration time; the hot path only calls ``inc``/``observe``. The
two counters every LOCAL hit touches (requests, misses) are lock-free cells (see _fast_counter),
the histograms are their cheap equivalent (see _fast_histogram), and the two in-process steps
of a hit, the LOCAL lookup and the decoding of a REMOTE value, are timed one in
:data:`TIMING_SAMPLE` (each takes about a microsecond or less, and timing it, two clock reads
and an observation, would cost about as much again).

Families are shared per ``(registry, prefix)``: a second :class:`GCache` in one process, with the
same prefix, reports into the same series instead of failing on duplicate registration.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from bus._metrics import shared_families

from ._fast_counter import FastCounter
from ._fast_histogram import FastHistogram

__all__ = ["TIMING_SAMPLE", "FunctionMetrics", "Metrics"]

TIMING_SAMPLE = 64

_LATENCY_BUCKETS = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_SIZE_BUCKETS = tuple(float(4**n) for n in range(3, 13))  # 64 B .. 16 MiB
_LABELS = ("use_case", "key_type", "layer")


@dataclass(frozen=True)
class _Families:
    request: FastCounter
    miss: FastCounter
    disabled: Counter
    error: Counter
    invalidation: Counter
    get_timer: FastHistogram
    fallback_timer: FastHistogram
    serialization_timer: FastHistogram
    size: FastHistogram


def _create(prefix: str, registry: CollectorRegistry) -> _Families:
    name = f"{prefix}gcache_"
    return _Families(
        request=FastCounter(f"{name}request_counter", "Cache requests, per layer consulted.",
                            _LABELS, registry),
        miss=FastCounter(f"{name}miss_counter", "Cache misses, per layer.", _LABELS, registry),
        disabled=Counter(f"{name}disabled_counter",
                         "Calls or layers where caching was skipped, by reason.",
                         (*_LABELS, "reason"), registry=registry),
        error=Counter(f"{name}error_counter",
                      "Errors during cache operations (the call itself still succeeded).",
                      (*_LABELS, "error"), registry=registry),
        invalidation=Counter(f"{name}invalidation_counter",
                             "Invalidation and flush calls (use_case is '*': all of them).",
                             _LABELS, registry=registry),
        get_timer=FastHistogram(f"{name}get_timer", "Seconds to look a key up, per layer.",
                                _LABELS, registry, buckets=_LATENCY_BUCKETS),
        fallback_timer=FastHistogram(f"{name}fallback_timer",
                                     "Seconds spent in the cached function on a miss.",
                                     _LABELS, registry, buckets=_LATENCY_BUCKETS),
        serialization_timer=FastHistogram(f"{name}serialization_timer",
                                          "Seconds to pickle (layer=remote: for Redis) or "
                                          "unpickle.",
                                          (*_LABELS, "operation"), registry,
                                          buckets=_LATENCY_BUCKETS),
        size=FastHistogram(f"{name}size_histogram", "Bytes of serialized cached values.",
                           _LABELS, registry, buckets=_SIZE_BUCKETS),
    )  # fmt: skip


class Metrics:
    """The metric families of one GCache."""

    def __init__(self, prefix: str = "", registry: CollectorRegistry | None = None) -> None:
        self.families = shared_families(registry, "cache", prefix, _create)

    def bind(self, use_case: str, key_type: str) -> FunctionMetrics:
        return FunctionMetrics(self.families, use_case, key_type)

    def invalidation(self, key_type: str, layer: str) -> None:
        self.families.invalidation.labels("*", key_type, layer).inc()


class FunctionMetrics:
    """Children of every family, bound to one decorated function's labels."""

    def __init__(self, families: _Families, use_case: str, key_type: str) -> None:
        f = self.families = families
        self._use_case, self._key_type = use_case, key_type
        local, remote, fallback = (
            (use_case, key_type, "local"),
            (use_case, key_type, "remote"),
            (use_case, key_type, "fallback"),
        )
        # Plain increment functions (see _fast_counter): called as ``request_local()``.
        self.request_local = f.request.child(*local)
        self.request_remote = f.request.child(*remote)
        self.miss_local = f.miss.child(*local)
        self.miss_remote = f.miss.child(*remote)
        self.get_local = f.get_timer.labels(*local)
        self.get_remote = f.get_timer.labels(*remote)
        self.fallback = f.fallback_timer.labels(*fallback)
        self.dump = f.serialization_timer.labels(*remote, "dump")
        self.load = f.serialization_timer.labels(*remote, "load")
        self.size = f.size.labels(*remote)
        self._disabled: dict[tuple[str, str], Counter] = {}
        self._errors: dict[tuple[str, str], Counter] = {}

    def disabled(self, layer: str, reason: str) -> None:
        child = self._disabled.get((layer, reason))
        if child is None:
            child = self._disabled[(layer, reason)] = self.families.disabled.labels(
                self._use_case, self._key_type, layer, reason
            )
        child.inc()

    def error(self, layer: str, error: str) -> None:
        child = self._errors.get((layer, error))
        if child is None:
            child = self._errors[(layer, error)] = self.families.error.labels(
                self._use_case, self._key_type, layer, error
            )
        child.inc()
