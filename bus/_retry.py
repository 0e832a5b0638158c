"""Bounded, jittered retries (tenacity) for Redis operations that are safe to repeat.

Raising a watermark is idempotent (it only moves forward) and the cache's writes are
conditional and never regress, so running any of them twice is harmless. Every policy is bounded
in attempts and in total time; when both run out the caller gets the last error.
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

__all__ = ["retry_async"]

T = TypeVar("T")


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    budget: float,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """Run ``operation``; on ``retry_on`` errors retry with jittered exponential backoff until
    ``attempts`` or ``budget`` seconds are used up, then raise the last error."""
    try:
        return await operation()  # the common case pays nothing for the machinery below
    except retry_on:
        if attempts <= 1:
            raise
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts - 1) | stop_after_delay(budget),
        wait=wait_random_exponential(multiplier=budget / 20, max=budget / 4),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
