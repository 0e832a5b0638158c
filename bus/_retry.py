"""Bounded, jittered retries (tenacity) for Redis operations that are safe to repeat.

Raising a watermark is idempotent (it only moves forward) and the cache's writes are
conditional and never regress, so running any of them twice is harmless. Every policy is bounded
in attempts and in total time; when both run out the caller gets the last error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from ._lost_cancel import cancel_requests, raise_if_cancel_lost

__all__ = ["is_transient", "retry_async"]

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can cure: connection trouble, timeouts, a replica that was
    just demoted. Not for errors the server will give again (a script error, wrong type, an
    argument it refuses). Looks through a wrapper's ``__cause__``."""
    for error in (exc, exc.__cause__):
        if isinstance(error, (RedisConnectionError, RedisTimeoutError, ReadOnlyError)):
            return True
        if isinstance(error, (OSError, TimeoutError)):
            return True
    return False


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    budget: float,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """Run ``operation``; on a *transient* ``retry_on`` error (:func:`is_transient`) retry with
    jittered exponential backoff until ``attempts`` or ``budget`` seconds are used up, then
    raise the last error. Other errors are raised at once."""
    baseline = cancel_requests()
    try:
        return await operation()  # the common case pays nothing for the machinery below
    except retry_on as exc:
        if attempts <= 1 or not is_transient(exc):
            raise
        raise_if_cancel_lost(baseline)  # the error may be a cancellation redis-py swallowed
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts - 1) | stop_after_delay(budget),
        wait=wait_random_exponential(multiplier=budget / 20, max=budget / 4),
        retry=retry_if_exception(lambda exc: isinstance(exc, retry_on) and is_transient(exc)),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            raise_if_cancel_lost(baseline)
            return await operation()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
