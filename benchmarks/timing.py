"""The timed primitive: one call per argument in a tight loop, timed with ``perf_counter_ns``.

The loop is deliberately bare (``for arg in args: fn(arg)``): every scenario, the baselines
included, pays the same few nanoseconds of loop overhead, so the baselines show that floor and
the differences between scenarios are the cost of what they call. Arguments are built before the
clock starts (a scenario that needs a fresh id per call must not be charged for formatting it).

Garbage collection stays ON while timing. The calls under test allocate container objects
(coroutines, key tuples, futures), and in production those allocations trigger young-generation
collections; that cost belongs to the path that allocates, and a path that allocates more should
show it. Turning GC off would flatter exactly the paths the project wants to make cheaper. What
does not belong to a scenario is garbage left by the one before it (or by setup), so the heap is
collected just before each clock start.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter_ns
from typing import TypeVar

__all__ = ["time_async_calls", "time_sync_calls"]

A = TypeVar("A")


async def time_async_calls(fn: Callable[[A], Awaitable[object]], args: Sequence[A]) -> int:
    """Nanoseconds to ``await fn(arg)`` for each of ``args`` in turn, on the running loop."""
    gc.collect()
    start = perf_counter_ns()
    for arg in args:
        await fn(arg)
    return perf_counter_ns() - start


def time_sync_calls(fn: Callable[[A], object], args: Sequence[A]) -> int:
    """Nanoseconds to call ``fn(arg)`` for each of ``args`` in turn, in the calling thread."""
    gc.collect()
    start = perf_counter_ns()
    for arg in args:
        fn(arg)
    return perf_counter_ns() - start
