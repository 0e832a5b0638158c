"""A cancellation that redis-py swallowed, found again before a loop tries once more.

On Python < 3.12, redis-py's timed operations can return, or fail with a connection or timeout
error, when a cancellation lands just as they end (``asyncio.wait_for``, CPython gh-86296): the
``CancelledError`` never reaches the task. ``Task.cancelling()`` (3.11+) still counts the
request. A loop that retries on connection errors would otherwise take the lost cancellation
for one more failure and go on, and the task that was asked to stop (``GCache.aclose``, a
service shutting down) runs on. Such a loop takes a baseline when it starts and calls
:func:`raise_if_cancel_lost` before every new attempt. On 3.10 there is no counter: it does
nothing there.
"""

from __future__ import annotations

import asyncio

__all__ = ["cancel_requests", "raise_if_cancel_lost"]


def cancel_requests() -> int:
    """Cancellation requests pending on the current task (0 outside a task, and on 3.10)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return 0 if cancelling is None else int(cancelling())


def raise_if_cancel_lost(baseline: int) -> None:
    """Raise ``CancelledError`` if the current task was asked to stop since ``baseline``
    (:func:`cancel_requests` when the loop began) and the request was swallowed."""
    if cancel_requests() > baseline:
        raise asyncio.CancelledError
