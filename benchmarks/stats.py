"""Summaries of per-round samples: median and spread, and ratios of paired rounds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Summary", "paired_ratios", "summarize"]


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
