"""Single-flight: concurrent misses of one key in one process run the function once.

Concurrency is controlled with events the test owns (never sleeps): the function blocks until
the test releases it, after the test has seen every caller waiting for it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gcache import GCache
from integration.redis_server import wait_until
from tests.metric_values import metric
from tests.providers import LOCAL_ONLY, constant

JOIN_TIMEOUT = 30.0


class Boom(Exception):
    pass


@pytest.fixture
def cache(make_cache: Callable[..., GCache]) -> GCache:
    return make_cache(provider=constant(LOCAL_ONLY))


def local_lookups(registry: CollectorRegistry, use_case: str) -> float:
    return metric(registry, "gcache_request_counter_total", use_case=use_case, layer="local")


async def until(predicate: Callable[[], bool], what: str, rounds: int = 10_000) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded by rounds, not by time)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


# -- async ---------------------------------------------------------------------------------


def test_async_concurrent_misses_call_the_function_once(
    cache: GCache, registry: CollectorRegistry
) -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        release = asyncio.Event()

        @cache.cached(key_type="user_id", id_arg="uid", use_case="Flight")
        async def load(uid: int) -> tuple[str, int]:
            calls.append(uid)
            await release.wait()
            return ("value", uid)

        with cache.enable():
            tasks = [asyncio.create_task(load(1)) for _ in range(50)]
            await until(lambda: local_lookups(registry, "Flight") == 50, "50 LOCAL misses")
            assert calls == [1]  # the leader is in the function; 49 callers wait for it
            release.set()
            return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [("value", 1)] * 50
    assert calls == [1]


def test_async_flights_are_per_key(cache: GCache, registry: CollectorRegistry) -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        release = asyncio.Event()

        @cache.cached(key_type="user_id", id_arg="uid", use_case="PerKey")
        async def load(uid: int) -> int:
            calls.append(uid)
            await release.wait()
            return uid * 10

        with cache.enable():
            tasks = [asyncio.create_task(load(i % 5)) for i in range(50)]
            await until(lambda: local_lookups(registry, "PerKey") == 50, "50 LOCAL misses")
            release.set()
            return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [(i % 5) * 10 for i in range(50)]
    assert sorted(calls) == [0, 1, 2, 3, 4]


def test_async_exception_reaches_every_waiter_and_the_next_call_recomputes(
    cache: GCache, registry: CollectorRegistry
) -> None:
    calls: list[int] = []

    async def main() -> tuple[list[Any], Any]:
        release = asyncio.Event()

        @cache.cached(key_type="user_id", id_arg="uid", use_case="FlightError")
        async def load(uid: int) -> str:
            calls.append(uid)
            await release.wait()
            if len(calls) == 1:
                raise Boom("first call fails")
            return "recovered"

        with cache.enable():
            tasks = [asyncio.create_task(load(1)) for _ in range(50)]
            await until(lambda: local_lookups(registry, "FlightError") == 50, "50 LOCAL misses")
            release.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return results, await load(1)

    results, after = asyncio.run(main())
    assert len(results) == 50
    assert all(isinstance(r, Boom) and str(r) == "first call fails" for r in results)
    assert after == "recovered"  # the failure was not cached and the flight was cleared
    assert calls == [1, 1]


def test_async_leader_cancelled_waiters_still_complete(
    cache: GCache, registry: CollectorRegistry
) -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        release = asyncio.Event()

        @cache.cached(key_type="user_id", id_arg="uid", use_case="Cancelled")
        async def load(uid: int) -> str:
            calls.append(uid)
            await release.wait()
            return f"value-{len(calls)}"

        with cache.enable():
            leader = asyncio.create_task(load(1))
            await until(lambda: calls == [1], "the leader entered the function")
            waiters = [asyncio.create_task(load(1)) for _ in range(10)]
            await until(lambda: local_lookups(registry, "Cancelled") == 11, "11 LOCAL misses")
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
            # One waiter takes over as the new leader and runs the function again.
            await until(lambda: len(calls) == 2, "a waiter became the leader")
            release.set()
            results = await asyncio.gather(*waiters)
            return [*results, await load(1)]

    assert asyncio.run(main()) == ["value-2"] * 11
    assert calls == [1, 1]


def test_async_waiter_cancelled_does_not_disturb_the_flight(
    cache: GCache, registry: CollectorRegistry
) -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        release = asyncio.Event()

        @cache.cached(key_type="user_id", id_arg="uid", use_case="WaiterCancelled")
        async def load(uid: int) -> str:
            calls.append(uid)
            await release.wait()
            return "value"

        with cache.enable():
            tasks = [asyncio.create_task(load(1)) for _ in range(5)]
            await until(lambda: local_lookups(registry, "WaiterCancelled") == 5, "5 LOCAL misses")
            tasks[3].cancel()
            release.set()
            return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[3], asyncio.CancelledError)
    assert results[:3] + results[4:] == ["value"] * 4
    assert calls == [1]


def test_async_nested_cached_functions(cache: GCache) -> None:
    calls: list[str] = []

    @cache.cached(key_type="user_id", id_arg="uid")
    async def inner(uid: int) -> int:
        calls.append(f"inner{uid}")
        return uid + 1

    @cache.cached(key_type="user_id", id_arg="uid")
    async def outer(uid: int) -> int:
        calls.append(f"outer{uid}")
        return await inner(uid) * 2

    async def main() -> list[int]:
        with cache.enable():
            return [await outer(1), await outer(1), await inner(1)]

    assert asyncio.run(main()) == [4, 4, 2]
    assert calls == ["outer1", "inner1"]


def test_async_recursion_on_different_keys(cache: GCache) -> None:
    calls: list[int] = []

    @cache.cached(key_type="n", id_arg="n")
    async def fib(n: int) -> int:
        calls.append(n)
        return n if n < 2 else await fib(n - 1) + await fib(n - 2)

    async def main() -> int:
        with cache.enable():
            return await asyncio.wait_for(fib(30), timeout=JOIN_TIMEOUT)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 832040
    assert sorted(calls) == list(range(31))  # each n computed once


def test_async_recursion_on_the_same_key_does_not_deadlock(cache: GCache) -> None:
    calls: list[int] = []

    @cache.cached(key_type="user_id", id_arg="uid", ignore_args=["depth"])
    async def walk(uid: str, depth: int) -> int:
        calls.append(depth)
        return 0 if depth == 0 else await walk(uid, depth - 1) + 1

    async def main() -> int:
        with cache.enable():
            return await asyncio.wait_for(walk("u", 3), timeout=JOIN_TIMEOUT)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 3
    assert calls == [3, 2, 1, 0]


def test_async_recursion_on_the_same_key_through_child_tasks_does_not_deadlock(
    cache: GCache,
) -> None:
    @cache.cached(key_type="user_id", id_arg="uid", ignore_args=["depth"])
    async def walk(uid: str, depth: int) -> int:
        if depth == 0:
            return 0
        below = await asyncio.gather(walk(uid, depth - 1), walk(uid, depth - 1))
        return sum(below) + 1

    async def main() -> int:
        with cache.enable():
            return await asyncio.wait_for(walk("u", 2), timeout=2)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 3


# -- sync ----------------------------------------------------------------------------------


def _blocked_in_single_flight(thread: threading.Thread) -> bool:
    """True when ``thread`` is blocked in a threading wait underneath gcache's single-flight."""
    frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
    waiting = in_flight = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if frame.f_code.co_name == "wait" and filename.endswith("threading.py"):
            waiting = True
        if filename.endswith(os.path.join("gcache", "_singleflight.py")):
            in_flight = True
        frame = frame.f_back
    return waiting and in_flight


def _run_threads(
    target: Callable[[], Any], count: int
) -> tuple[list[threading.Thread], list[Any], list[BaseException]]:
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            value = target()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, name=f"flight-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)


def test_sync_threads_missing_one_key_call_the_function_once(cache: GCache) -> None:
    release = threading.Event()
    calls: list[int] = []

    @cache.cached(key_type="user_id", id_arg="uid")
    def load(uid: int) -> tuple[str, int]:
        calls.append(uid)
        assert release.wait(timeout=JOIN_TIMEOUT)
        return ("value", uid)

    def call() -> Any:
        with cache.enable():
            return load(1)

    threads, results, errors = _run_threads(call, 8)
    try:
        wait_until(
            lambda: all(_blocked_in_single_flight(t) for t in threads),
            timeout=JOIN_TIMEOUT,
            message="all 8 threads in the flight",
        )
    finally:
        release.set()
    _join(threads)
    assert errors == []
    assert results == [("value", 1)] * 8
    assert calls == [1]


def test_sync_exception_reaches_every_waiter_and_the_next_call_recomputes(
    cache: GCache,
) -> None:
    release = threading.Event()
    calls: list[int] = []

    @cache.cached(key_type="user_id", id_arg="uid")
    def load(uid: int) -> str:
        calls.append(uid)
        assert release.wait(timeout=JOIN_TIMEOUT)
        if len(calls) == 1:
            raise Boom("first call fails")
        return "recovered"

    def call() -> Any:
        with cache.enable():
            return load(1)

    threads, results, errors = _run_threads(call, 8)
    try:
        wait_until(
            lambda: all(_blocked_in_single_flight(t) for t in threads),
            timeout=JOIN_TIMEOUT,
            message="all 8 threads in the flight",
        )
    finally:
        release.set()
    _join(threads)
    assert results == []
    assert len(errors) == 8
    assert all(isinstance(e, Boom) and str(e) == "first call fails" for e in errors)
    with cache.enable():
        assert load(1) == "recovered"
        assert load(1) == "recovered"
    assert calls == [1, 1]


def test_sync_nested_cached_functions(cache: GCache) -> None:
    calls: list[str] = []

    @cache.cached(key_type="user_id", id_arg="uid")
    def inner(uid: int) -> int:
        calls.append(f"inner{uid}")
        return uid + 1

    @cache.cached(key_type="user_id", id_arg="uid")
    def outer(uid: int) -> int:
        calls.append(f"outer{uid}")
        return inner(uid) * 2

    with cache.enable():
        assert [outer(1), outer(1), inner(1), outer(2)] == [4, 4, 2, 6]
    assert calls == ["outer1", "inner1", "outer2", "inner2"]


def test_sync_recursion_on_different_keys(cache: GCache) -> None:
    calls: list[int] = []

    @cache.cached(key_type="n", id_arg="n")
    def fib(n: int) -> int:
        calls.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    with cache.enable():
        assert fib(60) == 1548008755920
    assert sorted(calls) == list(range(61))


def test_sync_recursion_on_the_same_key_does_not_deadlock(cache: GCache) -> None:
    calls: list[int] = []

    @cache.cached(key_type="user_id", id_arg="uid", ignore_args=["depth"])
    def walk(uid: str, depth: int) -> int:
        calls.append(depth)
        return 0 if depth == 0 else walk(uid, depth - 1) + 1

    threads, results, errors = _run_threads(lambda: _enabled(cache, lambda: walk("u", 3)), 1)
    _join(threads)  # a deadlock leaves the thread alive past the deadline
    assert errors == []
    assert results == [3]
    assert calls == [3, 2, 1, 0]


def _enabled(cache: GCache, call: Callable[[], Any]) -> Any:
    with cache.enable():
        return call()
