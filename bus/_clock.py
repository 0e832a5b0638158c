"""Cache time: the clock that ``computed_at`` and watermarks are compared on.

Replicas' wall clocks disagree, so with Redis configured every timestamp is Redis server time
(DESIGN §4). Watermarks are stamped inside Lua scripts; ``computed_at`` is read from the local
monotonic clock shifted by an offset measured with ``TIME``.

A ``TIME`` reply was produced somewhere between sending the request (``t0``) and reading the reply
(``t1``), so ``redis_time - t1`` is a *lower bound* of the true offset. Using the lower bound makes
every ``computed_at`` as early as it could possibly be: the uncertainty (the round trip) counts
against the value, which can only make a watermark refuse it, never admit it. Samples expire after
``max_age`` seconds so that drift between the two clocks cannot accumulate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RedisClock", "WallClock"]


class WallClock:
    """Cache time without Redis: this host's wall clock in microseconds (LOCAL layer only, so
    nothing is compared across hosts)."""

    synced = True

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def due(self) -> bool:
        return False

    def latest_us(self) -> int:
        return self.now_us()


class RedisClock:
    """Redis server time estimated from the local monotonic clock, never ahead of the truth."""

    def __init__(
        self,
        *,
        max_age: float = 10.0,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._max_age_ns = int(max_age * 1e9)
        self._monotonic_ns = monotonic_ns
        self._offset_us: int | None = None
        self._sampled_at_ns = 0
        self.resample_at_ns = 0
        """The monotonic instant after which a fresh sample is due (0: never sampled)."""
        self.round_trip_us = 0

    @property
    def synced(self) -> bool:
        return self._offset_us is not None

    def due(self) -> bool:
        """True when a fresh ``TIME`` sample should be taken."""
        return self._monotonic_ns() > self.resample_at_ns

    def observe(self, t0_ns: int, redis_us: int, t1_ns: int) -> None:
        """Record a ``TIME`` reply read between monotonic instants ``t0_ns`` and ``t1_ns``."""
        lower = redis_us - t1_ns // 1000
        fresh = self._monotonic_ns() - self._sampled_at_ns <= self._max_age_ns
        if self._offset_us is not None and fresh:
            # Two valid lower bounds of one offset: the larger is the tighter one.
            lower = max(lower, self._offset_us)
        else:
            self._sampled_at_ns = t1_ns
            self.resample_at_ns = t1_ns + self._max_age_ns
        self._offset_us = lower
        self.round_trip_us = (t1_ns - t0_ns) // 1000

    def now_us(self) -> int:
        """Redis time now, pessimistically early. Call only when :attr:`synced`."""
        assert self._offset_us is not None
        return self._monotonic_ns() // 1000 + self._offset_us

    def latest_us(self) -> int:
        """Redis time now, pessimistically *late* (the other end of the uncertainty): for a
        watermark that must cover everything up to now."""
        return self.now_us() + self.round_trip_us + 1
