"""Logging that cannot flood: one line per kind of error per interval.

When Redis goes down every cached call fails over to the function; logging each one would
bury the logs (and cost more than the call). The first error of a burst is logged with its
traceback; the rest are counted and reported in one line when the interval has passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["BurstLogger"]


class BurstLogger:
    """Logs the first event of each ``kind`` per ``interval`` seconds and counts the rest."""

    def __init__(
        self, logger: logging.Logger, *, interval: float, timer: Callable[[], float]
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._timer = timer
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def error(self, kind: str, message: str, exc: BaseException | None = None) -> bool:
        """Log (or count) one event; True if it was written to the log."""
        now = self._timer()
        with self._lock:
            started, suppressed = self._windows.get(kind, (float("-inf"), 0))
            if now - started < self._interval:
                self._windows[kind] = (started, suppressed + 1)
                return False
            self._windows[kind] = (now, 0)
        if suppressed:
            message = f"{message} ({suppressed} similar errors suppressed in the last burst)"
        self._logger.warning(message, exc_info=exc)
        return True
