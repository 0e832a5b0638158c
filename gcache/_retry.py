"""Bounded, jittered retries (tenacity) for Redis writes that are safe to repeat.

Remote writes are conditional and never regress (DESIGN §3.5), and invalidations only move a
watermark forward, so running either twice is harmless. Each policy is bounded both in attempts
and in total time; the caller sees the last error when both run out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from ._remote import RemoteError

__all__ = ["retry_remote"]

T = TypeVar("T")


async def retry_remote(operation: Callable[[], Awaitable[T]], *, attempts: int, budget: float) -> T:
    """Run ``operation``; on :class:`RemoteError` retry with jittered exponential backoff until
    ``attempts`` or ``budget`` seconds are used up, then raise the last error."""
    try:
        return await operation()  # the common case pays nothing for the machinery below
    except RemoteError:
        if attempts <= 1:
            raise
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts - 1) | stop_after_delay(budget),
        wait=wait_random_exponential(multiplier=budget / 20, max=budget / 4),
        retry=retry_if_exception_type(RemoteError),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
