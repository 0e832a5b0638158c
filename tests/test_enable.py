"""``with gcache.enable():`` — caching happens only inside the block, per task and per thread.

Every test counts the calls that reach the function: a cached call does not reach it, an
uncached one does. State leaking out of a block (or into another task/thread) shows up as a
call count that is too low.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from gcache import GCache
from tests.metric_values import metric
from tests.providers import LOCAL_ONLY, constant

USE_CASE = "EnableTest"


class Boom(Exception):
    pass


class Counted:
    """A sync and an async cached function over one call log."""

    def __init__(self, cache: GCache) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

        @cache.cached(key_type="user_id", id_arg="uid", use_case=USE_CASE)
        def get(uid: str) -> str:
            with self.lock:
                self.calls.append(uid)
            return "v:" + uid

        @cache.cached(key_type="user_id", id_arg="uid", use_case=USE_CASE + "Async")
        async def aget(uid: str) -> str:
            self.calls.append(uid)
            return "v:" + uid

        self.get = get
        self.aget = aget


@pytest.fixture
def cache(make_cache: Callable[..., GCache]) -> GCache:
    return make_cache(provider=constant(LOCAL_ONLY))


@pytest.fixture
def counted(cache: GCache) -> Counted:
    return Counted(cache)


def context_disabled(registry: CollectorRegistry, use_case: str = USE_CASE) -> float:
    return metric(
        registry,
        "gcache_disabled_counter_total",
        use_case=use_case,
        reason="context",
        layer="all",
    )


def test_caching_happens_only_inside_enable(cache: GCache, counted: Counted) -> None:
    assert counted.get("a") == "v:a"
    assert counted.get("a") == "v:a"
    assert counted.calls == ["a", "a"]  # outside: every call runs, nothing is stored
    with cache.enable():
        assert counted.get("a") == "v:a"  # nothing was stored outside: a miss
        assert counted.get("a") == "v:a"
    assert counted.calls == ["a", "a", "a"]
    assert counted.get("a") == "v:a"  # outside again: not served from the cache
    assert counted.calls == ["a", "a", "a", "a"]


def test_disabled_context_is_counted(
    cache: GCache, counted: Counted, registry: CollectorRegistry
) -> None:
    counted.get("a")
    counted.get("b")
    with cache.enable(False):
        counted.get("a")
    assert context_disabled(registry) == 3
    with cache.enable():
        counted.get("a")
        counted.get("a")
    assert context_disabled(registry) == 3  # enabled calls are not "disabled"
    asyncio.run(counted.aget("a"))
    assert context_disabled(registry, USE_CASE + "Async") == 1


def test_enable_restores_previous_state_when_the_block_raises(
    cache: GCache, counted: Counted, registry: CollectorRegistry
) -> None:
    with pytest.raises(Boom), cache.enable():
        assert counted.get("a") == "v:a"
        raise Boom
    # If __exit__ had not reset the context variable, these would be LOCAL hits.
    assert counted.get("a") == "v:a"
    assert counted.get("a") == "v:a"
    assert counted.calls == ["a", "a", "a"]
    assert context_disabled(registry) == 2


def test_enable_false_restores_enabled_state_when_the_block_raises(
    cache: GCache, counted: Counted
) -> None:
    with cache.enable():
        counted.get("a")
        with pytest.raises(Boom), cache.enable(False):
            counted.get("a")  # disabled: runs
            raise Boom
        counted.get("a")  # enabled again: LOCAL hit
    assert counted.calls == ["a", "a"]


def test_enable_restores_state_when_an_async_block_raises(cache: GCache, counted: Counted) -> None:
    async def main() -> None:
        with pytest.raises(Boom), cache.enable():
            await counted.aget("a")
            await asyncio.sleep(0)
            raise Boom
        await counted.aget("a")
        await counted.aget("a")

    asyncio.run(main())
    assert counted.calls == ["a", "a", "a"]


def test_enable_does_not_swallow_exceptions(cache: GCache) -> None:
    with pytest.raises(Boom, match="kept"), cache.enable():
        raise Boom("kept")


def test_nested_enable_and_enable_false(cache: GCache, counted: Counted) -> None:
    with cache.enable():
        counted.get("a")  # miss
        counted.get("a")  # hit
        with cache.enable(False):
            counted.get("a")  # disabled: runs
            with cache.enable():
                counted.get("a")  # enabled again: hit
            counted.get("a")  # back to disabled: runs
        counted.get("a")  # back to enabled: hit
    counted.get("a")  # outside everything: runs
    assert counted.calls == ["a", "a", "a", "a"]


def test_enable_object_can_be_reused_sequentially(cache: GCache, counted: Counted) -> None:
    block = cache.enable()
    with block:
        counted.get("a")
    counted.get("a")
    with block:
        counted.get("a")
    assert counted.calls == ["a", "a"]


def test_enable_is_per_cache_instance(make_cache: Callable[..., GCache]) -> None:
    first, second = (
        make_cache(provider=constant(LOCAL_ONLY)),
        make_cache(provider=constant(LOCAL_ONLY)),
    )
    one, two = Counted(first), Counted(second)
    with first.enable():
        one.get("a")
        one.get("a")
        two.get("a")
        two.get("a")
    assert one.calls == ["a"]
    assert two.calls == ["a", "a"]


def test_state_is_isolated_between_asyncio_tasks(cache: GCache, counted: Counted) -> None:
    async def main() -> None:
        inside = asyncio.Event()
        done = asyncio.Event()

        async def enabled_task() -> None:
            with cache.enable():
                await counted.aget("a")  # miss, stored
                inside.set()
                await done.wait()
                await counted.aget("a")  # hit

        async def plain_task() -> None:
            await inside.wait()  # the other task is inside its enable() block now
            await counted.aget("a")
            await counted.aget("a")
            done.set()

        await asyncio.gather(enabled_task(), plain_task())
        await counted.aget("a")  # the main task never enabled caching

    asyncio.run(main())
    assert counted.calls == ["a", "a", "a", "a"]


def test_task_created_inside_enable_inherits_it(cache: GCache, counted: Counted) -> None:
    async def main() -> None:
        with cache.enable():
            task = asyncio.create_task(counted.aget("a"))
        assert await task == "v:a"  # ran after the block exited, in the copied context
        with cache.enable():
            assert await counted.aget("a") == "v:a"  # stored by the task: hit

    asyncio.run(main())
    assert counted.calls == ["a"]


def test_state_is_isolated_between_threads(cache: GCache, counted: Counted) -> None:
    inside = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def enabled_thread() -> None:
        try:
            with cache.enable():
                counted.get("a")  # miss, stored
                inside.set()
                assert done.wait(timeout=30)
                counted.get("a")  # hit
        except BaseException as exc:
            errors.append(exc)

    def plain_thread() -> None:
        try:
            assert inside.wait(timeout=30)
            counted.get("a")
            counted.get("a")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enabled_thread), threading.Thread(target=plain_thread)]
    for thread in threads:
        thread.start()
    threads[1].join(timeout=30)
    done.set()
    counted.get("a")  # this (main) thread never enabled caching
    threads[0].join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert counted.calls == ["a", "a", "a", "a"]


def test_enable_in_main_thread_does_not_reach_a_new_thread(cache: GCache, counted: Counted) -> None:
    with cache.enable():
        counted.get("a")  # stored
        worker = threading.Thread(target=counted.get, args=("a",))
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive()
        counted.get("a")  # hit here
    assert counted.calls == ["a", "a"]  # the worker thread ran uncached


def test_enable_follows_to_thread(cache: GCache, counted: Counted) -> None:
    """asyncio.to_thread copies the context: a sync cached call made there is cached."""

    async def main() -> list[str]:
        with cache.enable():
            first = await asyncio.to_thread(counted.get, "a")
            second = await asyncio.to_thread(counted.get, "a")
        return [first, second]

    assert asyncio.run(main()) == ["v:a", "v:a"]
    assert counted.calls == ["a"]
