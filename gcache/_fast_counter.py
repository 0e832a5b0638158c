"""Counters cheap enough for the LOCAL-hit path.

``prometheus_client.Counter.inc`` takes a lock and costs about 0.25 µs; a LOCAL hit increments
one or two counters and has a budget of 2 µs in all. Here each labelled child is an
``itertools.count``: ``next()`` on it is a single C call, atomic under the GIL (no lost updates
between threads), about 0.05 µs. A collector turns the cells into an ordinary counter family
when Prometheus scrapes, so the exposition is the same as a ``Counter``'s (with ``_total``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["FastCounter", "read_count"]


def read_count(cell: itertools.count[int]) -> int:
    """The current value of ``cell``, without advancing it."""
    # repr is "count(N)": the one public way to read a count without advancing it.
    return int(repr(cell)[6:-1])


class FastCounter(Collector):
    """A labelled counter family whose children are lock-free ``itertools.count`` cells."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._cells: dict[tuple[str, ...], itertools.count[int]] = {}
        registry.register(self)

    def child(self, *labelvalues: str) -> Callable[[], int]:
        """The increment function of the child with these label values (created at 0)."""
        if len(labelvalues) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}")
        with self._lock:
            cell = self._cells.get(labelvalues)
            if cell is None:
                cell = self._cells[labelvalues] = itertools.count()
        return cell.__next__

    def value(self, *labelvalues: str) -> int:
        cell = self._cells.get(labelvalues)
        return 0 if cell is None else read_count(cell)

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        with self._lock:
            cells = list(self._cells.items())
        for labelvalues, cell in cells:
            family.add_metric(labelvalues, read_count(cell))
        yield family
