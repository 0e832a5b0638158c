"""A cancellation that redis-py swallowed must still stop a retrying operation.

On Python < 3.12 redis-py can turn a cancellation that lands as a timed operation ends into a
connection or timeout error (CPython gh-86296). ``bus.retry_async`` retries exactly those
errors, so unguarded it would take the cancellation for a failure and run the operation again.
The subscriber's loops are covered against a real server in ``test_bus_subscriber``.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from bus._retry import retry_async

pytestmark = pytest.mark.skipif(
    not hasattr(asyncio.Task, "cancelling"), reason="no Task.cancelling (3.10)"
)


def test_retry_async_does_not_retry_a_swallowed_cancellation() -> None:
    attempts = 0
    waiting = asyncio.Event()

    async def operation() -> None:
        """Waits to be cancelled, then fails the way redis-py does when it swallows that."""
        nonlocal attempts
        attempts += 1
        waiting.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if attempts > 1:
                raise  # only the first is swallowed: the test's own clean-up must work
            raise redis.exceptions.TimeoutError("Timeout reading from socket") from None

    async def main() -> None:
        task = asyncio.create_task(
            retry_async(operation, attempts=5, budget=60.0, retry_on=redis.exceptions.RedisError)
        )
        await asyncio.wait_for(waiting.wait(), 20.0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=20.0)
        assert task in done, f"still retrying after {attempts} attempts"
        assert task.cancelled()
        assert attempts == 1

    asyncio.run(main())


def test_retry_async_still_retries_a_real_failure() -> None:
    attempts = 0

    async def operation() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise redis.exceptions.ConnectionError("connection reset")
        return "done"

    result = asyncio.run(
        retry_async(operation, attempts=5, budget=5.0, retry_on=redis.exceptions.RedisError)
    )
    assert (result, attempts) == ("done", 3)
