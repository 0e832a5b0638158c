"""Skewed entity choice: a seeded Zipf sampler over ids ``1..n``.

``P(k) ~ 1 / k**s``: with ``s`` around 1 a few hot entities take most of the traffic, as in real
read-heavy services, while the long tail keeps some LOCAL misses going. ``s = 0`` is uniform.
"""

from __future__ import annotations

import bisect
import itertools
import random

__all__ = ["ZipfSampler"]


class ZipfSampler:
    """Draws entity ids ``1..n`` with probability proportional to ``1 / id**exponent``."""

    def __init__(self, n: int, exponent: float, rng: random.Random) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if exponent < 0:
            raise ValueError(f"exponent must be >= 0, got {exponent}")
        weights = [1.0 / (k**exponent) for k in range(1, n + 1)]
        total = sum(weights)
        self._cdf = list(itertools.accumulate(w / total for w in weights))
        self._cdf[-1] = 1.0  # no id beyond n through rounding
        self._rng = rng
        self.n = n

    def probability(self, entity_id: int) -> float:
        """``P(entity_id)`` (for tests and the report)."""
        if not 1 <= entity_id <= self.n:
            return 0.0
        low = self._cdf[entity_id - 2] if entity_id > 1 else 0.0
        return float(self._cdf[entity_id - 1] - low)

    def sample(self) -> int:
        return bisect.bisect_left(self._cdf, self._rng.random()) + 1
