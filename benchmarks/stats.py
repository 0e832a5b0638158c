"""Summaries of samples: median and spread of per-round samples, ratios of paired rounds, and
the percentiles of a latency distribution."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Percentiles", "Summary", "paired_ratios", "percentiles", "summarize"]


@dataclass(frozen=True, slots=True)
class Summary:
    """Median, extremes and quartiles of a handful of samples (one per round).

    The median, not the mean, is the headline: a round hit by a scheduler hiccup or a garbage
    collection of someone else's objects moves the mean, while the median ignores it as long as
    most rounds are clean.
    """

    median: float
    minimum: float
    maximum: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        """Interquartile range: the spread of the middle half of the rounds."""
        return self.q3 - self.q1


def summarize(samples: Sequence[float]) -> Summary:
    """Summarize at least one sample."""
    if not samples:
        raise ValueError("no samples to summarize")
    median = statistics.median(samples)
    if len(samples) >= 2:
        # "inclusive" treats the samples as the whole population, so the quartiles stay inside
        # [min, max] even with three rounds (the default method extrapolates beyond them).
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = median
    return Summary(median, min(samples), max(samples), q1, q3)


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two scenarios measured in the same rounds.

    The two were timed moments apart within each round, so machine noise that slows a round
    (another process, CPU frequency) mostly cancels out of their ratio; the median of these
    paired ratios is steadier than the ratio of the two medians.
    """
    if len(numerators) != len(denominators):
        raise ValueError(f"unpaired samples: {len(numerators)} vs {len(denominators)}")
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """The shape of a latency distribution: its middle, its tail and its worst case.

    Latencies are not rounds of a repeated measurement but individual events, and what matters
    is the tail (the replica that learnt last), so these are reported instead of a median and
    its spread.
    """

    count: int
    p50: float
    p99: float
    maximum: float


def _nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    # Nearest-rank: an observed value (never interpolated), the smallest one with at least
    # ``fraction`` of the samples at or below it.
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def percentiles(samples: Sequence[float]) -> Percentiles:
    """p50, p99 and maximum of at least one sample (nearest-rank percentiles)."""
    if not samples:
        raise ValueError("no samples to summarize")
    ordered = sorted(samples)
    return Percentiles(
        count=len(ordered),
        p50=_nearest_rank(ordered, 0.50),
        p99=_nearest_rank(ordered, 0.99),
        maximum=ordered[-1],
    )
