"""Histograms cheap enough for the REMOTE-hit path.

``prometheus_client.Histogram.observe`` costs about 0.8 µs: a Python loop over the bucket bounds
and two lock-protected increments. A REMOTE hit observes twice (read time, unpickle time), and
its whole budget over a raw GET is a few microseconds. Here a child finds its bucket with
``bisect`` (one C call) and counts with an ``itertools.count`` cell (atomic under the GIL, as in
:mod:`gcache._fast_counter`). The sum is kept per thread, in a dict keyed by thread id: each
entry has one writer, so its read-add-write needs no lock (a lock, taken and released, cost more
than the rest of ``observe``), and a scrape adds the entries up.

A collector builds an ordinary histogram family (cumulative ``_bucket`` series with ``le``,
``_count``, ``_sum``) when Prometheus scrapes, so the exposition is that of a ``Histogram``.
``_count`` is the ``+Inf`` bucket; it is read from the cells, so it never disagrees with them.
"""

from __future__ import annotations

import itertools
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from threading import get_ident
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ._fast_counter import read_count

__all__ = ["FastHistogram", "FastHistogramChild"]


# The ``le`` label spelled exactly as prometheus_client's own histograms spell it.
_le = cast("Callable[[float], str]", floatToGoString)


class FastHistogramChild:
    """One labelled series: ``observe(amount)``."""

    __slots__ = ("_bounds", "_cells", "_sums")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # finite upper bounds, ascending; the last cell is +Inf
        self._cells = [itertools.count() for _ in range(len(bounds) + 1)]
        # Thread id -> that thread's part of the sum: an entry per thread that ever observed
        # (the ids of ended threads are usually handed out again, so a pool's churn adds few).
        self._sums: dict[int, float] = {}

    def observe(self, amount: float) -> None:
        # bisect_left: an amount equal to a bound belongs to that bound's bucket (le = <=).
        next(self._cells[bisect_left(self._bounds, amount)])
        sums = self._sums
        thread = get_ident()
        sums[thread] = sums.get(thread, 0.0) + amount  # only this thread writes this entry

    def snapshot(self) -> tuple[list[int], float]:
        """Per-bucket (not cumulative) counts and the sum."""
        # copy() is one atomic step: no "dict changed size" when a new thread observes meanwhile.
        total = math.fsum(self._sums.copy().values())
        return [read_count(cell) for cell in self._cells], total


class FastHistogram(Collector):
    """A labelled histogram family whose children are :class:`FastHistogramChild`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
    ) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be distinct and ascending, got {buckets!r}")
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = bounds
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], FastHistogramChild] = {}
        registry.register(self)

    def labels(self, *labelvalues: str) -> FastHistogramChild:
        """The child with these label values (created empty on first use)."""
        if len(labelvalues) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}")
        with self._lock:
            child = self._children.get(labelvalues)
            if child is None:
                child = self._children[labelvalues] = FastHistogramChild(self._bounds)
        return child

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        les = [_le(b) for b in self._bounds] + ["+Inf"]
        with self._lock:
            children = list(self._children.items())
        for labelvalues, child in children:
            counts, total = child.snapshot()
            cumulative = list(itertools.accumulate(counts))
            family.add_metric(
                list(labelvalues), list(zip(les, cumulative, strict=True)), sum_value=total
            )
        yield family
